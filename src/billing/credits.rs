//! Prepaid credits: the balance in `users.credits` and its append-only `credit_ledger`.
//!
//! Every change goes through `apply` (crate-internal), which moves the balance with one conditional
//! `UPDATE … SET credits = credits + delta WHERE credits + delta >= 0 RETURNING credits` and
//! writes the ledger row with the balance that statement returned. The check and the change
//! are one statement, so concurrent spenders can never take the balance below zero, and the
//! ledger's `balance_after` is always the balance that change produced.

use chrono::Utc;
use entity::{JobStatus, credit_ledger_entry, job, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, QueryTrait, Set,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use crate::{
    db::RowLock,
    error::{AppError, AppResult},
    jobs::queue::begin_write,
};

/// Ledger reason of credits spent on render minutes past the plan's limit.
pub const REASON_OVERAGE: &str = "render overage";
/// Ledger reason of credits given back when a paid render fails or is cancelled.
pub const REASON_REFUND: &str = "render refund";

/// Largest single grant; keeps a typo from minting an absurd balance (or overflowing BIGINT).
pub const MAX_GRANT: i64 = 1_000_000_000;
/// Largest balance a grant may leave: balances are GraphQL `Int`s (32-bit), and clients that
/// read them as such (Apollo Kotlin and iOS, graphql-java) refuse a whole answer holding more.
pub const MAX_BALANCE: i64 = i32::MAX as i64;
/// Longest ledger reason an administrator may write.
pub const MAX_REASON_CHARS: usize = 200;

/// Adds `delta` (negative = spend) to the user's balance and writes the ledger row, inside the
/// caller's transaction. Returns the new balance, or `None` when the user does not exist or the
/// balance would go below zero — in which case nothing was written.
///
/// The row is stamped with the wall clock, not with the `now` a reservation is billed at, so
/// the ledger's time order is the order in which balances changed.
pub(crate) async fn apply(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    delta: i64,
    reason: &str,
    job_id: Option<Uuid>,
) -> AppResult<Option<i64>> {
    apply_keyed(db, user_id, delta, reason, job_id, None, None).await
}

/// [`apply`], with the grant's idempotency key kept on the ledger row, and nothing written
/// when the balance would pass `ceiling`.
async fn apply_keyed(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    delta: i64,
    reason: &str,
    job_id: Option<Uuid>,
    idempotency_key: Option<&str>,
    ceiling: Option<i64>,
) -> AppResult<Option<i64>> {
    let now = Utc::now();
    let mut update = user::Entity::update_many();
    if let Some(ceiling) = ceiling {
        update = update.filter(Expr::col(user::Column::Credits).add(delta).lte(ceiling));
    }
    let updated = update
        .col_expr(
            user::Column::Credits,
            Expr::col(user::Column::Credits).add(delta),
        )
        .col_expr(user::Column::UpdatedAt, Expr::val(now))
        .filter(user::Column::Id.eq(user_id))
        .filter(Expr::col(user::Column::Credits).add(delta).gte(0))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(None);
    }
    // Read back in the same transaction, not through `RETURNING` of the whole user row: on
    // SQLite that has, rarely and not yet explained, answered NULL for the columns a later
    // migration added, which failed the grant as INTERNAL (once in a full CI run).
    let Some(credits) = balance(db, user_id).await? else {
        return Ok(None);
    };
    credit_ledger_entry::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        delta: Set(delta),
        reason: Set(reason.to_owned()),
        job_id: Set(job_id),
        balance_after: Set(credits),
        created_at: Set(now),
        idempotency_key: Set(idempotency_key.map(str::to_owned)),
    }
    .insert(db)
    .await?;
    Ok(Some(credits))
}

