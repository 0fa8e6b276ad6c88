//! `squeeze_risk_score(...)`: how likely shorts are to be forced out, 0..100.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::scores::{pct_rank, rank_of_mean, valid};
use crate::common::doc;
use crate::common::window::{PartitionKernel, finite_array, partition_window};

#[derive(Debug)]
struct SqueezeRiskScore;

impl PartitionKernel for SqueezeRiskScore {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let crowded = pct_rank(&valid(columns[0]));
        let fee_change = pct_rank(&valid(columns[1]));
        let (p5, p20, p60) = (valid(columns[2]), valid(columns[3]), valid(columns[4]));
        let pain: Vec<Option<f64>> = (0..rows)
            .map(|i| {
                let v = -(0.5 * p5[i]? + 0.3 * p20[i]? + 0.2 * p60[i]?);
                v.is_finite().then_some(v)
            })
            .collect();
        let pain = pct_rank(&pain);
        Ok(finite_array(rank_of_mean(
            "squeeze_risk_score",
            &[crowded, fee_change, pain],
            rows,
        )?))
    }
}

fn factory(_: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    Ok(Box::new(SqueezeRiskScore))
}

/// The window function.
pub fn squeeze_risk_score() -> WindowUDF {
    partition_window(
        "squeeze_risk_score",
        doc(
            "Squeeze and crowding scores",
            "Squeeze-risk score 0..100, higher = shorts more likely to be forced out: the mean of \
             cs_rank(crowded_score), cs_rank(fee_change) and cs_rank(-(0.5*pnl5 + 0.3*pnl20 + \
             0.2*pnl60)) over the inputs available on the row (the P&L term needs all three), then \
             round(100 * cs_rank(mean)) over the rows of the date (halves away from zero). NULL when \
             no input is available. The ranks, their means and the rounding are exact (integer \
             arithmetic), so means that are equal are ties.",
            "squeeze_risk_score(crowded_score, fee_change, short_pnl_5d, short_pnl_20d, short_pnl_60d) OVER (PARTITION BY date)",
            &[
                ("crowded_score", "crowded_score of the row"),
                ("fee_change", "change of the borrow fee"),
                (
                    "short_pnl_5d",
                    "short P&L over 5 days (positive = shorts in profit)",
                ),
                ("short_pnl_20d", "short P&L over 20 days"),
                ("short_pnl_60d", "short P&L over 60 days"),
            ],
            "```sql\nSELECT date, security_id,\n       squeeze_risk_score(crowded, fee_chg, pnl5, pnl20, pnl60) OVER (PARTITION BY date) AS risk\nFROM panel;\n```",
        ),
        (5, 5),
        (0, 0),
        DataType::Float64,
        factory,
    )
}
