//! The jobs API: `job`, `jobs`, `cancelJob`, `retryJob`, and the live `jobUpdated` and
//! `jobsUpdated` subscriptions.
//!
//! A subscription subscribes to the event bus *before* it reads its snapshot, then emits
//! every newer version (`seq`), so no change — above all no terminal status — slips between
//! the read and the subscribe. Events are hints: the row is re-read for each. A subscriber
//! that falls behind the bounded bus gets `Lagged`, and answers it by re-reading the latest
//! state (coalescing), never by queueing without bound.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{Context, Enum, ID, Object, Subscription};
use chrono::{DateTime, Utc};
use entity::{JobKind, JobStatus, job};
use futures_util::Stream;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::{events::BusMessage, is_terminal, lifecycle};
use crate::{
    access::Viewer,
    error::{AppError, AppResult},
    graphql::{
        loaders,
        loaders::{JobById, JobChildren},
        pagination::{Page, PageArgs, RelayConnection, TotalCount, fetch_page},
        parse_id, state, viewer,
    },
    state::AppState,
};

/// How urgently a job should run.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPriority {
    Low,
    Normal,
    High,
}

impl JobPriority {
    pub fn value(self) -> i32 {
        match self {
            Self::Low => job::PRIORITY_LOW,
            Self::Normal => job::PRIORITY_NORMAL,
            Self::High => job::PRIORITY_HIGH,
        }
    }

    fn from_value(value: i32) -> Self {
        match value {
            v if v <= job::PRIORITY_LOW => Self::Low,
            v if v >= job::PRIORITY_HIGH => Self::High,
            _ => Self::Normal,
        }
    }
}

/// A unit of background work and where it stands.
pub struct Job(pub job::Model);

impl Job {
    /// A `render.scene` job's scene as planned (its input's `planned`).
    fn planned_scene(&self) -> Option<&serde_json::Value> {
        (self.0.job_type == crate::render::SCENE_JOB)
            .then(|| self.0.input.get("planned"))
            .flatten()
    }
}

