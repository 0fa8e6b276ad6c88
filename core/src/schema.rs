//! The four SPEC tables: names, column types and nullability (SPEC §2).
//!
//! These schemas are the contract between the generator, the catalog and every query: the
//! generator writes exactly them, the catalog declares them, and a file that lacks one of
//! their columns is rejected with an error naming the file.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Table names in the order the catalog registers them.
pub const TABLE_NAMES: [&str; 4] = ["lending", "market", "events", "universe"];

fn f64_col(name: &str) -> Field {
    Field::new(name, DataType::Float64, false)
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
        fields.push(Field::new(name, DataType::Utf8, false));
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
    fields.push(Field::new("event_type", DataType::Utf8, false));
    fields.push(Field::new("category", DataType::Utf8, false));
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
