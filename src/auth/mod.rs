//! Accounts and sessions: registration (optionally invite-only), login, refresh-token rotation
//! with reuse detection, logout, and turning a bearer token into a [`Viewer`].

pub mod graphql;
pub mod password;
pub mod reset;
pub mod revoked;
pub mod throttle;
pub mod tokens;

use chrono::{DateTime, Utc};
use entity::{UserRole, invite_code, refresh_token, session, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use crate::{
    access::{AuthUser, ClientInfo, Viewer},
    db::RowLock,
    error::{AppError, AppResult, unique_violation},
    state::AppState,
};

/// What a successful register, login or refresh returns.
pub struct Authenticated {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: DateTime<Utc>,
    pub user: user::Model,
    /// The session the tokens belong to.
    pub session_id: Uuid,
}

/// A registration request, already taken apart from its GraphQL input.
pub struct Registration {
    pub email: String,
    pub password: String,
    pub display_name: Option<String>,
    pub invite_code: Option<String>,
}

pub const MAX_DISPLAY_NAME: usize = 50;

/// Resolves the `Authorization` value (`Bearer <token>` or a bare token) into the caller.
/// A missing value is an anonymous caller; a bad one is an error, never silently anonymous.
pub fn viewer_from_authorization(state: &AppState, value: Option<&str>) -> AppResult<Viewer> {
    let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(Viewer::anonymous());
    };
    // The scheme's name is case-insensitive (RFC 9110 §11.1).
    let token = match raw.split_at_checked(7) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer ") => token,
        _ => raw,
    }
    .trim();
    let claims = state.tokens.verify(token)?;
    if state.revoked.contains(claims.sid) {
        return Err(session_ended());
    }
    Ok(Viewer::authenticated(AuthUser {
        id: claims.sub,
        role: claims.role,
        session_id: claims.sid,
    }))
}

/// The error of an access token whose session was signed out or revoked.
pub fn session_ended() -> AppError {
    AppError::unauthenticated("this session has ended (signed out or revoked): sign in again")
}

/// The longest email address an account may have, in bytes (RFC 5321's path limit).
const MAX_EMAIL_BYTES: usize = 254;

/// An email address as accounts are kept and looked up by: trimmed, lower-case, and in Unicode
/// normal form C, so that `josé` typed as one character or as `e` and a combining accent (as
/// some keyboards and macOS file names give it) is one address, not two accounts. A Greek
/// final sigma is `σ`: lower-casing makes a capital `Σ` `ς` at the end of a word and `σ`
/// elsewhere, so the same address typed in capitals would be another.
pub fn canonical_email(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    email
        .trim()
        .to_lowercase()
        .replace('\u{3c2}', "\u{3c3}")
        .nfc()
        .collect()
}

/// The account of the address `typed`: by its [`canonical_email`], or, first, by the address
/// exactly as typed (trimmed, lower-case) when that differs. A migration leaves an address as
/// it was stored when its canonical form is another account's (`migration::emails`): its
/// owner reaches it only so, by sign-in, by an owner adding them to a team, or by an operator.
pub async fn find_account(
    db: &impl ConnectionTrait,
    typed: &str,
) -> AppResult<Option<user::Model>> {
    let canonical = canonical_email(typed);
    let typed = typed.trim().to_lowercase();
    let forms = match typed == canonical {
        true => vec![canonical],
        false => vec![typed, canonical],
    };
    for email in &forms {
        let found = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(db)
            .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// The address of a new account: [`normalize_email`], written in characters that show what
/// they are. Invisible ones (a zero-width space, direction marks) and compatibility forms
/// (full-width letters, ligatures) are refused: they make an address that reads like
/// another's, and mail systems map many of them to the plain address, so one mailbox would
/// hold two accounts.
pub fn new_email(field: &str, email: &str) -> AppResult<String> {
    use unicode_normalization::UnicodeNormalization;
    let email = normalize_email(field, email)?;
    // Zero-width (non-)joiners are letters' shapes in Persian and Indic scripts (IDNA allows
    // them there): kept.
    let invisible =
        |c: char| crate::graphql::inputs::draws_nothing(c) && !matches!(c, '\u{200c}' | '\u{200d}');
    if email.chars().any(invisible) {
        return Err(AppError::bad_input(
            field,
            "must not contain invisible characters (zero-width spaces, direction marks)",
        ));
    }
    if !email.nfkc().eq(email.chars()) {
        return Err(AppError::bad_input(
            field,
            "must be written in plain characters: full-width letters, ligatures and other \
             compatibility forms are not accepted",
        ));
    }
    Ok(email)
}

/// [`canonical_email`], checked as an address; the error names `field`.
pub fn normalize_email(field: &str, email: &str) -> AppResult<String> {
    let email = canonical_email(email);
    let invalid = || {
        AppError::bad_input(
            field,
            "must be a valid email address, like name@example.com",
        )
    };
    if email.len() > MAX_EMAIL_BYTES || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2);
    if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
        return Err(invalid());
    }
    Ok(email)
}

