//! `lendable_stability(stable_lendable_qty, lendable_qty)`: Lendable stability: the share of lendable inventory held by stable funds.

use datafusion::logical_expr::ScalarUDF;

use super::ratio::{RatioSpec, ratio_udf};

/// `lendable_stability(stable_lendable_qty, lendable_qty)` — Lendable stability: the share of lendable inventory held by stable funds.
pub fn lendable_stability() -> ScalarUDF {
    ratio_udf(RatioSpec {
        name: "lendable_stability",
        numerator: (
            "stable_lendable_qty",
            "lendable shares held by stable funds",
        ),
        denominator: ("lendable_qty", "shares in lending programmes"),
        description: "Lendable stability: the share of lendable inventory held by stable funds.",
        example: (40.0, 100.0),
    })
}
