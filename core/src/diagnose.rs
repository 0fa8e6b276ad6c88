//! Dataset checks: find the file behind a failed scan.
//!
//! DataFusion's Parquet errors ("invalid footer", "missing column") do not say which file they
//! came from. When a query fails with such an error, [`explain_error`] reads the footer of every
//! file of every lendfusion table (cheap: one ranged read each, in parallel) and replaces the
//! error with one that names the offending file. [`check_tables`] runs the same checks on demand:
//! the footer's schema against the table's, and the key columns' null counts (from the footer's
//! statistics, or by reading the column when a file has none).

use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::error::{LendfusionError, Result};
use crate::error_kind::{ErrorKind, untag, without_debug_text};
use crate::object_stores::store_path;
use crate::strict_adapter::{SCHEMA_MISMATCH, schema_problems};
use crate::tables::DatedTable;

/// Files checked at once.
const CONCURRENCY: usize = 16;

/// A file that cannot serve its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFile {
    /// Table the file belongs to.
    pub table: String,
    /// Full URL of the file.
    pub url: String,
    /// What is wrong.
    pub message: String,
}

/// The lendfusion tables registered in the context's default schema.
pub async fn dated_tables(ctx: &SessionContext) -> Vec<Arc<DatedTable>> {
    let mut out = vec![];
    let state = ctx.state();
    let Some(catalog) = state
        .catalog_list()
        .catalog(&state.config().options().catalog.default_catalog)
    else {
        return out;
    };
    let Some(schema) = catalog.schema(&state.config().options().catalog.default_schema) else {
        return out;
    };
    for name in schema.table_names() {
        let Ok(Some(provider)) = schema.table(&name).await else {
            continue;
        };
        let any: Arc<dyn std::any::Any + Send + Sync> = provider;
        if let Ok(table) = any.downcast::<DatedTable>() {
            out.push(table);
        }
    }
    out
}

