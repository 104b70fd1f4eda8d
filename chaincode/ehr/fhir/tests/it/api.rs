//! The FHIR interactions on the harness, through the router with injected callers: a sample
//! Synthea transaction Bundle is one `CreateRecordsFromBundle`; Patient read (audited, exact
//! bytes, ETag, 304) and history; create with and without id; batch; bad input → status,
//! OperationOutcome and no new block; the captured `tracing` output holds no PHI; then the
//! same server over TLS ([`crate::tls`]).

use ehr_client::EhrClient;
use ehr_client::bundle::{PatientBundle, bundle_files, find_sample_bundles, read_bundle};
use serde_json::{Value, json};

use crate::common::{BASE, CHANNEL, Setup, captured_log, setup};

const ADMIN: Option<&str> = Some("org1-admin");
const JSON: (&str, &str) = ("content-type", "application/fhir+json");

/// The smallest sample bundle: its bytes and resources.
fn sample() -> (Vec<u8>, PatientBundle) {
    let dir = find_sample_bundles(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("sample bundles: set MEDLEDGER_EHR_BUNDLES");
    let file = bundle_files(&[dir])
        .unwrap()
        .into_iter()
        .min_by_key(|f| std::fs::metadata(f).unwrap().len())
        .unwrap();
    let bytes = std::fs::read(file).unwrap();
    let bundle = read_bundle(&bytes).unwrap();
    (bytes, bundle)
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

/// Asserts an OperationOutcome with `code`.
fn outcome(status: u16, code: &str, got: &(axum::http::Response<()>, Vec<u8>)) {
    assert_eq!(
        got.0.status().as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&got.1)
    );
    let v = json(&got.1);
    assert_eq!(v["resourceType"], "OperationOutcome");
    assert_eq!(v["issue"][0]["code"], code, "{v}");
    assert_eq!(
        got.0.headers()["content-type"],
        "application/fhir+json; charset=utf-8"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_api_on_the_harness() {
    let log = captured_log();
    let s = setup().await;
    let (bytes, bundle) = sample();
    let patient_id = bundle.patient_id.clone();

    metadata_and_credentials(&s).await;
    transaction(&s, &bytes, &bundle).await;
    patient_read_and_history(&s, &bundle).await;
    create_and_batch(&s, &patient_id).await;
    bad_input(&s, &bytes, &patient_id).await;
    crate::tls::over_tls(&s, &bundle).await;

    // No PHI in anything logged: the access log names route templates only.
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        text.contains("fhir::access") && text.contains("/fhir/{type}/{id}"),
        "the access log names route templates"
    );
    let mut secrets = bundle.patient_identifiers();
    secrets.push(patient_id);
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        assert!(!text.contains(secret.as_str()), "the log holds PHI");
    }
    s.net.stop().unwrap();
}

async fn metadata_and_credentials(s: &Setup) {
    let got = s.call(None, "GET", "/fhir/metadata", vec![], &[]).await;
    assert_eq!(got.0.status(), 200);
    let c = json(&got.1);
    assert_eq!(c["resourceType"], "CapabilityStatement");
    assert_eq!(c["rest"][0]["resource"][0]["type"], "Patient");
    let got = s
        .call(
            None,
            "GET",
            "/fhir/.well-known/smart-configuration",
            vec![],
            &[],
        )
        .await;
    assert_eq!(json(&got.1)["token_endpoint"], format!("{BASE}/auth/token"));
    // No anonymous access to data routes.
    for (method, uri) in [
        ("GET", "/fhir/Patient/p1"),
        ("GET", "/fhir/Patient/p1/_history"),
        ("POST", "/fhir/Patient"),
        ("POST", "/fhir"),
    ] {
        let got = s.call(None, method, uri, b"{}".to_vec(), &[JSON]).await;
        outcome(401, "login", &got);
        assert_eq!(got.0.headers()["www-authenticate"], "Bearer");
    }
    let got = s
        .call(
            None,
            "GET",
            "/fhir/Patient/p1",
            vec![],
            &[("authorization", "Bearer not-a-token")],
        )
        .await;
    outcome(401, "security", &got);
    // An identity without a delegate in the wallet.
    let got = s
        .call(Some("nobody"), "GET", "/fhir/Patient/p1", vec![], &[])
        .await;
    outcome(403, "forbidden", &got);
    let got = s.call(ADMIN, "GET", "/fhir/Nope/x", vec![], &[]).await;
    outcome(404, "not-supported", &got);
}

async fn transaction(s: &Setup, bytes: &[u8], bundle: &PatientBundle) {
    let before = s.height();
    let got = s
        .call(ADMIN, "POST", "/fhir", bytes.to_vec(), &[JSON])
        .await;
    assert_eq!(got.0.status(), 200, "{}", String::from_utf8_lossy(&got.1));
    let r = json(&got.1);
    assert_eq!(r["type"], "transaction-response");
    let entries = r["entry"].as_array().unwrap();
    assert_eq!(entries.len(), bundle.resources.len());
    for (e, res) in entries.iter().zip(&bundle.resources) {
        assert_eq!(e["response"]["status"], "201 Created");
        assert_eq!(
            e["response"]["location"],
            format!("{}/_history/1", res.record_id)
        );
        assert_eq!(e["response"]["etag"], "W/\"1\"");
    }
    assert!(s.height() > before);
    // Every record was created by one and the same transaction: one CreateRecordsFromBundle.
    let admin = EhrClient::new(s.net.gateway(0, s.admin()).network(CHANNEL).contract("ehr"));
    let refs: Vec<&str> = bundle
        .resources
        .iter()
        .map(|r| r.record_id.as_str())
        .collect();
    let ids = admin
        .ledger_ids(None, &bundle.patient_id, &refs)
        .await
        .unwrap();
    let mut creators = std::collections::BTreeSet::new();
    for record in &ids.records {
        let history = admin.record_history(&ids.patient, record).await.unwrap();
        let v1 = history.iter().find(|v| v.version == 1).unwrap();
        creators.insert(v1.tx_id.clone());
    }
    assert_eq!(creators.len(), 1, "one transaction created every entry");
    // The same Bundle again: nothing new (every entry 200, equal to the stored record).
    let got = s
        .call(ADMIN, "POST", "/fhir", bytes.to_vec(), &[JSON])
        .await;
    assert_eq!(got.0.status(), 200, "{}", String::from_utf8_lossy(&got.1));
    let r = json(&got.1);
    assert!(
        r["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["response"]["status"] == "200 OK")
    );
}

async fn patient_read_and_history(s: &Setup, bundle: &PatientBundle) {
    let id = &bundle.patient_id;
    let stored = crate::common::patient_bytes(bundle);
    let got = s
        .call(ADMIN, "GET", &format!("/fhir/Patient/{id}"), vec![], &[])
        .await;
    assert_eq!(got.0.status(), 200, "{}", String::from_utf8_lossy(&got.1));
    assert_eq!(&got.1, stored, "the exact stored bytes");
    assert_eq!(got.0.headers()["etag"], "W/\"1\"");
    assert!(got.0.headers().contains_key("last-modified"));
    let got = s
        .call(
            ADMIN,
            "GET",
            &format!("/fhir/Patient/{id}"),
            vec![],
            &[("if-none-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(got.0.status(), 304);
    let got = s
        .call(
            ADMIN,
            "GET",
            &format!("/fhir/Patient/{id}/_history"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(got.0.status(), 200);
    let h = json(&got.1);
    assert_eq!(h["type"], "history");
    assert_eq!(h["total"], 1);
    assert_eq!(h["entry"][0]["response"]["etag"], "W/\"1\"");
    assert!(
        h["entry"][0].get("resource").is_none(),
        "no bodies in history"
    );
    let got = s
        .call(ADMIN, "GET", "/fhir/Patient/unknown-patient", vec![], &[])
        .await;
    outcome(404, "not-found", &got);
}

async fn create_and_batch(s: &Setup, patient_id: &str) {
    let obs = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "valueQuantity": {"value": 170, "unit": "cm"},
    });
    let got = s
        .call(
            ADMIN,
            "POST",
            "/fhir/Observation",
            obs.to_string().into_bytes(),
            &[JSON],
        )
        .await;
    assert_eq!(got.0.status(), 201, "{}", String::from_utf8_lossy(&got.1));
    let created = json(&got.1);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID v4 was assigned");
    assert_eq!(
        got.0.headers()["location"],
        format!("{BASE}/Observation/{id}/_history/1").as_str()
    );
    // The same resource (with its id) again: 200, equal to the stored one.
    let got = s
        .call(ADMIN, "POST", "/fhir/Observation", got.1.clone(), &[JSON])
        .await;
    assert_eq!(got.0.status(), 200);
    // Same id, other content: 409 duplicate.
    let mut other = created.clone();
    other["valueQuantity"]["value"] = json!(171);
    let got = s
        .call(
            ADMIN,
            "POST",
            "/fhir/Observation",
            other.to_string().into_bytes(),
            &[JSON],
        )
        .await;
    outcome(409, "duplicate", &got);
    // A new Patient registers it.
    let p = json!({"resourceType": "Patient", "id": "fhir-test-patient-2", "gender": "female"});
    let got = s
        .call(
            ADMIN,
            "POST",
            "/fhir/Patient",
            p.to_string().into_bytes(),
            &[JSON],
        )
        .await;
    assert_eq!(got.0.status(), 201, "{}", String::from_utf8_lossy(&got.1));
    // A batch: entries independent.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Observation", "id": "batch-obs-1", "status": "final",
            "code": {"text": "x"}, "subject": {"reference": "Patient/fhir-test-patient-2"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "id": "batch-obs-2", "status": "final",
            "code": {"text": "x"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": "Patient/fhir-test-patient-2"}},
    ]});
    let got = s
        .call(
            ADMIN,
            "POST",
            "/fhir",
            batch.to_string().into_bytes(),
            &[JSON],
        )
        .await;
    assert_eq!(got.0.status(), 200);
    let r = json(&got.1);
    assert_eq!(r["type"], "batch-response");
    assert_eq!(r["entry"][0]["response"]["status"], "201 Created");
    assert!(
        r["entry"][1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("422")
    );
    assert_eq!(
        r["entry"][1]["response"]["outcome"]["issue"][0]["code"],
        "required"
    );
    assert!(
        r["entry"][2]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("422")
    );
}

async fn bad_input(s: &Setup, sample: &[u8], patient_id: &str) {
    let before = s.height();
    let digest = || s.net.with(|h| h.state_digest(0, 0).unwrap()).unwrap();
    let state_before = digest();
    let patient = |body: &str| body.as_bytes().to_vec();
    /// Method, URI, body, headers, expected status and issue code.
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<u8>,
        Vec<(&'a str, &'a str)>,
        u16,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "POST",
            "/fhir/Patient",
            patient("{\"resourceType\":"),
            vec![JSON],
            400,
            "structure",
        ),
        (
            "POST",
            "/fhir/Patient",
            patient("[1]"),
            vec![JSON],
            400,
            "structure",
        ),
        (
            "POST",
            "/fhir/Patient",
            patient(r#"{"resourceType":"Observation","id":"x1"}"#),
            vec![JSON],
            400,
            "invalid",
        ),
        (
            "POST",
            "/fhir/Patient",
            patient(r#"{"resourceType":"Patient","id":"not an id"}"#),
            vec![JSON],
            400,
            "invalid",
        ),
        (
            "POST",
            "/fhir/Observation",
            patient(r#"{"resourceType":"Observation","id":"o-orphan"}"#),
            vec![JSON],
            422,
            "required",
        ),
        (
            "POST",
            "/fhir/Patient",
            patient(r#"{"resourceType":"Patient","id":"p-x"}"#),
            vec![("content-type", "text/plain")],
            415,
            "not-supported",
        ),
        (
            "POST",
            "/fhir/Bundle",
            patient("{}"),
            vec![JSON],
            404,
            "not-supported",
        ),
        (
            "POST",
            "/fhir",
            vec![b' '; 1_200_000],
            vec![JSON],
            413,
            "too-long",
        ),
        (
            "POST",
            "/fhir",
            patient(
                r#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","id":"p-put"},"request":{"method":"PUT","url":"Patient/p-put"}}]}"#,
            ),
            vec![JSON],
            422,
            "not-supported",
        ),
        (
            "POST",
            "/fhir",
            patient(r#"{"resourceType":"Bundle","type":"collection"}"#),
            vec![JSON],
            400,
            "invalid",
        ),
        (
            "GET",
            "/fhir/Patient/bad%20id",
            vec![],
            vec![],
            400,
            "value",
        ),
    ];
    for (method, uri, body, headers, status, code) in cases {
        let got = s.call(ADMIN, method, uri, body, &headers).await;
        outcome(status, code, &got);
        // Diagnostics never repeat request values.
        let d = json(&got.1)["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!d.contains("not an id") && !d.contains(patient_id), "{d}");
    }
    // A transaction over 1 MiB (the chaincode's limit), within the body limit: 413.
    let mut big = sample.to_vec();
    let pad = 1_048_577 - big.len();
    let at = big.len() - 1;
    big.splice(at..at, std::iter::repeat_n(b' ', pad));
    let got = s.call(ADMIN, "POST", "/fhir", big, &[JSON]).await;
    outcome(413, "too-long", &got);
    assert_eq!(s.height(), before, "no block for bad input");
    assert_eq!(digest(), state_before, "no state change for bad input");
}
