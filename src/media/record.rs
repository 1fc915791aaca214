//! What `video.probe` writes: the renditions and the video's new state. Every write is
//! conditional on the status it expects, so a video deleted, completed or retried by someone
//! else meanwhile is never overwritten with stale results.

use chrono::Utc;
use entity::{VideoStatus, caption_track, highlight, short, video, video_variant};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, OnConflict},
};
use uuid::Uuid;

use super::{Profile, STAGE_PROBED, encode::SourceFacts};
use crate::{
    jobs::{events::EventBus, queue},
    storage::Storage,
};

/// A rendition made and stored, to be recorded as a `video_variants` row.
pub struct Rendition {
    pub profile: Profile,
    pub key: String,
    pub size: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub bitrate: Option<i32>,
}

/// What the upload turned out to be, byte for byte.
pub struct Verified<'a> {
    pub facts: &'a SourceFacts,
    pub size: i64,
    pub sha256: &'a str,
}

/// Records the renditions and makes the video READY in one transaction, so a READY video
/// always has its variants. A re-run replaces the rows of the same profiles. Returns false,
/// writing nothing, when the video is no longer PROCESSING (deleted or changed meanwhile).
pub async fn ready(
    db: &DatabaseConnection,
    video: &video::Model,
    verified: Verified<'_>,
    renditions: &[Rendition],
    held: sea_orm::Condition,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let txn = queue::begin_write(db).await?;
    for rendition in renditions {
        video_variant::Entity::insert(video_variant::ActiveModel {
            id: Set(Uuid::now_v7()),
            video_id: Set(video.id),
            profile: Set(rendition.profile.name.to_owned()),
            storage_key: Set(rendition.key.clone()),
            size_bytes: Set(Some(rendition.size)),
            mime: Set(Some(rendition.profile.mime.to_owned())),
            width: Set(rendition.width),
            height: Set(rendition.height),
            bitrate: Set(rendition.bitrate),
            created_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([
                video_variant::Column::VideoId,
                video_variant::Column::Profile,
            ])
            .update_columns([
                video_variant::Column::StorageKey,
                video_variant::Column::SizeBytes,
                video_variant::Column::Mime,
                video_variant::Column::Width,
                video_variant::Column::Height,
                video_variant::Column::Bitrate,
                video_variant::Column::CreatedAt,
            ])
            .to_owned(),
        )
        .exec(&txn)
        .await?;
    }
    let facts = verified.facts;
    let updated = video::Entity::update_many()
        .col_expr(video::Column::Status, Expr::val(VideoStatus::Ready))
        .col_expr(
            video::Column::FailureReason,
            Expr::val(Option::<String>::None),
        )
        .col_expr(video::Column::Mime, Expr::val(facts.mime.clone()))
        .col_expr(video::Column::SizeBytes, Expr::val(verified.size))
        .col_expr(video::Column::Sha256, Expr::val(verified.sha256))
        .col_expr(video::Column::DurationSecs, Expr::val(facts.duration_secs))
        .col_expr(video::Column::Width, Expr::val(facts.width))
        .col_expr(video::Column::Height, Expr::val(facts.height))
        .col_expr(
            video::Column::PipelineStage,
            Expr::val(video.pipeline_stage.max(STAGE_PROBED)),
        )
        .col_expr(video::Column::UpdatedAt, Expr::val(now))
        .filter(video::Column::Id.eq(video.id))
        .filter(video::Column::Status.eq(VideoStatus::Processing))
        .filter(video::Column::DeletedAt.is_null())
        .filter(held)
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    crate::content::mutations::fit_highlights(&txn, video.id, facts.duration_secs, now).await?;
    txn.commit().await?;
    Ok(true)
}

/// A failed video whose job was retried (`retryJob`) is processing again, unless its upload
/// was removed (`remove_failed_originals`): then it stays FAILED, and the probe finds the
/// upload missing. Only while `held` (the probe's lease on its job): a probe that lost its job
/// to another run, which may have ended it, leaves the video as that run left it.
pub async fn reopen(
    db: &DatabaseConnection,
    video_id: Uuid,
    held: sea_orm::Condition,
) -> Result<(), DbErr> {
    video::Entity::update_many()
        .filter(held)
        .col_expr(video::Column::Status, Expr::val(VideoStatus::Processing))
        .col_expr(
            video::Column::FailureReason,
            Expr::val(Option::<String>::None),
        )
        .col_expr(video::Column::UpdatedAt, Expr::val(Utc::now()))
        .filter(video::Column::Id.eq(video_id))
        .filter(video::Column::Status.eq(VideoStatus::Failed))
        .filter(video::Column::FilesRemovedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Fails a processing video with a reason for its uploader, while `held` (the probe's lease:
/// one that lost its job to another run leaves the video to that run).
pub async fn failed(
    db: &DatabaseConnection,
    video_id: Uuid,
    reason: &str,
    held: sea_orm::Condition,
) -> Result<(), DbErr> {
    video::Entity::update_many()
        .filter(held)
        .col_expr(video::Column::Status, Expr::val(VideoStatus::Failed))
        .col_expr(video::Column::FailureReason, Expr::val(reason))
        .col_expr(video::Column::UpdatedAt, Expr::val(Utc::now()))
        .filter(video::Column::Id.eq(video_id))
        .filter(video::Column::Status.eq(VideoStatus::Processing))
        .exec(db)
        .await?;
    Ok(())
}

/// How long a video may wait in `UPLOADING`: its PUT URL lives 10 minutes; a client that
/// uploaded but could not call `completeVideoUpload` (a crash, a lost connection) has a day.
pub const UPLOAD_GRACE: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// What an abandoned upload's uploader reads in `failureReason`.
pub const ABANDONED_UPLOAD: &str =
    "the upload was not completed within 24 hours: request a new upload and complete it";

/// Fails the videos still `UPLOADING` longer than `grace` after they were requested: nothing
/// can complete them any more, and they would otherwise sit in their creator's lists for good.
/// Whatever was uploaded for them is deleted from storage (each such video has its own key: a
/// deduplicated upload makes no row). Returns how many videos were failed.
pub async fn abandon_stale_uploads(
    db: &DatabaseConnection,
    storage: &Storage,
    grace: chrono::TimeDelta,
) -> Result<u64, DbErr> {
    let now = Utc::now();
    let stale: Vec<(Uuid, String)> = video::Entity::find()
        .select_only()
        .columns([video::Column::Id, video::Column::StorageKey])
        .filter(video::Column::Status.eq(VideoStatus::Uploading))
        .filter(video::Column::CreatedAt.lt(now - grace))
        .limit(ABANDON_BATCH)
        .into_tuple()
        .all(db)
        .await?;
    let mut failed = 0;
    for (id, key) in stale {
        // Conditional on the status, so an upload completed meanwhile is left alone; once the
        // row is FAILED no `completeVideoUpload` can read the object any more.
        let result = video::Entity::update_many()
            .col_expr(video::Column::Status, Expr::val(VideoStatus::Failed))
            .col_expr(video::Column::FailureReason, Expr::val(ABANDONED_UPLOAD))
            .col_expr(video::Column::UpdatedAt, Expr::val(now))
            .filter(video::Column::Id.eq(id))
            .filter(video::Column::Status.eq(VideoStatus::Uploading))
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            continue;
        }
        failed += 1;
        if let Err(err) = storage.delete(&key).await {
            tracing::warn!(video = %id, error = %err, "could not delete an abandoned upload's object");
        }
    }
    Ok(failed)
}

/// Abandoned uploads failed per sweep; the next hourly sweep takes the rest.
const ABANDON_BATCH: u64 = 500;

/// How long the upload of a FAILED video is kept: long enough for an operator to mend what
/// failed it (ffmpeg missing on a worker) and `retryJob` its probe.
pub const FAILED_ORIGINAL_GRACE: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// Removes the uploaded file of videos FAILED (and not changed since) more than `grace` ago:
/// nothing reads it again, and it could be gigabytes that were never a video. The row stays,
/// with its reason; `files_removed_at` marks it swept. A retried probe then says the upload is
/// missing. Returns how many were swept; one whose file cannot be removed is left for the
/// next run.
pub async fn remove_failed_originals(
    db: &DatabaseConnection,
    storage: &Storage,
    grace: chrono::TimeDelta,
) -> Result<u64, DbErr> {
    let now = Utc::now();
    let failed: Vec<(Uuid, String)> = video::Entity::find()
        .select_only()
        .columns([video::Column::Id, video::Column::StorageKey])
        .filter(video::Column::Status.eq(VideoStatus::Failed))
        .filter(video::Column::DeletedAt.is_null())
        .filter(video::Column::FilesRemovedAt.is_null())
        .filter(video::Column::UpdatedAt.lt(now - grace))
        .order_by_asc(video::Column::UpdatedAt)
        .order_by_asc(video::Column::Id)
        .limit(PURGE_BATCH)
        .into_tuple()
        .all(db)
        .await?;
    let mut swept = 0;
    for (id, key) in failed {
        // Marked before the file goes, and only while it is still FAILED and unchanged: a
        // `retryJob` reopening it first keeps its file, and one coming after finds it marked
        // and leaves it FAILED (`reopen`), instead of a probe that had already copied the
        // file making it READY with no original left.
        let claimed = video::Entity::update_many()
            .col_expr(video::Column::FilesRemovedAt, Expr::val(now))
            .filter(video::Column::Id.eq(id))
            .filter(video::Column::Status.eq(VideoStatus::Failed))
            .filter(video::Column::FilesRemovedAt.is_null())
            .filter(video::Column::UpdatedAt.lt(now - grace))
            .exec(db)
            .await?;
        if claimed.rows_affected == 0 {
            continue;
        }
        if let Err(err) = storage.delete(&key).await {
            tracing::warn!(video_id = %id, key, error = %err, "a failed video's upload could not be removed; trying again next sweep");
            video::Entity::update_many()
                .col_expr(
                    video::Column::FilesRemovedAt,
                    Expr::val(Option::<chrono::DateTime<Utc>>::None),
                )
                .filter(video::Column::Id.eq(id))
                .exec(db)
                .await?;
            continue;
        }
        swept += 1;
    }
    // A process stopped between marking a video and removing its file leaves the file: the
    // files of videos marked in the last two days are removed again (removing what is gone
    // already costs a request and does nothing).
    let marked: Vec<(Uuid, String)> = video::Entity::find()
        .select_only()
        .columns([video::Column::Id, video::Column::StorageKey])
        .filter(video::Column::Status.eq(VideoStatus::Failed))
        .filter(video::Column::FilesRemovedAt.gt(now - chrono::TimeDelta::days(2)))
        .filter(video::Column::FilesRemovedAt.lt(now))
        // The latest first: after a mass failure, each hour's batch moves on.
        .order_by_desc(video::Column::FilesRemovedAt)
        .limit(PURGE_BATCH)
        .into_tuple()
        .all(db)
        .await?;
    for (id, key) in marked {
        if let Err(err) = storage.delete(&key).await {
            tracing::warn!(video_id = %id, key, error = %err, "a failed video's upload could not be removed again; trying next sweep");
        }
    }
    Ok(swept)
}

/// The stored objects of a video, each once: the upload, its renditions, caption files and
/// shorts. The renditions' own keys are included even without rows: a probe that was storing
/// them when the video was deleted leaves files that no row names.
pub async fn objects_of(
    db: &DatabaseConnection,
    video_id: Uuid,
    creator_id: Uuid,
    upload_key: &str,
) -> Result<Vec<String>, DbErr> {
    let mut keys = vec![upload_key.to_owned()];
    keys.extend(
        super::PROFILES
            .iter()
            .map(|profile| super::keys::variant(creator_id, video_id, *profile)),
    );
    keys.extend(
        video_variant::Entity::find()
            .select_only()
            .column(video_variant::Column::StorageKey)
            .filter(video_variant::Column::VideoId.eq(video_id))
            .into_tuple::<String>()
            .all(db)
            .await?,
    );
    keys.extend(
        caption_track::Entity::find()
            .select_only()
            .column(caption_track::Column::StorageKey)
            .filter(caption_track::Column::VideoId.eq(video_id))
            .into_tuple::<String>()
            .all(db)
            .await?,
    );
    keys.extend(
        short::Entity::find()
            .select_only()
            .column(short::Column::ObjectKey)
            .inner_join(highlight::Entity)
            .filter(highlight::Column::VideoId.eq(video_id))
            .filter(short::Column::ObjectKey.is_not_null())
            .into_tuple::<String>()
            .all(db)
            .await?,
    );
    // A rendition's row names its fixed key too.
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Deletes a video (soft: the row stays, hidden everywhere, for the consent audit log) and
/// removes its files from storage. Returns false, changing nothing, when it was already
/// deleted. A file that cannot be removed is logged: the deletion has happened, and the
/// hourly sweep tries again.
pub async fn delete_video(
    db: &DatabaseConnection,
    storage: &Storage,
    bus: &EventBus,
    video: &video::Model,
) -> Result<bool, DbErr> {
    delete_video_if(db, storage, bus, video, None).await
}

/// How `deleteVideo` ended.
pub enum Deletion {
    Deleted,
    /// Already deleted (or never there).
    Gone,
    /// A short of the video is rendering: nothing changed.
    ShortRendering,
}

/// [`delete_video`] unless a short of the video is rendering, both decided under the video's
/// row lock (PostgreSQL; SQLite's writers are serialised): `generateShort` share-locks the
/// video as it makes a short, so either its short is seen here, or it sees the deletion.
pub async fn delete_video_unless_rendering(
    db: &DatabaseConnection,
    storage: &Storage,
    bus: &EventBus,
    video: &video::Model,
) -> Result<Deletion, DbErr> {
    delete_unless_rendering(db, storage, bus, video, None).await
}

/// [`delete_video_unless_rendering`], and with `expired_by`, only while the video's
/// `retention_until` is still at or before that time.
async fn delete_unless_rendering(
    db: &DatabaseConnection,
    storage: &Storage,
    bus: &EventBus,
    video: &video::Model,
    expired_by: Option<chrono::DateTime<Utc>>,
) -> Result<Deletion, DbErr> {
    use crate::db::RowLock;
    let txn = queue::begin_write(db).await?;
    video::Entity::find_by_id(video.id)
        .for_update(&txn)
        .one(&txn)
        .await?;
    if shorts_rendering(&txn, video.id).await? {
        txn.rollback().await?;
        return Ok(Deletion::ShortRendering);
    }
    let marked = mark_deleted(&txn, video, expired_by).await?;
    txn.commit().await?;
    if !marked {
        return Ok(Deletion::Gone);
    }
    after_deleted(db, storage, bus, video).await?;
    Ok(Deletion::Deleted)
}

/// Marks the video deleted (with `expired_by`, only while its retention has run out); whether
/// it was.
async fn mark_deleted(
    conn: &impl sea_orm::ConnectionTrait,
    video: &video::Model,
    expired_by: Option<chrono::DateTime<Utc>>,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let mut update = video::Entity::update_many()
        .col_expr(video::Column::DeletedAt, Expr::val(now))
        .col_expr(video::Column::UpdatedAt, Expr::val(now))
        .filter(video::Column::Id.eq(video.id))
        .filter(video::Column::DeletedAt.is_null());
    if let Some(at) = expired_by {
        update = update.filter(video::Column::RetentionUntil.lte(at));
    }
    Ok(update.exec(conn).await?.rows_affected > 0)
}

/// [`delete_video`], and with `expired_by`, only while the video's `retention_until` is still
/// at or before that time (the check and the deletion are one statement: a retention extended
/// or cleared meanwhile keeps the video).
async fn delete_video_if(
    db: &DatabaseConnection,
    storage: &Storage,
    bus: &EventBus,
    video: &video::Model,
    expired_by: Option<chrono::DateTime<Utc>>,
) -> Result<bool, DbErr> {
    if !mark_deleted(db, video, expired_by).await? {
        return Ok(false);
    }
    after_deleted(db, storage, bus, video).await?;
    Ok(true)
}

/// What follows a video's deletion: its probe stopped, no links to its files from its jobs,
/// and the files gone.
async fn after_deleted(
    db: &DatabaseConnection,
    storage: &Storage,
    bus: &EventBus,
    video: &video::Model,
) -> Result<(), DbErr> {
    // First, so that a probe storing renditions stops as soon as it can (what it stored before
    // it stopped goes with the files below, or with its own clean-up); and whatever else here
    // fails, since the deletion has happened.
    if let Err(err) = cancel_probes(db, bus, video).await {
        tracing::warn!(video_id = %video.id, error = ?err, "a deleted video's probe job could not be cancelled");
    }
    let short_jobs: Vec<Option<Uuid>> = short::Entity::find()
        .select_only()
        .column(short::Column::JobId)
        .inner_join(highlight::Entity)
        .filter(highlight::Column::VideoId.eq(video.id))
        .into_tuple()
        .all(db)
        .await?;
    crate::shorts::forget_outputs(db, short_jobs.into_iter().flatten()).await?;
    // Its probe jobs point at its proxy: no link to it from them any more. (A deletion is
    // rare; no index serves this, and the jobs table is kept short by the clean-up.)
    entity::job::Entity::update_many()
        .col_expr(
            entity::job::Column::OutputRef,
            Expr::val(Option::<String>::None),
        )
        .filter(entity::job::Column::JobType.eq(super::PROBE_JOB))
        .filter(entity::job::Column::OutputRef.eq(super::keys::variant(
            video.creator_id,
            video.id,
            super::PROXY_720P,
        )))
        .exec(db)
        .await?;
    for key in objects_of(db, video.id, video.creator_id, &video.storage_key).await? {
        if let Err(err) = storage.delete(&key).await {
            tracing::warn!(video_id = %video.id, key, error = %err, "a deleted video's file could not be removed");
        }
    }
    Ok(())
}

/// Cancels the probe jobs of a deleted video that have not ended: a transcode of hours would
/// otherwise run on, hold a worker and its disk, and end FAILED for a video that is gone. Runs
/// after the deletion has committed (by `deleteVideo` or at the end of the video's
/// retention); a job that ends meanwhile is left as it ended.
async fn cancel_probes(
    db: &DatabaseConnection,
    bus: &EventBus,
    video: &video::Model,
) -> crate::error::AppResult<()> {
    use entity::{JobStatus, job};
    let unfinished: Vec<(Uuid, serde_json::Value)> = job::Entity::find()
        .select_only()
        .columns([job::Column::Id, job::Column::Input])
        .filter(job::Column::JobType.eq(super::PROBE_JOB))
        .filter(job::Column::CreatorId.eq(video.creator_id))
        .filter(job::Column::Status.is_in([
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Waiting,
        ]))
        .into_tuple()
        .all(db)
        .await?;
    let of_video = serde_json::json!(video.id);
    for (id, input) in unfinished {
        if input.get("video_id") == Some(&of_video) {
            crate::jobs::lifecycle::cancel(db, bus, id).await?;
        }
    }
    Ok(())
}

/// Whether a short of the video is still rendering (`PENDING` or `PROCESSING`).
pub async fn shorts_rendering(
    db: &impl sea_orm::ConnectionTrait,
    video_id: Uuid,
) -> Result<bool, DbErr> {
    use sea_orm::PaginatorTrait;
    let rendering = short::Entity::find()
        .inner_join(highlight::Entity)
        .filter(highlight::Column::VideoId.eq(video_id))
        .filter(short::Column::Status.is_in([
            entity::ShortStatus::Pending,
            entity::ShortStatus::Processing,
        ]))
        .count(db)
        .await?;
    Ok(rendering > 0)
}

/// Videos past their `retentionUntil` deleted per run; the next run (a minute later by
/// default, `REELGRAPH_RETENTION_SWEEP_SECS`) takes the rest.
const EXPIRE_BATCH: u64 = 200;

/// Deletes the videos whose `retention_until` has passed, as `deleteVideo` would. Returns how
/// many it deleted.
pub async fn expire_videos(
    db: &DatabaseConnection,
    storage: &Storage,
    bus: &EventBus,
) -> Result<u64, DbErr> {
    let now = Utc::now();
    let expired = video::Entity::find()
        .filter(video::Column::RetentionUntil.lte(now))
        .filter(video::Column::DeletedAt.is_null())
        .limit(EXPIRE_BATCH)
        .all(db)
        .await?;
    let mut deleted = 0;
    for video in expired {
        // One with a short still rendering waits for the next run, as `deleteVideo` refuses,
        // decided under the video's lock as there (a `generateShort` between a check and the
        // deletion rendered a short of a deleted video). Deleting one takes a while (its
        // files): a member may extend the retention of a later one meanwhile, so each
        // deletion checks the retention again.
        let ended = delete_unless_rendering(db, storage, bus, &video, Some(now)).await?;
        if matches!(ended, Deletion::Deleted) {
            tracing::info!(video_id = %video.id, "deleted at the end of its retention");
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// How long after `deleteVideo` the sweep removes the video's files once more: longer than a
/// presigned upload link lives (10 minutes), and than a short's render or a probe runs.
pub const DELETED_FILES_GRACE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Deleted videos swept per run; the next hourly run takes the rest.
const PURGE_BATCH: u64 = 200;

/// Removes, once more, the files of videos deleted more than `grace` ago: a job still running
/// for the video when it was deleted (a short's render, a probe) or an upload still in flight
/// may have written one after `deleteVideo` removed the rest. Each video is swept once
/// (`files_removed_at`); one whose files cannot all be removed is left for the next run.
/// Returns how many videos were swept.
pub async fn remove_deleted_videos_files(
    db: &DatabaseConnection,
    storage: &Storage,
    grace: chrono::TimeDelta,
) -> Result<u64, DbErr> {
    let now = Utc::now();
    let deleted: Vec<(Uuid, Uuid, String)> = video::Entity::find()
        .select_only()
        .columns([
            video::Column::Id,
            video::Column::CreatorId,
            video::Column::StorageKey,
        ])
        .filter(video::Column::DeletedAt.lt(now - grace))
        .filter(video::Column::FilesRemovedAt.is_null())
        // Least recently tried first: a video whose files keep failing is moved to the back
        // (below), so a batch full of those cannot keep the others from being swept.
        .order_by_asc(video::Column::UpdatedAt)
        .order_by_asc(video::Column::Id)
        .limit(PURGE_BATCH)
        .into_tuple()
        .all(db)
        .await?;
    let mut swept = 0;
    for (id, creator_id, upload_key) in deleted {
        let mut removed_all = true;
        for key in objects_of(db, id, creator_id, &upload_key).await? {
            if let Err(err) = storage.delete(&key).await {
                tracing::warn!(video_id = %id, key, error = %err, "a deleted video's file could not be removed; trying again next sweep");
                removed_all = false;
            }
        }
        let mut mark = video::Entity::update_many()
            .col_expr(video::Column::UpdatedAt, Expr::val(Utc::now()))
            .filter(video::Column::Id.eq(id));
        if removed_all {
            mark = mark.col_expr(video::Column::FilesRemovedAt, Expr::val(now));
            swept += 1;
        }
        mark.exec(db).await?;
    }
    Ok(swept)
}
