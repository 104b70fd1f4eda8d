//! The orderer's configuration file (`orderer.yaml`), read by `medledger orderer start`.
//!
//! ```yaml
//! consenter_id: 1                      # this orderer's id in the channel's consenter set
//! genesis_block: genesis.block         # the channel's config block 0 (serialized common.Block)
//! data_dir: data                       # block store (blocks/) and write-ahead log (wal/)
//! msp_dir: msp                         # Fabric MSP folder with the consenter's signing identity
//! msp_id: OrdererMSP
//! tls_cert: tls/server.crt             # TLS certificate (server and cluster client), PEM
//! tls_key: tls/server.key              # its key, PEM
//! listen: 127.0.0.1:7050               # AtomicBroadcast + Cluster (gRPC over TLS)
//! operations_listen: 127.0.0.1:9443    # /healthz and /metrics (HTTP); omit to disable
//! consensus:                           # optional; defaults shown
//!   propose_timeout_ms: 3000
//!   prevote_timeout_ms: 1000
//!   precommit_timeout_ms: 1000
//!   timeout_delta_ms: 500
//!   rebroadcast_ms: 5000
//!   max_pending_bytes: 268435456       # pending pool budget, bytes (256 MiB; envelopes and kept identities)
//!   max_pending_bytes_per_submitter: 0 # one creator's share, bytes (0: a quarter of the pool)
//!   max_pending_bytes_per_org: 0       # one organization's (MSP's) share, bytes (0: half the pool)
//!   max_pending_envelopes: 100000      # pending pool budget, envelopes
//!   cluster_queue_bytes: 67108864      # messages queued for one other orderer, bytes (64 MiB)
//!   verify_workers: 0                  # envelope signature checks at once (0: CPUs - 1)
//! ```
//!
//! Relative paths are relative to the configuration file's directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::consensus::TimeoutConfig;
use crate::{Error, Result};

/// Consensus timing, milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    /// Wait for a proposal, ms (default 3000). Must exceed the channel's batch timeout.
    pub propose_timeout_ms: u64,
    /// Wait after 2f+1 prevotes for anything, ms (default 1000).
    pub prevote_timeout_ms: u64,
    /// Wait after 2f+1 precommits for anything, ms (default 1000).
    pub precommit_timeout_ms: u64,
    /// Added to each wait per round, ms (default 500).
    pub timeout_delta_ms: u64,
    /// Re-send own votes after this long without progress, ms (default 5000).
    pub rebroadcast_ms: u64,
    /// Bytes of admitted envelopes, and of the identities their admissions keep (each
    /// counted once: `batch::Pool::held_bytes`), the pending pool may hold (default 256 MiB);
    /// Broadcast answers `SERVICE_UNAVAILABLE` beyond.
    pub max_pending_bytes: u64,
    /// Bytes of the pending pool one submitter (creator identity) may hold; 0 (the default)
    /// means a quarter of `max_pending_bytes`.
    pub max_pending_bytes_per_submitter: u64,
    /// Bytes of the pending pool the creators of one organization (MSP) may hold together; 0
    /// (the default) means half of `max_pending_bytes`. One organization flooding with many
    /// identities then leaves the other half to the others. In a channel of one application
    /// organization, set it to `max_pending_bytes` to use the whole pool.
    pub max_pending_bytes_per_org: u64,
    /// Envelopes the pending pool may hold (default 100,000).
    pub max_pending_envelopes: u64,
    /// Bytes of messages queued for one other orderer (default 64 MiB); beyond, messages to
    /// it are dropped (consensus re-sends, sync fills gaps). One message is always let
    /// through to an empty queue, however large.
    pub cluster_queue_bytes: u64,
    /// Envelope admission checks (signatures) of Broadcast run at once, off the consensus
    /// thread; 0 (the default) means the number of CPUs less one (at least one). Envelopes
    /// other orderers forward are checked by half as many more.
    pub verify_workers: usize,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        let t = TimeoutConfig::default();
        ConsensusSection {
            propose_timeout_ms: t.propose.as_millis() as u64,
            prevote_timeout_ms: t.prevote.as_millis() as u64,
            precommit_timeout_ms: t.precommit.as_millis() as u64,
            timeout_delta_ms: t.delta.as_millis() as u64,
            rebroadcast_ms: t.rebroadcast.as_millis() as u64,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            max_pending_bytes_per_submitter: 0,
            max_pending_bytes_per_org: 0,
            max_pending_envelopes: 100_000,
            cluster_queue_bytes: DEFAULT_CLUSTER_QUEUE_BYTES,
            verify_workers: 0,
        }
    }
}

/// Default `max_pending_bytes`: 256 MiB.
pub const DEFAULT_MAX_PENDING_BYTES: u64 = 256 * 1024 * 1024;
/// Default `cluster_queue_bytes`: 64 MiB.
pub const DEFAULT_CLUSTER_QUEUE_BYTES: u64 = 64 * 1024 * 1024;