#[Object]
impl Job {
    pub(crate) async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn kind(&self) -> JobKind {
        self.0.kind
    }
    /// What runs: `render.movie`, `render.scene`, `render.assemble`, `render.short`, `video.probe`, …
    #[graphql(name = "type")]
    async fn job_type(&self) -> &str {
        &self.0.job_type
    }
    async fn status(&self) -> JobStatus {
        self.0.status
    }
    async fn priority(&self) -> JobPriority {
        JobPriority::from_value(self.0.priority)
    }
    /// 0.0–1.0; never goes backwards within one attempt.
    async fn progress(&self) -> f64 {
        crate::graphql::to_millionths(self.0.progress)
    }
    async fn current_phase(&self) -> Option<&str> {
        self.0.current_phase.as_deref()
    }
    /// Attempts started so far (a retry after a crash or an error is a new attempt).
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn max_attempts(&self) -> i32 {
        self.0.max_attempts
    }
    /// Why the job failed (or, while it is queued for a retry, why the last attempt failed).
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// A cancel was requested and the worker is stopping the job.
    async fn cancel_requested(&self) -> bool {
        self.0.cancel_requested
    }
    /// Prepaid credits this job took, net of refunds (a render past the plan's minutes, say;
    /// 0 when it took none). For its owner and administrators; null otherwise.
    async fn cost_credits(&self, ctx: &Context<'_>) -> AppResult<Option<i64>> {
        let viewer = viewer(ctx)?;
        let own = viewer.user().is_some_and(|u| u.id == self.0.owner_id);
        if !own && !viewer.is_admin() {
            return Ok(None);
        }
        let cost = loaders(ctx)?
            .load_one(crate::graphql::loaders::JobCreditCost(self.0.id))
            .await?;
        Ok(Some(cost.unwrap_or(0)))
    }
    /// Monotonic version of this job; grows with every change.
    async fn version(&self) -> i64 {
        self.0.seq
    }
    async fn parent(&self, ctx: &Context<'_>) -> AppResult<Option<Job>> {
        let Some(parent_id) = self.0.parent_id else {
            return Ok(None);
        };
        let state = state(ctx)?;
        let parent = loaders(ctx)?.load_one(JobById(parent_id)).await?;
        match parent {
            Some(parent) if can_see(viewer(ctx)?, &state.db, &parent).await? => {
                Ok(Some(Job(parent)))
            }
            _ => Ok(None),
        }
    }
    /// Child jobs of its latest attempt, oldest first (e.g. one `render.scene` per distinct scene, then
    /// `render.assemble`); `jobs(parentId:)` lists those of every attempt.
    #[graphql(
        complexity = "crate::graphql::pagination::connection_complexity(first, last, child_complexity)"
    )]
    async fn children(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<RelayConnection<Job>> {
        let args = PageArgs::new(first, after, last, before)?;
        let db = &state(ctx)?.db;
        let select = job::Entity::find()
            .filter(job::Column::ParentId.eq(self.0.id))
            .filter(
                Condition::any()
                    .add(job::Column::ParentAttempt.is_null())
                    .add(job::Column::ParentAttempt.eq(self.0.attempts)),
            );
        let total = TotalCount::of(db, select);
        // Batched with the other jobs of a list.
        let rows = loaders(ctx)?
            .load_one(JobChildren {
                parent: self.0.id,
                attempt: self.0.attempts,
                page: args,
            })
            .await?
            .unwrap_or_default();
        Ok(Page::from_rows(rows, args).into_connection(|j| j.id, Job, total))
    }
    /// A download URL of the job's output once it is DONE; it works for 10 minutes. For a
    /// creator's job, only while the caller is on its team (or an administrator). A child's
    /// output (a movie's scenes, its assembled file) only once its parent is DONE as well.
    async fn output_url(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        let Some(key) = self
            .0
            .output_ref
            .as_deref()
            .filter(|_| self.0.status == JobStatus::Done)
        else {
            return Ok(None);
        };
        if !may_use(viewer(ctx)?, &state(ctx)?.db, &self.0).await? {
            return Ok(None);
        }
        // A movie cancelled or failed gives its minutes back, and so its parts are not given:
        // its scenes rendered before the cancel, or its whole file when the cancel landed as
        // the assembly finished.
        if let Some(parent) = self.0.parent_id {
            let parent = loaders(ctx)?.load_one(JobById(parent)).await?;
            if !parent.is_some_and(|parent| parent.status == JobStatus::Done) {
                return Ok(None);
            }
        }
        let url = state(ctx)?
            .storage
            .presign_get(key, crate::storage::PRESIGN_TTL)
            .await?;
        Ok(Some(url))
    }
    /// For `render.scene`: served from the scene cache instead of being rendered (by this
    /// attempt: a clip an earlier attempt stored counts as cached).
    async fn cached(&self) -> bool {
        self.0.cached
    }
    /// For `render.scene`: the `id` of the scene of the movie's spec it renders (which scene
    /// failed, or came from the cache); null for other jobs. A scene the movie shows more than
    /// once (the same scene under other ids) is rendered by one job, its first showing's.
    async fn scene_id(&self) -> Option<&str> {
        self.planned_scene()?["scene_id"].as_str()
    }
    /// For `render.scene`: the position of its scene in the movie's spec, from 0 (its first
    /// showing's, for a scene the movie shows more than once); null for other jobs.
    async fn scene_index(&self) -> Option<i32> {
        self.planned_scene()?["index"]
            .as_u64()
            .and_then(|i| i32::try_from(i).ok())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

/// Owners, administrators, and members of the job's creator see a job.
pub async fn can_see(
    viewer: &Viewer,
    db: &DatabaseConnection,
    job: &job::Model,
) -> AppResult<bool> {
    let Some(user) = viewer.user() else {
        return Ok(false);
    };
    if user.id == job.owner_id || viewer.is_admin() {
        return Ok(true);
    }
    match job.creator_id {
        Some(creator_id) => viewer.manages_creator(db, creator_id).await,
        None => Ok(false),
    }
}

/// Whether the caller may have the job's output and run it again: for a creator's job, a
/// member of its team (one removed from it keeps seeing the jobs they started, but no longer
/// gets the creator's media from them); for a personal one, its owner. Administrators may.
async fn may_use(viewer: &Viewer, db: &DatabaseConnection, job: &job::Model) -> AppResult<bool> {
    let Some(user) = viewer.user() else {
        return Ok(false);
    };
    match job.creator_id {
        _ if viewer.is_admin() => Ok(true),
        // Read afresh in a subscription, whose memberships may be a moment old: the output
        // is the creator's media.
        Some(creator_id) => viewer.manages_creator_now(db, creator_id).await,
        None => Ok(user.id == job.owner_id),
    }
}

/// The job, if the caller may see it; `NOT_FOUND` otherwise.
async fn visible_job(viewer: &Viewer, db: &DatabaseConnection, id: Uuid) -> AppResult<job::Model> {
    viewer.require_user()?;
    match job::Entity::find_by_id(id).one(db).await? {
        Some(job) if can_see(viewer, db, &job).await? => Ok(job),
        _ => Err(AppError::NotFound("job")),
    }
}

/// Jobs the caller may list: their own, and (for members) their creators'.
async fn listable(viewer: &Viewer, db: &DatabaseConnection) -> AppResult<Condition> {
    let user = viewer.require_user()?;
    if viewer.is_admin() {
        return Ok(Condition::all());
    }
    let members = viewer.member_creator_ids(db).await?;
    let mut mine = Condition::any().add(job::Column::OwnerId.eq(user.id));
    if !members.is_empty() {
        mine = mine.add(job::Column::CreatorId.is_in(members.iter().copied()));
    }
    Ok(mine)
}

#[derive(Default)]
pub struct JobQuery;

#[Object]
impl JobQuery {
    pub(crate) async fn job(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Job>> {
        let id = parse_id("id", &id)?;
        visible_job(viewer(ctx)?, &state(ctx)?.db, id)
            .await
            .map(|j| Some(Job(j)))
    }

    /// The caller's jobs (and their creators'), newest first.
    #[graphql(
        complexity = "crate::graphql::pagination::connection_complexity(first, last, child_complexity)"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per GraphQL argument"
    )]
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(desc = "Jobs in any of these statuses; left out (or empty), in every status.")]
        status: Option<Vec<JobStatus>>,
        kind: Option<JobKind>,
        parent_id: Option<ID>,
        #[graphql(desc = "Only top-level jobs (no parent).")] root_only: Option<bool>,
    ) -> AppResult<RelayConnection<Job>> {
        let args = PageArgs::new(first, after, last, before)?;
        let db = &state(ctx)?.db;
        let mut select = job::Entity::find().filter(listable(viewer(ctx)?, db).await?);
        if let Some(status) = status.filter(|s| !s.is_empty()) {
            // Each status once: a list of thousands of repeats would bind a parameter each,
            // past what either database takes in one statement.
            let mut distinct = Vec::new();
            for one in status {
                if !distinct.contains(&one) {
                    distinct.push(one);
                }
            }
            select = select.filter(job::Column::Status.is_in(distinct));
        }
        if let Some(kind) = kind {
            select = select.filter(job::Column::Kind.eq(kind));
        }
        if let Some(parent_id) = parent_id {
            select = select.filter(job::Column::ParentId.eq(parse_id("parentId", &parent_id)?));
        }
        if root_only == Some(true) {
            select = select.filter(job::Column::ParentId.is_null());
        }
        let total = TotalCount::of(db, select.clone());
        let page = fetch_page(db, select, job::Column::Id, true, args).await?;
        Ok(page.into_connection(|j| j.id, Job, total))
    }
}

