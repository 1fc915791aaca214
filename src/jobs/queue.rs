//! Every state change of a job row before it ends: enqueue, claim, heartbeat, progress, the
//! reaper of expired leases, and the retention clean-up. How a job ends, and what that does
//! to its parent, lives in [`super::lifecycle`].
//!
//! All writes after the claim are fenced: `WHERE id = $job AND lease_token = $token AND
//! status = 'RUNNING'`. A worker whose lease was taken over matches no row and changes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{JobStatus, job, job_transition};
use rand::Rng;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
    Set, SqliteTransactionMode, Statement, TransactionOptions, TransactionSession,
    TransactionTrait,
    sea_query::{Expr, ExprTrait, Query},
};
use uuid::Uuid;

use super::{JobEvent, NewJob};
use crate::{
    db::RowLock,
    error::{AppError, AppResult, unique_violation},
};

/// Proof that a worker holds a job: only writes carrying the current token take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub job_id: Uuid,
    pub token: Uuid,
    /// Set by the reaper: only while the lease still ends before this instant (a heartbeat
    /// that renewed it after the reaper read the row wins).
    pub expired_before: Option<DateTime<Utc>>,
}

impl Lease {
    pub fn of(job: &job::Model) -> Option<Self> {
        job.lease_token.map(|token| Self {
            job_id: job.id,
            token,
            expired_before: None,
        })
    }

    /// Whether `job`, as locked now, is still held by this lease.
    pub fn holds(&self, job: &job::Model) -> bool {
        job.id == self.job_id
            && job.lease_token == Some(self.token)
            && job.status == JobStatus::Running
            && self
                .expired_before
                .is_none_or(|t| job.lease_expires_at.is_some_and(|at| at < t))
    }
}

/// The event announcing a job row as it now is.
pub fn event_of(job: &job::Model) -> JobEvent {
    JobEvent {
        job_id: job.id,
        owner_id: job.owner_id,
        seq: job.seq,
        wake: job.status == JobStatus::Queued,
    }
}

