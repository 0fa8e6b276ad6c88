//! `ann_vol(ret [, periods_per_year])`: annualised volatility.

use datafusion::logical_expr::AggregateUDF;

use super::series::{SeriesStats, series_aggregate};
use crate::common::doc;

fn finish(s: &SeriesStats, periods: f64) -> Option<f64> {
    s.annualised_vol(periods)
}

/// The aggregate function.
pub fn ann_vol() -> AggregateUDF {
    series_aggregate(
        "ann_vol",
        doc(
            "Factor evaluation",
            "Annualised volatility: stddev_samp(ret) * sqrt(P) over the valid returns, P periods per year (default 252). NULL with fewer than 2 valid returns.",
            "ann_vol(ret [, periods_per_year])",
            &[
                ("ret", "simple period return (0.01 = 1 %)"),
                (
                    "periods_per_year",
                    "constant: 252 for daily series (default), 12 monthly, 52 weekly",
                ),
            ],
            "```sql\\nSELECT ann_vol(ret) FROM portfolio;\\n```",
        ),
        true,
        finish,
    )
}
