//! Access decisions: consent evaluation against the access state machine, the two-step read
//! (`RequestRecordAccess` submitted → `ReadRecord` evaluated), break-glass, and the access
//! state's reset.

use std::collections::BTreeMap;

use medledger_chaincode::ChaincodeStub;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::caller::{Caller, Role};
use crate::error::{EhrError, Result};
use crate::events;
use crate::ids::{Grantee, RecordId};
use crate::ids::{access_key, access_state_key, check_resource_type, consent_range};
use crate::ids::{emergency_key, record_key, record_range};
use crate::model::{
    AccessEntry, AccessKind, AccessStateEntry, AuthorityRole, Basis, Consent, ConsentStatus,
    Decision, DenyReason, EmergencyReason, EmergencyWindow, PatientEntry, PinnedRecord, Purpose,
    RecordMeta, RecordStatus, ResetApprovals,
};
use crate::state_machine::{AccessState, Action, TransitionError, reset, transition};
use crate::tx::{DEFAULT_PAGE_SIZE, Events, MAX_PAGE_SIZE, all, get_json, json_param};
use crate::tx::{load_patient, now_ms, opt_param, param, put_json, to_json};

/// How long a granted record access lets `ReadRecord` serve the PHI, ms (10 min).
pub const ACCESS_FRESHNESS_MS: u64 = 10 * 60 * 1000;
/// Default and longest break-glass window, s (24 h).
pub const MAX_EMERGENCY_WINDOW_S: u64 = 24 * 60 * 60;

/// The relation of a caller (as identity, or through its organization) with a patient.
#[derive(Debug, Clone)]
pub(crate) struct Relation {
    pub grantee: Grantee,
    pub key: String,
    pub state: AccessState,
    pub entry: Option<AccessStateEntry>,
}

impl Relation {
    pub(crate) fn load(
        stub: &dyn ChaincodeStub,
        patient_id: &str,
        grantee: Grantee,
    ) -> Result<Relation> {
        let key = access_state_key(patient_id, &grantee)?;
        let entry: Option<AccessStateEntry> = get_json(stub, &key, "access state")?;
        Ok(Relation {
            state: entry.as_ref().map_or(AccessState::NoRelation, |e| e.state),
            grantee,
            key,
            entry,
        })
    }

    /// Applies `action`; writes the state and records a StateChanged event if it changed.
    ///
    /// # Errors
    /// [`EhrError::Blocked`] from Blocked; [`EhrError::Conflict`] for an invalid transition.
    pub(crate) fn apply(
        &mut self,
        stub: &dyn ChaincodeStub,
        patient_id: &str,
        action: Action,
        now: u64,
        events: &mut Events,
    ) -> Result<()> {
        let next =
            transition(self.state, action).map_err(|e| self.transition_error(patient_id, e))?;
        self.set(stub, patient_id, next, action.as_str(), now, events)
    }

    pub(crate) fn set(
        &mut self,
        stub: &dyn ChaincodeStub,
        patient_id: &str,
        next: AccessState,
        action: &str,
        now: u64,
        events: &mut Events,
    ) -> Result<()> {
        if next == self.state {
            return Ok(());
        }
        let entry = AccessStateEntry {
            patient_id: patient_id.to_owned(),
            grantee: self.grantee.clone(),
            state: next,
            updated_at_ms: now,
            reset: ResetApprovals::default(),
        };
        put_json(stub, &self.key, &entry)?;
        events.push(
            events::STATE_CHANGED,
            json!({"patient_id": patient_id, "grantee": self.grantee.to_string(),
                   "from": self.state, "to": next, "action": action}),
        );
        self.state = next;
        self.entry = Some(entry);
        Ok(())
    }

    pub(crate) fn transition_error(&self, patient_id: &str, e: TransitionError) -> EhrError {
        match e {
            TransitionError::Blocked => self.blocked(patient_id),
            TransitionError::Invalid { .. } => EhrError::conflict(e.to_string()),
        }
    }

    pub(crate) fn blocked(&self, patient_id: &str) -> EhrError {
        EhrError::Blocked {
            patient_id: patient_id.to_owned(),
            grantee: self.grantee.to_string(),
        }
    }
}

/// The caller's two relations with the patient: as an identity, and through its organization.
pub(crate) fn relations(
    stub: &dyn ChaincodeStub,
    patient_id: &str,
    caller: &Caller,
) -> Result<Vec<Relation>> {
    Ok(vec![
        Relation::load(stub, patient_id, Grantee::Identity(caller.id.clone()))?,
        Relation::load(stub, patient_id, Grantee::Org(caller.msp_id.clone()))?,
    ])
}

/// Errors if any relation is Blocked ("error and abort").
pub(crate) fn refuse_blocked(relations: &[Relation], patient_id: &str) -> Result<()> {
    match relations.iter().find(|r| r.state == AccessState::Blocked) {
        Some(r) => Err(r.blocked(patient_id)),
        None => Ok(()),
    }
}

/// Every consent of the patient (any status) whose grantee is one of `relations`.
pub(crate) fn consents_for(
    stub: &dyn ChaincodeStub,
    patient_id: &str,
    relations: &[Relation],
) -> Result<Vec<Consent>> {
    let mut consents: Vec<Consent> = all(stub, consent_range(patient_id)?, "consent")?;
    consents.retain(|c| relations.iter().any(|r| r.grantee == c.grantee));
    Ok(consents)
}

