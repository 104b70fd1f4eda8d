//! Who is calling: role, organization and attributes from the creator's verified certificate
//! (Fabric CA attributes), never from arguments.
//!
//! A caller's identity id names the *person*, not the certificate: `MSPID/hex(SHA-256(
//! "enrollment-id:" + enrollment id))`, the enrollment id being the certificate's
//! `hf.EnrollmentID` attribute (Fabric CA puts it in every enrollment certificate), else its
//! subject common name (which Fabric CA sets to the enrollment id). Re-enrolling — a new key
//! and certificate for the same registered identity — keeps the id, so consents, access states
//! (Blocked included) and break-glass windows follow the person (ADR 0029).

use medledger_chaincode::{ChaincodeStub, Creator};
use sha2::{Digest, Sha256};

use crate::error::{EhrError, Result};
use crate::model::{AuthorityRole, PatientEntry};

/// Certificate attribute with the caller's EHR role (one of [`Role`]).
pub const ATTR_ROLE: &str = "ehr.role";
/// Certificate attribute of a patient's identity: their ledger id `p_…` (ADR 0031; never the
/// `Patient.id`, which a certificate would carry into every transaction).
pub const ATTR_PATIENT_ID: &str = "ehr.patient_id";
/// Certificate attribute of a clinician allowed break-glass access: `true`. It counts only
/// while the clinician's organization holds break-glass authority on the channel (ADR 0029).
pub const ATTR_EMERGENCY: &str = "ehr.emergency";
/// Fabric CA's certificate attribute naming the registered identity (enrollment id).
pub const ATTR_ENROLLMENT_ID: &str = "hf.EnrollmentID";
/// The NodeOU organizational unit of an organization's MSP admins (Fabric's default `admin`).
pub const ADMIN_OU: &str = "admin";

/// The identity id of the person enrolled as `enrollment_id` at organization `msp_id`:
/// `MSPID/hex(SHA-256("enrollment-id:" + enrollment_id))`. Identity grantees
/// (`identity:MSPID/<64 hex>`) name people this way.
pub fn person_id(msp_id: &str, enrollment_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"enrollment-id:");
    h.update(enrollment_id.as_bytes());
    format!("{msp_id}/{}", hex::encode(h.finalize()))
}

/// An EHR role, from the certificate attribute `ehr.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// A patient (their certificate also carries `ehr.patient_id`).
    Patient,
    /// A physician.
    Doctor,
    /// A nurse.
    Nurse,
    /// A laboratory.
    Lab,
    /// An insurer (payment).
    Insurer,
    /// A researcher.
    Researcher,
    /// An organization's EHR administrator (patients, templates, purge, reset).
    Admin,
    /// A registrar of patients (as `admin` for `RegisterPatient` only).
    Registrar,
    /// An auditor (reads consents and audit entries of every patient).
    Auditor,
}

impl Role {
    /// All roles.
    pub const ALL: [Role; 9] = [
        Role::Patient,
        Role::Doctor,
        Role::Nurse,
        Role::Lab,
        Role::Insurer,
        Role::Researcher,
        Role::Admin,
        Role::Registrar,
        Role::Auditor,
    ];

    /// The attribute value, e.g. `doctor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Doctor => "doctor",
            Role::Nurse => "nurse",
            Role::Lab => "lab",
            Role::Insurer => "insurer",
            Role::Researcher => "researcher",
            Role::Admin => "admin",
            Role::Registrar => "registrar",
            Role::Auditor => "auditor",
        }
    }

    /// Parses an attribute value; `None` for anything else.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Doctor, nurse or lab: may author records.
    pub fn is_clinician(self) -> bool {
        matches!(self, Role::Doctor | Role::Nurse | Role::Lab)
    }

    /// Doctor, nurse, lab or admin: the custodian's staff that may read and share its records.
    pub fn is_custodian_staff(self) -> bool {
        self.is_clinician() || self == Role::Admin
    }
}

/// The verified caller of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// MSP id of the caller's organization.
    pub msp_id: String,
    /// Identity id of the person ([`person_id`] of the enrollment id); for a certificate that
    /// names no enrollment id at all, its certificate id.
    pub id: String,
    /// Id of this certificate: `MSPID/hex(SHA-256(certificate DER))` ([`Creator::id`]).
    pub certificate_id: String,
    /// The certificate's NodeOU is `admin`: an admin of its organization's MSP (who signs the
    /// channel's configuration updates and votes in EHR governance).
    pub msp_admin: bool,
    /// Role from `ehr.role`; `None` if absent or unknown.
    pub role: Option<Role>,
    /// `ehr.patient_id`, if present.
    pub patient_id: Option<String>,
    /// `ehr.emergency=true`.
    pub emergency: bool,
}

