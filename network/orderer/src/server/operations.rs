//! The operations endpoint: `/healthz` (503 once the core has halted) and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Shared;

pub(super) async fn healthz(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
) -> (axum::http::StatusCode, &'static str) {
    if shared.healthy.load(Ordering::Relaxed) {
        (axum::http::StatusCode::OK, "{\"status\":\"OK\"}\n")
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "{\"status\":\"halted\"}\n",
        )
    }
}

pub(super) async fn metrics(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
) -> String {
    shared.metrics.render()
}
