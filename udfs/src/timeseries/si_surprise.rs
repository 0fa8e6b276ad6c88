//! `si_surprise(short_interest [, n])`: short interest against its own last year.

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::zscore::ZScore;
use crate::common::window::{PartitionKernel, partition_window};
use crate::common::{doc, integer_literal};

/// Default look-back: 252 rows (12 months of business days).
pub const DEFAULT_N: i64 = 252;

fn factory(constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    let n = match &constants[0] {
        Some(v) => integer_literal("si_surprise", v, "n", 1, 1_000_000)?,
        None => DEFAULT_N,
    };
    Ok(Box::new(ZScore { n: n as usize }))
}

/// The window function.
pub fn si_surprise() -> WindowUDF {
    partition_window(
        "si_surprise",
        doc(
            "Time-series factors",
            "Short-interest surprise: ts_zscore(short_interest, n) with n = 252 rows (12 months) by \
             default — today's short interest against the mean and sample standard deviation of \
             the n rows before it; NULL with fewer than max(2, ceil(n/2)) valid values before t, an \
             invalid value at t, or a flat history.",
            "si_surprise(short_interest [, n]) OVER (PARTITION BY security_id ORDER BY date)",
            &[
                (
                    "short_interest",
                    "short interest, e.g. short_interest(on_loan_qty, shares_outstanding)",
                ),
                (
                    "n",
                    "look-back in rows, a constant integer >= 1 (default 252)",
                ),
            ],
            "```sql\nSELECT l.date, l.security_id,\n       si_surprise(short_interest(l.on_loan_qty, m.shares_outstanding))\n         OVER (PARTITION BY l.security_id ORDER BY l.date) AS sis\nFROM lending l JOIN market m USING (date, security_id);\n```",
        ),
        (1, 1),
        (0, 1),
        DataType::Float64,
        factory,
    )
}