/// Trims a display name and checks its length; empty means none.
pub fn normalize_display_name(field: &str, name: Option<&str>) -> AppResult<Option<String>> {
    let Some(name) = name
        .map(str::trim)
        .filter(|n| !crate::graphql::inputs::shows_nothing(n))
    else {
        return Ok(None);
    };
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_DISPLAY_NAME} characters"),
        ));
    }
    crate::graphql::inputs::no_controls(field, name, false)?;
    Ok(Some(name.to_owned()))
}

/// Creates an account and its first session. With invites required, one use of the code is
/// taken in the same transaction, by a conditional update, so a code can never be over-used.
pub async fn register(
    state: &AppState,
    reg: Registration,
    client: &ClientInfo,
) -> AppResult<Authenticated> {
    let email = new_email("input.email", &reg.email)?;
    password::validate_password("input.password", &reg.password)?;
    let display_name = normalize_display_name("input.displayName", reg.display_name.as_deref())?;
    let invite = reg
        .invite_code
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if state.config.require_invite && invite.is_none() {
        return Err(AppError::bad_input(
            "input.inviteCode",
            "an invite code is required to register",
        ));
    }
    state.sign_in.register(client.ip.as_deref())?;
    let password_hash = password::hash(reg.password).await?;

    let now = Utc::now();
    let txn = state.db.begin().await?;
    if let Some(code) = &invite {
        let taken = invite_code::Entity::update_many()
            .col_expr(
                invite_code::Column::UsesRemaining,
                Expr::col(invite_code::Column::UsesRemaining).sub(1),
            )
            .filter(invite_code::Column::Code.eq(code.as_str()))
            .filter(invite_code::Column::UsesRemaining.gt(0))
            .filter(
                Condition::any()
                    .add(invite_code::Column::ExpiresAt.is_null())
                    .add(invite_code::Column::ExpiresAt.gt(now)),
            )
            .exec(&txn)
            .await?;
        if taken.rows_affected != 1 {
            return Err(AppError::bad_input(
                "input.inviteCode",
                "invite code is not valid, used up or expired",
            ));
        }
    }
    let user = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email),
        password_hash: Set(password_hash),
        display_name: Set(display_name),
        role: Set(UserRole::Viewer),
        is_active: Set(true),
        is_verified: Set(false),
        credits: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        // Columns added by `ALTER TABLE` are given, not left to their defaults: SQLite's
        // `INSERT … RETURNING` gives NULL for such a column with a DEFAULT and a CHECK when the
        // insert leaves it out (`digest_frequency`, 39 of 40 fresh databases; `UPDATE …
        // RETURNING` and `SELECT` read the default), which failed the insert.
        onboarding_completed: Set(false),
        digest_enabled: Set(false),
        digest_frequency: Set(entity::DigestFrequency::Daily),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => AppError::conflict(
            Some("input.email"),
            "an account with this email already exists",
        ),
        None => e.into(),
    })?;
    let session = start_session(&txn, state, user.id, client, now).await?;
    txn.commit().await?;
    finish(state, user, session)
}

