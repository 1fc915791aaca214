//! Editing a video's content: `setTranscript` (and the caption files generated from it),
//! `addKeyMoments` (and `reviewKeyMoment`, `updateKeyMoment`, `deleteKeyMoment`),
//! `detectHighlights`, and curating highlights with `approveHighlight`, `rejectHighlight` and
//! `trimHighlight`.
//!
//! Every mutation is for the video's creator's members and administrators. A video the caller
//! cannot see is `NOT_FOUND` (ids cannot be probed); one they can see but do not manage is
//! `FORBIDDEN`. Access is checked before the input, because some input checks (a time past
//! the video's end) would otherwise reveal details of a video the caller may not see.

use std::collections::HashMap;

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use entity::{
    CaptionFormat, CaptionKind, CaptionSource, HighlightStatus, KeyMomentContentType, ReviewStatus,
    caption_track, highlight, key_moment, transcript_segment, video,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use uuid::Uuid;

use super::{
    captions,
    scoring::score_moments,
    types::{Highlight, KeyMoment},
    validate,
};
use crate::{
    access::AuthUser,
    db::RowLock,
    error::{AppError, AppResult},
    graphql::{parse_id, state, viewer},
    videos::Video,
};

/// Rows per multi-row INSERT: 500 rows of up to 11 columns stay far below the bind-parameter
/// limits of SQLite (32 766) and PostgreSQL (65 535).
const INSERT_CHUNK: usize = 500;
/// Caption language when `setTranscript` is not given one.
const DEFAULT_LANGUAGE: &str = "en";
/// The caption files generated from a transcript.
const CAPTION_FORMATS: [CaptionFormat; 2] = [CaptionFormat::Vtt, CaptionFormat::Srt];

/// One line of a transcript.
#[derive(InputObject)]
pub struct TranscriptSegmentInput {
    /// Seconds from the start of the video, 0 or more.
    pub start_time: f64,
    /// Seconds from the start of the video; after `startTime`, and at most the video's
    /// duration when that is known.
    pub end_time: f64,
    /// 1–2000 characters.
    pub text: String,
    /// Speaker label, up to 100 characters.
    pub speaker: Option<String>,
}

/// A key moment to add to a video.
#[derive(InputObject)]
pub struct KeyMomentInput {
    /// 1–200 characters.
    pub title: String,
    /// Up to 2000 characters.
    pub summary: Option<String>,
    /// Seconds from the start of the video, 0 or more.
    pub start_time: f64,
    /// Seconds from the start of the video; after `startTime`, and at most the video's
    /// duration when that is known.
    pub end_time: f64,
    /// Up to 100 characters, e.g. `Sound Design`.
    pub topic_category: Option<String>,
    /// Up to 20 tags of 1–50 characters.
    pub topic_tags: Option<Vec<String>>,
    pub content_type: Option<KeyMomentContentType>,
}

/// The caller, and the video `id` if they may change its content.
async fn managed_video(ctx: &Context<'_>, id: Uuid) -> AppResult<(AuthUser, video::Model)> {
    let viewer = viewer(ctx)?;
    let user = viewer.require_user()?.clone();
    let db = &state(ctx)?.db;
    let video = video::Entity::find_by_id(id)
        .filter(viewer.visible_videos(db).await?)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("video"))?;
    viewer.ensure_manages_creator(db, video.creator_id).await?;
    Ok((user, video))
}

/// The key moment `id` and its video, if the caller may change it: its video's rules
/// (`NOT_FOUND` when they may not see it, `FORBIDDEN` when they see but do not manage it).
async fn managed_key_moment(
    ctx: &Context<'_>,
    id: &ID,
) -> AppResult<(key_moment::Model, video::Model)> {
    let id = parse_id("id", id)?;
    viewer(ctx)?.require_user()?;
    let db = &state(ctx)?.db;
    let moment = key_moment::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("key moment"))?;
    let (_, video) = managed_video(ctx, moment.video_id)
        .await
        .map_err(|err| match err {
            AppError::NotFound(_) => AppError::NotFound("key moment"),
            other => other,
        })?;
    Ok((moment, video))
}

