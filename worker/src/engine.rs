//! The worker's execution engine: Ballista's, with our strict file-schema check put back on
//! every file scan of a task. The check is attached to a scan when the coordinator plans it,
//! but physical plans travel without it (datafusion-proto does not serialize expression
//! adapters), so without this a worker would read a file lacking a nullable column as NULLs
//! instead of failing with the file's name. The task's sorts become packed-key sorts
//! ([`with_key_sorts`]: the coordinator plans DataFusion's sorts for the cluster; a partition
//! beyond the worker's memory still goes to DataFusion's spilling sort), and a last stage's
//! merge of partitions split by date goes run by run ([`with_run_merges`]). Every stage is
//! wrapped in an [`ObservedStage`] (metrics, logs with the query id).

use std::sync::Arc;

use ballista_core::JobId;
use ballista_executor::execution_engine::{
    DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor,
};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use lendfusion_core::strict_adapter::StrictExprAdapterFactory;
use lendfusion_udfs::planning::key_sort::with_key_sorts;
use lendfusion_udfs::planning::merge_join::with_merge_joins;
use lendfusion_udfs::planning::run_merge::with_run_merges;

use crate::observed::ObservedStage;

/// Ballista's default engine behind a plan rewrite that makes every file scan strict.
#[derive(Default)]
pub struct StrictScanEngine {
    inner: DefaultExecutionEngine,
}

impl std::fmt::Debug for StrictScanEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StrictScanEngine")
    }
}

impl ExecutionEngine for StrictScanEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> Result<Arc<dyn QueryStageExecutor>> {
        let plan = with_run_merges(with_merge_joins(with_key_sorts(strict_scans(plan)?)?)?)?;
        let query_id = job_id.to_string();
        let stage = self.inner.create_query_stage_exec(
            job_id,
            stage_id,
            task_id,
            global_output_partition_ids,
            plan,
            work_dir,
            config,
        )?;
        Ok(Arc::new(ObservedStage::new(stage, query_id, stage_id)))
    }
}

/// `plan` with [`StrictExprAdapterFactory`] on every file scan.
pub fn strict_scans(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(scan) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some(files) = scan.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(Transformed::no(node));
        };
        let mut files = files.clone();
        files.expr_adapter_factory = Some(Arc::new(StrictExprAdapterFactory));
        let strict: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(files);
        Ok(Transformed::yes(strict))
    })
    .map(|t| t.data)
}