/// Checks the password (in constant time with respect to whether the account exists) and
/// starts a session.
pub async fn login(
    state: &AppState,
    email: &str,
    password: String,
    client: &ClientInfo,
) -> AppResult<Authenticated> {
    let started = tokio::time::Instant::now();
    let typed = email;
    let email = canonical_email(email);
    // No account has a longer one (`normalize_email`), and the sign-in throttle keeps the
    // address it is given as a key: a megabyte each would fill its memory.
    if email.len() > MAX_EMAIL_BYTES {
        return Err(AppError::bad_input(
            "email",
            format!("must be at most {MAX_EMAIL_BYTES} bytes"),
        ));
    }
    let attempt = throttle_sign_in(state, &email, client).await?;
    let found = find_account(&state.db, typed).await?;
    // An imported bcrypt (or older Argon2) hash is replaced once the password is known right.
    let upgrade = found
        .as_ref()
        .filter(|u| u.is_active && password::is_outdated(&u.password_hash))
        .map(|_| password.clone());
    let matched =
        password::verify(password, found.as_ref().map(|u| u.password_hash.clone())).await?;
    let user = match found {
        Some(user) if matched && user.is_active => {
            attempt.succeeded();
            user
        }
        // Counted as a failure since it arrived.
        _ => return Err(refused(started).await),
    };
    // The hash the password was checked against (or the one that replaced it just now).
    let verified = match upgrade {
        Some(password) => upgrade_hash(state, &user, password).await,
        None => user.password_hash.clone(),
    };
    let now = Utc::now();
    let txn = crate::jobs::queue::begin_write(&state.db).await?;
    // The account again, inside the transaction that starts the session: an administrator who
    // disabled or demoted it, or a password change or reset, while the password was being
    // checked has either committed (and this sees it: a changed hash means the password that
    // was checked may no longer be the account's) or waits for this session (and then ends it
    // with the others). The row is share-locked on PostgreSQL; on SQLite the write
    // transaction serialises them.
    let current = user::Entity::find_by_id(user.id)
        .for_share(&txn)
        .one(&txn)
        .await?
        .filter(|u| u.is_active && u.password_hash == verified);
    let Some(user) = current else {
        txn.rollback().await?;
        return Err(refused(started).await);
    };
    let session = start_session(&txn, state, user.id, client, now).await?;
    txn.commit().await?;
    finish(state, user, session)
}

/// How long an address the account signed in from stays one it may sign in from while
/// guesses from elsewhere have used up the account's sign-in attempts.
const KNOWN_ADDRESS_FOR: chrono::Duration = chrono::Duration::days(30);

/// Sessions ended for these reasons (or not ended) vouch for their address; the others were
/// ended because something was wrong (a reused refresh token, a changed password, an
/// administrator, the user revoking that device).
const VOUCHING_END: &str = "logout";

/// Counts an attempt at `email`'s password from `client` (see [`throttle`]), as a failure
/// until [`throttle::Attempt::succeeded`] says otherwise.
async fn throttle_sign_in<'a>(
    state: &'a AppState,
    email: &str,
    client: &ClientInfo,
) -> AppResult<throttle::Attempt<'a>> {
    let mut attempt = state.sign_in.login(client.ip.as_deref(), email)?;
    if let Err(refusal) = attempt.count_account_wide() {
        let known = signed_in_lately_from(&state.db, email, client.ip.as_deref()).await;
        if !matches!(known, Ok(true)) {
            attempt.not_checked();
            known?;
            return Err(refusal);
        }
    }
    Ok(attempt)
}

