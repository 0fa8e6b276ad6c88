//! `lendfusion bench`: the named benchmark jobs of docs/benchmarks.md.
//!
//! - `factor-panel`: the factor-panel job (`benches/sql/factor_panel.sql`), embedded on
//!   `--data` or through a coordinator; writes `panel.parquet` (sorted by date, security_id)
//!   and `ic.parquet` (date, ic) and prints one `wall_s=... panel_rows=... ic_rows=...` line.
//! - `scan-floor`: the same columns read and reduced trivially (a sum per column): the I/O +
//!   decode limit the job is measured against.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{SchemaRef, UInt64Type};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::context::SessionContext;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::{
    ExecutionPlan, SendableRecordBatchStream, collect, execute_stream,
};
use datafusion::prelude::ParquetReadOptions;
use futures::StreamExt;
use lendfusion_core::ops::metrics::peak_resident_bytes;
use lendfusion_core::{LendfusionConfig, session_context};
use lendfusion_udfs::planning::Replay;

use crate::CliResult;
use crate::remote::RemoteArgs;

mod ic;

use ic::{IcSeries, IcTeeExec};

/// The factor-panel job's panel query (the IC series is computed from its output).
pub const FACTOR_PANEL_SQL: &str = include_str!("../../benches/sql/factor_panel.sql");

/// The job's IC series over the panel it wrote (same rows as `factor_panel_ic.sql`), where the
/// plan leaves no place to compute it on the way ([`IcTeeExec`]).
const PANEL_IC_SQL: &str =
    "SELECT date, spearman_ic(composite, fwd21) AS ic FROM panel GROUP BY date ORDER BY date";

/// The job's input columns read and reduced trivially.
const SCAN_FLOOR_SQL: &str = "SELECT * FROM \
    (SELECT count(*) AS lending_rows, max(date) AS lending_date, max(security_id) AS lending_id, \
            sum(on_loan_qty) AS on_loan, sum(lendable_qty) AS lendable, sum(borrowed_qty) AS borrowed, \
            sum(fee_bps) AS fee FROM lending) l \
    CROSS JOIN \
    (SELECT count(*) AS market_rows, max(date) AS market_date, max(security_id) AS market_id, \
            sum(volume) AS volume, sum(shares_outstanding) AS shares, sum(market_cap) AS cap, \
            sum(book_to_market) AS btm, sum(total_return) AS ret FROM market) m";

/// Options of `lendfusion bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    job: BenchJob,
}

#[derive(Debug, Subcommand)]
enum BenchJob {
    /// The factor-panel job: ranks, composite, Fama-MacBeth residual, forward return, IC.
    FactorPanel(FactorPanelArgs),
    /// The job's input columns read and summed: the I/O + decode floor.
    ScanFloor(ScanFloorArgs),
}

/// Options of `lendfusion bench factor-panel`.
#[derive(Debug, Args)]
struct FactorPanelArgs {
    /// Dataset root (path, file:///path or s3://bucket/prefix).
    #[arg(long)]
    data: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Output folder for panel.parquet and ic.parquet.
    #[arg(long)]
    out: PathBuf,
}

/// Options of `lendfusion bench scan-floor`.
#[derive(Debug, Args)]
struct ScanFloorArgs {
    /// Dataset root (path, file:///path or s3://bucket/prefix).
    #[arg(long)]
    data: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub async fn run(args: BenchArgs, config: LendfusionConfig) -> CliResult {
    match args.job {
        BenchJob::FactorPanel(args) => factor_panel(args, config).await,
        BenchJob::ScanFloor(args) => scan_floor(args, config).await,
    }
}

/// Where a query runs: this process's engine (with its plan, for metrics) or a coordinator.
enum Engine {
    Embedded(SessionContext),
    Remote(lendfusion_coordinator::client::FlightSqlConnection),
}

impl Engine {
    async fn open(
        data: &Option<String>,
        remote: &RemoteArgs,
        mut config: LendfusionConfig,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        if let Some(connection) = remote.connect(None).await? {
            return Ok(Engine::Remote(connection));
        }
        if let Some(data) = data {
            config.data = Some(data.clone());
        }
        config.data_root()?;
        Ok(Engine::Embedded(session_context(&config).await?))
    }

