//! An administrator's (or a payment hook's) credit grant can carry an idempotency key, so that
//! a request sent again after a timeout grants once: the key is kept on the ledger row, unique
//! per user (NULLs, every other ledger row, are distinct on both databases).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CreditLedger {
    Table,
    UserId,
    IdempotencyKey,
}

const INDEX: &str = "idx_credit_ledger_user_id_idempotency_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // Two statements: both or neither.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(CreditLedger::Table)
                    .add_column(text_null(CreditLedger::IdempotencyKey))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(CreditLedger::Table)
                    .col(CreditLedger::UserId)
                    .col(CreditLedger::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(CreditLedger::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(CreditLedger::Table)
                    .drop_column(CreditLedger::IdempotencyKey)
                    .to_owned(),
            )
            .await
    }
}