impl ConsensusSection {
    /// As engine timeouts.
    pub fn timeouts(&self) -> TimeoutConfig {
        TimeoutConfig {
            propose: Duration::from_millis(self.propose_timeout_ms),
            prevote: Duration::from_millis(self.prevote_timeout_ms),
            precommit: Duration::from_millis(self.precommit_timeout_ms),
            delta: Duration::from_millis(self.timeout_delta_ms),
            rebroadcast: Duration::from_millis(self.rebroadcast_ms),
            max: TimeoutConfig::default().max,
        }
    }
}

/// `orderer.yaml`. See the module docs for the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdererConfig {
    /// Consenter id in the channel configuration.
    pub consenter_id: u32,
    /// The channel's genesis (config) block file.
    pub genesis_block: PathBuf,
    /// Directory for the block store and the WAL.
    pub data_dir: PathBuf,
    /// MSP folder of the consenter's signing identity.
    pub msp_dir: PathBuf,
    /// MSP id of that identity.
    pub msp_id: String,
    /// TLS certificate, PEM: served to clients and presented to other orderers.
    pub tls_cert: PathBuf,
    /// TLS private key, PEM.
    pub tls_key: PathBuf,
    /// gRPC listen address (AtomicBroadcast and Cluster), default `0.0.0.0:7050`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Operations HTTP listen address (`/healthz`, `/metrics`); none to disable.
    #[serde(default)]
    pub operations_listen: Option<String>,
    /// Consensus timing.
    #[serde(default)]
    pub consensus: ConsensusSection,
    /// Diagnostics: append every vote received from another orderer to this file, one line
    /// each (`voter height round type value-hex signature-hex`), to audit for equivocation.
    /// Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote_audit_file: Option<PathBuf>,
}

fn default_listen() -> String {
    "0.0.0.0:7050".to_owned()
}

impl OrdererConfig {
    /// Reads and validates a configuration file; relative paths are resolved against its
    /// directory.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Config`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let mut c: OrdererConfig = serde_yaml_ng::from_str(&text).map_err(|e| Error::Config {
            reason: format!("{}: {e}", path.display()),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut c.genesis_block,
            &mut c.data_dir,
            &mut c.msp_dir,
            &mut c.tls_cert,
            &mut c.tls_key,
        ]
        .into_iter()
        .chain(c.vote_audit_file.as_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks values that do not need the channel configuration.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: &str| {
            Err(Error::Config {
                reason: reason.to_owned(),
            })
        };
        if self.consenter_id == 0 {
            return bad("consenter_id must be > 0");
        }
        if self.msp_id.is_empty() {
            return bad("msp_id is empty");
        }
        let c = &self.consensus;
        if c.propose_timeout_ms == 0 || c.prevote_timeout_ms == 0 || c.precommit_timeout_ms == 0 {
            return bad("consensus timeouts must be > 0");
        }
        if c.rebroadcast_ms < c.propose_timeout_ms {
            return bad("consensus.rebroadcast_ms must be at least propose_timeout_ms");
        }
        Ok(())
    }

    /// Checks the channel's batch timeout against the propose timeout (the proposer waits up
    /// to the batch timeout before proposing, so followers must wait longer).
    ///
    /// # Errors
    /// [`Error::Config`].
    pub fn check_against(&self, batch_timeout_ms: u64) -> Result<()> {
        if batch_timeout_ms.saturating_mul(2) > self.consensus.propose_timeout_ms {
            return Err(Error::Config {
                reason: format!(
                    "consensus.propose_timeout_ms ({}) must be at least twice the channel batch timeout ({batch_timeout_ms} ms)",
                    self.consensus.propose_timeout_ms
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orderer.yaml");
        std::fs::write(
            &path,
            "consenter_id: 2\ngenesis_block: genesis.block\ndata_dir: data\nmsp_dir: msp\nmsp_id: OrdererMSP\ntls_cert: tls/server.crt\ntls_key: tls/server.key\n",
        )
        .unwrap();
        let c = OrdererConfig::load(&path).unwrap();
        assert_eq!(c.listen, "0.0.0.0:7050");
        assert_eq!(c.operations_listen, None);
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(
            c.consensus,
            ConsensusSection {
                propose_timeout_ms: 3000,
                prevote_timeout_ms: 1000,
                precommit_timeout_ms: 1000,
                timeout_delta_ms: 500,
                rebroadcast_ms: 5000,
                max_pending_bytes: 256 * 1024 * 1024,
                max_pending_bytes_per_submitter: 0,
                max_pending_bytes_per_org: 0,
                max_pending_envelopes: 100_000,
                cluster_queue_bytes: 64 * 1024 * 1024,
                verify_workers: 0,
            }
        );
        assert!(c.check_against(250).is_ok());
        assert!(c.check_against(2000).is_err());
        std::fs::write(&path, "consenter_id: 0\n").unwrap();
        assert!(OrdererConfig::load(&path).is_err());
        std::fs::write(&path, "consenter_id: 1\nunknown_field: 1\n").unwrap();
        assert!(OrdererConfig::load(&path).is_err());
    }
}
