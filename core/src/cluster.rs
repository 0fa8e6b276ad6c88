//! The session recipe as the cluster roles need it.
//!
//! A query crosses three kinds of node — the client that plans it, the coordinator that splits
//! it into stages, the workers that run the tasks — and each must agree on the functions, the
//! tables, the config extensions and the codecs. Everything here derives from the one recipe
//! in [`crate::session`], adding what Ballista needs:
//! - [`cluster_session_config`]: our config plus Ballista's extension and our plan codec;
//! - [`scheduler_session_builder`]: the coordinator's per-query sessions, sharing one catalog;
//! - [`worker_function_registry`], [`WorkerRuntime`]: what a worker decodes and runs tasks with;
//! - [`cluster_client_context`]: a client session whose queries run on the cluster.

use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionConfig;

use crate::codec::{LendfusionLogicalCodec, LendfusionPhysicalCodec};
use crate::config::LendfusionConfig;
use crate::error::{LendfusionError, Result};
use crate::object_stores::LendfusionObjectStores;
use crate::session::{cores, session_config, session_context_with};

/// Builds the session of one query on the coordinator from the config the client sent.
pub type SessionBuilderFn = Arc<dyn Fn(SessionConfig) -> DfResult<SessionState> + Send + Sync>;

/// Our DataFusion config with Ballista's extension and our plan codecs: the config every
/// cluster role starts from, and that travels with each query.
pub fn cluster_session_config(config: &LendfusionConfig) -> SessionConfig {
    let partitions = match config.execution.target_partitions {
        0 => cores(),
        n => n,
    };
    let mut session = session_config(config)
        .with_target_partitions(partitions)
        .upgrade_for_ballista()
        .with_ballista_logical_extension_codec(Arc::new(LendfusionLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(LendfusionPhysicalCodec::default()))
        .set_bool(
            ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED,
            config.cluster.adaptive_planning,
        )
        .set_str(
            ballista_core::config::BALLISTA_SHUFFLE_COMPRESSION_CODEC,
            config.cluster.shuffle_compression.ballista_codec(),
        );
    // Workers sort under a bounded memory pool: DataFusion's spilling merge, not the embedded
    // in-place sort (crate::session::SORT_IN_PLACE_BYTES).
    session
        .options_mut()
        .execution
        .sort_in_place_threshold_bytes = DATAFUSION_SORT_IN_PLACE_BYTES;
    session
}

/// DataFusion's own `sort_in_place_threshold_bytes`.
const DATAFUSION_SORT_IN_PLACE_BYTES: usize = 1024 * 1024;

/// The coordinator's session builder. The catalog (tables under the dataset root, views) is
/// resolved once, here; every query's session shares it and takes its settings from the
/// config the client sent.
pub async fn scheduler_session_builder(config: &LendfusionConfig) -> Result<SessionBuilderFn> {
    let template = session_context_with(config, cluster_session_config(config))
        .await?
        .state();
    let rules = ballista_core::optimizer::with_ballista_optimizer_rules(template.optimizers());
    Ok(Arc::new(move |session_config: SessionConfig| {
        // The catalog exists already; creating a default one would replace it (for every
        // session, since they share the catalog list).
        let session_config = session_config.with_create_default_catalog_and_schema(false);
        Ok(SessionStateBuilder::new_from_existing(template.clone())
            .with_config(session_config)
            .with_optimizer_rules(rules.clone())
            .build())
    }))
}

/// Every function a worker may meet in a task: DataFusion's (nested ones included) and ours,
/// taken from the recipe so that a function known to the coordinator is known to the workers.
pub async fn worker_function_registry(
    config: &LendfusionConfig,
) -> Result<BallistaFunctionRegistry> {
    let functions_only = LendfusionConfig {
        data: None,
        ..config.clone()
    };
    let state = session_context_with(&functions_only, cluster_session_config(config))
        .await?
        .state();
    Ok(BallistaFunctionRegistry::from(&state))
}

/// The runtime a worker runs tasks with: our object stores (one caching registry for all
/// tasks) and its spill folder. Ballista adds the memory pool per task.
#[derive(Debug, Clone)]
pub struct WorkerRuntime {
    stores: Arc<LendfusionObjectStores>,
    spill_dir: Option<PathBuf>,
}

impl WorkerRuntime {
    /// The runtime for `config`, spilling below `spill_dir` (DataFusion's default otherwise).
    pub fn new(config: &LendfusionConfig, spill_dir: Option<PathBuf>) -> Self {
        Self {
            stores: Arc::new(LendfusionObjectStores::new(config.s3.clone())),
            spill_dir,
        }
    }

    /// A runtime environment for one task.
    pub fn build(&self) -> DfResult<Arc<RuntimeEnv>> {
        let mut builder = RuntimeEnvBuilder::new().with_object_store_registry(self.stores.clone());
        if let Some(dir) = &self.spill_dir {
            builder = builder.with_temp_file_path(dir.clone());
        }
        builder.build_arc()
    }
}

/// A client session whose queries are planned here and run on the cluster whose scheduler is
/// at `scheduler_url` (`http://host:port`). The client resolves the catalog itself, so it needs
/// the dataset root (`config.data`) and access to it.
pub async fn cluster_client_context(
    config: &LendfusionConfig,
    scheduler_url: &str,
) -> Result<SessionContext> {
    let local = session_context_with(config, cluster_session_config(config)).await?;
    // Rebuilding from the existing state marks the catalog as created, so that the upgrade
    // keeps our tables instead of registering an empty default catalog over them.
    let mut state = SessionStateBuilder::new_from_existing(local.state())
        .build()
        .upgrade_for_ballista(scheduler_url.to_string())
        .map_err(LendfusionError::from)?;
    // Upgrading replaces the function lists with Ballista's defaults: register ours again.
    lendfusion_udfs::register_all(&mut state)?;
    Ok(SessionContext::new_with_state(state))
}

/// Whether the coordinator at `scheduler_url` reports ready (`/readyz`: at least
/// `cluster.min_workers` live workers). Unreachable counts as not ready.
pub async fn coordinator_ready(scheduler_url: &str) -> bool {
    crate::ops::http::get_status(scheduler_url, "/readyz").await == Some(200)
}

/// Wait until the coordinator has live workers, or fail after `timeout` with an error that
/// says so — a query sent to a cluster without workers would otherwise wait for one forever.
pub async fn wait_until_ready(scheduler_url: &str, timeout: std::time::Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if coordinator_ready(scheduler_url).await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(LendfusionError::Cluster(format!(
                "the coordinator at {scheduler_url} has no live workers (or is unreachable) after \
                 {}s: start workers with `lendfusion worker --coordinator HOST:PORT`",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// On a cluster client, an error that means the connection to the coordinator broke (it
/// stopped or restarted: its jobs are kept in memory only, so a query in flight is lost),
/// rephrased to say so. Failures of a job on the cluster ("Job ... failed") are left as they
/// are: they come from the coordinator, which is still there.
pub fn coordinator_connection_lost(
    ctx: &SessionContext,
    err: &datafusion::error::DataFusionError,
) -> Option<datafusion::error::DataFusionError> {
    let on_cluster = ctx
        .state()
        .config()
        .options()
        .extensions
        .get::<ballista_core::config::BallistaConfig>()
        .is_some();
    let text = err.to_string();
    let lower = text.to_ascii_lowercase();
    let broken = [
        "h2 protocol error",
        "tcp connect error",
        "transport error",
        "broken pipe",
        "brokenpipe",
        "connection refused",
        "connection reset",
    ]
    .iter()
    .any(|p| lower.contains(p));
    (on_cluster && broken && !text.contains("Job ")).then(|| {
        LendfusionError::Cluster(format!(
            "lost the connection to the coordinator (it stopped or restarted; a query in flight \
             is lost with it — run it again once the coordinator is back): {text}"
        ))
        .into()
    })
}

/// `host:port`, `http://host:port` or `grpc://host:port` as the URL Ballista's client takes.
pub fn scheduler_url(address: &str) -> Result<String> {
    let (host, port) = coordinator_address(address)?;
    Ok(format!("http://{host}:{port}"))
}

/// The host and port of a coordinator address (`host:port`, `http://` or `grpc://` prefixed).
pub fn coordinator_address(address: &str) -> Result<(String, u16)> {
    let trimmed = address.trim();
    let rest = trimmed
        .strip_prefix("grpc://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed);
    let (host, port) = rest.trim_end_matches('/').rsplit_once(':').ok_or_else(|| {
        LendfusionError::Config(format!(
            "coordinator address {address:?} needs a port, e.g. 127.0.0.1:50051"
        ))
    })?;
    let port: u16 = port.parse().map_err(|_| {
        LendfusionError::Config(format!(
            "coordinator address {address:?}: bad port {port:?}"
        ))
    })?;
    if host.is_empty() {
        return Err(LendfusionError::Config(format!(
            "coordinator address {address:?} has no host"
        )));
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_urls() {
        assert_eq!(
            scheduler_url("grpc://10.0.0.1:50051").expect("url"),
            "http://10.0.0.1:50051"
        );
        assert_eq!(
            scheduler_url("localhost:7").expect("url"),
            "http://localhost:7"
        );
        assert!(scheduler_url("localhost").is_err());
        assert!(scheduler_url("http://:5").is_err());
        assert!(scheduler_url("host:notaport").is_err());
    }

    /// Embedded sorts run in place and by packed keys (unbounded pool) and merges of
    /// partitions split by the sort's first key go run by run; the cluster's keep DataFusion's
    /// spilling sort and merge (its planner cuts a stage at the merge).
    #[tokio::test]
    async fn sorts_in_place_and_by_keys_only_embedded() {
        let config = LendfusionConfig::default();
        let sort_plan = |session: SessionConfig| {
            let config = config.clone();
            async move {
                let ctx = crate::session::session_context_with(&config, session)
                    .await
                    .expect("session");
                let plan = ctx
                    .sql(
                        "SELECT value % 7 AS x, value AS y, count(*) OVER (PARTITION BY value % 7) \
                         AS n FROM range(100000) ORDER BY x, y",
                    )
                    .await
                    .expect("sql")
                    .create_physical_plan()
                    .await
                    .expect("plan");
                datafusion::physical_plan::displayable(plan.as_ref())
                    .indent(false)
                    .to_string()
            }
        };
        let embedded = sort_plan(session_config(&config)).await;
        assert!(embedded.contains("KeySortExec"), "{embedded}");
        assert!(embedded.contains("RunMergeExec"), "{embedded}");
        let cluster = sort_plan(cluster_session_config(&config)).await;
        assert!(
            cluster.contains("SortExec") && !cluster.contains("KeySortExec"),
            "{cluster}"
        );
        assert!(
            cluster.contains("SortPreservingMergeExec") && !cluster.contains("RunMergeExec"),
            "{cluster}"
        );
        let sort_in_place = |c: &SessionConfig| c.options().execution.sort_in_place_threshold_bytes;
        assert_eq!(
            sort_in_place(&session_config(&config)),
            crate::session::SORT_IN_PLACE_BYTES
        );
        assert_eq!(
            sort_in_place(&cluster_session_config(&config)),
            DATAFUSION_SORT_IN_PLACE_BYTES
        );
        assert_eq!(
            sort_in_place(&SessionConfig::new()),
            DATAFUSION_SORT_IN_PLACE_BYTES
        );
    }

    #[tokio::test]
    async fn every_role_resolves_every_lendfusion_function() {
        let config = LendfusionConfig::default();
        let registry = worker_function_registry(&config).await.expect("registry");
        for f in lendfusion_udfs::scalar_functions() {
            assert!(
                registry.scalar_functions.contains_key(f.name()),
                "{}",
                f.name()
            );
        }
        for f in lendfusion_udfs::window_functions() {
            assert!(
                registry.window_functions.contains_key(f.name()),
                "{}",
                f.name()
            );
        }
        for f in lendfusion_udfs::aggregate_functions() {
            assert!(
                registry.aggregate_functions.contains_key(f.name()),
                "{}",
                f.name()
            );
        }
        assert!(registry.scalar_functions.contains_key("make_array"));

        let builder = scheduler_session_builder(&config).await.expect("builder");
        let state = builder(cluster_session_config(&config)).expect("state");
        for f in lendfusion_udfs::window_functions() {
            assert!(
                state.window_functions().contains_key(f.name()),
                "{}",
                f.name()
            );
        }

        // A client of a cluster keeps our functions after Ballista's upgrade.
        let client = cluster_client_context(&config, "http://127.0.0.1:1")
            .await
            .expect("client");
        let state = client.state();
        for f in lendfusion_udfs::aggregate_functions() {
            assert!(
                state.aggregate_functions().contains_key(f.name()),
                "{}",
                f.name()
            );
        }
        assert!(
            state
                .config()
                .options()
                .extensions
                .get::<crate::session::LendfusionOptions>()
                .is_some()
        );
    }
}
