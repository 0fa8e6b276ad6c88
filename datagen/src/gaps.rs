//! Realistic gaps planted in the generated panel (on by default; `--clean` turns them off).
//!
//! Real vendor data has holes: NULL cells in every measure column, NaN and ±inf where a feed
//! divided by zero, zero and negative denominators, trading halts with zero volume, days a
//! security is missing from one feed, names the lending feed does not cover at all. The planter
//! puts them into the rows the simulation produces, after the simulation has used them: the
//! model's own state (the planted effects, the squeeze book) never sees a gap, so the planted
//! truths hold up to the gaps' own noise. It draws from its own random stream, so the same seed
//! gives the same gaps, and `--clean` gives the same values without them.
//!
//! Every gap is counted by kind and column; the counts go to `_truth.json` (`gap_counts`) so a
//! test can check that a query sees exactly what was planted.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::buffers::{LENDING_F64, LendingValues, MARKET_F64, MarketValues};
use crate::rng::Rng;

/// Random stream of the planter (apart from every simulation stream).
const GAP_STREAM: u64 = u64::MAX - 7;
/// Random stream that decides which securities the lending feed leaves out.
const ABSENT_STREAM: u64 = u64::MAX - 8;

/// The rates of every kind of gap. Serialised into `_truth.json`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GapParams {
    /// Probability that a measure cell is NULL (every Float64 column of `lending`, `market` and
    /// `events`, and `lending.dcbs` on top of the names the vendor does not score).
    pub null_rate: f64,
    /// Probability that a cell is NaN, in the columns a feed computes: lending quantities, fees,
    /// rebates and VWAF, `close`, `volume`, `market_cap`, `total_return`, `book_to_market`,
    /// `sentiment`, `relevance`.
    pub nan_rate: f64,
    /// Probability that a cell is +inf or -inf (half each), in `lendable_qty`, `on_loan_qty`,
    /// `fee_bps`, `total_return` and `book_to_market`.
    pub inf_rate: f64,
    /// Probability that a denominator is 0: `lendable_qty`, `on_loan_qty`,
    /// `active_lendable_value`, `on_loan_value`, `close`, `shares_outstanding`, `float_shares`.
    pub zero_rate: f64,
    /// Probability that a denominator is negative (a sign error in the feed): `lendable_qty`,
    /// `close`, `shares_outstanding`.
    pub negative_rate: f64,
    /// Probability that a label (`country`, `region`, `sector`, `category`) is NULL.
    pub label_null_rate: f64,
    /// Probability per listed security and day that a trading halt starts: `volume` 0 and
    /// `total_return` 0 for `halt_days` rows.
    pub halt_start_rate: f64,
    /// Rows of a halt.
    pub halt_days: u8,
    /// Probability that a security's `lending` row of a day is missing.
    pub missing_lending_row_rate: f64,
    /// Probability that a security's `market` row of a day is missing.
    pub missing_market_row_rate: f64,
    /// Share of securities the lending feed does not cover at all (no `lending` rows).
    pub absent_from_lending: f64,
}

impl Default for GapParams {
    fn default() -> Self {
        Self {
            null_rate: 0.002,
            nan_rate: 0.0005,
            inf_rate: 0.0001,
            zero_rate: 0.0005,
            negative_rate: 0.0002,
            label_null_rate: 0.0005,
            halt_start_rate: 0.0002,
            halt_days: 3,
            missing_lending_row_rate: 0.001,
            missing_market_row_rate: 0.0005,
            absent_from_lending: 0.01,
        }
    }
}

/// What a gap puts into a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Nan,
    Inf,
    Zero,
    Negative,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Nan => "nan",
            Kind::Inf => "inf",
            Kind::Zero => "zero",
            Kind::Negative => "negative",
        }
    }
}

/// The gap kinds a numeric column can receive.
#[derive(Debug, Clone, Copy)]
struct ColumnGaps {
    name: &'static str,
    nan: bool,
    inf: bool,
    zero: bool,
    negative: bool,
}

