//! Records: FHIR resources stored as PHI in the custodian's private data collection, with
//! public metadata (ids, type, version, author, time, SHA-256) under the same key.
//!
//! Creating a record takes two transactions (ADR 0020): `ReserveRecords` (no PHI, channel
//! endorsement policy) creates the metadata keys with the custodian's key-level endorsement
//! policy; `CreateRecord` / `CreateRecordsFromBundle` (PHI in the transient map) then write
//! only keys governed by the custodian — those reserved keys and the custodian's collection —
//! so the custodian's peers alone endorse them and PHI reaches no other organization.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use medledger_chaincode::ChaincodeStub;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::access::{
    ConsentCheck, Relation, check_consents, consents_for, load_active_record, load_record,
    parse_purpose, refuse_blocked, relations,
};
use crate::caller::{Caller, Role};
use crate::error::{EhrError, Result};
use crate::events;
use crate::fhir::{MAX_BUNDLE_ENTRIES, Resource, bundle_resources, parse_resource};
use crate::ids::{Grantee, PseudonymKey, RecordId, check_msp_id, default_collection};
use crate::ids::{consent_range, record_key, record_range};
use crate::ids::{locator_key, share_collection};
use crate::model::{Consent, Locator, PatientEntry, Purpose, RecordMeta, RecordStatus, SharedCopy};
use crate::policy::custodian_endorsement_policy;
use crate::pseudonyms::{check_clear_patient_id, clear_patient_id};
use crate::registry::effective_template;
use crate::state_machine::AccessState;
use crate::template::{PatientLink, Template};
use crate::tx::{Events, all, get_json, json_param, load_patient, now_ms, opt_param, page};
use crate::tx::{page_params, param, put_json, to_json};

/// Transient map key carrying one resource's JSON (`CreateRecord`, `UpdateRecord`).
pub const TRANSIENT_RESOURCE: &str = "resource";
/// Transient map key carrying a Bundle's JSON (`CreateRecordsFromBundle`).
pub const TRANSIENT_BUNDLE: &str = "bundle";

/// Who may write records of `patient` of `resource_type`: staff of the custodian, or a
/// clinician (doctor, nurse, lab) of another organization holding a consent in force for this
/// type and `treatment`, with an Authorized relation. Only reads here: the PHI-carrying
/// transactions write nothing but custodian-governed keys.
fn authorize_write(
    stub: &dyn ChaincodeStub,
    caller: &Caller,
    patient: &PatientEntry,
    resource_type: &str,
    now: u64,
) -> Result<()> {
    if caller.is_staff_of(&patient.custodian_msp) {
        return Ok(());
    }
    if caller.role.is_some_and(Role::is_clinician) {
        let rels = relations(stub, &patient.patient_id, caller)?;
        refuse_blocked(&rels, &patient.patient_id)?;
        let consents = consents_for(stub, &patient.patient_id, &rels)?;
        if let ConsentCheck::Granted(_) =
            check_consents(&consents, &rels, resource_type, Purpose::Treatment, now)
        {
            return Ok(());
        }
    }
    Err(EhrError::forbidden(format!(
        "only staff of the custodian, or a clinician with a treatment consent for {resource_type}, \
         writes records of patient {}",
        patient.patient_id
    )))
}

