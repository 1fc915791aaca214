//! Per-request batching loaders: every relation resolves through one of these, so a list of N
//! parents costs one query per relation, not N.
//!
//! [`DbLoader`] implements async-graphql's `Loader` trait once per key type (one key type per
//! relation). The batching itself is [`Batcher`], not async-graphql's `DataLoader`: that one
//! collects keys for a fixed 1 ms on a separate task, so on a slow or busy machine a batch can
//! split in two (more statements) and on a fast one every level of nesting still waits the
//! full millisecond. `Batcher` collects keys within the request's own task instead: the first
//! caller yields to the executor a few times, during which every sibling field that was polled
//! in the same pass adds its key, then it loads them all at once. No timer, no split.
//! Results are cached for the rest of the request.
//!
//! Loaders that return videos apply the caller's visibility rules, so a hidden video is simply
//! absent, exactly as if it did not exist.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
    sync::{Arc, Mutex},
};

use async_graphql::dataloader::Loader;
use entity::{
    VideoStatus, consent_audit_entry, creator, creator_follow, creator_member, credit_ledger_entry,
    highlight, job, short, user, video, video_variant, webhook_secret,
};
use futures_util::{FutureExt, future::Shared};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, Statement,
    sea_query::{Asterisk, Expr, ExprTrait, Query},
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    access::Viewer,
    content::loaders::by_video,
    db::{build_with_limit, shift_placeholders},
    error::AppError,
    graphql::{
        narrow::Skip,
        pagination::{PageArgs, fetch_pages_by},
    },
};

/// How often the first caller of a batch yields before loading. Each yield lets the request's
/// task poll every other pending field once, and every sibling field of a list is first polled
/// in the same pass as the leader; the second yield catches keys asked right after another
/// ready future (a primed or cached load). Each yield re-polls the whole pending tree, so
/// fewer is cheaper.
const YIELDS_BEFORE_LOAD: usize = 2;

type BatchResult<K, V> = Result<Arc<HashMap<K, V>>, AppError>;

/// The batch being collected.
struct Pending<K, V> {
    /// Distinguishes batches, so a caller can tell whether the one it joined died.
    generation: u64,
    keys: HashSet<K>,
    result: Shared<oneshot::Receiver<BatchResult<K, V>>>,
}

struct BatcherState<K, V> {
    next_generation: u64,
    pending: Option<Pending<K, V>>,
    /// Every key loaded so far in this request, found or not.
    cache: HashMap<K, Option<V>>,
}

/// Batches and caches loads of one key type for one request.
pub struct Batcher<K, L: Loader<K>>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
{
    loader: Arc<L>,
    /// Off for subscriptions, whose operation lives across many events.
    cache_results: bool,
    state: Mutex<BatcherState<K, L::Value>>,
}

