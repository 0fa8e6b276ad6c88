//! `lendfusion demo`: the main job. Generates a demo panel (once), starts an embedded
//! coordinator with two workers, runs factor reports on them, then serves Flight SQL until
//! Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::NaiveDate;
use clap::Args;
use lendfusion_coordinator::EmbeddedCluster;
use lendfusion_core::LendfusionConfig;
use lendfusion_datagen::{GenerateOptions, Progress, generate};
use lendfusion_report::ReportOptions;
use lendfusion_report::output::write_report;

use crate::CliResult;
use crate::report::summary_lines;

/// Options of `lendfusion demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder of the demo panel (generated when it holds none).
    #[arg(long, default_value = "demo-data")]
    data: PathBuf,
    /// Folder for the tearsheets.
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    /// Securities of a newly generated panel.
    #[arg(long, default_value_t = 2000)]
    securities: u32,
    /// First day of a newly generated panel.
    #[arg(long, default_value = "2011-01-01")]
    start: NaiveDate,
    /// Last day of a newly generated panel.
    #[arg(long, default_value = "2020-12-31")]
    end: NaiveDate,
    /// Workers of the embedded cluster.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Flight SQL port to serve on afterwards.
    #[arg(long, default_value_t = 50050)]
    port: u16,
    /// Stop after the reports instead of serving.
    #[arg(long)]
    no_serve: bool,
}

/// The factors the demo reports on.
const FACTORS: [&str; 3] = ["utilization", "days_to_cover", "squeeze_score"];

async fn ensure_panel(args: &DemoArgs, config: &LendfusionConfig) -> Result<(), String> {
    if args.data.join("_truth.json").is_file() {
        eprintln!("demo panel: {} (already generated)", args.data.display());
        return Ok(());
    }
    eprintln!(
        "generating the demo panel: {} securities, {} to {}, into {} ...",
        args.securities,
        args.start,
        args.end,
        args.data.display()
    );
    let options = GenerateOptions {
        out: args.data.display().to_string(),
        securities: args.securities,
        start: args.start,
        end: args.end,
        seed: 42,
        overwrite: true,
        clean: false,
    };
    let last = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress: Progress = Arc::new(move |done, total, _rows| {
        let pct = done * 10 / total.max(1);
        if last.swap(pct, std::sync::atomic::Ordering::Relaxed) != pct {
            eprint!("{}% ", pct * 10);
        }
    });
    let summary = generate(&options, config, Some(progress))
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "\nwrote {} rows in {:.1}s",
        summary.total_rows(),
        summary.seconds
    );
    Ok(())
}

fn write_api_key(out: &Path) -> Result<(PathBuf, String), String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = out.join("api-key");
    std::fs::write(&path, format!("{key}\n")).map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok((path, key))
}

pub async fn run(args: DemoArgs, mut config: LendfusionConfig) -> CliResult {
    ensure_panel(&args, &config).await?;
    config.data = Some(args.data.display().to_string());
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let listener = if args.no_serve {
        None
    } else {
        // Claim the port first: a busy port fails before minutes of work.
        Some(
            tokio::net::TcpListener::bind(("127.0.0.1", args.port))
                .await
                .map_err(|e| format!("cannot serve on 127.0.0.1:{}: {e}", args.port))?,
        )
    };
    eprintln!(
        "starting an embedded coordinator with {} workers",
        args.workers
    );
    let mut cluster = EmbeddedCluster::start(&config, args.workers).await?;
    let client = cluster.client().await?;
    println!("lendfusion demo — panel {}", args.data.display());
    for factor in FACTORS {
        let options = ReportOptions {
            factor: factor.to_string(),
            squeeze_validation: factor == "squeeze_score",
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let tables = lendfusion_report::run(&client, &options).await?;
        let html = write_report(&args.out.join(factor), &options, &tables)?;
        println!(
            "\n{factor} (monthly, deciles, bearish; {:.1}s):",
            started.elapsed().as_secs_f64()
        );
        for line in summary_lines(&tables) {
            println!("  {line}");
        }
        println!("  tearsheet: {}", html.display());
    }
    let Some(listener) = listener else {
        return Ok(ExitCode::SUCCESS);
    };
    let (key_file, key) = write_api_key(&args.out)?;
    config.auth.api_keys_file = Some(key_file.display().to_string());
    let address = cluster.open_client_port(&config, listener).await?;
    // Health and metrics of the whole embedded cluster; the demo runs without it if the port
    // is taken.
    let ops = match cluster
        .coordinator()
        .open_ops_endpoint("127.0.0.1", config.ops.http_port)
        .await
    {
        Ok(ops) => {
            println!(
                "operations endpoint: http://{}/metrics (also /healthz, /readyz)",
                ops.address()
            );
            Some(ops)
        }
        Err(e) => {
            eprintln!("no operations endpoint: {e}");
            None
        }
    };
    println!(
        "\nserving Flight SQL on grpc://{address} (API key in {}). From Python:\n\n\
         \x20 pip install adbc-driver-flightsql pyarrow pandas\n\
         \x20 python3 -c '\n\
         import adbc_driver_flightsql.dbapi as fs\n\
         conn = fs.connect(\"grpc://{address}\", db_kwargs={{\"adbc.flight.sql.authorization_header\": \"Bearer {key}\"}})\n\
         cur = conn.cursor()\n\
         cur.execute(\"SELECT date, security_id, utilization(on_loan_qty, lendable_qty) AS util, cs_rank(fee_bps) OVER (PARTITION BY date) AS fee_rank FROM lending WHERE date >= DATE \\'2020-12-01\\'\")\n\
         print(cur.fetch_arrow_table().to_pandas().head())'\n\n\
         or: lendfusion sql --coordinator grpc://{address} --token {key}\n\
         Ctrl-C stops.",
        key_file.display()
    );
    lendfusion_core::ops::lifecycle::shutdown_signal().await;
    println!("lendfusion demo: stopped");
    drop(ops);
    drop(cluster);
    Ok(ExitCode::SUCCESS)
}
