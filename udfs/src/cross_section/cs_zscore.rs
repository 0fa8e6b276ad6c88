//! `cs_zscore(x)`: standardise within the cross-section.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::section::{mean, scatter_f64, stddev_samp, valid_rows};
use crate::common::doc;
use crate::common::window::{PartitionKernel, partition_window};

#[derive(Debug)]
struct CsZscore;

impl PartitionKernel for CsZscore {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let (index, values) = valid_rows(columns[0]);
        let m = mean(&values);
        match stddev_samp(&values, m) {
            Some(sd) => Ok(scatter_f64(
                rows,
                &index,
                values.iter().map(|v| (v - m) / sd),
            )),
            None => Ok(scatter_f64(rows, &[], [])),
        }
    }
}

fn factory(_: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    Ok(Box::new(CsZscore))
}

/// The window function.
pub fn cs_zscore() -> WindowUDF {
    partition_window(
        "cs_zscore",
        doc(
            "Cross-sectional factors",
            "Cross-sectional z-score: (x - mean) / stddev_samp over the rows whose x is valid. \
             NULL on every row when fewer than 2 values are valid or all are equal; NULL on rows \
             with NULL, NaN or infinite x.",
            "cs_zscore(x) OVER (PARTITION BY date [, group])",
            &[("x", "the factor")],
            "```sql\nSELECT date, security_id, cs_zscore(fee_bps) OVER (PARTITION BY date) AS fee_z FROM lending;\n```",
        ),
        (1, 1),
        (0, 0),
        DataType::Float64,
        factory,
    )
}
