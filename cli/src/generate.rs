//! `lendfusion generate`.

use std::process::ExitCode;
use std::sync::Arc;

use chrono::NaiveDate;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use lendfusion_core::LendfusionConfig;
use lendfusion_datagen::{GenerateError, GenerateOptions, Progress, generate};

use crate::CliResult;

/// Options of `lendfusion generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Dataset root to write: a path, file:///path or s3://bucket/prefix.
    #[arg(long)]
    out: String,
    /// Securities over the panel's life (listed at the start or later).
    #[arg(long, default_value_t = 500)]
    securities: u32,
    /// First calendar day (YYYY-MM-DD).
    #[arg(long, default_value = "2015-01-01")]
    start: NaiveDate,
    /// Last calendar day (YYYY-MM-DD).
    #[arg(long, default_value = "2019-12-31")]
    end: NaiveDate,
    /// Seed: the same seed writes identical tables.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Replace a panel already under --out.
    #[arg(long, conflicts_with = "keep_existing")]
    overwrite: bool,
    /// Keep a panel already under --out and exit successfully (one-shot deploy jobs).
    #[arg(long)]
    keep_existing: bool,
    /// No gaps: leave out the NULLs, NaNs, infinities, zero and negative denominators, trading
    /// halts, missing rows and names absent from the lending feed that are planted by default
    /// (rates and counts in _truth.json).
    #[arg(long)]
    clean: bool,
}

pub async fn run(args: GenerateArgs, config: LendfusionConfig) -> CliResult {
    let options = GenerateOptions {
        out: args.out.clone(),
        securities: args.securities,
        start: args.start,
        end: args.end,
        seed: args.seed,
        overwrite: args.overwrite,
        clean: args.clean,
    };
    // indicatif draws only when stderr is a terminal.
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} business days  {msg}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress_bar = bar.clone();
    let progress: Progress = Arc::new(move |done, total, rows| {
        progress_bar.set_length(total as u64);
        progress_bar.set_position(done as u64);
        progress_bar.set_message(format!("{rows} rows"));
    });
    let summary = match generate(&options, &config, Some(progress)).await {
        Err(GenerateError::Exists(root)) if args.keep_existing => {
            bar.finish_and_clear();
            println!("{root} already holds a panel: kept (--keep-existing)");
            return Ok(ExitCode::SUCCESS);
        }
        other => other?,
    };
    bar.finish_and_clear();
    let total = summary.total_rows();
    eprintln!(
        "wrote {} rows to {} in {:.1}s ({:.0} rows/s): {}; planted {} squeezes, {} market episodes; truth in _truth.json",
        total,
        args.out,
        summary.seconds,
        total as f64 / summary.seconds.max(1e-9),
        summary
            .rows
            .iter()
            .map(|(t, n)| format!(
                "{t}={n} ({} files)",
                summary.files.get(t).copied().unwrap_or(0)
            ))
            .collect::<Vec<_>>()
            .join(", "),
        summary.truth.squeezes.len(),
        summary.truth.episodes.len()
    );
    Ok(ExitCode::SUCCESS)
}
