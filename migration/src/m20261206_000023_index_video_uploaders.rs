//! `requestVideoUpload` counts the videos an account asked to upload in the last day (at most
//! 200 a day): this index finds them without reading every video.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Videos {
    Table,
    UploadedBy,
    CreatedAt,
}

const NAME: &str = "idx_videos_uploaded_by_created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(Videos::Table)
                    .col(Videos::UploadedBy)
                    .col(Videos::CreatedAt)
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
