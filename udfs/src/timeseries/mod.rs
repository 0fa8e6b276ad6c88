//! Time-series factors (SPEC §3.2): window functions used as
//! `f(...) OVER (PARTITION BY security_id ORDER BY date)`; look-backs and look-aheads count rows
//! of the partition and any frame clause is ignored.

pub mod cohort;
mod cohort_functions;
mod fwd_return;
mod past_return;
mod returns;
mod short_cohort_near_breakeven;
mod short_cohort_otm;
mod short_cohort_pnl;
mod si_surprise;
mod squeeze_event;
mod ts_beta;
mod ts_zscore;
mod zscore;

use datafusion::logical_expr::WindowUDF;

/// Every time-series factor.
pub fn functions() -> Vec<WindowUDF> {
    vec![
        fwd_return::fwd_return(),
        past_return::past_return(),
        ts_zscore::ts_zscore(),
        si_surprise::si_surprise(),
        ts_beta::ts_beta(),
        short_cohort_otm::short_cohort_otm(),
        short_cohort_pnl::short_cohort_pnl(),
        short_cohort_near_breakeven::short_cohort_near_breakeven(),
        squeeze_event::squeeze_event(),
    ]
}
