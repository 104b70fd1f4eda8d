//! Test harness: real identities (CA-issued certificates with EHR attributes) and the EHR
//! contract on a `MemoryLedger` with a controlled clock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    missing_docs
)]

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use ehr_chaincode::ids::{PseudonymKey, ResourceRef};
use medledger_chaincode::memory::{Event, MemoryLedger};
use medledger_chaincode::{Creator, Response, Router, TxContext};
use medledger_channel::testing::TestOrg;
use medledger_msp::ou::NodeOu;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Patient ids used by the unit tests (FHIR `Patient.id`s: clear, never on the ledger).
pub(crate) const PA: &str = "patient-a";
pub(crate) const PB: &str = "patient-b";

/// The organizations whose pseudonym key `Net::new`/`Net::bare` set, each with its EHR admin.
pub(crate) const KEYED_ORGS: [(&str, &str); 3] = [
    ("Org1MSP", "admin1"),
    ("Org2MSP", "admin2"),
    ("Org3MSP", "admin3"),
];

/// The fixed test pseudonym key of an organization: SHA-256 of a label and its MSP id.
pub(crate) fn pseudonym_key(msp: &str) -> PseudonymKey {
    let bytes = Sha256::digest(format!("medledger/ehr/test-pseudonym-key\0{msp}"));
    PseudonymKey::from_bytes(&bytes).unwrap()
}

/// The ledger id (`p_…`) of the patient whose `Patient.id` is `clear`, custodian `msp`.
pub(crate) fn lp_at(msp: &str, clear: &str) -> String {
    pseudonym_key(msp).patient(clear)
}

/// The ledger id (`p_…`) of a patient of Org1MSP (every test patient unless said otherwise).
pub(crate) fn lp(clear: &str) -> String {
    lp_at("Org1MSP", clear)
}

/// The ledger id (`Type/r_…`) of resource `reference` (clear `Type/id`) of patient `clear`,
/// custodian `msp`.
pub(crate) fn lr_at(msp: &str, clear: &str, reference: &str) -> String {
    let reference: ResourceRef = reference.parse().unwrap();
    pseudonym_key(msp).record(clear, &reference).to_string()
}

/// The ledger id (`Type/r_…`) of a record of a patient of Org1MSP.
pub(crate) fn lr(clear: &str, reference: &str) -> String {
    lr_at("Org1MSP", clear, reference)
}

fn ledger_id_once(cell: &'static OnceLock<String>, clear: &str) -> &'static str {
    cell.get_or_init(|| lp(clear)).as_str()
}

/// The ledger id of [`PA`].
pub(crate) fn lpa() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ledger_id_once(&ID, PA)
}

/// The ledger id of [`PB`].
pub(crate) fn lpb() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ledger_id_once(&ID, PB)
}

/// The transient map of a PHI-carrying call: the clear `Patient.id` and the PHI.
pub(crate) fn phi<'a>(clear: &'a str, name: &'a str, bytes: &'a [u8]) -> [(&'a str, &'a [u8]); 2] {
    [("patient", clear.as_bytes()), (name, bytes)]
}

