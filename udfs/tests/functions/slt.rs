//! Runs every `tests/slt/*.slt` file (sqllogictest) against a session with every lendfusion
//! function registered.

use std::path::PathBuf;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

struct Db {
    ctx: SessionContext,
}

/// Floats are printed rounded to 12 significant digits, values within 1e-12 of zero as `0`
/// (sums of products carry ulp-level residues a reference computing term by term does not);
/// NULL as `NULL`.
fn format_float(v: f64) -> String {
    if v.abs() < 1e-12 {
        return "0".into();
    }
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let rounded: f64 = format!("{v:.11e}").parse().unwrap_or(v);
    format!("{}", rounded + 0.0)
}

#[async_trait]
impl AsyncDB for Db {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        let df = self.ctx.sql(sql).await?;
        let is_query = !df.schema().fields().is_empty();
        let batches = df.collect().await?;
        if !is_query {
            return Ok(DBOutput::StatementComplete(0));
        }
        let mut rows: Vec<Vec<String>> = vec![];
        let mut width = 0;
        let options = FormatOptions::default().with_null("NULL");
        for batch in &batches {
            width = batch.num_columns();
            let mut columns: Vec<Vec<String>> = vec![];
            for column in batch.columns() {
                let values: Vec<String> = if column.data_type() == &DataType::Float64 {
                    let a = column.as_primitive::<Float64Type>();
                    (0..a.len())
                        .map(|i| {
                            if a.is_null(i) {
                                "NULL".into()
                            } else {
                                format_float(a.value(i))
                            }
                        })
                        .collect()
                } else {
                    let f = ArrayFormatter::try_new(column.as_ref(), &options)?;
                    (0..column.len())
                        .map(|i| f.value(i).to_string())
                        .map(|s| if s.is_empty() { "(empty)".into() } else { s })
                        .collect()
                };
                columns.push(values);
            }
            for r in 0..batch.num_rows() {
                rows.push(columns.iter().map(|c| c[r].clone()).collect());
            }
        }
        if rows.is_empty() {
            width = 0;
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; width],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "lendfusion"
    }
}

async fn new_db() -> Result<Db, DataFusionError> {
    Ok(Db {
        ctx: crate::new_ctx()?,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = vec![];
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async { new_db().await });
        runner.with_column_validator(|_, _| true);
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
