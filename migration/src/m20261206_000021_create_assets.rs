//! Uploaded pictures for image layers (`requestAssetUpload`) get a row each: uploads per
//! account and day can be limited, and a picture no render has named for a while is removed,
//! file and row, by the workers' upkeep. Pictures uploaded before this have none until a
//! render names them.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{fk, ts_now};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Assets {
    Table,
    Key,
    OwnerId,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Assets::Table)
                    .col(text(Assets::Key).primary_key())
                    .col(uuid(Assets::OwnerId))
                    .col(ts_now(Assets::CreatedAt, db))
                    .col(ts_now(Assets::UsedAt, db))
                    .foreign_key(&mut fk(
                        "fk_assets_owner_id",
                        Assets::Table,
                        Assets::OwnerId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        // Uploads of an account in the last day.
        manager
            .create_index(
                Index::create()
                    .name("idx_assets_owner_created")
                    .table(Assets::Table)
                    .col(Assets::OwnerId)
                    .col(Assets::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // The upkeep's oldest-unused first.
        manager
            .create_index(
                Index::create()
                    .name("idx_assets_used_at")
                    .table(Assets::Table)
                    .col(Assets::UsedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Assets::Table).to_owned())
            .await
    }
}
