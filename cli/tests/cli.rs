//! The `lendfusion` binary as scripts drive it: generate, then `sql` in every format.

use std::path::Path;
use std::process::{Command, Output};

fn lendfusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lendfusion"))
        .args(args)
        .env_remove("LENDFUSION_DATA")
        .env_remove("LENDFUSION_CONFIG")
        .output()
        .expect("run lendfusion")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf8")
}

fn generate(root: &Path) {
    ok(&lendfusion(&[
        "generate",
        "--out",
        root.to_str().expect("path"),
        "--securities",
        "25",
        "--start",
        "2021-01-01",
        "--end",
        "2021-02-28",
        "--seed",
        "3",
    ]));
}

#[test]
fn generate_then_query_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("panel");
    generate(&root);
    let data = root.to_str().expect("path");
    let query = "SELECT security_id, date, dcbs FROM lending WHERE security_id IN ('LF000001', 'LF000002') \
                 AND date <= '2021-01-05' ORDER BY date, security_id";

    // CSV: exactly the header and the rows, nothing else on stdout.
    let csv = ok(&lendfusion(&[
        "sql", "--data", data, "--format", "csv", query,
    ]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "security_id,date,dcbs");
    assert_eq!(lines.len(), 1 + 6, "{csv}"); // 3 business days x 2 securities
    assert!(lines[1].starts_with("LF000001,2021-01-01,"), "{csv}");

    // JSON: one object per line, NULLs explicit.
    let json = ok(&lendfusion(&[
        "sql", "--data", data, "--format", "json", query,
    ]));
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0]["security_id"], "LF000001");
    assert_eq!(rows[0]["date"], "2021-01-01");
    assert!(
        rows.iter()
            .all(|r| r.as_object().expect("object").contains_key("dcbs"))
    );

    // Table for people.
    let table = ok(&lendfusion(&[
        "sql",
        "--data",
        data,
        "SELECT count(*) AS n FROM market",
    ]));
    assert!(table.contains("| n "), "{table}");

    // Statements from stdin when no statement is given and stdin is not a terminal.
    let mut child = Command::new(env!("CARGO_BIN_EXE_lendfusion"))
        .args(["sql", "--data", data, "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"SELECT 1 AS a; SELECT 'x;y' AS b;")
            .expect("write");
    }
    let out = ok(&child.wait_with_output().expect("wait"));
    assert_eq!(out, "a\n1\nb\nx;y\n");
}

#[test]
fn errors_go_to_stderr_with_a_failing_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("panel");
    generate(&root);
    let data = root.to_str().expect("path");

    let out = lendfusion(&[
        "sql",
        "--data",
        data,
        "--format",
        "csv",
        "SELECT nope FROM lending",
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "stdout must stay clean on error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));

    let out = lendfusion(&[
        "sql",
        "--data",
        dir.path().join("missing").to_str().expect("p"),
        "SELECT 1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lendfusion tables"));

    // Generating over an existing panel needs --overwrite.
    let out = lendfusion(&[
        "generate",
        "--out",
        data,
        "--securities",
        "5",
        "--start",
        "2021-01-01",
        "--end",
        "2021-01-31",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));

    let out = lendfusion(&["generate", "--out", data, "--securities", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--securities"));
}

#[test]
fn generate_keeps_an_existing_panel_only_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("panel");
    generate(&root);
    let truth = std::fs::read(root.join("_truth.json")).expect("truth");
    let path = root.to_str().expect("path");
    // Again without a flag: an error that says what to do; with --keep-existing: success.
    let again = lendfusion(&["generate", "--out", path, "--securities", "30"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));
    let kept = ok(&lendfusion(&[
        "generate",
        "--out",
        path,
        "--securities",
        "30",
        "--keep-existing",
    ]));
    assert!(kept.contains("kept"), "{kept}");
    assert_eq!(
        std::fs::read(root.join("_truth.json")).expect("truth"),
        truth
    );
}

#[test]
fn config_shows_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lendfusion.toml");
    std::fs::write(
        &file,
        "data = \"s3://bucket/panel\"\n[s3]\nsecret_access_key = \"very-secret\"\n[ops]\nlog_format = \"json\"\n",
    )
    .expect("write config");
    let shown = Command::new(env!("CARGO_BIN_EXE_lendfusion"))
        .args(["config", "--config", file.to_str().expect("path")])
        .env_remove("LENDFUSION_CONFIG")
        .env("LENDFUSION_OPS__SHUTDOWN_GRACE_SECONDS", "7")
        .output()
        .expect("run");
    let text = ok(&shown);
    assert!(text.contains("data = \"s3://bucket/panel\""), "{text}");
    assert!(text.contains("log_format = \"json\""), "{text}");
    assert!(text.contains("shutdown_grace_seconds = 7"), "{text}");
    assert!(!text.contains("very-secret"), "{text}");
    assert!(text.contains("<hidden>"), "{text}");
    // A typo is refused with the key's name, and so is a bad command line under --dry-run.
    std::fs::write(&file, "[ops]\nlog_fromat = \"json\"\n").expect("write config");
    let typo = lendfusion(&["config", "--config", file.to_str().expect("path")]);
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("log_fromat"));
    let bad = lendfusion(&["--dry-run", "worker", "--coordinatr", "x:1"]);
    assert!(!bad.status.success());
    ok(&lendfusion(&[
        "--dry-run",
        "worker",
        "--coordinator",
        "x:1",
    ]));
    let reference = ok(&lendfusion(&["config", "--reference"]));
    assert!(reference.contains("`ops.http_port`"), "{reference}");
}

