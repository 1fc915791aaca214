//! Makes `consent_audit_log` append-only in the database itself: an UPDATE or DELETE fails,
//! whoever sends it. (The application never does either; this guards against everything else.)

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE OR REPLACE FUNCTION consent_audit_log_append_only() RETURNS trigger AS $$
                     BEGIN
                         RAISE EXCEPTION 'consent_audit_log is append-only: % is not allowed', TG_OP;
                     END
                     $$ LANGUAGE plpgsql",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER consent_audit_log_append_only
                     BEFORE UPDATE OR DELETE ON consent_audit_log
                     FOR EACH ROW EXECUTE FUNCTION consent_audit_log_append_only()",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER consent_audit_log_no_truncate
                     BEFORE TRUNCATE ON consent_audit_log
                     FOR EACH STATEMENT EXECUTE FUNCTION consent_audit_log_append_only()",
                )
                .await?;
            }
            _ => {
                for op in ["UPDATE", "DELETE"] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER consent_audit_log_no_{lower} BEFORE {op} ON consent_audit_log
                         BEGIN SELECT RAISE(ABORT, 'consent_audit_log is append-only: {op} is not allowed'); END",
                        lower = op.to_lowercase()
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "DROP TRIGGER IF EXISTS consent_audit_log_no_truncate ON consent_audit_log",
                )
                .await?;
                db.execute_unprepared(
                    "DROP TRIGGER IF EXISTS consent_audit_log_append_only ON consent_audit_log",
                )
                .await?;
                db.execute_unprepared("DROP FUNCTION IF EXISTS consent_audit_log_append_only()")
                    .await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS consent_audit_log_no_update")
                    .await?;
                db.execute_unprepared("DROP TRIGGER IF EXISTS consent_audit_log_no_delete")
                    .await?;
            }
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
