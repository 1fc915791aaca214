//! SeaORM entities of ReelGraph: one module per table.
//!
//! The schema itself is created by the `migration` crate; these definitions
//! mirror it (column names, types and nullability).

pub mod asset;
pub mod caption_track;
pub mod consent_audit_entry;
pub mod creator;
pub mod creator_follow;
pub mod creator_member;
pub mod credit_ledger_entry;
pub mod enums;
pub mod highlight;
pub mod invite_code;
pub mod job;
pub mod job_transition;
pub mod key_moment;
pub mod password_reset;
pub mod plan;
pub mod prelude;
pub mod refresh_token;
pub mod render_plan;
pub mod render_usage;
pub mod scene_cache_entry;
pub mod session;
pub mod short;
pub mod storage_deletion;
pub mod subscription;
pub mod transcript_segment;
pub mod user;
pub mod video;
pub mod video_consent;
pub mod video_variant;
pub mod webhook_secret;

pub use enums::*;
