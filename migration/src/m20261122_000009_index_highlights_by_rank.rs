//! Serves `highlights` pages (`ORDER BY score DESC, id ASC`) straight from an index. The
//! `(score, id)` index cannot: its columns run in one direction and the order mixes two, so
//! every page sorted all highlights.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Highlights {
    Table,
    Score,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_highlights_rank")
                    .table(Highlights::Table)
                    .col((Highlights::Score, IndexOrder::Desc))
                    .col((Highlights::Id, IndexOrder::Asc))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_highlights_rank")
                    .table(Highlights::Table)
                    .to_owned(),
            )
            .await
    }
}
