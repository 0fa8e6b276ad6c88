//! The coordinator's front door: Arrow Flight SQL and lendfusion's Flight commands on the
//! client port, with authentication, optional TLS and a read-only SQL surface.
//!
//! Clients talk to this port. Queries run on the cluster through the scheduler in this
//! process; results stream from the workers through here by default, so the workers' data
//! ports and the scheduler port can stay on the cluster's private network. With
//! `server.result_endpoints = "workers"` a result's endpoints point at the workers instead,
//! with tickets signed here (one hop for the bytes; the workers must be reachable).

mod auth;
mod commands;
mod gate;
mod jobs;
mod metadata;
mod results;
mod service;
mod statements;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use lendfusion_core::cluster::cluster_session_config;
use lendfusion_core::ops::metrics::metrics;
use lendfusion_core::results::ticket::TicketKey;
use lendfusion_core::{LendfusionConfig, LendfusionError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub use auth::{Authenticator, hash_password};

use crate::Scheduler;

/// Largest message a client may send (parameters, commands).
const MAX_REQUEST_SIZE: usize = 16 * 1024 * 1024;

/// Session id of the front door's queries on the scheduler.
const SESSION_ID: &str = "lendfusion-front-door";

/// A running client port.
#[derive(Debug)]
pub struct FrontDoor {
    address: SocketAddr,
    tls: bool,
    door: Arc<service::FrontDoorService>,
    service: JoinHandle<()>,
    watcher: JoinHandle<()>,
}

impl FrontDoor {
    /// Serve Flight SQL on `listener` for the cluster of `scheduler`.
    pub(crate) async fn start(
        config: &LendfusionConfig,
        scheduler: Scheduler,
        listener: tokio::net::TcpListener,
    ) -> Result<Self, LendfusionError> {
        config.server.validate()?;
        let tickets = TicketKey::for_coordinator(config)?;
        let address = listener
            .local_addr()
            .map_err(|e| LendfusionError::Cluster(format!("client port address: {e}")))?;
        let auth = if config.auth.disabled {
            tracing::warn!(
                %address,
                "authentication is OFF (--no-auth): anyone who can reach the client port can query"
            );
            Authenticator::disabled()
        } else {
            Authenticator::from_settings(&config.auth)?
        };
        let auth = Arc::new(auth);
        let ctx = scheduler
            .state
            .session_manager
            .create_or_update_session(SESSION_ID, &cluster_session_config(config))
            .await
            .map_err(|e| LendfusionError::Cluster(format!("front door session: {e}")))?;
        let (losses_tx, losses) = watch::channel(0u64);
        let watcher = tokio::spawn(watch_worker_losses(scheduler.clone(), losses_tx));
        let runner = jobs::JobRunner::new(scheduler.clone(), config.server.clone(), losses);
        let service = service::FrontDoorService::new(
            ctx,
            scheduler,
            runner,
            auth.clone(),
            config.server.allow_writes,
            tickets,
        )
        .map_err(|e| LendfusionError::Cluster(e.message().to_string()))?;
        let door = Arc::new(service);
        let gate = gate::Gate::new(door.clone(), auth);
        let mut builder = Server::builder();
        let tls = match config.server.tls_files()? {
            Some((cert, key)) => {
                let read = |path: &str| {
                    std::fs::read(path).map_err(|e| {
                        LendfusionError::Config(format!("cannot read TLS file {path}: {e}"))
                    })
                };
                let identity = Identity::from_pem(read(cert)?, read(key)?);
                builder = builder
                    .tls_config(ServerTlsConfig::new().identity(identity))
                    .map_err(|e| LendfusionError::Config(format!("TLS: {e}")))?;
                true
            }
            None => false,
        };
        let router = builder.add_service(
            FlightServiceServer::new(gate)
                .max_decoding_message_size(MAX_REQUEST_SIZE)
                .max_encoding_message_size(usize::MAX),
        );
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let service = tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming(incoming).await {
                tracing::error!(error = %e, "client port stopped");
            }
        });
        tracing::info!(%address, tls, "Flight SQL listening");
        Ok(Self {
            address,
            tls,
            door,
            service,
            watcher,
        })
    }

    /// The client port's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Work a shutdown waits for: queries running, finished results no client has started to
    /// fetch, and result streams open.
    pub fn busy(&self) -> usize {
        let streams = usize::try_from(metrics().result_streams.get()).unwrap_or(0);
        self.door.pending() + streams
    }

    /// Whether the port speaks TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        self.service.abort();
        self.watcher.abort();
    }
}

/// Tick `losses` whenever a registered worker disappears.
async fn watch_worker_losses(scheduler: Scheduler, losses: watch::Sender<u64>) {
    let mut known: HashSet<String> = HashSet::new();
    loop {
        let now: HashSet<String> =
            match scheduler.state.executor_manager.get_executors_state().await {
                Ok(state) => state.into_iter().map(|(meta, _, _)| meta.id).collect(),
                Err(_) => known.clone(),
            };
        let lost = known.difference(&now).count();
        if lost > 0 {
            tracing::warn!(lost, "workers lost; watching running queries for stalls");
            losses.send_modify(|n| *n += 1);
        }
        known = now;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