impl<K, L> Batcher<K, L>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    L: Loader<K, Error = AppError>,
{
    pub fn new(loader: Arc<L>, cache_results: bool) -> Self {
        Self {
            loader,
            cache_results,
            state: Mutex::new(BatcherState {
                next_generation: 0,
                pending: None,
                cache: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BatcherState<K, L::Value>> {
        // A poisoned lock only means another caller panicked mid-update of a cache.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a value already read (by a join in a parent's query), so loading it later costs
    /// no statement. Does nothing when results are not cached.
    pub fn prime(&self, key: K, value: Option<L::Value>) {
        if self.cache_results {
            self.lock().cache.entry(key).or_insert(value);
        }
    }

    /// Drops everything cached: a mutation may have changed any of it.
    pub fn clear(&self) {
        self.lock().cache.clear();
    }

    /// Records a value this request has just written, over what may have been read before.
    pub fn replace(&self, key: K, value: Option<L::Value>) {
        if self.cache_results {
            self.lock().cache.insert(key, value);
        }
    }

    /// Drops what was read of `key`: this request changed it, and the next load reads it again.
    pub fn forget(&self, key: &K) {
        self.lock().cache.remove(key);
    }

    pub async fn load_one(&self, key: K) -> Result<Option<L::Value>, AppError> {
        loop {
            let (generation, result, leader) = {
                let mut state = self.lock();
                if let Some(hit) = state.cache.get(&key) {
                    return Ok(hit.clone());
                }
                match &mut state.pending {
                    Some(pending) => {
                        pending.keys.insert(key.clone());
                        (pending.generation, pending.result.clone(), None)
                    }
                    None => {
                        let (tx, rx) = oneshot::channel();
                        let generation = state.next_generation;
                        state.next_generation += 1;
                        let result = rx.shared();
                        state.pending = Some(Pending {
                            generation,
                            keys: HashSet::from([key.clone()]),
                            result: result.clone(),
                        });
                        (generation, result, Some(tx))
                    }
                }
            };
            if let Some(tx) = leader {
                for _ in 0..YIELDS_BEFORE_LOAD {
                    tokio::task::yield_now().await;
                }
                let keys: Vec<K> = self
                    .lock()
                    .pending
                    .take()
                    .map(|p| p.keys.into_iter().collect())
                    .unwrap_or_default();
                let loaded = self.loader.load(&keys).await.map(Arc::new);
                if let (Ok(map), true) = (&loaded, self.cache_results) {
                    let mut state = self.lock();
                    for k in keys {
                        let value = map.get(&k).cloned();
                        state.cache.insert(k, value);
                    }
                }
                // Followers may all be gone already; nothing to do then.
                let _ = tx.send(loaded);
            }
            match result.await {
                Ok(Ok(map)) => return Ok(map.get(&key).cloned()),
                Ok(Err(err)) => return Err(err),
                Err(_) => {
                    // The leader was dropped before loading (its field was cancelled): forget
                    // that batch if it is still the pending one, and start over.
                    let mut state = self.lock();
                    if state
                        .pending
                        .as_ref()
                        .is_some_and(|p| p.generation == generation)
                    {
                        state.pending = None;
                    }
                }
            }
        }
    }
}

/// Declares the loader set: one `Batcher` per key type, and `load_one` dispatching on the key.
macro_rules! loader_set {
    ($($field:ident: $key:ty),* $(,)?) => {
        /// The loaders of one request.
        pub struct LoaderSet {
            $($field: Batcher<$key, DbLoader>,)*
        }

        impl LoaderSet {
            fn new(loader: Arc<DbLoader>, cache_results: bool) -> Self {
                Self { $($field: Batcher::new(loader.clone(), cache_results),)* }
            }

            /// Drops every cached value (see [`Batcher::clear`]).
            pub fn clear(&self) {
                $(self.$field.clear();)*
            }
        }

        /// Picks the batcher of a key type.
        pub trait LoadBy<K: Send + Sync + Hash + Eq + Clone + 'static>
        where
            DbLoader: Loader<K>,
        {
            fn batcher(&self) -> &Batcher<K, DbLoader>;
        }

        $(
            impl LoadBy<$key> for LoaderSet {
                fn batcher(&self) -> &Batcher<$key, DbLoader> {
                    &self.$field
                }
            }
        )*
    };
}

loader_set!(
    users: UserById,
    creators: CreatorById,
    videos: VisibleVideoById,
    follower_counts: FollowerCount,
    viewer_follows: ViewerFollows,
    webhook_secrets: StoredWebhookSecret,
    member_creators: MemberCreators,
    creator_videos: CreatorVideos,
    creator_video_counts: CreatorVideoCount,
    highlight_counts: HighlightCount,
    consents: ConsentOf,
    variants: VariantsOf,
    shorts: ShortsOf,
    highlights: HighlightById,
    jobs: JobById,
    job_children: JobChildren,
    audit_pages: AuditPage,
    job_costs: JobCreditCost,
    teams: CreatorTeam,
);

impl LoaderSet {
    /// Loads one key, batched with every other key of its type requested in the same pass.
    pub async fn load_one<K>(
        &self,
        key: K,
    ) -> Result<Option<<DbLoader as Loader<K>>::Value>, AppError>
    where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        DbLoader: Loader<K, Error = AppError>,
        Self: LoadBy<K>,
    {
        self.batcher().load_one(key).await
    }

    /// Caches a value a parent's query already read (see [`Batcher::prime`]).
    pub fn prime<K>(&self, key: K, value: Option<<DbLoader as Loader<K>>::Value>)
    where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        DbLoader: Loader<K, Error = AppError>,
        Self: LoadBy<K>,
    {
        self.batcher().prime(key, value);
    }

    /// Drops a cached value this request has made stale (see [`Batcher::forget`]).
    pub fn forget<K>(&self, key: &K)
    where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        DbLoader: Loader<K, Error = AppError>,
        Self: LoadBy<K>,
    {
        self.batcher().forget(key);
    }

    /// Caches a value this request has just written (see [`Batcher::replace`]).
    pub fn replace<K>(&self, key: K, value: Option<<DbLoader as Loader<K>>::Value>)
    where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        DbLoader: Loader<K, Error = AppError>,
        Self: LoadBy<K>,
    {
        self.batcher().replace(key, value);
    }
}

/// The loaders of one request (shared with lazily computed fields such as `totalCount`).
pub type Loaders = Arc<LoaderSet>;

/// Loaders for one query or mutation: results are cached for the rest of the request.
pub fn new_loaders(db: DatabaseConnection, viewer: Arc<Viewer>) -> Loaders {
    Arc::new(LoaderSet::new(Arc::new(DbLoader { db, viewer }), true))
}

/// Loaders for a subscription: batched but never cached, since every event must see fresh rows.
pub fn new_subscription_loaders(db: DatabaseConnection, viewer: Arc<Viewer>) -> Loaders {
    Arc::new(LoaderSet::new(Arc::new(DbLoader { db, viewer }), false))
}

/// Loads rows for the caller of one request.
pub struct DbLoader {
    db: DatabaseConnection,
    viewer: Arc<Viewer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserById(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CreatorById(pub Uuid);

/// A video the caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisibleVideoById(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FollowerCount(pub Uuid);

/// A creator's team: owners first, then by when they joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CreatorTeam(pub Uuid);

/// Credits a job took, net of refunds (its `credit_ledger` rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobCreditCost(pub Uuid);

/// Whether the caller follows a creator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewerFollows(pub Uuid);

/// The webhook secret a user stored by rotating it (none: the one derived from the server's
/// key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoredWebhookSecret(pub Uuid);

/// Creators a user is a member of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberCreators(pub Uuid);

/// The newest `limit + 1` visible videos of a creator (one extra tells whether more exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CreatorVideos {
    pub creator_id: Uuid,
    pub page: VideoPage,
}

/// Which first page of videos, and which of its columns, a [`CreatorVideos`] load reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoPage {
    pub limit: u64,
    pub status: Option<VideoStatus>,
    /// Also count each video's highlights, in the same statement.
    pub with_highlight_counts: bool,
    /// The video columns the operation does not read.
    pub skip: Skip,
}

/// A video of a [`CreatorVideos`] page, with its highlight count when that was asked for.
#[derive(Debug, Clone)]
pub struct PageVideo {
    pub video: video::Model,
    pub highlight_count: Option<i64>,
}

impl PageVideo {
    /// A video whose columns start at `start` (in column order, less those `skip` left out),
    /// and the row's `highlight_count`, as the statements below list them.
    pub fn decode_at(res: &QueryResult, start: usize, skip: Skip) -> Result<Self, DbErr> {
        let (video, _) = crate::graphql::rows::video_at(res, start, skip)?;
        let highlight_count = match res.try_as_pg_row() {
            Some(row) => sea_orm::sqlx::Row::try_get(row, "highlight_count")
                .map_err(|e: sea_orm::sqlx::Error| DbErr::Type(e.to_string()))?,
            None => res.try_get("", "highlight_count")?,
        };
        Ok(Self {
            video,
            highlight_count,
        })
    }
}

/// A video's renditions (`thumbnail`, `proxy_720p`), by profile name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VariantsOf(pub Uuid);

impl Loader<VariantsOf> for DbLoader {
    type Value = Vec<video_variant::Model>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[VariantsOf],
    ) -> Result<HashMap<VariantsOf, Vec<video_variant::Model>>, AppError> {
        let rows = video_variant::Entity::find()
            .filter(video_variant::Column::VideoId.is_in(ids(keys, |k| k.0)))
            .order_by_asc(video_variant::Column::Profile)
            .all(&self.db)
            .await?;
        Ok(by_video(rows, |r| r.video_id)
            .into_iter()
            .map(|(id, rows)| (VariantsOf(id), rows))
            .collect())
    }
}

/// A highlight's shorts, oldest first (who may see which is the caller's to decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortsOf(pub Uuid);

impl Loader<ShortsOf> for DbLoader {
    type Value = Vec<short::Model>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ShortsOf],
    ) -> Result<HashMap<ShortsOf, Vec<short::Model>>, AppError> {
        let rows = short::Entity::find()
            .filter(short::Column::HighlightId.is_in(ids(keys, |k| k.0)))
            .order_by_asc(short::Column::CreatedAt)
            .order_by_asc(short::Column::Id)
            .all(&self.db)
            .await?;
        Ok(by_video(rows, |r| r.highlight_id)
            .into_iter()
            .map(|(id, rows)| (ShortsOf(id), rows))
            .collect())
    }
}

/// How many highlight candidates a video has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HighlightCount(pub Uuid);

impl Loader<HighlightCount> for DbLoader {
    type Value = i64;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[HighlightCount],
    ) -> Result<HashMap<HighlightCount, i64>, AppError> {
        let counts: HashMap<Uuid, i64> = entity::highlight::Entity::find()
            .select_only()
            .column(entity::highlight::Column::VideoId)
            .column_as(entity::highlight::Column::Id.count(), "n")
            .filter(entity::highlight::Column::VideoId.is_in(ids(keys, |k| k.0)))
            .group_by(entity::highlight::Column::VideoId)
            .into_tuple::<(Uuid, i64)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        Ok(keys
            .iter()
            .map(|k| (*k, counts.get(&k.0).copied().unwrap_or(0)))
            .collect())
    }
}

/// A video's consent row, if anyone set it (one statement for a page of videos).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConsentOf(pub Uuid);

impl Loader<ConsentOf> for DbLoader {
    type Value = entity::video_consent::Model;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[ConsentOf],
    ) -> Result<HashMap<ConsentOf, entity::video_consent::Model>, AppError> {
        Ok(entity::video_consent::Entity::find()
            .filter(entity::video_consent::Column::VideoId.is_in(ids(keys, |k| k.0)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (ConsentOf(row.video_id), row))
            .collect())
    }
}

/// A page of the children of a job's attempt `attempt` (and of those made before attempts
/// were recorded), in `Job.children`'s order; `limit + 1` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobChildren {
    pub parent: Uuid,
    pub attempt: i32,
    pub page: PageArgs,
}

