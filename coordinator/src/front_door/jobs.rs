//! Running a client query on the cluster and streaming its result back.
//!
//! The front door plans the query physically (so the schema it promises the client is the one
//! the result files carry), submits it to the scheduler in this process and follows the job's
//! status stream. Three things end a job early:
//! - the query time limit (`server.query_timeout_seconds`) → cancelled, `DEADLINE_EXCEEDED`;
//! - a worker loss followed by no result within `server.stall_timeout_seconds`: Ballista 55
//!   can drop a task status for a stage the loss rolled back and then wait forever, so the job
//!   is cancelled and submitted again (queries only read, so this is safe), at most
//!   `server.stall_retries` times, then `UNAVAILABLE`;
//! - the client going away → the job is cancelled.
//!
//! The result stays on the workers as the final stage's files; `DoGet` streams them partition
//! by partition through this process without holding more than a few batches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use ballista_core::serde::protobuf::{PartitionLocation, SuccessfulJob, job_status};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use lendfusion_core::ServerSettings;
use lendfusion_core::ops::lifecycle::is_draining;
use lendfusion_core::ops::metrics::{hold, metrics};
use tokio::sync::watch;
use tonic::Status;

use super::auth::Principal;
use super::statements::job_failure_status;
use crate::Scheduler;

/// A finished query: its result waits on the workers (or, for a statement the coordinator ran
/// itself, here).
#[derive(Debug, Clone)]
pub struct FinishedQuery {
    /// Schema of the result (the final stage's).
    pub schema: SchemaRef,
    /// The result files, in output order.
    pub partitions: Vec<PartitionLocation>,
    /// A small result computed on the coordinator (statements run with `--allow-writes`).
    pub local: Option<Vec<arrow::record_batch::RecordBatch>>,
    owner: Principal,
    expires: Instant,
    fetched: bool,
}

/// Submits queries, watches them, and keeps finished results for `DoGet`.
pub struct JobRunner {
    scheduler: Scheduler,
    settings: ServerSettings,
    worker_losses: watch::Receiver<u64>,
    results: Mutex<HashMap<String, FinishedQuery>>,
    in_flight: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner").finish_non_exhaustive()
    }
}

/// Counts a query in flight until dropped.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Cancels the job when dropped before it finished (client gone, time limit, stall).
struct RunningJob {
    scheduler: Scheduler,
    job_id: Option<String>,
}

impl RunningJob {
    fn finished(&mut self) {
        self.job_id = None;
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        if let Some(job_id) = self.job_id.take() {
            let scheduler = self.scheduler.clone();
            tokio::spawn(async move {
                tracing::info!(query_id = %job_id, "cancelling query");
                if let Err(e) = scheduler.cancel_job(job_id.clone().into()).await {
                    tracing::warn!(query_id = %job_id, error = %e, "could not cancel query");
                }
            });
        }
    }
}

enum Outcome {
    Done(Vec<PartitionLocation>),
    Stalled,
}

