//! `video.probe`: turns a completed upload into a `READY` video with a thumbnail and a 720p
//! proxy, or a `FAILED` one whose `failure_reason` tells the uploader what to do.
//!
//! The handler downloads the original once, re-checks it against what `completeVideoUpload`
//! verified (the presigned PUT stays valid for a while, so the object could have been
//! replaced since), probes it, renders both renditions, stores them, and then writes the
//! variant rows and the video's new state in one transaction, so a `READY` video always has
//! its variants. Running it again after a crash redoes the work and overwrites the same keys.
//!
//! Failures are sorted by who can fix them. A bad file fails the video at once, for good. A
//! server problem (storage, database, tools) is retried by the jobs engine; only the last
//! attempt fails the video. A cancelled job or a lost lease leaves the video alone.

use std::path::Path;

use entity::{VideoStatus, video};
use sea_orm::{ActiveEnum, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    PROXY_720P, Profile, THUMBNAIL,
    encode::{self, SourceFacts, ToolError},
    hash, keys,
    record::{self, Rendition, Verified},
};
use crate::{
    jobs::handlers::{JobContext, JobFailure, JobHandler, Outcome},
    render::ffmpeg,
};

/// Input of `video.probe` (written by `completeVideoUpload`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeInput {
    pub video_id: Uuid,
}

/// What the uploader reads when the server, not their file, kept the video from processing.
const SERVER_REASON: &str = "the video could not be processed because of a server problem, not your file; retry the job later";

/// Why processing stopped.
enum Failure {
    /// The file is unusable: the video fails with this reason, and retrying will not help.
    File(String),
    /// A server problem; the message is for the job's `error`.
    Server { message: String, retryable: bool },
    /// The job itself stopped (cancelled, lease lost, video gone): leave the video alone.
    Stopped(JobFailure),
}

impl From<JobFailure> for Failure {
    fn from(failure: JobFailure) -> Self {
        Self::Stopped(failure)
    }
}

impl From<ToolError> for Failure {
    fn from(err: ToolError) -> Self {
        match err {
            ToolError::File(reason) => Self::File(reason),
            ToolError::Server(message) => Self::Server {
                message,
                retryable: true,
            },
        }
    }
}

fn server(context: &str, detail: impl std::fmt::Display) -> Failure {
    tracing::warn!(%detail, "video.probe: {context}");
    Failure::Server {
        message: format!("{context} failed"),
        retryable: true,
    }
}

/// Object storage or the database did not answer: tried again with backoff, its attempts
/// not used up during the outage grace (as renders and shorts are), and the video left
/// PROCESSING meanwhile. A storage restart of a few seconds failed every upload being
/// processed, whose owners had to retry each by hand. A job that fails for good leaves its
/// video FAILED ([`super::on_job_finished`]).
fn outage(context: &str, detail: impl std::fmt::Display) -> Failure {
    tracing::warn!(%detail, "video.probe: {context}");
    Failure::Stopped(JobFailure::unavailable(format!("{context} failed"), detail))
}

fn db_failure(context: &str) -> impl FnOnce(DbErr) -> Failure + '_ {
    move |err| outage(context, err)
}

pub struct ProbeVideo;

#[async_trait::async_trait]
impl JobHandler for ProbeVideo {
    async fn run(&self, ctx: &JobContext) -> Result<Outcome, JobFailure> {
        let input: ProbeInput = ctx.input()?;
        match process(ctx, input.video_id).await {
            Ok(outcome) => Ok(outcome),
            Err(Failure::Stopped(failure)) => Err(failure),
            Err(Failure::File(reason)) => {
                mark_failed(ctx, input.video_id, &reason).await?;
                Err(JobFailure::permanent(reason))
            }
            Err(Failure::Server { message, retryable }) => {
                if !retryable || ctx.job.attempts >= ctx.job.max_attempts {
                    mark_failed(ctx, input.video_id, SERVER_REASON).await?;
                }
                Err(if retryable {
                    JobFailure::transient(message)
                } else {
                    JobFailure::permanent(message)
                })
            }
        }
    }
}

