//! Lending factors (SPEC §3.1): scalar functions over one row of lending data.

mod active_utilization;
mod days_to_cover;
mod dcbs;
mod demand_supply_ratio;
mod is_htb;
mod lendable_stability;
mod lending_supply;
mod market_regime;
mod on_loan_stability;
pub mod ratio;
mod rerate_direction;
mod rerate_pct;
mod short_interest;
mod short_interest_float;
mod utilization;

pub use dcbs::DEFAULT_BREAKPOINTS;

use datafusion::logical_expr::ScalarUDF;

/// Every lending factor.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        utilization::utilization(),
        active_utilization::active_utilization(),
        demand_supply_ratio::demand_supply_ratio(),
        lending_supply::lending_supply(),
        short_interest::short_interest(),
        short_interest_float::short_interest_float(),
        days_to_cover::days_to_cover(),
        on_loan_stability::on_loan_stability(),
        lendable_stability::lendable_stability(),
        rerate_pct::rerate_pct(),
        rerate_direction::rerate_direction(),
        dcbs::dcbs(),
        is_htb::is_htb(),
        market_regime::market_regime(),
    ]
}
