//! Indexes behind what the code reads and deletes by, found missing:
//! - `credit_ledger (job_id)` and `shorts (job_id)`: their foreign keys to `jobs` are
//!   `ON DELETE SET NULL`, so each job the clean-up deletes scanned both tables (1.5 s for a
//!   batch of 100 jobs over 300,000 ledger rows, holding the batch's locks; on SQLite the one
//!   write lock).
//! - `jobs (creator_id, id)`: a member's job list is `owner_id = … OR creator_id IN (…)`.
//! - `jobs (owner_id, updated_at, id)`: `jobsUpdated`'s re-reads, per subscriber.
//! - `credit_ledger (user_id, id)`: the ledger is paged by id.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    OwnerId,
    CreatorId,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CreditLedger {
    Table,
    Id,
    UserId,
    JobId,
}

#[derive(DeriveIden)]
enum Shorts {
    Table,
    JobId,
}

/// Each index: its name, its table and its columns.
fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        Index::create()
            .name("idx_credit_ledger_job_id")
            .table(CreditLedger::Table)
            .col(CreditLedger::JobId)
            .to_owned(),
        Index::create()
            .name("idx_credit_ledger_user_id_id")
            .table(CreditLedger::Table)
            .col(CreditLedger::UserId)
            .col(CreditLedger::Id)
            .to_owned(),
        Index::create()
            .name("idx_shorts_job_id")
            .table(Shorts::Table)
            .col(Shorts::JobId)
            .to_owned(),
        Index::create()
            .name("idx_jobs_creator_id_id")
            .table(Jobs::Table)
            .col(Jobs::CreatorId)
            .col(Jobs::Id)
            .to_owned(),
        Index::create()
            .name("idx_jobs_owner_id_updated_at_id")
            .table(Jobs::Table)
            .col(Jobs::OwnerId)
            .col(Jobs::UpdatedAt)
            .col(Jobs::Id)
            .to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drops = [
            Index::drop()
                .name("idx_credit_ledger_job_id")
                .table(CreditLedger::Table)
                .to_owned(),
            Index::drop()
                .name("idx_credit_ledger_user_id_id")
                .table(CreditLedger::Table)
                .to_owned(),
            Index::drop()
                .name("idx_shorts_job_id")
                .table(Shorts::Table)
                .to_owned(),
            Index::drop()
                .name("idx_jobs_creator_id_id")
                .table(Jobs::Table)
                .to_owned(),
            Index::drop()
                .name("idx_jobs_owner_id_updated_at_id")
                .table(Jobs::Table)
                .to_owned(),
        ];
        for drop in drops {
            manager.drop_index(drop).await?;
        }
        Ok(())
    }
}