async fn process(ctx: &JobContext, video_id: Uuid) -> Result<Outcome, Failure> {
    let found = video::Entity::find_by_id(video_id)
        .one(ctx.db())
        .await
        .map_err(db_failure("reading the video"))?;
    let Some(video) = found.filter(|v| v.deleted_at.is_none()) else {
        return Err(JobFailure::permanent("the video was deleted").into());
    };
    match video.status {
        VideoStatus::Processing => {}
        // A run after success (a crash between commit and finish): nothing left to do.
        VideoStatus::Ready => {
            return Ok(Outcome::Done {
                output: json!({ "video_id": video.id, "already_ready": true }),
                output_ref: Some(keys::variant(video.creator_id, video.id, PROXY_720P)),
            });
        }
        // `retryJob` after a failure: process again.
        VideoStatus::Failed => record::reopen(ctx.db(), video_id, ctx.held())
            .await
            .map_err(db_failure("reopening the video"))?,
        other => {
            return Err(JobFailure::permanent(format!(
                "the video is {} and not waiting for processing",
                other.to_value()
            ))
            .into());
        }
    }

    // Tried again: ffmpeg installed meanwhile is found by a later check. Its install hints
    // and variables are the operator's, in the log; the uploader reads that processing is
    // unavailable (as a render's job says).
    let tools = ffmpeg::check().await.map_err(|detail| {
        tracing::error!(job_id = %ctx.job.id, detail, "videos cannot be processed: ffmpeg is missing or broken");
        Failure::Server {
            message: "video processing is unavailable on this server for now".to_owned(),
            retryable: true,
        }
    })?;
    let dir = crate::jobs::work_folders::create(ctx.job.id)
        .map_err(|e| server("creating a work folder", e))?;
    let original = dir.path().join("original");

    ctx.progress(0.01, Some("downloading")).await?;
    let stored = ctx
        .storage
        .head(&video.storage_key)
        .await
        .map_err(|e| outage("reading the upload's metadata", e))?;
    if stored.is_none() {
        return Err(Failure::File(
            "the file could not be read: the upload is missing from storage; upload it again"
                .to_owned(),
        ));
    }
    ctx.storage
        .get_to_file(&video.storage_key, &original)
        .await
        .map_err(|e| outage("downloading the upload", e))?;

    ctx.progress(0.05, Some("verifying")).await?;
    let size = tokio::fs::metadata(&original)
        .await
        .map_err(|e| server("reading the download", e))?
        .len();
    if size == 0 {
        return Err(Failure::File("the file is empty".to_owned()));
    }
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let sha256 = hash::file_sha256(&original)
        .await
        .map_err(|e| server("hashing the upload", e))?;
    let checked_up_to = super::graphql::hash_inline_bytes(&ctx.storage);
    same_file(
        video.size_bytes,
        video.sha256.as_deref(),
        (size, &sha256),
        checked_up_to,
    )
    .map_err(Failure::File)?;

    ctx.progress(0.1, Some("probing")).await?;
    let mut probe = ffmpeg::probe(&tools, &original)
        .await
        .map_err(|e| encode::probe_error(&e, &original))?;
    // A recording made in a browser (MediaRecorder's WebM) or a live capture says nothing of
    // its length: it is read from its packets.
    let usable = |d: Option<f64>| d.is_some_and(|d| d.is_finite() && d > 0.0);
    if probe.has_video && !usable(probe.duration_secs) && !usable(probe.video_duration_secs) {
        probe.video_duration_secs = ffmpeg::scan_duration(&tools, &original).await;
    }
    let facts = encode::judge(&probe, &video.original_filename).map_err(Failure::File)?;

    ctx.progress(0.15, Some("thumbnail")).await?;
    let thumbnail = dir.path().join("thumbnail.jpg");
    make_thumbnail(&tools, &original, &facts, &thumbnail).await?;

    ctx.progress(0.2, Some("transcoding")).await?;
    let proxy = dir.path().join("proxy.mp4");
    let args = encode::proxy_args(&original, &proxy);
    transcode(ctx, &tools, &args, facts.duration_secs, &original).await?;
    // A file cut off in its upload (or damaged) can claim more than it holds: its length is
    // what its packets span, or shorts past that end came out padded and the duration was
    // wrong. Only looked for when the proxy came out shorter, and read from the file's own
    // packets: the proxy also comes out shorter for a last frame held long (a slideshow, a
    // screen recording of a still screen), which the packets keep.
    let shorter =
        |d: Option<f64>| d.filter(|d| d.is_finite() && *d > 0.0 && *d < facts.duration_secs - 0.5);
    let proxy_secs = ffmpeg::probe(&tools, &proxy)
        .await
        .ok()
        .and_then(|p| p.duration_secs);
    let held = match shorter(proxy_secs) {
        Some(_) => shorter(ffmpeg::scan_duration(&tools, &original).await),
        None => None,
    };
    let facts = match held {
        Some(held) => {
            tracing::info!(
                video_id = %video.id,
                claimed = facts.duration_secs,
                held,
                "the file holds less than its container claims"
            );
            encode::SourceFacts {
                duration_secs: held,
                ..facts
            }
        }
        None => facts,
    };

    ctx.progress(0.9, Some("storing")).await?;
    let verified = Verified {
        facts: &facts,
        size,
        sha256: &sha256,
    };
    let stored = store_and_record(ctx, &tools, &video, verified, &thumbnail, &proxy).await;
    let renditions = match stored {
        Ok(Some(renditions)) => renditions,
        unrecorded => {
            // Stored (or some of them) but not what the video shows: deleted or changed
            // meanwhile (its files may have been removed before these were stored), cancelled
            // while storing, or failed. They go now, or a FAILED or deleted video kept them.
            remove_unrecorded(ctx, &video).await;
            return Err(unrecorded.err().unwrap_or_else(|| {
                JobFailure::permanent("the video was deleted or changed while it was processed")
                    .into()
            }));
        }
    };
    let proxy_key = renditions[1].key.clone();

    let variants: serde_json::Map<String, serde_json::Value> = renditions
        .iter()
        .map(|r| (r.profile.name.to_owned(), json!(r.key)))
        .collect();
    Ok(Outcome::Done {
        output: json!({
            "video_id": video.id,
            "duration_secs": facts.duration_secs,
            "width": facts.width,
            "height": facts.height,
            "mime": facts.mime,
            "variants": variants,
        }),
        // `Job.outputUrl` then downloads the proxy.
        output_ref: Some(proxy_key),
    })
}

