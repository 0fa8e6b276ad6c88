//! The lendfusion worker role: a Ballista executor built from the one session recipe.
//!
//! A worker registers with the coordinator's scheduler port, receives tasks (serialized
//! physical plans), runs them with every lendfusion function and our object stores, keeps
//! its shuffle outputs in its work folder and serves them to the other workers, the
//! coordinator and (with signed tickets) clients over Arrow Flight on its data port. It
//! heartbeats to the coordinator; a worker that stops heartbeating is declared lost and its
//! work is recomputed elsewhere.

pub mod engine;
mod observed;
pub mod results;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use std::time::Duration;

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use lendfusion_core::cluster::{
    WorkerRuntime, cluster_session_config, coordinator_address, worker_function_registry,
};
use lendfusion_core::ops::http::{OpsEndpoint, Readiness, get_status, no_refresh};
use lendfusion_core::ops::lifecycle::{shutdown_signal, start_draining};
use lendfusion_core::ops::metrics::metrics;
use lendfusion_core::results::ticket::TicketKey;
use lendfusion_core::{LendfusionConfig, LendfusionError, OpsSettings};

/// Makes a worker retry (every 500 ms) to reach a coordinator that is not up yet instead of
/// exiting at once. Ballista 55 measures this timeout against a clock that never advances, so
/// in practice the worker retries until the coordinator answers.
pub const CONNECT_TIMEOUT_SECONDS: u16 = 600;

/// A worker ready to start: its executor settings and the work folder it owns.
pub struct Worker {
    process: ExecutorProcessConfig,
    /// Kept for the worker's lifetime when the work folder is a temporary one.
    _temp_dir: Option<tempfile::TempDir>,
    /// Where shuffle outputs and spills go.
    pub work_dir: PathBuf,
    /// Address other nodes fetch this worker's partitions from.
    pub data_address: String,
    ops: OpsSettings,
    /// The coordinator's operations endpoint (`host:port`), asked whether this worker is
    /// registered; `None` when its port is not fixed.
    coordinator_ops: Option<String>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.process.executor_id)
            .field("work_dir", &self.work_dir)
            .field("data_address", &self.data_address)
            .finish()
    }
}

