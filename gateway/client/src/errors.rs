//! gRPC error statuses carrying `gateway.ErrorDetail`s, as Fabric's gateway sends them (in a
//! `google.rpc.Status` in the `grpc-status-details-bin` trailer).

use medledger_proto::gateway::ErrorDetail;
use medledger_proto::protos::TxValidationCode;
use prost::Message;

const ERROR_DETAIL_TYPE_URL: &str = "type.googleapis.com/gateway.ErrorDetail";

/// `google.rpc.Status` (the three fields gRPC defines), to carry details.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// A status with `gateway.ErrorDetail`s (endpoint address, MSP id, message per failed peer or
/// orderer). Messages must not carry health data.
pub fn status_with_details(
    code: tonic::Code,
    message: &str,
    details: &[ErrorDetail],
) -> tonic::Status {
    let rpc = RpcStatus {
        code: code as i32,
        message: message.to_owned(),
        details: details
            .iter()
            .map(|d| prost_types::Any {
                type_url: ERROR_DETAIL_TYPE_URL.to_owned(),
                value: d.encode_to_vec(),
            })
            .collect(),
    };
    tonic::Status::with_details(code, message, rpc.encode_to_vec().into())
}

/// The `gateway.ErrorDetail`s of a status (empty if it has none).
pub fn error_details(status: &tonic::Status) -> Vec<ErrorDetail> {
    RpcStatus::decode(status.details())
        .map(|rpc| {
            rpc.details
                .into_iter()
                .filter(|a| a.type_url == ERROR_DETAIL_TYPE_URL)
                .filter_map(|a| ErrorDetail::decode(a.value.as_slice()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Errors of the client SDK.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The gateway refused or failed a call; `details` name the peers/orderers involved.
    #[error("{code:?}: {message}")]
    Status {
        /// gRPC code.
        code: tonic::Code,
        /// Message.
        message: String,
        /// Per-endpoint details.
        details: Vec<ErrorDetail>,
    },
    /// The transaction was committed but invalid.
    #[error("transaction {tx_id} committed with status {code:?} in block {block}")]
    Commit {
        /// Transaction id.
        tx_id: String,
        /// Validation code.
        code: TxValidationCode,
        /// Block number.
        block: u64,
    },
    /// A chaincode returned an error status (evaluate).
    #[error("chaincode returned status {status}: {message}")]
    Chaincode {
        /// Status (≥ 400).
        status: i32,
        /// Message.
        message: String,
    },
    /// The peer's Deliver service ended a block stream with this status instead of a block.
    #[error("deliver refused the request: {status:?}")]
    Deliver {
        /// Fabric `common.Status` (e.g. `Forbidden`, `NotFound`, `BadRequest`).
        status: medledger_proto::common::Status,
    },
    /// A local step failed (signing, decoding).
    #[error("{0}")]
    Local(String),
}

impl From<tonic::Status> for GatewayError {
    fn from(s: tonic::Status) -> Self {
        GatewayError::Status {
            code: s.code(),
            message: s.message().to_owned(),
            details: error_details(&s),
        }
    }
}