impl JobRunner {
    /// A runner on `scheduler`; `worker_losses` ticks whenever a worker is lost.
    pub fn new(
        scheduler: Scheduler,
        settings: ServerSettings,
        worker_losses: watch::Receiver<u64>,
    ) -> Self {
        Self {
            scheduler,
            settings,
            worker_losses,
            results: Mutex::new(HashMap::new()),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Work a shutdown waits for: queries running, and finished results nobody has started
    /// to fetch yet (and that have not expired).
    pub fn pending(&self) -> usize {
        let running = self.in_flight.load(std::sync::atomic::Ordering::SeqCst);
        let results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        running
            + results
                .values()
                .filter(|r| !r.fetched && r.expires > now)
                .count()
    }

    /// Run `plan` to completion on the cluster and keep its result under a new handle.
    /// Counted in the query metrics; refused while the coordinator drains.
    pub async fn run(
        &self,
        ctx: &Arc<SessionContext>,
        plan: Arc<dyn ExecutionPlan>,
        name: &str,
        owner: Principal,
    ) -> Result<String, Status> {
        if is_draining() {
            return Err(Status::unavailable(
                "the coordinator is shutting down: send the query again once it (or its \
                 replacement) is back",
            ));
        }
        let m = metrics();
        m.queries_started.inc();
        let running = hold(&m.queries_running);
        let started = Instant::now();
        let outcome = self.run_until_done(ctx, plan, name, owner).await;
        drop(running);
        m.query_seconds.observe(started.elapsed().as_secs_f64());
        match &outcome {
            Ok(_) => m.queries_finished.inc(),
            Err(_) => m.queries_failed.inc(),
        };
        outcome
    }

    /// Attempts of the query until it is done, fails or has stalled too often.
    async fn run_until_done(
        &self,
        ctx: &Arc<SessionContext>,
        plan: Arc<dyn ExecutionPlan>,
        name: &str,
        owner: Principal,
    ) -> Result<String, Status> {
        use std::sync::atomic::Ordering;
        let deadline = Instant::now() + Duration::from_secs(self.settings.query_timeout_seconds);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _counted = InFlight(&self.in_flight);
        let mut attempt = 0;
        let partitions = loop {
            match self
                .attempt(ctx, plan.clone(), name, deadline, attempt > 0)
                .await?
            {
                Outcome::Done(partitions) => break partitions,
                Outcome::Stalled if attempt < self.settings.stall_retries => {
                    attempt += 1;
                    tracing::warn!(
                        query = name,
                        attempt,
                        "query stalled after a worker loss; running it again"
                    );
                    // Ballista 55 does not give back the task slots of tasks it cancelled when
                    // it rolled a stage back, so a worker can look busy forever. With no other
                    // query running, every slot is free: re-register the workers with theirs.
                    if self.in_flight.load(Ordering::SeqCst) == 1 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        self.reset_worker_slots().await;
                    }
                }
                Outcome::Stalled => {
                    return Err(Status::unavailable(format!(
                        "the query made no progress for {} s after a worker was lost, {} times; \
                         it was cancelled — check the workers and send it again",
                        self.settings.stall_timeout_seconds,
                        attempt + 1
                    )));
                }
            }
        };
        self.keep(plan.schema(), partitions, None, owner)
    }

    /// Keep the result of a statement the coordinator ran itself.
    pub fn keep_local(
        &self,
        schema: SchemaRef,
        batches: Vec<arrow::record_batch::RecordBatch>,
        owner: Principal,
    ) -> Result<String, Status> {
        self.keep(schema, vec![], Some(batches), owner)
    }

    fn keep(
        &self,
        schema: SchemaRef,
        partitions: Vec<PartitionLocation>,
        local: Option<Vec<arrow::record_batch::RecordBatch>>,
        owner: Principal,
    ) -> Result<String, Status> {
        let handle = new_handle()?;
        let finished = FinishedQuery {
            schema,
            partitions,
            local,
            owner,
            expires: Instant::now() + Duration::from_secs(self.settings.result_ttl_seconds),
            fetched: false,
        };
        let mut results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        results.retain(|_, r| r.expires > now);
        results.insert(handle.clone(), finished);
        Ok(handle)
    }

    /// Re-register every live worker with all its task slots free (only while no query runs).
    async fn reset_worker_slots(&self) {
        use ballista_core::serde::scheduler::ExecutorData;
        let manager = &self.scheduler.state.executor_manager;
        let Ok(workers) = manager.get_executors_state().await else {
            return;
        };
        let mut reset = vec![];
        for (metadata, _, _) in workers {
            let id = metadata.id.clone();
            let vcores = metadata.specification.vcores;
            let data = ExecutorData {
                executor_id: id.clone(),
                total_vcores: vcores,
                available_vcores: vcores,
            };
            let removed = manager
                .remove_executor(&id, Some("reset task slots after a stalled query".into()))
                .await;
            match removed {
                Ok(()) => match manager.register_executor(metadata, data).await {
                    Ok(()) => reset.push(id),
                    Err(e) => tracing::warn!(worker = %id, error = %e, "could not re-register"),
                },
                Err(e) => tracing::warn!(worker = %id, error = %e, "could not reset"),
            }
        }
        tracing::warn!(workers = reset.len(), "reset the task slots of the workers");
        // Scheduling uses workers with a heartbeat: wait for the next ones.
        let wait = Instant::now() + Duration::from_secs(self.settings.stall_timeout_seconds);
        while Instant::now() < wait
            && !reset
                .iter()
                .all(|id| manager.get_executor_hearbeat(id).is_some())
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn attempt(
        &self,
        ctx: &Arc<SessionContext>,
        plan: Arc<dyn ExecutionPlan>,
        name: &str,
        deadline: Instant,
        suspect: bool,
    ) -> Result<Outcome, Status> {
        let (subscriber, mut statuses) = tokio::sync::mpsc::channel(16);
        let mut losses = self.worker_losses.clone();
        losses.mark_unchanged();
        let job_id = self
            .scheduler
            .submit_physical_plan(name, ctx.clone(), plan, Some(subscriber))
            .await
            .map_err(|e| Status::unavailable(format!("cannot submit the query: {e}")))?;
        // The query id is the job id: the workers log it with each task of the query.
        let started = Instant::now();
        tracing::info!(query_id = %job_id, query = name, rerun = suspect, "query submitted");
        let mut job = RunningJob {
            scheduler: self.scheduler.clone(),
            job_id: Some(job_id.to_string()),
        };
        let stall_after = Duration::from_secs(self.settings.stall_timeout_seconds);
        // A query run again after a stall is watched from the start.
        let mut stall_deadline: Option<Instant> = suspect.then(|| Instant::now() + stall_after);
        let far = deadline + Duration::from_secs(3600);
        loop {
            tokio::select! {
                status = statuses.recv() => match status.and_then(|s| s.status) {
                    Some(job_status::Status::Successful(SuccessfulJob { partition_location, .. })) => {
                        job.finished();
                        tracing::info!(
                            query_id = %job_id,
                            seconds = format!("{:.3}", started.elapsed().as_secs_f64()),
                            partitions = partition_location.len(),
                            "query finished"
                        );
                        return Ok(Outcome::Done(partition_location));
                    }
                    Some(job_status::Status::Failed(failed)) => {
                        job.finished();
                        tracing::warn!(query_id = %job_id, error = %failed.error, "query failed");
                        return Err(job_failure_status(ctx, &failed.error).await);
                    }
                    Some(_) => {}
                    None => {
                        job.finished();
                        return Err(Status::internal(format!(
                            "query {job_id} ended without a final status"
                        )));
                    }
                },
                changed = losses.changed() => {
                    if changed.is_ok() && stall_deadline.is_none() {
                        stall_deadline = Some(Instant::now() + stall_after);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    tracing::warn!(query_id = %job_id, "query timed out");
                    return Err(Status::deadline_exceeded(format!(
                        "the query ran longer than the limit of {} s and was cancelled",
                        self.settings.query_timeout_seconds
                    )));
                }
                _ = tokio::time::sleep_until(stall_deadline.unwrap_or(far).into()) => {
                    tracing::warn!(query_id = %job_id, "query stalled after a worker loss");
                    return Ok(Outcome::Stalled);
                }
            }
        }
    }

    /// How long a finished result stays available.
    pub fn result_ttl_seconds(&self) -> u64 {
        self.settings.result_ttl_seconds
    }

    /// The finished query under `handle`, if `who` may read it and it has not expired.
    pub fn result(&self, handle: &str, who: &Principal) -> Result<FinishedQuery, Status> {
        let mut results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        match results.get_mut(handle) {
            Some(r) if r.expires > Instant::now() && (&r.owner == who) => {
                r.fetched = true;
                Ok(r.clone())
            }
            _ => Err(Status::not_found(
                "no such result: the ticket is unknown, expired or belongs to another client; \
                 run the query again",
            )),
        }
    }
}

/// A random handle for a result or prepared statement.
pub fn new_handle() -> Result<String, Status> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Status::internal(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
