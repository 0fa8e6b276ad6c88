//! The planted truth, written next to the data as `_truth.json`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::GenerateOptions;
use crate::gaps::GapParams;
use crate::params::Params;

/// A market-wide crash or rally.
#[derive(Debug, Clone, Serialize)]
pub struct Episode {
    /// `crash` or `rally`.
    pub kind: String,
    /// First day.
    pub start: String,
    /// Last day.
    pub end: String,
}

impl Episode {
    /// An episode from `start` to `end`.
    pub fn new(kind: &str, start: NaiveDate, end: NaiveDate) -> Self {
        Self {
            kind: kind.into(),
            start: start.to_string(),
            end: end.to_string(),
        }
    }
}

/// A planted squeeze: `date` is row t of SPEC's squeeze-event definition (the last day of the
/// 3-day move), so `squeeze_event(total_return, on_loan_qty)` is true there.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlantedSqueeze {
    /// Security.
    pub security_id: String,
    /// Day t.
    pub date: String,
}

/// Everything a test or a user needs to know about what the panel contains.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    /// Producer.
    pub generator: String,
    /// Seed.
    pub seed: u64,
    /// Securities over the panel's life.
    pub securities: u32,
    /// First calendar day asked for.
    pub start: String,
    /// Last calendar day asked for.
    pub end: String,
    /// Business days (Monday to Friday) in the panel.
    pub business_days: usize,
    /// Model parameters.
    pub params: Params,
    /// Expected mean daily Spearman IC of each factor with the 21-day forward return
    /// (`fwd_return(total_return, 21)`), over all securities per date.
    pub target_ic_21d: BTreeMap<String, f64>,
    /// How the targets were obtained and how closely a panel should match them.
    pub target_ic_note: String,
    /// How squeezes are planted.
    pub squeeze_note: String,
    /// How universes are formed.
    pub universe_rule: String,
    /// Market crashes and rallies.
    pub episodes: Vec<Episode>,
    /// Planted squeeze events.
    pub squeezes: Vec<PlantedSqueeze>,
    /// Rows written per table.
    pub rows: BTreeMap<String, u64>,
    /// The rates of the planted gaps (absent: generated with `--clean`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gaps: Option<GapParams>,
    /// Every planted gap by `table.column.kind` (`null`, `nan`, `inf`, `zero`, `negative`) and
    /// whole-row gaps (`lending.missing_rows`, `market.missing_rows`, `market.halt_rows`,
    /// `lending.absent_securities`).
    pub gap_counts: BTreeMap<String, u64>,
}

/// Calibrated targets (see `target_ic_note`).
pub const TARGET_IC_21D: [(&str, f64); 4] = [
    ("utilization", -0.062),
    ("short_interest", -0.065),
    ("days_to_cover", -0.058),
    ("fee_bps", -0.032),
];

impl Truth {
    /// The truth header for a run; episodes and squeezes are filled in as they happen.
    pub fn new(options: &GenerateOptions, params: &Params, business_days: usize) -> Self {
        Self {
            generator: format!("lendfusion generate {}", env!("CARGO_PKG_VERSION")),
            seed: options.seed,
            securities: options.securities,
            start: options.start.to_string(),
            end: options.end.to_string(),
            business_days,
            params: params.clone(),
            target_ic_21d: TARGET_IC_21D.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            target_ic_note: "Each security has a latent short-demand signal s (AR(1), cross-sectionally \
                standard normal). Utilization is logistic in s plus persistent noise; on-loan = \
                utilization x lendable; fees rise exponentially above the utilization knee; short \
                interest and days to cover inherit s through on-loan quantity. The next day's return \
                carries -alpha_daily * s. Targets are mean daily Spearman ICs with the 21-day forward \
                return measured on calibration panels (2,000 securities x 4 years, seed 1; 1,000 x 2 years, seed 2) with \
                utilization = on_loan_qty / lendable_qty, short_interest = on_loan_qty / \
                shares_outstanding, days_to_cover = on_loan_qty / 30-row mean volume, fee_bps as is; a \
                panel of 1,000+ securities over 2+ years should match each within +-0.025. Every target is \
                negative: high utilization, short interest, days to cover and fees predict lower returns \
                (fees are flat at general collateral for most names, hence the weaker fee IC)."
                .into(),
            squeeze_note: "Squeezes are planted where the Markit squeeze model looks. The generator keeps \
                its own short cohort book (SPEC's model with entry prices in 1% bins): otm = share of the \
                on-loan quantity shorted below today's close, near = share within 5% of breakeven. Among \
                names with s above squeeze_min_signal and 60 returns of history, a squeeze starts the \
                next day with probability squeeze_prob * otm^squeeze_otm_power * near, times \
                squeeze_catalyst_boost in the squeeze_catalyst_days rows from an earnings announcement \
                or a news item with sentiment > 0.5 and relevance >= 90: three days of equal returns \
                compounding to squeeze_sigma_multiple * sigma * sqrt(3), sigma the sample stddev of the \
                60 returns before the move, then squeeze_cover_days rows of strictly falling \
                on_loan_qty. So the lowest squeeze_score decile has a higher later squeeze frequency \
                than the universe (about 1.6-1.9x over the next 21 rows on the calibration panels). \
                `squeezes` lists every planted event (row t of SPEC's definition). Other rows can meet \
                the definition by chance; planted ones always do."
                .into(),
            universe_rule: "EU_DEV, APAC_DEV and EM hold every listed name of their region. US names are \
                in US_LARGE or US_SMALL by market-cap rank among listed US names, re-ranked on the first \
                business day of each quarter from the previous close (top 30% on first assignment; large \
                stays large inside the top 36%, small moves up inside the top 24%); new US listings start \
                in US_SMALL. Membership ends on a delisted name's last day. Canadian names are in no universe."
                .into(),
            episodes: vec![],
            squeezes: vec![],
            rows: BTreeMap::new(),
            gaps: None,
            gap_counts: BTreeMap::new(),
        }
    }
}
