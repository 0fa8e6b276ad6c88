//! Column buffers for the three daily tables, turned into record batches of the SPEC schemas.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int8Array, StringArray};
use arrow::buffer::NullBuffer;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use lendfusion_core::schema;

use crate::gaps::{GapPlanter, NullMask};

/// Number of Float64 columns of `lending` (between `security_id` and `dcbs`).
pub const LENDING_F64: usize = 13;
/// Number of Float64 columns of `market` (after the three strings).
pub const MARKET_F64: usize = 7;

/// One `lending` row's numbers in schema order.
pub type LendingValues = [f64; LENDING_F64];
/// One `market` row's numbers in schema order.
pub type MarketValues = [f64; MARKET_F64];

/// Rows of `lending`, `market` and `events` accumulated before a batch is cut, with the gaps
/// the planter (if any) put into them.
#[derive(Debug, Default)]
pub struct Buffers {
    gaps: Option<GapPlanter>,
    lending_date: Vec<i32>,
    lending_id: Vec<u32>,
    lending_values: Vec<LendingValues>,
    lending_dcbs: Vec<Option<i8>>,
    lending_nulls: Vec<NullMask>,
    market_date: Vec<i32>,
    market_id: Vec<u32>,
    market_labels: Vec<(&'static str, &'static str, &'static str)>,
    market_values: Vec<MarketValues>,
    market_nulls: Vec<NullMask>,
    events_date: Vec<i32>,
    events_id: Vec<u32>,
    events_kind: Vec<(&'static str, &'static str)>,
    events_values: Vec<[f64; 2]>,
    events_nulls: Vec<NullMask>,
}

/// Batches cut from the buffers; `events` may be absent when there were no events.
#[derive(Debug)]
pub struct TableBatches {
    /// `lending` rows.
    pub lending: RecordBatch,
    /// `market` rows.
    pub market: RecordBatch,
    /// `events` rows, if any.
    pub events: Option<RecordBatch>,
}

impl Buffers {
    /// Buffers that plant gaps into the rows pushed (`None`: clean rows).
    pub fn new(gaps: Option<GapPlanter>) -> Self {
        Self {
            gaps,
            ..Default::default()
        }
    }

    /// The gap planter, to read its counts at the end.
    pub fn gaps(&self) -> Option<&GapPlanter> {
        self.gaps.as_ref()
    }

    /// Rows of `lending` buffered so far.
    pub fn len(&self) -> usize {
        self.lending_date.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.lending_date.is_empty() && self.market_date.is_empty() && self.events_date.is_empty()
    }

    /// Append one `lending` row.
    pub fn push_lending(
        &mut self,
        date: i32,
        id: u32,
        mut values: LendingValues,
        dcbs: Option<i8>,
    ) {
        let nulls = match &mut self.gaps {
            Some(gaps) => match gaps.lending(id, &mut values) {
                Some(mask) => mask,
                None => return,
            },
            None => 0,
        };
        self.lending_nulls.push(nulls);
        self.lending_date.push(date);
        self.lending_id.push(id);
        self.lending_values.push(values);
        self.lending_dcbs.push(dcbs);
    }

