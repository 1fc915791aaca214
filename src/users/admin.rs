//! Accounts as administrators manage them: the user directory (`users`) and `updateUser`
//! (role, active). Taking rights away ends the account's sessions at once (their access
//! tokens are refused on every server, open sockets close with 4403); granting them applies
//! from the account's next token (`refreshSession`, or signing in).

use async_graphql::{Context, InputObject, MaybeUndefined};
use chrono::Utc;
use entity::{UserRole, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use crate::{
    db::RowLock,
    error::{AppError, AppResult},
    graphql::{
        contains_pattern,
        inputs::given,
        pagination::{PageArgs, RelayConnection, TotalCount, fetch_page},
        state, viewer,
    },
    jobs::queue,
};

use super::User;

/// What `updateUser` changes; omitted fields stay as they are (`null` is refused).
#[derive(InputObject, Default)]
pub struct UpdateUserInput {
    /// The account's role. Taking `ADMIN` away ends its sessions; other changes apply from its
    /// next access token.
    pub role: MaybeUndefined<UserRole>,
    /// `false` disables the account: it cannot sign in, and its sessions end at once. `true`
    /// lets it sign in again.
    pub is_active: MaybeUndefined<bool>,
}

/// The filters of `users`.
pub struct UserFilter {
    pub search: Option<String>,
    pub role: Option<UserRole>,
    pub active: Option<bool>,
}

/// The user directory, newest first. Administrators only.
pub async fn users(
    ctx: &Context<'_>,
    args: PageArgs,
    filter: UserFilter,
) -> AppResult<RelayConnection<User>> {
    viewer(ctx)?.require_admin()?;
    let db = &state(ctx)?.db;
    let backend = db.get_database_backend();
    let mut condition = Condition::all();
    if let Some(pattern) = contains_pattern("search", filter.search.as_deref())? {
        let mut any = Condition::any()
            .add(pattern.matches(backend, (user::Entity, user::Column::Email)))
            .add(pattern.matches(backend, (user::Entity, user::Column::DisplayName)));
        // Emails are kept in NFC (`auth::canonical_email`): searched so too.
        let canonical = filter.search.as_deref().map(crate::auth::canonical_email);
        if let Some(email) = contains_pattern("search", canonical.as_deref())? {
            any = any.add(email.matches(backend, (user::Entity, user::Column::Email)));
        }
        condition = condition.add(any);
    }
    if let Some(role) = filter.role {
        condition = condition.add(user::Column::Role.eq(role));
    }
    if let Some(active) = filter.active {
        condition = condition.add(user::Column::IsActive.eq(active));
    }
    let select = user::Entity::find().filter(condition);
    let total = TotalCount::of(db, select.clone());
    let page = fetch_page(db, select, user::Column::Id, true, args).await?;
    Ok(page.into_connection(|u| u.id, User::new, total))
}

/// Changes another account's role or whether it may sign in. Administrators only; an
/// administrator cannot change their own account this way (so one always remains).
pub async fn update_user(ctx: &Context<'_>, id: Uuid, input: UpdateUserInput) -> AppResult<User> {
    let me = viewer(ctx)?.require_admin()?.id;
    let role = given("input.role", input.role)?;
    let is_active = given("input.isActive", input.is_active)?;
    if id == me {
        let field = if role.is_some() {
            "input.role"
        } else {
            "input.isActive"
        };
        return Err(AppError::bad_input(
            field,
            "you cannot change your own account's role or status; ask another administrator",
        ));
    }
    let app = state(ctx)?;
    let db = &app.db;
    // Both rows locked in id order, so that two administrators demoting each other at once
    // are serialised (the second finds it no longer may) and never leave none.
    let txn = queue::begin_write(db).await?;
    let rows = user::Entity::find()
        .filter(user::Column::Id.is_in([me, id]))
        .order_by_asc(user::Column::Id)
        .for_update(&txn)
        .all(&txn)
        .await?;
    let still_admin = rows
        .iter()
        .any(|u| u.id == me && u.is_active && u.role == UserRole::Admin);
    if !still_admin {
        return Err(AppError::forbidden("only administrators may do this"));
    }
    let target = rows
        .into_iter()
        .find(|u| u.id == id)
        .ok_or(AppError::NotFound("user"))?;
    let demoted =
        role.is_some_and(|role| target.role == UserRole::Admin && role != UserRole::Admin);
    let disabled = is_active == Some(false) && target.is_active;
    let mut row: user::ActiveModel = target.into();
    if let Some(role) = role {
        row.role = Set(role);
    }
    if let Some(active) = is_active {
        row.is_active = Set(active);
    }
    row.updated_at = Set(Utc::now());
    let updated = row.update(&txn).await?;
    if disabled {
        // A reset token issued before would bring the account back into use once enabled.
        crate::auth::reset::set_aside(&txn, id, Utc::now()).await?;
    }
    if demoted || disabled {
        crate::auth::reset::set_aside_issued_by(&txn, id, Utc::now()).await?;
    }
    let ended = if demoted || disabled {
        let reason = if disabled {
            "account disabled"
        } else {
            "role changed"
        };
        crate::auth::end_sessions(&txn, Some(id), None, reason).await?
    } else {
        Vec::new()
    };
    txn.commit().await?;
    crate::auth::sessions_ended(app, &ended).await;
    tracing::info!(
        admin = %me,
        user = %id,
        role = ?updated.role,
        active = updated.is_active,
        sessions_ended = ended.len(),
        "account changed by an administrator"
    );
    Ok(User::new(updated))
}
