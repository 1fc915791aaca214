//! What the knowledge-base platform keeps per account besides sign-in: whether the user has
//! finished onboarding, and their e-mail digest preferences (on or off, daily or weekly). The
//! platform's mailer reads them; Reelgraph stores them and lets each user change their own.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::enum_col;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    OnboardingCompleted,
    DigestEnabled,
    DigestFrequency,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // Several statements: all or none (SQLite runs a migration in a transaction only when
    // asked; one that died half-way could not be run again).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        let columns = [
            boolean(Users::OnboardingCompleted).default(false).take(),
            boolean(Users::DigestEnabled).default(false).take(),
            enum_col(Users::DigestFrequency, &["DAILY", "WEEKLY"], Some("DAILY")),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Users::DigestFrequency,
            Users::DigestEnabled,
            Users::OnboardingCompleted,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