/// Identities by name: (MSP id, attributes).
fn spec(name: &str) -> (&'static str, Vec<(&'static str, String)>) {
    let role = |r: &str| vec![("ehr.role", r.to_owned())];
    let emergency = |r: &str| vec![("ehr.role", r.to_owned()), ("ehr.emergency", "true".into())];
    // A patient's certificate names its ledger id (ADR 0031), at Org1MSP.
    let patient = |p: &str| vec![("ehr.role", "patient".into()), ("ehr.patient_id", lp(p))];
    match name {
        "admin1" => ("Org1MSP", role("admin")),
        "registrar1" => ("Org1MSP", role("registrar")),
        "doctor1" => ("Org1MSP", role("doctor")),
        "nurse1" => ("Org1MSP", role("nurse")),
        "lab1" => ("Org1MSP", role("lab")),
        "insurer1" => ("Org1MSP", role("insurer")),
        "researcher1" => ("Org1MSP", role("researcher")),
        "auditor1" => ("Org1MSP", role("auditor")),
        "norole1" => ("Org1MSP", vec![]),
        "badrole1" => ("Org1MSP", role("superuser")),
        "patientA" => ("Org1MSP", patient(PA)),
        "patientB" => ("Org1MSP", patient(PB)),
        // A certificate of another organization's CA claiming to be patient A.
        "patientA@org2" => ("Org2MSP", patient(PA)),
        "admin2" => ("Org2MSP", role("admin")),
        "doctor2" => ("Org2MSP", role("doctor")),
        "doctor2b" => ("Org2MSP", role("doctor")),
        "nurse2" => ("Org2MSP", role("nurse")),
        "lab2" => ("Org2MSP", role("lab")),
        "insurer2" => ("Org2MSP", role("insurer")),
        "researcher2" => ("Org2MSP", role("researcher")),
        "auditor2" => ("Org2MSP", role("auditor")),
        "emergency2" => ("Org2MSP", emergency("doctor")),
        // Re-issued without ehr.emergency by one test (`reissue`): used by no other.
        "emergency2b" => ("Org2MSP", emergency("doctor")),
        "doctor3" => ("Org3MSP", emergency("doctor")),
        "nurse3" => ("Org3MSP", emergency("nurse")),
        "lab3" => ("Org3MSP", emergency("lab")),
        "plain3" => ("Org3MSP", role("doctor")),
        "admin3" => ("Org3MSP", role("admin")),
        "researcher3" => ("Org3MSP", role("researcher")),
        "auditor3" => ("Org3MSP", role("auditor")),
        // MSP admins (NodeOU admin, see `node_ou`): they act in EHR governance.
        "gov1" => ("Org1MSP", vec![]),
        "gov2" => ("Org2MSP", vec![]),
        "gov3" => ("Org3MSP", vec![]),
        "gov4" => ("Org4MSP", vec![]),
        "emergency4" => ("Org4MSP", emergency("doctor")),
        "auditor4" => ("Org4MSP", role("auditor")),
        other => {
            // `patient:<Patient.id>`: a patient identity of Org1MSP for that (clear) id.
            let id = other
                .strip_prefix("patient:")
                .unwrap_or_else(|| panic!("no identity {other}"));
            ("Org1MSP", patient(id))
        }
    }
}

/// The NodeOU of a named identity: `gov*` are MSP admins, everyone else a client.
fn node_ou(name: &str) -> NodeOu {
    if name.starts_with("gov") {
        NodeOu::Admin
    } else {
        NodeOu::Client
    }
}

struct Registry {
    orgs: BTreeMap<&'static str, TestOrg>,
    creators: BTreeMap<String, Creator>,
}

fn registry() -> &'static Mutex<Registry> {
    static REG: OnceLock<Mutex<Registry>> = OnceLock::new();
    REG.get_or_init(|| {
        Mutex::new(Registry {
            orgs: BTreeMap::new(),
            creators: BTreeMap::new(),
        })
    })
}

/// The creator (MSP id, certificate, serialized identity) of a named test identity; issued
/// once per process by a real CA of its organization.
pub(crate) fn creator(name: &str) -> Creator {
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = reg.creators.get(name) {
        return c.clone();
    }
    let (msp, attrs) = spec(name);
    let org = reg.orgs.entry(msp).or_insert_with(|| {
        let domain = format!("{}.example.com", msp.trim_end_matches("MSP").to_lowercase());
        TestOrg::new(msp, &domain)
    });
    let attrs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let enrollment = name.replace([':', '@'], "-");
    let id = org.identity(&enrollment, node_ou(name), &attrs);
    let c = Creator {
        msp_id: id.msp_id().to_owned(),
        cert: id.certificate().clone(),
        serialized: id.serialized().to_vec(),
    };
    reg.creators.insert(name.to_owned(), c.clone());
    c
}

