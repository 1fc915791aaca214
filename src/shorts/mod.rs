//! Shorts: approved highlights cut into 9:16, 1:1 or 16:9 clips with optional burned-in
//! captions, their `render.short` jobs, and public sharing by unguessable token that respects
//! the video's consent.

pub mod render;
pub mod template;

use async_graphql::{Context, ID, InputObject, Object};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::{
    HighlightStatus, JobKind, JobStatus, ShortPreset, ShortStatus, VideoStatus, creator, highlight,
    job, key_moment, short, video, video_consent,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, Set, sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    access::Viewer,
    db::RowLock,
    error::{AppError, AppResult},
    graphql::{
        loaders,
        loaders::{HighlightById, JobById, VisibleVideoById},
        parse_id, state, viewer,
    },
    jobs::{NewJob, graphql::Job, queue},
    storage::PRESIGN_TTL,
};

/// A short video cut from a highlight.
pub struct Short(pub short::Model);

#[Object]
impl Short {
    pub(crate) async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn highlight(&self, ctx: &Context<'_>) -> AppResult<crate::content::Highlight> {
        loaders(ctx)?
            .load_one(HighlightById(self.0.highlight_id))
            .await?
            .map(|h| crate::content::Highlight(h, None))
            .ok_or(AppError::NotFound("highlight"))
    }
    async fn preset(&self) -> ShortPreset {
        self.0.preset
    }
    async fn status(&self) -> ShortStatus {
        self.0.status
    }
    /// Captions from the transcript are burned into the picture. Until the short is rendered,
    /// whether they were asked for; once COMPLETE, whether they are there (a clip without
    /// transcript lines has none, though they were asked for).
    async fn captions_enabled(&self) -> bool {
        self.0.captions_enabled
    }
    async fn duration_secs(&self) -> Option<f64> {
        self.0.duration_secs
    }
    async fn file_size(&self) -> Option<i64> {
        self.0.file_size
    }
    /// Download URL once COMPLETE; it works for 10 minutes (at least 8 in an answer to a
    /// signed-out caller, which may have been kept for up to 2).
    async fn url(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        let Some(key) = self
            .0
            .object_key
            .as_deref()
            .filter(|_| self.0.status == ShortStatus::Complete)
        else {
            return Ok(None);
        };
        Ok(Some(
            state(ctx)?.storage.presign_get(key, PRESIGN_TTL).await?,
        ))
    }
    /// Token for `sharedShort`, for the creator's members.
    async fn share_token(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        let Some(token) = &self.0.share_token else {
            return Ok(None);
        };
        // Through the request's loaders: a page of shorts costs no query per short.
        let loaders = loaders(ctx)?;
        let creator = match loaders.load_one(HighlightById(self.0.highlight_id)).await? {
            Some(highlight) => loaders
                .load_one(VisibleVideoById(highlight.video_id))
                .await?
                .map(|video| video.creator_id),
            None => None,
        };
        let manages = match creator {
            Some(creator) => {
                viewer(ctx)?
                    .manages_creator(&state(ctx)?.db, creator)
                    .await?
            }
            None => false,
        };
        Ok(manages.then(|| token.clone()))
    }
    /// The `render.short` job (for those who may see it).
    async fn job(&self, ctx: &Context<'_>) -> AppResult<Option<Job>> {
        let Some(job_id) = self.0.job_id else {
            return Ok(None);
        };
        let db = &state(ctx)?.db;
        match loaders(ctx)?.load_one(JobById(job_id)).await? {
            Some(row) if crate::jobs::graphql::can_see(viewer(ctx)?, db, &row).await? => {
                Ok(Some(Job(row)))
            }
            _ => Ok(None),
        }
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

async fn creator_of(db: &DatabaseConnection, highlight_id: Uuid) -> AppResult<Option<Uuid>> {
    let Some(highlight) = highlight::Entity::find_by_id(highlight_id).one(db).await? else {
        return Ok(None);
    };
    Ok(video::Entity::find_by_id(highlight.video_id)
        .one(db)
        .await?
        .map(|v| v.creator_id))
}

/// The shorts of a highlight, for callers who may see its video.
/// The shorts of a highlight of `video`: all of them for the creator's members, the COMPLETE
/// ones for everyone else (a pending or failed render, and its error, are the creator's
/// business).
pub async fn shorts_of(
    ctx: &Context<'_>,
    video: &entity::video::Model,
    highlight_id: Uuid,
) -> AppResult<Vec<Short>> {
    crate::graphql::budget::take(ctx, 0)?;
    let db = &state(ctx)?.db;
    let manages = viewer(ctx)?.manages_creator(db, video.creator_id).await?;
    let shorts = loaders(ctx)?
        .load_one(crate::graphql::loaders::ShortsOf(highlight_id))
        .await?
        .unwrap_or_default();
    crate::graphql::budget::counted(
        ctx,
        shorts
            .into_iter()
            .filter(|s| manages || s.status == ShortStatus::Complete)
            .map(Short)
            .collect(),
    )
}

/// The shortest range a short is cut from.
pub const MIN_SHORT_SECS: f64 = 1.0;

#[derive(InputObject)]
pub struct GenerateShortInput {
    pub highlight_id: ID,
    pub preset: ShortPreset,
    /// Burn the transcript's captions into the picture (not when left out or null).
    #[graphql(default_with = "Some(false)")]
    pub captions: Option<bool>,
    /// POSTed a signed JSON notice when the short's render ends (as `RenderMovieInput`'s).
    pub callback_url: Option<String>,
    /// Repeating a request with the same key while its render is unfinished returns that
    /// short instead of queueing another; the same key with a different highlight, preset,
    /// captions or `callbackUrl` is a `CONFLICT`. 1–255 characters, shared with
    /// `renderMovie`'s keys.
    pub idempotency_key: Option<String>,
}

/// What a `generateShort` fingerprint covers, for the `CONFLICT` of a reused key.
const REQUEST_FIELDS: &str = "highlightId, preset, captions or callbackUrl";

#[derive(Default)]
pub struct ShortQuery;

#[Object]
impl ShortQuery {
    /// A short whose video the caller may see: any of them for the creator's members, a
    /// COMPLETE one for everyone else.
    pub(crate) async fn short(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Short>> {
        let id = parse_id("id", &id)?;
        Ok(Some(Short(visible_short(ctx, id).await?)))
    }

    /// A shared short, for anyone with its token — no sign-in. Null unless the short is
    /// COMPLETE and its video's consent allows public display. Turning public display off
    /// hides it at once on the server that made the change, and within milliseconds of the
    /// commit on the others sharing the database (an answer to a signed-out caller is kept
    /// until something it was read from changes).
    async fn shared_short(&self, ctx: &Context<'_>, token: String) -> AppResult<Option<Short>> {
        // New tokens are 43 characters; links imported from an earlier platform can be as
        // short as 11 (`secrets.token_urlsafe(8)`).
        if token.len() < 8 || token.len() > 128 {
            return Ok(None);
        }
        let db = &state(ctx)?.db;
        let Some(row) = short::Entity::find()
            .filter(short::Column::ShareToken.eq(token))
            .filter(short::Column::Status.eq(ShortStatus::Complete))
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        Ok(publicly_visible(db, &row).await?.then_some(Short(row)))
    }
}

/// Short `id` if the caller may see it: any of them for the creator's members, a COMPLETE
/// one for everyone else (`NOT_FOUND` otherwise).
async fn visible_short(ctx: &Context<'_>, id: Uuid) -> AppResult<short::Model> {
    let db = &state(ctx)?.db;
    let Some(row) = short::Entity::find_by_id(id).one(db).await? else {
        return Err(AppError::NotFound("short"));
    };
    let video_id = highlight::Entity::find_by_id(row.highlight_id)
        .one(db)
        .await?
        .map(|h| h.video_id);
    let video = match video_id {
        Some(video_id) => loaders(ctx)?.load_one(VisibleVideoById(video_id)).await?,
        None => None,
    };
    let visible = match video {
        Some(_) if row.status == ShortStatus::Complete => true,
        Some(video) => viewer(ctx)?.manages_creator(db, video.creator_id).await?,
        None => false,
    };
    if visible {
        Ok(row)
    } else {
        Err(AppError::NotFound("short"))
    }
}

async fn publicly_visible(db: &DatabaseConnection, row: &short::Model) -> AppResult<bool> {
    let Some(highlight) = highlight::Entity::find_by_id(row.highlight_id)
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let Some(source) = video::Entity::find_by_id(highlight.video_id)
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    // The same rule as every public read of a video: live and READY (not held back).
    if source.deleted_at.is_some() || source.status != VideoStatus::Ready {
        return Ok(false);
    }
    let consent = video_consent::Entity::find()
        .filter(video_consent::Column::VideoId.eq(source.id))
        .one(db)
        .await?;
    Ok(consent.is_none_or(|c| c.public_display))
}

/// Forgets the files the `render.short` jobs `jobs` made, when their shorts are deleted: a
/// job's `outputUrl` is null from then on, not a link to a file that is gone.
pub(crate) async fn forget_outputs(
    db: &impl sea_orm::ConnectionTrait,
    jobs: impl IntoIterator<Item = Uuid>,
) -> Result<(), sea_orm::DbErr> {
    let jobs: Vec<Uuid> = jobs.into_iter().collect();
    if jobs.is_empty() {
        return Ok(());
    }
    job::Entity::update_many()
        .col_expr(job::Column::OutputRef, Expr::val(Option::<String>::None))
        .filter(job::Column::Id.is_in(jobs))
        .filter(job::Column::JobType.eq(SHORT_JOB))
        .exec(db)
        .await?;
    Ok(())
}

#[derive(Default)]
pub struct ShortMutation;

#[Object]
impl ShortMutation {
    /// Deletes a short: its file and share link go with it. Members of its video's creator and
    /// administrators; a short still rendering is `CONFLICT` (cancel its job, or wait).
    async fn delete_short(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        // Signed out, sign-in is asked for first, as by every mutation.
        viewer(ctx)?.require_user()?;
        // Seen by the caller, by `short`'s rules (NOT_FOUND otherwise).
        let found = Short(visible_short(ctx, parse_id("id", &id)?).await?);
        let db = &state(ctx)?.db;
        let creator = creator_of(db, found.0.highlight_id)
            .await?
            .ok_or(AppError::NotFound("short"))?;
        viewer(ctx)?.ensure_manages_creator(db, creator).await?;
        let rendering = [ShortStatus::Pending, ShortStatus::Processing];
        let still_rendering = || {
            AppError::conflict(
                Some("id"),
                "the short is still rendering: cancel its job or wait for it",
            )
        };
        if rendering.contains(&found.0.status) {
            return Err(still_rendering());
        }
        // Conditional: a retry that made it render again meanwhile (it is PENDING from the
        // retry on) is not pulled from under it. The row and its job's link to the file go
        // together, or neither does.
        let txn = crate::jobs::queue::begin_write(db).await?;
        let deleted = short::Entity::delete_many()
            .filter(short::Column::Id.eq(found.0.id))
            .filter(short::Column::Status.is_not_in(rendering))
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            txn.rollback().await?;
            return Err(still_rendering());
        }
        forget_outputs(&txn, found.0.job_id).await?;
        txn.commit().await?;
        loaders(ctx)?.forget(&crate::graphql::loaders::ShortsOf(found.0.highlight_id));
        if let Some(key) = &found.0.object_key {
            let app = state(ctx)?;
            crate::storage::deferred::delete_or_defer(
                &app.db,
                &app.storage,
                key,
                "a deleted short's file",
            )
            .await;
        }
        Ok(true)
    }

    /// Cuts an approved highlight into a short; returns it PENDING with its `render.short`
    /// job, created in one transaction. The short is the highlight's range and the creator's
    /// intro and outro cards as they are at this call (their minutes are reserved now): a
    /// trim or template saved while it waits does not change it. The range ends at the
    /// video's end at the latest and lasts at least 1 s (else CONFLICT). Captions, when asked
    /// for, are the transcript's lines as they are when the render runs.
    async fn generate_short(
        &self,
        ctx: &Context<'_>,
        input: GenerateShortInput,
    ) -> AppResult<Short> {
        let highlight_id = parse_id("input.highlightId", &input.highlight_id)?;
        let callback = input
            .callback_url
            .as_deref()
            .map(|url| {
                crate::jobs::webhooks::validate_callback_url(
                    "input.callbackUrl",
                    url,
                    state(ctx)?.config.webhook_allow_private,
                )
            })
            .transpose()?;
        if let Some(key) = &input.idempotency_key {
            queue::check_idempotency_key("input.idempotencyKey", key)?;
        }
        let captions = input.captions.unwrap_or(false);
        let fingerprint =
            crate::render::plan::sha256_hex(&crate::render::plan::canonical_json(&json!({
                "highlightId": highlight_id,
                "preset": input.preset,
                "captions": captions,
                "callbackUrl": callback,
            })));
        let viewer: &Viewer = viewer(ctx)?;
        let user = viewer.require_user()?.clone();
        let state = state(ctx)?;
        let highlight = highlight::Entity::find_by_id(highlight_id)
            .one(&state.db)
            .await?
            .ok_or(AppError::NotFound("highlight"))?;
        let source = loaders(ctx)?
            .load_one(VisibleVideoById(highlight.video_id))
            .await?
            .ok_or(AppError::NotFound("highlight"))?;
        if !viewer.manages_creator(&state.db, source.creator_id).await? {
            return Err(AppError::forbidden(
                "only the creator's members may generate shorts",
            ));
        }
        // A retry whose first request went through gets its short, whatever happened to the
        // highlight since (rejected, say). Looked up again in the transaction below, for a
        // request that commits in between.
        if let Some(key) = &input.idempotency_key
            && let Some(existing) = queue::find_unfinished_by_key(&state.db, user.id, key).await?
        {
            return short_of_request(&state.db, existing, &fingerprint).await;
        }
        let not_approved = || {
            AppError::conflict(
                Some("input.highlightId"),
                "approve the highlight before generating shorts from it",
            )
        };
        if highlight.status != HighlightStatus::Approved {
            return Err(not_approved());
        }
        if source.status != VideoStatus::Ready {
            return Err(AppError::conflict(
                Some("input.highlightId"),
                "the source video is not ready",
            ));
        }
        let now = Utc::now();
        let txn = queue::begin_write(&state.db).await?;
        if let Some(key) = &input.idempotency_key
            && let Some(existing) = queue::find_unfinished_by_key(&txn, user.id, key).await?
        {
            txn.rollback().await?;
            return short_of_request(&state.db, existing, &fingerprint).await;
        }
        // The video first, share-locked (PostgreSQL): a deleteVideo that committed since it
        // was read is seen, and one still to come waits for this short (and then finds it
        // rendering) instead of leaving a short to render for a deleted video. Video, then
        // highlight: the order in which `updateKeyMoment` locks them (it touches the video
        // first), so neither deadlocks the other.
        let current = video::Entity::find_by_id(source.id)
            .for_share(&txn)
            .one(&txn)
            .await?;
        if current.is_none_or(|v| v.deleted_at.is_some()) {
            txn.rollback().await?;
            return Err(AppError::NotFound("highlight"));
        }
        // Read again inside the transaction (locked on PostgreSQL; SQLite's writers are
        // serialised): a rejectHighlight or trim that commits meanwhile is seen, not missed.
        let again = highlight::Entity::find_by_id(highlight_id).for_update(&txn);
        let highlight = again
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound("highlight"))?;
        if highlight.status != HighlightStatus::Approved {
            txn.rollback().await?;
            return Err(not_approved());
        }
        // What the short will be, fixed now: the highlight's range (trimmed or the key
        // moment's) and the creator's intro and outro cards, as they are at this moment. The
        // render cuts exactly this, so the minutes reserved here are the minutes it makes,
        // whatever trims or template edits come later.
        let moment = key_moment::Entity::find_by_id(highlight.key_moment_id)
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound("highlight"))?;
        let (start, end) = (
            highlight.trim_start.unwrap_or(moment.start_time),
            highlight.trim_end.unwrap_or(moment.end_time),
        );
        // A key moment added before the video was probed can lie past its end: such a render
        // would have no picture to cut, and fail after reserving its minutes.
        if let Some(video) = source.duration_secs.filter(|d| d.is_finite() && *d > 0.0)
            && start >= video
        {
            txn.rollback().await?;
            // A trim stays within its key moment: a moment past the end cannot be trimmed
            // back into the video.
            let mend = if moment.start_time < video {
                "trim it to start earlier"
            } else {
                "its key moment lies past the end: correct it with updateKeyMoment (or delete it)"
            };
            return Err(AppError::conflict(
                Some("input.highlightId"),
                format!(
                    "the highlight starts at {start} s, after the end of the video ({video} s): \
                     {mend}"
                ),
            ));
        }
        // Parsed once: a template this server cannot read gives no cards, and is not kept.
        let (stored_template, cards) = creator::Entity::find_by_id(source.creator_id)
            .one(&txn)
            .await?
            .and_then(|c| c.shorts_template)
            .and_then(|t| {
                let cards = template::Template::parse("shortsTemplate", &t).ok()?;
                Some((t, cards.added_secs()))
            })
            .map_or((None, 0.0), |(t, secs)| (Some(t), secs));
        // Never past the video's end: the cut stops there, so the clip (and the minutes
        // reserved for it) is what lies between its start and that end.
        let end = match source.duration_secs {
            Some(video) if video.is_finite() && video > 0.0 => end.min(video),
            _ => end,
        };
        // A second at the shortest: a moment of a few frames (or one cut down to them by the
        // video's end) would reserve minutes for a blink. Not the 3 s a trim must leave: key
        // moments shorter than that are accepted, and rendered before this check existed.
        let min = MIN_SHORT_SECS;
        if end - start < min - 1e-9 {
            txn.rollback().await?;
            return Err(AppError::conflict(
                Some("input.highlightId"),
                format!(
                    "the highlight's range ({start} s to {end} s of the video) is shorter than \
                     {min} s: correct its key moment"
                ),
            ));
        }
        let length = (end - start) + cards;
        let id = Uuid::now_v7();
        let mut short_input = json!({
            "short_id": id,
            "clip": { "start": start, "end": end },
            "shorts_template": stored_template,
        });
        short_input[queue::REQUEST_KEY] = fingerprint.clone().into();
        let notified = callback.is_some();
        crate::jobs::webhooks::attach(&mut short_input, callback);
        let mut new = NewJob::new(JobKind::Render, SHORT_JOB, user.id, short_input);
        new.creator_id = Some(source.creator_id);
        new.idempotency_key = input.idempotency_key;
        let job_id = new.id;
        short::ActiveModel {
            id: Set(id),
            highlight_id: Set(highlight.id),
            preset: Set(input.preset),
            status: Set(ShortStatus::Pending),
            object_key: Set(None),
            file_size: Set(None),
            duration_secs: Set(None),
            error: Set(None),
            share_token: Set(None),
            captions_enabled: Set(captions),
            job_id: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        let enqueued = queue::enqueue(&txn, new).await?;
        if enqueued.existing {
            // A request with the same key committed its short between our look-up and our
            // insert: that short is the answer (and this one, unwritten, is not made).
            txn.rollback().await?;
            return short_of_request(&state.db, enqueued.job, &fingerprint).await;
        }
        if notified {
            crate::jobs::webhooks::pin_secret(&txn, &state.tokens, user.id).await?;
        }
        // A short is a render: its minutes (the highlight's trimmed length) are reserved
        // against the plan like a movie's, after the job's insert and in its transaction, and
        // settled by the real duration or given back when it ends (`render::on_job_finished`).
        let reservation =
            crate::billing::reserve(&txn, user.id, length.max(0.0) / 60.0, Some(job_id), now)
                .await
                .map_err(|e| e.in_field("input"))?;
        let mut job_input = enqueued.job.input.clone();
        job_input["reservation"] = json!(reservation);
        let mut job_row: job::ActiveModel = enqueued.job.into();
        job_row.input = Set(job_input);
        let job = job_row.update(&txn).await?;
        let row = short::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound("short"))?;
        let mut row: short::ActiveModel = row.into();
        row.job_id = Set(Some(job_id));
        let row = row.update(&txn).await?;
        txn.commit().await?;
        loaders(ctx)?.forget(&crate::graphql::loaders::ShortsOf(row.highlight_id));
        state.events.publish(&[queue::event_of(&job)]).await;
        Ok(Short(row))
    }
}

