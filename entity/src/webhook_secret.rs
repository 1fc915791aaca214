//! `webhook_secrets` table: the secret an account's webhooks are signed with, once it has
//! rotated it (accounts without a row sign with the secret derived from the server's key).

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_secrets")]
pub struct Model {
    /// The account (primary key).
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// The current secret (`whsec_` and 64 hex digits).
    #[sea_orm(column_type = "Text")]
    pub secret: String,
    /// The secret it replaced, still signed with until `previous_expires_at`.
    #[sea_orm(column_type = "Text")]
    pub previous_secret: Option<String>,
    /// Until when the previous secret signs deliveries too.
    pub previous_expires_at: Option<DateTimeUtc>,
    /// When the secret was last rotated.
    pub rotated_at: DateTimeUtc,
    /// The account.
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