/// Starts a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`, which takes the
/// write lock up front, so two writers queue on the busy timeout instead of one failing when
/// it upgrades from reading to writing.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let sqlite = db.get_database_backend() == DatabaseBackend::Sqlite;
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: sqlite.then_some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Writes the timeline row of a job's new status.
pub async fn record(
    db: &impl ConnectionTrait,
    job: &job::Model,
    worker: Option<&str>,
    note: Option<&str>,
) -> AppResult<()> {
    job_transition::ActiveModel {
        id: Set(Uuid::now_v7()),
        job_id: Set(job.id),
        seq: Set(job.seq),
        status: Set(job.status),
        attempt: Set(job.attempts),
        worker: Set(worker.map(str::to_owned)),
        note: Set(note.map(|n| n.chars().take(500).collect())),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// [`record`], plus what a job's end entails (e.g. settling a movie's render minutes), in the
/// same transaction as the status change.
pub async fn record_end(
    txn: &DatabaseTransaction,
    job: &job::Model,
    worker: Option<&str>,
    note: Option<&str>,
    events: &mut Vec<JobEvent>,
) -> AppResult<()> {
    record(txn, job, worker, note).await?;
    if super::is_terminal(job.status) {
        crate::render::on_job_finished(txn, job).await?;
        if let Some(delivery) = super::webhooks::on_job_finished(txn, job).await? {
            events.push(event_of(&delivery));
        }
    } else if job.status == JobStatus::Queued {
        // Back in the queue (a failure it may retry, a stopping worker, an expired lease):
        // what it was making waits again too.
        crate::render::on_job_requeued(txn, job).await?;
    }
    Ok(())
}

/// What `enqueue` did.
#[must_use = "publish the job's event after the transaction commits"]
pub struct Enqueued {
    pub job: job::Model,
    /// True when an unfinished job with the same idempotency key was returned instead.
    pub existing: bool,
}

/// Inserts a job inside the caller's transaction (so it commits or fails with the domain rows
/// it belongs to). With an idempotency key, an unfinished job of the same owner and key is
/// returned instead; a concurrent duplicate insert is caught by the partial unique index and
/// resolved the same way, inside a savepoint so the caller's transaction survives.
pub async fn enqueue<C>(db: &C, new: NewJob) -> AppResult<Enqueued>
where
    C: ConnectionTrait + TransactionTrait,
    C::Transaction: TransactionSession,
{
    if let Some(key) = &new.idempotency_key
        && let Some(job) = find_unfinished_by_key(db, new.owner_id, key).await?
    {
        return Ok(Enqueued {
            job,
            existing: true,
        });
    }
    let now = Utc::now();
    let row = job::ActiveModel {
        id: Set(new.id),
        kind: Set(new.kind),
        job_type: Set(new.job_type),
        status: Set(JobStatus::Queued),
        priority: Set(new.priority),
        parent_id: Set(new.parent_id),
        provider: Set("local".to_owned()),
        progress: Set(0.0),
        current_phase: Set(None),
        input: Set(new.input),
        output: Set(None),
        output_ref: Set(None),
        error: Set(None),
        owner_id: Set(new.owner_id),
        creator_id: Set(new.creator_id),
        attempts: Set(0),
        max_attempts: Set(Ord::max(new.max_attempts, 1)),
        run_at: Set(new.run_at.unwrap_or(now)),
        lease_token: Set(None),
        lease_expires_at: Set(None),
        cancel_requested: Set(false),
        pending_children: Set(0),
        idempotency_key: Set(new.idempotency_key.clone()),
        seq: Set(1),
        cached: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        parent_attempt: Set(new.parent_attempt),
    };
    let savepoint = db.begin().await?;
    match row.insert(&savepoint).await {
        Ok(job) => {
            record(&savepoint, &job, None, None).await?;
            savepoint.commit().await?;
            Ok(Enqueued {
                job,
                existing: false,
            })
        }
        Err(err) if unique_violation(&err).is_some() => {
            savepoint.rollback().await?;
            let key = new.idempotency_key.as_deref().unwrap_or_default();
            let job = find_unfinished_by_key(db, new.owner_id, key)
                .await?
                .ok_or_else(|| {
                    AppError::conflict(
                        Some("input.idempotencyKey"),
                        "a job with this idempotency key just finished; retry",
                    )
                })?;
            Ok(Enqueued {
                job,
                existing: true,
            })
        }
        Err(err) => Err(err.into()),
    }
}

/// Key of a job input holding the SHA-256 of the request that made it, so that a retry under
/// the same idempotency key can be told from a different request reusing the key.
pub const REQUEST_KEY: &str = "requestSha256";

/// An idempotency key is 1–255 characters.
pub fn check_idempotency_key(path: &str, key: &str) -> AppResult<()> {
    if key.is_empty() || key.chars().count() > 255 {
        return Err(AppError::bad_input(path, "must be 1–255 characters"));
    }
    Ok(())
}

/// The unfinished job an idempotency key already names, if it was made by the same kind of
/// request with the same fingerprint; `CONFLICT` otherwise, as the caller would otherwise wait
/// for something other than what it asked for. `fields` lists what the fingerprint covers, for
/// the message. Jobs of this type from before fingerprints were kept are taken as they are.
pub fn same_request(
    existing: job::Model,
    job_type: &str,
    fingerprint: &str,
    fields: &str,
) -> AppResult<job::Model> {
    let earlier = existing.input.get(REQUEST_KEY).and_then(|v| v.as_str());
    if existing.job_type != job_type || earlier.is_some_and(|earlier| earlier != fingerprint) {
        return Err(AppError::conflict(
            Some("input.idempotencyKey"),
            format!(
                "this idempotency key belongs to an unfinished job of a different request \
                 ({fields}): use a new key"
            ),
        ));
    }
    Ok(existing)
}

pub async fn find_unfinished_by_key(
    db: &impl ConnectionTrait,
    owner: Uuid,
    key: &str,
) -> AppResult<Option<job::Model>> {
    Ok(job::Entity::find()
        .filter(job::Column::OwnerId.eq(owner))
        .filter(job::Column::IdempotencyKey.eq(key))
        .filter(job::Column::Status.is_in([
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Waiting,
        ]))
        .one(db)
        .await?)
}

/// Renders `$n` placeholders for the backend (SQLite numbers them `?n`).
fn sql(backend: DatabaseBackend, text: &str) -> String {
    match backend {
        DatabaseBackend::Sqlite => text.replace('$', "?"),
        _ => text.to_owned(),
    }
}

/// How many jobs of each lane a claim may take. Webhook deliveries wait on other servers,
/// not on this machine's CPU: they have slots of their own, so receivers that never answer
/// cannot hold the slots renders need, and a backlog of renders cannot hold notices up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// Every job but webhook deliveries.
    pub work: u64,
    /// Webhook deliveries (`webhook.deliver`).
    pub deliveries: u64,
}

/// Claims up to `slots` runnable jobs other than webhook deliveries (see [`claim_slots`]).
pub async fn claim(
    db: &DatabaseConnection,
    worker: &str,
    slots: u64,
    lease: Duration,
) -> AppResult<Vec<job::Model>> {
    let slots = Slots {
        work: slots,
        deliveries: 0,
    };
    claim_slots(db, worker, slots, lease, None).await
}

/// Webhook deliveries of one owner running at once, across every pool: receivers of one
/// account that never answer hold at most this many delivery slots, and other accounts'
/// notices go out meanwhile.
pub const DELIVERIES_PER_OWNER: u64 = 2;
/// The advisory lock claims of webhook deliveries take in turn on PostgreSQL.
const DELIVERY_CLAIM_LOCK: i64 = 0x7265_656c_6465_6c76; // "reeldelv"
/// How many queued deliveries per free slot a claim weighs for [`DELIVERIES_PER_OWNER`]: those
/// of owners already at the cap are passed over in the scan itself, so a long backlog of one
/// account's cannot hide another's, and the next claim looks past what this one locked.
const DELIVERY_CANDIDATES: u64 = 8;

/// Claims up to `slots` runnable jobs of each lane, highest priority then oldest first, in one
/// statement (deliveries at most [`DELIVERIES_PER_OWNER`] per owner running): `FOR UPDATE SKIP LOCKED` lets any number of workers claim concurrently without
/// blocking or double-claiming (SQLite has one writer, and the immediate transaction
/// serialises it). The job type is written into the text, not bound, so PostgreSQL can use
/// the deliveries' partial index.
///
/// With `known`, only jobs of those types are claimed: a process without a handler for a type
/// (an older version beside newer ones during a rollout) leaves its jobs queued for a process
/// that has one, instead of claiming them and failing them for good.
pub async fn claim_slots(
    db: &DatabaseConnection,
    worker: &str,
    mut slots: Slots,
    lease: Duration,
    known: Option<&[String]>,
) -> AppResult<Vec<job::Model>> {
    if known.is_some_and(|types| !types.iter().any(|t| t == super::webhooks::JOB_TYPE)) {
        slots.deliveries = 0;
    }
    if slots.work == 0 && slots.deliveries == 0 {
        return Ok(Vec::new());
    }
    let only_known = match known {
        None => String::new(),
        Some(types) => {
            // The types are this process's own handler names, written into the text like the
            // deliveries' type (a fixed text per process, so prepared once).
            let listed: Vec<String> = types
                .iter()
                .filter(|t| {
                    t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                })
                .map(|t| format!("'{t}'"))
                .collect();
            if listed.is_empty() {
                " AND FALSE".to_owned()
            } else {
                format!(" AND job_type IN ({})", listed.join(", "))
            }
        }
    };
    let backend = db.get_database_backend();
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30));
    let text = match backend {
        DatabaseBackend::Postgres => {
            "WITH work AS (
                SELECT id FROM jobs
                WHERE status = 'QUEUED' AND run_at <= $1 AND job_type <> 'webhook.deliver'/*known*/
                ORDER BY priority DESC, id
                LIMIT $3
                FOR UPDATE SKIP LOCKED
            ), candidates AS (
                SELECT d.id, d.priority, d.owner_id, (
                    SELECT count(*) FROM jobs r WHERE r.status = 'RUNNING'
                        AND r.job_type = 'webhook.deliver' AND r.owner_id = d.owner_id
                ) AS running
                FROM jobs d
                WHERE d.status = 'QUEUED' AND d.run_at <= $1 AND d.job_type = 'webhook.deliver'
                    AND d.owner_id NOT IN (SELECT r.owner_id FROM jobs r
                        WHERE r.status = 'RUNNING' AND r.job_type = 'webhook.deliver'
                        GROUP BY r.owner_id HAVING count(*) >= $5)
                ORDER BY d.priority DESC, d.id
                LIMIT $6
                FOR UPDATE OF d SKIP LOCKED
            ), deliveries AS (
                SELECT id FROM (
                    SELECT id, priority, running + ROW_NUMBER() OVER (
                        PARTITION BY owner_id ORDER BY priority DESC, id) AS nth
                    FROM candidates
                ) AS ranked
                WHERE nth <= $5
                ORDER BY priority DESC, id
                LIMIT $4
            )
            UPDATE jobs AS j SET status = 'RUNNING', lease_token = gen_random_uuid(),
                lease_expires_at = $2, attempts = j.attempts + 1, progress = 0,
                current_phase = NULL, error = NULL,
                started_at = COALESCE(j.started_at, $1), updated_at = $1, seq = j.seq + 1
            FROM (SELECT id FROM work UNION ALL SELECT id FROM deliveries) AS picked
            WHERE j.id = picked.id
            RETURNING j.*"
        }
        _ => {
            "UPDATE jobs SET status = 'RUNNING', lease_token = randomblob(16),
                lease_expires_at = $2, attempts = attempts + 1, progress = 0,
                current_phase = NULL, error = NULL,
                started_at = COALESCE(started_at, $1), updated_at = $1, seq = seq + 1
            WHERE id IN (
                SELECT id FROM (
                    SELECT id FROM jobs
                    WHERE status = 'QUEUED' AND run_at <= $1 AND job_type <> 'webhook.deliver'/*known*/
                    ORDER BY priority DESC, id LIMIT $3
                )
                UNION ALL
                SELECT id FROM (
                    SELECT id FROM (
                        SELECT id, priority, running + ROW_NUMBER() OVER (
                            PARTITION BY owner_id ORDER BY priority DESC, id) AS nth
                        FROM (
                            SELECT d.id, d.priority, d.owner_id, (
                                SELECT count(*) FROM jobs r WHERE r.status = 'RUNNING'
                                    AND r.job_type = 'webhook.deliver'
                                    AND r.owner_id = d.owner_id
                            ) AS running
                            FROM jobs d
                            WHERE d.status = 'QUEUED' AND d.run_at <= $1
                                AND d.job_type = 'webhook.deliver'
                                AND d.owner_id NOT IN (SELECT r.owner_id FROM jobs r
                                    WHERE r.status = 'RUNNING'
                                        AND r.job_type = 'webhook.deliver'
                                    GROUP BY r.owner_id HAVING count(*) >= $5)
                            ORDER BY d.priority DESC, d.id LIMIT $6
                        )
                    )
                    WHERE nth <= $5
                    ORDER BY priority DESC, id LIMIT $4
                )
            )
            RETURNING *"
        }
    };
    debug_assert!(text.contains(super::webhooks::JOB_TYPE));
    let statement = Statement::from_sql_and_values(
        backend,
        sql(backend, &text.replace("/*known*/", &only_known)),
        [
            now.into(),
            expires.into(),
            (slots.work as i64).into(),
            (slots.deliveries as i64).into(),
            (DELIVERIES_PER_OWNER as i64).into(),
            (slots.deliveries.saturating_mul(DELIVERY_CANDIDATES) as i64).into(),
        ],
    );
    let txn = begin_write(db).await?;
    if backend == DatabaseBackend::Postgres && slots.deliveries > 0 {
        // Claims of deliveries take turns across pools: a claim running beside another could
        // not see the deliveries that one was taking (uncommitted), and would count their
        // owners below the cap. Held to the end of this short transaction. (SQLite's write
        // transaction already serialises claims.)
        txn.execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock({DELIVERY_CLAIM_LOCK})"
        ))
        .await?;
    }
    let claimed = job::Model::find_by_statement(statement).all(&txn).await?;
    for job in &claimed {
        record(&txn, job, Some(worker), None).await?;
    }
    txn.commit().await?;
    Ok(claimed)
}