const fn col(name: &'static str, nan: bool, inf: bool, zero: bool, negative: bool) -> ColumnGaps {
    ColumnGaps {
        name,
        nan,
        inf,
        zero,
        negative,
    }
}

/// `lending`'s Float64 columns in schema order.
const LENDING_COLUMNS: [ColumnGaps; LENDING_F64] = [
    col("lendable_qty", true, true, true, true),
    col("active_lendable_qty", true, false, false, false),
    col("on_loan_qty", true, true, true, false),
    col("borrowed_qty", true, false, false, false),
    col("lendable_value", false, false, false, false),
    col("active_lendable_value", false, false, true, false),
    col("on_loan_value", false, false, true, false),
    col("fee_bps", true, true, false, false),
    col("rebate_bps", true, false, false, false),
    col("vwaf_bps", true, false, false, false),
    col("rerated_value", false, false, false, false),
    col("stable_on_loan_qty", false, false, false, false),
    col("stable_lendable_qty", false, false, false, false),
];

/// `market`'s Float64 columns in schema order.
const MARKET_COLUMNS: [ColumnGaps; MARKET_F64] = [
    col("close", true, false, true, true),
    col("volume", true, false, false, false),
    col("shares_outstanding", false, false, true, true),
    col("float_shares", false, false, true, false),
    col("market_cap", true, false, false, false),
    col("total_return", true, true, false, false),
    col("book_to_market", true, true, false, false),
];

/// `events`' Float64 columns.
const EVENT_COLUMNS: [ColumnGaps; 2] = [
    col("sentiment", true, false, false, false),
    col("relevance", true, false, false, false),
];

/// `market`'s label columns.
const MARKET_LABELS: [&str; 3] = ["country", "region", "sector"];

/// A row's NULL cells: bit `c` set = column `c` (in the order of its table's value array, labels
/// after the numbers) is NULL.
pub type NullMask = u32;

/// Plants the gaps into rows as the simulation pushes them.
#[derive(Debug)]
pub struct GapPlanter {
    params: GapParams,
    rng: Rng,
    absent: Vec<bool>,
    halt_left: Vec<u8>,
    counts: BTreeMap<String, u64>,
    /// Probability that a row of `lending`, `market`, `events` has any numeric gap (the sum of
    /// its cells' rates), computed once.
    any: [f64; 3],
}

impl GapPlanter {
    /// A planter for a panel of `securities` names.
    pub fn new(seed: u64, securities: u32, params: GapParams) -> Self {
        let mut absent_rng = Rng::new(seed, ABSENT_STREAM);
        let absent: Vec<bool> = (0..securities)
            .map(|_| absent_rng.chance(params.absent_from_lending))
            .collect();
        let mut counts = BTreeMap::new();
        counts.insert(
            "lending.absent_securities".to_string(),
            absent.iter().filter(|a| **a).count() as u64,
        );
        let any = [
            row_rate(&params, &LENDING_COLUMNS),
            row_rate(&params, &MARKET_COLUMNS),
            row_rate(&params, &EVENT_COLUMNS),
        ];
        Self {
            any,
            params,
            rng: Rng::new(seed, GAP_STREAM),
            halt_left: vec![0; absent.len()],
            absent,
            counts,
        }
    }

    /// The rates in force.
    pub fn params(&self) -> &GapParams {
        &self.params
    }

    /// Every gap planted so far, by `table.column.kind` (and whole-row gaps by `table.what`).
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    fn count(&mut self, key: String) {
        *self.counts.entry(key).or_default() += 1;
    }

    /// Plant gaps into one `lending` row. `None` drops the row; otherwise the NULL mask (bit 13
    /// is `dcbs`).
    pub fn lending(&mut self, id: u32, values: &mut LendingValues) -> Option<NullMask> {
        if self.absent.get(id as usize).copied().unwrap_or(false) {
            return None;
        }
        if self.rng.chance(self.params.missing_lending_row_rate) {
            self.count("lending.missing_rows".into());
            return None;
        }
        let mut mask = self.cells("lending", &LENDING_COLUMNS, self.any[0], values);
        if self.rng.chance(self.params.null_rate) {
            mask |= 1 << LENDING_F64;
            self.count("lending.dcbs.null".into());
        }
        Some(mask)
    }

