//! Users as the API shows them, `me`, invite codes, and making administrators.

pub mod admin;
pub mod import;

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, Utc};
use entity::{DigestFrequency, UserRole, invite_code, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::{
    auth::{find_account, new_email, normalize_display_name, normalize_email, password},
    creators::Creator,
    db::RowLock,
    error::{AppError, AppResult, unique_violation},
    graphql::{
        inputs::given,
        loaders,
        loaders::{MemberCreators, UserById},
        pagination::{PageArgs, RelayConnection, TotalCount, fetch_page},
        state, viewer,
    },
};

/// An account.
pub struct User(pub user::Model, SignedIn);

/// Who reads a user's own fields (`credits`, `sessions`, `webhookSecret`, …) besides the
/// caller: the account itself, in the answer of the sign-in that opened this session. A
/// `login` is sent without a token (or with another account's), and its answer would
/// otherwise show the account it signed into as a stranger sees it: its own fields null, or
/// the caller's old session as `current`.
#[derive(Clone, Copy, Default)]
pub struct SignedIn(Option<Uuid>);

impl User {
    pub fn new(row: user::Model) -> Self {
        Self(row, SignedIn::default())
    }

    /// The account a sign-in just opened `session_id` for.
    pub fn signed_in(row: user::Model, session_id: Uuid) -> Self {
        Self(row, SignedIn(Some(session_id)))
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// The key that signs the webhooks of your renders (`callbackUrl`): check that a `v1` of
    /// `Reelgraph-Signature` is the hex HMAC-SHA256 of `"<t>.<body>"` under it (after
    /// `rotateWebhookSecret` there is a second `v1` for a while, under the previous secret).
    /// Only for yourself; null on other users.
    async fn webhook_secret(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        if self.own_session(ctx)?.is_none() {
            return Ok(None);
        }
        let state = crate::graphql::state(ctx)?;
        let stored = loaders(ctx)?
            .load_one(crate::graphql::loaders::StoredWebhookSecret(self.0.id))
            .await?;
        if let Some(stored) = stored {
            return Ok(Some(stored));
        }
        // Stored as it is shown: a receiver configured with it keeps working when the
        // server's key (`JWT_SECRET`), from which it is derived, changes later.
        crate::jobs::webhooks::pin_secret(&state.db, &state.tokens, self.0.id).await?;
        // What is stored now: a rotation that committed meanwhile stored its own.
        let stored = entity::webhook_secret::Entity::find_by_id(self.0.id)
            .one(&state.db)
            .await?
            .map(|row| row.secret);
        Ok(Some(stored.unwrap_or_else(|| {
            crate::jobs::webhooks::derived_secret(&state.tokens, self.0.id)
        })))
    }
    async fn display_name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }
    async fn avatar_url(&self) -> Option<&str> {
        self.0.avatar_url.as_deref()
    }
    async fn role(&self) -> UserRole {
        self.0.role
    }
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    async fn is_verified(&self) -> bool {
        self.0.is_verified
    }
    /// Render credits left; visible to the user and administrators only.
    async fn credits(&self, ctx: &Context<'_>) -> AppResult<Option<i64>> {
        Ok(self.own_or_admin(ctx)?.then_some(self.0.credits))
    }
    /// Whether the user has finished the client's onboarding; for the user and
    /// administrators (null otherwise). Set it with `updateMe`.
    async fn onboarding_completed(&self, ctx: &Context<'_>) -> AppResult<Option<bool>> {
        Ok(self
            .own_or_admin(ctx)?
            .then_some(self.0.onboarding_completed))
    }
    /// What e-mail the user wants; for the user and administrators (null otherwise). Set
    /// them with `updateMe`.
    async fn notification_preferences(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Option<NotificationPreferences>> {
        Ok(self.own_or_admin(ctx)?.then_some(NotificationPreferences {
            digest_enabled: self.0.digest_enabled,
            digest_frequency: self.0.digest_frequency,
        }))
    }
    /// Your signed-in devices, newest first (null on other users).
    async fn sessions(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Option<Vec<crate::auth::graphql::Session>>> {
        let Some(current) = self.own_session(ctx)? else {
            return Ok(None);
        };
        crate::graphql::budget::take(ctx, 0)?;
        let state = state(ctx)?;
        Ok(Some(crate::graphql::budget::counted(
            ctx,
            crate::auth::graphql::live_sessions(
                &state.db,
                state.config.session_ttl_days,
                self.0.id,
                Some(current),
            )
            .await?,
        )?))
    }
    /// Every change of this user's render credits, newest first (null but for the user
    /// and administrators).
    async fn credit_ledger(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Option<RelayConnection<crate::billing::graphql::CreditLedgerEntry>>> {
        if !self.own_or_admin(ctx)? {
            return Ok(None);
        }
        let args = PageArgs::new(first, after, last, before)?;
        let db = &state(ctx)?.db;
        let select = entity::credit_ledger_entry::Entity::find()
            .filter(entity::credit_ledger_entry::Column::UserId.eq(self.0.id));
        let total = TotalCount::of(db, select.clone());
        let page = fetch_page(
            db,
            select,
            entity::credit_ledger_entry::Column::Id,
            true,
            args,
        )
        .await?;
        Ok(Some(page.into_connection(|e| e.id, Into::into, total)))
    }
    /// Creator profiles this user is a member of: all of them for the user and administrators,
    /// for anyone else those they are a member of too (a teammate's other teams are theirs).
    async fn creators(&self, ctx: &Context<'_>) -> AppResult<Vec<Creator>> {
        crate::graphql::budget::take(ctx, 0)?;
        let creators = loaders(ctx)?.load_one(MemberCreators(self.0.id)).await?;
        let creators = creators.unwrap_or_default();
        let creators = if self.own_or_admin(ctx)? {
            creators
        } else {
            let viewer = viewer(ctx)?;
            let shared = viewer.member_creator_ids(&state(ctx)?.db).await?;
            creators
                .into_iter()
                .filter(|c| shared.contains(&c.id))
                .collect()
        };
        crate::graphql::budget::counted(ctx, creators.into_iter().map(Creator).collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

impl User {
    /// The session this user reads its own fields through: the one a sign-in just opened
    /// ([`SignedIn`]), or the caller's when the caller is this user; `None` for anyone else.
    fn own_session(&self, ctx: &Context<'_>) -> AppResult<Option<Uuid>> {
        if let SignedIn(Some(session)) = self.1 {
            return Ok(Some(session));
        }
        let caller = viewer(ctx)?.user().filter(|me| me.id == self.0.id);
        Ok(caller.map(|me| me.session_id))
    }

    /// Whether this user reads its own fields ([`Self::own_session`]) or the caller is an
    /// administrator.
    fn own_or_admin(&self, ctx: &Context<'_>) -> AppResult<bool> {
        Ok(self.own_session(ctx)?.is_some() || viewer(ctx)?.is_admin())
    }
}

/// The e-mail a user wants. Reelgraph sends none itself: the platform's mailer reads these.
#[derive(SimpleObject)]
pub struct NotificationPreferences {
    /// Whether to send digests of what the creators the user follows publish.
    pub digest_enabled: bool,
    /// How often, when they are on.
    pub digest_frequency: DigestFrequency,
}

/// Changes to `notificationPreferences`; omitted fields stay as they are (`null` is refused).
#[derive(InputObject, Default)]
pub struct NotificationPreferencesInput {
    pub digest_enabled: MaybeUndefined<bool>,
    pub digest_frequency: MaybeUndefined<DigestFrequency>,
}

/// A code that lets someone register while the server is invite-only.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct InviteCode {
    pub id: ID,
    pub code: String,
    /// Registrations still possible with this code.
    pub uses_remaining: i32,
    /// After this instant the code no longer works; null means never.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub created_by: Option<Uuid>,
}

#[ComplexObject]
impl InviteCode {
    /// The administrator who created the code.
    async fn created_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        let Some(id) = self.created_by else {
            return Ok(None);
        };
        Ok(loaders(ctx)?.load_one(UserById(id)).await?.map(User::new))
    }
}

impl From<invite_code::Model> for InviteCode {
    fn from(m: invite_code::Model) -> Self {
        Self {
            id: m.id.into(),
            code: m.code,
            uses_remaining: m.uses_remaining,
            expires_at: m.expires_at,
            created_at: m.created_at,
            created_by: m.created_by,
        }
    }
}

#[derive(InputObject)]
pub struct CreateInviteCodeInput {
    /// The code itself (4–100 characters of letters, digits, `-` and `_`); generated when omitted.
    pub code: Option<String>,
    /// How many registrations it allows (1–10000).
    #[graphql(default = 1)]
    pub uses: i32,
    /// When it stops working; must be in the future. Null means never.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user, or null when the request carries no token.
    async fn me(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        let Some(auth) = viewer(ctx)?.user() else {
            return Ok(None);
        };
        let user = loaders(ctx)?.load_one(UserById(auth.id)).await?;
        match user {
            Some(user) if user.is_active => Ok(Some(User::new(user))),
            _ => Err(AppError::unauthenticated(
                "account no longer exists or is disabled",
            )),
        }
    }

    /// Every account, newest first. `search` matches a case-insensitive substring of the email
    /// or display name (at most 100 characters); `role` and `active` narrow the list.
    /// Administrators only.
    #[graphql(
        complexity = "crate::graphql::pagination::connection_complexity(first, last, child_complexity)"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per GraphQL argument"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        search: Option<String>,
        role: Option<UserRole>,
        active: Option<bool>,
    ) -> AppResult<RelayConnection<User>> {
        let args = PageArgs::new(first, after, last, before)?;
        admin::users(
            ctx,
            args,
            admin::UserFilter {
                search,
                role,
                active,
            },
        )
        .await
    }

    /// The invite codes, newest first. Administrators only.
    async fn invite_codes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<RelayConnection<InviteCode>> {
        viewer(ctx)?.require_admin()?;
        let args = PageArgs::new(first, after, last, before)?;
        let db = &state(ctx)?.db;
        let select = invite_code::Entity::find();
        let total = TotalCount::of(db, select.clone());
        let page = fetch_page(db, select, invite_code::Column::Id, true, args).await?;
        Ok(page.into_connection(|c| c.id, InviteCode::from, total))
    }
}

#[derive(Default)]
pub struct UserMutation;

/// Omitted fields stay as they are; `null` clears `displayName` or `avatarUrl` and is refused
/// for the others.
#[derive(InputObject)]
pub struct UpdateMeInput {
    /// At most 50 characters.
    pub display_name: MaybeUndefined<String>,
    /// An absolute http(s) URL of your picture.
    pub avatar_url: MaybeUndefined<String>,
    /// Whether you have finished the client's onboarding.
    pub onboarding_completed: MaybeUndefined<bool>,
    /// Your e-mail digest preferences; omitted fields stay as they are.
    pub notification_preferences: MaybeUndefined<NotificationPreferencesInput>,
}

#[Object]
impl UserMutation {
    /// Replaces your webhook signing secret (`me { webhookSecret }`) with a new random one and
    /// returns it. For `keepPreviousSecs` (default a day, at most 7 days, 0 to drop it at
    /// once) deliveries carry a second `v1` signature under the secret it replaced, so a
    /// receiver can switch without refusing a delivery; a leaked secret is rotated with 0.
    /// While a previous secret still signs, rotating again with `keepPreviousSecs` above 0 is
    /// CONFLICT (it would drop that one from under its receivers).
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Seconds the replaced secret keeps signing (0–604800; null or left \
                          out: a day)."
        )]
        keep_previous_secs: Option<i32>,
    ) -> AppResult<String> {
        let me = viewer(ctx)?.require_user()?.id;
        let max = crate::jobs::webhooks::MAX_KEEP_PREVIOUS.as_secs();
        let keep = u64::try_from(keep_previous_secs.unwrap_or(86_400))
            .ok()
            .filter(|secs| *secs <= max)
            .ok_or_else(|| {
                AppError::bad_input(
                    "keepPreviousSecs",
                    format!("must be between 0 and {max} seconds"),
                )
            })?;
        let state = state(ctx)?;
        let secret = crate::jobs::webhooks::rotate_secret(
            &state.db,
            &state.tokens,
            me,
            std::time::Duration::from_secs(keep),
        )
        .await?;
        loaders(ctx)?.forget(&crate::graphql::loaders::StoredWebhookSecret(me));
        Ok(secret)
    }

    /// Edits your own profile.
    async fn update_me(&self, ctx: &Context<'_>, input: UpdateMeInput) -> AppResult<User> {
        let me = viewer(ctx)?.require_user()?.id;
        let display_name = match &input.display_name {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(name) => {
                Some(normalize_display_name("input.displayName", Some(name))?)
            }
        };
        let avatar_url = match &input.avatar_url {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(url) => Some(Some(crate::creators::validate::url(
                "input.avatarUrl",
                url,
            )?)),
        };
        let onboarding_completed = given("input.onboardingCompleted", input.onboarding_completed)?;
        let (digest_enabled, digest_frequency) = match given(
            "input.notificationPreferences",
            input.notification_preferences,
        )? {
            Some(prefs) => (
                given(
                    "input.notificationPreferences.digestEnabled",
                    prefs.digest_enabled,
                )?,
                given(
                    "input.notificationPreferences.digestFrequency",
                    prefs.digest_frequency,
                )?,
            ),
            None => (None, None),
        };
        let db = &state(ctx)?.db;
        let found = user::Entity::find_by_id(me)
            .one(db)
            .await?
            .ok_or_else(|| AppError::unauthenticated("this account no longer exists"))?;
        let mut row: user::ActiveModel = found.into();
        if let Some(name) = display_name {
            row.display_name = Set(name);
        }
        if let Some(url) = avatar_url {
            row.avatar_url = Set(url);
        }
        if let Some(done) = onboarding_completed {
            row.onboarding_completed = Set(done);
        }
        if let Some(enabled) = digest_enabled {
            row.digest_enabled = Set(enabled);
        }
        if let Some(frequency) = digest_frequency {
            row.digest_frequency = Set(frequency);
        }
        row.updated_at = Set(chrono::Utc::now());
        Ok(User::new(row.update(db).await?))
    }

    /// Changes another account's role or disables it (`isActive: false`) or enables it again.
    /// Taking `ADMIN` away or disabling ends the account's sessions at once; other role
    /// changes apply from its next access token. Administrators only, and not on their own
    /// account.
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: admin::UpdateUserInput,
    ) -> AppResult<User> {
        let id = crate::graphql::parse_id("id", &id)?;
        admin::update_user(ctx, id, input).await
    }

    /// Issues a one-time token that sets a new password for the account (`resetPassword`),
    /// for its owner who forgot theirs: hand it over by a channel you trust. It works once,
    /// for 24 hours; issuing another sets this one aside. The token is shown only here.
    /// Administrators only.
    async fn create_password_reset(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> AppResult<PasswordReset> {
        let me = viewer(ctx)?.require_admin()?.id;
        let user_id = crate::graphql::parse_id("userId", &user_id)?;
        let issued = crate::auth::reset::issue(&state(ctx)?.db, user_id, Some(me)).await?;
        Ok(PasswordReset {
            token: issued.token,
            expires_at: issued.expires_at,
            user: User::new(issued.user),
        })
    }

    /// Stops an invite code from admitting anyone more (its remaining uses become 0); returns
    /// it. Administrators only.
    async fn revoke_invite_code(&self, ctx: &Context<'_>, id: ID) -> AppResult<InviteCode> {
        viewer(ctx)?.require_admin()?;
        let id = crate::graphql::parse_id("id", &id)?;
        let revoked = invite_code::Entity::update_many()
            .col_expr(
                invite_code::Column::UsesRemaining,
                sea_orm::sea_query::Expr::val(0),
            )
            .filter(invite_code::Column::Id.eq(id))
            .exec_with_returning(&state(ctx)?.db)
            .await?
            .into_iter()
            .next()
            .ok_or(AppError::NotFound("invite code"))?;
        Ok(revoked.into())
    }

    /// Creates an invite code. Administrators only.
    async fn create_invite_code(
        &self,
        ctx: &Context<'_>,
        input: CreateInviteCodeInput,
    ) -> AppResult<InviteCode> {
        let admin = viewer(ctx)?.require_admin()?;
        let code = match input.code.map(|c| c.trim().to_owned()) {
            Some(code) => {
                let valid_chars = code
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !(4..=100).contains(&code.len()) || !valid_chars {
                    return Err(AppError::bad_input(
                        "input.code",
                        "must be 4–100 characters of letters, digits, '-' and '_'",
                    ));
                }
                code
            }
            None => random_code(),
        };
        if !(1..=10_000).contains(&input.uses) {
            return Err(AppError::bad_input(
                "input.uses",
                "must be between 1 and 10000",
            ));
        }
        let now = Utc::now();
        if input.expires_at.is_some_and(|at| at <= now) {
            return Err(AppError::bad_input(
                "input.expiresAt",
                "must be in the future",
            ));
        }
        let row = invite_code::ActiveModel {
            id: Set(Uuid::now_v7()),
            code: Set(code),
            uses_remaining: Set(input.uses),
            expires_at: Set(input.expires_at),
            created_by: Set(Some(admin.id)),
            created_at: Set(now),
        }
        .insert(&state(ctx)?.db)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => AppError::conflict(Some("input.code"), "this invite code already exists"),
            None => e.into(),
        })?;
        Ok(row.into())
    }
}

