//! `short_interest(on_loan_qty, shares_outstanding)`: Short interest proxy: shares on loan as a share of shares outstanding.

use datafusion::logical_expr::ScalarUDF;

use super::ratio::{RatioSpec, ratio_udf};

/// `short_interest(on_loan_qty, shares_outstanding)` — Short interest proxy: shares on loan as a share of shares outstanding.
pub fn short_interest() -> ScalarUDF {
    ratio_udf(RatioSpec {
        name: "short_interest",
        numerator: ("on_loan_qty", "shares on loan"),
        denominator: ("shares_outstanding", "shares outstanding"),
        description: "Short interest proxy: shares on loan as a share of shares outstanding.",
        example: (4.0, 100.0),
    })
}
