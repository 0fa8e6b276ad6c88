//! Operating a cluster of separate processes: health and readiness of every role, Prometheus
//! metrics that show the query that just ran, and JSON logs in which the coordinator's query
//! id reappears on the workers that ran its tasks.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;

use crate::support::cluster::{ProcessCluster, http_get, sample, settings};
use crate::support::small_panel;

/// A query whose SQL is easy to find in the coordinator's log.
const MARKED_QUERY: &str =
    "SELECT date, count(*) AS ops_marker_rows FROM lending GROUP BY date ORDER BY date";

/// Poll `GET /readyz` on `port` until it answers 200, failing after `timeout`.
async fn wait_port_ready(port: u16, timeout: Duration, what: &str, logs: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = http_get(port, "/readyz").await;
        if status == 200 {
            assert_eq!(body.trim(), "ready");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not ready after {timeout:?}: {status} {body}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The JSON log lines of a process.
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_metrics_and_query_ids_on_every_role() {
    let (root, _) = small_panel().await;
    let json = settings(&[
        ("LENDFUSION_OPS__LOG_FORMAT", "json"),
        ("LENDFUSION_CLUSTER__MIN_WORKERS", "2"),
    ]);
    let mut cluster = ProcessCluster::start(&root.display().to_string(), 0, &json);
    let ops = cluster.coordinator.ops_port();

    // Alive at once; not ready without its two workers, and it says why.
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(ops, "/healthz").await != (200, "ok\n".to_string()) {
        assert!(Instant::now() < deadline, "no /healthz\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = http_get(ops, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("0 live workers"), "{body}");
    cluster.add_worker();
    cluster.add_worker();
    cluster.wait_ready(Duration::from_secs(60)).await;
    wait_port_ready(ops, Duration::from_secs(30), "coordinator", || {
        cluster.logs()
    })
    .await;
    for worker in &cluster.workers {
        let (status, body) = http_get(worker.ops_port(), "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        wait_port_ready(worker.ops_port(), Duration::from_secs(30), "worker", || {
            cluster.logs()
        })
        .await;
    }
    // The coordinator's view that workers ask for their readiness.
    assert_eq!(http_get(ops, "/workers/no-such-worker").await.0, 404);

    let batches: Vec<RecordBatch> = cluster
        .query(MARKED_QUERY)
        .await
        .unwrap_or_else(|e| panic!("query: {e}\n{}", cluster.logs()));
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert!(rows > 100, "{rows}");
    assert!(
        cluster
            .query("SELECT no_such_column FROM lending")
            .await
            .is_err()
    );

    // The coordinator counted both queries, the rows it streamed and its workers.
    let (status, text) = http_get(ops, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        sample(&text, "lendfusion_queries_started_total"),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "lendfusion_queries_finished_total"),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "lendfusion_query_duration_seconds_count"),
        1.0
    );
    assert_eq!(sample(&text, "lendfusion_queries_running"), 0.0);
    assert_eq!(sample(&text, "lendfusion_rows_returned_total"), rows as f64);
    assert!(sample(&text, "lendfusion_bytes_returned_total") > (rows * 8) as f64);
    assert_eq!(sample(&text, "lendfusion_workers"), 2.0);
    assert!(sample(&text, "lendfusion_resident_memory_bytes") > 1e6);
    // (The failing query failed in planning, before it became a job.)

    // The workers ran its tasks and wrote its shuffle and result partitions.
    let (mut tasks, mut shuffle_bytes) = (0.0, 0.0);
    for worker in &cluster.workers {
        let (status, text) = http_get(worker.ops_port(), "/metrics").await;
        assert_eq!(status, 200, "{text}");
        tasks += sample(&text, "lendfusion_tasks_finished_total");
        shuffle_bytes += sample(&text, "lendfusion_shuffle_written_bytes_total");
        assert_eq!(sample(&text, "lendfusion_tasks_failed_total"), 0.0);
        assert_eq!(sample(&text, "lendfusion_tasks_running"), 0.0);
        assert_eq!(sample(&text, "lendfusion_task_duration_seconds_count"), {
            sample(&text, "lendfusion_tasks_finished_total")
        });
    }
    assert!(tasks >= 2.0, "{tasks} tasks");
    assert!(shuffle_bytes > 0.0);

    // The coordinator logged the query with its id; the workers logged its tasks with it.
    let coordinator = json_lines(&cluster.coordinator.log_text());
    let submitted = coordinator
        .iter()
        .find(|l| {
            l["message"] == "query submitted"
                && l["query"]
                    .as_str()
                    .is_some_and(|q| q.contains("ops_marker_rows"))
        })
        .unwrap_or_else(|| panic!("no 'query submitted' line\n{}", cluster.logs()));
    let query_id = submitted["query_id"]
        .as_str()
        .expect("query_id")
        .to_string();
    assert!(
        coordinator
            .iter()
            .any(|l| l["message"] == "query finished" && l["query_id"] == query_id.as_str()),
        "{}",
        cluster.logs()
    );
    let worker_tasks: usize = cluster
        .workers
        .iter()
        .map(|w| {
            json_lines(&w.log_text())
                .iter()
                .filter(|l| l["message"] == "task finished" && l["query_id"] == query_id.as_str())
                .count()
        })
        .sum();
    assert_eq!(worker_tasks as f64, tasks, "{}", cluster.logs());
}
