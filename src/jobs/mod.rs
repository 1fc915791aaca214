//! The jobs engine: one `jobs` table, one lifecycle, for every long-running task.
//!
//! - [`queue`] owns every state change of a job row: enqueue (inside the caller's
//!   transaction), claim, fenced progress/completion/failure, cancellation, retry, the reaper
//!   that recovers expired leases, and the retention clean-up.
//! - [`events`] tells everyone about committed changes: `{job_id, owner_id, seq}` hints on an
//!   in-process broadcast, fed by PostgreSQL `LISTEN/NOTIFY` when several processes share one
//!   database.
//! - [`worker`] claims jobs and runs their handlers, heartbeating their leases.
//! - [`handlers`] maps a job `type` to the code that runs it.
//! - [`graphql`] is the API: `job`, `jobs`, `cancelJob`, `retryJob`, `jobUpdated`, `jobsUpdated`.
//!
//! Execution is at-least-once (a crashed worker's job runs again once its lease expires);
//! completion is exactly-once, because every write after the claim is fenced by
//! `id + lease_token + status = RUNNING`.

pub mod events;
pub mod graphql;
pub mod handlers;
pub mod lifecycle;
pub mod queue;
pub mod webhooks;
pub mod work_folders;
pub mod worker;

use chrono::{DateTime, Utc};
use entity::{JobKind, JobStatus};
use uuid::Uuid;

pub use events::{EventBus, JobEvent};
pub use queue::Lease;

/// A job to enqueue.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewJob {
    /// Chosen up front (UUIDv7) so that rows written with the job can refer to it.
    pub id: Uuid,
    pub kind: JobKind,
    /// Which handler runs it, e.g. `render.movie`.
    pub job_type: String,
    pub owner_id: Uuid,
    pub creator_id: Option<Uuid>,
    /// 0 = low, 1 = normal, 2 = high.
    pub priority: i32,
    pub parent_id: Option<Uuid>,
    pub input: serde_json::Value,
    pub max_attempts: i32,
    /// Same key from the same owner returns the same unfinished job.
    pub idempotency_key: Option<String>,
    /// Not before this instant (default: now).
    pub run_at: Option<DateTime<Utc>>,
    /// Set by the engine on a child: its parent's attempt.
    #[serde(default)]
    pub parent_attempt: Option<i32>,
}

/// How many attempts a job gets: at enqueue, and again at each `retryJob` (but see
/// [`attempts_of`]).
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;

/// How many attempts a job of `job_type` is enqueued with, so `retryJob` gives it as many
/// again.
pub fn attempts_of(job_type: &str) -> i32 {
    match job_type {
        webhooks::JOB_TYPE => webhooks::MAX_ATTEMPTS,
        _ => DEFAULT_MAX_ATTEMPTS,
    }
}

impl NewJob {
    pub fn new(
        kind: JobKind,
        job_type: impl Into<String>,
        owner_id: Uuid,
        input: serde_json::Value,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            job_type: job_type.into(),
            owner_id,
            creator_id: None,
            priority: entity::job::PRIORITY_NORMAL,
            parent_id: None,
            input,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            idempotency_key: None,
            run_at: None,
            parent_attempt: None,
        }
    }
}

/// Statuses after which a job never changes again (unless retried).
pub fn is_terminal(status: JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled
    )
}

/// Settings of the engine, from the configuration.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// How long a claim lasts without a heartbeat.
    pub lease: std::time::Duration,
    /// How often a running job heartbeats and checks for cancellation.
    pub heartbeat: std::time::Duration,
    /// How often idle workers look for work when no wake-up hint arrives.
    pub poll: std::time::Duration,
    /// Finished jobs older than this are deleted.
    pub retention: chrono::Duration,
    /// Scene-cache entries unused for this long are removed (`None`: kept for good).
    pub scene_cache: Option<chrono::Duration>,
    /// How long an uploaded picture no render names stays (`None`: for good).
    pub assets: Option<chrono::Duration>,
    /// On shutdown, how long running jobs may take to finish before they are released.
    pub shutdown_grace: std::time::Duration,
    /// How often videos past their `retentionUntil` are deleted.
    pub retention_sweep: std::time::Duration,
}
