//! The standard normal quantile function Φ⁻¹, accurate to about 1e-16 (relative).
//!
//! Wichura's algorithm AS 241 (PPND16, Applied Statistics 37(3), 1988): three rational
//! approximations of degree 7 — the centre |p - 0.5| <= 0.425, then in r = sqrt(-ln(min(p, 1-p)))
//! the tails r <= 5 and beyond. No iteration and no erfc, so it is a few multiply-adds per value.

// Wichura's published coefficients, kept digit for digit (constant term first).
#[allow(clippy::excessive_precision)]
const CENTRE_NUM: [f64; 8] = [
    3.3871328727963666080e0,
    1.3314166789178437745e+2,
    1.9715909503065514427e+3,
    1.3731693765509461125e+4,
    4.5921953931549871457e+4,
    6.7265770927008700853e+4,
    3.3430575583588128105e+4,
    2.5090809287301226727e+3,
];
#[allow(clippy::excessive_precision)]
const CENTRE_DEN: [f64; 8] = [
    1.0,
    4.2313330701600911252e+1,
    6.8718700749205790830e+2,
    5.3941960214247511077e+3,
    2.1213794301586595867e+4,
    3.9307895800092710610e+4,
    2.8729085735721942674e+4,
    5.2264952788528545610e+3,
];
#[allow(clippy::excessive_precision)]
const NEAR_NUM: [f64; 8] = [
    1.42343711074968357734e0,
    4.63033784615654529590e0,
    5.76949722146069140550e0,
    3.64784832476320460504e0,
    1.27045825245236838258e0,
    2.41780725177450611770e-1,
    2.27238449892691845833e-2,
    7.74545014278341407640e-4,
];
#[allow(clippy::excessive_precision)]
const NEAR_DEN: [f64; 8] = [
    1.0,
    2.05319162663775882187e0,
    1.67638483018380384940e0,
    6.89767334985100004550e-1,
    1.48103976427480074590e-1,
    1.51986665636164571966e-2,
    5.47593808499534494600e-4,
    1.05075007164441684324e-9,
];
#[allow(clippy::excessive_precision)]
const FAR_NUM: [f64; 8] = [
    6.65790464350110377720e0,
    5.46378491116411436990e0,
    1.78482653991729133580e0,
    2.96560571828504891230e-1,
    2.65321895265761230930e-2,
    1.24266094738807843860e-3,
    2.71155556874348757815e-5,
    2.01033439929228813265e-7,
];
#[allow(clippy::excessive_precision)]
const FAR_DEN: [f64; 8] = [
    1.0,
    5.99832206555887937690e-1,
    1.36929880922735805310e-1,
    1.48753612908506148525e-2,
    7.86869131145613259100e-4,
    1.84631831751005468180e-5,
    1.42151175831644588870e-7,
    2.04426310338993978564e-15,
];

/// `num(x) / den(x)`, both by Horner's rule.
fn rational(num: &[f64; 8], den: &[f64; 8], x: f64) -> f64 {
    let n = num.iter().rev().fold(0.0, |acc, c| acc * x + c);
    let d = den.iter().rev().fold(0.0, |acc, c| acc * x + c);
    n / d
}

/// Φ⁻¹(p) for p in (0, 1); `None` outside (0, 1) or for NaN.
pub fn inverse_normal_cdf(p: f64) -> Option<f64> {
    if !(p > 0.0 && p < 1.0) {
        return None;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return Some(q * rational(&CENTRE_NUM, &CENTRE_DEN, r));
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let x = if r <= 5.0 {
        rational(&NEAR_NUM, &NEAR_DEN, r - 1.6)
    } else {
        rational(&FAR_NUM, &FAR_DEN, r - 5.0)
    };
    Some(if q < 0.0 { -x } else { x })
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
