//! Render-minute usage per user and billing period (`render_usage`), and the quota check.
//!
//! One row per `(user_id, billing_period)`:
//!
//! - `minutes_consumed`: output minutes of renders that finished in this period.
//! - `minutes_reserved`: estimated minutes of renders still in flight.
//! - `minutes_paid`: of those two, the minutes paid with credits (past the daily or monthly
//!   limit). They are not the plan's: the monthly limit holds `consumed + reserved - paid`, so
//!   minutes a FREE user paid for past the daily cap do not use up the month's free minutes.
//! - `minutes_limit`: snapshot of the plan's monthly limit (null = unlimited), refreshed by
//!   every reservation and plan change. Decisions always use the live plan, not the snapshot.
//! - `daily_minutes`: `{"YYYY-MM-DD": minutes}`, the **consumed + reserved** minutes of each day,
//!   so the daily cap also counts renders still in flight. Days at zero are dropped.
//!
//! A render's life: [`reserve`] (in the transaction that inserts its job) → [`settle`] when it
//! finishes, or [`release`] when it fails or is cancelled. Each reservation must be settled or
//! released exactly once; callers do that inside the fenced transaction that ends the job, which
//! the jobs engine runs exactly once. Counters are clamped at zero so a bug can never leave a
//! negative balance of minutes behind.
//!
//! Concurrency: the check and the reservation run on the locked usage row. On PostgreSQL the row
//! is made to exist (`INSERT … ON CONFLICT DO NOTHING`) and then locked with `SELECT … FOR
//! UPDATE`, so concurrent reservations of one user queue on that row and each sees the totals
//! the previous one committed. On SQLite the caller's transaction is `BEGIN IMMEDIATE`
//! ([`crate::jobs::queue::begin_write`]), which serialises all writers. Locks are always taken
//! in the order usage row → user row, here and in [`super::credits`], so the two paths cannot
//! deadlock.

use chrono::{DateTime, Utc};
use entity::{plan, render_usage};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect, Set,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    EPSILON, Reservation, billing_day, billing_period,
    credits::{self, REASON_OVERAGE, REASON_REFUND},
    plans::current_plan,
};
use crate::error::{AppError, AppResult};

/// A user's usage of the current billing period, as `renderUsage` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageSummary {
    /// `YYYY-MM`.
    pub billing_period: String,
    pub minutes_consumed: f64,
    pub minutes_reserved: f64,
    /// Of consumed + reserved, the minutes paid with credits (not the plan's).
    pub minutes_paid: f64,
    /// The plan's monthly limit; `None` = unlimited.
    pub minutes_limit: Option<f64>,
    /// `{"YYYY-MM-DD": minutes}`, consumed + reserved per day.
    pub daily_minutes: Value,
    /// The plan's daily cap; `None` = no daily cap.
    pub daily_limit: Option<f64>,
    pub plan: plan::Model,
    /// Prepaid credit balance.
    pub credits: i64,
}

