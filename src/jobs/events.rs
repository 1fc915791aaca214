//! Job change notifications.
//!
//! After a job change commits, its writer publishes a [`JobEvent`] — a hint carrying ids and
//! the row's new `seq`, never the row itself. Listeners re-read the row. In embedded mode the
//! bus is an in-process broadcast. With PostgreSQL, publishing is `pg_notify` (outside the
//! state transaction), and each process holds one dedicated `LISTEN` connection that feeds its
//! broadcast — so a process hears its own changes and every other process's the same way.
//! After the listener reconnects, it sends [`BusMessage::Resync`]: whatever was missed in
//! between must be re-read from the table.

use std::{sync::Arc, time::Duration};

use entity::{JobStatus, job, job_transition};
use quick_cache::{Weighter, sync::Cache};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Statement, sqlx::postgres::PgListener,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{auth::revoked::RevokedSessions, graphql::read_cache::ReadCache};

const CHANNEL: &str = "reelgraph_jobs";
/// Sessions ended in one process, for the others' lists (`auth::revoked`); payload: the id.
/// (Read as a list of ids separated by commas, so that a later version may send several at
/// once; sending them so would be lost on the servers of this version and before it.)
const SESSIONS_CHANNEL: &str = "reelgraph_sessions";

/// Tells every server on the PostgreSQL database `db` that `sessions` ended (committed), so
/// their access tokens stop working at once; for processes without an event bus (the CLI).
/// SQLite has no such channel: a server reads ended sessions when it starts, and until then
/// their access tokens work for the rest of their lifetime (refreshing them fails at once).
pub async fn announce_revoked(db: &DatabaseConnection, sessions: &[Uuid]) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    for id in sessions {
        let statement = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [SESSIONS_CHANNEL.into(), id.to_string().into()],
        );
        if let Err(err) = db.execute_raw(statement).await {
            // The other processes refuse its tokens once they next reload (within
            // `listen_check_ms`), or when the tokens expire.
            tracing::warn!(error = %err, session_id = %id, "could not announce an ended session");
        }
    }
}
/// Events buffered per subscriber; a subscriber further behind gets `Lagged` and re-reads.
const BUFFER: usize = 1024;

/// A committed change of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobEvent {
    pub job_id: Uuid,
    pub owner_id: Uuid,
    /// The job's version after the change; only grows.
    pub seq: i64,
    /// The job became claimable: idle workers should look for work.
    pub wake: bool,
}

impl JobEvent {
    fn encode(&self) -> String {
        format!(
            "{},{},{},{}",
            self.job_id,
            self.owner_id,
            self.seq,
            u8::from(self.wake)
        )
    }

