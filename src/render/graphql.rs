//! `renderMovie`: validate, check assets, reserve minutes and enqueue, all or nothing.

use std::collections::BTreeMap;

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{JobKind, job};
use futures_util::{StreamExt, TryStreamExt};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use super::{
    jobs::MovieInput,
    spec::{self, MovieSpecInput},
};
use crate::{
    db::RowLock,
    error::{AppError, AppResult},
    graphql::{parse_id, state, viewer},
    jobs::{
        NewJob,
        graphql::{Job, JobPriority},
        queue,
    },
    storage::PRESIGN_TTL,
};

#[derive(InputObject)]
pub struct RenderMovieInput {
    pub spec: MovieSpecInput,
    /// `NORMAL` when left out or null.
    #[graphql(default_with = "Some(JobPriority::Normal)")]
    pub priority: Option<JobPriority>,
    /// Repeating a request with the same key (while its job is unfinished) returns that job
    /// instead of rendering again; the same key with a different spec, priority, `creatorId`
    /// or `callbackUrl` is a `CONFLICT` (image layers may name other uploads of their
    /// pictures: a retried upload gets new keys). 1–255 characters.
    pub idempotency_key: Option<String>,
    /// Render on behalf of a creator you manage (its members then see the job).
    pub creator_id: Option<ID>,
    /// POSTed a signed JSON notice when the render ends (DONE, FAILED or CANCELLED), with
    /// retries: `{event: "job.finished", deliveryId, job: {id, type, status, error, outputUrl,
    /// …}}`, header `Reelgraph-Signature: t=…,v1=…` (HMAC-SHA256 of `"<t>.<body>"` with
    /// `me { webhookSecret }`). An absolute http(s) URL, at most 2048 bytes; a
    /// non-public IP address is refused unless the server allows private callbacks.
    pub callback_url: Option<String>,
}

/// What a `renderMovie` fingerprint covers, for the `CONFLICT` of a reused key.
const REQUEST_FIELDS: &str = "spec, priority, creatorId or callbackUrl";

/// The unfinished `render.movie` an idempotency key already names, if the same request made it.
/// The fingerprint leaves out which uploads image layers name (a retried flow uploads its
/// pictures again, under new keys), so where a layer names another upload than the job's,
/// the two pictures' bytes are compared: another picture is another request. Only here, on a
/// retry, are pictures read: a first request hashes none.
async fn same_request(
    storage: &crate::storage::Storage,
    existing: job::Model,
    fingerprint: &str,
    pictures: &[String],
) -> AppResult<Job> {
    let existing = queue::same_request(existing, super::MOVIE_JOB, fingerprint, REQUEST_FIELDS)?;
    // A job written before its request was fingerprinted may not compare layer by layer; its
    // first answer stands, as it did.
    let earlier: Vec<String> =
        match serde_json::from_value::<super::jobs::MovieInput>(existing.input.clone()) {
            Ok(input) => input
                .spec
                .asset_keys()
                .map(|(_, key)| key.to_owned())
                .collect(),
            Err(_) => return Ok(Job(existing)),
        };
    if earlier.len() != pictures.len() {
        return Ok(Job(existing));
    }
    let conflict = |why: &str| {
        AppError::conflict(
            Some("input.idempotencyKey"),
            format!(
                "this idempotency key belongs to an unfinished job of a different request \
                 ({why}): use a new key"
            ),
        )
    };
    // The pairs of uploads to compare, once each. Sizes first (a look-up each): pictures of
    // other sizes are other pictures. Only what is left is read and hashed, at most
    // MAX_COMPARED_BYTES in all, so a retry cannot make the request read gigabytes. The job's
    // picture gone (it could not render either) counts as another picture.
    let pairs: std::collections::BTreeSet<(&str, &str)> = earlier
        .iter()
        .zip(pictures)
        .filter(|(before, now)| before != now)
        .map(|(before, now)| (before.as_str(), now.as_str()))
        .collect();
    let mut sizes: std::collections::HashMap<&str, Option<u64>> = std::collections::HashMap::new();
    let mut hashed: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for &(before, now) in &pairs {
        for key in [before, now] {
            if !sizes.contains_key(key) {
                sizes.insert(key, storage.head(key).await?.map(|found| found.size));
            }
        }
        match (sizes[before], sizes[now]) {
            (Some(a), Some(b)) if a == b => {
                hashed.insert(before);
                hashed.insert(now);
            }
            _ => return Err(conflict("an image layer shows another picture")),
        }
    }
    let total: u64 = hashed.iter().filter_map(|key| sizes[key]).sum();
    if total > MAX_COMPARED_BYTES {
        return Err(conflict(
            "its image layers name too many other uploads to compare their pictures",
        ));
    }
    let mut digests: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    for key in hashed {
        let digest = match crate::media::hash::object_sha256(storage, key).await {
            Ok(digest) => digest,
            Err(_) if earlier.iter().any(|k| k == key) => {
                return Err(conflict("an image layer shows another picture"));
            }
            Err(e) => return Err(e.into()),
        };
        digests.insert(key, digest);
    }
    if pairs
        .iter()
        .any(|(before, now)| digests.get(before) != digests.get(now))
    {
        return Err(conflict("an image layer shows another picture"));
    }
    Ok(Job(existing))
}

