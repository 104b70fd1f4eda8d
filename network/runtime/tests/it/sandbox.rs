//! The chaincode runtime with real sandboxed processes (`medledger-sandbox` + `kv-chaincode`):
//! normal execution, each forbidden behaviour stopped with a clear error while other
//! proposals keep being served, restart after crash/timeout, and chaincode-as-a-service.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use medledger_ledger_api::MemorySimulator;
use medledger_runtime::process::{ChaincodeRuntime, InstalledChaincode, RuntimeConfig};
use medledger_runtime::sandbox::REPORT_PREFIX;
use medledger_runtime::support::{self, ExecOutcome, RuntimeError};

use crate::common;

use common::{KV, LAUNCHER, exec_request as req};

fn kv() -> InstalledChaincode {
    common::kv_chaincode("kv:1.0")
}

fn runtime(work: &std::path::Path) -> ChaincodeRuntime {
    let mut cfg = RuntimeConfig::new(LAUNCHER, work);
    cfg.execution_timeout = Duration::from_secs(3);
    ChaincodeRuntime::new(cfg)
}

async fn call(
    rt: &ChaincodeRuntime,
    sim: &mut MemorySimulator,
    tx: &str,
    args: &[&str],
) -> Result<ExecOutcome, RuntimeError> {
    rt.execute(&kv(), req(tx, args), sim).await
}

fn state() -> BTreeMap<String, Vec<u8>> {
    [
        ("a".to_owned(), b"1".to_vec()),
        ("b".to_owned(), b"2".to_vec()),
        ("c".to_owned(), b"3".to_vec()),
    ]
    .into_iter()
    .collect()
}

