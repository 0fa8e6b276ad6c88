//! A real S3-compatible server for the tests: Garage, started as a single node on loopback.
//!
//! The binary is found in `$LENDFUSION_GARAGE_BIN`, on `PATH`, or where `scripts/install-garage.sh`
//! puts it (`~/.cache/lendfusion-tools/garage/bin/garage`). The server, its key and its bucket
//! live in a temporary directory and are killed when the fixture is dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key the fixture imports (Garage key ids are `GK` + 24 hex digits).
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
/// Its secret (64 hex digits).
pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The bucket the fixture creates.
pub const BUCKET: &str = "lendfusion-test";
/// The region the server answers for.
pub const REGION: &str = "garage";

/// A running Garage node.
#[derive(Debug)]
pub struct Garage {
    child: Child,
    _dir: tempfile::TempDir,
    config: PathBuf,
    binary: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Locate the garage binary or fail with the command that installs it.
pub fn garage_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LENDFUSION_GARAGE_BIN") {
        return PathBuf::from(path);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("garage");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let cached = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/lendfusion-tools/garage/bin/garage"));
    match cached {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "the S3 tests need a Garage server binary: run `scripts/install-garage.sh` \
             (or `make test`, which does) or set LENDFUSION_GARAGE_BIN"
        ),
    }
}

impl Garage {
    /// Start a node, lay it out, import the key and create the bucket.
    pub fn start() -> Self {
        let binary = garage_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let (s3_port, rpc_port, admin_port) = (free_port(), free_port(), free_port());
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
                secret = "ab".repeat(32),
            ),
        )
        .expect("write garage config");
        let log = std::fs::File::create(dir.path().join("garage.log")).expect("log");
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let garage = Self {
            child,
            _dir: dir,
            config,
            binary,
            endpoint: format!("http://127.0.0.1:{s3_port}"),
        };
        garage.wait_ready();
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().expect("node id").to_string();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&[
            "key",
            "import",
            "--yes",
            "-n",
            "lendfusion-test",
            KEY_ID,
            SECRET,
        ]);
        garage.cli(&["bucket", "create", BUCKET]);
        garage.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID,
        ]);
        garage
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = Command::new(&self.binary)
                .arg("-c")
                .arg(&self.config)
                .arg("status")
                .output()
                .expect("garage status");
            if status.status.success() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "garage did not come up: {}\n{}",
                    String::from_utf8_lossy(&status.stderr),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("garage.log")).unwrap_or_default()
    }

    /// Run a `garage` admin command against the node; panics with its output on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("garage cli");
        assert!(
            output.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
