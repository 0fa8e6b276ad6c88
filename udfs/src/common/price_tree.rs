//! An ordered map from price to (quantity, quantity / price) with subtree sums: a treap whose
//! shape depends only on the set of prices inserted so far (priorities are a hash of the key).
//!
//! Every sum it returns is computed from the entries inserted so far only, in an order fixed by
//! those entries, so an answer at row t is bit-for-bit independent of later rows.
//!
//! **Canonical sums.** Each node's subtree sum is always `left + own + right` of its current
//! children (recomputed on every change, and [`PriceTree::scale`] multiplies by a power of two,
//! which commutes with rounding), and the shape is a function of the key set. So every sum is a
//! function of the entries `(price, quantity)` held, whatever order they arrived in: two trees
//! holding the same entries answer every query bit for bit alike.
//!
//! **Sums over disjoint sets.** A share is measured as `a / (a + b)` with `a` the sum over the
//! entries that qualify and `b` the sum over the others, each added up over its own entries
//! ([`PriceTree::split`], [`PriceTree::split3`]) rather than `a / total` with the total taken
//! from the root: the root's total and a descent's partial sum add the same numbers in different
//! orders, so "every entry qualifies" came out as 1 + 1 ulp and equal shares differed in the
//! last bit. With disjoint sums, `b = 0` gives exactly 1, `a = 0` exactly 0, and `a <= a + b`
//! (rounding is monotone) keeps every share in [0, 1].

/// Index of "no node".
const NIL: u32 = u32::MAX;

/// Sums of quantity and of quantity over price over a set of entries.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    /// Sum of quantities.
    pub q: f64,
    /// Sum of quantity / price.
    pub qp: f64,
}

impl std::ops::Add for Sums {
    type Output = Sums;

    #[inline]
    fn add(self, other: Sums) -> Sums {
        Sums {
            q: self.q + other.q,
            qp: self.qp + other.qp,
        }
    }
}

impl std::ops::AddAssign for Sums {
    #[inline]
    fn add_assign(&mut self, other: Sums) {
        *self = *self + other;
    }
}

#[derive(Debug, Clone)]
struct Node {
    key: f64,
    priority: u64,
    left: u32,
    right: u32,
    /// This entry's own quantity and quantity over price.
    own: Sums,
    /// Sums over the subtree: `left + own + right`.
    sum: Sums,
}

/// Price-keyed sums of quantity and quantity over price.
#[derive(Debug, Clone, Default)]
pub struct PriceTree {
    nodes: Vec<Node>,
    root: u32,
}