/// Takes the thumbnail at the usual moment, or the first frame when that moment yields none
/// (some files' first keyframe comes late, or their length is misreported).
async fn make_thumbnail(
    tools: &ffmpeg::Tools,
    original: &Path,
    facts: &SourceFacts,
    output: &Path,
) -> Result<(), Failure> {
    for at in [encode::thumbnail_at(facts.duration_secs), 0.0] {
        let args = encode::thumbnail_args(original, at, output);
        ffmpeg::run(tools, &args, 0.0, |_| {})
            .await
            .map_err(|e| encode::ffmpeg_error(&e, original))?;
        let written = tokio::fs::metadata(output).await.is_ok_and(|m| m.len() > 0);
        if written {
            return Ok(());
        }
    }
    Err(Failure::File(
        "the file could not be read: no picture could be decoded from it".to_owned(),
    ))
}

/// Runs the proxy encode, passing ffmpeg's progress to the job (0.2 → 0.9). Dropping this
/// future (cancellation) kills ffmpeg.
async fn transcode(
    ctx: &JobContext,
    tools: &ffmpeg::Tools,
    args: &[String],
    expected_secs: f64,
    original: &Path,
) -> Result<(), Failure> {
    const FROM: f64 = 0.2;
    const TO: f64 = 0.9;
    let (tx, mut rx) = watch::channel(0.0_f64);
    let encode = ffmpeg::run(tools, args, expected_secs, move |p| {
        tx.send_replace(p);
    });
    let report = async {
        while rx.changed().await.is_ok() {
            let p = *rx.borrow_and_update();
            ctx.progress(FROM + (TO - FROM) * p, Some("transcoding"))
                .await?;
        }
        Ok::<_, JobFailure>(())
    };
    tokio::pin!(encode);
    let result = tokio::select! {
        result = &mut encode => result,
        reported = report => {
            reported?;
            encode.await
        }
    };
    result.map_err(|e| encode::ffmpeg_error(&e, original).into())
}

/// Probes a rendition and uploads it under the video's variant key.
/// Stores the thumbnail and the proxy and makes the video READY with them; `None` when the
/// video was no longer waiting for them (deleted or changed meanwhile).
async fn store_and_record(
    ctx: &JobContext,
    tools: &ffmpeg::Tools,
    video: &video::Model,
    verified: Verified<'_>,
    thumbnail: &Path,
    proxy: &Path,
) -> Result<Option<[Rendition; 2]>, Failure> {
    let renditions = [
        store(ctx, tools, video, THUMBNAIL, thumbnail).await?,
        store(ctx, tools, video, PROXY_720P, proxy).await?,
    ];
    ctx.progress(0.97, Some("storing")).await?;
    let saved = record::ready(ctx.db(), video, verified, &renditions, ctx.held())
        .await
        .map_err(db_failure("saving the results"))?;
    Ok(saved.then_some(renditions))
}

