//! `short_cohort_near_breakeven(on_loan_qty, price [, band])`: shorts close to break-even.

use arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::cohort_functions::{CohortKernel, Measure};
use crate::common::window::{PartitionKernel, partition_window};
use crate::common::{doc, number_literal};

/// Default band: 5 %.
pub const DEFAULT_BAND: f64 = 0.05;

fn factory(constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    let name = "short_cohort_near_breakeven";
    let band = match &constants[0] {
        Some(v) => number_literal(name, v, "band")?,
        None => DEFAULT_BAND,
    };
    if band < 0.0 {
        return plan_err!("{name}: band must be zero or positive, got {band}");
    }
    Ok(Box::new(CohortKernel(Measure::NearBreakeven(band))))
}

/// The window function.
pub fn short_cohort_near_breakeven() -> WindowUDF {
    partition_window(
        "short_cohort_near_breakeven",
        doc(
            "Time-series factors",
            "Share of the shorted quantity near break-even under the short cohort model: \
             quantity with abs((p_i - p_t) / p_i) <= band over the total, band 0.05 by default (a \
             constant >= 0). Same cohort rules and NULLs as short_cohort_otm.",
            "short_cohort_near_breakeven(on_loan_qty, price [, band]) OVER (PARTITION BY security_id ORDER BY date)",
            &[
                ("on_loan_qty", "shares on loan (short position proxy)"),
                ("price", "closing price"),
                (
                    "band",
                    "relative distance from the entry price, a constant >= 0 (default 0.05)",
                ),
            ],
            "```sql\nSELECT l.date, l.security_id,\n       short_cohort_near_breakeven(l.on_loan_qty, m.close, 0.05)\n         OVER (PARTITION BY l.security_id ORDER BY l.date) AS near_breakeven\nFROM lending l JOIN market m USING (date, security_id);\n```",
        ),
        (2, 2),
        (0, 1),
        DataType::Float64,
        factory,
    )
}
