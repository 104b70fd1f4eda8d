//! `medledger network ...`: a whole network from one configuration file — generate its
//! material ([`generate`]), run its nodes as background processes ([`process`]), define its
//! chaincodes on the channel ([`lifecycle`]), stop them, report their status. The schema of the configuration is [`spec::NetworkSpec`]
//! (docs/network.md). [`orderers`]: a development cluster of orderers alone (`medledger orderer
//! devnet`, the ordering benchmark, the orderer's tests).

pub mod client;
pub mod generate;
pub mod https;
pub mod lifecycle;
pub mod orderers;
pub mod org;
pub mod process;
pub mod spec;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use generate::{GeneratedNode, NodeKind};
use spec::NetworkSpec;

/// The default network configuration (`network/configs/dev.yaml`), built in.
pub const DEV_YAML: &str = include_str!("../../configs/dev.yaml");

/// Demo patients enrolled by `up`: the first this many Patient ids of the sample data.
pub const DEMO_PATIENTS: usize = 3;

/// The network directory: `--dir`, else `$MEDLEDGER_HOME`, else `./medledger-net`.
///
/// Made absolute: node processes are recognised by the configuration path on their command
/// line, which must not depend on the working directory of the command that asks.
pub fn default_dir(dir: Option<PathBuf>) -> PathBuf {
    let dir = dir
        .or_else(|| std::env::var_os("MEDLEDGER_HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("medledger-net"));
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The spec of the network in `dir`, if one was generated there.
///
/// # Errors
/// A `network.yaml` that does not load.
pub fn existing(dir: &Path) -> Result<Option<NetworkSpec>> {
    let path = dir.join("network.yaml");
    if path.exists() {
        NetworkSpec::load(&path).map(Some)
    } else {
        Ok(None)
    }
}

/// The nodes of the network in `dir`.
///
/// # Errors
/// No network there.
pub fn nodes_of(dir: &Path) -> Result<(NetworkSpec, Vec<GeneratedNode>)> {
    let spec = existing(dir)?.with_context(|| {
        format!(
            "no network in {} (run `medledger network up`)",
            dir.display()
        )
    })?;
    let nodes = generate::nodes(dir, &spec);
    Ok((spec, nodes))
}

/// Waits (up to 10 s) until every peer of the network in `dir` has committed as many blocks
/// as the furthest one (`ledger_blockchain_height` from their operations endpoints): a
/// transaction one organization's gateway confirmed is then visible to reads and
/// endorsements at every peer.
///
/// # Errors
/// The network's nodes cannot be read, or the peers do not converge in time.
pub async fn settle(dir: &Path) -> Result<()> {
    let (spec, nodes) = nodes_of(dir)?;
    let peers: Vec<_> = nodes.iter().filter(|n| n.kind == NodeKind::Peer).collect();
    for _ in 0..200 {
        let heights: Vec<u64> = peers
            .iter()
            .map(|n| process::height(n, &spec.channel).unwrap_or(0))
            .collect();
        let top = heights.iter().copied().max().unwrap_or(0);
        if heights.iter().all(|h| *h == top) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the peers did not reach the same height within 10 s")
}

/// Patient ids (Patient.id) of the first `n` FHIR bundles under `bundles`, in file-name order.
pub fn sample_patients(bundles: &Path, n: usize) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(bundles)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|f| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(f).ok()?).ok()?;
            v["entry"].as_array()?.iter().find_map(|e| {
                let r = &e["resource"];
                (r["resourceType"] == "Patient").then(|| r["id"].as_str().map(str::to_owned))?
            })
        })
        .take(n)
        .collect()
}

/// Where the sample bundles are: `$MEDLEDGER_EHR_BUNDLES`, else `shared/data/ehr/bundles` in
/// the working directory or one of its parents.
pub fn find_sample_bundles() -> Option<PathBuf> {
    ehr_client::bundle::find_sample_bundles(&std::env::current_dir().ok()?)
}

/// What `up` did.
#[derive(Debug, Clone)]
pub struct UpReport {
    /// The network's spec.
    pub spec: NetworkSpec,
    /// Its nodes.
    pub nodes: Vec<GeneratedNode>,
    /// Whether the material was generated now (else an existing network was restarted).
    pub generated: bool,
    /// Nodes started now (the others were running already).
    pub started: Vec<String>,
}

