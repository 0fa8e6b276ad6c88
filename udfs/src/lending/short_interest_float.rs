//! `short_interest_float(on_loan_qty, float_shares)`: Short interest as a share of the tradeable float.

use datafusion::logical_expr::ScalarUDF;

use super::ratio::{RatioSpec, ratio_udf};

/// `short_interest_float(on_loan_qty, float_shares)` — Short interest as a share of the tradeable float.
pub fn short_interest_float() -> ScalarUDF {
    ratio_udf(RatioSpec {
        name: "short_interest_float",
        numerator: ("on_loan_qty", "shares on loan"),
        denominator: ("float_shares", "tradeable float"),
        description: "Short interest as a share of the tradeable float.",
        example: (4.0, 80.0),
    })
}
