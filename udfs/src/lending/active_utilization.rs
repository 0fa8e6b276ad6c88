//! `active_utilization(on_loan_value, active_lendable_value)`: Active utilization: on-loan value over the value actually available to lend (after restrictions and buffers).

use datafusion::logical_expr::ScalarUDF;

use super::ratio::{RatioSpec, ratio_udf};

/// `active_utilization(on_loan_value, active_lendable_value)` — Active utilization: on-loan value over the value actually available to lend (after restrictions and buffers).
pub fn active_utilization() -> ScalarUDF {
    ratio_udf(RatioSpec {
        name: "active_utilization",
        numerator: ("on_loan_value", "USD value on loan"),
        denominator: (
            "active_lendable_value",
            "USD value of actively available lendable shares",
        ),
        description: "Active utilization: on-loan value over the value actually available to lend (after restrictions and buffers).",
        example: (30.0, 60.0),
    })
}