/// A new certificate for the named identity (a re-enrollment at its CA: same registered
/// identity and attributes, new key and certificate). Later calls as `name` use it.
pub(crate) fn reenroll(name: &str) -> Creator {
    creator(name);
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    let (msp, _) = spec(name);
    let org = reg.orgs.get_mut(msp).unwrap();
    let enrollment = name.replace([':', '@'], "-");
    let key = medledger_msp::crypto::SigningKey::generate().unwrap();
    let csr = medledger_ca::build_csr(&key, &enrollment, &[]).unwrap();
    let e = org
        .ca
        .reenroll(&enrollment, &csr, medledger_ca::Profile::Ecert, &[])
        .unwrap();
    let cert = medledger_msp::cert::Certificate::from_pem(e.cert_pem.as_bytes()).unwrap();
    let id = medledger_msp::identity::SigningIdentity::new(msp, cert, key).unwrap();
    let c = Creator {
        msp_id: id.msp_id().to_owned(),
        cert: id.certificate().clone(),
        serialized: id.serialized().to_vec(),
    };
    reg.creators.insert(name.to_owned(), c.clone());
    c
}

/// A new certificate for the named identity with other attributes: its organization's CA
/// re-issuing the person's certificate (same MSP, same enrollment id, so the same identity
/// id) after, say, taking `ehr.emergency` away. Our CA cannot modify a registration, so a
/// second CA of the same MSP id issues it; the contract sees only the certificate. Later calls
/// as `name` use it.
pub(crate) fn reissue(name: &str, attrs: &[(&str, &str)]) -> Creator {
    creator(name);
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    let (msp, _) = spec(name);
    let domain = format!(
        "{}.reissue.example.com",
        msp.trim_end_matches("MSP").to_lowercase()
    );
    let mut org = TestOrg::new(msp, &domain);
    let enrollment = name.replace([':', '@'], "-");
    let id = org.identity(&enrollment, node_ou(name), attrs);
    let c = Creator {
        msp_id: id.msp_id().to_owned(),
        cert: id.certificate().clone(),
        serialized: id.serialized().to_vec(),
    };
    reg.creators.insert(name.to_owned(), c.clone());
    c
}

/// The identity id of a named identity (what consents to one identity name): the person,
/// from the enrollment id.
pub(crate) fn identity_id(name: &str) -> String {
    ehr_chaincode::Caller::from_creator(&creator(name)).id
}

/// Start of the test clock: 2024-01-01T00:00:00Z, ms.
pub(crate) const T0_MS: u64 = 1_704_067_200_000;

/// One call made, for privacy checks.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub function: String,
    /// Every argument, the function name included (what the transaction carries in clear).
    pub args: Vec<String>,
    pub status: i32,
    pub message: String,
    pub payload: Vec<u8>,
}

/// The contract on an in-memory ledger.
pub(crate) struct Net {
    pub ledger: MemoryLedger,
    pub cc: Router,
    pub now_ms: u64,
    seq: u64,
    pub calls: Vec<Call>,
}

/// Everything a transaction could change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub public: BTreeMap<String, Vec<u8>>,
    pub private: BTreeMap<(String, String), Vec<u8>>,
    pub events: usize,
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}

impl Net {
    /// A ledger whose EHR governance is seeded as `network up` seeds a channel of Org1MSP,
    /// Org2MSP and Org3MSP: each founder confirms the founding set, so the three govern and
    /// each approves each one's break-glass and auditor authority. Org4MSP (`gov4`,
    /// `emergency4`, `auditor4`) is an organization that came later and holds none.
    ///
    /// Each organization of [`KEYED_ORGS`] has its pseudonym key set, as [`Net::bare`].
    pub(crate) fn new() -> Net {
        Net::with_pseudonym_keys(&["Org1MSP", "Org2MSP", "Org3MSP"])
    }

    /// As [`Net::new`], but only `orgs` (of [`KEYED_ORGS`]) have their pseudonym key set.
    pub(crate) fn with_pseudonym_keys(orgs: &[&str]) -> Net {
        let mut n = Net::empty();
        n.set_pseudonym_keys(orgs);
        for gov in ["gov1", "gov2", "gov3"] {
            n.ok(gov, &["JoinGovernance", "Org1MSP,Org2MSP,Org3MSP"]);
        }
        n
    }

    /// A ledger without any EHR governance: no organization holds break-glass or auditor
    /// authority. The organizations of [`KEYED_ORGS`] have their pseudonym key set (it takes
    /// no governance).
    pub(crate) fn bare() -> Net {
        let mut n = Net::empty();
        n.set_pseudonym_keys(&["Org1MSP", "Org2MSP", "Org3MSP"]);
        n
    }

