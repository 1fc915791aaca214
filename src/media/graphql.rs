//! The upload API: `requestVideoUpload`, `completeVideoUpload`, `updateVideo`, `deleteVideo`,
//! and the `VideoVariant` type.
//!
//! Bytes never pass through the GraphQL server: the client PUTs them straight to object
//! storage with a presigned URL, and the server only checks the result. Access follows the
//! contract: creators are public profiles, so uploading to one you do not belong to is
//! `FORBIDDEN`; a video you may not see is `NOT_FOUND`.

use std::collections::BTreeMap;

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, TimeDelta, Utc};
use entity::{JobKind, VideoStatus, creator, video, video_variant};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::{PROBE_JOB, hash, keys, probe::ProbeInput, validate};
use crate::{
    db::RowLock,
    error::{AppError, AppResult},
    graphql::{loaders, loaders::VisibleVideoById, parse_id, state, viewer},
    jobs::{NewJob, graphql::Job, queue},
    storage::PRESIGN_TTL,
    videos::Video,
};

/// Upload links an account (other than an administrator's) may ask for in 24 hours. Each
/// completed upload costs a transcode, and each link lets a body of up to 5 GiB onto the
/// server's disk: without a limit one account could fill both.
pub const MAX_VIDEO_UPLOADS_PER_DAY: u64 = 200;

#[derive(InputObject)]
pub struct RequestVideoUploadInput {
    /// The creator the video belongs to; only its members (and administrators) may upload.
    pub creator_id: ID,
    /// The file's name on the uploader's machine, 1–255 characters.
    pub filename: String,
    /// A `video/*` MIME type. The PUT must send exactly this `content-type`.
    pub content_type: String,
    /// The file's exact size in bytes (1 byte to 5 GiB, the most one PUT carries to S3);
    /// checked by `completeVideoUpload`.
    pub size_bytes: i64,
    /// Hex SHA-256 of the file (64 characters). If the creator already has a READY video with
    /// these bytes, that video is returned and nothing needs uploading; otherwise
    /// `completeVideoUpload` checks the uploaded bytes against it.
    pub sha256: Option<String>,
    /// At most 200 characters; defaults to the file name without its extension.
    pub title: Option<String>,
}

/// Omitted fields stay as they are; `null` clears a nullable one and is refused for the others.
#[derive(InputObject)]
pub struct UpdateVideoInput {
    /// 1–200 characters.
    pub title: MaybeUndefined<String>,
    /// The video elsewhere (e.g. on YouTube): an absolute http(s) URL.
    pub youtube_url: MaybeUndefined<String>,
    /// When the video is deleted by itself (as `deleteVideo` does), for content that may only
    /// be kept so long; in the future. `null` keeps it for good.
    pub retention_until: MaybeUndefined<DateTime<Utc>>,
}

/// The largest upload whose SHA-256 `completeVideoUpload` checks itself (see there): a local
/// file is read where it lies, but an S3 object is downloaded first, and 512 MiB over a link
/// to a bucket in another region would outlast the request's time limit at every try.
pub(super) fn hash_inline_bytes(storage: &crate::storage::Storage) -> u64 {
    match storage {
        crate::storage::Storage::Local(_) => 512 << 20,
        crate::storage::Storage::S3(_) => 32 << 20,
    }
}

/// Where and how to upload a video's bytes, or the existing video with the same bytes.
#[derive(SimpleObject)]
pub struct VideoUpload {
    /// The new video (UPLOADING), or the creator's READY video with the same bytes.
    pub video: Video,
    /// PUT the file here, with `uploadHeaders`; then call `completeVideoUpload`. Null when
    /// de-duplicated.
    pub upload_url: Option<String>,
    /// Headers the PUT must send (e.g. `content-type`; with S3 also `content-length`, which
    /// browsers set themselves); an empty object when none are needed.
    pub upload_headers: Json<BTreeMap<String, String>>,
    /// When `uploadUrl` stops working (10 minutes after the request).
    pub expires_at: Option<DateTime<Utc>>,
    /// True when an existing READY video with the same SHA-256 was returned instead.
    pub deduplicated: bool,
}

/// A rendition made from an uploaded video.
pub struct VideoVariant(pub video_variant::Model);

