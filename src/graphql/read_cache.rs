//! Answers to anonymous queries, kept until anything they may have read changes.
//!
//! Public pages (a creator's profile, a video, a highlight board) are read by many visitors
//! who are not signed in, and each of them gets the same answer until the data changes. This
//! cache keeps the serialised answer of an anonymous query over HTTP — keyed by its text
//! (persisted queries resolved), operation name and variables — and serves it again without
//! running it, until:
//!
//! - **the content changes**: every table an anonymous answer may be made of announces each
//!   committed change (`NOTIFY reelgraph_content`, sent by triggers at commit, whoever wrote:
//!   migration 29), and each server drops everything it holds when it hears one
//!   ([`ReadCache::changed`]). An answer whose statements read any other table (users,
//!   jobs, sessions, billing: [`NOT_CACHED_TABLES`]) is never kept, so a table that changes
//!   often does not empty the cache each time it does;
//! - **it is [`ReadCache::max_age`] old** (`REELGRAPH_READ_CACHE_SECS`, 30 by default):
//!   answers may hold presigned media links, which expire 10 minutes after they are made.
//!
//! An answer is kept only when it has no errors, and only if nothing changed while it was
//! being made (it is stored with the generation it began in, and served only in that one).
//! While the server's LISTEN connection is down, announcements may be lost: nothing is kept
//! or served until it is back ([`ReadCache::set_live`]). A change made by another server is
//! heard within milliseconds of its commit; a signed-in caller (the writer, for one) is never
//! answered from here. SQLite has no announcements, so there the cache is off.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use axum::body::Bytes;
use quick_cache::{Weighter, sync::Cache};

/// The tables whose changes are announced (migration 29): an anonymous answer read from them
/// only may be kept.
pub const CONTENT_TABLES: [&str; 13] = [
    "assets",
    "caption_tracks",
    "creator_follows",
    "creator_members",
    "creators",
    "highlights",
    "key_moments",
    "plans",
    "shorts",
    "transcript_segments",
    "video_consents",
    "video_variants",
    "videos",
];

/// The other tables: their changes are not announced (most change all the time, and none
/// makes a public page), so an answer whose statements name one of them is not kept.
pub const NOT_CACHED_TABLES: [&str; 16] = [
    "consent_audit_log",
    "credit_ledger",
    "invite_codes",
    "job_transitions",
    "jobs",
    "password_resets",
    "refresh_tokens",
    "render_plans",
    "render_usage",
    "scene_cache",
    "seaql_migrations",
    "sessions",
    "storage_deletions",
    "subscriptions",
    "users",
    "webhook_secrets",
];

/// The channel the triggers of migration 29 notify.
pub const CHANNEL: &str = "reelgraph_content";

/// Whether the SQL text `sql` names a table of [`NOT_CACHED_TABLES`] (as a whole word, quoted
/// or not; a column or alias of the same name counts too, which only keeps an answer less).
pub fn names_uncached_table(sql: &str) -> bool {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| NOT_CACHED_TABLES.contains(&word))
}

/// Whether the SQL text `sql` may change a table of [`CONTENT_TABLES`]: it is not a plain
/// `SELECT` and names one of them.
pub fn writes_content(sql: &str) -> bool {
    let sql = sql.trim_start();
    let reads = sql
        .get(..6)
        .is_some_and(|first| first.eq_ignore_ascii_case("select"));
    !reads
        && sql
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| CONTENT_TABLES.contains(&word))
}

/// What identifies an answer: the same text, operation and variables from an anonymous caller
/// get the same answer while the data stays the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    query: String,
    operation: Option<String>,
    variables: String,
}

impl Key {
    pub fn of(request: &async_graphql::Request) -> Option<Self> {
        Some(Self {
            query: request.query.clone(),
            operation: request.operation_name.clone(),
            variables: serde_json::to_string(&request.variables).ok()?,
        })
    }
}

struct Entry {
    generation: u64,
    made: Instant,
    body: Bytes,
}

#[derive(Clone)]
struct Size;

impl Weighter<Key, std::sync::Arc<Entry>> for Size {
    fn weight(&self, key: &Key, entry: &std::sync::Arc<Entry>) -> u64 {
        (key.query.len()
            + key.variables.len()
            + key.operation.as_ref().map_or(0, String::len)
            + entry.body.len()
            + 128) as u64
    }
}

/// See the module documentation.
pub struct ReadCache {
    entries: Cache<Key, std::sync::Arc<Entry>, Size>,
    /// Counts the changes heard (and the times announcements may have been lost).
    generation: AtomicU64,
    /// Whether announcements are heard now (a LISTEN connection is up).
    live: AtomicBool,
    /// When the LISTEN connection last showed it is up (a notification, or an answer to its
    /// check), in milliseconds since `started`: a connection that died without a word
    /// (dropped by a NAT) must not keep the cache serving.
    confirmed_ms: AtomicU64,
    started: Instant,
    max_age: Duration,
}