fn template_for(stub: &dyn ChaincodeStub, resource_type: &str) -> Result<Template> {
    effective_template(stub, resource_type)?.ok_or_else(|| {
        EhrError::invalid(format!(
            "resource type {resource_type} has no template (unknown type)"
        ))
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn summary(meta: &RecordMeta) -> serde_json::Value {
    json!({"record_id": meta.record_id, "version": meta.version, "sha256": meta.sha256})
}

/// `ReserveRecords PATIENT_ID RECORD_IDS_JSON` (submitted; the channel's endorsement policy;
/// no PHI: only ledger ids `["ResourceType/r_…", …]` from `LedgerIds`, at most
/// [`MAX_BUNDLE_ENTRIES`]). Creates each
/// record's public key with status `reserved`, version 0, and the custodian's key-level
/// endorsement policy, so that the create carrying the PHI can be endorsed by the custodian
/// alone. Same callers as `CreateRecord`. Keys already reserved or created are left as they
/// are (a retry succeeds). Returns `{reserved, existing}`.
pub(crate) fn reserve_records(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = r#"ReserveRecords PATIENT_ID ["ResourceType/r_<32 hex>",...]"#;
    let caller = Caller::of(stub)?;
    let patient = load_patient(stub, param(args, 0, USAGE)?)?;
    let ids: Vec<String> = json_param(args, 1, USAGE)?;
    if ids.is_empty() || ids.len() > MAX_BUNDLE_ENTRIES {
        return Err(EhrError::invalid(format!(
            "reserve 1 to {MAX_BUNDLE_ENTRIES} record ids per call"
        )));
    }
    let now = now_ms(stub)?;
    let mut seen: BTreeMap<RecordId, ()> = BTreeMap::new();
    let mut checked_types: BTreeMap<String, ()> = BTreeMap::new();
    let policy = custodian_endorsement_policy(&patient.custodian_msp);
    let (mut reserved, mut existing) = (0u64, 0u64);
    for id in &ids {
        let record: RecordId = id.parse()?;
        if !checked_types.contains_key(&record.resource_type) {
            template_for(stub, &record.resource_type)?;
            authorize_write(stub, &caller, &patient, &record.resource_type, now)?;
            checked_types.insert(record.resource_type.clone(), ());
        }
        if seen.insert(record.clone(), ()).is_some() {
            continue;
        }
        let key = record_key(&patient.patient_id, &record)?;
        if stub.get_state(&key)?.is_some() {
            existing += 1;
            continue;
        }
        let meta = RecordMeta {
            record_id: record.to_string(),
            patient_id: patient.patient_id.clone(),
            resource_type: record.resource_type.clone(),
            version: 0,
            sha256: String::new(),
            size_bytes: 0,
            author: caller.id.clone(),
            author_msp: caller.msp_id.clone(),
            author_role: caller.role_name().to_owned(),
            custodian_msp: patient.custodian_msp.clone(),
            collection: patient.collection.clone(),
            template_version: 0,
            created_at_ms: now,
            updated_at_ms: now,
            status: RecordStatus::Reserved,
            purged_by: None,
            shares: Vec::new(),
        };
        put_json(stub, &key, &meta)?;
        stub.set_validation_parameter("", &key, &policy)?;
        reserved += 1;
    }
    let mut events = Events::default();
    events.push(
        events::RECORDS_RESERVED,
        json!({"patient_id": patient.patient_id, "reserved": reserved}),
    );
    events.emit(stub)?;
    to_json(&json!({"reserved": reserved, "existing": existing}))
}

/// A validated resource ready to store.
struct Checked<'a> {
    resource: Resource<'a>,
    /// No patient reference (Organization, Practitioner): a resource several patients'
    /// bundles carry under the same FHIR id; it gets no locator.
    shared: bool,
    /// The record's ledger id.
    record_id: RecordId,
    template_version: u64,
    key: String,
    sha256: String,
}

/// The patient a PHI-carrying call writes for: its public entry, its clear `Patient.id` (from
/// the transient map; checked against the ledger id once the caller is authorized, in
/// [`check_resource`]) and the custodian's pseudonym key.
struct Writing {
    patient: PatientEntry,
    clear_id: String,
    key: PseudonymKey,
    /// `key.patient(clear_id)` is the ledger id the call names (one HMAC per call, not per
    /// resource).
    names_patient: bool,
}

impl Writing {
    fn load(stub: &dyn ChaincodeStub, ledger_patient: &str) -> Result<Writing> {
        let patient = load_patient(stub, ledger_patient)?;
        let (key, clear_id) = clear_patient_id(stub, &patient)?;
        let names_patient = key.patient(&clear_id) == patient.patient_id;
        Ok(Writing {
            patient,
            clear_id,
            key,
            names_patient,
        })
    }
}

/// Parses and validates a resource for the patient (template cache per type); its ledger id
/// comes from the custodian's key.
fn check_resource<'a>(
    stub: &dyn ChaincodeStub,
    caller: &Caller,
    writing: &Writing,
    bytes: &'a [u8],
    templates: &mut BTreeMap<String, Template>,
    now: u64,
) -> Result<Checked<'a>> {
    let resource = parse_resource(bytes)?;
    let rt = resource.reference.resource_type.clone();
    let template = match templates.get(&rt) {
        Some(t) => t,
        None => {
            let t = template_for(stub, &rt)?;
            authorize_write(stub, caller, &writing.patient, &rt, now)?;
            templates.entry(rt).or_insert(t)
        }
    };
    // After the authorization: an unauthorized caller must not learn whether its guess of
    // the clear id is right (the same 403 either way).
    check_clear_patient_id(writing.names_patient)?;
    template.check(&resource.value, &writing.clear_id)?;
    let record_id = writing.key.record(&writing.clear_id, &resource.reference);
    Ok(Checked {
        key: record_key(&writing.patient.patient_id, &record_id)?,
        shared: template.patient_link == PatientLink::None,
        record_id,
        sha256: sha256_hex(resource.bytes),
        template_version: template.version,
        resource,
    })
}

