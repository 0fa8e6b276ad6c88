//! Products over every fixed-length window in O(n) (van Herk / Gil-Werman), with no division,
//! so zeros and sign changes are handled exactly like a direct product.

/// `out[i] = x[i] * x[i+1] * ... * x[i+w-1]` for every `i` in `0..=x.len()-w`
/// (empty when `w == 0` or `w > x.len()`).
pub fn window_products(x: &[f64], w: usize) -> Vec<f64> {
    let n = x.len();
    if w == 0 || w > n {
        return vec![];
    }
    if w == 1 {
        return x.to_vec();
    }
    // Prefix products restarting at every multiple of w, suffix products ending at each block end.
    let mut prefix = vec![0.0; n];
    let mut suffix = vec![0.0; n];
    for i in 0..n {
        prefix[i] = if i % w == 0 {
            x[i]
        } else {
            prefix[i - 1] * x[i]
        };
    }
    for i in (0..n).rev() {
        suffix[i] = if i % w == w - 1 || i == n - 1 {
            x[i]
        } else {
            x[i] * suffix[i + 1]
        };
    }
    (0..=n - w)
        .map(|i| {
            if i % w == 0 {
                prefix[i + w - 1]
            } else {
                suffix[i] * prefix[i + w - 1]
            }
        })
        .collect()
}

/// `counts[i]` = number of `true` in `flags[..i]`.
pub fn prefix_counts(flags: impl Iterator<Item = bool>) -> Vec<u32> {
    let mut out = vec![0u32];
    let mut c = 0u32;
    for f in flags {
        c += u32::from(f);
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_direct_products() {
        let x: Vec<f64> = (0..37)
            .map(|i| 1.0 + ((i * 13) % 7) as f64 / 10.0 - 0.3)
            .collect();
        for w in 1..=37 {
            let got = window_products(&x, w);
            assert_eq!(got.len(), x.len() - w + 1);
            for (i, g) in got.iter().enumerate() {
                let direct: f64 = x[i..i + w].iter().product();
                assert!(
                    (g - direct).abs() <= 1e-12 * direct.abs().max(1.0),
                    "w={w} i={i}"
                );
            }
        }
        assert!(window_products(&x, 0).is_empty());
        assert!(window_products(&x, 38).is_empty());
        let with_zero = window_products(&[2.0, 0.0, 3.0, 4.0], 2);
        assert_eq!(with_zero, vec![0.0, 0.0, 12.0]);
    }
}
