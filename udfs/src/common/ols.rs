//! Least squares with an intercept, by Givens QR updates (stable, mergeable, bounded state),
//! or over whole columns by Householder reflections when all rows are at hand.
//!
//! Rows `[1, x_1..x_k, y]` are rotated one at a time into an upper-triangular `R` of the
//! augmented design, so the state is `(k+2)(k+2)` numbers whatever the row count, and two states
//! merge by rotating one `R` into the other (the shuffle of a distributed aggregate). The
//! coefficients solve `R_xx b = z` where `z` is the `y` column of `R`. The rank test is numpy's
//! `matrix_rank` on `[1, X]`: singular values of `R_xx` (equal to those of `[1, X]`) by one-sided
//! Jacobi, rank = count above `sigma_max * max(n, k + 1) * 2.22e-16`.

/// Machine epsilon as numpy uses it.
pub const EPS: f64 = f64::EPSILON;

/// Augmented rows up to this length are built on the stack (no allocation per row).
const STACK_ROW: usize = 16;

/// `sqrt(a^2 + b^2)`: the plain formula where the square neither overflows nor underflows
/// (within an ulp or two of `hypot`, several times faster), `hypot` otherwise.
fn norm2(a: f64, b: f64) -> f64 {
    let squares = a * a + b * b;
    if (1e-290..1e290).contains(&squares) {
        squares.sqrt()
    } else {
        a.hypot(b)
    }
}

/// `a . b`, summed in four interleaved partial sums (so the compiler may vectorise it).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut sums = [0.0; 4];
    let (a_quads, a_rest) = a.split_at(a.len() - a.len() % 4);
    let b_quads = &b[..a_quads.len()];
    for (x, y) in a_quads.chunks_exact(4).zip(b_quads.chunks_exact(4)) {
        for lane in 0..4 {
            sums[lane] += x[lane] * y[lane];
        }
    }
    let rest: f64 = a_rest
        .iter()
        .zip(&b[a_quads.len()..])
        .map(|(x, y)| x * y)
        .sum();
    (sums[0] + sums[1]) + (sums[2] + sums[3]) + rest
}

/// A QR factor of the augmented design `[1, X, y]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Qr {
    /// Regressors k (without the intercept).
    k: usize,
    /// Rows absorbed.
    n: u64,
    /// Row-major `m x m` upper triangle with `m = k + 2`.
    r: Vec<f64>,
}

impl Qr {
    /// Empty factor for `k` regressors.
    pub fn new(k: usize) -> Self {
        let m = k + 2;
        Self {
            k,
            n: 0,
            r: vec![0.0; m * m],
        }
    }

    fn m(&self) -> usize {
        self.k + 2
    }

    /// Regressors.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Rows absorbed.
    pub fn rows(&self) -> u64 {
        self.n
    }

    /// Rotate one augmented row into `R` (no count change).
    #[allow(clippy::needless_range_loop)] // matrix code reads best with indices
    fn rotate_in(&mut self, row: &mut [f64]) {
        let m = self.m();
        for j in 0..m {
            if row[j] == 0.0 {
                continue;
            }
            let rjj = self.r[j * m + j];
            let h = norm2(rjj, row[j]);
            let (c, s) = (rjj / h, row[j] / h);
            for l in j..m {
                let a = self.r[j * m + l];
                let b = row[l];
                self.r[j * m + l] = c * a + s * b;
                row[l] = c * b - s * a;
            }
        }
    }

    /// Add an observation `(x, y)`; `x.len()` must be `k`.
    pub fn add(&mut self, x: &[f64], y: f64) {
        let m = self.m();
        let mut stack = [0.0; STACK_ROW];
        let mut heap = Vec::new();
        let row = if m <= STACK_ROW {
            &mut stack[..m]
        } else {
            heap.resize(m, 0.0);
            &mut heap[..]
        };
        row[0] = 1.0;
        row[1..=self.k].copy_from_slice(x);
        row[m - 1] = y;
        self.rotate_in(row);
        self.n += 1;
    }

