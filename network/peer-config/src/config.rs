//! The peer's configuration file (`peer.yaml`), read by `medledger peer start`.
//!
//! ```yaml
//! name: peer0.org1                     # this peer's name (logs, metrics)
//! msp_id: Org1MSP
//! msp_dir: msp                         # Fabric MSP folder with the peer's signing identity
//! tls_cert: tls/server.crt             # TLS certificate (server, and client to peers/orderers)
//! tls_key: tls/server.key
//! listen: 127.0.0.1:7051               # Endorser, Gateway, Deliver, PrivateData (gRPC, TLS)
//! external_endpoint: 127.0.0.1:7051    # how other nodes reach it (default: listen)
//! operations_listen: 127.0.0.1:9444    # /healthz, /metrics, /version (HTTP); omit to disable
//! data_dir: data                       # ledgers/<channel>, transient/, chaincode/
//! channels:                            # channels joined, by their genesis (config) block
//!   - genesis_block: ../genesis.block
//! chaincodes:                          # installed chaincode; definition = fallback (below)
//!   - name: ehr
//!     version: "1.0"
//!     executable: /opt/medledger/bin/ehr-chaincode
//!     endorsement_policy: "AND('Org1MSP.peer','Org2MSP.peer')"   # default MAJORITY Endorsement
//!     collections:
//!       - name: Org1MSPPrivateCollection
//!         member_orgs: "OR('Org1MSP.member')"
//!         endorsement_policy: "OR('Org1MSP.peer')"                # optional
//!         block_to_live: 0
//! sandbox:                             # optional; defaults shown
//!   launcher: medledger-sandbox        # default: next to the running executable
//!   execution_timeout_ms: 30000
//!   uid: 65534                         # user and group chaincode runs as when the peer
//!   gid: 65534                         # runs as root (never 0)
//!   # uid_range: [1900000000, 100]     # instead: each chaincode its own user and group from
//!                                      # these ids (own task budget); their processes are
//!                                      # killed at start: ids used by nothing else (refused
//!                                      # if in /etc/passwd, group, subuid or subgid)
//!   min_landlock: full                 # full | partial | none: no chaincode runs where the
//!                                      # kernel enforces less Landlock (full: >= 6.12; ADR 0015)
//!   max_tasks: 2048                    # processes + threads of the chaincode's user
//! gateway:                             # optional; defaults shown (Fabric's peer.gateway)
//!   concurrency_limit: 500
//!   endorse_timeout_ms: 30000
//!   submit_timeout_ms: 10000
//!   commit_status_timeout_ms: 300000
//! deliver_client:                      # optional; defaults shown (Fabric's peer.deliveryclient)
//!   block_censorship_timeout_ms: 5000  # an attested block undelivered this long: switch orderer
//!   reconnect_delay_ms: 500            # after a failed stream or refused block
//! ```
//!
//! Relative paths are relative to the configuration file's directory. `chaincodes` installs
//! chaincodes (name → executable). The definition given with each (policy, collections) is
//! only a fallback: the definition committed on the channel through `_lifecycle`
//! (`medledger lifecycle approve|commit`) takes precedence as soon as one is committed; until
//! then every peer of a channel must carry the same fallback, or they validate differently.

use std::path::{Path, PathBuf};

use medledger_proto::types::{ChaincodeName, MspId};
use serde::{Deserialize, Serialize};

use crate::definitions::ChaincodeDefinition;
use crate::error::{Error, Result};
use crate::lifecycle::Definition;
use crate::sandbox::{LandlockLevel, SandboxUser, UidRange};

/// `peer.yaml`. See the module docs for the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// This peer's name, for logs and metrics.
    pub name: String,
    /// MSP id of its organization (checked when the file is read: [`MspId`]'s rule).
    pub msp_id: MspId,
    /// MSP folder of its signing identity.
    pub msp_dir: PathBuf,
    /// TLS certificate, PEM: served to clients and peers, presented to orderers and peers.
    pub tls_cert: PathBuf,
    /// TLS private key, PEM.
    pub tls_key: PathBuf,
    /// gRPC listen address (default `0.0.0.0:7051`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `host:port` other nodes and clients use (default: `listen`). Matched against the
    /// channel configuration's peer endpoints to recognise itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_endpoint: Option<String>,
    /// Operations HTTP listen address; none to disable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations_listen: Option<String>,
    /// Ledgers, transient store and chaincode working directories.
    pub data_dir: PathBuf,
    /// Channels joined.
    pub channels: Vec<ChannelSection>,
    /// Installed chaincodes with their definitions.
    #[serde(default)]
    pub chaincodes: Vec<ChaincodeSection>,
    /// Chaincode sandbox.
    #[serde(default)]
    pub sandbox: SandboxSection,
    /// Gateway limits.
    #[serde(default)]
    pub gateway: GatewaySection,
    /// When the block puller switches orderer.
    #[serde(default)]
    pub deliver_client: DeliverClientSection,
    /// Seconds an endorsement's private data waits in the transient store for its transaction
    /// to commit before it is deleted (default 1800: longer than the 15-minute proposal
    /// window; a transaction committed later finds its private data missing and reconciles
    /// it from other member peers).
    #[serde(default = "default_transient_ttl_s")]
    pub transient_ttl_s: u64,
    /// Concurrency limits of the Endorser and Deliver services.
    #[serde(default)]
    pub limits: LimitsSection,
}

