//! The one mapping from errors to HTTP statuses and FHIR R4 `OperationOutcome`s (build plan
//! §5; as Fabric's gateway maps errors to gRPC codes in one place, `apiutils.go`).
//!
//! Diagnostics are fixed strings, plus ids the ledger made (access ids, tx ids): never a value
//! of the request (URL, query, header or body), which may be PHI.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ehr_client::EhrClientError;
use medledger_gateway::GatewayError;
use medledger_proto::protos::TxValidationCode;

/// `Content-Type` of every FHIR JSON response (FHIR R4 http.html#mime-type).
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// FHIR R4 `IssueType` codes this server answers with (valueset-issue-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    /// `structure`: not JSON, not an object, a bad Bundle shape.
    Structure,
    /// `invalid`: wrong `resourceType`, a missing or mismatched `id`.
    Invalid,
    /// `value`: a bad parameter value.
    Value,
    /// `required`: a required element is missing.
    Required,
    /// `login`: no credential.
    Login,
    /// `expired`: an expired assertion or token.
    Expired,
    /// `security`: a credential that does not verify.
    Security,
    /// `forbidden`: the chaincode or the token's scope refuses.
    Forbidden,
    /// `not-found`.
    NotFound,
    /// `not-supported`: a route, type, method, parameter or media type this server lacks.
    NotSupported,
    /// `duplicate`: an existing id with other content.
    Duplicate,
    /// `conflict`: a version or MVCC conflict.
    Conflict,
    /// `deleted`: the record was purged.
    Deleted,
    /// `too-long`: body or Bundle over the limits.
    TooLong,
    /// `processing`: the chaincode's template refused a resource.
    Processing,
    /// `business-rule`: an unsupported transaction or Consent feature.
    BusinessRule,
    /// `transient`: the gateway or a peer is unavailable.
    Transient,
    /// `timeout`: the commit was not confirmed in time.
    Timeout,
    /// `exception`: a decode failure or another internal error.
    Exception,
}

impl IssueCode {
    /// The FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::Structure => "structure",
            IssueCode::Invalid => "invalid",
            IssueCode::Value => "value",
            IssueCode::Required => "required",
            IssueCode::Login => "login",
            IssueCode::Expired => "expired",
            IssueCode::Security => "security",
            IssueCode::Forbidden => "forbidden",
            IssueCode::NotFound => "not-found",
            IssueCode::NotSupported => "not-supported",
            IssueCode::Duplicate => "duplicate",
            IssueCode::Conflict => "conflict",
            IssueCode::Deleted => "deleted",
            IssueCode::TooLong => "too-long",
            IssueCode::Processing => "processing",
            IssueCode::BusinessRule => "business-rule",
            IssueCode::Transient => "transient",
            IssueCode::Timeout => "timeout",
            IssueCode::Exception => "exception",
        }
    }
}

