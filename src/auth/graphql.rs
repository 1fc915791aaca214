//! GraphQL surface of accounts and sessions.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{Authenticated, Registration};
use crate::{
    error::AppResult,
    graphql::{client_info, state},
    users::User,
};

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
            user: User(a.user),
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
}