impl Worker {
    /// Prepare a worker of the cluster whose scheduler is at `coordinator` (`host:port`).
    pub async fn new(
        config: &LendfusionConfig,
        coordinator: &str,
    ) -> Result<Self, LendfusionError> {
        let cluster = &config.cluster;
        cluster.validate()?;
        config.ops.validate()?;
        let (host, scheduler_port) = coordinator_address(coordinator)?;
        let coordinator_ops =
            (config.ops.http_port != 0).then(|| format!("{host}:{}", config.ops.http_port));

        let (temp_dir, work_dir) = match &cluster.work_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    LendfusionError::Config(format!("cannot create work folder {dir}: {e}"))
                })?;
                (None, PathBuf::from(dir))
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("lendfusion-worker-")
                    .tempdir()
                    .map_err(|e| {
                        LendfusionError::Config(format!("cannot create a work folder: {e}"))
                    })?;
                let path = temp.path().to_path_buf();
                (Some(temp), path)
            }
        };
        let spill_dir = work_dir.join("spill");
        std::fs::create_dir_all(&spill_dir).map_err(|e| {
            LendfusionError::Config(format!("cannot create {}: {e}", spill_dir.display()))
        })?;

        let data_port = free_port(&cluster.bind_host, cluster.worker_port)?;
        let task_port = free_port(&cluster.bind_host, cluster.worker_task_port)?;
        let registry = Arc::new(worker_function_registry(config).await?);
        let runtime = WorkerRuntime::new(config, Some(spill_dir));
        let session = cluster_session_config(config);
        let external_host = cluster.advertised_host();

        let process = ExecutorProcessConfig {
            bind_host: cluster.bind_host.clone(),
            external_host: Some(external_host.clone()),
            port: data_port,
            grpc_port: task_port,
            scheduler_host: host,
            scheduler_port,
            scheduler_connect_timeout_seconds: CONNECT_TIMEOUT_SECONDS,
            vcores: cluster.worker_slots,
            task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
            work_dir: Some(work_dir.display().to_string()),
            print_thread_info: false,
            executor_heartbeat_interval_seconds: cluster.heartbeat_interval_seconds,
            memory_pool_size: (cluster.worker_memory_mb > 0)
                .then(|| cluster.worker_memory_mb.saturating_mul(1024 * 1024)),
            job_data_clean_up_interval_seconds: 0,
            override_function_registry: Some(registry),
            override_runtime_producer: Some(Arc::new(move |_| runtime.build())),
            override_config_producer: Some(Arc::new(move || session.clone())),
            override_logical_codec: Some(Arc::new(
                lendfusion_core::codec::LendfusionLogicalCodec::default(),
            )),
            override_physical_codec: Some(Arc::new(
                lendfusion_core::codec::LendfusionPhysicalCodec::default(),
            )),
            // Ballista's engine with the strict file-schema check put back on file scans.
            // (Ballista's pooled shuffle client is private to its own engine; without the
            // pool each shuffle fetch opens its own connection.)
            override_execution_engine: Some(Arc::new(engine::StrictScanEngine::default())),
            // Ballista's data port, which also serves result partitions to clients holding a
            // ticket the coordinator signed.
            override_arrow_flight_service: Some(results::data_port_provider(
                TicketKey::of_cluster(cluster),
            )),
            ..Default::default()
        };
        Ok(Self {
            process,
            _temp_dir: temp_dir,
            work_dir,
            data_address: format!("{external_host}:{data_port}"),
            ops: config.ops.clone(),
            coordinator_ops,
        })
    }

    /// Identifier the coordinator knows this worker by.
    pub fn id(&self) -> &str {
        &self.process.executor_id
    }

    /// Register with the coordinator and run tasks until stopped: by the coordinator, or by
    /// SIGTERM / Ctrl-C, after which the worker tells the coordinator it is leaving (no new
    /// tasks; the coordinator reruns its unfinished work elsewhere), lets its running tasks
    /// finish for up to `ops.shutdown_grace_seconds` and exits.
    pub async fn run(self) -> Result<(), LendfusionError> {
        let Worker {
            process,
            _temp_dir,
            ops,
            coordinator_ops,
            ..
        } = self;
        let endpoint = OpsEndpoint::start(
            &process.bind_host,
            ops.worker_http_port,
            registered_with(coordinator_ops, process.executor_id.clone()),
            no_refresh(),
            axum::Router::new(),
        )
        .await?;
        tracing::info!(
            id = %process.executor_id,
            scheduler = %format!("{}:{}", process.scheduler_host, process.scheduler_port),
            data_port = process.port,
            ops = %endpoint.address(),
            "worker starting"
        );
        let executor = start_executor_process(Arc::new(process));
        tokio::pin!(executor);
        let result = tokio::select! {
            stopped = &mut executor => stopped,
            _ = shutdown_signal() => {
                // Ballista's executor saw the signal too: it fences itself at the
                // coordinator and waits for its running tasks.
                start_draining();
                let grace = Duration::from_secs(ops.shutdown_grace_seconds);
                tracing::info!(
                    running = metrics().tasks_running.get(),
                    grace_seconds = grace.as_secs(),
                    "stop requested: draining running tasks"
                );
                match tokio::time::timeout(grace, &mut executor).await {
                    Ok(stopped) => stopped,
                    Err(_) => {
                        tracing::warn!(
                            unfinished = metrics().tasks_running.get(),
                            "grace period over: stopping with tasks unfinished (the coordinator \
                             reruns them elsewhere)"
                        );
                        Ok(())
                    }
                }
            }
        };
        drop(endpoint);
        drop(_temp_dir);
        tracing::info!("worker stopped");
        result.map_err(|e| LendfusionError::Cluster(format!("worker stopped: {e}")))
    }
}

/// Readiness of worker `id`: the coordinator's operations endpoint knows it (without a fixed
/// coordinator endpoint: ready once started).
fn registered_with(coordinator_ops: Option<String>, id: String) -> Readiness {
    Arc::new(move || {
        let (coordinator_ops, id) = (coordinator_ops.clone(), id.clone());
        Box::pin(async move {
            let Some(address) = coordinator_ops else {
                return Ok(());
            };
            match get_status(&address, &format!("/workers/{id}")).await {
                Some(200) => Ok(()),
                Some(404) => Err("not registered with the coordinator".into()),
                Some(code) => Err(format!(
                    "the coordinator's operations endpoint {address} answered {code}"
                )),
                None => Err(format!(
                    "cannot reach the coordinator's operations endpoint {address}"
                )),
            }
        })
    })
}

/// `port`, or a free one when it is 0.
fn free_port(host: &str, port: u16) -> Result<u16, LendfusionError> {
    if port != 0 {
        return Ok(port);
    }
    let listener = TcpListener::bind((host, 0))
        .map_err(|e| LendfusionError::Config(format!("cannot bind {host}: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| LendfusionError::Config(format!("cannot read a bound address: {e}")))
}
