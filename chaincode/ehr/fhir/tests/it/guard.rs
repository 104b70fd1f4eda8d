//! `ehr-fhir` is an application on the gateway: it must not link a node (ADR 0039).

/// Crates a FHIR server must never link (ADR 0034's S13 guard, extended in ADR 0039).
const NEVER: &[&str] = &[
    "medledger-peer",
    "medledger-endorser",
    "medledger-runtime",
    "medledger-ledger",
    "medledger-gateway-server",
    "medledger-orderer",
    "medledger-devnet",
    "medledger-harness",
    "rocksdb",
    "seccompiler",
    "landlock",
];

#[test]
fn cargo_tree_shows_no_node_crates() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "ehr-fhir",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: std::collections::BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains("ehr-client"),
        "the tree lists the crate's dependencies"
    );
    let linked: Vec<&&str> = NEVER.iter().filter(|n| names.contains(**n)).collect();
    assert!(linked.is_empty(), "ehr-fhir links {linked:?}");
}
