//! The options that point a command at a coordinator's Flight SQL port.

use std::path::PathBuf;

use clap::Args;
use lendfusion_coordinator::client::{ClientOptions, FlightSqlConnection};

/// `--coordinator`, `--token`, `--tls-ca`.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Run through a coordinator's Flight SQL port: grpc://HOST:PORT, or grpc+tls://HOST:PORT.
    #[arg(long, conflicts_with = "data")]
    pub coordinator: Option<String>,
    /// Bearer token for --coordinator (an API key or a handshake token).
    #[arg(long, env = "LENDFUSION_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate that signed the coordinator's TLS certificate.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
}

impl RemoteArgs {
    /// A connection when `--coordinator` is given (logging in as `user` if given).
    pub async fn connect(
        &self,
        user: Option<(String, String)>,
    ) -> Result<Option<FlightSqlConnection>, Box<dyn std::error::Error + Send + Sync>> {
        let Some(url) = &self.coordinator else {
            return Ok(None);
        };
        let tls_ca =
            match &self.tls_ca {
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    format!("cannot read the CA certificate {}: {e}", path.display())
                })?),
                None => None,
            };
        let options = ClientOptions {
            url: url.clone(),
            token: self.token.clone(),
            user,
            tls_ca,
        };
        Ok(Some(FlightSqlConnection::connect(&options).await?))
    }
}
