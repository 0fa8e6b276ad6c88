//! The process's metrics, in Prometheus' exposition format (OpenMetrics text).
//!
//! One set per process: the coordinator updates the query metrics, a worker the task metrics
//! (the embedded cluster of `lendfusion demo` updates both). Every name starts with
//! `lendfusion_`; counters end in `_total`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::execution::memory_pool::MemoryPool;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Queries submitted to the cluster by the client port.
    pub queries_started: Counter,
    /// Queries whose result is ready.
    pub queries_finished: Counter,
    /// Queries that failed, timed out or were cancelled.
    pub queries_failed: Counter,
    /// Queries running now.
    pub queries_running: Gauge,
    /// Seconds from submission to a ready result (or failure).
    pub query_seconds: Histogram,
    /// Rows streamed to clients (`DoGet`).
    pub rows_returned: Counter,
    /// Bytes streamed to clients (`DoGet`, Arrow IPC bodies and headers).
    pub bytes_returned: Counter,
    /// Result streams open to clients.
    pub result_streams: Gauge,
    /// Live workers registered with the coordinator.
    pub workers: Gauge,
    /// Tasks a worker started.
    pub tasks_started: Counter,
    /// Tasks a worker finished successfully.
    pub tasks_finished: Counter,
    /// Tasks that failed (cancelled tasks count neither as finished nor as failed).
    pub tasks_failed: Counter,
    /// Tasks running now.
    pub tasks_running: Gauge,
    /// Seconds a task ran.
    pub task_seconds: Histogram,
    /// Bytes of shuffle output (and final result partitions) the worker wrote.
    pub shuffle_bytes_written: Counter,
    /// Rows of shuffle output the worker wrote.
    pub shuffle_rows_written: Counter,
    /// Bytes DataFusion has reserved for the running tasks (sorts, joins, aggregations).
    pub memory_reserved_bytes: Gauge,
    /// The process's resident memory.
    pub resident_memory_bytes: Gauge,
    /// 1 while the process drains after SIGTERM.
    pub draining: Gauge,
    pools: Mutex<HashMap<u64, Arc<dyn MemoryPool>>>,
    next_pool: AtomicU64,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("lendfusion");
        registry.register(
            "build",
            "The lendfusion version this process runs",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let seconds = || Histogram::new(exponential_buckets(0.005, 2.0, 18));
        let m = Self {
            registry: Registry::default(),
            queries_started: Counter::default(),
            queries_finished: Counter::default(),
            queries_failed: Counter::default(),
            queries_running: Gauge::default(),
            query_seconds: seconds(),
            rows_returned: Counter::default(),
            bytes_returned: Counter::default(),
            result_streams: Gauge::default(),
            workers: Gauge::default(),
            tasks_started: Counter::default(),
            tasks_finished: Counter::default(),
            tasks_failed: Counter::default(),
            tasks_running: Gauge::default(),
            task_seconds: seconds(),
            shuffle_bytes_written: Counter::default(),
            shuffle_rows_written: Counter::default(),
            memory_reserved_bytes: Gauge::default(),
            resident_memory_bytes: Gauge::default(),
            draining: Gauge::default(),
            pools: Mutex::new(HashMap::new()),
            next_pool: AtomicU64::new(0),
        };
        let r = &mut registry;
        r.register(
            "queries_started",
            "Queries submitted by the client port",
            m.queries_started.clone(),
        );
        r.register(
            "queries_finished",
            "Queries whose result is ready",
            m.queries_finished.clone(),
        );
        r.register(
            "queries_failed",
            "Queries that failed, timed out or were cancelled",
            m.queries_failed.clone(),
        );
        r.register(
            "queries_running",
            "Queries running now",
            m.queries_running.clone(),
        );
        r.register(
            "query_duration_seconds",
            "Seconds from submission to a ready result or a failure",
            m.query_seconds.clone(),
        );
        r.register(
            "rows_returned",
            "Rows streamed to clients",
            m.rows_returned.clone(),
        );
        r.register(
            "bytes_returned",
            "Bytes streamed to clients (Arrow IPC)",
            m.bytes_returned.clone(),
        );
        r.register(
            "workers",
            "Live workers registered with the coordinator",
            m.workers.clone(),
        );
        r.register(
            "tasks_started",
            "Tasks this worker started",
            m.tasks_started.clone(),
        );
        r.register(
            "tasks_finished",
            "Tasks this worker finished successfully",
            m.tasks_finished.clone(),
        );
        r.register(
            "tasks_failed",
            "Tasks that failed on this worker",
            m.tasks_failed.clone(),
        );
        r.register(
            "tasks_running",
            "Tasks running now",
            m.tasks_running.clone(),
        );
        r.register(
            "task_duration_seconds",
            "Seconds a task ran",
            m.task_seconds.clone(),
        );
        r.register(
            "shuffle_written_bytes",
            "Bytes of shuffle and result partitions written",
            m.shuffle_bytes_written.clone(),
        );
        r.register(
            "shuffle_written_rows",
            "Rows of shuffle and result partitions written",
            m.shuffle_rows_written.clone(),
        );
        r.register(
            "memory_reserved_bytes",
            "Bytes DataFusion has reserved for running tasks",
            m.memory_reserved_bytes.clone(),
        );
        r.register(
            "resident_memory_bytes",
            "Resident memory of the process",
            m.resident_memory_bytes.clone(),
        );
        r.register(
            "draining",
            "1 while the process drains after SIGTERM",
            m.draining.clone(),
        );
        Self { registry, ..m }
    }

    /// Count `pool` (a running task's) in `memory_reserved_bytes` until the guard is dropped.
    pub fn track_pool(&'static self, pool: Arc<dyn MemoryPool>) -> PoolGuard {
        let id = self.next_pool.fetch_add(1, Ordering::Relaxed);
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, pool);
        PoolGuard { metrics: self, id }
    }

    /// The metrics in Prometheus' text format, with the memory gauges read now.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let reserved: usize = self
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|p| p.reserved())
            .sum();
        self.memory_reserved_bytes
            .set(i64::try_from(reserved).unwrap_or(i64::MAX));
        if let Some(rss) = resident_bytes() {
            self.resident_memory_bytes
                .set(i64::try_from(rss).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The Markdown table of every metric (name as scraped, type, meaning), from the registry.
pub fn metrics_reference() -> String {
    let mut text = String::new();
    // A fresh registry of the same metrics (the table must not depend on values).
    let _ = encode(&mut text, &Metrics::new().registry);
    let mut out = String::from("| metric | type | meaning |\n|---|---|---|\n");
    let mut help = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest
                .split_once(' ')
                .map(|(n, h)| (n.to_string(), h.to_string()));
        } else if let Some((name, meaning)) = help.take()
            && let Some((_, kind)) = line
                .strip_prefix("# TYPE ")
                .and_then(|rest| rest.split_once(' '))
        {
            let scraped = match kind {
                "counter" => format!("{name}_total"),
                "info" => format!("{name}_info"),
                _ => name,
            };
            out.push_str(&format!("| `{scraped}` | {kind} | {meaning} |\n"));
        }
    }
    out
}

