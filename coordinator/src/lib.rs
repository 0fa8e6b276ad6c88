//! The lendfusion coordinator role: Ballista's scheduler on the one session recipe.
//!
//! The coordinator resolves the catalog (tables and views under the dataset root) once, then
//! for every query: decodes the client's logical plan with our codec, plans it physically in a
//! session that shares that catalog, cuts it into stages at the shuffles (repartition on
//! `date` for cross-sectional windows, on `security_id` for time-series windows, on the join
//! keys for joins), and pushes tasks to the workers. It tracks worker heartbeats; a lost
//! worker's running tasks and the shuffle outputs it held are recomputed on the others.
//!
//! [`EmbeddedCluster`] runs a coordinator and N workers in one process over loopback.

pub mod client;
mod embedded;
mod front_door;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use lendfusion_core::cluster::{cluster_session_config, scheduler_session_builder};
use lendfusion_core::codec::{LendfusionLogicalCodec, LendfusionPhysicalCodec};
use lendfusion_core::ops::http::{OpsEndpoint, Readiness, Refresh};
use lendfusion_core::ops::lifecycle::start_draining;
use lendfusion_core::ops::metrics::metrics;
use lendfusion_core::{LendfusionConfig, LendfusionError};
use tokio::task::JoinHandle;

pub use embedded::EmbeddedCluster;
pub use front_door::{FrontDoor, hash_password};

type Scheduler = SchedulerServer<LogicalPlanNode, PhysicalPlanNode>;

/// A running coordinator: its scheduler service and what it knows of the workers.
pub struct Coordinator {
    scheduler: Scheduler,
    address: SocketAddr,
    service: JoinHandle<()>,
    front_door: Option<FrontDoor>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("address", &self.address)
            .finish()
    }
}

impl Coordinator {
    /// Start the scheduler service on `listener` (workers and cluster clients connect to it).
    pub async fn start(
        config: &LendfusionConfig,
        listener: tokio::net::TcpListener,
    ) -> Result<Self, LendfusionError> {
        let cluster = &config.cluster;
        cluster.validate()?;
        let address = listener
            .local_addr()
            .map_err(|e| LendfusionError::Cluster(format!("scheduler address: {e}")))?;
        let session_builder = scheduler_session_builder(config).await?;
        let session_config = cluster_session_config(config);
        let scheduler_config = SchedulerConfig {
            bind_host: cluster.bind_host.clone(),
            bind_port: address.port(),
            external_host: cluster.advertised_host(),
            scheduling_policy: TaskSchedulingPolicy::PushStaged,
            // A finished result must outlive its tickets.
            finished_job_data_clean_up_interval_seconds: cluster
                .finished_job_cleanup_seconds
                .max(config.server.result_ttl_seconds),
            executor_timeout_seconds: cluster.worker_timeout_seconds,
            expire_dead_executor_interval_seconds: cluster.worker_check_interval_seconds,
            no_executors_grace_period_seconds: cluster.no_workers_grace_seconds,
            task_max_failures: cluster.task_max_failures,
            stage_max_failures: cluster.stage_max_failures,
            min_ready_executors: cluster.min_workers,
            override_config_producer: Some(Arc::new(move || session_config.clone())),
            override_session_builder: Some(session_builder),
            override_logical_codec: Some(Arc::new(LendfusionLogicalCodec::default())),
            override_physical_codec: Some(Arc::new(LendfusionPhysicalCodec::default())),
            ..Default::default()
        };
        scheduler_config.validate().map_err(cluster_error)?;
        let ballista = BallistaCluster::new_from_config(&scheduler_config)
            .await
            .map_err(cluster_error)?;
        let scheduler: Scheduler = create_scheduler(ballista, Arc::new(scheduler_config))
            .await
            .map_err(cluster_error)?;
        let serving = scheduler.clone();
        let service = tokio::spawn(async move {
            if let Err(e) = start_grpc_service_with_listener(listener, serving).await {
                tracing::error!(error = %e, "scheduler service stopped");
            }
        });
        tracing::info!(%address, "coordinator scheduler listening");
        Ok(Self {
            scheduler,
            address,
            service,
            front_door: None,
        })
    }

    /// Serve clients (Flight SQL, lendfusion commands) on `listener`, with the auth, TLS and
    /// limits of `config`.
    pub async fn open_client_port(
        &mut self,
        config: &LendfusionConfig,
        listener: tokio::net::TcpListener,
    ) -> Result<SocketAddr, LendfusionError> {
        let door = FrontDoor::start(config, self.scheduler.clone(), listener).await?;
        let address = door.address();
        self.front_door = Some(door);
        Ok(address)
    }

    /// The client port, once open.
    pub fn client_address(&self) -> Option<SocketAddr> {
        self.front_door.as_ref().map(FrontDoor::address)
    }

