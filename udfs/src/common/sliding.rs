//! Sliding-window statistics in O(1) amortised per row, accurate to a few ulps.
//!
//! Sums are taken of values shifted by a reference `k` (the window mean at the last rebuild), so
//! adding and removing values does not suffer the cancellation of naive sliding sums of raw
//! values; callers rebuild from the window every `w` rows, which bounds the accumulated rounding
//! to about `2w` ulps of the shifted second moment.
//! Whether all values in a window are equal is decided exactly by a sliding min/max, never by
//! a variance that rounding left slightly above zero.

use std::collections::VecDeque;

/// Compensated (Neumaier) sum.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeumaierSum {
    sum: f64,
    compensation: f64,
}

impl NeumaierSum {
    /// Add `x`.
    #[inline]
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    /// The sum.
    #[inline]
    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Count, mean and sample variance of a sliding window of values.
#[derive(Debug, Clone, Default)]
pub struct Moments {
    k: f64,
    n: usize,
    s1: f64,
    s2: f64,
}

impl Moments {
    /// Empty, with shift `k`.
    pub fn with_shift(k: f64) -> Self {
        Self {
            k,
            ..Default::default()
        }
    }

    /// Add a value.
    #[inline]
    pub fn add(&mut self, x: f64) {
        let d = x - self.k;
        self.n += 1;
        self.s1 += d;
        self.s2 += d * d;
    }

    /// Remove a value that was added.
    #[inline]
    pub fn remove(&mut self, x: f64) {
        let d = x - self.k;
        self.n -= 1;
        self.s1 -= d;
        self.s2 -= d * d;
    }

    /// Values in the window.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Mean (NaN when empty).
    pub fn mean(&self) -> f64 {
        self.k + self.s1 / self.n as f64
    }

    /// Sample variance (n - 1 denominator), clamped at 0; NaN when n < 2.
    pub fn var_samp(&self) -> f64 {
        if self.n < 2 {
            return f64::NAN;
        }
        let n = self.n as f64;
        ((self.s2 - self.s1 * self.s1 / n) / (n - 1.0)).max(0.0)
    }
}

/// Co-moments of pairs (x, y) in a sliding window: for an OLS slope of y on x.
#[derive(Debug, Clone, Default)]
pub struct CoMoments {
    kx: f64,
    ky: f64,
    n: usize,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

impl CoMoments {
    /// Empty, with shifts.
    pub fn with_shift(kx: f64, ky: f64) -> Self {
        Self {
            kx,
            ky,
            ..Default::default()
        }
    }

    /// Add or remove (`sign` = 1 or -1) a pair.
    #[inline]
    pub fn update(&mut self, x: f64, y: f64, sign: f64) {
        let dx = x - self.kx;
        let dy = y - self.ky;
        if sign > 0.0 {
            self.n += 1;
        } else {
            self.n -= 1;
        }
        self.sx += sign * dx;
        self.sy += sign * dy;
        self.sxx += sign * dx * dx;
        self.sxy += sign * dx * dy;
    }

    /// Pairs in the window.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Slope of y on x: `Sxy / Sxx` (NaN when Sxx is 0).
    pub fn slope(&self) -> f64 {
        let n = self.n as f64;
        let sxx = self.sxx - self.sx * self.sx / n;
        let sxy = self.sxy - self.sx * self.sy / n;
        if sxx <= 0.0 { f64::NAN } else { sxy / sxx }
    }
}

/// Exact sliding minimum and maximum (monotonic deques of `(index, value)`).
#[derive(Debug, Clone, Default)]
pub struct SlidingRange {
    min: VecDeque<(usize, f64)>,
    max: VecDeque<(usize, f64)>,
}

impl SlidingRange {
    /// Push value `x` at index `i` (indices increase).
    #[inline]
    pub fn push(&mut self, i: usize, x: f64) {
        while self.min.back().is_some_and(|b| b.1 >= x) {
            self.min.pop_back();
        }
        self.min.push_back((i, x));
        while self.max.back().is_some_and(|b| b.1 <= x) {
            self.max.pop_back();
        }
        self.max.push_back((i, x));
    }

    /// Drop values at indices below `start`.
    #[inline]
    pub fn evict_before(&mut self, start: usize) {
        while self.min.front().is_some_and(|f| f.0 < start) {
            self.min.pop_front();
        }
        while self.max.front().is_some_and(|f| f.0 < start) {
            self.max.pop_front();
        }
    }

    /// Whether every value in the window is equal (true for an empty window).
    pub fn is_constant(&self) -> bool {
        match (self.min.front(), self.max.front()) {
            (Some(a), Some(b)) => a.1 == b.1,
            _ => true,
        }
    }

    /// Clear.
    pub fn clear(&mut self) {
        self.min.clear();
        self.max.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_match_two_pass_after_many_slides() {
        let xs: Vec<f64> = (0..10_000)
            .map(|i| 1e6 + ((i * 7919) % 1000) as f64 * 1e-3)
            .collect();
        let w = 50;
        let mut m = Moments::with_shift(xs[0]);
        for (i, x) in xs.iter().enumerate() {
            m.add(*x);
            if i >= w {
                m.remove(xs[i - w]);
            }
        }
        let window = &xs[xs.len() - w..];
        let mean = window.iter().sum::<f64>() / w as f64;
        let var = window.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (w - 1) as f64;
        assert!((m.mean() - mean).abs() < 1e-9);
        assert!(
            (m.var_samp() - var).abs() / var < 1e-9,
            "{} vs {var}",
            m.var_samp()
        );
    }

    #[test]
    fn range_detects_constant_windows() {
        let mut r = SlidingRange::default();
        for (i, x) in [1.0, 2.0, 2.0, 2.0].into_iter().enumerate() {
            r.push(i, x);
        }
        assert!(!r.is_constant());
        r.evict_before(1);
        assert!(r.is_constant());
    }
}
