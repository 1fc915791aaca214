//! Shared application state: what every request, resolver and background task needs.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::tokens::TokenKeys, config::Config, jobs::EventBus, metrics::Metrics, storage::Storage,
};

/// Cheap to clone; lives as long as the server.
#[derive(Clone)]
pub struct AppState {
    /// Connection pool of the configured database.
    pub db: DatabaseConnection,
    /// Configuration the process was started with.
    pub config: Arc<Config>,
    /// Signs and verifies access tokens.
    pub tokens: TokenKeys,
    /// Process metrics exported at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Job change notifications of this process (fed by LISTEN with PostgreSQL).
    pub events: EventBus,
    /// Object storage (S3 or the local folder).
    pub storage: Storage,
    /// Long-lived connections (WebSockets), which shutdown waits for.
    pub connections: tokio_util::task::TaskTracker,
    /// Cancelled when the process starts shutting down: long-lived tasks (WebSockets, workers)
    /// watch it to finish cleanly.
    pub shutdown: CancellationToken,
    /// Counts sign-in and registration attempts per client address and account.
    pub sign_in: Arc<crate::auth::throttle::SignInThrottle>,
    /// Sessions ended while their access tokens may still be unexpired.
    pub revoked: Arc<crate::auth::revoked::RevokedSessions>,
    /// Answers to anonymous queries, until what they read changes.
    pub read_cache: Arc<crate::graphql::read_cache::ReadCache>,
}
