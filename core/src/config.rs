//! Configuration: a TOML file, overridden by environment variables, overridden by flags.
//!
//! Precedence, lowest first:
//! 1. built-in defaults;
//! 2. the TOML file (`--config F`);
//! 3. the AWS SDK environment variables for S3 (`AWS_ENDPOINT_URL`, `AWS_REGION`, ...);
//! 4. `LENDFUSION_*` environment variables: the key path upper-cased, sections joined by a
//!    double underscore (`LENDFUSION_DATA`, `LENDFUSION_S3__ENDPOINT`,
//!    `LENDFUSION_EXECUTION__TARGET_PARTITIONS`);
//! 5. command-line flags, applied by the binary on the returned struct.
//!
//! Unknown keys in the file are an error (a typo must not silently fall back to a default).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{LendfusionError, Result};
pub use crate::ops::OpsSettings;
pub use crate::server_config::{AuthSettings, ServerSettings, UserEntry};

/// Prefix of every lendfusion environment variable.
pub const ENV_PREFIX: &str = "LENDFUSION_";

/// How a table's Parquet files are laid out below `<root>/<table>/`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `month=YYYY-MM/*.parquet` (the SPEC layout, written by `lendfusion generate`).
    #[default]
    Month,
    /// `day=YYYY-MM-DD/*.parquet`: one folder per date.
    Day,
    /// Plain folder of Parquet files (any nesting); pruning by row-group statistics only.
    Flat,
}

impl Layout {
    /// Name of the Hive-style partition key, if the layout has one.
    pub fn partition_key(self) -> Option<&'static str> {
        match self {
            Layout::Month => Some("month"),
            Layout::Day => Some("day"),
            Layout::Flat => None,
        }
    }
}

/// S3-compatible object store settings. Every field is optional: unset fields fall back to what
/// the AWS SDKs would use (instance credentials, `~`-less defaults of `object_store`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint URL, e.g. `http://127.0.0.1:3900` for a local S3-compatible server.
    pub endpoint: Option<String>,
    /// Region name (`us-east-1` when unset).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials.
    pub session_token: Option<String>,
    /// Allow plain HTTP. Implied when `endpoint` starts with `http://`.
    pub allow_http: Option<bool>,
    /// Use virtual-hosted-style requests (`bucket.host`). Default: path style, which every
    /// S3-compatible server understands.
    pub virtual_hosted_style: Option<bool>,
}

impl S3Settings {
    /// Whether plain HTTP is allowed: explicitly, or because the endpoint is `http://`.
    pub fn http_allowed(&self) -> bool {
        self.allow_http.unwrap_or_else(|| {
            self.endpoint
                .as_deref()
                .is_some_and(|e| e.trim_start().to_ascii_lowercase().starts_with("http://"))
        })
    }
}

/// Query execution settings shared by every role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutionSettings {
    /// Partitions a query is split into. 0: four per core for embedded queries (window
    /// operators buffer a partition each: smaller buffers, better balanced cores), one per core
    /// of the coordinator on a cluster (where every partition is a task).
    pub target_partitions: usize,
    /// Rows per record batch. Twice DataFusion's 8,192: a factor panel's sorts merge half as
    /// many runs and every operator pays its per-batch cost half as often (the benchmark job
    /// runs ~10 % faster; larger batches gained nothing more).
    pub batch_size: usize,
}

impl Default for ExecutionSettings {
    fn default() -> Self {
        Self {
            target_partitions: 0,
            batch_size: 16_384,
        }
    }
}

