//! The service's errors: one enum, structured fields, and one mapping to gRPC statuses (with
//! Fabric's `gateway.ErrorDetail`s), as Fabric's `internal/pkg/gateway/apiutils.go`.
//!
//! Messages name channels, chaincodes, functions, organizations and endpoints, never a
//! proposal's arguments, transient data or a response's payload (they may carry patient data).

use medledger_channel::tx::AssemblyError;
use medledger_gateway::status_with_details;
use medledger_proto::gateway::ErrorDetail;
use medledger_proto::invocation::InvocationError;
use tonic::{Code, Status};

/// What a client is told to do when the gateway will not choose endorsers for transient data.
const RETRY: &str = "retry specifying endorsing organization(s) to protect transient data";

/// Why the gateway refused or failed a request. `Status::from` gives the gRPC code and,
/// for the variants with `details`, the per-endpoint `gateway.ErrorDetail`s.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The concurrency limiter is closed: the gateway is stopping (`UNAVAILABLE`).
    #[error("gateway shutting down")]
    ShuttingDown,
    /// The request names a channel this gateway does not serve (`NOT_FOUND`).
    #[error("channel {channel} not found")]
    ChannelNotFound {
        /// The channel named.
        channel: String,
    },
    /// An Endorse or Evaluate request without a proposal (`INVALID_ARGUMENT`).
    #[error("a proposed transaction is required")]
    MissingProposal,
    /// A part of the proposal does not decode (`INVALID_ARGUMENT`).
    #[error("failed to unpack transaction proposal: {part}")]
    MalformedProposal {
        /// `proposal`, `header` or `channel header`.
        part: &'static str,
    },
    /// The proposal's invocation does not resolve to a chaincode (`INVALID_ARGUMENT`).
    /// The invocation error is in the message and not returned as `source()`, so a report of
    /// the chain prints it once (ADR 0036).
    #[error("failed to unpack transaction proposal: {0}")]
    Invocation(InvocationError),
    /// A function that may only be evaluated was sent for endorsement (`FAILED_PRECONDITION`).
    #[error(
        "{function} of chaincode {chaincode} may only be evaluated: its response must not be written into a block"
    )]
    EvaluateOnly {
        /// The chaincode.
        chaincode: String,
        /// The function.
        function: String,
    },
    /// Neither the chaincode nor the channel has an endorsement policy (`FAILED_PRECONDITION`).
    #[error("no endorsement policy")]
    NoEndorsementPolicy,
    /// No set of the channel's organizations satisfies the policy (`FAILED_PRECONDITION`).
    #[error("no combination of available organizations satisfies the endorsement policy")]
    NoEndorsementPlan,
    /// Transient data, no endorsers named, and this gateway's organization is a member of none
    /// of the chaincode's collections (`FAILED_PRECONDITION`).
    #[error(
        "this gateway's organization is not a member of the chaincode's collections; {}",
        RETRY
    )]
    NotCollectionMember,
    /// Transient data, no endorsers named, and the transaction touches a collection this
    /// gateway's organization is not a member of (`FAILED_PRECONDITION`).
    #[error(
        "the transaction touches a collection this gateway's organization is not a member of; {}",
        RETRY
    )]
    ForeignCollection,
    /// Transient data, no endorsers named, no collection touched, and the policy needs other
    /// organizations (`FAILED_PRECONDITION`).
    #[error(
        "the endorsement policy needs organizations other than this gateway's; {}",
        RETRY
    )]
    NeedsOtherOrganizations,
    /// Some organization gave no endorsement (`ABORTED`, a detail per peer asked).
    #[error(
        "failed to collect enough transaction endorsements, see attached details for more info"
    )]
    Endorsements {
        /// What each peer asked answered.
        details: Vec<ErrorDetail>,
    },
    /// The endorsements do not make a transaction (`ABORTED`).
    #[error(transparent)]
    Assembly(AssemblyError),
    /// A Submit request without a transaction (`INVALID_ARGUMENT`).
    #[error("a prepared transaction is required")]
    MissingTransaction,
    /// A Submit request with an unsigned transaction (`INVALID_ARGUMENT`).
    #[error("prepared transaction must be signed")]
    UnsignedTransaction,
    /// Fewer than f + 1 orderers accepted the transaction (`UNAVAILABLE`, a detail per
    /// orderer that refused or failed).
    #[error("{accepted} orderers accepted the transaction, {needed} needed")]
    Submission {
        /// Orderers that accepted.
        accepted: usize,
        /// Orderers needed (f + 1).
        needed: usize,
        /// What each orderer that did not accept answered.
        details: Vec<ErrorDetail>,
    },
    /// A signed commit-status or chaincode-events request does not decode
    /// (`INVALID_ARGUMENT`).
    #[error("{request} does not decode")]
    UndecodableRequest {
        /// `commit status request` or `chaincode events request`.
        request: &'static str,
    },
    /// A commit-status request whose `transaction_id` is not 64 lowercase hexadecimal
    /// characters (`INVALID_ARGUMENT`): no transaction can have it (Fabric's
    /// `protoutil.ComputeTxID`). The id is not echoed.
    #[error("transaction_id must be 64 lowercase hexadecimal characters")]
    MalformedTxId,
    /// The requester's identity or signature is invalid (`PERMISSION_DENIED`).
    #[error("{request}: {source}")]
    Unauthenticated {
        /// `commit status request` or `chaincode events request`.
        request: &'static str,
        /// Why the identity or signature does not verify.
        source: medledger_msp::Error,
    },
    /// The requester does not satisfy the channel's `Readers` policy (`PERMISSION_DENIED`).
    #[error("identity does not satisfy the channel Readers policy")]
    NotReader,
    /// All commit-status waits are taken (`RESOURCE_EXHAUSTED`).
    #[error("too many commit-status requests waiting; retry later")]
    TooManyCommitWaits,
    /// All chaincode-event streams are taken (`RESOURCE_EXHAUSTED`).
    #[error("too many chaincode-event streams open; retry later")]
    TooManyEventStreams,
    /// The requester holds its share of `what` already (`RESOURCE_EXHAUSTED`).
    #[error("this identity has {cap} {what} open already; retry later")]
    IdentityShare {
        /// One identity's share.
        cap: usize,
        /// `commit-status requests` or `chaincode-event streams`.
        what: &'static str,
    },
    /// The transaction was not committed within the commit-status timeout
    /// (`DEADLINE_EXCEEDED`).
    #[error("transaction not committed in time")]
    CommitTimeout,
    /// The peer's ledger could not answer (`UNAVAILABLE`).
    #[error(transparent)]
    Commits(#[from] CommitSourceError),
    /// The chaincode refused an evaluation (`UNKNOWN`, with the chaincode's status and
    /// message, which applications match on, and a detail per peer asked).
    #[error("evaluate call to endorser returned error: {refusal}")]
    ChaincodeRefused {
        /// `chaincode response <status>, <message>`.
        refusal: String,
        /// What each peer asked answered.
        details: Vec<ErrorDetail>,
    },
    /// No peer could evaluate the proposal (`ABORTED`, a detail per peer asked).
    #[error("failed to evaluate transaction, see attached details for more info")]
    Evaluation {
        /// What each peer asked answered.
        details: Vec<ErrorDetail>,
    },
}

