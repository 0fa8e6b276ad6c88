//! The per-security model: static attributes drawn once, and a daily step that produces the
//! `lending`, `market` and `events` rows of one business day.

use std::collections::VecDeque;

use crate::buffers::{Buffers, LendingValues, MarketValues};
use crate::params::{COUNTRIES, DCBS_BREAKPOINTS, Params, REGIONS, SECTORS};
use crate::rng::Rng;
use crate::short_book::ShortBook;

/// Rows of return history kept for the squeeze threshold (SPEC: 60 rows before the move).
const SIGMA_WINDOW: usize = 60;

/// What never changes about a security.
#[derive(Debug, Clone)]
pub struct Security {
    /// Index in the panel (also the order of `security_id`).
    pub idx: u32,
    /// Region index into [`REGIONS`].
    pub region: usize,
    /// ISO country code.
    pub country: &'static str,
    /// Sector name.
    pub sector: &'static str,
    /// First business-day index (into the panel calendar) with rows.
    pub list_day: usize,
    /// Last business-day index with rows, if it delists inside the panel.
    pub delist_day: Option<usize>,
    beta: f64,
    sigma: f64,
    turnover: f64,
    float_frac: f64,
    supply_frac: f64,
    stable_lend_share: f64,
    stable_loan_share: f64,
    prime_broker_extra: f64,
    active_frac: f64,
    dividend_payer: bool,
    dcbs_covered: bool,
    earnings_phase: usize,
    price0: f64,
    cap0: f64,
    book_to_market0: f64,
    roe: f64,
}

impl Security {
    /// Draw security `idx` of a panel of `days` business days. Attributes depend only on
    /// `(seed, idx)` and the panel length.
    pub fn draw(seed: u64, idx: u32, days: usize, params: &Params) -> Self {
        let mut rng = Rng::new(seed, 2 * idx as u64 + 1_000);
        let region = rng.weighted(&REGIONS.map(|r| r.1));
        let countries = COUNTRIES[region];
        let country = countries[rng.weighted(&countries.iter().map(|c| c.1).collect::<Vec<_>>())].0;
        let sector = SECTORS[rng.below(SECTORS.len() as u64) as usize];
        // Share of names already listed on day one falls with panel length, the rest list later.
        let listed_at_start = (-(days as f64) / (252.0 * 20.0)).exp().max(0.25);
        let list_day = if rng.chance(listed_at_start) || days < 2 {
            0
        } else {
            1 + rng.below((days - 1) as u64) as usize
        };
        let life = (rng.exponential(params.mean_listed_days) as usize).max(80);
        let delist_day = list_day
            .checked_add(life)
            .filter(|d| *d < days.saturating_sub(1));
        let size_shift = [0.3, 0.1, 0.0, -0.6][region];
        let cap0 = rng
            .lognormal((2.0e9f64).ln() + size_shift, 1.4)
            .clamp(3.0e7, 2.5e12);
        let size = (cap0 / 2.0e9).ln();
        let supply_base = [0.2, 0.15, 0.12, 0.06][region];
        Self {
            idx,
            region,
            country,
            sector,
            list_day,
            delist_day,
            beta: (1.0 + 0.3 * rng.normal()).clamp(0.2, 2.2),
            sigma: (0.018 * (-0.12 * size).exp() * rng.lognormal(0.0, 0.25)).clamp(0.007, 0.06),
            turnover: 0.004 * rng.lognormal(0.0, 0.5),
            float_frac: rng.range(0.55, 0.98),
            supply_frac: (supply_base * rng.lognormal(0.1 * size, 0.3)).clamp(0.01, 0.45),
            stable_lend_share: rng.range(0.2, 0.6),
            stable_loan_share: rng.range(0.05, 0.5),
            prime_broker_extra: rng.range(0.02, 0.35),
            active_frac: rng.range(0.65, 0.95),
            dividend_payer: rng.chance(0.6),
            dcbs_covered: rng.chance(if region == 3 { 0.6 } else { 0.95 }),
            earnings_phase: rng.below(params.earnings_interval as u64) as usize,
            price0: rng.lognormal(40f64.ln(), 0.8).clamp(1.0, 5000.0),
            cap0,
            book_to_market0: rng.lognormal(0.5f64.ln(), 0.6).clamp(0.02, 5.0),
            roe: rng.range(-0.05, 0.2),
        }
    }

    /// Whether the security has a row on business-day index `day`.
    pub fn listed_on(&self, day: usize) -> bool {
        day >= self.list_day && self.delist_day.is_none_or(|d| day <= d)
    }

    /// Region code (`NA`, `EU`, `APAC`, `EM`).
    pub fn region_code(&self) -> &'static str {
        REGIONS[self.region].0
    }
}

/// A planted squeeze in progress.
#[derive(Debug, Clone, Copy)]
enum Squeeze {
    /// Day `step` (0, 1, 2) of the 3-day move, each with daily return `r`.
    Move { step: u8, r: f64 },
    /// Rows of forced covering left.
    Cover { left: usize },
}

