//! Ledger ids (ADR 0031): each custodian's [`PseudonymKey`] in its own PHI collection, the
//! functions that set it and translate FHIR ids into ledger ids, and the check that ties a
//! PHI-carrying call's clear `Patient.id` (transient) to the ledger id it names.

use medledger_chaincode::ChaincodeStub;
use serde::Deserialize;
use serde_json::json;

use crate::access::{ConsentCheck, check_consents, consents_for, refuse_blocked, relations};
use crate::caller::{Caller, Role};
use crate::error::{EhrError, Result};
use crate::fhir::MAX_BUNDLE_ENTRIES;
use crate::ids::{
    PseudonymKey, ResourceRef, check_fhir_id, check_msp_id, default_collection, locator_key,
    patient_key, pseudonym_key_key,
};
use crate::model::{Locator, PatientEntry, Purpose};
use crate::policy::custodian_endorsement_policy;
use crate::tx::{get_json, now_ms, opt_param, to_json};

/// Transient map key carrying a new pseudonym key's 32 bytes (`SetPseudonymKey`).
pub const TRANSIENT_PSEUDONYM_KEY: &str = "pseudonym_key";
/// Transient map key carrying the clear `Patient.id` of a PHI-carrying call (`CreateRecord`,
/// `UpdateRecord`, `CreateRecordsFromBundle`): checked against the ledger id in the arguments.
pub const TRANSIENT_PATIENT: &str = "patient";
/// Transient map key carrying `LocateRecords`' input: `{"records": ["ResourceType/id", …]}`.
pub const TRANSIENT_RECORDS: &str = "records";
/// Transient map key carrying `LedgerIds`' input: `{"patient": "<Patient.id>", "records":
/// ["ResourceType/id", …]}`.
pub const TRANSIENT_IDS: &str = "ids";

/// The pseudonym key of `custodian_msp`, from its default collection: readable only on its
/// own peers (the collection's members).
///
/// # Errors
/// 404 if none is set (its admin runs `SetPseudonymKey`); 500 if the stored value is not 32
/// bytes.
pub(crate) fn load_key(stub: &dyn ChaincodeStub, custodian_msp: &str) -> Result<PseudonymKey> {
    let stored =
        stub.get_private_data(&default_collection(custodian_msp), &pseudonym_key_key()?)?;
    let bytes = stored.ok_or_else(|| EhrError::not_found("pseudonym key of", custodian_msp))?;
    PseudonymKey::from_bytes(&bytes).map_err(|_| EhrError::Corrupt("pseudonym key"))
}

/// The clear `Patient.id` of a PHI-carrying call (transient [`TRANSIENT_PATIENT`]) and the
/// custodian's key. Not yet tied to the patient the call names: [`check_clear_patient_id`]
/// does that once the caller is authorized to write, so that nobody else learns whether a
/// guessed `Patient.id` is the one behind a ledger id.
///
/// # Errors
/// 400 if the transient entry is missing or not a FHIR id; as [`load_key`].
pub(crate) fn clear_patient_id(
    stub: &dyn ChaincodeStub,
    patient: &PatientEntry,
) -> Result<(PseudonymKey, String)> {
    let raw = stub.transient().get(TRANSIENT_PATIENT).ok_or_else(|| {
        EhrError::invalid(format!(
            "the transient map has no `{TRANSIENT_PATIENT}` (the clear Patient.id)"
        ))
    })?;
    let clear = std::str::from_utf8(raw)
        .map_err(|_| EhrError::invalid("the transient patient id is not UTF-8"))?;
    check_fhir_id("transient patient id", clear)?;
    let key = load_key(stub, &patient.custodian_msp)?;
    Ok((key, clear.to_owned()))
}

/// Checks that a PHI-carrying call's clear `Patient.id` (from [`clear_patient_id`]) is the
/// patient it names by ledger id: `names_patient` is `key.patient(clear) == ledger id`,
/// computed once per call. Call it only for a caller authorized to write for the patient.
///
/// # Errors
/// 400 if it is another patient's.
pub(crate) fn check_clear_patient_id(names_patient: bool) -> Result<()> {
    if names_patient {
        Ok(())
    } else {
        Err(EhrError::invalid(
            "the transient patient id is not the patient this call names",
        ))
    }
}

