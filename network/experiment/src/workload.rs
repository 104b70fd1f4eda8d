//! The fixed EHR workload: one chain of requests per patient, in the order an EHR
//! application issues them (register, reserve, create a record, maybe grant consent, an
//! access request by another organization's doctor, one by its researcher).

use ehr_chaincode::ids::PseudonymKey;
use medledger_msp::identity::SigningIdentity;
use medledger_msp::ou::NodeOu;
use medledger_orderer::sim::Sim;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Who sends a request (index into [`Clients::identities`]); each belongs to an organization
/// whose peer is its gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum ClientId {
    /// Org1's EHR admin (stores Org1's pseudonym key before the workload, ADR 0031).
    Admin1,
    /// Org1's registrar (registers patients: Org1 is their custodian).
    Registrar,
    /// Org1's doctor (reserves and creates records).
    Doctor1,
    /// The patient of the chain (an Org1 client with `ehr.patient_id`).
    Patient,
    /// Org2's doctor (requests access for treatment).
    Doctor2,
    /// Org2's researcher (requests access for treatment: the contract refuses, 403).
    Researcher2,
}

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Step {
    /// `RegisterPatient`.
    Register,
    /// `ReserveRecords` for the patient's Observation.
    Reserve,
    /// `CreateRecord` with the Observation in the transient map (custodian-endorsed).
    Create,
    /// `GrantConsent` to Org2 for Observations, treatment.
    Consent,
    /// `RequestRecordAccess` by Org2's doctor: granted with consent, denied without.
    Access,
    /// `RequestRecordAccess` by Org2's researcher for treatment: refused by the contract.
    ResearchAccess,
}

/// One request of the workload.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// Patient (chain) index.
    pub patient: usize,
    /// Who sends it.
    pub client: ClientId,
    /// Chaincode arguments, function first.
    pub args: Vec<Vec<u8>>,
    /// Transient map entries (the Observation of `Create`).
    pub transient: Vec<(String, Vec<u8>)>,
    /// Whether only the custodian endorses it (`CreateRecord`: PHI goes to Org1 only).
    pub custodian_only: bool,
}

/// The workload: chains of requests, one per patient.
pub(crate) struct Workload {
    /// Chains, each a list of request indices into `requests`, in issue order.
    pub chains: Vec<Vec<usize>>,
    /// Every request.
    pub requests: Vec<Request>,
}

/// `Patient.id` of chain `i` (clear: it reaches only Org1's peer, in transient maps).
fn patient_id(i: usize) -> String {
    format!("patient-{i}")
}

/// Org1's pseudonym key in the experiment (fixed, so every run names patients alike).
fn pseudonym_key() -> PseudonymKey {
    PseudonymKey::from_bytes(&[0x6d; PseudonymKey::LEN])
        .unwrap_or_else(|_| unreachable!("the key has the right length"))
}

/// The ledger id of chain `i`'s patient (ADR 0031).
fn ledger_patient(i: usize) -> String {
    pseudonym_key().patient(&patient_id(i))
}

/// `SetPseudonymKey` by Org1's admin: run once, before any misbehaviour, so that Org1's
/// peer derives the ledger ids the workload names.
pub(crate) fn setup_request() -> Request {
    Request {
        patient: 0,
        client: ClientId::Admin1,
        args: vec![b"SetPseudonymKey".to_vec()],
        transient: vec![(
            ehr_chaincode::TRANSIENT_PSEUDONYM_KEY.to_owned(),
            pseudonym_key().as_bytes().to_vec(),
        )],
        custodian_only: true,
    }
}

