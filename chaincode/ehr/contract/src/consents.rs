//! Consent (FHIR `Consent`, one permit provision): grants, revocations, access requests.

use medledger_chaincode::ChaincodeStub;
use serde::Deserialize;
use serde_json::json;

use crate::access::Relation;
use crate::caller::{Caller, Role};
use crate::error::{EhrError, Result};
use crate::events;
use crate::ids::{Grantee, access_request_key, access_request_range, check_resource_type};
use crate::ids::{consent_key, consent_range};
use crate::model::{AccessRequest, Consent, ConsentStatus, Purpose, RequestStatus};
use crate::state_machine::{AccessState, grant_action};
use crate::tx::{Events, get_json, json_param, load_patient, now_ms, page, page_params, param};
use crate::tx::{put_json, to_json};

/// Most resource types in one consent or request.
pub(crate) const MAX_SCOPE_TYPES: usize = 32;
/// Longest consent, s (10 years).
pub(crate) const MAX_CONSENT_S: u64 = 10 * 365 * 24 * 60 * 60;

fn check_scope(resource_types: &[String], purposes: &[Purpose]) -> Result<()> {
    if resource_types.len() > MAX_SCOPE_TYPES {
        return Err(EhrError::invalid(format!(
            "at most {MAX_SCOPE_TYPES} resource types"
        )));
    }
    for t in resource_types {
        check_resource_type(t)?;
    }
    if purposes.is_empty() || purposes.len() > 5 {
        return Err(EhrError::invalid("purposes must list 1 to 5 purposes"));
    }
    Ok(())
}

fn check_duration(valid_for_s: u64) -> Result<u64> {
    if (1..=MAX_CONSENT_S).contains(&valid_for_s) {
        Ok(valid_for_s * 1000)
    } else {
        Err(EhrError::invalid(format!(
            "a consent lasts 1 to {MAX_CONSENT_S} s"
        )))
    }
}

/// `GrantConsent`'s argument.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantArgs {
    patient_id: String,
    grantee: Grantee,
    #[serde(default)]
    resource_types: Vec<String>,
    purposes: Vec<Purpose>,
    #[serde(default)]
    valid_for_s: Option<u64>,
    #[serde(default)]
    expires_at_ms: Option<u64>,
}

/// Stores a consent and applies the grant's action (Authentication, or Permission while
/// Suspended) to the grantee's access state.
#[allow(clippy::too_many_arguments)]
fn grant(
    stub: &dyn ChaincodeStub,
    patient_id: &str,
    grantee: Grantee,
    resource_types: Vec<String>,
    purposes: Vec<Purpose>,
    expires_at_ms: u64,
    request_id: Option<String>,
    now: u64,
    events: &mut Events,
) -> Result<(Consent, AccessState)> {
    let consent_id = stub.tx_id().to_owned();
    crate::ids::check_fhir_id("consent id (transaction id)", &consent_id)?;
    let key = consent_key(patient_id, &consent_id)?;
    if stub.get_state(&key)?.is_some() {
        return Err(EhrError::conflict(format!("consent {consent_id} exists")));
    }
    let mut rel = Relation::load(stub, patient_id, grantee.clone())?;
    let action = grant_action(rel.state);
    let mut state_events = Events::default();
    rel.apply(stub, patient_id, action, now, &mut state_events)?;
    let consent = Consent {
        consent_id: consent_id.clone(),
        patient_id: patient_id.to_owned(),
        status: ConsentStatus::Active,
        grantee: grantee.clone(),
        resource_types,
        purposes,
        start_ms: now,
        expires_at_ms,
        request_id: request_id.clone(),
        revoked_at_ms: None,
        revoked_reason: None,
    };
    put_json(stub, &key, &consent)?;
    let mut payload = json!({"patient_id": patient_id, "consent_id": consent_id,
        "grantee": grantee.to_string(), "expires_at_ms": expires_at_ms});
    if let (Some(p), Some(r)) = (payload.as_object_mut(), request_id) {
        p.insert("request_id".into(), r.into());
    }
    events.push(events::CONSENT_GRANTED, payload);
    events.extend(state_events);
    Ok((consent, rel.state))
}

/// `GrantConsent CONSENT_JSON` (submitted; the patient only):
/// `{"patient_id":…, "grantee":{"org":"Org2MSP"}|{"identity":"Org2MSP/<hash>"},
///   "resource_types":["Observation"] (omitted or empty = all), "purposes":["treatment"],
///   "valid_for_s":3600 | "expires_at_ms":…}`. Returns `{consent_id, state}`. A Blocked
/// grantee errors (403).
pub(crate) fn grant_consent(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "GrantConsent CONSENT_JSON";
    let caller = Caller::of(stub)?;
    let a: GrantArgs = json_param(args, 0, USAGE)?;
    let patient = load_patient(stub, &a.patient_id)?;
    caller.require_patient_or_auditor(stub, &patient, false)?;
    a.grantee.validate()?;
    check_scope(&a.resource_types, &a.purposes)?;
    let now = now_ms(stub)?;
    let expires_at_ms = match (a.valid_for_s, a.expires_at_ms) {
        (Some(s), None) => now + check_duration(s)?,
        (None, Some(at)) if at > now => {
            check_duration((at - now).div_ceil(1000))?;
            at
        }
        (None, Some(_)) => return Err(EhrError::invalid("expires_at_ms is not in the future")),
        _ => {
            return Err(EhrError::invalid(
                "give exactly one of valid_for_s and expires_at_ms",
            ));
        }
    };
    let mut events = Events::default();
    let (consent, state) = grant(
        stub,
        &a.patient_id,
        a.grantee,
        a.resource_types,
        a.purposes,
        expires_at_ms,
        None,
        now,
        &mut events,
    )?;
    events.emit(stub)?;
    to_json(&json!({"consent_id": consent.consent_id, "state": state}))
}