    fn empty() -> Net {
        Net {
            ledger: MemoryLedger::new(),
            cc: ehr_chaincode::contract(),
            now_ms: T0_MS,
            seq: 0,
            calls: Vec::new(),
        }
    }

    /// Sets each organization's test key ([`pseudonym_key`]) through `SetPseudonymKey` as its
    /// admin.
    pub(crate) fn set_pseudonym_keys(&mut self, orgs: &[&str]) {
        for msp in orgs {
            let (_, admin) = KEYED_ORGS.iter().find(|(m, _)| m == msp).unwrap();
            let key = pseudonym_key(msp);
            let v = self.ok_t(
                admin,
                &["SetPseudonymKey"],
                &[("pseudonym_key", key.as_bytes())],
            );
            assert_eq!(v["set"], true, "{msp}: {v}");
        }
    }

    /// `LedgerIds` as `who` at `custodian`: the ledger ids of patient `clear` and of its
    /// resources `references` (clear `Type/id`), checked against the test key.
    #[track_caller]
    pub(crate) fn ledger_ids(
        &mut self,
        who: &str,
        custodian: &str,
        clear: &str,
        references: &[String],
    ) -> (String, Vec<String>) {
        let ids = serde_json::json!({"patient": clear, "records": references}).to_string();
        let v = self.ok_t(who, &["LedgerIds", custodian], &[("ids", ids.as_bytes())]);
        let patient = v["patient"].as_str().unwrap().to_owned();
        let records: Vec<String> = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(patient, lp_at(custodian, clear));
        let expected: Vec<String> = references
            .iter()
            .map(|r| lr_at(custodian, clear, r))
            .collect();
        assert_eq!(records, expected);
        (patient, records)
    }

    /// Advances the clock.
    pub(crate) fn advance_s(&mut self, s: u64) {
        self.now_ms += s * 1000;
    }

    /// A fresh Fabric-like tx id (64 hex digits).
    pub(crate) fn next_tx_id(&mut self) -> String {
        self.seq += 1;
        hex::encode(Sha256::digest(format!("tx-{}", self.seq)))
    }

    /// Invokes `args` as `who` (`None` = no creator) with a transient map.
    pub(crate) fn invoke_as(
        &mut self,
        who: Option<&str>,
        args: &[&str],
        transient: &[(&str, &[u8])],
    ) -> Response {
        self.now_ms += 1;
        let ctx = TxContext {
            channel_id: "ehr".into(),
            tx_id: self.next_tx_id(),
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            transient: transient
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
            creator: who.map(creator),
            timestamp: Some(UNIX_EPOCH + Duration::from_millis(self.now_ms)),
        };
        let r = self.ledger.invoke(&self.cc, ctx);
        self.calls.push(Call {
            function: args.first().map(|s| (*s).to_owned()).unwrap_or_default(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            status: r.status,
            message: r.message.clone(),
            payload: r.payload.clone(),
        });
        r
    }

    pub(crate) fn call(&mut self, who: &str, args: &[&str]) -> Response {
        self.invoke_as(Some(who), args, &[])
    }

    pub(crate) fn call_t(
        &mut self,
        who: &str,
        args: &[&str],
        transient: &[(&str, &[u8])],
    ) -> Response {
        self.invoke_as(Some(who), args, transient)
    }

    /// Calls and expects status 200; returns the payload as JSON (or `Null` if not JSON).
    #[track_caller]
    pub(crate) fn ok(&mut self, who: &str, args: &[&str]) -> Value {
        let r = self.call(who, args);
        assert_eq!(r.status, 200, "{args:?} as {who}: {}", r.message);
        serde_json::from_slice(&r.payload).unwrap_or(Value::Null)
    }

    #[track_caller]
    pub(crate) fn ok_t(&mut self, who: &str, args: &[&str], transient: &[(&str, &[u8])]) -> Value {
        let r = self.call_t(who, args, transient);
        assert_eq!(r.status, 200, "{args:?} as {who}: {}", r.message);
        serde_json::from_slice(&r.payload).unwrap_or(Value::Null)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            public: self.ledger.public_state(),
            private: self.ledger.private_state(),
            events: self.ledger.events().len(),
        }
    }

