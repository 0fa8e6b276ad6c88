//! The four SPEC tables: names, column types and nullability (SPEC §2).
//!
//! These schemas are the contract between the generator, the catalog and every query: the
//! generator writes exactly them, the catalog declares them, and a file that lacks one of
//! their columns is rejected with an error naming the file.
//!
//! Gaps are normal (SPEC §2): only the keys — `date` and `security_id`, and `universe`'s
//! `universe`, `security_id` and `start_date` — are declared non-nullable; every measure and
//! label column is nullable, so that the planner never assumes a value is present. A file with
//! a NULL key is an error naming the file ([`crate::diagnose`]).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Table names in the order the catalog registers them.
pub const TABLE_NAMES: [&str; 4] = ["lending", "market", "events", "universe"];

/// A measure column: Float64, nullable (it may also hold NaN or ±inf, which are invalid too).
fn f64_col(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}

/// A label column (country, sector, event type, ...): Utf8, nullable.
fn label_col(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn key_cols() -> [Field; 2] {
    [
        Field::new("date", DataType::Date32, false),
        Field::new("security_id", DataType::Utf8, false),
    ]
}

/// `lending`: one row per security per business day.
pub fn lending_schema() -> SchemaRef {
    let mut fields: Vec<Field> = key_cols().into();
    for name in [
        "lendable_qty",
        "active_lendable_qty",
        "on_loan_qty",
        "borrowed_qty",
        "lendable_value",
        "active_lendable_value",
        "on_loan_value",
        "fee_bps",
        "rebate_bps",
        "vwaf_bps",
        "rerated_value",
        "stable_on_loan_qty",
        "stable_lendable_qty",
    ] {
        fields.push(f64_col(name));
    }
    fields.push(Field::new("dcbs", DataType::Int8, true));
    Arc::new(Schema::new(fields))
}

/// `market`: one row per security per business day.
pub fn market_schema() -> SchemaRef {
    let mut fields: Vec<Field> = key_cols().into();
    for name in ["country", "region", "sector"] {
        fields.push(label_col(name));
    }
    for name in [
        "close",
        "volume",
        "shares_outstanding",
        "float_shares",
        "market_cap",
        "total_return",
        "book_to_market",
    ] {
        fields.push(f64_col(name));
    }
    Arc::new(Schema::new(fields))
}

/// `events`: zero or more rows per security per day.
pub fn events_schema() -> SchemaRef {
    let mut fields: Vec<Field> = key_cols().into();
    fields.push(label_col("event_type"));
    fields.push(label_col("category"));
    fields.push(f64_col("sentiment"));
    fields.push(f64_col("relevance"));
    Arc::new(Schema::new(fields))
}

/// `universe`: point-in-time index membership.
pub fn universe_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("universe", DataType::Utf8, false),
        Field::new("security_id", DataType::Utf8, false),
        Field::new("start_date", DataType::Date32, false),
        Field::new("end_date", DataType::Date32, true),
    ]))
}

/// The key columns of a table: never NULL.
pub fn key_columns(name: &str) -> &'static [&'static str] {
    if name == "universe" {
        &["universe", "security_id", "start_date"]
    } else {
        &["date", "security_id"]
    }
}

/// The schema of a SPEC table by name.
pub fn table_schema(name: &str) -> Option<SchemaRef> {
    match name {
        "lending" => Some(lending_schema()),
        "market" => Some(market_schema()),
        "events" => Some(events_schema()),
        "universe" => Some(universe_schema()),
        _ => None,
    }
}

/// The column a table is partitioned and pruned by (`date`, or `start_date` for `universe`).
pub fn date_column(name: &str) -> &'static str {
    if name == "universe" {
        "start_date"
    } else {
        "date"
    }
}
