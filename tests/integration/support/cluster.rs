//! Cluster fixtures: `lendfusion coordinator` and `lendfusion worker` as real processes on
//! loopback, and result comparison to 1e-12.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use lendfusion_coordinator::client::{ClientOptions, FlightSqlConnection};

/// Test intervals: a worker heartbeats every second and is lost after four silent seconds; a
/// query still running 20 s after a worker loss is restarted by the coordinator.
pub const TEST_CLUSTER_ENV: [(&str, &str); 6] = [
    ("LENDFUSION_CLUSTER__HEARTBEAT_INTERVAL_SECONDS", "1"),
    ("LENDFUSION_CLUSTER__WORKER_TIMEOUT_SECONDS", "4"),
    ("LENDFUSION_CLUSTER__WORKER_CHECK_INTERVAL_SECONDS", "1"),
    ("LENDFUSION_CLUSTER__NO_WORKERS_GRACE_SECONDS", "6"),
    ("LENDFUSION_CLUSTER__WORKER_SLOTS", "2"),
    ("LENDFUSION_SERVER__STALL_TIMEOUT_SECONDS", "20"),
];

/// Configuration variables for a test cluster, as `(name, value)` pairs.
pub fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The API key every test cluster accepts on its client port.
pub const TEST_API_KEY: &str = "test-key-0123456789abcdef";

/// The `lendfusion` binary next to this test binary (`cargo test --workspace` builds it).
pub fn lendfusion_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> folder");
    let bin = dir.join(format!("lendfusion{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p lendfusion` (make test does)",
        bin.display()
    );
    bin
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process that is killed when dropped; its output goes to a log file.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pub log: PathBuf,
    /// Its operations endpoint's port when fixed in advance (0: a free port it logs).
    ops_port: u16,
}

