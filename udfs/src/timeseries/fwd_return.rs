//! `fwd_return(ret, h)`: the compounded return over the next h rows.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use super::returns::compounded;
use crate::common::window::{PartitionKernel, finite_array, partition_window, required, valid};
use crate::common::{doc, integer_literal};

#[derive(Debug)]
struct FwdReturn {
    h: usize,
}

impl PartitionKernel for FwdReturn {
    fn evaluate(&self, columns: &[&Float64Array], n: usize) -> Result<ArrayRef> {
        let r = valid(columns[0]);
        // Window starting at t + 1 of length h.
        let windows = compounded(&r, self.h);
        Ok(finite_array(
            (0..n).map(|t| windows.get(t + 1).copied().flatten()),
        ))
    }
}

fn factory(constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    let h = integer_literal(
        "fwd_return",
        required(constants, 0, "fwd_return", "h")?,
        "h",
        1,
        1_000_000,
    )?;
    Ok(Box::new(FwdReturn { h: h as usize }))
}

/// The window function.
pub fn fwd_return() -> WindowUDF {
    partition_window(
        "fwd_return",
        doc(
            "Time-series factors",
            "Forward return: prod(1 + ret[t+1..t+h]) - 1 over the next h rows of the partition. \
             NULL when fewer than h rows follow or any of them is NULL, NaN or infinite. Use with \
             OVER (PARTITION BY security_id ORDER BY date); any frame clause is ignored. This is \
             the only lendfusion time-series function that looks ahead: use it for labels, never \
             for signals.",
            "fwd_return(ret, h) OVER (PARTITION BY security_id ORDER BY date)",
            &[
                ("ret", "simple daily return (0.01 = 1 %)"),
                ("h", "horizon in rows, a constant integer >= 1"),
            ],
            "```sql\nSELECT date, security_id,\n       fwd_return(total_return, 21) OVER (PARTITION BY security_id ORDER BY date) AS fwd21\nFROM market;\n```",
        ),
        (1, 1),
        (1, 1),
        DataType::Float64,
        factory,
    )
}