fn random_code() -> String {
    let mut random = [0u8; 12];
    rand::fill(&mut random);
    hex::encode(random)
}

/// A password reset token, as `createPasswordReset` issued it.
#[derive(SimpleObject)]
pub struct PasswordReset {
    /// The token for `resetPassword`. Shown once: only its hash is kept.
    pub token: String,
    /// After this it no longer works.
    pub expires_at: DateTime<Utc>,
    /// The account whose password it sets.
    pub user: User,
}

/// Creates an administrator account; returns its address as kept. An account with that email
/// already is CONFLICT: making
/// it an administrator is [`promote_admin`], asked for on purpose (anyone may have registered
/// the address, emails being unverified).
pub async fn create_admin(
    db: &DatabaseConnection,
    email: &str,
    password_plain: &str,
    display_name: Option<&str>,
) -> AppResult<String> {
    let typed = email;
    let email = new_email("email", email)?;
    if find_account(db, typed).await?.is_some() {
        return Err(AppError::conflict(
            Some("email"),
            "an account with this email exists: `admin create --promote` makes it an \
             administrator (promote only an account you know is its owner's)",
        ));
    }
    password::validate_password("password", password_plain)?;
    let display_name = normalize_display_name("display-name", display_name)?;
    let hash = password::hash(password_plain.to_owned()).await?;
    let now = Utc::now();
    user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.clone()),
        password_hash: Set(hash),
        display_name: Set(display_name),
        role: Set(UserRole::Admin),
        is_active: Set(true),
        is_verified: Set(true),
        credits: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        onboarding_completed: Set(false),
        digest_enabled: Set(false),
        digest_frequency: Set(DigestFrequency::Daily),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(email)
}