/// Writes the locator of a checked resource into the custodian's default collection, unless
/// one is there (a re-create of an older record fills a missing one). Same key-level policy
/// as the pseudonym key. Resources without a patient reference (Organization, Practitioner)
/// get none: several patients' bundles carry them under one FHIR id, so their locator key
/// (which depends on the FHIR id alone) would be read and written by every such patient's
/// transaction, linking those patients on the public ledger by its hash, and concurrent
/// imports would write it in one block (the second ENDORSEMENT_POLICY_FAILURE: its key-level
/// policy was set by the first).
fn write_locator(stub: &dyn ChaincodeStub, writing: &Writing, checked: &Checked<'_>) -> Result<()> {
    if checked.shared {
        return Ok(());
    }
    let collection = default_collection(&writing.patient.custodian_msp);
    let key = locator_key(&writing.key.locator(&checked.resource.reference))?;
    if stub.get_private_data(&collection, &key)?.is_some() {
        return Ok(());
    }
    let locator = Locator {
        patient_id: writing.patient.patient_id.clone(),
        record_id: checked.record_id.to_string(),
    };
    stub.put_private_data(&collection, &key, &to_json(&locator)?)?;
    let policy = custodian_endorsement_policy(&writing.patient.custodian_msp);
    stub.set_validation_parameter(&collection, &key, &policy)?;
    Ok(())
}

/// Writes the PHI into the patient's collection and the metadata (version + 1) into the
/// record's public key; on creation, also gives the private key the custodian's policy.
fn store(
    stub: &dyn ChaincodeStub,
    caller: &Caller,
    patient: &PatientEntry,
    checked: &Checked<'_>,
    previous: &RecordMeta,
    now: u64,
) -> Result<RecordMeta> {
    let creating = previous.status == RecordStatus::Reserved;
    let mut meta = previous.clone();
    meta.version = previous.version + 1;
    meta.sha256 = checked.sha256.clone();
    meta.size_bytes = checked.resource.bytes.len() as u64;
    meta.author = caller.id.clone();
    meta.author_msp = caller.msp_id.clone();
    meta.author_role = caller.role_name().to_owned();
    meta.template_version = checked.template_version;
    meta.updated_at_ms = now;
    meta.status = RecordStatus::Active;
    if creating {
        meta.created_at_ms = now;
    }
    stub.put_private_data(&patient.collection, &checked.key, checked.resource.bytes)?;
    put_json(stub, &checked.key, &meta)?;
    if creating {
        let policy = custodian_endorsement_policy(&patient.custodian_msp);
        stub.set_validation_parameter(&patient.collection, &checked.key, &policy)?;
    }
    Ok(meta)
}

