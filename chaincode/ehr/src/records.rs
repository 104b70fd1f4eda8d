//! Records: FHIR resources stored as PHI in the custodian's private data collection, with
//! public metadata (ids, type, version, author, time, SHA-256) under the same key.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use medledger_chaincode::ChaincodeStub;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::access::{
    ConsentCheck, check_consents, consents_for, load_active_record, load_record, refuse_blocked,
    relations,
};
use crate::caller::{Caller, Role};
use crate::error::{EhrError, Result};
use crate::events;
use crate::fhir::{Resource, bundle_resources, parse_resource};
use crate::ids::{Grantee, RecordId, check_collection, check_msp_id, default_collection};
use crate::ids::{record_key, record_range, share_key};
use crate::model::{PatientEntry, Purpose, RecordMeta, RecordStatus, ShareEntry};
use crate::policy::custodian_endorsement_policy;
use crate::registry::effective_template;
use crate::state_machine::AccessState;
use crate::template::Template;
use crate::tx::{Events, get_json, load_patient, now_ms, opt_param, page, page_params, param};
use crate::tx::{put_json, to_json};

/// Transient map key carrying one resource's JSON (`CreateRecord`, `UpdateRecord`).
pub const TRANSIENT_RESOURCE: &str = "resource";
/// Transient map key carrying a Bundle's JSON (`CreateRecordsFromBundle`).
pub const TRANSIENT_BUNDLE: &str = "bundle";

/// Who may write records of `patient` of `resource_type`: staff of the custodian, or a
/// clinician (doctor, nurse, lab) of another organization holding a consent in force for this
/// type and `treatment`, with an Authorized relation. Nothing else is written here: these
/// transactions are endorsed by the custodian alone.
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

