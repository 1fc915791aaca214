//! Uploaded source videos: from a presigned PUT to a probed `READY` video with renditions.
//!
//! The lifecycle follows the media service's data model: `UPLOADING` → `PROCESSING` →
//! `READY`, or `FAILED` with a reason the uploader can act on.
//!
//! - [`graphql`]: `requestVideoUpload` (validate, de-duplicate by sha256 among the creator's
//!   `READY` videos, create the video in `UPLOADING`, presign the PUT) and
//!   `completeVideoUpload` (check the stored object's size and promised sha256, then move the
//!   video to `PROCESSING` and enqueue `video.probe` in one transaction); the `VideoVariant`
//!   type.
//! - [`probe`]: the `video.probe` job: ffprobe fills duration, dimensions and MIME type, ffmpeg
//!   makes a JPEG thumbnail and a 720p H.264/AAC proxy, both stored as `video_variants`.
//! - [`record`]: what that job writes — variant rows and the video's new state, together.
//! - [`encode`]: the ffmpeg/ffprobe side of that job — arguments, what ffprobe's answer means,
//!   and turning tool errors into reasons a person can read.
//! - [`hash`]: streaming SHA-256 of files and stored objects.
//! - [`validate`]: the rules of `RequestVideoUploadInput`.
//!
//! Objects live per creator and per video (the seed layout, keyed by creator instead of
//! tenant): `creators/{creatorId}/videos/{videoId}/original` and
//! `creators/{creatorId}/videos/{videoId}/variants/{profile}.{ext}`.

pub mod encode;
pub mod graphql;
pub mod hash;
pub mod probe;
pub mod record;
pub mod validate;

pub use graphql::{MediaMutation, RequestVideoUploadInput, VideoUpload, VideoVariant};

use crate::jobs::handlers::Registry;

/// The job that turns a completed upload into a `READY` (or `FAILED`) video.
pub const PROBE_JOB: &str = "video.probe";

/// `videos.pipeline_stage` once `video.probe` has run: later ingest stages count on from here.
pub const STAGE_PROBED: i32 = 1;

/// A rendition made from every upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// `video_variants.profile`, and the object's file name.
    pub name: &'static str,
    pub ext: &'static str,
    pub mime: &'static str,
}

/// A JPEG still, for lists and link previews.
pub const THUMBNAIL: Profile = Profile {
    name: "thumbnail",
    ext: "jpg",
    mime: "image/jpeg",
};

/// An H.264/AAC MP4 at most 720 pixels high: what editors and players load instead of the
/// (possibly huge, possibly exotic) original.
pub const PROXY_720P: Profile = Profile {
    name: "proxy_720p",
    ext: "mp4",
    mime: "video/mp4",
};

/// Every rendition the probe makes.
pub const PROFILES: [Profile; 2] = [THUMBNAIL, PROXY_720P];

/// Object keys of a video: everything of one video shares one prefix, so it can be listed,
/// copied or purged together.
pub mod keys {
    use uuid::Uuid;

    use super::Profile;

    fn prefix(creator_id: Uuid, video_id: Uuid) -> String {
        format!("creators/{creator_id}/videos/{video_id}")
    }

    /// The uploaded file, byte for byte.
    pub fn original(creator_id: Uuid, video_id: Uuid) -> String {
        format!("{}/original", prefix(creator_id, video_id))
    }

    /// A rendition made from the original.
    pub fn variant(creator_id: Uuid, video_id: Uuid, profile: Profile) -> String {
        format!(
            "{}/variants/{}.{}",
            prefix(creator_id, video_id),
            profile.name,
            profile.ext
        )
    }
}

/// Registers the media jobs with the worker.
pub fn register(registry: &mut Registry) {
    registry.register(PROBE_JOB, probe::ProbeVideo);
}

/// A `video.probe` that ends without a READY video (cancelled, lease lost for good, or a
/// failure the handler could not record) leaves the video FAILED rather than PROCESSING
/// forever. Runs in the job's terminal transaction; a video the handler already finished is
/// left alone.
pub async fn on_job_finished(
    txn: &sea_orm::DatabaseTransaction,
    job: &entity::job::Model,
) -> crate::error::AppResult<()> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let reason = match job.status {
        entity::JobStatus::Cancelled => "processing was cancelled; upload the video again",
        entity::JobStatus::Failed => {
            "processing failed because of a server problem; try again later"
        }
        _ => return Ok(()),
    };
    let Some(video_id) = job
        .input
        .get("video_id")
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse::<uuid::Uuid>().ok())
    else {
        return Ok(());
    };
    entity::video::Entity::update_many()
        .col_expr(
            entity::video::Column::Status,
            Expr::val(entity::VideoStatus::Failed),
        )
        .col_expr(entity::video::Column::FailureReason, Expr::val(reason))
        .col_expr(
            entity::video::Column::UpdatedAt,
            Expr::val(chrono::Utc::now()),
        )
        .filter(entity::video::Column::Id.eq(video_id))
        .filter(entity::video::Column::Status.eq(entity::VideoStatus::Processing))
        .exec(txn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn keys_follow_the_per_creator_per_video_layout() {
        let (c, v) = (Uuid::nil(), Uuid::max());
        assert_eq!(
            keys::original(c, v),
            format!("creators/{c}/videos/{v}/original")
        );
        assert_eq!(
            keys::variant(c, v, PROXY_720P),
            format!("creators/{c}/videos/{v}/variants/proxy_720p.mp4")
        );
        assert!(crate::storage::valid_key(&keys::variant(c, v, THUMBNAIL)));
    }
}
