//! Printing results: an aligned table, CSV, or one JSON object per line.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use clap::ValueEnum;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

/// Output format of `lendfusion sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned table for people.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line (NULLs written as null).
    Json,
}

/// Errors while printing: the query's own, or the output's.
#[derive(Debug)]
pub enum PrintError {
    /// The query failed while streaming.
    Query(DataFusionError),
    /// Writing or formatting failed.
    Output(String),
}

impl std::fmt::Display for PrintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrintError::Query(e) => write!(f, "{e}"),
            PrintError::Output(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PrintError {}

fn output_err(e: impl std::fmt::Display) -> PrintError {
    PrintError::Output(e.to_string())
}

/// Print a stream in `format`; CSV and JSON stream batch by batch. Returns the row count.
pub async fn print_stream(
    mut stream: SendableRecordBatchStream,
    format: Format,
    out: &mut dyn Write,
) -> Result<usize, PrintError> {
    let mut rows = 0;
    match format {
        Format::Table => {
            let mut batches: Vec<RecordBatch> = vec![];
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(PrintError::Query)?;
                rows += batch.num_rows();
                batches.push(batch);
            }
            let schema = stream.schema();
            let table = arrow::util::pretty::pretty_format_batches_with_schema(schema, &batches)
                .map_err(output_err)?;
            writeln!(out, "{table}").map_err(output_err)?;
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            let mut wrote_any = false;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(PrintError::Query)?;
                rows += batch.num_rows();
                writer
                    .write(&nested_as_text(&batch).map_err(output_err)?)
                    .map_err(output_err)?;
                wrote_any = true;
            }
            if !wrote_any {
                // Header only, for an empty result.
                let empty = RecordBatch::new_empty(stream.schema());
                writer
                    .write(&nested_as_text(&empty).map_err(output_err)?)
                    .map_err(output_err)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::LineDelimited>(&mut *out);
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(PrintError::Query)?;
                rows += batch.num_rows();
                writer.write(&batch).map_err(output_err)?;
            }
            writer.finish().map_err(output_err)?;
        }
    }
    out.flush().map_err(output_err)?;
    Ok(rows)
}

/// Whether CSV has no way to write a column of this type (lists, structs, maps, unions; also
/// as dictionary or run-end encoded values).
fn is_nested(data_type: &DataType) -> bool {
    data_type.is_nested()
}

/// `batch` with its nested columns as text, written as the table format writes them: a list
/// as `[1.0, 2.0, null]`, a struct as `{a: 1, b: x}`, a map as `{k: v}` (a NULL value stays
/// an empty field). The CSV writer then quotes the fields that hold commas.
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| is_nested(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default().with_null("null");
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !is_nested(field.data_type()) {
            fields.push(Arc::clone(field));
            columns.push(Arc::clone(column));
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let mut text = StringBuilder::new();
        for row in 0..column.len() {
            if column.is_null(row) {
                text.append_null();
            } else {
                text.append_value(formatter.value(row).try_to_string()?);
            }
        }
        fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
        columns.push(Arc::new(text.finish()) as ArrayRef);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