    /// Bind `host:port` and start.
    pub async fn bind(
        config: &LendfusionConfig,
        host: &str,
        port: u16,
    ) -> Result<Self, LendfusionError> {
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(|e| {
                LendfusionError::Cluster(format!("cannot listen on {host}:{port}: {e}"))
            })?;
        Self::start(config, listener).await
    }

    /// The scheduler's address (workers register here; cluster clients submit here).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The scheduler URL for cluster clients, e.g. `http://127.0.0.1:50051`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Workers registered with the coordinator (alive or not yet expired).
    pub async fn worker_count(&self) -> usize {
        registered_workers(&self.scheduler).await
    }

    /// Whether at least `cluster.min_workers` workers are alive.
    pub fn is_ready(&self) -> bool {
        self.scheduler.is_ready()
    }

    /// Wait until `n` workers are registered, or fail after `timeout`.
    pub async fn wait_for_workers(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<(), LendfusionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let have = self.worker_count().await;
            if have >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LendfusionError::Cluster(format!(
                    "{have} of {n} workers registered with the coordinator after {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Serve the operations endpoint on `host:port` (0 = a free port): `/healthz`, `/readyz`
    /// (at least `cluster.min_workers` live workers, not draining), `/metrics`, and
    /// `/workers/{id}` (200 if that worker is registered, else 404).
    pub async fn open_ops_endpoint(
        &self,
        host: &str,
        port: u16,
    ) -> Result<OpsEndpoint, LendfusionError> {
        use axum::extract::Path;
        use axum::http::StatusCode;
        let scheduler = self.scheduler.clone();
        let readiness: Readiness = Arc::new(move || {
            let scheduler = scheduler.clone();
            Box::pin(async move {
                if scheduler.is_ready() {
                    return Ok(());
                }
                let live = registered_workers(&scheduler).await;
                Err(format!(
                    "{live} live workers, fewer than cluster.min_workers"
                ))
            })
        });
        let scheduler = self.scheduler.clone();
        let workers = axum::Router::new().route(
            "/workers/{id}",
            axum::routing::get(move |Path(id): Path<String>| {
                let scheduler = scheduler.clone();
                async move {
                    let known = scheduler
                        .state
                        .executor_manager
                        .get_executors_state()
                        .await
                        .is_ok_and(|state| state.iter().any(|(meta, _, _)| meta.id == id));
                    if known {
                        (StatusCode::OK, "registered\n")
                    } else {
                        (StatusCode::NOT_FOUND, "not registered\n")
                    }
                }
            }),
        );
        let scheduler = self.scheduler.clone();
        let refresh: Refresh = Arc::new(move || {
            let scheduler = scheduler.clone();
            Box::pin(async move {
                let n = registered_workers(&scheduler).await;
                metrics().workers.set(i64::try_from(n).unwrap_or(i64::MAX));
            })
        });
        OpsEndpoint::start(host, port, readiness, refresh, workers).await
    }

    /// Stop taking queries (they fail with `UNAVAILABLE`, `/readyz` answers 503) and wait up
    /// to `grace` for the queries running to finish and their results to be fetched; how much
    /// of that work is left after it.
    pub async fn drain(&self, grace: Duration) -> usize {
        start_draining();
        let running = || self.front_door.as_ref().map_or(0, FrontDoor::busy);
        tracing::info!(
            running = running(),
            grace_seconds = grace.as_secs(),
            "stop requested: refusing new queries, finishing the running ones and their results"
        );
        let deadline = tokio::time::Instant::now() + grace;
        while running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        running()
    }

    /// Log the number of registered workers whenever it changes, until the service stops.
    pub fn log_worker_changes(&self) -> JoinHandle<()> {
        let scheduler = self.scheduler.clone();
        tokio::spawn(async move {
            let mut last = usize::MAX;
            loop {
                let now = registered_workers(&scheduler).await;
                if now != last {
                    tracing::info!(workers = now, "registered workers");
                    last = now;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    /// Serve until the scheduler service stops.
    pub async fn serve(&mut self) -> Result<(), LendfusionError> {
        (&mut self.service)
            .await
            .map_err(|e| LendfusionError::Cluster(format!("scheduler task failed: {e}")))
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.service.abort();
    }
}

/// Workers registered with `scheduler` (alive or not yet expired).
async fn registered_workers(scheduler: &Scheduler) -> usize {
    scheduler
        .state
        .executor_manager
        .get_executors_state()
        .await
        .map(|s| s.len())
        .unwrap_or(0)
}

fn cluster_error(e: ballista_core::error::BallistaError) -> LendfusionError {
    LendfusionError::Cluster(e.to_string())
}
