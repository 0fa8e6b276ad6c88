//! The standard normal quantile function Φ⁻¹, accurate to about 1e-15 (relative).
//!
//! Acklam's rational approximation (relative error 1.15e-9) followed by one step of Halley's
//! method on `Φ(x) - p` with `Φ` from the complementary error function, which brings the result
//! to double precision across (0, 1).

// Acklam's published coefficients, kept digit for digit.
#[allow(clippy::excessive_precision)]
const A: [f64; 6] = [
    -3.969683028665376e+01,
    2.209460984245205e+02,
    -2.759285104469687e+02,
    1.383577518672690e+02,
    -3.066479806614716e+01,
    2.506628277459239e+00,
];
#[allow(clippy::excessive_precision)]
const B: [f64; 5] = [
    -5.447609879822406e+01,
    1.615858368580409e+02,
    -1.556989798598866e+02,
    6.680131188771972e+01,
    -1.328068155288572e+01,
];
#[allow(clippy::excessive_precision)]
const C: [f64; 6] = [
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e+00,
    -2.549732539343734e+00,
    4.374664141464968e+00,
    2.938163982698783e+00,
];
#[allow(clippy::excessive_precision)]
const D: [f64; 4] = [
    7.784695709041462e-03,
    3.224671290700398e-01,
    2.445134137142996e+00,
    3.754408661907416e+00,
];

fn acklam(p: f64) -> f64 {
    const LOW: f64 = 0.02425;
    if p < LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -acklam(1.0 - p)
    }
}

/// Φ⁻¹(p) for p in (0, 1); `None` outside (0, 1) or for NaN.
pub fn inverse_normal_cdf(p: f64) -> Option<f64> {
    if !(p > 0.0 && p < 1.0) {
        return None;
    }
    if p == 0.5 {
        return Some(0.0);
    }
    // Work in the lower tail for accuracy, then mirror.
    let (tail, sign) = if p > 0.5 { (1.0 - p, -1.0) } else { (p, 1.0) };
    let mut x = acklam(tail);
    // Halley refinement on Φ(x) - tail, Φ(x) = erfc(-x / √2) / 2.
    for _ in 0..2 {
        let e = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2) - tail;
        let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
        x -= u / (1.0 + x * u / 2.0);
    }
    Some(sign * x + 0.0)
}

#[cfg(test)]
mod tests {
    use super::inverse_normal_cdf;

    #[test]
    fn known_quantiles() {
        // scipy.stats.norm.ppf values.
        let cases = [
            (0.5, 0.0),
            (0.975, 1.959963984540054),
            (0.025, -1.959963984540054),
            (0.841344746068543, 1.0),
            (1e-10, -6.361340902404056),
            (0.9999, 3.719016485455709),
            (0.05, -1.6448536269514729),
            (1e-300, -37.0470962993612),
            (1e-20, -9.262340089798409),
            (1e-100, -21.273453560965322),
            (2.5e-5, -4.0556269811224),
        ];
        for (p, want) in cases {
            let got = inverse_normal_cdf(p).expect("in range");
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                "p={p}: {got} vs {want}"
            );
        }
        assert_eq!(inverse_normal_cdf(0.0), None);
        assert_eq!(inverse_normal_cdf(1.0), None);
        assert_eq!(inverse_normal_cdf(f64::NAN), None);
    }
}