    /// Plant gaps into one `market` row. `None` drops the row; otherwise the NULL mask (bits 7,
    /// 8, 9 are `country`, `region`, `sector`).
    pub fn market(&mut self, id: u32, values: &mut MarketValues) -> Option<NullMask> {
        let halt = match self.halt_left.get_mut(id as usize) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            Some(left) if self.rng.chance(self.params.halt_start_rate) => {
                *left = self.params.halt_days.saturating_sub(1);
                true
            }
            _ => false,
        };
        if self.rng.chance(self.params.missing_market_row_rate) {
            self.count("market.missing_rows".into());
            return None;
        }
        if halt {
            values[1] = 0.0; // volume
            values[5] = 0.0; // total_return
            self.count("market.halt_rows".into());
        }
        let mut mask = self.cells("market", &MARKET_COLUMNS, self.any[1], values);
        for (i, label) in MARKET_LABELS.iter().enumerate() {
            if self.rng.chance(self.params.label_null_rate) {
                mask |= 1 << (MARKET_F64 + i);
                self.count(format!("market.{label}.null"));
            }
        }
        Some(mask)
    }

    /// Plant gaps into one `events` row's numbers; bit 2 of the mask is `category`.
    pub fn event(&mut self, values: &mut [f64; 2]) -> NullMask {
        let mut mask = self.cells("events", &EVENT_COLUMNS, self.any[2], values);
        if self.rng.chance(self.params.label_null_rate) {
            mask |= 1 << 2;
            self.count("events.category.null".into());
        }
        mask
    }

    /// Gaps in the numeric cells of a row. One draw decides whether the row has any (the fast
    /// path for most rows); then each cell gets each of its kinds with its rate, so every
    /// cell's marginal rate is exactly the documented one.
    fn cells(
        &mut self,
        table: &str,
        columns: &[ColumnGaps],
        any: f64,
        values: &mut [f64],
    ) -> NullMask {
        if !self.rng.chance(any) {
            return 0;
        }
        let mut mask = 0;
        for (i, column) in columns.iter().enumerate() {
            let u = self.rng.uniform() * any;
            let mut edge = 0.0;
            let Some(kind) = rates(&self.params, column)
                .into_iter()
                .find_map(|(kind, rate)| {
                    edge += rate;
                    (u < edge).then_some(kind)
                })
            else {
                continue;
            };
            match kind {
                Kind::Null => mask |= 1 << i,
                Kind::Nan => values[i] = f64::NAN,
                Kind::Inf => {
                    values[i] = if self.rng.chance(0.5) {
                        f64::INFINITY
                    } else {
                        f64::NEG_INFINITY
                    }
                }
                Kind::Zero => values[i] = 0.0,
                Kind::Negative => values[i] = -values[i].abs().max(1.0),
            }
            self.count(format!("{table}.{}.{}", column.name, kind.name()));
        }
        mask
    }
}

/// The rate of each gap kind in one column.
fn rates(p: &GapParams, c: &ColumnGaps) -> [(Kind, f64); 5] {
    let only = |allowed: bool, rate: f64| if allowed { rate } else { 0.0 };
    [
        (Kind::Null, p.null_rate),
        (Kind::Nan, only(c.nan, p.nan_rate)),
        (Kind::Inf, only(c.inf, p.inf_rate)),
        (Kind::Zero, only(c.zero, p.zero_rate)),
        (Kind::Negative, only(c.negative, p.negative_rate)),
    ]
}

/// The probability that a row has a gap in any of `columns` (capped at 1).
fn row_rate(p: &GapParams, columns: &[ColumnGaps]) -> f64 {
    columns
        .iter()
        .map(|c| rates(p, c).iter().map(|r| r.1).sum::<f64>())
        .sum::<f64>()
        .min(1.0)
}
