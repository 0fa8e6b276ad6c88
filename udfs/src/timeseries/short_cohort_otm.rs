//! `short_cohort_otm(on_loan_qty, price)`: the share of shorts that are losing money.

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::cohort_functions::{CohortKernel, Measure};
use crate::common::doc;
use crate::common::window::{PartitionKernel, partition_window};

fn factory(_constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    Ok(Box::new(CohortKernel(Measure::OutOfTheMoney)))
}

/// The window function.
pub fn short_cohort_otm() -> WindowUDF {
    partition_window(
        "short_cohort_otm",
        doc(
            "Time-series factors",
            "Share of the shorted quantity that is losing money under the short cohort model: \
             sum(q_i where p_i < p_t) / sum(q_i). Cohorts: the first row with valid quantity and \
             price opens (q, p); later, an increase d = q_t - q_prev opens (d, p_t) and a decrease \
             scales every cohort by q_t / q_prev (pro-rata cover). Rows with an invalid quantity or \
             price (NULL, NaN, infinite, negative quantity, price <= 0) return NULL and leave the \
             cohorts unchanged; a total of 0 returns NULL. Any frame clause is ignored.",
            "short_cohort_otm(on_loan_qty, price) OVER (PARTITION BY security_id ORDER BY date)",
            &[
                ("on_loan_qty", "shares on loan (short position proxy)"),
                ("price", "closing price"),
            ],
            "```sql\nSELECT l.date, l.security_id,\n       short_cohort_otm(l.on_loan_qty, m.close) OVER (PARTITION BY l.security_id ORDER BY l.date) AS otm\nFROM lending l JOIN market m USING (date, security_id);\n```",
        ),
        (2, 2),
        (0, 0),
        DataType::Float64,
        factory,
    )
}
