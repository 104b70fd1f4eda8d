//! The network configuration file (`network/configs/dev.yaml`, `multi-host.yaml`): which
//! organizations, orderers, peers, channel and chaincodes make up a network. `network up`
//! generates everything else from it. Schema: docs/network.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use medledger_msp::policy::{Policy, SignaturePolicy};
use medledger_proto::types::{ChaincodeName, MspId};
use serde::{Deserialize, Serialize};

/// A whole network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Channel id (Fabric rules: lowercase letters, digits, `.` and `-`, starting with a letter).
    pub channel: String,
    /// Block cutting.
    #[serde(default)]
    pub batch: BatchSpec,
    /// The ordering organization and its BFT orderers.
    pub orderer_org: OrdererOrgSpec,
    /// Application organizations.
    pub organizations: Vec<OrgSpec>,
    /// Chaincodes installed on every peer and defined on the channel.
    #[serde(default)]
    pub chaincodes: Vec<ChaincodeSpec>,
}

/// Block cutting (Fabric's `BatchSize` and `BatchTimeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSpec {
    /// Most transactions per block.
    pub max_message_count: u32,
    /// Longest wait before cutting a block, ms.
    pub batch_timeout_ms: u64,
    /// Largest transaction, bytes.
    pub absolute_max_bytes: u32,
    /// Preferred block size, bytes.
    pub preferred_max_bytes: u32,
}

impl Default for BatchSpec {
    fn default() -> Self {
        let d = medledger_channel::config::BatchConfig::default();
        BatchSpec {
            max_message_count: d.max_message_count,
            batch_timeout_ms: d.batch_timeout_ms,
            absolute_max_bytes: d.absolute_max_bytes,
            preferred_max_bytes: d.preferred_max_bytes,
        }
    }
}

/// The orderer organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdererOrgSpec {
    /// Short name (directories, CA name).
    pub name: String,
    /// MSP id (checked when the file is read: [`MspId`]'s rule).
    pub msp_id: MspId,
    /// DNS domain of its CA.
    pub domain: String,
    /// Its orderers (consenter ids 1..=n in this order). BFT: n = 3f + 1 tolerates f faults.
    pub orderers: Vec<NodeSpec>,
}

/// An application organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSpec {
    /// Short name (directories, identity names such as `org1-doctor`).
    pub name: String,
    /// MSP id (checked when the file is read: [`MspId`]'s rule).
    pub msp_id: MspId,
    /// DNS domain of its CA.
    pub domain: String,
    /// What it is (hospital, lab, insurer, ...), for people.
    #[serde(default)]
    pub description: String,
    /// Its peers.
    pub peers: Vec<NodeSpec>,
    /// Its FHIR R4 API server (`medledger fhir serve`, ADR 0039), on the host of its first
    /// peer, whose gateway it uses; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir: Option<FhirSpec>,
}

/// An organization's FHIR server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirSpec {
    /// HTTPS port of `https://HOST:PORT/fhir` (HOST: the organization's first peer's host).
    pub port: u16,
    /// Port reserved for the server's operations endpoint (`/healthz`, `/metrics`): checked
    /// for clashes, not yet served (`ehr_fhir::config::FhirConfig` has no such listener;
    /// `network status` reads the health from `GET /fhir/metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations_port: Option<u16>,
    /// Address to bind (default the host; `0.0.0.0` on a multi-host machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_host: Option<String>,
}

impl OrgSpec {
    /// The FHIR server as a node: named `fhir`, on the first peer's host, `port` its HTTPS
    /// port, `operations_port` its reserved operations port (else the HTTPS port).
    pub fn fhir_node(&self) -> Option<NodeSpec> {
        let fhir = self.fhir.as_ref()?;
        let host = self.peers.first()?.host.clone();
        Some(NodeSpec {
            name: "fhir".into(),
            host,
            port: fhir.port,
            operations_port: fhir.operations_port.unwrap_or(fhir.port),
            listen_host: fhir.listen_host.clone(),
        })
    }
}

/// An orderer or a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Node name, unique in its organization (`orderer1`, `peer0`).
    pub name: String,
    /// Host other nodes and clients reach it at (also its TLS certificate's name).
    pub host: String,
    /// gRPC port.
    pub port: u16,
    /// Operations (HTTP `/healthz`, `/metrics`) port.
    pub operations_port: u16,
    /// Address to bind (default `host`; `0.0.0.0` on a multi-host machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_host: Option<String>,
}

