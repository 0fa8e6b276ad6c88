//! The benchmark harness on tiny data (benchmarks do not run in CI; this keeps them from
//! rotting): `benches/run.sh --smoke` runs every step once — the factor-panel job and the scan
//! floor embedded, the DuckDB, Polars, pandas and PySpark peers (each must agree with our
//! panel and IC series), the job on two worker processes (must agree too) and the Flight pulls.

use std::process::Command;

use crate::support::cluster::lendfusion_bin;
use crate::support::python::run_script;
use crate::support::small_panel;

#[test]
fn benchmark_smoke_run_agrees_with_every_peer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = Command::new("bash")
        .arg("benches/run.sh")
        .arg("--smoke")
        .current_dir(&root)
        .env("BENCH_DIR", dir.path())
        .env("LENDFUSION_BIN", lendfusion_bin())
        .env_remove("LENDFUSION_CONFIG")
        .output()
        .expect("run benches/run.sh");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    let results = std::fs::read_to_string(dir.path().join("results.txt")).expect("results");
    for needle in [
        "job=factor-panel securities=40 runs=1 wall_s=",
        "job=scan-floor securities=40 runs=1 wall_s=",
        "engine=duckdb wall_s=",
        "engine=polars wall_s=",
        "engine=pandas wall_s=",
        "engine=spark wall_s=",
        "workers=2 runs=1 wall_s=",
        "job=agreement engine=2-workers agree=yes",
        "pull=flight-sql-table",
        "pull=factor-panel",
        "pull=raw-do-get-factor-panel",
        "factor_panel_transfer_vs_raw=",
        "factor_panel_via_coordinator_transfer_vs_raw=",
    ] {
        assert!(
            results.contains(needle),
            "{needle} missing:\n{results}\n{stderr}"
        );
    }
    let disagreeing: Vec<&str> = results
        .lines()
        .filter(|l| l.contains("agree=") && !l.contains("agree=yes"))
        .collect();
    assert!(disagreeing.is_empty(), "{results}");
    assert!(
        results.contains("panel_rows=") && !results.contains("panel_rows=0 "),
        "{results}"
    );
    // Our jobs (embedded and on the workers) compute the IC series on the way to the panel's
    // file, not by reading it back.
    let ours: Vec<&str> = results.lines().filter(|l| l.contains("panel_s=")).collect();
    assert!(
        ours.len() >= 2 && ours.iter().all(|l| l.contains("ic_from=stream")),
        "{results}"
    );
}

/// The peers' agreement check (`benches/peers/peers.py`'s `compare`) against our job's own
/// outputs on the gappy small panel: an identical copy agrees, and a copy changed in any one
/// way — a rank one ulp off, a NULL where ours has a value or the reverse, NaN or infinity for
/// a value or a NULL, a row or column missing, a key changed, an IC off — at a row far from the
/// start does not.
#[tokio::test]
async fn benchmark_agreement_check_fails_on_every_disagreement() {
    let (data, _) = small_panel().await;
    let out = tempfile::tempdir().expect("tempdir");
    let job = Command::new(lendfusion_bin())
        .args(["bench", "factor-panel", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out.path())
        .env_remove("LENDFUSION_CONFIG")
        .output()
        .expect("run lendfusion bench factor-panel");
    assert!(
        job.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&job.stdout),
        String::from_utf8_lossy(&job.stderr)
    );
    let report = run_script(
        "bench_compare.py",
        &[out.path().to_str().expect("utf-8 path")],
    );
    assert!(
        report.starts_with("ok identical copy agrees") && !report.contains("MISSED"),
        "{report}"
    );
}