/// The record's current metadata, checked for a create (must be reserved) or an update (must
/// be active).
fn writable(stub: &dyn ChaincodeStub, checked: &Checked<'_>, update: bool) -> Result<RecordMeta> {
    let record_id = checked.record_id.to_string();
    let previous: Option<RecordMeta> = get_json(stub, &checked.key, "record")?;
    match (previous, update) {
        (None, false) => Err(EhrError::conflict(format!(
            "record {record_id} is not reserved: submit ReserveRecords first"
        ))),
        (None, true) => Err(EhrError::not_found("record", record_id)),
        (Some(p), _) if p.status == RecordStatus::Purged => Err(EhrError::Purged { record_id }),
        (Some(p), false) if p.status == RecordStatus::Active => Err(EhrError::conflict(format!(
            "record {record_id} exists; use UpdateRecord"
        ))),
        (Some(p), true) if p.status == RecordStatus::Reserved => {
            Err(EhrError::not_found("record", record_id))
        }
        (Some(p), _) => Ok(p),
    }
}

/// `UpdateRecord`'s optional `EXPECTED_VERSION` (argument 1): a version ≥ 1, or 400.
fn expected_version(args: &[String], usage: &str) -> Result<Option<u64>> {
    if args.len() > 2 {
        return Err(EhrError::invalid(format!("usage: {usage}")));
    }
    opt_param(args, 1)
        .map(|v| {
            v.parse::<u64>()
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| EhrError::invalid("the expected version must be a number ≥ 1"))
        })
        .transpose()
}

fn write_record(stub: &dyn ChaincodeStub, args: &[String], update: bool) -> Result<Vec<u8>> {
    let usage = if update {
        "UpdateRecord PATIENT_ID [EXPECTED_VERSION] (transient `resource`: the resource JSON, \
         `patient`: its Patient.id)"
    } else {
        "CreateRecord PATIENT_ID (transient `resource`: the resource JSON, `patient`: its Patient.id)"
    };
    let caller = Caller::of(stub)?;
    let writing = Writing::load(stub, param(args, 0, usage)?)?;
    let expected = if update {
        expected_version(args, usage)?
    } else {
        None
    };
    let patient = &writing.patient;
    let now = now_ms(stub)?;
    let bytes = stub.transient().get(TRANSIENT_RESOURCE).ok_or_else(|| {
        EhrError::invalid(format!("the transient map has no `{TRANSIENT_RESOURCE}`"))
    })?;
    let checked = check_resource(stub, &caller, &writing, bytes, &mut BTreeMap::new(), now)?;
    let previous = writable(stub, &checked, update)?;
    if let Some(expected) = expected.filter(|v| *v != previous.version) {
        return Err(EhrError::PreconditionFailed(format!(
            "record {} is at version {}, not the expected {expected}",
            checked.record_id, previous.version
        )));
    }
    let meta = store(stub, &caller, patient, &checked, &previous, now)?;
    write_locator(stub, &writing, &checked)?;
    let mut payload = summary(&meta);
    if let Some(p) = payload.as_object_mut() {
        p.insert("patient_id".into(), patient.patient_id.clone().into());
    }
    let mut events = Events::default();
    events.push(
        if update {
            events::RECORD_UPDATED
        } else {
            events::RECORD_CREATED
        },
        payload,
    );
    events.emit(stub)?;
    to_json(&summary(&meta))
}

/// `CreateRecord PATIENT_ID` with transient `resource` and `patient` (the clear `Patient.id`
/// whose ledger id is `PATIENT_ID`) (submitted; endorsed by the custodian only; the record
/// reserved first under its ledger id). Validates the resource (JSON object, known
/// `resourceType`, FHIR `id`, patient reference, template), stores its exact bytes in the
/// custodian's collection and the metadata publicly, version 1. Returns
/// `{record_id, version, sha256}` (`record_id` the ledger id).
pub(crate) fn create_record(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    write_record(stub, args, false)
}

/// `UpdateRecord PATIENT_ID [EXPECTED_VERSION]` with transient `resource` and `patient`
/// (submitted; endorsed by the custodian only): as `CreateRecord` for an existing, not purged
/// record; the version goes up by one. With `EXPECTED_VERSION` (a version ≥ 1, FHIR's
/// `If-Match: W/"n"`), a record at another version is refused with 412 and nothing is
/// written; the record's metadata is in the read set, so an update committed between this
/// endorsement and its commit makes the transaction an MVCC conflict instead. Returns
/// `{record_id, version, sha256}`.
pub(crate) fn update_record(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    write_record(stub, args, true)
}

