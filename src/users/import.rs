//! `reelgraph admin import-users`: accounts brought over from the platform Reelgraph replaces,
//! with the password hashes they already have, so nobody has to reset a password.
//!
//! The input is JSON Lines, one account per line:
//!
//! ```json
//! {"email": "ana@example.com", "passwordHash": "$2b$12$…", "displayName": "Ana", "role": "CREATOR"}
//! ```
//!
//! Optional too: `isActive`, `isVerified`, `credits`, `createdAt`, `avatarUrl`,
//! `onboardingCompleted` and `notificationPreferences` (`digestEnabled`, `digestFrequency`:
//! daily or weekly). Every field may also be named in snake_case, as the platforms' tables
//! name their columns (`password_hash` or `hashed_password`, `created_at`, …), and `username`
//! is the display name when there is no `displayName`. `role` is ADMIN, CREATOR or VIEWER, or
//! a platform's `user` (VIEWER), `admin` or `team` (CREATOR). `createdAt` is RFC 3339, or without an offset (`TIMESTAMP`
//! columns, naive Python datetimes) read as UTC. Any other key (a table's `id`, `updated_at`)
//! is refused, naming it: export these columns only.
//!
//! Every line is checked before anything is written, and every problem is reported with its
//! line number and field (a `createdAt` before 1970 too: an id tells its time only from then).
//! Then all new accounts are written in one transaction: either all of them land or none does.
//! Accounts whose email already exists are left exactly as they are, so running the same file
//! again imports nothing twice; so is one created while the import runs (a sign-up, the same
//! file imported at the same time), which the report then lists with the existing ones. A bcrypt or older Argon2 hash is
//! replaced by an Argon2id one the first time its owner signs in.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use entity::{DigestFrequency, UserRole, user};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TryInsertResult,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    auth::{normalize_display_name, normalize_email, password},
    billing::credits,
    error::{AppError, AppResult},
};

/// Ledger reason of a balance carried over by an import.
pub const REASON_IMPORT: &str = "imported balance";
/// Rows per INSERT (SQLite allows 32,766 bound values per statement).
const INSERT_CHUNK: usize = 500;
/// Problems listed before the rest are only counted.
const MAX_REPORTED: usize = 50;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Line {
    email: String,
    #[serde(alias = "password_hash", alias = "hashed_password")]
    password_hash: String,
    #[serde(default, alias = "display_name")]
    display_name: Option<String>,
    /// The display name where a table has none beside it (the video-generation platform's).
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default, alias = "is_active")]
    is_active: Option<bool>,
    #[serde(default, alias = "is_verified")]
    is_verified: Option<bool>,
    #[serde(default)]
    credits: Option<i64>,
    /// Read by [`created_at`]: with or without an offset.
    #[serde(default, alias = "created_at")]
    created_at: Option<String>,
    #[serde(default, alias = "avatar_url")]
    avatar_url: Option<String>,
    #[serde(default, alias = "onboarding_completed")]
    onboarding_completed: Option<bool>,
    #[serde(default, alias = "notification_preferences")]
    notification_preferences: Option<Preferences>,
}

/// E-mail digest preferences, as Reelgraph's API names them or as the knowledge-base platform
/// stores them (`{"digest_enabled": true, "digest_frequency": "daily"}`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Preferences {
    #[serde(default, alias = "digest_enabled")]
    digest_enabled: Option<bool>,
    #[serde(default, alias = "digest_frequency")]
    digest_frequency: Option<String>,
}

/// One checked account, ready to insert.
#[derive(Debug, Clone)]
pub struct ImportedUser {
    /// 1-based line of the input it came from.
    pub line: usize,
    pub email: String,
    password_hash: String,
    display_name: Option<String>,
    role: UserRole,
    is_active: bool,
    is_verified: bool,
    credits: i64,
    created_at: DateTime<Utc>,
    avatar_url: Option<String>,
    onboarding_completed: bool,
    digest_enabled: bool,
    digest_frequency: DigestFrequency,
}