/// Cluster settings: the coordinator's scheduler and the workers' executors.
///
/// Defaults suit production (a lost worker is noticed within a minute, a cluster with no
/// workers fails its queries after a minute); tests shorten every interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// Address workers use to reach the coordinator's scheduler port, and clients the
    /// coordinator, when it is not given on the command line (`host:port`).
    pub coordinator: Option<String>,
    /// Host name or address the coordinator and workers bind to (`--bind-host`; `0.0.0.0` for
    /// every interface, as in containers).
    pub bind_host: String,
    /// Host name or address other nodes use to reach this one (default: `bind_host`, or
    /// `localhost` when binding to every interface; `--external-host`).
    pub external_host: Option<String>,
    /// Client-facing port of the coordinator: Flight SQL and lendfusion's Flight commands
    /// (`coordinator --port`).
    pub port: u16,
    /// The coordinator's internal scheduler port, used by workers (`--scheduler-port`); keep it
    /// on the cluster's private network.
    pub scheduler_port: u16,
    /// A worker's data port (Arrow Flight: shuffle and result partitions; `worker --port`); 0
    /// picks a free port.
    pub worker_port: u16,
    /// A worker's task port (the scheduler pushes tasks to it; `worker --task-port`); 0 picks
    /// a free port.
    pub worker_task_port: u16,
    /// Task slots per worker (0 = one per core; `worker --slots`).
    pub worker_slots: usize,
    /// Memory a worker's queries may use, in MiB (0 = 70 % of the machine's memory), as
    /// DataFusion accounts it: sorts and aggregations spill to disk beyond it, other accounted
    /// operators fail with a resources-exhausted error instead of the process being killed.
    /// Window operators do not account their buffered partition. (`worker --memory-mb`)
    pub worker_memory_mb: u64,
    /// Folder for a worker's shuffle files and spills (default: a temporary folder, removed
    /// when the worker stops on SIGTERM or Ctrl-C, left behind by a killed one;
    /// `worker --work-dir`).
    pub work_dir: Option<String>,
    /// How often a worker tells the coordinator it is alive.
    pub heartbeat_interval_seconds: u64,
    /// A worker silent for this long is declared lost: its running tasks and the shuffle
    /// outputs it held are recomputed on the others.
    pub worker_timeout_seconds: u64,
    /// How often the coordinator looks for lost workers.
    pub worker_check_interval_seconds: u64,
    /// With no worker left, running queries fail after this long unless one (re)joins.
    pub no_workers_grace_seconds: u64,
    /// Attempts of one task before its query fails.
    pub task_max_failures: usize,
    /// Attempts of one stage (after lost shuffle data) before its query fails.
    pub stage_max_failures: usize,
    /// Seconds after a query finishes before its shuffle files are deleted on the workers.
    pub finished_job_cleanup_seconds: u64,
    /// Live workers the coordinator needs before it reports ready (`/readyz`).
    pub min_workers: usize,
    /// Ballista's adaptive planner (joins and partition counts chosen from runtime
    /// statistics). Off by default: with it, Ballista 55 can leave a query waiting forever
    /// after a worker is lost mid-stage; the static planner re-runs the lost work.
    pub adaptive_planning: bool,
    /// How shuffle and result files are compressed on the workers. `none` spends no CPU on
    /// compression and moves more bytes: right for fast networks and few cores; `lz4` or
    /// `zstd` for slow links between workers.
    pub shuffle_compression: ShuffleCompression,
    /// A secret the coordinator and all its workers share (any string; give it by
    /// `LENDFUSION_CLUSTER__SECRET` rather than in a file): result tickets for
    /// `server.result_endpoints = "workers"` are signed with it. Without it, workers serve no
    /// client.
    pub secret: Option<String>,
}

/// The codec of the Arrow IPC files workers write between stages and for results.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ShuffleCompression {
    /// Uncompressed.
    #[default]
    None,
    /// LZ4 frames: fast, about half the bytes on typical panels.
    Lz4,
    /// Zstandard: fewer bytes, more CPU.
    Zstd,
}

impl ShuffleCompression {
    /// The value of Ballista's `ballista.shuffle.compression.codec`.
    pub fn ballista_codec(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            coordinator: None,
            bind_host: "127.0.0.1".into(),
            external_host: None,
            port: 50050,
            scheduler_port: 50051,
            worker_port: 0,
            worker_task_port: 0,
            worker_slots: 0,
            worker_memory_mb: 0,
            work_dir: None,
            heartbeat_interval_seconds: 15,
            worker_timeout_seconds: 60,
            worker_check_interval_seconds: 5,
            no_workers_grace_seconds: 60,
            task_max_failures: 4,
            stage_max_failures: 4,
            finished_job_cleanup_seconds: 300,
            min_workers: 1,
            adaptive_planning: false,
            shuffle_compression: ShuffleCompression::None,
            secret: None,
        }
    }
}

impl ClusterSettings {
    /// The host other nodes use to reach this one.
    pub fn advertised_host(&self) -> String {
        match &self.external_host {
            Some(host) if !host.trim().is_empty() => host.trim().to_string(),
            _ if self.bind_host == "0.0.0.0" || self.bind_host == "::" => "localhost".into(),
            _ => self.bind_host.clone(),
        }
    }