impl Loader<JobChildren> for DbLoader {
    type Value = Vec<job::Model>;
    type Error = AppError;

    /// One statement per page shape (a list's children all have the same `first`/`after`):
    /// every parent's page at once.
    async fn load(
        &self,
        keys: &[JobChildren],
    ) -> Result<HashMap<JobChildren, Vec<job::Model>>, AppError> {
        // A parent asked for under two attempts (read twice, changed between) goes into a
        // statement of its own: the window numbers a parent's rows across both.
        let mut groups: Vec<(PageArgs, HashMap<Uuid, i32>)> = Vec::new();
        for key in keys {
            let free = groups
                .iter_mut()
                .find(|(page, parents)| *page == key.page && !parents.contains_key(&key.parent));
            match free {
                Some((_, parents)) => {
                    parents.insert(key.parent, key.attempt);
                }
                None => groups.push((key.page, HashMap::from([(key.parent, key.attempt)]))),
            }
        }
        let mut out: HashMap<JobChildren, Vec<job::Model>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for (page, parents) in groups {
            let of_attempts = parents
                .iter()
                .fold(Condition::any(), |any, (parent, attempt)| {
                    any.add(
                        Condition::all().add(job::Column::ParentId.eq(*parent)).add(
                            Condition::any()
                                .add(job::Column::ParentAttempt.is_null())
                                .add(job::Column::ParentAttempt.eq(*attempt)),
                        ),
                    )
                });
            let rows = fetch_pages_by(
                &self.db,
                job::Entity::find().filter(of_attempts),
                job::Column::ParentId,
                job::Column::Id,
                false,
                page,
            )
            .await?;
            for row in rows {
                let Some(parent) = row.parent_id else {
                    continue;
                };
                let Some(&attempt) = parents.get(&parent) else {
                    continue;
                };
                if let Some(list) = out.get_mut(&JobChildren {
                    parent,
                    attempt,
                    page,
                }) {
                    list.push(row);
                }
            }
        }
        Ok(out)
    }
}

