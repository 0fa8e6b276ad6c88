//! `ts_zscore(x, n)`: the z-score of today's value against the n rows before it.

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::zscore::ZScore;
use crate::common::window::{PartitionKernel, partition_window, required};
use crate::common::{doc, integer_literal};

fn factory(constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    let name = "ts_zscore";
    let n = integer_literal(name, required(constants, 0, name, "n")?, "n", 1, 1_000_000)?;
    Ok(Box::new(ZScore { n: n as usize }))
}

/// The window function.
pub fn ts_zscore() -> WindowUDF {
    partition_window(
        "ts_zscore",
        doc(
            "Time-series factors",
            "Trailing z-score: (x[t] - mean) / stddev_samp, mean and sample standard deviation \
             taken over the valid values among the n rows before t (row t itself excluded). NULL \
             unless at least max(2, ceil(n/2)) such values exist, x[t] is valid and the standard \
             deviation is above zero (all-equal history gives NULL). Any frame clause is ignored.",
            "ts_zscore(x, n) OVER (PARTITION BY security_id ORDER BY date)",
            &[
                ("x", "the series"),
                ("n", "look-back in rows, a constant integer >= 1"),
            ],
            "```sql\nSELECT date, security_id,\n       ts_zscore(fee_bps, 60) OVER (PARTITION BY security_id ORDER BY date) AS fee_z\nFROM lending;\n```",
        ),
        (1, 1),
        (1, 1),
        DataType::Float64,
        factory,
    )
}
