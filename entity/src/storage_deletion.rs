//! `storage_deletions` table: objects whose rows are gone but whose delete failed (object
//! storage did not answer), kept so that the workers' upkeep deletes them later instead of
//! leaving what a user deleted in the bucket for good.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "storage_deletions")]
pub struct Model {
    /// The object's storage key (primary key).
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub key: String,
    /// When its delete first failed.
    pub failed_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