    fn decode(payload: &str) -> Option<Self> {
        let mut parts = payload.split(',');
        let event = Self {
            job_id: parts.next()?.parse().ok()?,
            owner_id: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            wake: parts.next()? == "1",
        };
        parts.next().is_none().then_some(event)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusMessage {
    Job(JobEvent),
    /// Events may have been missed: re-read state from the database.
    Resync,
}

/// Fan-out of job events to subscriptions and workers in this process.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<BusMessage>,
    db: DatabaseConnection,
    /// Rows re-read for events, by `(job, seq)`: every subscriber of a job hears the same event
    /// at once, and one read serves them all ([`EventBus::job_at`]).
    reads: Arc<Cache<(Uuid, i64), JobRead, RowSize>>,
}

/// A job row read for an event; `None` once the job is deleted.
type JobRead = Option<Arc<job::Model>>;

/// Rows kept for subscribers of an event that come late: an entry only has to outlive one
/// fan-out, so a few MiB is plenty.
const READS_KEPT: usize = 1024;
const READS_WEIGHT: u64 = 4 << 20;

/// Weighs a row by its JSON documents: a movie's input holds its whole spec.
#[derive(Clone)]
struct RowSize;

impl Weighter<(Uuid, i64), JobRead> for RowSize {
    fn weight(&self, _: &(Uuid, i64), row: &JobRead) -> u64 {
        let json = |value: &serde_json::Value| {
            let mut counter = ByteCounter(0);
            let _ = serde_json::to_writer(&mut counter, value);
            counter.0
        };
        row.as_ref().map_or(64, |row| {
            512 + json(&row.input) + row.output.as_ref().map_or(0, json)
        })
    }
}

/// Counts what is written to it.
struct ByteCounter(u64);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl EventBus {
    /// A bus for `db`. With PostgreSQL, also starts the LISTEN task (until `shutdown`).
    pub fn start(
        db: DatabaseConnection,
        database_url: Option<&str>,
        shutdown: CancellationToken,
        revoked: Arc<RevokedSessions>,
        read_cache: Arc<ReadCache>,
        check_after: Duration,
    ) -> Self {
        let (tx, _) = broadcast::channel(BUFFER);
        if db.get_database_backend() == DatabaseBackend::Postgres
            && let Some(url) = database_url
        {
            let sessions = SessionFeed {
                revoked,
                read_cache,
            };
            tokio::spawn(listen(
                url.to_owned(),
                tx.clone(),
                sessions,
                shutdown,
                check_after,
            ));
        }
        Self {
            tx,
            db,
            reads: Arc::new(Cache::with_weighter(READS_KEPT, READS_WEIGHT, RowSize)),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.tx.subscribe()
    }

    /// The job as it is now that version `seq` of it has committed: at `seq` or newer, or
    /// `None` once deleted. Subscribers ask this for each event they hear; the subscribers of
    /// one job (`jobUpdated`, `jobsUpdated` of its owner, on any number of sockets) share one
    /// read per event instead of one each. A failed read is not kept: the next caller tries
    /// again.
    pub async fn job_at(&self, id: Uuid, seq: i64) -> Result<JobRead, DbErr> {
        self.reads
            .get_or_insert_async(&(id, seq), async {
                job::Entity::find_by_id(id)
                    .one(&self.db)
                    .await
                    .map(|row| row.map(Arc::new))
            })
            .await
    }

    /// Tells the other processes sharing the database that these sessions ended (the caller
    /// has added them to its own list). Embedded mode has no other process.
    pub async fn announce_revoked(&self, sessions: &[Uuid]) {
        announce_revoked(&self.db, sessions).await;
    }

    /// Announces committed changes. Call only after the transaction that made them committed.
    pub async fn publish(&self, events: &[JobEvent]) {
        if events.is_empty() {
            return;
        }
        match self.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                for event in events {
                    let statement = Statement::from_sql_and_values(
                        DatabaseBackend::Postgres,
                        "SELECT pg_notify($1, $2)",
                        [CHANNEL.into(), event.encode().into()],
                    );
                    if let Err(err) = self.db.execute_raw(statement).await {
                        // The state itself is safe; subscriptions re-read when idle for a while.
                        tracing::warn!(error = %err, job_id = %event.job_id, "could not publish job event");
                    }
                }
            }
            _ => {
                for event in events {
                    let _ = self.tx.send(BusMessage::Job(*event));
                }
            }
        }
    }
}

/// When `row` (read for an event) has moved past a FAILED or CANCELLED status that came after
/// version `after` — `retryJob` put it back in the queue before the read — the job as it was
/// then, rebuilt from its timeline (`job_transitions`): status, version, attempt, error and
/// end time; `progress` is `progress`, what the subscriber last saw of that attempt. A
/// subscriber sends it before `row`, so it never misses an end. Reads only when versions
/// were skipped.
pub async fn end_passed(
    db: &DatabaseConnection,
    row: &job::Model,
    after: i64,
    progress: f64,
) -> Result<Option<job::Model>, DbErr> {
    if row.seq <= after + 1 {
        return Ok(None);
    }
    first_end(db, row, job_transition::Column::Seq.gt(after), progress).await
}

/// As [`end_passed`], for a job the subscriber has sent nothing of yet: the first FAILED or
/// CANCELLED status it passed at or after `since` (when the subscription started), before
/// `row`. Without it, a job whose failure's event was lost and that was retried at once
/// would be heard of first as QUEUED, its end never told.
pub async fn end_passed_since(
    db: &DatabaseConnection,
    row: &job::Model,
    since: chrono::DateTime<chrono::Utc>,
    progress: f64,
) -> Result<Option<job::Model>, DbErr> {
    if row.seq <= 1 {
        return Ok(None);
    }
    first_end(
        db,
        row,
        job_transition::Column::CreatedAt.gte(since),
        progress,
    )
    .await
}

