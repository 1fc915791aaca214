//! Indexes the consent rows that hide a video (`public_display = false`). Every public read
//! filters videos with `NOT EXISTS (consent WHERE video_id = … AND NOT public_display)`; when
//! the planner checks many videos at once it hashes the hiding rows, and without this index
//! that meant reading every consent row, nearly all of which allow display.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum VideoConsents {
    Table,
    VideoId,
    PublicDisplay,
}

const NAME: &str = "idx_video_consents_hidden";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(VideoConsents::Table)
                    .col(VideoConsents::VideoId)
                    .and_where(Expr::col(VideoConsents::PublicDisplay).eq(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(NAME)
                    .table(VideoConsents::Table)
                    .to_owned(),
            )
            .await
    }
}