/// A `diagnostics.sleep` job: it sleeps, reporting progress.
#[derive(async_graphql::InputObject)]
pub struct DiagnosticJobInput {
    /// How long it runs (0–600000 ms).
    #[graphql(default = 1000)]
    pub duration_ms: i32,
    /// How many progress reports it makes (1–1000).
    #[graphql(default = 4)]
    pub steps: i32,
    #[graphql(default_with = "JobPriority::Normal")]
    pub priority: JobPriority,
    /// Fail instead of finishing.
    #[graphql(default = false)]
    pub fail: bool,
}

#[derive(Default)]
pub struct JobMutation;

#[Object]
impl JobMutation {
    /// Cancels a job and its children: queued ones at once, running ones within a second
    /// (their processes are killed). Cancelling a finished job changes nothing.
    async fn cancel_job(&self, ctx: &Context<'_>, id: ID) -> AppResult<Job> {
        let id = parse_id("id", &id)?;
        let state = state(ctx)?;
        visible_job(viewer(ctx)?, &state.db, id).await?;
        lifecycle::cancel(&state.db, &state.events, id)
            .await
            .map(Job)
    }

    /// Enqueues a diagnostic job that exercises the workers end to end (queue, heartbeats,
    /// progress, events). Administrators only.
    async fn run_diagnostic_job(
        &self,
        ctx: &Context<'_>,
        input: DiagnosticJobInput,
    ) -> AppResult<Job> {
        let admin = viewer(ctx)?.require_admin()?.id;
        if !(0..=600_000).contains(&input.duration_ms) {
            return Err(AppError::bad_input(
                "input.durationMs",
                "must be between 0 and 600000",
            ));
        }
        if !(1..=1000).contains(&input.steps) {
            return Err(AppError::bad_input(
                "input.steps",
                "must be between 1 and 1000",
            ));
        }
        let state = state(ctx)?;
        let mut new = super::NewJob::new(
            JobKind::Workflow,
            "diagnostics.sleep",
            admin,
            serde_json::json!({ "ms": input.duration_ms, "steps": input.steps, "fail": input.fail }),
        );
        new.priority = input.priority.value();
        let txn = super::queue::begin_write(&state.db).await?;
        let enqueued = super::queue::enqueue(&txn, new).await?;
        txn.commit().await?;
        state
            .events
            .publish(&[super::queue::event_of(&enqueued.job)])
            .await;
        Ok(Job(enqueued.job))
    }