/// Concurrency limits of the peer's gRPC services (Fabric's `peer.limits.concurrency`): one
/// request over a limit is refused with `RESOURCE_EXHAUSTED` rather than queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Proposals `protos.Endorser/ProcessProposal` processes at once (default 2500, Fabric's
    /// `endorserService`). The peer's own gateway endorses under `gateway.concurrency_limit`.
    pub endorser_concurrency: usize,
    /// `Deliver`/`DeliverFiltered` streams open at once (default 2500, Fabric's
    /// `deliverService`).
    pub deliver_concurrency: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            // The endorser's `DEFAULT_ENDORSER_CONCURRENCY` and the peer's Deliver
            // `DEFAULT_MAX_STREAMS` (Fabric's defaults; the peer's tests check they agree).
            endorser_concurrency: 2500,
            deliver_concurrency: 2500,
        }
    }
}

/// Default [`PeerConfig::transient_ttl_s`]: 30 minutes.
pub const DEFAULT_TRANSIENT_TTL_S: u64 = 1800;

fn default_transient_ttl_s() -> u64 {
    DEFAULT_TRANSIENT_TTL_S
}

fn default_listen() -> String {
    "0.0.0.0:7051".to_owned()
}

/// A joined channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSection {
    /// The channel's genesis block file (serialized `common.Block` 0).
    pub genesis_block: PathBuf,
}

/// An installed chaincode and its definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaincodeSection {
    /// Chaincode name (namespace), checked when the file is read ([`ChaincodeName`]'s rule,
    /// Fabric's `ChaincodeNameRegExp`).
    pub name: ChaincodeName,
    /// Version label (the package id is `name:version`).
    #[serde(default = "default_version")]
    pub version: String,
    /// The shim-speaking executable, run in the sandbox.
    pub executable: PathBuf,
    /// Endorsement policy (Fabric policy syntax); default `MAJORITY Endorsement`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement_policy: Option<String>,
    /// Private data collections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<CollectionSection>,
    /// Functions the gateway only evaluates, never endorses for submission: their responses
    /// must not be written into a block (the EHR chaincode's `ReadRecord`, `ReadRecords`, `LocateRecords`; ADR 0023).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluate_only: Vec<String>,
}

fn default_version() -> String {
    "1.0".to_owned()
}

/// A private data collection (Fabric's `StaticCollectionConfig`): `name`, `member_orgs` (a
/// signature policy such as `OR('Org1MSP.member')`), optional `endorsement_policy`,
/// `block_to_live` (0 = forever) — the same shape as in a lifecycle definition.
pub use crate::lifecycle::CollectionConfig as CollectionSection;

