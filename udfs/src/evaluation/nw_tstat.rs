//! `nw_tstat(x [, lags] ORDER BY date)`: Newey-West t-statistic of a series' mean.

use datafusion::logical_expr::AggregateUDF;

use super::ordered::ordered_aggregate;
use crate::common::doc;

/// Default Bartlett bandwidth: floor(4 * (T / 100)^(2/9)).
pub fn default_lags(t: usize) -> usize {
    (4.0 * (t as f64 / 100.0).powf(2.0 / 9.0)).floor() as usize
}

fn finish(x: &[f64], lags: Option<i64>) -> Option<f64> {
    let t = x.len();
    if t < 3 {
        return None;
    }
    let n = t as f64;
    let mean = x.iter().sum::<f64>() / n;
    let e: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let l = lags
        .map_or_else(|| default_lags(t), |l| l as usize)
        .min(t - 1);
    let gamma = |j: usize| {
        e[j..]
            .iter()
            .zip(&e[..t - j])
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / n
    };
    let mut s = gamma(0);
    for j in 1..=l {
        s += 2.0 * (1.0 - j as f64 / (l as f64 + 1.0)) * gamma(j);
    }
    (s > 0.0).then(|| mean / (s / n).sqrt())
}

/// The aggregate function.
pub fn nw_tstat() -> AggregateUDF {
    ordered_aggregate(
        "nw_tstat",
        doc(
            "Fama-MacBeth",
            "Newey-West t-statistic of the mean of the T valid values in ORDER BY order (Bartlett \
             kernel): mean / sqrt(S / T), S = g0 + 2 * sum_{j=1..L} (1 - j/(L+1)) * gj, \
             gj = (1/T) * sum_t e_t * e_{t-j}, e = x - mean, no small-sample correction — statsmodels \
             OLS on a constant with cov_type='HAC', maxlags=L, use_correction=False. Default \
             L = floor(4 * (T/100)^(2/9)); lags beyond T-1 add nothing. NULL if T < 3 or S <= 0. \
             The second stage of Fama-MacBeth: nw_tstat of the per-date coefficients.",
            "nw_tstat(x [, lags] ORDER BY date)",
            &[
                (
                    "x",
                    "the series, e.g. a per-date IC or Fama-MacBeth coefficient",
                ),
                (
                    "lags",
                    "Bartlett bandwidth L, a constant integer >= 0 (default floor(4 (T/100)^(2/9)))",
                ),
            ],
            "```sql\nSELECT nw_tstat(ic ORDER BY date) FROM daily_ic;\nSELECT nw_tstat(coef[2], 6 ORDER BY date) FROM (SELECT date, fm_coefficients(ret, si) AS coef FROM panel GROUP BY date);\n```",
        ),
        Some("lags"),
        finish,
    )
}

#[cfg(test)]
mod tests {
    use super::default_lags;

    #[test]
    fn default_bandwidth() {
        assert_eq!(default_lags(100), 4);
        assert_eq!(default_lags(3), 1);
        assert_eq!(default_lags(1000), 6);
    }
}
