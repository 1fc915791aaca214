//! Access tokens (short-lived HS256 JWTs) and refresh tokens (random, stored hashed).

use std::{path::Path, sync::Arc};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::UserRole;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    config::Config,
    error::{AppError, AppResult},
};

const ISSUER: &str = "reelgraph";
const MIN_SECRET_LEN: usize = 32;

/// What an access token says about its bearer.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    /// The user's role when the token was issued.
    pub role: UserRole,
    /// The session the token belongs to.
    pub sid: Uuid,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and verifies access tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenKeys {
    inner: Arc<Keys>,
}

struct Keys {
    /// The raw secret, for deriving the keys of other signatures (e.g. storage URLs).
    secret: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// How long an access token lives.
    ttl: chrono::Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        Self {
            inner: Arc::new(Keys {
                secret: secret.to_vec(),
                encoding: EncodingKey::from_secret(secret),
                decoding: DecodingKey::from_secret(secret),
                validation,
                ttl: chrono::Duration::seconds(i64::try_from(ttl_secs).unwrap_or(900)),
            }),
        }
    }

    /// Loads the secret from the configuration; in embedded mode an unset secret is generated
    /// once and kept in the data dir, with PostgreSQL it must be set.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let secret = match &config.jwt_secret {
            Some(secret) => secret.clone().into_bytes(),
            None if config.is_postgres() => anyhow::bail!(
                "JWT_SECRET is not set. With PostgreSQL every server must share one secret: \
                 set JWT_SECRET to at least {MIN_SECRET_LEN} random bytes, e.g. `export JWT_SECRET=$(openssl rand -hex 32)`"
            ),
            None => embedded_secret(&config.data_dir)?,
        };
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_LEN,
            "JWT_SECRET is too short: use at least {MIN_SECRET_LEN} bytes, e.g. `openssl rand -hex 32`"
        );
        Ok(Self::new(&secret, config.access_token_ttl_secs))
    }

    /// A key for another purpose, derived from the secret (HMAC-SHA256 of `label`), so one
    /// configured secret serves several signatures without reusing a key.
    pub fn derive_key(&self, label: &[u8]) -> [u8; 32] {
        use hmac::{Hmac, KeyInit, Mac};
        let mut out = [0u8; 32];
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.inner.secret) {
            mac.update(label);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }

    /// Issues an access token; returns it with its expiry.
    pub fn issue(
        &self,
        user_id: Uuid,
        role: UserRole,
        session_id: Uuid,
    ) -> AppResult<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let expires_at = now + self.inner.ttl;
        self.issue_with_times(user_id, role, session_id, now, expires_at)
            .map(|token| (token, expires_at))
    }

    /// Issues a token with explicit times (tests use this to make expired tokens).
    pub fn issue_with_times(
        &self,
        user_id: Uuid,
        role: UserRole,
        session_id: Uuid,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> AppResult<String> {
        let claims = Claims {
            sub: user_id,
            role,
            sid: session_id,
            iss: ISSUER.to_owned(),
            iat: issued_at.timestamp(),
            exp: expires_at.timestamp(),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.inner.encoding,
        )
        .map_err(|e| AppError::internal("signing access token", e))
    }

    /// Verifies signature, issuer and expiry. A token issued longer ago than this server's
    /// access-token lifetime (a minute's slack for clocks) is expired too, whatever its own
    /// `exp`: one issued under a longer lifetime, before a restart that shortened it, would
    /// outlive the revocations the server keeps (`RevokedSessions`, as far back as the
    /// lifetime), so a session ended since could use it again.
    pub fn verify(&self, token: &str) -> AppResult<Claims> {
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.inner.decoding, &self.inner.validation)
                .map(|data| data.claims)
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        AppError::unauthenticated("access token expired")
                    }
                    _ => AppError::unauthenticated("invalid access token"),
                })?;
        if self.lifetime_ends(&claims) < Utc::now().timestamp() {
            return Err(AppError::unauthenticated("access token expired"));
        }
        Ok(claims)
    }

    /// When a token with these claims stops being accepted, in unix seconds: at its `exp`, or
    /// a minute past the lifetime tokens are issued with now, counted from its `iat`, if that
    /// is sooner (a token issued under a longer lifetime, before a restart lowered it).
    pub fn valid_until(&self, claims: &Claims) -> i64 {
        claims.exp.min(self.lifetime_ends(claims))
    }

    /// A minute past the lifetime tokens are issued with now, from the token's `iat`.
    fn lifetime_ends(&self, claims: &Claims) -> i64 {
        let lifetime = self.inner.ttl.num_seconds().saturating_add(60);
        claims.iat.saturating_add(lifetime)
    }
}