/// What [`import`] did (or, with `dry_run`, would do).
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Emails of the accounts created, in input order.
    pub imported: Vec<String>,
    /// Emails that already had an account, left unchanged, in input order.
    pub existing: Vec<String>,
    /// How many of the imported accounts carry a hash that sign-in will upgrade to Argon2id.
    pub to_upgrade: usize,
}

/// Reads and checks every line. Errors: one message per problem, `line N: field: reason`
/// (at most [`MAX_REPORTED`], then a count of the rest).
pub fn parse(text: &str, now: DateTime<Utc>) -> Result<Vec<ImportedUser>, Vec<String>> {
    let mut users = Vec::new();
    let mut problems = Vec::new();
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    // A byte-order mark (editors on Windows write one) is not part of the first line.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        // An object, field by name: serde would also take a JSON array as the fields in order.
        let line = match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(value) if value.is_object() => value,
            Ok(_) => {
                problems.push(format!(
                    "line {number}: not a JSON object (one account per line, as {{\"email\": …}})"
                ));
                continue;
            }
            Err(err) => {
                problems.push(format!("line {number}: {}", json_problem(&err)));
                continue;
            }
        };
        // A value of the wrong type is reported with the field it is in.
        let line = match serde_path_to_error::deserialize::<_, Line>(line) {
            Ok(line) => line,
            Err(err) => {
                let field = err.path().to_string();
                let message = json_problem(err.inner());
                problems.push(match field.as_str() {
                    // Missing and unknown fields: serde's message names them.
                    "." => format!("line {number}: {message}"),
                    field => format!("line {number}: {field}: {message}"),
                });
                continue;
            }
        };
        match check(number, line, now) {
            Ok(user) => match first_line_of.get(&user.email) {
                Some(first) => problems.push(format!(
                    "line {number}: email: {} is also on line {first}",
                    user.email
                )),
                None => {
                    first_line_of.insert(user.email.clone(), number);
                    users.push(user);
                }
            },
            Err(err) => problems.push(match err {
                AppError::BadInput { field, message } => {
                    format!("line {number}: {field}: {message}")
                }
                other => format!("line {number}: {}", other.public_message()),
            }),
        }
    }
    if problems.is_empty() {
        return Ok(users);
    }
    if problems.len() > MAX_REPORTED {
        let rest = problems.len() - MAX_REPORTED;
        problems.truncate(MAX_REPORTED);
        problems.push(format!("… and {rest} more"));
    }
    Err(problems)
}

/// serde_json's message without its "at line 1 column N" (each input line is its own
/// document; the column stays useful, so it is kept in a shorter form).
fn json_problem(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(message, _)| message);
    // Serde names Rust's types ("expected i64"); the file's reader knows JSON's.
    let message = message.replace("expected i64", "expected a whole number");
    if err.is_syntax() || err.is_eof() {
        format!("not a JSON object ({message}, column {})", err.column())
    } else {
        message.to_owned()
    }
}

