//! `cs_winsorize(x, p)`: clip to the cross-section's p and 1-p quantiles.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::section::{scatter_f64, valid_rows};
use crate::common::window::{PartitionKernel, partition_window, required};
use crate::common::{doc, number_literal};

#[derive(Debug)]
struct CsWinsorize {
    p: f64,
}

/// numpy's default (`linear`) quantile of sorted values, with numpy's two-sided lerp.
pub fn quantile_linear(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let virtual_index = (n - 1) as f64 * q;
    let below = virtual_index.floor().clamp(0.0, (n - 1) as f64);
    let lo = below as usize;
    let hi = (lo + 1).min(n - 1);
    let t = virtual_index - below;
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

impl PartitionKernel for CsWinsorize {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let (index, values) = valid_rows(columns[0]);
        if values.is_empty() {
            return Ok(scatter_f64(rows, &[], []));
        }
        let mut sorted = values.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let lower = quantile_linear(&sorted, self.p);
        let upper = quantile_linear(&sorted, 1.0 - self.p);
        Ok(scatter_f64(
            rows,
            &index,
            values.iter().map(|v| v.max(lower).min(upper)),
        ))
    }
}

fn factory(constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    let name = "cs_winsorize";
    let p = number_literal(name, required(constants, 0, name, "p")?, "p")?;
    if !(0.0..=0.5).contains(&p) {
        return plan_err!("{name}: p must be between 0 and 0.5, got {p}");
    }
    Ok(Box::new(CsWinsorize { p }))
}

/// The window function.
pub fn cs_winsorize() -> WindowUDF {
    partition_window(
        "cs_winsorize",
        doc(
            "Cross-sectional factors",
            "Winsorised value: x clipped to the p and 1-p quantiles of the valid values of the \
             cross-section, quantiles by linear interpolation exactly as numpy.quantile's default \
             (virtual index (n-1)q). p is a constant in [0, 0.5]; p = 0 leaves x unchanged. NULL on \
             rows with NULL, NaN or infinite x.",
            "cs_winsorize(x, p) OVER (PARTITION BY date [, group])",
            &[
                ("x", "the factor"),
                (
                    "p",
                    "tail share to clip on each side, a constant in [0, 0.5]",
                ),
            ],
            "```sql\nSELECT date, security_id, cs_winsorize(total_return, 0.01) OVER (PARTITION BY date) AS ret_w FROM market;\n```",
        ),
        (1, 1),
        (1, 1),
        DataType::Float64,
        factory,
    )
}
