//! An ordered map from price to (quantity, quantity / price) with subtree sums: a treap whose
//! shape depends only on the set of prices inserted so far (priorities are a hash of the key).
//!
//! Every sum it returns is computed from the entries inserted so far only, in an order fixed by
//! those entries, so an answer at row t is bit-for-bit independent of later rows.

/// Index of "no node".
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Node {
    key: f64,
    priority: u64,
    left: u32,
    right: u32,
    q: f64,
    qp: f64,
    sum_q: f64,
    sum_qp: f64,
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

    fn sums(&self, i: u32) -> (f64, f64) {
        if i == NIL {
            (0.0, 0.0)
        } else {
            let n = &self.nodes[i as usize];
            (n.sum_q, n.sum_qp)
        }
    }

    fn update(&mut self, i: u32) {
        let (lq, lqp) = self.sums(self.nodes[i as usize].left);
        let (rq, rqp) = self.sums(self.nodes[i as usize].right);
        let n = &mut self.nodes[i as usize];
        n.sum_q = lq + n.q + rq;
        n.sum_qp = lqp + n.qp + rqp;
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

    fn insert(&mut self, i: u32, key: f64, q: f64, qp: f64) -> u32 {
        if i == NIL {
            self.nodes.push(Node {
                key,
                priority: priority(key),
                left: NIL,
                right: NIL,
                q,
                qp,
                sum_q: q,
                sum_qp: qp,
            });
            return (self.nodes.len() - 1) as u32;
        }
        let node_key = self.nodes[i as usize].key;
        if key == node_key {
            let n = &mut self.nodes[i as usize];
            n.q += q;
            n.qp += qp;
            self.update(i);
            return i;
        }
        let mut i = i;
        if key < node_key {
            let child = self.insert(self.nodes[i as usize].left, key, q, qp);
            self.nodes[i as usize].left = child;
            if self.nodes[child as usize].priority > self.nodes[i as usize].priority {
                i = self.rotate_right(i);
            }
        } else {
            let child = self.insert(self.nodes[i as usize].right, key, q, qp);
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
        self.root = self.insert(self.root, key, q, q / key);
    }

    /// Total quantity and total quantity over price.
    pub fn totals(&self) -> (f64, f64) {
        self.sums(self.root)
    }

    /// Quantity at the prices for which `pred` holds, where `pred` is true for every price
    /// below some point and false above it.
    pub fn quantity_while(&self, pred: impl Fn(f64) -> bool) -> f64 {
        self.quantity_while_from(self.root, &pred)
    }

    fn quantity_while_from(&self, start: u32, pred: &impl Fn(f64) -> bool) -> f64 {
        let mut sum = 0.0;
        let mut i = start;
        while i != NIL {
            let n = &self.nodes[i as usize];
            if pred(n.key) {
                sum += self.sums(n.left).0 + n.q;
                i = n.right;
            } else {
                i = n.left;
            }
        }
        sum
    }

    /// Quantity at the prices where `up_to` holds and `below` does not, both monotone like
    /// [`PriceTree::quantity_while`]'s predicate and `below` implying `up_to`: one shared descent
    /// to where the range splits, then one descent on each side.
    pub fn quantity_between(
        &self,
        below: impl Fn(f64) -> bool,
        up_to: impl Fn(f64) -> bool,
    ) -> f64 {
        let mut i = self.root;
        while i != NIL {
            let n = &self.nodes[i as usize];
            if !up_to(n.key) {
                i = n.left;
            } else if below(n.key) {
                i = n.right;
            } else {
                let right = self.quantity_while_from(n.right, &up_to);
                let left = self.sums(n.left).0 - self.quantity_while_from(n.left, &below);
                return left + n.q + right;
            }
        }
        0.0
    }

    /// Multiply every quantity by `factor`.
    pub fn scale(&mut self, factor: f64) {
        for n in &mut self.nodes {
            n.q *= factor;
            n.qp *= factor;
            n.sum_q *= factor;
            n.sum_qp *= factor;
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
        assert_eq!(t.totals().0, 31.0);
        assert_eq!(t.quantity_while(|p| p < 10.0), 18.0);
        assert_eq!(t.quantity_while(|p| p <= 10.0), 27.0);
        assert_eq!(t.quantity_while(|_| false), 0.0);
        assert_eq!(t.quantity_between(|p| p < 7.5, |p| p <= 10.0), 25.0);
        assert_eq!(t.quantity_between(|p| p < 6.0, |p| p < 7.0), 0.0);
        assert_eq!(t.quantity_between(|_| false, |_| true), 31.0);
        t.scale(0.5);
        assert_eq!(t.totals().0, 15.5);
        let qp = 2.0 / 5.0 + 16.0 / 7.5 + 9.0 / 10.0 + 4.0 / 20.0;
        assert!((t.totals().1 - qp / 2.0).abs() < 1e-12);
    }
}
