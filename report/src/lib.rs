//! The factor report of SPEC §4: one implementation for `lendfusion report` and the Flight
//! `FactorReport` command.
//!
//! The engine (embedded or a cluster, through [`SqlRunner`]) computes the observations — per
//! rebalance date and universe member, the factor known that day (its cross-sections within
//! the sample, its time series over each security's full history) and the forward return that
//! follows ([`observations`]); the report's numbers come from lendfusion's own SQL functions
//! over those rows ([`metrics`]); [`output`] writes the tables and an HTML tearsheet.

pub mod metrics;
pub mod observations;
pub mod options;
pub mod output;
pub mod svg;

use arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

pub use metrics::ReportTables;
pub use options::{DEFAULT_HTB_BPS, Direction, Rebalance, ReportOptions};

/// Something that runs SQL and returns the whole (small) result.
#[async_trait::async_trait]
pub trait SqlRunner: Send + Sync {
    /// Run `sql` and collect its batches.
    async fn collect(&self, sql: &str) -> Result<Vec<RecordBatch>>;
}

#[async_trait::async_trait]
impl SqlRunner for SessionContext {
    async fn collect(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        lendfusion_core::query::collect_sql(self, sql).await
    }
}

/// Compute a report on `engine`.
pub async fn run(engine: &dyn SqlRunner, options: &ReportOptions) -> Result<ReportTables> {
    options
        .validate()
        .map_err(datafusion::error::DataFusionError::Plan)?;
    let observations = engine
        .collect(&observations::observations_sql(options)?)
        .await?;
    metrics::compute(options, observations).await
}