/// The user's usage in the billing period of `now` (zeros when nothing was rendered yet).
///
/// Errors: `NOT_FOUND` when the user does not exist.
pub async fn usage_summary(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<UsageSummary> {
    let credits = credits::balance(db, user_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let plan = current_plan(db, user_id).await?;
    let period = billing_period(now);
    let usage = render_usage::Entity::find()
        .filter(render_usage::Column::UserId.eq(user_id))
        .filter(render_usage::Column::BillingPeriod.eq(period.as_str()))
        .one(db)
        .await?;
    let (consumed, reserved, paid, daily) = match usage {
        Some(u) => (
            shown_minutes(u.minutes_consumed),
            shown_minutes(u.minutes_reserved),
            shown_minutes(u.minutes_paid),
            Value::Object(
                daily_map(&u.daily_minutes)
                    .into_iter()
                    .map(|(day, minutes)| {
                        let shown = minutes
                            .as_f64()
                            .map(shown_minutes)
                            .and_then(serde_json::Number::from_f64)
                            .map_or(minutes, Value::Number);
                        (day, shown)
                    })
                    .collect(),
            ),
        ),
        None => (0.0, 0.0, 0.0, Value::Object(Map::new())),
    };
    Ok(UsageSummary {
        billing_period: period,
        minutes_consumed: consumed,
        minutes_reserved: reserved,
        minutes_paid: paid,
        minutes_limit: plan.monthly_minutes_limit,
        daily_minutes: daily,
        daily_limit: plan.daily_minutes_limit,
        plan,
        credits,
    })
}

/// Atomically checks the caller's plan (monthly and daily minute limits; no subscription = FREE)
/// against consumed + reserved minutes, and reserves `minutes`.
///
/// Past the plan's limit, credits pay: one credit per *started* minute of the overflow (the
/// larger of the daily and the monthly overflow), deducted from `users.credits` with a ledger
/// row (negative delta, reason [`REASON_OVERAGE`], `job_id`). Credits are charged on this
/// estimate once; [`settle`] never charges or refunds the difference to the actual duration.
///
/// `job_id`, when given, must name a job row that already exists in `txn` (the ledger has a
/// foreign key to `jobs`).
///
/// Runs inside the caller's transaction, which must come from
/// [`crate::jobs::queue::begin_write`] (see the module docs for why that makes it race-free).
/// On error nothing has been written that the caller's rollback does not undo; the credit
/// deduction and ledger row in particular are only written when the reservation succeeds.
///
/// Errors: `QUOTA_EXCEEDED` naming the limit (daily or monthly), what is left of it and how
/// many credits the overflow would take; `BAD_USER_INPUT` (`minutes`) for a negative or
/// non-finite estimate.
pub async fn reserve(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    minutes: f64,
    job_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<Reservation> {
    if !minutes.is_finite() || minutes < 0.0 {
        return Err(AppError::bad_input(
            "minutes",
            "must be a finite, non-negative number of minutes",
        ));
    }
    let period = billing_period(now);
    let day = billing_day(now);
    // The plan is read once the usage row is locked: a plan change waits for that lock (see
    // `set_user_plan`), so it either landed before and is seen here, or comes after.
    let usage = lock_usage(txn, user_id, &period, None, now).await?;
    let plan = current_plan(txn, user_id).await?;

    let daily_used = daily_value(&usage.daily_minutes, &day);
    let monthly_used = plan_minutes(&usage);
    let daily_over = overflow(daily_used, minutes, plan.daily_minutes_limit);
    let monthly_over = overflow(monthly_used, minutes, plan.monthly_minutes_limit);
    let over = daily_over.max(monthly_over);
    let credits = credits_for(over);

    if credits > 0
        && credits::apply(txn, user_id, -credits, REASON_OVERAGE, job_id)
            .await?
            .is_none()
    {
        let balance = credits::balance(txn, user_id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        let (scope, limit, used) = match (plan.daily_minutes_limit, plan.monthly_minutes_limit) {
            (Some(limit), _) if daily_over >= monthly_over => (Scope::Daily, limit, daily_used),
            (_, Some(limit)) => (Scope::Monthly, limit, monthly_used),
            // Unreachable in practice: an overflow needs a limit. Say something sensible anyway.
            (Some(limit), None) => (Scope::Daily, limit, daily_used),
            (None, None) => (Scope::Monthly, 0.0, monthly_used),
        };
        return Err(AppError::QuotaExceeded(quota_message(&QuotaShortfall {
            scope,
            plan: &plan.name,
            limit,
            used,
            minutes,
            over,
            credits,
            balance,
        })));
    }

    let mut active: render_usage::ActiveModel = usage.clone().into();
    active.minutes_reserved = Set(stored_minutes(usage.minutes_reserved + minutes));
    if over > 0.0 {
        active.minutes_paid = Set(stored_minutes(usage.minutes_paid + over));
    }
    active.minutes_limit = Set(plan.monthly_minutes_limit);
    active.daily_minutes = Set(add_daily(&usage.daily_minutes, &day, minutes));
    active.last_updated_at = Set(now);
    active.update(txn).await?;

    Ok(Reservation {
        user_id,
        billing_period: period,
        day,
        minutes,
        credits,
        paid_minutes: if credits > 0 { over } else { 0.0 },
    })
}

/// The render finished: turns the reservation into consumption. `minutes_consumed` grows by
/// `actual_minutes` (the real output duration / 60), `minutes_reserved` shrinks by the
/// reservation, and the day's entry moves from the estimate to the actual minutes.
///
/// An invalid `actual_minutes` (negative, NaN) is a bug upstream; it is logged and the estimate
/// is charged instead, so that finishing the job never fails because of billing.
pub async fn settle(
    txn: &DatabaseTransaction,
    reservation: &Reservation,
    actual_minutes: f64,
) -> AppResult<()> {
    let actual = if actual_minutes.is_finite() && actual_minutes >= 0.0 {
        actual_minutes
    } else {
        tracing::warn!(
            actual_minutes,
            estimate = reservation.minutes,
            user_id = %reservation.user_id,
            "invalid actual render minutes; charging the estimate"
        );
        reservation.minutes
    };
    let now = Utc::now();
    let usage = lock_reserved_usage(txn, reservation, now).await?;
    let mut active: render_usage::ActiveModel = usage.clone().into();
    active.minutes_consumed = Set(stored_minutes(usage.minutes_consumed + actual));
    active.minutes_reserved = Set(stored_minutes(usage.minutes_reserved - reservation.minutes));
    // Paid for on the estimate (credits are not refunded for a shorter render), but never
    // more minutes paid than the render took.
    if reservation.paid_minutes > actual {
        active.minutes_paid = Set(stored_minutes(
            usage.minutes_paid - (reservation.paid_minutes - actual),
        ));
    }
    active.daily_minutes = Set(add_daily(
        &usage.daily_minutes,
        &reservation.day,
        actual - reservation.minutes,
    ));
    active.last_updated_at = Set(now);
    active.update(txn).await?;
    Ok(())
}

/// The render failed or was cancelled: gives the reserved minutes back (monthly and daily) and
/// refunds the credits the reservation spent, with a ledger row (positive delta, reason
/// [`REASON_REFUND`], `job_id`).
pub async fn release(
    txn: &DatabaseTransaction,
    reservation: &Reservation,
    job_id: Option<Uuid>,
) -> AppResult<()> {
    let now = Utc::now();
    let usage = lock_reserved_usage(txn, reservation, now).await?;
    let mut active: render_usage::ActiveModel = usage.clone().into();
    active.minutes_reserved = Set(stored_minutes(usage.minutes_reserved - reservation.minutes));
    if reservation.paid_minutes > 0.0 {
        active.minutes_paid = Set(stored_minutes(
            usage.minutes_paid - reservation.paid_minutes,
        ));
    }
    active.daily_minutes = Set(add_daily(
        &usage.daily_minutes,
        &reservation.day,
        -reservation.minutes,
    ));
    active.last_updated_at = Set(now);
    active.update(txn).await?;
    if reservation.credits > 0 {
        credits::apply(
            txn,
            reservation.user_id,
            reservation.credits,
            REASON_REFUND,
            job_id,
        )
        .await?
        .ok_or(AppError::NotFound("user"))?;
    }
    Ok(())
}

/// Makes sure the usage row of `(user_id, period)` exists and locks it for the rest of the
/// transaction (`FOR UPDATE` on PostgreSQL; SQLite ignores the clause and relies on the
/// transaction holding the database's write lock).
pub(super) async fn lock_usage(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    period: &str,
    minutes_limit: Option<f64>,
    now: DateTime<Utc>,
) -> AppResult<render_usage::Model> {
    render_usage::Entity::insert(render_usage::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        billing_period: Set(period.to_owned()),
        minutes_consumed: Set(0.0),
        minutes_reserved: Set(0.0),
        minutes_paid: Set(0.0),
        minutes_limit: Set(minutes_limit),
        daily_minutes: Set(Value::Object(Map::new())),
        last_updated_at: Set(now),
    })
    .on_conflict_do_nothing_on([
        render_usage::Column::UserId,
        render_usage::Column::BillingPeriod,
    ])
    .exec_without_returning(txn)
    .await?;
    render_usage::Entity::find()
        .filter(render_usage::Column::UserId.eq(user_id))
        .filter(render_usage::Column::BillingPeriod.eq(period))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| AppError::internal("billing", "usage row missing after upsert"))
}

/// The locked usage row a reservation was made in. It normally exists (the reservation created
/// it); if it was removed meanwhile it is recreated with the current plan's limit so the
/// settlement is still recorded.
async fn lock_reserved_usage(
    txn: &DatabaseTransaction,
    reservation: &Reservation,
    now: DateTime<Utc>,
) -> AppResult<render_usage::Model> {
    let existing = render_usage::Entity::find()
        .filter(render_usage::Column::UserId.eq(reservation.user_id))
        .filter(render_usage::Column::BillingPeriod.eq(reservation.billing_period.as_str()))
        .lock_exclusive()
        .one(txn)
        .await?;
    match existing {
        Some(row) => Ok(row),
        None => {
            let plan = current_plan(txn, reservation.user_id).await?;
            lock_usage(
                txn,
                reservation.user_id,
                &reservation.billing_period,
                plan.monthly_minutes_limit,
                now,
            )
            .await
        }
    }
}

/// The minutes of `usage` that count against the plan's monthly limit: those not paid with
/// credits.
fn plan_minutes(usage: &render_usage::Model) -> f64 {
    (usage.minutes_consumed + usage.minutes_reserved - usage.minutes_paid).max(0.0)
}

/// How much of `minutes` lies past `limit` when `used` is already spent (0 without a limit).
/// Capped at `minutes`: once past the limit a render pays for itself, not for earlier overflow.
fn overflow(used: f64, minutes: f64, limit: Option<f64>) -> f64 {
    let Some(limit) = limit else {
        return 0.0;
    };
    let over = used + minutes - limit;
    if over <= EPSILON {
        0.0
    } else {
        over.min(minutes)
    }
}

/// Credits for an overflow: one per started minute (`ceil`), after forgiving float noise so
/// that an overflow of exactly 1.0000000001 minutes costs 1 credit, not 2.
fn credits_for(overflow: f64) -> i64 {
    if overflow <= EPSILON {
        0
    } else {
        // Saturating cast; an overflow past i64::MAX minutes is refused for lack of credits.
        (overflow - EPSILON).ceil() as i64
    }
}

/// A counter's new value as stored: at full precision, with what is within float noise of
/// zero (or below it) as zero. Not rounded: most output lengths are no whole number of
/// millionths of a minute (a second is 1/60), and a counter rounded at every change drifts by
/// up to half a millionth per render, past [`EPSILON`] after three, so that a render fitting
/// the limit exactly would be charged a credit. Float noise at full precision stays far below
/// it. Shown rounded ([`shown_minutes`]).
fn stored_minutes(minutes: f64) -> f64 {
    if minutes < EPSILON / 2.0 {
        0.0
    } else {
        minutes
    }
}

/// Minutes as the API shows them: to the resolution of [`EPSILON`] (a millionth of a minute),
/// so that they never show float noise like `0.30000000000000004`. Dividing by the exact `1e6`
/// (rather than multiplying by `1e-6`) gives the double nearest to the decimal value, so `2.8`
/// stays `2.8`.
fn shown_minutes(minutes: f64) -> f64 {
    const SCALE: f64 = 1e6;
    let rounded = (minutes * SCALE).round() / SCALE;
    if rounded <= 0.0 { 0.0 } else { rounded }
}

/// The per-day object of a usage row. Anything that is not a JSON object (a hand-edited row)
/// reads as empty rather than failing every render of the user.
fn daily_map(daily: &Value) -> Map<String, Value> {
    match daily {
        Value::Object(map) => map.clone(),
        Value::String(text) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

/// Minutes recorded for `day`.
fn daily_value(daily: &Value, day: &str) -> f64 {
    daily_map(daily)
        .get(day)
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// `daily` with `delta` added to `day`; a day that drops to zero is removed.
fn add_daily(daily: &Value, day: &str, delta: f64) -> Value {
    let mut map = daily_map(daily);
    let current = map.get(day).and_then(Value::as_f64).unwrap_or(0.0);
    let next = stored_minutes(current + delta);
    match serde_json::Number::from_f64(next) {
        Some(number) if next > 0.0 => {
            map.insert(day.to_owned(), Value::Number(number));
        }
        _ => {
            map.remove(day);
        }
    }
    Value::Object(map)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Daily,
    Monthly,
}

/// Why a reservation was refused, for the error message.
struct QuotaShortfall<'a> {
    scope: Scope,
    plan: &'a str,
    limit: f64,
    used: f64,
    minutes: f64,
    over: f64,
    credits: i64,
    balance: i64,
}

/// The `QUOTA_EXCEEDED` message: which limit, what is left of it, and what credits would fix it,
/// so the client can tell the user exactly what to do.
fn quota_message(s: &QuotaShortfall<'_>) -> String {
    let (name, when) = match s.scope {
        Scope::Daily => ("daily", "today"),
        Scope::Monthly => ("monthly", "this month"),
    };
    let left = (s.limit - s.used).max(0.0);
    let plural = if s.credits == 1 { "" } else { "s" };
    format!(
        "{name} render limit reached: {left} of {limit} minutes left {when} on the {plan} plan, \
         and this render needs {minutes}; the {over} minutes over the limit need {credits} \
         credit{plural} (1 per started minute), but the balance is {balance}",
        left = fmt_minutes(left),
        limit = fmt_minutes(s.limit),
        plan = s.plan,
        minutes = fmt_minutes(s.minutes),
        over = fmt_minutes(s.over),
        credits = s.credits,
        balance = s.balance,
    )
}

/// Minutes for humans: at most two decimals, no trailing zeros (`5`, `0.5`, `1.25`).
fn fmt_minutes(minutes: f64) -> String {
    let text = format!("{minutes:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approx(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn overflow_is_the_part_past_the_limit_capped_at_the_render() {
        assert!(approx(overflow(4.5, 1.5, Some(5.0)), 1.0));
        assert!(approx(overflow(3.5, 1.5, Some(5.0)), 0.0));
        assert!(approx(overflow(7.0, 1.5, Some(5.0)), 1.5));
        assert!(approx(overflow(100.0, 1.5, None), 0.0));
        // Float noise on an exact fit is no overflow.
        assert!(approx(overflow(0.1 + 0.2, 4.7, Some(5.0)), 0.0));
    }

    #[test]
    fn credits_are_per_started_minute() {
        assert_eq!(credits_for(0.0), 0);
        assert_eq!(credits_for(0.25), 1);
        assert_eq!(credits_for(1.0), 1);
        assert_eq!(credits_for(1.0 + 1e-12), 1);
        assert_eq!(credits_for(1.5), 2);
    }

    #[test]
    fn daily_entries_add_and_drop_at_zero() {
        let daily = serde_json::json!({"2026-04-02": 2.5});
        let added = add_daily(&daily, "2026-04-02", 0.1 + 0.2);
        assert!(approx(daily_value(&added, "2026-04-02"), 2.8), "{added}");
        assert_eq!(shown_minutes(daily_value(&added, "2026-04-02")), 2.8);
        let other = add_daily(&added, "2026-04-03", 1.0);
        assert!(approx(daily_value(&other, "2026-04-03"), 1.0), "{other}");
        let dropped = add_daily(&other, "2026-04-03", -1.0);
        assert_eq!(dropped.as_object().map(|days| days.len()), Some(1));
        // 0.1 + 0.2 - 0.3 is 5.55e-17, not 0.
        let tenth = add_daily(&Value::Null, "2026-04-04", 0.1);
        let tenths = add_daily(&tenth, "2026-04-04", 0.2);
        let noise = add_daily(&tenths, "2026-04-04", -0.3);
        assert_eq!(noise, serde_json::json!({}), "float noise is no minutes");
        assert!(approx(daily_value(&dropped, "2026-04-02"), 2.8));
        assert!(approx(daily_value(&Value::Null, "2026-04-02"), 0.0));
    }

    #[test]
    fn minutes_print_without_noise() {
        assert_eq!(fmt_minutes(5.0), "5");
        assert_eq!(fmt_minutes(0.5), "0.5");
        assert_eq!(fmt_minutes(1.25), "1.25");
        assert_eq!(fmt_minutes(0.30000000000000004), "0.3");
    }
}
