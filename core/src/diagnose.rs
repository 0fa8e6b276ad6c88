//! Dataset checks: find the file behind a failed scan.
//!
//! DataFusion's Parquet errors ("invalid footer", "missing column") do not say which file they
//! came from. When a query fails with such an error, [`explain_error`] reads the footer of every
//! file of every lendfusion table (cheap: one ranged read each, in parallel) and replaces the
//! error with one that names the offending file. [`check_tables`] runs the same checks on demand.

use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::ParquetMetaDataReader;

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
        let found: Vec<Option<BadFile>> = futures::stream::iter(files)
            .map(|meta| {
                let store = Arc::clone(&store);
                let schema = Arc::clone(&schema);
                let url = file_url(table, &meta.location);
                let name = table.name().to_string();
                async move {
                    check_file(store, meta, &schema)
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

/// What is wrong with one file, if anything: its footer is read and its schema compared.
async fn check_file(
    store: Arc<dyn ObjectStore>,
    meta: object_store::ObjectMeta,
    schema: &arrow::datatypes::SchemaRef,
) -> Option<String> {
    match read_file_schema(store.as_ref(), &meta).await {
        Err(message) => Some(format!("not a readable Parquet file: {message}")),
        Ok(file_schema) => {
            let problems = schema_problems(schema, &Arc::new(file_schema));
            (!problems.is_empty()).then(|| format!("{SCHEMA_MISMATCH}: {}", problems.join("; ")))
        }
    }
}

/// The Arrow schema stored in a Parquet file's footer.
pub async fn read_file_schema(
    store: &dyn ObjectStore,
    meta: &object_store::ObjectMeta,
) -> std::result::Result<arrow::datatypes::Schema, String> {
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
    let metadata = ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| e.to_string())?;
    let file_metadata = metadata.file_metadata();
    parquet_to_arrow_schema(
        file_metadata.schema_descr(),
        file_metadata.key_value_metadata(),
    )
    .map_err(|e| e.to_string())
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