/// What changes day by day.
#[derive(Debug)]
pub struct State {
    rng: Rng,
    rows: usize,
    signal: f64,
    util_noise: f64,
    fee_noise: f64,
    supply_dev: f64,
    price: f64,
    shares: f64,
    book: f64,
    vwaf: f64,
    prev_fee: f64,
    prev_on_loan: f64,
    returns: VecDeque<f64>,
    squeeze: Option<Squeeze>,
    shorts: ShortBook,
    /// Rows left (today included) in which a recent catalyst raises the squeeze hazard.
    catalyst_left: usize,
}

/// Market conditions of one business day.
#[derive(Debug, Clone, Copy)]
pub struct MarketDay {
    /// Panel date as `Date32`.
    pub date: i32,
    /// Business-day index in the panel.
    pub day: usize,
    /// Market return per region.
    pub region_return: [f64; 4],
}

/// What a step reports back to the driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepOutcome {
    /// Market capitalisation at the close (for size universes).
    pub market_cap: f64,
    /// Whether this row is the last day of a planted squeeze move (a SPEC squeeze event).
    pub squeeze_event: bool,
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn stddev_samp(values: &VecDeque<f64>) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

impl State {
    /// Initial state on the listing day.
    pub fn new(seed: u64, sec: &Security) -> Self {
        let mut rng = Rng::new(seed, 2 * sec.idx as u64 + 1_001);
        let signal = rng.normal();
        Self {
            signal,
            util_noise: 0.35 * rng.normal(),
            fee_noise: 0.1 * rng.normal(),
            supply_dev: 0.0,
            price: sec.price0,
            shares: sec.cap0 / sec.price0,
            book: sec.cap0 * sec.book_to_market0,
            vwaf: 0.0,
            prev_fee: 0.0,
            prev_on_loan: 0.0,
            returns: VecDeque::with_capacity(SIGMA_WINDOW + 1),
            squeeze: None,
            shorts: ShortBook::default(),
            catalyst_left: 0,
            rows: 0,
            rng,
        }
    }