/// Extends the lease. Returns the row (to read `cancel_requested`), or `None` when the lease
/// is no longer ours.
pub async fn heartbeat(
    db: &DatabaseConnection,
    lease: Lease,
    lease_for: Duration,
) -> AppResult<Option<job::Model>> {
    let expires =
        Utc::now() + chrono::Duration::from_std(lease_for).unwrap_or(chrono::Duration::seconds(30));
    let rows = fenced(job::Entity::update_many(), lease)
        .col_expr(job::Column::LeaseExpiresAt, Expr::val(expires))
        .exec_with_returning(db)
        .await?;
    Ok(rows.into_iter().next())
}

/// Writes progress and phase (and extends the lease). `None` when the lease is no longer ours.
pub async fn progress(
    db: &DatabaseConnection,
    lease: Lease,
    progress: f64,
    phase: Option<&str>,
    lease_for: Duration,
) -> AppResult<Option<job::Model>> {
    let now = Utc::now();
    let expires =
        now + chrono::Duration::from_std(lease_for).unwrap_or(chrono::Duration::seconds(30));
    let mut update = fenced(job::Entity::update_many(), lease)
        .col_expr(job::Column::Progress, Expr::val(progress.clamp(0.0, 1.0)))
        .col_expr(job::Column::LeaseExpiresAt, Expr::val(expires))
        .col_expr(job::Column::UpdatedAt, Expr::val(now))
        .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1));
    if let Some(phase) = phase {
        update = update.col_expr(job::Column::CurrentPhase, Expr::val(phase));
    }
    Ok(update.exec_with_returning(db).await?.into_iter().next())
}

