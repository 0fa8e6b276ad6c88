//! The generator's model parameters: the planted truth, written to `_truth.json`.

use serde::Serialize;

/// Regions, their weight in the security population and their policy rate (bps), used for the
/// cash-collateral rebate.
pub const REGIONS: [(&str, f64, f64); 4] = [
    ("NA", 0.36, 150.0),
    ("EU", 0.26, 50.0),
    ("APAC", 0.22, 80.0),
    ("EM", 0.16, 500.0),
];

/// Countries per region (ISO 3166 alpha-2) with weights.
pub const COUNTRIES: [&[(&str, f64)]; 4] = [
    &[("US", 0.88), ("CA", 0.12)],
    &[
        ("GB", 0.25),
        ("DE", 0.17),
        ("FR", 0.17),
        ("CH", 0.1),
        ("NL", 0.08),
        ("SE", 0.08),
        ("ES", 0.08),
        ("IT", 0.07),
    ],
    &[("JP", 0.55), ("AU", 0.2), ("HK", 0.15), ("SG", 0.1)],
    &[
        ("CN", 0.3),
        ("IN", 0.2),
        ("TW", 0.14),
        ("KR", 0.14),
        ("BR", 0.1),
        ("ZA", 0.06),
        ("MX", 0.06),
    ],
];

/// The 11 GICS-style sectors.
pub const SECTORS: [&str; 11] = [
    "Communication Services",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
];

/// Default DCBS breakpoints (bps), as SPEC's `dcbs` function uses them.
pub const DCBS_BREAKPOINTS: [f64; 9] = [
    25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0,
];

/// Every number that shapes the panel. Serialised into `_truth.json` so that tests and users
/// can see exactly what was planted.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// AR(1) persistence per business day of each security's latent short-demand signal `s`
    /// (cross-sectionally standard normal).
    pub signal_phi: f64,
    /// Expected daily return per unit of `s` known at the previous close is `-alpha_daily * s`.
    /// This is the planted effect: high short demand predicts low returns.
    pub alpha_daily: f64,
    /// utilization = logistic(util_intercept + util_slope * s + noise).
    pub util_intercept: f64,
    /// Loading of utilization on the latent signal.
    pub util_slope: f64,
    /// Standard deviation of the persistent utilization noise.
    pub util_noise_sd: f64,
    /// AR(1) persistence of the utilization noise.
    pub util_noise_phi: f64,
    /// General-collateral fee in bps.
    pub fee_gc_bps: f64,
    /// Utilization above which fees rise exponentially.
    pub fee_knee_utilization: f64,
    /// fee = gc * exp(fee_steepness * max(0, utilization - knee)) * exp(noise).
    pub fee_steepness: f64,
    /// Market (global factor) daily volatility.
    pub market_vol: f64,
    /// Probability per business day that a market crash episode starts.
    pub crash_prob: f64,
    /// Global-factor drift per day during a crash.
    pub crash_drift: f64,
    /// Length of a crash in business days.
    pub crash_days: usize,
    /// Probability per business day that a rally episode starts.
    pub rally_prob: f64,
    /// Global-factor drift per day during a rally.
    pub rally_drift: f64,
    /// Length of a rally in business days.
    pub rally_days: usize,
    /// Probability per day that a name with above-average short demand (s above
    /// `squeeze_min_signal`) starts a
    /// planted squeeze when all its shorts are under water and near breakeven; the hazard is
    /// `squeeze_prob * otm^squeeze_otm_power * near_breakeven`, times `squeeze_catalyst_boost`
    /// in the `squeeze_catalyst_days` rows from an earnings announcement or a relevant positive
    /// news item (the generator's own cohort model, as SPEC's `short_cohort_*`).
    pub squeeze_prob: f64,
    /// Power of the under-water share in the squeeze hazard.
    pub squeeze_otm_power: i32,
    /// Hazard multiplier after a catalyst.
    pub squeeze_catalyst_boost: f64,
    /// Rows (the catalyst's day included) with the raised hazard.
    pub squeeze_catalyst_days: usize,
    /// Latent signal a name needs for a planted squeeze.
    pub squeeze_min_signal: f64,
    /// The planted 3-day return is this multiple of `sigma * sqrt(3)` (SPEC's threshold is 3).
    pub squeeze_sigma_multiple: f64,
    /// Rows of strictly falling on-loan quantity after the move (SPEC needs 5).
    pub squeeze_cover_days: usize,
    /// Mean listed life in business days (exponential) for delistings.
    pub mean_listed_days: f64,
    /// Probability per day of a news event for a security.
    pub news_prob: f64,
    /// Business days between scheduled earnings.
    pub earnings_interval: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            signal_phi: 0.98,
            alpha_daily: 0.0004,
            util_intercept: -1.4,
            util_slope: 1.1,
            util_noise_sd: 0.35,
            util_noise_phi: 0.9,
            fee_gc_bps: 25.0,
            fee_knee_utilization: 0.4,
            fee_steepness: 7.0,
            market_vol: 0.009,
            crash_prob: 1.0 / (252.0 * 5.0),
            crash_drift: -0.018,
            crash_days: 12,
            rally_prob: 1.0 / (252.0 * 4.0),
            rally_drift: 0.008,
            rally_days: 15,
            squeeze_prob: 0.01,
            squeeze_otm_power: 8,
            squeeze_catalyst_boost: 10.0,
            squeeze_catalyst_days: 4,
            squeeze_min_signal: 0.0,
            squeeze_sigma_multiple: 4.5,
            squeeze_cover_days: 6,
            mean_listed_days: 252.0 * 15.0,
            news_prob: 0.04,
            earnings_interval: 63,
        }
    }
}