    /// The factor of the rows `[1, x_1..x_k, y]` given column by column (`xs[j][i]` is row
    /// `i` of regressor `j`): by Householder reflections over whole columns, or row by row
    /// where a column's squares would overflow or underflow.
    pub fn from_columns(xs: &[&[f64]], y: &[f64]) -> Self {
        Self::householder(xs, y).unwrap_or_else(|| Self::from_rows(xs, y))
    }

    /// The rows of `xs` and `y` added one by one (norms computed safely at any scale).
    fn from_rows(xs: &[&[f64]], y: &[f64]) -> Self {
        let mut qr = Self::new(xs.len());
        let mut x = vec![0.0; xs.len()];
        for (i, &yi) in y.iter().enumerate() {
            for (to, column) in x.iter_mut().zip(xs) {
                *to = column[i];
            }
            qr.add(&x, yi);
        }
        qr
    }

    /// [`Qr::from_columns`] by one Householder reflection per column: the `R` of adding the
    /// rows one by one up to rounding and the signs of its rows (which the coefficients and
    /// singular values do not depend on), at a few vectorised passes per column instead of a
    /// chain of rotations per row. `None` when a column's squared norm leaves the range where
    /// squaring is safe.
    fn householder(xs: &[&[f64]], y: &[f64]) -> Option<Self> {
        let (k, n) = (xs.len(), y.len());
        let m = k + 2;
        let mut a: Vec<Vec<f64>> = Vec::with_capacity(m);
        a.push(vec![1.0; n]);
        a.extend(xs.iter().map(|x| x.to_vec()));
        a.push(y.to_vec());
        let mut qr = Self::new(k);
        qr.n = n as u64;
        for j in 0..m.min(n) {
            let (done, rest) = a.split_at_mut(j + 1);
            let v = &mut done[j][j..];
            let squares = dot(v, v);
            if squares == 0.0 {
                // Nothing below the diagonal to annihilate: row j of R is row j as it stands.
                for (l, column) in rest.iter().enumerate() {
                    qr.r[j * m + j + 1 + l] = column[j];
                }
                continue;
            }
            if !(1e-290..1e290).contains(&squares) {
                return None;
            }
            let norm = squares.sqrt();
            let head = v[0];
            // alpha has the sign opposite to the head, so v[0] = head - alpha does not cancel.
            let alpha = if head >= 0.0 { -norm } else { norm };
            v[0] = head - alpha;
            let scale = 1.0 / (norm * (norm + head.abs()));
            qr.r[j * m + j] = alpha;
            for (l, column) in rest.iter_mut().enumerate() {
                let column = &mut column[j..];
                let f = dot(v, column) * scale;
                for (c, vi) in column.iter_mut().zip(v.iter()) {
                    *c -= f * vi;
                }
                qr.r[j * m + j + 1 + l] = column[0];
            }
        }
        qr.r.iter().all(|v| v.is_finite()).then_some(qr)
    }

    /// Merge another factor of the same shape.
    pub fn merge(&mut self, other: &Qr) {
        let m = self.m();
        for i in 0..m {
            let mut row = other.r[i * m..(i + 1) * m].to_vec();
            self.rotate_in(&mut row);
        }
        self.n += other.n;
    }

    /// The serialised state: `[n, r...]`.
    pub fn to_state(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(1 + self.r.len());
        out.push(self.n as f64);
        out.extend_from_slice(&self.r);
        out
    }

    /// Rebuild from [`Qr::to_state`]; `None` if the length does not fit `k`.
    pub fn from_state(k: usize, state: &[f64]) -> Option<Self> {
        let m = k + 2;
        (state.len() == 1 + m * m).then(|| Self {
            k,
            n: state[0] as u64,
            r: state[1..].to_vec(),
        })
    }