#[test]
fn probe_exits_zero_only_on_200() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 1024];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n]).to_string();
            let status = if line.starts_with("GET /readyz ") {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        }
    });
    ok(&lendfusion(&[
        "probe",
        &format!("http://127.0.0.1:{port}/readyz"),
    ]));
    let unready = lendfusion(&["probe", &format!("http://127.0.0.1:{port}/other")]);
    assert!(!unready.status.success());
    assert!(String::from_utf8_lossy(&unready.stderr).contains("/other answered 503"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("addr")
        .port();
    let down = lendfusion(&["probe", &format!("http://127.0.0.1:{closed}/healthz")]);
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("no answer"));
}

/// The statement is whatever follows `sql`: SQL starting with a `-- comment` is not an option,
/// and `--` before it ends the options too.
#[test]
fn a_statement_may_start_with_a_comment() {
    for args in [
        vec!["sql", "--format", "csv", "-- a comment\nSELECT 1 AS a"],
        vec![
            "sql",
            "--format",
            "csv",
            "--",
            "-- a comment\nSELECT 1 AS a",
        ],
        vec!["sql", "--", "SELECT 1 AS a"],
        vec!["sql", "-- leading\nSELECT 1 AS a", "--format", "csv"],
    ] {
        let out = ok(&lendfusion(&args));
        assert!(out.contains('1'), "{args:?}: {out}");
        if args.contains(&"csv") {
            assert_eq!(out, "a\n1\n", "{args:?}");
        }
    }
    // An option that does not exist is still refused.
    let bad = lendfusion(&["sql", "--fromat", "csv", "SELECT 1"]);
    assert!(!bad.status.success());
}

/// CSV has no list, struct or map type: those columns are printed as the table does (a list
/// as `[a, b, c]`), quoted as CSV requires when they hold commas.
#[test]
fn csv_prints_lists_structs_and_maps() {
    let out = ok(&lendfusion(&[
        "sql",
        "--format",
        "csv",
        "SELECT make_array(1.5, 2.0, -3.25) AS l, make_array(1.0, NULL) AS n, \
         CAST(NULL AS DOUBLE[]) AS e, named_struct('a', 1, 'b', 'x') AS s, \
         map(['k'], [2]) AS m, 'plain' AS t",
    ]));
    assert_eq!(
        out,
        "l,n,e,s,m,t\n\"[1.5, 2.0, -3.25]\",\"[1.0, null]\",,\"{a: 1, b: x}\",{k: 2},plain\n"
    );
    // An empty result still has its header; one element needs no quotes.
    let out = ok(&lendfusion(&[
        "sql",
        "--format",
        "csv",
        "SELECT make_array(1.0) AS l FROM (VALUES (1)) AS v(x) WHERE x > 1",
    ]));
    assert_eq!(out, "l\n");
    let out = ok(&lendfusion(&[
        "sql",
        "--format",
        "csv",
        "SELECT make_array(1.0) AS l",
    ]));
    assert_eq!(out, "l\n[1.0]\n");
}

/// An aggregate that returns a list, on a generated panel.
#[test]
fn csv_prints_fama_macbeth_coefficients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("panel");
    generate(&root);
    let data = root.to_str().expect("path");
    let out = ok(&lendfusion(&[
        "sql",
        "--data",
        data,
        "--format",
        "csv",
        "SELECT date, fm_coefficients(fee_bps, on_loan_qty / lendable_qty) AS coef FROM lending \
         WHERE date = '2021-01-04' GROUP BY date",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "date,coef", "{out}");
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].starts_with("2021-01-04,\"["), "{out}");
    assert!(lines[1].ends_with("]\""), "{out}");
    assert_eq!(lines[1].matches(", ").count(), 1, "{out}");
}
