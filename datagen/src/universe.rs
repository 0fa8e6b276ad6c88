//! Point-in-time universes by region and size.
//!
//! Rule (also in `_truth.json`): `EU_DEV`, `APAC_DEV` and `EM` hold every listed security of
//! their region; US securities are in `US_LARGE` or `US_SMALL` by market-cap rank among listed
//! US names, re-ranked on the first business day of each quarter from the previous close
//! (top 30 % on first assignment; a large name stays large while in the top 36 %, a small name
//! moves up once in the top 24 %). New listings enter `US_SMALL` (US) or their region's
//! universe on their first day; a delisted name's membership ends on its last day. Canadian
//! names are in no universe. On the panel's first day the assignment uses that day's close.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, StringArray};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use lendfusion_core::schema::universe_schema;

use crate::calendar::{month_key, to_date32};
use crate::model::Security;

const NAMES: [&str; 5] = ["US_LARGE", "US_SMALL", "EU_DEV", "APAC_DEV", "EM"];
const US_LARGE: u8 = 0;
const US_SMALL: u8 = 1;

/// A membership interval: (universe code, security index, first day, last day if ended).
type Interval = (u8, u32, usize, Option<usize>);

/// Open and closed membership intervals.
#[derive(Debug, Default)]
pub struct Universes {
    /// Security index -> (universe code, first day).
    open: BTreeMap<u32, (u8, usize)>,
    /// (universe code, security index, first day, last day).
    closed: Vec<Interval>,
}

fn region_universe(sec: &Security) -> Option<u8> {
    match (sec.region_code(), sec.country) {
        ("NA", "US") => Some(US_SMALL),
        ("EU", _) => Some(2),
        ("APAC", _) => Some(3),
        ("EM", _) => Some(4),
        _ => None,
    }
}

impl Universes {
    fn switch(&mut self, idx: u32, code: u8, day: usize) {
        if let Some((old, start)) = self.open.remove(&idx) {
            if old == code {
                self.open.insert(idx, (old, start));
                return;
            }
            if day > start {
                self.closed.push((old, idx, start, Some(day - 1)));
            }
        }
        self.open.insert(idx, (code, day));
    }

    /// A security lists on `day` (after the first panel day).
    pub fn on_listing(&mut self, sec: &Security, day: usize) {
        if let Some(code) = region_universe(sec) {
            self.switch(sec.idx, code, day);
        }
    }

    /// A security's last listed day is `day`.
    pub fn on_delisting(&mut self, sec: &Security, day: usize) {
        if let Some((code, start)) = self.open.remove(&sec.idx) {
            self.closed.push((code, sec.idx, start, Some(day)));
        }
    }

    /// Quarterly re-ranking of US names; on day 0 also the first assignment of everyone.
    /// `caps[i]` is the latest known market cap (NaN if never listed).
    pub fn rebalance(&mut self, securities: &[Security], caps: &[f64], day: usize) {
        let mut us: Vec<(f64, u32)> = vec![];
        for sec in securities {
            let cap = caps[sec.idx as usize];
            if !sec.listed_on(day) || cap.is_nan() {
                continue;
            }
            match region_universe(sec) {
                Some(US_SMALL) => us.push((cap, sec.idx)),
                Some(code) if day == 0 => self.switch(sec.idx, code, day),
                _ => {}
            }
        }
        us.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let n = us.len() as f64;
        for (rank, (_, idx)) in us.into_iter().enumerate() {
            let q = rank as f64 / n;
            let large = match self.open.get(&idx).map(|o| o.0) {
                Some(US_LARGE) => q < 0.36,
                Some(_) => q < 0.24,
                None => q < 0.30,
            };
            self.switch(idx, if large { US_LARGE } else { US_SMALL }, day);
        }
    }

    /// All intervals as batches grouped by the month of `start_date`, each sorted by
    /// `(start_date, security_id, universe)`.
    pub fn finish(
        mut self,
        ids: &[String],
        days: &[NaiveDate],
    ) -> Result<BTreeMap<String, RecordBatch>, ArrowError> {
        let open = std::mem::take(&mut self.open);
        self.closed.extend(
            open.into_iter()
                .map(|(idx, (code, start))| (code, idx, start, None)),
        );
        self.closed
            .sort_by_key(|(code, idx, start, _)| (*start, *idx, *code));
        let mut groups: BTreeMap<String, Vec<Interval>> = BTreeMap::new();
        for row in self.closed {
            groups.entry(month_key(days[row.2])).or_default().push(row);
        }
        groups
            .into_iter()
            .map(|(month, rows)| {
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| NAMES[r.0 as usize]),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| ids[r.1 as usize].as_str()),
                    )),
                    Arc::new(Date32Array::from_iter_values(
                        rows.iter().map(|r| to_date32(days[r.2])),
                    )),
                    Arc::new(Date32Array::from_iter(
                        rows.iter().map(|r| r.3.map(|d| to_date32(days[d]))),
                    )),
                ];
                Ok((month, RecordBatch::try_new(universe_schema(), columns)?))
            })
            .collect()
    }
}
