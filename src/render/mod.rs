//! Rendering: movie specs to MP4s through ffmpeg, scene by scene, with a scene cache.
//!
//! `renderMovie` validates a spec ([`spec`]), reserves its render minutes and enqueues
//! `render.movie`; that job compiles an immutable plan ([`plan`]) and fans out one
//! `render.scene` per scene, then `render.assemble` joins them ([`jobs`], [`scene`],
//! [`ffmpeg`]). When the movie ends, its minutes are settled or given back
//! ([`on_job_finished`]).

pub mod ffmpeg;
pub mod graphql;
pub mod jobs;
pub mod plan;
pub mod scene;
pub mod spec;

use entity::{JobStatus, job};
use sea_orm::{ActiveModelTrait, DatabaseTransaction, EntityTrait, Set};

use crate::{billing::Reservation, error::AppResult};

fn reservation_of(job: &job::Model) -> Option<Reservation> {
    job.input
        .get("reservation")
        .filter(|r| !r.is_null())
        .and_then(|r| serde_json::from_value(r.clone()).ok())
}

/// The job type of `renderMovie`. Its MP4 is reached only through the job (`Job.outputUrl`),
/// so a finished one is kept past the jobs' retention (see `jobs::queue::clean_up`).
pub const MOVIE_JOB: &str = "render.movie";

/// The jobs that reserve render minutes when created: movies and shorts.
const BILLED: [&str; 2] = [MOVIE_JOB, "render.short"];

/// Settles a finished movie's or short's render minutes (by its real duration), or gives them back when
/// it failed or was cancelled. Runs in the transaction of the status change.
pub async fn on_job_finished(txn: &DatabaseTransaction, job: &job::Model) -> AppResult<()> {
    if job.job_type == "render.short" {
        crate::shorts::on_job_finished(txn, job).await?;
    }
    if job.job_type == "video.probe" {
        return crate::media::on_job_finished(txn, job).await;
    }
    if !BILLED.contains(&job.job_type.as_str()) {
        return Ok(());
    }
    let Some(reservation) = reservation_of(job) else {
        return Ok(());
    };
    match job.status {
        JobStatus::Done => {
            let secs = job
                .output
                .as_ref()
                .and_then(|o| o.get("duration_secs"))
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(reservation.minutes * 60.0);
            crate::billing::settle(txn, &reservation, secs / 60.0).await
        }
        JobStatus::Failed | JobStatus::Cancelled => {
            crate::billing::release(txn, &reservation, Some(job.id)).await
        }
        _ => Ok(()),
    }
}

/// A job put back in the queue before its end: a short it was rendering is PENDING again,
/// not PROCESSING while nothing renders it.
pub async fn on_job_requeued(txn: &DatabaseTransaction, job: &job::Model) -> AppResult<()> {
    if job.job_type == "render.short" {
        crate::shorts::on_job_requeued(txn, job).await?;
    }
    Ok(())
}

/// A retried movie needs its minutes again: reserve them anew (its old reservation was given
/// back when it failed) and keep the new reservation in its input.
pub async fn on_job_retried(txn: &DatabaseTransaction, job: &job::Model) -> AppResult<()> {
    if job.job_type == "render.short" {
        crate::shorts::on_job_retried(txn, job).await?;
    }
    if !BILLED.contains(&job.job_type.as_str()) {
        return Ok(());
    }
    let Some(old) = reservation_of(job) else {
        return Ok(());
    };
    let reservation = crate::billing::reserve(
        txn,
        old.user_id,
        old.minutes,
        Some(job.id),
        chrono::Utc::now(),
    )
    .await?;
    let mut input = job.input.clone();
    input["reservation"] = serde_json::to_value(reservation).unwrap_or_default();
    let Some(row) = job::Entity::find_by_id(job.id).one(txn).await? else {
        return Ok(());
    };
    let mut row: job::ActiveModel = row.into();
    row.input = Set(input);
    row.update(txn).await?;
    Ok(())
}

/// Scene-cache entries pruned per run; the next hourly run takes the rest.
const PRUNE_BATCH: u64 = 500;

/// Removes the scene clips no render has used for `unused_for`, rows and objects: the cache is
/// content-addressed and shared, so nothing else ever frees them. An entry used meanwhile
/// stays (the delete is conditional on `last_used_at`); a clip removed under a render that
/// found its row a moment earlier is rendered again by the next render that needs it (a hit
/// checks that the object exists). An entry whose file cannot be removed is kept for the next
/// run. Returns how many entries were removed.
pub async fn prune_scene_cache(
    db: &sea_orm::DatabaseConnection,
    storage: &crate::storage::Storage,
    unused_for: chrono::TimeDelta,
) -> Result<u64, sea_orm::DbErr> {
    use entity::scene_cache_entry::{Column, Entity};
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    let cutoff = chrono::Utc::now() - unused_for;
    let stale = Entity::find()
        .filter(Column::LastUsedAt.lt(cutoff))
        .order_by_asc(Column::LastUsedAt)
        .limit(PRUNE_BATCH)
        .all(db)
        .await?;
    let mut pruned = 0;
    for entry in stale {
        let removed = Entity::delete_many()
            .filter(Column::Hash.eq(entry.hash.clone()))
            .filter(Column::LastUsedAt.lt(cutoff))
            .exec(db)
            .await?;
        if removed.rows_affected == 0 {
            continue;
        }
        if let Err(err) = storage.delete(&entry.storage_key).await {
            // The row goes back, so the next run tries the file again (without it nothing
            // would name the file any more): still stale, but the least so, behind the others,
            // so that clips that keep failing cannot fill every batch. A render that cached
            // the same scene meanwhile wrote a row of its own, which stays.
            tracing::warn!(key = entry.storage_key, error = %err, "a pruned scene clip could not be removed; trying again next run");
            let mut back = sea_orm::ActiveModelTrait::reset_all(
                entity::scene_cache_entry::ActiveModel::from(entry),
            );
            back.last_used_at = sea_orm::Set(cutoff);
            Entity::insert(back)
                .on_conflict(
                    sea_orm::sea_query::OnConflict::column(Column::Hash)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
            continue;
        }
        pruned += 1;
    }
    Ok(pruned)
}
