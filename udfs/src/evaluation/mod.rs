//! Factor evaluation (SPEC §3.4) and the Fama-MacBeth second stage: aggregate functions.

mod ann_return;
mod ann_vol;
mod hit_rate;
mod information_ratio;
mod max_drawdown;
pub mod nw_tstat;
mod ordered;
mod series;
mod sharpe_ratio;
pub mod spearman_ic;

use datafusion::logical_expr::AggregateUDF;

/// Every evaluation aggregate.
pub fn functions() -> Vec<AggregateUDF> {
    vec![
        spearman_ic::spearman_ic(),
        ann_return::ann_return(),
        ann_vol::ann_vol(),
        sharpe_ratio::sharpe_ratio(),
        information_ratio::information_ratio(),
        max_drawdown::max_drawdown(),
        hit_rate::hit_rate(),
        nw_tstat::nw_tstat(),
    ]
}
