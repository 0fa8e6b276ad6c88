//! The factor query embedded vs on a cluster of 1 and 2 worker processes, and the time split
//! by stage kind (scan, shuffle, windows, result fetch), measured by running the query's
//! prefixes: each step adds one kind of work to the previous one.
//!
//! ```sh
//! cargo build --release -p lendfusion
//! cargo bench -p lendfusion-benches --bench cluster          # generates a panel once
//! LENDFUSION_BENCH_DATA=/path/to/panel cargo bench -p lendfusion-benches --bench cluster
//! ```
//! Worker processes are the release `lendfusion` binary next to this benchmark's target folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::execution::context::SessionContext;
use lendfusion_core::LendfusionConfig;
use lendfusion_core::cluster::{cluster_client_context, wait_until_ready};
use lendfusion_core::query::collect_sql;

const JOIN: &str =
    "FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id";

/// (step, query): each adds one kind of work to the one before.
fn steps() -> Vec<(&'static str, String)> {
    let panel = format!(
        "SELECT l.date, l.security_id, utilization(l.on_loan_qty, l.lendable_qty) AS util,
                days_to_cover(l.on_loan_qty, m.volume) AS dtc,
                fwd_return(m.total_return, 21) OVER (PARTITION BY l.security_id ORDER BY l.date) AS fwd21
         {JOIN}"
    );
    vec![
        (
            "scan (lending + market, sum per column)",
            "SELECT (SELECT sum(on_loan_qty) + sum(lendable_qty) FROM lending),
                    (SELECT sum(volume) + sum(total_return) FROM market)"
                .to_string(),
        ),
        (
            "+ join shuffle on (date, security_id)",
            format!("SELECT count(*), sum(l.on_loan_qty / m.volume) {JOIN}"),
        ),
        (
            "+ time-series window (shuffle on security_id)",
            format!("SELECT count(fwd21), sum(fwd21) FROM ({panel})"),
        ),
        (
            "+ cross-sectional windows (shuffle on date) and IC per date",
            format!(
                "SELECT count(ic), avg(ic) FROM (
                   SELECT date, spearman_ic(r, fwd21) AS ic FROM (
                     SELECT date, fwd21, cs_rank(util) OVER (PARTITION BY date) AS r,
                            cs_normal_rank(dtc) OVER (PARTITION BY date) AS z FROM ({panel}))
                   GROUP BY date)"
            ),
        ),
        (
            "+ result fetch (the whole ranked panel to the client)",
            format!(
                "SELECT date, security_id, fwd21, cs_rank(util) OVER (PARTITION BY date) AS r,
                        cs_normal_rank(dtc) OVER (PARTITION BY date) AS z FROM ({panel})"
            ),
        ),
        (
            "small query (one date, one month's files)",
            "SELECT count(*), avg(utilization(on_loan_qty, lendable_qty)) FROM lending
             WHERE date = '2019-06-03'"
                .to_string(),
        ),
    ]
}

fn release_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    let dir = exe.parent().and_then(Path::parent).expect("target/release");
    let bin = dir.join("lendfusion");
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release -p lendfusion",
        bin.display()
    );
    bin
}

struct Processes(Vec<Child>);

impl Drop for Processes {
    /// SIGTERM first, so that each worker removes its temporary work folder on the way out;
    /// SIGKILL for whatever is still running after ten seconds.
    fn drop(&mut self) {
        for child in &self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in &mut self.0 {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn start_cluster(data: &str, workers: usize, slots: usize) -> (Processes, String) {
    let bin = release_bin();
    let port = free_port();
    let spawn = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .env("LENDFUSION_CLUSTER__WORKER_SLOTS", slots.to_string())
            .env("LENDFUSION_CLUSTER__MIN_WORKERS", workers.to_string())
            .env("LENDFUSION_CLUSTER__HEARTBEAT_INTERVAL_SECONDS", "2")
            .env("LENDFUSION_CLUSTER__WORKER_TIMEOUT_SECONDS", "10")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let port_text = port.to_string();
    // The bench measures the cluster through a Ballista client on the scheduler port; the
    // client port is unused here (a free port, no auth).
    let client_port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port().to_string())
        .expect("free port");
    let mut children = vec![spawn(&[
        "coordinator",
        "--data",
        data,
        "--scheduler-port",
        &port_text,
        "--port",
        &client_port,
        "--no-auth",
    ])];
    let address = format!("127.0.0.1:{port}");
    for _ in 0..workers {
        children.push(spawn(&["worker", "--coordinator", &address]));
    }
    (Processes(children), format!("http://{address}"))
}

/// Median wall time of `runs` runs (after one warm-up), and the rows returned.
async fn time_query(ctx: &SessionContext, query: &str, runs: usize) -> (Duration, usize) {
    let mut rows = 0;
    let mut times = vec![];
    for i in 0..=runs {
        let started = Instant::now();
        let batches = collect_sql(ctx, query).await.expect("query");
        if i > 0 {
            times.push(started.elapsed());
        }
        rows = batches.iter().map(|b| b.num_rows()).sum();
    }
    times.sort();
    (times[times.len() / 2], rows)
}

async fn measure(label: &str, ctx: &SessionContext, results: &mut Vec<(String, Vec<Duration>)>) {
    let runs: usize = std::env::var("LENDFUSION_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for (i, (step, query)) in steps().iter().enumerate() {
        let (took, rows) = time_query(ctx, query, runs).await;
        eprintln!(
            "{label:>10} | {step:<62} | {:>8.3} s | {rows} rows",
            took.as_secs_f64()
        );
        if results.len() <= i {
            results.push((step.to_string(), vec![]));
        }
        results[i].1.push(took);
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let data = match std::env::var("LENDFUSION_BENCH_DATA") {
            Ok(path) => path,
            Err(_) => {
                let root = std::env::temp_dir().join("lendfusion-bench-cluster-panel");
                if !root.join("_truth.json").exists() {
                    let options = lendfusion_datagen::GenerateOptions {
                        out: root.display().to_string(),
                        securities: 2000,
                        start: chrono::NaiveDate::from_ymd_opt(2016, 1, 1).expect("date"),
                        end: chrono::NaiveDate::from_ymd_opt(2020, 12, 31).expect("date"),
                        seed: 7,
                        overwrite: true,
                        clean: false,
                    };
                    lendfusion_datagen::generate(&options, &LendfusionConfig::default(), None)
                        .await
                        .expect("generate");
                }
                root.display().to_string()
            }
        };
        let config = LendfusionConfig {
            data: Some(data.clone()),
            ..Default::default()
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut results: Vec<(String, Vec<Duration>)> = vec![];

        let embedded = lendfusion_core::session_context(&config)
            .await
            .expect("session");
        measure("embedded", &embedded, &mut results).await;

        for workers in [1usize, 2] {
            // The same cores in total: one worker gets them all, two share them.
            let slots = (cores / workers).max(1);
            let (_processes, url) = start_cluster(&data, workers, slots);
            wait_until_ready(&url, Duration::from_secs(60))
                .await
                .expect("cluster ready");
            let client = cluster_client_context(&config, &url).await.expect("client");
            measure(&format!("{workers} worker(s)"), &client, &mut results).await;
        }

        println!("\n| step | embedded | 1 worker process | 2 worker processes |");
        println!("|---|---|---|---|");
        for (step, times) in &results {
            let cells: Vec<String> = times
                .iter()
                .map(|t| format!("{:.3} s", t.as_secs_f64()))
                .collect();
            println!("| {step} | {} |", cells.join(" | "));
        }
    });
}
