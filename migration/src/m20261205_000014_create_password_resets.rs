//! One-time password reset tokens. An administrator (or `reelgraph admin reset-password`)
//! issues one for an account and hands it to its owner, who sets a new password with it
//! (`resetPassword`). Only the token's SHA-256 is stored; a token works once, until it expires.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{fk, ts_now};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PasswordResets {
    Table,
    Id,
    UserId,
    TokenHash,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(PasswordResets::Table)
                    .col(pk_uuid(PasswordResets::Id))
                    .col(uuid(PasswordResets::UserId))
                    .col(char_len_uniq(PasswordResets::TokenHash, 64))
                    .col(uuid_null(PasswordResets::CreatedBy))
                    .col(ts_now(PasswordResets::CreatedAt, db))
                    .col(timestamp_with_time_zone(PasswordResets::ExpiresAt))
                    .col(timestamp_with_time_zone_null(PasswordResets::UsedAt))
                    .foreign_key(&mut fk(
                        "fk_password_resets_user_id",
                        PasswordResets::Table,
                        PasswordResets::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_password_resets_created_by",
                        PasswordResets::Table,
                        PasswordResets::CreatedBy,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::SetNull,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_password_resets_user_id")
                    .table(PasswordResets::Table)
                    .col(PasswordResets::UserId)
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PasswordResets::Table).to_owned())
            .await
    }
}
