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
use entity::{VideoStatus, creator, creator_follow, creator_member, user, video};
use futures_util::{FutureExt, future::Shared};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QuerySelect,
    QueryTrait,
    sea_query::{Asterisk, Expr, ExprTrait, Query},
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{access::Viewer, error::AppError};

/// How often the first caller of a batch yields before loading. Each yield lets the request's
/// task poll every other pending field once; nested siblings are all reached within a few.
const YIELDS_BEFORE_LOAD: usize = 8;

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
    member_creators: MemberCreators,
    creator_videos: CreatorVideos,
    creator_video_counts: CreatorVideoCount,
    highlight_counts: HighlightCount,
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

/// Whether the caller follows a creator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewerFollows(pub Uuid);

/// Creators a user is a member of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberCreators(pub Uuid);

/// The newest `limit + 1` visible videos of a creator (one extra tells whether more exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CreatorVideos {
    pub creator_id: Uuid,
    pub limit: u64,
    pub status: Option<VideoStatus>,
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
    type Value = Vec<video::Model>;
    type Error = AppError;

    /// One query per distinct (page size, status) — in practice one: a window function numbers
    /// each creator's videos newest first and keeps the first `limit + 1` of each.
    async fn load(
        &self,
        keys: &[CreatorVideos],
    ) -> Result<HashMap<CreatorVideos, Vec<video::Model>>, AppError> {
        let visible = self.viewer.visible_videos(&self.db).await?;
        let mut groups: HashMap<(u64, Option<VideoStatus>), Vec<Uuid>> = HashMap::new();
        for key in keys {
            groups
                .entry((key.limit, key.status))
                .or_default()
                .push(key.creator_id);
        }
        let mut out: HashMap<CreatorVideos, Vec<video::Model>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for ((limit, status), creator_ids) in groups {
            let mut inner = video::Entity::find()
                .filter(video::Column::CreatorId.is_in(creator_ids))
                .filter(visible.clone());
            if let Some(status) = status {
                inner = inner.filter(video::Column::Status.eq(status));
            }
            let inner = inner
                .expr_as(
                    Expr::cust(r#"ROW_NUMBER() OVER (PARTITION BY "videos"."creator_id" ORDER BY "videos"."id" DESC)"#),
                    "rn",
                )
                .into_query();
            let outer = Query::select()
                .column(Asterisk)
                .from_subquery(inner, "t")
                .and_where(Expr::col("rn").lte(limit as i64 + 1))
                .to_owned();
            let statement = self.db.get_database_backend().build(&outer);
            let rows = video::Model::find_by_statement(statement)
                .all(&self.db)
                .await?;
            for row in rows {
                let key = CreatorVideos {
                    creator_id: row.creator_id,
                    limit,
                    status,
                };
                if let Some(list) = out.get_mut(&key) {
                    list.push(row);
                }
            }
        }
        for list in out.values_mut() {
            list.sort_by_key(|v| std::cmp::Reverse(v.id));
        }
        Ok(out)
    }
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
