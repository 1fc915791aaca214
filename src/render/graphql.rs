//! `renderMovie`: validate, check assets, reserve minutes and enqueue, all or nothing.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::Utc;
use entity::{JobKind, job};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::json;

use super::{
    jobs::MovieInput,
    spec::{self, MovieSpecInput},
};
use crate::{
    error::{AppError, AppResult},
    graphql::{parse_id, state, viewer},
    jobs::{
        NewJob,
        graphql::{Job, JobPriority},
        queue,
    },
};

#[derive(InputObject)]
pub struct RenderMovieInput {
    pub spec: MovieSpecInput,
    #[graphql(default_with = "JobPriority::Normal")]
    pub priority: JobPriority,
    /// Repeating a request with the same key (while its job is unfinished) returns that job
    /// instead of rendering again. 1–255 characters.
    pub idempotency_key: Option<String>,
    /// Render on behalf of a creator you manage (its members then see the job).
    pub creator_id: Option<ID>,
}

#[derive(Default)]
pub struct RenderMutation;

#[Object]
impl RenderMutation {
    /// Renders a movie spec to an MP4. Returns the `render.movie` job at once; follow it with
    /// `jobUpdated`, and download `outputUrl` once it is DONE. The spec's output minutes are
    /// reserved against your plan (and credits past it) when the job is created.
    async fn render_movie(&self, ctx: &Context<'_>, input: RenderMovieInput) -> AppResult<Job> {
        let viewer = viewer(ctx)?;
        let user = viewer.require_user()?.clone();
        let state = state(ctx)?;
        let movie = spec::validate("input.spec", &input.spec)?;
        if let Some(key) = &input.idempotency_key
            && (key.is_empty() || key.len() > 255)
        {
            return Err(AppError::bad_input(
                "input.idempotencyKey",
                "must be 1–255 characters",
            ));
        }
        let creator_id = match &input.creator_id {
            Some(id) => {
                let id = parse_id("input.creatorId", id)?;
                if !viewer.manages_creator(&state.db, id).await? {
                    return Err(AppError::NotFound("creator"));
                }
                Some(id)
            }
            None => None,
        };
        for (path, key) in movie.asset_keys() {
            let own = key.starts_with(&format!("assets/{}/", user.id)) || viewer.is_admin();
            let exists = own && state.storage.head(key).await?.is_some();
            if !exists {
                return Err(AppError::bad_input(
                    format!("input.spec.{path}"),
                    "no such asset among yours (upload it with requestAssetUpload first)",
                ));
            }
        }

        let txn = queue::begin_write(&state.db).await?;
        if let Some(key) = &input.idempotency_key
            && let Some(existing) = queue::find_unfinished_by_key(&txn, user.id, key).await?
        {
            txn.rollback().await?;
            return Ok(Job(existing));
        }
        let minutes = movie.total_secs() / 60.0;
        let mut new = NewJob::new(
            JobKind::Render,
            "render.movie",
            user.id,
            json!(MovieInput {
                spec: movie,
                reservation: None
            }),
        );
        new.priority = input.priority.value();
        new.idempotency_key = input.idempotency_key;
        new.creator_id = creator_id;
        let enqueued = queue::enqueue(&txn, new).await?;
        // Reserved after the insert, in the same transaction: credit ledger rows refer to the
        // job, and the job is invisible to workers until the commit.
        let reservation =
            crate::billing::reserve(&txn, user.id, minutes, Some(enqueued.job.id), Utc::now())
                .await
                .map_err(|e| e.in_field("input"))?;
        let mut job_input = enqueued.job.input.clone();
        job_input["reservation"] = json!(reservation);
        let mut row: job::ActiveModel = enqueued.job.into();
        row.input = Set(job_input);
        let job = row.update(&txn).await?;
        txn.commit().await?;
        state.events.publish(&[queue::event_of(&job)]).await;
        Ok(Job(job))
    }
}
