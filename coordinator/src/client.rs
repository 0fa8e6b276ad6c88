//! A Flight SQL client for the coordinator's client port (used by `lendfusion sql
//! --coordinator` and the tests): connect with a token or a user's password, run a
//! statement, stream its batches.

use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow_flight::FlightEndpoint;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use lendfusion_core::LendfusionError;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// How to reach and log in to a coordinator.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// `grpc://HOST:PORT`, `grpc+tls://HOST:PORT`, `http(s)://…` or `HOST:PORT`.
    pub url: String,
    /// Bearer token (an API key or a handshake token).
    pub token: Option<String>,
    /// User and password for the handshake (instead of a token).
    pub user: Option<(String, String)>,
    /// PEM CA certificate to trust for TLS (default: none, so TLS needs it).
    pub tls_ca: Option<Vec<u8>>,
}

/// A connection to a coordinator's Flight SQL port.
#[derive(Debug, Clone)]
pub struct FlightSqlConnection {
    client: FlightSqlServiceClient<Channel>,
}

fn client_error(e: impl std::fmt::Display) -> LendfusionError {
    LendfusionError::Cluster(e.to_string())
}

/// A Flight error as the engine error the CLI prints: the gRPC code and the server's message.
pub fn flight_error(e: FlightError) -> DataFusionError {
    match e {
        FlightError::Tonic(status) => {
            let message = status.message().to_string();
            let lower = message.to_ascii_lowercase();
            let transport = [
                "transport error",
                "connection",
                "h2 protocol",
                "broken pipe",
            ]
            .iter()
            .any(|w| lower.contains(w));
            let message = if transport {
                format!("lost the connection to the coordinator: {message}")
            } else {
                message
            };
            DataFusionError::External(Box::new(RemoteError {
                code: status.code(),
                message,
            }))
        }
        other => DataFusionError::External(Box::new(other)),
    }
}

/// An error reported by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// The gRPC status code.
    pub code: tonic::Code,
    /// The server's message.
    pub message: String,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.code)
    }
}

impl std::error::Error for RemoteError {}

impl FlightSqlConnection {
    /// Connect (and log in when given a user).
    pub async fn connect(options: &ClientOptions) -> Result<Self, LendfusionError> {
        let (tls, rest) = match options.url.split_once("://") {
            Some(("grpc" | "http", rest)) => (false, rest),
            Some(("grpc+tls" | "https", rest)) => (true, rest),
            Some((scheme, _)) => {
                return Err(LendfusionError::Config(format!(
                    "unsupported scheme {scheme}:// in {}: use grpc:// or grpc+tls://",
                    options.url
                )));
            }
            None => (options.tls_ca.is_some(), options.url.as_str()),
        };
        let rest = rest.trim_end_matches('/');
        let scheme = if tls { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{rest}"))
            .map_err(|e| LendfusionError::Config(format!("bad address {}: {e}", options.url)))?
            .connect_timeout(Duration::from_secs(10))
            // A peer that accepts the connection but never speaks HTTP/2 (a TLS port reached in
            // plain text) would otherwise leave the first call waiting forever: unanswered
            // pings end the connection with an error.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .initial_connection_window_size(RESULT_CONNECTION_WINDOW)
            .initial_stream_window_size(RESULT_STREAM_WINDOW)
            .max_frame_size(RESULT_FRAME_SIZE)
            .tcp_nodelay(true);
        if tls {
            let mut config = ClientTlsConfig::new();
            if let Some(ca) = &options.tls_ca {
                config = config.ca_certificate(Certificate::from_pem(ca));
            }
            let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
            config = config.domain_name(host.trim_matches(['[', ']']));
            endpoint = endpoint.tls_config(config).map_err(client_error)?;
        }
        let channel = endpoint.connect().await.map_err(|e| {
            LendfusionError::Cluster(format!(
                "cannot connect to the coordinator at {}: {e}",
                options.url
            ))
        })?;
        let mut client = FlightSqlServiceClient::new(channel);
        if let Some(token) = &options.token {
            client.set_token(token.clone());
        }
        if let Some((user, password)) = &options.user {
            client.handshake(user, password).await.map_err(|e| {
                LendfusionError::Cluster(format!("login failed: {}", flight_error(e)))
            })?;
        }
        Ok(Self { client })
    }

    /// Run `sql` and stream its result.
    pub async fn query(&self, sql: &str) -> Result<SendableRecordBatchStream, DataFusionError> {
        let mut client = self.client.clone();
        let info = client
            .execute(sql.to_string(), None)
            .await
            .map_err(flight_error)?;
        let schema: SchemaRef = std::sync::Arc::new(
            info.clone()
                .try_decode_schema()
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
        );
        let stream = futures::stream::iter(info.endpoint)
            .then(move |endpoint| {
                let client = client.clone();
                async move { fetch_endpoint(client, endpoint).await.map_err(flight_error) }
            })
            .and_then(|batches| async move { Ok(batches.map_err(flight_error)) })
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One endpoint's batches: from the coordinator, or from the worker its location names
/// (`server.result_endpoints = "workers"`; the ticket is its own authorization there).
async fn fetch_endpoint(
    mut client: FlightSqlServiceClient<Channel>,
    endpoint: FlightEndpoint,
) -> Result<FlightRecordBatchStream, FlightError> {
    let ticket = endpoint
        .ticket
        .ok_or_else(|| FlightError::ProtocolError("an endpoint without a ticket".into()))?;
    let location = endpoint.location.first().map(|l| l.uri.as_str());
    let Some(address) = location.and_then(|uri| {
        uri.strip_prefix("grpc+tcp://")
            .or_else(|| uri.strip_prefix("grpc://"))
    }) else {
        return client.do_get(ticket).await;
    };
    let channel = data_channel(address).await.map_err(|e| {
        FlightError::Tonic(Box::new(tonic::Status::unavailable(format!(
            "cannot reach the worker at {address} for a result partition: {e}"
        ))))
    })?;
    let mut worker =
        FlightServiceClient::new(channel).max_decoding_message_size(MAX_RESULT_MESSAGE);
    let messages = worker
        .do_get(ticket)
        .await
        .map_err(|s| FlightError::Tonic(Box::new(s)))?
        .into_inner()
        .map_err(|s| FlightError::Tonic(Box::new(s)));
    Ok(FlightRecordBatchStream::new_from_flight_data(messages))
}

/// A plain-text channel to a worker's data port (`host:port`) for result transfers.
pub(crate) async fn data_channel(address: &str) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .initial_connection_window_size(RESULT_CONNECTION_WINDOW)
        .initial_stream_window_size(RESULT_STREAM_WINDOW)
        .max_frame_size(RESULT_FRAME_SIZE)
        .connect()
        .await
}

/// HTTP/2 windows for result transfers (the 64 KiB default stalls a loopback transfer on
/// every window update).
const RESULT_CONNECTION_WINDOW: u32 = 64 << 20;
const RESULT_STREAM_WINDOW: u32 = 16 << 20;
/// Largest HTTP/2 frame a worker may send us: 1 MiB frames instead of the 16 KiB default cut
/// the per-frame work of a result transfer 64-fold.
const RESULT_FRAME_SIZE: u32 = 1 << 20;
/// Largest result message accepted from a worker (one IPC message, or one of the 8 MiB blocks
/// of Ballista's block transport).
pub(crate) const MAX_RESULT_MESSAGE: usize = 64 << 20;
