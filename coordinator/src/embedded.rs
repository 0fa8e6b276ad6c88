//! A coordinator and N workers inside one process, talking over loopback exactly as separate
//! processes do: the default for `lendfusion demo` and the cluster tests.

use std::time::Duration;

use datafusion::execution::context::SessionContext;
use lendfusion_core::cluster::cluster_client_context;
use lendfusion_core::{LendfusionConfig, LendfusionError};
use lendfusion_worker::Worker;
use tokio::task::JoinHandle;

use crate::Coordinator;

/// How long an embedded cluster waits for its workers to register.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);

/// A coordinator and its workers in this process.
#[derive(Debug)]
pub struct EmbeddedCluster {
    coordinator: Coordinator,
    workers: Vec<JoinHandle<()>>,
    config: LendfusionConfig,
}

impl EmbeddedCluster {
    /// Start a coordinator on a free loopback port and `workers` workers registered with it.
    pub async fn start(config: &LendfusionConfig, workers: usize) -> Result<Self, LendfusionError> {
        let mut config = config.clone();
        config.cluster.bind_host = "127.0.0.1".into();
        config.cluster.external_host = None;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| LendfusionError::Cluster(format!("cannot listen on loopback: {e}")))?;
        let coordinator = Coordinator::start(&config, listener).await?;
        let address = coordinator.address().to_string();
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let worker = Worker::new(&config, &address).await?;
            handles.push(tokio::spawn(async move {
                if let Err(e) = worker.run().await {
                    tracing::error!(error = %e, "embedded worker stopped");
                }
            }));
        }
        coordinator
            .wait_for_workers(workers, REGISTRATION_TIMEOUT)
            .await?;
        Ok(Self {
            coordinator,
            workers: handles,
            config,
        })
    }

    /// The coordinator.
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// Serve clients (Flight SQL) on `listener` with the auth, TLS and limits of `config`.
    pub async fn open_client_port(
        &mut self,
        config: &LendfusionConfig,
        listener: tokio::net::TcpListener,
    ) -> Result<std::net::SocketAddr, LendfusionError> {
        self.coordinator.open_client_port(config, listener).await
    }

    /// A client session whose queries run on this cluster.
    pub async fn client(&self) -> Result<SessionContext, LendfusionError> {
        cluster_client_context(&self.config, &self.coordinator.url()).await
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        for handle in &self.workers {
            handle.abort();
        }
    }
}
