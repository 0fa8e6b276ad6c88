//! `lendfusion demo` as a user runs it: generates a panel, reports on an embedded cluster,
//! serves Flight SQL (a client queries it), stops on Ctrl-C; the tearsheet renders in headless
//! Chromium.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cluster::{free_port, http_get, lendfusion_bin};

/// Headless Chromium (Debian's `chromium`, installed by .ci/run): a screenshot of `html`.
fn screenshot(html: &Path, png: &Path) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("headless Chromium is needed: apt-get install chromium (.ci/run does)");
    let profile = tempfile::tempdir().expect("profile");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1100,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Uncaught") && !stderr.contains("ERROR:CONSOLE"),
        "the page logged errors: {stderr}"
    );
    let bytes = std::fs::read(png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "empty screenshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_reports_serves_flight_sql_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo-data");
    let out = dir.path().join("demo-out");
    let port = free_port();
    let ops_port = free_port();
    let mut child = Command::new(lendfusion_bin())
        .args([
            "demo",
            "--securities",
            "150",
            "--start",
            "2019-01-01",
            "--end",
            "2020-12-31",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args(["--port", &port.to_string()])
        .env_remove("LENDFUSION_CONFIG")
        .env("LENDFUSION_LOG", "warn")
        .env("LENDFUSION_OPS__HTTP_PORT", ops_port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut transcript = String::new();
    while !transcript.contains("Ctrl-C stops") {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => {
                transcript.push_str(&line);
                transcript.push('\n');
            }
            Err(_) if started.elapsed() < Duration::from_secs(600) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("demo exited with {status}:\n{transcript}");
                }
            }
            Err(_) => panic!("demo did not reach serving within 10 minutes:\n{transcript}"),
        }
    }
    for factor in ["utilization", "days_to_cover", "squeeze_score"] {
        assert!(
            transcript.contains(&format!("{factor} (monthly")),
            "{transcript}"
        );
        assert!(out.join(factor).join("report.html").is_file(), "{factor}");
    }
    assert!(transcript.contains("IC mean"), "{transcript}");

    // A Flight SQL client queries the demo with the key it printed.
    let key = std::fs::read_to_string(out.join("api-key")).expect("api key");
    assert!(transcript.contains(key.trim()), "the snippet shows the key");
    let options = lendfusion_coordinator::client::ClientOptions {
        url: format!("grpc://127.0.0.1:{port}"),
        token: Some(key.trim().to_string()),
        ..Default::default()
    };
    let connection = lendfusion_coordinator::client::FlightSqlConnection::connect(&options)
        .await
        .expect("connect to the demo");
    use futures::TryStreamExt;
    let batches: Vec<arrow::record_batch::RecordBatch> = connection
        .query("SELECT count(*) AS n FROM lending")
        .await
        .expect("query")
        .try_collect()
        .await
        .expect("collect");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    // The embedded cluster's health and metrics.
    assert!(
        transcript.contains(&format!("http://127.0.0.1:{ops_port}/metrics")),
        "{transcript}"
    );
    assert_eq!(http_get(ops_port, "/readyz").await.0, 200);
    let (_, metrics) = http_get(ops_port, "/metrics").await;
    assert!(
        metrics.contains("lendfusion_queries_finished_total"),
        "{metrics}"
    );

    // Ctrl-C stops it cleanly.
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "demo did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "demo exited with {exit}");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        transcript.push_str(&line);
        transcript.push('\n');
    }
    assert!(transcript.contains("stopped"), "{transcript}");

    // The tearsheet renders in a real browser.
    screenshot(
        &out.join("utilization").join("report.html"),
        &dir.path().join("utilization.png"),
    );
}