/// A page of a consent's audit log (`VideoConsent.auditLog`); `limit + 1` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuditPage {
    pub consent: Uuid,
    pub page: PageArgs,
}

impl Loader<AuditPage> for DbLoader {
    type Value = Vec<consent_audit_entry::Model>;
    type Error = AppError;

    /// One statement per page shape: every consent's page at once.
    async fn load(
        &self,
        keys: &[AuditPage],
    ) -> Result<HashMap<AuditPage, Vec<consent_audit_entry::Model>>, AppError> {
        let mut groups: HashMap<PageArgs, Vec<Uuid>> = HashMap::new();
        for key in keys {
            groups.entry(key.page).or_default().push(key.consent);
        }
        let mut out: HashMap<AuditPage, Vec<consent_audit_entry::Model>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for (page, consents) in groups {
            let rows = fetch_pages_by(
                &self.db,
                consent_audit_entry::Entity::find()
                    .filter(consent_audit_entry::Column::VideoConsentId.is_in(consents)),
                consent_audit_entry::Column::VideoConsentId,
                consent_audit_entry::Column::Id,
                false,
                page,
            )
            .await?;
            for row in rows {
                let key = AuditPage {
                    consent: row.video_consent_id,
                    page,
                };
                if let Some(list) = out.get_mut(&key) {
                    list.push(row);
                }
            }
        }
        Ok(out)
    }
}

