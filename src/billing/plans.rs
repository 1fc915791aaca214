//! Which plan a user is on, and how an administrator changes it.
//!
//! A user's plan is the one of their most recent *live* subscription (`ACTIVE`, `TRIALING` or
//! `PAST_DUE`); without one they are on `FREE`. The billing period dates of a subscription are
//! informative: an expired `current_period_end` does not downgrade anyone, because a late
//! renewal webhook must not cut a paying user down to the free limits mid-render. Ending a
//! subscription is done by setting its status to `CANCELLED`.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use entity::{
    BillingInterval, PlanCode, SubscriptionStatus, plan, render_usage, subscription, user,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, sea_query::Expr,
};
use uuid::Uuid;

use super::billing_period;
use crate::{
    db::RowLock,
    error::{AppError, AppResult},
    jobs::queue::begin_write,
};

/// Subscription statuses under which the plan applies (`PAST_DUE` is the payment grace period).
const LIVE: [SubscriptionStatus; 3] = [
    SubscriptionStatus::Active,
    SubscriptionStatus::Trialing,
    SubscriptionStatus::PastDue,
];

/// The user's most recent live subscription, if any.
async fn live_subscription(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> AppResult<Option<subscription::Model>> {
    Ok(subscription::Entity::find()
        .filter(subscription::Column::UserId.eq(user_id))
        .filter(subscription::Column::Status.is_in(LIVE))
        .order_by_desc(subscription::Column::CreatedAt)
        .order_by_desc(subscription::Column::Id)
        .one(db)
        .await?)
}

/// The plan row of `code`. The plans are seeded by a migration, so a missing row is a broken
/// deployment, not a client error.
pub async fn plan_by_code(db: &impl ConnectionTrait, code: PlanCode) -> AppResult<plan::Model> {
    plan::Entity::find_by_id(code)
        .one(db)
        .await?
        .ok_or_else(|| AppError::internal("billing", format!("plan {code:?} is not seeded")))
}

/// The plan that applies to the user now: their live subscription's, or `FREE`.
pub async fn current_plan(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<plan::Model> {
    let code = live_subscription(db, user_id)
        .await?
        .map_or(PlanCode::Free, |s| s.plan);
    plan_by_code(db, code).await
}

/// Start and end of the calendar month `now` falls in (UTC): the period a subscription set by
/// an administrator covers.
fn month_bounds(now: DateTime<Utc>) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    let first = |year: i32, month: u32| {
        Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
            .single()
            .ok_or_else(|| AppError::internal("billing", "month start out of range"))
    };
    let start = first(now.year(), now.month())?;
    let end = if now.month() == 12 {
        first(now.year() + 1, 1)?
    } else {
        first(now.year(), now.month() + 1)?
    };
    Ok((start, end))
}

/// Puts the user on `code`: updates their most recent live subscription (to `ACTIVE`, for the
/// current month) or creates one, and refreshes the limit snapshot of this month's usage row.
/// Returns the plan.
///
/// Errors: `NOT_FOUND` when the user does not exist.
pub async fn set_user_plan(
    db: &DatabaseConnection,
    user_id: Uuid,
    code: PlanCode,
    now: DateTime<Utc>,
) -> AppResult<plan::Model> {
    let (start, end) = month_bounds(now)?;
    let txn = begin_write(db).await?;
    if user::Entity::find_by_id(user_id).one(&txn).await?.is_none() {
        return Err(AppError::NotFound("user"));
    }
    let plan = plan_by_code(&txn, code).await?;
    // Locked in the order reservations and their settlements take them (PostgreSQL; SQLite's
    // writers are serialised): this month's usage row, then the user's row, so that a render
    // reserving or giving back minutes at the same time waits instead of deadlocking. The
    // user's lock makes two calls for one user run one after the other, so they cannot both
    // find no live subscription and both insert one. `NO KEY UPDATE` leaves alone the key-share
    // lock a render's job insert holds on the user.
    super::usage::lock_usage(
        &txn,
        user_id,
        &billing_period(now),
        plan.monthly_minutes_limit,
        now,
    )
    .await?;
    let lookup = user::Entity::find_by_id(user_id).for_no_key_update(&txn);
    if lookup.one(&txn).await?.is_none() {
        return Err(AppError::NotFound("user"));
    }
    match live_subscription(&txn, user_id).await? {
        Some(existing) => {
            let mut active: subscription::ActiveModel = existing.into();
            active.plan = Set(code);
            active.status = Set(SubscriptionStatus::Active);
            active.current_period_start = Set(start);
            active.current_period_end = Set(end);
            active.updated_at = Set(now);
            active.update(&txn).await?;
        }
        None => {
            subscription::ActiveModel {
                id: Set(Uuid::now_v7()),
                user_id: Set(user_id),
                plan: Set(code),
                status: Set(SubscriptionStatus::Active),
                billing_interval: Set(BillingInterval::Monthly),
                current_period_start: Set(start),
                current_period_end: Set(end),
                stripe_subscription_id: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?;
        }
    }
    // `minutes_limit` mirrors the plan; keep this month's snapshot truthful right away rather
    // than at the next reservation.
    render_usage::Entity::update_many()
        .col_expr(
            render_usage::Column::MinutesLimit,
            Expr::val(plan.monthly_minutes_limit),
        )
        .col_expr(render_usage::Column::LastUpdatedAt, Expr::val(now))
        .filter(render_usage::Column::UserId.eq(user_id))
        .filter(render_usage::Column::BillingPeriod.eq(billing_period(now)))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_bounds_cover_the_month_and_roll_over_the_year() {
        let at = |y, m, d| {
            Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
                .single()
                .expect("valid date")
        };
        let (start, end) = month_bounds(at(2026, 4, 15)).expect("bounds");
        assert_eq!(start.to_rfc3339(), "2026-04-01T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-05-01T00:00:00+00:00");
        let (start, end) = month_bounds(at(2026, 12, 31)).expect("bounds");
        assert_eq!(start.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