/// Outcome of checking consents for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConsentCheck {
    /// A consent in force covers it and its grantee is Authorized.
    Granted(String),
    /// A consent covers it but its grantee is not Authorized (Suspended).
    NotAuthorized,
    /// Nothing covers it.
    Denied(DenyReason),
}

/// Checks `consents` (of `relations`' grantees) for `resource_type` and `purpose` at `now`.
pub(crate) fn check_consents(
    consents: &[Consent],
    relations: &[Relation],
    resource_type: &str,
    purpose: Purpose,
    now: u64,
) -> ConsentCheck {
    let state_of = |g: &Grantee| {
        relations
            .iter()
            .find(|r| &r.grantee == g)
            .map_or(AccessState::NoRelation, |r| r.state)
    };
    let covering: Vec<&Consent> = consents
        .iter()
        .filter(|c| c.covers(resource_type, purpose, now))
        .collect();
    if let Some(c) = covering
        .iter()
        .find(|c| state_of(&c.grantee) == AccessState::Authorized)
    {
        return ConsentCheck::Granted(c.consent_id.clone());
    }
    if !covering.is_empty() {
        return ConsentCheck::NotAuthorized;
    }
    let reason = if consents.is_empty() {
        DenyReason::NoConsent
    } else if consents
        .iter()
        .any(|c| c.in_force(now) && c.in_scope(resource_type))
    {
        DenyReason::PurposeNotPermitted
    } else if consents
        .iter()
        .any(|c| c.status == ConsentStatus::Active && c.in_scope(resource_type))
    {
        DenyReason::Expired
    } else if consents
        .iter()
        .any(|c| c.status == ConsentStatus::Inactive && c.in_scope(resource_type))
    {
        DenyReason::Revoked
    } else {
        DenyReason::OutOfScope
    };
    ConsentCheck::Denied(reason)
}

/// Whether the caller may state `purpose` (its role must fit it): treatment — doctor, nurse,
/// lab; payment — insurer, admin; research — researcher; operations — admin, doctor, nurse;
/// public health — doctor, researcher, admin.
pub(crate) fn role_fits_purpose(role: Option<Role>, purpose: Purpose) -> bool {
    use Role::*;
    let allowed: &[Role] = match purpose {
        Purpose::Treatment => &[Doctor, Nurse, Lab],
        Purpose::Payment => &[Insurer, Admin],
        Purpose::Research => &[Researcher],
        Purpose::Operations => &[Admin, Doctor, Nurse],
        Purpose::PublicHealth => &[Doctor, Researcher, Admin],
    };
    role.is_some_and(|r| allowed.contains(&r))
}

pub(crate) fn parse_purpose(s: &str) -> Result<Purpose> {
    Purpose::parse(s).ok_or_else(|| {
        EhrError::invalid(
            "purpose must be treatment, payment, research, operations or public-health",
        )
    })
}

/// Loads a record's metadata (reserved, active or purged), or 404.
pub(crate) fn load_record(
    stub: &dyn ChaincodeStub,
    patient_id: &str,
    record: &RecordId,
) -> Result<(String, RecordMeta)> {
    let key = record_key(patient_id, record)?;
    let meta: RecordMeta = get_json(stub, &key, "record")?
        .ok_or_else(|| EhrError::not_found("record", record.to_string()))?;
    Ok((key, meta))
}

/// Loads a created record (active or purged): 404 if absent or only reserved.
pub(crate) fn load_created_record(
    stub: &dyn ChaincodeStub,
    patient_id: &str,
    record: &RecordId,
) -> Result<(String, RecordMeta)> {
    let (key, meta) = load_record(stub, patient_id, record)?;
    if meta.status == RecordStatus::Reserved {
        return Err(EhrError::not_found("record", record.to_string()));
    }
    Ok((key, meta))
}

/// Loads a record that holds its PHI: 404 if absent or only reserved, 410 if purged.
pub(crate) fn load_active_record(
    stub: &dyn ChaincodeStub,
    patient_id: &str,
    record: &RecordId,
) -> Result<(String, RecordMeta)> {
    let (key, meta) = load_created_record(stub, patient_id, record)?;
    if meta.status == RecordStatus::Purged {
        return Err(EhrError::Purged {
            record_id: record.to_string(),
        });
    }
    Ok((key, meta))
}

fn access_id(stub: &dyn ChaincodeStub, now: u64) -> String {
    format!("{now:015}.{}", stub.tx_id())
}

/// One access decision for one resource type.
#[derive(Debug, Clone)]
struct Verdict {
    decision: Decision,
    basis: Option<Basis>,
    basis_id: Option<String>,
    reason: Option<DenyReason>,
    /// A denial by consent: the caller's Authorized or Suspended relations take a Violation.
    violation: bool,
}

impl Verdict {
    fn granted(basis: Basis, basis_id: Option<String>) -> Verdict {
        Verdict {
            decision: Decision::Granted,
            basis: Some(basis),
            basis_id,
            reason: None,
            violation: false,
        }
    }

    fn denied(reason: DenyReason, violation: bool) -> Verdict {
        Verdict {
            decision: Decision::Denied,
            basis: None,
            basis_id: None,
            reason: Some(reason),
            violation,
        }
    }
}