/// The highlight `id`, if the caller may curate it (same rules as its video).
async fn managed_highlight(
    ctx: &Context<'_>,
    id: &ID,
) -> AppResult<(highlight::Model, video::Model)> {
    let id = parse_id("id", id)?;
    let viewer = viewer(ctx)?;
    viewer.require_user()?;
    let db = &state(ctx)?.db;
    let found = highlight::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("highlight"))?;
    let video = video::Entity::find_by_id(found.video_id)
        .filter(viewer.visible_videos(db).await?)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("highlight"))?;
    viewer.ensure_manages_creator(db, video.creator_id).await?;
    Ok((found, video))
}

/// Marks the video as changed as the transaction's first write. That also serialises
/// concurrent edits of one video's content on both backends: PostgreSQL holds the row lock
/// until commit, and SQLite takes its write lock here instead of failing a deferred
/// read-then-write transaction that lost the race.
async fn touch_video(
    txn: &DatabaseTransaction,
    video_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Option<f64>> {
    let touched = video::Entity::update_many()
        .col_expr(video::Column::UpdatedAt, Expr::val(now))
        .filter(video::Column::Id.eq(video_id))
        .exec_with_returning(txn)
        .await?;
    Ok(touched.into_iter().next().and_then(|v| v.duration_secs))
}

/// How long an untrimmed highlight of `moment` lasts: up to the end of the video where its
/// length is known (a moment added before the upload was probed may run past it).
fn untrimmed_length(moment: &key_moment::Model, video_secs: Option<f64>) -> f64 {
    let end = video_secs
        .filter(|d| d.is_finite() && *d > 0.0)
        .map_or(moment.end_time, |d| d.min(moment.end_time));
    crate::graphql::to_millionths((end - moment.start_time).max(0.0))
}

/// Fits the untrimmed highlights of a video to the length its probe has just found
/// ([`untrimmed_length`]): one of a moment added while the upload was waiting kept the
/// moment's whole length (an hour of a 30-second video) until highlights were detected again.
/// Run in the transaction that makes the video READY.
pub async fn fit_highlights(
    txn: &impl ConnectionTrait,
    video_id: Uuid,
    video_secs: f64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let untrimmed = highlight::Entity::find()
        .find_also_related(key_moment::Entity)
        .filter(highlight::Column::VideoId.eq(video_id))
        .filter(highlight::Column::TrimStart.is_null())
        .all(txn)
        .await?;
    for (highlight, moment) in untrimmed {
        let Some(moment) = moment else { continue };
        let length = untrimmed_length(&moment, Some(video_secs));
        if length == highlight.duration_secs {
            continue;
        }
        // Still untrimmed when written (a `trimHighlight` committing meanwhile keeps its
        // length), and nothing to write for one deleted meanwhile.
        highlight::Entity::update_many()
            .col_expr(highlight::Column::DurationSecs, Expr::val(length))
            .col_expr(highlight::Column::UpdatedAt, Expr::val(now))
            .filter(highlight::Column::Id.eq(highlight.id))
            .filter(highlight::Column::TrimStart.is_null())
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Inserts rows in chunks that fit every backend's bind-parameter limit.
async fn insert_chunked<A>(db: &impl ConnectionTrait, rows: Vec<A>) -> AppResult<()>
where
    A: ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(INSERT_CHUNK).collect();
        A::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Sets a highlight's curation status.
async fn set_status(ctx: &Context<'_>, id: &ID, status: HighlightStatus) -> AppResult<Highlight> {
    let (found, _) = managed_highlight(ctx, id).await?;
    // Gone meanwhile (its key moment or video deleted): NOT_FOUND, as before the checks.
    highlight::Entity::update_many()
        .col_expr(highlight::Column::Status, Expr::val(status))
        .col_expr(highlight::Column::UpdatedAt, Expr::val(Utc::now()))
        .filter(highlight::Column::Id.eq(found.id))
        .exec_with_returning(&state(ctx)?.db)
        .await?
        .into_iter()
        .next()
        .map(|row| Highlight(row, None))
        .ok_or(AppError::NotFound("highlight"))
}

#[derive(Default)]
pub struct ContentMutation;

#[Object]
impl ContentMutation {
    /// Replaces the video's transcript with `segments` (ordered by start, non-overlapping) and
    /// regenerates its WebVTT and SRT caption tracks in `language` (default `en`); tracks in
    /// other languages are kept. An empty list clears the transcript and removes this
    /// language's tracks. All or nothing: an invalid segment rejects the whole call.
    async fn set_transcript(
        &self,
        ctx: &Context<'_>,
        video_id: ID,
        segments: Vec<TranscriptSegmentInput>,
        #[graphql(
            desc = "BCP-47 language tag of the transcript, e.g. `en` (the default) or `pt-BR`."
        )]
        language: Option<String>,
    ) -> AppResult<Video> {
        let video_id = parse_id("videoId", &video_id)?;
        let language =
            validate::language("language", language.as_deref().unwrap_or(DEFAULT_LANGUAGE))?;
        let (user, video) = managed_video(ctx, video_id).await?;
        let input = segments;
        let mut segments = validate::transcript("segments", &input, video.duration_secs)?;

        let app = state(ctx)?;
        let now = Utc::now();
        // A new version under new keys: the files the current rows name are never
        // overwritten, so a failed write or commit leaves the old captions intact. They are
        // written before the transaction (nothing names them yet): a slow object store must
        // not hold the video's row, or on SQLite every writer, for its two uploads.
        let version = Uuid::now_v7();
        let files = CAPTION_FORMATS.map(|format| {
            let key = captions::storage_key(video.creator_id, video.id, &language, version, format);
            (format, key)
        });
        let new_keys = || files.iter().map(|(_, key)| key.clone()).collect::<Vec<_>>();
        if !segments.is_empty() {
            for (format, key) in &files {
                let written = app
                    .storage
                    .put_bytes(
                        key,
                        captions::render(*format, &segments).into_bytes(),
                        captions::content_type(*format),
                    )
                    .await;
                if let Err(err) = written {
                    delete_unreachable(app, new_keys()).await;
                    return Err(err.into());
                }
            }
        }
        let stored = async {
            let txn = app.db.begin().await?;
            // The duration as it is under the lock: a probe that finished meanwhile is seen
            // (the segments are the same if they still fit: only their range is checked).
            let duration = touch_video(&txn, video.id, now).await?;
            if duration != video.duration_secs {
                segments = validate::transcript("segments", &input, duration)?;
            }
            transcript_segment::Entity::delete_many()
                .filter(transcript_segment::Column::VideoId.eq(video.id))
                .exec(&txn)
                .await?;
            let rows = segments
                .iter()
                .map(|s| transcript_segment::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    video_id: Set(video.id),
                    start_time: Set(s.start),
                    end_time: Set(s.end),
                    text: Set(s.text.clone()),
                    speaker: Set(s.speaker.clone()),
                    created_at: Set(now),
                })
                .collect();
            insert_chunked(&txn, rows).await?;

            // The tracks generated from a transcript: this language's captions, in both
            // formats.
            let generated = Condition::all()
                .add(caption_track::Column::VideoId.eq(video.id))
                .add(caption_track::Column::Language.eq(language.as_str()))
                .add(caption_track::Column::Kind.eq(CaptionKind::Captions))
                .add(caption_track::Column::Format.is_in(CAPTION_FORMATS));
            // The files the current rows name: unreachable once this commits.
            let stale: Vec<String> = caption_track::Entity::find()
                .select_only()
                .column(caption_track::Column::StorageKey)
                .filter(generated.clone())
                .into_tuple()
                .all(&txn)
                .await?;
            if segments.is_empty() {
                caption_track::Entity::delete_many()
                    .filter(generated)
                    .exec(&txn)
                    .await?;
            }
            for (format, key) in files.iter().filter(|_| !segments.is_empty()) {
                // A transcript set by a member is written, and reviewed, by a person: the
                // act of setting it is the review, hence HUMAN and approved.
                caption_track::Entity::insert(caption_track::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    video_id: Set(video.id),
                    language: Set(language.clone()),
                    kind: Set(CaptionKind::Captions),
                    format: Set(*format),
                    storage_key: Set(key.clone()),
                    source: Set(CaptionSource::Human),
                    approved: Set(true),
                    reviewed_by: Set(Some(user.id)),
                    reviewed_at: Set(Some(now)),
                    created_at: Set(now),
                })
                .on_conflict(
                    OnConflict::columns([
                        caption_track::Column::VideoId,
                        caption_track::Column::Language,
                        caption_track::Column::Kind,
                        caption_track::Column::Format,
                    ])
                    .update_columns([
                        caption_track::Column::StorageKey,
                        caption_track::Column::Source,
                        caption_track::Column::Approved,
                        caption_track::Column::ReviewedBy,
                        caption_track::Column::ReviewedAt,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
            }
            txn.commit().await?;
            Ok::<_, AppError>(stale)
        }
        .await;
        let stale = match stored {
            Ok(stale) => stale,
            Err(err) => {
                // Nothing names the new version: take it away again.
                if !segments.is_empty() {
                    delete_unreachable(app, new_keys()).await;
                }
                return Err(err);
            }
        };
        // The rows no longer name these files (a file left behind by a failed delete is
        // unreachable and only costs storage).
        delete_unreachable(app, stale).await;
        Ok(Video(video::Model {
            updated_at: now,
            ..video
        }))
    }

    /// Adds key moments to a video, after its existing ones (`sortOrder` continues from the
    /// highest). Returns the new moments.
    async fn add_key_moments(
        &self,
        ctx: &Context<'_>,
        video_id: ID,
        moments: Vec<KeyMomentInput>,
    ) -> AppResult<Vec<KeyMoment>> {
        let video_id = parse_id("videoId", &video_id)?;
        let (_, video) = managed_video(ctx, video_id).await?;
        let input = moments;
        let mut moments = validate::key_moments("moments", &input, video.duration_secs)?;

        let now = Utc::now();
        let txn = state(ctx)?.db.begin().await?;
        // Taken first, so two concurrent calls cannot both read the same highest sortOrder;
        // and the duration is checked again as it is under the lock.
        let duration = touch_video(&txn, video.id, now).await?;
        if duration != video.duration_secs {
            moments = validate::key_moments("moments", &input, duration)?;
        }
        let highest: Option<i32> = key_moment::Entity::find()
            .select_only()
            .column_as(key_moment::Column::SortOrder.max(), "highest")
            .filter(key_moment::Column::VideoId.eq(video.id))
            .into_tuple::<Option<i32>>()
            .one(&txn)
            .await?
            .flatten();
        let held = key_moment::Entity::find()
            .filter(key_moment::Column::VideoId.eq(video.id))
            .count(&txn)
            .await?;
        if held + moments.len() as u64 > validate::MAX_MOMENTS_PER_VIDEO {
            return Err(AppError::bad_input(
                "moments",
                format!(
                    "a video holds at most {} key moments (this one has {held})",
                    validate::MAX_MOMENTS_PER_VIDEO
                ),
            ));
        }
        let first = highest.map_or(0, |h| h.saturating_add(1));
        let ids: Vec<Uuid> = moments.iter().map(|_| Uuid::now_v7()).collect();
        let rows: Vec<key_moment::ActiveModel> = moments
            .into_iter()
            .zip(ids.iter().copied().zip(first..))
            .map(|(m, (id, sort_order))| key_moment::ActiveModel {
                id: Set(id),
                video_id: Set(video.id),
                title: Set(m.title),
                summary: Set(m.summary),
                start_time: Set(m.start),
                end_time: Set(m.end),
                topic_category: Set(m.topic_category),
                topic_tags: Set(serde_json::Value::from(m.topic_tags)),
                content_type: Set(m.content_type),
                review_status: Set(ReviewStatus::Pending),
                sort_order: Set(sort_order),
                created_at: Set(now),
                updated_at: Set(now),
            })
            .collect();
        insert_chunked(&txn, rows).await?;
        let created = key_moment::Entity::find()
            .filter(key_moment::Column::Id.is_in(ids))
            .order_by_asc(key_moment::Column::SortOrder)
            .all(&txn)
            .await?;
        txn.commit().await?;
        Ok(created.into_iter().map(KeyMoment).collect())
    }

    /// Scores every key moment of the video into a highlight candidate (see the
    /// `scoreBreakdown` dimensions), except those reviewed as `REJECTED`. One highlight per key
    /// moment: running it again updates the scores and keeps each highlight's status and trim.
    /// Returns the video's highlights, best score first.
    async fn detect_highlights(
        &self,
        ctx: &Context<'_>,
        video_id: ID,
    ) -> AppResult<Vec<Highlight>> {
        let video_id = parse_id("videoId", &video_id)?;
        let (_, video) = managed_video(ctx, video_id).await?;
        let db = &state(ctx)?.db;
        let moments = key_moment::Entity::find()
            .filter(key_moment::Column::VideoId.eq(video.id))
            .filter(key_moment::Column::ReviewStatus.ne(ReviewStatus::Rejected))
            .order_by_asc(key_moment::Column::SortOrder)
            .order_by_asc(key_moment::Column::Id)
            .all(db)
            .await?;
        let segments = transcript_segment::Entity::find()
            .filter(transcript_segment::Column::VideoId.eq(video.id))
            .order_by_asc(transcript_segment::Column::StartTime)
            .all(db)
            .await?;
        // Every moment is compared with every other one: CPU work, off the async workers, and
        // outside any transaction (on SQLite it would hold every other writer up).
        let duration = video.duration_secs;
        let scores = tokio::task::spawn_blocking(move || {
            let scores = score_moments(&moments, &segments, duration);
            moments
                .into_iter()
                .map(|m| m.id)
                .zip(scores)
                .collect::<HashMap<Uuid, _>>()
        })
        .await
        .map_err(|e| AppError::internal("scoring highlights", e))?;

        // The moments again, in the transaction that writes their highlights, and held
        // (PostgreSQL: FOR SHARE; SQLite: the write transaction) until it commits: one deleted
        // or rejected meanwhile is left out, one moved gets its new length.
        let txn = crate::jobs::queue::begin_write(db).await?;
        let now = Utc::now();
        // The video first, as every writer of its content: a probe making it READY meanwhile
        // (and fitting its highlights to its length) is waited for, and its length is used.
        let duration = touch_video(&txn, video.id, now).await?;
        let current = key_moment::Entity::find()
            .filter(key_moment::Column::Id.is_in(scores.keys().copied().collect::<Vec<_>>()))
            .filter(key_moment::Column::ReviewStatus.ne(ReviewStatus::Rejected))
            .for_share(&txn)
            .all(&txn)
            .await?;
        let rows: Vec<highlight::ActiveModel> = current
            .iter()
            .filter_map(|moment| Some((moment, scores.get(&moment.id)?)))
            .map(|(moment, score)| highlight::ActiveModel {
                id: Set(Uuid::now_v7()),
                key_moment_id: Set(moment.id),
                video_id: Set(video.id),
                score: Set(score.total),
                score_breakdown: Set(score.breakdown.to_json()),
                duration_secs: Set(untrimmed_length(moment, duration)),
                status: Set(HighlightStatus::Candidate),
                trim_start: Set(None),
                trim_end: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            })
            .collect();
        // One row per key moment, enforced by the unique key: an existing highlight only gets
        // its new score (and, untrimmed, its length within the video as it is now: moments
        // added before the upload was probed may run past its end), so its status, trim and
        // trimmed duration survive, and concurrent runs cannot create duplicates.
        let upsert = OnConflict::column(highlight::Column::KeyMomentId)
            .update_columns([
                highlight::Column::Score,
                highlight::Column::ScoreBreakdown,
                highlight::Column::UpdatedAt,
            ])
            .value(
                highlight::Column::DurationSecs,
                Expr::cust(
                    "CASE WHEN highlights.trim_start IS NULL THEN excluded.duration_secs \
                     ELSE highlights.duration_secs END",
                ),
            )
            .to_owned();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<highlight::ActiveModel> = rows.by_ref().take(INSERT_CHUNK).collect();
            highlight::Entity::insert_many(chunk)
                .on_conflict(upsert.clone())
                .exec_without_returning(&txn)
                .await?;
        }
        let highlights = highlight::Entity::find()
            .filter(highlight::Column::VideoId.eq(video.id))
            .order_by_desc(highlight::Column::Score)
            .order_by_asc(highlight::Column::Id)
            .all(&txn)
            .await?;
        txn.commit().await?;
        Ok(highlights.into_iter().map(|h| Highlight(h, None)).collect())
    }

    /// Reviews a key moment: `APPROVED`, `REJECTED` (`detectHighlights` then makes no
    /// candidate of it, and its highlight, while still a `CANDIDATE`, is `REJECTED` with it;
    /// one approved on its own stays), or back to `PENDING` (its highlight stays as it is:
    /// approve it to use it again). Members of the video's creator and administrators.
    async fn review_key_moment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: ReviewStatus,
    ) -> AppResult<KeyMoment> {
        let (moment, _) = managed_key_moment(ctx, &id).await?;
        let db = &state(ctx)?.db;
        let now = Utc::now();
        let txn = crate::jobs::queue::begin_write(db).await?;
        let Some(updated) = key_moment::Entity::update_many()
            .col_expr(key_moment::Column::ReviewStatus, Expr::val(status))
            .col_expr(key_moment::Column::UpdatedAt, Expr::val(now))
            .filter(key_moment::Column::Id.eq(moment.id))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
        else {
            txn.rollback().await?;
            return Err(AppError::NotFound("key moment"));
        };
        if status == ReviewStatus::Rejected {
            highlight::Entity::update_many()
                .col_expr(
                    highlight::Column::Status,
                    Expr::val(HighlightStatus::Rejected),
                )
                .col_expr(highlight::Column::UpdatedAt, Expr::val(now))
                .filter(highlight::Column::KeyMomentId.eq(moment.id))
                .filter(highlight::Column::Status.eq(HighlightStatus::Candidate))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(KeyMoment(updated))
    }

    /// Replaces a key moment's title, summary, times, category, tags and type (its review
    /// status stays). Its highlight follows the new range: the length of an untrimmed one
    /// changes with it, and a trim that no longer fits inside is cleared. Scores change on the
    /// next `detectHighlights`. Members of the video's creator and administrators.
    async fn update_key_moment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        moment: KeyMomentInput,
    ) -> AppResult<KeyMoment> {
        let (found, video) = managed_key_moment(ctx, &id).await?;
        let mut valid = validate::key_moment("moment", &moment, video.duration_secs)?;
        let db = &state(ctx)?.db;
        let now = Utc::now();
        let txn = crate::jobs::queue::begin_write(db).await?;
        // The duration as it is under the lock, as `addKeyMoments` checks it: a probe that
        // finished meanwhile is seen.
        let duration = touch_video(&txn, video.id, now).await?;
        if duration != video.duration_secs {
            valid = validate::key_moment("moment", &moment, duration)?;
        }
        let mut row: key_moment::ActiveModel = found.into();
        row.title = Set(valid.title);
        row.summary = Set(valid.summary);
        row.start_time = Set(valid.start);
        row.end_time = Set(valid.end);
        row.topic_category = Set(valid.topic_category);
        row.topic_tags = Set(serde_json::Value::from(valid.topic_tags));
        row.content_type = Set(valid.content_type);
        row.updated_at = Set(now);
        // Deleted since it was read: gone, not an internal error.
        let updated = match row.update(&txn).await {
            Ok(updated) => updated,
            Err(DbErr::RecordNotUpdated) => {
                txn.rollback().await?;
                return Err(AppError::NotFound("key moment"));
            }
            Err(err) => return Err(err.into()),
        };
        if let Some(highlight) = highlight::Entity::find()
            .filter(highlight::Column::KeyMomentId.eq(updated.id))
            .one(&txn)
            .await?
        {
            let trim = highlight
                .trim_start
                .zip(highlight.trim_end)
                .filter(|&(start, end)| validate::trim(start, end, &updated, None).is_ok());
            let mut row: highlight::ActiveModel = highlight.into();
            row.trim_start = Set(trim.map(|t| t.0));
            row.trim_end = Set(trim.map(|t| t.1));
            row.duration_secs =
                Set(trim.map_or_else(|| untrimmed_length(&updated, duration), |t| t.1 - t.0));
            row.updated_at = Set(now);
            row.update(&txn).await?;
        }
        txn.commit().await?;
        Ok(KeyMoment(updated))
    }

    /// Deletes a key moment, with its highlight and that highlight's shorts (their files and
    /// share links too). `CONFLICT` while one of those shorts is still rendering. Members of
    /// the video's creator and administrators.
    async fn delete_key_moment(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let (moment, _) = managed_key_moment(ctx, &id).await?;
        let app = state(ctx)?;
        let txn = crate::jobs::queue::begin_write(&app.db).await?;
        // Locked on PostgreSQL: the moment, then its highlight — the order in which
        // `updateKeyMoment` and `trimHighlight` take them too, so none of them can deadlock
        // another. A `generateShort` of the highlight waits for this deletion and then finds
        // nothing, instead of racing it.
        key_moment::Entity::find_by_id(moment.id)
            .for_update(&txn)
            .one(&txn)
            .await?;
        let find = highlight::Entity::find()
            .filter(highlight::Column::KeyMomentId.eq(moment.id))
            .for_update(&txn);
        let highlights: Vec<Uuid> = find.all(&txn).await?.into_iter().map(|h| h.id).collect();
        let shorts = entity::short::Entity::find()
            .filter(entity::short::Column::HighlightId.is_in(highlights))
            .all(&txn)
            .await?;
        if shorts.iter().any(|s| {
            matches!(
                s.status,
                entity::ShortStatus::Pending | entity::ShortStatus::Processing
            )
        }) {
            txn.rollback().await?;
            return Err(AppError::conflict(
                Some("id"),
                "a short of this key moment is still rendering: cancel its job or wait for it",
            ));
        }
        // The highlight and its shorts go with the moment (foreign keys cascade).
        let deleted = key_moment::Entity::delete_by_id(moment.id)
            .exec(&txn)
            .await?;
        crate::shorts::forget_outputs(&txn, shorts.iter().filter_map(|s| s.job_id)).await?;
        txn.commit().await?;
        if deleted.rows_affected == 0 {
            return Err(AppError::NotFound("key moment"));
        }
        delete_unreachable(
            app,
            shorts.into_iter().filter_map(|s| s.object_key).collect(),
        )
        .await;
        Ok(true)
    }

    /// Approves a highlight for shorts.
    async fn approve_highlight(&self, ctx: &Context<'_>, id: ID) -> AppResult<Highlight> {
        set_status(ctx, &id, HighlightStatus::Approved).await
    }

    /// Rejects a highlight; it stays listed (with status `REJECTED`) so re-scoring does not
    /// bring it back as a candidate.
    async fn reject_highlight(&self, ctx: &Context<'_>, id: ID) -> AppResult<Highlight> {
        set_status(ctx, &id, HighlightStatus::Rejected).await
    }

    /// Trims a highlight to `[trimStart, trimEnd]`: absolute seconds inside its key moment, at
    /// least 3 seconds long. `durationSecs` becomes the trimmed length.
    async fn trim_highlight(
        &self,
        ctx: &Context<'_>,
        id: ID,
        trim_start: f64,
        trim_end: f64,
    ) -> AppResult<Highlight> {
        let (found, video) = managed_highlight(ctx, &id).await?;
        let db = &state(ctx)?.db;
        // The key moment is read, share-locked on PostgreSQL, in the transaction that writes
        // the trim (SQLite's writers are serialised): an `updateKeyMoment` that moves the
        // range either commits first, and the trim is checked against the new range, or waits
        // for this trim, and then clears it if it no longer fits.
        let txn = crate::jobs::queue::begin_write(db).await?;
        let moment = key_moment::Entity::find_by_id(found.key_moment_id)
            .for_share(&txn)
            .one(&txn)
            .await?;
        let Some(moment) = moment else {
            txn.rollback().await?;
            return Err(AppError::NotFound("highlight"));
        };
        if let Err(err) = validate::trim(trim_start, trim_end, &moment, video.duration_secs) {
            txn.rollback().await?;
            return Err(err);
        }
        let mut row: highlight::ActiveModel = found.into();
        row.trim_start = Set(Some(trim_start));
        row.trim_end = Set(Some(trim_end));
        // To the microsecond: 9.0000001 - 6.0000001 is 2.999999999999999, under the 3 s a trim
        // must last.
        row.duration_secs = Set(crate::graphql::to_millionths(trim_end - trim_start));
        row.updated_at = Set(Utc::now());
        let trimmed = match row.update(&txn).await {
            Ok(trimmed) => trimmed,
            Err(DbErr::RecordNotUpdated) => {
                txn.rollback().await?;
                return Err(AppError::NotFound("highlight"));
            }
            Err(err) => return Err(err.into()),
        };
        txn.commit().await?;
        Ok(Highlight(trimmed, None))
    }
}

/// Deletes files no row names any more (caption files, shorts); what storage fails to delete
/// is kept to be deleted by the upkeep ([`crate::storage::deferred`]), not failed on.
async fn delete_unreachable(app: &crate::state::AppState, keys: Vec<String>) {
    for key in keys {
        crate::storage::deferred::delete_or_defer(
            &app.db,
            &app.storage,
            &key,
            "a file no row names any more",
        )
        .await;
    }
}