/// Whether the account of `email` has used a session from `address` (its /64, for IPv6) within
/// [`KNOWN_ADDRESS_FOR`]: the one exemption from the account-wide sign-in limit, so that
/// guesses spread over many addresses do not lock the owner out of the devices they use. Such
/// an address still has its own per-address and per-account limits.
async fn signed_in_lately_from(
    db: &impl ConnectionTrait,
    email: &str,
    address: Option<&str>,
) -> AppResult<bool> {
    let Some(address) = address else {
        return Ok(false);
    };
    let key = throttle::client_key(Some(address));
    let since = Utc::now() - KNOWN_ADDRESS_FOR;
    let addresses: Vec<Option<String>> = session::Entity::find()
        .select_only()
        .column(session::Column::IpAddress)
        .inner_join(user::Entity)
        .filter(user::Column::Email.eq(email))
        .filter(session::Column::LastSeenAt.gt(since))
        .filter(
            Condition::any()
                .add(session::Column::RevokedReason.is_null())
                .add(session::Column::RevokedReason.eq(VOUCHING_END)),
        )
        .order_by_desc(session::Column::LastSeenAt)
        .limit(200)
        .into_tuple()
        .all(db)
        .await?;
    Ok(addresses
        .iter()
        .flatten()
        .any(|seen| throttle::client_key(Some(seen)) == key))
}

/// Failed sign-ins are answered at the next whole second after they started. Checking a
/// password takes as long as its hash makes it (an imported bcrypt or Argon2 hash may be much
/// faster or slower than ours, and an unknown email is checked against a hash like ours), so
/// without this the time of a refusal would tell which emails have accounts. The wait is a
/// timer: it holds no hashing slot and no connection.
async fn refused(started: tokio::time::Instant) -> AppError {
    let second = std::time::Duration::from_secs(1);
    let elapsed = started.elapsed();
    let whole = elapsed.as_secs() + 1;
    tokio::time::sleep_until(started + second * u32::try_from(whole).unwrap_or(u32::MAX)).await;
    AppError::unauthenticated("invalid email or password")
}

/// Stores an Argon2id hash of `password` in place of the account's outdated one, unless the
/// hash changed meanwhile (a password change wins). A failure only postpones the upgrade to the
/// next sign-in, so it is logged and the sign-in goes on.
/// Returns the account's hash afterwards as far as this knows: the new one when it was stored,
/// the old one otherwise.
async fn upgrade_hash(state: &AppState, user: &user::Model, password: String) -> String {
    let again = password.clone();
    let upgraded = async {
        let hash = password::hash(password).await?;
        let stored = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::val(hash.as_str()))
            .filter(user::Column::Id.eq(user.id))
            .filter(user::Column::PasswordHash.eq(user.password_hash.as_str()))
            .exec(&state.db)
            .await?;
        AppResult::Ok((stored.rows_affected == 1).then_some(hash))
    };
    match upgraded.await {
        Ok(Some(hash)) => {
            tracing::info!(user_id = %user.id, "password hash upgraded to Argon2id");
            hash
        }
        // Changed meanwhile: by a password change, or by another sign-in's upgrade of the
        // same hash (two devices signing in at once after an import). The latter must not
        // refuse this one, so the password is checked against the hash there now.
        Ok(None) => {
            let current = user::Entity::find_by_id(user.id).one(&state.db).await;
            match current {
                Ok(Some(current))
                    if password::verify(again, Some(current.password_hash.clone()))
                        .await
                        .unwrap_or(false) =>
                {
                    current.password_hash
                }
                _ => user.password_hash.clone(),
            }
        }
        Err(err) => {
            tracing::warn!(user_id = %user.id, error = ?err, "password hash upgrade failed");
            user.password_hash.clone()
        }
    }
}