impl NodeSpec {
    /// `host:port`.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The address to bind for `port`.
    pub fn bind(&self, port: u16) -> String {
        format!(
            "{}:{port}",
            self.listen_host.as_deref().unwrap_or(&self.host)
        )
    }
}

/// A chaincode and its definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaincodeSpec {
    /// Name (Fabric's chaincode name rule), checked when the file is read.
    pub name: ChaincodeName,
    /// Version label.
    #[serde(default = "default_version")]
    pub version: String,
    /// Executable; default `<name>-chaincode` next to the `medledger` executable. Relative
    /// paths are relative to the configuration file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<PathBuf>,
    /// Endorsement policy (default `MAJORITY Endorsement`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement_policy: Option<String>,
    /// `true`: one private collection per organization, `<MSPID>PHI`, whose only member
    /// (and endorser) is that organization — where the EHR chaincode keeps a custodian's PHI.
    #[serde(default)]
    pub private_collection_per_org: bool,
    /// Functions the gateways only evaluate, never submit: their responses must not enter a
    /// block (for the EHR chaincode: `ReadRecord` and `ReadRecords`, which return PHI, and `LocateRecords`, which names clear ids; ADR 0023).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluate_only: Vec<String>,
}

fn default_version() -> String {
    "1.0".to_owned()
}

impl NetworkSpec {
    /// Reads and validates a network configuration file.
    ///
    /// # Errors
    /// Unreadable file, YAML errors, or what [`NetworkSpec::validate`] finds.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut spec: NetworkSpec = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not a valid network configuration", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for cc in &mut spec.chaincodes {
            if let Some(p) = cc.executable.as_mut()
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        }
        spec.validate()
            .with_context(|| format!("{} is not a valid network configuration", path.display()))?;
        Ok(spec)
    }

    /// Every node: (organization MSP id, node).
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &NodeSpec)> {
        let orderers = self
            .orderer_org
            .orderers
            .iter()
            .map(|n| (self.orderer_org.msp_id.as_str(), n));
        let peers = self
            .organizations
            .iter()
            .flat_map(|o| o.peers.iter().map(move |p| (o.msp_id.as_str(), p)));
        orderers.chain(peers)
    }

    /// Checks names, port clashes, the BFT size and that policies name known organizations.
    ///
    /// # Errors
    /// The first problem found, in words.
    pub fn validate(&self) -> Result<()> {
        medledger_proto::ChannelId::new(self.channel.clone())
            .map_err(|e| anyhow::anyhow!("channel {:?}: {e}", self.channel))?;
        let n = self.orderer_org.orderers.len();
        if n < 4 {
            bail!(
                "{n} orderer(s): BFT ordering needs n = 3f + 1 with f >= 1, so at least 4 orderers"
            );
        }
        if !(n - 1).is_multiple_of(3) {
            bail!(
                "{n} orderers: BFT tolerates f = {} faults with {} orderers; use n = 3f + 1 (4, 7, 10, ...)",
                (n - 1) / 3,
                3 * ((n - 1) / 3) + 1
            );
        }
        if self.organizations.is_empty() {
            bail!("no organizations");
        }
        if self.batch.max_message_count == 0 || self.batch.batch_timeout_ms == 0 {
            bail!("batch.max_message_count and batch.batch_timeout_ms must be > 0");
        }
        let mut msp_ids = BTreeSet::new();
        let mut names = BTreeSet::new();
        for (name, msp) in std::iter::once((&self.orderer_org.name, &self.orderer_org.msp_id))
            .chain(self.organizations.iter().map(|o| (&o.name, &o.msp_id)))
        {
            if !msp_ids.insert(msp.as_str()) {
                bail!("MSP id {msp} is used twice");
            }
            if !names.insert(name.as_str()) {
                bail!("organization name {name} is used twice");
            }
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                bail!("organization name {name:?}: use letters, digits and '-'");
            }
        }
        for org in &self.organizations {
            if org.peers.is_empty() {
                bail!("organization {} has no peers", org.name);
            }
        }
        let mut ports: BTreeMap<(String, u16), String> = BTreeMap::new();
        let fhir: Vec<(&str, NodeSpec)> = self
            .organizations
            .iter()
            .filter_map(|o| Some((o.msp_id.as_str(), o.fhir_node()?)))
            .collect();
        for (msp, node) in self.nodes().chain(fhir.iter().map(|(m, n)| (*m, n))) {
            let mut node_ports = vec![node.port];
            if node.operations_port != node.port {
                node_ports.push(node.operations_port);
            }
            for port in node_ports {
                let key = (node.host.clone(), port);
                let who = format!("{msp}/{}", node.name);
                if port == 0 {
                    bail!("{who}: port 0 is not allowed (ports go into the genesis block)");
                }
                if let Some(other) = ports.insert(key, who.clone()) {
                    bail!(
                        "port clash: {}:{port} is used by {other} and {who}",
                        node.host
                    );
                }
            }
        }
        let known: BTreeSet<&str> = self
            .organizations
            .iter()
            .map(|o| o.msp_id.as_str())
            .collect();
        let mut cc_names = BTreeSet::new();
        for cc in &self.chaincodes {
            if !cc_names.insert(cc.name.as_str()) {
                bail!("chaincode {} is listed twice", cc.name);
            }
            if let Some(p) = &cc.endorsement_policy {
                let policy: Policy = p.parse().map_err(|e| {
                    anyhow::anyhow!("chaincode {} endorsement_policy: {e}", cc.name)
                })?;
                if let Some(sig) = policy.as_signature() {
                    unknown_orgs(sig, &known)
                        .with_context(|| format!("chaincode {} endorsement_policy", cc.name))?;
                }
            }
        }
        Ok(())
    }
}

