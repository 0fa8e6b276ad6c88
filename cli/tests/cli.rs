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