    /// Runs a failed or cancelled job again as a new attempt. For its owner (whose plan a
    /// render's retry is billed to) or an administrator; the creator's other members see it
    /// but may not.
    async fn retry_job(&self, ctx: &Context<'_>, id: ID) -> AppResult<Job> {
        let id = parse_id("id", &id)?;
        let state = state(ctx)?;
        let viewer = viewer(ctx)?;
        let job = visible_job(viewer, &state.db, id).await?;
        if viewer.user().is_some_and(|u| u.id != job.owner_id) && !viewer.is_admin() {
            return Err(AppError::forbidden(
                "only the job's owner can retry it (a retry is billed to them)",
            ));
        }
        if !may_use(viewer, &state.db, &job).await? {
            return Err(AppError::forbidden(
                "you are no longer on the team of this job's creator",
            ));
        }
        lifecycle::retry(&state.db, &state.events, id)
            .await
            .map(Job)
    }
}

/// When a subscription that has heard nothing of its jobs reads them again: the safety net
/// for a lost event (a failed NOTIFY, a crash between commit and publish). Events of other
/// jobs do not put it off, so a busy server re-reads as an idle one does. Jittered (up to a
/// third more) so that subscriptions opened together do not re-read together.
fn reread_deadline(state: &AppState) -> tokio::time::Instant {
    let every = std::time::Duration::from_millis(state.config.subscription_reread_ms.max(10));
    tokio::time::Instant::now() + every + every.mul_f64(rand::random::<f64>() / 3.0)
}