/// Makes the existing account with `email` an active administrator. With `password`, also
/// sets it and ends every session of the account, so that whoever registered the address
/// before its owner is signed out; returns how many sessions ended.
pub async fn promote_admin(
    db: &DatabaseConnection,
    email: &str,
    password_plain: Option<&str>,
) -> AppResult<Promoted> {
    normalize_email("email", email)?;
    let hash = match password_plain {
        Some(plain) => {
            password::validate_password("password", plain)?;
            Some(password::hash(plain.to_owned()).await?)
        }
        None => None,
    };
    let txn = crate::jobs::queue::begin_write(db).await?;
    let found = match find_account(&txn, email).await? {
        Some(account) => {
            user::Entity::find_by_id(account.id)
                .for_update(&txn)
                .one(&txn)
                .await?
        }
        None => None,
    };
    let Some(existing) = found else {
        txn.rollback().await?;
        return Err(AppError::NotFound("account"));
    };
    let id = existing.id;
    let mut active: user::ActiveModel = existing.into();
    active.role = Set(UserRole::Admin);
    active.is_active = Set(true);
    active.updated_at = Set(Utc::now());
    let replaced = hash.is_some();
    if let Some(hash) = hash {
        active.password_hash = Set(hash);
    }
    let promoted = active.update(&txn).await?;
    let ended = if replaced {
        crate::auth::reset::set_aside(&txn, id, Utc::now()).await?;
        crate::auth::end_sessions(&txn, Some(id), None, "password set by an administrator").await?
    } else {
        Vec::new()
    };
    txn.commit().await?;
    crate::jobs::events::announce_revoked(db, &ended).await;
    Ok(Promoted {
        email: promoted.email,
        sessions_ended: ended.len(),
    })
}

/// The account [`promote_admin`] made an administrator.
pub struct Promoted {
    /// Its address as stored (the operator sees which account it was).
    pub email: String,
    pub sessions_ended: usize,
}
