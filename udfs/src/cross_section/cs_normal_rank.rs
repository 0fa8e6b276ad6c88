//! `cs_normal_rank(x)`: ranks mapped to standard normal scores.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::section::{scatter_f64, section_ranks};
use crate::common::doc;
use crate::common::normal::inverse_normal_cdf;
use crate::common::window::{PartitionKernel, partition_window};

#[derive(Debug)]
struct CsNormalRank;

impl PartitionKernel for CsNormalRank {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let section = section_ranks(columns[0]);
        let n = section.ranks.len() as f64;
        let scores = section
            .ranks
            .iter()
            .map(|r| inverse_normal_cdf((r - 0.5) / n).unwrap_or(f64::NAN));
        Ok(scatter_f64(rows, &section.rows, scores))
    }
}

fn factory(_: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    Ok(Box::new(CsNormalRank))
}

/// The window function.
pub fn cs_normal_rank() -> WindowUDF {
    partition_window(
        "cs_normal_rank",
        doc(
            "Cross-sectional factors",
            "Rank-based normal score: Phi^-1((r - 0.5) / n), the standard normal quantile of the \
             average-tie rank r among the n rows whose x is valid (scipy norm.ppf; accurate to about \
             1e-15). NULL on rows with NULL, NaN or infinite x.",
            "cs_normal_rank(x) OVER (PARTITION BY date [, group])",
            &[("x", "the factor")],
            "```sql\nSELECT date, security_id, cs_normal_rank(fee_bps) OVER (PARTITION BY date) AS fee_score FROM lending;\n```",
        ),
        (1, 1),
        (0, 0),
        DataType::Float64,
        factory,
    )
}