/// Chaincode sandbox settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSection {
    /// The `medledger-sandbox` launcher; default: next to the running executable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launcher: Option<PathBuf>,
    /// Per-invocation execution timeout, ms (default 30000).
    pub execution_timeout_ms: u64,
    /// User id chaincode runs as when the peer runs as root (default 65534, `nobody`; not
    /// 0). A peer not running as root runs chaincode as its own user.
    pub uid: u32,
    /// Group id chaincode runs as when the peer runs as root (default 65534; not 0).
    pub gid: u32,
    /// `[start, count]`: ids set aside for chaincode (default none). When the peer runs as
    /// root, each chaincode runs as its own user and group `start + i` instead of `uid`/`gid`,
    /// so it has its own `max_tasks` budget; at most `count` chaincodes run at once. The
    /// ids must be used by nothing else on the host: at start the peer kills every process
    /// whose real user is in the range (chaincode left by a peer that died). `start > 0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid_range: Option<(u32, u32)>,
    /// The least Landlock enforcement chaincode may run with: `full` (default; Linux >= 6.12),
    /// `partial` (some rights missing: truncate control < 6.2, TCP rules < 6.7, signal
    /// scoping < 6.12) or `none` (Linux < 5.13). Below it every launch is refused, by the
    /// trampoline and again by the peer on the trampoline's report (ADR 0015). Below `full`
    /// the peer logs a warning at start and at every launch; its chaincode can then read (and
    /// without truncate control, truncate) whatever its user can: a peer not running as root
    /// gives it its own key and ledger.
    pub min_landlock: LandlockLevel,
    /// Removed (issue 13 review M1): it allowed partial and no Landlock alike. Any value is
    /// refused at load with a message naming [`SandboxSection::min_landlock`], so that an old
    /// `true` is replaced by a deliberate `partial` or `none`, never read as either.
    #[serde(skip_serializing)]
    pub allow_without_landlock: Option<bool>,
    /// Tasks (processes and threads) the chaincode's user may have, `RLIMIT_NPROC` (default
    /// 2048, > 0). As root with `uid_range`, each chaincode has its own; as root without it,
    /// every chaincode of this peer runs as `uid` and they share it (size it as chaincodes x
    /// (CPUs + 65) for chaincode on our shim, or set `uid_range`); not as root, it counts one chaincode's tasks on Linux >=
    /// 5.14. Above the hard `RLIMIT_NPROC` the peer cannot raise (not root, or root without
    /// `CAP_SYS_RESOURCE`), lowered to it at start with a warning.
    pub max_tasks: u64,
}

impl Default for SandboxSection {
    fn default() -> Self {
        let user = SandboxUser::NOBODY;
        SandboxSection {
            launcher: None,
            execution_timeout_ms: 30_000,
            uid: user.uid,
            gid: user.gid,
            uid_range: None,
            min_landlock: LandlockLevel::default(),
            allow_without_landlock: None,
            max_tasks: crate::sandbox::DEFAULT_MAX_TASKS,
        }
    }
}

impl SandboxSection {
    /// [`SandboxSection::uid_range`] as the runtime's.
    pub fn uid_range(&self) -> Option<UidRange> {
        self.uid_range
            .map(|(start, count)| UidRange { start, count })
    }

