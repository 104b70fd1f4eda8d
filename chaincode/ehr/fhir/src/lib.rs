//! Medledger's FHIR R4 REST API over the EHR chaincode (issue 16, ADR 0039): an application on
//! the gateway, the EHR application's third half beside the contract (`ehr-chaincode`) and
//! the client (`ehr-client`).
//!
//! An EHR system talks to `[base]/fhir` as to any FHIR server; underneath, every write is an
//! endorsed, ordered, committed transaction and every read the audited two-step read (ADR
//! 0023), signed as the calling identity's delegate enrollment (ADR 0039).
//!
//! - [`config`]: `fhir.yaml` ([`config::FhirConfig`]).
//! - [`outcome`]: the one mapping from errors to HTTP statuses and `OperationOutcome`s.
//! - [`capability`]: the table of what is served and the `CapabilityStatement` built from it.
//! - [`backend`]: the verified [`backend::Caller`], the wallet of delegates, the
//!   [`backend::Backend`] giving an `EhrClient` per caller.
//! - [`auth`]: mutual TLS callers, bearer tokens (SMART Backend Services: ES256
//!   `private_key_jwt` assertions, [`auth::jws`], [`auth::tokens`]).
//! - [`serve()`]: the HTTPS listener and its accept loop ([`serve::serve_on`]).
//! - [`router`]: the axum `Router` (one access-log event per request: method, route template,
//!   status, duration; never the URI, query, headers or body).
//!
//! docs/fhir.md says how a client connects and what maps to what on the ledger.

pub mod auth;
pub mod backend;
pub mod capability;
pub mod config;
mod interactions;
pub mod outcome;
mod routes;
pub mod serve;

use std::sync::Arc;

pub use routes::router;
pub use serve::serve;

use crate::auth::tokens::TokenService;
use crate::backend::Backend;
use crate::config::FhirConfig;

/// What every request handler shares: the configuration and the backend.
#[derive(Clone)]
pub struct AppState {
    pub(crate) config: Arc<FhirConfig>,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) tokens: TokenService,
    pub(crate) permits: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("base_url", &self.config.base_url)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The state of a server with `config` (validated by the caller) acting through
    /// `backend`, its bearer tokens from `tokens`.
    pub fn new(config: FhirConfig, backend: Arc<dyn Backend>, tokens: TokenService) -> Self {
        let permits = Arc::new(tokio::sync::Semaphore::new(config.limits.concurrency));
        Self {
            config: Arc::new(config),
            backend,
            tokens,
            permits,
        }
    }
}
