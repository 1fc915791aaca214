//! Sessions ended before their access tokens expire. An access token is a short-lived JWT,
//! checked without the database; this in-memory list is what makes `logout`,
//! `revokeSession`, `logoutEverywhere` and `changePassword` end a session's access tokens at
//! once, not when they run out.
//!
//! The list only needs what was revoked within one access-token lifetime: older tokens have
//! expired anyway. Each process loads that window at start (one statement) and after its
//! PostgreSQL listener reconnects; revocations made by a process go into its list directly,
//! and with PostgreSQL are announced (`pg_notify`) to every other process, whose listener adds
//! them. For what no announcement brings (`reelgraph admin create --promote` run beside an
//! embedded server; an announcement that failed) the window is read again (one indexed
//! statement): every [`REREAD_EVERY`] on SQLite, and with PostgreSQL by the listener every
//! `listen_check_ms`, however busy. No request reads the database for it.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
};

use chrono::{DateTime, Duration, Utc};
use entity::session;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

/// How often a server reads the sessions ended lately again.
pub const REREAD_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Entries kept before expired ones are swept out.
const SWEEP_ABOVE: usize = 4096;

pub struct RevokedSessions {
    /// Session id → when it was revoked.
    ended: RwLock<HashMap<Uuid, DateTime<Utc>>>,
    /// The access tokens' lifetime: a session revoked longer ago has no live token left.
    window: Duration,
}

impl RevokedSessions {
    pub fn new(access_token_ttl_secs: u64) -> Self {
        // Lifetimes are at most a day (`Config`); a little more, for clocks a second apart.
        let secs = i64::try_from(access_token_ttl_secs.min(86_400)).unwrap_or(86_400);
        Self {
            ended: RwLock::default(),
            window: Duration::seconds(secs + 60),
        }
    }

    /// Whether the session's tokens must be refused.
    pub fn contains(&self, session_id: Uuid) -> bool {
        self.ended
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&session_id)
    }

    /// Records sessions that ended at `at`.
    pub fn add(&self, ids: impl IntoIterator<Item = Uuid>, at: DateTime<Utc>) {
        let mut ended = self.ended.write().unwrap_or_else(PoisonError::into_inner);
        ended.extend(ids.into_iter().map(|id| (id, at)));
        if ended.len() > SWEEP_ABOVE {
            let horizon = Utc::now() - self.window;
            ended.retain(|_, at| *at > horizon);
        }
    }

    /// Sessions revoked before this have no unexpired access token left.
    pub fn horizon(&self) -> DateTime<Utc> {
        Utc::now() - self.window
    }

    /// Adds the sessions revoked within the window, as the database has them.
    pub async fn load(&self, db: &DatabaseConnection) -> Result<usize, sea_orm::DbErr> {
        let rows: Vec<(Uuid, Option<DateTime<Utc>>)> = session::Entity::find()
            .select_only()
            .column(session::Column::Id)
            .column(session::Column::RevokedAt)
            .filter(session::Column::RevokedAt.gt(self.horizon()))
            .into_tuple()
            .all(db)
            .await?;
        let count = rows.len();
        self.add_each(
            rows.into_iter()
                .map(|(id, at)| (id, at.unwrap_or_else(Utc::now))),
        );
        Ok(count)
    }

    /// Records sessions, each with when it ended.
    pub fn add_each(&self, rows: impl IntoIterator<Item = (Uuid, DateTime<Utc>)>) {
        let mut ended = self.ended.write().unwrap_or_else(PoisonError::into_inner);
        ended.extend(rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_revocations_are_swept_once_the_list_grows() {
        let list = RevokedSessions::new(900);
        let long_ago = Utc::now() - Duration::hours(2);
        let old: Vec<Uuid> = (0..SWEEP_ABOVE).map(|_| Uuid::now_v7()).collect();
        list.add(old.iter().copied(), long_ago);
        assert!(list.contains(old[0]));
        let fresh = Uuid::now_v7();
        list.add([fresh], Utc::now());
        assert!(list.contains(fresh));
        assert!(
            !list.contains(old[0]),
            "tokens of sessions ended 2 h ago have expired"
        );
    }
}
