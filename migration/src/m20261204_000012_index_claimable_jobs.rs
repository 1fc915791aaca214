//! The claim reads queued jobs in `priority DESC, id` order (ids are UUIDv7: oldest first),
//! but the partial index made with the jobs table was on `(priority DESC, created_at)`, so
//! PostgreSQL sorted every queued row to pick a few. This index has the claim's order.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Priority,
    Id,
    CreatedAt,
    Status,
}

const OLD: &str = "idx_jobs_queued";
const NEW: &str = "idx_jobs_claimable";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // Several statements: all or none (SQLite runs a migration in a transaction only when
    // asked; one that died half-way could not be run again).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NEW)
                    .table(Jobs::Table)
                    .col((Jobs::Priority, IndexOrder::Desc))
                    .col(Jobs::Id)
                    .and_where(Expr::col(Jobs::Status).eq("QUEUED"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name(OLD).table(Jobs::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(OLD)
                    .table(Jobs::Table)
                    .col((Jobs::Priority, IndexOrder::Desc))
                    .col(Jobs::CreatedAt)
                    .and_where(Expr::col(Jobs::Status).eq("QUEUED"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name(NEW).table(Jobs::Table).to_owned())
            .await
    }
}