/// Restricts an update to the row this lease still holds.
pub fn fenced(
    update: sea_orm::UpdateMany<job::Entity>,
    lease: Lease,
) -> sea_orm::UpdateMany<job::Entity> {
    let update = update
        .filter(job::Column::Id.eq(lease.job_id))
        .filter(job::Column::LeaseToken.eq(lease.token))
        .filter(job::Column::Status.eq(JobStatus::Running));
    match lease.expired_before {
        Some(t) => update.filter(job::Column::LeaseExpiresAt.lt(t)),
        None => update,
    }
}

/// A condition for a write to another table that a job's handler makes: true only while
/// `lease` still holds the job (the same test as [`fenced`]). A handler that stalled past its
/// lease, while another worker ran the job to its end, then changes nothing (a short marked
/// PROCESSING again after it was COMPLETE would stay so for good).
///
/// On PostgreSQL the job's row is locked `FOR SHARE` until the write commits: a reaper (or a
/// worker's end) changing that row meanwhile waits for the write, and a write that meets such a
/// change uncommitted waits for it and judges the lease as committed then (else it would read
/// the lease from before the change and write anyway). Locks the job row before the written
/// one, as the reaper and a job's end do. SQLite serialises writers, and has no row locks.
pub fn held(lease: Lease) -> Condition {
    let mut holder = Query::select()
        .expr(Expr::val(1))
        .from(job::Entity)
        .and_where(Expr::col((job::Entity, job::Column::Id)).eq(lease.job_id))
        .and_where(Expr::col((job::Entity, job::Column::LeaseToken)).eq(lease.token))
        .and_where(Expr::col((job::Entity, job::Column::Status)).eq(JobStatus::Running))
        .lock_shared()
        .to_owned();
    if let Some(t) = lease.expired_before {
        holder.and_where(Expr::col((job::Entity, job::Column::LeaseExpiresAt)).lt(t));
    }
    Condition::all().add(Expr::exists(holder))
}