async fn first_end(
    db: &DatabaseConnection,
    row: &job::Model,
    from: sea_orm::sea_query::SimpleExpr,
    progress: f64,
) -> Result<Option<job::Model>, DbErr> {
    let passed = job_transition::Entity::find()
        .filter(job_transition::Column::JobId.eq(row.id))
        .filter(from)
        .filter(job_transition::Column::Seq.lt(row.seq))
        .filter(job_transition::Column::Status.is_in([JobStatus::Failed, JobStatus::Cancelled]))
        .order_by_asc(job_transition::Column::Seq)
        .one(db)
        .await?;
    Ok(passed.map(|end| job::Model {
        status: end.status,
        seq: end.seq,
        attempts: end.attempt,
        error: (end.status == JobStatus::Failed)
            .then_some(end.note)
            .flatten(),
        finished_at: Some(end.created_at),
        updated_at: end.created_at,
        progress,
        current_phase: None,
        lease_token: None,
        lease_expires_at: None,
        output: None,
        output_ref: None,
        pending_children: 0,
        ..row.clone()
    }))
}

/// Where the listener puts ended sessions, and the content changes it hears.
struct SessionFeed {
    revoked: Arc<RevokedSessions>,
    read_cache: Arc<ReadCache>,
}

impl SessionFeed {
    /// Announcements may have been missed while not listening: read the recent ones again, on
    /// the listener's own connection (no pool connection, and nothing a request is billed).
    async fn reload(&self, listener: &mut PgListener) {
        let rows: Result<Vec<(Uuid, chrono::DateTime<chrono::Utc>)>, _> =
            sea_orm::sqlx::query_as("SELECT id, revoked_at FROM sessions WHERE revoked_at > $1")
                .bind(self.revoked.horizon())
                .fetch_all(listener)
                .await;
        match rows {
            Ok(rows) => self.revoked.add_each(rows),
            // A new database the server has not migrated yet (it listens before it migrates):
            // there is nothing to read, and the server reads the table once it is made.
            Err(sea_orm::sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P01") => {
                tracing::debug!("no sessions table yet: nothing ended to re-read");
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not re-read the sessions ended lately");
            }
        }
    }
}

/// Tells the read cache that changes are no longer heard, when the listener stops.
struct NotLive(Arc<ReadCache>);

impl Drop for NotLive {
    fn drop(&mut self) {
        self.0.set_live(false);
    }
}

/// How long the LISTEN connection has to answer its check.
const LISTEN_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How a re-read of the ended sessions on the listener's connection went.
enum Reread {
    Done,
    /// The connection did not answer within [`LISTEN_CHECK_TIMEOUT`]: make a new one.
    Stalled,
    Stopping,
}

/// Reads the ended sessions again on the listener's connection, within
/// [`LISTEN_CHECK_TIMEOUT`] and until shutdown: a connection that died without a word must
/// not hold up the notifications, nor the shutdown.
async fn reread(
    sessions: &SessionFeed,
    listener: &mut PgListener,
    shutdown: &CancellationToken,
) -> Reread {
    tokio::select! {
        () = shutdown.cancelled() => Reread::Stopping,
        done = tokio::time::timeout(LISTEN_CHECK_TIMEOUT, sessions.reload(listener)) => match done {
            Ok(()) => Reread::Done,
            Err(_) => {
                tracing::warn!(
                    "job event listener: the connection did not answer within {} s; reconnecting",
                    LISTEN_CHECK_TIMEOUT.as_secs()
                );
                Reread::Stalled
            }
        },
    }
}

