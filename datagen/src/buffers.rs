//! Column buffers for the three daily tables, turned into record batches of the SPEC schemas.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int8Array, StringBuilder};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use lendfusion_core::schema;

/// Number of Float64 columns of `lending` (between `security_id` and `dcbs`).
pub const LENDING_F64: usize = 13;
/// Number of Float64 columns of `market` (after the three strings).
pub const MARKET_F64: usize = 7;

/// One `lending` row's numbers in schema order.
pub type LendingValues = [f64; LENDING_F64];
/// One `market` row's numbers in schema order.
pub type MarketValues = [f64; MARKET_F64];

/// Rows of `lending`, `market` and `events` accumulated before a batch is cut.
#[derive(Debug, Default)]
pub struct Buffers {
    lending_date: Vec<i32>,
    lending_id: Vec<u32>,
    lending_values: Vec<LendingValues>,
    lending_dcbs: Vec<Option<i8>>,
    market_date: Vec<i32>,
    market_id: Vec<u32>,
    market_labels: Vec<(&'static str, &'static str, &'static str)>,
    market_values: Vec<MarketValues>,
    events_date: Vec<i32>,
    events_id: Vec<u32>,
    events_kind: Vec<(&'static str, &'static str)>,
    events_values: Vec<(f64, f64)>,
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
    /// Rows of `lending` buffered so far.
    pub fn len(&self) -> usize {
        self.lending_date.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.lending_date.is_empty() && self.events_date.is_empty()
    }

    /// Append one `lending` row.
    pub fn push_lending(&mut self, date: i32, id: u32, values: LendingValues, dcbs: Option<i8>) {
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
        values: MarketValues,
    ) {
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
        self.events_date.push(date);
        self.events_id.push(id);
        self.events_kind.push(kind);
        self.events_values.push((sentiment, relevance));
    }

    /// Cut batches from everything buffered and clear the buffers. `ids` maps a security index
    /// to its `security_id`.
    pub fn take(&mut self, ids: &[String]) -> Result<TableBatches, ArrowError> {
        let lending = {
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(Date32Array::from(std::mem::take(&mut self.lending_date))),
                strings(self.lending_id.iter().map(|i| ids[*i as usize].as_str())),
            ];
            for c in 0..LENDING_F64 {
                columns.push(Arc::new(Float64Array::from_iter_values(
                    self.lending_values.iter().map(|v| v[c]),
                )));
            }
            columns.push(Arc::new(Int8Array::from(std::mem::take(
                &mut self.lending_dcbs,
            ))));
            self.lending_id.clear();
            self.lending_values.clear();
            RecordBatch::try_new(schema::lending_schema(), columns)?
        };
        let market = {
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(Date32Array::from(std::mem::take(&mut self.market_date))),
                strings(self.market_id.iter().map(|i| ids[*i as usize].as_str())),
                strings(self.market_labels.iter().map(|l| l.0)),
                strings(self.market_labels.iter().map(|l| l.1)),
                strings(self.market_labels.iter().map(|l| l.2)),
            ];
            for c in 0..MARKET_F64 {
                columns.push(Arc::new(Float64Array::from_iter_values(
                    self.market_values.iter().map(|v| v[c]),
                )));
            }
            self.market_id.clear();
            self.market_labels.clear();
            self.market_values.clear();
            RecordBatch::try_new(schema::market_schema(), columns)?
        };
        let events = if self.events_date.is_empty() {
            None
        } else {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Date32Array::from(std::mem::take(&mut self.events_date))),
                strings(self.events_id.iter().map(|i| ids[*i as usize].as_str())),
                strings(self.events_kind.iter().map(|k| k.0)),
                strings(self.events_kind.iter().map(|k| k.1)),
                Arc::new(Float64Array::from_iter_values(
                    self.events_values.iter().map(|v| v.0),
                )),
                Arc::new(Float64Array::from_iter_values(
                    self.events_values.iter().map(|v| v.1),
                )),
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
    let mut builder = StringBuilder::with_capacity(values.len(), values.len() * 8);
    for v in values {
        builder.append_value(v);
    }
    Arc::new(builder.finish())
}
