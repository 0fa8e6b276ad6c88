//! Whether this process is draining: after SIGTERM it finishes its running work, refuses new
//! work and reports not ready, so that load balancers and the coordinator stop sending any.

use std::sync::atomic::{AtomicBool, Ordering};

static DRAINING: AtomicBool = AtomicBool::new(false);

/// Mark the process as draining (irreversible).
pub fn start_draining() {
    if !DRAINING.swap(true, Ordering::SeqCst) {
        super::metrics::metrics().draining.set(1);
    }
}

/// Whether the process is draining.
pub fn is_draining() -> bool {
    DRAINING.load(Ordering::SeqCst)
}

/// Ctrl-C or SIGTERM (every caller is woken by the same signal).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
