//! Records when a deleted video's files were removed from storage for good. `deleteVideo`
//! removes them at once, but a job running for the video (a short's render, a probe) or a
//! presigned upload still in flight can write one after that; the hourly sweep removes the
//! files of videos deleted more than an hour earlier once more, then sets this column. The
//! partial index holds only the videos still waiting for that sweep.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Videos {
    Table,
    DeletedAt,
    FilesRemovedAt,
}

const INDEX: &str = "idx_videos_files_to_remove";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // Several statements: all or none (SQLite runs a migration in a transaction only when
    // asked; one that died half-way could not be run again).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Videos::Table)
                    .add_column(
                        ColumnDef::new(Videos::FilesRemovedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Videos::Table)
                    .col(Videos::DeletedAt)
                    .and_where(Expr::col(Videos::DeletedAt).is_not_null())
                    .and_where(Expr::col(Videos::FilesRemovedAt).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Videos::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Videos::Table)
                    .drop_column(Videos::FilesRemovedAt)
                    .to_owned(),
            )
            .await
    }
}