/// What decides a caller's record access requests for one patient and purpose: its own
/// standing (the patient, the custodian's staff), else its relations, their consents and an
/// open break-glass window.
struct Grantor {
    patient_id: String,
    own: Option<Basis>,
    rels: Vec<Relation>,
    consents: Vec<Consent>,
    window: Option<EmergencyWindow>,
    purpose: Purpose,
    now: u64,
}

impl Grantor {
    /// # Errors
    /// 403 if the caller's role does not fit `purpose` or a relation is Blocked (nothing
    /// written).
    fn load(
        stub: &dyn ChaincodeStub,
        caller: &Caller,
        patient: &PatientEntry,
        purpose: Purpose,
        now: u64,
    ) -> Result<Grantor> {
        let mut g = Grantor {
            patient_id: patient.patient_id.clone(),
            own: None,
            rels: Vec::new(),
            consents: Vec::new(),
            window: None,
            purpose,
            now,
        };
        if caller.is_patient(patient) {
            g.own = Some(Basis::Patient);
            return Ok(g);
        }
        if caller.is_staff_of(&patient.custodian_msp) {
            g.own = Some(Basis::Custodian);
            return Ok(g);
        }
        if !role_fits_purpose(caller.role, purpose) {
            return Err(EhrError::forbidden(format!(
                "role {} may not request access for this purpose",
                caller.role_name()
            )));
        }
        let patient_id = &patient.patient_id;
        g.rels = relations(stub, patient_id, caller)?;
        refuse_blocked(&g.rels, patient_id)?;
        g.consents = consents_for(stub, patient_id, &g.rels)?;
        let window: Option<EmergencyWindow> = get_json(
            stub,
            &emergency_key(patient_id, &caller.id)?,
            "emergency window",
        )?;
        // An open window grants only while the caller still is a doctor or nurse with
        // `ehr.emergency=true` (a certificate re-issued without it closes the person's
        // windows) and its organization still holds break-glass authority (a withdrawn
        // authority closes its windows).
        g.window = match window.filter(|w| w.opened_at_ms <= now && now < w.expires_at_ms) {
            Some(w)
                if caller.emergency
                    && caller.has_role(&[Role::Doctor, Role::Nurse])
                    && crate::governance::authority(
                        stub,
                        &caller.msp_id,
                        AuthorityRole::Emergency,
                    )?
                    .in_force =>
            {
                Some(w)
            }
            _ => None,
        };
        Ok(g)
    }

    /// The decision for a record of `resource_type`.
    fn decide(&self, resource_type: &str) -> Verdict {
        if let Some(basis) = self.own {
            return Verdict::granted(basis, None);
        }
        let check = check_consents(
            &self.consents,
            &self.rels,
            resource_type,
            self.purpose,
            self.now,
        );
        match (check, &self.window) {
            (ConsentCheck::Granted(consent_id), _) => {
                Verdict::granted(Basis::Consent, Some(consent_id))
            }
            (_, Some(w)) => Verdict::granted(Basis::Emergency, Some(w.access_id.clone())),
            (ConsentCheck::NotAuthorized, None) => Verdict::denied(DenyReason::Suspended, false),
            (ConsentCheck::Denied(reason), None) => Verdict::denied(reason, true),
        }
    }

    /// The decision when no record type is at stake (a search that matched nothing): granted
    /// to the patient, the custodian's staff, an open window, or a consent in force for the
    /// purpose whose relation is Authorized; no Violation either way.
    fn decide_any(&self) -> Verdict {
        if self.own.is_some() || self.window.is_some() {
            return self.decide("");
        }
        let authorized = |c: &Consent| {
            self.rels
                .iter()
                .any(|r| r.grantee == c.grantee && r.state == AccessState::Authorized)
        };
        match self
            .consents
            .iter()
            .find(|c| c.in_force(self.now) && c.purposes.contains(&self.purpose) && authorized(c))
        {
            Some(c) => Verdict::granted(Basis::Consent, Some(c.consent_id.clone())),
            None => Verdict::denied(DenyReason::NoConsent, false),
        }
    }

    /// The access entry of `verdict` by `caller` (kind `kind`, this purpose, fresh for
    /// [`ACCESS_FRESHNESS_MS`] when granted), after the Violation a consent denial takes.
    fn audited(
        &mut self,
        stub: &dyn ChaincodeStub,
        caller: &Caller,
        verdict: Verdict,
        kind: AccessKind,
        events: &mut Events,
    ) -> Result<AccessEntry> {
        if verdict.violation {
            self.violate(stub, &self.patient_id.clone(), events)?;
        }
        let granted = verdict.decision == Decision::Granted;
        let id = access_id(stub, self.now);
        let mut entry = access_entry(caller, &self.patient_id, &id, kind, self.now);
        entry.purpose = Some(self.purpose);
        entry.valid_until_ms = granted.then_some(self.now + ACCESS_FRESHNESS_MS);
        verdict.apply_to(&mut entry);
        Ok(entry)
    }

    /// A Violation for each of the caller's relations that is Authorized or Suspended.
    fn violate(
        &mut self,
        stub: &dyn ChaincodeStub,
        patient_id: &str,
        events: &mut Events,
    ) -> Result<()> {
        for r in self
            .rels
            .iter_mut()
            .filter(|r| matches!(r.state, AccessState::Authorized | AccessState::Suspended))
        {
            r.apply(stub, patient_id, Action::Violation, self.now, events)?;
        }
        Ok(())
    }
}

