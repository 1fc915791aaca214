//! Who may see and do what: the one place where the access rules of the API contract live.
//!
//! - `ADMIN` sees and does everything.
//! - Members of a creator (any role) manage that creator and everything under it.
//! - Everyone, signed in or not, sees public content: creator profiles, and videos that are
//!   `READY`, not deleted, and whose consent allows public display.
//!
//! Whatever the caller may not see is reported as `NOT_FOUND` (never `FORBIDDEN`), so ids
//! cannot be probed; `FORBIDDEN` is only for things the caller can see but not change.

use std::{collections::HashSet, sync::Arc};

use entity::{UserRole, VideoStatus, creator_member, video, video_consent};
use sea_orm::{
    ActiveEnum, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait, Query},
};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// The authenticated caller, as proven by a valid access token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: UserRole,
    pub session_id: Uuid,
}

/// The caller of one request (or one WebSocket connection). Memberships are read lazily, at
/// most once per request; a subscription's viewer keeps them for [`LIVE_MEMBERSHIPS_FOR`] at
/// most ([`Viewer::live`]), as it outlives any change to them.
#[derive(Debug, Default)]
pub struct Viewer {
    user: Option<AuthUser>,
    /// Replaced by an empty cell when a mutation may have changed them.
    memberships: std::sync::Mutex<Arc<OnceCell<Arc<HashSet<Uuid>>>>>,
    /// Memberships are kept for a short while only ([`LIVE_MEMBERSHIPS_FOR`]).
    fresh_memberships: bool,
    /// A live viewer's memberships, with when their read began.
    live_memberships: std::sync::Mutex<Option<(std::time::Instant, Arc<HashSet<Uuid>>)>>,
    /// Held while a live viewer reads its memberships.
    live_read: tokio::sync::Mutex<()>,
}

/// How long a subscription's viewer keeps the memberships it read: a job's events come several
/// times a second, and each would otherwise read them again (and each field that checks them,
/// such as `outputUrl`, once more). Before a job's last event they are read afresh
/// ([`Viewer::forget_memberships`]).
pub const LIVE_MEMBERSHIPS_FOR: std::time::Duration = std::time::Duration::from_secs(2);

/// How old a subscription's memberships may be when they decide whether a job's output (the
/// creator's media) is given: a quarter of a second, so that a parent's many children, resolved
/// for one event, share one read.
pub const OUTPUT_MEMBERSHIPS_FOR: std::time::Duration = std::time::Duration::from_millis(250);

