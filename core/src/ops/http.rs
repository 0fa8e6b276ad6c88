//! A node's operations endpoint (plain HTTP, for probes and Prometheus):
//!
//! | path | answer |
//! |---|---|
//! | `/healthz` | `200 ok` while the process serves (liveness) |
//! | `/readyz` | `200 ready` when the node can take work, else `503` with the reason: the coordinator needs `cluster.min_workers` live workers, a worker needs to be registered with the coordinator; either is unready while draining |
//! | `/metrics` | the process's metrics ([`super::metrics`]) |
//!
//! The coordinator adds `/workers/{id}` (`200` if that worker is registered, `404` if not),
//! which workers ask for their own readiness.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use super::lifecycle::is_draining;
use super::metrics::{CONTENT_TYPE, metrics};
use crate::error::{LendfusionError, Result};

/// Whether the node can take work: `Err(reason)` when it cannot.
pub type Readiness =
    Arc<dyn Fn() -> BoxFuture<'static, std::result::Result<(), String>> + Send + Sync>;

/// Brings scrape-time metrics up to date before `/metrics` renders them.
pub type Refresh = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// A [`Refresh`] with nothing to refresh.
pub fn no_refresh() -> Refresh {
    Arc::new(|| Box::pin(async {}))
}

/// A running operations endpoint.
#[derive(Debug)]
pub struct OpsEndpoint {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl OpsEndpoint {
    /// Serve `/healthz`, `/readyz` (answered by `readiness`), `/metrics` (after `refresh`) and
    /// the routes of `extra` on `host:port` (0 = a free port).
    pub async fn start(
        host: &str,
        port: u16,
        readiness: Readiness,
        refresh: Refresh,
        extra: Router,
    ) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(|e| {
                LendfusionError::Cluster(format!(
                    "cannot listen on {host}:{port} for the operations endpoint: {e}"
                ))
            })?;
        let address = listener
            .local_addr()
            .map_err(|e| LendfusionError::Cluster(format!("operations endpoint address: {e}")))?;
        let app = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(move || ready(readiness.clone())))
            .route("/metrics", get(move || render_metrics(refresh.clone())))
            .merge(extra);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "operations endpoint stopped");
            }
        });
        tracing::info!(%address, "operations endpoint (/healthz /readyz /metrics) listening");
        Ok(Self { address, task })
    }

    /// The endpoint's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for OpsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ready(readiness: Readiness) -> Response {
    if is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: draining\n").into_response();
    }
    match readiness().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn render_metrics(refresh: Refresh) -> Response {
    refresh().await;
    match metrics().render() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the metrics: {e}\n"),
        )
            .into_response(),
    }
}

/// The status code of `GET http://{address}{path}`, or `None` when there is no HTTP answer
/// within five seconds.
pub async fn get_status(address: &str, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = address.trim_start_matches("http://").trim_end_matches('/');
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        // "HTTP/1.1 200"
        std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .ok()
        .flatten()
}
