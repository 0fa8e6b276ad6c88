//! Operating a node: its operations endpoint (health, readiness, Prometheus metrics), its log
//! format, and how it shuts down.
//!
//! - [`OpsSettings`]: the `[ops]` configuration section;
//! - [`metrics`]: the process's metrics, updated by the roles and rendered for Prometheus;
//! - [`http`]: the HTTP endpoint serving `/healthz`, `/readyz` and `/metrics`;
//! - [`lifecycle`]: whether this process is draining (SIGTERM received).

pub mod http;
pub mod lifecycle;
pub mod metrics;

use serde::{Deserialize, Serialize};

use crate::error::{LendfusionError, Result};

/// How log lines are written (to stderr).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Human,
    /// One JSON object per line (`timestamp`, `level`, `message`, `target` and the event's
    /// fields, such as `query_id`), for log collectors.
    Json,
}

/// The operations endpoint, logs and shutdown of every role (`[ops]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OpsSettings {
    /// The coordinator's operations port (HTTP: `/healthz`, `/readyz`, `/metrics`), on
    /// `cluster.bind_host` (`coordinator --ops-port`). Workers ask it whether they are
    /// registered. 0 picks a free port.
    pub http_port: u16,
    /// A worker's operations port (HTTP: `/healthz`, `/readyz`, `/metrics`; `worker
    /// --ops-port`); 0 picks a free port (logged at start). Fix it in containers so that probes
    /// and scrapers find it.
    pub worker_http_port: u16,
    /// Log format on stderr: `human` lines or `json` objects.
    pub log_format: LogFormat,
    /// Log filter in `tracing`'s syntax (`info`, `warn,lendfusion_worker=debug`); the
    /// `LENDFUSION_LOG` variable overrides it. Default: lendfusion's own events at `info`,
    /// everything else at `warn`.
    pub log_filter: Option<String>,
    /// After SIGTERM (or Ctrl-C), how long a node waits for its running work: a worker for
    /// the tasks it is running, the coordinator for the queries in flight. New work is refused
    /// meanwhile; when the time is up the process exits anyway.
    pub shutdown_grace_seconds: u64,
}

impl Default for OpsSettings {
    fn default() -> Self {
        Self {
            http_port: 50060,
            worker_http_port: 0,
            log_format: LogFormat::Human,
            log_filter: None,
            shutdown_grace_seconds: 30,
        }
    }
}

impl OpsSettings {
    /// Settings that cannot work.
    pub fn validate(&self) -> Result<()> {
        if self
            .log_filter
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            return Err(LendfusionError::Config(
                "ops.log_filter is empty: remove it for the default, or give a level such as info"
                    .into(),
            ));
        }
        Ok(())
    }
}