/// Exchanges a refresh token for a new pair. Each refresh token works once: presenting one
/// that was already used means it leaked, so the whole session is revoked.
pub async fn refresh(
    state: &AppState,
    token: &str,
    client: &ClientInfo,
) -> AppResult<Authenticated> {
    let hash = tokens::hash_refresh_token(token.trim());
    let now = Utc::now();
    // A token that was never issued is refused on a read: guesses take no write lock (on
    // SQLite, every other writer would queue behind them).
    let issued = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash.as_str()))
        .one(&state.db)
        .await?;
    let Some(issued) = issued else {
        return Err(AppError::unauthenticated("invalid refresh token"));
    };
    // Only a token that can still be used is counted: one presented again goes on to the
    // reuse check and ends its session, however fast a thief refreshes with its successor.
    // Once that session has ended, the used token is refused on a read (no write lock taken
    // for each time a stale token is sent again).
    if issued.used_at.is_none() {
        state.sign_in.refresh(issued.session_id)?;
    } else {
        let ended = session::Entity::find_by_id(issued.session_id)
            .one(&state.db)
            .await?
            .is_none_or(|s| s.revoked_at.is_some());
        if ended {
            return Err(AppError::unauthenticated(
                "refresh token was already used; the session has been revoked, sign in again",
            ));
        }
    }
    let txn = state.db.begin().await?;
    // The claim comes first: on SQLite the first statement of a transaction must be the write
    // so that concurrent refreshes queue on the write lock instead of failing.
    let claimed = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::val(now))
        .filter(refresh_token::Column::TokenHash.eq(hash.as_str()))
        .filter(refresh_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    let row = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash.as_str()))
        .one(&txn)
        .await?;
    let Some(row) = row else {
        return Err(AppError::unauthenticated("invalid refresh token"));
    };
    if claimed.rows_affected != 1 {
        txn.rollback().await?;
        revoke_session(state, row.session_id, "refresh token reused").await?;
        tracing::warn!(session_id = %row.session_id, "refresh token reuse detected; session revoked");
        return Err(AppError::unauthenticated(
            "refresh token was already used; the session has been revoked, sign in again",
        ));
    }
    let session = session::Entity::find_by_id(row.session_id)
        .one(&txn)
        .await?;
    let Some(session) = session
        .filter(|s| s.revoked_at.is_none() && session_end(state.config.session_ttl_days, s) > now)
    else {
        return Err(AppError::unauthenticated(
            "session expired or revoked, sign in again",
        ));
    };
    let user = user::Entity::find_by_id(session.user_id).one(&txn).await?;
    let Some(user) = user.filter(|u| u.is_active) else {
        return Err(AppError::unauthenticated("account is disabled"));
    };
    let (refresh, refresh_hash) = tokens::new_refresh_token();
    insert_refresh_token(&txn, session.id, refresh_hash, now).await?;
    let mut touched: session::ActiveModel = session.clone().into();
    touched.last_seen_at = Set(Some(now));
    if client.ip.is_some() {
        touched.ip_address = Set(client.ip.clone());
    }
    touched.update(&txn).await?;
    txn.commit().await?;
    let (access_token, expires_at) = state.tokens.issue(user.id, user.role, session.id)?;
    Ok(Authenticated {
        access_token,
        refresh_token: refresh,
        expires_at,
        user,
        session_id: session.id,
    })
}