#[derive(Default)]
pub struct JobSubscription;

#[Subscription]
impl JobSubscription {
    /// The job as it is now, then every change; completes after a terminal status. A caller
    /// who may no longer see the job (removed from its creator's team) gets `NOT_FOUND` at its
    /// next change (a team's members are read again at most every 2 seconds, and always for
    /// the job's end), and the subscription completes.
    async fn job_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = Result<Job, AppError>> + use<>, AppError> {
        let id = parse_id("id", &id)?;
        let state = state(ctx)?.clone();
        let viewer = viewer(ctx)?.clone();
        // Subscribe first, then read: a change between the two is seen as an event.
        let mut bus = state.events.subscribe();
        let snapshot = visible_job(&viewer, &state.db, id).await?;
        Ok(async_stream::stream! {
            let mut last_seq = snapshot.seq;
            let mut last_progress = snapshot.progress;
            let mut done = is_terminal(snapshot.status);
            yield Ok(Job(snapshot));
            let mut reread_at = reread_deadline(&state);
            while !done {
                let read = match tokio::time::timeout_at(reread_at, bus.recv()).await {
                    Ok(Ok(BusMessage::Job(event))) if event.job_id == id && event.seq > last_seq => {
                        reread_at = reread_deadline(&state);
                        // Shared with every other subscriber of this event.
                        state.events.job_at(id, event.seq).await
                    }
                    Ok(Ok(BusMessage::Job(_))) => continue,
                    Ok(Ok(BusMessage::Resync) | Err(RecvError::Lagged(_))) | Err(_) => {
                        reread_at = reread_deadline(&state);
                        job::Entity::find_by_id(id).one(&state.db).await.map(|r| r.map(Arc::new))
                    }
                    Ok(Err(RecvError::Closed)) => break,
                };
                match read {
                    Ok(Some(row)) if row.seq > last_seq => {
                        // Memberships are at most `LIVE_MEMBERSHIPS_FOR` old (`Viewer::live`),
                        // and read afresh for the job's end (with its output): one removed
                        // from the creator's team hears no more of its jobs.
                        if is_terminal(row.status) {
                            viewer.forget_memberships();
                        }
                        match can_see(&viewer, &state.db, &row).await {
                            Ok(true) => {}
                            Ok(false) => {
                                yield Err(AppError::NotFound("job"));
                                break;
                            }
                            Err(err) => {
                                tracing::warn!(error = ?err, job_id = %id, "jobUpdated: access check failed");
                                continue;
                            }
                        }
                        match super::events::end_passed(&state.db, &row, last_seq, last_progress).await {
                            Ok(Some(end)) => {
                                yield Ok(Job(end));
                                break;
                            }
                            Ok(None) => {}
                            Err(err) => {
                                tracing::warn!(error = %err, job_id = %id, "jobUpdated: timeline read failed");
                            }
                        }
                        last_seq = row.seq;
                        last_progress = row.progress;
                        done = is_terminal(row.status);
                        yield Ok(Job(Arc::unwrap_or_clone(row)));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, job_id = %id, "jobUpdated: re-read failed");
                    }
                }
            }
        })
    }

    /// Every change to any job the caller owns (top-level and child jobs).
    async fn jobs_updated(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Job> + use<>, AppError> {
        let state: AppState = state(ctx)?.clone();
        let owner = viewer(ctx)?.require_user()?.id;
        let now = Utc::now();
        // What a re-read reads: rows changed since the last re-read began. `updated_at` is
        // written by each writer's clock, so the cursor is this process's time less
        // `CLOCK_SLACK`, never a row's time: one stamped by a clock running ahead would move
        // it past rows stamped by the others. What was already sent is skipped (`seen`).
        let mut since = now - CLOCK_SLACK;
        // The jobs that had ended before the subscription started (read before listening): the
        // re-reads' window reaches back before the start, and a job that ended in it is not
        // news for them to send (a dashboard would show it finish twice, 30 s later). Only the
        // re-reads pass over these versions, and only these: an event heard is sent as ever
        // (listening starts before this read, so a change while it runs is heard, not left to
        // the next re-read). Jobs still under way are not taken as known.
        let mut bus = state.events.subscribe();
        let known = ended_at(&state.db, owner, since).await?;
        Ok(async_stream::stream! {
            // Versions (and progress) already sent, so a re-read after lag sends only what
            // changed.
            let mut seen = Sent::new(now);
            // Where a re-read that filled its page goes on from.
            let mut more: Option<(DateTime<Utc>, Uuid)> = None;
            // When the re-read under way began (its pages done, `since` moves to it).
            let mut reread_began = Utc::now();
            let mut reread_at = reread_deadline(&state);
            loop {
                let mut reread = true;
                let rows = if let Some(after) = more.take() {
                    changed_after(&state.db, owner, after).await
                } else {
                    reread = false;
                    match tokio::time::timeout_at(reread_at, bus.recv()).await {
                    Ok(Ok(BusMessage::Job(event))) if event.owner_id == owner => {
                        if seen.get(&event.job_id).is_some_and(|&(s, _)| s >= event.seq) {
                            continue;
                        }
                        // The re-read keeps its time (events do not put it off): it is what
                        // moves `since` on, and what finds an event that was lost meanwhile.
                        state
                            .events
                            .job_at(event.job_id, event.seq)
                            .await
                            .map(|r| r.into_iter().map(Arc::unwrap_or_clone).collect::<Vec<_>>())
                    }
                    Ok(Ok(BusMessage::Job(_))) => continue,
                    Ok(Ok(BusMessage::Resync) | Err(RecvError::Lagged(_))) | Err(_) => {
                        reread = true;
                        reread_at = reread_deadline(&state);
                        reread_began = Utc::now();
                        changed_after(&state.db, owner, (since, Uuid::nil())).await
                    }
                    Ok(Err(RecvError::Closed)) => break,
                    }
                };
                let rows = match rows {
                    Ok(rows) => rows,
                    Err(err) => {
                        tracing::warn!(error = %err, "jobsUpdated: re-read failed");
                        continue;
                    }
                };
                if reread {
                    if rows.len() as u64 >= CATCH_UP_PAGE {
                        more = rows.last().map(|row| (row.updated_at, row.id));
                    } else {
                        since = since.max(reread_began - CLOCK_SLACK);
                    }
                }
                for row in rows {
                    let before = seen.get(&row.id).copied();
                    if before.is_some_and(|(s, _)| s >= row.seq) {
                        continue;
                    }
                    if reread && before.is_none() && known.get(&row.id) == Some(&row.seq) {
                        continue;
                    }
                    // An end passed since what was sent (or, for a job not sent yet, since the
                    // subscription started) goes first.
                    let end = match before {
                        Some((after, progress)) => {
                            super::events::end_passed(&state.db, &row, after, progress).await
                        }
                        None => {
                            super::events::end_passed_since(&state.db, &row, seen.since, row.progress)
                                .await
                        }
                    };
                    match end {
                        Ok(Some(end)) => yield Job(end),
                        Ok(None) => {}
                        Err(err) => {
                            tracing::warn!(error = %err, "jobsUpdated: timeline read failed");
                        }
                    }
                    seen.insert(row.id, (row.seq, row.progress), since);
                    yield Job(row);
                }
            }
        })
    }
}

