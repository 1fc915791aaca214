//! How jobs end, and what their end does to their family.
//!
//! A worker finishes a job through [`finish`] (fenced by its lease): done, failed (retried
//! with backoff while attempts remain), cancelled, released back to the queue on shutdown, or
//! turned into a parent that waits for children. A child's terminal update decrements its
//! parent's `pending_children` in the same transaction; when that reaches zero the parent's
//! continuation (e.g. `render.assemble`) is enqueued as its last child, or, with none left,
//! the parent is done with the last child's output. A child that fails for good fails its
//! parent and cancels its siblings. Users cancel and retry through [`cancel`] and [`retry`].

use chrono::{DateTime, Utc};
use entity::{JobStatus, job};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, EntityTrait, FromQueryResult, QueryFilter, QuerySelect, Statement,
    sea_query::{Expr, ExprTrait},
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    EventBus, JobEvent, NewJob,
    queue::{Lease, backoff, begin_write, enqueue, event_of, fenced, record_end},
};
use crate::{
    db::RowLock,
    error::{AppError, AppResult},
};

/// How a running job ends.
#[derive(Debug, Clone)]
pub enum Finish {
    Done {
        output: Value,
        output_ref: Option<String>,
    },
    /// Retried with backoff when `retryable` and attempts remain; failed for good otherwise.
    Failed {
        error: String,
        retryable: bool,
    },
    Cancelled,
    /// A service the job needs (object storage, the database) did not answer: back to the
    /// queue with backoff, the attempt not counted (one more is allowed) while the job started
    /// less than [`OUTAGE_GRACE`] ago; after that, a retryable [`Finish::Failed`].
    Unavailable {
        error: String,
    },
    /// Back to the queue (worker shutting down), progress kept; the attempt does not count:
    /// one more is allowed. The next run is a new attempt (`attempts` + 1, progress from 0),
    /// so progress never goes backwards within one attempt.
    Released,
    /// Wait for `children`; when all are done, run `then` (if any) as the last child.
    Wait {
        children: Vec<NewJob>,
        then: Option<NewJob>,
    },
}

/// How long after a job first started an outage of a service it needs does not use up its
/// attempts ([`Finish::Unavailable`]): with the queue's backoff (1 s, 2 s, 4 s, … up to 5 min)
/// that is a dozen tries or so.
pub const OUTAGE_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// What a fenced finish did.
#[derive(Debug, Default)]
pub struct Finished {
    /// False when the lease was no longer ours: nothing changed.
    pub applied: bool,
    /// Events to publish after commit.
    pub events: Vec<JobEvent>,
}

/// Ends a job in its own transaction and publishes the events. Returns whether the lease was
/// still ours.
pub async fn finish(
    db: &DatabaseConnection,
    bus: &EventBus,
    lease: Lease,
    how: Finish,
    worker: Option<&str>,
) -> AppResult<bool> {
    for attempt in 1.. {
        let txn = begin_write(db).await?;
        match finish_in(&txn, lease, how.clone(), worker).await {
            Ok(finished) => {
                txn.commit().await?;
                bus.publish(&finished.events).await;
                return Ok(finished.applied);
            }
            Err(err) if err.is_deadlock() && attempt < DEADLOCK_ATTEMPTS => {}
            Err(err) => return Err(err),
        }
    }
    unreachable!("the loop returns")
}

/// Times a transaction of a job's family is run when PostgreSQL keeps choosing it to break a
/// deadlock (its locks are ordered to avoid them; this covers writers that do not follow the
/// order).
const DEADLOCK_ATTEMPTS: u32 = 3;

