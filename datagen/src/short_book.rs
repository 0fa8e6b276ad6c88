//! The generator's own view of the shorts' entry prices, so that planted squeezes happen where
//! the Markit squeeze model looks: shorts under water and near breakeven after a catalyst.
//!
//! It follows SPEC's short cohort model (add a cohort at today's price when the quantity rises,
//! cover pro rata when it falls) with entry prices merged into 1% log-price bins, which is close
//! enough to `short_cohort_otm` and `short_cohort_near_breakeven` for planting.

use std::collections::BTreeMap;

/// Bins per unit of log price (100 = 1% wide bins).
const BINS_PER_LOG: f64 = 100.0;

/// Shorted quantity by entry-price bin.
#[derive(Debug, Default)]
pub struct ShortBook {
    /// Weight per bin; the real quantity is `weight * scale`.
    bins: BTreeMap<i32, f64>,
    /// Multiplier that turns weights into quantities (pro-rata covers only change this).
    scale: f64,
    /// Quantity on the previous row.
    prev_qty: f64,
}

fn bin_of(price: f64) -> i32 {
    (price.ln() * BINS_PER_LOG).floor() as i32
}

impl ShortBook {
    /// Apply one row: `qty` shorted at the close `price`.
    pub fn update(&mut self, qty: f64, price: f64) {
        if !(qty.is_finite() && price.is_finite() && qty >= 0.0 && price > 0.0) {
            return;
        }
        if self.bins.is_empty() || self.prev_qty <= 0.0 {
            self.bins.clear();
            self.bins.insert(bin_of(price), qty);
            self.scale = 1.0;
        } else if qty > self.prev_qty {
            *self.bins.entry(bin_of(price)).or_insert(0.0) += (qty - self.prev_qty) / self.scale;
        } else if qty < self.prev_qty {
            self.scale *= qty / self.prev_qty;
            if self.scale < 1e-100 {
                self.bins.values_mut().for_each(|w| *w *= self.scale);
                self.scale = 1.0;
            }
        }
        self.prev_qty = qty;
    }

    /// Share of the quantity shorted below `price` (losing money), and share within `band` of
    /// breakeven; `None` when nothing is shorted.
    pub fn otm_and_near_breakeven(&self, price: f64, band: f64) -> Option<(f64, f64)> {
        let total: f64 = self.bins.values().sum();
        if total * self.scale <= 0.0 || price.is_nan() || price <= 0.0 {
            return None;
        }
        let here = bin_of(price);
        let low = bin_of(price / (1.0 + band));
        let high = bin_of(price / (1.0 - band));
        let below: f64 = self.bins.range(..here).map(|(_, w)| w).sum();
        let near: f64 = self.bins.range(low..=high).map(|(_, w)| w).sum();
        Some((below / total, near / total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohorts_follow_the_spec_model() {
        let mut book = ShortBook::default();
        book.update(100.0, 10.0); // opens (100 @ 10)
        book.update(200.0, 20.0); // adds (100 @ 20)
        book.update(100.0, 15.0); // covers half of each
        let (otm, near) = book.otm_and_near_breakeven(15.0, 0.05).expect("shorts");
        assert!((otm - 0.5).abs() < 1e-12, "{otm}");
        assert_eq!(near, 0.0);
        let (otm, near) = book.otm_and_near_breakeven(20.5, 0.05).expect("shorts");
        assert!((otm - 1.0).abs() < 1e-12);
        assert!((near - 0.5).abs() < 1e-12);
        book.update(0.0, 15.0);
        assert!(book.otm_and_near_breakeven(15.0, 0.05).is_none());
    }
}