    /// Append one `market` row.
    pub fn push_market(
        &mut self,
        date: i32,
        id: u32,
        labels: (&'static str, &'static str, &'static str),
        mut values: MarketValues,
    ) {
        let nulls = match &mut self.gaps {
            Some(gaps) => match gaps.market(id, &mut values) {
                Some(mask) => mask,
                None => return,
            },
            None => 0,
        };
        self.market_nulls.push(nulls);
        self.market_date.push(date);
        self.market_id.push(id);
        self.market_labels.push(labels);
        self.market_values.push(values);
    }

    /// Append one `events` row.
    pub fn push_event(
        &mut self,
        date: i32,
        id: u32,
        kind: (&'static str, &'static str),
        sentiment: f64,
        relevance: f64,
    ) {
        let mut values = [sentiment, relevance];
        let nulls = match &mut self.gaps {
            Some(gaps) => gaps.event(&mut values),
            None => 0,
        };
        self.events_nulls.push(nulls);
        self.events_date.push(date);
        self.events_id.push(id);
        self.events_kind.push(kind);
        self.events_values.push(values);
    }

    /// Cut batches from everything buffered and clear the buffers. `ids` maps a security index
    /// to its `security_id`.
    pub fn take(&mut self, ids: &[String]) -> Result<TableBatches, ArrowError> {
        let lending = {
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(Date32Array::from(std::mem::take(&mut self.lending_date))),
                strings(self.lending_id.iter().map(|i| ids[*i as usize].as_str())),
            ];
            let nulls = std::mem::take(&mut self.lending_nulls);
            for c in 0..LENDING_F64 {
                columns.push(numbers(self.lending_values.iter().map(|v| v[c]), &nulls, c));
            }
            let dcbs: Vec<Option<i8>> = std::mem::take(&mut self.lending_dcbs)
                .into_iter()
                .zip(&nulls)
                .map(|(d, m)| d.filter(|_| m & (1 << LENDING_F64) == 0))
                .collect();
            columns.push(Arc::new(Int8Array::from(dcbs)));
            self.lending_id.clear();
            self.lending_values.clear();
            RecordBatch::try_new(schema::lending_schema(), columns)?
        };
        let market = {
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(Date32Array::from(std::mem::take(&mut self.market_date))),
                strings(self.market_id.iter().map(|i| ids[*i as usize].as_str())),
            ];
            let nulls = std::mem::take(&mut self.market_nulls);
            columns.push(labels(
                self.market_labels.iter().map(|l| l.0),
                &nulls,
                MARKET_F64,
            ));
            columns.push(labels(
                self.market_labels.iter().map(|l| l.1),
                &nulls,
                MARKET_F64 + 1,
            ));
            columns.push(labels(
                self.market_labels.iter().map(|l| l.2),
                &nulls,
                MARKET_F64 + 2,
            ));
            for c in 0..MARKET_F64 {
                columns.push(numbers(self.market_values.iter().map(|v| v[c]), &nulls, c));
            }
            self.market_id.clear();
            self.market_labels.clear();
            self.market_values.clear();
            RecordBatch::try_new(schema::market_schema(), columns)?
        };
        let events = if self.events_date.is_empty() {
            None
        } else {
            let nulls = std::mem::take(&mut self.events_nulls);
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Date32Array::from(std::mem::take(&mut self.events_date))),
                strings(self.events_id.iter().map(|i| ids[*i as usize].as_str())),
                strings(self.events_kind.iter().map(|k| k.0)),
                labels(self.events_kind.iter().map(|k| k.1), &nulls, 2),
                numbers(self.events_values.iter().map(|v| v[0]), &nulls, 0),
                numbers(self.events_values.iter().map(|v| v[1]), &nulls, 1),
            ];
            self.events_id.clear();
            self.events_kind.clear();
            self.events_values.clear();
            Some(RecordBatch::try_new(schema::events_schema(), columns)?)
        };
        Ok(TableBatches {
            lending,
            market,
            events,
        })
    }
}

fn strings<'a>(values: impl ExactSizeIterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// The NULL buffer of bit `bit` of the rows' masks (`None` when no row has it set).
fn null_buffer(masks: &[NullMask], bit: usize) -> Option<NullBuffer> {
    masks
        .iter()
        .any(|m| m & (1 << bit) != 0)
        .then(|| NullBuffer::from_iter(masks.iter().map(|m| m & (1 << bit) == 0)))
}

/// A Float64 column with the NULLs of bit `bit`.
fn numbers(values: impl Iterator<Item = f64>, masks: &[NullMask], bit: usize) -> ArrayRef {
    Arc::new(Float64Array::new(values.collect(), null_buffer(masks, bit)))
}

/// A Utf8 column with the NULLs of bit `bit`.
fn labels<'a>(values: impl Iterator<Item = &'a str>, masks: &[NullMask], bit: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter(
        values
            .zip(masks)
            .map(|(v, m)| (m & (1 << bit) == 0).then_some(v)),
    ))
}
