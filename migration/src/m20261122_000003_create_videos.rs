//! Videos and derived content: `videos`, `video_variants`, `transcript_segments`,
//! `caption_tracks`, `key_moments`.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{drop_tables, enum_col, enum_col_null, fk, ts_now};
use crate::m20261122_000001_create_users::Users;
use crate::m20261122_000002_create_creators::Creators;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Videos {
    Table,
    Id,
    CreatorId,
    UploadedBy,
    Title,
    OriginalFilename,
    Mime,
    SizeBytes,
    #[sea_orm(iden = "sha256")]
    Sha256,
    StorageKey,
    DurationSecs,
    Width,
    Height,
    Status,
    PipelineStage,
    FailureReason,
    YoutubeUrl,
    RetentionClass,
    RetentionUntil,
    DeletedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum VideoVariants {
    Table,
    Id,
    VideoId,
    Profile,
    StorageKey,
    SizeBytes,
    Mime,
    Width,
    Height,
    Bitrate,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum TranscriptSegments {
    Table,
    Id,
    VideoId,
    StartTime,
    EndTime,
    Text,
    Speaker,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum CaptionTracks {
    Table,
    Id,
    VideoId,
    Language,
    Kind,
    Format,
    StorageKey,
    Source,
    Approved,
    ReviewedBy,
    ReviewedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum KeyMoments {
    Table,
    Id,
    VideoId,
    Title,
    Summary,
    StartTime,
    EndTime,
    TopicCategory,
    TopicTags,
    ContentType,
    ReviewStatus,
    SortOrder,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();

        manager
            .create_table(
                Table::create()
                    .table(Videos::Table)
                    .col(pk_uuid(Videos::Id))
                    .col(uuid(Videos::CreatorId))
                    .col(uuid_null(Videos::UploadedBy))
                    .col(text(Videos::Title))
                    .col(text(Videos::OriginalFilename))
                    .col(text_null(Videos::Mime))
                    .col(big_integer_null(Videos::SizeBytes))
                    .col(char_len_null(Videos::Sha256, 64))
                    .col(text(Videos::StorageKey))
                    .col(double_null(Videos::DurationSecs))
                    .col(integer_null(Videos::Width))
                    .col(integer_null(Videos::Height))
                    .col(enum_col(
                        Videos::Status,
                        &["UPLOADING", "PROCESSING", "READY", "FAILED", "QUARANTINED"],
                        Some("UPLOADING"),
                    ))
                    .col(integer(Videos::PipelineStage).default(0))
                    .col(text_null(Videos::FailureReason))
                    .col(text_null(Videos::YoutubeUrl))
                    .col(text(Videos::RetentionClass).default("operational"))
                    .col(timestamp_with_time_zone_null(Videos::RetentionUntil))
                    .col(timestamp_with_time_zone_null(Videos::DeletedAt))
                    .col(ts_now(Videos::CreatedAt, db))
                    .col(ts_now(Videos::UpdatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_videos_creator_id",
                        Videos::Table,
                        Videos::CreatorId,
                        Creators::Table,
                        Creators::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_videos_uploaded_by",
                        Videos::Table,
                        Videos::UploadedBy,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::SetNull,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_videos_creator_id_id")
                    .table(Videos::Table)
                    .col(Videos::CreatorId)
                    .col(Videos::Id)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_videos_creator_id_sha256")
                    .table(Videos::Table)
                    .col(Videos::CreatorId)
                    .col(Videos::Sha256)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_videos_status")
                    .table(Videos::Table)
                    .col(Videos::Status)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(VideoVariants::Table)
                    .col(pk_uuid(VideoVariants::Id))
                    .col(uuid(VideoVariants::VideoId))
                    .col(text(VideoVariants::Profile))
                    .col(text(VideoVariants::StorageKey))
                    .col(big_integer_null(VideoVariants::SizeBytes))
                    .col(text_null(VideoVariants::Mime))
                    .col(integer_null(VideoVariants::Width))
                    .col(integer_null(VideoVariants::Height))
                    .col(integer_null(VideoVariants::Bitrate))
                    .col(ts_now(VideoVariants::CreatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_video_variants_video_id",
                        VideoVariants::Table,
                        VideoVariants::VideoId,
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
                    .name("idx_video_variants_video_profile")
                    .table(VideoVariants::Table)
                    .col(VideoVariants::VideoId)
                    .col(VideoVariants::Profile)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TranscriptSegments::Table)
                    .col(pk_uuid(TranscriptSegments::Id))
                    .col(uuid(TranscriptSegments::VideoId))
                    .col(double(TranscriptSegments::StartTime))
                    .col(double(TranscriptSegments::EndTime))
                    .col(text(TranscriptSegments::Text))
                    .col(text_null(TranscriptSegments::Speaker))
                    .col(ts_now(TranscriptSegments::CreatedAt, db))
                    .check((
                        "ck_transcript_segments_time_range",
                        Expr::col(TranscriptSegments::EndTime)
                            .gt(Expr::col(TranscriptSegments::StartTime)),
                    ))
                    .foreign_key(&mut fk(
                        "fk_transcript_segments_video_id",
                        TranscriptSegments::Table,
                        TranscriptSegments::VideoId,
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
                    .name("idx_transcript_segments_video_start")
                    .table(TranscriptSegments::Table)
                    .col(TranscriptSegments::VideoId)
                    .col(TranscriptSegments::StartTime)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CaptionTracks::Table)
                    .col(pk_uuid(CaptionTracks::Id))
                    .col(uuid(CaptionTracks::VideoId))
                    .col(string_len(CaptionTracks::Language, 35))
                    .col(enum_col(
                        CaptionTracks::Kind,
                        &["CAPTIONS", "SUBTITLES", "DESCRIPTIONS"],
                        Some("CAPTIONS"),
                    ))
                    .col(enum_col(CaptionTracks::Format, &["VTT", "SRT"], None))
                    .col(text(CaptionTracks::StorageKey))
                    .col(enum_col(
                        CaptionTracks::Source,
                        &["AI", "HUMAN", "IMPORTED"],
                        Some("AI"),
                    ))
                    .col(boolean(CaptionTracks::Approved).default(false))
                    .col(uuid_null(CaptionTracks::ReviewedBy))
                    .col(timestamp_with_time_zone_null(CaptionTracks::ReviewedAt))
                    .col(ts_now(CaptionTracks::CreatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_caption_tracks_video_id",
                        CaptionTracks::Table,
                        CaptionTracks::VideoId,
                        Videos::Table,
                        Videos::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_caption_tracks_reviewed_by",
                        CaptionTracks::Table,
                        CaptionTracks::ReviewedBy,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::SetNull,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_caption_tracks_video_lang_kind_format")
                    .table(CaptionTracks::Table)
                    .col(CaptionTracks::VideoId)
                    .col(CaptionTracks::Language)
                    .col(CaptionTracks::Kind)
                    .col(CaptionTracks::Format)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(KeyMoments::Table)
                    .col(pk_uuid(KeyMoments::Id))
                    .col(uuid(KeyMoments::VideoId))
                    .col(text(KeyMoments::Title))
                    .col(text_null(KeyMoments::Summary))
                    .col(double(KeyMoments::StartTime))
                    .col(double(KeyMoments::EndTime))
                    .col(text_null(KeyMoments::TopicCategory))
                    .col(json_binary(KeyMoments::TopicTags).default("[]"))
                    .col(enum_col_null(
                        KeyMoments::ContentType,
                        &["TECHNIQUE", "CONCEPT", "WORKFLOW", "REFERENCE"],
                    ))
                    .col(enum_col(
                        KeyMoments::ReviewStatus,
                        &["PENDING", "APPROVED", "REJECTED"],
                        Some("PENDING"),
                    ))
                    .col(integer(KeyMoments::SortOrder).default(0))
                    .col(ts_now(KeyMoments::CreatedAt, db))
                    .col(ts_now(KeyMoments::UpdatedAt, db))
                    .check((
                        "ck_key_moments_time_range",
                        Expr::col(KeyMoments::EndTime).gt(Expr::col(KeyMoments::StartTime)),
                    ))
                    .foreign_key(&mut fk(
                        "fk_key_moments_video_id",
                        KeyMoments::Table,
                        KeyMoments::VideoId,
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
                    .name("idx_key_moments_video_sort")
                    .table(KeyMoments::Table)
                    .col(KeyMoments::VideoId)
                    .col(KeyMoments::SortOrder)
                    .take(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            [
                KeyMoments::Table.into_iden(),
                CaptionTracks::Table.into_iden(),
                TranscriptSegments::Table.into_iden(),
                VideoVariants::Table.into_iden(),
                Videos::Table.into_iden(),
            ],
        )
        .await
    }
}
