//! One sort instead of two when a sort's keys extend the keys of a sort below it.
//!
//! A query like the factor panel sorts twice on the same partitions: by `date` so that the
//! cross-sectional windows (`PARTITION BY date`) see each date's rows together, and then, after
//! the windows, by `(date, security_id)` for `ORDER BY`. Ordering rows of the same date by
//! `security_id` already in the first sort changes nothing a window may depend on — any
//! ordering that begins with the window's keys satisfies it, and the order of ties was left to
//! chance before — and makes the windows' output arrive in `(date, security_id)` order, so the
//! second sort has nothing to do. [`ExtendSorts`] finds such pairs: a `SortExec` whose input
//! reaches another `SortExec` only through projections of plain columns and window operators
//! (which keep their input's rows and order), whose keys, mapped down to it, begin with that
//! sort's keys. It gives the lower sort the upper one's keys and removes the upper sort when the
//! rebuilt input is known to satisfy it; otherwise it leaves the plan as it was.
//!
//! A side effect users see: each cross-section reaches the window functions in a fixed row
//! order, whatever the partitioning and thread timing, so order-sensitive sums (the least
//! squares of `fm_residual`) come out the same to the last bit from run to run.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use super::chunked_window::ChunkedWindowExec;

/// Merges a sort into the sort below it when its keys extend that sort's (see the module).
#[derive(Debug, Default)]
pub struct ExtendSorts;

impl PhysicalOptimizerRule for ExtendSorts {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(outer) = node.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            Ok(match merged_into_lower_sort(outer)? {
                Some(input) => Transformed::yes(input),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "lendfusion_extend_sorts"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `outer`'s input with the lower sort extended to `outer`'s keys, when that makes `outer`
/// redundant.
fn merged_into_lower_sort(outer: &SortExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if outer.fetch().is_some() {
        return Ok(None);
    }
    let mut keys: Vec<PhysicalSortExpr> = outer.expr().iter().cloned().collect();
    // The operators between the two sorts, top first.
    let mut between: Vec<Arc<dyn ExecutionPlan>> = vec![];
    let mut node = Arc::clone(outer.input());
    let lower = loop {
        if let Some(lower) = node.downcast_ref::<SortExec>() {
            break lower.clone();
        }
        let Some(mapped) = keys_below(&node, &keys) else {
            return Ok(None);
        };
        keys = mapped;
        between.push(Arc::clone(&node));
        node = Arc::clone(node.children()[0]);
    };
    let lower_keys = lower.expr();
    if lower.fetch().is_some()
        || lower_keys.len() >= keys.len()
        || lower_keys.iter().zip(&keys).any(|(a, b)| a != b)
    {
        return Ok(None);
    }
    let Some(extended) = LexOrdering::new(keys) else {
        return Ok(None);
    };
    let mut rebuilt: Arc<dyn ExecutionPlan> = Arc::new(
        SortExec::new(extended, Arc::clone(lower.input()))
            .with_preserve_partitioning(lower.preserve_partitioning()),
    );
    for parent in between.iter().rev() {
        rebuilt = Arc::clone(parent).replace_children(vec![rebuilt], super::RECOMPUTE)?;
    }
    let same_partitions =
        outer.preserve_partitioning() || rebuilt.output_partitioning().partition_count() == 1;
    let satisfied = rebuilt
        .equivalence_properties()
        .ordering_satisfy(outer.expr().clone())?;
    Ok((same_partitions && satisfied).then_some(rebuilt))
}

/// `keys` (over `node`'s output) as keys over `node`'s input, when `node` passes its input's
/// rows through in order and every key is one of its input columns.
fn keys_below(
    node: &Arc<dyn ExecutionPlan>,
    keys: &[PhysicalSortExpr],
) -> Option<Vec<PhysicalSortExpr>> {
    if node.children().len() != 1 || !node.maintains_input_order().first().copied()? {
        return None;
    }
    let input_columns = node.children()[0].schema().fields().len();
    let column_below = |key: &Arc<dyn PhysicalExpr>| -> Option<Arc<dyn PhysicalExpr>> {
        let column = key.downcast_ref::<Column>()?;
        if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
            let below = projection.expr().get(column.index())?;
            below.expr.downcast_ref::<Column>()?;
            return Some(Arc::clone(&below.expr));
        }
        let passes_rows = node.downcast_ref::<ChunkedWindowExec>().is_some()
            || node.downcast_ref::<WindowAggExec>().is_some()
            || node.downcast_ref::<BoundedWindowAggExec>().is_some();
        // Window operators append their columns after the input's.
        (passes_rows && column.index() < input_columns).then(|| Arc::clone(key))
    };
    keys.iter()
        .map(|key| {
            Some(PhysicalSortExpr {
                expr: column_below(&key.expr)?,
                options: key.options,
            })
        })
        .collect()
}