/// Locks (PostgreSQL) the job's ancestors from the root down, then the job, and returns the
/// job. Ends of jobs and cancels take a family's rows in this order, so that a child's end and
/// a cancel of its family meet at the root instead of each holding what the other waits for.
async fn lock_down_to(txn: &DatabaseTransaction, job_id: Uuid) -> AppResult<Option<job::Model>> {
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        // A job's parent never changes, so the chain is read without locks.
        let parent_of = |id: Uuid| async move {
            job::Entity::find_by_id(id)
                .select_only()
                .column(job::Column::ParentId)
                .into_tuple::<Option<Uuid>>()
                .one(txn)
                .await
                .map(Option::flatten)
        };
        let mut ancestors = Vec::new();
        let mut next = parent_of(job_id).await?;
        while let Some(id) = next.filter(|id| !ancestors.contains(id)) {
            ancestors.push(id);
            next = parent_of(id).await?;
        }
        for id in ancestors.into_iter().rev() {
            job::Entity::find_by_id(id).for_update(txn).one(txn).await?;
        }
    }
    Ok(job::Entity::find_by_id(job_id)
        .for_update(txn)
        .one(txn)
        .await?)
}

/// [`finish`] inside the caller's transaction.
pub async fn finish_in(
    txn: &DatabaseTransaction,
    lease: Lease,
    how: Finish,
    worker: Option<&str>,
) -> AppResult<Finished> {
    // Locked (PostgreSQL), so that a `cancelJob` either commits first, and is seen here, or
    // waits for this end and then finds the job (and any children it made) to cancel.
    let Some(current) = lock_down_to(txn, lease.job_id)
        .await?
        .filter(|current| lease.holds(current))
    else {
        return Ok(Finished::default());
    };
    // A job asked to stop ends cancelled rather than running on in another form: not handed
    // back to the queue by a stopping worker, not retried, and not turned into a parent of new
    // children (its handler may return before its heartbeat has noticed the request).
    let now = Utc::now();
    let how = match how {
        Finish::Released | Finish::Wait { .. } | Finish::Unavailable { .. }
            if current.cancel_requested =>
        {
            Finish::Cancelled
        }
        Finish::Unavailable { error }
            if current
                .started_at
                .is_none_or(|started| now - started >= OUTAGE_GRACE) =>
        {
            Finish::Failed {
                error,
                retryable: true,
            }
        }
        // Whether or not it could have been tried again: a probe stopped because its video
        // was deleted fails for good, yet its owner (or the deletion) asked it to stop.
        Finish::Failed { .. } if current.cancel_requested => Finish::Cancelled,
        how => how,
    };
    let update = fenced(job::Entity::update_many(), lease)
        .col_expr(job::Column::LeaseToken, Expr::val(Option::<Uuid>::None))
        .col_expr(
            job::Column::LeaseExpiresAt,
            Expr::val(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::val(now))
        .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1));
    let mut note = None;
    let mut waiting = false;
    let mut children = Vec::new();
    let update = match how {
        Finish::Done { output, output_ref } => update
            .col_expr(job::Column::Status, Expr::val(JobStatus::Done))
            .col_expr(job::Column::Progress, Expr::val(1.0))
            .col_expr(job::Column::Output, Expr::val(output))
            .col_expr(job::Column::OutputRef, Expr::val(output_ref))
            .col_expr(job::Column::Error, Expr::val(Option::<String>::None))
            .col_expr(job::Column::FinishedAt, Expr::val(now)),
        Finish::Failed { error, retryable }
            if retryable && current.attempts < current.max_attempts =>
        {
            note = Some(error.clone());
            update
                .col_expr(job::Column::Status, Expr::val(JobStatus::Queued))
                .col_expr(
                    job::Column::RunAt,
                    Expr::val(now + backoff(current.attempts)),
                )
                .col_expr(job::Column::Error, Expr::val(error))
        }
        Finish::Failed { error, .. } => {
            note = Some(error.clone());
            update
                .col_expr(job::Column::Status, Expr::val(JobStatus::Failed))
                .col_expr(job::Column::Error, Expr::val(error))
                .col_expr(job::Column::FinishedAt, Expr::val(now))
        }
        // An earlier attempt's error does not say why it ended (a short showed "object
        // storage was unavailable" as its error once cancelled).
        Finish::Cancelled => update
            .col_expr(job::Column::Status, Expr::val(JobStatus::Cancelled))
            .col_expr(job::Column::Error, Expr::val(Option::<String>::None))
            .col_expr(job::Column::FinishedAt, Expr::val(now)),
        Finish::Unavailable { error } => {
            note = Some(error.clone());
            update
                .col_expr(job::Column::Status, Expr::val(JobStatus::Queued))
                .col_expr(
                    job::Column::MaxAttempts,
                    Expr::col(job::Column::MaxAttempts).add(1),
                )
                .col_expr(
                    job::Column::RunAt,
                    Expr::val(now + backoff(current.attempts)),
                )
                .col_expr(job::Column::Error, Expr::val(error))
        }
        Finish::Released => {
            note = Some("released by a stopping worker".to_owned());
            update
                .col_expr(job::Column::Status, Expr::val(JobStatus::Queued))
                .col_expr(
                    job::Column::MaxAttempts,
                    Expr::col(job::Column::MaxAttempts).add(1),
                )
                .col_expr(job::Column::RunAt, Expr::val(now))
        }
        Finish::Wait {
            children: kids,
            then: next,
        } => {
            let state = json!({ "continuation": next, "children": kids.len() });
            children = kids;
            waiting = true;
            update
                .col_expr(job::Column::Status, Expr::val(JobStatus::Waiting))
                .col_expr(job::Column::Error, Expr::val(Option::<String>::None))
                .col_expr(
                    job::Column::PendingChildren,
                    Expr::val(children.len() as i32),
                )
                .col_expr(job::Column::Output, Expr::val(state))
        }
    };
    let Some(mut row) = update.exec_with_returning(txn).await?.into_iter().next() else {
        return Ok(Finished::default());
    };
    // Which attempt of its parent made it, as read under the lock: it never changes, and
    // SQLite has answered `RETURNING` with NULL for columns added by `ALTER TABLE` (this one
    // was, in migration 11), which would let a child of an earlier attempt report to the new.
    row.parent_attempt = current.parent_attempt;
    let mut events = vec![event_of(&row)];
    record_end(txn, &row, worker, note.as_deref(), &mut events).await?;
    if waiting {
        for mut child in children {
            child.parent_id = Some(row.id);
            child.parent_attempt = Some(row.attempts);
            child.owner_id = row.owner_id;
            child.creator_id = row.creator_id;
            child.idempotency_key = None;
            let enqueued = enqueue(txn, child).await?;
            events.push(event_of(&enqueued.job));
        }
        if row.pending_children == 0
            && let Some(ended) = all_children_done(txn, row, None, &mut events).await?
        {
            // Ended at once (no children, no next step, or one that cannot be read): its own
            // parent hears of it as of any end.
            settle_parent(txn, ended, &mut events).await?;
        }
    } else {
        settle_parent(txn, row, &mut events).await?;
    }
    Ok(Finished {
        applied: true,
        events,
    })
}