    /// Calls and asserts `status`, and that nothing changed.
    #[track_caller]
    pub(crate) fn refused(
        &mut self,
        who: Option<&str>,
        args: &[&str],
        transient: &[(&str, &[u8])],
        status: i32,
    ) -> String {
        let before = self.snapshot();
        let r = self.invoke_as(who, args, transient);
        assert_eq!(
            r.status, status,
            "{args:?} as {who:?}: expected {status}, got {} {}",
            r.status, r.message
        );
        assert!(r.payload.is_empty());
        assert_eq!(self.snapshot(), before, "{args:?} as {who:?} changed state");
        r.message
    }

    pub(crate) fn events(&self) -> Vec<Event> {
        self.ledger.events()
    }

    /// Names of the last event (expanding a combined `EhrEvents`).
    pub(crate) fn last_event_names(&self) -> Vec<String> {
        let events = self.ledger.events();
        let Some(e) = events.last() else {
            return vec![];
        };
        if e.name == "EhrEvents" {
            let v: Value = serde_json::from_slice(&e.payload).unwrap();
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["name"].as_str().unwrap().to_owned())
                .collect()
        } else {
            vec![e.name.clone()]
        }
    }

    /// Registers the patient whose `Patient.id` is `clear` at Org1MSP (collection
    /// Org1MSPPHI), under its ledger id.
    pub(crate) fn register(&mut self, clear: &str) {
        self.ok("admin1", &["RegisterPatient", &lp(clear)]);
    }

    /// Reserves record ledger ids (`Type/r_…`) of patient `patient_id` (ledger id) as `who`.
    #[track_caller]
    pub(crate) fn reserve(&mut self, who: &str, patient_id: &str, ids: &[String]) -> Value {
        let ids = serde_json::to_string(ids).unwrap();
        self.ok(who, &["ReserveRecords", patient_id, &ids])
    }

    /// Creates a record of the Org1MSP patient whose `Patient.id` is `clear`, as `who`, in
    /// the client's three steps: `LedgerIds` (evaluated), `ReserveRecords` with the ledger
    /// ids, `CreateRecord` with the resource and the clear id in the transient map.
    #[track_caller]
    pub(crate) fn create(&mut self, who: &str, clear: &str, resource: &[u8]) -> Value {
        self.create_at(who, "Org1MSP", clear, resource)
    }

    /// As [`Net::create`] for a patient of `custodian`.
    #[track_caller]
    pub(crate) fn create_at(
        &mut self,
        who: &str,
        custodian: &str,
        clear: &str,
        resource: &[u8],
    ) -> Value {
        let v: Value = serde_json::from_slice(resource).unwrap();
        let reference = format!(
            "{}/{}",
            v["resourceType"].as_str().unwrap(),
            v["id"].as_str().unwrap()
        );
        let (patient, records) = self.ledger_ids(who, custodian, clear, &[reference]);
        self.reserve(who, &patient, &records);
        self.ok_t(
            who,
            &["CreateRecord", &patient],
            &phi(clear, "resource", resource),
        )
    }

    /// As [`Net::create`] for a bundle's entries (`CreateRecordsFromBundle`).
    #[track_caller]
    pub(crate) fn create_bundle(&mut self, who: &str, clear: &str, bundle: &[u8]) -> Value {
        let references: Vec<String> = ehr_chaincode::fhir::bundle_record_ids(bundle)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        let (patient, records) = self.ledger_ids(who, "Org1MSP", clear, &references);
        self.reserve(who, &patient, &records);
        self.ok_t(
            who,
            &["CreateRecordsFromBundle", &patient],
            &phi(clear, "bundle", bundle),
        )
    }

    /// Grants a consent (as the patient named `patient`) and returns its id.
    #[track_caller]
    pub(crate) fn grant(&mut self, patient: &str, consent: Value) -> String {
        let v = self.ok(patient, &["GrantConsent", &consent.to_string()]);
        v["consent_id"].as_str().unwrap().to_owned()
    }

    /// RequestRecordAccess (ledger ids): (access id, decision).
    #[track_caller]
    pub(crate) fn request(
        &mut self,
        who: &str,
        patient_id: &str,
        record: &str,
        purpose: &str,
    ) -> (String, String) {
        let v = self.ok(who, &["RequestRecordAccess", patient_id, record, purpose]);
        // A grant also pins the version (version, sha256, updated_at_ms): ids and metadata,
        // never PHI.
        let fields = if v["decision"] == "granted" { 5 } else { 2 };
        assert_eq!(v.as_object().unwrap().len(), fields, "{v}");
        if v["decision"] == "granted" {
            assert!(v["version"].as_u64().unwrap() >= 1, "{v}");
            assert_eq!(v["sha256"].as_str().unwrap().len(), 64, "{v}");
            assert!(v["updated_at_ms"].is_u64(), "{v}");
        }
        (
            v["access_id"].as_str().unwrap().to_owned(),
            v["decision"].as_str().unwrap().to_owned(),
        )
    }

    /// Access state of (patient, grantee) as read by an auditor (ledger patient id).
    pub(crate) fn state(&mut self, patient_id: &str, grantee: &str) -> String {
        let v = self.ok("auditor1", &["GetAccessState", patient_id, grantee]);
        v["state"].as_str().unwrap().to_owned()
    }

    /// Requests access and reads the record (ledger ids) (bytes), asserting both succeed.
    #[track_caller]
    pub(crate) fn read(
        &mut self,
        who: &str,
        patient_id: &str,
        record: &str,
        purpose: &str,
    ) -> Vec<u8> {
        let (access, decision) = self.request(who, patient_id, record, purpose);
        assert_eq!(decision, "granted", "{who} {record}");
        let r = self.call(who, &["ReadRecord", patient_id, &access]);
        assert_eq!(r.status, 200, "ReadRecord {record} as {who}: {}", r.message);
        r.payload
    }
}