/// `RevokeConsent PATIENT_ID CONSENT_ID` (submitted; the patient only). The consent becomes
/// inactive; the access state is unchanged (a later request it no longer covers is a
/// Violation).
pub(crate) fn revoke_consent(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "RevokeConsent PATIENT_ID CONSENT_ID";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let consent_id = param(args, 1, USAGE)?;
    let patient = load_patient(stub, patient_id)?;
    caller.require_patient_or_auditor(stub, &patient, false)?;
    let key = consent_key(patient_id, consent_id)?;
    let mut consent: Consent = get_json(stub, &key, "consent")?
        .ok_or_else(|| EhrError::not_found("consent", consent_id))?;
    if consent.status != ConsentStatus::Active {
        return Err(EhrError::conflict(format!(
            "consent {consent_id} is already inactive"
        )));
    }
    let now = now_ms(stub)?;
    consent.status = ConsentStatus::Inactive;
    consent.revoked_at_ms = Some(now);
    consent.revoked_reason = Some("revoked".into());
    put_json(stub, &key, &consent)?;
    let mut events = Events::default();
    events.push(
        events::CONSENT_REVOKED,
        json!({"patient_id": patient_id, "consent_id": consent_id,
               "grantee": consent.grantee.to_string()}),
    );
    events.emit(stub)?;
    to_json(&json!({"consent_id": consent_id, "status": consent.status}))
}

/// `ListConsents PATIENT_ID [PAGE_SIZE [BOOKMARK]]` (evaluated; the patient or an auditor):
/// `{consents:[…], bookmark}`.
pub(crate) fn list_consents(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ListConsents PATIENT_ID [PAGE_SIZE [BOOKMARK]]";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let patient = load_patient(stub, patient_id)?;
    caller.require_patient_or_auditor(stub, &patient, true)?;
    let (size, bookmark) = page_params(args, 1)?;
    let (consents, bookmark): (Vec<Consent>, _) =
        page(stub, consent_range(patient_id)?, size, &bookmark, "consent")?;
    to_json(&json!({"consents": consents, "bookmark": bookmark}))
}

/// `GetConsent PATIENT_ID CONSENT_ID` (evaluated; as `ListConsents`: the patient or an
/// auditor): one consent of the patient, whatever its status, as `ListConsents` lists it
/// (FHIR `GET /Consent/{id}`; the consent id is the granting transaction's id). 404 if the
/// patient has no consent of that id.
pub(crate) fn get_consent(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "GetConsent PATIENT_ID CONSENT_ID";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let consent_id = param(args, 1, USAGE)?;
    if args.len() > 2 {
        return Err(EhrError::invalid(format!("usage: {USAGE}")));
    }
    let patient = load_patient(stub, patient_id)?;
    caller.require_patient_or_auditor(stub, &patient, true)?;
    let consent: Consent = get_json(stub, &consent_key(patient_id, consent_id)?, "consent")?
        .ok_or_else(|| EhrError::not_found("consent", consent_id))?;
    to_json(&consent)
}

/// `RequestAccess`'s argument.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestArgs {
    patient_id: String,
    #[serde(default)]
    resource_types: Vec<String>,
    purposes: Vec<Purpose>,
    valid_for_s: u64,
    /// Ask for the caller's identity only instead of its organization.
    #[serde(default)]
    for_identity: bool,
}

