//! Enumerations stored as strings (`TEXT`/`VARCHAR` with a CHECK constraint) in the database.
//!
//! Every enum is a SeaORM [`DeriveActiveEnum`] whose stored value is the
//! UPPER_SNAKE_CASE name, and also an [`async_graphql::Enum`] (rendered with the
//! same UPPER_SNAKE_CASE names) and serde-(de)serialisable with the same names.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Account role of a user.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserRole {
    /// Full administrative access.
    #[sea_orm(string_value = "ADMIN")]
    Admin,
    /// Can manage creator profiles and upload content.
    #[sea_orm(string_value = "CREATOR")]
    Creator,
    /// Regular signed-in viewer.
    #[sea_orm(string_value = "VIEWER")]
    Viewer,
}

/// How often a user who wants e-mail digests gets one.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DigestFrequency {
    /// Once a day.
    #[sea_orm(string_value = "DAILY")]
    Daily,
    /// Once a week.
    #[sea_orm(string_value = "WEEKLY")]
    Weekly,
}

/// Lifecycle state of an uploaded video.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VideoStatus {
    /// Upload in progress.
    #[sea_orm(string_value = "UPLOADING")]
    Uploading,
    /// Ingest pipeline is running.
    #[sea_orm(string_value = "PROCESSING")]
    Processing,
    /// Fully processed and available.
    #[sea_orm(string_value = "READY")]
    Ready,
    /// Processing failed; see `failureReason`.
    #[sea_orm(string_value = "FAILED")]
    Failed,
    /// Held back (e.g. failed a safety or integrity check).
    #[sea_orm(string_value = "QUARANTINED")]
    Quarantined,
}

/// Kind of a caption track (mirrors the HTML `<track kind>`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptionKind {
    /// Same-language captions including non-speech cues.
    #[sea_orm(string_value = "CAPTIONS")]
    Captions,
    /// Translated subtitles.
    #[sea_orm(string_value = "SUBTITLES")]
    Subtitles,
    /// Audio descriptions.
    #[sea_orm(string_value = "DESCRIPTIONS")]
    Descriptions,
}

/// File format of a caption track.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptionFormat {
    /// WebVTT.
    #[sea_orm(string_value = "VTT")]
    Vtt,
    /// SubRip.
    #[sea_orm(string_value = "SRT")]
    Srt,
}

/// Where a caption track came from.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptionSource {
    /// Generated automatically.
    #[sea_orm(string_value = "AI")]
    Ai,
    /// Written or corrected by a person.
    #[sea_orm(string_value = "HUMAN")]
    Human,
    /// Imported from an external file or platform.
    #[sea_orm(string_value = "IMPORTED")]
    Imported,
}

/// What kind of content a key moment covers.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyMomentContentType {
    /// A specific technique being demonstrated.
    #[sea_orm(string_value = "TECHNIQUE")]
    Technique,
    /// An explanation of a concept.
    #[sea_orm(string_value = "CONCEPT")]
    Concept,
    /// A multi-step workflow.
    #[sea_orm(string_value = "WORKFLOW")]
    Workflow,
    /// Reference material.
    #[sea_orm(string_value = "REFERENCE")]
    Reference,
}

/// Human review state of generated content.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReviewStatus {
    /// Not reviewed yet.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Approved by a reviewer.
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    /// Rejected by a reviewer.
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
}

/// Curation state of a highlight.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HighlightStatus {
    /// Proposed by scoring, not yet curated.
    #[sea_orm(string_value = "CANDIDATE")]
    Candidate,
    /// Approved for shorts.
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    /// Rejected.
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
}

/// Output framing preset of a rendered short.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShortPreset {
    /// 9:16 portrait.
    #[sea_orm(string_value = "VERTICAL")]
    Vertical,
    /// 1:1 square.
    #[sea_orm(string_value = "SQUARE")]
    Square,
    /// 16:9 landscape.
    #[sea_orm(string_value = "HORIZONTAL")]
    Horizontal,
}

/// Render state of a short.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShortStatus {
    /// Waiting to be rendered.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Rendering.
    #[sea_orm(string_value = "PROCESSING")]
    Processing,
    /// Rendered and stored.
    #[sea_orm(string_value = "COMPLETE")]
    Complete,
    /// Rendering failed; see `error`.
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

/// Which consent flag an audit entry changed.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsentField {
    /// Inclusion in the knowledge base.
    #[sea_orm(string_value = "KB_INCLUSION")]
    KbInclusion,
    /// Use for model training.
    #[sea_orm(string_value = "TRAINING_USAGE")]
    TrainingUsage,
    /// Public display of the video.
    #[sea_orm(string_value = "PUBLIC_DISPLAY")]
    PublicDisplay,
}

/// Broad category of a background job.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobKind {
    /// An AI agent run.
    #[sea_orm(string_value = "AGENT")]
    Agent,
    /// A multi-step workflow (may have child jobs).
    #[sea_orm(string_value = "WORKFLOW")]
    Workflow,
    /// Publishing to an external platform.
    #[sea_orm(string_value = "PUBLISH")]
    Publish,
    /// Video rendering.
    #[sea_orm(string_value = "RENDER")]
    Render,
}