    /// Coefficients `[intercept, b_1..b_k]`, or `None` when the regression is not estimable:
    /// `n <= k + 1`, or `[1, X]` has numerical rank below `k + 1`.
    #[allow(clippy::needless_range_loop)]
    pub fn coefficients(&self) -> Option<Vec<f64>> {
        let p = self.k + 1;
        let m = self.m();
        if self.n <= p as u64 {
            return None;
        }
        let rxx: Vec<f64> = (0..p)
            .flat_map(|i| (0..p).map(move |j| (i, j)))
            .map(|(i, j)| self.r[i * m + j])
            .collect();
        let sigma = singular_values(&rxx, p);
        let smax = sigma.iter().cloned().fold(0.0, f64::max);
        let tol = smax * (self.n as f64).max(p as f64) * EPS;
        if smax == 0.0 || sigma.iter().filter(|s| **s > tol).count() < p {
            return None;
        }
        // Back substitution R_xx b = z.
        let mut b = vec![0.0; p];
        for i in (0..p).rev() {
            let mut acc = self.r[i * m + p];
            for j in i + 1..p {
                acc -= self.r[i * m + j] * b[j];
            }
            b[i] = acc / self.r[i * m + i];
        }
        b.iter().all(|v| v.is_finite()).then_some(b)
    }
}