/// How often a quiet LISTEN connection is checked while the cache is on.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long after the LISTEN connection last showed it is up the cache keeps serving.
const TRUSTED_FOR: Duration = Duration::from_millis(2500);

/// Where a cacheable request stands: served from the cache, or to be run and then kept.
pub enum Lookup {
    Hit(Bytes),
    /// Keep the answer with this key, if it was made within this generation; the generation
    /// and when the request was looked up (the age of the links it will hold).
    Miss(Key, u64, Instant),
}

impl ReadCache {
    /// A cache of at most `bytes` of answers, each served for `max_age` at most; off when
    /// either is zero. It serves nothing until [`Self::set_live`] says changes are heard.
    pub fn new(max_age: Duration, bytes: u64) -> Self {
        let items = (bytes / 2048).clamp(16, 1 << 20) as usize;
        Self {
            entries: Cache::with_weighter(items, bytes.max(1), Size),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            confirmed_ms: AtomicU64::new(0),
            started: Instant::now(),
            max_age: if bytes == 0 { Duration::ZERO } else { max_age },
        }
    }

    /// A cache that keeps nothing.
    pub fn off() -> Self {
        Self::new(Duration::ZERO, 0)
    }

    /// Whether the cache keeps anything at all (on PostgreSQL, unless turned off).
    pub fn enabled(&self) -> bool {
        !self.max_age.is_zero()
    }

