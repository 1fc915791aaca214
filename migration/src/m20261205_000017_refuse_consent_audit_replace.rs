//! SQLite's `INSERT OR REPLACE` (or `REPLACE INTO`) deletes a conflicting row without firing
//! its DELETE triggers (unless `recursive_triggers` is on), so it could rewrite or remove a
//! `consent_audit_log` row past the append-only guard of `m20261122_000008`. An insert that
//! would replace a row is refused before conflict resolution runs. PostgreSQL has no such
//! statement (its `ON CONFLICT DO UPDATE` fires the UPDATE trigger), so nothing changes there.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE TRIGGER consent_audit_log_no_replace BEFORE INSERT ON consent_audit_log
                     WHEN EXISTS (SELECT 1 FROM consent_audit_log
                                  WHERE id = NEW.id
                                     OR (video_consent_id = NEW.video_consent_id
                                         AND version = NEW.version))
                     BEGIN SELECT RAISE(ABORT, 'consent_audit_log is append-only: REPLACE is not allowed'); END",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared("DROP TRIGGER IF EXISTS consent_audit_log_no_replace")
                .await?;
        }
        Ok(())
    }
}
