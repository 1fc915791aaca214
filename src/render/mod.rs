//! Rendering: movie specs to MP4s through ffmpeg, scene by scene, with a scene cache.
//!
//! `renderMovie` validates a spec ([`spec`]), reserves its render minutes and enqueues
//! `render.movie`; that job compiles an immutable plan ([`plan`]) and fans out one
//! `render.scene` per distinct scene, then `render.assemble` joins them ([`jobs`], [`scene`],
//! [`ffmpeg`]). When the movie ends, its minutes are settled or given back
//! ([`on_job_finished`]).

pub mod ffmpeg;
pub mod fonts;
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
/// One scene of a movie.
pub const SCENE_JOB: &str = "render.scene";

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

/// Records that renders name `keys` (image layers' pictures) now, so the upkeep keeps them.
/// A picture uploaded before uploads were recorded gets its row here.
pub async fn mark_assets_used<'k>(
    db: &impl sea_orm::ConnectionTrait,
    keys: impl Iterator<Item = &'k str>,
) -> Result<(), sea_orm::DbErr> {
    use entity::asset::{ActiveModel, Column, Entity};
    use sea_orm::Set;
    let now = chrono::Utc::now();
    let mut rows: Vec<ActiveModel> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        // `assets/{owner}/{id}.{ext}`: the only keys requestAssetUpload makes.
        let owner = key
            .strip_prefix("assets/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|owner| uuid::Uuid::parse_str(owner).ok());
        if let Some(owner) = owner
            && seen.insert(key)
        {
            rows.push(ActiveModel {
                key: Set(key.to_owned()),
                owner_id: Set(owner),
                created_at: Set(now),
                used_at: Set(now),
            });
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    Entity::insert_many(rows)
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(Column::Key)
                .update_column(Column::UsedAt)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Removes the pictures (file and row) no render has named for `unused_for` (see
/// [`remove_unused`]). How many.
pub async fn sweep_assets(
    db: &sea_orm::DatabaseConnection,
    storage: &crate::storage::Storage,
    unused_for: chrono::TimeDelta,
) -> Result<u64, sea_orm::DbErr> {
    use entity::asset::{Column, Entity};
    remove_unused::<Entity>(
        (db, storage),
        chrono::Utc::now() - unused_for,
        (Column::Key, Column::UsedAt),
        |asset| (asset.key.clone().into(), asset.key.clone()),
        "an unused picture",
    )
    .await
}

/// Removes the scene clips no render has used for `unused_for`, rows and objects: the cache is
/// content-addressed and shared, so nothing else ever frees them. A clip removed under a render
/// that found its row a moment earlier is rendered again by the next render that needs it (a
/// hit checks that the object exists). Returns how many entries were removed (see
/// [`remove_unused`]).
pub async fn prune_scene_cache(
    db: &sea_orm::DatabaseConnection,
    storage: &crate::storage::Storage,
    unused_for: chrono::TimeDelta,
) -> Result<u64, sea_orm::DbErr> {
    use entity::scene_cache_entry::{Column, Entity};
    remove_unused::<Entity>(
        (db, storage),
        chrono::Utc::now() - unused_for,
        (Column::Hash, Column::LastUsedAt),
        |entry| (entry.hash.clone().into(), entry.storage_key.clone()),
        "a pruned scene clip",
    )
    .await
}

/// Removes the rows of `E` (each naming one stored file, `file_of` gives its key value and
/// the file's storage key) whose `used` column is before `cutoff`, with their files, oldest
/// first, a batch at a time; how many. A row used meanwhile stays (the delete is conditional
/// on `used`). A row whose file cannot be removed goes back, so the next run tries the file
/// again (without it nothing would name the file any more): dated `cutoff`, still stale but
/// the least so, behind the others, so that files that keep failing cannot fill every batch.
/// A row written meanwhile for the same key stays.
async fn remove_unused<E>(
    (db, storage): (&sea_orm::DatabaseConnection, &crate::storage::Storage),
    cutoff: chrono::DateTime<chrono::Utc>,
    (key, used): (E::Column, E::Column),
    file_of: impl Fn(&E::Model) -> (sea_orm::Value, String),
    what: &str,
) -> Result<u64, sea_orm::DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: sea_orm::IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: sea_orm::ActiveModelTrait<Entity = E> + Send,
{
    use sea_orm::{
        ActiveModelTrait, ColumnTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    };
    let stale = E::find()
        .filter(used.lt(cutoff))
        .order_by_asc(used)
        .limit(PRUNE_BATCH)
        .all(db)
        .await?;
    let mut removed = 0;
    for row in stale {
        let (id, file) = file_of(&row);
        let gone = E::delete_many()
            .filter(key.eq(id))
            .filter(used.lt(cutoff))
            .exec(db)
            .await?;
        if gone.rows_affected == 0 {
            continue;
        }
        if let Err(err) = storage.delete(&file).await {
            tracing::warn!(key = file, error = %err, "{what} could not be removed; trying again next run");
            let mut back = row.into_active_model().reset_all();
            back.set(used, cutoff.into());
            E::insert(back)
                .on_conflict(
                    sea_orm::sea_query::OnConflict::column(key)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
            continue;
        }
        removed += 1;
    }
    Ok(removed)
}
