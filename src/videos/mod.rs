//! Source videos as the API shows them, and the read side: `video` and `videos`.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::{VideoStatus, creator, video};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait};

use crate::{
    creators::Creator,
    error::{AppError, AppResult},
    graphql::{
        loaders,
        loaders::{CreatorById, UserById, VariantsOf, VisibleVideoById},
        narrow::select_without,
        pagination::{PageArgs, RelayConnection, TotalCount, fetch_page},
        parse_id, rows, selects, state, viewer,
    },
    media::{PROXY_720P, Profile, THUMBNAIL, VideoVariant},
    users::User,
};

/// A source video uploaded by a creator.
pub struct Video(pub video::Model);

// Fields that reach the database or storage run boxed: async-graphql sizes every field's
// future by the largest (see `graphql::tests::list_types_resolve_fields_with_small_futures`).
#[Object]
impl Video {
    pub(crate) async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn creator(&self, ctx: &Context<'_>) -> AppResult<Creator> {
        Box::pin(async move {
            loaders(ctx)?
                .load_one(CreatorById(self.0.creator_id))
                .await?
                .map(Creator)
                .ok_or(AppError::NotFound("creator"))
        })
        .await
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn original_filename(&self) -> &str {
        &self.0.original_filename
    }
    async fn mime(&self) -> Option<&str> {
        self.0.mime.as_deref()
    }
    /// Size of the uploaded file in bytes: the size `requestVideoUpload` promised until
    /// processing has read the file, then the size it read.
    async fn size_bytes(&self) -> Option<i64> {
        self.0.size_bytes
    }
    /// Hex SHA-256 of the uploaded file: the hash `requestVideoUpload` promised (null when
    /// none was) until processing has read the file, then the hash of its bytes. A FAILED
    /// video whose file was not the one promised keeps the promised hash; its `error` gives
    /// the file's.
    async fn sha256(&self) -> Option<&str> {
        self.0.sha256.as_deref()
    }
    async fn duration_secs(&self) -> Option<f64> {
        self.0.duration_secs
    }
    async fn width(&self) -> Option<i32> {
        self.0.width
    }
    async fn height(&self) -> Option<i32> {
        self.0.height
    }
    async fn status(&self) -> VideoStatus {
        self.0.status
    }
    /// Last completed processing stage.
    async fn pipeline_stage(&self) -> i32 {
        self.0.pipeline_stage
    }
    /// Why processing failed, in words a person can act on.
    async fn failure_reason(&self) -> Option<&str> {
        self.0.failure_reason.as_deref()
    }
    /// When the video is deleted by itself (`updateVideo`); null keeps it for good. For the
    /// creator's members and administrators (null for everyone else).
    async fn retention_until(&self, ctx: &Context<'_>) -> AppResult<Option<DateTime<Utc>>> {
        let Some(at) = self.0.retention_until else {
            return Ok(None);
        };
        // Boxed: `Video` comes in long lists (see `graphql::tests`).
        Box::pin(async move {
            let manages = viewer(ctx)?
                .manages_creator(&state(ctx)?.db, self.0.creator_id)
                .await?;
            Ok(manages.then_some(at))
        })
        .await
    }
    async fn youtube_url(&self) -> Option<&str> {
        self.0.youtube_url.as_deref()
    }
    /// Who uploaded it; shown to the creator's members and administrators.
    async fn uploaded_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        Box::pin(async move {
            let Some(id) = self.0.uploaded_by else {
                return Ok(None);
            };
            if !viewer(ctx)?
                .manages_creator(&state(ctx)?.db, self.0.creator_id)
                .await?
            {
                return Ok(None);
            }
            Ok(loaders(ctx)?.load_one(UserById(id)).await?.map(User::new))
        })
        .await
    }
    /// Renditions made from the upload (`thumbnail`, `proxy_720p`). Their keys and sizes are
    /// working data of the creator, so only its members and administrators get them; everyone
    /// else gets an empty list.
    async fn variants(&self, ctx: &Context<'_>) -> AppResult<Vec<VideoVariant>> {
        Box::pin(async move {
            let db = &state(ctx)?.db;
            if !viewer(ctx)?.manages_creator(db, self.0.creator_id).await? {
                return Ok(Vec::new());
            }
            Ok(self
                .variants_batched(ctx)
                .await?
                .into_iter()
                .map(VideoVariant)
                .collect())
        })
        .await
    }
    /// A JPEG still of the video, as a link valid for 10 minutes (at least 8 in an answer to a
    /// signed-out caller, which may have been kept for up to 2); null until it is processed.
    async fn thumbnail_url(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        Box::pin(async move { self.variant_url(ctx, THUMBNAIL).await }).await
    }
    /// A 720p H.264/AAC MP4 of the video to play or edit, as a link valid for 10 minutes (at
    /// least 8 in an answer to a signed-out caller, which may have been kept for up to 2); null
    /// until it is processed.
    async fn proxy_url(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        Box::pin(async move { self.variant_url(ctx, PROXY_720P).await }).await
    }
    /// Transcript segments in time order.
    async fn transcript(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Vec<crate::content::TranscriptSegment>> {
        Box::pin(async move { crate::content::transcript_of(ctx, &self.0).await }).await
    }
    /// Caption files (WebVTT, SRT) generated from the transcript.
    async fn caption_tracks(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Vec<crate::content::CaptionTrack>> {
        Box::pin(async move { crate::content::caption_tracks_of(ctx, &self.0).await }).await
    }
    async fn key_moments(&self, ctx: &Context<'_>) -> AppResult<Vec<crate::content::KeyMoment>> {
        Box::pin(async move { crate::content::key_moments_of(ctx, &self.0).await }).await
    }
    /// Number of the video's highlights, whatever their status (batched across a page of
    /// videos).
    async fn highlight_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        Box::pin(async move {
            Ok(loaders(ctx)?
                .load_one(crate::graphql::loaders::HighlightCount(self.0.id))
                .await?
                .unwrap_or(0))
        })
        .await
    }
    /// Highlight candidates, best first.
    async fn highlights(&self, ctx: &Context<'_>) -> AppResult<Vec<crate::content::Highlight>> {
        Box::pin(async move { crate::content::highlights_of(ctx, &self.0).await }).await
    }
    /// Consent and its audit log; for the creator's members and administrators (null otherwise).
    async fn consent(&self, ctx: &Context<'_>) -> AppResult<Option<crate::consent::VideoConsent>> {
        Box::pin(async move {
            let loaders = crate::graphql::loaders(ctx)?;
            crate::consent::consent_of(viewer(ctx)?, &state(ctx)?.db, loaders, &self.0).await
        })
        .await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

impl Video {
    /// The video's renditions, loaded in one statement for every video of the response.
    async fn variants_batched(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Vec<entity::video_variant::Model>> {
        Ok(loaders(ctx)?
            .load_one(VariantsOf(self.0.id))
            .await?
            .unwrap_or_default())
    }

    /// A presigned download link of one rendition, or `None` while it does not exist.
    async fn variant_url(&self, ctx: &Context<'_>, profile: Profile) -> AppResult<Option<String>> {
        let variants = self.variants_batched(ctx).await?;
        match variants.iter().find(|v| v.profile == profile.name) {
            Some(variant) => Ok(Some(
                state(ctx)?
                    .storage
                    .presign_get(&variant.storage_key, crate::storage::PRESIGN_TTL)
                    .await?,
            )),
            None => Ok(None),
        }
    }
}

#[derive(Default)]
pub struct VideoQuery;

#[Object]
impl VideoQuery {
    /// A video the caller may see.
    pub(crate) async fn video(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Video>> {
        let id = parse_id("id", &id)?;
        let loaders = loaders(ctx)?;
        let found = if selects(ctx, &["creator"]) {
            // One statement for the video and its creator instead of two round trips; the
            // row lists the video's columns, then the creator's, and is decoded by position.
            let db = &state(ctx)?.db;
            let backend = db.get_database_backend();
            let mut select = video::Entity::find_by_id(id)
                .filter(viewer(ctx)?.visible_videos(db).await?)
                .find_also_related(creator::Entity);
            let query = QueryTrait::query(&mut select);
            let skip_video = select_without::<video::Entity>(ctx, query, "A_");
            let skip_creator = select_without::<creator::Entity>(ctx, query, "B_");
            match db.query_one_raw(select.build(backend)).await? {
                Some(row) => {
                    let (video, next) = rows::video_at(&row, 0, skip_video)?;
                    // Every video has a creator (a foreign key), so the left join finds one.
                    let (creator, _) = rows::creator_at(&row, next, skip_creator)?;
                    loaders.prime(CreatorById(creator.id), Some(creator));
                    Some(video)
                }
                None => None,
            }
        } else {
            loaders.load_one(VisibleVideoById(id)).await?
        };
        found
            .map(Video)
            .map(Some)
            .ok_or(AppError::NotFound("video"))
    }

    /// Videos the caller may see, newest first: public ones, plus all of the creators the
    /// caller is a member of.
    #[graphql(
        complexity = "crate::graphql::pagination::connection_complexity(first, last, child_complexity)"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per GraphQL argument"
    )]
    async fn videos(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        creator_id: Option<ID>,
        status: Option<VideoStatus>,
    ) -> AppResult<RelayConnection<Video>> {
        let args = PageArgs::new(first, after, last, before)?;
        let creator_id = creator_id
            .map(|id| parse_id("creatorId", &id))
            .transpose()?;
        let db = &state(ctx)?.db;
        let mut select = video::Entity::find().filter(viewer(ctx)?.visible_videos(db).await?);
        if let Some(creator_id) = creator_id {
            select = select.filter(video::Column::CreatorId.eq(creator_id));
        }
        if let Some(status) = status {
            select = select.filter(video::Column::Status.eq(status));
        }
        let total = TotalCount::of(db, select.clone());
        let page = fetch_page(db, select, video::Column::Id, true, args).await?;
        Ok(page.into_connection(|v| v.id, Video, total))
    }
}
