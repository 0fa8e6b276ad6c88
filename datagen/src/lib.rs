//! `lendfusion generate`: a deterministic synthetic global securities-lending panel.
//!
//! The panel behaves like the real one (four regions, listings and delistings, point-in-time
//! size universes, linked utilization and fees with a hard-to-borrow tail, market crashes and
//! rallies, earnings and news) and plants effects that tests recover: a latent short-demand
//! signal that drives utilization, fees, short interest and days to cover and predicts lower
//! returns, and squeeze episodes that satisfy SPEC's squeeze-event definition. What was planted
//! is written to `<root>/_truth.json`.
//!
//! Generation streams: one thread simulates day by day and hands batches of at most
//! [`BATCH_ROWS`] rows through a bounded channel to the writer, so memory stays bounded by the
//! number of securities, not by the length of the panel.

pub mod buffers;
pub mod calendar;
pub mod gaps;
pub mod model;
pub mod params;
pub mod rng;
mod short_book;
mod truth;
mod universe;
mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use lendfusion_core::LendfusionConfig;
use lendfusion_core::object_stores::{LendfusionObjectStores, parse_root, store_path};
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::mpsc;

use crate::buffers::{Buffers, TableBatches};
use crate::calendar::{business_days, month_key, starts_quarter, to_date32};
use crate::gaps::{GapParams, GapPlanter};
use crate::model::{MarketDay, Security, State};
use crate::params::Params;
use crate::rng::Rng;
pub use crate::truth::{Episode, PlantedSqueeze, Truth};
use crate::universe::Universes;
use crate::writer::TableWriter;

/// Rows per batch handed from the simulation to the writer.
pub const BATCH_ROWS: usize = 16_384;

/// Largest panel the id scheme supports (`LF000000` .. `LF999999`).
pub const MAX_SECURITIES: u32 = 999_999;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Dataset root: `s3://bucket/prefix`, `file:///path` or a path.
    pub out: String,
    /// Securities in the panel over its whole life (listed at the start or later).
    pub securities: u32,
    /// First calendar day.
    pub start: NaiveDate,
    /// Last calendar day.
    pub end: NaiveDate,
    /// Seed: the same seed gives byte-identical tables.
    pub seed: u64,
    /// Replace tables already under the root.
    pub overwrite: bool,
    /// No gaps: leave out the NULLs, NaNs, zero denominators, halts and missing rows that are
    /// planted by default ([`gaps`]).
    pub clean: bool,
}

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Options that cannot produce a panel.
    #[error("invalid options: {0}")]
    Options(String),
    /// The output location.
    #[error("{0}")]
    Core(#[from] lendfusion_core::LendfusionError),
    /// Writing Parquet.
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building batches.
    #[error("building batches: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The object store.
    #[error("storage: {0}")]
    Storage(String),
    /// The output location already holds a panel (and overwriting was not asked for).
    #[error("{0} already holds a panel; pass --overwrite to replace it")]
    Exists(String),
    /// The simulation thread died.
    #[error("generator thread failed: {0}")]
    Thread(String),
}

/// Progress reports: business days done, total business days, rows written so far.
pub type Progress = Arc<dyn Fn(usize, usize, u64) + Send + Sync>;

/// What was written.
#[derive(Debug, Clone)]
pub struct GenerateSummary {
    /// Rows per table.
    pub rows: BTreeMap<String, u64>,
    /// Files per table.
    pub files: BTreeMap<String, usize>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// The planted truth (also written as `_truth.json`).
    pub truth: Truth,
}

impl GenerateSummary {
    /// Rows of `lending` + `market` + `events` + `universe`.
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }
}

enum Msg {
    Batches {
        month: String,
        batches: TableBatches,
    },
    Done(Box<(Truth, BTreeMap<String, RecordBatch>)>),
}

