//! `past_return(ret, n [, skip])`: the compounded return over a trailing window.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::returns::compounded;
use crate::common::window::{PartitionKernel, finite_array, partition_window, required, valid};
use crate::common::{doc, integer_literal};

#[derive(Debug)]
struct PastReturn {
    n: usize,
    skip: usize,
}

impl PartitionKernel for PastReturn {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let r = valid(columns[0]);
        // Rows t-n+1 ..= t-skip: a window of n - skip rows starting at t - n + 1.
        let windows = compounded(&r, self.n - self.skip);
        Ok(finite_array((0..rows).map(|t| {
            (t + 1)
                .checked_sub(self.n)
                .and_then(|start| windows.get(start).copied().flatten())
        })))
    }
}

fn factory(constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    let name = "past_return";
    let n = integer_literal(name, required(constants, 0, name, "n")?, "n", 1, 1_000_000)?;
    let skip = match &constants[1] {
        Some(v) => integer_literal(name, v, "skip", 0, n - 1)?,
        None => 0,
    };
    Ok(Box::new(PastReturn {
        n: n as usize,
        skip: skip as usize,
    }))
}

/// The window function.
pub fn past_return() -> WindowUDF {
    partition_window(
        "past_return",
        doc(
            "Time-series factors",
            "Past return: prod(1 + ret[t-n+1 .. t-skip]) - 1, the compounded return of the n rows \
             ending at t, leaving out the last `skip` of them (default 0). NULL when fewer than n-1 \
             rows precede t or any used value is NULL, NaN or infinite; skip must be from 0 to n-1. \
             12-1 momentum is past_return(ret, 252, 21). Any frame clause is ignored.",
            "past_return(ret, n [, skip]) OVER (PARTITION BY security_id ORDER BY date)",
            &[
                ("ret", "simple daily return"),
                ("n", "window length in rows, a constant integer >= 1"),
                (
                    "skip",
                    "most recent rows to leave out, a constant integer 0..n-1 (default 0)",
                ),
            ],
            "```sql\nSELECT date, security_id,\n       past_return(total_return, 252, 21) OVER (PARTITION BY security_id ORDER BY date) AS mom_12_1\nFROM market;\n```",
        ),
        (1, 1),
        (1, 2),
        DataType::Float64,
        factory,
    )
}