/// How many videos of a creator the caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CreatorVideoCount {
    pub creator_id: Uuid,
    pub status: Option<VideoStatus>,
}

fn ids<K, F: Fn(&K) -> Uuid>(keys: &[K], f: F) -> Vec<Uuid> {
    let set: HashSet<Uuid> = keys.iter().map(f).collect();
    set.into_iter().collect()
}

impl Loader<UserById> for DbLoader {
    type Value = user::Model;
    type Error = AppError;

    async fn load(&self, keys: &[UserById]) -> Result<HashMap<UserById, user::Model>, AppError> {
        let rows = user::Entity::find()
            .filter(user::Column::Id.is_in(ids(keys, |k| k.0)))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|u| (UserById(u.id), u)).collect())
    }
}

/// A highlight row by id, with no visibility rule: for fields of objects the caller already
/// may see (a short's highlight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HighlightById(pub Uuid);
impl Loader<HighlightById> for DbLoader {
    type Value = highlight::Model;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[HighlightById],
    ) -> Result<HashMap<HighlightById, highlight::Model>, AppError> {
        let rows = highlight::Entity::find()
            .filter(highlight::Column::Id.is_in(ids(keys, |k| k.0)))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|h| (HighlightById(h.id), h)).collect())
    }
}

/// A job row by id, with no visibility rule: the resolver checks `jobs::graphql::can_see`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobById(pub Uuid);
impl Loader<JobById> for DbLoader {
    type Value = job::Model;
    type Error = AppError;

    async fn load(&self, keys: &[JobById]) -> Result<HashMap<JobById, job::Model>, AppError> {
        let rows = job::Entity::find()
            .filter(job::Column::Id.is_in(ids(keys, |k| k.0)))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|j| (JobById(j.id), j)).collect())
    }
}

impl Loader<CreatorById> for DbLoader {
    type Value = creator::Model;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[CreatorById],
    ) -> Result<HashMap<CreatorById, creator::Model>, AppError> {
        let rows = creator::Entity::find()
            .filter(creator::Column::Id.is_in(ids(keys, |k| k.0)))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|c| (CreatorById(c.id), c)).collect())
    }
}

impl Loader<VisibleVideoById> for DbLoader {
    type Value = video::Model;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[VisibleVideoById],
    ) -> Result<HashMap<VisibleVideoById, video::Model>, AppError> {
        let visible = self.viewer.visible_videos(&self.db).await?;
        let rows = video::Entity::find()
            .filter(video::Column::Id.is_in(ids(keys, |k| k.0)))
            .filter(visible)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|v| (VisibleVideoById(v.id), v))
            .collect())
    }
}

impl Loader<FollowerCount> for DbLoader {
    type Value = i64;
    type Error = AppError;

