//! `lendfusion`: one binary for every role.

mod bench;
mod cluster;
mod config_cmd;
mod demo;
mod generate;
mod huge_pages;
mod output;
mod remote;
mod report;
mod sql;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lendfusion_core::{LendfusionConfig, LogFormat, OpsSettings};

/// lendfusion — distributed columnar compute for securities-lending factor research.
#[derive(Debug, Parser)]
#[command(name = "lendfusion", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (overridden by LENDFUSION_* and AWS_* variables, then flags).
    #[arg(long, global = true, env = "LENDFUSION_CONFIG")]
    config: Option<PathBuf>,
    /// Parse the arguments and load the configuration, then exit without running the command
    /// (checks the command lines of deploy files).
    #[arg(long, global = true)]
    dry_run: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: a demo panel, an embedded cluster, factor reports, then Flight SQL.
    Demo(demo::DemoArgs),
    /// Write the synthetic global panel (all four tables) to a local path or an s3:// URL.
    Generate(generate::GenerateArgs),
    /// Run one SQL statement, or an interactive shell without one.
    Sql(sql::SqlArgs),
    /// The coordinator role: plans queries and schedules them on the workers.
    Coordinator(cluster::CoordinatorArgs),
    /// The worker role: registers with a coordinator and runs its tasks.
    Worker(cluster::WorkerArgs),
    /// The factor report: IC, quantile returns, long/short statistics and an HTML tearsheet.
    Report(report::ReportArgs),
    /// The benchmark jobs: the factor-panel job and the scan floor (docs/benchmarks.md).
    #[command(subcommand_value_name = "JOB")]
    Bench(bench::BenchArgs),
    /// Print the Argon2id hash of a password read from stdin, for `[[auth.users]]`.
    HashPassword(cluster::HashPasswordArgs),
    /// Print the effective configuration (secrets hidden), or the reference of every key.
    Config(config_cmd::ConfigArgs),
    /// Exit 0 if an HTTP endpoint answers 200 (container health checks: /healthz, /readyz).
    Probe(ProbeArgs),
}

/// Logs go to stderr (stdout carries results only), as human lines or JSON objects, filtered
/// by `LENDFUSION_LOG`, else `ops.log_filter`, else `RUST_LOG`, else the role's default.
fn init_logging(server: bool, ops: &OpsSettings) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    // Server roles say what they are doing; one-shot commands only warn.
    let default = if server {
        "warn,lendfusion=info,lendfusion_coordinator=info,lendfusion_worker=info,lendfusion_core=info"
    } else {
        "warn"
    };
    let filter = match (std::env::var("LENDFUSION_LOG"), &ops.log_filter) {
        (Ok(text), _) => EnvFilter::try_new(&text)
            .map_err(|e| format!("LENDFUSION_LOG={text:?} is not a log filter: {e}"))?,
        (Err(_), Some(text)) => EnvFilter::try_new(text)
            .map_err(|e| format!("ops.log_filter = {text:?} is not a log filter: {e}"))?,
        (Err(_), None) => {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match ops.log_format {
        LogFormat::Json => logs.json().flatten_event(true).init(),
        LogFormat::Human => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    Ok(())
}

/// Stack of every runtime thread.
const RUNTIME_STACK_BYTES: usize = 16 * 1024 * 1024;

fn main() -> ExitCode {
    // First, while the process is one thread and has allocated little (huge_pages.rs).
    huge_pages::reexec_with_tunable();
    let cli = Cli::parse();
    let config = match LendfusionConfig::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = matches!(
        cli.command,
        Command::Coordinator(_) | Command::Worker(_) | Command::Demo(_)
    );
    if let Err(e) = init_logging(server, &config.ops) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    if cli.dry_run {
        eprintln!("arguments and configuration are valid (--dry-run: nothing was run)");
        return ExitCode::SUCCESS;
    }
    // Deep plans (the squeeze view under a report's joins) recurse deeply when they are
    // planned, serialized for the workers and decoded there: 2 MiB thread stacks overflow.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(RUNTIME_STACK_BYTES)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args, config).await,
            Command::Generate(args) => generate::run(args, config).await,
            Command::Sql(args) => sql::run(args, config).await,
            Command::Coordinator(args) => cluster::run_coordinator(args, config).await,
            Command::Worker(args) => cluster::run_worker(args, config).await,
            Command::HashPassword(args) => cluster::run_hash_password(args),
            Command::Report(args) => report::run(args, config).await,
            Command::Bench(args) => bench::run(args, config).await,
            Command::Config(args) => config_cmd::run(args, config),
            Command::Probe(args) => probe(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Options of `lendfusion probe`.
#[derive(Debug, clap::Args)]
struct ProbeArgs {
    /// The endpoint, e.g. http://127.0.0.1:50060/readyz
    url: String,
}

async fn probe(args: ProbeArgs) -> CliResult {
    let rest = args
        .url
        .strip_prefix("http://")
        .ok_or("probe URLs start with http://")?;
    let (address, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    match lendfusion_core::ops::http::get_status(address, path).await {
        Some(200) => Ok(ExitCode::SUCCESS),
        Some(code) => Err(format!("{} answered {code}", args.url).into()),
        None => Err(format!("no answer from {}", args.url).into()),
    }
}

/// Error type of the commands: anything printable.
pub type CliResult = Result<ExitCode, Box<dyn std::error::Error + Send + Sync>>;
