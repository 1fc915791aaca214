//! `job_transitions` table: one row per status change of a job, written in the same
//! transaction as the change (the job's timeline).

use crate::enums::JobStatus;
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_transitions")]
pub struct Model {
    /// Primary key (UUID v7, so rows sort in the order they were written).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The job that changed.
    pub job_id: Uuid,
    /// The job's `seq` after the change.
    pub seq: i64,
    /// The status it changed to.
    pub status: JobStatus,
    /// The job's attempt number at the time.
    pub attempt: i32,
    /// The worker that made the change, when a worker made it.
    #[sea_orm(column_type = "Text")]
    pub worker: Option<String>,
    /// Why, in a few words (e.g. the error, "lease expired").
    #[sea_orm(column_type = "Text")]
    pub note: Option<String>,
    /// When the change committed.
    pub created_at: DateTimeUtc,
    /// The job.
    #[sea_orm(belongs_to, from = "job_id", to = "id", on_delete = "Cascade")]
    pub job: BelongsTo<super::job::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
