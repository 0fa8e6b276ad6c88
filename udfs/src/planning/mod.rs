//! Plan rewrites that make SQL over our functions faster without changing any result.

pub mod chunked_window;
pub mod extend_sorts;
pub mod key_sort;
pub mod merge_join;
pub mod order_keys;
pub mod rolling_avg;
pub mod run_merge;

use std::sync::Arc;

use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::WindowUDF;
use datafusion::optimizer::OptimizerRule;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};

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
