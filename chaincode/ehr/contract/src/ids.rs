//! Identifiers (validated) and the world-state key layout.
//!
//! Every key is a Fabric composite key (`\0objectType\0attr…\0`, [`medledger_chaincode::composite`]),
//! with the patient's ledger id first wherever a patient is involved, so one patient's entries
//! of one kind form a range (`GetStateByPartialCompositeKey`). Private PHI uses the same key as
//! the record's public metadata, in the custodian's (or a grantee's) collection.
//!
//! **Ledger ids (ADR 0031).** The shared ledger never holds a `Patient.id` or a FHIR resource
//! id. A patient is named by its *ledger id* `p_<32 hex>` and a record by `ResourceType/r_<32
//! hex>`: keyed hashes (HMAC-SHA256, truncated to 128 bits) under the custodian's
//! [`PseudonymKey`], which lives only in the custodian's own PHI collection (and with its
//! operators). `_` is not a FHIR id character, so a clear id can never pass for a ledger id:
//! every patient-scoped key function below refuses anything else.

use std::fmt;
use std::str::FromStr;

use medledger_chaincode::composite;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{EhrError, Result};

/// Object types of the composite keys.
pub mod object {
    /// `patient\0{patient_id}`: [`crate::model::PatientEntry`].
    pub const PATIENT: &str = "patient";
    /// `record\0{patient_id}\0{resourceType}\0{id}`: [`crate::model::RecordMeta`] (public) and
    /// the resource JSON (private, same key).
    pub const RECORD: &str = "record";
    /// `template\0{resourceType}`: [`crate::template::Template`].
    pub const TEMPLATE: &str = "template";
    /// `consent\0{patient_id}\0{consent_id}`: [`crate::model::Consent`].
    pub const CONSENT: &str = "consent";
    /// `accessState\0{patient_id}\0{grantee}`: [`crate::model::AccessStateEntry`].
    pub const ACCESS_STATE: &str = "accessState";
    /// `access\0{patient_id}\0{access_id}`: [`crate::model::AccessEntry`] (the audit trail).
    pub const ACCESS: &str = "access";
    /// `accessRequest\0{patient_id}\0{request_id}`: [`crate::model::AccessRequest`].
    pub const ACCESS_REQUEST: &str = "accessRequest";
    /// `emergency\0{patient_id}\0{identity}`: [`crate::model::EmergencyWindow`].
    pub const EMERGENCY: &str = "emergency";
    /// `erasure\0{patient_id}\0{resourceType}\0{id}`: [`crate::model::ErasureRequest`].
    pub const ERASURE: &str = "erasure";
    /// `govMember\0{msp_id}`: [`crate::model::GovernanceMember`], an organization taking part
    /// in the channel's EHR governance (ADR 0029).
    pub const GOV_MEMBER: &str = "govMember";
    /// `roleApproval\0{role}\0{org}\0{approver_msp}`: [`crate::model::RoleApproval`], one
    /// organization's approval of another's break-glass or auditor authority.
    pub const ROLE_APPROVAL: &str = "roleApproval";
    /// `govFounder\0{msp_id}`: [`crate::model::FoundingConfirmation`], the founding set an
    /// organization confirms now — one per organization, a new confirmation replaces it
    /// (ADR 0029). (`govFounding\0{set}\0{msp}`, one per set and organization, is the
    /// earlier layout; it is no longer read.)
    pub const GOV_FOUNDER: &str = "govFounder";
    /// `govRequest\0{msp_id}`: [`crate::model::JoinRequest`], an organization asking the
    /// members to admit it.
    pub const GOV_REQUEST: &str = "govRequest";
    /// `govAdmission\0{org}\0{approver_msp}`: [`crate::model::Admission`], one member's
    /// approval of a request to join.
    pub const GOV_ADMISSION: &str = "govAdmission";
    /// `pseudonymKey` (private, in an organization's default PHI collection only): the
    /// organization's [`super::PseudonymKey`], 32 bytes (ADR 0031).
    pub const PSEUDONYM_KEY: &str = "pseudonymKey";
    /// `locator\0{hash}` (private, in the custodian's default PHI collection only): a
    /// [`crate::model::Locator`] naming the patient and record of the FHIR resource whose
    /// clear `ResourceType/id` hashes to `hash` ([`super::PseudonymKey::locator`]), so a record
    /// can be found by its FHIR id alone (`LocateRecords`).
    pub const LOCATOR: &str = "locator";
}