fn embedded_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(existing) => {
            let existing = existing.trim();
            anyhow::ensure!(
                existing.len() >= MIN_SECRET_LEN,
                "{} holds no usable secret (it needs at least {MIN_SECRET_LEN} characters): \
                 delete it to have a new one generated (sessions signed with it end), or set JWT_SECRET",
                path.display()
            );
            return Ok(existing.as_bytes().to_vec());
        }
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            anyhow::bail!("reading {}: {err}", path.display());
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let mut random = [0u8; 32];
    rand::fill(&mut random);
    let secret = hex::encode(random);
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "JWT_SECRET not set: generated a random secret and saved it in the data dir");
    Ok(secret.into_bytes())
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// A new opaque refresh token (256 random bits) and the hash stored for it.
pub fn new_refresh_token() -> (String, String) {
    let mut random = [0u8; 32];
    rand::fill(&mut random);
    let token = URL_SAFE_NO_PAD.encode(random);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

/// Refresh tokens are stored as their SHA-256, so a database leak does not leak sessions.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::embedded(dir.path());
        let first = TokenKeys::from_config(&config).expect("keys");
        let (token, _) = first
            .issue(Uuid::now_v7(), UserRole::Viewer, Uuid::now_v7())
            .map_err(|e| e.public_message())
            .expect("token");
        let restarted = TokenKeys::from_config(&config).expect("keys again");
        assert!(
            restarted.verify(&token).is_ok(),
            "a restart keeps sessions valid"
        );
        assert!(dir.path().join("jwt-secret").exists());
    }

    #[test]
    fn a_token_older_than_the_current_lifetime_is_expired() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let (long, short) = (TokenKeys::new(secret, 86_400), TokenKeys::new(secret, 900));
        let now = Utc::now();
        let issued = now - chrono::Duration::hours(1);
        let token = long
            .issue_with_times(
                Uuid::now_v7(),
                UserRole::Viewer,
                Uuid::now_v7(),
                issued,
                issued + chrono::Duration::days(1),
            )
            .map_err(|e| e.public_message())
            .expect("token");
        assert!(
            long.verify(&token).is_ok(),
            "within the day it was issued for"
        );
        let err = short.verify(&token).expect_err("older than 15 minutes");
        assert_eq!(err.public_message(), "access token expired");
        let (fresh, _) = long
            .issue(Uuid::now_v7(), UserRole::Viewer, Uuid::now_v7())
            .map_err(|e| e.public_message())
            .expect("token");
        assert!(
            short.verify(&fresh).is_ok(),
            "a day's token issued just now"
        );
    }

    #[test]
    fn postgres_without_a_secret_is_refused_with_what_to_set() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::embedded(dir.path());
        config.database_url = Some("postgres://db.example/reelgraph".to_owned());
        let err = TokenKeys::from_config(&config)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("JWT_SECRET"), "{err}");
        assert!(!dir.path().join("jwt-secret").exists());

        config.jwt_secret = Some("short".to_owned());
        let err = TokenKeys::from_config(&config)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("too short"), "{err}");
    }

    #[test]
    fn an_unusable_generated_secret_names_its_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("jwt-secret"), "\n").expect("written");
        let err = TokenKeys::from_config(&Config::embedded(dir.path()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("jwt-secret holds no usable secret"), "{err}");
        // A folder where the file should be cannot be read as one: that is what is said.
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("jwt-secret")).expect("folder");
        let err = TokenKeys::from_config(&Config::embedded(dir.path()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("reading "), "{err}");
    }
}
