//! The operations endpoint: `/healthz` (503 once the core has halted) and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Shared;
use crate::{Error, Result};

/// Binds the operations endpoint at `listen` and serves it until `shutdown` turns true;
/// returns its address and the task serving it.
pub(super) async fn serve(
    listen: &str,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let l = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::io("bind", listen, e))?;
    let addr = l.local_addr().map_err(|e| Error::io("bind", listen, e))?;
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/metrics", axum::routing::get(metrics))
        .with_state(shared);
    let task = tokio::spawn(async move {
        let r = axum::serve(l, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(target: "orderer", error = %e, "operations endpoint failed");
        }
    });
    Ok((addr, task))
}

async fn healthz(
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

async fn metrics(axum::extract::State(shared): axum::extract::State<Arc<Shared>>) -> String {
    shared.metrics.render()
}
