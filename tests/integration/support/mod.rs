//! Shared fixtures: generated panels, SQL helpers, a read-counting object store, Garage.

pub mod cluster;
pub mod counting_store;
pub mod garage;
pub mod python;

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use lendfusion_core::{LendfusionConfig, session_context};
use lendfusion_datagen::{GenerateOptions, GenerateSummary, generate};
use tokio::sync::OnceCell;

/// The small panel most tests share: 120 securities over 2020-2021.
pub const SMALL_SECURITIES: u32 = 120;

/// Options for a local panel.
pub fn options(out: &Path, securities: u32, start: &str, end: &str, seed: u64) -> GenerateOptions {
    GenerateOptions {
        out: out.display().to_string(),
        securities,
        start: NaiveDate::parse_from_str(start, "%Y-%m-%d").expect("start"),
        end: NaiveDate::parse_from_str(end, "%Y-%m-%d").expect("end"),
        seed,
        overwrite: false,
        clean: false,
    }
}

/// Generate a panel with the default configuration.
pub async fn generate_local(options: &GenerateOptions) -> GenerateSummary {
    generate(options, &LendfusionConfig::default(), None)
        .await
        .expect("generate")
}

/// A temporary directory that lives for the whole test process.
fn leaked_tempdir() -> PathBuf {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    std::mem::forget(dir);
    path
}

static SMALL: OnceCell<(PathBuf, GenerateSummary)> = OnceCell::const_new();

/// The shared small panel (generated once per test process, read-only for tests).
pub async fn small_panel() -> &'static (PathBuf, GenerateSummary) {
    SMALL
        .get_or_init(|| async {
            let root = leaked_tempdir().join("small");
            let summary = generate_local(&options(
                &root,
                SMALL_SECURITIES,
                "2020-01-01",
                "2021-12-31",
                11,
            ))
            .await;
            (root, summary)
        })
        .await
}

/// A session on a local dataset root.
pub async fn local_session(root: &Path) -> SessionContext {
    let config = LendfusionConfig {
        data: Some(root.display().to_string()),
        ..Default::default()
    };
    session_context(&config).await.expect("session")
}

/// Run SQL and collect.
pub async fn sql(ctx: &SessionContext, query: &str) -> Vec<RecordBatch> {
    lendfusion_core::query::collect_sql(ctx, query)
        .await
        .unwrap_or_else(|e| panic!("query failed: {query}\n{e}"))
}

/// Render batches as text for equality checks.
pub fn render(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .expect("format")
        .to_string()
}

/// Every file below `dir`, sorted, relative to `dir`.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.push(path.strip_prefix(base).expect("prefix").to_path_buf());
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Copy a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    for rel in files_below(from) {
        let target = to.join(&rel);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from.join(&rel), &target).expect("copy");
    }
}

/// The error of building a session, which must fail.
pub async fn session_error(config: &LendfusionConfig) -> lendfusion_core::LendfusionError {
    match session_context(config).await {
        Ok(_) => panic!("building a session on {:?} should fail", config.data),
        Err(e) => e,
    }
}
