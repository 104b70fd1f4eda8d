//! The axum `Router`: routes, the access log, limits, and the `Caller` extractor.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::AppState;
use crate::capability::capability_statement;
use crate::outcome::{FhirError, fhir_json};

/// The API's router over `state`: every route under `/fhir`, each request logged once
/// (target `fhir::access`), bounded by `limits.concurrency` and `limits.request_timeout_ms`,
/// unknown routes answered 404 `not-supported`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route(
            "/fhir/.well-known/smart-configuration",
            get(crate::auth::smart_configuration),
        )
        .route("/fhir/auth/token", post(crate::auth::token))
        .route("/fhir", post(crate::interactions::system))
        .route("/fhir/{type}", post(crate::interactions::create))
        .route("/fhir/{type}/{id}", get(crate::interactions::read))
        .route(
            "/fhir/{type}/{id}/_history",
            get(crate::interactions::history),
        )
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(state.clone(), access_log))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        .with_state(state)
}

/// `GET [base]/metadata`: the CapabilityStatement (no credential needed).
async fn metadata(State(state): State<AppState>) -> Response {
    fhir_json(
        StatusCode::OK,
        &capability_statement(&state.config.base_url),
    )
}

async fn unknown_route(request: Request) -> Response {
    let started = Instant::now();
    let response = FhirError::NotSupported("no such route or resource type").into_response();
    log_access(request.method().as_str(), "(unmatched)", &response, started);
    response
}

async fn method_not_allowed() -> Response {
    FhirError::MethodNotAllowed.into_response()
}

/// One `tracing` event per request (method, route template, status, duration_ms): never the
/// URI, query, headers or body, which may carry clear ids (ADR 0039). Also bounds the
/// request's time and the requests served at once.
async fn access_log(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |m| m.as_str().to_owned());
    let timeout = Duration::from_millis(state.config.limits.request_timeout_ms);
    let response = match state.permits.clone().try_acquire_owned() {
        Err(_) => FhirError::Unavailable("the server is at its concurrency limit").into_response(),
        Ok(_permit) => match tokio::time::timeout(timeout, next.run(request)).await {
            Ok(r) => r,
            Err(_) => FhirError::Timeout.into_response(),
        },
    };
    log_access(method.as_str(), &route, &response, started);
    response
}

fn log_access(method: &str, route: &str, response: &Response, started: Instant) {
    tracing::info!(
        target: "fhir::access",
        method,
        route,
        status = response.status().as_u16(),
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
}
