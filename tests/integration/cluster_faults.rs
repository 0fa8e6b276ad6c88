//! Failures of a cluster of separate processes: a worker killed mid-query (the answer is still
//! exact), a worker joining late, every worker gone (a clear error, no hang), and scans that
//! schedule only the files a query needs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use lendfusion_core::LendfusionConfig;
use lendfusion_core::cluster::{cluster_client_context, wait_until_ready};
use tokio::sync::OnceCell;

use crate::support::cluster::{
    ProcessCluster, TEST_API_KEY, assert_same_results, http_get, lendfusion_bin, sample, settings,
};
use crate::support::{generate_local, local_session, options, render, sql};

/// A multi-stage query: a join, a time-series window (shuffle on security), a cross-sectional
/// window (shuffle on date) and a per-date aggregate.
const MULTI_STAGE: &str = "
WITH panel AS (
  SELECT l.date, l.security_id, utilization(l.on_loan_qty, l.lendable_qty) AS util,
         fwd_return(m.total_return, 21) OVER (PARTITION BY l.security_id ORDER BY l.date) AS fwd21
  FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id),
ranked AS (SELECT date, util, fwd21, cs_rank(util) OVER (PARTITION BY date) AS r FROM panel)
SELECT date, spearman_ic(r, fwd21) AS ic, count(*) AS n, sum(r) AS rank_sum
FROM ranked GROUP BY date ORDER BY date";

static PANEL: OnceCell<PathBuf> = OnceCell::const_new();

/// Longest a query may take after a worker loss: the coordinator restarts a query that made
/// no progress 20 s after the loss (the test setting), at most twice, so it answers well within.
const HANG_LIMIT: Duration = Duration::from_secs(150);

/// A panel big enough that the multi-stage query runs for a while (400 securities, 3 years).
async fn fault_panel() -> &'static Path {
    PANEL
        .get_or_init(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let root = dir.path().join("faults");
            std::mem::forget(dir);
            generate_local(&options(&root, 400, "2018-01-01", "2020-12-31", 5)).await;
            root
        })
        .await
}

fn client_config(root: &Path) -> LendfusionConfig {
    LendfusionConfig {
        data: Some(root.display().to_string()),
        ..Default::default()
    }
}

fn min_workers(n: usize) -> Vec<(String, String)> {
    settings(&[("LENDFUSION_CLUSTER__MIN_WORKERS", &n.to_string())])
}

/// A cluster of `workers` with the extra `env` on the fault panel, ready, after one
/// undisturbed run of [`MULTI_STAGE`]: the cluster, the exact answer and how long the run took.
async fn undisturbed_cluster(
    workers: usize,
    env: &[(&str, &str)],
) -> (ProcessCluster, Vec<RecordBatch>, Duration) {
    let root = fault_panel().await;
    let expected = sql(&local_session(root).await, MULTI_STAGE).await;
    let cluster = ProcessCluster::start(&root.display().to_string(), workers, &settings(env));
    cluster.wait_ready(Duration::from_secs(60)).await;
    let started = Instant::now();
    assert_same_results(
        "undisturbed",
        &expected,
        &run_on(&cluster, MULTI_STAGE).await,
    );
    let span = started.elapsed();
    (cluster, expected, span)
}

/// Run `query` through the coordinator's Flight SQL port, as clients do.
async fn run_on(cluster: &ProcessCluster, query: &str) -> Vec<RecordBatch> {
    match cluster.query(query).await {
        Ok(batches) => batches,
        Err(e) => panic!("query failed: {e}\n{}", cluster.logs()),
    }
}

/// Run `query` through a Ballista client on the scheduler port (for EXPLAIN's distributed plan).
async fn run_internal(cluster: &ProcessCluster, root: &Path, query: &str) -> Vec<RecordBatch> {
    let client = cluster_client_context(&client_config(root), &cluster.url())
        .await
        .expect("client");
    match lendfusion_core::query::collect_sql(&client, query).await {
        Ok(batches) => batches,
        Err(e) => panic!("query failed: {e}\n{}", cluster.logs()),
    }
}

