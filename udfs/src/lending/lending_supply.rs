//! `lending_supply(lendable_qty, shares_outstanding)`: Lending supply: lendable inventory as a share of shares outstanding.

use datafusion::logical_expr::ScalarUDF;

use super::ratio::{RatioSpec, ratio_udf};

/// `lending_supply(lendable_qty, shares_outstanding)` — Lending supply: lendable inventory as a share of shares outstanding.
pub fn lending_supply() -> ScalarUDF {
    ratio_udf(RatioSpec {
        name: "lending_supply",
        numerator: ("lendable_qty", "shares in lending programmes"),
        denominator: ("shares_outstanding", "shares outstanding"),
        description: "Lending supply: lendable inventory as a share of shares outstanding.",
        example: (15.0, 100.0),
    })
}
