//! `information_ratio(ret [, periods_per_year])`: information ratio.

use datafusion::logical_expr::AggregateUDF;

use super::series::{SeriesStats, series_aggregate};
use crate::common::doc;

fn finish(s: &SeriesStats, periods: f64) -> Option<f64> {
    let vol = s.annualised_vol(periods)?;
    (vol > 0.0).then_some(s.annualised_return(periods)? / vol)
}

/// The aggregate function.
pub fn information_ratio() -> AggregateUDF {
    series_aggregate(
        "information_ratio",
        doc(
            "Factor evaluation",
            "Information ratio: ann_return / ann_vol of the same valid returns (the compounded annualised return over the annualised volatility), P periods per year (default 252). NULL when ann_vol is 0 or either is NULL. Use it on active (long/short or benchmark-relative) returns; ORDER BY inside the call is accepted and not needed.",
            "information_ratio(ret [, periods_per_year])",
            &[
                ("ret", "simple period return (0.01 = 1 %)"),
                (
                    "periods_per_year",
                    "constant: 252 for daily series (default), 12 monthly, 52 weekly",
                ),
            ],
            "```sql\\nSELECT information_ratio(long_short_ret ORDER BY date) FROM backtest;\\n```",
        ),
        true,
        finish,
    )
}