/// What `jobsUpdated` has sent of each job: its version and progress, so a re-read after lag
/// sends only what changed. Bounded: past [`Sent::LIMIT`] jobs it starts over, and moves
/// `since` up to where the re-reads have handled every change (not to now: a change of the
/// re-read under way may be an end still to send), so a job it forgot is not sent an end it
/// was sent already.
struct Sent {
    jobs: HashMap<Uuid, (i64, f64)>,
    /// Ends of jobs not in `jobs` count from here.
    since: DateTime<Utc>,
}

impl Sent {
    const LIMIT: usize = 10_000;

    fn new(now: DateTime<Utc>) -> Self {
        Self {
            jobs: HashMap::new(),
            // A second early: other servers' clocks.
            since: now - chrono::Duration::seconds(1),
        }
    }

    fn get(&self, id: &Uuid) -> Option<&(i64, f64)> {
        self.jobs.get(id)
    }

    /// Records `sent` of job `id`; `handled` is the re-reads' cursor: every change before it
    /// was read, and its ends sent.
    fn insert(&mut self, id: Uuid, sent: (i64, f64), handled: DateTime<Utc>) {
        if self.jobs.len() >= Self::LIMIT && !self.jobs.contains_key(&id) {
            self.jobs.clear();
            self.since = self.since.max(handled);
        }
        self.jobs.insert(id, sent);
    }
}

