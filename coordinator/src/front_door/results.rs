//! A finished query's result on its way out: decoded into batches (for the report engine),
//! or as Flight messages for a client — the workers' files sent as written, through this
//! process, or signed tickets that let the client fetch each partition from its worker.

use std::time::Duration;

use arrow::error::ArrowError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightData, FlightEndpoint, Ticket};
use ballista_core::client::BlockDataStream;
use ballista_core::serde::protobuf::PartitionLocation;
use bytes::Bytes;
use datafusion::error::DataFusionError;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use lendfusion_core::results::passthrough::{can_pass_through, ipc_to_flight, schema_message};
use lendfusion_core::results::ticket::TicketKey;
use lendfusion_core::results::{RESULT_MESSAGES, ResultPartition, transfer_status, wrap_ticket};
use tonic::Status;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;

use super::jobs::FinishedQuery;
use super::statements::status_of;
use crate::client::{MAX_RESULT_MESSAGE, data_channel};

/// The Flight messages of a finished query, the schema first. Results computed here, or with
/// dictionary columns, are encoded here; a cluster result's files are sent as written.
pub fn result_flight(query: FinishedQuery) -> BoxStream<'static, Result<FlightData, Status>> {
    let schema = query.schema.clone();
    if query.local.is_some() || !can_pass_through(&schema) {
        let batches = result_stream(query).map_err(|e| FlightError::Tonic(Box::new(status_of(&e))));
        return FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from)
            .boxed();
    }
    let first = match schema_message(&schema) {
        Ok(message) => message,
        Err(e) => {
            let status = Status::internal(format!("cannot encode the schema: {e}"));
            return futures::stream::once(async move { Err(status) }).boxed();
        }
    };
    // The next partition's transfer starts while this one streams to the client.
    let partitions = futures::stream::iter(query.partitions)
        .map(move |location| {
            let schema = schema.clone();
            async move {
                let partition = ResultPartition::of(&location).map_err(Status::internal)?;
                let blocks = fetch_blocks(&partition).await?;
                Ok::<_, Status>(ipc_to_flight(Some(schema), blocks).map_err(transfer_status))
            }
        })
        .buffered(2)
        .try_flatten();
    futures::stream::once(async move { Ok(first) })
        .chain(partitions)
        .boxed()
}

/// The Flight messages of one result partition, for a client holding its signed ticket.
pub fn partition_flight(
    partition: ResultPartition,
) -> BoxStream<'static, Result<FlightData, Status>> {
    futures::stream::once(async move {
        let blocks = fetch_blocks(&partition).await?;
        Ok::<_, Status>(ipc_to_flight(None, blocks).map_err(transfer_status))
    })
    .try_flatten()
    .boxed()
}

/// One endpoint per result partition, in output order: the ticket signed with `key`, valid for
/// `lifetime`, and the location of the worker holding the partition.
pub fn worker_endpoints(
    partitions: &[PartitionLocation],
    key: &TicketKey,
    lifetime: Duration,
) -> Result<Vec<FlightEndpoint>, Status> {
    partitions
        .iter()
        .map(|location| {
            let partition = ResultPartition::of(location).map_err(Status::internal)?;
            let ticket = wrap_ticket(key.sign(&partition.action, lifetime));
            Ok(FlightEndpoint::new()
                .with_ticket(Ticket::new(ticket))
                .with_location(format!("grpc+tcp://{}:{}", partition.host, partition.port)))
        })
        .collect()
}

/// The bytes of a result partition's file, as its worker sends them: one IPC message per
/// block ([`RESULT_MESSAGES`]), so [`ipc_to_flight`] copies none of them.
async fn fetch_blocks(
    partition: &ResultPartition,
) -> Result<impl Stream<Item = Result<Bytes, ArrowError>> + Send + Unpin + use<>, Status> {
    let address = format!("{}:{}", partition.host, partition.port);
    let channel = data_channel(&address).await.map_err(|e| {
        Status::unavailable(format!("cannot reach worker {address} for the result: {e}"))
    })?;
    let mut client =
        FlightServiceClient::new(channel).max_decoding_message_size(MAX_RESULT_MESSAGE);
    let action = arrow_flight::Action {
        r#type: RESULT_MESSAGES.into(),
        body: partition.action.clone().into(),
    };
    let blocks = client
        .do_action(action)
        .await
        .map_err(|s| {
            Status::new(
                s.code(),
                format!("fetching the result from {address}: {}", s.message()),
            )
        })?
        .into_inner()
        .map(|block| {
            block
                .map(|b| b.body)
                .map_err(|s| ArrowError::ExternalError(Box::new(s)))
        });
    Ok(blocks)
}

/// The batches of a finished query (for the report engine, and results that cannot be sent as
/// written): the same transfer from the workers, decoded here.
pub fn result_stream(
    query: FinishedQuery,
) -> impl Stream<Item = Result<arrow::record_batch::RecordBatch, DataFusionError>> + Send {
    let local = futures::stream::iter(query.local.unwrap_or_default().into_iter().map(Ok));
    // The next partition's transfer starts while this one streams to the client.
    let remote = futures::stream::iter(query.partitions)
        .map(fetch_partition)
        .buffered(2)
        .try_flatten();
    local.chain(remote)
}

async fn fetch_partition(
    location: PartitionLocation,
) -> Result<
    BlockDataStream<impl Stream<Item = Result<Bytes, DataFusionError>> + Unpin>,
    DataFusionError,
> {
    let partition = ResultPartition::of(&location).map_err(DataFusionError::Internal)?;
    let blocks = fetch_blocks(&partition)
        .await
        .map_err(|s| DataFusionError::Execution(s.message().to_string()))?;
    BlockDataStream::try_new(blocks.map_err(|e| DataFusionError::ArrowError(Box::new(e), None)))
        .await
}
