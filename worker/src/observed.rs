//! Every task a worker runs, counted in the metrics and logged with its query id (the
//! coordinator's job id, which the coordinator logs with the query's SQL). A failed task's
//! error is classified here, where it still has its type (`lendfusion_core::error_kind`).

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use ballista_core::serde::protobuf::{
    RuntimeStatsReport, ShuffleWritePartition, TaskColumnStats, WindowStateReport,
};
use ballista_executor::execution_engine::QueryStageExecutor;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::MetricsSet;
use lendfusion_core::error_kind::task_error;
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
        result.map_err(task_error)
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
