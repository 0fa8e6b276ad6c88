//! Moving a finished query's result from the workers' files to a Flight client.
//!
//! The result of a cluster query is the final stage's files on the workers. They go to the
//! client either through the coordinator's port or, with `server.result_endpoints = "workers"`,
//! straight from each worker with a ticket the coordinator signed ([`ticket`]); both ways the
//! file's batches are sent as written ([`passthrough`]).

pub mod passthrough;
pub mod ticket;

use std::path::PathBuf;

use ballista_core::execution_plans::create_shuffle_path;
use ballista_core::execution_plans::sort_shuffle::is_sort_shuffle_output;
use ballista_core::serde::protobuf::{self, PartitionLocation};
use ballista_core::serde::scheduler::{Action, PartitionId, ShuffleFileKind, ShuffleLayout};
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

/// A fetch action (protobuf-encoded) decoded, its job id checked: a job id that is not a plain
/// name is refused, because the action can come from anyone who reaches a worker's data port
/// and the file's path is built from it.
pub fn checked_fetch_action(action: &[u8]) -> Result<Action, String> {
    let action = ballista_core::serde::decode_protobuf(action)
        .map_err(|e| format!("a result fetch action does not decode: {e}"))?;
    let Action::FetchPartition { job_id, .. } = &action;
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if job_id.as_str().is_empty() || !job_id.as_str().chars().all(plain) {
        return Err(format!(
            "a result fetch action names job {:?}: job ids are letters, digits, '-' and '_'",
            job_id.as_str()
        ));
    }
    Ok(action)
}

/// The result file under `work_dir` a fetch action (protobuf-encoded, checked by
/// [`checked_fetch_action`]) names, when it is one whole file: a partition of the usual layout,
/// no byte ranges. `None` for what Ballista's block transport resolves itself (sort-shuffle
/// files, byte ranges, indexes).
pub fn whole_result_file(work_dir: &str, action: &[u8]) -> Result<Option<PathBuf>, String> {
    let Action::FetchPartition {
        job_id,
        stage_id,
        partition_id,
        file_id,
        layout,
        file_kind,
        byte_ranges,
        ..
    } = checked_fetch_action(action)?;
    if layout != ShuffleLayout::Passthrough
        || file_kind != ShuffleFileKind::Data
        || !byte_ranges.is_empty()
    {
        return Ok(None);
    }
    let path = create_shuffle_path(work_dir, &job_id, stage_id, partition_id, file_id, false)
        .map_err(|e| format!("a result file's path: {e}"))?;
    // A sort-shuffle output has an index beside its data: Ballista's reader knows it.
    Ok((!is_sort_shuffle_output(&path)).then_some(path))
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

    fn fetch_action(job_id: &str, file_id: Option<u64>) -> Vec<u8> {
        let location = PartitionLocation {
            partition_id: Some(PartitionId {
                job_id: job_id.into(),
                stage_id: 3,
                partition_id: 5,
            }),
            executor_meta: Some(ExecutorMetadata {
                host: "worker-1".into(),
                port: 50061,
                ..Default::default()
            }),
            file_id,
            ..Default::default()
        };
        ResultPartition::of(&location).expect("partition").action
    }

    #[test]
    fn a_fetch_action_names_a_file_under_the_work_dir_or_is_refused() {
        let path = |job: &str, file| whole_result_file("/work", &fetch_action(job, file));
        assert_eq!(
            path("038J4T2VT0000", None),
            Ok(Some(PathBuf::from("/work/038J4T2VT0000/3/5/data.arrow")))
        );
        assert_eq!(
            path("job_7-b", Some(2)),
            Ok(Some(PathBuf::from("/work/job_7-b/3/5/data-2.arrow")))
        );
        for job in ["../../etc", "/etc", "a/b", "..", ""] {
            let refused = path(job, None).expect_err(job);
            assert!(refused.contains("job ids are letters"), "{job}: {refused}");
        }
        assert!(whole_result_file("/work", b"garbage").is_err());
    }
}
