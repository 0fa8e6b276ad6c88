//! What the cross-sectional functions share: the rows that enter the cross-section (all inputs
//! valid), and writing results back to every row (NULL for the rows left out).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array};
use arrow::buffer::NullBuffer;

/// The valid values of a single-input cross-section: `(row index, value)`.
pub fn valid_rows(column: &Float64Array) -> (Vec<usize>, Vec<f64>) {
    let mut rows = Vec::with_capacity(column.len());
    let mut values = Vec::with_capacity(column.len());
    for (i, v) in column.iter().enumerate() {
        if let Some(x) = v.filter(|x| x.is_finite()) {
            rows.push(i);
            values.push(x);
        }
    }
    (rows, values)
}

/// A Float64 column of `len` rows with `values[j]` at `rows[j]` and NULL elsewhere; non-finite
/// results are NULL and `-0.0` becomes `0.0`.
pub fn scatter_f64(len: usize, rows: &[usize], values: impl IntoIterator<Item = f64>) -> ArrayRef {
    let mut out = vec![0.0; len];
    let mut valid = vec![false; len];
    for (row, v) in rows.iter().zip(values) {
        if v.is_finite() {
            out[*row] = v + 0.0;
            valid[*row] = true;
        }
    }
    let nulls = NullBuffer::from(valid);
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Arc::new(Float64Array::new(out.into(), nulls))
}

/// An Int32 column with `values[j]` at `rows[j]`, NULL elsewhere.
pub fn scatter_i32(len: usize, rows: &[usize], values: impl IntoIterator<Item = i32>) -> ArrayRef {
    let mut out: Vec<Option<i32>> = vec![None; len];
    for (row, v) in rows.iter().zip(values) {
        out[*row] = Some(v);
    }
    Arc::new(Int32Array::from(out))
}

/// Mean of finite values, compensated.
pub fn mean(values: &[f64]) -> f64 {
    let mut sum = crate::common::sliding::NeumaierSum::default();
    for v in values {
        sum.add(*v);
    }
    sum.value() / values.len() as f64
}

/// Sample standard deviation (two-pass around the mean), or `None` when `n < 2` or the values
/// are all equal.
pub fn stddev_samp(values: &[f64], mean: f64) -> Option<f64> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let first = values[0];
    if values.iter().all(|v| *v == first) {
        return None;
    }
    let mut ss = crate::common::sliding::NeumaierSum::default();
    for v in values {
        ss.add((v - mean) * (v - mean));
    }
    let sd = (ss.value() / (n - 1) as f64).sqrt();
    (sd > 0.0).then_some(sd)
}
