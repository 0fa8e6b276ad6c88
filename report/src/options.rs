//! What a factor report evaluates (SPEC §4).

use chrono::NaiveDate;

/// How often the portfolio is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rebalance {
    /// The last business day (last date in the data) of each month.
    #[default]
    Monthly,
    /// The last business day of each ISO week.
    Weekly,
    /// Every business day.
    Daily,
}

impl Rebalance {
    /// Periods per year for annualising.
    pub fn periods_per_year(self) -> u32 {
        match self {
            Rebalance::Monthly => 12,
            Rebalance::Weekly => 52,
            Rebalance::Daily => 252,
        }
    }

    /// Parse `monthly`, `weekly` or `daily`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "monthly" => Ok(Rebalance::Monthly),
            "weekly" => Ok(Rebalance::Weekly),
            "daily" => Ok(Rebalance::Daily),
            other => Err(format!("rebalance {other:?}: use monthly, weekly or daily")),
        }
    }

    /// The name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Rebalance::Monthly => "monthly",
            Rebalance::Weekly => "weekly",
            Rebalance::Daily => "daily",
        }
    }
}

/// Which bucket the portfolio is long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Long the lowest bucket, short the highest (high lending demand predicts low returns).
    #[default]
    Bearish,
    /// Long the highest bucket, short the lowest.
    Bullish,
}

impl Direction {
    /// Parse `bearish` or `bullish`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "bearish" => Ok(Direction::Bearish),
            "bullish" => Ok(Direction::Bullish),
            other => Err(format!("direction {other:?}: use bearish or bullish")),
        }
    }

    /// The name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Bearish => "bearish",
            Direction::Bullish => "bullish",
        }
    }
}

/// Default hard-to-borrow threshold (bps), as `is_htb`.
pub const DEFAULT_HTB_BPS: f64 = 120.0;

/// Everything a report is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Built-in factor name or SQL expression over the panel columns.
    pub factor: String,
    /// Point-in-time universe; `None` = every security.
    pub universe: Option<String>,
    /// First rebalance date considered.
    pub start: Option<NaiveDate>,
    /// Last rebalance date considered.
    pub end: Option<NaiveDate>,
    /// Rebalance frequency.
    pub rebalance: Rebalance,
    /// Forward-return horizon in rows (business days).
    pub horizon: u32,
    /// Number of buckets.
    pub quantiles: u32,
    /// Long/short direction.
    pub direction: Direction,
    /// Fee threshold (bps) above which a name is hard to borrow, for the ex-HTB columns.
    pub htb_threshold_bps: f64,
    /// Neutralise the factor cross-sectionally (`fm_residual` on ln(market_cap),
    /// book_to_market, 12-1 momentum and 252-day beta).
    pub neutralize: bool,
    /// Add metrics per market regime.
    pub by_regime: bool,
    /// Add the IC within market-cap quintiles.
    pub by_size: bool,
    /// Zero factor values in a bucket of their own (bucket 0), positive ones in quantiles.
    pub zero_bucket: bool,
    /// Add the squeeze-model validation (Markit's Table 1): per bucket, the share of names with
    /// a `squeeze_event` in the next `horizon` rows, and excess returns by holding period.
    pub squeeze_validation: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            factor: String::new(),
            universe: None,
            start: None,
            end: None,
            rebalance: Rebalance::Monthly,
            horizon: 21,
            quantiles: 10,
            direction: Direction::Bearish,
            htb_threshold_bps: DEFAULT_HTB_BPS,
            neutralize: false,
            by_regime: false,
            by_size: false,
            zero_bucket: false,
            squeeze_validation: false,
        }
    }
}

impl ReportOptions {
    /// Options that cannot work, as a message.
    pub fn validate(&self) -> Result<(), String> {
        if self.factor.trim().is_empty() {
            return Err("the report needs a factor (a built-in name or an SQL expression)".into());
        }
        if !(1..=2520).contains(&self.horizon) {
            return Err(format!("horizon {} must be 1..=2520 rows", self.horizon));
        }
        if !(2..=100).contains(&self.quantiles) {
            return Err(format!("quantiles {} must be 2..=100", self.quantiles));
        }
        if !self.htb_threshold_bps.is_finite() || self.htb_threshold_bps < 0.0 {
            return Err("the hard-to-borrow threshold must be a non-negative number".into());
        }
        if let (Some(s), Some(e)) = (self.start, self.end)
            && s > e
        {
            return Err(format!("start {s} is after end {e}"));
        }
        if let Some(u) = &self.universe
            && (u.is_empty() || u.contains('\''))
        {
            return Err(format!("invalid universe name {u:?}"));
        }
        Ok(())
    }
}