impl Process {
    /// Its operations endpoint's port (`/healthz`, `/readyz`, `/metrics`): the fixed one, or
    /// the free one it logged at start (waited for up to a minute).
    pub fn ops_port(&self) -> u16 {
        if self.ops_port != 0 {
            return self.ops_port;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let logged = self.log_text().lines().find_map(|line| {
                let rest = line.split("operations endpoint").nth(1)?;
                let digits: String = rest
                    .split("127.0.0.1:")
                    .nth(1)?
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            });
            if let Some(port) = logged {
                return port;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no operations endpoint in {}:\n{}",
                self.log.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ask the process to stop, as an orchestrator does (SIGTERM).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Wait up to `timeout` for the process to exit; its exit status, if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Separate coordinator and worker processes on loopback.
#[derive(Debug)]
pub struct ProcessCluster {
    pub coordinator: Process,
    pub workers: Vec<Process>,
    pub scheduler_port: u16,
    /// The coordinator's Flight SQL port.
    pub client_port: u16,
    env: Vec<(String, String)>,
    args: Vec<String>,
    ops_port: u16,
    logs: tempfile::TempDir,
    spawned: usize,
}

impl ProcessCluster {
    /// Start a coordinator on `data` and `workers` workers; `env_overrides` adds to (and
    /// overrides) the test intervals: S3 credentials, memory limits.
    pub fn start(data: &str, workers: usize, env_overrides: &[(String, String)]) -> Self {
        Self::start_with(data, workers, env_overrides, &[])
    }

    /// [`Self::start`] with extra coordinator flags (TLS, users in a config file).
    pub fn start_with(
        data: &str,
        workers: usize,
        env_overrides: &[(String, String)],
        coordinator_args: &[&str],
    ) -> Self {
        let logs = tempfile::tempdir().expect("log dir");
        let scheduler_port = free_port();
        let client_port = free_port();
        let keys = logs.path().join("api-keys");
        std::fs::write(&keys, format!("# test clients\n{TEST_API_KEY}\n")).expect("keys file");
        let mut args: Vec<String> = vec![
            "--port".into(),
            client_port.to_string(),
            "--api-keys".into(),
            keys.display().to_string(),
        ];
        args.extend(coordinator_args.iter().map(|a| a.to_string()));
        // The test intervals first, so that `env` can override them.
        let mut env: Vec<(String, String)> = TEST_CLUSTER_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend_from_slice(env_overrides);
        // The coordinator's operations port; workers ask it whether they are registered.
        let ops_port = free_port();
        env.push(("LENDFUSION_OPS__HTTP_PORT".into(), ops_port.to_string()));
        let mut coordinator = spawn_coordinator(
            &env,
            &logs.path().join("coordinator.log"),
            data,
            scheduler_port,
            &args,
            ops_port,
        );
        // Workers pick free ports themselves: they could take a port chosen here for the
        // coordinator that it has not bound yet. Start them once it listens on all three.
        wait_listening(
            &mut coordinator,
            &[scheduler_port, client_port, ops_port],
            Duration::from_secs(60),
        );
        let mut cluster = Self {
            coordinator,
            workers: vec![],
            scheduler_port,
            client_port,
            env,
            args,
            ops_port,
            logs,
            spawned: 0,
        };
        for _ in 0..workers {
            cluster.add_worker();
        }
        cluster
    }

    /// Replace the coordinator by a new process on the same port (the old one is killed).
    pub fn restart_coordinator(&mut self, data: &str) {
        self.coordinator.kill();
        self.spawned += 1;
        let log = self
            .logs
            .path()
            .join(format!("coordinator-{}.log", self.spawned));
        self.coordinator = spawn_coordinator(
            &self.env,
            &log,
            data,
            self.scheduler_port,
            &self.args,
            self.ops_port,
        );
    }

    /// Start one more worker process.
    pub fn add_worker(&mut self) {
        self.spawned += 1;
        let log = self
            .logs
            .path()
            .join(format!("worker-{}.log", self.spawned));
        let coordinator = format!("127.0.0.1:{}", self.scheduler_port);
        // Its work folder inside the cluster's temporary folder: the SIGKILL that stops a
        // test's worker leaves no shuffle files behind.
        let work_dir = self
            .logs
            .path()
            .join(format!("worker-{}-work", self.spawned));
        let work_dir = work_dir.display().to_string();
        // A free port the worker picks itself (and logs): no race for a port chosen here.
        let args = [
            "worker",
            "--coordinator",
            &coordinator,
            "--ops-port",
            "0",
            "--work-dir",
            &work_dir,
        ];
        self.workers.push(spawn(&self.env, &log, &args, 0));
    }

    /// Wait up to `timeout` until the coordinator has its minimum of live workers; on a
    /// timeout the test fails with every process's log (why a worker did not join).
    pub async fn wait_ready(&self, timeout: Duration) {
        if let Err(e) = lendfusion_core::cluster::wait_until_ready(&self.url(), timeout).await {
            panic!("cluster not ready: {e}\n{}", self.logs());
        }
    }

    /// The scheduler URL (workers, and Ballista clients in tests).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.scheduler_port)
    }

    /// The Flight SQL URL clients use.
    pub fn client_url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.client_port)
    }

    /// A Flight SQL connection to the client port with the test API key.
    pub async fn flight(&self) -> FlightSqlConnection {
        let options = ClientOptions {
            url: self.client_url(),
            token: Some(TEST_API_KEY.to_string()),
            ..Default::default()
        };
        FlightSqlConnection::connect(&options)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.logs()))
    }

    /// Run `query` through the client port and collect the result.
    pub async fn query(&self, query: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
        use futures::TryStreamExt;
        self.flight().await.query(query).await?.try_collect().await
    }

    /// The coordinator's process id (to measure its memory).
    pub fn coordinator_pid(&self) -> u32 {
        self.coordinator.child.id()
    }

    /// The workers' process ids.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.child.id()).collect()
    }

    /// Every log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!("--- coordinator\n{}", self.coordinator.log_text());
        for (i, w) in self.workers.iter().enumerate() {
            out.push_str(&format!("\n--- worker {i}\n{}", w.log_text()));
        }
        out
    }
}