    async fn load(&self, keys: &[FollowerCount]) -> Result<HashMap<FollowerCount, i64>, AppError> {
        let counts: Vec<(Uuid, i64)> = creator_follow::Entity::find()
            .select_only()
            .column(creator_follow::Column::CreatorId)
            .column_as(creator_follow::Column::Id.count(), "n")
            .filter(creator_follow::Column::CreatorId.is_in(ids(keys, |k| k.0)))
            .group_by(creator_follow::Column::CreatorId)
            .into_tuple()
            .all(&self.db)
            .await?;
        let counts: HashMap<Uuid, i64> = counts.into_iter().collect();
        Ok(keys
            .iter()
            .map(|k| (*k, counts.get(&k.0).copied().unwrap_or(0)))
            .collect())
    }
}

impl Loader<CreatorTeam> for DbLoader {
    type Value = Vec<creator_member::Model>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[CreatorTeam],
    ) -> Result<HashMap<CreatorTeam, Vec<creator_member::Model>>, AppError> {
        let rows = creator_member::Entity::find()
            .filter(creator_member::Column::CreatorId.is_in(ids(keys, |k| k.0)))
            // `OWNER` sorts after `MEMBER`.
            .order_by_desc(creator_member::Column::Role)
            .order_by_asc(creator_member::Column::CreatedAt)
            .order_by_asc(creator_member::Column::Id)
            .all(&self.db)
            .await?;
        let mut teams: HashMap<CreatorTeam, Vec<creator_member::Model>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for row in rows {
            teams
                .entry(CreatorTeam(row.creator_id))
                .or_default()
                .push(row);
        }
        Ok(teams)
    }
}

impl Loader<JobCreditCost> for DbLoader {
    type Value = i64;
    type Error = AppError;

    async fn load(&self, keys: &[JobCreditCost]) -> Result<HashMap<JobCreditCost, i64>, AppError> {
        use sea_orm::sea_query::{Alias, Expr, Func};
        let sums: Vec<(Uuid, i64)> = credit_ledger_entry::Entity::find()
            .select_only()
            .column(credit_ledger_entry::Column::JobId)
            // SUM of a BIGINT is NUMERIC on PostgreSQL.
            .column_as(
                Expr::expr(Func::sum(Expr::col(credit_ledger_entry::Column::Delta)))
                    .cast_as(Alias::new("BIGINT")),
                "delta",
            )
            .filter(credit_ledger_entry::Column::JobId.is_in(ids(keys, |k| k.0)))
            .group_by(credit_ledger_entry::Column::JobId)
            .into_tuple()
            .all(&self.db)
            .await?;
        let sums: HashMap<Uuid, i64> = sums.into_iter().collect();
        // Spending is a negative delta; the cost is what the job took, net of refunds.
        Ok(keys
            .iter()
            .map(|k| (*k, -sums.get(&k.0).copied().unwrap_or(0)))
            .collect())
    }
}

impl Loader<ViewerFollows> for DbLoader {
    type Value = bool;
    type Error = AppError;

    async fn load(&self, keys: &[ViewerFollows]) -> Result<HashMap<ViewerFollows, bool>, AppError> {
        let Some(user) = self.viewer.user() else {
            return Ok(keys.iter().map(|k| (*k, false)).collect());
        };
        let followed: HashSet<Uuid> = creator_follow::Entity::find()
            .select_only()
            .column(creator_follow::Column::CreatorId)
            .filter(creator_follow::Column::UserId.eq(user.id))
            .filter(creator_follow::Column::CreatorId.is_in(ids(keys, |k| k.0)))
            .into_tuple::<Uuid>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        Ok(keys.iter().map(|k| (*k, followed.contains(&k.0))).collect())
    }
}

impl Loader<StoredWebhookSecret> for DbLoader {
    type Value = String;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[StoredWebhookSecret],
    ) -> Result<HashMap<StoredWebhookSecret, String>, AppError> {
        Ok(webhook_secret::Entity::find()
            .filter(webhook_secret::Column::UserId.is_in(ids(keys, |k| k.0)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (StoredWebhookSecret(row.user_id), row.secret))
            .collect())
    }
}

