//! Who is calling: role, organization and attributes from the creator's verified certificate
//! (Fabric CA attributes), never from arguments.

use medledger_chaincode::{ChaincodeStub, Creator};

use crate::error::{EhrError, Result};
use crate::model::PatientEntry;

/// Certificate attribute with the caller's EHR role (one of [`Role`]).
pub const ATTR_ROLE: &str = "ehr.role";
/// Certificate attribute of a patient's identity: their `Patient.id`.
pub const ATTR_PATIENT_ID: &str = "ehr.patient_id";
/// Certificate attribute of a clinician allowed break-glass access: `true`.
pub const ATTR_EMERGENCY: &str = "ehr.emergency";

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
    /// Stable id of the identity: `MSPID/hex(SHA-256(certificate DER))` ([`Creator::id`]).
    pub id: String,
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
        Caller {
            msp_id: creator.msp_id.clone(),
            id: creator.id(),
            role: creator.attribute(ATTR_ROLE).and_then(Role::parse),
            patient_id: creator.attribute(ATTR_PATIENT_ID).map(str::to_owned),
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

    /// Refuses unless the caller is `patient` (or, with `auditor`, an auditor).
    ///
    /// # Errors
    /// [`EhrError::Forbidden`].
    pub fn require_patient_or_auditor(&self, patient: &PatientEntry, auditor: bool) -> Result<()> {
        let patient_id = &patient.patient_id;
        if self.is_patient(patient) || (auditor && self.role == Some(Role::Auditor)) {
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
