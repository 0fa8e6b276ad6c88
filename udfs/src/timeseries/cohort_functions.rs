//! Glue between the cohort model and the three cohort window functions.

use arrow::array::{ArrayRef, Float64Array};
use datafusion::error::Result;

use super::cohort::{Cohorts, run};
use crate::common::window::{PartitionKernel, finite_array, valid};

/// Which measure of the cohorts a function reports.
#[derive(Debug, Clone, Copy)]
pub enum Measure {
    /// Share of quantity entered below today's price (shorts losing money).
    OutOfTheMoney,
    /// Quantity-weighted mean short P&L.
    Pnl,
    /// Share of quantity within `band` of break-even.
    NearBreakeven(f64),
}

/// The kernel of a cohort function.
#[derive(Debug)]
pub struct CohortKernel(pub Measure);

impl PartitionKernel for CohortKernel {
    fn evaluate(&self, columns: &[&Float64Array], _rows: usize) -> Result<ArrayRef> {
        let q = valid(columns[0]);
        let p = valid(columns[1]);
        let measure = self.0;
        let out = run(&q, &p, |c: &Cohorts, price| match measure {
            Measure::OutOfTheMoney => c.share_below(price),
            Measure::Pnl => c.mean_pnl(price),
            Measure::NearBreakeven(band) => c.share_within(price, band),
        });
        Ok(finite_array(out))
    }
}