/// Tells the parent of a job that reached a terminal status, and so on up the family.
async fn settle_parent(
    txn: &DatabaseTransaction,
    mut child: job::Model,
    events: &mut Vec<JobEvent>,
) -> AppResult<()> {
    while let Some(parent_id) = child.parent_id {
        let now = Utc::now();
        let parent = match child.status {
            JobStatus::Done => {
                let rows = job::Entity::update_many()
                    .col_expr(
                        job::Column::PendingChildren,
                        Expr::col(job::Column::PendingChildren).sub(1),
                    )
                    .col_expr(job::Column::UpdatedAt, Expr::val(now))
                    .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1))
                    .filter(reports_to(&child, parent_id))
                    .filter(job::Column::Status.eq(JobStatus::Waiting))
                    .exec_with_returning(txn)
                    .await?;
                let Some(parent) = rows.into_iter().next() else {
                    return Ok(());
                };
                events.push(event_of(&parent));
                if parent.pending_children > 0 {
                    return Ok(());
                }
                match all_children_done(txn, parent, Some(&child), events).await? {
                    Some(done) => done,
                    None => return Ok(()),
                }
            }
            JobStatus::Failed | JobStatus::Cancelled => {
                let (status, error) = if child.status == JobStatus::Failed {
                    let reason = child.error.as_deref().unwrap_or("unknown error");
                    (
                        JobStatus::Failed,
                        Some(format!("{} failed: {reason}", child.job_type)),
                    )
                } else {
                    (JobStatus::Cancelled, None)
                };
                let rows = job::Entity::update_many()
                    .col_expr(job::Column::Status, Expr::val(status))
                    .col_expr(job::Column::Error, Expr::val(error.clone()))
                    .col_expr(job::Column::FinishedAt, Expr::val(now))
                    .col_expr(job::Column::UpdatedAt, Expr::val(now))
                    .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1))
                    .filter(reports_to(&child, parent_id))
                    .filter(job::Column::Status.eq(JobStatus::Waiting))
                    .exec_with_returning(txn)
                    .await?;
                let Some(parent) = rows.into_iter().next() else {
                    return Ok(());
                };
                events.push(event_of(&parent));
                record_end(txn, &parent, None, error.as_deref(), events).await?;
                // The siblings' work is pointless now.
                events.extend(cancel_descendants(txn, parent.id, false).await?);
                parent
            }
            _ => return Ok(()),
        };
        child = parent;
    }
    Ok(())
}