/// A small Observation of `patient_id`.
pub(crate) fn observation(id: &str, patient_id: &str) -> Vec<u8> {
    format!(
        r#"{{"resourceType":"Observation","id":"{id}","status":"final","code":{{"text":"Body Height"}},"subject":{{"reference":"urn:uuid:{patient_id}"}},"valueQuantity":{{"value":172.4,"unit":"cm"}}}}"#
    )
    .into_bytes()
}

/// A small Condition of `patient_id`.
pub(crate) fn condition(id: &str, patient_id: &str) -> Vec<u8> {
    format!(
        r#"{{"resourceType":"Condition","id":"{id}","code":{{"text":"Viral sinusitis"}},"subject":{{"reference":"Patient/{patient_id}"}}}}"#
    )
    .into_bytes()
}

/// A FHIR transaction Bundle of `resources`.
pub(crate) fn bundle(resources: &[Vec<u8>]) -> Vec<u8> {
    let entries: Vec<String> = resources
        .iter()
        .map(|r| {
            format!(
                r#"{{"resource":{},"request":{{"method":"POST","url":"x"}}}}"#,
                String::from_utf8_lossy(r)
            )
        })
        .collect();
    format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[{}]}}"#,
        entries.join(",")
    )
    .into_bytes()
}

/// PA registered at Org1MSP with Observation/obs-1 and Condition/cond-1.
pub(crate) fn pa_with_records() -> Net {
    let mut n = Net::new();
    n.register(PA);
    n.create("doctor1", PA, &observation("obs-1", PA));
    n.create("doctor1", PA, &condition("cond-1", PA));
    n
}

/// A Patient resource.
pub(crate) fn patient_resource(patient_id: &str) -> Vec<u8> {
    format!(
        r#"{{"resourceType":"Patient","id":"{patient_id}","name":[{{"family":"Zyxwvutson","given":["Quintavius"]}}],"gender":"male","birthDate":"1970-01-01"}}"#
    )
    .into_bytes()
}

/// Hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The public metadata key of a record of an Org1MSP patient, from its clear ids
/// (`Patient.id`, `Type/id`): the key under their ledger ids.
pub(crate) fn record_key(clear: &str, reference: &str) -> String {
    let record = lr(clear, reference);
    let (t, id) = record.split_once('/').unwrap();
    medledger_chaincode::composite::create("record", &[&lp(clear), t, id]).unwrap()
}

