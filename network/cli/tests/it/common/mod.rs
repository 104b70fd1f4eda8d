//! What the end-to-end tests that start a network with `medledger network up` share: the
//! network configuration on free loopback ports, a guard that stops the network, running the
//! `medledger` executable and its sibling binaries, the sample data.

#![allow(dead_code)] // each test crate uses a part

use std::path::{Path, PathBuf};
use std::process::Command;

use medledger_devnet::spec::NetworkSpec;

/// The `medledger` executable under test.
pub(crate) const MEDLEDGER: &str = env!("CARGO_BIN_EXE_medledger");

/// A binary of another workspace package (`medledger-sandbox`, `kv-chaincode`,
/// `ehr-chaincode`), found next to `medledger`: Cargo puts every binary of the workspace in the
/// same directory, where the peers also look for them. Only this package's own binary is built
/// for its tests: build the others with `cargo build --release --workspace --bins` (or run the
/// tests with `--workspace`).
pub(crate) fn sibling(name: &str) -> PathBuf {
    let path = Path::new(MEDLEDGER).with_file_name(name);
    assert!(
        path.is_file(),
        "{} not found: build it with `cargo build --release --workspace --bins`",
        path.display()
    );
    path
}

/// An example of `medledger-examples` (`examples/`), which Cargo builds into `examples/` beside
/// `medledger` when the workspace's tests are built.
pub(crate) fn example(name: &str) -> PathBuf {
    let path = Path::new(MEDLEDGER).with_file_name("examples").join(name);
    assert!(
        path.is_file(),
        "{} not found: build it with `cargo build --release -p medledger-examples --examples` \
         (or run the tests with `--workspace`)",
        path.display()
    );
    path
}

/// Stops the network in `dir` (`medledger network down`) even when the test fails.
pub(crate) struct Network {
    /// The network directory.
    pub dir: PathBuf,
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new(MEDLEDGER)
            .args(["network", "down", "--dir"])
            .arg(&self.dir)
            .output();
    }
}

/// A network configuration on loopback: channel `ehr`, 4 BFT orderers, one peer in Org1MSP and
/// one in Org2MSP, on `ports` (12: a gRPC and an operations port per node), with the
/// `chaincodes` YAML list entries (one `- { name: ... }` per line).
pub(crate) fn spec(ports: &[u16], chaincodes: &[&str]) -> String {
    let node = |name: &str, i: usize| {
        format!(
            "{{ name: {name}, host: 127.0.0.1, port: {}, operations_port: {} }}",
            ports[2 * i],
            ports[2 * i + 1]
        )
    };
    let chaincodes: String = chaincodes.iter().map(|c| format!("  - {c}\n")).collect();
    format!(
        "channel: ehr
batch: {{ max_message_count: 100, batch_timeout_ms: 100 }}
orderer_org:
  name: orderer
  msp_id: OrdererMSP
  domain: orderer.test
  orderers: [{}, {}, {}, {}]
organizations:
  - {{ name: org1, msp_id: Org1MSP, domain: org1.test, peers: [{}] }}
  - {{ name: org2, msp_id: Org2MSP, domain: org2.test, peers: [{}] }}
chaincodes:
{chaincodes}",
        node("orderer1", 0),
        node("orderer2", 1),
        node("orderer3", 2),
        node("orderer4", 3),
        node("peer0", 4),
        node("peer0", 5),
    )
}

