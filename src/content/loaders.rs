//! Per-request batching of the content relations: a video's transcript, caption tracks, key
//! moments and highlights, and a highlight's key moment. A page of N parents costs one
//! statement per relation, not N.
//!
//! Batching is the core [`Batcher`] (see `crate::graphql::loaders`). Unlike the core loaders
//! these do not cache results: every load here is keyed by a parent the caller has already been
//! allowed to see, and without a cache they stay fresh for mutations' results and for
//! subscriptions. [`ContentLoaders`] travels in each request's data next to the core loaders.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{Context, dataloader::Loader};
use entity::{caption_track, highlight, key_moment, transcript_segment};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QueryTrait,
};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    graphql::{loaders::Batcher, narrow::Skip},
};

/// Groups rows by their video, keeping the query's order within each group.
pub(crate) fn by_video<M>(rows: Vec<M>, video_id: impl Fn(&M) -> Uuid) -> HashMap<Uuid, Vec<M>> {
    let mut out: HashMap<Uuid, Vec<M>> = HashMap::new();
    for row in rows {
        out.entry(video_id(&row)).or_default().push(row);
    }
    out
}

/// The queries behind the content loaders.
pub struct ContentDb {
    db: DatabaseConnection,
}

macro_rules! by_video_loader {
    ($key:ident, $model:ident, $($order:tt)*) => {
        /// Rows of one video, keyed by the video's id. Shared: every alias of a list field
        /// that asks for them gets the one batch's rows, copied only once the request's list
        /// budget allows it (`content::types`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $key(pub Uuid);

        impl Loader<$key> for ContentDb {
            type Value = std::sync::Arc<Vec<$model::Model>>;
            type Error = AppError;

            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, Self::Value>, AppError> {
                let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
                let rows = $model::Entity::find()
                    .filter($model::Column::VideoId.is_in(ids))
                    $($order)*
                    .all(&self.db)
                    .await?;
                Ok(by_video(rows, |r| r.video_id).into_iter().map(|(id, rows)| ($key(id), std::sync::Arc::new(rows))).collect())
            }
        }
    };
}

by_video_loader!(TranscriptOf, transcript_segment, .order_by_asc(transcript_segment::Column::StartTime).order_by_asc(transcript_segment::Column::Id));
by_video_loader!(CaptionTracksOf, caption_track, .order_by_asc(caption_track::Column::Language).order_by_asc(caption_track::Column::Kind).order_by_asc(caption_track::Column::Format));
by_video_loader!(KeyMomentsOf, key_moment, .order_by_asc(key_moment::Column::SortOrder).order_by_asc(key_moment::Column::Id));
by_video_loader!(HighlightsOf, highlight, .order_by_desc(highlight::Column::Score).order_by_asc(highlight::Column::Id));

/// One key moment by id, without the columns the request does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyMomentById(pub Uuid, pub Skip);

impl Loader<KeyMomentById> for ContentDb {
    type Value = key_moment::Model;
    type Error = AppError;

    async fn load(
        &self,
        keys: &[KeyMomentById],
    ) -> Result<HashMap<KeyMomentById, key_moment::Model>, AppError> {
        let mut groups: HashMap<Skip, Vec<Uuid>> = HashMap::new();
        for key in keys {
            groups.entry(key.1).or_default().push(key.0);
        }
        let mut out = HashMap::with_capacity(keys.len());
        for (skip, ids) in groups {
            let mut select = key_moment::Entity::find().filter(key_moment::Column::Id.is_in(ids));
            skip.remove::<key_moment::Entity>(QueryTrait::query(&mut select), "");
            let backend = self.db.get_database_backend();
            for row in self.db.query_all_raw(select.build(backend)).await? {
                let (row, _) = crate::graphql::rows::key_moment_at(&row, 0, skip)?;
                out.insert(KeyMomentById(row.id, skip), row);
            }
        }
        Ok(out)
    }
}

/// The content loaders of one request: the core [`Batcher`], so batching works exactly as for
/// every other relation; results are not cached, since content mutations re-read within a
/// request.
pub struct ContentLoaders {
    transcripts: Batcher<TranscriptOf, ContentDb>,
    caption_tracks: Batcher<CaptionTracksOf, ContentDb>,
    key_moments: Batcher<KeyMomentsOf, ContentDb>,
    highlights: Batcher<HighlightsOf, ContentDb>,
    key_moment_by_id: Batcher<KeyMomentById, ContentDb>,
}

impl ContentLoaders {
    pub fn new(db: DatabaseConnection) -> Self {
        let queries = Arc::new(ContentDb { db });
        Self {
            transcripts: Batcher::new(queries.clone(), false),
            caption_tracks: Batcher::new(queries.clone(), false),
            key_moments: Batcher::new(queries.clone(), false),
            highlights: Batcher::new(queries.clone(), false),
            key_moment_by_id: Batcher::new(queries, false),
        }
    }

    /// A video's transcript, in time order.
    pub async fn transcript(
        &self,
        video_id: Uuid,
    ) -> AppResult<std::sync::Arc<Vec<transcript_segment::Model>>> {
        Ok(self
            .transcripts
            .load_one(TranscriptOf(video_id))
            .await?
            .unwrap_or_default())
    }

    /// A video's caption tracks, by language, kind and format.
    pub async fn caption_tracks(
        &self,
        video_id: Uuid,
    ) -> AppResult<std::sync::Arc<Vec<caption_track::Model>>> {
        Ok(self
            .caption_tracks
            .load_one(CaptionTracksOf(video_id))
            .await?
            .unwrap_or_default())
    }

    /// A video's key moments, in display order.
    pub async fn key_moments(
        &self,
        video_id: Uuid,
    ) -> AppResult<std::sync::Arc<Vec<key_moment::Model>>> {
        Ok(self
            .key_moments
            .load_one(KeyMomentsOf(video_id))
            .await?
            .unwrap_or_default())
    }

    /// A video's highlights, best score first.
    pub async fn highlights(
        &self,
        video_id: Uuid,
    ) -> AppResult<std::sync::Arc<Vec<highlight::Model>>> {
        Ok(self
            .highlights
            .load_one(HighlightsOf(video_id))
            .await?
            .unwrap_or_default())
    }

    /// One key moment (of a highlight the caller can already see), without the columns
    /// `skip` leaves out.
    pub async fn key_moment(&self, id: Uuid, skip: Skip) -> AppResult<Option<key_moment::Model>> {
        self.key_moment_by_id
            .load_one(KeyMomentById(id, skip))
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
