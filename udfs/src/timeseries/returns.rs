//! Compounded returns over row windows, shared by `fwd_return` and `past_return`.

use crate::common::window_product::{prefix_counts, window_products};

/// For every window start `s` in `0..=n-w`: `prod(1 + r[s..s+w]) - 1`, or `None` if any value
/// in the window is invalid. `r` holds SPEC-valid values (`None` = invalid).
pub fn compounded(r: &[Option<f64>], w: usize) -> Vec<Option<f64>> {
    let growth: Vec<f64> = r.iter().map(|v| v.map_or(1.0, |x| 1.0 + x)).collect();
    let invalid = prefix_counts(r.iter().map(Option::is_none));
    window_products(&growth, w)
        .into_iter()
        .enumerate()
        .map(|(s, p)| (invalid[s + w] == invalid[s]).then_some(p - 1.0))
        .collect()
}