/// Writes an access entry and emits its `AccessGranted`/`AccessDenied` event (with `detail`
/// merged into the payload) before the state changes in `events`.
fn audit_access(
    stub: &dyn ChaincodeStub,
    entry: &AccessEntry,
    detail: serde_json::Value,
    events: Events,
) -> Result<()> {
    put_json(
        stub,
        &access_key(&entry.patient_id, &entry.access_id)?,
        entry,
    )?;
    let (name, outcome) = match entry.decision {
        Decision::Granted => (events::ACCESS_GRANTED, json!({"basis": entry.basis})),
        Decision::Denied => (events::ACCESS_DENIED, json!({"reason": entry.reason})),
    };
    let mut payload = json!({"patient_id": entry.patient_id, "access_id": entry.access_id,
        "requester_msp": entry.requester_msp});
    if let Some(p) = payload.as_object_mut() {
        for extra in [detail, outcome] {
            if let serde_json::Value::Object(extra) = extra {
                p.extend(extra);
            }
        }
    }
    // The access event first, then any state change.
    let mut all_events = Events::default();
    all_events.push(name, payload);
    all_events.extend(events);
    all_events.emit(stub)
}

/// `RequestRecordAccess PATIENT_ID RECORD_ID PURPOSE` (submitted; any identity). Decides on
/// the patient's own access, custodianship, consent (scope, purpose, period) with the access
/// state, or an open break-glass window; writes the access entry, pinning the record's
/// current version when granted; returns `{access_id, decision}` and, when granted,
/// `version`, `sha256` (hex) and `updated_at_ms` (that version's transaction time, ms) — ids
/// and public metadata only. A denial is a successful transaction (so it is audited) and is
/// a Violation for a grantee with a relation. A Blocked relation errors (403) and writes
/// nothing.
pub(crate) fn request_record_access(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "RequestRecordAccess PATIENT_ID RECORD_ID PURPOSE";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let record: RecordId = param(args, 1, USAGE)?.parse()?;
    let purpose = parse_purpose(param(args, 2, USAGE)?)?;
    let patient = load_patient(stub, patient_id)?;
    let (_, meta) = load_active_record(stub, patient_id, &record)?;
    let now = now_ms(stub)?;
    let mut events = Events::default();
    let mut grantor = Grantor::load(stub, &caller, &patient, purpose, now)?;
    let verdict = grantor.decide(&record.resource_type);
    let mut entry = grantor.audited(
        stub,
        &caller,
        verdict,
        AccessKind::RecordAccess,
        &mut events,
    )?;
    let granted = entry.decision == Decision::Granted;
    let access_id = entry.access_id.clone();
    entry.record_id = Some(record.to_string());
    entry.version = granted.then_some(meta.version);
    entry.sha256 = granted.then(|| meta.sha256.clone());
    audit_access(
        stub,
        &entry,
        json!({"record_id": record.to_string()}),
        events,
    )?;
    if granted {
        to_json(&json!({"access_id": access_id, "decision": entry.decision,
            "version": meta.version, "sha256": meta.sha256, "updated_at_ms": meta.updated_at_ms}))
    } else {
        to_json(&json!({"access_id": access_id, "decision": entry.decision}))
    }
}

impl Verdict {
    fn apply_to(self, entry: &mut AccessEntry) {
        entry.decision = self.decision;
        entry.basis = self.basis;
        entry.basis_id = self.basis_id;
        entry.reason = self.reason;
    }
}

/// A denied access entry of `kind` by `caller` at `now`, to fill in.
fn access_entry(
    caller: &Caller,
    patient_id: &str,
    access_id: &str,
    kind: AccessKind,
    now: u64,
) -> AccessEntry {
    AccessEntry {
        access_id: access_id.to_owned(),
        kind,
        patient_id: patient_id.to_owned(),
        record_id: None,
        requester: caller.id.clone(),
        requester_msp: caller.msp_id.clone(),
        requester_role: caller.role_name().to_owned(),
        purpose: None,
        at_ms: now,
        decision: Decision::Denied,
        basis: None,
        basis_id: None,
        reason: None,
        valid_until_ms: None,
        emergency_reason: None,
        version: None,
        sha256: None,
        records: Vec::new(),
    }
}

/// Largest page of `RequestRecordsAccess`, records.
pub const MAX_SEARCH_PAGE: usize = MAX_PAGE_SIZE as usize;
/// Most resource bytes one `ReadRecords` answer carries (4 MiB); the rest follows from
/// `START`.
pub const MAX_READ_RECORDS_BYTES: usize = 4 << 20;
/// Most resource types one search names.
const MAX_SEARCH_TYPES: usize = 64;

/// `RequestRecordsAccess`' query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    /// Resource types; empty = every type the caller may read.
    #[serde(default)]
    types: Vec<String>,
    /// Only records whose current version was written at or after this time, ms.
    #[serde(default)]
    updated_since_ms: Option<u64>,
    /// Records per page, 1 to [`MAX_SEARCH_PAGE`] (default 50).
    #[serde(default)]
    page_size: Option<usize>,
    /// The previous page's bookmark (a record's ledger id), or empty for the first page.
    #[serde(default)]
    bookmark: Option<String>,
}