    /// Intervals that contradict each other, as an error a person can act on.
    pub fn validate(&self) -> Result<()> {
        if self.heartbeat_interval_seconds == 0 {
            return Err(LendfusionError::Config(
                "cluster.heartbeat_interval_seconds must be at least 1".into(),
            ));
        }
        if self.worker_timeout_seconds <= self.heartbeat_interval_seconds {
            return Err(LendfusionError::Config(format!(
                "cluster.worker_timeout_seconds ({}) must exceed cluster.heartbeat_interval_seconds ({}), \
                 or live workers are declared lost between heartbeats",
                self.worker_timeout_seconds, self.heartbeat_interval_seconds
            )));
        }
        if self.worker_check_interval_seconds == 0 || self.task_max_failures == 0 {
            return Err(LendfusionError::Config(
                "cluster.worker_check_interval_seconds and cluster.task_max_failures must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The whole lendfusion configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LendfusionConfig {
    /// Dataset root: `file:///path`, `s3://bucket/prefix` or a plain path.
    pub data: Option<String>,
    /// File layout below each table folder.
    pub layout: Layout,
    /// S3 settings.
    pub s3: S3Settings,
    /// Execution settings.
    pub execution: ExecutionSettings,
    /// Cluster settings (coordinator and workers).
    pub cluster: ClusterSettings,
    /// The coordinator's client port: TLS and query limits.
    pub server: ServerSettings,
    /// Who may call the client port.
    pub auth: AuthSettings,
    /// Operations endpoint, logs and shutdown.
    pub ops: OpsSettings,
}

/// Top-level keys of [`LendfusionConfig`]: the `LENDFUSION_*` variables that configure.
pub const TOP_LEVEL_KEYS: [&str; 8] = [
    "data",
    "layout",
    "s3",
    "execution",
    "cluster",
    "server",
    "auth",
    "ops",
];

/// AWS SDK environment variables and the `s3.*` key each one sets, in priority order
/// (a variable earlier in the list wins over a later one for the same key).
const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ENDPOINT_URL_S3", "endpoint"),
    ("AWS_ENDPOINT_URL", "endpoint"),
    ("AWS_ENDPOINT", "endpoint"),
    ("AWS_REGION", "region"),
    ("AWS_DEFAULT_REGION", "region"),
    ("AWS_ACCESS_KEY_ID", "access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    ("AWS_SESSION_TOKEN", "session_token"),
    ("AWS_ALLOW_HTTP", "allow_http"),
    ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "virtual_hosted_style"),
];

impl LendfusionConfig {
    /// Load from an optional TOML file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                LendfusionError::Config(format!("cannot read config file {}: {e}", path.display()))
            })?,
            None => String::new(),
        };
        let origin = file.map_or_else(|| "<defaults>".to_string(), |p| p.display().to_string());
        Self::from_toml_and_env(&text, &origin, std::env::vars())
    }

    /// Parse TOML text, then apply the given environment (for tests and embedding).
    pub fn from_toml_and_env(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e| LendfusionError::Config(format!("invalid TOML in {origin}: {e}")))?;
        let env: Vec<(String, String)> = env.into_iter().collect();

        // AWS variables: the first one present for a key wins.
        let mut aws_set = std::collections::HashSet::new();
        for (var, key) in AWS_ENV {
            if aws_set.contains(key) {
                continue;
            }
            if let Some((_, value)) = env.iter().find(|(k, _)| k == var) {
                let value = if matches!(*key, "allow_http" | "virtual_hosted_style") {
                    toml::Value::Boolean(parse_bool(var, value)?)
                } else {
                    toml::Value::String(value.clone())
                };
                set_path(&mut table, &["s3", key], value, var)?;
                aws_set.insert(*key);
            }
        }

        // LENDFUSION_* variables for configuration keys, sorted for a deterministic outcome.
        // Other LENDFUSION_* variables (LENDFUSION_CONFIG, LENDFUSION_LOG, tools') are not keys.
        let mut ours: Vec<&(String, String)> = env
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(ENV_PREFIX).is_some_and(|rest| {
                    let top = rest
                        .split("__")
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    TOP_LEVEL_KEYS.contains(&top.as_str())
                })
            })
            .collect();
        ours.sort();
        for (var, value) in ours {
            let path: Vec<String> = var[ENV_PREFIX.len()..]
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            if path.iter().any(String::is_empty) {
                return Err(LendfusionError::Config(format!(
                    "environment variable {var}: empty key segment"
                )));
            }
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            set_path(&mut table, &path, env_value(value), var)?;
        }

        toml::Value::Table(table).try_into().map_err(|e| {
            LendfusionError::Config(format!(
                "invalid configuration ({origin} + environment): {e}"
            ))
        })
    }

    /// The dataset root or a clear error.
    pub fn data_root(&self) -> Result<&str> {
        self.data.as_deref().ok_or_else(|| {
            LendfusionError::Config(
                "no dataset root: pass --data URL, set LENDFUSION_DATA or `data` in the config file"
                    .into(),
            )
        })
    }
}