/// Changes `user_id`'s password after checking the current one (throttled like sign-in), and
/// ends every session of the account — whoever else knew the old password is signed out —
/// then starts a new one for the caller. The hash, the revocations and the new session commit
/// together.
pub async fn change_password(
    state: &AppState,
    user_id: Uuid,
    current: String,
    new: String,
    client: &ClientInfo,
) -> AppResult<Authenticated> {
    password::validate_password("newPassword", &new)?;
    let user = user::Entity::find_by_id(user_id)
        .one(&state.db)
        .await?
        .filter(|u| u.is_active)
        .ok_or_else(|| AppError::unauthenticated("this account no longer exists"))?;
    let attempt = throttle_sign_in(state, &user.email, client).await?;
    if password::verify(current.clone(), Some(user.password_hash.clone())).await? {
        attempt.succeeded();
    } else {
        // Counted as a failure since it arrived.
        return Err(AppError::bad_input(
            "currentPassword",
            "is not this account's password",
        ));
    }
    let checked = user.password_hash;
    let hash = password::hash(new).await?;
    let now = Utc::now();
    let txn = crate::jobs::queue::begin_write(&state.db).await?;
    // The account again, locked: an administrator who disabled it, or a reset or another
    // change of its password, while the current password was checked has either committed
    // (and this sees it) or waits for this change. The user row is locked before any reset
    // row, as `resetPassword` does.
    let found = user::Entity::find_by_id(user_id)
        .for_update(&txn)
        .one(&txn)
        .await?;
    let user = match found {
        Some(user) if user.is_active && user.password_hash == checked => user,
        // Rehashed meanwhile (a sign-in upgrading an imported hash) but the same password:
        // rare, so checked again here, under the lock.
        Some(user)
            if user.is_active
                && password::verify(current.clone(), Some(user.password_hash.clone())).await? =>
        {
            user
        }
        Some(user) if user.is_active => {
            txn.rollback().await?;
            return Err(AppError::bad_input(
                "currentPassword",
                "is no longer this account's password: it was changed meanwhile",
            ));
        }
        _ => {
            txn.rollback().await?;
            return Err(AppError::unauthenticated("this account no longer exists"));
        }
    };
    let mut row: user::ActiveModel = user.into();
    row.password_hash = Set(hash);
    row.updated_at = Set(now);
    let user = row.update(&txn).await?;
    reset::set_aside(&txn, user.id, now).await?;
    let ended = end_sessions(&txn, Some(user.id), None, "password changed").await?;
    let session = start_session(&txn, state, user.id, client, now).await?;
    txn.commit().await?;
    sessions_ended(state, &ended).await;
    finish(state, user, session)
}

/// Ends live sessions: those of `user_id`, or only `session_id` (of that user, when both are
/// given); returns their ids. Once committed, pass them to [`sessions_ended`].
pub async fn end_sessions(
    db: &impl ConnectionTrait,
    user_id: Option<Uuid>,
    session_id: Option<Uuid>,
    reason: &str,
) -> AppResult<Vec<Uuid>> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::val(Utc::now()))
        .col_expr(session::Column::RevokedReason, Expr::val(reason))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(user_id) = user_id {
        update = update.filter(session::Column::UserId.eq(user_id));
    }
    if let Some(id) = session_id {
        update = update.filter(session::Column::Id.eq(id));
    }
    let ended = update.exec_with_returning(db).await?;
    Ok(ended.into_iter().map(|s| s.id).collect())
}

/// Makes ended sessions' access tokens stop working at once: in this process's list, and
/// (with PostgreSQL) announced to every other process's. Call after the revocation committed.
/// The announcement runs on its own: a request cut off meanwhile (its client gone, its time
/// up) does not leave the other processes unaware.
pub async fn sessions_ended(state: &AppState, ids: &[Uuid]) {
    if ids.is_empty() {
        return;
    }
    state.revoked.add(ids.iter().copied(), Utc::now());
    let events = state.events.clone();
    let ids = ids.to_vec();
    let announced = tokio::spawn(async move { events.announce_revoked(&ids).await });
    // Waited for when nothing cuts the request off, so that the answer comes once the other
    // processes were told.
    let _ = announced.await;
}

/// Revokes the session of a refresh token. Returns whether a live session was revoked.
pub async fn logout(state: &AppState, token: &str) -> AppResult<bool> {
    let hash = tokens::hash_refresh_token(token.trim());
    let row = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash))
        .one(&state.db)
        .await?;
    match row {
        Some(row) => revoke_session(state, row.session_id, "logout").await,
        None => Ok(false),
    }
}

/// How long a used refresh token is kept: presenting it again within this time is caught as
/// reuse (and ends its session); later it is merely unknown.
pub const USED_REFRESH_TOKEN_KEPT: chrono::Duration = chrono::Duration::days(7);