/// Prefix of a patient's ledger id: `p_` + 32 lowercase hex digits.
pub const LEDGER_PATIENT_PREFIX: &str = "p_";
/// Prefix of a record's ledger id (after `ResourceType/`): `r_` + 32 lowercase hex digits.
pub const LEDGER_RECORD_PREFIX: &str = "r_";
/// Hex digits after the prefix of a ledger id (128 bits).
const LEDGER_ID_HEX: usize = 32;

/// HMAC domain of a patient's ledger id.
const PATIENT_DOMAIN: &[u8] = b"medledger/ehr/patient\0";
/// HMAC domain of a record's ledger id.
const RECORD_DOMAIN: &[u8] = b"medledger/ehr/record\0";
/// HMAC domain of a record's locator.
const LOCATOR_DOMAIN: &[u8] = b"medledger/ehr/locator\0";

fn is_ledger_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|h| {
        h.len() == LEDGER_ID_HEX && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Checks a patient's ledger id (`p_` + 32 lowercase hex).
///
/// # Errors
/// [`EhrError::Invalid`] (never repeating the value: it may be a clear `Patient.id`).
pub fn check_ledger_patient_id(id: &str) -> Result<()> {
    if is_ledger_id(id, LEDGER_PATIENT_PREFIX) {
        Ok(())
    } else {
        Err(EhrError::invalid(
            "patient id must be a ledger id (p_ + 32 hex digits), never a Patient.id (ADR 0031)",
        ))
    }
}

/// An organization's pseudonym key: 32 secret bytes from which it derives the ledger ids of
/// its patients and their records (HMAC-SHA256, RFC 2104). Held in its default PHI collection
/// (`SetPseudonymKey`) and by its operators; never printed (`Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct PseudonymKey([u8; 32]);

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    /// Length of a key, in bytes.
    pub const LEN: usize = 32;

    /// A key from its 32 bytes.
    ///
    /// # Errors
    /// [`EhrError::Invalid`] if `bytes` is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<PseudonymKey> {
        <[u8; 32]>::try_from(bytes)
            .map(PseudonymKey)
            .map_err(|_| EhrError::invalid("a pseudonym key is 32 bytes"))
    }

    /// The key's bytes (to store it in the collection or a key file).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self, domain: &[u8], parts: &[&str]) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(domain);
        for part in parts {
            // Length-prefixed, so no two part lists hash alike.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        hex::encode(&mac.finalize().into_bytes()[..LEDGER_ID_HEX / 2])
    }

    /// The ledger id of the patient whose FHIR `Patient.id` is `patient_id`: `p_<32 hex>`.
    pub fn patient(&self, patient_id: &str) -> String {
        format!(
            "{LEDGER_PATIENT_PREFIX}{}",
            self.mac(PATIENT_DOMAIN, &[patient_id])
        )
    }

    /// The locator hash of FHIR resource `resource` (clear `ResourceType/id`, whatever its
    /// patient): 32 hex digits, HMAC-SHA256 over `medledger/ehr/locator\0` and the
    /// length-prefixed type and id, truncated to 128 bits as the ledger ids are. The key of
    /// its [`locator_key`] in the custodian's collection.
    pub fn locator(&self, resource: &ResourceRef) -> String {
        self.mac(LOCATOR_DOMAIN, &[&resource.resource_type, &resource.id])
    }

    /// The ledger id of resource `resource` of the patient whose `Patient.id` is `patient_id`.
    pub fn record(&self, patient_id: &str, resource: &ResourceRef) -> RecordId {
        RecordId {
            resource_type: resource.resource_type.clone(),
            id: format!(
                "{LEDGER_RECORD_PREFIX}{}",
                self.mac(
                    RECORD_DOMAIN,
                    &[patient_id, &resource.resource_type, &resource.id]
                )
            ),
        }
    }
}

fn key(object_type: &str, attrs: &[&str]) -> Result<String> {
    composite::create(object_type, attrs).map_err(|e| EhrError::invalid(e.to_string()))
}

fn range(object_type: &str, attrs: &[&str]) -> Result<(String, String)> {
    composite::partial_range(object_type, attrs).map_err(|e| EhrError::invalid(e.to_string()))
}