    /// Run `sql`; the physical plan comes back too when it ran here.
    async fn run(
        &self,
        sql: &str,
    ) -> datafusion::error::Result<(SendableRecordBatchStream, Option<Arc<dyn ExecutionPlan>>)>
    {
        match self {
            Engine::Embedded(ctx) => {
                let plan = ctx.sql(sql).await?.create_physical_plan().await?;
                let stream = execute_stream(plan.clone(), ctx.task_ctx())?;
                Ok((stream, Some(plan)))
            }
            Engine::Remote(connection) => Ok((connection.query(sql).await?, None)),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Engine::Embedded(_) => "embedded",
            Engine::Remote(_) => "coordinator",
        }
    }
}

async fn factor_panel(args: FactorPanelArgs, config: LendfusionConfig) -> CliResult {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let engine = Engine::open(&args.data, &args.remote, config).await?;
    let panel_path = args.out.join("panel.parquet");
    let ic_path = args.out.join("ic.parquet");

    let started = Instant::now();
    let sql = format!(
        "{}\nORDER BY date, security_id",
        FACTOR_PANEL_SQL.trim_end()
    );
    let (panel_rows, plan, series) = match &engine {
        Engine::Embedded(ctx) => {
            let (rows, plan, series) = copy_panel(ctx, &sql, &panel_path).await?;
            (rows, Some(plan), series)
        }
        // Through a coordinator: the same sink, here, over the stream the cluster sends (so
        // the file's columns are encoded in parallel while the next batches arrive).
        Engine::Remote(connection) => {
            let stream = connection.query(&sql).await?;
            let local = SessionContext::new();
            let source = StreamingTable::try_new(stream.schema(), vec![Replay::new(stream)])?;
            local.register_table("remote_panel", Arc::new(source))?;
            let (rows, _, series) =
                copy_panel(&local, "SELECT * FROM remote_panel", &panel_path).await?;
            (rows, None, series)
        }
    };
    let job_s = started.elapsed().as_secs_f64();

    let (ic_rows, ic_from) = match series {
        Some(series) => {
            let ic = series.finish()?;
            let mut writer = parquet_writer(&ic_path, ic.schema())?;
            writer.write(&ic)?;
            writer.close()?;
            (ic.num_rows(), "stream")
        }
        // Otherwise the IC series from the panel just written.
        None => {
            let local = session_context(&LendfusionConfig::default()).await?;
            local
                .register_parquet(
                    "panel",
                    panel_path.to_string_lossy().as_ref(),
                    ParquetReadOptions::default(),
                )
                .await?;
            let ic = local.sql(PANEL_IC_SQL).await?.execute_stream().await?;
            (write_parquet(ic, &ic_path).await?, "file")
        }
    };
    let wall_s = started.elapsed().as_secs_f64();

    let scanned = plan.as_deref().map(bytes_scanned);
    say(&format!(
        "wall_s={wall_s:.3} panel_rows={panel_rows} ic_rows={ic_rows} panel_s={job_s:.3} \
         rows_per_s={:.0} bytes_scanned={} peak_rss_mib={} engine={} ic_from={ic_from}\npanel: {}\nic: {}",
        panel_rows as f64 / wall_s,
        scanned.map_or("n/a".into(), |b| b.to_string()),
        peak_rss_mib().map_or("n/a".into(), |m| format!("{m:.0}")),
        engine.label(),
        panel_path.display(),
        ic_path.display()
    ))
}

/// Run `select` into `panel_path` with DataFusion's Parquet sink (it encodes columns in
/// parallel), the IC series taken on the way where the plan allows: the rows written, the plan
/// (for its metrics) and the series.
async fn copy_panel(
    ctx: &SessionContext,
    select: &str,
    panel_path: &Path,
) -> Result<
    (usize, Arc<dyn ExecutionPlan>, Option<IcSeries>),
    Box<dyn std::error::Error + Send + Sync>,
> {
    // Dictionary encoding only where values repeat (the key); interning millions of distinct
    // doubles per row group costs time and saves nothing.
    let copy = format!(
        "COPY ({select}) TO '{}' STORED AS PARQUET OPTIONS ('format.compression' 'snappy', \
         'format.dictionary_enabled' 'false', \
         'format.dictionary_enabled::security_id' 'true')",
        panel_path.display().to_string().replace('\'', "''")
    );
    let mut plan = ctx.sql(&copy).await?.create_physical_plan().await?;
    // The IC series per date, from the sorted panel on its way to the file.
    let mut shared = None;
    if let Some((teed, filled)) = IcTeeExec::under(&plan)? {
        (plan, shared) = (teed, Some(filled));
    }
    let batches = collect(plan.clone(), ctx.task_ctx()).await?;
    // (The plan still holds the tee, and so the series: take what it filled.)
    let series = shared.and_then(|s| s.lock().ok().map(|mut s| std::mem::take(&mut *s)));
    Ok((copied_rows(&batches)?, plan, series))
}

async fn scan_floor(args: ScanFloorArgs, config: LendfusionConfig) -> CliResult {
    let engine = Engine::open(&args.data, &args.remote, config).await?;
    let started = Instant::now();
    let (mut stream, plan) = engine.run(SCAN_FLOOR_SQL).await?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows();
    }
    let wall_s = started.elapsed().as_secs_f64();
    if rows != 1 {
        return Err(format!("the scan floor returned {rows} rows, expected 1").into());
    }
    say(&format!(
        "wall_s={wall_s:.3} bytes_scanned={} peak_rss_mib={} engine={}",
        plan.as_deref()
            .map_or("n/a".into(), |p| bytes_scanned(p).to_string()),
        peak_rss_mib().map_or("n/a".into(), |m| format!("{m:.0}")),
        engine.label()
    ))
}

