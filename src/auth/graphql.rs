//! GraphQL surface of accounts and sessions.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::session;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{Authenticated, Registration};
use crate::{
    error::{AppError, AppResult},
    graphql::{client_info, parse_id, state, viewer},
    users::User,
};

/// A signed-in device: one per `login`/`register`, renewed by `refreshSession`.
#[derive(SimpleObject)]
pub struct Session {
    pub id: ID,
    /// The `User-Agent` it signed in with.
    pub user_agent: Option<String>,
    /// The address it signed in from.
    pub ip_address: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it last renewed its access token.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// When it ends unless renewed by signing in again.
    pub expires_at: DateTime<Utc>,
    /// Whether this is the session of the request's access token.
    pub current: bool,
}

/// The live sessions of `user_id`, newest first; `current` marks `current_session`'s.
/// `ttl_days` is `REELGRAPH_SESSION_TTL_DAYS` (see [`super::session_end`]).
pub async fn live_sessions(
    db: &sea_orm::DatabaseConnection,
    ttl_days: u64,
    user_id: uuid::Uuid,
    current_session: Option<uuid::Uuid>,
) -> AppResult<Vec<Session>> {
    let now = Utc::now();
    Ok(session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .filter(session::Column::CreatedAt.gt(now - super::session_ttl(ttl_days)))
        .order_by_desc(session::Column::CreatedAt)
        .order_by_desc(session::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|s| Session {
            expires_at: super::session_end(ttl_days, &s),
            id: s.id.into(),
            current: Some(s.id) == current_session,
            user_agent: s.user_agent,
            ip_address: s.ip_address,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
        })
        .collect())
}

/// Credentials returned by `register`, `login` and `refreshSession`.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Bearer token for `Authorization: Bearer …`; short-lived.
    pub access_token: String,
    /// Single-use token for `refreshSession`; rotates on every use.
    pub refresh_token: String,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    pub user: User,
}

impl From<Authenticated> for AuthPayload {
    fn from(a: Authenticated) -> Self {
        Self {
            access_token: a.access_token,
            refresh_token: a.refresh_token,
            expires_at: a.expires_at,
            user: User::signed_in(a.user, a.session_id),
        }
    }
}

#[derive(InputObject)]
pub struct RegisterInput {
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
    /// At most 50 characters.
    pub display_name: Option<String>,
    /// Required when the server runs invite-only.
    pub invite_code: Option<String>,
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates an account and signs it in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> AppResult<AuthPayload> {
        let registration = Registration {
            email: input.email,
            password: input.password,
            display_name: input.display_name,
            invite_code: input.invite_code,
        };
        super::register(state(ctx)?, registration, &client_info(ctx))
            .await
            .map(Into::into)
    }

    /// Signs in with email and password.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> AppResult<AuthPayload> {
        super::login(state(ctx)?, &email, password, &client_info(ctx))
            .await
            .map(Into::into)
    }

    /// Exchanges a refresh token for a new access token and a new refresh token. A refresh
    /// token that was already used revokes its whole session.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> AppResult<AuthPayload> {
        super::refresh(state(ctx)?, &refresh_token, &client_info(ctx))
            .await
            .map(Into::into)
    }

    /// Ends the session of a refresh token. True when a live session was ended.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> AppResult<bool> {
        super::logout(state(ctx)?, &refresh_token).await
    }

    /// Changes your password. Every session of the account ends (other devices must sign in
    /// again with the new password; their access tokens stop working at once),
    /// and a new session starts for you: use the returned tokens. A wrong `currentPassword`
    /// is `BAD_USER_INPUT`, throttled like sign-in.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> AppResult<AuthPayload> {
        let me = viewer(ctx)?.require_user()?.id;
        super::change_password(
            state(ctx)?,
            me,
            current_password,
            new_password,
            &client_info(ctx),
        )
        .await
        .map(Into::into)
    }

    /// Sets a new password with a reset token an administrator issued
    /// (`createPasswordReset`). Every session of the account ends and a new one starts: use
    /// the returned tokens. A token that is unknown, used or expired is `BAD_USER_INPUT` on
    /// `token`; a password the policy refuses is `BAD_USER_INPUT` on `newPassword` and leaves
    /// the token unused. Throttled like sign-in.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password: String,
    ) -> AppResult<AuthPayload> {
        super::reset::reset_password(state(ctx)?, &token, new_password, &client_info(ctx))
            .await
            .map(Into::into)
    }

    /// Ends one of your sessions (see `me.sessions`), e.g. a lost device: its refresh token
    /// stops working at once. True when it was live; `NOT_FOUND` when it is not yours.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let me = viewer(ctx)?.require_user()?.id;
        let id = parse_id("id", &id)?;
        let db = &state(ctx)?.db;
        let found = session::Entity::find_by_id(id)
            .filter(session::Column::UserId.eq(me))
            .one(db)
            .await?;
        if found.is_none() {
            return Err(AppError::NotFound("session"));
        }
        let ended = super::end_sessions(db, Some(me), Some(id), "revoked by its user").await?;
        super::sessions_ended(state(ctx)?, &ended).await;
        Ok(!ended.is_empty())
    }

    /// Ends every session of your account, this one included; returns how many were live.
    async fn logout_everywhere(&self, ctx: &Context<'_>) -> AppResult<i32> {
        let me = viewer(ctx)?.require_user()?.id;
        let app = state(ctx)?;
        let ended = super::end_sessions(&app.db, Some(me), None, "signed out everywhere").await?;
        super::sessions_ended(app, &ended).await;
        Ok(i32::try_from(ended.len()).unwrap_or(i32::MAX))
    }
}