/// Execution state of a background job.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Waiting to be claimed by a worker.
    #[sea_orm(string_value = "QUEUED")]
    Queued,
    /// Claimed and running under a lease.
    #[sea_orm(string_value = "RUNNING")]
    Running,
    /// Waiting for child jobs to finish.
    #[sea_orm(string_value = "WAITING")]
    Waiting,
    /// Finished successfully.
    #[sea_orm(string_value = "DONE")]
    Done,
    /// Finished with an error.
    #[sea_orm(string_value = "FAILED")]
    Failed,
    /// Cancelled before completion.
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

/// Billing plan identifier (primary key of `plans`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlanCode {
    /// Free tier.
    #[sea_orm(string_value = "FREE")]
    Free,
    /// Pro tier.
    #[sea_orm(string_value = "PRO")]
    Pro,
    /// Business tier.
    #[sea_orm(string_value = "BUSINESS")]
    Business,
    /// Enterprise tier (custom limits).
    #[sea_orm(string_value = "ENTERPRISE")]
    Enterprise,
}

/// State of a billing subscription.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriptionStatus {
    /// Paid and active.
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    /// In a trial period.
    #[sea_orm(string_value = "TRIALING")]
    Trialing,
    /// Payment failed; in grace period.
    #[sea_orm(string_value = "PAST_DUE")]
    PastDue,
    /// Cancelled.
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

/// How often a subscription is billed.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillingInterval {
    /// Billed every month.
    #[sea_orm(string_value = "MONTHLY")]
    Monthly,
    /// Billed every year.
    #[sea_orm(string_value = "ANNUAL")]
    Annual,
}

/// Role of a user within a creator team.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemberRole {
    /// Owner of the creator profile.
    #[sea_orm(string_value = "OWNER")]
    Owner,
    /// Regular team member.
    #[sea_orm(string_value = "MEMBER")]
    Member,
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::resolver_utils::EnumType;
    use sea_orm::{ActiveEnum, Iterable};

    /// The stored value, the serde name and the GraphQL name of every variant
    /// must be the same UPPER_SNAKE_CASE string.
    fn check<E>(expected: &[&str])
    where
        E: EnumType + ActiveEnum<Value = String> + Iterable + Serialize + std::fmt::Debug,
    {
        let stored: Vec<String> = E::iter().map(|v| v.to_value()).collect();
        assert_eq!(
            stored,
            expected,
            "stored values of {}",
            std::any::type_name::<E>()
        );
        for item in E::items() {
            assert_eq!(
                item.value.to_value(),
                item.name,
                "GraphQL name of {:?}",
                item.value
            );
            assert_eq!(
                serde_json::to_value(item.value).ok(),
                Some(serde_json::Value::String(item.name.to_owned())),
                "serde name of {:?}",
                item.value
            );
        }
        assert_eq!(E::items().len(), expected.len());
    }

    #[test]
    fn enum_names_match_everywhere() {
        check::<UserRole>(&["ADMIN", "CREATOR", "VIEWER"]);
        check::<VideoStatus>(&["UPLOADING", "PROCESSING", "READY", "FAILED", "QUARANTINED"]);
        check::<CaptionKind>(&["CAPTIONS", "SUBTITLES", "DESCRIPTIONS"]);
        check::<CaptionFormat>(&["VTT", "SRT"]);
        check::<CaptionSource>(&["AI", "HUMAN", "IMPORTED"]);
        check::<KeyMomentContentType>(&["TECHNIQUE", "CONCEPT", "WORKFLOW", "REFERENCE"]);
        check::<ReviewStatus>(&["PENDING", "APPROVED", "REJECTED"]);
        check::<HighlightStatus>(&["CANDIDATE", "APPROVED", "REJECTED"]);
        check::<ShortPreset>(&["VERTICAL", "SQUARE", "HORIZONTAL"]);
        check::<ShortStatus>(&["PENDING", "PROCESSING", "COMPLETE", "FAILED"]);
        check::<ConsentField>(&["KB_INCLUSION", "TRAINING_USAGE", "PUBLIC_DISPLAY"]);
        check::<JobKind>(&["AGENT", "WORKFLOW", "PUBLISH", "RENDER"]);
        check::<JobStatus>(&[
            "QUEUED",
            "RUNNING",
            "WAITING",
            "DONE",
            "FAILED",
            "CANCELLED",
        ]);
        check::<PlanCode>(&["FREE", "PRO", "BUSINESS", "ENTERPRISE"]);
        check::<SubscriptionStatus>(&["ACTIVE", "TRIALING", "PAST_DUE", "CANCELLED"]);
        check::<BillingInterval>(&["MONTHLY", "ANNUAL"]);
        check::<MemberRole>(&["OWNER", "MEMBER"]);
    }
}
