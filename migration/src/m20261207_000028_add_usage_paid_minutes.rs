//! Records on each usage row the minutes of the period paid with credits. They were counted
//! against the plan's free monthly minutes as well: a FREE user who paid for the minutes past
//! the daily cap had them taken from the month's allowance too, and paid again for minutes
//! the month still had. 0 on rows made before this column existed.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RenderUsage {
    Table,
    MinutesPaid,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RenderUsage::Table)
                    .add_column(
                        ColumnDef::new(RenderUsage::MinutesPaid)
                            .double()
                            .not_null()
                            .default(0.0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RenderUsage::Table)
                    .drop_column(RenderUsage::MinutesPaid)
                    .to_owned(),
            )
            .await
    }
}