/// Print the job's result lines; a closed stdout (e.g. `| head -1`) is an error, not a panic.
fn say(lines: &str) -> CliResult {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{lines}")
        .map_err(|e| format!("cannot write the result to stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Stream `stream` into one Parquet file; the number of rows written.
async fn write_parquet(
    mut stream: SendableRecordBatchStream,
    path: &Path,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let mut writer = parquet_writer(path, stream.schema())?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.close()?;
    Ok(rows)
}

/// A Parquet writer for one of the job's outputs (snappy; dictionaries only for the key).
fn parquet_writer(
    path: &Path,
    schema: SchemaRef,
) -> Result<ArrowWriter<std::fs::File>, Box<dyn std::error::Error + Send + Sync>> {
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled("security_id".into(), true)
        .build();
    Ok(ArrowWriter::try_new(file, schema, Some(properties))?)
}

/// The row count a `COPY` statement returns.
fn copied_rows(batches: &[RecordBatch]) -> Result<usize, String> {
    batches
        .first()
        .filter(|b| b.num_columns() == 1 && b.num_rows() == 1)
        .and_then(|b| {
            b.column(0)
                .as_primitive_opt::<UInt64Type>()
                .map(|a| a.value(0))
        })
        .map(|n| n as usize)
        .ok_or_else(|| "COPY returned no row count".to_string())
}

/// Bytes the plan's Parquet scans read from storage.
fn bytes_scanned(plan: &dyn ExecutionPlan) -> usize {
    let own = plan.metrics().map_or(0, |metrics| {
        metrics
            .iter()
            .filter_map(|m| match m.value() {
                MetricValue::Count { name, count } if name == "bytes_scanned" => {
                    Some(count.value())
                }
                _ => None,
            })
            .sum()
    });
    own + plan
        .children()
        .iter()
        .map(|c| bytes_scanned(c.as_ref()))
        .sum::<usize>()
}

/// This process's peak resident set size in MiB.
fn peak_rss_mib() -> Option<f64> {
    peak_resident_bytes().map(|b| b as f64 / (1024.0 * 1024.0))
}