/// A key whose first attribute is a patient's ledger id (checked).
fn patient_scoped(object_type: &str, patient_id: &str, rest: &[&str]) -> Result<String> {
    check_ledger_patient_id(patient_id)?;
    let mut attrs = vec![patient_id];
    attrs.extend_from_slice(rest);
    key(object_type, &attrs)
}

/// The range of a patient's entries of one kind (ledger id checked).
fn patient_range(object_type: &str, patient_id: &str) -> Result<(String, String)> {
    check_ledger_patient_id(patient_id)?;
    range(object_type, &[patient_id])
}

/// Key of a patient entry.
///
/// # Errors
/// [`EhrError::Invalid`] if `patient_id` is not a ledger id ([`check_ledger_patient_id`]) or
/// a part cannot be in a composite key.
pub fn patient_key(patient_id: &str) -> Result<String> {
    patient_scoped(object::PATIENT, patient_id, &[])
}

/// Key of a record (public metadata and private PHI).
///
/// # Errors
/// As [`patient_key`].
pub fn record_key(patient_id: &str, record: &RecordId) -> Result<String> {
    patient_scoped(
        object::RECORD,
        patient_id,
        &[&record.resource_type, &record.id],
    )
}

/// Range of all records of a patient.
///
/// # Errors
/// As [`patient_key`].
pub fn record_range(patient_id: &str) -> Result<(String, String)> {
    patient_range(object::RECORD, patient_id)
}

/// Key of a template.
///
/// # Errors
/// As [`patient_key`].
pub fn template_key(resource_type: &str) -> Result<String> {
    key(object::TEMPLATE, &[resource_type])
}

/// Key of a consent.
///
/// # Errors
/// As [`patient_key`].
pub fn consent_key(patient_id: &str, consent_id: &str) -> Result<String> {
    patient_scoped(object::CONSENT, patient_id, &[consent_id])
}

/// Range of all consents of a patient.
///
/// # Errors
/// As [`patient_key`].
pub fn consent_range(patient_id: &str) -> Result<(String, String)> {
    patient_range(object::CONSENT, patient_id)
}

/// Key of the access state of (patient, grantee).
///
/// # Errors
/// As [`patient_key`].
pub fn access_state_key(patient_id: &str, grantee: &Grantee) -> Result<String> {
    patient_scoped(object::ACCESS_STATE, patient_id, &[&grantee.to_string()])
}

/// Key of an access (audit) entry.
///
/// # Errors
/// As [`patient_key`].
pub fn access_key(patient_id: &str, access_id: &str) -> Result<String> {
    patient_scoped(object::ACCESS, patient_id, &[access_id])
}

/// Range of all access entries of a patient, oldest first.
///
/// # Errors
/// As [`patient_key`].
pub fn access_range(patient_id: &str) -> Result<(String, String)> {
    patient_range(object::ACCESS, patient_id)
}

/// Key of an access request.
///
/// # Errors
/// As [`patient_key`].
pub fn access_request_key(patient_id: &str, request_id: &str) -> Result<String> {
    patient_scoped(object::ACCESS_REQUEST, patient_id, &[request_id])
}

/// Range of all access requests of a patient.
///
/// # Errors
/// As [`patient_key`].
pub fn access_request_range(patient_id: &str) -> Result<(String, String)> {
    patient_range(object::ACCESS_REQUEST, patient_id)
}

/// Key of a clinician's break-glass window for a patient.
///
/// # Errors
/// As [`patient_key`].
pub fn emergency_key(patient_id: &str, identity: &str) -> Result<String> {
    patient_scoped(object::EMERGENCY, patient_id, &[identity])
}

/// Key of a patient's erasure request for a record.
///
/// # Errors
/// As [`patient_key`].
pub fn erasure_key(patient_id: &str, record: &RecordId) -> Result<String> {
    patient_scoped(
        object::ERASURE,
        patient_id,
        &[&record.resource_type, &record.id],
    )
}

/// Key of an organization's pseudonym key (private, in its default collection).
///
/// # Errors
/// As [`patient_key`].
pub fn pseudonym_key_key() -> Result<String> {
    key(object::PSEUDONYM_KEY, &[])
}

/// Key of a record's locator (private, in its custodian's default collection), from
/// [`PseudonymKey::locator`]'s hash.
///
/// # Errors
/// As [`patient_key`].
pub fn locator_key(hash: &str) -> Result<String> {
    key(object::LOCATOR, &[hash])
}