/// Counts one unit of `gauge` (a running query or task, an open stream) until dropped, however
/// the work ends: finished, failed or cancelled.
#[derive(Debug)]
pub struct Held(&'static Gauge);

/// Hold one unit of `gauge` for the life of the returned guard.
pub fn hold(gauge: &'static Gauge) -> Held {
    gauge.inc();
    Held(gauge)
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A result stream to a client, counted: one open stream while it lives, its rows and bytes
/// in the rows and bytes returned (the coordinator's client port, and a worker's data port for
/// results fetched there with signed tickets).
pub fn counted_result_stream<S, E>(
    stream: S,
) -> impl futures::Stream<Item = Result<arrow_flight::FlightData, E>> + Send
where
    S: futures::Stream<Item = Result<arrow_flight::FlightData, E>> + Send,
{
    use futures::TryStreamExt;
    let open = hold(&metrics().result_streams);
    stream.inspect_ok(move |data| {
        let _open = &open;
        let m = metrics();
        m.bytes_returned
            .inc_by((data.data_header.len() + data.data_body.len()) as u64);
        let rows = arrow::ipc::root_as_message(&data.data_header)
            .ok()
            .and_then(|message| message.header_as_record_batch())
            .map_or(0, |batch| batch.length());
        m.rows_returned.inc_by(u64::try_from(rows).unwrap_or(0));
    })
}

/// Removes a task's memory pool from the metrics when dropped.
#[derive(Debug)]
pub struct PoolGuard {
    metrics: &'static Metrics,
    id: u64,
}

impl Drop for PoolGuard {
    fn drop(&mut self) {
        self.metrics
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Resident memory of this process (Linux: `VmRSS` of `/proc/self/status`).
pub fn resident_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}

/// Peak resident memory of this process (Linux: `VmHWM` of `/proc/self/status`).
pub fn peak_resident_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_in_prometheus_text() {
        let m = metrics();
        m.queries_started.inc();
        m.query_seconds.observe(0.2);
        let text = m.render().expect("render");
        for name in [
            "lendfusion_build_info{version=",
            "lendfusion_queries_started_total ",
            "lendfusion_queries_finished_total ",
            "lendfusion_queries_failed_total ",
            "lendfusion_query_duration_seconds_bucket{le=",
            "lendfusion_rows_returned_total ",
            "lendfusion_bytes_returned_total ",
            "lendfusion_workers ",
            "lendfusion_tasks_started_total ",
            "lendfusion_task_duration_seconds_count ",
            "lendfusion_shuffle_written_bytes_total ",
            "lendfusion_memory_reserved_bytes ",
            "lendfusion_resident_memory_bytes ",
            "lendfusion_draining ",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn docs_operations_md_lists_every_metric() {
        let table = metrics_reference();
        assert!(
            table.contains("| `lendfusion_queries_started_total` | counter |"),
            "{table}"
        );
        assert!(
            table.contains("| `lendfusion_query_duration_seconds` | histogram |"),
            "{table}"
        );
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
        let text = std::fs::read_to_string(&path).expect("docs/operations.md");
        assert!(
            text.contains(&table),
            "docs/operations.md is stale: paste `lendfusion config --metrics` into its metrics \
             section"
        );
    }
}