/// Singular values of a square `p x p` matrix (row-major) by one-sided Jacobi rotations.
#[allow(clippy::needless_range_loop)]
pub fn singular_values(a: &[f64], p: usize) -> Vec<f64> {
    // Work on columns: u[j] is column j.
    let mut u: Vec<Vec<f64>> = (0..p)
        .map(|j| (0..p).map(|i| a[i * p + j]).collect())
        .collect();
    for _sweep in 0..80 {
        let mut rotated = false;
        for i in 0..p {
            for j in i + 1..p {
                let alpha: f64 = u[i].iter().map(|v| v * v).sum();
                let beta: f64 = u[j].iter().map(|v| v * v).sum();
                let gamma: f64 = u[i].iter().zip(&u[j]).map(|(a, b)| a * b).sum();
                if gamma == 0.0 || gamma.abs() <= EPS * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for row in 0..p {
                    let (x, y) = (u[i][row], u[j][row]);
                    u[i][row] = c * x - s * y;
                    u[j][row] = s * x + c * y;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    u.iter()
        .map(|col| col.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_plane() {
        let mut qr = Qr::new(2);
        for i in 0..20 {
            let x1 = i as f64;
            let x2 = ((i * 7) % 5) as f64;
            qr.add(&[x1, x2], 1.5 + 2.0 * x1 - 0.5 * x2);
        }
        let b = qr.coefficients().expect("estimable");
        for (got, want) in b.iter().zip([1.5, 2.0, -0.5]) {
            assert!((got - want).abs() < 1e-10, "{b:?}");
        }
    }

    #[test]
    fn collinear_and_short_designs_are_not_estimable() {
        let mut qr = Qr::new(2);
        for i in 0..10 {
            qr.add(&[i as f64, 2.0 * i as f64], i as f64);
        }
        assert_eq!(qr.coefficients(), None);
        let mut qr = Qr::new(1);
        qr.add(&[1.0], 1.0);
        qr.add(&[2.0], 3.0);
        assert_eq!(qr.coefficients(), None, "n = k + 1");
        let mut qr = Qr::new(1);
        for _ in 0..5 {
            qr.add(&[3.0], 1.0);
        }
        assert_eq!(
            qr.coefficients(),
            None,
            "constant regressor is collinear with the intercept"
        );
    }

    #[test]
    fn merging_equals_one_pass() {
        let data: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64 * 0.3, (i as f64).sin()))
            .collect();
        let mut whole = Qr::new(1);
        let mut a = Qr::new(1);
        let mut b = Qr::new(1);
        for (i, (x, y)) in data.iter().enumerate() {
            whole.add(&[*x], *y);
            if i % 3 == 0 {
                a.add(&[*x], *y)
            } else {
                b.add(&[*x], *y)
            }
        }
        a.merge(&b);
        let (w, m) = (
            whole.coefficients().expect("w"),
            a.coefficients().expect("m"),
        );
        for (x, y) in w.iter().zip(&m) {
            assert!((x - y).abs() < 1e-12);
        }
        assert_eq!(a.rows(), 50);
    }

    /// Rows added one by one, and the same rows reflected as columns.
    fn both_ways(xs: &[Vec<f64>], y: &[f64]) -> (Qr, Option<Qr>) {
        let columns: Vec<&[f64]> = xs.iter().map(Vec::as_slice).collect();
        (Qr::from_rows(&columns, y), Qr::householder(&columns, y))
    }

    #[test]
    fn columns_give_the_coefficients_of_rows() {
        for n in [4, 5, 7, 64, 1001] {
            let x1: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 1e3).collect();
            let x2: Vec<f64> = (0..n).map(|i| ((i * i) % 11) as f64 - 5.0).collect();
            let y: Vec<f64> = (0..n)
                .map(|i| 0.2 + 1e-3 * x1[i] - 0.7 * x2[i] + (i as f64 * 1.3).cos())
                .collect();
            let (rows, columns) = both_ways(&[x1, x2], &y);
            let columns = columns.expect("finite squares");
            assert_eq!(columns.rows(), n as u64);
            let (want, got) = (
                rows.coefficients().expect("rows"),
                columns.coefficients().expect("columns"),
            );
            for (w, g) in want.iter().zip(&got) {
                assert!(
                    (w - g).abs() <= 1e-12 * w.abs().max(1.0),
                    "n={n}: {want:?} vs {got:?}"
                );
            }
            // The same triangle up to the signs of its rows.
            for (i, (w, g)) in rows.r.iter().zip(&columns.r).enumerate() {
                assert!(
                    (w.abs() - g.abs()).abs() <= 1e-9 * w.abs().max(1.0),
                    "r[{i}]: {w} vs {g}"
                );
            }
        }
    }

    #[test]
    fn columns_see_collinear_short_and_constant_designs() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let doubled: Vec<f64> = x.iter().map(|v| 2.0 * v).collect();
        let (_, qr) = both_ways(&[x.clone(), doubled], &x);
        assert_eq!(qr.expect("finite").coefficients(), None, "collinear");
        let (_, qr) = both_ways(&[vec![3.0; 5]], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(
            qr.expect("finite").coefficients(),
            None,
            "constant regressor"
        );
        let (_, qr) = both_ways(&[vec![1.0, 2.0]], &[1.0, 3.0]);
        assert_eq!(qr.expect("finite").coefficients(), None, "n = k + 1");
        let (_, qr) = both_ways(&[vec![]], &[]);
        assert_eq!(qr.expect("empty").coefficients(), None, "no rows");
        let (_, qr) = both_ways(&[vec![1e200, 2e200, 4e200]], &[1.0, 2.0, 2.5]);
        assert!(qr.is_none(), "squares overflow: rows instead");
        let (_, qr) = both_ways(&[vec![1e-160, 2e-160, 4e-160]], &[1.0, 2.0, 2.5]);
        assert!(qr.is_none(), "squares underflow: rows instead");
    }

    #[test]
    fn dot_sums_every_pair() {
        for n in 0..11 {
            let a: Vec<f64> = (0..n).map(f64::from).collect();
            let want: f64 = a.iter().map(|v| v * v).sum();
            assert_eq!(dot(&a, &a), want, "n={n}");
        }
    }

    #[test]
    fn singular_values_of_a_diagonal() {
        let s = singular_values(&[3.0, 0.0, 0.0, 4.0], 2);
        let mut s = s;
        s.sort_by(f64::total_cmp);
        assert!((s[0] - 3.0).abs() < 1e-14 && (s[1] - 4.0).abs() < 1e-14);
    }
}