fn check(number: usize, line: Line, now: DateTime<Utc>) -> AppResult<ImportedUser> {
    let email = normalize_email("email", &line.email)?;
    password::validate_imported_hash("passwordHash", &line.password_hash)?;
    let display_name = match (&line.display_name, &line.username) {
        (None, Some(username)) => normalize_display_name("username", Some(username))?,
        (name, _) => normalize_display_name("displayName", name.as_deref())?,
    };
    let role = match line.role.as_deref().map(str::trim) {
        None => UserRole::Viewer,
        Some(role) if role.eq_ignore_ascii_case("ADMIN") => UserRole::Admin,
        Some(role) if role.eq_ignore_ascii_case("CREATOR") => UserRole::Creator,
        Some(role) if role.eq_ignore_ascii_case("VIEWER") => UserRole::Viewer,
        // The roles of a platform whose `role` column says 'user' (its default) | 'admin' |
        // 'team': its users watch, its team makes.
        Some(role) if role.eq_ignore_ascii_case("user") => UserRole::Viewer,
        Some(role) if role.eq_ignore_ascii_case("team") => UserRole::Creator,
        Some(other) => {
            return Err(AppError::bad_input(
                "role",
                format!(
                    "{other:?} is not a role: use ADMIN, CREATOR or VIEWER (or a platform's \
                     user, admin or team)"
                ),
            ));
        }
    };
    let credits = line.credits.unwrap_or(0);
    if !(0..=credits::MAX_GRANT).contains(&credits) {
        return Err(AppError::bad_input(
            "credits",
            format!("must be between 0 and {}", credits::MAX_GRANT),
        ));
    }
    let created_at = match line.created_at.as_deref() {
        None => now,
        Some(text) => created_at(text)?,
    };
    if created_at > now {
        return Err(AppError::bad_input("createdAt", "is in the future"));
    }
    // An id tells its time (UUIDv7), from 1970 on: an earlier date (often an exporter's zero
    // time, 0001-01-01) would list the account out of order.
    if created_at < DateTime::UNIX_EPOCH {
        return Err(AppError::bad_input(
            "createdAt",
            "is before 1970: leave it out (or null) to date the account at the import",
        ));
    }
    let preferences = line.notification_preferences;
    let digest_frequency = match preferences
        .as_ref()
        .and_then(|p| p.digest_frequency.as_deref())
        .map(str::trim)
    {
        None => DigestFrequency::Daily,
        Some(f) if f.eq_ignore_ascii_case("DAILY") => DigestFrequency::Daily,
        Some(f) if f.eq_ignore_ascii_case("WEEKLY") => DigestFrequency::Weekly,
        Some(other) => {
            return Err(AppError::bad_input(
                "notificationPreferences.digestFrequency",
                format!("{other:?} is not a frequency: use DAILY or WEEKLY"),
            ));
        }
    };
    let avatar_url = match line.avatar_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(url) => Some(crate::creators::validate::url("avatarUrl", url)?),
    };
    Ok(ImportedUser {
        avatar_url,
        onboarding_completed: line.onboarding_completed.unwrap_or(false),
        digest_enabled: preferences.and_then(|p| p.digest_enabled).unwrap_or(false),
        digest_frequency,
        line: number,
        email,
        password_hash: line.password_hash,
        display_name,
        role,
        is_active: line.is_active.unwrap_or(true),
        is_verified: line.is_verified.unwrap_or(false),
        credits,
        created_at,
    })
}

/// An account's creation time: RFC 3339 (`2024-01-02T03:04:05Z`, `…+02:00`), or a date and
/// time without an offset, read as UTC, as a `TIMESTAMP` column or a naive Python datetime
/// gives it (`2024-01-02T03:04:05.123456`, `2024-01-02 03:04:05`).
fn created_at(text: &str) -> AppResult<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    // PostgreSQL's text form of `timestamptz`: a space, and an offset of hours only.
    if let Ok(at) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Ok(at.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|at| at.and_utc())
        .ok_or_else(|| {
            AppError::bad_input(
                "createdAt",
                format!(
                    "{text:?} is not a date and time: use RFC 3339 (2024-01-02T03:04:05Z), or \
                     2024-01-02T03:04:05 for UTC"
                ),
            )
        })
}