/// The credits the user's unfinished jobs took and would give back if they failed or were
/// cancelled: each such job's overage charges net of its refunds (a retried render is charged
/// again after its refund).
async fn refundable(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<i64> {
    let unfinished = job::Entity::find()
        .select_only()
        .column(job::Column::Id)
        .filter(job::Column::Status.is_not_in([
            JobStatus::Done,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ]))
        .into_query();
    let deltas: Vec<i64> = credit_ledger_entry::Entity::find()
        .select_only()
        .column(credit_ledger_entry::Column::Delta)
        .filter(credit_ledger_entry::Column::UserId.eq(user_id))
        .filter(credit_ledger_entry::Column::Reason.is_in([REASON_OVERAGE, REASON_REFUND]))
        .filter(credit_ledger_entry::Column::JobId.in_subquery(unfinished))
        .into_tuple()
        .all(db)
        .await?;
    let owed: i64 = deltas.iter().map(|d| -d).sum();
    Ok(Ord::max(owed, 0))
}

/// The user's current balance (`None` when the user does not exist).
pub(crate) async fn balance(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Option<i64>> {
    Ok(user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .map(|u| u.credits))
}

/// Adds `credits` to a user's balance with a ledger row saying `reason`; returns the new
/// balance. Used by the `grantCredits` admin mutation (and by purchases, once they exist).
///
/// With an `idempotency_key`, the grant is made once per user and key: sent again, with the
/// same credits and reason, it is answered with the balance the first one left, and nothing
/// changes; with other credits or another reason it is a `CONFLICT`.
///
/// Errors: `BAD_USER_INPUT` on `credits` (not 1..=[`MAX_GRANT`], or the balance would pass
/// [`MAX_BALANCE`]), `reason` (blank or longer
/// than [`MAX_REASON_CHARS`]) or `idempotencyKey` (not 1–255 characters); `NOT_FOUND` when the
/// user does not exist.
pub async fn grant_credits(
    db: &DatabaseConnection,
    user_id: Uuid,
    credits: i64,
    reason: &str,
    idempotency_key: Option<&str>,
) -> AppResult<i64> {
    if !(1..=MAX_GRANT).contains(&credits) {
        return Err(AppError::bad_input(
            "credits",
            format!("must be between 1 and {MAX_GRANT}"),
        ));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::bad_input(
            "reason",
            format!("must be 1–{MAX_REASON_CHARS} characters"),
        ));
    }
    if let Some(key) = idempotency_key {
        crate::jobs::queue::check_idempotency_key("idempotencyKey", key)?;
    }
    let txn = begin_write(db).await?;
    // The user's row locked first (PostgreSQL; SQLite's write transaction holds the whole
    // database): grants with the same key queue here, and each later one sees the first; and a
    // render reserving or giving back credits waits, so the refunds counted below stay true.
    if user::Entity::find_by_id(user_id)
        .for_no_key_update(&txn)
        .one(&txn)
        .await?
        .is_none()
    {
        txn.rollback().await?;
        return Err(AppError::NotFound("user"));
    }
    if let Some(key) = idempotency_key {
        let earlier = credit_ledger_entry::Entity::find()
            .filter(credit_ledger_entry::Column::UserId.eq(user_id))
            .filter(credit_ledger_entry::Column::IdempotencyKey.eq(key))
            .one(&txn)
            .await?;
        if let Some(earlier) = earlier {
            txn.rollback().await?;
            if earlier.delta != credits || earlier.reason != reason {
                return Err(AppError::conflict(
                    Some("idempotencyKey"),
                    format!(
                        "this key already granted {} credits for \"{}\"; use a new key for \
                         another grant",
                        earlier.delta, earlier.reason
                    ),
                ));
            }
            return Ok(earlier.balance_after);
        }
    }
    // Room is left for what unfinished renders may still give back: a refund must not take
    // the balance past the cap either.
    let owed = refundable(&txn, user_id).await?;
    let granted = apply_keyed(
        &txn,
        user_id,
        credits,
        reason,
        None,
        idempotency_key,
        Some(MAX_BALANCE - owed),
    )
    .await?;
    let Some(balance) = granted else {
        let held = balance(&txn, user_id).await?;
        txn.rollback().await?;
        let held = held.ok_or(AppError::NotFound("user"))?;
        let owed = if owed > 0 {
            format!(", with {owed} credits that unfinished renders may give back,")
        } else {
            String::new()
        };
        return Err(AppError::bad_input(
            "credits",
            format!(
                "would take the balance ({held}){owed} past {MAX_BALANCE}, the most a balance \
                 may hold"
            ),
        ));
    };
    txn.commit().await?;
    Ok(balance)
}