/// `RequestRecordsAccess PATIENT_ID PURPOSE QUERY_JSON` (submitted; any identity; the
/// audited search of FHIR `GET /Observation?patient=…` and `$everything`). `QUERY_JSON` =
/// `{"types": ["Observation",…] (empty or absent = every type the caller may read, at most
/// 64), "updated_since_ms"?: ms, "page_size"?: 1-200 (default 50), "bookmark"?: "…"}`.
/// Applies `RequestRecordAccess`' decision rules per resource type of the patient's active
/// records (in key order, after the bookmark): the patient and the custodian's staff read
/// every type, other callers the types a consent in force covers for `PURPOSE` with an
/// Authorized relation, or every type in an open break-glass window. Writes ONE access entry
/// (`kind: search_access`) listing the page's records, each pinned to its current version, and
/// returns `{access_id, decision, records: [{record_id, version, sha256, updated_at_ms}],
/// bookmark}` (`bookmark` empty on the last page) — ids and public metadata only.
///
/// `decision` is `granted` when some type asked (or, with no type named, some type the
/// patient has) is granted, even if the page is empty; records of other types are left out.
/// Otherwise the search is `denied` (audited, its reason the first type's; a Violation as
/// for `RequestRecordAccess` when a consent rule denied it). Errors (nothing written): 403
/// role not fitting the purpose or a Blocked relation, 400 malformed arguments, 404 unknown
/// patient.
pub(crate) fn request_records_access(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "RequestRecordsAccess PATIENT_ID PURPOSE QUERY_JSON";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let purpose = parse_purpose(param(args, 1, USAGE)?)?;
    let query: serde_json::Value = json_param(args, 2, USAGE)?;
    let query: SearchQuery = query
        .is_object()
        .then(|| serde_json::from_value(query).ok())
        .flatten()
        .ok_or_else(|| {
            EhrError::invalid(
                "QUERY_JSON must be {\"types\"?: [..], \"updated_since_ms\"?: ms, \
                 \"page_size\"?: 1-200, \"bookmark\"?: \"..\"}",
            )
        })?;
    if args.len() > 3 {
        return Err(EhrError::invalid(format!("usage: {USAGE}")));
    }
    let size = query
        .page_size
        .unwrap_or(DEFAULT_PAGE_SIZE.unsigned_abs() as usize);
    if !(1..=MAX_SEARCH_PAGE).contains(&size) {
        return Err(EhrError::invalid(format!(
            "page_size must be 1 to {MAX_SEARCH_PAGE}"
        )));
    }
    if query.types.len() > MAX_SEARCH_TYPES {
        return Err(EhrError::invalid(format!(
            "a search names at most {MAX_SEARCH_TYPES} types"
        )));
    }
    for t in &query.types {
        check_resource_type(t)?;
    }
    let bookmark: Option<RecordId> = match query.bookmark.as_deref() {
        None | Some("") => None,
        Some(b) => Some(
            b.parse()
                .map_err(|_| EhrError::invalid("bookmark is not from this search"))?,
        ),
    };
    let patient = load_patient(stub, patient_id)?;
    let now = now_ms(stub)?;
    let mut grantor = Grantor::load(stub, &caller, &patient, purpose, now)?;
    // Fabric allows only unpaged range queries in a submitted transaction: the patient's
    // records from the bookmark on (the bookmark itself excluded).
    let (start, end) = record_range(patient_id)?;
    let start = match &bookmark {
        Some(b) => record_key(patient_id, b)?,
        None => start,
    };
    let after: String = bookmark
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let records: Vec<RecordMeta> = all(stub, (start, end), "record")?;
    let mut verdicts: BTreeMap<String, Verdict> = query
        .types
        .iter()
        .map(|t| (t.clone(), grantor.decide(t)))
        .collect();
    let mut page: Vec<RecordMeta> = Vec::new();
    let mut more = false;
    for meta in records.into_iter().filter(|m| m.record_id != after) {
        if meta.status != RecordStatus::Active
            || (!query.types.is_empty() && !verdicts.contains_key(&meta.resource_type))
            || query
                .updated_since_ms
                .is_some_and(|t| meta.updated_at_ms < t)
        {
            continue;
        }
        let verdict = verdicts
            .entry(meta.resource_type.clone())
            .or_insert_with(|| grantor.decide(&meta.resource_type));
        if verdict.decision != Decision::Granted {
            continue;
        }
        if page.len() == size {
            more = true;
            break;
        }
        page.push(meta);
    }
    let verdict = match verdicts.values().find(|v| v.decision == Decision::Granted) {
        Some(v) => v.clone(),
        None => verdicts
            .values()
            .next()
            .cloned()
            .unwrap_or_else(|| grantor.decide_any()),
    };
    let mut events = Events::default();
    let mut entry = grantor.audited(
        stub,
        &caller,
        verdict,
        AccessKind::SearchAccess,
        &mut events,
    )?;
    let access_id = entry.access_id.clone();
    entry.records = page
        .iter()
        .map(|m| PinnedRecord {
            record_id: m.record_id.clone(),
            version: m.version,
            sha256: m.sha256.clone(),
        })
        .collect();
    let detail = json!({"kind": AccessKind::SearchAccess, "records": page.len()});
    audit_access(stub, &entry, detail, events)?;
    let bookmark = match (more, page.last()) {
        (true, Some(last)) => last.record_id.clone(),
        _ => String::new(),
    };
    let records: Vec<serde_json::Value> = page
        .iter()
        .map(|m| {
            json!({"record_id": m.record_id, "version": m.version, "sha256": m.sha256,
                   "updated_at_ms": m.updated_at_ms})
        })
        .collect();
    to_json(&json!({"access_id": access_id, "decision": entry.decision,
        "records": records, "bookmark": bookmark}))
}