/// Delay before attempt `attempts + 1`: exponential from one second, capped at five minutes,
/// with ±50% jitter so jobs that failed together do not retry together.
pub fn backoff(attempts: i32) -> chrono::Duration {
    let base_ms = 1000_f64 * 2_f64.powi(attempts.clamp(1, 20) - 1);
    let capped = base_ms.min(300_000.0);
    let jitter = rand::rng().random_range(0.5..1.5);
    chrono::Duration::milliseconds((capped * jitter) as i64)
}

/// Recovers jobs whose worker stopped heartbeating: back to the queue with backoff, failed
/// once their attempts are used up, or cancelled when cancelling was asked for while they
/// ran. Returns the events to publish.
pub async fn reap_expired(db: &DatabaseConnection) -> AppResult<Vec<JobEvent>> {
    let now = Utc::now();
    let expired = job::Entity::find()
        .filter(job::Column::Status.eq(JobStatus::Running))
        .filter(job::Column::LeaseExpiresAt.lt(now))
        .order_by_asc(job::Column::LeaseExpiresAt)
        .limit(100)
        .all(db)
        .await?;
    let mut events = Vec::new();
    // One job's failure is logged and the others go on; the events of those done are
    // returned either way.
    for job in expired {
        let id = job.id;
        if let Err(err) = reap(db, job, now, &mut events).await {
            tracing::warn!(job_id = %id, error = ?err, "could not recover an expired job");
        }
    }
    Ok(events)
}

