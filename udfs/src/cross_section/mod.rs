//! Cross-sectional factors (SPEC §3.3): window functions used as
//! `f(...) OVER (PARTITION BY date [, group ...])`; rows whose inputs are invalid are left out of
//! the cross-section and get NULL.

mod cs_bucket;
mod cs_demean;
mod cs_normal_rank;
mod cs_rank;
pub mod cs_winsorize;
mod cs_zscore;
mod fm_coefficients;
pub mod fm_residual;
pub mod section;

use datafusion::logical_expr::{AggregateUDF, WindowUDF};

/// Every cross-sectional window function.
pub fn functions() -> Vec<WindowUDF> {
    vec![
        cs_rank::cs_rank(),
        cs_zscore::cs_zscore(),
        cs_demean::cs_demean(),
        cs_normal_rank::cs_normal_rank(),
        cs_bucket::cs_bucket(),
        cs_winsorize::cs_winsorize(),
        fm_residual::fm_residual(),
    ]
}

/// The Fama-MacBeth regression aggregate.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    vec![fm_coefficients::fm_coefficients()]
}
