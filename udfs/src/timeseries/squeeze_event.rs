//! `squeeze_event(ret, on_loan_qty)`: the Markit short-squeeze event definition.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use crate::common::doc;
use crate::common::window::{PartitionKernel, partition_window, valid};
use crate::common::window_product::prefix_counts;

/// Rows of return history before the move used for sigma.
const SIGMA_ROWS: usize = 60;
/// Rows of strictly falling quantity required after t.
const COVER_ROWS: usize = 5;

#[derive(Debug)]
struct SqueezeEvent;

fn stddev_samp(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt()
}

impl PartitionKernel for SqueezeEvent {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let ret = valid(columns[0]);
        let qty = valid(columns[1]);
        let bad_ret = prefix_counts(ret.iter().map(Option::is_none));
        let bad_qty = prefix_counts(qty.iter().map(Option::is_none));
        let all_valid = |bad: &[u32], from: usize, to: usize| bad[to] == bad[from];
        let history = SIGMA_ROWS + 2; // rows t-62 ..= t
        let mut window = Vec::with_capacity(SIGMA_ROWS);
        let out: BooleanArray = (0..rows)
            .map(|t| {
                if t < history || t + COVER_ROWS >= rows {
                    return None;
                }
                if !all_valid(&bad_ret, t - history, t + 1)
                    || !all_valid(&bad_qty, t, t + COVER_ROWS + 1)
                {
                    return None;
                }
                let r: Vec<f64> = (t - 2..=t).filter_map(|i| ret[i]).collect();
                let move3 = (1.0 + r[0]) * (1.0 + r[1]) * (1.0 + r[2]) - 1.0;
                window.clear();
                window.extend((t - history..t - 2).filter_map(|i| ret[i]));
                let sigma = stddev_samp(&window);
                let q: Vec<f64> = (t..=t + COVER_ROWS).filter_map(|i| qty[i]).collect();
                let covering = q.windows(2).all(|w| w[1] < w[0]);
                Some(move3 > 3.0 * sigma * 3f64.sqrt() && covering)
            })
            .collect();
        Ok(Arc::new(out))
    }
}

fn factory(_constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    Ok(Box::new(SqueezeEvent))
}

/// The window function.
pub fn squeeze_event() -> WindowUDF {
    partition_window(
        "squeeze_event",
        doc(
            "Time-series factors",
            "Short-squeeze event at row t (after the Markit definition): the 3-day return \
             prod(1 + ret[t-2..t]) - 1 exceeds 3 * sigma * sqrt(3), sigma = stddev_samp(ret[t-62..t-3]) \
             (the 60 rows before the move), and on_loan_qty strictly decreases on each of the next 5 \
             rows (q[t+1] < q[t], ..., q[t+5] < q[t+4]). NULL where any of ret[t-62..t] or \
             q[t..t+5] is missing, NULL, NaN or infinite (the first 62 and the last 5 rows of a \
             partition are always NULL). Restricting to heavily shorted names is the query's job.",
            "squeeze_event(ret, on_loan_qty) OVER (PARTITION BY security_id ORDER BY date)",
            &[
                ("ret", "simple daily return"),
                ("on_loan_qty", "shares on loan"),
            ],
            "```sql\nSELECT l.date, l.security_id\nFROM (SELECT l.date, l.security_id,\n             squeeze_event(m.total_return, l.on_loan_qty) OVER (PARTITION BY l.security_id ORDER BY l.date) AS squeeze\n      FROM lending l JOIN market m USING (date, security_id)) l\nWHERE squeeze;\n```",
        ),
        (2, 2),
        (0, 0),
        DataType::Boolean,
        factory,
    )
}
