//! The worker pool: claims jobs up to its free slots, runs their handlers, heartbeats their
//! leases, and recovers the jobs of workers that died (the reaper runs in every pool).
//!
//! Wake-ups come from job events (`wake` hints after an enqueue, via NOTIFY with PostgreSQL)
//! with a slow poll as the fallback. On shutdown the pool stops claiming, gives running jobs
//! the grace period to finish, then releases the rest back to the queue.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use entity::job;
use sea_orm::DatabaseConnection;
use tokio::{sync::Notify, task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    metrics::{Live, Metrics},
    storage::Storage,
};

use super::{
    EventBus, JobSettings,
    events::BusMessage,
    handlers::{FailureKind, JobContext, Registry},
    lifecycle::{self, Finish},
    queue::{self, Lease},
};

const REAP_EVERY: Duration = Duration::from_secs(2);
/// How long a worker keeps trying to record a job's end when the database refuses it.
const FINISH_TRIES_FOR: Duration = Duration::from_secs(120);
const CLEAN_UP_EVERY: Duration = Duration::from_secs(3600);
/// A work folder of a job that is not running is removed once untouched this long (a job
/// that has just ended may still be removing its own).
const WORK_FOLDER_IDLE: Duration = Duration::from_secs(600);
/// A local object's work file untouched this long belongs to a write that stopped (an upload
/// still streaming touches its own all the time).
pub const INCOMING_IDLE: Duration = Duration::from_secs(3600);
/// Webhook deliveries a pool runs at once, besides its slots: each waits on a receiver (up to
/// its 10 s limit), not on this machine.
pub const DELIVERY_SLOTS: usize = 4;

/// A pool of `slots` concurrent jobs in this process, and [`DELIVERY_SLOTS`] webhook
/// deliveries.
#[derive(Clone)]
pub struct WorkerPool {
    pub(super) db: DatabaseConnection,
    pub(super) bus: EventBus,
    pub(super) storage: Storage,
    registry: Arc<Registry>,
    /// The registry's job types: the only ones this pool claims.
    known: Arc<[String]>,
    pub(super) settings: JobSettings,
    slots: usize,
    /// Names this process in the job timeline.
    id: String,
    pub(super) metrics: Arc<Metrics>,
}

/// Jobs running here, so their events (e.g. a cancel) can nudge their heartbeat at once.
type Running = Arc<Mutex<HashMap<Uuid, Arc<Notify>>>>;

impl WorkerPool {
    pub fn new(
        db: DatabaseConnection,
        bus: EventBus,
        storage: Storage,
        registry: Registry,
        settings: JobSettings,
        slots: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
        Self {
            db,
            bus,
            storage,
            known: registry.types().into(),
            registry: Arc::new(registry),
            settings,
            slots: slots.max(1),
            metrics,
            id: format!(
                "{host}:{}:{}",
                std::process::id(),
                &Uuid::now_v7().simple().to_string()[24..]
            ),
        }
    }

