//! Data validity: SPEC §1's "invalid" (NULL, NaN, ±infinity) as a SQL function, for views and
//! generated SQL whose comparisons must never be satisfied by an invalid value.

mod valid_value;

use datafusion::logical_expr::ScalarUDF;

/// Every validity function.
pub fn functions() -> Vec<ScalarUDF> {
    vec![valid_value::valid_value()]
}
