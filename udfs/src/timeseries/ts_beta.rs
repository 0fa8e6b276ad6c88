//! `ts_beta(ret, market_ret, n)`: rolling OLS beta.

use arrow::array::{ArrayRef, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::WindowUDF;

use crate::common::sliding::{CoMoments, SlidingRange};
use crate::common::window::{PartitionKernel, finite_array, partition_window, required, valid};
use crate::common::{doc, integer_literal};

#[derive(Debug)]
struct TsBeta {
    n: usize,
}

/// The valid pairs (market, ret) at row `i`.
fn pair(ret: &[Option<f64>], market: &[Option<f64>], i: usize) -> Option<(f64, f64)> {
    ret[i].zip(market[i]).map(|(r, m)| (m, r))
}

fn rebuild(ret: &[Option<f64>], market: &[Option<f64>], start: usize, end: usize) -> CoMoments {
    let pairs: Vec<(f64, f64)> = (start..end).filter_map(|i| pair(ret, market, i)).collect();
    let k = pairs.len().max(1) as f64;
    let mx = pairs.iter().map(|p| p.0).sum::<f64>() / k;
    let my = pairs.iter().map(|p| p.1).sum::<f64>() / k;
    let mut m = CoMoments::with_shift(mx, my);
    for (x, y) in pairs {
        m.update(x, y, 1.0);
    }
    m
}

impl PartitionKernel for TsBeta {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let ret = valid(columns[0]);
        let market = valid(columns[1]);
        let n = self.n;
        let min_pairs = n.div_ceil(2).max(3);
        let mut moments = CoMoments::default();
        let mut range = SlidingRange::default();
        let mut out = Vec::with_capacity(rows);
        for t in 0..rows {
            // The window is rows t-n+1 ..= t.
            let start = (t + 1).saturating_sub(n);
            if t % n == 0 {
                moments = rebuild(&ret, &market, start, t + 1);
            } else {
                if let Some((x, y)) = pair(&ret, &market, t) {
                    moments.update(x, y, 1.0);
                }
                if let Some((x, y)) = t.checked_sub(n).and_then(|i| pair(&ret, &market, i)) {
                    moments.update(x, y, -1.0);
                }
            }
            if let Some((x, _)) = pair(&ret, &market, t) {
                range.push(t, x);
            }
            range.evict_before(start);
            let beta =
                (moments.count() >= min_pairs && !range.is_constant()).then(|| moments.slope());
            out.push(beta);
        }
        Ok(finite_array(out))
    }
}

fn factory(constants: &[Option<ScalarValue>]) -> Result<Box<dyn PartitionKernel>> {
    let name = "ts_beta";
    let n = integer_literal(name, required(constants, 0, name, "n")?, "n", 1, 1_000_000)?;
    Ok(Box::new(TsBeta { n: n as usize }))
}

/// The window function.
pub fn ts_beta() -> WindowUDF {
    partition_window(
        "ts_beta",
        doc(
            "Time-series factors",
            "Rolling beta: the OLS slope (with intercept) of ret on market_ret over rows t-n+1..t \
             (row t included) where both are valid, i.e. cov(ret, market) / var(market). NULL unless \
             at least max(3, ceil(n/2)) valid pairs exist and the market values among them are not \
             all equal. Any frame clause is ignored.",
            "ts_beta(ret, market_ret, n) OVER (PARTITION BY security_id ORDER BY date)",
            &[
                ("ret", "the security's simple return"),
                ("market_ret", "the market's simple return on the same row"),
                ("n", "window in rows, a constant integer >= 1"),
            ],
            "```sql\nSELECT date, security_id,\n       ts_beta(total_return, market_return, 252) OVER (PARTITION BY security_id ORDER BY date) AS beta\nFROM returns_with_market;\n```",
        ),
        (2, 2),
        (1, 1),
        DataType::Float64,
        factory,
    )
}