/// `RequestAccess REQUEST_JSON` (submitted; doctor, nurse, lab, insurer or researcher):
/// `{"patient_id":…, "resource_types":[…], "purposes":[…], "valid_for_s":…,
///   "for_identity":false}`. Files a pending request for the patient to approve or reject;
/// the grantee is the caller's organization (or, with `for_identity`, the caller). Returns
/// `{request_id}`.
pub(crate) fn request_access(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "RequestAccess REQUEST_JSON";
    let caller = Caller::of(stub)?;
    if !caller.has_role(&[
        Role::Doctor,
        Role::Nurse,
        Role::Lab,
        Role::Insurer,
        Role::Researcher,
    ]) {
        return Err(EhrError::forbidden(
            "only a doctor, nurse, lab, insurer or researcher files access requests",
        ));
    }
    let a: RequestArgs = json_param(args, 0, USAGE)?;
    load_patient(stub, &a.patient_id)?;
    check_scope(&a.resource_types, &a.purposes)?;
    check_duration(a.valid_for_s)?;
    let grantee = if a.for_identity {
        Grantee::Identity(caller.id.clone())
    } else {
        Grantee::Org(caller.msp_id.clone())
    };
    let rel = Relation::load(stub, &a.patient_id, grantee.clone())?;
    if rel.state == AccessState::Blocked {
        return Err(rel.blocked(&a.patient_id));
    }
    let request_id = stub.tx_id().to_owned();
    crate::ids::check_fhir_id("request id (transaction id)", &request_id)?;
    let key = access_request_key(&a.patient_id, &request_id)?;
    if stub.get_state(&key)?.is_some() {
        return Err(EhrError::conflict(format!("request {request_id} exists")));
    }
    let request = AccessRequest {
        request_id: request_id.clone(),
        patient_id: a.patient_id.clone(),
        requester: caller.id.clone(),
        requester_msp: caller.msp_id.clone(),
        requester_role: caller.role_name().to_owned(),
        grantee: grantee.clone(),
        resource_types: a.resource_types,
        purposes: a.purposes,
        valid_for_s: a.valid_for_s,
        status: RequestStatus::Pending,
        filed_at_ms: now_ms(stub)?,
        decided_at_ms: None,
        consent_id: None,
    };
    put_json(stub, &key, &request)?;
    let mut events = Events::default();
    events.push(
        events::ACCESS_REQUESTED,
        json!({"patient_id": a.patient_id, "request_id": request_id,
               "requester_msp": caller.msp_id, "grantee": grantee.to_string()}),
    );
    events.emit(stub)?;
    to_json(&json!({"request_id": request_id}))
}

fn pending_request(
    stub: &dyn ChaincodeStub,
    caller: &Caller,
    args: &[String],
    usage: &str,
) -> Result<(String, AccessRequest)> {
    let patient_id = param(args, 0, usage)?;
    let request_id = param(args, 1, usage)?;
    let patient = load_patient(stub, patient_id)?;
    caller.require_patient_or_auditor(stub, &patient, false)?;
    let key = access_request_key(patient_id, request_id)?;
    let request: AccessRequest = get_json(stub, &key, "access request")?
        .ok_or_else(|| EhrError::not_found("access request", request_id))?;
    if request.status != RequestStatus::Pending {
        return Err(EhrError::conflict(format!(
            "access request {request_id} was already decided"
        )));
    }
    Ok((key, request))
}

/// `ApproveAccessRequest PATIENT_ID REQUEST_ID` (submitted; the patient only): grants the
/// consent asked for (from now, for the requested duration). Returns `{consent_id, state}`.
pub(crate) fn approve_access_request(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    let caller = Caller::of(stub)?;
    let (key, mut request) = pending_request(
        stub,
        &caller,
        args,
        "ApproveAccessRequest PATIENT_ID REQUEST_ID",
    )?;
    let now = now_ms(stub)?;
    let mut events = Events::default();
    let (consent, state) = grant(
        stub,
        &request.patient_id,
        request.grantee.clone(),
        request.resource_types.clone(),
        request.purposes.clone(),
        now + check_duration(request.valid_for_s)?,
        Some(request.request_id.clone()),
        now,
        &mut events,
    )?;
    request.status = RequestStatus::Approved;
    request.decided_at_ms = Some(now);
    request.consent_id = Some(consent.consent_id.clone());
    put_json(stub, &key, &request)?;
    events.emit(stub)?;
    to_json(&json!({"consent_id": consent.consent_id, "state": state}))
}

/// `RejectAccessRequest PATIENT_ID REQUEST_ID` (submitted; the patient only).
pub(crate) fn reject_access_request(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    let caller = Caller::of(stub)?;
    let (key, mut request) = pending_request(
        stub,
        &caller,
        args,
        "RejectAccessRequest PATIENT_ID REQUEST_ID",
    )?;
    request.status = RequestStatus::Rejected;
    request.decided_at_ms = Some(now_ms(stub)?);
    put_json(stub, &key, &request)?;
    let mut events = Events::default();
    events.push(
        events::ACCESS_REQUEST_REJECTED,
        json!({"patient_id": request.patient_id, "request_id": request.request_id}),
    );
    events.emit(stub)?;
    to_json(&json!({"request_id": request.request_id, "status": request.status}))
}

/// `ListAccessRequests PATIENT_ID [PAGE_SIZE [BOOKMARK]]` (evaluated; the patient or an
/// auditor): `{requests:[…], bookmark}`.
pub(crate) fn list_access_requests(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ListAccessRequests PATIENT_ID [PAGE_SIZE [BOOKMARK]]";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let patient = load_patient(stub, patient_id)?;
    caller.require_patient_or_auditor(stub, &patient, true)?;
    let (size, bookmark) = page_params(args, 1)?;
    let (requests, bookmark): (Vec<AccessRequest>, _) = page(
        stub,
        access_request_range(patient_id)?,
        size,
        &bookmark,
        "access request",
    )?;
    to_json(&json!({"requests": requests, "bookmark": bookmark}))
}