/// The most bytes of pictures a retried `renderMovie` reads to compare the uploads its image
/// layers name with its job's ([`same_request`]).
const MAX_COMPARED_BYTES: u64 = 256 << 20;

/// Largest image a render takes as an asset.
pub const MAX_ASSET_BYTES: u64 = 20 << 20;

/// Picture uploads (`requestAssetUpload`) an account may ask for in a day (administrators:
/// any number).
pub const MAX_ASSET_UPLOADS_PER_DAY: u64 = 500;

/// Image types an image layer may use, and the extension their key gets.
const ASSET_TYPES: [(&str, &str); 3] = [
    ("image/png", "png"),
    ("image/jpeg", "jpg"),
    ("image/webp", "webp"),
];

#[derive(InputObject)]
pub struct RequestAssetUploadInput {
    /// `image/png`, `image/jpeg` or `image/webp`.
    pub content_type: String,
    /// The file's size in bytes, 1 to 20 MiB (checked again when a render uses it).
    pub size_bytes: i64,
}

/// Where to upload an image for movie specs' image layers.
#[derive(SimpleObject)]
pub struct AssetUpload {
    /// The `assetKey` to use in `ImageLayerInput` once the file is uploaded.
    pub asset_key: String,
    /// PUT the file here, with `uploadHeaders`: a body of exactly `sizeBytes` bytes (any other
    /// length is refused, and nothing is stored).
    pub upload_url: String,
    /// Headers the PUT must send (e.g. `content-type`; with S3 also `content-length`, which
    /// browsers set themselves).
    pub upload_headers: Json<BTreeMap<String, String>>,
    /// When `uploadUrl` stops working (10 minutes after the request).
    pub expires_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct RenderMutation;

#[Object]
impl RenderMutation {
    /// An upload URL for an image (PNG, JPEG or WebP, up to 20 MiB) that movie specs' image
    /// layers can then name by the returned `assetKey`. Only its uploader (and administrators)
    /// may render with it. The picture stays until no render has named it for the server's
    /// retention period (30 days by default); an account may ask for 500 uploads a day
    /// (`RATE_LIMITED` past that).
    async fn request_asset_upload(
        &self,
        ctx: &Context<'_>,
        input: RequestAssetUploadInput,
    ) -> AppResult<AssetUpload> {
        let user = viewer(ctx)?.require_user()?.clone();
        let state = state(ctx)?;
        let Some((content_type, extension)) = ASSET_TYPES
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(input.content_type.trim()))
        else {
            return Err(AppError::bad_input(
                "input.contentType",
                "must be image/png, image/jpeg or image/webp",
            ));
        };
        if !(1..=MAX_ASSET_BYTES as i64).contains(&input.size_bytes) {
            return Err(AppError::bad_input(
                "input.sizeBytes",
                format!("must be 1 byte to {} MiB", MAX_ASSET_BYTES >> 20),
            ));
        }
        // Each upload is recorded (the upkeep removes pictures no render uses), and an
        // account may ask for so many a day.
        let now = Utc::now();
        let txn = queue::begin_write(&state.db).await?;
        if !viewer(ctx)?.is_admin() {
            // The owner's row locked (PostgreSQL; SQLite's write transaction holds the whole
            // database): requests at once count one after the other.
            entity::user::Entity::find_by_id(user.id)
                .for_no_key_update(&txn)
                .one(&txn)
                .await?;
            let today = entity::asset::Entity::find()
                .filter(entity::asset::Column::OwnerId.eq(user.id))
                .filter(entity::asset::Column::CreatedAt.gt(now - chrono::TimeDelta::days(1)))
                .count(&txn)
                .await?;
            if today >= MAX_ASSET_UPLOADS_PER_DAY {
                txn.rollback().await?;
                return Err(AppError::rate_limited(
                    format!(
                        "at most {MAX_ASSET_UPLOADS_PER_DAY} picture uploads a day; a picture \
                     uploaded before can be named again by its assetKey"
                    ),
                    None,
                ));
            }
        }
        let asset_key = format!("assets/{}/{}.{extension}", user.id, Uuid::now_v7());
        entity::asset::Entity::insert(entity::asset::ActiveModel {
            key: Set(asset_key.clone()),
            owner_id: Set(user.id),
            created_at: Set(now),
            used_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        // Taken before presigning, so the URL never outlives the time announced.
        let expires_at = Utc::now()
            + chrono::TimeDelta::from_std(PRESIGN_TTL)
                .unwrap_or_else(|_| chrono::TimeDelta::minutes(10));
        let presigned = state
            .storage
            .presign_put(
                &asset_key,
                content_type,
                input.size_bytes.unsigned_abs(),
                PRESIGN_TTL,
            )
            .await?;
        Ok(AssetUpload {
            asset_key,
            upload_url: presigned.url,
            upload_headers: Json(presigned.headers),
            expires_at,
        })
    }

    /// Renders a movie spec to an MP4. Returns the `render.movie` job at once; follow it with
    /// `jobUpdated`, and download `outputUrl` once it is DONE. The spec's output minutes are
    /// reserved against your plan (and credits past it) when the job is created.
    async fn render_movie(&self, ctx: &Context<'_>, input: RenderMovieInput) -> AppResult<Job> {
        let viewer = viewer(ctx)?;
        let user = viewer.require_user()?.clone();
        let state = state(ctx)?;
        let movie = spec::validate("input.spec", &input.spec)?;
        let callback = input
            .callback_url
            .as_deref()
            .map(|url| {
                crate::jobs::webhooks::validate_callback_url(
                    "input.callbackUrl",
                    url,
                    state.config.webhook_allow_private,
                )
            })
            .transpose()?;
        if let Some(key) = &input.idempotency_key {
            queue::check_idempotency_key("input.idempotencyKey", key)?;
        }
        let creator_id = match &input.creator_id {
            Some(id) => {
                // As for uploads: creators are public, so one that exists but is not the
                // caller's is FORBIDDEN, and only a missing one NOT_FOUND.
                let id = parse_id("input.creatorId", id)?;
                if entity::creator::Entity::find_by_id(id)
                    .one(&state.db)
                    .await?
                    .is_none()
                {
                    return Err(AppError::NotFound("creator"));
                }
                viewer.ensure_manages_creator(&state.db, id).await?;
                Some(id)
            }
            None => None,
        };
        // Each picture looked up once, however many layers show it, a few at a time (up to
        // 100 of them, one object storage round trip each).
        let mut distinct = std::collections::HashSet::new();
        let keys: Vec<String> = movie
            .asset_keys()
            .map(|(_, key)| key)
            .filter(|key| distinct.insert(*key))
            .map(str::to_owned)
            .collect();
        let (owner_prefix, admin) = (format!("assets/{}/", user.id), viewer.is_admin());
        let storage = state.storage.clone();
        let looked_up = move |key: String| {
            let own = admin || key.starts_with(&owner_prefix);
            let storage = storage.clone();
            async move {
                let size = match own && crate::storage::valid_key(&key) {
                    true => storage.head(&key).await?.map(|found| found.size),
                    false => None,
                };
                AppResult::Ok((key, size))
            }
        };
        let sizes: std::collections::HashMap<String, Option<u64>> =
            futures_util::stream::iter(keys)
                .map(looked_up)
                .buffer_unordered(8)
                .try_collect()
                .await?;
        for (path, key) in movie.asset_keys() {
            let Some(size) = sizes.get(key).copied().flatten() else {
                return Err(AppError::bad_input(
                    format!("input.spec.{path}"),
                    "no such asset among yours (upload it with requestAssetUpload first)",
                ));
            };
            if size > MAX_ASSET_BYTES {
                return Err(AppError::bad_input(
                    format!("input.spec.{path}"),
                    format!("the asset is larger than {} MiB", MAX_ASSET_BYTES >> 20),
                ));
            }
        }
        super::mark_assets_used(&state.db, movie.asset_keys().map(|(_, key)| key)).await?;
        let pictures: Vec<String> = movie.asset_keys().map(|(_, key)| key.to_owned()).collect();

        let priority = input.priority.unwrap_or(JobPriority::Normal).value();
        // Which uploaded picture an image layer names is left out: a client retrying its whole
        // flow uploads its pictures again, under new keys, and must get its first job back
        // (their bytes are compared then: `same_request`).
        let mut spec_shape = json!(movie);
        for layer in spec_shape["scenes"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .filter_map(|scene| scene["layers"].as_array_mut())
            .flatten()
        {
            if let Some(layer) = layer.as_object_mut() {
                layer.remove("asset_key");
            }
        }
        let fingerprint = super::plan::sha256_hex(&super::plan::canonical_json(&json!({
            "spec": spec_shape,
            "priority": priority,
            "creatorId": creator_id,
            "callbackUrl": callback,
        })));
        let txn = queue::begin_write(&state.db).await?;
        if let Some(key) = &input.idempotency_key
            && let Some(existing) = queue::find_unfinished_by_key(&txn, user.id, key).await?
        {
            txn.rollback().await?;
            return same_request(&state.storage, existing, &fingerprint, &pictures).await;
        }
        let minutes = movie.total_secs() / 60.0;
        let mut movie_input = json!(MovieInput {
            spec: movie,
            reservation: None
        });
        movie_input[queue::REQUEST_KEY] = fingerprint.clone().into();
        let notified = callback.is_some();
        crate::jobs::webhooks::attach(&mut movie_input, callback);
        let mut new = NewJob::new(JobKind::Render, super::MOVIE_JOB, user.id, movie_input);
        new.priority = priority;
        new.idempotency_key = input.idempotency_key;
        new.creator_id = creator_id;
        let enqueued = queue::enqueue(&txn, new).await?;
        if enqueued.existing {
            // A request with the same key committed its job between our look-up and our
            // insert: that job is the answer, and its minutes are already reserved.
            txn.rollback().await?;
            return same_request(&state.storage, enqueued.job, &fingerprint, &pictures).await;
        }
        if notified {
            crate::jobs::webhooks::pin_secret(&txn, &state.tokens, user.id).await?;
        }
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
