//! Every task a worker runs, counted in the metrics and logged with its query id (the
//! coordinator's job id, which the coordinator logs with the query's SQL).

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use ballista_core::error::BallistaError;
use ballista_core::serde::protobuf::{
    RuntimeStatsReport, ShuffleWritePartition, TaskColumnStats, WindowStateReport,
};
use ballista_executor::execution_engine::QueryStageExecutor;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::MetricsSet;
use lendfusion_core::error_kind::{classify, tag};
use lendfusion_core::ops::metrics::{hold, metrics};

/// A query stage whose tasks are counted and logged; everything else is the inner stage's.
#[derive(Debug)]
pub struct ObservedStage {
    inner: Arc<dyn QueryStageExecutor>,
    query_id: String,
    stage: usize,
}

impl ObservedStage {
    /// Observe `inner`, stage `stage` of query `query_id`.
    pub fn new(inner: Arc<dyn QueryStageExecutor>, query_id: String, stage: usize) -> Self {
        Self {
            inner,
            query_id,
            stage,
        }
    }
}

impl fmt::Display for ObservedStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait::async_trait]
impl QueryStageExecutor for ObservedStage {
    async fn execute_query_stage(
        &self,
        task_id: usize,
        context: Arc<TaskContext>,
    ) -> Result<Vec<ShuffleWritePartition>> {
        let m = metrics();
        m.tasks_started.inc();
        let _running = hold(&m.tasks_running);
        let _pool = m.track_pool(context.memory_pool().clone());
        let (query_id, stage) = (&self.query_id, self.stage);
        tracing::info!(query_id = %query_id, stage, task = task_id, "task started");
        let started = Instant::now();
        let result = self.inner.execute_query_stage(task_id, context).await;
        let seconds = started.elapsed().as_secs_f64();
        m.task_seconds.observe(seconds);
        match &result {
            Ok(partitions) => {
                let rows: u64 = partitions.iter().map(|p| p.num_rows).sum();
                let bytes: u64 = partitions.iter().map(|p| p.num_bytes).sum();
                m.tasks_finished.inc();
                m.shuffle_rows_written.inc_by(rows);
                m.shuffle_bytes_written.inc_by(bytes);
                tracing::info!(
                    query_id = %query_id, stage, task = task_id, rows, bytes,
                    seconds = format!("{seconds:.3}"), "task finished"
                );
            }
            Err(e) => {
                m.tasks_failed.inc();
                tracing::warn!(query_id = %query_id, stage, task = task_id, error = %e, "task failed");
            }
        }
        result.map_err(reported)
    }

    fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
        self.inner.collect_plan_metrics()
    }

    fn collect_runtime_stats_reports(&self) -> Vec<RuntimeStatsReport> {
        self.inner.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(&self) -> Result<Vec<WindowStateReport>> {
        self.inner.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<TaskColumnStats> {
        self.inner.collect_column_stats()
    }
}

/// A task's error as the coordinator can read it. Ballista sends a failed task's error to the
/// scheduler formatted with `{:?}`; the error is classified here, where it has its type, and
/// travels as the kind and plain message between markers that survive that formatting
/// (`lendfusion_core::error_kind`). The errors the scheduler acts on stay what they are: a
/// lost shuffle partition and a cancelled task as Ballista's, an I/O error as an I/O error
/// (the scheduler runs the task again), its message classified.
fn reported(e: DataFusionError) -> DataFusionError {
    match scheduler_kind(&e) {
        SchedulerKind::Ballista => e,
        SchedulerKind::Io(kind) => {
            DataFusionError::IoError(std::io::Error::new(kind, tag(&classify(&e))))
        }
        SchedulerKind::Failure => {
            DataFusionError::External(Box::new(BallistaError::General(tag(&classify(&e)))))
        }
    }
}

/// How Ballista's scheduler treats a task's error.
enum SchedulerKind {
    /// A shuffle fetch failure (the stage before runs again) or a cancellation.
    Ballista,
    /// An I/O error: the task runs again.
    Io(std::io::ErrorKind),
    /// The query fails.
    Failure,
}

/// What Ballista makes of `e` (`From<BallistaError> for FailedTask`), seeing through the
/// wrappers Ballista itself puts around errors.
fn scheduler_kind(e: &DataFusionError) -> SchedulerKind {
    let mut current = e;
    for _ in 0..16 {
        let root = current.find_root();
        if let DataFusionError::IoError(io) = root {
            return SchedulerKind::Io(io.kind());
        }
        let ballista = [current, root].into_iter().find_map(|e| match e {
            DataFusionError::External(inner) => inner.downcast_ref::<BallistaError>(),
            _ => None,
        });
        match ballista {
            Some(BallistaError::FetchFailed(..) | BallistaError::Cancelled) => {
                return SchedulerKind::Ballista;
            }
            Some(BallistaError::IoError(io)) => return SchedulerKind::Io(io.kind()),
            Some(BallistaError::DataFusionError(inner)) => current = inner,
            _ => return SchedulerKind::Failure,
        }
    }
    SchedulerKind::Failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballista_core::serde::protobuf::FailedTask;
    use ballista_core::serde::protobuf::failed_task::FailedReason;
    use lendfusion_core::error_kind::{ErrorKind, untag};

    /// What the scheduler receives for a task that failed with `e`.
    fn failed(e: DataFusionError) -> FailedTask {
        FailedTask::from(BallistaError::from(reported(e)))
    }

    #[test]
    fn task_errors_reach_the_scheduler_classified() {
        let divide = DataFusionError::Shared(std::sync::Arc::new(DataFusionError::External(
            Box::new(arrow::error::ArrowError::DivideByZero),
        )));
        let task = failed(divide);
        assert!(matches!(
            task.failed_reason,
            Some(FailedReason::ExecutionError(_))
        ));
        let c = untag(&task.error).expect("classified");
        assert_eq!(c.kind, ErrorKind::InvalidArgument);
        assert_eq!(c.message, "Divide by zero error");

        // I/O stays retryable; Ballista's own errors stay structural.
        let io = DataFusionError::IoError(std::io::Error::other("disk full"));
        let task = failed(io);
        assert!(task.retryable, "{task:?}");
        assert!(
            untag(&task.error)
                .expect("classified")
                .message
                .contains("disk full")
        );
        // Wrapped by Ballista's shuffle writer, as a stage's errors arrive.
        let wrapped = BallistaError::DataFusionError(Box::new(DataFusionError::Execution(
            "dcbs: bad breakpoints".into(),
        )))
        .into_datafusion();
        let c = untag(&failed(wrapped).error).expect("classified");
        assert_eq!(c.message, "dcbs: bad breakpoints");
        let fetch = BallistaError::FetchFailed("w1".into(), 1, 2, "gone".into()).into_datafusion();
        let task = failed(fetch);
        assert!(matches!(
            task.failed_reason,
            Some(FailedReason::FetchPartitionError(_))
        ));
        let task = failed(BallistaError::Cancelled.into_datafusion());
        assert!(matches!(
            task.failed_reason,
            Some(FailedReason::TaskKilled(_))
        ));
    }
}
