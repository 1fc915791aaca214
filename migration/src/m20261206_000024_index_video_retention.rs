//! Workers look for videos past their `retention_until` every minute: this partial index finds
//! them without reading every video (most have no retention set).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Videos {
    Table,
    RetentionUntil,
    DeletedAt,
}

const NAME: &str = "idx_videos_retention_until";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(Videos::Table)
                    .col(Videos::RetentionUntil)
                    .and_where(Expr::col(Videos::RetentionUntil).is_not_null())
                    .and_where(Expr::col(Videos::DeletedAt).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table(Videos::Table).to_owned())
            .await
    }
}
