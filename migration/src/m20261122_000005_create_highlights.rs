//! Highlights, shorts and consent: `highlights`, `shorts`, `video_consents`,
//! `consent_audit_log`.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{drop_tables, enum_col, fk, ts_now};
use crate::m20261122_000001_create_users::Users;
use crate::m20261122_000002_create_creators::Creators;
use crate::m20261122_000003_create_videos::{KeyMoments, Videos};
use crate::m20261122_000004_create_jobs::Jobs;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Highlights {
    Table,
    Id,
    KeyMomentId,
    VideoId,
    Score,
    ScoreBreakdown,
    DurationSecs,
    Status,
    TrimStart,
    TrimEnd,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum Shorts {
    Table,
    Id,
    HighlightId,
    Preset,
    Status,
    ObjectKey,
    FileSize,
    DurationSecs,
    Error,
    ShareToken,
    CaptionsEnabled,
    JobId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum VideoConsents {
    Table,
    Id,
    VideoId,
    CreatorId,
    KbInclusion,
    TrainingUsage,
    PublicDisplay,
    Version,
    UpdatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum ConsentAuditLog {
    Table,
    Id,
    VideoConsentId,
    Version,
    Field,
    OldValue,
    NewValue,
    ChangedBy,
    IpAddress,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();

        // ---- highlights -------------------------------------------------------
        manager
            .create_table(
                Table::create()
                    .table(Highlights::Table)
                    .col(pk_uuid(Highlights::Id))
                    .col(uuid_uniq(Highlights::KeyMomentId))
                    .col(uuid(Highlights::VideoId))
                    .col(
                        double(Highlights::Score)
                            .check(Expr::col(Highlights::Score).between(0.0, 1.0)),
                    )
                    .col(json_binary(Highlights::ScoreBreakdown))
                    .col(double(Highlights::DurationSecs))
                    .col(enum_col(
                        Highlights::Status,
                        &["CANDIDATE", "APPROVED", "REJECTED"],
                        Some("CANDIDATE"),
                    ))
                    .col(double_null(Highlights::TrimStart))
                    .col(double_null(Highlights::TrimEnd))
                    .col(ts_now(Highlights::CreatedAt, db))
                    .col(ts_now(Highlights::UpdatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_highlights_key_moment_id",
                        Highlights::Table,
                        Highlights::KeyMomentId,
                        KeyMoments::Table,
                        KeyMoments::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_highlights_video_id",
                        Highlights::Table,
                        Highlights::VideoId,
                        Videos::Table,
                        Videos::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_highlights_video_id")
                    .table(Highlights::Table)
                    .col(Highlights::VideoId)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_highlights_score_id")
                    .table(Highlights::Table)
                    .col(Highlights::Score)
                    .col(Highlights::Id)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_highlights_status_score")
                    .table(Highlights::Table)
                    .col(Highlights::Status)
                    .col(Highlights::Score)
                    .take(),
            )
            .await?;

        // ---- shorts -----------------------------------------------------------
        manager
            .create_table(
                Table::create()
                    .table(Shorts::Table)
                    .col(pk_uuid(Shorts::Id))
                    .col(uuid(Shorts::HighlightId))
                    .col(enum_col(
                        Shorts::Preset,
                        &["VERTICAL", "SQUARE", "HORIZONTAL"],
                        None,
                    ))
                    .col(enum_col(
                        Shorts::Status,
                        &["PENDING", "PROCESSING", "COMPLETE", "FAILED"],
                        Some("PENDING"),
                    ))
                    .col(text_null(Shorts::ObjectKey))
                    .col(big_integer_null(Shorts::FileSize))
                    .col(double_null(Shorts::DurationSecs))
                    .col(text_null(Shorts::Error))
                    .col(string_len_null(Shorts::ShareToken, 64).unique_key())
                    .col(boolean(Shorts::CaptionsEnabled).default(false))
                    .col(uuid_null(Shorts::JobId))
                    .col(ts_now(Shorts::CreatedAt, db))
                    .col(ts_now(Shorts::UpdatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_shorts_highlight_id",
                        Shorts::Table,
                        Shorts::HighlightId,
                        Highlights::Table,
                        Highlights::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_shorts_job_id",
                        Shorts::Table,
                        Shorts::JobId,
                        Jobs::Table,
                        Jobs::Id,
                        ForeignKeyAction::SetNull,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_shorts_highlight_id")
                    .table(Shorts::Table)
                    .col(Shorts::HighlightId)
                    .take(),
            )
            .await?;

        // ---- video_consents ---------------------------------------------------
        manager
            .create_table(
                Table::create()
                    .table(VideoConsents::Table)
                    .col(pk_uuid(VideoConsents::Id))
                    .col(uuid_uniq(VideoConsents::VideoId))
                    .col(uuid(VideoConsents::CreatorId))
                    .col(boolean(VideoConsents::KbInclusion).default(false))
                    .col(boolean(VideoConsents::TrainingUsage).default(false))
                    .col(boolean(VideoConsents::PublicDisplay).default(true))
                    .col(integer(VideoConsents::Version).default(0))
                    .col(uuid_null(VideoConsents::UpdatedBy))
                    .col(ts_now(VideoConsents::CreatedAt, db))
                    .col(ts_now(VideoConsents::UpdatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_video_consents_video_id",
                        VideoConsents::Table,
                        VideoConsents::VideoId,
                        Videos::Table,
                        Videos::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_video_consents_creator_id",
                        VideoConsents::Table,
                        VideoConsents::CreatorId,
                        Creators::Table,
                        Creators::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_video_consents_updated_by",
                        VideoConsents::Table,
                        VideoConsents::UpdatedBy,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::SetNull,
                    ))
                    .take(),
            )
            .await?;

        // ---- consent_audit_log ------------------------------------------------
        // Append-only: deleting a consent row or a user with audit entries is refused.
        manager
            .create_table(
                Table::create()
                    .table(ConsentAuditLog::Table)
                    .col(pk_uuid(ConsentAuditLog::Id))
                    .col(uuid(ConsentAuditLog::VideoConsentId))
                    .col(integer(ConsentAuditLog::Version))
                    .col(enum_col(
                        ConsentAuditLog::Field,
                        &["KB_INCLUSION", "TRAINING_USAGE", "PUBLIC_DISPLAY"],
                        None,
                    ))
                    .col(boolean_null(ConsentAuditLog::OldValue))
                    .col(boolean(ConsentAuditLog::NewValue))
                    .col(uuid(ConsentAuditLog::ChangedBy))
                    .col(string_len_null(ConsentAuditLog::IpAddress, 45))
                    .col(ts_now(ConsentAuditLog::CreatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_consent_audit_log_video_consent_id",
                        ConsentAuditLog::Table,
                        ConsentAuditLog::VideoConsentId,
                        VideoConsents::Table,
                        VideoConsents::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_consent_audit_log_changed_by",
                        ConsentAuditLog::Table,
                        ConsentAuditLog::ChangedBy,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::NoAction,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_consent_audit_log_consent_version")
                    .table(ConsentAuditLog::Table)
                    .col(ConsentAuditLog::VideoConsentId)
                    .col(ConsentAuditLog::Version)
                    .unique()
                    .take(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            [
                ConsentAuditLog::Table.into_iden(),
                VideoConsents::Table.into_iden(),
                Shorts::Table.into_iden(),
                Highlights::Table.into_iden(),
            ],
        )
        .await
    }
}