/// Every way a FHIR request fails. Variants carry fixed strings (`&'static str`) or ledger
/// ids only, so no request value can reach a diagnostic.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// 400 `structure`: body not JSON, not an object, bad Bundle shape.
    #[error("{0}")]
    Structure(&'static str),
    /// 400 `invalid`: wrong `resourceType`, `id` missing or not the URL's.
    #[error("{0}")]
    Invalid(&'static str),
    /// 400 `value`: a bad parameter value.
    #[error("{0}")]
    Value(&'static str),
    /// 400 `not-supported`: an unknown search parameter (strict handling).
    #[error("unknown search parameter")]
    UnknownParameter,
    /// 401 `login` with `WWW-Authenticate: Bearer`: no credential.
    #[error("a credential is required: mutual TLS or a bearer token")]
    NoCredential,
    /// 401 `expired`: expired assertion or token.
    #[error("{0}")]
    Expired(&'static str),
    /// 401 `security`: bad signature, replayed `jti`, wrong `aud`, unknown, other-org or
    /// revoked identity.
    #[error("{0}")]
    Security(&'static str),
    /// 403 `forbidden`.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404 `not-found`.
    #[error("{0}")]
    NotFound(&'static str),
    /// 404 `not-supported`: a route or resource type this server does not serve.
    #[error("{0}")]
    NotSupported(&'static str),
    /// 405 `not-supported`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409 `duplicate`: the id exists with other content.
    #[error("{0}")]
    Duplicate(&'static str),
    /// 413 `too-long`.
    #[error("{0}")]
    TooLong(&'static str),
    /// 415 `not-supported`.
    #[error("Content-Type must be application/fhir+json or application/json")]
    UnsupportedMediaType,
    /// 422 with the given code (`processing`, `required`, `business-rule`).
    #[error("{message}")]
    Unprocessable {
        /// Issue code.
        code: IssueCode,
        /// Fixed text.
        message: &'static str,
    },
    /// 503 `transient`.
    #[error("{0}")]
    Unavailable(&'static str),
    /// 504 `timeout`.
    #[error("the request did not complete in time")]
    Timeout,
    /// 500 `exception`.
    #[error("{0}")]
    Internal(&'static str),
    /// An error of the EHR client (chaincode status, validation code, gRPC code).
    #[error(transparent)]
    Ehr(#[from] EhrClientError),
}

/// Result alias of the FHIR API.
pub type Result<T, E = FhirError> = std::result::Result<T, E>;

/// One row of the mapping: HTTP status, issue code and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// HTTP status.
    pub status: StatusCode,
    /// `OperationOutcome.issue.code`.
    pub code: IssueCode,
    /// `OperationOutcome.issue.diagnostics` (fixed text and ledger ids only).
    pub diagnostics: String,
}

fn row(status: StatusCode, code: IssueCode, diagnostics: impl Into<String>) -> Mapped {
    Mapped {
        status,
        code,
        diagnostics: diagnostics.into(),
    }
}

impl FhirError {
    /// The status, issue code and diagnostics of this error (build plan §5's table).
    pub fn mapped(&self) -> Mapped {
        use IssueCode as C;
        use StatusCode as S;
        match self {
            FhirError::Structure(m) => row(S::BAD_REQUEST, C::Structure, *m),
            FhirError::Invalid(m) => row(S::BAD_REQUEST, C::Invalid, *m),
            FhirError::Value(m) => row(S::BAD_REQUEST, C::Value, *m),
            FhirError::UnknownParameter => row(S::BAD_REQUEST, C::NotSupported, self.to_string()),
            FhirError::NoCredential => row(S::UNAUTHORIZED, C::Login, self.to_string()),
            FhirError::Expired(m) => row(S::UNAUTHORIZED, C::Expired, *m),
            FhirError::Security(m) => row(S::UNAUTHORIZED, C::Security, *m),
            FhirError::Forbidden(m) => row(S::FORBIDDEN, C::Forbidden, *m),
            FhirError::NotFound(m) => row(S::NOT_FOUND, C::NotFound, *m),
            FhirError::NotSupported(m) => row(S::NOT_FOUND, C::NotSupported, *m),
            FhirError::MethodNotAllowed => {
                row(S::METHOD_NOT_ALLOWED, C::NotSupported, self.to_string())
            }
            FhirError::Duplicate(m) => row(S::CONFLICT, C::Duplicate, *m),
            FhirError::TooLong(m) => row(S::PAYLOAD_TOO_LARGE, C::TooLong, *m),
            FhirError::UnsupportedMediaType => {
                row(S::UNSUPPORTED_MEDIA_TYPE, C::NotSupported, self.to_string())
            }
            FhirError::Unprocessable { code, message } => {
                row(S::UNPROCESSABLE_ENTITY, *code, *message)
            }
            FhirError::Unavailable(m) => row(S::SERVICE_UNAVAILABLE, C::Transient, *m),
            FhirError::Timeout => row(S::GATEWAY_TIMEOUT, C::Timeout, self.to_string()),
            FhirError::Internal(m) => row(S::INTERNAL_SERVER_ERROR, C::Exception, *m),
            FhirError::Ehr(e) => map_ehr(e),
        }
    }
}

/// Maps an [`EhrClientError`]. The chaincode's messages are not repeated (they name ledger
/// ids only, but a diagnostic built from fixed text cannot leak by a later change there): the
/// function and its status are.
fn map_ehr(e: &EhrClientError) -> Mapped {
    use IssueCode as C;
    use StatusCode as S;
    match e {
        EhrClientError::Chaincode {
            function, status, ..
        } => {
            let d = |what: &str| format!("{function}: {what} (chaincode status {status})");
            match status {
                400 => row(
                    S::UNPROCESSABLE_ENTITY,
                    C::Processing,
                    d("the chaincode refused the resource or arguments"),
                ),
                403 => row(S::FORBIDDEN, C::Forbidden, d("forbidden for this identity")),
                404 => row(S::NOT_FOUND, C::NotFound, d("not found")),
                409 => row(
                    S::CONFLICT,
                    C::Conflict,
                    d("conflicts with the ledger's state"),
                ),
                410 => row(S::GONE, C::Deleted, d("the record was purged")),
                412 => row(S::PRECONDITION_FAILED, C::Conflict, d("version mismatch")),
                413 => row(S::PAYLOAD_TOO_LARGE, C::TooLong, d("too large")),
                _ => row(
                    S::INTERNAL_SERVER_ERROR,
                    C::Exception,
                    d("chaincode failure"),
                ),
            }
        }
        EhrClientError::Invalid {
            function,
            tx_id,
            code,
            block,
        } => {
            let d = format!(
                "{function}: transaction {tx_id} committed invalid ({code:?}) in block {block}"
            );
            match code {
                TxValidationCode::MvccReadConflict | TxValidationCode::PhantomReadConflict => {
                    row(S::CONFLICT, C::Conflict, d)
                }
                TxValidationCode::EndorsementPolicyFailure => row(S::FORBIDDEN, C::Forbidden, d),
                _ => row(S::INTERNAL_SERVER_ERROR, C::Exception, d),
            }
        }
        EhrClientError::Gateway { function, error } => match error {
            GatewayError::Status { code, .. } => match code {
                tonic::Code::Unavailable => row(
                    S::SERVICE_UNAVAILABLE,
                    C::Transient,
                    format!("{function}: the gateway or a peer is unavailable"),
                ),
                tonic::Code::DeadlineExceeded => row(
                    S::GATEWAY_TIMEOUT,
                    C::Timeout,
                    format!("{function}: the gateway did not answer in time"),
                ),
                tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => row(
                    S::FORBIDDEN,
                    C::Forbidden,
                    format!("{function}: the gateway refused this identity"),
                ),
                _ => row(
                    S::SERVICE_UNAVAILABLE,
                    C::Transient,
                    format!("{function}: the gateway failed the call ({code:?})"),
                ),
            },
            GatewayError::Chaincode { status, message } => map_ehr(&EhrClientError::Chaincode {
                function,
                status: *status,
                message: message.clone(),
            }),
            GatewayError::Commit { tx_id, code, block } => map_ehr(&EhrClientError::Invalid {
                function,
                tx_id: tx_id.clone(),
                code: *code,
                block: *block,
            }),
            GatewayError::Deliver { .. } | GatewayError::Local(_) => row(
                S::INTERNAL_SERVER_ERROR,
                C::Exception,
                format!("{function}: the gateway client failed"),
            ),
        },
        EhrClientError::Decode { function } => row(
            S::INTERNAL_SERVER_ERROR,
            C::Exception,
            format!("{function}: the chaincode's answer does not decode"),
        ),
        EhrClientError::AccessDenied { access_id } => row(
            S::FORBIDDEN,
            C::Forbidden,
            format!("access denied; the denial is audited as access {access_id}"),
        ),
        EhrClientError::EmergencyDenied { access_id, .. } => row(
            S::FORBIDDEN,
            C::Forbidden,
            format!("break-glass denied; audited as access {access_id}"),
        ),
        EhrClientError::Usage(_) => row(
            S::BAD_REQUEST,
            C::Value,
            "an id or argument does not fit the EHR chaincode's rules",
        ),
    }
}

/// An `OperationOutcome` (FHIR R4) with one issue of severity `error`.
pub fn operation_outcome(code: IssueCode, diagnostics: &str) -> serde_json::Value {
    serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "error",
            "code": code.as_str(),
            "diagnostics": diagnostics,
        }]
    })
}

/// A FHIR JSON response with `status` and `body`.
pub fn fhir_json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let m = self.mapped();
        let mut r = fhir_json(m.status, &operation_outcome(m.code, &m.diagnostics));
        if matches!(self, FhirError::NoCredential) {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ACCESS: &str = "a1b2c3";
    const TX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn chaincode(status: i32) -> FhirError {
        FhirError::Ehr(EhrClientError::Chaincode {
            function: "CreateRecord",
            status,
            // What a request value looks like if a chaincode message ever carried one.
            message: "Patient/secret-patient-id John Doe".into(),
        })
    }

    fn gateway(code: tonic::Code) -> FhirError {
        FhirError::Ehr(EhrClientError::Gateway {
            function: "RequestRecordAccess",
            error: GatewayError::Status {
                code,
                message: "Patient/secret-patient-id".into(),
                details: vec![],
            },
        })
    }

    fn invalid(code: TxValidationCode) -> FhirError {
        FhirError::Ehr(EhrClientError::Invalid {
            function: "UpdateRecord",
            tx_id: TX.into(),
            code,
            block: 7,
        })
    }

    /// Build plan §5, one row per case: status and issue code.
    #[test]
    fn every_row_of_the_table() {
        use IssueCode as C;
        let table: Vec<(FhirError, u16, IssueCode)> = vec![
            (FhirError::Structure("body is not JSON"), 400, C::Structure),
            (FhirError::Invalid("wrong resourceType"), 400, C::Invalid),
            (FhirError::Value("bad _count"), 400, C::Value),
            (FhirError::UnknownParameter, 400, C::NotSupported),
            (FhirError::NoCredential, 401, C::Login),
            (FhirError::Expired("token expired"), 401, C::Expired),
            (FhirError::Security("bad signature"), 401, C::Security),
            (FhirError::Forbidden("scope too narrow"), 403, C::Forbidden),
            (chaincode(403), 403, C::Forbidden),
            (
                FhirError::Ehr(EhrClientError::AccessDenied {
                    access_id: ACCESS.into(),
                }),
                403,
                C::Forbidden,
            ),
            (chaincode(404), 404, C::NotFound),
            (FhirError::NotFound("unknown patient"), 404, C::NotFound),
            (
                FhirError::NotSupported("unsupported type"),
                404,
                C::NotSupported,
            ),
            (FhirError::MethodNotAllowed, 405, C::NotSupported),
            (
                FhirError::Duplicate("id exists with other content"),
                409,
                C::Duplicate,
            ),
            (chaincode(409), 409, C::Conflict),
            (
                invalid(TxValidationCode::MvccReadConflict),
                409,
                C::Conflict,
            ),
            (chaincode(410), 410, C::Deleted),
            (chaincode(412), 412, C::Conflict),
            (FhirError::TooLong("body too large"), 413, C::TooLong),
            (FhirError::UnsupportedMediaType, 415, C::NotSupported),
            (chaincode(400), 422, C::Processing),
            (
                FhirError::Unprocessable {
                    code: C::BusinessRule,
                    message: "only POST entries",
                },
                422,
                C::BusinessRule,
            ),
            (gateway(tonic::Code::Unavailable), 503, C::Transient),
            (
                FhirError::Unavailable("gateway unavailable"),
                503,
                C::Transient,
            ),
            (gateway(tonic::Code::DeadlineExceeded), 504, C::Timeout),
            (FhirError::Timeout, 504, C::Timeout),
            (
                FhirError::Ehr(EhrClientError::Decode {
                    function: "ReadRecord",
                }),
                500,
                C::Exception,
            ),
            (chaincode(500), 500, C::Exception),
            (invalid(TxValidationCode::BadPayload), 500, C::Exception),
            (FhirError::Internal("hash mismatch"), 500, C::Exception),
        ];
        for (e, status, code) in table {
            let m = e.mapped();
            assert_eq!((m.status.as_u16(), m.code), (status, code), "{e:?}");
            assert!(!m.diagnostics.is_empty());
            for leaked in ["secret-patient-id", "John", "Doe"] {
                assert!(!m.diagnostics.contains(leaked), "{e:?}: {}", m.diagnostics);
            }
        }
    }

    #[test]
    fn no_credential_asks_for_a_bearer_token() {
        let r = FhirError::NoCredential.into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(r.headers()[header::CONTENT_TYPE], FHIR_JSON);
    }

    #[test]
    fn audited_denials_name_their_access_id() {
        let m = FhirError::Ehr(EhrClientError::AccessDenied {
            access_id: ACCESS.into(),
        })
        .mapped();
        assert!(m.diagnostics.contains(ACCESS));
        assert_eq!(
            operation_outcome(m.code, "x")["issue"][0]["severity"],
            "error"
        );
    }
}