/// The caller's granted, committed and fresh ([`ACCESS_FRESHNESS_MS`]) access entry
/// `access_id` of kind `kind`, for the evaluated reads (`ReadRecord`, `ReadRecords`).
///
/// # Errors
/// 404 if no such entry is committed (on this peer, yet); 403 if it is another kind or
/// another caller's, was denied, or is no longer fresh.
pub(crate) fn granted_entry(
    stub: &dyn ChaincodeStub,
    caller: &Caller,
    patient_id: &str,
    access_id: &str,
    kind: AccessKind,
) -> Result<AccessEntry> {
    let entry: AccessEntry = get_json(stub, &access_key(patient_id, access_id)?, "access")?
        .ok_or_else(|| EhrError::not_found("access entry", access_id))?;
    if entry.kind != kind || entry.requester != caller.id {
        return Err(EhrError::forbidden(format!(
            "access entry {access_id} is not a {} of the caller",
            kind.as_str()
        )));
    }
    if entry.decision != Decision::Granted {
        return Err(EhrError::forbidden(format!(
            "access {access_id} was denied"
        )));
    }
    let now = now_ms(stub)?;
    if now < entry.at_ms || entry.valid_until_ms.is_none_or(|until| now >= until) {
        return Err(EhrError::forbidden(format!(
            "access {access_id} is no longer fresh; request access again"
        )));
    }
    Ok(entry)
}

/// The exact bytes of a record (`key`, current metadata `meta`) that `access_id` granted at
/// `pinned` (version, hex SHA-256), from a collection of this peer: a grantee
/// organization's own peers serve a copy shared with it, the custodian's the original.
///
/// # Errors
/// 409 if the record changed since the grant (another version is current); 500 if the stored
/// bytes do not hash to the on-chain SHA-256; 404 if this peer holds no copy.
pub(crate) fn pinned_bytes(
    stub: &dyn ChaincodeStub,
    caller: &Caller,
    patient: &PatientEntry,
    (key, meta): (&str, &RecordMeta),
    pinned: (Option<u64>, Option<&str>),
    access_id: &str,
) -> Result<Vec<u8>> {
    if let (Some(version), Some(sha256)) = pinned
        && (version != meta.version || sha256 != meta.sha256)
    {
        return Err(EhrError::conflict(format!(
            "record {} changed after access {access_id} was granted (version {version} \
             granted, {} current); request access again",
            meta.record_id, meta.version
        )));
    }
    // A peer that is not a member of a collection answers nothing (or an error).
    let mut collections: Vec<&str> = meta
        .shares
        .iter()
        .filter(|s| s.grantee_msp == caller.msp_id && s.sha256 == meta.sha256)
        .map(|s| s.collection.as_str())
        .collect();
    collections.push(&patient.collection);
    for collection in &collections {
        if let Ok(Some(bytes)) = stub.get_private_data(collection, key) {
            if hex::encode(Sha256::digest(&bytes)) != meta.sha256 {
                return Err(EhrError::Integrity {
                    record_id: meta.record_id.clone(),
                });
            }
            return Ok(bytes);
        }
    }
    Err(EhrError::not_found(
        "PHI on this peer for record",
        meta.record_id.clone(),
    ))
}

/// `ReadRecord PATIENT_ID ACCESS_ID` (evaluated only, on a peer holding the PHI; never
/// submit it: a submitted response is stored in the block). Returns the resource's exact
/// bytes when the access entry is committed, is the caller's, was granted, and is fresh
/// ([`ACCESS_FRESHNESS_MS`]); the bytes are checked against the on-chain SHA-256, and must be
/// the version the grant pinned: 409 if the record was updated between the two steps.
pub(crate) fn read_record(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ReadRecord PATIENT_ID ACCESS_ID";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let access_id = param(args, 1, USAGE)?;
    let patient = load_patient(stub, patient_id)?;
    let entry = granted_entry(
        stub,
        &caller,
        patient_id,
        access_id,
        AccessKind::RecordAccess,
    )?;
    let record: RecordId = entry
        .record_id
        .as_deref()
        .ok_or(EhrError::Corrupt("access"))?
        .parse()?;
    let (key, meta) = load_active_record(stub, patient_id, &record)?;
    pinned_bytes(
        stub,
        &caller,
        &patient,
        (&key, &meta),
        (entry.version, entry.sha256.as_deref()),
        access_id,
    )
}

/// One record of `ReadRecords`' answer: the stored bytes as they are.
#[derive(Serialize)]
struct ReadItem {
    record_id: String,
    version: u64,
    resource: Box<RawValue>,
}