#[test]
fn trampoline_reports_protections() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(LAUNCHER)
        .args(["--workdir", dir.path().to_str().unwrap(), "--", "/bin/true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = stderr
        .lines()
        .find(|l| l.starts_with(REPORT_PREFIX))
        .unwrap_or_else(|| panic!("no report in {stderr:?}"));
    eprintln!("{report}");
    assert!(
        report.contains("rlimits=on") && report.contains("seccomp=on"),
        "{report}"
    );
    assert!(
        out.status.success(),
        "exec of the program itself is allowed: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxed_chaincode_runs_and_misbehaviour_is_stopped() {
    let work = tempfile::tempdir().unwrap();
    let rt = runtime(work.path());
    let mut sim = MemorySimulator::new(state());

    // Normal work: a write is recorded, reads and ranges answered, the event returned.
    let out = call(&rt, &mut sim, "t1", &["put", "k", "v"]).await.unwrap();
    assert_eq!(out.response.status, 200, "{}", out.response.message);
    assert_eq!(
        sim.writes,
        vec![(String::new(), "k".to_owned(), Some(b"v".to_vec()))]
    );
    let ev = out.event.unwrap();
    assert_eq!(
        (
            ev.chaincode_id.as_str(),
            ev.tx_id.as_str(),
            ev.event_name.as_str()
        ),
        ("kv:1.0", "t1", "put")
    );
    assert_eq!(
        call(&rt, &mut sim, "t2", &["get", "b"])
            .await
            .unwrap()
            .response
            .payload,
        b"2"
    );
    assert_eq!(
        call(&rt, &mut sim, "t3", &["range", "a", "c"])
            .await
            .unwrap()
            .response
            .payload,
        b"a,b"
    );
    assert_eq!(
        call(&rt, &mut sim, "t4", &["get", "zz"])
            .await
            .unwrap()
            .response
            .status,
        404
    );
    assert_eq!(rt.launches(), 1);

    // No network: a TCP connect to a listener we own fails and nothing arrives.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let out = call(&rt, &mut sim, "t5", &["connect", &addr])
        .await
        .unwrap();
    assert_eq!(out.response.status, 500);
    assert!(
        out.response.message.contains("connect refused by sandbox"),
        "{}",
        out.response.message
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), listener.accept())
            .await
            .is_err(),
        "no connection may arrive"
    );

    // No new processes.
    let out = call(&rt, &mut sim, "t6", &["spawn"]).await.unwrap();
    assert_eq!(out.response.message, "spawn failed 100 of 100 times");

    // No writes outside the working directory.
    let outside = std::env::temp_dir().join(format!("medledger-escape-{}", std::process::id()));
    let out = call(&rt, &mut sim, "t7", &["write", outside.to_str().unwrap()])
        .await
        .unwrap();
    assert_eq!(out.response.status, 500, "{}", out.response.message);
    assert!(
        out.response.message.contains("write refused by sandbox"),
        "{}",
        out.response.message
    );
    assert!(!outside.exists());
    assert_eq!(rt.launches(), 1, "refusals do not cost the process");

    // 10 GiB allocation: the process dies, only that proposal fails, the next one restarts it.
    let err = call(&rt, &mut sim, "t8", &["alloc"]).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Exited { .. }), "{err}");
    assert_eq!(
        call(&rt, &mut sim, "t9", &["get", "a"])
            .await
            .unwrap()
            .response
            .payload,
        b"1"
    );
    assert_eq!(rt.launches(), 2);

    // An endless loop times out while other proposals on the same chaincode are served.
    let started = Instant::now();
    let mut spin_sim = MemorySimulator::new(state());
    let kv_cc = kv();
    let spin = rt.execute(&kv_cc, req("spin", &["spin"]), &mut spin_sim);
    let others = async {
        let mut results = Vec::new();
        for i in 0..20 {
            let mut s = MemorySimulator::new(state());
            results.push(
                rt.execute(&kv(), req(&format!("o{i}"), &["get", "c"]), &mut s)
                    .await,
            );
        }
        results
    };
    let (spin, others) = tokio::join!(spin, others);
    assert!(
        matches!(spin, Err(RuntimeError::Timeout { .. })),
        "{spin:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    for r in others {
        assert_eq!(r.unwrap().response.payload, b"3");
    }
    // Restarted on the next call.
    assert_eq!(
        call(&rt, &mut sim, "t10", &["get", "a"])
            .await
            .unwrap()
            .response
            .payload,
        b"1"
    );
    assert_eq!(rt.launches(), 3);

    // A crash (abort) fails only that call.
    assert!(matches!(
        call(&rt, &mut sim, "t11", &["abort"]).await,
        Err(RuntimeError::Exited { .. })
    ));
    assert_eq!(
        call(&rt, &mut sim, "t12", &["get", "b"])
            .await
            .unwrap()
            .response
            .payload,
        b"2"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn chaincode_as_a_service_is_dialled_by_the_peer() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(KV)
        .env_clear()
        .env("CORE_CHAINCODE_ID_NAME", "kv:1.0")
        .env("CHAINCODE_SERVER_ADDRESS", &addr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let mut channel = None;
    for _ in 0..100 {
        if let Ok(c) = endpoint.connect().await {
            channel = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let conn = support::connect_service(channel.expect("chaincode server up"), "kv:1.0")
        .await
        .unwrap();
    let mut sim = MemorySimulator::new(state());
    let out = conn
        .execute(
            req("s1", &["put", "x", "y"]),
            &mut sim,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(out.response.status, 200);
    assert_eq!(sim.writes.len(), 1);
    let out = conn
        .execute(req("s2", &["get", "a"]), &mut sim, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(out.response.payload, b"1");
    // A wrong expected id is refused.
    let again = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(support::connect_service(again, "other:1").await.is_err());
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thousand_proposals_in_flight_on_one_sandboxed_process() {
    let work = tempfile::tempdir().unwrap();
    let rt = std::sync::Arc::new(runtime(work.path()));
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            let mut state = BTreeMap::new();
            state.insert(format!("key{i}"), format!("value{i}").into_bytes());
            let mut sim = MemorySimulator::new(state);
            let key = format!("key{i}");
            let got = rt
                .execute(&kv(), req(&format!("tx{i}"), &["get", &key]), &mut sim)
                .await;
            let put = rt
                .execute(
                    &kv(),
                    req(&format!("px{i}"), &["put", &key, &format!("new{i}")]),
                    &mut sim,
                )
                .await;
            (i, got, put, sim.writes)
        }));
    }
    for t in tasks {
        let (i, got, put, writes) = t.await.unwrap();
        assert_eq!(
            got.unwrap().response.payload,
            format!("value{i}").into_bytes(),
            "tx{i} got another transaction's answer"
        );
        assert_eq!(put.unwrap().event.unwrap().tx_id, format!("px{i}"));
        assert_eq!(
            writes,
            vec![(
                String::new(),
                format!("key{i}"),
                Some(format!("new{i}").into_bytes())
            )]
        );
    }
    assert_eq!(rt.launches(), 1, "all on one chaincode process");
    rt.shutdown().await;
}

#[tokio::test]
async fn ehr_chaincode_runs_in_the_sandbox() {
    let work = tempfile::tempdir().unwrap();
    let rt = runtime(work.path());
    let ehr = InstalledChaincode {
        id: "ehr:1.0".into(),
        executable: common::sibling("ehr-chaincode"),
    };
    let mut sim = MemorySimulator::new(BTreeMap::new());
    // A doctor's signed proposal: the contract reads the role from the certificate.
    let mut org = medledger_channel::testing::TestOrg::new("Org1MSP", "org1.example.com");
    let doctor = org.identity(
        "doctor1",
        medledger_msp::ou::NodeOu::Client,
        &[("ehr.role", "doctor")],
    );
    let args: Vec<Vec<u8>> = vec![b"GetTemplate".to_vec(), b"Observation".to_vec()];
    let built =
        medledger_gateway::proposal::build_proposal(&doctor, "ehr", "ehr", &args, &BTreeMap::new())
            .unwrap();
    let mut get = req(&built.tx_id, &["GetTemplate", "Observation"]);
    get.proposal = Some(built.signed);
    // The default templates answer without any prior state.
    let out = rt.execute(&ehr, get, &mut sim).await.unwrap();
    assert_eq!(out.response.status, 200, "{}", out.response.message);
    let text = String::from_utf8(out.response.payload).unwrap();
    assert!(text.contains("Observation"), "{text}");
    // Without a creator, a call is refused and writes nothing.
    let out = rt
        .execute(&ehr, req("e2", &["GrantConsent", "{}"]), &mut sim)
        .await
        .unwrap();
    assert!(out.response.status >= 400);
    assert!(sim.writes.is_empty());
    rt.shutdown().await;
}
