//! Squeeze and crowding scores (SPEC §3.5): window functions used as
//! `f(...) OVER (PARTITION BY date)`.

mod crowded_score;
mod scores;
mod squeeze_risk_score;
mod squeeze_score;

use datafusion::logical_expr::WindowUDF;

/// Every score.
pub fn functions() -> Vec<WindowUDF> {
    vec![
        squeeze_score::squeeze_score(),
        crowded_score::crowded_score(),
        squeeze_risk_score::squeeze_risk_score(),
    ]
}
