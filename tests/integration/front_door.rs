//! What a client of the coordinator sees: `LIMIT`/`OFFSET` as embedded, errors as the right
//! gRPC status with a plain message, and `lendfusion sql --coordinator` printing lists as CSV.

use std::process::Command;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use lendfusion_coordinator::client::RemoteError;

use crate::support::cluster::{ProcessCluster, TEST_API_KEY, assert_same_results, lendfusion_bin};
use crate::support::{copy_tree, local_session, render, small_panel, sql};

/// The broken file of the cluster's panel (everything else is the small panel).
const BAD_FILE: &str = "market/month=2020-02/part-00000.parquet";

/// A copy of the small panel with one corrupt `market` file, and a cluster of two workers on it.
async fn cluster_with_a_bad_file() -> (tempfile::TempDir, std::path::PathBuf, ProcessCluster) {
    let (root, _) = small_panel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("panel");
    copy_tree(root, &copy);
    std::fs::write(copy.join(BAD_FILE), b"this is not a parquet file at all").expect("corrupt");
    let cluster = ProcessCluster::start(
        &copy.display().to_string(),
        2,
        &[("LENDFUSION_CLUSTER__MIN_WORKERS".into(), "2".into())],
    );
    cluster.wait_ready(Duration::from_secs(60)).await;
    (dir, copy, cluster)
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// `LIMIT` and `OFFSET` through a coordinator give what they give embedded, for the table
/// function, the tables and literal rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_and_offsets_hold_through_a_coordinator() {
    let (_dir, root, cluster) = cluster_with_a_bad_file().await;
    let local = local_session(&root).await;
    let all = rows(&sql(&local, "SELECT name FROM lendfusion_functions()").await);
    assert!(all > 10, "{all} functions");
    for (query, expected) in [
        ("SELECT name FROM lendfusion_functions() LIMIT 3", 3),
        ("SELECT * FROM lendfusion_functions() LIMIT 1", 1),
        ("SELECT name FROM lendfusion_functions() LIMIT 0", 0),
        ("SELECT name FROM lendfusion_functions() OFFSET 2", all - 2),
        (
            "SELECT name FROM lendfusion_functions() LIMIT 3 OFFSET 4",
            3,
        ),
        (
            "SELECT name FROM lendfusion_functions() LIMIT 5 OFFSET 1000",
            0,
        ),
        (
            "SELECT name FROM lendfusion_functions() WHERE kind = 'scalar' LIMIT 2",
            2,
        ),
        ("SELECT security_id FROM lending LIMIT 5", 5),
        ("SELECT security_id FROM lending LIMIT 5 OFFSET 7", 5),
        (
            "SELECT x FROM (VALUES (1), (2), (3), (4)) AS v(x) LIMIT 2",
            2,
        ),
        (
            "SELECT x FROM (VALUES (1), (2), (3), (4)) AS v(x) LIMIT 2 OFFSET 3",
            1,
        ),
        (
            "SELECT table_name FROM information_schema.tables LIMIT 1",
            1,
        ),
    ] {
        let remote = cluster
            .query(query)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}\n{}", cluster.logs()));
        assert_eq!(rows(&remote), expected, "{query}:\n{}", render(&remote));
        let embedded = sql(&local, query).await;
        assert_eq!(rows(&embedded), expected, "{query} embedded");
    }
    // Ordered: the same rows as embedded.
    for query in [
        "SELECT name, kind FROM lendfusion_functions() ORDER BY name LIMIT 3 OFFSET 2",
        "SELECT date, security_id, fee_bps FROM lending ORDER BY date, security_id LIMIT 4 OFFSET 3",
    ] {
        let remote = cluster.query(query).await.expect("ordered");
        assert_same_results(query, &sql(&local, query).await, &remote);
    }
}

/// The code and message a query fails with through the coordinator.
async fn failure(cluster: &ProcessCluster, query: &str) -> RemoteError {
    let err = match cluster.query(query).await {
        Ok(batches) => panic!("{query} should fail, gave\n{}", render(&batches)),
        Err(e) => e,
    };
    match err {
        datafusion::error::DataFusionError::External(inner) => {
            match inner.downcast::<RemoteError>() {
                Ok(remote) => *remote,
                Err(other) => panic!("{query}: not a server error: {other}"),
            }
        }
        other => panic!("{query}: not a server error: {other}"),
    }
}

/// Rust debug text a person cannot act on.
const DEBUG_TEXT: [&str; 9] = [
    "DataFusionError(",
    "Shared(",
    "External(",
    "ArrowError(",
    "Some(",
    "General(",
    "Execution(",
    "\\\"",
    "lendfusion-error",
];

fn assert_plain(query: &str, error: &RemoteError) {
    for debug in DEBUG_TEXT {
        assert!(
            !error.message.contains(debug),
            "{query}: debug text {debug:?} in {:?}",
            error.message
        );
    }
}