/// Runs `medledger ARGS --dir DIR` with `envs`; its stdout; panics with both outputs on
/// failure.
pub(crate) fn medledger_with(args: &[&str], dir: &Path, envs: &[(&str, &Path)]) -> String {
    if args.first() == Some(&"network") {
        // The peers run these from next to `medledger`.
        for bin in ["medledger-sandbox", "kv-chaincode", "ehr-chaincode"] {
            sibling(bin);
        }
    }
    let mut cmd = Command::new(MEDLEDGER);
    cmd.args(args).arg("--dir").arg(dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "medledger {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs `medledger ARGS --dir DIR`; its stdout.
pub(crate) fn medledger(args: &[&str], dir: &Path) -> String {
    medledger_with(args, dir, &[])
}

/// The sample FHIR bundles: `$MEDLEDGER_EHR_BUNDLES`, else `shared/data/ehr/bundles` above the
/// crate.
pub(crate) fn sample_dir() -> PathBuf {
    ehr_client::bundle::find_sample_bundles(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("sample bundles: set MEDLEDGER_EHR_BUNDLES")
}

/// The first `n` sample bundles (by file name) copied into `into`.
pub(crate) fn copy_sample_bundles(into: &Path, n: usize) {
    std::fs::create_dir_all(into).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(sample_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files.iter().take(n) {
        std::fs::copy(f, into.join(f.file_name().unwrap())).unwrap();
    }
}

/// `network/configs/dev.yaml` (the default network) moved to free loopback ports (its FHIR
/// servers' too).
pub(crate) fn dev_spec_on_free_ports() -> String {
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/dev.yaml");
    let mut spec = NetworkSpec::load(&dev).unwrap();
    let n = spec.nodes().count() + spec.organizations.len();
    let mut ports = medledger_devnet::orderers::free_ports("127.0.0.1", 2 * n)
        .unwrap()
        .into_iter();
    for o in &mut spec.orderer_org.orderers {
        (o.port, o.operations_port) = (ports.next().unwrap(), ports.next().unwrap());
    }
    for org in &mut spec.organizations {
        for p in &mut org.peers {
            (p.port, p.operations_port) = (ports.next().unwrap(), ports.next().unwrap());
        }
        if let Some(f) = &mut org.fhir {
            f.port = ports.next().unwrap();
            f.operations_port = f.operations_port.map(|_| ports.next().unwrap());
        }
    }
    serde_yaml_ng::to_string(&spec).unwrap()
}

/// Waits (up to 10 s) until every peer of the network in `dir` has committed as many blocks
/// as the furthest one: a transaction confirmed by one organization's gateway is then visible
/// to reads and endorsements at every peer.
pub(crate) async fn settle(dir: &Path) {
    medledger_devnet::settle(dir).await.unwrap();
}

/// The dev topology (`configs/dev.yaml` on free ports) started with `network up` in
/// `tmp/net`, with the first `bundles` sample bundles copied into `tmp/bundles` (their first
/// three patients get demo identities). Returns the network directory, the bundles directory
/// and the guard that stops the network.
pub(crate) fn up_dev_network(tmp: &Path, bundles: usize) -> (PathBuf, PathBuf, Network) {
    let dir = tmp.join("net");
    let bundle_dir = tmp.join("bundles");
    copy_sample_bundles(&bundle_dir, bundles);
    let config = tmp.join("dev.yaml");
    std::fs::write(&config, dev_spec_on_free_ports()).unwrap();
    let net = Network { dir: dir.clone() };
    medledger_with(
        &["network", "up", "--config", config.to_str().unwrap()],
        &dir,
        &[("MEDLEDGER_EHR_BUNDLES", &bundle_dir)],
    );
    (dir, bundle_dir, net)
}

/// Imports every bundle of `bundles` quietly into the network in `dir` (`medledger ehr
/// import`), then waits until every peer has committed it.
pub(crate) async fn import_and_settle(dir: &Path, bundles: &Path) {
    medledger_with(
        &["ehr", "import", bundles.to_str().unwrap(), "--quiet"],
        dir,
        &[("MEDLEDGER_EHR_BUNDLES", bundles)],
    );
    settle(dir).await;
}

/// The first bundle file of `bundles` (the one `up_dev_network` gave a patient identity).
pub(crate) fn first_bundle(bundles: &Path) -> ehr_client::bundle::PatientBundle {
    let file = std::fs::read_dir(bundles)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    ehr_client::bundle::read_bundle(&std::fs::read(&file).unwrap()).unwrap()
}

/// Opens the `ehr` channel ledger of a stopped peer of the network in `dir`.
pub(crate) fn open_ledger(dir: &Path, node: &str) -> medledger_ledger::Ledger {
    medledger_ledger::Ledger::open(
        &dir.join("nodes").join(node).join("data/ledgers/ehr"),
        &"ehr".parse().unwrap(),
        &medledger_ledger::LedgerConfig::default(),
    )
    .unwrap()
}

/// The EHR pseudonym key `network up` made for organization `org` (e.g. `org1`) of the network
/// in `dir` (ADR 0031).
pub(crate) fn pseudonym_key(dir: &Path, org: &str) -> ehr_chaincode::ids::PseudonymKey {
    let path = medledger_devnet::generate::pseudonym_key_path(dir, org);
    medledger_devnet::generate::read_pseudonym_key(&path).unwrap()
}

/// The ledger id of the patient `patient_id` (a `Patient.id`) of org1, the dev network's
/// custodian.
pub(crate) fn ledger_patient(dir: &Path, patient_id: &str) -> String {
    pseudonym_key(dir, "org1").patient(patient_id)
}

/// The ledger id of resource `record` (`ResourceType/id`) of org1's patient `patient_id`.
pub(crate) fn ledger_record(dir: &Path, patient_id: &str, record: &str) -> String {
    pseudonym_key(dir, "org1")
        .record(patient_id, &record.parse().unwrap())
        .to_string()
}

/// Every file under `dir`, recursively (symbolic links not followed).
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}
