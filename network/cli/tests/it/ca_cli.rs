//! `medledger ca ...` as a user runs it: init, serve as a real process on 127.0.0.1:0,
//! enroll the bootstrap admin, register a doctor with attributes, enroll the doctor; then
//! kill -9 the server, restart it, and check that identities, serials and revocations are
//! still there and max enrollments is enforced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::SystemTime;

use medledger_msp::Error;
use medledger_msp::folder;
use medledger_msp::msp::{Msp, MspManager};
use medledger_msp::ou::NodeOu;

const BIN: &str = env!("CARGO_BIN_EXE_medledger");

/// A `medledger ca serve` child process, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(ca_dir: &Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["ca", "serve", "--listen", "127.0.0.1:0", "--dir"])
            .arg(ca_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server {
            child,
            url: format!("https://{addr}"),
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "medledger {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn ca_cli_end_to_end_with_kill_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    ok(&[
        "ca",
        "init",
        "--dir",
        p(&ca_dir),
        "--name",
        "ca-org1",
        "--msp-id",
        "Org1MSP",
        "--organization",
        "org1.example.com",
        "-b",
        "admin:adminpw",
    ]);
    // init refuses to overwrite an existing CA.
    assert!(
        !run(&[
            "ca",
            "init",
            "--dir",
            p(&ca_dir),
            "--name",
            "ca-org1",
            "--msp-id",
            "Org1MSP",
            "--organization",
            "org1.example.com",
            "-b",
            "admin:adminpw",
        ])
        .status
        .success()
    );

    let tls: PathBuf = ca_dir.join("tls/ca.crt");
    let server = Server::start(&ca_dir);
    let url = server.url.clone();
    let conn = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "-u".into(),
            url.clone(),
            "--tls-certfiles".into(),
            p(&tls).into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run_conn = |cmd: &str, extra: &[&str]| -> Output {
        let mut args = vec!["ca".to_owned(), cmd.to_owned()];
        args.extend(conn(extra));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&refs)
    };
    let ok_conn = |cmd: &str, extra: &[&str]| -> String {
        let out = run_conn(cmd, extra);
        assert!(
            out.status.success(),
            "ca {cmd} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let admin_home = tmp.path().join("admin");
    let info = ok_conn("info", &[]);
    assert!(info.contains("Org1MSP"), "{info}");
    // Fabric-style credentials in the URL.
    let admin_url = url.replace("https://", "https://admin:adminpw@");
    ok(&[
        "ca",
        "enroll",
        "-u",
        &admin_url,
        "--tls-certfiles",
        p(&tls),
        "--home",
        p(&admin_home),
    ]);
    let admin_msp = admin_home.join("msp");

    let out = ok_conn(
        "register",
        &[
            "-M",
            p(&admin_msp),
            "--id-name",
            "doctor1",
            "--id-secret",
            "doctorpw",
            "--id-type",
            "client",
            "--id-attrs",
            "ehr.role=doctor:ecert,ehr.emergency=true:ecert,dept=icu",
            "--id-maxenrollments",
            "1",
        ],
    );
    assert!(out.contains("Password: doctorpw"), "{out}");
    let doctor_home = tmp.path().join("doctor1");
    ok_conn(
        "enroll",
        &[
            "--id",
            "doctor1",
            "--secret",
            "doctorpw",
            "--home",
            p(&doctor_home),
        ],
    );

    // The doctor's MSP folder validates under the org MSP with OU client and the attributes.
    let doctor_msp = doctor_home.join("msp");
    let check = |crl_dir: Option<&Path>| {
        let mut cfg = folder::load_msp_config(&doctor_msp, "Org1MSP").unwrap();
        if let Some(dir) = crl_dir {
            cfg.crls.clear();
            for f in std::fs::read_dir(dir).unwrap() {
                let bytes = std::fs::read(f.unwrap().path()).unwrap();
                cfg.crls.push(pem::parse(bytes).unwrap().into_contents());
            }
        }
        let manager = MspManager::new([Msp::new(cfg).unwrap()], 8);
        let id = folder::load_signing_identity(&doctor_msp, "Org1MSP").unwrap();
        manager
            .validate(id.serialized(), SystemTime::now())
            .map(|v| {
                (
                    v.node_ou(),
                    v.attribute("ehr.role").map(str::to_owned),
                    v.attribute("dept").map(str::to_owned),
                )
            })
    };
    let (ou, role, dept) = check(None).unwrap();
    assert_eq!(ou, Some(NodeOu::Client));
    assert_eq!(role.as_deref(), Some("doctor"));
    assert_eq!(
        dept, None,
        "attributes without :ecert stay out of the certificate"
    );

    // A TLS certificate for a peer, from the TLS CA.
    ok_conn(
        "register",
        &[
            "-M",
            p(&admin_msp),
            "--id-name",
            "peer0",
            "--id-secret",
            "peerpw",
            "--id-type",
            "peer",
        ],
    );
    let peer_home = tmp.path().join("peer0");
    ok_conn(
        "enroll",
        &[
            "--id",
            "peer0",
            "--secret",
            "peerpw",
            "--home",
            p(&peer_home),
            "--profile",
            "tls",
            "--hosts",
            "peer0.org1,127.0.0.1",
        ],
    );
    assert!(peer_home.join("tls/server.crt").exists() && peer_home.join("tls/server.key").exists());

    // kill -9 the server mid-run and start it again over the same directory.
    server.kill9();
    let server = Server::start(&ca_dir);
    let url2 = server.url.clone();
    let run2 = |cmd: &str, extra: &[&str]| -> Output {
        let mut args: Vec<String> = vec![
            "ca".into(),
            cmd.into(),
            "-u".into(),
            url2.clone(),
            "--tls-certfiles".into(),
            p(&tls).into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&refs)
    };

    // doctor1 had max one enrollment: refused after the restart.
    let out = run2(
        "enroll",
        &[
            "--id",
            "doctor1",
            "--secret",
            "doctorpw",
            "--home",
            p(&tmp.path().join("again")),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maximum of 1 enrollments"), "{err}");
    // The registration survived: registering doctor1 again is a duplicate.
    let out = run2("register", &["-M", p(&admin_msp), "--id-name", "doctor1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already registered"));

    // Revoke with a CRL: validation now fails with "revoked".
    let crl_dir = tmp.path().join("crls");
    std::fs::create_dir_all(&crl_dir).unwrap();
    let out = run2(
        "revoke",
        &[
            "-M",
            p(&admin_msp),
            "--revoke-name",
            "doctor1",
            "--revoke-reason",
            "keyCompromise",
            "--gencrl",
            p(&crl_dir.join("crl.pem")),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(matches!(check(Some(&crl_dir)), Err(Error::Revoked { .. })));

    // Revocation survives another kill -9; gencrl by the admin still lists it.
    server.kill9();
    let server = Server::start(&ca_dir);
    let crl2 = tmp.path().join("crls2");
    std::fs::create_dir_all(&crl2).unwrap();
    let mut args: Vec<String> = vec![
        "ca".into(),
        "gencrl".into(),
        "-u".into(),
        server.url.clone(),
        "--tls-certfiles".into(),
        p(&tls).into(),
    ];
    args.extend(
        ["-M", p(&admin_msp), "--out", p(&crl2.join("crl.pem"))]
            .iter()
            .map(|s| s.to_string()),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&refs);
    assert!(matches!(check(Some(&crl2)), Err(Error::Revoked { .. })));
    drop(server);
}
