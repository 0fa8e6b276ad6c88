//! Average-tie ranks (1 = smallest), as pandas `rank(method="average")` and scipy `rankdata`.

/// Ranks of `values` (all finite): ties share the mean of the ranks they span.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut ranks = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        // -0.0 and 0.0 are the same value for ranking.
        while j < n && values[order[j]] == values[order[i]] {
            j += 1;
        }
        // Rows i..j (0-based) tie: ranks i+1 ..= j, mean (i + 1 + j) / 2.
        let rank = (i + 1 + j) as f64 / 2.0;
        for k in &order[i..j] {
            ranks[*k] = rank;
        }
        i = j;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::average_ranks;

    #[test]
    fn ties_share_the_mean_rank() {
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
        assert_eq!(average_ranks(&[5.0, 5.0, 5.0]), vec![2.0, 2.0, 2.0]);
        assert_eq!(average_ranks(&[-0.0, 0.0]), vec![1.5, 1.5]);
        assert!(average_ranks(&[]).is_empty());
    }
}