/// `ReadRecords PATIENT_ID ACCESS_ID [START]` (evaluated only, on a peer holding the PHI, like
/// `ReadRecord`; never submit it). For the caller's granted, committed and fresh search
/// access entry (`RequestRecordsAccess`), returns `{"records": [{"record_id", "version",
/// "resource": <the exact stored bytes, as JSON>}], "next"?: n}`: the entry's records from
/// index `START` (default 0) on, in its order, at most [`MAX_READ_RECORDS_BYTES`] of resources
/// (at least one); `next` is the index to continue from when more remain. Each record must
/// still be the version the grant pinned: 409 if one was updated since (request access
/// again), 410 if one was purged; 500 if stored bytes do not match the on-chain hash.
pub(crate) fn read_records(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ReadRecords PATIENT_ID ACCESS_ID [START]";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let access_id = param(args, 1, USAGE)?;
    if args.len() > 3 {
        return Err(EhrError::invalid(format!("usage: {USAGE}")));
    }
    let patient = load_patient(stub, patient_id)?;
    let entry = granted_entry(
        stub,
        &caller,
        patient_id,
        access_id,
        AccessKind::SearchAccess,
    )?;
    let start = match opt_param(args, 2) {
        None => 0,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|s| *s <= entry.records.len())
            .ok_or_else(|| {
                EhrError::invalid("START must be an index into the access entry's records")
            })?,
    };
    let (mut items, mut total, mut next) = (Vec::new(), 0usize, None);
    for (i, pinned) in entry.records.iter().enumerate().skip(start) {
        let record: RecordId = pinned.record_id.parse()?;
        let (key, meta) = load_active_record(stub, patient_id, &record)?;
        let bytes = pinned_bytes(
            stub,
            &caller,
            &patient,
            (&key, &meta),
            (Some(pinned.version), Some(&pinned.sha256)),
            access_id,
        )?;
        if !items.is_empty() && total + bytes.len() > MAX_READ_RECORDS_BYTES {
            next = Some(i);
            break;
        }
        total += bytes.len();
        let resource = String::from_utf8(bytes)
            .ok()
            .and_then(|s| RawValue::from_string(s).ok())
            .ok_or(EhrError::Corrupt("record"))?;
        items.push(ReadItem {
            record_id: pinned.record_id.clone(),
            version: pinned.version,
            resource,
        });
    }
    #[derive(Serialize)]
    struct Answer {
        records: Vec<ReadItem>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<usize>,
    }
    to_json(&Answer {
        records: items,
        next,
    })
}

fn parse_reason(s: &str) -> Result<EmergencyReason> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| EhrError::invalid("emergency reason must be ETREAT or BTG"))
}

/// `EmergencyAccess PATIENT_ID REASON [WINDOW_S]` (submitted; doctor or nurse with
/// `ehr.emergency=true` of an organization holding break-glass authority). Opens a
/// break-glass window (default and at most 24 h) in which the clinician's record access
/// requests are granted without consent; audited as an access entry, and an
/// `EmergencyAccess` event notifies the patient. Returns
/// `{access_id, decision: "granted", expires_at_ms}`.
///
/// A doctor or nurse without the attribute, or of an organization without the authority, is
/// refused *on the ledger*: the transaction succeeds with
/// `{access_id, decision: "denied", reason, message}` (`reason` `no_emergency_attribute` or
/// `no_emergency_authority`, `message` naming organizations and counts only), a denied access
/// entry and an `AccessDenied` event, so the patient sees the attempt; no window opens.
/// Errors (nothing written): 403 other roles or a Blocked relation, 400 malformed arguments,
/// 404 unknown patient.
pub(crate) fn emergency_access(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "EmergencyAccess PATIENT_ID ETREAT|BTG [WINDOW_S]";
    const NEEDS: &str = "break-glass needs a doctor or nurse certificate with ehr.emergency=true";
    let caller = Caller::of(stub)?;
    if !caller.has_role(&[Role::Doctor, Role::Nurse]) {
        return Err(EhrError::forbidden(NEEDS));
    }
    let patient_id = param(args, 0, USAGE)?;
    let reason = parse_reason(param(args, 1, USAGE)?)?;
    let window_s = match opt_param(args, 2) {
        None => MAX_EMERGENCY_WINDOW_S,
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=MAX_EMERGENCY_WINDOW_S).contains(s))
            .ok_or_else(|| {
                EhrError::invalid(format!("window must be 1 to {MAX_EMERGENCY_WINDOW_S} s"))
            })?,
    };
    load_patient(stub, patient_id)?;
    let rels = relations(stub, patient_id, &caller)?;
    refuse_blocked(&rels, patient_id)?;
    let now = now_ms(stub)?;
    let access_id = access_id(stub, now);
    // The attribute counts only for an organization a majority of the channel's organizations
    // gave break-glass authority (ADR 0029): any organization's CA can write it.
    let denial = if caller.emergency {
        let a = crate::governance::authority(stub, &caller.msp_id, AuthorityRole::Emergency)?;
        (!a.in_force).then(|| {
            (
                DenyReason::NoEmergencyAuthority,
                crate::governance::not_held_message(&a),
            )
        })
    } else {
        Some((DenyReason::NoEmergencyAttribute, NEEDS.to_owned()))
    };
    // The audit entry of the attempt, denied unless the window opens below.
    let mut entry = access_entry(
        &caller,
        patient_id,
        &access_id,
        AccessKind::EmergencyAccess,
        now,
    );
    entry.emergency_reason = Some(reason);
    if let Some((deny, message)) = denial {
        entry.reason = Some(deny);
        put_json(stub, &access_key(patient_id, &access_id)?, &entry)?;
        let mut events = Events::default();
        events.push(
            events::ACCESS_DENIED,
            json!({"patient_id": patient_id, "access_id": access_id,
                   "requester_msp": caller.msp_id, "kind": AccessKind::EmergencyAccess,
                   "reason": deny}),
        );
        events.emit(stub)?;
        let answer = json!({"access_id": access_id, "decision": Decision::Denied,
            "reason": deny, "message": message});
        return to_json(&answer);
    }
    let expires_at_ms = now + window_s * 1000;
    let window = EmergencyWindow {
        patient_id: patient_id.to_owned(),
        clinician: caller.id.clone(),
        access_id: access_id.clone(),
        opened_at_ms: now,
        expires_at_ms,
        reason,
    };
    put_json(stub, &emergency_key(patient_id, &caller.id)?, &window)?;
    entry.decision = Decision::Granted;
    entry.basis = Some(Basis::Emergency);
    entry.valid_until_ms = Some(expires_at_ms);
    put_json(stub, &access_key(patient_id, &access_id)?, &entry)?;
    let mut events = Events::default();
    events.push(
        events::EMERGENCY_ACCESS,
        json!({"patient_id": patient_id, "access_id": access_id, "clinician": caller.id,
               "clinician_msp": caller.msp_id, "reason": reason, "expires_at_ms": expires_at_ms}),
    );
    events.emit(stub)?;
    let answer = json!({"access_id": access_id, "decision": Decision::Granted,
        "expires_at_ms": expires_at_ms});
    to_json(&answer)
}