    /// Produce the rows of one business day. `last_day` is the security's last row index in
    /// the panel (delisting or panel end).
    pub fn step(
        &mut self,
        sec: &Security,
        p: &Params,
        market: &MarketDay,
        last_day: usize,
        out: &mut Buffers,
    ) -> StepOutcome {
        let rng = &mut self.rng;
        let first = self.rows == 0;
        let since_phase = market.day + p.earnings_interval - sec.earnings_phase;
        let earnings_today = since_phase.is_multiple_of(p.earnings_interval);
        let ex_dividend =
            sec.dividend_payer && (since_phase + 30).is_multiple_of(p.earnings_interval);

        // Events of the day (known at the close; news moves the price the same day).
        let mut event_return = 0.0;
        let mut abnormal = false;
        let mut catalyst = false;
        if earnings_today {
            catalyst = true;
            let surprise = (0.4 * rng.normal()).clamp(-1.0, 1.0);
            event_return += 0.04 * surprise;
            abnormal = true;
            self.book *= 1.0 + sec.roe / 4.0;
            out.push_event(
                market.date,
                sec.idx,
                ("earnings", "scheduled"),
                surprise,
                100.0,
            );
        }
        if rng.chance(p.news_prob) {
            let category = ["ma", "earnings_sentiment", "trading", "other"]
                [rng.weighted(&[0.05, 0.25, 0.3, 0.4])];
            let sentiment = (0.45 * rng.normal()).clamp(-1.0, 1.0);
            let relevance = if rng.chance(0.25) {
                rng.range(90.0, 100.0)
            } else {
                rng.range(0.0, 90.0)
            };
            if relevance >= 50.0 {
                event_return += 0.012 * sentiment;
                abnormal |= relevance >= 90.0;
            }
            catalyst |= sentiment > 0.5 && relevance >= 90.0;
            out.push_event(
                market.date,
                sec.idx,
                ("news", category),
                sentiment,
                relevance,
            );
        }

        // Return: market, idiosyncratic, the planted short-demand effect (signal known at the
        // previous close), events; or the planted squeeze move.
        let eps = rng.normal();
        let mut squeeze_event = false;
        let ret = match self.squeeze {
            _ if first => 0.0,
            Some(Squeeze::Move { step, r }) => {
                abnormal = true;
                squeeze_event = step == 2;
                self.squeeze = Some(if step == 2 {
                    Squeeze::Cover {
                        left: p.squeeze_cover_days,
                    }
                } else {
                    Squeeze::Move { step: step + 1, r }
                });
                r
            }
            _ => {
                abnormal |= eps.abs() > 2.5;
                (sec.beta * market.region_return[sec.region] + sec.sigma * eps
                    - p.alpha_daily * self.signal
                    + event_return)
                    .max(-0.9)
            }
        };
        let dividend = if ex_dividend && !first { 0.005 } else { 0.0 };
        self.price = (self.price * (1.0 + ret - dividend)).max(0.01);
        if since_phase % p.earnings_interval == p.earnings_interval / 2 {
            self.shares *= 1.0 + 0.01 * rng.normal().clamp(-2.0, 2.0);
        }

        // Latent short demand moves after the close.
        self.signal =
            p.signal_phi * self.signal + (1.0 - p.signal_phi * p.signal_phi).sqrt() * rng.normal();
        self.util_noise = p.util_noise_phi * self.util_noise
            + (1.0 - p.util_noise_phi * p.util_noise_phi).sqrt() * p.util_noise_sd * rng.normal();
        self.fee_noise = 0.95 * self.fee_noise + 0.03 * rng.normal();
        self.supply_dev = 0.995 * self.supply_dev + 0.01 * rng.normal();

        // Lending.
        let lendable = self.shares * sec.supply_frac * self.supply_dev.exp();
        let mut on_loan =
            lendable * logistic(p.util_intercept + p.util_slope * self.signal + self.util_noise);
        if let Some(Squeeze::Cover { left }) = self.squeeze {
            on_loan = (self.prev_on_loan * rng.range(0.85, 0.94)).min(0.99 * lendable);
            self.squeeze = if left > 1 {
                Some(Squeeze::Cover { left: left - 1 })
            } else {
                None
            };
            if left == 1 {
                self.signal -= 1.0; // the shorts are gone
            }
        }
        let utilization = on_loan / lendable;
        let fee = (p.fee_gc_bps
            * (p.fee_steepness * (utilization - p.fee_knee_utilization).max(0.0)).exp()
            * self.fee_noise.exp())
        .max(1.0);
        self.vwaf = if first {
            fee
        } else {
            0.85 * self.vwaf + 0.15 * fee
        };
        let rerate = if first {
            0.0
        } else {
            (0.01 * rng.uniform() + 2.0 * (fee - self.prev_fee).abs() / self.prev_fee).min(1.0)
        };
        let price = self.price;
        let lending: LendingValues = [
            lendable,
            lendable * sec.active_frac,
            on_loan,
            on_loan * (1.0 + sec.prime_broker_extra),
            lendable * price,
            lendable * sec.active_frac * price,
            on_loan * price,
            fee,
            REGIONS[sec.region].2 - fee,
            self.vwaf,
            on_loan * price * rerate,
            on_loan * sec.stable_loan_share,
            lendable * sec.stable_lend_share,
        ];
        let dcbs = sec
            .dcbs_covered
            .then(|| 1 + DCBS_BREAKPOINTS.iter().filter(|b| **b < fee).count() as i8);
        out.push_lending(market.date, sec.idx, lending, dcbs);

        // Market.
        let float_shares = self.shares * sec.float_frac;
        let volume = (sec.turnover
            * float_shares
            * rng.lognormal(0.0, 0.35)
            * if abnormal { 3.5 } else { 1.0 })
        .round();
        let market_cap = price * self.shares;
        let values: MarketValues = [
            price,
            volume,
            self.shares,
            float_shares,
            market_cap,
            ret,
            self.book / market_cap,
        ];
        out.push_market(
            market.date,
            sec.idx,
            (sec.country, sec.region_code(), sec.sector),
            values,
        );

        // Squeeze planting: start tomorrow when the history and the rows after allow it.
        self.returns.push_back(ret);
        if self.returns.len() > SIGMA_WINDOW {
            self.returns.pop_front();
        }
        // The hazard follows the Markit model's inputs: a heavily shorted name whose shorts are
        // under water and near breakeven, more so in the days after a catalyst.
        self.shorts.update(on_loan, price);
        self.catalyst_left = if catalyst {
            p.squeeze_catalyst_days
        } else {
            self.catalyst_left.saturating_sub(1)
        };
        if self.squeeze.is_none()
            && self.returns.len() == SIGMA_WINDOW
            && self.signal > p.squeeze_min_signal
            && market.day + 3 + p.squeeze_cover_days <= last_day
        {
            let (otm, near) = self
                .shorts
                .otm_and_near_breakeven(price, 0.05)
                .unwrap_or((0.0, 0.0));
            let boost = if self.catalyst_left > 0 {
                p.squeeze_catalyst_boost
            } else {
                1.0
            };
            let hazard = p.squeeze_prob * otm.powi(p.squeeze_otm_power) * near * boost;
            if rng.chance(hazard.min(1.0)) {
                let sigma = stddev_samp(&self.returns);
                let target = p.squeeze_sigma_multiple * sigma * 3f64.sqrt();
                let r = (1.0 + target).powf(1.0 / 3.0) - 1.0;
                self.squeeze = Some(Squeeze::Move { step: 0, r });
            }
        }

        self.prev_fee = fee;
        self.prev_on_loan = on_loan;
        self.rows += 1;
        StepOutcome {
            market_cap,
            squeeze_event,
        }
    }
}
