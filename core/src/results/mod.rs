//! Moving a finished query's result from the workers' files to a Flight client.
//!
//! The result of a cluster query is the final stage's files on the workers. They go to the
//! client either through the coordinator's port or, with `server.result_endpoints = "workers"`,
//! straight from each worker with a ticket the coordinator signed ([`ticket`]); both ways the
//! file's batches are sent as written ([`passthrough`]).

pub mod passthrough;
pub mod ticket;

use ballista_core::serde::protobuf::{self, PartitionLocation};
use ballista_core::serde::scheduler::{Action, PartitionId, ShuffleFileKind};
use prost::Message;

/// The name of Ballista's action that streams a shuffle file's bytes as written.
pub const BLOCK_TRANSPORT: &str = "IO_BLOCK_TRANSPORT";

/// The name of our workers' action that streams a result file's IPC messages as written, one
/// message per `Result` (a file the worker cannot read that way comes by [`BLOCK_TRANSPORT`]).
/// Same request body as Ballista's action: a `FetchPartition`.
pub const RESULT_MESSAGES: &str = "LENDFUSION_RESULT_MESSAGES";

/// The type URL a signed result ticket is wrapped in (Flight SQL tickets are protobuf `Any`s).
pub const RESULT_TICKET_TYPE: &str = "type.googleapis.com/lendfusion.ResultTicket";

/// A signed result ticket as the bytes of a Flight ticket.
pub fn wrap_ticket(signed: Vec<u8>) -> Vec<u8> {
    arrow_flight::sql::Any {
        type_url: RESULT_TICKET_TYPE.into(),
        value: signed.into(),
    }
    .encode_to_vec()
}

/// The signed part of a Flight ticket, if it is a result ticket.
pub fn unwrap_ticket(ticket: &[u8]) -> Option<Vec<u8>> {
    arrow_flight::sql::Any::decode(ticket)
        .ok()
        .filter(|any| any.type_url == RESULT_TICKET_TYPE)
        .map(|any| any.value.to_vec())
}

/// A result transfer's error as the client's status: the worker's own status when it sent one
/// (UNAVAILABLE, NOT_FOUND...), INTERNAL for bytes that do not decode.
pub fn transfer_status(error: arrow::error::ArrowError) -> tonic::Status {
    use arrow::error::ArrowError;
    match error {
        ArrowError::ExternalError(inner) => match inner.downcast::<tonic::Status>() {
            Ok(status) => *status,
            Err(other) => tonic::Status::internal(format!("result transfer: {other}")),
        },
        other => tonic::Status::internal(format!("result transfer: {other}")),
    }
}

/// Where one result partition is: the worker's data address and Ballista's fetch action for
/// it, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultPartition {
    /// The worker's host.
    pub host: String,
    /// The worker's data (Flight) port.
    pub port: u16,
    /// Ballista's `FetchPartition` action, protobuf-encoded.
    pub action: Vec<u8>,
}

impl ResultPartition {
    /// The partition at `location` (a job's output location as the scheduler reports it).
    pub fn of(location: &PartitionLocation) -> Result<Self, String> {
        let executor = location
            .executor_meta
            .as_ref()
            .ok_or("a result location without its worker")?;
        let partition = location
            .partition_id
            .as_ref()
            .ok_or("a result location without its partition")?;
        let port = u16::try_from(executor.port).map_err(|_| "a worker port out of range")?;
        let id: PartitionId = partition.clone().into();
        let action = Action::FetchPartition {
            job_id: id.job_id,
            stage_id: id.stage_id,
            partition_id: id.partition_id,
            host: executor.host.clone(),
            port,
            file_id: location.file_id,
            layout: location.layout(),
            file_kind: ShuffleFileKind::Data,
            byte_ranges: vec![],
        };
        let action: protobuf::Action = action
            .try_into()
            .map_err(|e| format!("cannot encode a fetch action: {e}"))?;
        Ok(Self {
            host: executor.host.clone(),
            port,
            action: action.encode_to_vec(),
        })
    }

    /// The partition a (verified) ticket's fetch action names.
    pub fn from_action(action: &[u8]) -> Result<Self, String> {
        let decoded = protobuf::Action::decode(action)
            .map_err(|e| format!("a result ticket's fetch action does not decode: {e}"))?;
        match decoded.action_type {
            Some(protobuf::action::ActionType::FetchPartition(fetch)) => Ok(Self {
                host: fetch.host,
                port: u16::try_from(fetch.port).map_err(|_| "a worker port out of range")?,
                action: action.to_vec(),
            }),
            None => Err("a result ticket without a fetch action".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballista_core::serde::protobuf::{ExecutorMetadata, PartitionId};

    #[test]
    fn a_location_becomes_a_fetch_action_and_back() {
        let location = PartitionLocation {
            partition_id: Some(PartitionId {
                job_id: "job7".into(),
                stage_id: 3,
                partition_id: 5,
            }),
            executor_meta: Some(ExecutorMetadata {
                id: "w1".into(),
                host: "worker-1".into(),
                port: 50061,
                ..Default::default()
            }),
            file_id: Some(9),
            ..Default::default()
        };
        let partition = ResultPartition::of(&location).expect("partition");
        assert_eq!(
            (partition.host.as_str(), partition.port),
            ("worker-1", 50061)
        );
        assert_eq!(
            ResultPartition::from_action(&partition.action),
            Ok(partition.clone())
        );
        let action = protobuf::Action::decode(&partition.action[..]).expect("action");
        let Some(protobuf::action::ActionType::FetchPartition(fetch)) = action.action_type else {
            panic!("not a fetch");
        };
        assert_eq!(
            (fetch.job_id.as_str(), fetch.stage_id, fetch.partition_id),
            ("job7", 3, 5)
        );
        assert_eq!(fetch.file_id, Some(9));
        assert!(ResultPartition::from_action(b"garbage").is_err());
        assert!(ResultPartition::of(&PartitionLocation::default()).is_err());
    }
}
