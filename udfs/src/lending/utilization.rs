//! `utilization(on_loan_qty, lendable_qty)`: Utilization: the share of lendable inventory that is on loan.

use datafusion::logical_expr::ScalarUDF;

use super::ratio::{RatioSpec, ratio_udf};

/// `utilization(on_loan_qty, lendable_qty)` — Utilization: the share of lendable inventory that is on loan.
pub fn utilization() -> ScalarUDF {
    ratio_udf(RatioSpec {
        name: "utilization",
        numerator: ("on_loan_qty", "shares on loan from agent lenders"),
        denominator: ("lendable_qty", "shares in lending programmes"),
        description: "Utilization: the share of lendable inventory that is on loan.",
        example: (25.0, 100.0),
    })
}
