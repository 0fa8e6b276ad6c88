//! The Flight SQL front door with real clients: Python's ADBC driver, pyarrow.flight and
//! flightsql-dbapi (tests/python/flight_clients.py) against a coordinator and two worker
//! processes; TLS with a CA the client trusts, plain text refused.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::cluster::{ProcessCluster, TEST_API_KEY, http_get, lendfusion_bin, sample};
use crate::support::python::run_script;
use crate::support::small_panel;

const USER: &str = "ana";
const PASSWORD: &str = "correct horse battery staple";
/// Handshake tokens live this long in the test (the script waits for one to expire).
const TOKEN_TTL_SECONDS: u64 = 3;

fn auth_config(dir: &Path) -> String {
    let hash = lendfusion_coordinator::hash_password(PASSWORD).expect("hash");
    let path = dir.join("lendfusion.toml");
    std::fs::write(
        &path,
        format!(
            "[auth]\ntoken_ttl_seconds = {TOKEN_TTL_SECONDS}\n\n[[auth.users]]\nname = \"{USER}\"\npassword_hash = \"{hash}\"\n"
        ),
    )
    .expect("config file");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_flight_clients() {
    let (root, _) = small_panel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = auth_config(dir.path());
    let data = root.display().to_string();
    let cluster = ProcessCluster::start_with(
        &data,
        2,
        &[("LENDFUSION_CLUSTER__MIN_WORKERS".into(), "2".into())],
        &["--config", &config],
    );
    cluster.wait_ready(Duration::from_secs(60)).await;
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let url = cluster.client_url();
    let pid = cluster.coordinator_pid().to_string();
    let ttl = TOKEN_TTL_SECONDS.to_string();
    let scratch_arg = scratch.display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        run_script(
            "flight_clients.py",
            &[&url, TEST_API_KEY, USER, PASSWORD, &ttl, &pid, &scratch_arg],
        )
    })
    .await;
    match output {
        Ok(out) => eprintln!("{out}"),
        Err(e) => panic!("{e}\n{}", cluster.logs()),
    }

    // The snippets of docs/clients.md, as a reader would paste them.
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/clients.md");
    let out = Command::new(crate::support::python::python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/docs_snippets.py"))
        .arg(&docs)
        .env("LENDFUSION_URL", cluster.client_url())
        .env("LENDFUSION_TOKEN", TEST_API_KEY)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "docs/clients.md snippets: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        cluster
            .coordinator
            .log_text()
            .contains("Flight SQL listening"),
        "{}",
        cluster.logs()
    );
}

