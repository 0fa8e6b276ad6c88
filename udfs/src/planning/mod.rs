//! Plan rewrites that make SQL over our functions faster without changing any result.

pub mod chunked_window;
pub mod extend_sorts;
pub mod key_sort;
pub mod merge_join;
pub mod order_keys;
pub mod rolling_avg;
pub mod run_merge;

use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::WindowUDF;
use datafusion::optimizer::OptimizerRule;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

/// Window functions the rewrites call (registered on every role, not in the catalog).
pub fn internal_window_functions() -> Vec<WindowUDF> {
    vec![rolling_avg::rolling_avg()]
}

/// Logical optimizer rules, run after DataFusion's own.
pub fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    vec![Arc::new(rolling_avg::RollingAverages)]
}

/// Physical optimizer rules, run after DataFusion's own.
pub fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    vec![
        Arc::new(chunked_window::ChunkWindows),
        Arc::new(extend_sorts::ExtendSorts),
        Arc::new(key_sort::SortByKeys),
        Arc::new(merge_join::MergeJoins),
        Arc::new(run_merge::MergeRuns),
    ]
}

/// What the deprecated `with_new_children` asks of `replace_children`: recompute properties.
pub const RECOMPUTE: ReplaceChildrenOptions = ReplaceChildrenOptions {
    children_properties: ChildrenPropertiesMode::Recompute,
};

/// The DataFusion operator a plan node of ours stands for, with new children (our nodes wrap
/// one and rebuild it first when their children change).
pub(crate) fn with_children<T: ExecutionPlan + Clone + 'static>(
    inner: &Arc<T>,
    children: Vec<Arc<dyn ExecutionPlan>>,
    options: ReplaceChildrenOptions,
) -> Result<T> {
    let replaced = Arc::clone(inner).replace_children(children, options)?;
    match replaced.downcast_ref::<T>() {
        Some(inner) => Ok(inner.clone()),
        None => internal_err!("{} changed its kind", inner.name()),
    }
}

/// `plan` with every `T` node that `replace` takes (returns `Some` for) replaced by what it
/// returns, bottom up: the shape of our rewrites that swap a DataFusion operator for ours.
pub(crate) fn replace_each<T, N>(
    plan: Arc<dyn ExecutionPlan>,
    replace: impl Fn(Arc<T>) -> Option<N>,
) -> Result<Arc<dyn ExecutionPlan>>
where
    T: ExecutionPlan + Clone + 'static,
    N: ExecutionPlan + 'static,
{
    plan.transform_up(|node| {
        let Some(found) = node.downcast_ref::<T>() else {
            return Ok(Transformed::no(node));
        };
        Ok(match replace(Arc::new(found.clone())) {
            Some(ours) => Transformed::yes(Arc::new(ours) as Arc<dyn ExecutionPlan>),
            None => Transformed::no(node),
        })
    })
    .data()
}

/// A stream executed once, as a partition stream: the input of a DataFusion operator taking
/// over a partition, or a stream from elsewhere as a table's only partition.
pub struct Replay {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl Replay {
    /// `stream` as a partition stream (executed once).
    pub fn new(stream: SendableRecordBatchStream) -> Arc<Self> {
        Arc::new(Self {
            schema: stream.schema(),
            stream: Mutex::new(Some(stream)),
        })
    }
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replay")
    }
}

impl PartitionStream for Replay {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _context: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().ok().and_then(|mut stream| stream.take());
        taken.unwrap_or_else(|| {
            let again = futures::stream::once(async {
                Err(DataFusionError::Internal(
                    "a buffered input was replayed twice".to_string(),
                ))
            });
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                again,
            ))
        })
    }
}
