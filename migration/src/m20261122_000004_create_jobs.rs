//! Jobs, rendering and billing: `jobs`, `render_plans`, `scene_cache`, `plans`,
//! `subscriptions`, `render_usage`, `credit_ledger`.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{drop_tables, enum_col, fk, ts_now};
use crate::m20261122_000001_create_users::Users;
use crate::m20261122_000002_create_creators::Creators;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Jobs {
    Table,
    Id,
    Kind,
    JobType,
    Status,
    Priority,
    ParentId,
    Provider,
    Progress,
    CurrentPhase,
    Input,
    Output,
    OutputRef,
    Error,
    OwnerId,
    CreatorId,
    Attempts,
    MaxAttempts,
    RunAt,
    LeaseToken,
    LeaseExpiresAt,
    CancelRequested,
    PendingChildren,
    IdempotencyKey,
    Seq,
    Cached,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
pub enum RenderPlans {
    Table,
    Id,
    JobId,
    Version,
    Spec,
    Hash,
    StorageKey,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum SceneCache {
    Table,
    Hash,
    StorageKey,
    DurationSecs,
    SizeBytes,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
pub enum Plans {
    Table,
    Code,
    Name,
    MonthlyMinutesLimit,
    DailyMinutesLimit,
    PriceCents,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum Subscriptions {
    Table,
    Id,
    UserId,
    Plan,
    Status,
    BillingInterval,
    CurrentPeriodStart,
    CurrentPeriodEnd,
    StripeSubscriptionId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum RenderUsage {
    Table,
    Id,
    UserId,
    BillingPeriod,
    MinutesConsumed,
    MinutesReserved,
    MinutesLimit,
    DailyMinutes,
    LastUpdatedAt,
}

#[derive(DeriveIden)]
pub enum CreditLedger {
    Table,
    Id,
    UserId,
    Delta,
    Reason,
    JobId,
    BalanceAfter,
    CreatedAt,
}

/// Allowed values of `plans.code` / `subscriptions.plan`.
pub const PLAN_CODES: [&str; 4] = ["FREE", "PRO", "BUSINESS", "ENTERPRISE"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();

        // ---- jobs -------------------------------------------------------------
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(pk_uuid(Jobs::Id))
                    .col(enum_col(
                        Jobs::Kind,
                        &["AGENT", "WORKFLOW", "PUBLISH", "RENDER"],
                        None,
                    ))
                    .col(text(Jobs::JobType))
                    .col(enum_col(
                        Jobs::Status,
                        &[
                            "QUEUED",
                            "RUNNING",
                            "WAITING",
                            "DONE",
                            "FAILED",
                            "CANCELLED",
                        ],
                        Some("QUEUED"),
                    ))
                    // 0 = LOW, 1 = NORMAL, 2 = HIGH
                    .col(integer(Jobs::Priority).default(1))
                    .col(uuid_null(Jobs::ParentId))
                    .col(text(Jobs::Provider).default("local"))
                    .col(
                        double(Jobs::Progress)
                            .default(0.0)
                            .check(Expr::col(Jobs::Progress).between(0.0, 1.0)),
                    )
                    .col(text_null(Jobs::CurrentPhase))
                    .col(json_binary(Jobs::Input).default("{}"))
                    .col(json_binary_null(Jobs::Output))
                    .col(text_null(Jobs::OutputRef))
                    .col(text_null(Jobs::Error))
                    .col(uuid(Jobs::OwnerId))
                    .col(uuid_null(Jobs::CreatorId))
                    .col(integer(Jobs::Attempts).default(0))
                    .col(integer(Jobs::MaxAttempts).default(3))
                    .col(ts_now(Jobs::RunAt, db))
                    .col(uuid_null(Jobs::LeaseToken))
                    .col(timestamp_with_time_zone_null(Jobs::LeaseExpiresAt))
                    .col(boolean(Jobs::CancelRequested).default(false))
                    .col(integer(Jobs::PendingChildren).default(0))
                    .col(text_null(Jobs::IdempotencyKey))
                    .col(big_integer(Jobs::Seq).default(0))
                    .col(boolean(Jobs::Cached).default(false))
                    .col(ts_now(Jobs::CreatedAt, db))
                    .col(ts_now(Jobs::UpdatedAt, db))
                    .col(timestamp_with_time_zone_null(Jobs::StartedAt))
                    .col(timestamp_with_time_zone_null(Jobs::FinishedAt))
                    .foreign_key(&mut fk(
                        "fk_jobs_parent_id",
                        Jobs::Table,
                        Jobs::ParentId,
                        Jobs::Table,
                        Jobs::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_jobs_owner_id",
                        Jobs::Table,
                        Jobs::OwnerId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_jobs_creator_id",
                        Jobs::Table,
                        Jobs::CreatorId,
                        Creators::Table,
                        Creators::Id,
                        ForeignKeyAction::SetNull,
                    ))
                    .take(),
            )
            .await?;
        // Claim queue: highest priority first, then FIFO, over queued jobs only.
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_queued")
                    .table(Jobs::Table)
                    .col((Jobs::Priority, IndexOrder::Desc))
                    .col(Jobs::CreatedAt)
                    .and_where(Expr::col(Jobs::Status).eq("QUEUED"))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_owner_id_id")
                    .table(Jobs::Table)
                    .col(Jobs::OwnerId)
                    .col(Jobs::Id)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_parent_id")
                    .table(Jobs::Table)
                    .col(Jobs::ParentId)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_status_lease_expires_at")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::LeaseExpiresAt)
                    .take(),
            )
            .await?;
        // An idempotency key may be reused once the earlier job has finished.
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_idempotency")
                    .table(Jobs::Table)
                    .col(Jobs::OwnerId)
                    .col(Jobs::IdempotencyKey)
                    .unique()
                    .and_where(Expr::col(Jobs::IdempotencyKey).is_not_null())
                    .and_where(Expr::col(Jobs::Status).is_in(["QUEUED", "RUNNING", "WAITING"]))
                    .take(),
            )
            .await?;

        // ---- render_plans -----------------------------------------------------
        manager
            .create_table(
                Table::create()
                    .table(RenderPlans::Table)
                    .col(pk_uuid(RenderPlans::Id))
                    .col(uuid_uniq(RenderPlans::JobId))
                    .col(text(RenderPlans::Version).default("1.0"))
                    .col(json_binary(RenderPlans::Spec))
                    .col(text(RenderPlans::Hash))
                    .col(text(RenderPlans::StorageKey))
                    .col(ts_now(RenderPlans::CreatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_render_plans_job_id",
                        RenderPlans::Table,
                        RenderPlans::JobId,
                        Jobs::Table,
                        Jobs::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;

        // ---- scene_cache ------------------------------------------------------
        manager
            .create_table(
                Table::create()
                    .table(SceneCache::Table)
                    .col(char_len(SceneCache::Hash, 64).primary_key())
                    .col(text(SceneCache::StorageKey))
                    .col(double(SceneCache::DurationSecs))
                    .col(big_integer_null(SceneCache::SizeBytes))
                    .col(ts_now(SceneCache::CreatedAt, db))
                    .col(ts_now(SceneCache::LastUsedAt, db))
                    .take(),
            )
            .await?;

        // ---- plans ------------------------------------------------------------
        manager
            .create_table(
                Table::create()
                    .table(Plans::Table)
                    .col(enum_col(Plans::Code, &PLAN_CODES, None).primary_key())
                    .col(text(Plans::Name))
                    .col(double_null(Plans::MonthlyMinutesLimit))
                    .col(double_null(Plans::DailyMinutesLimit))
                    .col(integer(Plans::PriceCents).default(0))
                    .col(ts_now(Plans::CreatedAt, db))
                    .take(),
            )
            .await?;

        // ---- subscriptions ----------------------------------------------------
        manager
            .create_table(
                Table::create()
                    .table(Subscriptions::Table)
                    .col(pk_uuid(Subscriptions::Id))
                    .col(uuid(Subscriptions::UserId))
                    .col(enum_col(Subscriptions::Plan, &PLAN_CODES, None))
                    .col(enum_col(
                        Subscriptions::Status,
                        &["ACTIVE", "TRIALING", "PAST_DUE", "CANCELLED"],
                        Some("ACTIVE"),
                    ))
                    .col(enum_col(
                        Subscriptions::BillingInterval,
                        &["MONTHLY", "ANNUAL"],
                        Some("MONTHLY"),
                    ))
                    .col(timestamp_with_time_zone(Subscriptions::CurrentPeriodStart))
                    .col(timestamp_with_time_zone(Subscriptions::CurrentPeriodEnd))
                    .col(text_null(Subscriptions::StripeSubscriptionId))
                    .col(ts_now(Subscriptions::CreatedAt, db))
                    .col(ts_now(Subscriptions::UpdatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_subscriptions_user_id",
                        Subscriptions::Table,
                        Subscriptions::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_subscriptions_plan",
                        Subscriptions::Table,
                        Subscriptions::Plan,
                        Plans::Table,
                        Plans::Code,
                        ForeignKeyAction::Restrict,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_subscriptions_user_id_status")
                    .table(Subscriptions::Table)
                    .col(Subscriptions::UserId)
                    .col(Subscriptions::Status)
                    .take(),
            )
            .await?;

        // ---- render_usage -----------------------------------------------------
        manager
            .create_table(
                Table::create()
                    .table(RenderUsage::Table)
                    .col(pk_uuid(RenderUsage::Id))
                    .col(uuid(RenderUsage::UserId))
                    .col(char_len(RenderUsage::BillingPeriod, 7))
                    .col(double(RenderUsage::MinutesConsumed).default(0.0))
                    .col(double(RenderUsage::MinutesReserved).default(0.0))
                    .col(double_null(RenderUsage::MinutesLimit))
                    .col(json_binary(RenderUsage::DailyMinutes).default("{}"))
                    .col(ts_now(RenderUsage::LastUpdatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_render_usage_user_id",
                        RenderUsage::Table,
                        RenderUsage::UserId,
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
                    .name("idx_render_usage_user_period")
                    .table(RenderUsage::Table)
                    .col(RenderUsage::UserId)
                    .col(RenderUsage::BillingPeriod)
                    .unique()
                    .take(),
            )
            .await?;

        // ---- credit_ledger ----------------------------------------------------
        manager
            .create_table(
                Table::create()
                    .table(CreditLedger::Table)
                    .col(pk_uuid(CreditLedger::Id))
                    .col(uuid(CreditLedger::UserId))
                    .col(big_integer(CreditLedger::Delta))
                    .col(text(CreditLedger::Reason))
                    .col(uuid_null(CreditLedger::JobId))
                    .col(big_integer(CreditLedger::BalanceAfter))
                    .col(ts_now(CreditLedger::CreatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_credit_ledger_user_id",
                        CreditLedger::Table,
                        CreditLedger::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_credit_ledger_job_id",
                        CreditLedger::Table,
                        CreditLedger::JobId,
                        Jobs::Table,
                        Jobs::Id,
                        ForeignKeyAction::SetNull,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_credit_ledger_user_created")
                    .table(CreditLedger::Table)
                    .col(CreditLedger::UserId)
                    .col(CreditLedger::CreatedAt)
                    .take(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            [
                CreditLedger::Table.into_iden(),
                RenderUsage::Table.into_iden(),
                Subscriptions::Table.into_iden(),
                Plans::Table.into_iden(),
                SceneCache::Table.into_iden(),
                RenderPlans::Table.into_iden(),
                Jobs::Table.into_iden(),
            ],
        )
        .await
    }
}