/// Check every Parquet file of the given tables against the table schema.
pub async fn check_tables(
    ctx: &SessionContext,
    tables: &[Arc<DatedTable>],
) -> Result<Vec<BadFile>> {
    let mut bad = vec![];
    for table in tables {
        let store = ctx
            .runtime_env()
            .object_store_registry
            .get_store(table.location())?;
        let prefix = store_path(table.location())?;
        let files: Vec<object_store::ObjectMeta> = store
            .list(Some(&prefix))
            .try_filter(|m| futures::future::ready(m.location.as_ref().ends_with(".parquet")))
            .try_collect()
            .await
            .map_err(|e| {
                LendfusionError::Storage(format!("cannot list {}: {e}", table.location()))
            })?;
        let schema = table_schema(table);
        let keys = crate::schema::key_columns(table.name());
        let found: Vec<Option<BadFile>> = futures::stream::iter(files)
            .map(|meta| {
                let store = Arc::clone(&store);
                let schema = Arc::clone(&schema);
                let url = file_url(table, &meta.location);
                let name = table.name().to_string();
                async move {
                    check_file(store, meta, &schema, keys)
                        .await
                        .map(|message| BadFile {
                            table: name,
                            url,
                            message,
                        })
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut found: Vec<BadFile> = found.into_iter().flatten().collect();
        found.sort_by(|a, b| a.url.cmp(&b.url));
        bad.extend(found);
    }
    Ok(bad)
}

fn table_schema(table: &DatedTable) -> arrow::datatypes::SchemaRef {
    use datafusion::datasource::TableProvider;
    table.schema()
}

fn file_url(table: &DatedTable, location: &object_store::path::Path) -> String {
    let root = table.location();
    format!(
        "{}://{}/{}",
        root.scheme(),
        root.authority(),
        location.as_ref()
    )
}

/// What is wrong with one file, if anything: its footer is read, its schema compared with the
/// table's, and its key columns checked for NULLs.
async fn check_file(
    store: Arc<dyn ObjectStore>,
    meta: object_store::ObjectMeta,
    schema: &arrow::datatypes::SchemaRef,
    keys: &[&str],
) -> Option<String> {
    let metadata = match read_footer(store.as_ref(), &meta).await {
        Err(message) => return Some(format!("not a readable Parquet file: {message}")),
        Ok(metadata) => metadata,
    };
    let file_metadata = metadata.file_metadata();
    let file_schema = match parquet_to_arrow_schema(
        file_metadata.schema_descr(),
        file_metadata.key_value_metadata(),
    ) {
        Err(e) => return Some(format!("not a readable Parquet file: {e}")),
        Ok(s) => s,
    };
    let problems = schema_problems(schema, &Arc::new(file_schema));
    if !problems.is_empty() {
        return Some(format!("{SCHEMA_MISMATCH}: {}", problems.join("; ")));
    }
    let mut null_keys = vec![];
    for key in keys {
        let nulls = match key_nulls_in_footer(&metadata, key) {
            KeyNulls::Known(n) => n,
            KeyNulls::Unknown => match count_nulls_by_reading(&store, &meta, key).await {
                Ok(n) => n,
                Err(message) => return Some(format!("not a readable Parquet file: {message}")),
            },
        };
        if nulls > 0 {
            null_keys.push(format!("key column `{key}` holds {nulls} NULL value(s)"));
        }
    }
    (!null_keys.is_empty()).then(|| format!("{NULL_KEY}: {}", null_keys.join("; ")))
}

/// Message prefix of a file whose key column holds NULLs.
pub const NULL_KEY: &str = "a key column may not be NULL";

/// NULLs of one key column as the footer tells them.
enum KeyNulls {
    Known(u64),
    /// A nullable column without null-count statistics in some row group.
    Unknown,
}

fn key_nulls_in_footer(metadata: &ParquetMetaData, key: &str) -> KeyNulls {
    let schema = metadata.file_metadata().schema_descr();
    let Some(index) = (0..schema.num_columns()).find(|i| schema.column(*i).path().string() == key)
    else {
        return KeyNulls::Known(0); // the schema check reports a missing column
    };
    if schema.column(index).max_def_level() == 0 {
        return KeyNulls::Known(0); // REQUIRED: cannot hold NULLs
    }
    let mut total = 0;
    for row_group in metadata.row_groups() {
        match row_group
            .column(index)
            .statistics()
            .and_then(|s| s.null_count_opt())
        {
            Some(n) => total += n,
            None => return KeyNulls::Unknown,
        }
    }
    KeyNulls::Known(total)
}

/// NULLs of one column counted by reading it (files written without statistics).
async fn count_nulls_by_reading(
    store: &Arc<dyn ObjectStore>,
    meta: &object_store::ObjectMeta,
    column: &str,
) -> std::result::Result<u64, String> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bytes = store
        .get(&meta.location)
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let schema = builder.parquet_schema();
    let Some(index) =
        (0..schema.num_columns()).find(|i| schema.column(*i).path().string() == column)
    else {
        return Ok(0);
    };
    let mask = ProjectionMask::leaves(schema, [index]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())?;
    let mut nulls = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        nulls += batch.column(0).null_count() as u64;
    }
    Ok(nulls)
}

/// The Arrow schema stored in a Parquet file's footer.
pub async fn read_file_schema(
    store: &dyn ObjectStore,
    meta: &object_store::ObjectMeta,
) -> std::result::Result<arrow::datatypes::Schema, String> {
    let metadata = read_footer(store, meta).await?;
    let file_metadata = metadata.file_metadata();
    parquet_to_arrow_schema(
        file_metadata.schema_descr(),
        file_metadata.key_value_metadata(),
    )
    .map_err(|e| e.to_string())
}

/// A Parquet file's footer, read with two ranged requests.
async fn read_footer(
    store: &dyn ObjectStore,
    meta: &object_store::ObjectMeta,
) -> std::result::Result<ParquetMetaData, String> {
    const MAGIC: &[u8; 4] = b"PAR1";
    let size = meta.size;
    if size < 12 {
        return Err(format!("{size} bytes is too short for a Parquet file"));
    }
    let tail = store
        .get_range(&meta.location, size - 8..size)
        .await
        .map_err(|e| e.to_string())?;
    if &tail[4..8] != MAGIC {
        return Err("no Parquet magic bytes at the end of the file".into());
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len + 12 > size {
        return Err(format!(
            "footer length {footer_len} exceeds the file size {size}"
        ));
    }
    let footer = store
        .get_range(&meta.location, size - 8 - footer_len..size - 8)
        .await
        .map_err(|e| e.to_string())?;
    ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| e.to_string())
}

/// Whether an error may come from a bad data file.
fn may_be_file_error(err: &DataFusionError) -> bool {
    match err.find_root() {
        DataFusionError::ParquetError(_) | DataFusionError::ArrowError(_, _) => true,
        DataFusionError::ObjectStore(_) => false,
        // On a cluster the worker's error arrives as the text of a failed job.
        other => may_be_file_error_text(&other.to_string()),
    }
}

/// Whether an error known by its text (a failed job's) may come from a bad data file.
pub fn may_be_file_error_text(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    text.contains(SCHEMA_MISMATCH)
        || lower.contains("parquet")
        || text.contains("ArrowError")
        || lower.contains("non-nullable")
        || lower.contains("physical schema")
        || untag(text).is_some_and(|c| c.kind == ErrorKind::BadFile)
}

/// Replace a query error by one naming the offending file, when a bad file explains it; an
/// error a worker classified (`crate::error_kind`) becomes its plain message.
pub async fn explain_error(ctx: &SessionContext, err: DataFusionError) -> DataFusionError {
    if let Some(lost) = crate::cluster::coordinator_connection_lost(ctx, &err) {
        return lost;
    }
    let text = err.to_string();
    let classified = untag(&text);
    if may_be_file_error(&err) {
        let failure = classified
            .as_ref()
            .map_or(text.as_str(), |c| c.message.as_str());
        if let Some(named) = name_bad_file(ctx, failure).await {
            return named;
        }
    }
    match classified {
        Some(classified) => DataFusionError::External(Box::new(classified)),
        None => err,
    }
}

/// The error naming the first bad file of the session's tables, with `failure` (what the
/// query failed with) appended; `None` when every file is fine.
pub async fn name_bad_file(ctx: &SessionContext, failure: &str) -> Option<DataFusionError> {
    let tables = dated_tables(ctx).await;
    match check_tables(ctx, &tables).await {
        Ok(bad) if !bad.is_empty() => {
            let failure = if failure.contains("Job failed") {
                without_debug_text(failure)
            } else {
                failure.to_string()
            };
            let first = &bad[0];
            let more = if bad.len() > 1 {
                format!(" (and {} more bad file(s))", bad.len() - 1)
            } else {
                String::new()
            };
            Some(DataFusionError::External(Box::new(
                LendfusionError::BadFile {
                    file: first.url.clone(),
                    message: format!("{}{more}; the query failed with: {failure}", first.message),
                },
            )))
        }
        _ => None,
    }
}