fn unknown_orgs(policy: &SignaturePolicy, known: &BTreeSet<&str>) -> Result<()> {
    for msp in policy.msp_ids() {
        if !known.contains(msp) {
            bail!("unknown organization {msp} (organizations: {known:?})");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dev() -> NetworkSpec {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/dev.yaml");
        NetworkSpec::load(&path).unwrap()
    }

    #[test]
    fn shipped_configs_are_valid() {
        let spec = dev();
        assert_eq!(spec.orderer_org.orderers.len(), 4);
        assert_eq!(spec.organizations.len(), 2);
        let ports: Vec<_> = spec
            .organizations
            .iter()
            .map(|o| o.fhir.as_ref().map(|f| f.port))
            .collect();
        assert_eq!(ports, [Some(7443), Some(8443)]);
        let multi = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/multi-host.yaml");
        NetworkSpec::load(&multi).unwrap();
    }

    #[test]
    fn mistakes_are_named() {
        let mut s = dev();
        s.chaincodes[0].endorsement_policy = Some("AND('Org1MSP.peer','Org9MSP.peer')".into());
        let e = format!("{:#}", s.validate().unwrap_err());
        assert!(e.contains("unknown organization Org9MSP"), "{e}");

        let mut s = dev();
        s.organizations[1].peers[0].port = s.organizations[0].peers[0].port;
        let e = format!("{:#}", s.validate().unwrap_err());
        assert!(e.contains("port clash"), "{e}");

        let mut s = dev();
        let taken = s.organizations[0].peers[0].operations_port;
        s.organizations[0].fhir.as_mut().unwrap().port = taken;
        let e = format!("{:#}", s.validate().unwrap_err());
        assert!(
            e.contains("port clash") && e.contains("Org1MSP/fhir"),
            "{e}"
        );

        let mut s = dev();
        s.orderer_org.orderers.truncate(3);
        let e = format!("{:#}", s.validate().unwrap_err());
        assert!(e.contains("at least 4 orderers"), "{e}");

        let mut s = dev();
        let extra = s.orderer_org.orderers[0].clone();
        s.orderer_org.orderers.push(NodeSpec {
            port: 7999,
            operations_port: 7998,
            ..extra
        });
        let e = format!("{:#}", s.validate().unwrap_err());
        assert!(e.contains("3f + 1"), "{e}");

        let mut s = dev();
        s.organizations[1].msp_id = "Org1MSP".parse().unwrap();
        assert!(format!("{:#}", s.validate().unwrap_err()).contains("used twice"));
    }
}