/// Creates the accounts whose email is not taken yet, all in one transaction, with a ledger
/// row for each carried-over credit balance. With `dry_run`, only reports.
pub async fn import(
    db: &DatabaseConnection,
    users: Vec<ImportedUser>,
    dry_run: bool,
) -> AppResult<ImportReport> {
    // A write transaction from the start: on SQLite, a read transaction that later writes
    // fails when another write (a live server's) came in between.
    let txn = crate::jobs::queue::begin_write(db).await?;
    let mut taken: HashSet<String> = HashSet::new();
    for chunk in users.chunks(INSERT_CHUNK) {
        let emails = chunk.iter().map(|u| u.email.as_str());
        taken.extend(
            user::Entity::find()
                .filter(user::Column::Email.is_in(emails))
                .all(&txn)
                .await?
                .into_iter()
                .map(|u| u.email),
        );
    }
    let order: Vec<String> = users.iter().map(|u| u.email.clone()).collect();
    let (existing, new): (Vec<ImportedUser>, Vec<ImportedUser>) =
        users.into_iter().partition(|u| taken.contains(&u.email));
    let mut report = ImportReport {
        imported: new.iter().map(|u| u.email.clone()).collect(),
        existing: existing.into_iter().map(|u| u.email).collect(),
        to_upgrade: new
            .iter()
            .filter(|u| password::is_outdated(&u.password_hash))
            .count(),
    };
    if dry_run || new.is_empty() {
        txn.rollback().await?;
        return Ok(report);
    }
    let now = Utc::now();
    // Ids are time-ordered (UUIDv7) and lists page by them: an account made years ago gets an
    // id of that time, not of the import's, so it is listed where it belongs.
    let new: Vec<(Uuid, ImportedUser)> = new
        .into_iter()
        .map(|u| {
            let id = Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                u64::try_from(u.created_at.timestamp()).unwrap_or(0),
                u.created_at.timestamp_subsec_nanos(),
            ));
            (id, u)
        })
        .collect();
    let mut inserted: HashSet<Uuid> = HashSet::new();
    for chunk in new.chunks(INSERT_CHUNK) {
        let rows = chunk.iter().map(|(id, u)| user::ActiveModel {
            id: Set(*id),
            email: Set(u.email.clone()),
            password_hash: Set(u.password_hash.clone()),
            display_name: Set(u.display_name.clone()),
            avatar_url: Set(u.avatar_url.clone()),
            role: Set(u.role),
            is_active: Set(u.is_active),
            is_verified: Set(u.is_verified),
            credits: Set(0),
            created_at: Set(u.created_at),
            updated_at: Set(now),
            onboarding_completed: Set(u.onboarding_completed),
            digest_enabled: Set(u.digest_enabled),
            digest_frequency: Set(u.digest_frequency),
        });
        // An account created meanwhile with one of these emails (a sign-up, another import
        // of the same file) is left as it is, as one that was there before.
        if let TryInsertResult::Inserted(ids) = user::Entity::insert_many(rows.collect::<Vec<_>>())
            .on_conflict_do_nothing_on([user::Column::Email])
            .exec_with_returning_keys(&txn)
            .await?
        {
            inserted.extend(ids);
        }
    }
    let (created, meanwhile): (Vec<_>, Vec<_>) =
        new.iter().partition(|(id, _)| inserted.contains(id));
    if !meanwhile.is_empty() {
        report.imported = created.iter().map(|(_, u)| u.email.clone()).collect();
        report.to_upgrade = created
            .iter()
            .filter(|(_, u)| password::is_outdated(&u.password_hash))
            .count();
        let meanwhile: HashSet<&str> = meanwhile.iter().map(|(_, u)| u.email.as_str()).collect();
        // Back in input order among the others.
        report.existing = order
            .iter()
            .filter(|email| taken.contains(*email) || meanwhile.contains(email.as_str()))
            .cloned()
            .collect();
    }
    let balances = created
        .iter()
        .filter(|(_, u)| u.credits > 0)
        .map(|(id, u)| (*id, u.credits));
    for (id, amount) in balances {
        credits::apply(&txn, id, amount, REASON_IMPORT, None)
            .await?
            .ok_or_else(|| AppError::internal("import", "an imported account vanished"))?;
    }
    txn.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn creation_times_with_an_offset_keep_it_and_without_one_are_utc() {
        for (text, expected) in [
            ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05+00:00"),
            ("2024-01-02T05:04:05+02:00", "2024-01-02T03:04:05+00:00"),
            // PostgreSQL's text form of a timestamptz.
            ("2024-01-02 05:04:05.5+02", "2024-01-02T03:04:05.500+00:00"),
            // A TIMESTAMP column, a naive Python datetime.
            (
                "2024-01-02T03:04:05.123456",
                "2024-01-02T03:04:05.123456+00:00",
            ),
            ("2024-01-02 03:04:05", "2024-01-02T03:04:05+00:00"),
        ] {
            let at = super::created_at(text).map_err(|e| e.public_message());
            assert_eq!(
                at.map(|at| at.to_rfc3339()).as_deref(),
                Ok(expected),
                "{text}"
            );
        }
        for text in ["2024-01-02", "yesterday", "2024-13-02T03:04:05", ""] {
            assert!(super::created_at(text).is_err(), "{text}");
        }
    }
}
