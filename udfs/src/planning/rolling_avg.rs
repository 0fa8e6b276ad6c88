//! Trailing averages in one pass: `AVG(x) OVER (... ROWS BETWEEN n PRECEDING AND CURRENT ROW)`
//! next to a lendfusion window function is computed by a vectorised kernel instead of
//! DataFusion's per-row accumulator calls.
//!
//! A window operator that evaluates one of our window functions buffers whole partitions
//! anyway (`WindowAggExec`). There DataFusion computes a sliding `AVG` by slicing the input and
//! calling `update_batch` / `retract_batch` for every row — about ten times the cost of the
//! arithmetic. [`RollingAverages`] rewrites such an `AVG` over `Float64` into
//! `lendfusion_rolling_avg(x, n)`, which performs the same additions and subtractions in the
//! same order (add row t, then retract row t-n-1; NULL when no value is in the frame; a NaN
//! stays in the running sum), so the results are identical to the bit. Window operators
//! without a lendfusion function are left alone (DataFusion streams those with bounded memory).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::functions_aggregate::average::Avg;
use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::logical_plan::Window;
use datafusion::logical_expr::{
    Expr, ExprSchemable, LogicalPlan, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
    WindowUDF, lit,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::common::window::{PartitionKernel, PartitionWindow, partition_window};
use crate::common::{doc, integer_literal};

/// The kernel's SQL name (internal: not in the function catalog).
pub const NAME: &str = "lendfusion_rolling_avg";

#[derive(Debug)]
struct RollingAvg {
    /// Rows before the current one in the frame.
    preceding: usize,
}

impl PartitionKernel for RollingAvg {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let x = columns[0];
        let value = |i: usize| x.is_valid(i).then(|| x.value(i));
        let mut sum: Option<f64> = None;
        let mut count = 0u64;
        let mut out = Vec::with_capacity(rows);
        for t in 0..rows {
            if let Some(v) = value(t) {
                count += 1;
                *sum.get_or_insert(0.0) += v;
            }
            if t > self.preceding
                && let Some(v) = value(t - self.preceding - 1)
            {
                count -= 1;
                sum = sum.map(|s| s - v);
            }
            out.push(if count == 0 {
                None
            } else {
                sum.map(|s| s / count as f64)
            });
        }
        Ok(Arc::new(Float64Array::from(out)))
    }
}

fn factory(constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    let preceding = match &constants[0] {
        Some(v) => integer_literal(NAME, v, "n", 0, i64::from(u32::MAX))?,
        None => 0,
    };
    Ok(Box::new(RollingAvg {
        preceding: preceding as usize,
    }))
}

/// The kernel as a window function (registered so that every role can run rewritten plans).
pub fn rolling_avg() -> WindowUDF {
    partition_window(
        NAME,
        doc(
            "Internal",
            "AVG(x) OVER (... ROWS BETWEEN n PRECEDING AND CURRENT ROW), computed in one pass; \
             the planner substitutes it, results are identical.",
            "lendfusion_rolling_avg(x, n) OVER (PARTITION BY ... ORDER BY ...)",
            &[("x", "the values"), ("n", "rows before the current one")],
            "",
        ),
        (1, 1),
        (1, 1),
        DataType::Float64,
        factory,
    )
}

/// The optimizer rule (see the module docs).
#[derive(Debug, Default)]
pub struct RollingAverages;

impl OptimizerRule for RollingAverages {
    fn name(&self) -> &str {
        "lendfusion_rolling_averages"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Window(window) = plan else {
            return Ok(Transformed::no(plan));
        };
        if !window.window_expr.iter().any(is_lendfusion_window) {
            return Ok(Transformed::no(LogicalPlan::Window(window)));
        }
        let schema = window.input.schema().clone();
        let mut changed = false;
        let mut exprs = Vec::with_capacity(window.window_expr.len());
        for expr in &window.window_expr {
            match rolling_avg_of(expr, &schema) {
                Some(rewritten) => {
                    changed = true;
                    exprs.push(rewritten);
                }
                None => exprs.push(expr.clone()),
            }
        }
        if !changed {
            return Ok(Transformed::no(LogicalPlan::Window(window)));
        }
        let rewritten = Window::try_new(exprs, window.input.clone())?;
        Ok(Transformed::yes(LogicalPlan::Window(rewritten)))
    }
}

/// Whether `expr` calls one of our (whole-partition) window functions.
fn is_lendfusion_window(expr: &Expr) -> bool {
    let inner = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        e => e,
    };
    matches!(
        inner,
        Expr::WindowFunction(w)
            if matches!(&w.fun, WindowFunctionDefinition::WindowUDF(f)
                if f.inner().is::<PartitionWindow>())
    )
}

/// `expr` as `lendfusion_rolling_avg`, keeping its output name, when it is DataFusion's `AVG`
/// of a `Float64` over `ROWS BETWEEN n PRECEDING AND CURRENT ROW` with no FILTER, DISTINCT or
/// null treatment.
fn rolling_avg_of(expr: &Expr, input: &DFSchema) -> Option<Expr> {
    let Expr::WindowFunction(w) = expr else {
        return None;
    };
    let WindowFunctionDefinition::AggregateUDF(f) = &w.fun else {
        return None;
    };
    let p = &w.params;
    let frame = &p.window_frame;
    let preceding = match (&frame.units, &frame.start_bound, &frame.end_bound) {
        (
            WindowFrameUnits::Rows,
            WindowFrameBound::Preceding(ScalarValue::UInt64(Some(n))),
            WindowFrameBound::CurrentRow,
        ) => *n,
        _ => return None,
    };
    let plain = f.inner().is::<Avg>()
        && p.args.len() == 1
        && p.filter.is_none()
        && !p.distinct
        && p.null_treatment.is_none()
        && !p.order_by.is_empty()
        && preceding <= u64::from(u32::MAX);
    if !plain || p.args[0].get_type(input).ok()? != DataType::Float64 {
        return None;
    }
    let udwf = Arc::new(rolling_avg());
    let call = Expr::WindowFunction(Box::new(WindowFunction {
        fun: WindowFunctionDefinition::WindowUDF(udwf),
        params: WindowFunctionParams {
            args: vec![p.args[0].clone(), lit(preceding as i64)],
            partition_by: p.partition_by.clone(),
            order_by: p.order_by.clone(),
            window_frame: frame.clone(),
            filter: None,
            null_treatment: None,
            distinct: false,
        },
    }));
    Some(call.alias(expr.schema_name().to_string()))
}
