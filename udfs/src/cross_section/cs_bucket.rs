//! `cs_bucket(x, k)`: quantile bucket 1..k within the cross-section.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::section::{scatter_i32, section_ranks};
use crate::common::window::{PartitionKernel, partition_window, required};
use crate::common::{doc, integer_literal};

#[derive(Debug)]
struct CsBucket {
    k: i64,
}

impl PartitionKernel for CsBucket {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let section = section_ranks(columns[0]);
        let n = section.ranks.len() as i64;
        // ceil(k * r / n) in integers: 2r is an integer, so ceil(k * 2r / 2n) is exact.
        let buckets = section.ranks.iter().map(|r| {
            let twice_r = (2.0 * r) as i64;
            let num = self.k * twice_r;
            let den = 2 * n;
            ((num + den - 1) / den).clamp(1, self.k) as i32
        });
        Ok(scatter_i32(rows, &section.rows, buckets))
    }
}

fn factory(constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    let name = "cs_bucket";
    let k = integer_literal(name, required(constants, 0, name, "k")?, "k", 1, 1_000_000)?;
    Ok(Box::new(CsBucket { k }))
}

/// The window function.
pub fn cs_bucket() -> WindowUDF {
    partition_window(
        "cs_bucket",
        doc(
            "Cross-sectional factors",
            "Quantile bucket: ceil(k * r / n) in 1..k with r the average-tie rank among the n rows \
             whose x is valid (k = 10 gives deciles, 1 = lowest). Computed in exact integer \
             arithmetic; ties always land in the same bucket, so discrete or zero-heavy factors \
             never fail. NULL on rows with NULL, NaN or infinite x. Returns Int32.",
            "cs_bucket(x, k) OVER (PARTITION BY date [, group])",
            &[
                ("x", "the factor"),
                ("k", "number of buckets, a constant integer >= 1"),
            ],
            "```sql\nSELECT date, security_id, cs_bucket(fee_bps, 10) OVER (PARTITION BY date) AS fee_decile FROM lending;\n```",
        ),
        (1, 1),
        (1, 1),
        DataType::Int32,
        factory,
    )
}