/// How long a session is kept once it has ended (signed out, revoked or expired).
pub const ENDED_SESSION_KEPT: chrono::Duration = chrono::Duration::days(30);

/// Deletes used refresh tokens and ended sessions past [`USED_REFRESH_TOKEN_KEPT`] and
/// [`ENDED_SESSION_KEPT`] (every refresh adds a row, and nothing else removes them); returns
/// how many rows went. Run by the workers' hourly upkeep.
pub async fn clean_up(db: &impl ConnectionTrait, now: DateTime<Utc>) -> AppResult<u64> {
    let ended_before = now - ENDED_SESSION_KEPT;
    let ended = Condition::any()
        .add(session::Column::RevokedAt.lt(ended_before))
        .add(session::Column::ExpiresAt.lt(ended_before));
    let ended_sessions = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(ended.clone());
    let tokens = refresh_token::Entity::delete_many()
        .filter(
            Condition::any()
                .add(refresh_token::Column::UsedAt.lt(now - USED_REFRESH_TOKEN_KEPT))
                .add(refresh_token::Column::SessionId.in_subquery(ended_sessions.into_query())),
        )
        .exec(db)
        .await?;
    let sessions = session::Entity::delete_many()
        .filter(ended)
        .exec(db)
        .await?;
    Ok(tokens.rows_affected + sessions.rows_affected)
}

async fn revoke_session(state: &AppState, session_id: Uuid, reason: &str) -> AppResult<bool> {
    let ended = end_sessions(&state.db, None, Some(session_id), reason).await?;
    sessions_ended(state, &ended).await;
    Ok(!ended.is_empty())
}

/// The lifetime of sessions, `REELGRAPH_SESSION_TTL_DAYS`.
pub fn session_ttl(days: u64) -> chrono::Duration {
    chrono::Duration::days(i64::try_from(days).unwrap_or(30))
}

/// When `session` ends: when its lifetime, as set when it started, runs out, or sooner if
/// `REELGRAPH_SESSION_TTL_DAYS` (`ttl_days`) was lowered since: lowering it after a suspected
/// leak ends the older sessions (they refresh no more; access tokens are capped by the current
/// lifetime too). Applied where sessions are read, not written in: raising it again, or one
/// server started with another value, changes no session for good.
pub fn session_end(ttl_days: u64, session: &session::Model) -> DateTime<Utc> {
    std::cmp::min(
        session.expires_at,
        session.created_at + session_ttl(ttl_days),
    )
}

/// A session with its first refresh token; returns the session and the plain token.
async fn start_session(
    db: &impl ConnectionTrait,
    state: &AppState,
    user_id: Uuid,
    client: &ClientInfo,
    now: DateTime<Utc>,
) -> AppResult<(session::Model, String)> {
    let session = session::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        user_agent: Set(client.user_agent.clone()),
        ip_address: Set(client.ip.clone()),
        created_at: Set(now),
        last_seen_at: Set(Some(now)),
        expires_at: Set(now + session_ttl(state.config.session_ttl_days)),
        revoked_at: Set(None),
        revoked_reason: Set(None),
    }
    .insert(db)
    .await?;
    let (token, hash) = tokens::new_refresh_token();
    insert_refresh_token(db, session.id, hash, now).await?;
    Ok((session, token))
}

async fn insert_refresh_token(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    token_hash: String,
    now: DateTime<Utc>,
) -> AppResult<()> {
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        session_id: Set(session_id),
        token_hash: Set(token_hash),
        created_at: Set(now),
        used_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(())
}

fn finish(
    state: &AppState,
    user: user::Model,
    (session, refresh_token): (session::Model, String),
) -> AppResult<Authenticated> {
    let (access_token, expires_at) = state.tokens.issue(user.id, user.role, session.id)?;
    Ok(Authenticated {
        access_token,
        refresh_token,
        expires_at,
        user,
        session_id: session.id,
    })
}
