//! `crowded_score(...)`: how crowded a short is, 0..100.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::scores::{RankFractions, pct_rank, rank_of_mean, valid};
use crate::common::doc;
use crate::common::window::{PartitionKernel, finite_array, partition_window};

#[derive(Debug)]
struct CrowdedScore;

impl PartitionKernel for CrowdedScore {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let ranks: Vec<RankFractions> = columns.iter().map(|c| pct_rank(&valid(c))).collect();
        Ok(finite_array(rank_of_mean("crowded_score", &ranks, rows)?))
    }
}

fn factory(_: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    Ok(Box::new(CrowdedScore))
}

/// The window function.
pub fn crowded_score() -> WindowUDF {
    partition_window(
        "crowded_score",
        doc(
            "Squeeze and crowding scores",
            "Crowded-short score 0..100: each input's cs_rank within the date (r / n among its valid \
             values), their mean over the inputs available on the row, then round(100 * cs_rank(mean)) \
             over the rows that have a mean (rounding halves away from zero, as SQL round). NULL when \
             no input is valid. Ranks are fractions of integers and all of this is done in exact \
             integer arithmetic, so means that are equal are ties.",
            "crowded_score(short_value, fee_bps, days_to_cover, short_interest_float) OVER (PARTITION BY date)",
            &[
                ("short_value", "USD value on loan"),
                ("fee_bps", "borrow fee, bps"),
                ("days_to_cover", "days to cover"),
                (
                    "short_interest_float",
                    "short interest as a share of the float",
                ),
            ],
            "```sql\nSELECT date, security_id,\n       crowded_score(on_loan_value, fee_bps, dtc, sif) OVER (PARTITION BY date) AS crowded\nFROM panel;\n```",
        ),
        (4, 4),
        (0, 0),
        DataType::Float64,
        factory,
    )
}
