//! The contract's errors and their chaincode statuses.
//!
//! Messages reach proposal responses and client errors (and, for submitted transactions that
//! fail at endorsement, the client's logs), so they name only ids (patient, record, consent,
//! access, MSP), resource types, attribute paths and codes — never a value from a resource.

use medledger_chaincode::{ChaincodeError, ContractError};

/// Result alias of the contract.
pub type Result<T, E = EhrError> = std::result::Result<T, E>;

/// Why a contract function refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EhrError {
    /// The proposal carried no creator (status 403).
    #[error("no creator in the proposal")]
    NoCreator,
    /// The caller's role, organization or attributes do not allow this (status 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Something named by id does not exist (status 404).
    #[error("{what} {id} not found")]
    NotFound {
        /// Kind of thing, e.g. `patient`, `record`.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The request conflicts with the current state, e.g. already exists (status 409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A precondition the caller set does not hold, e.g. `UpdateRecord`'s expected version
    /// is not the current one (status 412, HTTP's Precondition Failed, RFC 9110 §15.5.13;
    /// FHIR's answer to an `If-Match` that fails). Nothing is written.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// The request is malformed or the resource fails validation (status 400).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The record's PHI was purged (right to erasure); metadata and hash remain (status 410,
    /// FHIR's `Gone` for deleted resources).
    #[error("record {record_id} purged: its PHI was erased, metadata and hash remain")]
    Purged {
        /// Record id (`ResourceType/id`).
        record_id: String,
    },
    /// The access state of (patient, grantee) is Blocked: every request errors until the
    /// custodian's admin and the patient both reset it (status 403).
    #[error("access state of {grantee} for patient {patient_id} is Blocked; reset needed")]
    Blocked {
        /// Patient id.
        patient_id: String,
        /// Grantee (`org:MSP` or `identity:MSP/hash`).
        grantee: String,
    },
    /// The stored PHI does not hash to the on-chain SHA-256 (status 500).
    #[error(
        "integrity check failed for record {record_id}: stored bytes do not match the on-chain hash"
    )]
    Integrity {
        /// Record id.
        record_id: String,
    },
    /// A stored entry does not decode (status 500).
    #[error("stored {0} entry does not decode")]
    Corrupt(&'static str),
    /// A stub call failed (status 500).
    #[error(transparent)]
    Stub(#[from] ChaincodeError),
}

impl EhrError {
    /// The chaincode status of this error (400-599, as Fabric's `shim.ERRORTHRESHOLD` and up).
    pub fn status(&self) -> i32 {
        match self {
            EhrError::NoCreator | EhrError::Forbidden(_) | EhrError::Blocked { .. } => 403,
            EhrError::NotFound { .. } => 404,
            EhrError::Conflict(_) => 409,
            EhrError::PreconditionFailed(_) => 412,
            EhrError::Invalid(_) => 400,
            EhrError::Purged { .. } => 410,
            EhrError::Integrity { .. } | EhrError::Corrupt(_) | EhrError::Stub(_) => 500,
        }
    }

    /// 403 with a message.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        EhrError::Forbidden(message.into())
    }

    /// 400 with a message.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        EhrError::Invalid(message.into())
    }

    /// 409 with a message.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        EhrError::Conflict(message.into())
    }

    /// 404 for `what` with `id`.
    pub(crate) fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        EhrError::NotFound {
            what,
            id: id.into(),
        }
    }
}

impl From<EhrError> for ContractError {
    fn from(e: EhrError) -> Self {
        ContractError {
            status: e.status(),
            message: e.to_string(),
        }
    }
}