/// A CA and a server certificate for 127.0.0.1 / localhost, made with openssl.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (Debian package openssl) is needed for the TLS test");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=lendfusion test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_clients_with_the_ca_connect_and_plain_text_is_refused() {
    let (root, _) = small_panel().await;
    let dir = tempfile::tempdir().expect("tempdir");
    make_certificates(dir.path());
    let cert = dir.path().join("server.pem").display().to_string();
    let key = dir.path().join("server.key").display().to_string();
    let data = root.display().to_string();
    let cluster =
        ProcessCluster::start_with(&data, 1, &[], &["--tls-cert", &cert, "--tls-key", &key]);
    cluster.wait_ready(Duration::from_secs(60)).await;

    let ca = dir.path().join("ca.pem");
    let tls_url = format!("grpc+tls://127.0.0.1:{}", cluster.client_port);
    let plain_url = cluster.client_url();
    let sql = |url: &str, extra: &[&str]| {
        let mut args = vec!["sql", "--coordinator", url, "--token", TEST_API_KEY];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--format", "csv", "SELECT count(*) AS n FROM lending"]);
        Command::new(lendfusion_bin())
            .args(&args)
            .env_remove("LENDFUSION_CONFIG")
            .output()
            .expect("run lendfusion sql")
    };
    let ca_arg = ca.display().to_string();
    let ok = sql(&tls_url, &["--tls-ca", &ca_arg]);
    assert!(
        ok.status.success(),
        "TLS client failed: {}\n{}",
        String::from_utf8_lossy(&ok.stderr),
        cluster.logs()
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("n\n"));
    // Without the CA the server's certificate is not trusted; plain text is not spoken.
    let untrusted = sql(&tls_url, &[]);
    assert!(!untrusted.status.success());
    let plain = sql(&plain_url, &[]);
    assert!(!plain.status.success(), "plain text accepted on a TLS port");

    // pyarrow.flight with the CA as root certificate.
    let script = format!(
        "import pyarrow.flight as f\n\
         c = f.FlightClient('{tls_url}', tls_root_certs=open('{ca_arg}','rb').read())\n\
         o = f.FlightCallOptions(headers=[(b'authorization', b'Bearer {TEST_API_KEY}')])\n\
         names = [a.type for a in c.list_actions(o)]\n\
         assert 'health' in names, names\n\
         try:\n\
         \x20   f.FlightClient('{plain_url}').list_actions(o)\n\
         \x20   raise SystemExit('plain text accepted')\n\
         except f.FlightError:\n\
         \x20   pass\n\
         print('tls ok')\n"
    );
    let path = dir.path().join("tls_check.py");
    std::fs::write(&path, script).expect("script");
    let out = Command::new(crate::support::python::python())
        .arg(&path)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_option_runs_statements_that_write() {
    let (root, _) = small_panel().await;
    let data = root.display().to_string();
    let cluster = ProcessCluster::start_with(&data, 1, &[], &["--allow-writes"]);
    cluster.wait_ready(Duration::from_secs(60)).await;
    cluster
        .query("CREATE VIEW expensive AS SELECT * FROM lending WHERE fee_bps > 500")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let via_view = cluster
        .query("SELECT count(*) AS n FROM expensive")
        .await
        .expect("view");
    let direct = cluster
        .query("SELECT count(*) AS n FROM lending WHERE fee_bps > 500")
        .await
        .expect("direct");
    crate::support::cluster::assert_same_results("view", &direct, &via_view);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_come_from_the_workers_with_signed_tickets() {
    let (root, _) = small_panel().await;
    let data = root.display().to_string();
    let cluster = ProcessCluster::start(
        &data,
        2,
        &[
            ("LENDFUSION_CLUSTER__MIN_WORKERS".into(), "2".into()),
            (
                "LENDFUSION_SERVER__RESULT_ENDPOINTS".into(),
                "workers".into(),
            ),
            (
                "LENDFUSION_CLUSTER__SECRET".into(),
                "test cluster secret".into(),
            ),
        ],
    );
    cluster.wait_ready(Duration::from_secs(60)).await;
    let url = cluster.client_url();
    let output = tokio::task::spawn_blocking(move || {
        run_script("worker_endpoints.py", &[&url, TEST_API_KEY, &data])
    })
    .await;
    match output {
        Ok(out) => eprintln!("{out}"),
        Err(e) => panic!("{e}\n{}", cluster.logs()),
    }
    // The workers count what they served: the pyarrow pull and ADBC's (at least two copies of
    // the lending columns; the coordinator's copy of the same tickets is not theirs).
    let mut served = 0.0;
    for worker in &cluster.workers {
        let (status, text) = http_get(worker.ops_port(), "/metrics").await;
        assert_eq!(status, 200, "{text}");
        served += sample(&text, "lendfusion_rows_returned_total");
    }
    let lending: usize = cluster
        .query("SELECT count(*) FROM lending")
        .await
        .map(|b| {
            b[0].column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map_or(0, |a| a.value(0) as usize)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert!(
        lending > 0 && served >= 2.0 * lending as f64,
        "{served} rows served, {lending} rows"
    );

    // Our own client follows the locations too.
    let batches = cluster
        .query("SELECT count(*) AS n FROM (SELECT DISTINCT security_id FROM lending)")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);

    // Without the shared secret the coordinator refuses to start in this mode.
    let out = Command::new(lendfusion_bin())
        .args([
            "coordinator",
            "--data",
            &root.display().to_string(),
            "--port",
            "0",
        ])
        .env("LENDFUSION_SERVER__RESULT_ENDPOINTS", "workers")
        .env_remove("LENDFUSION_CLUSTER__SECRET")
        .env_remove("LENDFUSION_CONFIG")
        .output()
        .expect("run coordinator");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cluster.secret"),
        "{stderr}"
    );
}