/// The row a child's end is reported to: its parent, while on the attempt that made the child.
/// A child of an earlier attempt, still stopping after `retryJob`, reports to no one.
fn reports_to(child: &job::Model, parent_id: Uuid) -> Condition {
    let parent = Condition::all().add(job::Column::Id.eq(parent_id));
    match child.parent_attempt {
        Some(attempt) => parent.add(job::Column::Attempts.eq(attempt)),
        None => parent,
    }
}

/// A waiting parent whose children are all done: enqueue its continuation, or finish it with
/// the last child's output. Returns the parent when it is now done.
async fn all_children_done(
    txn: &DatabaseTransaction,
    parent: job::Model,
    last_child: Option<&job::Model>,
    events: &mut Vec<JobEvent>,
) -> AppResult<Option<job::Model>> {
    let now = Utc::now();
    let stored = parent
        .output
        .as_ref()
        .and_then(|o| o.get("continuation"))
        .filter(|c| !c.is_null());
    let continuation: Option<NewJob> = match stored {
        None => None,
        Some(stored) => match serde_json::from_value(stored.clone()) {
            Ok(next) => Some(next),
            // Written by a version that stores its steps otherwise (a rolling upgrade while
            // the parent waited): the parent fails, rather than end DONE without its last step.
            Err(err) => {
                tracing::error!(job_id = %parent.id, error = %err, "a waiting job's next step cannot be read");
                let error = "its next step could not be read (written by another version of \
                             the server); retry the job";
                let failed = job::Entity::update_many()
                    .col_expr(job::Column::Status, Expr::val(JobStatus::Failed))
                    .col_expr(job::Column::Error, Expr::val(error));
                return end_waiting(txn, parent.id, failed, Some(error), events).await;
            }
        },
    };
    if let Some(mut next) = continuation {
        next.parent_id = Some(parent.id);
        next.parent_attempt = Some(parent.attempts);
        next.owner_id = parent.owner_id;
        next.creator_id = parent.creator_id;
        next.idempotency_key = None;
        let enqueued = enqueue(txn, next).await?;
        events.push(event_of(&enqueued.job));
        let rows = job::Entity::update_many()
            .col_expr(job::Column::PendingChildren, Expr::val(1))
            .col_expr(
                job::Column::Output,
                Expr::val(json!({ "continuation": null, "children": 1 })),
            )
            .col_expr(job::Column::UpdatedAt, Expr::val(now))
            .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1))
            .filter(job::Column::Id.eq(parent.id))
            .exec_with_returning(txn)
            .await?;
        events.extend(rows.iter().map(event_of));
        return Ok(None);
    }
    // An earlier attempt's error (its worker stopped answering while it planned, say) does not
    // stay on a job that ended DONE.
    let done = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::val(JobStatus::Done))
        .col_expr(job::Column::Error, Expr::val(Option::<String>::None))
        .col_expr(job::Column::Progress, Expr::val(1.0))
        .col_expr(
            job::Column::Output,
            Expr::val(last_child.and_then(|c| c.output.clone())),
        )
        .col_expr(
            job::Column::OutputRef,
            Expr::val(last_child.and_then(|c| c.output_ref.clone())),
        );
    end_waiting(txn, parent.id, done, None, events).await
}