/// The sample data's `bundles/` directory: `$MEDLEDGER_EHR_BUNDLES` if set, else the first
/// `shared/data/ehr/bundles` found going up from this crate (`../../../shared/…` from the
/// main checkout, one level more from a worktree under `wt/`). Panics if there is none: the
/// sample-data tests must not pass by skipping.
pub(crate) fn bundles_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("MEDLEDGER_EHR_BUNDLES") {
        return dir.into();
    }
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .ancestors()
        .map(|a| a.join("shared/data/ehr/bundles"))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no shared/data/ehr/bundles above {}; set MEDLEDGER_EHR_BUNDLES",
                crate_dir.display()
            )
        })
}

/// Five sample patients covering all 16 resource types of the sample data, including the
/// largest bundle (302 entries, 638 kB).
pub(crate) const SAMPLE_PATIENTS: [&str; 5] = [
    "77f70af5-b53b-4e55-a122-8cd68784c258",
    "148f10e1-2182-4297-ac1f-39bb9eca6f1a",
    "76bc2bcd-3074-46b9-bc18-18daf50825a2",
    "12981771-2029-4458-9260-efb1e6b43db7",
    "07f741ce-220d-4744-b1ab-d28366110264",
];

/// The bundle file of a sample patient.
pub(crate) fn sample_bundle(patient_id: &str) -> Vec<u8> {
    let path = bundles_dir().join(format!("{patient_id}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A resource of a sample bundle: its reference (clear `Type/id`), its record's ledger id at
/// Org1MSP, its original bytes (a slice of the file, so byte-exact) and its parsed value.
pub(crate) struct SampleResource {
    pub reference: String,
    pub record_id: String,
    pub bytes: Vec<u8>,
    pub value: Value,
}

/// The resources of a bundle file. Independently of the contract's parsing, checks that each
/// is a sub-slice of the file (its original bytes, untouched) and parses to the same value as
/// the entry's `resource` in a plain parse of the whole bundle. `patient_id` is the bundle's
/// patient (clear), for the ledger ids.
pub(crate) fn sample_resources(file: &[u8], patient_id: &str) -> Vec<SampleResource> {
    let plain: Value = serde_json::from_slice(file).unwrap();
    let entries = plain["entry"].as_array().unwrap();
    let raws = ehr_chaincode::fhir::bundle_resources(file).unwrap();
    assert_eq!(raws.len(), entries.len());
    let base = file.as_ptr() as usize;
    raws.iter()
        .zip(entries)
        .map(|(raw, entry)| {
            let offset = raw.as_ptr() as usize - base;
            assert!(offset + raw.len() <= file.len());
            assert_eq!(&file[offset..offset + raw.len()], *raw);
            let value: Value = serde_json::from_slice(raw).unwrap();
            assert_eq!(value, entry["resource"]);
            let reference = format!(
                "{}/{}",
                value["resourceType"].as_str().unwrap(),
                value["id"].as_str().unwrap()
            );
            SampleResource {
                record_id: lr(patient_id, &reference),
                reference,
                bytes: raw.to_vec(),
                value,
            }
        })
        .collect()
}

/// The number of resources of a patient's bundle per `manifest.csv`.
pub(crate) fn manifest_resources(patient_id: &str) -> usize {
    let manifest = std::fs::read_to_string(bundles_dir().join("../manifest.csv")).unwrap();
    manifest
        .lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            (cols.get(1) == Some(&patient_id)).then(|| cols[3].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{patient_id} not in manifest"))
}

/// Loads a sample patient at Org1MSP: registers it, then stores its bundle in chunks of at
/// most `chunk_bytes` (split client-side) as `doctor1`; returns the resources and the number
/// of chunks.
pub(crate) fn load_sample_patient(
    n: &mut Net,
    patient_id: &str,
    chunk_bytes: usize,
) -> (Vec<SampleResource>, usize) {
    n.register(patient_id);
    let file = sample_bundle(patient_id);
    let resources = sample_resources(&file, patient_id);
    let chunks = ehr_chaincode::fhir::split_bundle(&file, chunk_bytes, 100).unwrap();
    let mut created = 0;
    for chunk in &chunks {
        let v = n.create_bundle("doctor1", patient_id, chunk);
        created += v["created"].as_u64().unwrap();
        assert_eq!(v["unchanged"], 0);
    }
    assert_eq!(created as usize, resources.len());
    (resources, chunks.len())
}