fn in_entry(i: usize) -> impl Fn(EhrError) -> EhrError {
    move |e| match e {
        EhrError::Invalid(m) => EhrError::Invalid(format!("bundle entry {i}: {m}")),
        EhrError::Conflict(m) => EhrError::Conflict(format!("bundle entry {i}: {m}")),
        other => other,
    }
}

/// `CreateRecordsFromBundle PATIENT_ID` with transient `bundle` and `patient` (as
/// `CreateRecord`) (submitted; endorsed by the custodian only; the ledger ids of its entries
/// ([`crate::fhir::bundle_record_ids`] through `LedgerIds`) reserved first):
/// creates every entry of a FHIR Bundle (at most [`crate::fhir::MAX_BUNDLE_BYTES`] and
/// [`MAX_BUNDLE_ENTRIES`]; clients split larger ones with [`crate::fhir::split_bundle`]). All
/// or nothing, as a FHIR transaction: every entry is validated before any state is looked at.
/// An entry equal (same hash) to a record already created, or to an earlier entry, is counted
/// `unchanged` (so a retried chunk succeeds); one that differs is a conflict (409). Returns
/// `{created, unchanged, records:[{record_id, version, sha256}]}`.
pub(crate) fn create_records_from_bundle(
    stub: &dyn ChaincodeStub,
    args: &[String],
) -> Result<Vec<u8>> {
    const USAGE: &str = "CreateRecordsFromBundle PATIENT_ID (transient `bundle`: the Bundle JSON, \
                         `patient`: its Patient.id)";
    let caller = Caller::of(stub)?;
    let writing = Writing::load(stub, param(args, 0, USAGE)?)?;
    let patient = &writing.patient;
    let now = now_ms(stub)?;
    let bytes = stub.transient().get(TRANSIENT_BUNDLE).ok_or_else(|| {
        EhrError::invalid(format!("the transient map has no `{TRANSIENT_BUNDLE}`"))
    })?;
    let mut templates = BTreeMap::new();
    let checked = bundle_resources(bytes)?
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            check_resource(stub, &caller, &writing, raw, &mut templates, now).map_err(in_entry(i))
        })
        .collect::<Result<Vec<_>>>()?;
    // Reads do not see this transaction's writes: track what this bundle wrote.
    let mut seen: BTreeMap<&RecordId, &str> = BTreeMap::new();
    let mut records = Vec::new();
    let (mut created, mut unchanged) = (0u64, 0u64);
    for (i, c) in checked.iter().enumerate() {
        if let Some(earlier) = seen.get(&c.record_id) {
            if *earlier != c.sha256 {
                return Err(in_entry(i)(EhrError::conflict(format!(
                    "record {} appears twice with different content",
                    c.record_id
                ))));
            }
            unchanged += 1;
            continue;
        }
        seen.insert(&c.record_id, &c.sha256);
        let current: Option<RecordMeta> = get_json(stub, &c.key, "record")?;
        if let Some(m) = current.filter(|m| m.status == RecordStatus::Active) {
            if m.sha256 != c.sha256 {
                return Err(in_entry(i)(EhrError::conflict(format!(
                    "record {} exists with other content; use UpdateRecord",
                    m.record_id
                ))));
            }
            unchanged += 1;
            records.push(summary(&m));
            write_locator(stub, &writing, c)?;
            continue;
        }
        let previous = writable(stub, c, false).map_err(in_entry(i))?;
        let meta = store(stub, &caller, patient, c, &previous, now)?;
        write_locator(stub, &writing, c)?;
        created += 1;
        records.push(summary(&meta));
    }
    let mut events = Events::default();
    events.push(
        events::RECORDS_CREATED,
        json!({"patient_id": patient.patient_id, "created": created, "unchanged": unchanged}),
    );
    events.emit(stub)?;
    to_json(&json!({"created": created, "unchanged": unchanged, "records": records}))
}

