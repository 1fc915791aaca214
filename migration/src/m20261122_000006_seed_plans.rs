//! Data migration: the four billing plans.

use sea_orm_migration::prelude::*;

use crate::m20261122_000004_create_jobs::{Plans, Subscriptions};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One seeded row of `plans`.
struct PlanSeed {
    code: &'static str,
    name: &'static str,
    /// Render minutes per billing period; `None` = unlimited.
    monthly_minutes_limit: Option<f64>,
    /// Render minutes per day; `None` = no daily cap.
    daily_minutes_limit: Option<f64>,
    price_cents: i32,
}

const PLANS: [PlanSeed; 4] = [
    PlanSeed {
        code: "FREE",
        name: "Free",
        monthly_minutes_limit: Some(30.0),
        daily_minutes_limit: Some(5.0),
        price_cents: 0,
    },
    PlanSeed {
        code: "PRO",
        name: "Pro",
        monthly_minutes_limit: Some(600.0),
        daily_minutes_limit: None,
        price_cents: 2900,
    },
    PlanSeed {
        code: "BUSINESS",
        name: "Business",
        monthly_minutes_limit: Some(3000.0),
        daily_minutes_limit: None,
        price_cents: 9900,
    },
    PlanSeed {
        code: "ENTERPRISE",
        name: "Enterprise",
        monthly_minutes_limit: None,
        daily_minutes_limit: None,
        price_cents: 0,
    },
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut insert = Query::insert();
        insert.into_table(Plans::Table).columns([
            Plans::Code,
            Plans::Name,
            Plans::MonthlyMinutesLimit,
            Plans::DailyMinutesLimit,
            Plans::PriceCents,
        ]);
        for plan in &PLANS {
            insert
                .values([
                    plan.code.into(),
                    plan.name.into(),
                    plan.monthly_minutes_limit.into(),
                    plan.daily_minutes_limit.into(),
                    plan.price_cents.into(),
                ])
                .map_err(|e| DbErr::Migration(format!("building plan seed row: {e}")))?;
        }
        // Plans kept by a partial `down` (still referenced) are left untouched.
        insert.on_conflict(OnConflict::column(Plans::Code).do_nothing().to_owned());
        manager.execute(insert).await
    }

    /// Removes the seeded plans that no subscription references (deleting a
    /// referenced plan would violate `fk_subscriptions_plan`; those rows go
    /// away when the previous migration drops the tables).
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .execute(
                Query::delete()
                    .from_table(Plans::Table)
                    .and_where(Expr::col(Plans::Code).is_in(PLANS.iter().map(|plan| plan.code)))
                    .and_where(
                        Expr::col(Plans::Code).not_in_subquery(
                            Query::select()
                                .column(Subscriptions::Plan)
                                .from(Subscriptions::Table)
                                .take(),
                        ),
                    )
                    .take(),
            )
            .await
    }
}
