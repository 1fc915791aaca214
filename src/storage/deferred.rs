//! Deletes that object storage failed, kept to be done later: the row that named the object
//! is gone (a deleted short, a key moment's shorts, a transcript's replaced caption files), so
//! nothing else would ever remove it.

use chrono::Utc;
use entity::storage_deletion;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::OnConflict,
};

use super::Storage;

/// Keys the upkeep tries per run; the next run takes the rest.
const BATCH: u64 = 500;

/// Deletes `key`; when storage fails, records it for [`retry`] (and says so in the log).
pub async fn delete_or_defer(db: &DatabaseConnection, storage: &Storage, key: &str, what: &str) {
    let Err(err) = storage.delete(key).await else {
        return;
    };
    let row = storage_deletion::ActiveModel {
        key: Set(key.to_owned()),
        failed_at: Set(Utc::now()),
    };
    let kept = storage_deletion::Entity::insert(row)
        .on_conflict(
            OnConflict::column(storage_deletion::Column::Key)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await;
    match kept {
        Ok(_) => {
            tracing::warn!(key, error = %err, "{what} could not be removed; trying again at the next upkeep")
        }
        Err(db_err) => {
            tracing::error!(key, error = %err, db_error = %db_err, "{what} could not be removed, nor kept to be removed later")
        }
    }
}

/// Deletes the objects whose delete failed before, oldest first; how many went.
pub async fn retry(db: &DatabaseConnection, storage: &Storage) -> Result<usize, sea_orm::DbErr> {
    let keys: Vec<String> = storage_deletion::Entity::find()
        .select_only()
        .column(storage_deletion::Column::Key)
        .order_by_asc(storage_deletion::Column::FailedAt)
        .limit(BATCH)
        .into_tuple()
        .all(db)
        .await?;
    let mut deleted = 0;
    for key in keys {
        if let Err(err) = storage.delete(&key).await {
            tracing::warn!(key, error = %err, "a file kept to be removed could not be removed; trying again at the next upkeep");
            continue;
        }
        storage_deletion::Entity::delete_many()
            .filter(storage_deletion::Column::Key.eq(key.as_str()))
            .exec(db)
            .await?;
        deleted += 1;
    }
    Ok(deleted)
}
