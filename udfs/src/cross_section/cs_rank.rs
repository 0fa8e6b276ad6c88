//! `cs_rank(x)`: percentile rank within the cross-section.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::section::{scatter_f64, section_ranks};
use crate::common::doc;
use crate::common::window::{PartitionKernel, partition_window};

#[derive(Debug)]
struct CsRank;

impl PartitionKernel for CsRank {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let section = section_ranks(columns[0]);
        let n = section.ranks.len() as f64;
        Ok(scatter_f64(
            rows,
            &section.rows,
            section.ranks.iter().map(|r| r / n),
        ))
    }
}

fn factory(_: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    Ok(Box::new(CsRank))
}

/// The window function.
pub fn cs_rank() -> WindowUDF {
    partition_window(
        "cs_rank",
        doc(
            "Cross-sectional factors",
            "Percentile rank in the cross-section: r / n with r the average-tie rank (1 = smallest) \
             among the n rows whose x is valid, in (0, 1] — pandas rank(pct=True). Rows with NULL, \
             NaN or infinite x are left out and get NULL. Ties share their mean rank, so a \
             zero-heavy or discrete factor never fails.",
            "cs_rank(x) OVER (PARTITION BY date [, group])",
            &[("x", "the factor")],
            "```sql\nSELECT date, security_id,\n       cs_rank(utilization(on_loan_qty, lendable_qty)) OVER (PARTITION BY date) AS util_rank\nFROM lending;\n```",
        ),
        (1, 1),
        (0, 0),
        DataType::Float64,
        factory,
    )
}