/// Generate the panel described by `options`, writing through the object stores of `config`.
pub async fn generate(
    options: &GenerateOptions,
    config: &LendfusionConfig,
    progress: Option<Progress>,
) -> Result<GenerateSummary, GenerateError> {
    validate(options)?;
    let started = Instant::now();
    let root = parse_root(&options.out)?;
    let stores = LendfusionObjectStores::new(config.s3.clone());
    let store = stores.store(&root)?;
    let prefix = store_path(&root)?;
    prepare_root(&stores, &store, &root, &prefix, options.overwrite).await?;

    let (tx, mut rx) = mpsc::channel::<Msg>(4);
    let sim_options = options.clone();
    let sim = std::thread::Builder::new()
        .name("lendfusion-generate".into())
        .spawn(move || simulate(&sim_options, &tx, progress.as_ref()))
        .map_err(|e| GenerateError::Thread(e.to_string()))?;

    let mut writers: BTreeMap<&'static str, TableWriter> =
        ["lending", "market", "events", "universe"]
            .into_iter()
            .map(|t| (t, TableWriter::new(Arc::clone(&store), &prefix, t)))
            .collect();
    let mut finished = None;
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Batches { month, batches } => {
                write_table(&mut writers, "lending", &month, &batches.lending).await?;
                write_table(&mut writers, "market", &month, &batches.market).await?;
                if let Some(events) = &batches.events {
                    write_table(&mut writers, "events", &month, events).await?;
                }
            }
            Msg::Done(done) => finished = Some(*done),
        }
    }
    let sim_result = sim
        .join()
        .map_err(|_| GenerateError::Thread("panicked".into()))?;
    sim_result?;
    let (mut truth, universe_batches) =
        finished.ok_or_else(|| GenerateError::Thread("ended without a result".into()))?;
    for writer in writers.values_mut() {
        writer.close().await?;
    }
    if let Some(universe) = writers.get_mut("universe") {
        writer::write_grouped(universe, universe_batches).await?;
    }

    let rows: BTreeMap<String, u64> = writers
        .iter()
        .map(|(t, w)| (t.to_string(), w.rows))
        .collect();
    let files = writers
        .iter()
        .map(|(t, w)| (t.to_string(), w.files.len()))
        .collect();
    truth.rows = rows.clone();
    let json = serde_json::to_vec_pretty(&truth)
        .map_err(|e| GenerateError::Storage(format!("serialising truth: {e}")))?;
    store
        .put(&prefix.clone().join("_truth.json"), json.into())
        .await
        .map_err(|e| {
            GenerateError::Core(lendfusion_core::session::storage_error(&stores, &root, &e))
        })?;
    Ok(GenerateSummary {
        rows,
        files,
        seconds: started.elapsed().as_secs_f64(),
        truth,
    })
}

fn validate(options: &GenerateOptions) -> Result<(), GenerateError> {
    if options.securities == 0 || options.securities > MAX_SECURITIES {
        return Err(GenerateError::Options(format!(
            "--securities must be between 1 and {MAX_SECURITIES}, got {}",
            options.securities
        )));
    }
    if options.end < options.start {
        return Err(GenerateError::Options(format!(
            "--end {} is before --start {}",
            options.end, options.start
        )));
    }
    if business_days(options.start, options.end).is_empty() {
        return Err(GenerateError::Options(
            "the date range holds no business day".into(),
        ));
    }
    Ok(())
}

/// Refuse to mix a new panel into an old one, unless asked to replace it.
async fn prepare_root(
    stores: &LendfusionObjectStores,
    store: &Arc<dyn ObjectStore>,
    root: &url::Url,
    prefix: &object_store::path::Path,
    overwrite: bool,
) -> Result<(), GenerateError> {
    use futures::TryStreamExt;
    let listing = match store
        .list_with_delimiter(Some(prefix).filter(|p| !p.as_ref().is_empty()))
        .await
    {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(lendfusion_core::session::storage_error(stores, root, &e).into()),
    };
    let existing: Vec<_> = listing
        .common_prefixes
        .iter()
        .filter(|p| {
            p.filename()
                .is_some_and(|n| lendfusion_core::schema::TABLE_NAMES.contains(&n))
        })
        .cloned()
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    if !overwrite {
        return Err(GenerateError::Exists(root.to_string()));
    }
    for table in existing {
        let paths: Vec<_> = store
            .list(Some(&table))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| GenerateError::Storage(format!("listing {table}: {e}")))?;
        for path in paths {
            store
                .delete(&path)
                .await
                .map_err(|e| GenerateError::Storage(format!("deleting {path}: {e}")))?;
        }
    }
    Ok(())
}

async fn write_table(
    writers: &mut BTreeMap<&'static str, TableWriter>,
    table: &'static str,
    month: &str,
    batch: &RecordBatch,
) -> Result<(), GenerateError> {
    match writers.get_mut(table) {
        Some(w) => w.write(month, batch).await,
        None => Err(GenerateError::Thread(format!("no writer for {table}"))),
    }
}