/// A rendition made from an uploaded video: `thumbnail` (JPEG) or `proxy_720p` (H.264/AAC MP4).
#[Object]
impl VideoVariant {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// `thumbnail` or `proxy_720p`.
    async fn profile(&self) -> &str {
        &self.0.profile
    }
    async fn mime(&self) -> Option<&str> {
        self.0.mime.as_deref()
    }
    async fn size_bytes(&self) -> Option<i64> {
        self.0.size_bytes
    }
    async fn width(&self) -> Option<i32> {
        self.0.width
    }
    async fn height(&self) -> Option<i32> {
        self.0.height
    }
    /// Average bits per second (video renditions only).
    async fn bitrate(&self) -> Option<i32> {
        self.0.bitrate
    }
    /// A download link, valid for 10 minutes.
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

/// Removes an upload `completeVideoUpload` refused, so that its link (write-once) takes the
/// right file; unless the video is no longer UPLOADING. A refusal that took long (hashing)
/// could otherwise remove the right file, put again and completed by another call meanwhile,
/// from under a video already PROCESSING.
async fn discard_upload(state: &crate::state::AppState, video: &video::Model) -> AppResult<()> {
    let still_uploading = video::Entity::find_by_id(video.id)
        .one(&state.db)
        .await?
        .is_some_and(|now| now.status == VideoStatus::Uploading && now.deleted_at.is_none());
    if still_uploading {
        state.storage.delete(&video.storage_key).await?;
    }
    Ok(())
}

/// Another video of `video`'s creator with the file `sha256` names: two uploads of one file
/// requested at once both got links (neither was READY yet). A READY one (its file was
/// checked), or, when `checked` (this file's hash was checked on completing, and so was the
/// other's, of the same size), one being processed. Run in the completing write transaction
/// with the creator's row locked (PostgreSQL; SQLite's write transaction holds the whole
/// database), so of two completed at once, the second sees the first.
async fn same_file(
    txn: &sea_orm::DatabaseTransaction,
    video: &video::Model,
    sha256: &str,
    checked: bool,
) -> AppResult<Option<video::Model>> {
    creator::Entity::find_by_id(video.creator_id)
        .for_no_key_update(txn)
        .one(txn)
        .await?;
    Ok(video::Entity::find()
        .filter(video::Column::CreatorId.eq(video.creator_id))
        .filter(video::Column::Sha256.eq(sha256))
        .filter(video::Column::SizeBytes.eq(video.size_bytes))
        .filter(if checked {
            video::Column::Status.is_in([VideoStatus::Ready, VideoStatus::Processing])
        } else {
            video::Column::Status.eq(VideoStatus::Ready)
        })
        .filter(video::Column::DeletedAt.is_null())
        .filter(video::Column::Id.ne(video.id))
        .order_by_asc(video::Column::Id)
        .one(txn)
        .await?)
}

/// Why video `id`, UPLOADING when read, could not be moved on: deleted (`NOT_FOUND`) or
/// completed by someone else since.
async fn no_longer_uploading(db: &sea_orm::DatabaseConnection, id: Uuid) -> AppError {
    match video::Entity::find_by_id(id).one(db).await {
        Ok(Some(v)) if v.deleted_at.is_none() => not_uploading(v.status),
        Ok(_) => AppError::NotFound("video"),
        Err(err) => err.into(),
    }
}

#[derive(Default)]
pub struct MediaMutation;

#[Object]
impl MediaMutation {
    /// Starts an upload: returns a presigned PUT URL (valid 10 minutes, for a body of exactly
    /// `sizeBytes` bytes: a body of any other length is refused (a longer one as it is sent)
    /// and nothing is stored; write-once: send `uploadHeaders`; once
    /// something is uploaded the link answers 412, unless
    /// `completeVideoUpload` refused it and removed it) and the new video in
    /// UPLOADING. When `sha256` (and `sizeBytes`) match a READY video of the same creator,
    /// returns that video with `deduplicated: true` and no URL. An account may ask for 200 upload links a day
    /// (`RATE_LIMITED` past that); a link takes one body at a time (409 while another is
    /// being sent) and gives up on one that sends nothing for 60 seconds (408).
    async fn request_video_upload(
        &self,
        ctx: &Context<'_>,
        input: RequestVideoUploadInput,
    ) -> AppResult<VideoUpload> {
        let viewer = viewer(ctx)?;
        let user = viewer.require_user()?.clone();
        let state = state(ctx)?;
        let request = validate::upload_request(&input)?;
        let db = &state.db;
        if creator::Entity::find_by_id(request.creator_id)
            .one(db)
            .await?
            .is_none()
        {
            return Err(AppError::NotFound("creator"));
        }
        viewer
            .ensure_manages_creator(db, request.creator_id)
            .await?;

        if let Some(sha256) = &request.sha256 {
            let existing = video::Entity::find()
                .filter(video::Column::CreatorId.eq(request.creator_id))
                .filter(video::Column::Sha256.eq(sha256.as_str()))
                // Bytes of another length cannot have this hash: the client is wrong about
                // one of the two, and the upload's own checks will say which.
                .filter(video::Column::SizeBytes.eq(request.size_bytes))
                .filter(video::Column::Status.eq(VideoStatus::Ready))
                .filter(video::Column::DeletedAt.is_null())
                .order_by_asc(video::Column::Id)
                .one(db)
                .await?;
            if let Some(existing) = existing {
                return Ok(VideoUpload {
                    video: Video(existing),
                    upload_url: None,
                    upload_headers: Json(BTreeMap::new()),
                    expires_at: None,
                    deduplicated: true,
                });
            }
        }

        // Taken before presigning, so the URL never outlives the time we announce.
        let now = Utc::now();
        let id = Uuid::now_v7();
        let key = keys::original(request.creator_id, id);
        let expires_at = now + TimeDelta::from_std(PRESIGN_TTL).unwrap_or(TimeDelta::minutes(10));
        let presigned = state
            .storage
            .presign_put(
                &key,
                &request.content_type,
                request.size_bytes.unsigned_abs(),
                PRESIGN_TTL,
            )
            .await?;
        let txn = queue::begin_write(db).await?;
        if !viewer.is_admin() {
            // The uploader's row locked (PostgreSQL; SQLite's write transaction holds the
            // whole database): requests at once count one after the other.
            entity::user::Entity::find_by_id(user.id)
                .for_no_key_update(&txn)
                .one(&txn)
                .await?;
            let today = video::Entity::find()
                .filter(video::Column::UploadedBy.eq(user.id))
                .filter(video::Column::CreatedAt.gt(now - TimeDelta::days(1)))
                .count(&txn)
                .await?;
            if today >= MAX_VIDEO_UPLOADS_PER_DAY {
                txn.rollback().await?;
                return Err(AppError::rate_limited(
                    format!(
                        "at most {MAX_VIDEO_UPLOADS_PER_DAY} video uploads a day; a video uploaded \
                     before is found again by its sha256"
                    ),
                    None,
                ));
            }
        }
        let row = video::ActiveModel {
            id: Set(id),
            creator_id: Set(request.creator_id),
            uploaded_by: Set(Some(user.id)),
            title: Set(request.title),
            original_filename: Set(request.filename),
            // Detected by the probe; what the client claims is only used to sign the PUT.
            mime: Set(None),
            // The promises `completeVideoUpload` checks the upload against.
            size_bytes: Set(Some(request.size_bytes)),
            sha256: Set(request.sha256),
            storage_key: Set(key),
            status: Set(VideoStatus::Uploading),
            pipeline_stage: Set(0),
            retention_class: Set("operational".to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            // Given, not left to the default: see `auth::register` (SQLite's INSERT …
            // RETURNING and columns added by ALTER TABLE).
            files_removed_at: Set(None),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(VideoUpload {
            video: Video(row),
            upload_url: Some(presigned.url),
            upload_headers: Json(presigned.headers),
            expires_at: Some(expires_at),
            deduplicated: false,
        })
    }

    /// Finishes an upload: checks that the object exists with the promised size (and SHA-256,
    /// when one was given), moves the video to PROCESSING and returns the `video.probe` job
    /// that makes it READY (or FAILED, with `failureReason`). Follow it with `jobUpdated`.
    /// When another upload of the same file (the same `sha256`) for the creator was completed
    /// first, this one is `CONFLICT` naming that video, and ends FAILED.
    async fn complete_video_upload(&self, ctx: &Context<'_>, video_id: ID) -> AppResult<Job> {
        let viewer = viewer(ctx)?;
        let user = viewer.require_user()?.clone();
        let state = state(ctx)?;
        let id = parse_id("videoId", &video_id)?;
        let video = managed_video(ctx, id).await?;
        if video.status != VideoStatus::Uploading {
            return Err(not_uploading(video.status));
        }

        let stored = state.storage.head(&video.storage_key).await?;
        let Some(stored) = stored else {
            return Err(AppError::bad_input(
                "videoId",
                "nothing has been uploaded for this video yet: PUT the file to its uploadUrl first",
            ));
        };
        let size = i64::try_from(stored.size).unwrap_or(i64::MAX);
        if let Some(promised) = video.size_bytes
            && size != promised
        {
            discard_upload(state, &video).await?;
            return Err(AppError::bad_input(
                "videoId",
                format!(
                    "the uploaded file has {size} bytes but sizeBytes promised {promised}: upload the whole file again"
                ),
            ));
        }
        // A promised SHA-256 is checked here while that is quick, so a wrong file is refused
        // at once; a larger file is checked by the probe job, which reads it anyway (hashing
        // gigabytes, downloaded from S3 first, would outlast the request's time limit).
        if let Some(promised) = video
            .sha256
            .as_ref()
            .filter(|_| stored.size <= hash_inline_bytes(&state.storage))
        {
            let actual = hash::object_sha256(&state.storage, &video.storage_key).await?;
            if !actual.eq_ignore_ascii_case(promised.trim()) {
                discard_upload(state, &video).await?;
                return Err(AppError::bad_input(
                    "videoId",
                    format!(
                        "the uploaded file's SHA-256 is {actual}, not the promised {}: upload the right file again",
                        promised.trim()
                    ),
                ));
            }
        }

        // The status change and the job commit together: a PROCESSING video always has its job.
        let txn = queue::begin_write(&state.db).await?;
        let checked = stored.size <= hash_inline_bytes(&state.storage);
        if let Some(sha256) = &video.sha256
            && let Some(same) = same_file(&txn, &video, sha256, checked).await?
        {
            let reason = format!(
                "the same file (by its sha256) was uploaded meanwhile as video {}: use that one",
                same.id
            );
            let failed = video::Entity::update_many()
                .col_expr(video::Column::Status, Expr::val(VideoStatus::Failed))
                .col_expr(video::Column::FailureReason, Expr::val(reason.clone()))
                .col_expr(video::Column::UpdatedAt, Expr::val(Utc::now()))
                .filter(video::Column::Id.eq(id))
                .filter(video::Column::Status.eq(VideoStatus::Uploading))
                .filter(video::Column::DeletedAt.is_null())
                .exec(&txn)
                .await?;
            txn.commit().await?;
            if failed.rows_affected == 0 {
                return Err(no_longer_uploading(&state.db, id).await);
            }
            // Its file stays for now, so its link takes no other (it is write-once while
            // something is stored), and goes with the FAILED uploads' after a week.
            return Err(AppError::conflict(Some("videoId"), reason));
        }
        let moved = video::Entity::update_many()
            .col_expr(video::Column::Status, Expr::val(VideoStatus::Processing))
            .col_expr(
                video::Column::FailureReason,
                Expr::val(Option::<String>::None),
            )
            .col_expr(video::Column::UpdatedAt, Expr::val(Utc::now()))
            .filter(video::Column::Id.eq(id))
            .filter(video::Column::Status.eq(VideoStatus::Uploading))
            .filter(video::Column::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if moved.rows_affected == 0 {
            txn.rollback().await?;
            return Err(no_longer_uploading(&state.db, id).await);
        }
        let mut new = NewJob::new(
            JobKind::Workflow,
            PROBE_JOB,
            user.id,
            json!(ProbeInput { video_id: id }),
        );
        new.creator_id = Some(video.creator_id);
        let enqueued = queue::enqueue(&txn, new).await?;
        txn.commit().await?;
        state
            .events
            .publish(&[queue::event_of(&enqueued.job)])
            .await;
        Ok(Job(enqueued.job))
    }

    /// Renames a video or sets its link elsewhere. Members of its creator and administrators.
    async fn update_video(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateVideoInput,
    ) -> AppResult<Video> {
        viewer(ctx)?.require_user()?;
        let id = parse_id("id", &id)?;
        let title = crate::graphql::inputs::given("input.title", input.title)?
            .map(|t| validate::title("input.title", &t))
            .transpose()?;
        let youtube_url = match &input.youtube_url {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(url) => Some(Some(crate::creators::validate::url(
                "input.youtubeUrl",
                url,
            )?)),
        };
        let retention_until = match input.retention_until {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(at) if at > Utc::now() => Some(Some(at)),
            MaybeUndefined::Value(_) => {
                return Err(AppError::bad_input(
                    "input.retentionUntil",
                    "must be in the future (use deleteVideo to delete it now)",
                ));
            }
        };
        let video = managed_video(ctx, id).await?;
        let mut update = video::Entity::update_many()
            .col_expr(video::Column::UpdatedAt, Expr::val(Utc::now()))
            .filter(video::Column::Id.eq(video.id))
            .filter(video::Column::DeletedAt.is_null());
        if let Some(title) = title {
            update = update.col_expr(video::Column::Title, Expr::val(title));
        }
        if let Some(url) = youtube_url {
            update = update.col_expr(video::Column::YoutubeUrl, Expr::val(url));
        }
        if let Some(at) = retention_until {
            update = update.col_expr(video::Column::RetentionUntil, Expr::val(at));
        }
        let updated = update.exec_with_returning(&state(ctx)?.db).await?;
        // Deleted since we looked.
        let video = updated
            .into_iter()
            .next()
            .ok_or(AppError::NotFound("video"))?;
        Ok(Video(video))
    }

    /// Deletes a video for everyone: from then on it, its transcript, key moments, highlights
    /// and shorts are in no query, `node` or share link, and its files (the upload, its
    /// renditions, caption files and shorts) are removed from storage. The consent audit log
    /// is kept, as it always is. Members of its creator and administrators; `false` never
    /// comes back (a video already deleted is `NOT_FOUND`). `CONFLICT` while one of its
    /// shorts is still rendering: cancel that short's job, or wait for it.
    async fn delete_video(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        viewer(ctx)?.require_user()?;
        let id = parse_id("id", &id)?;
        let video = managed_video(ctx, id).await?;
        let app = state(ctx)?;
        // As `deleteShort` and `deleteKeyMoment`: a short still rendering would be finished,
        // stored and billed for a video that is gone.
        use super::record::Deletion;
        let deleted = super::record::delete_video_unless_rendering(
            &app.db,
            &app.storage,
            &app.events,
            &video,
        )
        .await?;
        match deleted {
            Deletion::Deleted => Ok(true),
            Deletion::Gone => Err(AppError::NotFound("video")),
            Deletion::ShortRendering => Err(AppError::conflict(
                Some("id"),
                "a short of this video is still rendering: cancel its job or wait for it",
            )),
        }
    }
}

/// A live video the caller manages: `NOT_FOUND` when they may not see it, `FORBIDDEN` when they
/// may see it (it is public) but not change it.
async fn managed_video(ctx: &Context<'_>, id: Uuid) -> AppResult<video::Model> {
    let db = &state(ctx)?.db;
    let viewer = viewer(ctx)?;
    let video = video::Entity::find_by_id(id)
        .filter(video::Column::DeletedAt.is_null())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("video"))?;
    if viewer.manages_creator(db, video.creator_id).await? {
        return Ok(video);
    }
    let visible = loaders(ctx)?
        .load_one(VisibleVideoById(id))
        .await?
        .is_some();
    Err(if visible {
        AppError::forbidden("only members of the video's creator may do this")
    } else {
        AppError::NotFound("video")
    })
}

fn not_uploading(status: VideoStatus) -> AppError {
    AppError::conflict(
        Some("videoId"),
        format!(
            "the video is {} and no longer waiting for its upload",
            status.to_value()
        ),
    )
}
