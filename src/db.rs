//! Database connection and migrations for both backends.
//!
//! Embedded mode is an SQLite file in WAL mode inside the data dir; production is PostgreSQL.
//! Both run the same migrations from the `migration` crate.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    QueryTrait, RuntimeErr, Statement, sqlx,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

use crate::config::Config;

/// Called once per SQL statement sent, with its text; for metrics and the read cache.
pub type StatementHook = Arc<dyn Fn(&str) + Send + Sync>;

tokio::task_local! {
    /// What the work [`counting_statements`] runs has sent so far.
    static STATEMENTS: Tally;
}

/// The SQL statements some work sent from its own task ([`counting_statements`]).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    count: std::cell::Cell<u64>,
    /// Whether one of them named a table whose changes are not announced
    /// ([`crate::graphql::read_cache::NOT_CACHED_TABLES`]).
    uncached: std::cell::Cell<bool>,
    /// Whether one of them may have changed a table whose changes are announced
    /// ([`crate::graphql::read_cache::writes_content`]).
    wrote_content: std::cell::Cell<bool>,
}

impl Tally {
    pub fn count(&self) -> u64 {
        self.count.get()
    }

    /// Whether what the statements read may be kept in the read cache.
    pub fn cacheable(&self) -> bool {
        !self.uncached.get()
    }

    /// Whether the statements may have changed what the read cache keeps.
    pub fn wrote_content(&self) -> bool {
        self.wrote_content.get()
    }
}

/// Runs `work`, counting the SQL statements it sends from its own task (a GraphQL request's
/// resolvers and loaders run there; the workers and other requests do not), and returns its
/// output with the tally.
pub async fn counting_statements<F: Future>(work: F) -> (F::Output, Tally) {
    STATEMENTS
        .scope(Tally::default(), async {
            let output = work.await;
            (output, STATEMENTS.with(Tally::clone))
        })
        .await
}

/// Opens the configured database (creating the data dir and SQLite file when embedded).
pub async fn connect(
    config: &Config,
    on_statement: Option<StatementHook>,
) -> anyhow::Result<DatabaseConnection> {
    // Set but empty (`DATABASE_URL=` in an env file) is unset, as for the other settings.
    let mut options = match config
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        Some(url) if config.is_postgres() => {
            let mut opts = ConnectOptions::new(url.to_owned());
            opts.max_connections(config.db_max_connections);
            opts
        }
        // Created when missing, as the embedded default's is, unless the URL says otherwise
        // (`mode=ro`, `mode=rw`).
        Some(url) if url.starts_with("sqlite:") => sqlite_options(match url.contains("mode=") {
            true => url.to_owned(),
            false if url.contains('?') => format!("{url}&mode=rwc"),
            false => format!("{url}?mode=rwc"),
        }),
        Some(url) => anyhow::bail!(
            "DATABASE_URL must start with postgres:// or sqlite: (got scheme `{}`)",
            url.split(':').next().unwrap_or_default()
        ),
        None => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
            let path = config.data_dir.join("reelgraph.db");
            sqlite_options(format!("sqlite://{}?mode=rwc", path.display()))
        }
    };
    // sqlx pings a pooled connection on every checkout by default: one extra round trip per
    // statement. Only connections idle for a second are checked (a busy server's are never,
    // a quiet one's pay a round trip where it costs nothing), and every connection for a while
    // after one was found lost (`note_if_connection_lost`): a database restarted or failed
    // over, or a proxy that dropped connections, then costs no request a connection error.
    options
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .map_sqlx_postgres_before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR || checking_every_connection() {
                    use sqlx::Connection;
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .sqlx_logging(false);
    // A PostgreSQL server started beside us (compose, a pod) may refuse connections, or
    // answer "starting up", for a while after it looks ready: keep trying that, but not a
    // refusal of who we are.
    let wait = Duration::from_secs(if config.is_postgres() {
        config.db_wait_secs
    } else {
        0
    });
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    let postgres_url = config
        .database_url
        .as_deref()
        .filter(|_| config.is_postgres());
    let connected = loop {
        // One connection first: the pool keeps trying a refused one for its whole acquire
        // timeout (10 s), so each try took 10 s, and a wait of 0 or 3 s took 10.
        let reached = match postgres_url {
            Some(url) => reach(url).await,
            None => Ok(()),
        };
        let attempt = match reached {
            Ok(()) => Database::connect(options.clone()).await,
            Err(err) => Err(err),
        };
        // Tried until the wait is over, the last time at its end (giving up when the next
        // pause would cross it missed a server up just before).
        let waited = started.elapsed();
        match attempt {
            Err(err) if not_up_yet(&err) && waited < wait => {
                tracing::warn!(error = %err, "the database is not up yet; trying again");
                tokio::time::sleep(pause.min(wait - waited)).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => break other,
        }
    };
    let mut db = connected.map_err(|err| {
        // sqlx quotes a connection string it cannot parse, password and all.
        let message = tidied(&err.to_string());
        let message = match &config.database_url {
            Some(url) if !url.is_empty() => message.replace(url.as_str(), "<DATABASE_URL>"),
            _ => message,
        };
        // Say where it tried (never with the password), which sqlx's pool timeout does not.
        let place = config
            .database_url
            .as_deref()
            .filter(|_| config.is_postgres())
            .and_then(|url| url::Url::parse(url).ok())
            .map(|url| {
                format!(
                    " at {}:{}",
                    url.host_str().unwrap_or("localhost"),
                    url.port().unwrap_or(5432)
                )
            })
            .unwrap_or_default();
        anyhow::anyhow!("connecting to the database{place}: {message}")
    })?;
    db.set_metric_callback(move |info| {
        if let Some(hook) = &on_statement {
            hook(&info.statement.sql);
        }
        let _ = STATEMENTS.try_with(|tally| {
            tally.count.set(tally.count.get() + 1);
            if !tally.uncached.get()
                && crate::graphql::read_cache::names_uncached_table(&info.statement.sql)
            {
                tally.uncached.set(true);
            }
            if !tally.wrote_content.get()
                && crate::graphql::read_cache::writes_content(&info.statement.sql)
            {
                tally.wrote_content.set(true);
            }
        });
    });
    Ok(db)
}

/// A connection error as an operator reads it: what the server said, without the layers'
/// prefixes and the line of PostgreSQL's own source it came from ("Connection Error: error
/// returned from database: database \"x\" does not exist at line 948").
fn tidied(message: &str) -> String {
    let message = message.trim();
    let message = message
        .strip_prefix("Connection Error: ")
        .unwrap_or(message);
    let message = message
        .strip_prefix("error returned from database: ")
        .unwrap_or(message);
    match message.rsplit_once(" at line ") {
        Some((said, line)) if !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) => {
            said.to_owned()
        }
        _ => message.to_owned(),
    }
}

