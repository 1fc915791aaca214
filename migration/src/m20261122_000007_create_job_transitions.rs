//! `job_transitions`: one row per status change of a job, written in the same transaction as
//! the change. It is the job's timeline for people, and the proof for tests that a job was
//! completed exactly once however many times it ran.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{drop_tables, enum_col, fk, ts_now};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobTransitions {
    Table,
    Id,
    JobId,
    Seq,
    Status,
    Attempt,
    Worker,
    Note,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(JobTransitions::Table)
                    .if_not_exists()
                    .col(pk_uuid(JobTransitions::Id))
                    .col(uuid(JobTransitions::JobId))
                    .col(big_integer(JobTransitions::Seq))
                    .col(enum_col(
                        JobTransitions::Status,
                        &[
                            "QUEUED",
                            "RUNNING",
                            "WAITING",
                            "DONE",
                            "FAILED",
                            "CANCELLED",
                        ],
                        None,
                    ))
                    .col(integer(JobTransitions::Attempt))
                    .col(text_null(JobTransitions::Worker))
                    .col(text_null(JobTransitions::Note))
                    .col(ts_now(JobTransitions::CreatedAt, backend))
                    .foreign_key(&mut fk(
                        "fk_job_transitions_job",
                        JobTransitions::Table,
                        JobTransitions::JobId,
                        Jobs::Table,
                        Jobs::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_job_transitions_job")
                    .table(JobTransitions::Table)
                    .col(JobTransitions::JobId)
                    .col(JobTransitions::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, [JobTransitions::Table.into_iden()]).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
