//! `cs_demean(x)`: subtract the cross-sectional mean.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::section::{mean, scatter_f64, valid_rows};
use crate::common::doc;
use crate::common::window::{PartitionKernel, partition_window};

#[derive(Debug)]
struct CsDemean;

impl PartitionKernel for CsDemean {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let (index, values) = valid_rows(columns[0]);
        let m = mean(&values);
        Ok(scatter_f64(rows, &index, values.iter().map(|v| v - m)))
    }
}

fn factory(_: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    Ok(Box::new(CsDemean))
}

/// The window function.
pub fn cs_demean() -> WindowUDF {
    partition_window(
        "cs_demean",
        doc(
            "Cross-sectional factors",
            "Cross-sectionally demeaned value: x - mean over the rows whose x is valid (a single \
             valid row gives 0). NULL on rows with NULL, NaN or infinite x.",
            "cs_demean(x) OVER (PARTITION BY date [, group])",
            &[("x", "the factor")],
            "```sql\nSELECT date, security_id, cs_demean(total_return) OVER (PARTITION BY date, sector) AS excess\nFROM market;\n```",
        ),
        (1, 1),
        (0, 0),
        DataType::Float64,
        factory,
    )
}
