//! What the cross-sectional functions share: the rows that enter the cross-section (all inputs
//! valid), their ranks, and writing results back to every row (NULL for the rows left out).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int32Array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::util::bit_util;

use crate::common::ranks::average_ranks;

/// The valid values of a single-input cross-section: `(row index, value)`.
pub fn valid_rows(column: &Float64Array) -> (Vec<usize>, Vec<f64>) {
    let mut rows = Vec::with_capacity(column.len());
    let mut values = Vec::with_capacity(column.len());
    let mut keep = |i: usize, x: f64| {
        if x.is_finite() {
            rows.push(i);
            values.push(x);
        }
    };
    match column.nulls().filter(|n| n.null_count() > 0) {
        None => column
            .values()
            .iter()
            .enumerate()
            .for_each(|(i, x)| keep(i, *x)),
        Some(nulls) => nulls
            .valid_indices()
            .for_each(|i| keep(i, column.values()[i])),
    }
    (rows, values)
}

/// The ranked cross-section of one column: the rows whose value is valid and the average-tie
/// rank (1 = smallest) of each among them.
#[derive(Debug)]
pub struct SectionRanks {
    /// Row index of each valid value, ascending.
    pub rows: Vec<usize>,
    /// `ranks[j]` is the rank of the value at `rows[j]`.
    pub ranks: Vec<f64>,
}

/// How many ranked columns [`section_ranks`] remembers per thread: a window operator evaluates
/// all its functions on one partition slice before the next, so `cs_rank(x)` and
/// `cs_normal_rank(x)` of the same slice meet within a few calls.
const REMEMBERED_SECTIONS: usize = 8;

/// Columns whose memory is larger than this are not remembered: an entry keeps its whole
/// buffer alive (a batch of the normal size is 128 KiB), and a thread keeps its entries until
/// later sections push them out.
const REMEMBERED_BYTES: usize = 4 << 20;

thread_local! {
    /// Recently ranked columns, newest last. Each entry holds the array itself, so its buffers
    /// stay alive and their addresses cannot be reused by another array while it is here.
    static RANKED: RefCell<VecDeque<(Float64Array, Rc<SectionRanks>)>> =
        const { RefCell::new(VecDeque::new()) };
}

/// Whether `a` and `b` are views of the same memory (so, Arrow buffers being immutable, the
/// same values and validity).
fn same_view(a: &Float64Array, b: &Float64Array) -> bool {
    let nulls = |x: &Float64Array| x.nulls().map(|n| (n.buffer().as_ptr(), n.offset()));
    a.len() == b.len()
        && std::ptr::eq(a.values().as_ptr(), b.values().as_ptr())
        && nulls(a) == nulls(b)
}

/// The ranks of `column`'s valid values. Functions that rank the same column of the same
/// partition slice (`cs_rank(x)`, `cs_normal_rank(x)` and `cs_bucket(x, k)` side by side) share
/// one computation: the last few results are remembered by the identity of the array's memory.
pub fn section_ranks(column: &Float64Array) -> Rc<SectionRanks> {
    let known = RANKED.with_borrow(|ranked| {
        ranked
            .iter()
            .find(|(array, _)| same_view(array, column))
            .map(|(_, ranks)| Rc::clone(ranks))
    });
    if let Some(ranks) = known {
        return ranks;
    }
    let (rows, values) = valid_rows(column);
    let ranks = Rc::new(SectionRanks {
        ranks: average_ranks(&values),
        rows,
    });
    if column.values().inner().capacity() > REMEMBERED_BYTES {
        return ranks;
    }
    RANKED.with_borrow_mut(|ranked| {
        if ranked.len() == REMEMBERED_SECTIONS {
            ranked.pop_front();
        }
        ranked.push_back((column.clone(), Rc::clone(&ranks)));
    });
    ranks
}

/// A Float64 column of `len` rows with `values[j]` at `rows[j]` and NULL elsewhere; non-finite
/// results are NULL and `-0.0` becomes `0.0`.
pub fn scatter_f64(len: usize, rows: &[usize], values: impl IntoIterator<Item = f64>) -> ArrayRef {
    let mut out = vec![0.0; len];
    let mut valid = vec![0u8; len.div_ceil(8)];
    for (row, v) in rows.iter().zip(values) {
        if v.is_finite() {
            out[*row] = v + 0.0;
            bit_util::set_bit(&mut valid, *row);
        }
    }
    let nulls = NullBuffer::new(BooleanBuffer::new(valid.into(), 0, len));
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Arc::new(Float64Array::new(out.into(), nulls))
}