/// Submit `query` through the client port from a task of its own; it yields the result and
/// how long it took.
async fn start_query(cluster: &ProcessCluster, query: &'static str) -> QueryTask {
    use futures::TryStreamExt;
    let client = cluster.flight().await;
    tokio::spawn(async move {
        let started = Instant::now();
        let result = match client.query(query).await {
            Ok(stream) => stream.try_collect().await,
            Err(e) => Err(e),
        };
        (result, started.elapsed())
    })
}

type QueryTask = tokio::task::JoinHandle<(datafusion::error::Result<Vec<RecordBatch>>, Duration)>;

/// Wait for `query` (from [`start_query`]) after a disturbance described by `what`: it must give
/// the exact `expected` answer within [`HANG_LIMIT`]; how long it took.
async fn exact_answer(
    cluster: &ProcessCluster,
    query: &mut QueryTask,
    expected: &[RecordBatch],
    what: &str,
) -> Duration {
    let (result, took) = match tokio::time::timeout(HANG_LIMIT, query).await {
        Ok(joined) => joined.expect("query task"),
        Err(_) => panic!(
            "{what}: no answer within {HANG_LIMIT:?}\n{}",
            cluster.logs()
        ),
    };
    let batches =
        result.unwrap_or_else(|e| panic!("{what}: query failed: {e}\n{}", cluster.logs()));
    assert_same_results(what, expected, &batches);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_query_changes_nothing() {
    let root = fault_panel().await;
    let expected = sql(&local_session(root).await, MULTI_STAGE).await;
    let data = root.display().to_string();
    let mut cluster = ProcessCluster::start(&data, 2, &min_workers(2));
    cluster.wait_ready(Duration::from_secs(60)).await;

    // How long the query takes undisturbed (the faster of two runs: the first is cold), to
    // aim the kills inside it.
    let mut span = Duration::MAX;
    for _ in 0..2 {
        let started = Instant::now();
        let undisturbed = run_on(&cluster, MULTI_STAGE).await;
        span = span.min(started.elapsed());
        assert_same_results("undisturbed", &expected, &undisturbed);
    }

    let mut recovered = 0;
    for round in 0..5u32 {
        cluster.wait_ready(Duration::from_secs(60)).await;
        let victim = cluster.workers.len() - 1 - (round as usize % 2);
        // Kill at 10 %, 20 %, ... 50 % of the undisturbed run.
        let delay = span.mul_f64(0.1 * f64::from(round + 1));
        let resets_before = cluster
            .coordinator
            .log_text()
            .matches("on lost Executor")
            .count();
        let mut query = start_query(&cluster, MULTI_STAGE).await;
        tokio::time::sleep(delay).await;
        cluster.workers[victim].kill();
        // Ballista 55 can stall a job after a worker loss (a task status for a stage the loss
        // just rolled back is dropped); the coordinator then restarts the query. Either way the
        // client gets the exact answer, in bounded time.
        let what = format!("round {round}, after a worker loss");
        let took = exact_answer(&cluster, &mut query, &expected, &what).await;
        // Evidence that the kill hit work the query still needed: the coordinator reset tasks
        // on the lost worker, or the query waited for the loss to be detected.
        let resets = cluster
            .coordinator
            .log_text()
            .matches("on lost Executor")
            .count();
        if resets > resets_before || took > span + Duration::from_secs(2) {
            recovered += 1;
        }
        // The killed worker's replacement joins the running cluster.
        cluster.workers.remove(victim);
        cluster.add_worker();
    }
    // At least one kill landed while the lost worker's tasks or shuffle data were needed
    // (the coordinator then re-ran that work on the survivor).
    assert!(
        recovered >= 1,
        "no kill interrupted the query and recovered; nothing was tested\n{}",
        cluster.logs()
    );
    let restarts = cluster
        .coordinator
        .log_text()
        .matches("query stalled after a worker loss")
        .count();
    if restarts > 0 {
        eprintln!("queries the coordinator restarted after a Ballista stall: {restarts}");
    }
    assert!(
        cluster.coordinator.log_text().contains("lost"),
        "{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_a_worker_and_the_query_completes_on_the_others() {
    let (mut cluster, expected, span) = undisturbed_cluster(
        3,
        &[
            ("LENDFUSION_OPS__SHUTDOWN_GRACE_SECONDS", "20"),
            ("LENDFUSION_CLUSTER__MIN_WORKERS", "2"),
        ],
    )
    .await;

    // SIGTERM to the first worker whose metrics show a running task of the query (which
    // workers get tasks is the scheduler's choice), until one lands while it still has tasks.
    let mut interrupted = 0;
    for round in 0..6u32 {
        cluster.wait_ready(Duration::from_secs(60)).await;
        let ports: Vec<u16> = cluster.workers.iter().map(|w| w.ops_port()).collect();
        let mut query = start_query(&cluster, MULTI_STAGE).await;
        let deadline = Instant::now() + span * 2;
        let mut busy = None;
        while busy.is_none() && !query.is_finished() && Instant::now() < deadline {
            for (i, port) in ports.iter().enumerate() {
                let (_, metrics) = http_get(*port, "/metrics").await;
                if metrics.contains("lendfusion_tasks_running")
                    && sample(&metrics, "lendfusion_tasks_running") > 0.0
                {
                    busy = Some(i);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let victim = busy.unwrap_or(cluster.workers.len() - 1);
        cluster.workers[victim].terminate();
        let what = format!("round {round}, after a SIGTERM");
        exact_answer(&cluster, &mut query, &expected, &what).await;
        // The worker drained and exited by itself, successfully, within the grace period.
        let mut worker = cluster.workers.remove(victim);
        let status = worker.wait_exit(Duration::from_secs(40));
        let log = worker.log_text();
        assert!(
            status.is_some_and(|s| s.success()),
            "round {round}: worker exit {status:?}\n{log}"
        );
        assert!(
            log.contains("stop requested: draining running tasks"),
            "{log}"
        );
        assert!(log.contains("worker stopped"), "{log}");
        let drain = log
            .lines()
            .find(|l| l.contains("stop requested"))
            .unwrap_or_default();
        eprintln!("SIGTERM round {round}: {drain}");
        if !log.contains("running=0") {
            interrupted += 1;
            break;
        }
        cluster.add_worker();
    }
    assert!(
        interrupted >= 1,
        "no SIGTERM arrived while the worker had tasks; nothing was tested\n{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_to_the_coordinator_finishes_its_queries_and_refuses_new_ones() {
    let (mut cluster, expected, span) =
        undisturbed_cluster(2, &[("LENDFUSION_OPS__SHUTDOWN_GRACE_SECONDS", "60")]).await;

    let mut query = start_query(&cluster, MULTI_STAGE).await;
    tokio::time::sleep(span.mul_f64(0.3)).await;
    cluster.coordinator.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Draining: a new query is refused with a clear error, the running one completes and its
    // result is delivered; then the coordinator exits by itself.
    let refused = cluster.query("SELECT count(*) FROM lending").await;
    exact_answer(&cluster, &mut query, &expected, "finished while draining").await;
    let status = cluster.coordinator.wait_exit(Duration::from_secs(30));
    let log = cluster.coordinator.log_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}\n{log}"
    );
    let drain = log
        .lines()
        .find(|l| l.contains("stop requested"))
        .unwrap_or_else(|| panic!("no drain in the log\n{log}"));
    eprintln!("coordinator SIGTERM: {drain}");
    if !drain.contains("running=0") {
        // The query was in flight at the signal: the new one must have been refused.
        let err = refused.expect_err("a query sent while draining runs");
        assert!(err.to_string().contains("shutting down"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_workers_join_and_no_workers_is_a_clear_error() {
    let root = fault_panel().await;
    let data = root.display().to_string();
    let query =
        "SELECT count(*) AS n, sum(utilization(on_loan_qty, lendable_qty)) AS s FROM lending";
    let expected = sql(&local_session(root).await, query).await;

    // No worker at all: the client says so within the grace period instead of hanging.
    let mut cluster = ProcessCluster::start(&data, 0, &[]);
    let started = Instant::now();
    let err = wait_until_ready(&cluster.url(), Duration::from_secs(6))
        .await
        .expect_err("no workers");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(err.to_string().contains("no live workers"), "{err}");

    // A worker that starts late registers and runs queries.
    cluster.add_worker();
    cluster.wait_ready(Duration::from_secs(60)).await;
    assert_same_results("one late worker", &expected, &run_on(&cluster, query).await);

    // A second late worker joins a cluster that is already serving.
    cluster.add_worker();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let multi_expected = sql(&local_session(root).await, MULTI_STAGE).await;
    assert_same_results(
        "two workers",
        &multi_expected,
        &run_on(&cluster, MULTI_STAGE).await,
    );

    // Every worker killed mid-query: a clear error within the grace period, never a hang
    // or a partial answer.
    let running = start_query(&cluster, MULTI_STAGE).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    for worker in &mut cluster.workers {
        worker.kill();
    }
    let (outcome, _) = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the query must end, not hang")
        .expect("query task");
    match outcome {
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains("executors") || text.contains("worker"),
                "unclear error: {text}"
            );
            assert!(killed.elapsed() < Duration::from_secs(30), "{text}");
        }
        Ok(batches) => {
            // Finished before the kill took effect: then it must be the exact answer.
            assert_same_results("finished before the kill", &multi_expected, &batches);
        }
    }
    // The coordinator is still there, and a query now fails fast with a clear message.
    let err = wait_until_ready(&cluster.url(), Duration::from_secs(8))
        .await
        .expect_err("all workers are gone");
    assert!(err.to_string().contains("no live workers"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_month_schedules_only_that_months_files() {
    let root = fault_panel().await;
    let data = root.display().to_string();
    let cluster = ProcessCluster::start(&data, 1, &[]);
    cluster.wait_ready(Duration::from_secs(60)).await;
    let query = "SELECT security_id, avg(utilization(on_loan_qty, lendable_qty)) AS u FROM lending \
                 WHERE date BETWEEN '2019-03-01' AND '2019-03-31' GROUP BY security_id ORDER BY security_id";
    let plan = render(&run_internal(&cluster, root, &format!("EXPLAIN {query}")).await);
    assert!(plan.contains("distributed_plan"), "{plan}");
    assert!(plan.contains("month=2019-03/"), "{plan}");
    let months: std::collections::BTreeSet<&str> = plan
        .match_indices("month=")
        .map(|(i, _)| &plan[i..i + 13])
        .collect();
    assert_eq!(
        months.into_iter().collect::<Vec<_>>(),
        vec!["month=2019-03"],
        "{plan}"
    );
    let expected = sql(&local_session(root).await, query).await;
    assert_same_results("one month", &expected, &run_on(&cluster, query).await);

    // The command line as a user runs it: `sql --coordinator` prints what `sql --data` does
    // (the values agree to 1e-12; the CSV of the aggregated floats may differ in the last digit).
    let cli = |extra: &[&str]| {
        let mut args = vec!["sql", "--format", "csv"];
        args.extend_from_slice(extra);
        args.push(query);
        let out = std::process::Command::new(lendfusion_bin())
            .args(&args)
            .env_remove("LENDFUSION_CONFIG")
            .output()
            .expect("run lendfusion sql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let local = cli(&["--data", data.as_str()]);
    let url = cluster.client_url();
    let remote = cli(&["--coordinator", &url, "--token", TEST_API_KEY]);
    let parse = |csv: &str| -> Vec<(String, f64)> {
        csv.lines()
            .skip(1)
            .map(|l| {
                let (id, u) = l.split_once(',').expect("two columns");
                (id.to_string(), u.parse().expect("number"))
            })
            .collect()
    };
    let (l, r) = (parse(&local), parse(&remote));
    let rows: usize = expected.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(l.len(), rows, "{local}");
    assert_eq!(l.len(), r.len());
    for ((a, x), (b, y)) in l.iter().zip(&r) {
        assert_eq!(a, b);
        assert!((x - y).abs() <= 1e-12, "{a}: {x} vs {y}");
    }
}

/// Sorting every joined row (more than the worker's memory) needs the spill path.
const BIG_SORT: &str = "SELECT count(*) AS n, sum(r) AS s FROM (
  SELECT row_number() OVER (ORDER BY l.fee_bps, l.security_id, l.date) AS r, l.*, m.*
  FROM lending l JOIN market m ON l.security_id = m.security_id AND l.date = m.date)";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_limits_spill_or_fail_clearly() {
    let root = fault_panel().await;
    let data = root.display().to_string();
    let expected = sql(&local_session(root).await, BIG_SORT).await;

    // One task slot with 48 MiB, against ~75 MiB of joined rows to sort in one partition: the
    // sort spills to disk.
    let limit = |mb: &str| {
        vec![
            (
                "LENDFUSION_CLUSTER__WORKER_MEMORY_MB".to_string(),
                mb.to_string(),
            ),
            (
                "LENDFUSION_CLUSTER__WORKER_SLOTS".to_string(),
                "1".to_string(),
            ),
        ]
    };
    let cluster = ProcessCluster::start(&data, 1, &limit("48"));
    cluster.wait_ready(Duration::from_secs(60)).await;
    assert_same_results(
        "spilling sort",
        &expected,
        &run_on(&cluster, BIG_SORT).await,
    );
    drop(cluster);

    // 8 MiB cannot even hold the sort's 10 MiB merge reservation: a clear resources error, and the
    // worker lives on to answer the next query.
    let mut cluster = ProcessCluster::start(&data, 1, &limit("8"));
    cluster.wait_ready(Duration::from_secs(60)).await;
    let err = cluster
        .query(BIG_SORT)
        .await
        .expect_err("8 MiB is not enough");
    let text = err.to_string();
    assert!(
        text.contains("memory") || text.contains("Resources exhausted"),
        "{text}"
    );
    let small = "SELECT count(*) AS n FROM lending WHERE date = '2019-06-03'";
    let expected_small = sql(&local_session(root).await, small).await;
    assert_same_results(
        "after the failure",
        &expected_small,
        &run_on(&cluster, small).await,
    );
    assert!(
        cluster.workers[0].is_running(),
        "the worker died\n{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_restart_fails_in_flight_queries_and_workers_rejoin() {
    let root = fault_panel().await;
    let data = root.display().to_string();
    let mut cluster = ProcessCluster::start(&data, 2, &min_workers(2));
    cluster.wait_ready(Duration::from_secs(60)).await;

    let running = start_query(&cluster, MULTI_STAGE).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.coordinator.kill();
    let (outcome, _) = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the query must end, not hang")
        .expect("query task");
    let expected = sql(&local_session(root).await, MULTI_STAGE).await;
    match outcome {
        Err(e) => assert!(e.to_string().contains("coordinator"), "unclear error: {e}"),
        Ok(batches) => assert_same_results("finished before the kill", &expected, &batches),
    }

    // A new coordinator on the same port: the running workers register with it again.
    cluster.restart_coordinator(&data);
    cluster.wait_ready(Duration::from_secs(60)).await;
    assert_same_results(
        "after the restart",
        &expected,
        &run_on(&cluster, MULTI_STAGE).await,
    );
}