/// Holds one LISTEN connection, reconnecting with backoff; every (re)connect after the first
/// is followed by a `Resync`, and every connect by a reload of the ended sessions. A lost
/// connection is replaced here, never by sqlx behind our back (`eager_reconnect` off, and
/// the check below sees a new backend): what was missed meanwhile must be re-read. After
/// `check_after` without a notification the connection must answer within
/// [`LISTEN_CHECK_TIMEOUT`]: one that died without a word (no TCP reset reaches a client
/// behind a NAT that forgot it) would otherwise wait for notifications for ever.
async fn listen(
    url: String,
    tx: broadcast::Sender<BusMessage>,
    sessions: SessionFeed,
    shutdown: CancellationToken,
    check_after: Duration,
) {
    let mut connected_before = false;
    let mut backoff = Duration::from_millis(100);
    // However this ends, content changes are no longer heard.
    let _not_live = NotLive(sessions.read_cache.clone());
    loop {
        // Content changes are not heard until a connection LISTENs again.
        sessions.read_cache.set_live(false);
        let listener = async {
            let mut listener = PgListener::connect(&url).await?;
            // `try_recv` then only receives (which may be cancelled safely), and reports a
            // lost connection without reconnecting.
            listener.eager_reconnect(false);
            listener
                .listen_all([
                    CHANNEL,
                    SESSIONS_CHANNEL,
                    crate::graphql::read_cache::CHANNEL,
                ])
                .await?;
            let backend: i32 = sea_orm::sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut listener)
                .await?;
            Ok::<_, sea_orm::sqlx::Error>((listener, backend))
        };
        let (mut listener, backend) = tokio::select! {
            () = shutdown.cancelled() => return,
            result = listener => match result {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "job event listener: cannot connect; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(100);
        // Heard from now on; what changed before is dropped.
        sessions.read_cache.set_live(true);
        if connected_before {
            let _ = tx.send(BusMessage::Resync);
        }
        connected_before = true;
        // What ended before this connection listened (at start too: the server's own load
        // may have run before the LISTEN did).
        match reread(&sessions, &mut listener, &shutdown).await {
            Reread::Done => {}
            Reread::Stalled => continue,
            Reread::Stopping => return,
        }
        let mut reloaded = tokio::time::Instant::now();
        // With the read cache on, a quiet connection is checked every second: the cache serves
        // only while the connection shows it is up (`ReadCache::serving`).
        let quiet = match sessions.read_cache.enabled() {
            true => check_after.min(crate::graphql::read_cache::CHECK_EVERY),
            false => check_after,
        };
        loop {
            // Every `check_after`, busy or not: while jobs run somewhere, notifications never
            // stop long enough for the quiet check below, and an announcement that never came
            // (a request cut off after its commit) would go unnoticed until tokens expire.
            if reloaded.elapsed() >= check_after {
                match reread(&sessions, &mut listener, &shutdown).await {
                    Reread::Done => {}
                    Reread::Stalled => break,
                    Reread::Stopping => return,
                }
                reloaded = tokio::time::Instant::now();
            }
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = tokio::time::timeout(quiet, listener.try_recv()) => next,
            };
            let Ok(next) = next else {
                let check = async {
                    let pid = sea_orm::sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
                        .fetch_one(&mut listener)
                        .await?;
                    // (Checked every second for the read cache, the sessions are read again
                    // every `check_after` above.)
                    if pid == backend && quiet >= check_after {
                        // A quiet moment: read the sessions ended lately again, for one whose
                        // announcement never came (a `pg_notify` that failed).
                        sessions.reload(&mut listener).await;
                    }
                    Ok::<_, sea_orm::sqlx::Error>(pid)
                };
                match tokio::time::timeout(LISTEN_CHECK_TIMEOUT, check).await {
                    Ok(Ok(pid)) if pid == backend => {
                        sessions.read_cache.confirm();
                        if quiet >= check_after {
                            reloaded = tokio::time::Instant::now();
                        }
                        continue;
                    }
                    Ok(Ok(_)) => {
                        tracing::warn!(
                            "job event listener: the connection was replaced; listening afresh"
                        );
                    }
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "job event listener: the connection failed its check; reconnecting");
                    }
                    Err(_) => tracing::warn!(
                        "job event listener: the connection did not answer within {} s; reconnecting",
                        LISTEN_CHECK_TIMEOUT.as_secs()
                    ),
                }
                break;
            };
            if let Ok(Some(_)) = &next {
                sessions.read_cache.confirm();
            }
            match next {
                Ok(Some(notification)) if notification.channel() == SESSIONS_CHANNEL => {
                    let ids = notification
                        .payload()
                        .split(',')
                        .filter_map(|id| id.trim().parse::<Uuid>().ok());
                    sessions.revoked.add(ids, chrono::Utc::now());
                }
                Ok(Some(notification))
                    if notification.channel() == crate::graphql::read_cache::CHANNEL =>
                {
                    sessions.read_cache.changed();
                }
                Ok(Some(notification)) => {
                    if let Some(event) = JobEvent::decode(notification.payload()) {
                        let _ = tx.send(BusMessage::Job(event));
                    }
                }
                Ok(None) => {
                    // The connection dropped: a new one is made above, which LISTENs, then
                    // reloads the ended sessions and tells subscribers to re-read (a re-read
                    // before the LISTEN would miss what ends in between).
                    tracing::warn!("job event listener: connection lost; reconnecting");
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "job event listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_payload() {
        let event = JobEvent {
            job_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            seq: 42,
            wake: true,
        };
        assert_eq!(JobEvent::decode(&event.encode()), Some(event));
        assert_eq!(JobEvent::decode("garbage"), None);
        assert_eq!(JobEvent::decode(&format!("{},extra", event.encode())), None);
    }
}