/// Recovers one job whose lease ended before `now` (see [`reap_expired`]); adds its events
/// to `events` once committed. Nothing changes if a heartbeat renewed the lease meanwhile.
async fn reap(
    db: &DatabaseConnection,
    job: job::Model,
    now: DateTime<Utc>,
    events: &mut Vec<JobEvent>,
) -> AppResult<()> {
    let Some(mut lease) = Lease::of(&job) else {
        return Ok(());
    };
    lease.expired_before = Some(now);
    {
        let txn = begin_write(db).await?;
        if job.cancel_requested {
            // Asked to stop before its worker went quiet: it ends cancelled, not run again.
            let how = super::lifecycle::Finish::Cancelled;
            let mut finished = super::lifecycle::finish_in(&txn, lease, how, None).await?;
            txn.commit().await?;
            events.append(&mut finished.events);
        } else if job.attempts < job.max_attempts {
            // Not if a cancel landed since the read above: the next pass ends it cancelled.
            let rows = fenced(job::Entity::update_many(), lease)
                .filter(job::Column::CancelRequested.eq(false))
                .col_expr(job::Column::Status, Expr::val(JobStatus::Queued))
                .col_expr(job::Column::LeaseToken, Expr::val(Option::<Uuid>::None))
                .col_expr(
                    job::Column::LeaseExpiresAt,
                    Expr::val(Option::<DateTime<Utc>>::None),
                )
                .col_expr(job::Column::RunAt, Expr::val(now + backoff(job.attempts)))
                .col_expr(
                    job::Column::Error,
                    Expr::val("worker stopped responding; retrying"),
                )
                .col_expr(job::Column::UpdatedAt, Expr::val(now))
                .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1))
                .exec_with_returning(&txn)
                .await?;
            // Announced once committed: a failed commit must not announce a change that never
            // happened (subscribers' reads, cached by version, would then hide the real one).
            let mut requeued = Vec::new();
            for row in &rows {
                record_end(&txn, row, None, Some("lease expired"), &mut requeued).await?;
                requeued.push(event_of(row));
            }
            txn.commit().await?;
            events.append(&mut requeued);
        } else {
            let message = format!(
                "worker stopped responding on all {} attempts",
                job.max_attempts
            );
            let failure = super::lifecycle::Finish::Failed {
                error: message,
                retryable: false,
            };
            let mut finished = super::lifecycle::finish_in(&txn, lease, failure, None).await?;
            txn.commit().await?;
            events.append(&mut finished.events);
        }
    }
    Ok(())
}