fn template_for(stub: &dyn ChaincodeStub, record: &RecordId) -> Result<Template> {
    effective_template(stub, &record.resource_type)?.ok_or_else(|| {
        EhrError::invalid(format!(
            "resource type {} has no template (unknown type)",
            record.resource_type
        ))
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn summary(meta: &RecordMeta) -> serde_json::Value {
    json!({"record_id": meta.record_id, "version": meta.version, "sha256": meta.sha256})
}

/// Writes the PHI into the patient's collection and the metadata into public state; on
/// creation, sets both keys' endorsement policy to the custodian.
fn store(
    stub: &dyn ChaincodeStub,
    patient: &PatientEntry,
    key: &str,
    meta: &RecordMeta,
    bytes: &[u8],
    created: bool,
) -> Result<()> {
    stub.put_private_data(&patient.collection, key, bytes)?;
    put_json(stub, key, meta)?;
    if created {
        let policy = custodian_endorsement_policy(&patient.custodian_msp);
        stub.set_validation_parameter("", key, &policy)?;
        stub.set_validation_parameter(&patient.collection, key, &policy)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn new_meta(
    patient: &PatientEntry,
    caller: &Caller,
    resource: &Resource<'_>,
    template: &Template,
    previous: Option<&RecordMeta>,
    now: u64,
) -> RecordMeta {
    RecordMeta {
        record_id: resource.record_id.to_string(),
        patient_id: patient.patient_id.clone(),
        resource_type: resource.record_id.resource_type.clone(),
        version: previous.map_or(1, |p| p.version + 1),
        sha256: sha256_hex(resource.bytes),
        size_bytes: resource.bytes.len() as u64,
        author: caller.id.clone(),
        author_msp: caller.msp_id.clone(),
        author_role: caller.role_name().to_owned(),
        custodian_msp: patient.custodian_msp.clone(),
        collection: patient.collection.clone(),
        template_version: template.version,
        created_at_ms: previous.map_or(now, |p| p.created_at_ms),
        updated_at_ms: now,
        status: RecordStatus::Active,
        purged_by: None,
    }
}

fn write_record(stub: &dyn ChaincodeStub, args: &[String], update: bool) -> Result<Vec<u8>> {
    let usage = if update {
        "UpdateRecord PATIENT_ID (transient `resource`: the resource JSON)"
    } else {
        "CreateRecord PATIENT_ID (transient `resource`: the resource JSON)"
    };
    let caller = Caller::of(stub)?;
    let patient = load_patient(stub, param(args, 0, usage)?)?;
    let now = now_ms(stub)?;
    let bytes = stub.transient().get(TRANSIENT_RESOURCE).ok_or_else(|| {
        EhrError::invalid(format!("the transient map has no `{TRANSIENT_RESOURCE}`"))
    })?;
    let resource = parse_resource(bytes)?;
    let template = template_for(stub, &resource.record_id)?;
    authorize_write(
        stub,
        &caller,
        &patient,
        &resource.record_id.resource_type,
        now,
    )?;
    template.check(&resource.value, &patient.patient_id)?;
    let key = record_key(&patient.patient_id, &resource.record_id)?;
    let previous: Option<RecordMeta> = get_json(stub, &key, "record")?;
    let record_id = resource.record_id.to_string();
    match (&previous, update) {
        (Some(_), false) => {
            return Err(EhrError::conflict(format!(
                "record {record_id} exists; use UpdateRecord"
            )));
        }
        (None, true) => return Err(EhrError::not_found("record", record_id)),
        (Some(p), true) if p.status == RecordStatus::Purged => {
            return Err(EhrError::Purged { record_id });
        }
        _ => {}
    }
    let meta = new_meta(
        &patient,
        &caller,
        &resource,
        &template,
        previous.as_ref(),
        now,
    );
    store(stub, &patient, &key, &meta, resource.bytes, !update)?;
    let mut events = Events::default();
    let mut payload = summary(&meta);
    if let Some(p) = payload.as_object_mut() {
        p.insert("patient_id".into(), patient.patient_id.clone().into());
    }
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

/// `CreateRecord PATIENT_ID` with transient `resource` (submitted; endorsed by the custodian
/// only). Validates the resource (JSON object, known `resourceType`, FHIR `id`, patient
/// reference, template), stores its exact bytes in the custodian's collection and the
/// metadata publicly, version 1. Returns `{record_id, version, sha256}`.
pub(crate) fn create_record(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    write_record(stub, args, false)
}

/// `UpdateRecord PATIENT_ID` with transient `resource` (submitted; endorsed by the custodian
/// only): as `CreateRecord` for an existing, not purged record; the version goes up by one.
pub(crate) fn update_record(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    write_record(stub, args, true)
}

fn in_entry(i: usize) -> impl Fn(EhrError) -> EhrError {
    move |e| match e {
        EhrError::Invalid(m) => EhrError::Invalid(format!("bundle entry {i}: {m}")),
        other => other,
    }
}

/// `CreateRecordsFromBundle PATIENT_ID` with transient `bundle` (submitted; endorsed by the
/// custodian only): creates every entry of a FHIR Bundle (at most
/// [`crate::fhir::MAX_BUNDLE_BYTES`] and [`crate::fhir::MAX_BUNDLE_ENTRIES`]; clients split
/// larger ones with [`crate::fhir::split_bundle`]). All or nothing, as a FHIR transaction. An
/// entry equal (same hash) to a record already stored, or to an earlier entry, is counted
/// `unchanged` (so a retried chunk succeeds); one that differs is a conflict (409). Returns
/// `{created, unchanged, records:[{record_id, version, sha256}]}`.
pub(crate) fn create_records_from_bundle(
    stub: &dyn ChaincodeStub,
    args: &[String],
) -> Result<Vec<u8>> {
    const USAGE: &str = "CreateRecordsFromBundle PATIENT_ID (transient `bundle`: the Bundle JSON)";
    let caller = Caller::of(stub)?;
    let patient = load_patient(stub, param(args, 0, USAGE)?)?;
    let now = now_ms(stub)?;
    let bytes = stub.transient().get(TRANSIENT_BUNDLE).ok_or_else(|| {
        EhrError::invalid(format!("the transient map has no `{TRANSIENT_BUNDLE}`"))
    })?;
    let entries = bundle_resources(bytes)?;
    let mut templates: BTreeMap<String, Template> = BTreeMap::new();
    // Reads do not see this transaction's writes: track what this bundle created.
    let mut seen: BTreeMap<RecordId, String> = BTreeMap::new();
    let mut records = Vec::new();
    let (mut created, mut unchanged) = (0u64, 0u64);
    for (i, raw) in entries.into_iter().enumerate() {
        let resource = parse_resource(raw).map_err(in_entry(i))?;
        let rt = resource.record_id.resource_type.clone();
        if !templates.contains_key(&rt) {
            let t = template_for(stub, &resource.record_id).map_err(in_entry(i))?;
            authorize_write(stub, &caller, &patient, &rt, now)?;
            templates.insert(rt.clone(), t);
        }
        let template = templates.get(&rt).ok_or(EhrError::Corrupt("template"))?;
        template
            .check(&resource.value, &patient.patient_id)
            .map_err(in_entry(i))?;
        let sha = sha256_hex(resource.bytes);
        if let Some(earlier) = seen.get(&resource.record_id) {
            if *earlier == sha {
                unchanged += 1;
                continue;
            }
            return Err(EhrError::conflict(format!(
                "bundle entry {i}: record {} appears twice with different content",
                resource.record_id
            )));
        }
        let key = record_key(&patient.patient_id, &resource.record_id)?;
        let previous: Option<RecordMeta> = get_json(stub, &key, "record")?;
        seen.insert(resource.record_id.clone(), sha.clone());
        match previous {
            Some(p) if p.status == RecordStatus::Purged => {
                return Err(EhrError::Purged {
                    record_id: p.record_id,
                });
            }
            Some(p) if p.sha256 == sha => {
                unchanged += 1;
                records.push(summary(&p));
            }
            Some(p) => {
                return Err(EhrError::conflict(format!(
                    "bundle entry {i}: record {} exists with other content; use UpdateRecord",
                    p.record_id
                )));
            }
            None => {
                let meta = new_meta(&patient, &caller, &resource, template, None, now);
                store(stub, &patient, &key, &meta, resource.bytes, true)?;
                created += 1;
                records.push(summary(&meta));
            }
        }
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
/// organization (doctor, nurse, lab, admin — not other patients enrolled there), auditors.
fn require_metadata_reader(caller: &Caller, patient: &PatientEntry) -> Result<()> {
    if caller.is_patient(patient)
        || caller.is_staff_of(&patient.custodian_msp)
        || caller.role == Some(Role::Auditor)
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
    require_metadata_reader(&caller, &patient)?;
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
    require_metadata_reader(&caller, &patient)?;
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
    require_metadata_reader(&caller, &patient)?;
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

/// `ShareRecord PATIENT_ID RECORD_ID GRANTEE_MSP [COLLECTION]` (submitted; staff of the
/// custodian; endorsed by the custodian only). Copies the record's PHI (hash checked) into a
/// collection of the grantee organization (default `<GranteeMsp>PHI`), so the grantee's peers
/// can serve it. Needs a consent in force for that organization (or one of its identities)
/// covering the record's type, with an Authorized relation. Returns
/// `{record_id, grantee_msp, collection, version, sha256}`.
pub(crate) fn share_record(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ShareRecord PATIENT_ID RECORD_ID GRANTEE_MSP [COLLECTION]";
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
    if grantee_msp == patient.custodian_msp {
        return Err(EhrError::invalid("the custodian already holds the record"));
    }
    let collection = opt_param(args, 3)
        .map(str::to_owned)
        .unwrap_or_else(|| default_collection(grantee_msp));
    check_collection(&collection)?;
    if collection == patient.collection {
        return Err(EhrError::invalid(
            "the target collection is the custodian's own",
        ));
    }
    let (key, meta) = load_active_record(stub, &patient.patient_id, &record)?;
    let now = now_ms(stub)?;
    let consents: Vec<crate::model::Consent> = crate::tx::all(
        stub,
        crate::ids::consent_range(&patient.patient_id)?,
        "consent",
    )?;
    let mut consented = false;
    for c in consents.iter().filter(|c| {
        c.grantee.msp_id() == grantee_msp && c.in_force(now) && c.in_scope(&record.resource_type)
    }) {
        let rel = crate::access::Relation::load(stub, &patient.patient_id, c.grantee.clone())?;
        let org = crate::access::Relation::load(
            stub,
            &patient.patient_id,
            Grantee::Org(grantee_msp.to_owned()),
        )?;
        if rel.state == AccessState::Authorized && org.state != AccessState::Blocked {
            consented = true;
            break;
        }
    }
    if !consented {
        return Err(EhrError::forbidden(format!(
            "no consent in force lets {grantee_msp} hold {}",
            record.resource_type
        )));
    }
    let bytes = stub
        .get_private_data(&patient.collection, &key)?
        .ok_or_else(|| EhrError::not_found("PHI on this peer for record", record.to_string()))?;
    if sha256_hex(&bytes) != meta.sha256 {
        return Err(EhrError::Integrity {
            record_id: record.to_string(),
        });
    }
    let policy = custodian_endorsement_policy(&patient.custodian_msp);
    stub.put_private_data(&collection, &key, &bytes)?;
    stub.set_validation_parameter(&collection, &key, &policy)?;
    let skey = share_key(&patient.patient_id, &record, grantee_msp)?;
    let existed = stub.get_state(&skey)?.is_some();
    let share = ShareEntry {
        patient_id: patient.patient_id.clone(),
        record_id: record.to_string(),
        grantee_msp: grantee_msp.to_owned(),
        collection: collection.clone(),
        sha256: meta.sha256.clone(),
        version: meta.version,
        shared_by: caller.id.clone(),
        shared_at_ms: now,
        status: RecordStatus::Active,
    };
    put_json(stub, &skey, &share)?;
    if !existed {
        stub.set_validation_parameter("", &skey, &policy)?;
    }
    let mut events = Events::default();
    events.push(
        events::RECORD_SHARED,
        json!({"patient_id": patient.patient_id, "record_id": share.record_id,
               "grantee_msp": grantee_msp, "version": meta.version}),
    );
    events.emit(stub)?;
    to_json(
        &json!({"record_id": share.record_id, "grantee_msp": grantee_msp,
                     "collection": collection, "version": meta.version, "sha256": meta.sha256}),
    )
}