fn priority(key: f64) -> u64 {
    let mut z = key.to_bits().wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl PriceTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self {
            nodes: vec![],
            root: NIL,
        }
    }

    #[inline]
    fn sums(&self, i: u32) -> Sums {
        if i == NIL {
            Sums::default()
        } else {
            self.nodes[i as usize].sum
        }
    }

    fn update(&mut self, i: u32) {
        let left = self.sums(self.nodes[i as usize].left);
        let right = self.sums(self.nodes[i as usize].right);
        let n = &mut self.nodes[i as usize];
        n.sum = left + n.own + right;
    }

    fn rotate_right(&mut self, i: u32) -> u32 {
        let l = self.nodes[i as usize].left;
        self.nodes[i as usize].left = self.nodes[l as usize].right;
        self.nodes[l as usize].right = i;
        self.update(i);
        self.update(l);
        l
    }

    fn rotate_left(&mut self, i: u32) -> u32 {
        let r = self.nodes[i as usize].right;
        self.nodes[i as usize].right = self.nodes[r as usize].left;
        self.nodes[r as usize].left = i;
        self.update(i);
        self.update(r);
        r
    }

    fn insert(&mut self, i: u32, key: f64, own: Sums) -> u32 {
        if i == NIL {
            self.nodes.push(Node {
                key,
                priority: priority(key),
                left: NIL,
                right: NIL,
                own,
                sum: own,
            });
            return (self.nodes.len() - 1) as u32;
        }
        let node_key = self.nodes[i as usize].key;
        if key == node_key {
            self.nodes[i as usize].own += own;
            self.update(i);
            return i;
        }
        let mut i = i;
        if key < node_key {
            let child = self.insert(self.nodes[i as usize].left, key, own);
            self.nodes[i as usize].left = child;
            if self.nodes[child as usize].priority > self.nodes[i as usize].priority {
                i = self.rotate_right(i);
            }
        } else {
            let child = self.insert(self.nodes[i as usize].right, key, own);
            self.nodes[i as usize].right = child;
            if self.nodes[child as usize].priority > self.nodes[i as usize].priority {
                i = self.rotate_left(i);
            }
        }
        self.update(i);
        i
    }

    /// Add quantity `q` at price `key` (`key` > 0).
    pub fn add(&mut self, key: f64, q: f64) {
        self.root = self.insert(self.root, key, Sums { q, qp: q / key });
    }

    /// Sums over every entry.
    pub fn totals(&self) -> Sums {
        self.sums(self.root)
    }

    /// Sums over the entries whose price satisfies `pred` and over the others, where `pred` is
    /// true for every price below some point and false above it. Each is added up over its own
    /// entries, so when `pred` holds everywhere the second is exactly 0, and vice versa.
    pub fn split(&self, pred: impl Fn(f64) -> bool) -> (Sums, Sums) {
        self.split_from(self.root, &pred)
    }

    fn split_from(&self, start: u32, pred: &impl Fn(f64) -> bool) -> (Sums, Sums) {
        let mut low = Sums::default();
        let mut high = Sums::default();
        let mut i = start;
        while i != NIL {
            let n = &self.nodes[i as usize];
            if pred(n.key) {
                low += self.sums(n.left) + n.own;
                i = n.right;
            } else {
                high += n.own + self.sums(n.right);
                i = n.left;
            }
        }
        (low, high)
    }

    /// Sums over the entries below the range (`below` holds), in it (`up_to` holds and `below`
    /// does not) and above it (`up_to` does not hold); both predicates monotone like
    /// [`PriceTree::split`]'s, `below` implying `up_to`. One shared descent to where the range
    /// splits, then one descent on each side; each of the three is added up over its own
    /// entries.
    pub fn split3(
        &self,
        below: impl Fn(f64) -> bool,
        up_to: impl Fn(f64) -> bool,
    ) -> (Sums, Sums, Sums) {
        let mut low = Sums::default();
        let mut high = Sums::default();
        let mut i = self.root;
        while i != NIL {
            let n = &self.nodes[i as usize];
            if !up_to(n.key) {
                high += n.own + self.sums(n.right);
                i = n.left;
            } else if below(n.key) {
                low += self.sums(n.left) + n.own;
                i = n.right;
            } else {
                let (left_low, left_in) = self.split_from(n.left, &below);
                let (right_in, right_high) = self.split_from(n.right, &up_to);
                return (
                    low + left_low,
                    left_in + n.own + right_in,
                    right_high + high,
                );
            }
        }
        (low, Sums::default(), high)
    }

    /// Sums over the entries priced below `price`, at it and above it, in one descent (a key
    /// equal to `price` has every smaller key to its left and every larger one to its right).
    pub fn split_at(&self, price: f64) -> (Sums, Sums, Sums) {
        let mut low = Sums::default();
        let mut high = Sums::default();
        let mut i = self.root;
        while i != NIL {
            let n = &self.nodes[i as usize];
            if n.key < price {
                low += self.sums(n.left) + n.own;
                i = n.right;
            } else if n.key > price {
                high += n.own + self.sums(n.right);
                i = n.left;
            } else {
                return (low + self.sums(n.left), n.own, self.sums(n.right) + high);
            }
        }
        (low, Sums::default(), high)
    }

    /// Multiply every quantity by `factor`, a power of two (so that every sum stays exactly
    /// what adding up the scaled entries gives, unless it leaves the normal range).
    pub fn scale(&mut self, factor: f64) {
        debug_assert!(factor > 0.0 && factor == libm::ldexp(1.0, libm::ilogb(factor)));
        let times = |s: &mut Sums| {
            s.q *= factor;
            s.qp *= factor;
        };
        for n in &mut self.nodes {
            times(&mut n.own);
            times(&mut n.sum);
        }
    }

    /// Remove everything.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.root = NIL;
    }

    /// Distinct prices held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: Sums) -> f64 {
        s.q
    }

    #[test]
    fn sums_by_price() {
        let mut t = PriceTree::new();
        for (p, q) in [
            (10.0, 1.0),
            (5.0, 2.0),
            (20.0, 4.0),
            (10.0, 8.0),
            (7.5, 16.0),
        ] {
            t.add(p, q);
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.totals().q, 31.0);
        let split = |pred: &dyn Fn(f64) -> bool| {
            let (a, b) = t.split(pred);
            (q(a), q(b))
        };
        assert_eq!(split(&|p| p < 10.0), (18.0, 13.0));
        assert_eq!(split(&|p| p <= 10.0), (27.0, 4.0));
        assert_eq!(split(&|_| false), (0.0, 31.0));
        assert_eq!(split(&|_| true), (31.0, 0.0));
        let split3 = |below: &dyn Fn(f64) -> bool, up_to: &dyn Fn(f64) -> bool| {
            let (a, b, c) = t.split3(below, up_to);
            (q(a), q(b), q(c))
        };
        assert_eq!(split3(&|p| p < 7.5, &|p| p <= 10.0), (2.0, 25.0, 4.0));
        assert_eq!(split3(&|p| p < 6.0, &|p| p < 7.0), (2.0, 0.0, 29.0));
        assert_eq!(split3(&|_| false, &|_| true), (0.0, 31.0, 0.0));
        assert_eq!(split3(&|_| true, &|_| true), (31.0, 0.0, 0.0));
        assert_eq!(split3(&|_| false, &|_| false), (0.0, 0.0, 31.0));
        for (price, expect) in [
            (10.0, (18.0, 9.0, 4.0)),
            (9.0, (18.0, 0.0, 13.0)),
            (5.0, (0.0, 2.0, 29.0)),
            (20.0, (27.0, 4.0, 0.0)),
            (1.0, (0.0, 0.0, 31.0)),
            (99.0, (31.0, 0.0, 0.0)),
        ] {
            let (a, b, c) = t.split_at(price);
            assert_eq!((q(a), q(b), q(c)), expect, "price {price}");
        }
        t.scale(0.5);
        assert_eq!(t.totals().q, 15.5);
        let qp = 2.0 / 5.0 + 16.0 / 7.5 + 9.0 / 10.0 + 4.0 / 20.0;
        assert!((t.totals().qp - qp / 2.0).abs() < 1e-12);
    }

    /// Whatever the order of arrival, the same entries give the same sums, bit for bit, and a
    /// split whose one side is empty gives the other side exactly as the total.
    #[test]
    fn sums_depend_on_the_entries_only() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let entries: Vec<(f64, f64)> = (0..300)
            .map(|_| {
                let price = 1.0 + (next() % 500) as f64 / 7.0;
                (price, (next() % 1_000_000) as f64 / 997.0)
            })
            .collect();
        // Distinct prices only, so that merging at a price adds in one order.
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<(f64, f64)> = entries
            .into_iter()
            .filter(|(p, _)| seen.insert(p.to_bits()))
            .collect();
        let build = |order: &[usize]| {
            let mut t = PriceTree::new();
            for i in order {
                t.add(entries[*i].0, entries[*i].1);
            }
            t
        };
        let probe = |t: &PriceTree| {
            let mut out = vec![t.totals().q.to_bits(), t.totals().qp.to_bits()];
            for (k, entry) in entries.iter().take(80).enumerate() {
                let x = k as f64;
                let (a, b) = t.split(|p| p < x);
                let (c, d, e) = t.split3(|p| p < x, |p| p <= x + 3.5);
                let (f, g, h) = t.split_at(entry.0);
                for s in [a, b, c, d, e, f, g, h] {
                    out.extend([s.q.to_bits(), s.qp.to_bits()]);
                }
            }
            out
        };
        let mut order: Vec<usize> = (0..entries.len()).collect();
        let first = build(&order);
        let expect = probe(&first);
        for _ in 0..5 {
            for i in (1..order.len()).rev() {
                order.swap(i, (next() % (i as u64 + 1)) as usize);
            }
            assert_eq!(probe(&build(&order)), expect);
        }
    }
}
