//! The content types as the API shows them, and the helpers the `Video` type resolves its
//! content lists with.
//!
//! Visibility is decided by the parent: whoever may see a video sees its transcript, captions,
//! key moments and highlights, so these types never re-check access. Relations resolve through
//! batching loaders, so lists of parents cost one statement per relation.

use async_graphql::{Context, ID, Json, Object};
use chrono::{DateTime, Utc};
use entity::{
    CaptionFormat, CaptionKind, CaptionSource, HighlightStatus, KeyMomentContentType, ReviewStatus,
    caption_track, highlight, key_moment, transcript_segment, video,
};

use super::loaders::content_loaders;
use crate::{
    error::{AppError, AppResult},
    graphql::{budget::take, loaders, loaders::VisibleVideoById, narrow::Skip, state},
    storage::PRESIGN_TTL,
    videos::Video,
};

/// One timed line of a video's transcript.
pub struct TranscriptSegment(pub transcript_segment::Model);

#[Object]
impl TranscriptSegment {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Seconds from the start of the video.
    async fn start_time(&self) -> f64 {
        self.0.start_time
    }
    /// Seconds from the start of the video; always after `startTime`.
    async fn end_time(&self) -> f64 {
        self.0.end_time
    }
    async fn text(&self) -> &str {
        &self.0.text
    }
    /// Speaker label, when known.
    async fn speaker(&self) -> Option<&str> {
        self.0.speaker.as_deref()
    }
}

/// A caption or subtitle file of a video.
pub struct CaptionTrack(pub caption_track::Model);