/// Opens and closes one connection to the PostgreSQL server at `url`: whether it is up.
async fn reach(url: &str) -> Result<(), DbErr> {
    use sqlx::Connection;
    let failed = |err: sqlx::Error| DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(err)));
    let connection =
        tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url))
            .await
            .map_err(|_| failed(sqlx::Error::PoolTimedOut))?
            .map_err(failed)?;
    let _ = connection.close().await;
    Ok(())
}

/// A pooled PostgreSQL connection idle this long is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
/// For how long after a connection was found lost every pooled one is pinged first.
const CHECK_ALL_FOR: Duration = Duration::from_secs(10);

/// Until when (milliseconds since the process's first use of it) every pooled connection is
/// pinged before it is handed out.
static CHECK_ALL_UNTIL_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn process_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn checking_every_connection() -> bool {
    process_ms() < CHECK_ALL_UNTIL_MS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether `err` says the connection it ran on is gone: closed under it (the server restarted,
/// a proxy or a NAT dropped it), or ended by the server (`57P01`–`57P03`: terminated by an
/// administrator, a crash, a shutdown), or any other connection exception (class `08`).
pub fn connection_lost(err: &DbErr) -> bool {
    let (DbErr::Conn(RuntimeErr::SqlxError(err))
    | DbErr::Exec(RuntimeErr::SqlxError(err))
    | DbErr::Query(RuntimeErr::SqlxError(err))) = err
    else {
        return false;
    };
    match err.as_ref() {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("57P0") || code.starts_with("08")),
        _ => false,
    }
}

/// After an error of a lost connection, the pool's other connections are likely gone too (a
/// database restart ends them all): each is pinged before use for [`CHECK_ALL_FOR`], so that
/// only the request that found the first one fails.
pub fn note_if_connection_lost(err: &DbErr) {
    if connection_lost(err) {
        let until = process_ms().saturating_add(CHECK_ALL_FOR.as_millis() as u64);
        CHECK_ALL_UNTIL_MS.fetch_max(until, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether connecting failed because the server is not (yet) there or still starting, rather
/// than because it refused us.
fn not_up_yet(err: &DbErr) -> bool {
    let (DbErr::Conn(RuntimeErr::SqlxError(err)) | DbErr::Exec(RuntimeErr::SqlxError(err))) = err
    else {
        return matches!(err, DbErr::ConnectionAcquire(_));
    };
    match err.as_ref() {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // cannot_connect_now: "the database system is starting up" (or shutting down, or in
        // recovery).
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

fn sqlite_options(url: String) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url);
    // WAL lets readers run beside the single writer; the busy timeout makes writers queue
    // instead of failing with SQLITE_BUSY.
    opts.max_connections(8).map_sqlx_sqlite_opts(|o| {
        o.journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
    });
    opts
}

/// How many migrations the database still lacks (all of them on an empty one). Reads only:
/// it does not create the migrations table either.
pub async fn pending_migrations(db: &DatabaseConnection) -> anyhow::Result<usize> {
    Ok(Migrator::get_pending_migrations_read_only(db)
        .await
        .context("reading the applied migrations")?
        .len())
}

/// Applies pending migrations, in one transaction that processes starting together take in
/// turn, so they migrate once and the others wait: on PostgreSQL it holds an advisory lock; on
/// SQLite it is `BEGIN IMMEDIATE`, which holds the database's write lock (two processes on a
/// fresh data folder both applied the first migration, and one stopped on "table users
/// already exists").
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    let txn = crate::jobs::queue::begin_write(db)
        .await
        .context("starting the migration transaction")?;
    if db.get_database_backend() == DatabaseBackend::Postgres {
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(72656567)")
            .await
            .context("taking the migration lock")?;
    }
    Migrator::up(&txn, None)
        .await
        .context("applying migrations")?;
    txn.commit().await.context("committing migrations")?;
    Ok(())
}

/// `sql` with each PostgreSQL placeholder `$n` renumbered `$(n + by)`, for a statement built on
/// its own and placed after another's `by` parameters. Quoted text (`'…'`, `"…"`) is left as
/// it is.
pub fn shift_placeholders(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                out.push(c);
                quote = Some(c);
            }
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    chars.next();
                }
                out.push_str(&format!("${}", n + by));
            }
            None => out.push(c),
        }
    }
    out
}

