//! Password resets: a forgotten password (or an imported account whose owner never had one
//! here) is replaced with a one-time token. An administrator issues the token
//! (`createPasswordReset`, or `reelgraph admin reset-password` on the server) and hands it to
//! the account's owner by whatever channel the platform trusts; the owner sets a new password
//! with it (`resetPassword`), which ends every session of the account and starts one.
//!
//! Tokens are 256 random bits, stored as their SHA-256; each works once, for
//! [`RESET_TOKEN_TTL`]. Issuing a new one for an account sets the older ones aside, and so do
//! a password change (`changePassword`, or a reset) and disabling the account.

use chrono::{DateTime, Utc};
use entity::{password_reset, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, sea_query::Expr,
};
use uuid::Uuid;

use super::{Authenticated, end_sessions, finish, password, sessions_ended, start_session, tokens};
use crate::{
    access::ClientInfo,
    db::RowLock,
    error::{AppError, AppResult},
    jobs::queue::begin_write,
    state::AppState,
};

/// How long a reset token works.
pub const RESET_TOKEN_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A token just issued (shown once: only its hash is kept).
pub struct IssuedReset {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: user::Model,
}

/// Issues a reset token for `user_id` (NOT_FOUND when there is no such account), setting aside
/// the account's earlier unused ones. `created_by` is the issuing administrator: FORBIDDEN
/// when they are no longer an active one.
pub async fn issue(
    db: &DatabaseConnection,
    user_id: Uuid,
    created_by: Option<Uuid>,
) -> AppResult<IssuedReset> {
    let now = Utc::now();
    let txn = begin_write(db).await?;
    // The account's row and the issuer's locked first, in id order as `updateUser` takes
    // them (PostgreSQL; SQLite's writers are serialised): two issues at once for one account
    // run one after the other, and only the later token works; an issuer demoted meanwhile
    // (their tokens set aside by the demotion) issues none after it.
    let rows = user::Entity::find()
        .filter(user::Column::Id.is_in([Some(user_id), created_by].into_iter().flatten()))
        .order_by_asc(user::Column::Id)
        .for_update(&txn)
        .all(&txn)
        .await?;
    if let Some(issuer) = created_by {
        let still_admin = rows
            .iter()
            .any(|u| u.id == issuer && u.is_active && u.role == entity::UserRole::Admin);
        if !still_admin {
            txn.rollback().await?;
            return Err(AppError::forbidden("only administrators may do this"));
        }
    }
    let Some(user) = rows.into_iter().find(|u| u.id == user_id) else {
        txn.rollback().await?;
        return Err(AppError::NotFound("user"));
    };
    set_aside(&txn, user.id, now).await?;
    let (token, token_hash) = tokens::new_refresh_token();
    let expires_at = now + RESET_TOKEN_TTL;
    password_reset::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.id),
        token_hash: Set(token_hash),
        created_by: Set(created_by),
        created_at: Set(now),
        expires_at: Set(expires_at),
        used_at: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(IssuedReset {
        token,
        expires_at,
        user,
    })
}

/// Makes the account's unused reset tokens unusable (marked used at `now`): a newer token
/// replaces them, and a password change or a disabled account ends what they were for.
pub async fn set_aside(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    password_reset::Entity::update_many()
        .col_expr(password_reset::Column::UsedAt, Expr::val(now))
        .filter(password_reset::Column::UserId.eq(user_id))
        .filter(password_reset::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Sets aside the unused tokens `issuer` gave out: an administrator demoted or disabled could
/// otherwise still use one (issued for another administrator, say) to take over that account,
/// and with it the rights taken away.
pub async fn set_aside_issued_by(
    db: &impl ConnectionTrait,
    issuer: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    password_reset::Entity::update_many()
        .col_expr(password_reset::Column::UsedAt, Expr::val(now))
        .filter(password_reset::Column::CreatedBy.eq(issuer))
        .filter(password_reset::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Sets the account's new password with a reset token, ends every session of the account and
/// starts one for the caller. A token that is unknown, used, set aside or expired, or whose
/// account is disabled, is `BAD_USER_INPUT` on `token` (one message for all, so a guess
/// learns nothing); a password the policy refuses is `BAD_USER_INPUT` on `newPassword`, and
/// leaves the token unused. Attempts are throttled per client address like sign-in.
pub async fn reset_password(
    state: &AppState,
    token: &str,
    new_password: String,
    client: &ClientInfo,
) -> AppResult<Authenticated> {
    password::validate_password("newPassword", &new_password)?;
    state.sign_in.reset(client.ip.as_deref())?;
    let invalid = || AppError::bad_input("token", "this reset token is invalid, used or expired");
    let token_hash = tokens::hash_refresh_token(token.trim());
    // Hashed before the transaction, which then holds its locks only for the writes.
    let hash = password::hash(new_password).await?;
    let now = Utc::now();
    // Whose token it is, read first, so that the account's row is locked before its reset
    // rows (the order `changePassword` and `updateUser` take them in: no deadlock).
    let Some(owner) = password_reset::Entity::find()
        .filter(password_reset::Column::TokenHash.eq(token_hash.clone()))
        .one(&state.db)
        .await?
        .map(|reset| reset.user_id)
    else {
        return Err(invalid());
    };
    let txn = begin_write(&state.db).await?;
    let found = user::Entity::find_by_id(owner)
        .for_update(&txn)
        .one(&txn)
        .await?;
    let Some(user) = found.filter(|u| u.is_active) else {
        txn.rollback().await?;
        return Err(invalid());
    };
    // The claim is one conditional statement: of two requests with the same token, one wins.
    let claimed = password_reset::Entity::update_many()
        .col_expr(password_reset::Column::UsedAt, Expr::val(now))
        .filter(password_reset::Column::TokenHash.eq(token_hash))
        .filter(password_reset::Column::UserId.eq(owner))
        .filter(password_reset::Column::UsedAt.is_null())
        .filter(password_reset::Column::ExpiresAt.gt(now))
        .exec_with_returning(&txn)
        .await?;
    if claimed.is_empty() {
        txn.rollback().await?;
        return Err(invalid());
    }
    let mut row: user::ActiveModel = user.into();
    row.password_hash = Set(hash);
    row.updated_at = Set(now);
    let user = row.update(&txn).await?;
    set_aside(&txn, user.id, now).await?;
    let ended = end_sessions(&txn, Some(user.id), None, "password reset").await?;
    let session = start_session(&txn, state, user.id, client, now).await?;
    txn.commit().await?;
    sessions_ended(state, &ended).await;
    tracing::info!(user_id = %user.id, "password reset");
    finish(state, user, session)
}
