//! Rank arithmetic shared by the squeeze and crowding scores, in exact integer arithmetic.
//!
//! An average-tie rank `r` is a whole or half number, so `2r` is an integer and every rank
//! fraction `r / n` is the rational `2r / 2n`. The scores combine such fractions (a mean, a
//! difference, a rounding) and rank the results again: done in floating point, fractions that
//! are equal in exact arithmetic could differ in their last bit depending on the order they were
//! added in, and the outer rank would break a tie that is not there. So every step here works on
//! integers: means of rank fractions are integers over one common denominator (compared
//! exactly), `ceil` and SQL `round` are integer divisions, and the only floating-point operation
//! is the final correctly rounded division where a score is not a whole number (so equal
//! rationals give the same double).

use datafusion::common::exec_err;
use datafusion::error::Result;

use crate::common::ranks::average_ranks;

/// SPEC-valid values of a column (`None` = NULL, NaN or ±inf).
pub fn valid(column: &arrow::array::Float64Array) -> Vec<Option<f64>> {
    crate::common::valid_values(column).collect()
}

/// The cs_rank of each valid value as an exact fraction `twice[i] / (2 n)`: `twice[i]` is twice
/// the average-tie rank (1 = smallest), `None` where the value is not valid.
#[derive(Debug)]
pub struct RankFractions {
    /// Twice the rank of each row's value.
    pub twice: Vec<Option<u64>>,
    /// Number of valid values.
    pub n: u64,
}

/// Ranks of `values` (with `sign` -1.0 for descending ranks: 1 = highest).
fn rank_fractions(values: &[Option<f64>], sign: f64) -> RankFractions {
    let (rows, xs): (Vec<usize>, Vec<f64>) = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|x| (i, sign * x)))
        .unzip();
    let mut twice = vec![None; values.len()];
    for (row, r) in rows.into_iter().zip(average_ranks(&xs)) {
        twice[row] = Some((2.0 * r) as u64);
    }
    RankFractions {
        twice,
        n: xs.len() as u64,
    }
}

/// `cs_rank`: r / n among the valid values, as exact fractions.
pub fn pct_rank(values: &[Option<f64>]) -> RankFractions {
    rank_fractions(values, 1.0)
}

/// Rank 1..100 with 1 for the highest value: `ceil(100 * r_desc / n)`, `r_desc` the average-tie
/// rank of `-x`, as the integer division `ceil(100 * 2r / 2n)`.
pub fn descending_rank_100(values: &[Option<f64>]) -> Vec<Option<u64>> {
    let ranks = rank_fractions(values, -1.0);
    let den = 2 * ranks.n;
    ranks
        .twice
        .into_iter()
        .map(|t| t.map(|t| (100 * t).div_ceil(den)))
        .collect()
}

