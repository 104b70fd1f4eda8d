//! The FHIR R4 API in a network started by `medledger network up` (issue 16, plan §6
//! "Process"): one network on free ports, then in order
//!
//! 1. the CapabilityStatement over HTTPS, trusting the organization's TLS root;
//! 2. refusals that write nothing: a token request with a bad grant type (400) and one with a
//!    forged client assertion (401), the peers' heights unchanged;
//! 3. `medledger fhir token` (an ES256 assertion signed with the enrollment key) gives a
//!    bearer token;
//! 4. `tests/fhir/clients.py` in a Python venv (`fhir.resources` 6.4.0's R4 models,
//!    SMART's `fhirclient` 4.3.1) reads the CapabilityStatement over mutual TLS with the
//!    identity's TLS client certificate and validates it;
//!    Then, as org1-admin over mutual TLS: create a Patient and an Observation, read the
//!    Patient back (fhirclient's model), post a sample transaction Bundle; then a malformed
//!    body (400 `structure`), a wrong `resourceType` (400 `invalid`) and a request without a
//!    credential (401 `login`), each an OperationOutcome, the peers' heights unchanged;
//! 5. `tests/fhir/kit.cjs` (`fhir-kit-client` 2.0.3, npm) reads it with the bearer token,
//!    and clients.py validates what it returned.
//!
//! Steps 4 and 5 are skipped, with a message, only when `python3 -m venv` or `node`/`npm` is
//! missing; an install failure fails the test. pip's and npm's caches live in
//! `$HOME/.cache/medledger/` (outside the clone).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use medledger_devnet::generate::{self, NodeKind};
use medledger_devnet::{https, process};

use crate::common;

/// The Python packages of the clients (verified together: fhirpy needs pydantic 2, which
/// fhir.resources 6.4.0 cannot use).
const PIP_PACKAGES: &[&str] = &["fhir.resources==6.4.0", "pydantic<2", "fhirclient==4.3.1"];
/// The Node client.
const NPM_PACKAGES: &[&str] = &["fhir-kit-client@2.0.3"];

/// `$HOME/.cache/medledger/<what>`: package caches kept between runs, outside the clone.
fn cache(what: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = home.join(".cache/medledger").join(what);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `cmd`; its stdout, panicking with both outputs on failure.
fn output(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fhir")
}

/// The `n`th sample bundle (by file name).
fn sample_bundle(n: usize) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(common::sample_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.swap_remove(n)
}

/// The committed heights of every peer of the network in `dir`.
fn peer_heights(dir: &Path) -> Vec<u64> {
    let (spec, nodes) = medledger_devnet::nodes_of(dir).unwrap();
    nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Peer)
        .map(|n| process::height(n, &spec.channel).unwrap())
        .collect()
}