/// `network up`: generates the network in `dir` from `config` (or the built-in dev network)
/// unless it exists, then (unless `generate_only`) starts every orderer and peer that is not
/// running with `exe` and waits until all are healthy. The FHIR servers are started later by
/// [`start_fhir_servers`], once the chaincodes are defined.
///
/// # Errors
/// A bad configuration, a `dir` holding a different network, a node that fails to start.
pub fn up(
    dir: &Path,
    config: Option<&Path>,
    exe: &Path,
    timeout: Duration,
    generate_only: bool,
    mut progress: impl FnMut(&str),
) -> Result<UpReport> {
    let wanted = match config {
        Some(p) => Some(NetworkSpec::load(p)?),
        None => None,
    };
    let (spec, generated) = match existing(dir)? {
        Some(spec) => {
            if wanted.as_ref().is_some_and(|w| w != &spec) {
                bail!(
                    "{} holds a network generated from another configuration; stop and delete it with `medledger network down --purge --dir {}` first",
                    dir.display(),
                    dir.display()
                );
            }
            progress(&format!("restarting the network in {}", dir.display()));
            (spec, false)
        }
        None => {
            let spec = match wanted {
                Some(s) => s,
                None => {
                    let s: NetworkSpec = serde_yaml_ng::from_str(DEV_YAML)?;
                    s.validate()?;
                    s
                }
            };
            let patients = find_sample_bundles()
                .map(|b| sample_patients(&b, DEMO_PATIENTS))
                .unwrap_or_default();
            progress(&format!(
                "generating CAs, identities, genesis block and node configurations in {}",
                dir.display()
            ));
            generate::generate(dir, &spec, &patients)?;
            (spec, true)
        }
    };
    let nodes = generate::nodes(dir, &spec);
    if generate_only {
        return Ok(UpReport {
            spec,
            nodes,
            generated,
            started: Vec::new(),
        });
    }
    let ledger_nodes: Vec<GeneratedNode> = nodes
        .iter()
        .filter(|n| n.kind != NodeKind::Fhir)
        .cloned()
        .collect();
    let started = start_nodes(dir, &spec, exe, &ledger_nodes, timeout, &mut progress)?;
    Ok(UpReport {
        spec,
        nodes,
        generated,
        started,
    })
}

/// Starts the FHIR servers of the network in `dir` that are not running (`medledger fhir
/// serve`) and waits until each answers `GET /fhir/metadata`: what `network up` does once
/// the chaincodes are defined and the EHR governance seeded. Returns the servers started now.
///
/// # Errors
/// No network in `dir`, a port held by another process, a server that exits or is not
/// healthy within `timeout`.
pub fn start_fhir_servers(
    dir: &Path,
    exe: &Path,
    timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<Vec<String>> {
    let (spec, nodes) = nodes_of(dir)?;
    let fhir: Vec<GeneratedNode> = nodes
        .into_iter()
        .filter(|n| n.kind == NodeKind::Fhir)
        .collect();
    start_nodes(dir, &spec, exe, &fhir, timeout, &mut progress)
}

/// The addresses each node of `spec` binds (by node name), to refuse early when another
/// process holds one.
fn binds(spec: &NetworkSpec) -> std::collections::HashMap<String, Vec<String>> {
    let orderers = spec
        .orderer_org
        .orderers
        .iter()
        .map(|n| (generate::node_dir_name(None, n), n.clone()));
    let peers = spec.organizations.iter().flat_map(|o| {
        o.peers
            .iter()
            .map(move |n| (generate::node_dir_name(Some(o), n), n.clone()))
    });
    let fhir = spec
        .organizations
        .iter()
        .filter_map(|o| Some((generate::fhir_dir_name(o), o.fhir_node()?)));
    orderers
        .chain(peers)
        .chain(fhir)
        .map(|(name, n)| {
            let mut addrs = vec![n.bind(n.port)];
            if n.operations_port != n.port {
                addrs.push(n.bind(n.operations_port));
            }
            (name, addrs)
        })
        .collect()
}

/// Starts each of `nodes` that is not running and waits until all are healthy; returns the
/// names of those started.
fn start_nodes(
    dir: &Path,
    spec: &NetworkSpec,
    exe: &Path,
    nodes: &[GeneratedNode],
    timeout: Duration,
    progress: &mut impl FnMut(&str),
) -> Result<Vec<String>> {
    let binds = binds(spec);
    let mut started = Vec::new();
    let mut children = std::collections::HashMap::new();
    for node in nodes {
        if process::running_pid(dir, node).is_some() {
            progress(&format!("{} is already running", node.name));
            continue;
        }
        for addr in binds.get(&node.name).into_iter().flatten() {
            if std::net::TcpListener::bind(addr.as_str()).is_err() {
                bail!(
                    "{}: {addr} is already in use by another process (another network? see `medledger network status --dir DIR`)",
                    node.name
                );
            }
        }
        let child = process::spawn(dir, exe, node)?;
        progress(&format!("started {} (pid {})", node.name, child.id()));
        started.push(node.name.clone());
        children.insert(node.name.clone(), child);
    }
    process::wait_healthy(dir, nodes, &mut children, timeout, progress)?;
    Ok(started)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn network_dir_is_absolute() {
        let d = default_dir(Some(PathBuf::from("some-net")));
        assert!(d.is_absolute() && d.ends_with("some-net"));
    }

    #[test]
    fn sample_patients_come_from_the_bundles() {
        let bundles =
            ehr_client::bundle::find_sample_bundles(Path::new(env!("CARGO_MANIFEST_DIR")))
                .expect("sample bundles: set MEDLEDGER_EHR_BUNDLES");
        let ids = sample_patients(&bundles, 3);
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().all(|id| id.len() == 36), "{ids:?}");
    }
}