/// Key of an organization's governance membership.
///
/// # Errors
/// As [`patient_key`].
pub fn gov_member_key(msp_id: &str) -> Result<String> {
    key(object::GOV_MEMBER, &[msp_id])
}

/// Range of every governance member.
///
/// # Errors
/// As [`patient_key`].
pub fn gov_member_range() -> Result<(String, String)> {
    range(object::GOV_MEMBER, &[])
}

/// Key of `approver_msp`'s approval of `org`'s authority for `role`.
///
/// # Errors
/// As [`patient_key`].
pub fn role_approval_key(role: &str, org: &str, approver_msp: &str) -> Result<String> {
    key(object::ROLE_APPROVAL, &[role, org, approver_msp])
}

/// Range of every approval of `org`'s authority for `role`.
///
/// # Errors
/// As [`patient_key`].
pub fn role_approval_range(role: &str, org: &str) -> Result<(String, String)> {
    range(object::ROLE_APPROVAL, &[role, org])
}

/// Range of every role approval.
///
/// # Errors
/// As [`patient_key`].
pub fn all_role_approvals_range() -> Result<(String, String)> {
    range(object::ROLE_APPROVAL, &[])
}

/// Key of `msp_id`'s current founding confirmation (the one founding set it confirms).
///
/// # Errors
/// As [`patient_key`].
pub fn gov_founding_key(msp_id: &str) -> Result<String> {
    key(object::GOV_FOUNDER, &[msp_id])
}

/// Range of every organization's current founding confirmation.
///
/// # Errors
/// As [`patient_key`].
pub fn gov_founding_range() -> Result<(String, String)> {
    range(object::GOV_FOUNDER, &[])
}

/// Key of `msp_id`'s request to join governance.
///
/// # Errors
/// As [`patient_key`].
pub fn gov_request_key(msp_id: &str) -> Result<String> {
    key(object::GOV_REQUEST, &[msp_id])
}

/// Range of every request to join governance.
///
/// # Errors
/// As [`patient_key`].
pub fn gov_request_range() -> Result<(String, String)> {
    range(object::GOV_REQUEST, &[])
}

/// Key of `approver_msp`'s admission of `org`.
///
/// # Errors
/// As [`patient_key`].
pub fn gov_admission_key(org: &str, approver_msp: &str) -> Result<String> {
    key(object::GOV_ADMISSION, &[org, approver_msp])
}

/// Range of every admission of `org`.
///
/// # Errors
/// As [`patient_key`].
pub fn gov_admission_range(org: &str) -> Result<(String, String)> {
    range(object::GOV_ADMISSION, &[org])
}

/// Checks a FHIR id (R4 `id` datatype: `[A-Za-z0-9\-\.]{1,64}`), used for `Patient.id`,
/// resource ids, consent, request and access ids.
///
/// # Errors
/// [`EhrError::Invalid`] naming `what` (never repeating the value).
pub fn check_fhir_id(what: &str, id: &str) -> Result<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(EhrError::invalid(format!(
            "{what} is not a FHIR id ([A-Za-z0-9-.], 1 to 64 characters)"
        )))
    }
}

/// Checks a FHIR resource type name (`[A-Z][A-Za-z]{0,63}`).
///
/// # Errors
/// [`EhrError::Invalid`].
pub fn check_resource_type(resource_type: &str) -> Result<()> {
    let mut bytes = resource_type.bytes();
    let ok = resource_type.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_alphabetic());
    if ok {
        Ok(())
    } else {
        Err(EhrError::invalid(
            "resourceType is not a FHIR resource type name",
        ))
    }
}

/// Checks an MSP id (`[A-Za-z0-9._-]{1,128}`).
///
/// # Errors
/// [`EhrError::Invalid`].
pub fn check_msp_id(msp_id: &str) -> Result<()> {
    let ok = (1..=128).contains(&msp_id.len())
        && msp_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EhrError::invalid(
            "not an MSP id ([A-Za-z0-9._-], 1 to 128)",
        ))
    }
}

/// Checks a private data collection name (Fabric: `[A-Za-z0-9_-]`, starting with a letter or
/// digit, here at most 128 characters).
///
/// # Errors
/// [`EhrError::Invalid`].
pub fn check_collection(name: &str) -> Result<()> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EhrError::invalid(
            "not a collection name ([A-Za-z0-9_-], 1 to 128)",
        ))
    }
}