/// Where a request came from, for sessions and audit rows.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Viewer {
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn authenticated(user: AuthUser) -> Self {
        Self {
            user: Some(user),
            ..Self::default()
        }
    }

    /// This viewer, for a subscription: it may run for hours, so a membership that ends
    /// meanwhile (a member removed from a team) ends what it grants within
    /// [`LIVE_MEMBERSHIPS_FOR`], say the creator's jobs' later events.
    pub fn live(self) -> Self {
        Self {
            fresh_memberships: true,
            ..self
        }
    }

    pub fn user(&self) -> Option<&AuthUser> {
        self.user.as_ref()
    }

    pub fn require_user(&self) -> AppResult<&AuthUser> {
        self.user
            .as_ref()
            .ok_or_else(|| AppError::unauthenticated("sign in required"))
    }

    pub fn is_admin(&self) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| u.role == UserRole::Admin)
    }

    pub fn require_admin(&self) -> AppResult<&AuthUser> {
        let user = self.require_user()?;
        if user.role == UserRole::Admin {
            Ok(user)
        } else {
            Err(AppError::forbidden("only administrators may do this"))
        }
    }

    /// Ids of the creators the caller is a member of (empty when anonymous).
    pub async fn member_creator_ids(
        &self,
        db: &DatabaseConnection,
    ) -> AppResult<Arc<HashSet<Uuid>>> {
        self.memberships_within(db, LIVE_MEMBERSHIPS_FOR).await
    }

    /// [`Self::member_creator_ids`], kept at most `max_age` by a subscription's viewer.
    async fn memberships_within(
        &self,
        db: &DatabaseConnection,
        max_age: std::time::Duration,
    ) -> AppResult<Arc<HashSet<Uuid>>> {
        let Some(user) = &self.user else {
            return Ok(Arc::default());
        };
        let read = || async {
            let ids: Vec<Uuid> = creator_member::Entity::find()
                .select_only()
                .column(creator_member::Column::CreatorId)
                .filter(creator_member::Column::UserId.eq(user.id))
                .into_tuple()
                .all(db)
                .await?;
            Ok::<_, AppError>(Arc::new(ids.into_iter().collect::<HashSet<Uuid>>()))
        };
        if self.fresh_memberships {
            let kept = || {
                self.live_memberships
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_ref()
                    .filter(|(at, _)| at.elapsed() < max_age)
                    .map(|(_, ids)| ids.clone())
            };
            if let Some(ids) = kept() {
                return Ok(ids);
            }
            // One read at a time: the fields of one event, resolved at once (a parent's
            // children and their `outputUrl`), wait for it and share it.
            let _reading = self.live_read.lock().await;
            if let Some(ids) = kept() {
                return Ok(ids);
            }
            let began = std::time::Instant::now();
            let ids = read().await?;
            *self
                .live_memberships
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((began, ids.clone()));
            return Ok(ids);
        }
        let cell = self
            .memberships
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        cell.get_or_try_init(read).await.cloned()
    }

    /// Reads the memberships again at their next use: a mutation may have changed them.
    pub fn forget_memberships(&self) {
        *self
            .memberships
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::default();
        *self
            .live_memberships
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// [`Self::manages_creator`], with a subscription's memberships at most
    /// [`OUTPUT_MEMBERSHIPS_FOR`] old rather than [`LIVE_MEMBERSHIPS_FOR`] (a request's are
    /// read at most once, as ever): for what must not reach someone removed from the team a
    /// moment ago, such as a job's `outputUrl` (in `jobsUpdated`, or a parent's `children`).
    pub async fn manages_creator_now(
        &self,
        db: &DatabaseConnection,
        creator_id: Uuid,
    ) -> AppResult<bool> {
        Ok(self
            .memberships_within(db, OUTPUT_MEMBERSHIPS_FOR)
            .await?
            .contains(&creator_id))
    }

    /// Whether the caller manages `creator_id` (admin or member).
    pub async fn manages_creator(
        &self,
        db: &DatabaseConnection,
        creator_id: Uuid,
    ) -> AppResult<bool> {
        if self.is_admin() {
            return Ok(true);
        }
        Ok(self.member_creator_ids(db).await?.contains(&creator_id))
    }

    /// Fails with `FORBIDDEN` unless the caller manages this (publicly visible) creator.
    pub async fn ensure_manages_creator(
        &self,
        db: &DatabaseConnection,
        creator_id: Uuid,
    ) -> AppResult<()> {
        self.require_user()?;
        if self.manages_creator(db, creator_id).await? {
            Ok(())
        } else {
            Err(AppError::forbidden("you are not a member of this creator"))
        }
    }

    /// The filter that limits `videos` rows to what the caller may see.
    pub async fn visible_videos(&self, db: &DatabaseConnection) -> AppResult<Condition> {
        let not_deleted = video::Column::DeletedAt.is_null();
        if self.is_admin() {
            return Ok(Condition::all().add(not_deleted));
        }
        let members = self.member_creator_ids(db).await?;
        let mut visible = Condition::any().add(public_video_condition());
        if !members.is_empty() {
            visible = visible.add(video::Column::CreatorId.is_in(members.iter().copied()));
        }
        Ok(Condition::all().add(not_deleted).add(visible))
    }

    /// Whether the caller may see this video row.
    pub async fn can_see_video(
        &self,
        db: &DatabaseConnection,
        video: &video::Model,
        public_display: bool,
    ) -> AppResult<bool> {
        if video.deleted_at.is_some() && !self.is_admin() {
            return Ok(false);
        }
        if is_public(video, public_display) {
            return Ok(true);
        }
        self.manages_creator(db, video.creator_id).await
    }
}

/// Whether everyone may see `video` (whose consent's `public_display` is given): ready, not
/// deleted, shown publicly.
pub fn is_public(video: &video::Model, public_display: bool) -> bool {
    video.deleted_at.is_none() && video.status == VideoStatus::Ready && public_display
}

/// Public videos: ready, and no consent row that turns public display off.
///
/// The constants are written into the SQL, not bound: a bound value that can change the plan
/// makes PostgreSQL plan a prepared statement again on every execution (a custom plan), and
/// planning the read path's joins cost more than running them.
fn public_video_condition() -> Condition {
    let hidden = Query::select()
        .expr(Expr::Constant(1.into()))
        .from(video_consent::Entity)
        .and_where(
            Expr::col((video_consent::Entity, video_consent::Column::VideoId))
                .equals((video::Entity, video::Column::Id)),
        )
        .and_where(
            Expr::col((video_consent::Entity, video_consent::Column::PublicDisplay))
                .eq(Expr::Constant(false.into())),
        )
        .to_owned();
    Condition::all()
        .add(
            Expr::col((video::Entity, video::Column::Status))
                .eq(Expr::Constant(VideoStatus::Ready.to_value().into())),
        )
        .add(Expr::exists(hidden).not())
}
