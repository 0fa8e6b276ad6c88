//! Plan rewrites that make SQL over our functions faster without changing any result.

pub mod chunked_window;
pub mod extend_sorts;
pub mod key_sort;
pub mod order_keys;
pub mod rolling_avg;

use std::sync::Arc;

use datafusion::logical_expr::WindowUDF;
use datafusion::optimizer::OptimizerRule;
use datafusion::physical_optimizer::PhysicalOptimizerRule;

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
    ]
}