/// Who may read a patient's record metadata: the patient, staff of the custodian
/// organization (doctor, nurse, lab, admin — not other patients enrolled there), auditors of
/// an organization holding auditor authority.
fn require_metadata_reader(
    stub: &dyn ChaincodeStub,
    caller: &Caller,
    patient: &PatientEntry,
) -> Result<()> {
    if caller.is_patient(patient)
        || caller.is_staff_of(&patient.custodian_msp)
        || caller.is_auditor(stub)?
    {
        Ok(())
    } else {
        Err(EhrError::forbidden(
            "only the patient, staff of the custodian or an auditor reads record metadata",
        ))
    }
}

/// `ReadRecordMetadata PATIENT_ID RECORD_ID` (evaluated; the patient, the custodian's
/// staff, auditors): the record's public metadata (also after a purge).
pub(crate) fn read_record_metadata(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ReadRecordMetadata PATIENT_ID RECORD_ID";
    let caller = Caller::of(stub)?;
    let patient = load_patient(stub, param(args, 0, USAGE)?)?;
    require_metadata_reader(stub, &caller, &patient)?;
    let record: RecordId = param(args, 1, USAGE)?.parse()?;
    let (_, meta) = load_record(stub, &patient.patient_id, &record)?;
    to_json(&meta)
}