impl Loader<MemberCreators> for DbLoader {
    type Value = Vec<creator::Model>;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[MemberCreators],
    ) -> Result<HashMap<MemberCreators, Vec<creator::Model>>, AppError> {
        let rows: Vec<(creator_member::Model, Option<creator::Model>)> =
            creator_member::Entity::find()
                .find_also_related(creator::Entity)
                .filter(creator_member::Column::UserId.is_in(ids(keys, |k| k.0)))
                .all(&self.db)
                .await?;
        let mut out: HashMap<MemberCreators, Vec<creator::Model>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for (member, creator) in rows {
            if let (Some(list), Some(creator)) =
                (out.get_mut(&MemberCreators(member.user_id)), creator)
            {
                list.push(creator);
            }
        }
        for list in out.values_mut() {
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(out)
    }
}

impl Loader<CreatorVideos> for DbLoader {
    type Value = Vec<PageVideo>;
    type Error = AppError;

    /// One statement per distinct (page size, status, counts) — in practice one for a whole
    /// list of creators. PostgreSQL walks each creator's `(creator_id, id)` index backwards and
    /// stops after `limit + 1` rows (a `LATERAL` subquery per creator); SQLite numbers each
    /// creator's videos with a window function and keeps the first `limit + 1`.
    async fn load(
        &self,
        keys: &[CreatorVideos],
    ) -> Result<HashMap<CreatorVideos, Vec<PageVideo>>, AppError> {
        let visible = self.viewer.visible_videos(&self.db).await?;
        let mut groups: HashMap<VideoPage, Vec<Uuid>> = HashMap::new();
        for key in keys {
            groups.entry(key.page).or_default().push(key.creator_id);
        }
        let mut out: HashMap<CreatorVideos, Vec<PageVideo>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for (page, creator_ids) in groups {
            let statement = match self.db.get_database_backend() {
                DatabaseBackend::Postgres => {
                    latest_videos_lateral(visible.clone(), &creator_ids, page)
                }
                backend => latest_videos_window(backend, visible.clone(), creator_ids, page),
            };
            for row in self.db.query_all_raw(statement).await? {
                let row = PageVideo::decode_at(&row, 0, page.skip)?;
                let key = CreatorVideos {
                    creator_id: row.video.creator_id,
                    page,
                };
                if let Some(list) = out.get_mut(&key) {
                    list.push(row);
                }
            }
        }
        for list in out.values_mut() {
            list.sort_by_key(|v| std::cmp::Reverse(v.video.id));
        }
        Ok(out)
    }
}

/// `(SELECT COUNT(*) FROM highlights WHERE video_id = {table}.id)`, or a typed NULL.
fn highlight_count_expr(table: &str, wanted: bool) -> Expr {
    if wanted {
        Expr::cust(format!(
            r#"(SELECT COUNT(*) FROM "highlights" WHERE "highlights"."video_id" = "{table}"."id")"#
        ))
    } else {
        Expr::cust("CAST(NULL AS BIGINT)")
    }
}