    /// Runs until `shutdown` is cancelled, then drains (see the module docs).
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.id, slots = self.slots, "worker pool started");
        let mut bus = self.bus.subscribe();
        let mut tasks: JoinSet<()> = JoinSet::new();
        // The tasks of `tasks` that run webhook deliveries.
        let mut deliveries: HashSet<tokio::task::Id> = HashSet::new();
        let running: Running = Arc::default();
        let release = CancellationToken::new();
        let mut last_reap: Option<Instant> = None;
        let mut last_clean_up: Option<Instant> = None;
        let mut upkeep: Option<tokio::task::JoinHandle<()>> = None;
        let mut last_expiry: Option<Instant> = None;
        let mut expiry: Option<tokio::task::JoinHandle<()>> = None;
        // Claims are made when there may be work: at start, when a slot frees up, on a wake-up
        // hint (an enqueue, a retry, a reaped lease), after a resync, and on the poll (jobs
        // whose `run_at` has come). Not on every event: progress events arrive several times
        // a second per running job, and every pool hears every event.
        let mut look = true;
        // With every work slot busy, deliveries are looked for on the poll only: a claim is a
        // write transaction (SQLite's one writer), and wake-ups come with every enqueue.
        let mut polled = true;
        let mut next_poll = Instant::now() + self.settings.poll;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Reaping and upkeep run however busy the pool is: a full pool still reaps the
            // jobs of a worker that died.
            if last_reap.is_none_or(|t| t.elapsed() >= REAP_EVERY) {
                last_reap = Some(Instant::now());
                // Raced against the shutdown, as the claim below: a database that does not
                // answer must not keep a stopping worker from releasing its jobs.
                let reaped = tokio::select! {
                    reaped = queue::reap_expired(&self.db) => reaped,
                    () = shutdown.cancelled() => break,
                };
                match reaped {
                    Ok(events) => self.bus.publish(&events).await,
                    Err(err) => tracing::warn!(error = ?err, "reaper failed"),
                }
            }
            // Upkeep runs beside the claims, never twice at once: hundreds of deletions must
            // not hold up claiming, reaping or noticing a shutdown.
            if last_clean_up.is_none_or(|t| t.elapsed() >= CLEAN_UP_EVERY)
                && upkeep
                    .as_ref()
                    .is_none_or(tokio::task::JoinHandle::is_finished)
            {
                last_clean_up = Some(Instant::now());
                let pool = self.clone();
                upkeep = Some(tokio::spawn(async move { pool.upkeep().await }));
            }
            // Videos past their retention go within `retention_sweep`, not at the next hourly
            // upkeep: until deleted, one is still served. Beside the claims too, never twice
            // at once.
            if last_expiry.is_none_or(|t| t.elapsed() >= self.settings.retention_sweep)
                && expiry
                    .as_ref()
                    .is_none_or(tokio::task::JoinHandle::is_finished)
            {
                last_expiry = Some(Instant::now());
                let pool = self.clone();
                expiry = Some(tokio::spawn(async move { pool.expire_videos().await }));
            }
            let work = self.slots.saturating_sub(tasks.len() - deliveries.len()) as u64;
            let free = queue::Slots {
                work,
                deliveries: if work > 0 || polled {
                    DELIVERY_SLOTS.saturating_sub(deliveries.len()) as u64
                } else {
                    0
                },
            };
            if (free.work > 0 || free.deliveries > 0) && look {
                look = false;
                polled = false;
                // Before the claim: each lease it takes runs from then by this clock.
                let claiming = tokio::time::Instant::now();
                let claimed = tokio::select! {
                    claimed = queue::claim_slots(&self.db, &self.id, free, self.settings.lease, Some(&self.known)) => claimed,
                    () = shutdown.cancelled() => break,
                };
                match claimed {
                    Ok(jobs) => {
                        let events: Vec<_> = jobs.iter().map(queue::event_of).collect();
                        self.bus.publish(&events).await;
                        for job in jobs {
                            let notify = Arc::new(Notify::new());
                            lock(&running).insert(job.id, notify.clone());
                            let pool = self.clone();
                            let running = running.clone();
                            let release = release.clone();
                            let delivery = job.job_type == super::webhooks::JOB_TYPE;
                            let task = tasks.spawn(async move {
                                let id = job.id;
                                pool.run_job(job, claiming, notify, release).await;
                                lock(&running).remove(&id);
                            });
                            if delivery {
                                deliveries.insert(task.id());
                            }
                        }
                    }
                    Err(err) => tracing::warn!(error = ?err, "claiming jobs failed"),
                }
            }
            let next_reap = last_reap.map_or_else(Instant::now, |t| t + REAP_EVERY);
            tokio::select! {
                () = shutdown.cancelled() => break,
                // A slot is free: there may be more work.
                Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match &ended {
                        Ok((id, ())) => *id,
                        Err(err) => err.id(),
                    };
                    deliveries.remove(&id);
                    look = true;
                }
                message = bus.recv() => match message {
                    Ok(BusMessage::Job(event)) => {
                        if let Some(notify) = lock(&running).get(&event.job_id) {
                            notify.notify_one();
                        }
                        look |= event.wake;
                    }
                    Ok(BusMessage::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        for notify in lock(&running).values() {
                            notify.notify_one();
                        }
                        look = true;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep(self.settings.poll).await;
                        look = true;
                    }
                },
                () = tokio::time::sleep_until(next_poll) => {
                    next_poll = Instant::now() + self.settings.poll;
                    look = true;
                    polled = true;
                }
                () = tokio::time::sleep_until(next_reap) => {}
            }
        }
        tracing::info!(worker = %self.id, running = tasks.len(), "worker pool stopping: no more claims");
        // Every upkeep step is safe to stop between statements; the next start runs it again.
        for task in [upkeep, expiry].into_iter().flatten() {
            task.abort();
        }
        let drained = tokio::time::timeout(self.settings.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::info!(worker = %self.id, "grace period over: releasing unfinished jobs to the queue");
            release.cancel();
            while tasks.join_next().await.is_some() {}
        }
        tracing::info!(worker = %self.id, "worker pool stopped");
    }

    /// Deletes the videos past their `retentionUntil` (any pool may, at once with others).
    async fn expire_videos(&self) {
        match crate::media::record::expire_videos(&self.db, &self.storage, &self.bus).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(videos = n, "deleted videos past their retention"),
            Err(err) => tracing::warn!(error = ?err, "retention sweep failed"),
        }
    }

    /// The hourly upkeep of the shared tables and storage (any pool may run it; each step is
    /// safe to run in several processes at once, and to stop halfway).
    async fn upkeep(&self) {
        match queue::clean_up(&self.db, &self.storage, self.settings.retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "deleted finished jobs past retention"),
            Err(err) => tracing::warn!(error = ?err, "job clean-up failed"),
        }
        use crate::media::record;
        match record::abandon_stale_uploads(&self.db, &self.storage, record::UPLOAD_GRACE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(videos = n, "failed uploads never completed"),
            Err(err) => tracing::warn!(error = ?err, "abandoned-upload sweep failed"),
        }
        match record::remove_failed_originals(
            &self.db,
            &self.storage,
            record::FAILED_ORIGINAL_GRACE,
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                videos = n,
                "removed the uploads of videos that failed a week ago"
            ),
            Err(err) => tracing::warn!(error = ?err, "failed-upload sweep failed"),
        }
        match record::remove_deleted_videos_files(
            &self.db,
            &self.storage,
            record::DELETED_FILES_GRACE,
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(videos = n, "removed what was left of deleted videos' files"),
            Err(err) => tracing::warn!(error = ?err, "deleted-video file sweep failed"),
        }
        match crate::auth::clean_up(&self.db, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "deleted ended sessions and used refresh tokens"),
            Err(err) => tracing::warn!(error = ?err, "session clean-up failed"),
        }
        match crate::storage::deferred::retry(&self.db, &self.storage).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed files whose delete had failed"),
            Err(err) => tracing::warn!(error = ?err, "sweep of files left to delete failed"),
        }
        match self.storage.sweep_incoming(INCOMING_IDLE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                files = n,
                "removed unfinished object writes a stopped process left"
            ),
            Err(err) => tracing::warn!(error = ?err, "object work-file sweep failed"),
        }
        match super::work_folders::sweep(&self.db, WORK_FOLDER_IDLE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(folders = n, "removed work folders a stopped process left"),
            Err(err) => tracing::warn!(error = ?err, "work-folder sweep failed"),
        }
        if let Some(unused_for) = self.settings.assets {
            match crate::render::sweep_assets(&self.db, &self.storage, unused_for).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    pictures = n,
                    "removed uploaded pictures no render used lately"
                ),
                Err(err) => tracing::warn!(error = ?err, "picture sweep failed"),
            }
        }
        if let Some(unused_for) = self.settings.scene_cache {
            match crate::render::prune_scene_cache(&self.db, &self.storage, unused_for).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    scenes = n,
                    "pruned scene-cache entries no render used lately"
                ),
                Err(err) => tracing::warn!(error = ?err, "scene-cache pruning failed"),
            }
        }
    }

    async fn run_job(
        &self,
        job: job::Model,
        claimed: tokio::time::Instant,
        nudge: Arc<Notify>,
        release: CancellationToken,
    ) {
        let Some(lease) = Lease::of(&job) else { return };
        let job_type = job.job_type.clone();
        let started = std::time::Instant::now();
        let _running = Live::new(&self.metrics.jobs_running_here);
        let Some(handler) = self.registry.get(&job_type) else {
            let error = format!("no handler is registered for job type `{job_type}`");
            // Not the job's own type: labels stay bounded whatever rows the table holds.
            self.metrics.observe_job("unregistered", "failed", started);
            self.finish(
                lease,
                Finish::Failed {
                    error,
                    retryable: false,
                },
                &release,
            )
            .await;
            return;
        };
        let cancel = CancellationToken::new();
        let ctx = JobContext::new(job, lease, self, cancel.clone());
        let heartbeat = self.heartbeat(lease, claimed, nudge, cancel.clone());
        // A handler that panics fails its job (not retried: it would panic again), instead of
        // ending this task with the job left to the reaper, which would run it again on every
        // attempt and fail it as a worker that stopped answering.
        let run =
            futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(handler.run(&ctx)));
        let how = tokio::select! {
            result = run => match result {
                Err(_) => {
                    tracing::error!(job_id = %lease.job_id, job_type = %job_type, "job handler panicked");
                    Finish::Failed {
                        error: "the job failed on the server".to_owned(),
                        retryable: false,
                    }
                }
                Ok(Ok(outcome)) => outcome.into(),
                Ok(Err(failure)) => match failure.kind {
                    FailureKind::Cancelled => Finish::Cancelled,
                    FailureKind::LeaseLost => {
                        self.metrics.observe_job(&job_type, "lease_lost", started);
                        return;
                    }
                    FailureKind::Error => {
                        tracing::warn!(
                            job_id = %lease.job_id,
                            job_type = %job_type,
                            error = %failure.message,
                            detail = failure.detail.as_deref().unwrap_or(""),
                            retryable = failure.retryable,
                            "job failed"
                        );
                        if failure.outage {
                            Finish::Unavailable {
                                error: super::handlers::for_clients(&failure.message),
                            }
                        } else {
                            Finish::Failed {
                                error: super::handlers::for_clients(&failure.message),
                                retryable: failure.retryable,
                            }
                        }
                    }
                },
            },
            beat = heartbeat => match beat {
                Beat::Cancelled => Finish::Cancelled,
                Beat::Lost => {
                    tracing::warn!(job_id = %lease.job_id, "lease lost; another worker owns the job now");
                    self.metrics.observe_job(&job_type, "lease_lost", started);
                    return;
                }
            },
            () = release.cancelled() => Finish::Released,
        };
        // The handler future is dropped here: its child processes (spawned with kill_on_drop)
        // die with it before the job is marked finished.
        drop(ctx);
        let outcome = match &how {
            Finish::Done { .. } => "done",
            Finish::Failed { .. } | Finish::Unavailable { .. } => "failed",
            Finish::Cancelled => "cancelled",
            Finish::Released => "released",
            Finish::Wait { .. } => "waiting",
        };
        self.metrics.observe_job(&job_type, outcome, started);
        self.finish(lease, how, &release).await;
    }

    /// Records how the job ended. A database error (a failover, a full pool, a busy SQLite)
    /// is retried with backoff while the lease is kept alive, for up to [`FINISH_TRIES_FOR`]:
    /// a finished render is not thrown away and run again (or failed, on its last attempt) by
    /// the reaper because one write failed. Not once the worker is stopping (`release`): the
    /// lease then runs out and the reaper has the job.
    async fn finish(&self, lease: Lease, how: Finish, release: &CancellationToken) {
        let until = tokio::time::Instant::now() + FINISH_TRIES_FOR;
        let mut wait = Duration::from_millis(100);
        loop {
            let finished =
                lifecycle::finish(&self.db, &self.bus, lease, how.clone(), Some(&self.id)).await;
            let err = match finished {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(job_id = %lease.job_id, "lease lost before the job could be finished");
                    return;
                }
                Err(err) => err,
            };
            if tokio::time::Instant::now() + wait > until || release.is_cancelled() {
                tracing::error!(
                    job_id = %lease.job_id,
                    error = ?err,
                    "could not finish job; once its lease runs out the reaper runs it again or fails it"
                );
                return;
            }
            tracing::warn!(job_id = %lease.job_id, error = ?err, "could not finish job; trying again");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = release.cancelled() => {}
            }
            wait = (wait * 2).min(self.settings.heartbeat);
            // The lease kept alive meanwhile; a lost one ends the tries (another worker, or
            // the reaper, has the job now).
            if let Ok(None) = queue::heartbeat(&self.db, lease, self.settings.lease).await {
                tracing::warn!(job_id = %lease.job_id, "lease lost before the job could be finished");
                return;
            }
        }
    }

    /// Extends the lease every heartbeat (or at once when nudged by an event), until the job
    /// is cancelled or the lease is lost. Never returns otherwise.
    ///
    /// A lease that heartbeats fail to extend (the database unreachable, a partition) is taken
    /// as lost once it has run out by this process's clock, counted from before the last
    /// extension that succeeded (the claim, at first): by then the reaper may have given the
    /// job to another worker, and this one must stop writing its files. A heartbeat that is
    /// only slow loses nothing: it says whether the lease is still ours when it succeeds. One
    /// still unanswered when the lease runs out counts as failed, and the lease as lost.
    async fn heartbeat(
        &self,
        lease: Lease,
        claimed: tokio::time::Instant,
        nudge: Arc<Notify>,
        cancel: CancellationToken,
    ) -> Beat {
        let mut held_until = claimed + self.settings.lease;
        // Whether the last heartbeat failed: the lease then runs out at `held_until`, unless
        // one succeeds before.
        let mut failing = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settings.heartbeat) => {}
                () = nudge.notified() => {}
                () = tokio::time::sleep_until(held_until), if failing => {
                    tracing::warn!(
                        job_id = %lease.job_id,
                        "the lease ran out while heartbeats failed; stopping the job"
                    );
                    return Beat::Lost;
                }
            }
            let asked = tokio::time::Instant::now();
            let beat = queue::heartbeat(&self.db, lease, self.settings.lease);
            // No later than the lease the reaper goes by: one waited for a whole lease from when it
            // was asked let a hung heartbeat run the job on past it, beside its next worker.
            let failure = match tokio::time::timeout_at(held_until, beat).await {
                Ok(Ok(Some(row))) if row.cancel_requested => {
                    cancel.cancel();
                    return Beat::Cancelled;
                }
                Ok(Ok(Some(_))) => {
                    held_until = asked + self.settings.lease;
                    failing = false;
                    continue;
                }
                Ok(Ok(None)) => return Beat::Lost,
                Ok(Err(err)) => format!("{err:?}"),
                Err(_) => "it was not answered before the lease ran out".to_owned(),
            };
            if tokio::time::Instant::now() >= held_until {
                tracing::warn!(
                    job_id = %lease.job_id,
                    error = %failure,
                    "the lease ran out while heartbeats failed; stopping the job"
                );
                return Beat::Lost;
            }
            failing = true;
            tracing::warn!(job_id = %lease.job_id, error = %failure, "heartbeat failed; retrying");
        }
    }
}

enum Beat {
    Cancelled,
    Lost,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