/// `GetAccessState PATIENT_ID GRANTEE` (evaluated; the patient, an auditor, the custodian's
/// admin, or the grantee itself). `GRANTEE` is `org:MSPID` or `identity:MSPID/hash`.
pub(crate) fn get_access_state(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "GetAccessState PATIENT_ID GRANTEE";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let grantee: Grantee = param(args, 1, USAGE)?.parse()?;
    let patient = load_patient(stub, patient_id)?;
    let is_grantee = match &grantee {
        Grantee::Org(msp) => *msp == caller.msp_id,
        Grantee::Identity(id) => *id == caller.id,
    };
    if !(caller.is_patient(&patient)
        || caller.is_admin_of(&patient.custodian_msp)
        || is_grantee
        || caller.is_auditor(stub)?)
    {
        return Err(EhrError::forbidden(
            "only the patient, an auditor, the custodian's admin or the grantee reads this state",
        ));
    }
    let rel = Relation::load(stub, patient_id, grantee.clone())?;
    let entry = rel.entry.unwrap_or(AccessStateEntry {
        patient_id: patient_id.to_owned(),
        grantee,
        state: AccessState::NoRelation,
        updated_at_ms: 0,
        reset: ResetApprovals::default(),
    });
    to_json(&entry)
}

/// `ResetAccessState PATIENT_ID GRANTEE` (submitted; the patient and an admin of the
/// custodian organization, one call each, in either order). Only a Blocked relation is reset:
/// the first call records its approval; the second resets the state to NoRelation and ends
/// (status `inactive`, reason `reset`) the grantee's consents still active, so access starts
/// over from a new grant.
pub(crate) fn reset_access_state(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ResetAccessState PATIENT_ID GRANTEE";
    let caller = Caller::of(stub)?;
    let patient_id = param(args, 0, USAGE)?;
    let grantee: Grantee = param(args, 1, USAGE)?.parse()?;
    let patient = load_patient(stub, patient_id)?;
    let by_patient = caller.is_patient(&patient);
    if !by_patient && !caller.is_admin_of(&patient.custodian_msp) {
        return Err(EhrError::forbidden(
            "only the patient and an admin of the custodian organization reset an access state",
        ));
    }
    let mut rel = Relation::load(stub, patient_id, grantee.clone())?;
    let now = now_ms(stub)?;
    let mut entry = match (&rel.entry, rel.state) {
        (Some(e), AccessState::Blocked) => e.clone(),
        _ => {
            return Err(EhrError::conflict(format!(
                "access state of {grantee} is {}; only a Blocked one is reset",
                rel.state.as_str()
            )));
        }
    };
    let mut events = Events::default();
    if by_patient {
        if entry.reset.patient_at_ms.is_some() {
            return Err(EhrError::conflict(
                "the patient already approved this reset",
            ));
        }
        entry.reset.patient_at_ms = Some(now);
    } else {
        if entry.reset.admin.is_some() {
            return Err(EhrError::conflict("an admin already approved this reset"));
        }
        entry.reset.admin = Some(caller.id.clone());
        entry.reset.admin_at_ms = Some(now);
    }
    let done = entry.reset.patient_at_ms.is_some() && entry.reset.admin.is_some();
    if done {
        let next = reset(rel.state).map_err(|e| rel.transition_error(patient_id, e))?;
        rel.set(stub, patient_id, next, "Reset", now, &mut events)?;
        let consents: Vec<Consent> = all(stub, consent_range(patient_id)?, "consent")?;
        for mut c in consents
            .into_iter()
            .filter(|c| c.grantee == grantee && c.status == ConsentStatus::Active)
        {
            c.status = ConsentStatus::Inactive;
            c.revoked_at_ms = Some(now);
            c.revoked_reason = Some("reset".into());
            put_json(
                stub,
                &crate::ids::consent_key(patient_id, &c.consent_id)?,
                &c,
            )?;
        }
    } else {
        put_json(stub, &rel.key, &entry)?;
        events.push(
            events::RESET_APPROVED,
            json!({"patient_id": patient_id, "grantee": grantee.to_string(),
                   "approved_by": if by_patient { "patient" } else { "admin" }}),
        );
    }
    events.emit(stub)?;
    to_json(
        &json!({"patient_id": patient_id, "grantee": grantee.to_string(),
                     "state": rel.state, "reset_complete": done}),
    )
}
