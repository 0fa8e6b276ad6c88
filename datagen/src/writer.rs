//! Streams record batches into month-partitioned Parquet files on any object store.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::GenerateError;

/// A row group is closed at the first batch boundary (always a day boundary) past this size.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// One open Parquet file of a table.
struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
    rows_in_group: usize,
    path: Path,
}

/// Writes the files of one table, one per month partition.
pub struct TableWriter {
    store: Arc<dyn ObjectStore>,
    table_prefix: Path,
    table: &'static str,
    open: Option<(String, OpenFile)>,
    /// Files written so far (object paths).
    pub files: Vec<String>,
    /// Rows written so far.
    pub rows: u64,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("table", &self.table)
            .finish()
    }
}

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(4 * ROW_GROUP_ROWS))
        .set_created_by("lendfusion generate".to_string())
        .build()
}

impl TableWriter {
    /// A writer for `<root_prefix>/<table>/`.
    pub fn new(store: Arc<dyn ObjectStore>, root_prefix: &Path, table: &'static str) -> Self {
        Self {
            store,
            table_prefix: root_prefix.clone().join(table),
            table,
            open: None,
            files: vec![],
            rows: 0,
        }
    }

    /// Append a batch to the file of `month` (`YYYY-MM`), opening it if needed.
    pub async fn write(&mut self, month: &str, batch: &RecordBatch) -> Result<(), GenerateError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.open.as_ref().is_none_or(|(m, _)| m != month) {
            self.close().await?;
            let path = self
                .table_prefix
                .clone()
                .join(format!("month={month}"))
                .join("part-00000.parquet");
            let object = BufWriter::new(Arc::clone(&self.store), path.clone());
            let writer = AsyncArrowWriter::try_new(object, batch.schema(), Some(properties()))?;
            self.open = Some((
                month.to_string(),
                OpenFile {
                    writer,
                    rows_in_group: 0,
                    path,
                },
            ));
        }
        if let Some((_, file)) = self.open.as_mut() {
            file.writer.write(batch).await?;
            file.rows_in_group += batch.num_rows();
            if file.rows_in_group >= ROW_GROUP_ROWS {
                file.writer.flush().await?;
                file.rows_in_group = 0;
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Finish the open file, if any.
    pub async fn close(&mut self) -> Result<(), GenerateError> {
        if let Some((_, file)) = self.open.take() {
            file.writer.close().await?;
            self.files.push(file.path.to_string());
        }
        Ok(())
    }
}

/// Write rows grouped by month key (already sorted inside each group by the caller).
pub async fn write_grouped(
    writer: &mut TableWriter,
    groups: BTreeMap<String, RecordBatch>,
) -> Result<(), GenerateError> {
    for (month, batch) in groups {
        writer.write(&month, &batch).await?;
        writer.close().await?;
    }
    Ok(())
}
