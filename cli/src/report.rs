//! `lendfusion report`: the factor report of SPEC §4, embedded on `--data` or through a
//! coordinator's Flight SQL port.

use std::path::PathBuf;
use std::process::ExitCode;

use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use clap::Args;
use datafusion::error::Result as DfResult;
use futures::TryStreamExt;
use lendfusion_coordinator::client::FlightSqlConnection;
use lendfusion_core::{LendfusionConfig, session_context};
use lendfusion_report::output::{number_column, text_column, write_report};
use lendfusion_report::{
    DEFAULT_HTB_BPS, Direction, Rebalance, ReportOptions, ReportTables, SqlRunner,
};

use crate::CliResult;
use crate::remote::RemoteArgs;

/// Options of `lendfusion report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Dataset root to run on embedded (default: `data` from the config or LENDFUSION_DATA).
    #[arg(long)]
    data: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
    /// The factor: a built-in name (utilization, days_to_cover, squeeze_score, ...) or an SQL
    /// expression over the panel's columns.
    #[arg(long)]
    factor: String,
    /// Point-in-time universe (e.g. US_LARGE); default every security.
    #[arg(long)]
    universe: Option<String>,
    /// First rebalance date (YYYY-MM-DD).
    #[arg(long)]
    start: Option<NaiveDate>,
    /// Last rebalance date (YYYY-MM-DD).
    #[arg(long)]
    end: Option<NaiveDate>,
    /// monthly (last business day of each month), weekly or daily.
    #[arg(long, default_value = "monthly")]
    rebalance: String,
    /// Forward-return horizon in business days.
    #[arg(long, default_value_t = 21)]
    horizon: u32,
    /// Buckets.
    #[arg(long, default_value_t = 10)]
    quantiles: u32,
    /// bearish (long the lowest bucket, short the highest) or bullish.
    #[arg(long, default_value = "bearish")]
    direction: String,
    /// Hard-to-borrow fee threshold in bps for the ex-HTB columns (default 120).
    #[arg(long, value_name = "BPS", num_args = 0..=1, default_missing_value = "120")]
    exclude_htb: Option<f64>,
    /// Neutralise the factor on ln(market cap), book-to-market, 12-1 momentum and 252-day beta.
    #[arg(long)]
    neutralize: bool,
    /// Add the metrics per market regime (oversold, range, overbought).
    #[arg(long)]
    by_regime: bool,
    /// Add the IC within market-cap quintiles.
    #[arg(long)]
    by_size: bool,
    /// Zero factor values in their own bucket (0), positive values in quantiles.
    #[arg(long)]
    zero_bucket: bool,
    /// Add the squeeze-model validation (squeeze frequency and excess returns per bucket).
    #[arg(long)]
    squeeze_validation: bool,
    /// Output folder: report.html, and every table as CSV and Parquet.
    #[arg(long)]
    out: PathBuf,
}

/// A coordinator as a report engine.
struct Remote(FlightSqlConnection);

#[async_trait::async_trait]
impl SqlRunner for Remote {
    async fn collect(&self, sql: &str) -> DfResult<Vec<RecordBatch>> {
        self.0.query(sql).await?.try_collect().await
    }
}

impl ReportArgs {
    fn options(&self) -> Result<ReportOptions, String> {
        Ok(ReportOptions {
            factor: self.factor.clone(),
            universe: self.universe.clone(),
            start: self.start,
            end: self.end,
            rebalance: Rebalance::parse(&self.rebalance)?,
            horizon: self.horizon,
            quantiles: self.quantiles,
            direction: Direction::parse(&self.direction)?,
            htb_threshold_bps: self.exclude_htb.unwrap_or(DEFAULT_HTB_BPS),
            neutralize: self.neutralize,
            by_regime: self.by_regime,
            by_size: self.by_size,
            zero_bucket: self.zero_bucket,
            squeeze_validation: self.squeeze_validation,
        })
    }
}

/// One line per sample: IC mean and t-stat, long/short return and Sharpe.
pub fn summary_lines(tables: &ReportTables) -> Vec<String> {
    let samples = text_column(&tables.summary, "sample");
    let get = |name: &str| number_column(&tables.summary, name);
    let (ic, t, ret, sharpe, dd) = (
        get("ic_mean"),
        get("ic_t_stat"),
        get("ann_return"),
        get("sharpe"),
        get("max_drawdown"),
    );
    let show = |v: Option<f64>, pct: bool| match v {
        Some(v) if pct => format!("{:+.2}%", v * 100.0),
        Some(v) => format!("{v:+.3}"),
        None => "n/a".into(),
    };
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{s:>7}: IC mean {} (t {}), long/short {} a year, Sharpe {}, max drawdown {}",
                show(ic[i], false),
                show(t[i], false),
                show(ret[i], true),
                show(sharpe[i], false),
                show(dd[i], true)
            )
        })
        .collect()
}

pub async fn run(args: ReportArgs, mut config: LendfusionConfig) -> CliResult {
    let options = args.options()?;
    let tables = match args.remote.connect(None).await? {
        Some(connection) => lendfusion_report::run(&Remote(connection), &options).await?,
        None => {
            if let Some(data) = &args.data {
                config.data = Some(data.clone());
            }
            config.data_root()?;
            let ctx = session_context(&config).await?;
            lendfusion_report::run(&ctx, &options).await?
        }
    };
    let html = write_report(&args.out, &options, &tables)?;
    println!("factor {}:", options.factor);
    for line in summary_lines(&tables) {
        println!("  {line}");
    }
    println!("tearsheet: {}", html.display());
    Ok(ExitCode::SUCCESS)
}
