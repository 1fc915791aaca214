//! Every server re-reads the sessions ended lately every few seconds (`revoked_at` within an
//! access token's lifetime): this partial index finds them without reading every session.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    RevokedAt,
}

const NAME: &str = "idx_sessions_revoked_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(Sessions::Table)
                    .col(Sessions::RevokedAt)
                    .and_where(Expr::col(Sessions::RevokedAt).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table(Sessions::Table).to_owned())
            .await
    }
}
