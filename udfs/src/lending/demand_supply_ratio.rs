//! `demand_supply_ratio(borrowed_qty, lendable_qty)`: Demand/supply ratio (DSR): total borrowing, including prime brokers, over lendable inventory; at least utilization when borrowing covers agent loans.

use datafusion::logical_expr::ScalarUDF;

use super::ratio::{RatioSpec, ratio_udf};

/// `demand_supply_ratio(borrowed_qty, lendable_qty)` — Demand/supply ratio (DSR): total borrowing, including prime brokers, over lendable inventory; at least utilization when borrowing covers agent loans.
pub fn demand_supply_ratio() -> ScalarUDF {
    ratio_udf(RatioSpec {
        name: "demand_supply_ratio",
        numerator: (
            "borrowed_qty",
            "shares borrowed from all sources, net of double counting",
        ),
        denominator: ("lendable_qty", "shares in lending programmes"),
        description: "Demand/supply ratio (DSR): total borrowing, including prime brokers, over lendable inventory; at least utilization when borrowing covers agent loans.",
        example: (120.0, 100.0),
    })
}
