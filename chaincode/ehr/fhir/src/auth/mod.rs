//! Who is calling (build plan §3, ADR 0039): mutual TLS (the accept loop in [`crate::serve`]
//! puts the verified [`Caller`] in the request's extensions) or a bearer token from the token
//! endpoint (SMART Backend Services). No anonymous access to data routes: without either, 401
//! with `WWW-Authenticate: Bearer`.

pub mod jws;
pub mod tokens;

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;
use crate::backend::Caller;
use crate::outcome::{FhirError, IssueCode};

/// Now, Unix seconds.
pub(crate) fn now_s() -> i64 {
    medledger_msp::msp::unix_seconds(SystemTime::now())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = FhirError;

    /// The caller [`authenticate`] (or the accept loop) put in the request's extensions.
    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, FhirError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(FhirError::NoCredential)
    }
}

/// The token of an `Authorization: Bearer <token>` value (RFC 6750 §2.1; the scheme is
/// case-insensitive, RFC 7235 §2.1).
fn bearer_token(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The layer that says who calls, for every request (matched or not): the mutual-TLS
/// [`Caller`] the accept loop put in the extensions, or the one an `Authorization: Bearer`
/// token names ([`tokens::TokenService::resolve`], the certificate checked again). Both at
/// once → 400 (one credential per request). A bad, unknown or expired token → 401 with
/// `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1), on any route.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let tls = request.extensions().get::<Caller>().is_some();
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        if tls {
            return FhirError::Structure(
                "send either a client certificate or an Authorization header, not both",
            )
            .into_response();
        }
        let caller = bearer_token(value)
            .ok_or(FhirError::Security(
                "the Authorization header is not a bearer token",
            ))
            .and_then(|t| state.tokens.resolve(t, now_s()));
        match caller {
            Ok(c) => {
                request.extensions_mut().insert(c);
            }
            Err(e) => return invalid_token(e),
        }
    }
    next.run(request).await
}

/// `e`'s response with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1).
fn invalid_token(e: FhirError) -> Response {
    let mut r = e.into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    r
}

/// `GET [base]/.well-known/smart-configuration` (SMART App Launch 2.0 §2.1, Backend
/// Services): the token endpoint and what it accepts.
pub(crate) async fn smart_configuration(State(state): State<AppState>) -> Response {
    let body = json!({
        "token_endpoint": state.config.token_url(),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["system/*.rs", "system/*.cruds", "system/*.read", "system/*.*"],
        "capabilities": ["client-confidential-asymmetric"],
    });
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The token request's form (RFC 6749 §4.4.2, RFC 7523 §2.2); a repeated field refuses.
#[derive(Debug, Default)]
struct TokenRequest {
    grant_type: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
}

fn token_request(body: &[u8]) -> Result<TokenRequest, FhirError> {
    let mut req = TokenRequest::default();
    for (k, v) in form_urlencoded::parse(body) {
        let slot = match k.as_ref() {
            "grant_type" => &mut req.grant_type,
            "client_assertion_type" => &mut req.client_assertion_type,
            "client_assertion" => &mut req.client_assertion,
            "scope" => &mut req.scope,
            _ => continue,
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(FhirError::Structure("a token request field is repeated"));
        }
    }
    Ok(req)
}

/// Largest token request body, bytes (64 KiB; larger → 413).
const TOKEN_BODY_LIMIT_BYTES: usize = 64 * 1024;

/// `POST [base]/auth/token`: a client assertion for a bearer token. Errors follow RFC 6749
/// §5.2 (`{"error", "error_description"}`), their status from the one mapping
/// ([`FhirError::mapped`]).
pub(crate) async fn token(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Response {
    // A token request is a few kilobytes: read at most this much (not axum's default 2 MiB).
    let body = axum::body::to_bytes(request.into_body(), TOKEN_BODY_LIMIT_BYTES).await;
    let answer = (|| {
        let body: Bytes =
            body.map_err(|_| FhirError::TooLong("the token request is larger than 64 KiB"))?;
        let req = token_request(&body)?;
        if req.grant_type.as_deref() != Some("client_credentials") {
            return Err(FhirError::Value("grant_type must be client_credentials"));
        }
        if req.client_assertion_type.as_deref() != Some(tokens::JWT_BEARER) {
            return Err(FhirError::Value("client_assertion_type must be jwt-bearer"));
        }
        let assertion = req
            .client_assertion
            .ok_or(FhirError::Value("client_assertion is required"))?;
        let granted = state.tokens.exchange(&assertion, now_s())?;
        let scope = req.scope.unwrap_or_else(|| "system/*.cruds".to_owned());
        Ok((granted, scope))
    })();
    let (status, body) = match answer {
        Ok((g, scope)) => (
            StatusCode::OK,
            json!({
                "access_token": g.access_token,
                "token_type": "bearer",
                "expires_in": g.expires_in_s,
                "scope": scope,
            }),
        ),
        Err(e) => {
            let m = e.mapped();
            let error = match m.code {
                IssueCode::Security | IssueCode::Expired => "invalid_client",
                IssueCode::Value if !matches!(e, FhirError::Value(v) if v.starts_with("grant_type")) => {
                    "invalid_request"
                }
                IssueCode::Value => "unsupported_grant_type",
                IssueCode::Structure | IssueCode::TooLong => "invalid_request",
                _ => "server_error",
            };
            (
                m.status,
                json!({"error": error, "error_description": m.diagnostics}),
            )
        }
    };
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