/// Ends the waiting job `id` with `update` (its status and what goes with it), when it is
/// still waiting: stamps and versions it, records the end (`note` in its transition).
/// Returns the ended job.
async fn end_waiting(
    txn: &DatabaseTransaction,
    id: Uuid,
    update: sea_orm::UpdateMany<job::Entity>,
    note: Option<&str>,
    events: &mut Vec<JobEvent>,
) -> AppResult<Option<job::Model>> {
    let now = Utc::now();
    let rows = update
        .col_expr(job::Column::FinishedAt, Expr::val(now))
        .col_expr(job::Column::UpdatedAt, Expr::val(now))
        .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::Status.eq(JobStatus::Waiting))
        .exec_with_returning(txn)
        .await?;
    let Some(ended) = rows.into_iter().next() else {
        return Ok(None);
    };
    events.push(event_of(&ended));
    record_end(txn, &ended, None, note, events).await?;
    Ok(Some(ended))
}

/// Cancels a job's unfinished descendants (and the job itself when `include_root`): queued
/// and waiting ones at once, running ones by raising `cancel_requested` for their worker.
async fn cancel_descendants(
    txn: &DatabaseTransaction,
    root: Uuid,
    include_root: bool,
) -> AppResult<Vec<JobEvent>> {
    let backend = txn.get_database_backend();
    let placeholder = |n: usize| match backend {
        DatabaseBackend::Sqlite => format!("?{n}"),
        _ => format!("${n}"),
    };
    let root_filter = if include_root {
        String::new()
    } else {
        format!(" AND id <> {}", placeholder(1))
    };
    let text = format!(
        "WITH RECURSIVE tree(id) AS (
            SELECT id FROM jobs WHERE id = {p1}
            UNION ALL
            SELECT j.id FROM jobs j JOIN tree t ON j.parent_id = t.id
        )
        UPDATE jobs SET
            status = CASE WHEN status = 'RUNNING' THEN 'RUNNING' ELSE 'CANCELLED' END,
            cancel_requested = CASE WHEN status = 'RUNNING' THEN TRUE ELSE cancel_requested END,
            finished_at = CASE WHEN status = 'RUNNING' THEN finished_at ELSE {p2} END,
            error = CASE WHEN status = 'RUNNING' THEN error ELSE NULL END,
            updated_at = {p2},
            seq = seq + 1
        WHERE id IN (SELECT id FROM tree) AND status IN ('QUEUED', 'WAITING', 'RUNNING')
            AND NOT (status = 'RUNNING' AND cancel_requested){root_filter}
        RETURNING *",
        p1 = placeholder(1),
        p2 = placeholder(2),
    );
    let statement = Statement::from_sql_and_values(backend, text, [root.into(), Utc::now().into()]);
    let rows = job::Model::find_by_statement(statement).all(txn).await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        events.push(event_of(row));
        if row.status == JobStatus::Cancelled {
            record_end(txn, row, None, Some("cancelled"), &mut events).await?;
        }
    }
    Ok(events)
}

/// Cancels a job and its descendants. Queued and waiting jobs stop at once; running ones are
/// flagged and their worker stops them (and their processes) within a heartbeat.
pub async fn cancel(
    db: &DatabaseConnection,
    bus: &EventBus,
    job_id: Uuid,
) -> AppResult<job::Model> {
    for attempt in 1.. {
        match cancel_once(db, bus, job_id).await {
            Err(err) if err.is_deadlock() && attempt < DEADLOCK_ATTEMPTS => {}
            other => return other,
        }
    }
    unreachable!("the loop returns")
}

