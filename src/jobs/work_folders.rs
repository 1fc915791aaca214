//! Work folders: each job that needs local files (a probe's download, a scene's render, a
//! short's source) works in `reelgraph-<job id>-…` in the system's temp folder, removed when
//! the handler is done with it. A process that is killed (out of memory, a deploy) removes
//! nothing, and a short's folder can hold a 5 GiB original: the hourly upkeep removes the
//! folders of this server's jobs that are no longer running.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use entity::{JobStatus, job};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

const PREFIX: &str = "reelgraph-";

/// Where a request that hashes an object stored on S3 downloads it (`media::hash`): no job
/// owns it, so it is removed once untouched for [`HASH_IDLE`].
pub const HASH_PREFIX: &str = "reelgraph-hash-";
const HASH_IDLE: Duration = Duration::from_secs(24 * 3600);

/// A new work folder for `job_id`'s handler, removed when dropped.
pub fn create(job_id: Uuid) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{job_id}-"))
        .tempdir()
}

/// The job a folder name (`reelgraph-<job id>-<random>`) belongs to.
fn job_of(name: &str) -> Option<Uuid> {
    let rest = name.strip_prefix(PREFIX)?;
    let (id, random) = rest.split_at_checked(36)?;
    random.strip_prefix('-')?;
    Uuid::parse_str(id).ok()
}

/// Removes the work folders, untouched for `idle`, of jobs in this database that are not
/// running (a folder of another server's job, or of a job no longer in the table, is left
/// alone: it cannot be told from one in use), and hashing folders untouched for a day.
/// Returns how many were removed.
pub async fn sweep(db: &DatabaseConnection, idle: Duration) -> Result<usize, sea_orm::DbErr> {
    let root = std::env::temp_dir();
    let (found, hashing): (Vec<(Uuid, PathBuf)>, Vec<PathBuf>) =
        tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&root) else {
                return (Vec::new(), Vec::new());
            };
            let now = SystemTime::now();
            let (mut jobs, mut hashing) = (Vec::new(), Vec::new());
            for entry in entries.flatten() {
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let Ok(meta) = entry.metadata() else { continue };
                let idle_for = meta
                    .modified()
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .unwrap_or_default();
                if !meta.is_dir() {
                    continue;
                }
                if name.starts_with(HASH_PREFIX) {
                    if idle_for >= HASH_IDLE {
                        hashing.push(entry.path());
                    }
                } else if let Some(id) = job_of(&name)
                    && idle_for >= idle
                {
                    jobs.push((id, entry.path()));
                }
            }
            (jobs, hashing)
        })
        .await
        .unwrap_or_default();
    let mut removed = 0;
    for path in hashing {
        if tokio::fs::remove_dir_all(path).await.is_ok() {
            removed += 1;
        }
    }
    for batch in found.chunks(500) {
        let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        let ended: Vec<Uuid> = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(job::Column::Id.is_in(ids))
            .filter(job::Column::Status.ne(JobStatus::Running))
            .into_tuple()
            .all(db)
            .await?;
        for (id, path) in batch {
            if ended.contains(id) && tokio::fs::remove_dir_all(path).await.is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::job_of;

    #[test]
    fn a_work_folder_names_its_job() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(job_of(&format!("reelgraph-{id}-a1B2c3")), Some(id));
        assert_eq!(job_of(&format!("reelgraph-{id}")), None);
        assert_eq!(job_of(&format!("reelgraph-{id}x1")), None);
        assert_eq!(job_of("reelgraph-not-a-uuid-at-all-0000000000000-x"), None);
        assert_eq!(job_of(&format!("other-{id}-x")), None);
    }
}
