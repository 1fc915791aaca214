//! Announces every committed change of the tables public reads are made of, so that each
//! server's cache of anonymous answers (`src/graphql/read_cache.rs`) drops what it holds the
//! moment anything it may have read changes, whoever changed it: a server, a worker, the
//! CLI, or someone with `psql`. A row trigger (a statement that changes no row says nothing)
//! and a statement trigger for `TRUNCATE` send an empty `NOTIFY reelgraph_content`, which
//! PostgreSQL sends once per transaction, at its commit. SQLite has no such channel: there the
//! cache is off.
//!
//! A table made later whose rows an anonymous answer may show must get these triggers in its
//! own migration (`CONTENT_TABLES` in `src/graphql/read_cache.rs`; a test compares both lists
//! with the database's tables).

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables as they were when this migration was written.
const TABLES: [&str; 13] = [
    "assets",
    "caption_tracks",
    "creator_follows",
    "creator_members",
    "creators",
    "highlights",
    "key_moments",
    "plans",
    "shorts",
    "transcript_segments",
    "video_consents",
    "video_variants",
    "videos",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE OR REPLACE FUNCTION reelgraph_content_changed() RETURNS trigger AS $$
             BEGIN
                 PERFORM pg_notify('reelgraph_content', '');
                 RETURN NULL;
             END
             $$ LANGUAGE plpgsql",
        )
        .await?;
        for table in TABLES {
            db.execute_unprepared(&format!(
                "CREATE TRIGGER reelgraph_content_changed
                 AFTER INSERT OR UPDATE OR DELETE ON {table}
                 FOR EACH ROW EXECUTE FUNCTION reelgraph_content_changed()"
            ))
            .await?;
            db.execute_unprepared(&format!(
                "CREATE TRIGGER reelgraph_content_truncated
                 AFTER TRUNCATE ON {table}
                 FOR EACH STATEMENT EXECUTE FUNCTION reelgraph_content_changed()"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for table in TABLES {
            for trigger in ["reelgraph_content_changed", "reelgraph_content_truncated"] {
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger} ON {table}"))
                    .await?;
            }
        }
        db.execute_unprepared("DROP FUNCTION IF EXISTS reelgraph_content_changed()")
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
