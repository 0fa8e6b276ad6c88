//! `squeeze_score(...)`: the Markit short-squeeze model score, 1 = most likely to squeeze.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::scores::{descending_rank_100, valid};
use crate::common::doc;
use crate::common::window::{PartitionKernel, finite_array, partition_window_with_flags};

#[derive(Debug)]
struct SqueezeScore;

/// A Boolean input read as 1 / 0: true when valid and non-zero, NULL = false.
fn flag(column: &Float64Array, i: usize) -> u64 {
    use arrow::array::Array;
    u64::from(column.is_valid(i) && column.value(i) != 0.0 && !column.value(i).is_nan())
}

impl PartitionKernel for SqueezeScore {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let ranks: Vec<Vec<Option<u64>>> = columns[..3]
            .iter()
            .map(|c| descending_rank_100(&valid(c)))
            .collect();
        let out = (0..rows).map(|i| {
            // composite - bonus = (sum - k * bonus) / k over the k available integer ranks:
            // compared and divided as integers, so equal scores are equal doubles.
            let (sum, k) = ranks
                .iter()
                .filter_map(|r| r[i])
                .fold((0u64, 0u64), |(s, k), r| (s + r, k + 1));
            if k == 0 {
                return None;
            }
            let bonus =
                (20 * flag(columns[3], i) + 10 * flag(columns[4], i) + 10 * flag(columns[5], i))
                    .min(30);
            let (sum, floor) = (sum as i64, (k + k * bonus) as i64);
            Some(if sum <= floor {
                1.0
            } else {
                (sum - (k * bonus) as i64) as f64 / k as f64
            })
        });
        Ok(finite_array(out))
    }
}

fn factory(_: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    Ok(Box::new(SqueezeScore))
}

/// The window function.
pub fn squeeze_score() -> WindowUDF {
    partition_window_with_flags(
        "squeeze_score",
        doc(
            "Squeeze and crowding scores",
            "The Markit Short Squeeze model score, 1 = most likely to squeeze. Each of the three \
             capital-constraint inputs (otm, otm_max20, near_breakeven) becomes a rank 1..100 where \
             1 is the highest value: ceil(100 * r_desc / n), r_desc the average-tie rank of -x among \
             the rows of the date where that input is valid. The composite is the mean of the \
             available ranks (NULL if none). Events improve it: bonus = min(30, 20*news + \
             10*earnings + 10*abnormal_volume) (Boolean inputs, NULL = false); the result is \
             max(1, composite - bonus), computed exactly (equal scores are equal doubles). Inputs \
             as in the squeeze_inputs view.",
            "squeeze_score(otm, otm_max20, near_breakeven, news, earnings, abnormal_volume) OVER (PARTITION BY date)",
            &[
                ("otm", "short_cohort_otm: share of shorts losing money"),
                ("otm_max20", "max of otm over the last 20 rows"),
                ("near_breakeven", "short_cohort_near_breakeven"),
                (
                    "news",
                    "Boolean: strongly positive, highly relevant news today",
                ),
                ("earnings", "Boolean: scheduled earnings within the window"),
                (
                    "abnormal_volume",
                    "Boolean: volume above twice its 20-row average on an up day",
                ),
            ],
            "```sql\nSELECT date, security_id,\n       squeeze_score(otm, otm_max20, near_breakeven, news, earnings, abnormal_volume)\n         OVER (PARTITION BY date) AS score\nFROM squeeze_inputs;\n```",
        ),
        (6, 6),
        DataType::Float64,
        factory,
        3,
    )
}
