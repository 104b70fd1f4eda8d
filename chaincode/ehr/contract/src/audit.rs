//! The patient's audit view and the right to erasure.

use medledger_chaincode::ChaincodeStub;
use serde_json::json;

use crate::access::{load_active_record, load_created_record};
use crate::caller::Caller;
use crate::error::{EhrError, Result};
use crate::events;
use crate::ids::{RecordId, access_range, erasure_key};
use crate::model::{AccessEntry, Basis, Decision, ErasureRequest, ErasureStatus, RecordStatus};
use crate::tx::to_json;
use crate::tx::{Events, all, get_json, load_patient, now_ms, page, page_params, param, put_json};

/// `ListAuditEntries PATIENT_ID [PAGE_SIZE [BOOKMARK]]` (evaluated; the patient or an
/// auditor): the access entries of the patient's records, oldest first,
/// `{entries:[…], bookmark, summary?}`. The first page (no bookmark) also carries
/// `summary: {total, granted, denied, emergency}` over all entries; `emergency` counts
/// break-glass windows and the record accesses made under them.
pub(crate) fn list_audit_entries(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ListAuditEntries PATIENT_ID [PAGE_SIZE [BOOKMARK]]";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let patient = load_patient(stub, patient_id)?;
    caller.require_patient_or_auditor(stub, &patient, true)?;
    let (size, bookmark) = page_params(args, 1)?;
    let range = access_range(patient_id)?;
    let first = bookmark.is_empty();
    let (entries, next): (Vec<AccessEntry>, _) =
        page(stub, range.clone(), size, &bookmark, "access")?;
    let mut out = json!({"entries": entries, "bookmark": next});
    if first {
        let every: Vec<AccessEntry> = all(stub, range, "access")?;
        let count = |f: &dyn Fn(&AccessEntry) -> bool| every.iter().filter(|e| f(e)).count();
        let summary = json!({
            "total": every.len(),
            "granted": count(&|e| e.decision == Decision::Granted),
            "denied": count(&|e| e.decision == Decision::Denied),
            "emergency": count(&|e| e.basis == Some(Basis::Emergency)),
        });
        if let Some(o) = out.as_object_mut() {
            o.insert("summary".into(), summary);
        }
    }
    to_json(&out)
}

/// `RequestErasure PATIENT_ID RECORD_ID` (submitted; the patient only): asks the custodian to
/// purge a record's PHI.
pub(crate) fn request_erasure(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "RequestErasure PATIENT_ID RECORD_ID";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let patient = load_patient(stub, patient_id)?;
    caller.require_patient_or_auditor(stub, &patient, false)?;
    let record: RecordId = param(args, 1, USAGE)?.parse()?;
    load_active_record(stub, patient_id, &record)?;
    let key = erasure_key(patient_id, &record)?;
    let existing: Option<ErasureRequest> = get_json(stub, &key, "erasure request")?;
    if existing.is_some_and(|e| e.status == ErasureStatus::Pending) {
        return Err(EhrError::conflict(format!(
            "erasure of {record} is already requested"
        )));
    }
    let request = ErasureRequest {
        patient_id: patient_id.to_owned(),
        record_id: record.to_string(),
        requested_at_ms: now_ms(stub)?,
        status: ErasureStatus::Pending,
        done_at_ms: None,
    };
    put_json(stub, &key, &request)?;
    let mut events = Events::default();
    events.push(
        events::ERASURE_REQUESTED,
        json!({"patient_id": patient_id, "record_id": request.record_id}),
    );
    events.emit(stub)?;
    to_json(&request)
}

/// `PurgeRecord PATIENT_ID RECORD_ID` (submitted; an admin of the custodian organization, on
/// the patient's pending erasure request). Purges the PHI from the custodian's collection and
/// from every shared copy (`PurgePrivateData`: gone from member peers' stores, the hash stays
/// on the ledger); the metadata stays with status `purged`, so reads answer 410 and the hash
/// remains verifiable. Returns `{record_id, status, sha256}`.
pub(crate) fn purge_record(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "PurgeRecord PATIENT_ID RECORD_ID";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let patient = load_patient(stub, patient_id)?;
    if !caller.is_admin_of(&patient.custodian_msp) {
        return Err(EhrError::forbidden(
            "only an admin of the custodian organization purges records",
        ));
    }
    let record: RecordId = param(args, 1, USAGE)?.parse()?;
    let (key, mut meta) = load_created_record(stub, patient_id, &record)?;
    if meta.status == RecordStatus::Purged {
        return Err(EhrError::Purged {
            record_id: record.to_string(),
        });
    }
    let ekey = erasure_key(patient_id, &record)?;
    let existing: Option<ErasureRequest> = get_json(stub, &ekey, "erasure request")?;
    let mut erasure = existing
        .filter(|e| e.status == ErasureStatus::Pending)
        .ok_or_else(|| {
            EhrError::conflict(format!(
                "no pending erasure request of the patient for {record}"
            ))
        })?;
    let now = now_ms(stub)?;
    stub.purge_private_data(&patient.collection, &key)?;
    for share in &meta.shares {
        stub.purge_private_data(&share.collection, &key)?;
    }
    meta.status = RecordStatus::Purged;
    meta.purged_by = Some(caller.id.clone());
    meta.updated_at_ms = now;
    put_json(stub, &key, &meta)?;
    erasure.status = ErasureStatus::Done;
    erasure.done_at_ms = Some(now);
    put_json(stub, &ekey, &erasure)?;
    let mut events = Events::default();
    events.push(
        events::RECORD_PURGED,
        json!({"patient_id": patient_id, "record_id": meta.record_id, "sha256": meta.sha256}),
    );
    events.emit(stub)?;
    to_json(&json!({"record_id": meta.record_id, "status": meta.status, "sha256": meta.sha256}))
}