    /// Whether answers may be kept and served now: the LISTEN connection is up and showed it
    /// lately.
    pub fn serving(&self) -> bool {
        self.enabled()
            && self.live.load(Ordering::Acquire)
            && self
                .now_ms()
                .saturating_sub(self.confirmed_ms.load(Ordering::Acquire))
                < TRUSTED_FOR.as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The LISTEN connection showed it is up (a notification came, or it answered a check).
    /// After a lapse, announcements may be waiting unread: what is kept is dropped, as after a
    /// reconnection.
    pub fn confirm(&self) {
        let now = self.now_ms();
        let last = self.confirmed_ms.swap(now, Ordering::AcqRel);
        if now.saturating_sub(last) >= TRUSTED_FOR.as_millis() as u64 {
            self.changed();
        }
    }

    /// The answer kept for `key`, or how to keep the one about to be made; `None` when
    /// nothing is kept now.
    pub fn lookup(&self, key: Key) -> Option<Lookup> {
        if !self.serving() {
            return None;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(entry) = self.entries.get(&key)
            && entry.generation == generation
            && entry.made.elapsed() < self.max_age
        {
            return Some(Lookup::Hit(entry.body.clone()));
        }
        Some(Lookup::Miss(key, generation, Instant::now()))
    }

    /// Keeps `body` for `key`, unless the data changed since `generation` began (it may hold
    /// what was read before the change). It expires `max_age` after `looked_up`, when its
    /// making began: the links it holds were made after that.
    pub fn keep(&self, key: Key, generation: u64, looked_up: Instant, body: Bytes) {
        if !self.serving() || self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let entry = Entry {
            generation,
            made: looked_up,
            body,
        };
        self.entries.insert(key, std::sync::Arc::new(entry));
    }

    /// Something an answer may have read changed (committed): nothing kept is served again.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
    }

    /// Whether changes are heard from now on (a LISTEN connection is up) or may be missed
    /// (it is down). Either way what is kept may be out of date, and is dropped.
    pub fn set_live(&self, live: bool) {
        if live {
            self.confirm();
        }
        self.live.store(live, Ordering::Release);
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(query: &str) -> Key {
        Key::of(&async_graphql::Request::new(query)).expect("key")
    }

    fn hit(lookup: Option<Lookup>) -> Option<Bytes> {
        match lookup? {
            Lookup::Hit(body) => Some(body),
            Lookup::Miss(..) => None,
        }
    }

    fn miss(lookup: Option<Lookup>) -> (Key, u64) {
        match lookup {
            Some(Lookup::Miss(key, generation, _)) => (key, generation),
            _ => panic!("expected a miss"),
        }
    }

    #[test]
    fn an_answer_is_served_until_a_change_is_heard() {
        let cache = ReadCache::new(Duration::from_secs(30), 1 << 20);
        assert!(cache.lookup(key("{ a }")).is_none(), "not live yet");
        cache.set_live(true);
        let (k, generation) = miss(cache.lookup(key("{ a }")));
        cache.keep(k, generation, Instant::now(), Bytes::from_static(b"A"));
        assert_eq!(hit(cache.lookup(key("{ a }"))).as_deref(), Some(&b"A"[..]));
        assert!(hit(cache.lookup(key("{ b }"))).is_none());
        cache.changed();
        assert!(hit(cache.lookup(key("{ a }"))).is_none());
    }

    #[test]
    fn an_answer_begun_before_a_change_is_not_kept() {
        let cache = ReadCache::new(Duration::from_secs(30), 1 << 20);
        cache.set_live(true);
        let (k, generation) = miss(cache.lookup(key("{ a }")));
        cache.changed();
        cache.keep(k, generation, Instant::now(), Bytes::from_static(b"old"));
        assert!(hit(cache.lookup(key("{ a }"))).is_none());
    }

    #[test]
    fn nothing_is_served_while_changes_may_be_missed() {
        let cache = ReadCache::new(Duration::from_secs(30), 1 << 20);
        cache.set_live(true);
        let (k, generation) = miss(cache.lookup(key("{ a }")));
        cache.keep(k, generation, Instant::now(), Bytes::from_static(b"A"));
        cache.set_live(false);
        assert!(cache.lookup(key("{ a }")).is_none());
        cache.set_live(true);
        assert!(hit(cache.lookup(key("{ a }"))).is_none());
    }

    #[test]
    fn nothing_is_served_once_the_connection_has_not_shown_it_is_up_for_a_while() {
        let mut cache = ReadCache::new(Duration::from_secs(30), 1 << 20);
        cache.started = Instant::now()
            .checked_sub(Duration::from_secs(10))
            .expect("an instant 10 s ago");
        cache.set_live(true);
        let (k, generation) = miss(cache.lookup(key("{ a }")));
        cache.keep(k, generation, Instant::now(), Bytes::from_static(b"A"));
        assert!(hit(cache.lookup(key("{ a }"))).is_some());
        // The last sign of life 10 s ago.
        cache.confirmed_ms.store(0, Ordering::Release);
        assert!(cache.lookup(key("{ a }")).is_none());
        // Back after the lapse: announcements may be waiting unread, so nothing kept is
        // served; what is kept from now on is, and a confirmation in time keeps it.
        cache.confirm();
        assert!(
            hit(cache.lookup(key("{ a }"))).is_none(),
            "dropped after the lapse"
        );
        let (k, generation) = miss(cache.lookup(key("{ a }")));
        cache.keep(k, generation, Instant::now(), Bytes::from_static(b"A"));
        cache.confirm();
        assert!(
            hit(cache.lookup(key("{ a }"))).is_some(),
            "kept across a timely check"
        );
    }

    #[test]
    fn answers_expire() {
        let cache = ReadCache::new(Duration::from_millis(1), 1 << 20);
        cache.set_live(true);
        let (k, generation) = miss(cache.lookup(key("{ a }")));
        cache.keep(k, generation, Instant::now(), Bytes::from_static(b"A"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(hit(cache.lookup(key("{ a }"))).is_none());
        let off = ReadCache::off();
        off.set_live(true);
        assert!(off.lookup(key("{ a }")).is_none());
    }

    #[test]
    fn variables_and_operation_are_part_of_the_key() {
        let cache = ReadCache::new(Duration::from_secs(30), 1 << 20);
        cache.set_live(true);
        let request = |id: &str, op: Option<&str>| {
            let mut request = async_graphql::Request::new(
                "query A($id: ID!) { video(id: $id) { id } } query B { __typename }",
            )
            .variables(async_graphql::Variables::from_json(
                serde_json::json!({ "id": id }),
            ));
            if let Some(op) = op {
                request = request.operation_name(op);
            }
            Key::of(&request).expect("key")
        };
        let (k, generation) = miss(cache.lookup(request("1", Some("A"))));
        cache.keep(k, generation, Instant::now(), Bytes::from_static(b"one"));
        assert!(hit(cache.lookup(request("2", Some("A")))).is_none());
        assert!(hit(cache.lookup(request("1", Some("B")))).is_none());
        assert!(hit(cache.lookup(request("1", None))).is_none());
        assert!(hit(cache.lookup(request("1", Some("A")))).is_some());
    }

    #[test]
    fn statements_naming_other_tables_are_found() {
        assert!(names_uncached_table(r#"SELECT "jobs"."id" FROM "jobs""#));
        assert!(names_uncached_table("select id from users where x = 1"));
        assert!(!names_uncached_table(
            r#"SELECT "videos"."job_id", "creators"."user_count" FROM "videos""#
        ));
        assert!(writes_content(r#"UPDATE "videos" SET "title" = $1"#));
        assert!(writes_content(
            "WITH moved AS (DELETE FROM highlights RETURNING id) SELECT 1"
        ));
        assert!(!writes_content(
            r#"SELECT "videos"."id" FROM "videos" FOR UPDATE"#
        ));
        assert!(!writes_content(r#"UPDATE "jobs" SET "seq" = 2"#));
        for table in CONTENT_TABLES {
            assert!(!NOT_CACHED_TABLES.contains(&table));
        }
    }
}
