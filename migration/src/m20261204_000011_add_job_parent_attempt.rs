//! Records on each child job the attempt of its parent that made it. `retryJob` runs a parent
//! again while children of its last attempt may still be stopping; their end must not count
//! towards (or fail, or cancel) the new attempt, whose own children it cannot tell them from
//! otherwise. NULL on rows made before this column existed, which count as current.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    ParentAttempt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(ColumnDef::new(Jobs::ParentAttempt).integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .drop_column(Jobs::ParentAttempt)
                    .to_owned(),
            )
            .await
    }
}
