//! The trailing z-score kernel shared by `ts_zscore` and `si_surprise`.

use arrow::array::{ArrayRef, Float64Array};
use datafusion::error::Result;

use crate::common::sliding::{Moments, SlidingRange};
use crate::common::window::{PartitionKernel, finite_array, valid};

/// `(x[t] - mean) / stddev_samp` over the valid values among rows t-n..t-1.
#[derive(Debug)]
pub struct ZScore {
    /// Look-back in rows.
    pub n: usize,
}

impl ZScore {
    /// Valid values needed: `max(2, ceil(n / 2))`.
    pub fn min_count(&self) -> usize {
        self.n.div_ceil(2).max(2)
    }
}

/// Moments of the valid values in `x[start..end]`, shifted by their first value.
fn rebuild(x: &[Option<f64>], start: usize, end: usize) -> Moments {
    let shift = x[start..end]
        .iter()
        .flatten()
        .next()
        .copied()
        .unwrap_or(0.0);
    let mut m = Moments::with_shift(shift);
    for v in x[start..end].iter().flatten() {
        m.add(*v);
    }
    // A second pass around the exact mean keeps later sliding updates free of cancellation.
    if m.count() > 0 {
        let mean = m.mean();
        m = Moments::with_shift(mean);
        for v in x[start..end].iter().flatten() {
            m.add(*v);
        }
    }
    m
}

impl PartitionKernel for ZScore {
    fn evaluate(&self, columns: &[&Float64Array], rows: usize) -> Result<ArrayRef> {
        let x = valid(columns[0]);
        let n = self.n;
        let min_count = self.min_count();
        let mut moments = Moments::default();
        let mut range = SlidingRange::default();
        let mut out = Vec::with_capacity(rows);
        for t in 0..rows {
            // The window is rows t-n ..= t-1: add row t-1, drop row t-n-1.
            let start = t.saturating_sub(n);
            if t > 0 && (t - 1) % n == 0 {
                moments = rebuild(&x, start, t);
            } else if t > 0 {
                if let Some(v) = x[t - 1] {
                    moments.add(v);
                }
                if let Some(v) = t.checked_sub(n + 1).and_then(|i| x[i]) {
                    moments.remove(v);
                }
            }
            if let Some(v) = t.checked_sub(1).and_then(|i| x[i]) {
                range.push(t - 1, v);
            }
            range.evict_before(start);
            let z = match x[t] {
                Some(current) if moments.count() >= min_count && !range.is_constant() => {
                    let sd = moments.var_samp().sqrt();
                    (sd > 0.0).then(|| (current - moments.mean()) / sd)
                }
                _ => None,
            };
            out.push(z);
        }
        Ok(finite_array(out))
    }
}
