//! `lendfusion`: one binary for every role.

mod bench;
mod cluster;
mod demo;
mod generate;
mod output;
mod remote;
mod report;
mod sql;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lendfusion_core::LendfusionConfig;

/// lendfusion — distributed columnar compute for securities-lending factor research.
#[derive(Debug, Parser)]
#[command(name = "lendfusion", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (overridden by LENDFUSION_* and AWS_* variables, then flags).
    #[arg(long, global = true, env = "LENDFUSION_CONFIG")]
    config: Option<PathBuf>,
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
}

fn init_logging(server: bool) {
    use tracing_subscriber::EnvFilter;
    // Server roles say what they are doing; one-shot commands only warn.
    let default = if server {
        "warn,lendfusion=info,lendfusion_coordinator=info,lendfusion_worker=info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("LENDFUSION_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    // Logs go to stderr: stdout carries results only.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Stack of every runtime thread.
const RUNTIME_STACK_BYTES: usize = 16 * 1024 * 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(
        cli.command,
        Command::Coordinator(_) | Command::Worker(_) | Command::Demo(_)
    ));
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
        let config = LendfusionConfig::load(cli.config.as_deref())?;
        match cli.command {
            Command::Demo(args) => demo::run(args, config).await,
            Command::Generate(args) => generate::run(args, config).await,
            Command::Sql(args) => sql::run(args, config).await,
            Command::Coordinator(args) => cluster::run_coordinator(args, config).await,
            Command::Worker(args) => cluster::run_worker(args, config).await,
            Command::HashPassword(args) => cluster::run_hash_password(args),
            Command::Report(args) => report::run(args, config).await,
            Command::Bench(args) => bench::run(args, config).await,
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

/// Error type of the commands: anything printable.
pub type CliResult = Result<ExitCode, Box<dyn std::error::Error + Send + Sync>>;
