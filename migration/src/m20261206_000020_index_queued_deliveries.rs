//! Webhook deliveries are claimed in a lane of their own (`job_type = 'webhook.deliver'`,
//! `priority DESC, id`): this partial index finds them without walking every queued render.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Priority,
    Id,
    Status,
    JobType,
}

const NAME: &str = "idx_jobs_claimable_deliveries";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(Jobs::Table)
                    .col((Jobs::Priority, IndexOrder::Desc))
                    .col(Jobs::Id)
                    .and_where(Expr::col(Jobs::Status).eq("QUEUED"))
                    .and_where(Expr::col(Jobs::JobType).eq("webhook.deliver"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table(Jobs::Table).to_owned())
            .await
    }
}
