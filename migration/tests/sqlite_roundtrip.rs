//! Runs the migration round trip and the entity checks from `examples/check.rs`
//! against a throw-away SQLite database.

#[allow(dead_code)]
#[path = "../examples/check.rs"]
mod check;

#[tokio::test]
async fn migrations_and_entities_roundtrip_on_sqlite() -> Result<(), check::BoxError> {
    let path =
        std::env::temp_dir().join(format!("reelgraph-migration-{}.db", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = sea_orm::Database::connect(&url).await?;
    let result = check::run(&db).await;
    db.close().await?;
    let _ = std::fs::remove_file(&path);
    result
}
