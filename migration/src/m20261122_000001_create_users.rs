//! Users and authentication: `users`, `sessions`, `refresh_tokens`, `invite_codes`.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{drop_tables, enum_col, fk, ts_now};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    DisplayName,
    AvatarUrl,
    Role,
    IsActive,
    IsVerified,
    Credits,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum Sessions {
    Table,
    Id,
    UserId,
    UserAgent,
    IpAddress,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
    RevokedAt,
    RevokedReason,
}

#[derive(DeriveIden)]
pub enum RefreshTokens {
    Table,
    Id,
    SessionId,
    TokenHash,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
pub enum InviteCodes {
    Table,
    Id,
    Code,
    UsesRemaining,
    ExpiresAt,
    CreatedBy,
    CreatedAt,
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
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    .col(text_uniq(Users::Email))
                    .col(text(Users::PasswordHash))
                    .col(string_len_null(Users::DisplayName, 50))
                    .col(text_null(Users::AvatarUrl))
                    .col(enum_col(
                        Users::Role,
                        &["ADMIN", "CREATOR", "VIEWER"],
                        Some("VIEWER"),
                    ))
                    .col(boolean(Users::IsActive).default(true))
                    .col(boolean(Users::IsVerified).default(false))
                    .col(
                        big_integer(Users::Credits)
                            .default(0)
                            .check(Expr::col(Users::Credits).gte(0)),
                    )
                    .col(ts_now(Users::CreatedAt, db))
                    .col(ts_now(Users::UpdatedAt, db))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(pk_uuid(Sessions::Id))
                    .col(uuid(Sessions::UserId))
                    .col(text_null(Sessions::UserAgent))
                    .col(string_len_null(Sessions::IpAddress, 45))
                    .col(ts_now(Sessions::CreatedAt, db))
                    .col(timestamp_with_time_zone_null(Sessions::LastSeenAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                    .col(text_null(Sessions::RevokedReason))
                    .foreign_key(&mut fk(
                        "fk_sessions_user_id",
                        Sessions::Table,
                        Sessions::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_user_id")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(pk_uuid(RefreshTokens::Id))
                    .col(uuid(RefreshTokens::SessionId))
                    .col(char_len_uniq(RefreshTokens::TokenHash, 64))
                    .col(ts_now(RefreshTokens::CreatedAt, db))
                    .col(timestamp_with_time_zone_null(RefreshTokens::UsedAt))
                    .foreign_key(&mut fk(
                        "fk_refresh_tokens_session_id",
                        RefreshTokens::Table,
                        RefreshTokens::SessionId,
                        Sessions::Table,
                        Sessions::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_refresh_tokens_session_id")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::SessionId)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(InviteCodes::Table)
                    .col(pk_uuid(InviteCodes::Id))
                    .col(string_len_uniq(InviteCodes::Code, 100))
                    .col(
                        integer(InviteCodes::UsesRemaining)
                            .default(1)
                            .check(Expr::col(InviteCodes::UsesRemaining).gte(0)),
                    )
                    .col(timestamp_with_time_zone_null(InviteCodes::ExpiresAt))
                    .col(uuid_null(InviteCodes::CreatedBy))
                    .col(ts_now(InviteCodes::CreatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_invite_codes_created_by",
                        InviteCodes::Table,
                        InviteCodes::CreatedBy,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::SetNull,
                    ))
                    .take(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            [
                InviteCodes::Table.into_iden(),
                RefreshTokens::Table.into_iden(),
                Sessions::Table.into_iden(),
                Users::Table.into_iden(),
            ],
        )
        .await
    }
}
