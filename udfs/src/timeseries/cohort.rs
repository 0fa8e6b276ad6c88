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
//!
//! **Exactness** (these feed cross-sectional ranks, where an ulp decides an order). A share is
//! `a / (a + b)` with `a` the quantity that qualifies and `b` the rest, each summed over its own
//! cohorts, never `a / total` with the total summed in another order. So:
//! - every cohort qualifies: exactly 1; none does: exactly 0; always within [0, 1];
//! - the P&L sums the cohorts below, at and above the price apart: cohorts entered at today's
//!   price add exactly 0 (every cohort there: exactly 0), and losses and gains are each summed
//!   over their own side and kept >= 0, so with every cohort below the price the P&L is never
//!   positive, with every one above never negative;
//! - the same cohorts (entry price and stored quantity), in whatever order they arrived, give
//!   the same bits: the tree's shape and sums depend on its entries only;
//! - whole quantities without covers (or with covers by powers of two) are summed exactly, so
//!   equal shares are equal doubles (`a / (a + b)` is one correctly rounded division).
//!
//! What is not guaranteed: after a cover by another factor, stored quantities are
//! `q / scale`, rounded, and shares that are equal in exact arithmetic but reached through
//! different covers can differ by a few ulps (the unmerged model, rounding `q_i * q_t / q_prev`
//! at every cover, has the same limit; SPEC asks for 1e-9).

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
            // Hand the tree the power of two nearest below the scale: multiplying by it is
            // exact, so the tree's sums stay those of its entries (see `PriceTree::scale`), and
            // the scale keeps the rest, in [1, 2).
            let power = libm::ldexp(1.0, libm::ilogb(self.scale));
            self.tree.scale(power);
            self.scale /= power;
        }
    }

    /// Share of quantity entered at a price strictly below `price`.
    pub fn share_below(&self, price: f64) -> Option<f64> {
        let (below, rest) = self.tree.split(|p| p < price);
        share(below.q, rest.q)
    }

    /// Quantity-weighted mean of `(p_i - price) / p_i`: the cohorts below the price lose
    /// `price * sum(q_i / p_i) - sum(q_i)`, those above gain `sum(q_i) - price * sum(q_i / p_i)`
    /// (each clamped at 0, the sign of its terms), those at the price add nothing.
    pub fn mean_pnl(&self, price: f64) -> Option<f64> {
        let (below, at, above) = self.tree.split_at(price);
        let total = below.q + at.q + above.q;
        let loss = (price * below.qp - below.q).max(0.0);
        let gain = (above.q - price * above.qp).max(0.0);
        (total > 0.0).then(|| (gain - loss) / total)
    }

    /// Share of quantity with `|(p_i - price) / p_i| <= band`.
    pub fn share_within(&self, price: f64, band: f64) -> Option<f64> {
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
        let (below, within, above) = self.tree.split3(
            |p| decide(p, lower, &|p| rel(p) < -band),
            |p| decide(p, upper, &|p| rel(p) <= band),
        );
        share(within.q, below.q + above.q)
    }
}

