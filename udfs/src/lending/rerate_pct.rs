//! `rerate_pct(rerated_value, on_loan_value)`: Re-rate percentage: the share of on-loan value whose fee was repriced since the previous day.

use datafusion::logical_expr::ScalarUDF;

use super::ratio::{RatioSpec, ratio_udf};

/// `rerate_pct(rerated_value, on_loan_value)` — Re-rate percentage: the share of on-loan value whose fee was repriced since the previous day.
pub fn rerate_pct() -> ScalarUDF {
    ratio_udf(RatioSpec {
        name: "rerate_pct",
        numerator: (
            "rerated_value",
            "USD on-loan value repriced since the previous day",
        ),
        denominator: ("on_loan_value", "USD value on loan"),
        description: "Re-rate percentage: the share of on-loan value whose fee was repriced since the previous day.",
        example: (5.0, 100.0),
    })
}