/// How far apart the clocks of the processes writing jobs may be for `jobsUpdated`'s re-reads
/// to find every change.
const CLOCK_SLACK: chrono::Duration = chrono::Duration::seconds(10);

/// Rows a `jobsUpdated` re-read reads at a time; a full page is followed by the next one.
const CATCH_UP_PAGE: u64 = 1000;

/// The owner's jobs changed after `since` that have ended, with their versions: up to
/// [`Sent::LIMIT`] of them.
async fn ended_at(
    db: &DatabaseConnection,
    owner: Uuid,
    since: DateTime<Utc>,
) -> Result<HashMap<Uuid, i64>, sea_orm::DbErr> {
    let rows: Vec<(Uuid, i64)> = job::Entity::find()
        .select_only()
        .column(job::Column::Id)
        .column(job::Column::Seq)
        .filter(job::Column::OwnerId.eq(owner))
        .filter(job::Column::UpdatedAt.gt(since))
        .filter(job::Column::Status.is_in([
            JobStatus::Done,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ]))
        .limit(Sent::LIMIT as u64)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The owner's jobs changed after `(updated_at, id)`, in that order, a page at a time.
async fn changed_after(
    db: &DatabaseConnection,
    owner: Uuid,
    (at, id): (DateTime<Utc>, Uuid),
) -> Result<Vec<job::Model>, sea_orm::DbErr> {
    job::Entity::find()
        .filter(job::Column::OwnerId.eq(owner))
        .filter(
            Condition::any().add(job::Column::UpdatedAt.gt(at)).add(
                Condition::all()
                    .add(job::Column::UpdatedAt.eq(at))
                    .add(job::Column::Id.gt(id)),
            ),
        )
        .order_by_asc(job::Column::UpdatedAt)
        .order_by_asc(job::Column::Id)
        .limit(CATCH_UP_PAGE)
        .all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past its limit `jobsUpdated`'s record starts over, and ends of the jobs it forgot count
    /// from where the re-reads had handled every change: one sent an hour ago is not sent
    /// again, one of the re-read under way still is.
    #[test]
    fn what_was_sent_is_bounded_and_forgets_no_later_than_it_clears() {
        let began = Utc::now() - chrono::Duration::hours(1);
        let handled = began + chrono::Duration::minutes(50);
        let mut sent = Sent::new(began);
        let first = Uuid::now_v7();
        sent.insert(first, (1, 0.0), handled);
        for _ in 1..Sent::LIMIT {
            sent.insert(Uuid::now_v7(), (1, 0.0), handled);
        }
        // A job already there is updated in place.
        sent.insert(first, (2, 0.5), handled);
        assert_eq!(sent.get(&first), Some(&(2, 0.5)));
        assert_eq!(sent.since, began - chrono::Duration::seconds(1));
        let last = Uuid::now_v7();
        sent.insert(last, (1, 0.0), handled);
        assert_eq!(sent.get(&first), None);
        assert_eq!(sent.get(&last), Some(&(1, 0.0)));
        // Up to what the re-reads handled, not to now (the re-read under way may hold ends).
        assert_eq!(sent.since, handled);
    }
}