fn parse_bool(var: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(LendfusionError::Config(format!(
            "environment variable {var}: expected true or false, got {other:?}"
        ))),
    }
}

/// Environment values are typed like TOML scalars where they parse as one (`8`, `true`),
/// otherwise they are strings.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    toml::Value::String(raw.to_string())
}

fn set_path(
    table: &mut toml::Table,
    path: &[&str],
    value: toml::Value,
    source: &str,
) -> Result<()> {
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| LendfusionError::Config(format!("{source}: empty key")))?;
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| {
            LendfusionError::Config(format!("{source}: `{part}` is not a section"))
        })?;
    }
    current.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn precedence_file_then_aws_then_lendfusion() {
        let text = "data = \"/from/file\"\n[s3]\nendpoint = \"http://file:1\"\nregion = \"file\"\n";
        let cfg = LendfusionConfig::from_toml_and_env(
            text,
            "t",
            env(&[
                ("AWS_ENDPOINT_URL", "http://aws:2"),
                ("AWS_DEFAULT_REGION", "aws-default"),
                ("AWS_REGION", "aws"),
                ("LENDFUSION_S3__REGION", "ours"),
                ("LENDFUSION_EXECUTION__TARGET_PARTITIONS", "3"),
            ]),
        )
        .expect("config");
        assert_eq!(cfg.data.as_deref(), Some("/from/file"));
        assert_eq!(cfg.s3.endpoint.as_deref(), Some("http://aws:2"));
        assert_eq!(cfg.s3.region.as_deref(), Some("ours"));
        assert_eq!(cfg.execution.target_partitions, 3);
        assert!(cfg.s3.http_allowed());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = LendfusionConfig::from_toml_and_env("[s3]\nendpont = \"x\"\n", "t", env(&[]))
            .expect_err("typo must fail");
        assert!(err.to_string().contains("endpont"), "{err}");
        let err =
            LendfusionConfig::from_toml_and_env("", "t", env(&[("LENDFUSION_S3__ENDPONT", "x")]))
                .expect_err("typo in env must fail");
        assert!(err.to_string().contains("endpont"), "{err}");
        // Variables that are not configuration keys are left alone.
        LendfusionConfig::from_toml_and_env(
            "",
            "t",
            env(&[("LENDFUSION_LOG", "debug"), ("LENDFUSION_GARAGE_BIN", "x")]),
        )
        .expect("non-key variables are ignored");
    }

    #[test]
    fn top_level_keys_match_the_struct() {
        let value = toml::Value::try_from(LendfusionConfig {
            data: Some("x".into()),
            ..Default::default()
        })
        .expect("serialise");
        let mut keys: Vec<&str> = value
            .as_table()
            .expect("table")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        let mut expected = TOP_LEVEL_KEYS.to_vec();
        expected.sort();
        assert_eq!(keys, expected);
    }

    #[test]
    fn example_config_in_deploy_loads() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("deploy/config") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).expect("read");
                let cfg = LendfusionConfig::from_toml_and_env(
                    &text,
                    &path.display().to_string(),
                    env(&[]),
                )
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(cfg.data.is_some(), "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 1, "no example configs in {}", dir.display());
    }

    #[test]
    fn layout_and_bools() {
        let cfg = LendfusionConfig::from_toml_and_env(
            "layout = \"day\"",
            "t",
            env(&[
                ("AWS_ALLOW_HTTP", "false"),
                ("AWS_ENDPOINT_URL", "http://x"),
            ]),
        )
        .expect("config");
        assert_eq!(cfg.layout, Layout::Day);
        assert!(!cfg.s3.http_allowed());
        assert!(
            LendfusionConfig::from_toml_and_env("", "t", env(&[("AWS_ALLOW_HTTP", "maybe")]))
                .is_err()
        );
    }
}