/// `a / (a + b)` for the quantity `a` that qualifies and `b` that does not (both >= 0): exactly
/// 1 when `b` is 0, exactly 0 when `a` is, never above 1; `None` when both are 0.
fn share(a: f64, b: f64) -> Option<f64> {
    let total = a + b;
    (total > 0.0).then(|| a / total)
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

    /// A xorshift generator of uniforms in [0, 1).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Random histories, with the entry prices of the open cohorts tracked alongside: a share
    /// is exactly 1 when every cohort qualifies and exactly 0 when none does (ties at the ends
    /// are ties, whatever path led there), never outside [0, 1]; the P&L is exactly 0 when every
    /// cohort entered at today's price and otherwise has the sign its terms share, if they do.
    #[test]
    fn shares_at_the_ends_are_exact() {
        let mut rnd = uniform(0x2545_f491_4f6c_dd1d);
        let mut seen = [0usize; 6];
        for _ in 0..400 {
            let n = 40;
            let (mut q, mut p) = (vec![], vec![]);
            let mut level = 1000.0 * (0.5 + rnd());
            let mut price = 20.0 + (40.0 * rnd()).round() / 4.0;
            for _ in 0..n {
                let u = rnd();
                level = if u < 0.4 {
                    level + (1000.0 * rnd()).round()
                } else if u < 0.7 {
                    level * (0.5 + 0.5 * rnd())
                } else {
                    level
                };
                // Mostly rising prices, with stretches of no change.
                let v = rnd();
                price = if v < 0.3 {
                    price
                } else if v < 0.9 {
                    price + 0.25 * (1.0 + (4.0 * rnd()).floor())
                } else {
                    (price - 0.25 * (1.0 + (8.0 * rnd()).floor())).max(1.0)
                };
                q.push(Some(level));
                p.push(Some(price));
            }
            let otm = run(&q, &p, |c, pt| c.share_below(pt));
            let pnl = run(&q, &p, |c, pt| c.mean_pnl(pt));
            let near = run(&q, &p, |c, pt| c.share_within(pt, 0.05));
            let mut entries: Vec<f64> = vec![];
            let mut prev: Option<f64> = None;
            for t in 0..n {
                let (Some(qt), Some(pt)) = (q[t], p[t]) else {
                    unreachable!("every row is valid")
                };
                if prev.is_none_or(|pr| qt > pr) {
                    entries.push(pt);
                }
                prev = Some(qt);
                let (Some(o), Some(pl), Some(nb)) = (otm[t], pnl[t], near[t]) else {
                    panic!("row {t} has cohorts")
                };
                assert!((0.0..=1.0).contains(&o), "otm {o}");
                assert!((0.0..=1.0).contains(&nb), "near {nb}");
                if entries.iter().all(|e| *e < pt) {
                    assert_eq!(o, 1.0, "every cohort below the price");
                    assert!(pl < 0.0);
                    seen[0] += 1;
                }
                if entries.iter().all(|e| *e >= pt) {
                    assert_eq!(o, 0.0, "no cohort below the price");
                    assert!(pl >= 0.0);
                    seen[1] += 1;
                }
                if entries.iter().all(|e| *e == pt) {
                    assert_eq!(pl, 0.0, "every cohort at the price");
                    seen[2] += 1;
                }
                let within = |e: &f64| ((e - pt) / e).abs() <= 0.05;
                if entries.iter().all(within) {
                    assert_eq!(nb, 1.0, "every cohort near break-even");
                    seen[3] += 1;
                } else if !entries.iter().any(within) {
                    assert_eq!(nb, 0.0, "no cohort near break-even");
                    seen[4] += 1;
                } else {
                    seen[5] += 1;
                }
            }
        }
        assert!(seen.iter().all(|s| *s > 100), "{seen:?}");
    }

    /// The same cohorts, arrived in any order, give the same answers bit for bit (the tree's
    /// shape and sums depend on its entries only).
    #[test]
    fn same_cohorts_same_bits() {
        let mut rnd = uniform(0x9e37_79b9_7f4a_7c15);
        let entries: Vec<(f64, f64)> = (0..200)
            .map(|i| (0.1 * (1.0 + (1e4 * rnd()).floor()), 10.0 + 0.01 * i as f64))
            .collect();
        let measure = |order: &[usize]| {
            let mut c = Cohorts::new();
            for i in order {
                c.add(entries[*i].0, entries[*i].1);
            }
            (0..60)
                .map(|k| {
                    let price = 9.9 + 0.04 * k as f64;
                    (
                        c.share_below(price).map(f64::to_bits),
                        c.mean_pnl(price).map(f64::to_bits),
                        c.share_within(price, 0.05).map(f64::to_bits),
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut order: Vec<usize> = (0..entries.len()).collect();
        let first = measure(&order);
        for _ in 0..5 {
            for i in (1..order.len()).rev() {
                order.swap(i, (rnd() * (i + 1) as f64) as usize);
            }
            assert_eq!(measure(&order), first);
        }
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
