//! `sharpe_ratio(ret [, periods_per_year])`: sharpe ratio (no risk-free rate).

use datafusion::logical_expr::AggregateUDF;

use super::series::{SeriesStats, series_aggregate};
use crate::common::doc;

fn finish(s: &SeriesStats, periods: f64) -> Option<f64> {
    let sd = s.stddev_samp()?;
    (sd > 0.0).then(|| s.mean / sd * periods.sqrt())
}

/// The aggregate function.
pub fn sharpe_ratio() -> AggregateUDF {
    series_aggregate(
        "sharpe_ratio",
        doc(
            "Factor evaluation",
            "Sharpe ratio (no risk-free rate): mean(ret) / stddev_samp(ret) * sqrt(P) over the valid returns, P periods per year (default 252). NULL with fewer than 2 valid returns or zero standard deviation.",
            "sharpe_ratio(ret [, periods_per_year])",
            &[
                ("ret", "simple period return (0.01 = 1 %)"),
                (
                    "periods_per_year",
                    "constant: 252 for daily series (default), 12 monthly, 52 weekly",
                ),
            ],
            "```sql\\nSELECT sharpe_ratio(ret) FROM portfolio;\\n```",
        ),
        true,
        finish,
    )
}