/// Jobs `clean_up` deletes per transaction (their rows stay locked while their plans go).
const CLEAN_UP_BATCH: u64 = 100;

/// Deletes finished top-level jobs (with their children) older than `retention`, in batches.
/// A rendered movie is kept: its MP4 is reached only through its job, and deleting the row
/// would lose the movie for its owner (and leave the object behind in storage). A movie that
/// did not render goes with its plan and any MP4 its assembly wrote (a cancel that lands as
/// the assembly finishes leaves one). Everything else a job produced belongs to another row
/// (a video's proxy, a short's file, a scene in the scene cache).
pub async fn clean_up(
    db: &DatabaseConnection,
    storage: &crate::storage::Storage,
    retention: chrono::Duration,
) -> AppResult<u64> {
    let cutoff = Utc::now() - retention;
    let mut deleted = 0;
    // Batches go in id order, each after the last: jobs whose plan or output could not be
    // removed are left for the next run, and this one goes on past them (a list of them bound
    // into the query grew past the database's limit of parameters while storage was down).
    let mut after: Option<Uuid> = None;
    loop {
        let txn = begin_write(db).await?;
        // Locked on PostgreSQL until the batch is gone (SQLite's writers are serialised): a
        // `retryJob` of one of them waits, then finds it gone, instead of this deleting a job
        // it has just queued again; one that committed first no longer matches.
        let find = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(job::Column::ParentId.is_null())
            .filter(job::Column::Status.is_in([
                JobStatus::Done,
                JobStatus::Failed,
                JobStatus::Cancelled,
            ]))
            .filter(job::Column::FinishedAt.lt(cutoff))
            .filter(
                Condition::any()
                    .add(job::Column::Status.ne(JobStatus::Done))
                    .add(job::Column::JobType.ne(crate::render::MOVIE_JOB)),
            )
            .filter(after.map_or(Condition::all(), |after| {
                Condition::all().add(job::Column::Id.gt(after))
            }))
            .order_by_asc(job::Column::Id)
            .limit(CLEAN_UP_BATCH)
            .for_update(&txn);
        let found: Vec<(Uuid, String)> = find
            .column(job::Column::JobType)
            .into_tuple()
            .all(&txn)
            .await?;
        let ids: Vec<Uuid> = found.iter().map(|(id, _)| *id).collect();
        after = ids.last().copied().or(after);
        if ids.is_empty() {
            txn.commit().await?;
            return Ok(deleted);
        }
        // The plans of movies that did not render go with their jobs (the rows by cascade).
        let mut objects: Vec<(Uuid, String)> = entity::render_plan::Entity::find()
            .select_only()
            .columns([
                entity::render_plan::Column::JobId,
                entity::render_plan::Column::StorageKey,
            ])
            .filter(entity::render_plan::Column::JobId.is_in(ids.clone()))
            .into_tuple()
            .all(&txn)
            .await?;
        objects.extend(
            found
                .iter()
                .filter(|(_, job_type)| job_type == crate::render::MOVIE_JOB)
                .map(|(id, _)| (*id, crate::render::plan::output_key(*id))),
        );
        // Objects first, rows second: stopped in between (upkeep is aborted at shutdown), the
        // rows are still there and the next run deletes them (a missing object deletes fine);
        // the other way round, the objects would stay behind with nothing pointing at them.
        // A job whose plan could not be removed stays for the next run, for the same reason.
        let mut kept: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
        for (job_id, key) in objects {
            if let Err(err) = storage.delete(&key).await {
                tracing::warn!(key, error = %err, "a deleted job's render plan or output could not be removed; trying again next run");
                kept.insert(job_id);
            }
        }
        let doomed: Vec<Uuid> = ids.into_iter().filter(|id| !kept.contains(id)).collect();
        let result = job::Entity::delete_many()
            .filter(job::Column::Id.is_in(doomed))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        deleted += result.rows_affected;
    }
}