/// PostgreSQL: one creator's page of videos, for a `LATERAL` join to a row source `"c"` with
/// the creator's `"id"`: `limit + 1` index reads per creator, however many videos each has.
fn latest_videos_of_c(visible: Condition, page: VideoPage) -> Statement {
    let mut inner = video::Entity::find()
        .filter(Expr::col((video::Entity, video::Column::CreatorId)).eq(Expr::cust(r#""c"."id""#)))
        .filter(visible);
    if let Some(status) = page.status {
        inner = inner.filter(video::Column::Status.eq(status));
    }
    page.skip
        .remove::<video::Entity>(QueryTrait::query(&mut inner), "");
    let inner = inner
        .expr_as(
            highlight_count_expr("videos", page.with_highlight_counts),
            "highlight_count",
        )
        .order_by_desc(video::Column::Id);
    build_with_limit(&inner, DatabaseBackend::Postgres, page.limit + 1)
}

/// PostgreSQL: `SELECT v.* FROM (VALUES ($1::uuid), …) c(id) CROSS JOIN LATERAL (…) v`.
fn latest_videos_lateral(visible: Condition, creator_ids: &[Uuid], page: VideoPage) -> Statement {
    let inner = latest_videos_of_c(visible, page);
    let mut values = inner.values.map(|v| v.0).unwrap_or_default();
    let creators: Vec<String> = (0..creator_ids.len())
        .map(|i| format!("(${}::uuid)", values.len() + i + 1))
        .collect();
    values.extend(creator_ids.iter().map(|id| sea_orm::Value::from(*id)));
    let sql = format!(
        r#"SELECT "v".* FROM (VALUES {}) AS "c"("id") CROSS JOIN LATERAL ({}) AS "v""#,
        creators.join(", "),
        inner.sql
    );
    Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, values)
}

/// PostgreSQL: the creators a statement reads (`creators`, whose columns start with the
/// creator's `id`), each row joined to one video of the creator's first page, or to NULLs when
/// it has none: the whole of `creators(…) { nodes { videos(first: n) … } }` in one statement.
/// The rows come in no particular order: an `ORDER BY` over the join made PostgreSQL sort
/// every row, wide creator columns included (`pgbench`, read benchmark Q2: 0.63 → 0.54 ms).
pub fn creators_with_latest_videos(
    creators: Statement,
    visible: Condition,
    page: VideoPage,
) -> Statement {
    let mut values = creators.values.map(|v| v.0).unwrap_or_default();
    let inner = latest_videos_of_c(visible, page);
    let inner_sql = shift_placeholders(&inner.sql, values.len());
    values.extend(inner.values.map(|v| v.0).unwrap_or_default());
    let sql = format!(
        r#"SELECT "c".*, "v".* FROM ({}) AS "c" LEFT JOIN LATERAL ({inner_sql}) AS "v" ON TRUE"#,
        creators.sql
    );
    Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, values)
}

/// SQLite (and the portable form): a window function numbers each creator's videos newest
/// first; the outer query keeps the first `limit + 1` of each.
fn latest_videos_window(
    backend: DatabaseBackend,
    visible: Condition,
    creator_ids: Vec<Uuid>,
    page: VideoPage,
) -> Statement {
    let mut inner = video::Entity::find()
        .filter(video::Column::CreatorId.is_in(creator_ids))
        .filter(visible);
    if let Some(status) = page.status {
        inner = inner.filter(video::Column::Status.eq(status));
    }
    page.skip
        .remove::<video::Entity>(QueryTrait::query(&mut inner), "");
    let inner = inner
        .expr_as(
            Expr::cust(r#"ROW_NUMBER() OVER (PARTITION BY "videos"."creator_id" ORDER BY "videos"."id" DESC)"#),
            "rn",
        )
        .into_query();
    let outer = Query::select()
        .column(Asterisk)
        .expr_as(
            highlight_count_expr("t", page.with_highlight_counts),
            "highlight_count",
        )
        .from_subquery(inner, "t")
        .and_where(Expr::col("rn").lte(page.limit as i64 + 1))
        .to_owned();
    backend.build(&outer)
}

impl Loader<CreatorVideoCount> for DbLoader {
    type Value = u64;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[CreatorVideoCount],
    ) -> Result<HashMap<CreatorVideoCount, u64>, AppError> {
        let visible = self.viewer.visible_videos(&self.db).await?;
        let mut groups: HashMap<Option<VideoStatus>, Vec<Uuid>> = HashMap::new();
        for key in keys {
            groups.entry(key.status).or_default().push(key.creator_id);
        }
        let mut out = HashMap::new();
        for (status, creator_ids) in groups {
            let mut query = video::Entity::find()
                .select_only()
                .column(video::Column::CreatorId)
                .column_as(video::Column::Id.count(), "n")
                .filter(video::Column::CreatorId.is_in(creator_ids.clone()))
                .filter(visible.clone())
                .group_by(video::Column::CreatorId);
            if let Some(status) = status {
                query = query.filter(video::Column::Status.eq(status));
            }
            let counts: HashMap<Uuid, i64> = query
                .into_tuple::<(Uuid, i64)>()
                .all(&self.db)
                .await?
                .into_iter()
                .collect();
            for creator_id in creator_ids {
                let n = counts.get(&creator_id).copied().unwrap_or(0);
                out.insert(
                    CreatorVideoCount { creator_id, status },
                    u64::try_from(n).unwrap_or(0),
                );
            }
        }
        Ok(out)
    }
}
