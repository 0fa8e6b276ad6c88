//! A Fenwick (binary indexed) tree of f64 sums over a fixed number of slots.

/// Prefix sums with point updates in O(log n).
#[derive(Debug, Clone)]
pub struct Fenwick {
    tree: Vec<f64>,
}

impl Fenwick {
    /// `n` slots, all zero.
    pub fn new(n: usize) -> Self {
        Self {
            tree: vec![0.0; n + 1],
        }
    }

    /// Add `delta` to slot `i`.
    pub fn add(&mut self, i: usize, delta: f64) {
        let mut k = i + 1;
        while k < self.tree.len() {
            self.tree[k] += delta;
            k += k & k.wrapping_neg();
        }
    }

    /// Sum of slots `0..end`.
    pub fn prefix(&self, end: usize) -> f64 {
        let mut k = end.min(self.tree.len() - 1);
        let mut sum = 0.0;
        while k > 0 {
            sum += self.tree[k];
            k &= k - 1;
        }
        sum
    }

    /// Sum of slots `start..end`.
    pub fn range(&self, start: usize, end: usize) -> f64 {
        if end <= start {
            0.0
        } else {
            self.prefix(end) - self.prefix(start)
        }
    }

    /// Multiply every slot by `factor` (O(n)).
    pub fn scale(&mut self, factor: f64) {
        for v in &mut self.tree {
            *v *= factor;
        }
    }

    /// Zero every slot.
    pub fn clear(&mut self) {
        self.tree.iter_mut().for_each(|v| *v = 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::Fenwick;

    #[test]
    fn prefix_and_range() {
        let mut f = Fenwick::new(5);
        for (i, v) in [1.0, 2.0, 3.0, 4.0, 5.0].into_iter().enumerate() {
            f.add(i, v);
        }
        assert_eq!(f.prefix(0), 0.0);
        assert_eq!(f.prefix(5), 15.0);
        assert_eq!(f.range(1, 4), 9.0);
        f.scale(2.0);
        assert_eq!(f.range(4, 5), 10.0);
    }
}
