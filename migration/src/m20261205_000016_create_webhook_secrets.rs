//! Per-account webhook signing secrets. An account that never rotated its secret has no row
//! and signs with the secret derived from the server's key, as before; `rotateWebhookSecret`
//! stores a random one, keeping the one it replaces valid for a while, so receivers can move
//! to the new secret without losing a delivery.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{fk, ts_now};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookSecrets {
    Table,
    UserId,
    Secret,
    PreviousSecret,
    PreviousExpiresAt,
    RotatedAt,
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
                    .table(WebhookSecrets::Table)
                    .col(pk_uuid(WebhookSecrets::UserId))
                    .col(text(WebhookSecrets::Secret))
                    .col(text_null(WebhookSecrets::PreviousSecret))
                    .col(timestamp_with_time_zone_null(
                        WebhookSecrets::PreviousExpiresAt,
                    ))
                    .col(ts_now(WebhookSecrets::RotatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_webhook_secrets_user_id",
                        WebhookSecrets::Table,
                        WebhookSecrets::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookSecrets::Table).to_owned())
            .await
    }
}