    /// The user chaincode runs as when the peer runs as root.
    pub fn user(&self) -> SandboxUser {
        SandboxUser {
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// Gateway limits (Fabric's `peer.gateway`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// Requests served at once (default 500).
    pub concurrency_limit: usize,
    /// Endorsement deadline, ms (default 30000).
    pub endorse_timeout_ms: u64,
    /// Submission deadline, ms (default 10000).
    pub submit_timeout_ms: u64,
    /// Longest commit-status wait, ms (default 300000).
    pub commit_status_timeout_ms: u64,
    /// Commit-status requests waiting at once (default 10000).
    pub max_commit_status_waits: usize,
    /// Chaincode-event streams open at once (default 1000).
    pub max_event_streams: usize,
    /// How long the gateway asks the endorsers again while their responses differ, ms
    /// (default 2000; an endorsing peer may not yet have committed the latest block).
    pub mismatch_wait_ms: u64,
}

impl Default for GatewaySection {
    /// The gateway's defaults (`medledger_gateway_server::GatewayConfig::default`, Fabric's
    /// `peer.gateway`; the peer's tests check they agree).
    fn default() -> Self {
        GatewaySection {
            concurrency_limit: 500,
            endorse_timeout_ms: 30_000,
            submit_timeout_ms: 10_000,
            commit_status_timeout_ms: 300_000,
            max_commit_status_waits: 10_000,
            max_event_streams: 1_000,
            mismatch_wait_ms: 2_000,
        }
    }
}

/// When the block puller leaves an orderer (Fabric's `peer.deliveryclient`; docs/peer.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverClientSection {
    /// How long a block other orderers have shown (with a quorum of consenter signatures) may
    /// stay undelivered by the orderer the peer pulls from before it switches, ms (default
    /// 5000; Fabric's `blockCensorshipTimeout`).
    pub block_censorship_timeout_ms: u64,
    /// Wait after a failed connection, stream or refused block before the next orderer, ms
    /// (default 500).
    pub reconnect_delay_ms: u64,
}

impl Default for DeliverClientSection {
    /// The block puller's defaults (`medledger_peer::node::pull::PullConfig::default` is
    /// this section's default).
    fn default() -> Self {
        DeliverClientSection {
            block_censorship_timeout_ms: 5_000,
            reconnect_delay_ms: 500,
        }
    }
}

fn config_err(reason: impl Into<String>) -> Error {
    Error::Config {
        reason: reason.into(),
    }
}

impl PeerConfig {
    /// Reads and validates a configuration file; relative paths are resolved against its
    /// directory.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Config`] naming the problem.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
            what: "reading the peer configuration",
            error,
        })?;
        let mut c: PeerConfig = serde_yaml_ng::from_str(&text)
            .map_err(|e| config_err(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut c.msp_dir);
        abs(&mut c.tls_cert);
        abs(&mut c.tls_key);
        abs(&mut c.data_dir);
        c.channels
            .iter_mut()
            .for_each(|ch| abs(&mut ch.genesis_block));
        c.chaincodes
            .iter_mut()
            .for_each(|cc| abs(&mut cc.executable));
        if let Some(l) = c.sandbox.launcher.as_mut() {
            abs(l);
        }
        c.validate()?;
        Ok(c)
    }

    /// The endpoint other nodes use to reach this peer.
    pub fn external(&self) -> &str {
        self.external_endpoint.as_deref().unwrap_or(&self.listen)
    }

    /// Checks values that need no other file: names, policies, limits.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.channels.is_empty() {
            return Err(config_err("no channels: list at least one genesis_block"));
        }
        if self.gateway.concurrency_limit == 0 {
            return Err(config_err("gateway.concurrency_limit must be > 0"));
        }
        if self.limits.endorser_concurrency == 0 || self.limits.deliver_concurrency == 0 {
            return Err(config_err(
                "limits.endorser_concurrency and limits.deliver_concurrency must be > 0",
            ));
        }
        if self.deliver_client.block_censorship_timeout_ms == 0 {
            return Err(config_err(
                "deliver_client.block_censorship_timeout_ms must be > 0",
            ));
        }
        if self.sandbox.execution_timeout_ms == 0 {
            return Err(config_err("sandbox.execution_timeout_ms must be > 0"));
        }
        if self.sandbox.allow_without_landlock.is_some() {
            return Err(config_err(
                "sandbox.allow_without_landlock was replaced by sandbox.min_landlock: full | \
                 partial | none (the old `true` allowed both partial and no Landlock; choose one)",
            ));
        }
        if self.sandbox.max_tasks == 0 {
            return Err(config_err("sandbox.max_tasks must be > 0"));
        }
        if let Some(range) = self.sandbox.uid_range() {
            range
                .validate()
                .and_then(|()| range.check_unused(std::path::Path::new("/etc")))
                .map_err(|e| config_err(format!("sandbox.uid_range: {e}")))?;
            let shared = [self.sandbox.uid, self.sandbox.gid];
            if let Some(id) = shared.into_iter().find(|id| range.contains(*id)) {
                return Err(config_err(format!(
                    "sandbox.uid_range holds id {id}, the shared sandbox.uid/gid"
                )));
            }
        }
        if self.sandbox.uid == 0 || self.sandbox.gid == 0 {
            return Err(config_err(
                "sandbox.uid and sandbox.gid must not be 0: chaincode never runs as root",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for cc in &self.chaincodes {
            if !seen.insert(cc.name.as_str()) {
                return Err(config_err(format!("chaincode {} is listed twice", cc.name)));
            }
            cc.definition()?;
        }
        Ok(())
    }
}

impl ChaincodeSection {
    /// The chaincode definition this section describes.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid version, a policy that does not parse or a duplicate
    /// collection.
    pub fn definition(&self) -> Result<ChaincodeDefinition> {
        Definition {
            name: self.name.clone(),
            version: self.version.clone(),
            sequence: 1,
            endorsement_policy: self.endorsement_policy.clone(),
            collections: self.collections.clone(),
        }
        .to_chaincode_definition()
        .map_err(|e| config_err(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MINIMAL: &str = "name: peer0\nmsp_id: Org1MSP\nmsp_dir: msp\ntls_cert: tls/server.crt\ntls_key: tls/server.key\ndata_dir: data\nchannels:\n  - genesis_block: ../genesis.block\n";

    fn load(text: &str) -> Result<PeerConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peer.yaml");
        std::fs::write(&path, text).unwrap();
        PeerConfig::load(&path)
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = load(MINIMAL).unwrap();
        assert!(c.msp_dir.is_absolute() && c.msp_dir.ends_with("msp"));
        assert!(c.channels[0].genesis_block.ends_with("../genesis.block"));
        assert_eq!(c.listen, "0.0.0.0:7051");
        assert_eq!(c.external(), "0.0.0.0:7051");
        assert_eq!(c.gateway, GatewaySection::default());
        assert_eq!(c.sandbox.execution_timeout_ms, 30_000);
        assert_eq!((c.sandbox.uid, c.sandbox.gid), (65534, 65534));
        assert_eq!(c.sandbox.min_landlock, LandlockLevel::Full);
        assert_eq!(c.sandbox.max_tasks, 2048);
        assert_eq!(c.deliver_client.block_censorship_timeout_ms, 5_000);
    }

    #[test]
    fn chaincode_definitions_parse() {
        let text = format!(
            "{MINIMAL}chaincodes:\n  - name: ehr\n    executable: /bin/ehr\n    endorsement_policy: \"AND('Org1MSP.peer','Org2MSP.peer')\"\n    collections:\n      - name: c1\n        member_orgs: \"OR('Org1MSP.member')\"\n        endorsement_policy: \"OR('Org1MSP.peer')\"\n"
        );
        let c = load(&text).unwrap();
        let def = c.chaincodes[0].definition().unwrap();
        assert_eq!(
            def.endorsement_policy.to_string(),
            "AND('Org1MSP.peer', 'Org2MSP.peer')"
        );
        let (org1, org2): (MspId, MspId) = ("Org1MSP".parse().unwrap(), "Org2MSP".parse().unwrap());
        assert!(def.collections["c1"].is_member(&org1));
        assert!(!def.collections["c1"].is_member(&org2));
    }

    #[test]
    fn an_msp_id_outside_the_rule_is_refused_when_the_file_is_read_naming_it() {
        for bad in ["\"\"", "\"Org 1\"", "\"..\"", "\"Org1/../MSP\""] {
            let e =
                load(&MINIMAL.replace("msp_id: Org1MSP", &format!("msp_id: {bad}"))).unwrap_err();
            assert!(e.to_string().contains("MSP ID"), "{bad}: {e}");
        }
        assert_eq!(load(MINIMAL).unwrap().msp_id, "Org1MSP");
    }

    #[test]
    fn a_chaincode_name_outside_the_rule_is_refused_when_the_file_is_read() {
        for bad in ["\"\"", "\"e h r\"", "_lifecycle", "\"ehr:1.0\"", "-ehr"] {
            let e = load(&format!(
                "{MINIMAL}chaincodes:\n  - name: {bad}\n    executable: /bin/ehr\n"
            ))
            .unwrap_err();
            assert!(e.to_string().contains("chaincode name"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let e = load(&format!(
            "{MINIMAL}chaincodes:\n  - name: ehr\n    executable: /bin/ehr\n    endorsement_policy: \"AND(\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("endorsement_policy"), "{e}");
        let e = load(&MINIMAL.replace(
            "channels:\n  - genesis_block: ../genesis.block\n",
            "channels: []\n",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("no channels"), "{e}");
        let e = load(&format!("{MINIMAL}sandbox: {{ uid: 0 }}\n")).unwrap_err();
        assert!(e.to_string().contains("sandbox.uid"), "{e}");
        let c = load(&format!("{MINIMAL}sandbox: {{ min_landlock: partial }}\n")).unwrap();
        assert_eq!(c.sandbox.min_landlock, LandlockLevel::Partial);
        let e = load(&format!("{MINIMAL}sandbox: {{ min_landlock: some }}\n")).unwrap_err();
        assert!(e.to_string().contains("min_landlock"), "{e}");
        let e = load(&format!(
            "{MINIMAL}sandbox: {{ allow_without_landlock: true }}\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("sandbox.min_landlock"), "{e}");
        let c = load(&format!(
            "{MINIMAL}sandbox: {{ uid_range: [1900000000, 50] }}\n"
        ))
        .unwrap();
        assert_eq!(
            c.sandbox.uid_range().unwrap().user(1).unwrap().uid,
            1_900_000_001
        );
        // A range holding nobody (65534), or the shared sandbox.uid, is refused: the peer
        // kills every process of the range at start.
        for range in ["[65000, 1000]", "[4000, 10]"] {
            let e = load(&format!(
                "{MINIMAL}sandbox: {{ uid: 4005, gid: 4005, uid_range: {range} }}\n"
            ))
            .unwrap_err();
            assert!(e.to_string().contains("sandbox.uid_range"), "{e}");
        }
        let e = load(&format!("{MINIMAL}sandbox: {{ uid_range: [0, 50] }}\n")).unwrap_err();
        assert!(e.to_string().contains("sandbox.uid_range"), "{e}");
        let e = load(&format!("{MINIMAL}colour: blue\n")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
