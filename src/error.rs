//! The one error type of the request path, and how it maps onto the API's `extensions.code`.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql has a blanket
//! `From<T: Display>` that would send any message — SQL included — straight to the client.
//! Without `Display`, the only way into `async_graphql::Error` is the `From` impl below, which
//! logs infrastructure detail once, server-side, and answers with a generic message.

use std::sync::Arc;

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, SqlErr};

/// Errors a resolver can return. Variants map 1:1 onto `extensions.code`.
#[derive(Debug, Clone)]
pub enum AppError {
    /// No valid credentials: missing, expired or forged token, wrong password.
    Unauthenticated(String),
    /// The caller can see the resource but may not do this to it.
    Forbidden(String),
    /// The resource does not exist or the caller may not see it (indistinguishable on purpose).
    NotFound(&'static str),
    /// Invalid input; `field` is the input path, e.g. `input.email`.
    BadInput { field: String, message: String },
    /// A uniqueness or state conflict.
    Conflict {
        field: Option<String>,
        message: String,
    },
    /// A plan or quota limit was reached.
    QuotaExceeded(String),
    /// Too many requests from this caller; `retry_after` is the wait in seconds where it is
    /// known (`extensions.retryAfter`).
    RateLimited {
        message: String,
        retry_after: Option<u64>,
    },
    /// The request asks for more than one request may return (code `QUERY_TOO_COMPLEX`).
    TooComplex(String),
    /// The request ran out of time and was stopped (code `INTERNAL`; the message says so).
    TimedOut(String),
    /// Anything the client cannot act on; the detail is only logged.
    Internal(Arc<str>),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(field: Option<&str>, message: impl Into<String>) -> Self {
        Self::Conflict {
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::Unauthenticated(message.into())
    }

    /// Too many requests; `retry_after`: seconds until one is taken again, where known.
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<u64>) -> Self {
        Self::RateLimited {
            message: message.into(),
            retry_after,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    /// Wraps an infrastructure failure; `context` says what was being done.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{context}: {err}").into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::BadInput { .. } => "BAD_USER_INPUT",
            Self::Conflict { .. } => "CONFLICT",
            Self::QuotaExceeded(_) => "QUOTA_EXCEEDED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::TooComplex(_) => "QUERY_TOO_COMPLEX",
            Self::Internal(_) | Self::TimedOut(_) => "INTERNAL",
        }
    }

    /// The message the client sees.
    pub fn public_message(&self) -> String {
        match self {
            Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::QuotaExceeded(m)
            | Self::RateLimited { message: m, .. }
            | Self::TooComplex(m)
            | Self::TimedOut(m) => m.clone(),
            Self::NotFound(what) => format!("{what} not found"),
            Self::BadInput { message, .. } | Self::Conflict { message, .. } => message.clone(),
            Self::Internal(_) => "internal server error".to_owned(),
        }
    }

    /// Prefixes the field path, e.g. `name` → `input.name`.
    pub fn in_field(self, prefix: &str) -> Self {
        match self {
            Self::BadInput { field, message } => Self::BadInput {
                field: format!("{prefix}.{field}"),
                message,
            },
            Self::Conflict {
                field: Some(field),
                message,
            } => Self::Conflict {
                field: Some(format!("{prefix}.{field}")),
                message,
            },
            other => other,
        }
    }
}

/// Context of the internal error a deadlock becomes ([`AppError::is_deadlock`]).
const DEADLOCK: &str = "database deadlock";

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                Self::conflict(None, "a record with these values already exists")
            }
            _ if sqlstate(&err).as_deref() == Some("40P01") => Self::internal(DEADLOCK, err),
            _ => {
                crate::db::note_if_connection_lost(&err);
                Self::internal("database", err)
            }
        }
    }
}

impl AppError {
    /// Whether PostgreSQL chose this transaction as the one to abort to break a deadlock: it
    /// holds nothing any more, and running it again succeeds once the other has gone on.
    pub fn is_deadlock(&self) -> bool {
        matches!(self, Self::Internal(detail) if detail.starts_with(DEADLOCK))
    }
}

/// The SQLSTATE of a database error, if the database gave one.
fn sqlstate(err: &DbErr) -> Option<String> {
    use sea_orm::RuntimeErr;
    use std::ops::Deref;
    if let DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) = err
        && let sea_orm::sqlx::Error::Database(db_err) = e.deref()
    {
        return db_err.code().map(|c| c.into_owned());
    }
    None
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        if let AppError::Internal(detail) = &err {
            tracing::error!(detail = %detail, "internal error in request");
        }
        let code = err.code();
        let field = match &err {
            AppError::BadInput { field, .. } => Some(field.clone()),
            AppError::Conflict { field, .. } => field.clone(),
            _ => None,
        };
        let retry_after = match &err {
            AppError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        };
        async_graphql::Error::new(err.public_message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(field) = field.filter(|f| !f.is_empty()) {
                ext.set("field", field);
            }
            if let Some(secs) = retry_after {
                ext.set("retryAfter", secs);
            }
        })
    }
}

impl AppError {
    /// This error as one about the request as a whole, before anything ran ([`request_error`]).
    pub fn into_request_error(self) -> async_graphql::ServerError {
        request_error(self.into())
    }
}

/// `err` as an error of the whole request (refused before it ran): no `path`, and no
/// `locations`, since it is not about a place in the query text.
pub fn request_error(err: async_graphql::Error) -> async_graphql::ServerError {
    let mut error = err.into_server_error(Default::default());
    error.locations.clear();
    error
}

/// Returns the unique-violation detail when `err` is one, so callers can name the field.
pub fn unique_violation(err: &DbErr) -> Option<String> {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(detail)) => Some(detail),
        _ => None,
    }
}
