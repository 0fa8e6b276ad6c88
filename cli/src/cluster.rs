//! `lendfusion coordinator` and `lendfusion worker`: the two cluster roles as processes.

use std::process::ExitCode;

use clap::Args;
use lendfusion_coordinator::Coordinator;
use lendfusion_core::LendfusionConfig;
use lendfusion_worker::Worker;

use crate::CliResult;
use lendfusion_core::ops::lifecycle::shutdown_signal;

/// Options of `lendfusion coordinator`.
#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// Dataset root the cluster serves: a path, file:///path or s3://bucket/prefix
    /// (default: `data` from the config or LENDFUSION_DATA).
    #[arg(long)]
    data: Option<String>,
    /// Client port: Arrow Flight SQL and lendfusion's Flight commands (default 50050).
    #[arg(long)]
    port: Option<u16>,
    /// Internal scheduler port that workers connect to (default 50051); keep it private.
    #[arg(long)]
    scheduler_port: Option<u16>,
    /// File of API keys clients may send as `authorization: Bearer <key>`, one per line.
    #[arg(long, value_name = "FILE")]
    api_keys: Option<String>,
    /// Serve the client port without authentication (a warning is logged).
    #[arg(long)]
    no_auth: bool,
    /// PEM certificate chain: serve the client port over TLS (with --tls-key).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<String>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<String>,
    /// Let clients run statements that write or change the server (CREATE EXTERNAL TABLE,
    /// COPY, SET, DDL): for administrators on a private network only.
    #[arg(long)]
    allow_writes: bool,
    /// Address to bind (default 127.0.0.1; 0.0.0.0 for every interface).
    #[arg(long)]
    bind_host: Option<String>,
    /// Host name other nodes use to reach this one.
    #[arg(long)]
    external_host: Option<String>,
    /// Operations port: /healthz, /readyz, /metrics (default 50060; 0 = a free port).
    #[arg(long)]
    ops_port: Option<u16>,
}

/// Options of `lendfusion worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The coordinator's scheduler address, HOST:PORT (default: `cluster.coordinator`).
    #[arg(long, env = "LENDFUSION_COORDINATOR")]
    coordinator: Option<String>,
    /// Data port serving shuffle and result partitions (0 = a free port).
    #[arg(long)]
    port: Option<u16>,
    /// Port the coordinator pushes tasks to (0 = a free port).
    #[arg(long)]
    task_port: Option<u16>,
    /// Task slots (0 = one per core).
    #[arg(long)]
    slots: Option<usize>,
    /// Memory limit for queries in MiB (0 = 70 % of the machine); beyond it sorts and
    /// aggregations spill, other accounted operators fail with a resources-exhausted error.
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Folder for shuffle files and spills (default: a temporary folder).
    #[arg(long)]
    work_dir: Option<String>,
    /// Address to bind (default 127.0.0.1; 0.0.0.0 for every interface).
    #[arg(long)]
    bind_host: Option<String>,
    /// Host name other nodes use to reach this one.
    #[arg(long)]
    external_host: Option<String>,
    /// Operations port: /healthz, /readyz, /metrics (default: a free port).
    #[arg(long)]
    ops_port: Option<u16>,
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

pub async fn run_coordinator(args: CoordinatorArgs, mut config: LendfusionConfig) -> CliResult {
    set(&mut config.data, args.data.map(Some));
    let cluster = &mut config.cluster;
    set(&mut cluster.port, args.port);
    set(&mut cluster.scheduler_port, args.scheduler_port);
    set(&mut cluster.bind_host, args.bind_host);
    set(&mut cluster.external_host, args.external_host.map(Some));
    set(&mut config.auth.api_keys_file, args.api_keys.map(Some));
    config.auth.disabled |= args.no_auth;
    set(&mut config.server.tls_cert, args.tls_cert.map(Some));
    set(&mut config.server.tls_key, args.tls_key.map(Some));
    config.server.allow_writes |= args.allow_writes;
    set(&mut config.ops.http_port, args.ops_port);
    config.data_root()?;
    config.ops.validate()?;
    let host = config.cluster.bind_host.clone();
    // Check the client port's settings before anything listens.
    config.server.validate()?;
    lendfusion_core::results::ticket::TicketKey::for_coordinator(&config)?;
    config.auth.validate()?;
    let client_listener = tokio::net::TcpListener::bind((host.as_str(), config.cluster.port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{}: {e}", config.cluster.port))?;
    let mut coordinator = Coordinator::bind(&config, &host, config.cluster.scheduler_port).await?;
    let client = coordinator
        .open_client_port(&config, client_listener)
        .await?;
    let ops = coordinator
        .open_ops_endpoint(&host, config.ops.http_port)
        .await?;
    let _watch = coordinator.log_worker_changes();
    let scheme = if config.server.tls_files()?.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    eprintln!(
        "lendfusion coordinator: data {} — clients connect to {scheme}://{}:{}, workers to {}:{}, \
         operations endpoint http://{}:{}",
        config.data.as_deref().unwrap_or_default(),
        config.cluster.advertised_host(),
        client.port(),
        config.cluster.advertised_host(),
        coordinator.address().port(),
        config.cluster.advertised_host(),
        ops.address().port()
    );
    let grace = std::time::Duration::from_secs(config.ops.shutdown_grace_seconds);
    let stop_requested = tokio::select! {
        served = coordinator.serve() => { served?; false }
        _ = shutdown_signal() => true,
    };
    if stop_requested {
        let unfinished = coordinator.drain(grace).await;
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                "grace period over: stopping with queries unfinished"
            );
        }
        eprintln!("lendfusion coordinator: stopped");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_worker(args: WorkerArgs, mut config: LendfusionConfig) -> CliResult {
    let cluster = &mut config.cluster;
    set(&mut cluster.coordinator, args.coordinator.map(Some));
    set(&mut cluster.worker_port, args.port);
    set(&mut cluster.worker_task_port, args.task_port);
    set(&mut cluster.worker_slots, args.slots);
    set(&mut cluster.worker_memory_mb, args.memory_mb);
    set(&mut cluster.work_dir, args.work_dir.map(Some));
    set(&mut cluster.bind_host, args.bind_host);
    set(&mut cluster.external_host, args.external_host.map(Some));
    set(&mut config.ops.worker_http_port, args.ops_port);
    let coordinator = config.cluster.coordinator.clone().ok_or(
        "no coordinator: pass --coordinator HOST:PORT (the coordinator's scheduler port) or set LENDFUSION_COORDINATOR",
    )?;
    let worker = Worker::new(&config, &coordinator).await?;
    eprintln!(
        "lendfusion worker {}: coordinator {coordinator}, data port {}, work folder {}",
        worker.id(),
        worker.data_address,
        worker.work_dir.display()
    );
    worker.run().await?;
    Ok(ExitCode::SUCCESS)
}

/// Options of `lendfusion hash-password`.
#[derive(Debug, Args)]
pub struct HashPasswordArgs {}

/// Read a password from stdin and print its Argon2id hash for `[[auth.users]]`.
pub fn run_hash_password(_args: HashPasswordArgs) -> CliResult {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("empty password".into());
    }
    println!("{}", lendfusion_coordinator::hash_password(password)?);
    Ok(ExitCode::SUCCESS)
}