impl Caller {
    /// The caller of the stub's transaction.
    ///
    /// # Errors
    /// [`EhrError::NoCreator`] if the proposal carried no creator.
    pub fn of(stub: &dyn ChaincodeStub) -> Result<Caller> {
        stub.creator()
            .map(Caller::from_creator)
            .map_err(|_| EhrError::NoCreator)
    }

    /// From a creator's certificate attributes.
    pub fn from_creator(creator: &Creator) -> Caller {
        let certificate_id = creator.id();
        let enrollment_id = creator
            .attribute(ATTR_ENROLLMENT_ID)
            .filter(|e| !e.is_empty())
            .or_else(|| Some(creator.cert.common_name()).filter(|cn| !cn.is_empty()));
        let ous = creator.cert.organizational_units();
        // The peer accepted the creator only with exactly one NodeOU among client, peer,
        // admin and orderer (its MSP's classification); the admin one is what counts here.
        let msp_admin = ous.iter().any(|ou| ou == ADMIN_OU)
            && !ous
                .iter()
                .any(|ou| matches!(ou.as_str(), "client" | "peer" | "orderer"));
        Caller {
            msp_id: creator.msp_id.clone(),
            id: enrollment_id
                .map_or_else(|| certificate_id.clone(), |e| person_id(&creator.msp_id, e)),
            certificate_id,
            msp_admin,
            role: creator.attribute(ATTR_ROLE).and_then(Role::parse),
            // A certificate naming a clear id (enrolled the old way) names no patient here.
            patient_id: creator
                .attribute(ATTR_PATIENT_ID)
                .filter(|p| crate::ids::check_ledger_patient_id(p).is_ok())
                .map(str::to_owned),
            emergency: creator.attribute(ATTR_EMERGENCY) == Some("true"),
        }
    }

    /// The caller has one of `roles`.
    pub fn has_role(&self, roles: &[Role]) -> bool {
        self.role.is_some_and(|r| roles.contains(&r))
    }

    /// The caller is `patient`: role `patient`, that `ehr.patient_id`, and enrolled by the
    /// patient's custodian organization (so another organization's CA cannot issue a
    /// certificate that speaks for the patient).
    pub fn is_patient(&self, patient: &PatientEntry) -> bool {
        self.role == Some(Role::Patient)
            && self.patient_id.as_deref() == Some(patient.patient_id.as_str())
            && self.msp_id == patient.custodian_msp
    }

    /// The caller is staff (doctor, nurse, lab, admin) of organization `msp_id`.
    pub fn is_staff_of(&self, msp_id: &str) -> bool {
        self.msp_id == msp_id && self.role.is_some_and(Role::is_custodian_staff)
    }

    /// The caller is an admin of organization `msp_id`.
    pub fn is_admin_of(&self, msp_id: &str) -> bool {
        self.msp_id == msp_id && self.role == Some(Role::Admin)
    }

    /// Role name for records and audit entries (`none` when absent).
    pub fn role_name(&self) -> &'static str {
        self.role.map_or("none", Role::as_str)
    }

    /// Whether the caller reads as an auditor: role `auditor`, and its organization holds
    /// auditor authority on the channel. Errors (403) when the role is there but the authority
    /// is not, so the refusal says why.
    ///
    /// # Errors
    /// [`EhrError::Forbidden`] for an auditor of an organization without the authority; stub
    /// failures.
    pub fn is_auditor(&self, stub: &dyn ChaincodeStub) -> Result<bool> {
        if self.role != Some(Role::Auditor) {
            return Ok(false);
        }
        crate::governance::require_authority(stub, &self.msp_id, AuthorityRole::Auditor)?;
        Ok(true)
    }

    /// Refuses unless the caller is `patient` (or, with `auditor`, an auditor of an
    /// organization holding auditor authority).
    ///
    /// # Errors
    /// [`EhrError::Forbidden`].
    pub fn require_patient_or_auditor(
        &self,
        stub: &dyn ChaincodeStub,
        patient: &PatientEntry,
        auditor: bool,
    ) -> Result<()> {
        let patient_id = &patient.patient_id;
        if self.is_patient(patient) || (auditor && self.is_auditor(stub)?) {
            Ok(())
        } else if auditor {
            Err(EhrError::forbidden(format!(
                "only patient {patient_id} or an auditor may do this"
            )))
        } else {
            Err(EhrError::forbidden(format!(
                "only patient {patient_id} may do this"
            )))
        }
    }
}