/// `SetPseudonymKey` with transient `pseudonym_key` (32 bytes) (submitted; endorsed by the
/// caller's organization only: it writes nothing but its own default collection). An EHR admin
/// of an organization sets its pseudonym key once; setting the same key again succeeds, a
/// different one is refused (409): every ledger id of its patients depends on it. Returns
/// `{collection, set}` (`set` false when it was already this key); never the key.
pub(crate) fn set_pseudonym_key(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    let caller = Caller::of(stub)?;
    if !caller.has_role(&[Role::Admin]) {
        return Err(EhrError::forbidden(
            "only an EHR admin of an organization sets its pseudonym key",
        ));
    }
    if !args.is_empty() {
        return Err(EhrError::invalid(
            "usage: SetPseudonymKey (transient `pseudonym_key`: 32 bytes)",
        ));
    }
    let raw = stub
        .transient()
        .get(TRANSIENT_PSEUDONYM_KEY)
        .ok_or_else(|| {
            EhrError::invalid(format!(
                "the transient map has no `{TRANSIENT_PSEUDONYM_KEY}`"
            ))
        })?;
    let new = PseudonymKey::from_bytes(raw)?;
    let collection = default_collection(&caller.msp_id);
    let key = pseudonym_key_key()?;
    let set = match stub.get_private_data(&collection, &key)? {
        Some(old) if old.as_slice() == new.as_bytes() => false,
        Some(_) => {
            return Err(EhrError::conflict(
                "a pseudonym key is set and never changes: every ledger id of the \
                 organization's patients depends on it (ADR 0031)",
            ));
        }
        None => {
            stub.put_private_data(&collection, &key, new.as_bytes())?;
            let policy = custodian_endorsement_policy(&caller.msp_id);
            stub.set_validation_parameter(&collection, &key, &policy)?;
            true
        }
    };
    to_json(&json!({"collection": collection, "set": set}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdsIn {
    patient: String,
    #[serde(default)]
    records: Vec<String>,
}

/// Whether `caller` may learn the ledger ids of `patient_id` (clear) at `custodian_msp`:
/// its staff, admins and registrars; the patient (certificate naming that ledger id); a
/// clinician of another organization who may write every requested record type (a treatment
/// consent in force, not Blocked) of a registered patient. Anyone else learns nothing, not
/// even whether the patient is registered.
fn may_translate(
    stub: &dyn ChaincodeStub,
    caller: &Caller,
    custodian_msp: &str,
    ledger_patient: &str,
    records: &[ResourceRef],
) -> Result<bool> {
    if caller.msp_id == custodian_msp
        && (caller.is_staff_of(custodian_msp) || caller.has_role(&[Role::Registrar]))
    {
        return Ok(true);
    }
    if caller.msp_id == custodian_msp
        && caller.role == Some(Role::Patient)
        && caller.patient_id.as_deref() == Some(ledger_patient)
    {
        return Ok(true);
    }
    if records.is_empty() || !caller.role.is_some_and(Role::is_clinician) {
        return Ok(false);
    }
    let Some(patient) = get_json::<PatientEntry>(stub, &patient_key(ledger_patient)?, "patient")?
    else {
        return Ok(false);
    };
    if patient.custodian_msp != custodian_msp {
        return Ok(false);
    }
    let now = now_ms(stub)?;
    let rels = relations(stub, ledger_patient, caller)?;
    if refuse_blocked(&rels, ledger_patient).is_err() {
        return Ok(false);
    }
    let consents = consents_for(stub, ledger_patient, &rels)?;
    Ok(records.iter().all(|r| {
        matches!(
            check_consents(&consents, &rels, &r.resource_type, Purpose::Treatment, now),
            ConsentCheck::Granted(_)
        )
    }))
}

/// `LedgerIds [CUSTODIAN_MSP]` with transient `ids` = `{"patient": "<Patient.id>",
/// "records": ["ResourceType/id", …]}` (at most [`MAX_BUNDLE_ENTRIES`] records) (evaluated on a
/// peer of the custodian, default the caller's organization: only its peers hold the key).
/// Returns `{"patient": "p_…", "records": ["ResourceType/r_…", …]}` in the order asked. Who
/// may ask: see [`may_translate`]; anyone else gets 403 whether or not the patient exists.
pub(crate) fn ledger_ids(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    let caller = Caller::of(stub)?;
    let custodian = opt_param(args, 0).unwrap_or(&caller.msp_id).to_owned();
    check_msp_id(&custodian)?;
    if args.len() > 1 {
        return Err(EhrError::invalid(
            "usage: LedgerIds [CUSTODIAN_MSP] (transient `ids`)",
        ));
    }
    let raw = stub
        .transient()
        .get(TRANSIENT_IDS)
        .ok_or_else(|| EhrError::invalid(format!("the transient map has no `{TRANSIENT_IDS}`")))?;
    let ids: IdsIn = serde_json::from_slice(raw).map_err(|_| {
        EhrError::invalid(r#"transient `ids` must be {"patient": "<id>", "records": [...]}"#)
    })?;
    check_fhir_id("patient id", &ids.patient)?;
    if ids.records.len() > MAX_BUNDLE_ENTRIES {
        return Err(EhrError::invalid(format!(
            "translate at most {MAX_BUNDLE_ENTRIES} record ids per call"
        )));
    }
    let records = ids
        .records
        .iter()
        .map(|r| r.parse::<ResourceRef>())
        .collect::<Result<Vec<_>>>()?;
    let key = load_key(stub, &custodian)?;
    let ledger_patient = key.patient(&ids.patient);
    if !may_translate(stub, &caller, &custodian, &ledger_patient, &records)? {
        return Err(EhrError::forbidden(
            "only the custodian's staff, the patient, or a clinician allowed to write these \
             records translates ids into ledger ids",
        ));
    }
    let ledger_records: Vec<String> = records
        .iter()
        .map(|r| key.record(&ids.patient, r).to_string())
        .collect();
    to_json(&json!({"patient": ledger_patient, "records": ledger_records}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsIn {
    records: Vec<String>,
}

/// `LocateRecords [CUSTODIAN_MSP]` with transient `records` = `{"records":
/// ["ResourceType/id", …]}` (1 to [`MAX_BUNDLE_ENTRIES`] clear FHIR references) (evaluated on a
/// peer of the custodian, default the caller's organization: only its peers hold the
/// locators). Finds each resource by its FHIR id alone through the locator its create wrote
/// ([`crate::ids::PseudonymKey::locator`]): returns `{"records": [{"record": "Type/id",
/// "patient": "p_…", "record_id": "Type/r_…"} | null, …]}` in the order asked; `null` when
/// no record was created under that id *or* the caller may not learn it. Callers as
/// `LedgerIds`: the custodian's staff and registrars (every record), the patient (its own),
/// a doctor, nurse or lab of another organization (records of a patient whose treatment
/// consent in force covers the type, not Blocked); anyone else 403.
pub(crate) fn locate_records(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    let caller = Caller::of(stub)?;
    let custodian = opt_param(args, 0).unwrap_or(&caller.msp_id).to_owned();
    check_msp_id(&custodian)?;
    if args.len() > 1 {
        return Err(EhrError::invalid(
            "usage: LocateRecords [CUSTODIAN_MSP] (transient `records`)",
        ));
    }
    let own = caller.msp_id == custodian
        && (caller.is_staff_of(&custodian) || caller.has_role(&[Role::Registrar, Role::Patient]));
    if !own && !caller.role.is_some_and(Role::is_clinician) {
        return Err(EhrError::forbidden(
            "only the custodian's staff, its patients, or a clinician allowed to write the \
             records locates records",
        ));
    }
    let raw = stub.transient().get(TRANSIENT_RECORDS).ok_or_else(|| {
        EhrError::invalid(format!("the transient map has no `{TRANSIENT_RECORDS}`"))
    })?;
    let asked: RecordsIn = serde_json::from_slice(raw).map_err(|_| {
        EhrError::invalid(r#"transient `records` must be {"records": ["ResourceType/id", ...]}"#)
    })?;
    if asked.records.is_empty() || asked.records.len() > MAX_BUNDLE_ENTRIES {
        return Err(EhrError::invalid(format!(
            "locate 1 to {MAX_BUNDLE_ENTRIES} records per call"
        )));
    }
    let references = asked
        .records
        .iter()
        .map(|r| r.parse::<ResourceRef>())
        .collect::<Result<Vec<_>>>()?;
    let key = load_key(stub, &custodian)?;
    let collection = default_collection(&custodian);
    let mut found = Vec::with_capacity(references.len());
    for (reference, asked) in references.iter().zip(&asked.records) {
        let stored = stub.get_private_data(&collection, &locator_key(&key.locator(reference))?)?;
        let located = match stored {
            None => None,
            Some(bytes) => Some(
                serde_json::from_slice::<Locator>(&bytes)
                    .map_err(|_| EhrError::Corrupt("locator"))?,
            ),
        };
        let answer = match located {
            Some(l)
                if may_translate(
                    stub,
                    &caller,
                    &custodian,
                    &l.patient_id,
                    std::slice::from_ref(reference),
                )? =>
            {
                json!({"record": asked, "patient": l.patient_id, "record_id": l.record_id})
            }
            _ => serde_json::Value::Null,
        };
        found.push(answer);
    }
    to_json(&json!({ "records": found }))
}
