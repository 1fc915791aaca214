//! Objects whose delete failed after their rows were deleted (`deleteShort`, `deleteKeyMoment`,
//! a transcript's replaced caption files while object storage was down) get a row each, and
//! the workers' upkeep deletes them later: they stayed in the bucket for good.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::ts_now;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StorageDeletions {
    Table,
    Key,
    FailedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(StorageDeletions::Table)
                    .col(text(StorageDeletions::Key).primary_key())
                    .col(ts_now(StorageDeletions::FailedAt, db))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StorageDeletions::Table).to_owned())
            .await
    }
}
