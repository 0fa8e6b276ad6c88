//! `ann_return(ret [, periods_per_year])`: annualised return.

use datafusion::logical_expr::AggregateUDF;

use super::series::{SeriesStats, series_aggregate};
use crate::common::doc;

fn finish(s: &SeriesStats, periods: f64) -> Option<f64> {
    s.annualised_return(periods)
}

/// The aggregate function.
pub fn ann_return() -> AggregateUDF {
    series_aggregate(
        "ann_return",
        doc(
            "Factor evaluation",
            "Annualised return: prod(1 + ret)^(P / T) - 1 over the T valid returns (NULL, NaN and infinite returns are skipped), P periods per year (default 252). The product does not depend on order, so an ORDER BY inside the call is accepted and not needed. A compounded loss of 100 % gives -1; NULL when there is no valid return or the compounded growth is negative.",
            "ann_return(ret [, periods_per_year])",
            &[
                ("ret", "simple period return (0.01 = 1 %)"),
                (
                    "periods_per_year",
                    "constant: 252 for daily series (default), 12 monthly, 52 weekly",
                ),
            ],
            "```sql\\nSELECT ann_return(ret ORDER BY date) FROM portfolio;\\nSELECT ann_return(ret, 12) FROM monthly_portfolio;\\n```",
        ),
        true,
        finish,
    )
}
