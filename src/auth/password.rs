//! Argon2id password hashing, off the async threads.
//!
//! Hashing is CPU- and memory-heavy by design, so it runs under `spawn_blocking` and behind a
//! semaphore that bounds how many hashes run at once (a login flood must not exhaust memory).
//! Unknown emails are verified against a dummy hash so they cost the same time as real ones.

use std::sync::{Arc, LazyLock};

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier},
};
use tokio::sync::Semaphore;

use crate::error::{AppError, AppResult};

pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 128;

static HASHING_SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(Semaphore::new(cores * 2))
});

/// A hash of a random password with the same parameters as real ones.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut random = [0u8; 24];
    rand::fill(&mut random);
    Argon2::default()
        .hash_password(&random)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// A random password that meets the policy: 24 URL-safe characters (144 bits), for accounts
/// a command creates (`admin create`, `seed`).
pub fn generate_password() -> String {
    let mut random = [0u8; 18];
    rand::fill(&mut random);
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, random)
}

/// Checks the password policy; the error names `field`.
pub fn validate_password(field: &str, password: &str) -> AppResult<()> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(AppError::bad_input(
            field,
            format!("password must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(AppError::bad_input(
            field,
            format!("password must be at most {MAX_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
    let _slot = HASHING_SLOTS
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| AppError::internal("password hashing slots", e))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::internal("password hashing task", e))
}

/// Hashes a password into a PHC string (`$argon2id$…`).
pub async fn hash(password: String) -> AppResult<String> {
    run_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
    })
    .await?
    .map_err(|e| AppError::internal("hashing password", e))
}

/// Verifies `password` against `stored`, or against the dummy hash when there is no account,
/// so both paths take the same time. Returns true only for a real match.
pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    let has_account = stored.is_some();
    let matched = run_blocking(move || {
        let hash = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await?;
    Ok(has_account && matched)
}

/// Computes the dummy hash ahead of the first login, so that login is not the slow one.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}