/// The simulation: day by day, security by security, in `(date, security_id)` order.
fn simulate(
    options: &GenerateOptions,
    tx: &mpsc::Sender<Msg>,
    progress: Option<&Progress>,
) -> Result<(), GenerateError> {
    let params = Params::default();
    let days = business_days(options.start, options.end);
    let n_days = days.len();
    let seed = options.seed;
    let securities: Vec<Security> = (0..options.securities)
        .map(|i| Security::draw(seed, i, n_days, &params))
        .collect();
    let ids: Vec<String> = (0..options.securities)
        .map(|i| format!("LF{i:06}"))
        .collect();
    let mut states: Vec<Option<State>> = (0..securities.len()).map(|_| None).collect();
    let mut caps = vec![f64::NAN; securities.len()];
    let mut universes = Universes::default();
    let mut truth = Truth::new(options, &params, n_days);
    let mut market_rng = Rng::new(seed, u64::MAX);
    let mut regime: Option<(&'static str, usize, f64)> = None; // kind, days left, drift
    let planter =
        (!options.clean).then(|| GapPlanter::new(seed, options.securities, GapParams::default()));
    let mut buffers = Buffers::new(planter);
    let mut rows_done = 0u64;
    let send = |msg: Msg| {
        tx.blocking_send(msg)
            .map_err(|_| GenerateError::Thread("writer stopped".into()))
    };

    for (day, date) in days.iter().copied().enumerate() {
        // Market: a global factor with crash and rally episodes, plus a regional factor.
        let drift = match regime {
            Some((_, left, drift)) if left > 0 => {
                regime = Some((regime.map_or("", |r| r.0), left - 1, drift));
                drift
            }
            _ => {
                regime = None;
                if market_rng.chance(params.crash_prob) {
                    truth.episodes.push(Episode::new(
                        "crash",
                        date,
                        days.get(day + params.crash_days - 1)
                            .copied()
                            .unwrap_or(date),
                    ));
                    regime = Some(("crash", params.crash_days - 1, params.crash_drift));
                    params.crash_drift
                } else if market_rng.chance(params.rally_prob) {
                    truth.episodes.push(Episode::new(
                        "rally",
                        date,
                        days.get(day + params.rally_days - 1)
                            .copied()
                            .unwrap_or(date),
                    ));
                    regime = Some(("rally", params.rally_days - 1, params.rally_drift));
                    params.rally_drift
                } else {
                    0.0
                }
            }
        };
        let global = 0.0003 + drift + params.market_vol * market_rng.normal();
        let mut region_return = [0.0; 4];
        for r in &mut region_return {
            *r = global + 0.006 * market_rng.normal();
        }
        let market = MarketDay {
            date: to_date32(date),
            day,
            region_return,
        };

        if starts_quarter(day.checked_sub(1).map(|d| days[d]), date) {
            universes.rebalance(&securities, &caps, day);
        }
        for sec in &securities {
            if !sec.listed_on(day) {
                continue;
            }
            let i = sec.idx as usize;
            let state = states[i].get_or_insert_with(|| State::new(seed, sec));
            let last_day = sec.delist_day.unwrap_or(n_days - 1);
            let outcome = state.step(sec, &params, &market, last_day, &mut buffers);
            caps[i] = outcome.market_cap;
            if outcome.squeeze_event {
                truth.squeezes.push(PlantedSqueeze {
                    security_id: ids[i].clone(),
                    date: date.to_string(),
                });
            }
            if day == sec.list_day && day > 0 {
                universes.on_listing(sec, day);
            }
            if Some(day) == sec.delist_day {
                universes.on_delisting(sec, day);
                states[i] = None;
            }
        }
        if day == 0 {
            universes.rebalance(&securities, &caps, day);
        }

        // Cut a batch at the size limit or the month's end; both are day boundaries.
        let month_ends = days
            .get(day + 1)
            .is_none_or(|next| month_key(*next) != month_key(date));
        if buffers.len() >= BATCH_ROWS || (month_ends && !buffers.is_empty()) {
            rows_done += buffers.len() as u64;
            let batches = buffers.take(&ids)?;
            send(Msg::Batches {
                month: month_key(date),
                batches,
            })?;
        }
        if let Some(report) = progress {
            report(day + 1, n_days, rows_done);
        }
    }
    if let Some(gaps) = buffers.gaps() {
        truth.gaps = Some(*gaps.params());
        truth.gap_counts = gaps.counts().clone();
    }
    let universe_batches = universes.finish(&ids, &days)?;
    send(Msg::Done(Box::new((truth, universe_batches))))
}
