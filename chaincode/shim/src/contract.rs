//! The chaincode entry point and a function router, in the spirit of `fabric-contract-api`.

use std::collections::BTreeMap;

use medledger_proto::protos::Response;
use serde::de::DeserializeOwned;

use crate::error::ChaincodeError;
use crate::stub::ChaincodeStub;
use crate::{ERROR, OK};

/// A chaincode: what the peer invokes for each proposal (Fabric's `shim.Chaincode`).
pub trait Chaincode: Send + Sync + 'static {
    /// Called for an `INIT` message (Fabric's `Init`); succeeds with no payload by default.
    fn init(&self, stub: &dyn ChaincodeStub) -> Response {
        let _ = stub;
        success(Vec::new())
    }

    /// Called for each `TRANSACTION` message. Status `>= 400` means failure: the peer returns
    /// it without endorsing.
    fn invoke(&self, stub: &dyn ChaincodeStub) -> Response;
}

/// A contract function's failure: a status (400-599) and a message. Messages end up in
/// proposal responses and client errors, so they must never carry health data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ContractError {
    /// Status code, 400-599.
    pub status: i32,
    /// Message for the client.
    pub message: String,
}

impl ContractError {
    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ContractError {
            status: 400,
            message: message.into(),
        }
    }

    /// 403: the caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ContractError {
            status: 403,
            message: message.into(),
        }
    }

    /// 404: what was asked for does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        ContractError {
            status: 404,
            message: message.into(),
        }
    }

    /// 409: conflicts with the current state (e.g. already exists).
    pub fn conflict(message: impl Into<String>) -> Self {
        ContractError {
            status: 409,
            message: message.into(),
        }
    }

    /// 500: anything else.
    pub fn internal(message: impl Into<String>) -> Self {
        ContractError {
            status: ERROR,
            message: message.into(),
        }
    }
}

impl From<ChaincodeError> for ContractError {
    fn from(e: ChaincodeError) -> Self {
        ContractError::internal(e.to_string())
    }
}

/// A successful response with `payload`.
pub(crate) fn success(payload: Vec<u8>) -> Response {
    Response {
        status: OK,
        message: String::new(),
        payload,
    }
}

/// A failed response.
pub(crate) fn failure(status: i32, message: impl Into<String>) -> Response {
    Response {
        status,
        message: message.into(),
        payload: Vec::new(),
    }
}

/// A routed function: receives the stub and the string parameters (after the function
/// name) and returns the response payload.
pub type Handler =
    Box<dyn Fn(&dyn ChaincodeStub, &[String]) -> Result<Vec<u8>, ContractError> + Send + Sync>;

/// Routes `args[0]` (the function name; `Contract:function` also accepted, as
/// fabric-contract-api's default contract naming) to a handler.
#[derive(Default)]
pub struct Router {
    handlers: BTreeMap<String, Handler>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("functions", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds a function taking string parameters.
    pub fn add(
        mut self,
        name: &str,
        handler: impl Fn(&dyn ChaincodeStub, &[String]) -> Result<Vec<u8>, ContractError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.handlers.insert(name.to_owned(), Box::new(handler));
        self
    }

    /// Names of the routed functions.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

impl Chaincode for Router {
    fn invoke(&self, stub: &dyn ChaincodeStub) -> Response {
        let (function, params) = stub.function_and_parameters();
        let name = medledger_proto::invocation::canonical_function(function.as_bytes());
        let name = name.as_str();
        let Some(handler) = self.handlers.get(name) else {
            return failure(400, format!("unknown function {name:?}"));
        };
        match handler(stub, &params) {
            Ok(payload) => success(payload),
            Err(e) => failure(e.status.clamp(400, 599), e.message),
        }
    }
}

/// Parses parameter `index` as JSON into `T`.
///
/// # Errors
/// 400 naming the parameter when it is missing or not valid JSON for `T` (the message never
/// repeats the parameter's content).
pub fn json_arg<T: DeserializeOwned>(params: &[String], index: usize) -> Result<T, ContractError> {
    let raw = params
        .get(index)
        .ok_or_else(|| ContractError::bad_request(format!("missing parameter {index}")))?;
    serde_json::from_str(raw).map_err(|e| {
        ContractError::bad_request(format!(
            "parameter {index} is not valid JSON for this function (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}