async fn cancel_once(
    db: &DatabaseConnection,
    bus: &EventBus,
    job_id: Uuid,
) -> AppResult<job::Model> {
    let txn = begin_write(db).await?;
    if lock_down_to(&txn, job_id).await?.is_none() {
        return Err(AppError::NotFound("job"));
    }
    let mut events = cancel_descendants(&txn, job_id, true).await?;
    // On PostgreSQL that statement may have waited for a worker ending a job of the family,
    // and seen the job's new status but not the children it made, which its snapshot predates.
    // A second statement sees them (a job still running now is flagged, and its end will see
    // the flag: `finish_in` reads it under lock).
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        events.extend(cancel_descendants(&txn, job_id, false).await?);
    }
    let job = job::Entity::find_by_id(job_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("job"))?;
    if job.status == JobStatus::Cancelled && events.iter().any(|e| e.job_id == job_id) {
        settle_parent(&txn, job.clone(), &mut events).await?;
    }
    txn.commit().await?;
    bus.publish(&events).await;
    Ok(job)
}

/// Runs a failed or cancelled top-level job again, with a fresh budget of attempts.
pub async fn retry(db: &DatabaseConnection, bus: &EventBus, job_id: Uuid) -> AppResult<job::Model> {
    let txn = begin_write(db).await?;
    let current = job::Entity::find_by_id(job_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("job"))?;
    if current.parent_id.is_some() {
        return Err(AppError::bad_input(
            "id",
            "this is a child job; retry its top-level job instead",
        ));
    }
    // Its idempotency key may have been taken since it ended (a key names one unfinished job
    // at a time): say so, rather than what the unique index's violation says.
    if let Some(key) = &current.idempotency_key
        && matches!(current.status, JobStatus::Failed | JobStatus::Cancelled)
        && let Some(holder) = job::Entity::find()
            .filter(job::Column::OwnerId.eq(current.owner_id))
            .filter(job::Column::IdempotencyKey.eq(key.as_str()))
            .filter(job::Column::Id.ne(job_id))
            .filter(job::Column::Status.is_in([
                JobStatus::Queued,
                JobStatus::Running,
                JobStatus::Waiting,
            ]))
            .one(&txn)
            .await?
    {
        return Err(AppError::conflict(
            Some("id"),
            format!(
                "its idempotency key is now held by job {}, which has not finished: follow \
                 that one, or cancel it before retrying this one",
                holder.id
            ),
        ));
    }
    let now = Utc::now();
    let rows = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::val(JobStatus::Queued))
        .col_expr(job::Column::Error, Expr::val(Option::<String>::None))
        .col_expr(job::Column::Output, Expr::val(Option::<Value>::None))
        .col_expr(job::Column::OutputRef, Expr::val(Option::<String>::None))
        // Progress is kept until a worker claims the retry: the claim starts the next attempt
        // (attempts + 1) at 0, so progress never goes back within one attempt.
        .col_expr(job::Column::CurrentPhase, Expr::val(Option::<String>::None))
        // Started again by the claim, and so is its grace for storage and database outages
        // (measured from the start): an hour-old job retried met a short outage with none.
        .col_expr(
            job::Column::StartedAt,
            Expr::val(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::CancelRequested, Expr::val(false))
        .col_expr(job::Column::PendingChildren, Expr::val(0))
        .col_expr(
            job::Column::FinishedAt,
            Expr::val(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::RunAt, Expr::val(now))
        // A new budget of the job's own size, at most its type's (a job stopped by shutdowns
        // had one added per release): not the whole of what it has had so far, which would
        // double with every retry.
        .col_expr(
            job::Column::MaxAttempts,
            Expr::val(
                current.attempts
                    + current
                        .max_attempts
                        .clamp(1, super::attempts_of(&current.job_type)),
            ),
        )
        .col_expr(job::Column::UpdatedAt, Expr::val(now))
        .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1))
        .filter(job::Column::Id.eq(job_id))
        .filter(job::Column::Status.is_in([JobStatus::Failed, JobStatus::Cancelled]))
        .exec_with_returning(&txn)
        .await?;
    let Some(job) = rows.into_iter().next() else {
        return Err(AppError::conflict(
            None,
            "only failed or cancelled jobs can be retried",
        ));
    };
    let mut events = vec![event_of(&job)];
    record_end(&txn, &job, None, Some("retried"), &mut events).await?;
    crate::render::on_job_retried(&txn, &job).await?;
    txn.commit().await?;
    bus.publish(&events).await;
    Ok(job)
}
