//! `days_to_cover(on_loan_qty, avg_daily_volume)`: Days to cover: days of average volume needed to buy back the shares on loan.

use datafusion::logical_expr::ScalarUDF;

use super::ratio::{RatioSpec, ratio_udf};

/// `days_to_cover(on_loan_qty, avg_daily_volume)` — Days to cover: days of average volume needed to buy back the shares on loan.
pub fn days_to_cover() -> ScalarUDF {
    ratio_udf(RatioSpec {
        name: "days_to_cover",
        numerator: ("on_loan_qty", "shares on loan"),
        denominator: (
            "avg_daily_volume",
            "average daily traded volume (e.g. a 30-row AVG window)",
        ),
        description: "Days to cover: days of average volume needed to buy back the shares on loan.",
        example: (500.0, 200.0),
    })
}
