//! Patients and validation templates: what admins set up.

use medledger_chaincode::ChaincodeStub;
use serde_json::json;

use crate::caller::{Caller, Role};
use crate::error::{EhrError, Result};
use crate::ids::{
    check_collection, check_ledger_patient_id, check_resource_type, default_collection,
};
use crate::ids::{patient_key, template_key};
use crate::model::PatientEntry;
use crate::template::{Template, default_template};
use crate::tx::{
    Events, get_json, json_param, load_patient, now_ms, opt_param, param, put_json, to_json,
};

/// `RegisterPatient PATIENT_ID [COLLECTION]` (submitted; admin or registrar). The caller's
/// organization becomes the custodian; the PHI collection defaults to `<MspId>PHI`.
///
/// A patient id belongs to one custodian for good (ADR 0029): registering an id another
/// organization registered is refused (403, naming the custodian, which is public); the
/// custodian's own admin or registrar registering it again with the same collection gets the
/// entry back unchanged (a retried import); the collection of a registered patient never
/// changes (409), since the records already stored there would be lost to every later call.
pub(crate) fn register_patient(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "RegisterPatient PATIENT_ID [COLLECTION]";
    let caller = Caller::of(stub)?;
    if !caller.has_role(&[Role::Admin, Role::Registrar]) {
        return Err(EhrError::forbidden(
            "only an admin or registrar of the custodian organization registers patients",
        ));
    }
    let patient_id = param(args, 0, USAGE)?;
    check_ledger_patient_id(patient_id)?;
    let named = opt_param(args, 1);
    let collection = named
        .map(str::to_owned)
        .unwrap_or_else(|| default_collection(&caller.msp_id));
    check_collection(&collection)?;
    if args.len() > 2 {
        return Err(EhrError::invalid(format!(
            "too many arguments; usage: {USAGE}"
        )));
    }
    let key = patient_key(patient_id)?;
    if let Some(existing) = get_json::<PatientEntry>(stub, &key, "patient")? {
        if existing.custodian_msp != caller.msp_id {
            return Err(EhrError::forbidden(format!(
                "patient {patient_id} belongs to custodian {}; only its admin or registrar \
                 registers it",
                existing.custodian_msp
            )));
        }
        if named.is_some_and(|c| c != existing.collection) {
            return Err(EhrError::conflict(format!(
                "patient {patient_id} is registered with collection {}; a registered patient's \
                 collection does not change",
                existing.collection
            )));
        }
        return to_json(&existing);
    }
    let entry = PatientEntry {
        patient_id: patient_id.to_owned(),
        custodian_msp: caller.msp_id.clone(),
        collection,
        registered_by: caller.id.clone(),
        registered_at_ms: now_ms(stub)?,
    };
    put_json(stub, &key, &entry)?;
    let mut events = Events::default();
    events.push(
        crate::events::PATIENT_REGISTERED,
        json!({"patient_id": patient_id, "custodian_msp": entry.custodian_msp}),
    );
    events.emit(stub)?;
    to_json(&entry)
}

/// `WhoAmI` (evaluated; any identity): how the contract sees the caller —
/// `{msp_id, identity_id, certificate_id, role, msp_admin, emergency}`. `identity_id` is what
/// an identity consent names (`identity:<identity_id>`); it stays the same when the caller
/// re-enrolls.
pub(crate) fn who_am_i(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    let caller = Caller::of(stub)?;
    if !args.is_empty() {
        return Err(EhrError::invalid("WhoAmI takes no arguments"));
    }
    to_json(&json!({
        "msp_id": caller.msp_id,
        "identity_id": caller.id,
        "certificate_id": caller.certificate_id,
        "role": caller.role_name(),
        "msp_admin": caller.msp_admin,
        "emergency": caller.emergency,
    }))
}

/// `GetPatient PATIENT_ID` (evaluated; any identity): the patient's custodian and collection.
pub(crate) fn get_patient(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    Caller::of(stub)?;
    let entry = load_patient(stub, param(args, 0, "GetPatient PATIENT_ID")?)?;
    to_json(&entry)
}

/// The template in force for `resource_type`: the latest on-chain version, else the built-in
/// default; `None` if the type is unknown.
pub(crate) fn effective_template(
    stub: &dyn ChaincodeStub,
    resource_type: &str,
) -> Result<Option<Template>> {
    check_resource_type(resource_type)?;
    match get_json(stub, &template_key(resource_type)?, "template")? {
        Some(t) => Ok(Some(t)),
        None => Ok(default_template(resource_type)),
    }
}

/// `PutTemplate TEMPLATE_JSON` (submitted; admin of any organization — the channel's majority
/// endorsement keeps one organization from forging it). Stores the next version.
pub(crate) fn put_template(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "PutTemplate TEMPLATE_JSON";
    let caller = Caller::of(stub)?;
    if !caller.has_role(&[Role::Admin]) {
        return Err(EhrError::forbidden("only an admin defines templates"));
    }
    let mut template: Template = json_param(args, 0, USAGE)?;
    template.validate_definition()?;
    let key = template_key(&template.resource_type)?;
    let previous: Option<Template> = get_json(stub, &key, "template")?;
    template.version = previous.map_or(0, |t| t.version) + 1;
    template.updated_by = caller.id;
    template.updated_at_ms = now_ms(stub)?;
    put_json(stub, &key, &template)?;
    let summary = json!({"resource_type": template.resource_type, "version": template.version});
    let mut events = Events::default();
    events.push(crate::events::TEMPLATE_PUT, summary.clone());
    events.emit(stub)?;
    to_json(&summary)
}

/// `GetTemplate RESOURCE_TYPE` (evaluated; any identity): the template in force.
pub(crate) fn get_template(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    Caller::of(stub)?;
    let resource_type = param(args, 0, "GetTemplate RESOURCE_TYPE")?;
    let template = effective_template(stub, resource_type)?
        .ok_or_else(|| EhrError::not_found("template", resource_type))?;
    to_json(&template)
}
