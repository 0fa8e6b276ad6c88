//! A worker's data port: Ballista's Flight service for shuffle fetches between nodes, and
//! result partitions for clients holding a ticket the coordinator signed
//! (`server.result_endpoints = "workers"`).
//!
//! A client's `DoGet` with a result ticket is checked against `cluster.secret`; the partition's
//! file is then sent as written (its own schema first, then its batches: no decoding, no
//! compression), read message by message into buffers that go to the client as they are. A
//! layout other than one file per partition (sort shuffle, byte ranges) is read by Ballista's
//! block transport instead. The coordinator fetches result partitions the same way with the
//! `LENDFUSION_RESULT_MESSAGES` action, one IPC message per `Result`. Every other call goes to
//! Ballista's service unchanged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use arrow::error::ArrowError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use ballista_core::error::BallistaError;
use ballista_core::utils::{GrpcServerConfig, create_grpc_server};
use ballista_executor::ArrowFlightServerProvider;
use ballista_executor::flight_service::BallistaFlightService;
use ballista_executor::shutdown::Shutdown;
use futures::{Stream, StreamExt, TryStreamExt};
use lendfusion_core::ops::metrics::counted_result_stream;
use lendfusion_core::results::passthrough::{file_to_flight, file_to_ipc_messages, ipc_to_flight};
use lendfusion_core::results::ticket::TicketKey;
use lendfusion_core::results::{
    BLOCK_TRANSPORT, RESULT_MESSAGES, checked_fetch_action, transfer_status, unwrap_ticket,
    whole_result_file,
};
use tonic::{Request, Response, Status, Streaming};

/// Largest message the data port receives or sends (Ballista's default).
const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The data port's service.
#[derive(Clone)]
pub struct DataPort {
    ballista: BallistaFlightService,
    /// Where Ballista writes the worker's shuffle and result files.
    work_dir: String,
    tickets: Option<TicketKey>,
}

impl std::fmt::Debug for DataPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPort")
            .field("serves_clients", &self.tickets.is_some())
            .finish_non_exhaustive()
    }
}

/// Ballista's hook for the data port: our service on the address and shutdown it gives.
pub fn data_port_provider(tickets: Option<TicketKey>) -> Arc<ArrowFlightServerProvider> {
    Arc::new(
        move |work_dir: String,
              address: SocketAddr,
              mut shutdown: Shutdown,
              grpc: GrpcServerConfig| {
            let service = DataPort {
                ballista: BallistaFlightService::new(work_dir.clone()),
                work_dir,
                tickets: tickets.clone(),
            };
            tokio::spawn(async move {
                create_grpc_server(&grpc)
                    .add_service(
                        FlightServiceServer::new(service)
                            .max_decoding_message_size(MAX_MESSAGE_SIZE)
                            .max_encoding_message_size(MAX_MESSAGE_SIZE),
                    )
                    .serve_with_shutdown(address, shutdown.recv())
                    .await
                    .map_err(BallistaError::TonicError)
            })
        },
    )
}

impl DataPort {
    /// The result partition a client's ticket names, as Flight messages.
    async fn result_partition(&self, signed: &[u8]) -> Result<Boxed<FlightData>, Status> {
        let key = self.tickets.as_ref().ok_or_else(|| {
            Status::permission_denied(
                "this worker serves no clients: cluster.secret is not set on it",
            )
        })?;
        let action = key
            .open(signed)
            .map_err(|e| Status::permission_denied(e.to_string()))?;
        if let Some(path) = self.whole_file(action)? {
            let messages = file_to_flight(None, path).map_err(file_status);
            return Ok(Box::pin(counted_result_stream(messages)));
        }
        let blocks = self
            .block_transport(action.to_vec().into())
            .await?
            .map(|block| {
                block
                    .map(|b| b.body)
                    .map_err(|s| ArrowError::ExternalError(Box::new(s)))
            });
        let messages = ipc_to_flight(None, blocks).map_err(transfer_status);
        Ok(Box::pin(counted_result_stream(messages)))
    }

    /// A coordinator's fetch of a result partition ([`RESULT_MESSAGES`]): the file's messages
    /// one per `Result`, or Ballista's blocks for a layout it resolves itself. (Ballista's
    /// block transport on this port takes the same unsigned request.)
    async fn result_messages(
        &self,
        request: Request<Action>,
    ) -> Result<Boxed<arrow_flight::Result>, Status> {
        let body = request.into_inner().body;
        if let Some(path) = self.whole_file(&body)? {
            let messages = file_to_ipc_messages(path)
                .map_ok(|body| arrow_flight::Result { body })
                .map_err(file_status);
            return Ok(Box::pin(messages));
        }
        self.block_transport(body).await
    }

    /// Ballista's block transport of the file a fetch action names.
    async fn block_transport(
        &self,
        action: tonic::codegen::Bytes,
    ) -> Result<Boxed<arrow_flight::Result>, Status> {
        let request = Request::new(Action {
            r#type: BLOCK_TRANSPORT.into(),
            body: action,
        });
        Ok(self.ballista.do_action(request).await?.into_inner())
    }

    /// The file a fetch action names when it is one whole file of this worker's
    /// ([`whole_result_file`]).
    fn whole_file(&self, action: &[u8]) -> Result<Option<PathBuf>, Status> {
        whole_result_file(&self.work_dir, action).map_err(Status::invalid_argument)
    }
}

/// A result file's read error as the client's status: NOT_FOUND for a file that is gone.
fn file_status(error: ArrowError) -> Status {
    match error {
        ArrowError::IoError(message, io) if io.kind() == std::io::ErrorKind::NotFound => {
            Status::not_found(format!("{message} (the job's files may have been removed)"))
        }
        other => transfer_status(other),
    }
}

#[tonic::async_trait]
impl FlightService for DataPort {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;
    type DoExchangeStream = Boxed<FlightData>;

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Boxed<FlightData>>, Status> {
        if let Some(signed) = unwrap_ticket(&request.get_ref().ticket) {
            return self.result_partition(&signed).await.map(Response::new);
        }
        self.ballista.do_get(request).await
    }

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        self.ballista.handshake(request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.ballista.list_flights(request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.ballista.get_flight_info(request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        self.ballista.poll_flight_info(request).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        self.ballista.get_schema(request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        self.ballista.do_put(request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        match request.get_ref().r#type.as_str() {
            RESULT_MESSAGES => return self.result_messages(request).await.map(Response::new),
            // Ballista builds the file's path from the action as it comes: refuse job ids
            // that are not plain names first.
            BLOCK_TRANSPORT => {
                checked_fetch_action(&request.get_ref().body).map_err(Status::invalid_argument)?;
            }
            _ => {}
        }
        self.ballista.do_action(request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        self.ballista.list_actions(request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.ballista.do_exchange(request).await
    }
}