/// The collection of an organization's PHI by convention: `<MspId>PHI` (e.g. `Org1MSPPHI`),
/// with characters a collection name cannot hold (`.`) replaced by `-`.
pub fn default_collection(msp_id: &str) -> String {
    let mut name: String = msp_id
        .chars()
        .map(|c| if c == '.' { '-' } else { c })
        .collect();
    name.push_str("PHI");
    name
}

/// The collection a custodian's shared copies for one grantee organization go to
/// (`ShareRecord`): `<Custodian>-to-<Grantee>-PHI` (`Org1MSP-to-Org2MSP-PHI`; `.` in an MSP id
/// becomes `-`). The channel defines it with both organizations as members (so the custodian's
/// peers keep the copy and serve it to the grantee's) and the custodian's peers alone as
/// endorsers (ADR 0029). `None` if the name would be too long to be a collection name.
pub fn share_collection(custodian_msp: &str, grantee_msp: &str) -> Option<String> {
    let part = |msp: &str| -> String {
        msp.chars()
            .map(|c| if c == '.' { '-' } else { c })
            .collect()
    };
    let name = format!("{}-to-{}-PHI", part(custodian_msp), part(grantee_msp));
    check_collection(&name).ok().map(|()| name)
}

/// A FHIR resource's own reference `ResourceType/id` (e.g. `Observation/4f6a…`), as it
/// stands in the resource: PHI-adjacent, never written to the shared ledger (its ledger form is
/// [`RecordId`], from [`PseudonymKey::record`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRef {
    /// FHIR resource type.
    pub resource_type: String,
    /// The resource's `id`.
    pub id: String,
}

impl ResourceRef {
    /// A reference from validated parts.
    ///
    /// # Errors
    /// [`EhrError::Invalid`] if either part is malformed (never repeating the id).
    pub fn new(resource_type: &str, id: &str) -> Result<ResourceRef> {
        check_resource_type(resource_type)?;
        check_fhir_id("resource id", id)?;
        Ok(ResourceRef {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
        })
    }
}

impl FromStr for ResourceRef {
    type Err = EhrError;

    fn from_str(s: &str) -> Result<Self> {
        let (t, id) = s
            .split_once('/')
            .ok_or_else(|| EhrError::invalid("a resource reference is ResourceType/id"))?;
        ResourceRef::new(t, id)
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.resource_type, self.id)
    }
}

/// A record's ledger id: `ResourceType/r_<32 hex>` (ADR 0031). The resource type is public;
/// the resource id is the custodian's keyed hash of the patient and resource ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    /// FHIR resource type.
    pub resource_type: String,
    /// `r_` + 32 lowercase hex digits.
    pub id: String,
}

impl RecordId {
    /// A record id from validated parts.
    ///
    /// # Errors
    /// [`EhrError::Invalid`] if the type is malformed or `id` is not `r_` + 32 hex digits.
    pub fn new(resource_type: &str, id: &str) -> Result<RecordId> {
        check_resource_type(resource_type)?;
        if !is_ledger_id(id, LEDGER_RECORD_PREFIX) {
            return Err(EhrError::invalid(
                "record id must be a ledger id (ResourceType/r_ + 32 hex digits), never a \
                 resource id (ADR 0031)",
            ));
        }
        Ok(RecordId {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
        })
    }
}

impl FromStr for RecordId {
    type Err = EhrError;

    fn from_str(s: &str) -> Result<Self> {
        let (t, id) = s.split_once('/').ok_or_else(|| {
            EhrError::invalid("record id must be ResourceType/r_ + 32 hex digits")
        })?;
        RecordId::new(t, id)
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.resource_type, self.id)
    }
}

/// Who a consent is given to (FHIR `Consent.provision.actor`): a whole organization, or one
/// identity. JSON: `{"org":"Org2MSP"}` or `{"identity":"Org2MSP/<64 hex>"}`; as a string
/// (keys, positional arguments): `org:Org2MSP` or `identity:Org2MSP/<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Grantee {
    /// Every identity of this MSP.
    Org(String),
    /// One person: `MSPID/<64 hex>`, the identity id of [`crate::Caller::id`] (from the
    /// enrollment id, so it survives re-enrollment).
    Identity(String),
}