/// Marks a running job as served from a cache. `None` when the lease is no longer ours.
pub async fn mark_cached(db: &DatabaseConnection, lease: Lease) -> AppResult<Option<job::Model>> {
    let rows = fenced(job::Entity::update_many(), lease)
        .col_expr(job::Column::Cached, Expr::val(true))
        .col_expr(job::Column::UpdatedAt, Expr::val(Utc::now()))
        .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1))
        .exec_with_returning(db)
        .await?;
    Ok(rows.into_iter().next())
}

/// How a child's progress counts towards its parent's, from the child's input
/// (`"parent_progress": {"phase": "rendering", "from": 0.05, "to": 0.9, "weight": 2.5}`):
/// the parent's progress in `phase` runs from `from` to `to`, by the weighted progress of
/// its children in that phase.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ParentProgress {
    pub phase: String,
    pub from: f64,
    pub to: f64,
    pub weight: f64,
}

/// Recomputes a waiting parent's progress from the children of its attempt `attempt` (see
/// `job.parent_attempt`); only ever moves it forward. Returns the parent when it changed.
pub async fn roll_up(
    db: &DatabaseConnection,
    parent_id: Uuid,
    attempt: Option<i32>,
    share: &ParentProgress,
) -> AppResult<Option<job::Model>> {
    let mut children = job::Entity::find().filter(job::Column::ParentId.eq(parent_id));
    let mut parent = job::Entity::update_many().filter(job::Column::Id.eq(parent_id));
    if let Some(attempt) = attempt {
        children = children.filter(job::Column::ParentAttempt.eq(attempt));
        parent = parent.filter(job::Column::Attempts.eq(attempt));
    }
    let children = children.all(db).await?;
    let (mut done, mut total) = (0.0, 0.0);
    for child in &children {
        let Some(theirs) = child
            .input
            .get("parent_progress")
            .and_then(|p| serde_json::from_value::<ParentProgress>(p.clone()).ok())
            .filter(|p| p.phase == share.phase)
        else {
            continue;
        };
        let progress = if child.status == JobStatus::Done {
            1.0
        } else {
            child.progress
        };
        done += theirs.weight * progress;
        total += theirs.weight;
    }
    if total <= 0.0 {
        return Ok(None);
    }
    let target = share.from + (share.to - share.from) * (done / total).clamp(0.0, 1.0);
    let target = target.clamp(0.0, 1.0);
    let now = Utc::now();
    // Forward, or into a phase that begins where the parent's progress already is (a step
    // whose children were all cached leaves it at the next phase's start): the phase is then
    // named however little the progress moves.
    let forward = job::Column::Progress.lt(target - 1e-6);
    let new_phase = Condition::all()
        .add(
            Condition::any()
                .add(job::Column::CurrentPhase.is_null())
                .add(job::Column::CurrentPhase.ne(share.phase.as_str())),
        )
        .add(job::Column::Progress.lte(target + 1e-6));
    let rows = parent
        .col_expr(
            job::Column::Progress,
            Expr::case(forward.clone(), Expr::val(target))
                .finally(Expr::col(job::Column::Progress))
                .into(),
        )
        .col_expr(job::Column::CurrentPhase, Expr::val(share.phase.clone()))
        .col_expr(job::Column::UpdatedAt, Expr::val(now))
        .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1))
        .filter(job::Column::Status.eq(JobStatus::Waiting))
        .filter(Condition::any().add(forward).add(new_phase))
        .exec_with_returning(db)
        .await?;
    Ok(rows.into_iter().next())
}
