//! `max_drawdown(ret ORDER BY date)`: the worst peak-to-trough loss of the compounded series.

use datafusion::logical_expr::AggregateUDF;

use super::ordered::ordered_aggregate;
use crate::common::doc;

fn finish(returns: &[f64], _param: Option<i64>) -> Option<f64> {
    if returns.is_empty() {
        return None;
    }
    let (mut wealth, mut peak, mut worst) = (1.0f64, 1.0f64, 0.0f64);
    for r in returns {
        wealth *= 1.0 + r;
        peak = peak.max(wealth);
        worst = worst.min(wealth / peak - 1.0);
    }
    Some(worst)
}

/// The aggregate function.
pub fn max_drawdown() -> AggregateUDF {
    ordered_aggregate(
        "max_drawdown",
        doc(
            "Factor evaluation",
            "Maximum drawdown: min over t of W_t / max_{s<=t} W_s - 1 with W_0 = 1 and \
             W_t = prod(1 + ret[1..t]) in ORDER BY order; 0 or negative. Invalid returns are \
             skipped; NULL when there is none. Correct across partitions: values are sorted by the \
             ORDER BY key, so always give ORDER BY date.",
            "max_drawdown(ret ORDER BY date)",
            &[("ret", "simple period return")],
            "```sql\n> SELECT max_drawdown(r ORDER BY d) FROM (VALUES (1, 0.1), (2, -0.5), (3, 0.2)) AS t(d, r);\n-0.5\n```",
        ),
        None,
        finish,
    )
}