/// Type of the job that renders a short.
const SHORT_JOB: &str = "render.short";

/// The short of the unfinished `render.short` an idempotency key names, if the same request
/// made it (`CONFLICT` if not).
async fn short_of_request(
    db: &DatabaseConnection,
    existing: job::Model,
    fingerprint: &str,
) -> AppResult<Short> {
    let job = queue::same_request(existing, SHORT_JOB, fingerprint, REQUEST_FIELDS)?;
    let short = match short_id_of(&job) {
        Some(id) => short::Entity::find_by_id(id).one(db).await?,
        None => None,
    };
    short.map(Short).ok_or_else(|| {
        AppError::conflict(
            Some("input.idempotencyKey"),
            "the short of this idempotency key was just deleted; retry with a new key",
        )
    })
}

/// A share token: 256 random bits, URL-safe.
fn share_token() -> String {
    let mut random = [0u8; 32];
    rand::fill(&mut random);
    URL_SAFE_NO_PAD.encode(random)
}

/// The short a `render.short` job renders.
fn short_id_of(job: &job::Model) -> Option<Uuid> {
    job.input
        .get("short_id")
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse().ok())
}

/// A retried `render.short` puts its short back to PENDING (its error cleared), so that the
/// short says it is rendering again and `deleteShort` refuses it until the render ends. Runs
/// in the retry's transaction.
pub async fn on_job_retried(txn: &DatabaseTransaction, job: &job::Model) -> AppResult<()> {
    let Some(short_id) = short_id_of(job) else {
        return Ok(());
    };
    short::Entity::update_many()
        .col_expr(short::Column::Status, Expr::val(ShortStatus::Pending))
        .col_expr(short::Column::Error, Expr::val(Option::<String>::None))
        .col_expr(short::Column::UpdatedAt, Expr::val(Utc::now()))
        .filter(short::Column::Id.eq(short_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// The short of a job put back in the queue waits again: PENDING, where the render had marked
/// it PROCESSING.
pub async fn on_job_requeued(txn: &DatabaseTransaction, job: &job::Model) -> AppResult<()> {
    let Some(short_id) = short_id_of(job) else {
        return Ok(());
    };
    short::Entity::update_many()
        .col_expr(short::Column::Status, Expr::val(ShortStatus::Pending))
        .col_expr(short::Column::UpdatedAt, Expr::val(Utc::now()))
        .filter(short::Column::Id.eq(short_id))
        .filter(short::Column::Status.eq(ShortStatus::Processing))
        .exec(txn)
        .await?;
    Ok(())
}

/// The short follows its job: COMPLETE (with its file and a share token) when the job is
/// done, FAILED when it failed or was cancelled. Runs in the job's terminal transaction.
pub async fn on_job_finished(txn: &DatabaseTransaction, job: &job::Model) -> AppResult<()> {
    let Some(short_id) = short_id_of(job) else {
        return Ok(());
    };
    let now = Utc::now();
    let update = short::Entity::update_many()
        .filter(short::Column::Id.eq(short_id))
        .col_expr(short::Column::UpdatedAt, Expr::val(now));
    let update = match job.status {
        JobStatus::Done => {
            let output = job.output.clone().unwrap_or_default();
            let update = update
                .col_expr(short::Column::Status, Expr::val(ShortStatus::Complete))
                .col_expr(short::Column::ObjectKey, Expr::val(job.output_ref.clone()))
                .col_expr(
                    short::Column::FileSize,
                    Expr::val(output.get("size_bytes").and_then(|v| v.as_i64())),
                )
                .col_expr(
                    short::Column::DurationSecs,
                    Expr::val(output.get("duration_secs").and_then(|v| v.as_f64())),
                )
                .col_expr(short::Column::ShareToken, Expr::val(share_token()))
                .col_expr(short::Column::Error, Expr::val(Option::<String>::None));
            // Asked-for captions are only burned when the clip has transcript lines.
            match output
                .get("captions_burned")
                .and_then(serde_json::Value::as_bool)
            {
                Some(burned) => update.col_expr(short::Column::CaptionsEnabled, Expr::val(burned)),
                None => update,
            }
        }
        JobStatus::Failed | JobStatus::Cancelled => {
            let error = match job.status {
                JobStatus::Cancelled => "cancelled".to_owned(),
                _ => job.error.clone().unwrap_or_else(|| "failed".to_owned()),
            };
            update
                .col_expr(short::Column::Status, Expr::val(ShortStatus::Failed))
                .col_expr(short::Column::Error, Expr::val(error))
        }
        _ => return Ok(()),
    };
    update.exec(txn).await?;
    Ok(())
}
