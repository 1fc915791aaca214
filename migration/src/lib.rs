//! Database migrations of ReelGraph.
//!
//! Tables are created with sea-query's schema builder (not derived from the
//! entities) and the same code runs on PostgreSQL and SQLite. Run them with
//! `Migrator::up(&db, None)`.

pub use sea_orm_migration::prelude::*;

mod common;
mod emails;
mod m20261122_000001_create_users;
mod m20261122_000002_create_creators;
mod m20261122_000003_create_videos;
mod m20261122_000004_create_jobs;
mod m20261122_000005_create_highlights;
mod m20261122_000006_seed_plans;
mod m20261122_000007_create_job_transitions;
mod m20261122_000008_protect_consent_audit;
mod m20261122_000009_index_highlights_by_rank;
mod m20261122_000010_index_hidden_consents;
mod m20261204_000011_add_job_parent_attempt;
mod m20261204_000012_index_claimable_jobs;
mod m20261205_000013_add_video_files_removed_at;
mod m20261205_000014_create_password_resets;
mod m20261205_000015_add_user_preferences;
mod m20261205_000016_create_webhook_secrets;
mod m20261205_000017_refuse_consent_audit_replace;
mod m20261205_000018_index_job_references;
mod m20261205_000019_add_credit_grant_keys;
mod m20261206_000020_index_queued_deliveries;
mod m20261206_000021_create_assets;
mod m20261206_000022_index_revoked_sessions;
mod m20261206_000023_index_video_uploaders;
mod m20261206_000024_index_video_retention;
mod m20261206_000025_nfc_emails;
mod m20261206_000026_create_storage_deletions;
mod m20261206_000027_fold_final_sigma;
mod m20261207_000028_add_usage_paid_minutes;
mod m20261207_000029_announce_content_changes;

/// Runs all migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_users::Migration),
            Box::new(m20261122_000002_create_creators::Migration),
            Box::new(m20261122_000003_create_videos::Migration),
            Box::new(m20261122_000004_create_jobs::Migration),
            Box::new(m20261122_000005_create_highlights::Migration),
            Box::new(m20261122_000006_seed_plans::Migration),
            Box::new(m20261122_000007_create_job_transitions::Migration),
            Box::new(m20261122_000008_protect_consent_audit::Migration),
            Box::new(m20261122_000009_index_highlights_by_rank::Migration),
            Box::new(m20261122_000010_index_hidden_consents::Migration),
            Box::new(m20261204_000011_add_job_parent_attempt::Migration),
            Box::new(m20261204_000012_index_claimable_jobs::Migration),
            Box::new(m20261205_000013_add_video_files_removed_at::Migration),
            Box::new(m20261205_000014_create_password_resets::Migration),
            Box::new(m20261205_000015_add_user_preferences::Migration),
            Box::new(m20261205_000016_create_webhook_secrets::Migration),
            Box::new(m20261205_000017_refuse_consent_audit_replace::Migration),
            Box::new(m20261205_000018_index_job_references::Migration),
            Box::new(m20261205_000019_add_credit_grant_keys::Migration),
            Box::new(m20261206_000020_index_queued_deliveries::Migration),
            Box::new(m20261206_000021_create_assets::Migration),
            Box::new(m20261206_000022_index_revoked_sessions::Migration),
            Box::new(m20261206_000023_index_video_uploaders::Migration),
            Box::new(m20261206_000024_index_video_retention::Migration),
            Box::new(m20261206_000025_nfc_emails::Migration),
            Box::new(m20261206_000026_create_storage_deletions::Migration),
            Box::new(m20261206_000027_fold_final_sigma::Migration),
            Box::new(m20261207_000028_add_usage_paid_minutes::Migration),
            Box::new(m20261207_000029_announce_content_changes::Migration),
        ]
    }
}
