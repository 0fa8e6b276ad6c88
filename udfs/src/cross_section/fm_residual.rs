//! `fm_residual(y, x1, ..., xk)`: the factor neutralised against regressors, per cross-section.

use arrow::array::{Array, ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::section::scatter_f64;
use crate::common::doc;
use crate::common::ols::Qr;
use crate::common::window::{PartitionKernel, partition_window};

/// Most regressors `fm_residual` and `fm_coefficients` take.
pub const MAX_REGRESSORS: usize = 8;

#[derive(Debug)]
struct FmResidual;

impl PartitionKernel for FmResidual {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let finite = |c: &Float64Array, i: usize| c.is_valid(i) && c.value(i).is_finite();
        let used: Vec<usize> = (0..rows)
            .filter(|i| columns.iter().all(|c| finite(c, *i)))
            .collect();
        let gather = |c: &Float64Array| -> Vec<f64> {
            let values = c.values();
            used.iter().map(|&i| values[i]).collect()
        };
        let xs: Vec<Vec<f64>> = columns[1..].iter().map(|c| gather(c)).collect();
        let y = gather(columns[0]);
        let x_columns: Vec<&[f64]> = xs.iter().map(Vec::as_slice).collect();
        let Some(b) = Qr::from_columns(&x_columns, &y).coefficients() else {
            return Ok(scatter_f64(rows, &[], []));
        };
        let residuals = y.iter().enumerate().map(|(i, yi)| {
            let fitted = b[0]
                + xs.iter()
                    .enumerate()
                    .map(|(j, column)| b[j + 1] * column[i])
                    .sum::<f64>();
            yi - fitted
        });
        Ok(scatter_f64(rows, &used, residuals))
    }
}

fn factory(_: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    Ok(Box::new(FmResidual))
}

/// The window function.
pub fn fm_residual() -> WindowUDF {
    partition_window(
        "fm_residual",
        doc(
            "Cross-sectional factors",
            "Fama-MacBeth first stage: the residual of the OLS of y on an intercept and x1..xk \
             (1 <= k <= 8) over the rows of the cross-section where y and every x are valid — the \
             factor neutralised against the regressors. NULL on other rows, and on every row when \
             n <= k + 1 or [1, X] is rank-deficient (numerical rank below k + 1 with numpy's \
             matrix_rank tolerance sigma_max * max(n, k + 1) * 2.22e-16). Solved by Householder QR \
             (Givens rotations where squares would overflow), not normal equations.",
            "fm_residual(y, x1 [, x2, ..., x8]) OVER (PARTITION BY date [, group])",
            &[
                ("y", "the factor to neutralise"),
                ("x1..xk", "regressors (1 to 8)"),
            ],
            "```sql\nSELECT date, security_id,\n       fm_residual(si, ln(market_cap), book_to_market) OVER (PARTITION BY date) AS si_resid\nFROM panel;\n```",
        ),
        (2, MAX_REGRESSORS + 1),
        (0, 0),
        DataType::Float64,
        factory,
    )
}