/// An Int32 column with `values[j]` at `rows[j]`, NULL elsewhere.
pub fn scatter_i32(len: usize, rows: &[usize], values: impl IntoIterator<Item = i32>) -> ArrayRef {
    let mut out: Vec<Option<i32>> = vec![None; len];
    for (row, v) in rows.iter().zip(values) {
        out[*row] = Some(v);
    }
    Arc::new(Int32Array::from(out))
}

/// Mean of finite values, compensated.
pub fn mean(values: &[f64]) -> f64 {
    let mut sum = crate::common::sliding::NeumaierSum::default();
    for v in values {
        sum.add(*v);
    }
    sum.value() / values.len() as f64
}

/// Sample standard deviation (two-pass around the mean), or `None` when `n < 2` or the values
/// are all equal.
pub fn stddev_samp(values: &[f64], mean: f64) -> Option<f64> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let first = values[0];
    if values.iter().all(|v| *v == first) {
        return None;
    }
    let mut ss = crate::common::sliding::NeumaierSum::default();
    for v in values {
        ss.add((v - mean) * (v - mean));
    }
    let sd = (ss.value() / (n - 1) as f64).sqrt();
    (sd > 0.0).then_some(sd)
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use arrow::array::Float64Array;
    use arrow::buffer::NullBuffer;

    use super::{REMEMBERED_SECTIONS, section_ranks, valid_rows};
    use crate::common::ranks::average_ranks;

    fn fresh_ranks(column: &Float64Array) -> (Vec<usize>, Vec<f64>) {
        let (rows, values) = valid_rows(column);
        (rows, average_ranks(&values))
    }

    #[test]
    fn remembered_ranks_are_those_of_the_same_memory_only() {
        let values = Float64Array::from(vec![
            Some(3.0),
            None,
            Some(f64::NAN),
            Some(1.0),
            Some(3.0),
            Some(-2.0),
            Some(f64::INFINITY),
            Some(0.5),
        ]);
        let first = section_ranks(&values);
        assert_eq!(first.rows, vec![0, 3, 4, 5, 7]);
        assert_eq!(first.ranks, vec![4.5, 3.0, 4.5, 1.0, 2.0]);
        // The same array (or a clone of it: same buffers) is ranked once.
        assert!(Rc::ptr_eq(&first, &section_ranks(&values.clone())));
        // Slices of the same buffers are other sections.
        for (offset, len) in [(0, 7), (1, 7), (3, 3), (0, 0)] {
            let slice = values.slice(offset, len);
            let ranked = section_ranks(&slice);
            assert_eq!(
                (ranked.rows.clone(), ranked.ranks.clone()),
                fresh_ranks(&slice)
            );
        }
        // The same values under other validity are another section (row 1 holds 0.0 under
        // its NULL).
        let masked = Float64Array::new(
            values.values().clone(),
            Some(NullBuffer::from(vec![
                true, true, true, false, true, true, true, true,
            ])),
        );
        let ranked = section_ranks(&masked);
        assert!(!Rc::ptr_eq(&first, &ranked));
        assert_eq!(ranked.rows, vec![0, 1, 4, 5, 7]);
        assert_eq!(ranked.ranks, vec![4.5, 2.0, 4.5, 1.0, 3.0]);
        // Equal values in other memory are ranked again (and alike).
        let copy = Float64Array::from(values.iter().collect::<Vec<_>>());
        let again = section_ranks(&copy);
        assert!(!Rc::ptr_eq(&first, &again));
        assert_eq!((&again.rows, &again.ranks), (&first.rows, &first.ranks));
        // Only the last few columns are kept.
        let others: Vec<Float64Array> = (0..REMEMBERED_SECTIONS)
            .map(|i| Float64Array::from(vec![i as f64, 1.0]))
            .collect();
        for other in &others {
            section_ranks(other);
        }
        assert!(!Rc::ptr_eq(&first, &section_ranks(&values)));
    }
}