/// `round(100 * r / n)` with SQL rounding (halves away from zero) for `r = twice / 2`:
/// `floor((100 * 2r + n) / 2n)`.
pub fn round_percent(twice: u64, n: u64) -> u64 {
    (100 * twice + n) / (2 * n)
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn lcm(a: u128, b: u128) -> Option<u128> {
    (a / gcd(a, b)).checked_mul(b)
}

/// The per-row mean of several rank fractions over the columns available on the row, then
/// `round(100 * cs_rank(mean))` over the rows that have a mean; `None` where none is available.
///
/// With `L` the least common multiple of the columns' `2 n` and `K` that of the possible counts
/// of available columns, a row's mean is `M / (K L)` with the integer
/// `M = (K / k) * sum_j 2 r_j * (L / 2 n_j)`, so means are compared as the integers `M`.
/// `M <= K L`, which fits 128 bits unless the columns have over 2^29 rows each with counts that
/// share no factor; then the partition is refused rather than ranked approximately.
pub fn rank_of_mean(
    name: &str,
    columns: &[RankFractions],
    rows: usize,
) -> Result<Vec<Option<f64>>> {
    let mut common: u128 = 1;
    for k in 1..=columns.len() as u128 {
        common = lcm(common, k).expect("a few columns");
    }
    let mut denominator: Option<u128> = Some(1);
    for c in columns.iter().filter(|c| c.n > 0) {
        denominator = denominator.and_then(|l| lcm(l, 2 * c.n as u128));
    }
    let Some(l) = denominator.filter(|l| l.checked_mul(common).is_some()) else {
        return exec_err!(
            "{name}: the partition is too large to rank exactly ({} rows)",
            columns.iter().map(|c| c.n).max().unwrap_or(0)
        );
    };
    let weights: Vec<u128> = columns
        .iter()
        .map(|c| if c.n > 0 { l / (2 * c.n as u128) } else { 0 })
        .collect();
    let mut means: Vec<(u128, u32)> = Vec::with_capacity(rows);
    for row in 0..rows {
        let (mut sum, mut k) = (0u128, 0u128);
        for (c, w) in columns.iter().zip(&weights) {
            if let Some(t) = c.twice[row] {
                sum += t as u128 * w;
                k += 1;
            }
        }
        if let Some(per_column) = common.checked_div(k) {
            means.push((sum * per_column, row as u32));
        }
    }
    means.sort_unstable();
    let n = means.len() as u64;
    let mut out = vec![None; rows];
    let mut i = 0;
    while i < means.len() {
        let mut j = i + 1;
        while j < means.len() && means[j].0 == means[i].0 {
            j += 1;
        }
        // Rows i..j (0-based) tie: ranks i+1 ..= j, twice their mean is i + 1 + j.
        let score = round_percent((i + 1 + j) as u64, n) as f64;
        for (_, row) in &means[i..j] {
            out[*row as usize] = Some(score);
        }
        i = j;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fractions(twice: &[Option<u64>]) -> RankFractions {
        RankFractions {
            twice: twice.to_vec(),
            n: twice.iter().flatten().count() as u64,
        }
    }

    #[test]
    fn percent_rounds_halves_up_exactly() {
        // r = 11.5 of 20: 57.5 -> 58 (floating point: 100 * (11.5 / 20) = 57.49999999999999).
        assert_eq!(round_percent(23, 20), 58);
        assert_eq!(round_percent(2, 8), 13);
        assert_eq!(round_percent(29, 100), 15);
        assert_eq!(round_percent(2, 3), 33);
        assert_eq!(round_percent(4, 3), 67);
        assert_eq!(round_percent(20, 10), 100);
    }

    #[test]
    fn descending_ranks_are_integer_ceilings() {
        let r = descending_rank_100(&[Some(3.0), None, Some(1.0), Some(3.0), Some(2.0)]);
        // -x ranks: 3.0 -> 1.5 (tie), 2.0 -> 3, 1.0 -> 4, of n = 4.
        assert_eq!(r, vec![Some(38), None, Some(100), Some(38), Some(75)]);
    }

    /// Means that tie only in exact arithmetic tie: (4 + 5 + 3) / 10, (5 + 6 + 1) / 10 and
    /// (6 + 1 + 5) / 10 are 0.4 each, but summing r / n in floating point gives
    /// 0.39999999999999997, 0.4 and 0.4000000000000001.
    #[test]
    fn exact_means_tie() {
        let cols = [
            [4, 9, 3, 8, 5, 10, 1, 7, 6, 2],
            [5, 9, 4, 2, 6, 8, 10, 7, 1, 3],
            [3, 9, 7, 6, 1, 8, 2, 10, 5, 4],
        ];
        let columns: Vec<RankFractions> = cols
            .iter()
            .map(|c| fractions(&c.iter().map(|r| Some(2 * r)).collect::<Vec<_>>()))
            .collect();
        let out = rank_of_mean("t", &columns, 10).expect("ranked");
        let expect = [30, 100, 60, 70, 30, 90, 50, 80, 30, 10];
        assert_eq!(out, expect.map(|e| Some(e as f64)).to_vec());
    }

    /// Columns with different counts (NULLs) and rows with different numbers of inputs.
    #[test]
    fn means_over_available_inputs() {
        // Column a: ranks 1, 2, 3 of 3; column b: ranks 1, 2 of 2 on rows 1 and 2.
        let a = fractions(&[Some(2), Some(4), Some(6), None]);
        let b = fractions(&[None, Some(2), Some(4), None]);
        // Means: row 0 = 1/3; row 1 = (2/3 + 1/2) / 2 = 7/12; row 2 = (1 + 1) / 2 = 1; row 3 none.
        let out = rank_of_mean("t", &[a, b], 4).expect("ranked");
        assert_eq!(out, vec![Some(33.0), Some(67.0), Some(100.0), None]);
        // A column with no valid value takes no part.
        let empty = fractions(&[None, None]);
        let c = fractions(&[Some(2), Some(2)]);
        let out = rank_of_mean("t", &[empty, c], 2).expect("ranked");
        assert_eq!(out, vec![Some(75.0), Some(75.0)]);
    }

    #[test]
    fn too_large_to_rank_exactly_is_an_error() {
        let huge = |n: u64| RankFractions {
            twice: vec![Some(2)],
            n,
        };
        let columns = [
            huge((1 << 31) - 1),
            huge((1 << 31) - 19),
            huge((1 << 31) - 61),
            huge((1 << 31) - 1009),
        ];
        let Err(err) = rank_of_mean("crowded_score", &columns, 1) else {
            panic!("ranked")
        };
        assert!(
            err.to_string().contains("too large to rank exactly"),
            "{err}"
        );
    }
}