#[Object]
impl CaptionTrack {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// BCP-47 language tag, e.g. `en` or `pt-BR`.
    async fn language(&self) -> &str {
        &self.0.language
    }
    async fn kind(&self) -> CaptionKind {
        self.0.kind
    }
    async fn format(&self) -> CaptionFormat {
        self.0.format
    }
    /// `HUMAN` for tracks generated from a transcript set through the API.
    async fn source(&self) -> CaptionSource {
        self.0.source
    }
    /// Whether a person approved the track for publication.
    async fn approved(&self) -> bool {
        self.0.approved
    }
    /// A download URL of the file; it works for 10 minutes, so fetch a fresh one each time
    /// (at least 8 in an answer to a signed-out caller, which may have been kept for up to 2).
    async fn url(&self, ctx: &Context<'_>) -> AppResult<String> {
        Ok(state(ctx)?
            .storage
            .presign_get(&self.0.storage_key, PRESIGN_TTL)
            .await?)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A notable stretch of a video: a technique, a concept, a step of a workflow.
pub struct KeyMoment(pub key_moment::Model);

#[Object]
impl KeyMoment {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn summary(&self) -> Option<&str> {
        self.0.summary.as_deref()
    }
    /// Seconds from the start of the video.
    async fn start_time(&self) -> f64 {
        self.0.start_time
    }
    /// Seconds from the start of the video; always after `startTime`.
    async fn end_time(&self) -> f64 {
        self.0.end_time
    }
    async fn topic_category(&self) -> Option<&str> {
        self.0.topic_category.as_deref()
    }
    async fn topic_tags(&self) -> Vec<&str> {
        self.0
            .topic_tags
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tag| tag.as_str())
            .collect()
    }
    async fn content_type(&self) -> Option<KeyMomentContentType> {
        self.0.content_type
    }
    async fn review_status(&self) -> ReviewStatus {
        self.0.review_status
    }
    /// Position within the video's key moments (ascending).
    async fn sort_order(&self) -> i32 {
        self.0.sort_order
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A key moment scored as a candidate for shorts, and its curation state; with the key moment
/// itself when the statement that read the highlight read that too (the highlights page).
pub struct Highlight(pub highlight::Model, pub Option<key_moment::Model>);

// Fields that reach the database or storage run boxed: async-graphql sizes every field's
// future by the largest (see `graphql::tests::list_types_resolve_fields_with_small_futures`).
#[Object]
impl Highlight {
    pub(crate) async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn video(&self, ctx: &Context<'_>) -> AppResult<Video> {
        Box::pin(async move {
            loaders(ctx)?
                .load_one(VisibleVideoById(self.0.video_id))
                .await?
                .map(Video)
                .ok_or(AppError::NotFound("video"))
        })
        .await
    }
    /// The key moment this highlight was scored from.
    async fn key_moment(&self, ctx: &Context<'_>) -> AppResult<KeyMoment> {
        if let Some(moment) = &self.1 {
            return Ok(KeyMoment(moment.clone()));
        }
        Box::pin(async move {
            content_loaders(ctx)?
                .key_moment(self.0.key_moment_id, Skip::of::<key_moment::Entity>(ctx))
                .await?
                .map(KeyMoment)
                .ok_or(AppError::NotFound("key moment"))
        })
        .await
    }
    /// Overall score in `[0, 1]`: the weighted sum of `scoreBreakdown`.
    async fn score(&self) -> f64 {
        self.0.score
    }
    /// The score of each dimension, in `[0, 1]`: `shortFormFit`, `transcriptDensity`, `hook`,
    /// `topicTags`, `position`, `contentType`, `summaryQuality`, `speakerChanges`,
    /// `questionOrExclamation`, `uniqueness`.
    async fn score_breakdown(&self) -> Json<serde_json::Value> {
        Json(self.0.score_breakdown.clone())
    }
    /// Seconds the highlight lasts: the trimmed length once trimmed, else the key moment's, up to
    /// the end of the video.
    async fn duration_secs(&self) -> f64 {
        crate::graphql::to_millionths(self.0.duration_secs)
    }
    async fn status(&self) -> HighlightStatus {
        self.0.status
    }
    /// Trim start, in seconds from the start of the video.
    async fn trim_start(&self) -> Option<f64> {
        self.0.trim_start
    }
    /// Trim end, in seconds from the start of the video.
    async fn trim_end(&self) -> Option<f64> {
        self.0.trim_end
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Shorts generated from this highlight: all of them for the creator's members, the
    /// COMPLETE ones for everyone else.
    async fn shorts(&self, ctx: &Context<'_>) -> AppResult<Vec<crate::shorts::Short>> {
        Box::pin(async move {
            let video = crate::graphql::loaders(ctx)?
                .load_one(crate::graphql::loaders::VisibleVideoById(self.0.video_id))
                .await?;
            match video {
                Some(video) => crate::shorts::shorts_of(ctx, &video, self.0.id).await,
                None => Ok(Vec::new()),
            }
        })
        .await
    }
}

/// Rows shared by every field that asked for them, counted against the request's list budget
/// before they are copied for this one: 2,400 aliases of a 10,000-line transcript, refused
/// past the budget, each copied all 10,000 rows first.
fn shared_counted<T: Clone>(ctx: &Context<'_>, rows: std::sync::Arc<Vec<T>>) -> AppResult<Vec<T>> {
    take(ctx, rows.len())?;
    Ok(std::sync::Arc::try_unwrap(rows).unwrap_or_else(|shared| shared.as_ref().clone()))
}

/// `Video.transcript`: the video's transcript in time order (batched across videos).
pub async fn transcript_of(
    ctx: &Context<'_>,
    video: &video::Model,
) -> AppResult<Vec<TranscriptSegment>> {
    take(ctx, 0)?;
    let rows = shared_counted(ctx, content_loaders(ctx)?.transcript(video.id).await?)?;
    Ok(rows.into_iter().map(TranscriptSegment).collect())
}

/// `Video.captionTracks`: the video's caption tracks by language, kind and format.
pub async fn caption_tracks_of(
    ctx: &Context<'_>,
    video: &video::Model,
) -> AppResult<Vec<CaptionTrack>> {
    take(ctx, 0)?;
    let rows = shared_counted(ctx, content_loaders(ctx)?.caption_tracks(video.id).await?)?;
    Ok(rows.into_iter().map(CaptionTrack).collect())
}

/// `Video.keyMoments`: the video's key moments in display order.
pub async fn key_moments_of(ctx: &Context<'_>, video: &video::Model) -> AppResult<Vec<KeyMoment>> {
    take(ctx, 0)?;
    let rows = shared_counted(ctx, content_loaders(ctx)?.key_moments(video.id).await?)?;
    Ok(rows.into_iter().map(KeyMoment).collect())
}

/// `Video.highlights`: the video's highlights, best score first.
pub async fn highlights_of(ctx: &Context<'_>, video: &video::Model) -> AppResult<Vec<Highlight>> {
    take(ctx, 0)?;
    let rows = shared_counted(ctx, content_loaders(ctx)?.highlights(video.id).await?)?;
    Ok(rows.into_iter().map(|h| Highlight(h, None)).collect())
}