impl Workload {
    /// At least `n` requests (whole chains), drawn from `seed`: the same for every run with
    /// the same `n` and `seed`.
    pub(crate) fn new(n: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6d65_646c_6564_6765);
        let mut requests = Vec::new();
        let mut chains = Vec::new();
        let mut i = 0;
        while requests.len() < n {
            let clear = patient_id(i);
            let p = ledger_patient(i);
            let record = pseudonym_key()
                .record(
                    &clear,
                    &ehr_chaincode::ids::ResourceRef::new("Observation", &format!("obs-{i}"))
                        .unwrap_or_else(|_| unreachable!("a valid reference")),
                )
                .to_string();
            let observation = format!(
                r#"{{"resourceType":"Observation","id":"obs-{i}","status":"final","code":{{"text":"Body Height"}},"subject":{{"reference":"urn:uuid:{clear}"}},"valueQuantity":{{"value":{}.{},"unit":"cm"}}}}"#,
                rng.random_range(150..200),
                rng.random_range(0..10)
            );
            let consent = rng.random_bool(0.5);
            let mut chain = Vec::new();
            let mut push = |step: Step, client: ClientId, args: Vec<String>| {
                chain.push(requests.len());
                requests.push(Request {
                    patient: i,
                    client,
                    args: args.into_iter().map(String::into_bytes).collect(),
                    transient: if step == Step::Create {
                        vec![
                            (
                                ehr_chaincode::TRANSIENT_RESOURCE.to_owned(),
                                observation.clone().into_bytes(),
                            ),
                            (
                                ehr_chaincode::TRANSIENT_PATIENT.to_owned(),
                                clear.clone().into_bytes(),
                            ),
                        ]
                    } else {
                        Vec::new()
                    },
                    custodian_only: step == Step::Create,
                });
            };
            push(
                Step::Register,
                ClientId::Registrar,
                vec!["RegisterPatient".into(), p.clone()],
            );
            push(
                Step::Reserve,
                ClientId::Doctor1,
                vec![
                    "ReserveRecords".into(),
                    p.clone(),
                    format!(r#"["{record}"]"#),
                ],
            );
            push(
                Step::Create,
                ClientId::Doctor1,
                vec!["CreateRecord".into(), p.clone()],
            );
            if consent {
                push(
                    Step::Consent,
                    ClientId::Patient,
                    vec![
                        "GrantConsent".into(),
                        format!(
                            r#"{{"patient_id":"{p}","grantee":{{"org":"Org2MSP"}},"resource_types":["Observation"],"purposes":["treatment"],"valid_for_s":86400}}"#
                        ),
                    ],
                );
            }
            push(
                Step::Access,
                ClientId::Doctor2,
                vec![
                    "RequestRecordAccess".into(),
                    p.clone(),
                    record.clone(),
                    "treatment".into(),
                ],
            );
            push(
                Step::ResearchAccess,
                ClientId::Researcher2,
                vec![
                    "RequestRecordAccess".into(),
                    p.clone(),
                    record.clone(),
                    "treatment".into(),
                ],
            );
            chains.push(chain);
            i += 1;
        }
        Workload { chains, requests }
    }
}

/// The workload's client identities, issued by the network's CAs.
pub(crate) struct Clients {
    admin1: SigningIdentity,
    registrar: SigningIdentity,
    doctor1: SigningIdentity,
    doctor2: SigningIdentity,
    researcher2: SigningIdentity,
    patients: Vec<SigningIdentity>,
}

impl Clients {
    /// Enrolls the clients of `patients` chains at the organizations' CAs of `sim`'s channel.
    pub(crate) fn new(sim: &mut Sim, patients: usize) -> Self {
        let org1 = &mut sim.ch.orgs[0];
        let admin1 = org1.identity("admin1", NodeOu::Client, &[("ehr.role", "admin")]);
        let registrar = org1.identity("registrar1", NodeOu::Client, &[("ehr.role", "registrar")]);
        let doctor1 = org1.identity("doctor1", NodeOu::Client, &[("ehr.role", "doctor")]);
        let patients = (0..patients)
            .map(|i| {
                let p = ledger_patient(i);
                org1.identity(
                    &format!("patient{i}"),
                    NodeOu::Client,
                    &[("ehr.role", "patient"), ("ehr.patient_id", p.as_str())],
                )
            })
            .collect();
        let org2 = &mut sim.ch.orgs[1];
        let doctor2 = org2.identity("doctor2", NodeOu::Client, &[("ehr.role", "doctor")]);
        let researcher2 =
            org2.identity("researcher2", NodeOu::Client, &[("ehr.role", "researcher")]);
        Clients {
            admin1,
            registrar,
            doctor1,
            doctor2,
            researcher2,
            patients,
        }
    }

    /// The identity that sends `request`.
    pub(crate) fn identity(&self, request: &Request) -> &SigningIdentity {
        match request.client {
            ClientId::Admin1 => &self.admin1,
            ClientId::Registrar => &self.registrar,
            ClientId::Doctor1 => &self.doctor1,
            ClientId::Patient => &self.patients[request.patient],
            ClientId::Doctor2 => &self.doctor2,
            ClientId::Researcher2 => &self.researcher2,
        }
    }

    /// Index of the organization of `client` (its gateway peer).
    pub(crate) fn org(client: ClientId) -> usize {
        match client {
            ClientId::Admin1 | ClientId::Registrar | ClientId::Doctor1 | ClientId::Patient => 0,
            ClientId::Doctor2 | ClientId::Researcher2 => 1,
        }
    }
}
