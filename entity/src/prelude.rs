//! Re-exports of every `Entity` type under its table-singular name.

pub use super::caption_track::Entity as CaptionTrack;
pub use super::consent_audit_entry::Entity as ConsentAuditEntry;
pub use super::creator::Entity as Creator;
pub use super::creator_follow::Entity as CreatorFollow;
pub use super::creator_member::Entity as CreatorMember;
pub use super::credit_ledger_entry::Entity as CreditLedgerEntry;
pub use super::highlight::Entity as Highlight;
pub use super::invite_code::Entity as InviteCode;
pub use super::job::Entity as Job;
pub use super::job_transition::Entity as JobTransition;
pub use super::key_moment::Entity as KeyMoment;
pub use super::password_reset::Entity as PasswordReset;
pub use super::plan::Entity as Plan;
pub use super::refresh_token::Entity as RefreshToken;
pub use super::render_plan::Entity as RenderPlan;
pub use super::render_usage::Entity as RenderUsage;
pub use super::scene_cache_entry::Entity as SceneCacheEntry;
pub use super::session::Entity as Session;
pub use super::short::Entity as Short;
pub use super::subscription::Entity as Subscription;
pub use super::transcript_segment::Entity as TranscriptSegment;
pub use super::user::Entity as User;
pub use super::video::Entity as Video;
pub use super::video_consent::Entity as VideoConsent;
pub use super::video_variant::Entity as VideoVariant;
pub use super::webhook_secret::Entity as WebhookSecret;
