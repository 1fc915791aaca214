//! Per-request batching of the content relations: a video's transcript, caption tracks, key
//! moments and highlights, and a highlight's key moment. A page of N parents costs one
//! statement per relation, not N.
//!
//! The batching follows [`crate::graphql::loaders::Batcher`]: the first caller of a batch
//! yields to the executor a few times while every sibling field polled in the same pass adds
//! its key, then loads them all with one `IN` query. Unlike the core loaders these do not cache
//! results: every load here is keyed by a parent the caller has already been allowed to see,
//! nothing is fetched twice in practice, and without a cache they stay fresh for mutations'
//! results and for subscriptions.
//!
//! The core `LoaderSet` is fixed and built by the HTTP and WebSocket layers; rather than
//! widening it, [`content_loaders`] pairs one [`ContentLoaders`] with each live `LoaderSet`
//! (that is, with each request or subscription operation), held weakly so it goes away with
//! the request.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{Arc, Mutex, PoisonError},
};

use async_graphql::Context;
use entity::{caption_track, highlight, key_moment, transcript_segment};
use futures_util::{FutureExt, future::Shared};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// How often the first caller of a batch yields before loading (as the core loaders do).
const YIELDS_BEFORE_LOAD: usize = 8;

type BatchResult<V> = Result<Arc<HashMap<Uuid, V>>, AppError>;

/// The batch being collected.
struct Pending<V> {
    /// Distinguishes batches, so a caller can tell whether the one it joined died.
    generation: u64,
    keys: HashSet<Uuid>,
    result: Shared<oneshot::Receiver<BatchResult<V>>>,
}

struct BatchState<V> {
    next_generation: u64,
    pending: Option<Pending<V>>,
}

/// Batches loads of one relation keyed by a parent id.
struct Batcher<V> {
    state: Mutex<BatchState<V>>,
}

impl<V: Clone + Send + Sync + 'static> Batcher<V> {
    fn new() -> Self {
        Self {
            state: Mutex::new(BatchState {
                next_generation: 0,
                pending: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState<V>> {
        // A poisoned lock only means another caller panicked while adding a key.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Loads `key` together with every key requested in the same pass; `load` runs once per
    /// batch, with all of its keys.
    async fn load_one<F, Fut>(&self, key: Uuid, load: F) -> AppResult<Option<V>>
    where
        F: Fn(Vec<Uuid>) -> Fut,
        Fut: Future<Output = AppResult<HashMap<Uuid, V>>>,
    {
        loop {
            let (generation, result, leader) = {
                let mut state = self.lock();
                match &mut state.pending {
                    Some(pending) => {
                        pending.keys.insert(key);
                        (pending.generation, pending.result.clone(), None)
                    }
                    None => {
                        let (tx, rx) = oneshot::channel();
                        let generation = state.next_generation;
                        state.next_generation += 1;
                        let result = rx.shared();
                        state.pending = Some(Pending {
                            generation,
                            keys: HashSet::from([key]),
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
                let keys: Vec<Uuid> = self
                    .lock()
                    .pending
                    .take()
                    .map(|p| p.keys.into_iter().collect())
                    .unwrap_or_default();
                // Followers may all be gone already; nothing to do then.
                let _ = tx.send(load(keys).await.map(Arc::new));
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

/// Groups rows by their video, keeping the query's order within each group.
fn by_video<M>(rows: Vec<M>, video_id: impl Fn(&M) -> Uuid) -> HashMap<Uuid, Vec<M>> {
    let mut out: HashMap<Uuid, Vec<M>> = HashMap::new();
    for row in rows {
        out.entry(video_id(&row)).or_default().push(row);
    }
    out
}

/// The content loaders of one request.
pub struct ContentLoaders {
    db: DatabaseConnection,
    transcripts: Batcher<Vec<transcript_segment::Model>>,
    caption_tracks: Batcher<Vec<caption_track::Model>>,
    key_moments: Batcher<Vec<key_moment::Model>>,
    highlights: Batcher<Vec<highlight::Model>>,
    key_moment_by_id: Batcher<key_moment::Model>,
}

impl ContentLoaders {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            transcripts: Batcher::new(),
            caption_tracks: Batcher::new(),
            key_moments: Batcher::new(),
            highlights: Batcher::new(),
            key_moment_by_id: Batcher::new(),
        }
    }

    /// A video's transcript, in time order.
    pub async fn transcript(&self, video_id: Uuid) -> AppResult<Vec<transcript_segment::Model>> {
        let rows = self
            .transcripts
            .load_one(video_id, |ids| async move {
                let rows = transcript_segment::Entity::find()
                    .filter(transcript_segment::Column::VideoId.is_in(ids))
                    .order_by_asc(transcript_segment::Column::StartTime)
                    .order_by_asc(transcript_segment::Column::Id)
                    .all(&self.db)
                    .await?;
                Ok(by_video(rows, |r| r.video_id))
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    /// A video's caption tracks, by language, kind and format.
    pub async fn caption_tracks(&self, video_id: Uuid) -> AppResult<Vec<caption_track::Model>> {
        let rows = self
            .caption_tracks
            .load_one(video_id, |ids| async move {
                let rows = caption_track::Entity::find()
                    .filter(caption_track::Column::VideoId.is_in(ids))
                    .order_by_asc(caption_track::Column::Language)
                    .order_by_asc(caption_track::Column::Kind)
                    .order_by_asc(caption_track::Column::Format)
                    .all(&self.db)
                    .await?;
                Ok(by_video(rows, |r| r.video_id))
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    /// A video's key moments, in display order.
    pub async fn key_moments(&self, video_id: Uuid) -> AppResult<Vec<key_moment::Model>> {
        let rows = self
            .key_moments
            .load_one(video_id, |ids| async move {
                let rows = key_moment::Entity::find()
                    .filter(key_moment::Column::VideoId.is_in(ids))
                    .order_by_asc(key_moment::Column::SortOrder)
                    .order_by_asc(key_moment::Column::Id)
                    .all(&self.db)
                    .await?;
                Ok(by_video(rows, |r| r.video_id))
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    /// A video's highlights, best score first.
    pub async fn highlights(&self, video_id: Uuid) -> AppResult<Vec<highlight::Model>> {
        let rows = self
            .highlights
            .load_one(video_id, |ids| async move {
                let rows = highlight::Entity::find()
                    .filter(highlight::Column::VideoId.is_in(ids))
                    .order_by_desc(highlight::Column::Score)
                    .order_by_asc(highlight::Column::Id)
                    .all(&self.db)
                    .await?;
                Ok(by_video(rows, |r| r.video_id))
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    /// One key moment (of a highlight the caller can already see).
    pub async fn key_moment(&self, id: Uuid) -> AppResult<Option<key_moment::Model>> {
        self.key_moment_by_id
            .load_one(id, |ids| async move {
                let rows = key_moment::Entity::find()
                    .filter(key_moment::Column::Id.is_in(ids))
                    .all(&self.db)
                    .await?;
                Ok(rows.into_iter().map(|m| (m.id, m)).collect())
            })
            .await
    }
}

/// The content loaders of this request (inserted into every request's data next to the core
/// loaders, by the HTTP handler and the WebSocket layer).
pub fn content_loaders<'a>(ctx: &Context<'a>) -> AppResult<&'a Arc<ContentLoaders>> {
    ctx.data::<Arc<ContentLoaders>>().map_err(|_| {
        crate::error::AppError::internal(
            "request context",
            "content loaders missing from the GraphQL context",
        )
    })
}
