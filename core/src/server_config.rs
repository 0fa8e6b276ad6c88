//! Settings of the coordinator's client-facing Flight SQL port: auth, TLS and query limits.

use serde::{Deserialize, Serialize};

use crate::error::{LendfusionError, Result};

/// The client port's TLS and per-query limits (`[server]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// PEM certificate chain for TLS on the client port (with `tls_key`; `--tls-cert`).
    pub tls_cert: Option<String>,
    /// PEM private key for TLS on the client port (`--tls-key`).
    pub tls_key: Option<String>,
    /// A query running longer than this is cancelled and fails with `DEADLINE_EXCEEDED`.
    pub query_timeout_seconds: u64,
    /// A query that was running when a worker was lost and has not finished this long after
    /// the loss is cancelled and run again (Ballista 55 can leave such a query waiting
    /// forever); after `stall_retries` such restarts it fails with `UNAVAILABLE`.
    pub stall_timeout_seconds: u64,
    /// Restarts of a query stalled by worker losses before it fails.
    pub stall_retries: u32,
    /// How long a finished result stays available to `DoGet` (its ticket's lifetime).
    pub result_ttl_seconds: u64,
    /// Let clients run statements that write or change the server: `CREATE EXTERNAL TABLE`,
    /// `COPY`, `SET`, DDL, DML. For administrators on a private network only (`--allow-writes`).
    pub allow_writes: bool,
    /// Where clients fetch a cluster result from: `coordinator` (one endpoint, through this
    /// port) or `workers` (one endpoint per result partition, at the worker holding it, with
    /// a ticket the coordinator signs with `cluster.secret`: the bytes take one hop instead
    /// of two). `workers` needs `cluster.secret` on the coordinator and every worker, clients
    /// that can reach the workers' data ports, and no TLS on the client port (workers serve
    /// plain text). Clients that ignore endpoint locations still work: the coordinator
    /// accepts the same tickets.
    pub result_endpoints: ResultEndpoints,
}

/// Where clients fetch a cluster result from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ResultEndpoints {
    /// Through the coordinator's client port.
    #[default]
    Coordinator,
    /// From each worker's data port, with signed tickets.
    Workers,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            tls_cert: None,
            tls_key: None,
            query_timeout_seconds: 3600,
            stall_timeout_seconds: 300,
            stall_retries: 2,
            result_ttl_seconds: 600,
            allow_writes: false,
            result_endpoints: ResultEndpoints::Coordinator,
        }
    }
}

impl ServerSettings {
    /// Both TLS files, one without the other, or neither.
    pub fn tls_files(&self) -> Result<Option<(&str, &str)>> {
        match (self.tls_cert.as_deref(), self.tls_key.as_deref()) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            _ => Err(LendfusionError::Config(
                "TLS needs both server.tls_cert and server.tls_key (--tls-cert and --tls-key)"
                    .into(),
            )),
        }
    }

    /// Limits that make no sense.
    pub fn validate(&self) -> Result<()> {
        if self.query_timeout_seconds == 0
            || self.stall_timeout_seconds == 0
            || self.result_ttl_seconds == 0
        {
            return Err(LendfusionError::Config(
                "server.query_timeout_seconds, server.stall_timeout_seconds and \
                 server.result_ttl_seconds must be at least 1"
                    .into(),
            ));
        }
        self.tls_files().map(|_| ())
    }
}

/// A user who can log in with the Flight handshake (basic auth).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// Argon2 password hash in PHC form (`$argon2id$v=19$...`), as printed by
    /// `lendfusion hash-password`.
    pub password_hash: String,
}

/// Who may call the client port (`[auth]`, `[[auth.users]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Serve without authentication. Only by this explicit choice (`--no-auth`); the server
    /// logs a warning.
    pub disabled: bool,
    /// File of API keys, one per line (blank lines and `#` comments ignored), sent by clients
    /// as `authorization: Bearer <key>` (`--api-keys`).
    pub api_keys_file: Option<String>,
    /// Lifetime of a token issued by the handshake.
    pub token_ttl_seconds: u64,
    /// Users who log in with the handshake and get a bearer token.
    pub users: Vec<UserEntry>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            disabled: false,
            api_keys_file: None,
            token_ttl_seconds: 3600,
            users: vec![],
        }
    }
}

impl AuthSettings {
    /// Auth on with no way to log in is a configuration error, not an open door.
    pub fn validate(&self) -> Result<()> {
        if self.token_ttl_seconds == 0 {
            return Err(LendfusionError::Config(
                "auth.token_ttl_seconds must be at least 1".into(),
            ));
        }
        if !self.disabled && self.api_keys_file.is_none() && self.users.is_empty() {
            return Err(LendfusionError::Config(
                "the client port needs credentials: pass --api-keys FILE or configure \
                 [[auth.users]] (see `lendfusion hash-password`), or serve without auth \
                 explicitly with --no-auth"
                    .into(),
            ));
        }
        Ok(())
    }
}