impl ServiceError {
    /// The gRPC code Fabric's gateway answers with.
    pub fn code(&self) -> Code {
        use ServiceError::*;
        match self {
            ShuttingDown | Submission { .. } | Commits(_) => Code::Unavailable,
            ChannelNotFound { .. } => Code::NotFound,
            MissingProposal
            | MalformedProposal { .. }
            | Invocation(_)
            | MissingTransaction
            | UnsignedTransaction
            | UndecodableRequest { .. }
            | MalformedTxId => Code::InvalidArgument,
            EvaluateOnly { .. }
            | NoEndorsementPolicy
            | NoEndorsementPlan
            | NotCollectionMember
            | ForeignCollection
            | NeedsOtherOrganizations => Code::FailedPrecondition,
            Endorsements { .. } | Assembly(_) | Evaluation { .. } => Code::Aborted,
            Unauthenticated { .. } | NotReader => Code::PermissionDenied,
            TooManyCommitWaits | TooManyEventStreams | IdentityShare { .. } => {
                Code::ResourceExhausted
            }
            CommitTimeout => Code::DeadlineExceeded,
            ChaincodeRefused { .. } => Code::Unknown,
        }
    }

    /// The `gateway.ErrorDetail`s sent with the status, for the variants that carry them
    /// (even when empty, as Fabric sends them).
    pub fn details(&self) -> Option<&[ErrorDetail]> {
        match self {
            ServiceError::Endorsements { details }
            | ServiceError::Submission { details, .. }
            | ServiceError::ChaincodeRefused { details, .. }
            | ServiceError::Evaluation { details } => Some(details),
            _ => None,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        let message = e.to_string();
        match e.details() {
            Some(details) => status_with_details(e.code(), &message, details),
            None => Status::new(e.code(), message),
        }
    }
}

/// Why the peer's ledger could not answer a commit-status or chaincode-events request
/// (a [`crate::CommitSource`]'s error; answered `UNAVAILABLE`).
#[derive(Debug, thiserror::Error)]
pub enum CommitSourceError {
    /// This peer does not serve the channel.
    #[error("channel {channel} is not served by this peer")]
    UnknownChannel {
        /// The channel named.
        channel: String,
    },
    /// The peer is stopping.
    #[error("the peer is shutting down")]
    ShuttingDown,
    /// The ledger failed to read.
    #[error(transparent)]
    Ledger(Box<dyn std::error::Error + Send + Sync>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_gateway::error_details;

    /// The invocation's and the assembly's messages are printed once in an error's chain
    /// (`{:#}`, as the `medledger` CLI prints it), and the client's message is unchanged.
    #[test]
    fn wrapped_errors_print_their_cause_once() {
        let e = ServiceError::Invocation(InvocationError::NoChaincode);
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "failed to unpack transaction proposal: no chaincode name"
        );
        let e = ServiceError::Assembly(AssemblyError::NoResponses);
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "no proposal responses"
        );
        let status = Status::from(ServiceError::Assembly(AssemblyError::NoResponses));
        assert_eq!(status.message(), "no proposal responses");
    }

    #[test]
    fn statuses_carry_the_code_the_message_and_details_only_where_fabric_sends_them() {
        let detail = ErrorDetail {
            address: "peer0:7051".into(),
            msp_id: "Org1MSP".into(),
            message: "endorsement timed out".into(),
        };
        let status = Status::from(ServiceError::Endorsements {
            details: vec![detail.clone()],
        });
        assert_eq!(status.code(), Code::Aborted);
        assert_eq!(
            status.message(),
            "failed to collect enough transaction endorsements, see attached details for more info"
        );
        assert_eq!(error_details(&status), vec![detail]);

        let status = Status::from(ServiceError::ChannelNotFound {
            channel: "ehr".into(),
        });
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "channel ehr not found");
        assert!(status.details().is_empty());

        let status = Status::from(ServiceError::Commits(CommitSourceError::ShuttingDown));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "the peer is shutting down");

        let status = Status::from(ServiceError::NeedsOtherOrganizations);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().ends_with(RETRY));
    }
}
