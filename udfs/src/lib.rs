//! Every lendfusion SQL function, one file each, grouped by family:
//!
//! - [`lending`]: lending factors (SPEC §3.1), scalar;
//! - [`timeseries`]: time-series factors (SPEC §3.2), window functions over a security's rows;
//! - [`cross_section`]: cross-sectional factors (SPEC §3.3), window functions over a date's rows,
//!   and the Fama-MacBeth regression aggregate;
//! - [`evaluation`]: factor-evaluation aggregates (SPEC §3.4) and the Newey-West t-statistic;
//! - [`squeeze`]: squeeze and crowding scores (SPEC §3.5), window functions over a date's rows;
//! - [`validity`]: `valid_value`, SPEC's "invalid" as a function for comparisons in views and
//!   generated SQL;
//! - [`planning`]: plan rewrites that speed up SQL around our functions (same results).
//!
//! [`register_all`] is the one registration point the session recipe calls; every role (embedded
//! SQL, coordinator, workers) goes through it, so a function known to one is known to all.

pub mod catalog;
pub mod common;
pub mod cross_section;
pub mod evaluation;
pub mod lending;
pub mod planning;
pub mod squeeze;
pub mod timeseries;
pub mod validity;

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};

/// Name of the table function listing every lendfusion function.
pub const FUNCTIONS_TABLE: &str = "lendfusion_functions";

/// Every scalar function.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    let mut out = lending::functions();
    out.extend(validity::functions());
    out
}

/// Every window function.
pub fn window_functions() -> Vec<WindowUDF> {
    let mut out = timeseries::functions();
    out.extend(cross_section::functions());
    out.extend(squeeze::functions());
    out
}

/// Every aggregate function.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    let mut out = evaluation::functions();
    out.extend(cross_section::aggregate_functions());
    out
}

/// Register every function on a registry (what executors need to decode plans).
pub fn register_functions(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for f in scalar_functions() {
        registry.register_udf(Arc::new(f))?;
    }
    for f in window_functions()
        .into_iter()
        .chain(planning::internal_window_functions())
    {
        registry.register_udwf(Arc::new(f))?;
    }
    for f in aggregate_functions() {
        registry.register_udaf(Arc::new(f))?;
    }
    Ok(())
}

/// Add our plan rewrites ([`planning`]) to a session being built; with [`register_all`] on the
/// built state, this is the whole lendfusion setup of a session.
pub fn with_optimizer_rules(mut builder: SessionStateBuilder) -> SessionStateBuilder {
    for rule in planning::optimizer_rules() {
        builder = builder.with_optimizer_rule(rule);
    }
    for rule in planning::physical_optimizer_rules() {
        builder = builder.with_physical_optimizer_rule(rule);
    }
    builder
}

/// Register every function and the `lendfusion_functions()` table on a session state.
pub fn register_all(state: &mut SessionState) -> Result<()> {
    register_functions(state)?;
    state.register_udtf(FUNCTIONS_TABLE, Arc::new(catalog::LendfusionFunctions));
    Ok(())
}