/// Wait up to `timeout` until something accepts connections on every one of `ports`, or
/// `process` has exited (the test then fails on its log).
fn wait_listening(process: &mut Process, ports: &[u16], timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    for port in ports {
        while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
            if !process.is_running() || std::time::Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn spawn_coordinator(
    env: &[(String, String)],
    log: &Path,
    data: &str,
    port: u16,
    extra: &[String],
    ops_port: u16,
) -> Process {
    let port = port.to_string();
    let mut args = vec!["coordinator", "--data", data, "--scheduler-port", &port];
    args.extend(extra.iter().map(String::as_str));
    spawn(env, log, &args, ops_port)
}

/// Start `lendfusion ARGS` with `env`, its output into `log`; `ops_port` is where its
/// operations endpoint listens (as its configuration says).
fn spawn(env: &[(String, String)], log: &Path, args: &[&str], ops_port: u16) -> Process {
    let file = std::fs::File::create(log).expect("log file");
    let err = file.try_clone().expect("log file");
    let mut command = Command::new(lendfusion_bin());
    command
        .args(args)
        .env_remove("LENDFUSION_CONFIG")
        .env_remove("LENDFUSION_DATA")
        .env("LENDFUSION_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err);
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().expect("spawn lendfusion");
    Process {
        child,
        log: log.to_path_buf(),
        ops_port,
    }
}

/// `GET http://127.0.0.1:{port}{path}`: the status code and the body (`(0, "")` when nothing
/// answers).
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    (status, body)
}

/// The value of the sample `name` (exact name, no labels) in Prometheus text.
pub fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (metric, value) = line.split_once(' ')?;
            (metric == name).then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

/// One cell as text, or as a float for numeric columns.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Float(f64),
    Text(String),
    List(Vec<Cell>),
}

fn cells(array: &ArrayRef, row: usize) -> Cell {
    if array.is_null(row) {
        return Cell::Null;
    }
    match array.data_type() {
        DataType::Float64 => Cell::Float(
            array
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(row),
        ),
        DataType::List(_) => {
            let inner = array.as_list::<i32>().value(row);
            Cell::List((0..inner.len()).map(|i| cells(&inner, i)).collect())
        }
        _ => {
            let formatter =
                ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()).expect("fmt");
            Cell::Text(formatter.value(row).to_string())
        }
    }
}

fn rows(batches: &[RecordBatch]) -> Vec<Vec<Cell>> {
    let mut out = vec![];
    for batch in batches {
        for row in 0..batch.num_rows() {
            out.push(batch.columns().iter().map(|c| cells(c, row)).collect());
        }
    }
    out
}

fn close(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Null, Cell::Null) => true,
        // Data has NaN cells (gaps): NaN equals NaN here.
        (Cell::Float(x), Cell::Float(y)) => {
            x == y
                || (x.is_nan() && y.is_nan())
                || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0)
        }
        (Cell::Text(x), Cell::Text(y)) => x == y,
        (Cell::List(x), Cell::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| close(a, b))
        }
        _ => false,
    }
}

/// Assert two results are the same rows in the same order, floats equal to 1e-12 (relative
/// for large values): summation order differs between one process and many.
pub fn assert_same_results(what: &str, expected: &[RecordBatch], actual: &[RecordBatch]) {
    let (e, a) = (rows(expected), rows(actual));
    assert_eq!(e.len(), a.len(), "{what}: row counts differ");
    assert!(!e.is_empty(), "{what}: no rows to compare");
    if let (Some(x), Some(y)) = (expected.first(), actual.first()) {
        let names = |b: &RecordBatch| -> Vec<String> {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        };
        assert_eq!(names(x), names(y), "{what}: columns differ");
    }
    for (i, (x, y)) in e.iter().zip(&a).enumerate() {
        assert_eq!(x.len(), y.len(), "{what}: row {i} width");
        for (j, (p, q)) in x.iter().zip(y).enumerate() {
            assert!(close(p, q), "{what}: row {i} column {j}: {p:?} != {q:?}");
        }
    }
}
