//! `short_cohort_pnl(on_loan_qty, price)`: the mean P&L of open shorts.

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::cohort_functions::{CohortKernel, Measure};
use crate::common::doc;
use crate::common::window::{PartitionKernel, partition_window};

fn factory(_constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    Ok(Box::new(CohortKernel(Measure::Pnl)))
}

/// The window function.
pub fn short_cohort_pnl() -> WindowUDF {
    partition_window(
        "short_cohort_pnl",
        doc(
            "Time-series factors",
            "Quantity-weighted mean short P&L under the short cohort model: \
             sum(q_i * (p_i - p_t) / p_i) / sum(q_i); positive means the shorts are in profit. \
             Same cohort rules and NULLs as short_cohort_otm.",
            "short_cohort_pnl(on_loan_qty, price) OVER (PARTITION BY security_id ORDER BY date)",
            &[
                ("on_loan_qty", "shares on loan (short position proxy)"),
                ("price", "closing price"),
            ],
            "```sql\nSELECT l.date, l.security_id,\n       short_cohort_pnl(l.on_loan_qty, m.close) OVER (PARTITION BY l.security_id ORDER BY l.date) AS short_pnl\nFROM lending l JOIN market m USING (date, security_id);\n```",
        ),
        (2, 2),
        (0, 0),
        DataType::Float64,
        factory,
    )
}