#[test]
fn fhir_clients_use_the_networks_fhir_servers() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _bundles, _net) = common::up_dev_network(tmp.path(), 1);
    let (spec, nodes) = medledger_devnet::nodes_of(&dir).unwrap();
    let org1 = &spec.organizations[0];
    let base_url = generate::fhir_base_url(org1).unwrap();
    let node = nodes
        .iter()
        .find(|n| n.kind == NodeKind::Fhir && n.name == "fhir.org1")
        .unwrap();
    let status = common::medledger(&["network", "status"], &dir);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("fhir.org1") && l.contains("healthy")),
        "{status}"
    );
    let tls = dir.join("identities/org1-doctor/tls");
    let ca = tls.join("ca.crt");

    // 1. The CapabilityStatement, trusting the organization's TLS root.
    let target = process::fhir_target(node).unwrap();
    let answer = https::request(&target, "GET", "/fhir/metadata", &[], &[]).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let statement: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert_eq!(statement["fhirVersion"], "4.0.1");

    // 2. Refusals: OAuth errors (RFC 6749 §5.2), nothing written.
    let before = peer_heights(&dir);
    let form = "Content-Type";
    let post = |body: &str| {
        https::request(
            &target,
            "POST",
            "/fhir/auth/token",
            &[(form, "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .unwrap()
    };
    let bad_grant = post("grant_type=password&username=x");
    assert_eq!(bad_grant.status, 400, "{}", bad_grant.body);
    assert!(bad_grant.body.contains("\"error\""), "{}", bad_grant.body);
    let forged = post(
        "grant_type=client_credentials\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
         &client_assertion=eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
    );
    assert_eq!(forged.status, 401, "{}", forged.body);
    assert_eq!(
        peer_heights(&dir),
        before,
        "a refused request wrote nothing"
    );

    // 3. A bearer token for org1-doctor.
    let token = common::medledger(&["fhir", "token", "--as", "org1-doctor"], &dir)
        .trim()
        .to_owned();
    assert!(token.len() >= 32, "{token}");

    // 4. Python: fhirclient over mutual TLS, fhir.resources' R4 models.
    if !runs("python3", &["-m", "venv", "--help"]) {
        eprintln!(
            "skipping the Python and Node FHIR clients: `python3 -m venv` is not available \
             (scripts/bootstrap.sh installs python3-venv)"
        );
        return;
    }
    let venv = tmp.path().join("venv");
    output(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    let python = venv.join("bin/python");
    output(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PIP_PACKAGES)
            .env("PIP_CACHE_DIR", cache("pip")),
        &format!("pip install {PIP_PACKAGES:?} (is the PyPI registry reachable?)"),
    );
    let clients = scripts().join("clients.py");
    let py = output(
        Command::new(&python)
            .arg(&clients)
            .args(["capability", &base_url])
            .args([&ca, &tls.join("cert.pem"), &tls.join("key.pem")]),
        "clients.py capability",
    );
    let py: serde_json::Value = serde_json::from_str(py.trim()).unwrap();
    assert_eq!(py["fhirVersion"], "4.0.1", "{py}");
    assert_eq!(py["validated"], serde_json::json!(["CapabilityStatement"]));

    // 4b. Writes over mutual TLS as org1-admin (a registrar): a Patient, an Observation, the
    //     Patient read back, a sample transaction Bundle (not imported yet).
    let admin = dir.join("identities/org1-admin/tls");
    let bundle = sample_bundle(1);
    let wrote = output(
        Command::new(&python)
            .arg(&clients)
            .args(["write", &base_url])
            .args([
                &ca,
                &admin.join("cert.pem"),
                &admin.join("key.pem"),
                &bundle,
            ]),
        "clients.py write",
    );
    let wrote: serde_json::Value = serde_json::from_str(wrote.trim()).unwrap();
    assert_eq!(
        wrote["validated"],
        serde_json::json!(["Patient", "Observation", "Patient", "Bundle"]),
        "{wrote}"
    );
    assert!(
        wrote["transaction_entries"].as_u64().unwrap() > 1,
        "{wrote}"
    );

    // 4c. Bad input and no credential: status + OperationOutcome, nothing written.
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::settle(&dir));
    let before = peer_heights(&dir);
    let refused = output(
        Command::new(&python)
            .arg(&clients)
            .args(["refusals", &base_url])
            .args([&ca, &admin.join("cert.pem"), &admin.join("key.pem")]),
        "clients.py refusals",
    );
    let refused: serde_json::Value = serde_json::from_str(refused.trim()).unwrap();
    assert_eq!(
        refused["malformed"],
        serde_json::json!([400, "structure"]),
        "{refused}"
    );
    assert_eq!(
        refused["wrong_type"],
        serde_json::json!([400, "invalid"]),
        "{refused}"
    );
    assert_eq!(
        refused["no_credential"],
        serde_json::json!([401, "login"]),
        "{refused}"
    );
    assert_eq!(
        refused["validated"].as_array().unwrap().len(),
        3,
        "{refused}"
    );
    assert_eq!(peer_heights(&dir), before, "refused requests wrote nothing");

    // 5. Node: fhir-kit-client with the bearer token.
    if !(runs("node", &["--version"]) && runs("npm", &["--version"])) {
        eprintln!("skipping the Node FHIR client: node/npm not found on PATH");
        return;
    }
    let npm_dir = tmp.path().join("npm");
    std::fs::create_dir(&npm_dir).unwrap();
    output(
        Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--ignore-scripts",
            ])
            .arg("--cache")
            .arg(cache("npm"))
            .args(NPM_PACKAGES)
            .current_dir(&npm_dir),
        &format!("npm install {NPM_PACKAGES:?} (is the npm registry reachable?)"),
    );
    let kit = output(
        Command::new("node")
            .arg(scripts().join("kit.cjs"))
            .args([&base_url, &token])
            .env("NODE_PATH", npm_dir.join("node_modules"))
            .env("NODE_EXTRA_CA_CERTS", &ca)
            .current_dir(&npm_dir),
        "kit.cjs",
    );
    let kit: serde_json::Value = serde_json::from_str(kit.trim()).unwrap();
    let returned = tmp.path().join("kit-resources.json");
    std::fs::write(&returned, kit["resources"].to_string()).unwrap();
    let checked = output(
        Command::new(&python)
            .arg(&clients)
            .arg("validate")
            .arg(&returned),
        "clients.py validate",
    );
    assert!(checked.contains("CapabilityStatement"), "{checked}");
    assert_eq!(peer_heights(&dir), before, "reads wrote nothing");
}