/// `GetRecordHistory PATIENT_ID RECORD_ID` (evaluated; as `ReadRecordMetadata`): every
/// committed version, newest first (`GetHistoryForKey`):
/// `[{tx_id, timestamp_ms, version, sha256, author, author_msp, status}]`.
pub(crate) fn get_record_history(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "GetRecordHistory PATIENT_ID RECORD_ID";
    let caller = Caller::of(stub)?;
    let patient = load_patient(stub, param(args, 0, USAGE)?)?;
    require_metadata_reader(stub, &caller, &patient)?;
    let record: RecordId = param(args, 1, USAGE)?.parse()?;
    let key = record_key(&patient.patient_id, &record)?;
    let history = stub.get_history_for_key(&key)?;
    if history.is_empty() {
        return Err(EhrError::not_found("record", record.to_string()));
    }
    let versions = history
        .iter()
        .filter(|m| !m.is_delete)
        .map(|m| {
            let meta: RecordMeta =
                serde_json::from_slice(&m.value).map_err(|_| EhrError::Corrupt("record"))?;
            let timestamp_ms = m
                .timestamp
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            Ok(
                json!({"tx_id": m.tx_id, "timestamp_ms": timestamp_ms, "version": meta.version,
                      "sha256": meta.sha256, "author": meta.author, "author_msp": meta.author_msp,
                      "status": meta.status}),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    to_json(&versions)
}

/// `ListRecords PATIENT_ID [PAGE_SIZE [BOOKMARK]]` (evaluated; as `ReadRecordMetadata`):
/// `{records:[metadata…], bookmark}`.
pub(crate) fn list_records(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ListRecords PATIENT_ID [PAGE_SIZE [BOOKMARK]]";
    let caller = Caller::of(stub)?;
    let patient = load_patient(stub, param(args, 0, USAGE)?)?;
    require_metadata_reader(stub, &caller, &patient)?;
    let (size, bookmark) = page_params(args, 1)?;
    let (records, bookmark): (Vec<RecordMeta>, _) = page(
        stub,
        record_range(&patient.patient_id)?,
        size,
        &bookmark,
        "record",
    )?;
    to_json(&json!({"records": records, "bookmark": bookmark}))
}

/// `ShareRecord PATIENT_ID RECORD_ID GRANTEE_MSP PURPOSE` (submitted; staff of the custodian;
/// endorsed by the custodian only). Copies the record's PHI (hash checked) into the share
/// collection of the custodian and the grantee organization ([`share_collection`]), so the
/// grantee's peers can serve it, and lists the copy in the record's metadata.
///
/// Needs a consent of the patient to the grantee *organization* (a consent to one of its
/// identities does not let the organization hold a copy) that is in force, covers the record's
/// type and lists `PURPOSE`, with the organization's relation Authorized (ADR 0029). Returns
/// `{record_id, grantee_msp, collection, version, sha256, purpose, consent_id}`.
pub(crate) fn share_record(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ShareRecord PATIENT_ID RECORD_ID GRANTEE_MSP PURPOSE";
    let caller = Caller::of(stub)?;
    let patient = load_patient(stub, param(args, 0, USAGE)?)?;
    if !caller.is_staff_of(&patient.custodian_msp) {
        return Err(EhrError::forbidden(
            "only staff of the custodian organization shares its records",
        ));
    }
    let record: RecordId = param(args, 1, USAGE)?.parse()?;
    let grantee_msp = param(args, 2, USAGE)?;
    check_msp_id(grantee_msp)?;
    let purpose = parse_purpose(param(args, 3, USAGE)?)?;
    if args.len() > 4 {
        return Err(EhrError::invalid(format!(
            "too many arguments (a share goes to the share collection of the two \
             organizations, never to a named one); usage: {USAGE}"
        )));
    }
    if grantee_msp == patient.custodian_msp {
        return Err(EhrError::invalid("the custodian already holds the record"));
    }
    let collection = share_collection(&patient.custodian_msp, grantee_msp)
        .ok_or_else(|| EhrError::invalid("the MSP ids are too long for a share collection name"))?;
    let (key, mut meta) = load_active_record(stub, &patient.patient_id, &record)?;
    let now = now_ms(stub)?;
    let org = Relation::load(
        stub,
        &patient.patient_id,
        Grantee::Org(grantee_msp.to_owned()),
    )?;
    if org.state == AccessState::Blocked {
        return Err(org.blocked(&patient.patient_id));
    }
    let consents: Vec<Consent> = all(stub, consent_range(&patient.patient_id)?, "consent")?;
    let covering = consents
        .iter()
        .find(|c| c.grantee == org.grantee && c.covers(&record.resource_type, purpose, now));
    let consent_id = match covering {
        Some(c) if org.state == AccessState::Authorized => c.consent_id.clone(),
        Some(_) => {
            return Err(EhrError::forbidden(format!(
                "the relation of {grantee_msp} with patient {} is {}: the patient must grant again",
                patient.patient_id,
                org.state.as_str()
            )));
        }
        None => {
            return Err(EhrError::forbidden(format!(
                "no consent in force to organization {grantee_msp} covers {} for {}; a consent \
                 to one of its identities does not let the organization hold a copy",
                record.resource_type,
                purpose.as_str()
            )));
        }
    };
    let bytes = stub
        .get_private_data(&patient.collection, &key)?
        .ok_or_else(|| EhrError::not_found("PHI on this peer for record", record.to_string()))?;
    if sha256_hex(&bytes) != meta.sha256 {
        return Err(EhrError::Integrity {
            record_id: record.to_string(),
        });
    }
    stub.put_private_data(&collection, &key, &bytes)?;
    stub.set_validation_parameter(
        &collection,
        &key,
        &custodian_endorsement_policy(&patient.custodian_msp),
    )?;
    meta.shares.retain(|s| s.grantee_msp != grantee_msp);
    meta.shares.push(SharedCopy {
        grantee_msp: grantee_msp.to_owned(),
        collection: collection.clone(),
        version: meta.version,
        sha256: meta.sha256.clone(),
        shared_by: caller.id.clone(),
        shared_at_ms: now,
        purpose: Some(purpose),
        consent_id: Some(consent_id.clone()),
    });
    put_json(stub, &key, &meta)?;
    let mut events = Events::default();
    events.push(
        events::RECORD_SHARED,
        json!({"patient_id": patient.patient_id, "record_id": meta.record_id,
               "grantee_msp": grantee_msp, "collection": collection, "version": meta.version,
               "purpose": purpose, "consent_id": consent_id}),
    );
    events.emit(stub)?;
    to_json(
        &json!({"record_id": meta.record_id, "grantee_msp": grantee_msp,
                "collection": collection, "version": meta.version, "sha256": meta.sha256,
                "purpose": purpose, "consent_id": consent_id}),
    )
}
