//! `LIMIT` over an in-memory table on a cluster.
//!
//! DataFusion pushes a `LIMIT` into the scan below it: over `lendfusion_functions()` or
//! `VALUES` the plan is one in-memory scan with a `fetch` and no limit node left. Ballista 55's
//! scheduler then gives each task its slice of the scan's partitions by building a new
//! in-memory scan from the partitions, schema and projection alone (`select_output_partitions`
//! in its task builder): the `fetch` is lost, and `SELECT name FROM lendfusion_functions()
//! LIMIT 3` returned every row through a coordinator. [`LimitAboveMemoryScans`] moves the
//! `fetch` of an in-memory scan into a [`LocalLimitExec`] above it in cluster plans: the same
//! rows (both stop each partition after `fetch` rows), and a node the scheduler keeps.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::{DataSource, DataSourceExec};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::limit::LocalLimitExec;

/// Moves the `fetch` of in-memory scans into a limit node above them, in cluster plans.
#[derive(Debug, Default)]
pub struct LimitAboveMemoryScans;

impl PhysicalOptimizerRule for LimitAboveMemoryScans {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Embedded plans run as planned.
        if config
            .extensions
            .get::<ballista_core::config::BallistaConfig>()
            .is_none()
        {
            return Ok(plan);
        }
        limit_above_memory_scans(plan)
    }

    fn name(&self) -> &str {
        "lendfusion_limit_above_memory_scans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with the `fetch` of every in-memory scan in a [`LocalLimitExec`] above it.
pub fn limit_above_memory_scans(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(scan) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some(memory) = scan.data_source().downcast_ref::<MemorySourceConfig>() else {
            return Ok(Transformed::no(node));
        };
        let Some(fetch) = memory.fetch() else {
            return Ok(Transformed::no(node));
        };
        let unlimited = DataSourceExec::from_data_source(memory.clone().with_limit(None));
        let limited: Arc<dyn ExecutionPlan> = Arc::new(LocalLimitExec::new(unlimited, fetch));
        Ok(Transformed::yes(limited))
    })
    .data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::SessionContext;

    /// The rewritten plan has no `fetch` on the scan and gives the same rows.
    #[tokio::test]
    async fn the_fetch_moves_above_the_scan() {
        let ctx = SessionContext::new();
        let sql = "SELECT x FROM (VALUES (1), (2), (3), (4)) AS v(x) LIMIT 2";
        let plan = ctx
            .sql(sql)
            .await
            .expect("sql")
            .create_physical_plan()
            .await
            .expect("plan");
        let before = displayable(plan.as_ref()).indent(false).to_string();
        assert!(before.contains("fetch=2"), "{before}");
        assert!(!before.contains("Limit"), "{before}");
        let rewritten = limit_above_memory_scans(plan.clone()).expect("rewrite");
        let after = displayable(rewritten.as_ref()).indent(false).to_string();
        assert!(after.contains("LocalLimitExec: fetch=2"), "{after}");
        assert_eq!(after.matches("fetch").count(), 1, "{after}");
        let rows = |batches: Vec<arrow::record_batch::RecordBatch>| -> usize {
            batches.iter().map(|b| b.num_rows()).sum()
        };
        assert_eq!(
            rows(collect(rewritten, ctx.task_ctx()).await.expect("run")),
            2
        );
    }
}
