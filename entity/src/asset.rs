//! `assets` table: the pictures uploaded for movie specs' image layers (`requestAssetUpload`),
//! so that each account's uploads can be counted, and a picture no render has used for a
//! while removed with its file.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "assets")]
pub struct Model {
    /// The object's storage key (`assets/{owner}/{id}.{ext}`; primary key).
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub key: String,
    /// Who uploaded it.
    pub owner_id: Uuid,
    /// When its upload was requested.
    pub created_at: DateTimeUtc,
    /// When a render last named it (until then, when its upload was requested).
    pub used_at: DateTimeUtc,
    /// The account.
    #[sea_orm(belongs_to, from = "owner_id", to = "id", on_delete = "Cascade")]
    pub owner: BelongsTo<super::user::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