impl Grantee {
    /// Checks the MSP id or identity id.
    ///
    /// # Errors
    /// [`EhrError::Invalid`].
    pub fn validate(&self) -> Result<()> {
        match self {
            Grantee::Org(msp) => check_msp_id(msp),
            Grantee::Identity(id) => {
                let (msp, hash) = id
                    .split_once('/')
                    .ok_or_else(|| EhrError::invalid("identity grantee must be MSPID/hash"))?;
                check_msp_id(msp)?;
                if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(())
                } else {
                    Err(EhrError::invalid(
                        "identity grantee hash must be 64 hex digits",
                    ))
                }
            }
        }
    }

    /// The organization the grantee belongs to.
    pub fn msp_id(&self) -> &str {
        match self {
            Grantee::Org(msp) => msp,
            Grantee::Identity(id) => id.split_once('/').map_or(id.as_str(), |(msp, _)| msp),
        }
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::Org(msp) => write!(f, "org:{msp}"),
            Grantee::Identity(id) => write!(f, "identity:{id}"),
        }
    }
}

impl FromStr for Grantee {
    type Err = EhrError;

    fn from_str(s: &str) -> Result<Self> {
        let g = if let Some(msp) = s.strip_prefix("org:") {
            Grantee::Org(msp.to_owned())
        } else if let Some(id) = s.strip_prefix("identity:") {
            Grantee::Identity(id.to_owned())
        } else {
            return Err(EhrError::invalid(
                "grantee must be org:MSPID or identity:MSPID/hash",
            ));
        };
        g.validate()?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_grantees() {
        assert!(check_fhir_id("x", "07f741ce-220d-4744-b1ab-d28366110264").is_ok());
        for bad in ["", "a/b", "a b", "é", &"a".repeat(65), "a\u{0}"] {
            assert!(check_fhir_id("x", bad).is_err(), "{bad:?}");
        }
        let fhir: ResourceRef = "Observation/abc-1".parse().unwrap();
        assert_eq!(fhir.to_string(), "Observation/abc-1");
        assert!("observation/abc".parse::<ResourceRef>().is_err());
        assert!("Observation".parse::<ResourceRef>().is_err());
        assert!("Observation/a/b".parse::<ResourceRef>().is_err());
        let key = PseudonymKey::from_bytes(&[7; 32]).unwrap();
        let p1 = key.patient("p1");
        let r = key.record("p1", &fhir);
        assert!(check_ledger_patient_id(&p1).is_ok());
        assert_eq!(r.to_string().parse::<RecordId>().unwrap(), r);
        // A clear id is never a ledger id, and the keyed hashes depend on every input.
        assert!("Observation/abc-1".parse::<RecordId>().is_err());
        assert!(check_ledger_patient_id("p1").is_err());
        assert!(patient_key("p1").is_err());
        assert_ne!(key.record("p2", &fhir), r);
        assert_ne!(
            PseudonymKey::from_bytes(&[8; 32]).unwrap().patient("p1"),
            p1
        );
        assert!(PseudonymKey::from_bytes(&[7; 31]).is_err());
        assert_eq!(format!("{key:?}"), "PseudonymKey(..)");
        let g: Grantee = "org:Org2MSP".parse().unwrap();
        assert_eq!(g, Grantee::Org("Org2MSP".into()));
        assert_eq!(serde_json::to_string(&g).unwrap(), r#"{"org":"Org2MSP"}"#);
        let id = format!("identity:Org2MSP/{}", "a".repeat(64));
        let g: Grantee = id.parse().unwrap();
        assert_eq!(g.to_string(), id);
        assert_eq!(g.msp_id(), "Org2MSP");
        assert!("identity:Org2MSP/xyz".parse::<Grantee>().is_err());
        assert!("Org2MSP".parse::<Grantee>().is_err());
        assert_eq!(default_collection("Org1MSP"), "Org1MSPPHI");
        assert_eq!(default_collection("org1.example"), "org1-examplePHI");
        assert!(check_collection("Org1MSPPHI").is_ok());
        assert!(check_collection("_x").is_err());
        assert_eq!(
            share_collection("Org1MSP", "Org2MSP").as_deref(),
            Some("Org1MSP-to-Org2MSP-PHI")
        );
        assert_eq!(
            share_collection("org1.example", "Org2MSP").as_deref(),
            Some("org1-example-to-Org2MSP-PHI")
        );
        assert_eq!(share_collection(&"a".repeat(120), "Org2MSP"), None);
        let k = record_key(&p1, &r).unwrap();
        let (s, e) = record_range(&p1).unwrap();
        assert!(s < k && k < e);
    }
}