/// Removes the renditions a run stored (at their fixed keys) but could not record: when the
/// video was deleted (its files may have been removed before these were stored), or when this
/// run still holds its job and the video is not READY (it failed or was cancelled while
/// storing: a FAILED video keeps no thumbnail or proxy). Not when the job went to another run
/// (a lost lease): that run stores and records the same keys, and a READY video's files are
/// the run's that recorded them.
async fn remove_unrecorded(ctx: &JobContext, video: &video::Model) {
    let db = ctx.db();
    let now = match video::Entity::find_by_id(video.id).one(db).await {
        Ok(now) => now,
        Err(err) => {
            tracing::warn!(video_id = %video.id, error = %err, "could not read the video to remove its unrecorded renditions");
            return;
        }
    };
    let deleted = now.as_ref().is_none_or(|v| v.deleted_at.is_some());
    let remove = deleted
        || (now.is_some_and(|v| v.status != VideoStatus::Ready)
            && video::Entity::find_by_id(video.id)
                .filter(ctx.held())
                .one(db)
                .await
                .is_ok_and(|held| held.is_some()));
    if !remove {
        return;
    }
    for profile in [THUMBNAIL, PROXY_720P] {
        let key = keys::variant(video.creator_id, video.id, profile);
        if let Err(err) = ctx.storage.delete(&key).await {
            tracing::warn!(key, error = %err, "could not remove a rendition that was not recorded");
        }
    }
}

async fn store(
    ctx: &JobContext,
    tools: &ffmpeg::Tools,
    video: &video::Model,
    profile: Profile,
    file: &Path,
) -> Result<Rendition, Failure> {
    let size = tokio::fs::metadata(file)
        .await
        .map_err(|e| server("reading a rendition", e))?
        .len();
    // Our own output: if ffprobe cannot read it, the server is at fault.
    let probe = ffmpeg::probe(tools, file)
        .await
        .map_err(|e| server("probing a rendition", e))?;
    let key = keys::variant(video.creator_id, video.id, profile);
    ctx.storage
        .put_file(&key, file, profile.mime)
        .await
        .map_err(|e| outage("storing a rendition", e))?;
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let bitrate = probe
        .duration_secs
        .filter(|d| *d > 0.0 && profile.mime.starts_with("video/"))
        .and_then(|d| {
            let bits_per_sec = (size as f64 * 8.0 / d).round();
            i32::try_from(bits_per_sec as i64).ok()
        });
    Ok(Rendition {
        profile,
        key,
        size,
        width: probe.width,
        height: probe.height,
        bitrate,
    })
}

/// Fails a processing video with a reason for its uploader. When even that cannot be written,
/// the job is retried, so the video does not stay PROCESSING for ever.
async fn mark_failed(ctx: &JobContext, video_id: Uuid, reason: &str) -> Result<(), JobFailure> {
    record::failed(ctx.db(), video_id, reason, ctx.held())
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, %video_id, "video.probe: could not mark the video failed");
            JobFailure::transient("could not record the video's failure")
        })
}

/// Whether the stored file (`size` bytes, `sha256`) is the one the upload promised and
/// `completeVideoUpload` accepted (`promised_size`, `promised_sha256`).
/// Whether the file is the one `completeVideoUpload` accepted; that call checked the SHA-256
/// of files up to `checked_up_to` bytes itself.
fn same_file(
    promised_size: Option<i64>,
    promised_sha256: Option<&str>,
    (size, sha256): (i64, &str),
    checked_up_to: u64,
) -> Result<(), String> {
    let replaced = || "the file was replaced after the upload was completed; upload it again";
    if promised_size.is_some_and(|s| s != size) {
        return Err(replaced().to_owned());
    }
    match promised_sha256.map(str::trim) {
        Some(promised) if !promised.eq_ignore_ascii_case(sha256) => {
            // A file too large to hash when the upload was completed was not checked then:
            // it is simply not the one promised, as `completeVideoUpload` says of a smaller one.
            if u64::try_from(size).is_ok_and(|s| s > checked_up_to) {
                Err(format!(
                    "the uploaded file's SHA-256 is {sha256}, not the promised {promised}: \
                     upload the right file with a new requestVideoUpload"
                ))
            } else {
                Err(replaced().to_owned())
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_file_not_the_promised_one_is_told_apart_from_a_replaced_one() {
        let big = (600_i64) << 20;
        let limit = 512 << 20;
        let wrong =
            same_file(Some(big), Some("aa"), (big, "bb"), limit).expect_err("not the promised");
        assert!(wrong.contains("not the promised aa"), "{wrong}");
        let small = same_file(Some(10), Some("aa"), (10, "bb"), limit).expect_err("replaced");
        assert!(small.contains("replaced"), "{small}");
        assert!(same_file(Some(10), None, (11, "bb"), limit).is_err());
        assert!(same_file(Some(10), Some(" AA "), (10, "aa"), limit).is_ok());
    }
}
