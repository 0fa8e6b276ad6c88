//! Rank arithmetic shared by the squeeze and crowding scores.

use crate::common::ranks::average_ranks;

/// SPEC-valid values of a column (`None` = NULL, NaN or ±inf).
pub fn valid(column: &arrow::array::Float64Array) -> Vec<Option<f64>> {
    crate::common::valid_values(column).collect()
}

/// `cs_rank`: r / n among the valid values, `None` elsewhere.
pub fn pct_rank(values: &[Option<f64>]) -> Vec<Option<f64>> {
    let (rows, xs): (Vec<usize>, Vec<f64>) = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|x| (i, x)))
        .unzip();
    let n = xs.len() as f64;
    let mut out = vec![None; values.len()];
    for (row, r) in rows.into_iter().zip(average_ranks(&xs)) {
        out[row] = Some(r / n);
    }
    out
}

/// Rank 1..100 with 1 for the highest value: `ceil(100 * r_desc / n)`, `r_desc` the average-tie
/// rank of `-x`, in exact integer arithmetic (2 r_desc is an integer).
pub fn descending_rank_100(values: &[Option<f64>]) -> Vec<Option<f64>> {
    let (rows, xs): (Vec<usize>, Vec<f64>) = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|x| (i, -x)))
        .unzip();
    let n = xs.len() as i64;
    let mut out = vec![None; values.len()];
    for (row, r) in rows.into_iter().zip(average_ranks(&xs)) {
        let twice_r = (2.0 * r) as i64;
        out[row] = Some(((100 * twice_r + 2 * n - 1) / (2 * n)) as f64);
    }
    out
}

/// Mean of the values present; `None` when none is.
pub fn mean_available(values: &[Option<f64>]) -> Option<f64> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
}

/// The per-row mean of several rank columns, then `round(100 * cs_rank(mean))` (SQL rounding:
/// halves away from zero).
pub fn rank_of_mean(columns: &[Vec<Option<f64>>], rows: usize) -> Vec<Option<f64>> {
    let means: Vec<Option<f64>> = (0..rows)
        .map(|i| mean_available(&columns.iter().map(|c| c[i]).collect::<Vec<_>>()))
        .collect();
    pct_rank(&means)
        .into_iter()
        .map(|r| r.map(|r| (100.0 * r).round()))
        .collect()
}
