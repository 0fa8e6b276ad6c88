//! `hit_rate(ret)`: hit rate.

use datafusion::logical_expr::AggregateUDF;

use super::series::{SeriesStats, series_aggregate};
use crate::common::doc;

fn finish(s: &SeriesStats, _periods: f64) -> Option<f64> {
    (s.n > 0.0).then(|| s.positive / s.n)
}

/// The aggregate function.
pub fn hit_rate() -> AggregateUDF {
    series_aggregate(
        "hit_rate",
        doc(
            "Factor evaluation",
            "Hit rate: the share of valid returns that are above zero (a zero return is not a hit). NULL when there is no valid return.",
            "hit_rate(ret)",
            &[("ret", "simple period return")],
            "```sql\\nSELECT hit_rate(ret) FROM portfolio;\\n```",
        ),
        false,
        finish,
    )
}
