//! The short cohort model (SPEC §3.2), shared by `short_cohort_otm`, `short_cohort_pnl` and
//! `short_cohort_near_breakeven`.
//!
//! Within a partition, walk the rows in order keeping cohorts `(q_i, p_i)`: the first valid row
//! opens `(q, p)`; on each later valid row with `d = q_t - q_prev`, `d > 0` adds `(d, p_t)` and
//! `d < 0` scales every cohort by `q_t / q_prev` (pro-rata cover). Rows with an invalid quantity
//! or price return NULL and leave the cohorts unchanged; a total of 0 returns NULL.
//!
//! Cohorts with equal entry price are merged in a price-ordered tree with subtree sums
//! ([`PriceTree`]), so state is bounded by the number of distinct prices and every row costs
//! O(log distinct prices); the tree only ever holds past rows, so no output depends on a later
//! row, not even in its last bit. Pro-rata covers multiply a global scale instead of touching
//! every cohort. Prices must be positive (a price of 0 or below counts as invalid), quantities
//! non-negative.

use crate::common::price_tree::PriceTree;

/// Cohort state at a row, with the tools to measure it. Stored quantities are the real ones
/// divided by `scale`; ratios of stored sums need no scale.
#[derive(Debug, Default)]
pub struct Cohorts {
    tree: PriceTree,
    scale: f64,
}

impl Cohorts {
    fn new() -> Self {
        Self {
            tree: PriceTree::new(),
            scale: 1.0,
        }
    }

    fn add(&mut self, quantity: f64, price: f64) {
        self.tree.add(price, quantity / self.scale);
    }

    fn scale_all(&mut self, factor: f64) {
        if factor == 0.0 {
            self.tree.clear();
            self.scale = 1.0;
            return;
        }
        self.scale *= factor;
        if self.scale < 1e-100 {
            self.tree.scale(self.scale);
            self.scale = 1.0;
        }
    }

    /// Share of quantity entered at a price strictly below `price`.
    pub fn share_below(&self, price: f64) -> Option<f64> {
        let total = self.tree.totals().0;
        (total > 0.0).then(|| self.tree.quantity_while(|p| p < price) / total)
    }

    /// Quantity-weighted mean of `(p_i - price) / p_i`.
    pub fn mean_pnl(&self, price: f64) -> Option<f64> {
        let (total, over_price) = self.tree.totals();
        (total > 0.0).then(|| 1.0 - price * over_price / total)
    }

    /// Share of quantity with `|(p_i - price) / p_i| <= band`.
    pub fn share_within(&self, price: f64, band: f64) -> Option<f64> {
        let total = self.tree.totals().0;
        if total <= 0.0 {
            return None;
        }
        // The SPEC predicate abs((p - price) / p) <= band holds for p in
        // [price / (1 + band), price / (1 - band)]; far from those bounds a comparison decides,
        // near them (within 1e-9 relative) the exact SPEC formula does.
        let rel = |p: f64| (p - price) / p;
        let decide = |p: f64, bound: f64, exact: &dyn Fn(f64) -> bool| {
            if p < bound * (1.0 - 1e-9) {
                true
            } else if p > bound * (1.0 + 1e-9) {
                false
            } else {
                exact(p)
            }
        };
        let upper = if band < 1.0 {
            price / (1.0 - band)
        } else {
            f64::INFINITY
        };
        let lower = price / (1.0 + band);
        let within = self.tree.quantity_between(
            |p| decide(p, lower, &|p| rel(p) < -band),
            |p| decide(p, upper, &|p| rel(p) <= band),
        );
        Some((within / total).max(0.0))
    }
}

/// Run the model over a partition, measuring each valid row with `measure(cohorts, price)`.
pub fn run(
    quantity: &[Option<f64>],
    price: &[Option<f64>],
    mut measure: impl FnMut(&Cohorts, f64) -> Option<f64>,
) -> Vec<Option<f64>> {
    let valid = |i: usize| match (quantity[i], price[i]) {
        (Some(q), Some(p)) if q >= 0.0 && p > 0.0 => Some((q, p)),
        _ => None,
    };
    let mut cohorts = Cohorts::new();
    let mut previous: Option<f64> = None;
    (0..quantity.len())
        .map(|i| {
            let (q, p) = valid(i)?;
            match previous {
                None => cohorts.add(q, p),
                Some(prev) if q > prev => cohorts.add(q - prev, p),
                Some(prev) if q < prev => cohorts.scale_all(q / prev),
                Some(_) => {}
            }
            previous = Some(q);
            measure(&cohorts, p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unmerged model, written the obvious way.
    fn naive(q: &[Option<f64>], p: &[Option<f64>], band: f64) -> Vec<Option<(f64, f64, f64)>> {
        let mut cohorts: Vec<(f64, f64)> = vec![];
        let mut prev: Option<f64> = None;
        let mut out = vec![];
        for i in 0..q.len() {
            let (Some(qt), Some(pt)) = (q[i], p[i]) else {
                out.push(None);
                continue;
            };
            match prev {
                None => cohorts.push((qt, pt)),
                Some(pr) if qt > pr => cohorts.push((qt - pr, pt)),
                Some(pr) if qt < pr => cohorts.iter_mut().for_each(|c| c.0 *= qt / pr),
                _ => {}
            }
            prev = Some(qt);
            let total: f64 = cohorts.iter().map(|c| c.0).sum();
            if total <= 0.0 {
                out.push(None);
                continue;
            }
            let otm = cohorts
                .iter()
                .filter(|c| c.1 < pt)
                .map(|c| c.0)
                .sum::<f64>()
                / total;
            let pnl = cohorts.iter().map(|c| c.0 * (c.1 - pt) / c.1).sum::<f64>() / total;
            let near = cohorts
                .iter()
                .filter(|c| ((c.1 - pt) / c.1).abs() <= band)
                .map(|c| c.0)
                .sum::<f64>()
                / total;
            out.push(Some((otm, pnl, near)));
        }
        out
    }

    #[test]
    fn merged_model_equals_unmerged() {
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let n = 400;
        let mut q = vec![];
        let mut p = vec![];
        let mut level = 100.0;
        for i in 0..n {
            level = (level * (0.9 + 0.2 * rnd())).max(0.0);
            if i % 50 == 7 {
                level = 0.0;
            }
            q.push(if i % 37 == 5 { None } else { Some(level) });
            p.push(if i % 41 == 3 {
                None
            } else {
                Some((10.0 + 5.0 * rnd() * 4.0).round() / 4.0)
            });
        }
        let expect = naive(&q, &p, 0.05);
        let otm = run(&q, &p, |c, pt| c.share_below(pt));
        let pnl = run(&q, &p, |c, pt| c.mean_pnl(pt));
        let near = run(&q, &p, |c, pt| c.share_within(pt, 0.05));
        for i in 0..n {
            match expect[i] {
                None => assert!(
                    otm[i].is_none() && pnl[i].is_none() && near[i].is_none(),
                    "row {i}"
                ),
                Some((o, pl, nb)) => {
                    assert!((otm[i].expect("otm") - o).abs() < 1e-9, "otm row {i}");
                    assert!((pnl[i].expect("pnl") - pl).abs() < 1e-9, "pnl row {i}");
                    assert!((near[i].expect("near") - nb).abs() < 1e-9, "near row {i}");
                }
            }
        }
    }
}
