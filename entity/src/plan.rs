//! `plans` table: billing plans and their render-minute limits (seeded by a migration).

use crate::enums::PlanCode;
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "plans")]
pub struct Model {
    /// Primary key: the plan code.
    #[sea_orm(primary_key, auto_increment = false)]
    pub code: PlanCode,
    /// Human-readable plan name.
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// Render minutes per billing period; null = unlimited.
    pub monthly_minutes_limit: Option<f64>,
    /// Render minutes per day; null = no daily cap.
    pub daily_minutes_limit: Option<f64>,
    /// Monthly price in cents.
    pub price_cents: i32,
    /// When the row was created.
    pub created_at: DateTimeUtc,
    /// Subscriptions on this plan.
    #[sea_orm(has_many)]
    pub subscriptions: HasMany<super::subscription::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