/// Errors the query causes are `INVALID_ARGUMENT` with the engine's plain message; a corrupt
/// file is `FAILED_PRECONDITION` naming the file. The same through `lendfusion sql`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn query_errors_have_their_code_and_a_plain_message() {
    let (_dir, root, cluster) = cluster_with_a_bad_file().await;
    let cases = [
        ("SELECT 1/0", tonic::Code::InvalidArgument, "Divide by zero"),
        (
            "SELECT security_id, dcbs / (dcbs - dcbs) AS x FROM lending",
            tonic::Code::InvalidArgument,
            "Divide by zero",
        ),
        (
            "SELECT CAST('x' AS INT)",
            tonic::Code::InvalidArgument,
            "Cannot cast string 'x'",
        ),
        (
            "SELECT CAST(security_id AS INT) FROM lending",
            tonic::Code::InvalidArgument,
            "Cannot cast string 'LF",
        ),
        (
            "SELECT dcbs(fee_bps, make_array(3.0, 2.0, 1.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)) FROM lending",
            tonic::Code::InvalidArgument,
            "dcbs",
        ),
        (
            "SELECT avg(close) FROM market",
            tonic::Code::FailedPrecondition,
            BAD_FILE,
        ),
        (
            "SELECT no_such_column FROM lending",
            tonic::Code::InvalidArgument,
            "no_such_column",
        ),
        (
            "SELECT * FROM no_such_table",
            tonic::Code::NotFound,
            "no_such_table",
        ),
    ];
    for (query, code, text) in cases {
        let error = failure(&cluster, query).await;
        assert_eq!(error.code, code, "{query}: {error}\n{}", cluster.logs());
        assert!(error.message.contains(text), "{query}: {error}");
        assert_plain(query, &error);
    }
    // The cluster still answers.
    let one = cluster
        .query("SELECT count(*) FROM lending")
        .await
        .expect("count");
    assert_eq!(rows(&one), 1);

    // `lendfusion sql` prints the plain message, through the coordinator and embedded.
    let url = cluster.client_url();
    let data = root.display().to_string();
    for backend in [
        vec!["--coordinator", url.as_str(), "--token", TEST_API_KEY],
        vec!["--data", data.as_str()],
    ] {
        for (query, text) in [
            ("SELECT 1/0", "Divide by zero"),
            ("SELECT CAST('x' AS INT)", "Cannot cast string 'x'"),
            ("SELECT avg(close) FROM market", BAD_FILE),
        ] {
            let mut args = vec!["sql"];
            args.extend_from_slice(&backend);
            args.push(query);
            let out = Command::new(lendfusion_bin())
                .args(&args)
                .env_remove("LENDFUSION_CONFIG")
                .output()
                .expect("run lendfusion sql");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?}");
            assert!(stderr.contains(text), "{args:?}: {stderr}");
            for debug in DEBUG_TEXT {
                assert!(!stderr.contains(debug), "{args:?}: {debug:?} in {stderr}");
            }
        }
    }
}

/// `lendfusion sql --coordinator --format csv` prints a list column as the embedded CLI does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn csv_lists_through_a_coordinator() {
    let (root, _) = small_panel().await;
    let data = root.display().to_string();
    let cluster = ProcessCluster::start(&data, 1, &[]);
    cluster.wait_ready(Duration::from_secs(60)).await;
    let url = cluster.client_url();
    let query = "SELECT date, fm_coefficients(fee_bps, on_loan_qty / lendable_qty) AS coef, \
                 make_array(1.5, NULL) AS l FROM lending \
                 WHERE date IN ('2021-03-01', '2021-03-02') GROUP BY date ORDER BY date";
    let run = |backend: &[&str]| {
        let mut args = vec!["sql", "--format", "csv"];
        args.extend_from_slice(backend);
        args.push(query);
        let out = Command::new(lendfusion_bin())
            .args(&args)
            .env_remove("LENDFUSION_CONFIG")
            .output()
            .expect("run lendfusion sql");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let remote = run(&["--coordinator", &url, "--token", TEST_API_KEY]);
    let local = run(&["--data", &data]);
    let lines: Vec<&str> = remote.lines().collect();
    assert_eq!(lines.len(), 3, "{remote}");
    assert_eq!(lines[0], "date,coef,l");
    assert!(lines[1].starts_with("2021-03-01,\"["), "{remote}");
    assert!(lines[1].ends_with("]\",\"[1.5, null]\""), "{remote}");
    // The coefficients agree to 1e-12 (summation order differs on a cluster).
    let numbers = |csv: &str| -> Vec<f64> {
        csv.lines()
            .skip(1)
            .flat_map(|l| {
                let inside = l.split('"').nth(1).expect("quoted list");
                inside
                    .trim_matches(['[', ']'])
                    .split(", ")
                    .map(|x| x.parse::<f64>().expect("number"))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (r, l) = (numbers(&remote), numbers(&local));
    assert_eq!(r.len(), 4, "{remote}");
    assert_eq!(r.len(), l.len(), "{local}");
    for (a, b) in r.iter().zip(&l) {
        assert!(
            (a - b).abs() <= 1e-12 * a.abs().max(1.0),
            "{remote}\n{local}"
        );
    }
}