/// True when every migration has been applied.
pub async fn is_migrated(db: &DatabaseConnection) -> anyhow::Result<bool> {
    Ok(Migrator::get_pending_migrations_read_only(db)
        .await
        .context("reading migration state")?
        .is_empty())
}

/// Builds `query` (which must have no `LIMIT`, `OFFSET` or locking clause of its own) with a
/// literal `LIMIT limit`.
///
/// A page size bound as a parameter makes PostgreSQL plan the prepared statement again on
/// every execution: the plan for `LIMIT $n` depends on `n`, so the generic plan is never
/// chosen. Written into the text, each page size is its own statement, planned once per
/// connection (sqlx caches prepared statements), and page sizes are few and at most 101.
pub fn build_with_limit(
    query: &impl QueryTrait,
    backend: DatabaseBackend,
    limit: u64,
) -> Statement {
    let mut statement = query.build(backend);
    statement.sql.push_str(&format!(" LIMIT {limit}"));
    statement
}

/// Row locks where the database has them. PostgreSQL takes `FOR UPDATE` or `FOR SHARE` on the
/// rows a query reads; SQLite has no row locks, and its writers are serialised instead (write
/// transactions start with `queue::begin_write`), so there the query is left as it is.
pub trait RowLock: Sized {
    /// `FOR UPDATE` on PostgreSQL.
    fn for_update(self, db: &impl ConnectionTrait) -> Self;
    /// `FOR SHARE` on PostgreSQL.
    fn for_share(self, db: &impl ConnectionTrait) -> Self;
    /// `FOR NO KEY UPDATE` on PostgreSQL: excludes other writers of the row, but not the
    /// key-share locks that inserting rows which refer to it take.
    fn for_no_key_update(self, db: &impl ConnectionTrait) -> Self;
}

impl<E: sea_orm::EntityTrait> RowLock for sea_orm::Select<E> {
    fn for_update(self, db: &impl ConnectionTrait) -> Self {
        use sea_orm::QuerySelect;
        match db.get_database_backend() {
            DatabaseBackend::Postgres => self.lock_exclusive(),
            _ => self,
        }
    }

    fn for_share(self, db: &impl ConnectionTrait) -> Self {
        use sea_orm::QuerySelect;
        match db.get_database_backend() {
            DatabaseBackend::Postgres => self.lock_shared(),
            _ => self,
        }
    }

    fn for_no_key_update(self, db: &impl ConnectionTrait) -> Self {
        use sea_orm::{QuerySelect, sea_query::LockType};
        match db.get_database_backend() {
            DatabaseBackend::Postgres => self.lock(LockType::NoKeyUpdate),
            _ => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{shift_placeholders, tidied};

    #[test]
    fn connection_errors_say_what_the_server_said() {
        assert_eq!(
            tidied(
                "Connection Error: error returned from database: database \"x\" does not exist at line 948"
            ),
            "database \"x\" does not exist"
        );
        assert_eq!(
            tidied("Connection Error: pool timed out while waiting for an open connection"),
            "pool timed out while waiting for an open connection"
        );
        // Only a line number is taken off.
        assert_eq!(tidied("stopped at line one"), "stopped at line one");
    }

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        assert_eq!(
            shift_placeholders(
                r#"SELECT "a$1" FROM t WHERE x = $1 AND y = '$2 it''s' AND z IN ($2, $10) LIMIT 3"#,
                4
            ),
            r#"SELECT "a$1" FROM t WHERE x = $5 AND y = '$2 it''s' AND z IN ($6, $14) LIMIT 3"#
        );
        assert_eq!(shift_placeholders("$1", 0), "$1");
        assert_eq!(shift_placeholders("cost $ 5", 2), "cost $ 5");
    }
}
