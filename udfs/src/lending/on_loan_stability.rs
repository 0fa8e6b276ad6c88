//! `on_loan_stability(stable_on_loan_qty, on_loan_qty)`: On-loan stability: the share of loans lent by stable funds (recall risk is lower when high).

use datafusion::logical_expr::ScalarUDF;

use super::ratio::{RatioSpec, ratio_udf};

/// `on_loan_stability(stable_on_loan_qty, on_loan_qty)` — On-loan stability: the share of loans lent by stable funds (recall risk is lower when high).
pub fn on_loan_stability() -> ScalarUDF {
    ratio_udf(RatioSpec {
        name: "on_loan_stability",
        numerator: (
            "stable_on_loan_qty",
            "on-loan shares lent by stable (low-turnover) funds",
        ),
        denominator: ("on_loan_qty", "shares on loan"),
        description: "On-loan stability: the share of loans lent by stable funds (recall risk is lower when high).",
        example: (30.0, 100.0),
    })
}
