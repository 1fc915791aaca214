//! `scene_cache` table: content-addressed cache of rendered scenes.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "scene_cache")]
pub struct Model {
    /// Primary key: hex-encoded SHA-256 of the scene specification (64 characters).
    #[sea_orm(primary_key, auto_increment = false, column_type = "Char(Some(64))")]
    pub hash: String,
    /// Object-storage key of the rendered scene.
    #[sea_orm(column_type = "Text")]
    pub storage_key: String,
    /// Duration of the rendered scene in seconds.
    pub duration_secs: f64,
    /// Size of the rendered scene in bytes.
    pub size_bytes: Option<i64>,
    /// When the entry was created.
    pub created_at: DateTimeUtc,
    /// When the entry was last used (for LRU eviction).
    pub last_used_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
