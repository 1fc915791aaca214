//! The read cache (`src/graphql/read_cache.rs`): an anonymous query's answer is served again
//! without running it until anything it read changes — through this server, or anywhere else
//! (announced by the database's triggers) — and only then.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, error_code};

const CREATOR: &str = "query($id: ID!) { creator(id: $id) { id name } }";

/// Runs `query` as `token` (anonymous: `None`) and returns its whole answer and the SQL
/// statements it cost.
async fn cost(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> (Value, u64) {
    let before = app.request_statements();
    let body = app.gql(token, query, variables).await;
    (body, app.request_statements() - before)
}

/// Reads `query` anonymously until an answer comes from the cache (no statement), within 10 s:
/// the announcement of a write made just before may come back after a read began, and the
/// answer that read made is then (rightly) not kept. Returns that answer.
async fn until_kept(app: &TestApp, query: &str, variables: &Value) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (body, statements) = cost(app, None, query, variables.clone()).await;
        if statements == 0 {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer was kept within 10 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An app whose cached answers would outlive every wait below (120 s), so that only a change
/// heard can make them go.
async fn app_keeping_answers() -> TestApp {
    TestApp::spawn_with(Backend::Postgres, |a| a.config.read_cache_secs = 120).await
}

/// Anonymous readers after the first get the answer without a statement; a change made
/// through the API is seen at once by the next one, and a change made beside the server (a
/// connection of the test's own, as `psql` or another server would) as soon as its
/// announcement is heard. A signed-in caller is never answered from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_answer_is_served_again_until_what_it_read_changes() {
    let app = app_keeping_answers().await;
    let owner = app.register("cached@example.com").await;
    let creator = app.create_creator(&owner, "First name").await;
    let vars = json!({ "id": creator });

    let (first, statements) = cost(&app, None, CREATOR, vars.clone()).await;
    assert_eq!(first["data"]["creator"]["name"], "First name", "{first}");
    assert!(statements > 0, "the first reader runs the query");
    let again = until_kept(&app, CREATOR, &vars).await;
    assert_eq!(again, first, "a later reader is answered from the cache");
    let (signed_in, statements) =
        cost(&app, Some(&owner.access_token), CREATOR, vars.clone()).await;
    assert_eq!(signed_in, first);
    assert!(statements > 0, "a signed-in caller's query runs");

    // Through the API: the very next anonymous read sees it.
    app.ok(
        Some(&owner.access_token),
        "mutation($id: ID!) { updateCreator(id: $id, input: {name: \"Second name\"}) { id } }",
        vars.clone(),
    )
    .await;
    let (body, statements) = cost(&app, None, CREATOR, vars.clone()).await;
    assert_eq!(body["data"]["creator"]["name"], "Second name", "{body}");
    assert!(statements > 0);
    let body = until_kept(&app, CREATOR, &vars).await;
    assert_eq!(body["data"]["creator"]["name"], "Second name", "{body}");

    // Beside the server: heard through the announcement, well before the answer's 120 s.
    let url = app.state.config.database_url.clone().expect("url");
    let beside = sea_orm::Database::connect(url).await.expect("connected");
    beside
        .execute_raw(Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "UPDATE creators SET name = 'Third name' WHERE id = $1",
            [creator.parse::<uuid::Uuid>().expect("uuid").into()],
        ))
        .await
        .expect("updated beside the server");
    beside.close().await.ok();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = app.ok(None, CREATOR, vars.clone()).await;
        if body["creator"]["name"] == "Third name" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still served the old answer 10 s after the change committed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A change this server makes drops its cache at once, not when the announcement comes
/// back: the triggers on `creators` are dropped here, so only the server itself can tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_here_is_seen_without_waiting_for_its_announcement() {
    let app = app_keeping_answers().await;
    let owner = app.register("local@example.com").await;
    let creator = app.create_creator(&owner, "Old name").await;
    let vars = json!({ "id": creator });
    for trigger in ["reelgraph_content_changed", "reelgraph_content_truncated"] {
        app.state
            .db
            .execute_unprepared(&format!("DROP TRIGGER {trigger} ON creators"))
            .await
            .expect("trigger dropped");
    }
    until_kept(&app, CREATOR, &vars).await;
    app.ok(
        Some(&owner.access_token),
        "mutation($id: ID!) { updateCreator(id: $id, input: {name: \"New name\"}) { id } }",
        vars.clone(),
    )
    .await;
    let body = app.ok(None, CREATOR, vars).await;
    assert_eq!(body["creator"]["name"], "New name", "{body}");
}

/// What is never kept: an answer read from a table whose changes are not announced, an answer
/// with an error (whatever else it holds), and a batch's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_of_other_tables_with_errors_or_batched_are_not_kept() {
    let app = app_keeping_answers().await;
    let owner = app.register("never-kept@example.com").await;
    let creator = app.create_creator(&owner, "Control").await;
    // The cache is working: a plain read is kept.
    until_kept(&app, CREATOR, &json!({ "id": creator })).await;
    // `node` looks for the id among jobs too: that statement names a table whose changes are
    // not announced, so the answer is made every time.
    let node = "query($id: ID!) { node(id: $id) { id ... on Creator { name } } }";
    for _ in 0..3 {
        let (body, statements) = cost(&app, None, node, json!({ "id": creator })).await;
        assert_eq!(body["data"]["node"]["name"], "Control", "{body}");
        assert!(
            statements > 0,
            "an answer read from jobs is made every time"
        );
    }
    let failing = r#"{ creators(first: 1) { nodes { id } } video(id: "not-an-id") { id } }"#;
    for _ in 0..2 {
        let (body, statements) = cost(&app, None, failing, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert!(body["data"]["creators"]["nodes"].is_array(), "{body}");
        assert!(statements > 0, "an answer with an error is made every time");
    }
    let batch = json!([
        { "query": "{ creators(first: 1) { nodes { id } } }" },
        { "query": "{ creators(first: 2) { nodes { id } } }" },
    ]);
    for _ in 0..2 {
        let before = app.request_statements();
        let body = app.post_body(None, &batch).await;
        assert!(body.is_array(), "{body}");
        assert!(app.request_statements() > before, "a batch runs every time");
    }
}

/// Every table of the database is either announced (its changes drop the cache: triggers of
/// migration 29) or listed as never read into a kept answer; a table added later without
/// either would leave answers made from it served after it changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_is_announced_or_never_kept() {
    use reelgraph::graphql::read_cache::{CONTENT_TABLES, NOT_CACHED_TABLES};
    let app = TestApp::spawn(Backend::Postgres).await;
    let db = &app.state.db;
    let tables: Vec<String> = db
        .query_all_raw(Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT table_name::text AS name FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
        ))
        .await
        .expect("tables")
        .iter()
        .map(|row| row.try_get("", "name").expect("name"))
        .collect();
    for table in &tables {
        assert!(
            CONTENT_TABLES.contains(&table.as_str()) || NOT_CACHED_TABLES.contains(&table.as_str()),
            "table {table} is neither announced nor kept out of the read cache"
        );
    }
    for table in CONTENT_TABLES.iter().chain(&NOT_CACHED_TABLES) {
        assert!(tables.iter().any(|t| t == table), "{table} is not a table");
    }
    // Per table: a row trigger after INSERT, UPDATE and DELETE (tgtype bits 1 row, 2 before,
    // 4 insert, 8 delete, 16 update) and a statement trigger after TRUNCATE (32), both enabled.
    let announced: Vec<String> = db
        .query_all_raw(Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT c.relname::text AS name FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
             WHERE p.proname = 'reelgraph_content_changed' AND t.tgenabled = 'O'
             GROUP BY c.relname
             HAVING bool_or(t.tgtype::int & 31 = 29) AND bool_or(t.tgtype::int & 34 = 32)
             ORDER BY 1",
        ))
        .await
        .expect("triggers")
        .iter()
        .map(|row| row.try_get("", "name").expect("name"))
        .collect();
    let mut expected: Vec<String> = CONTENT_TABLES.iter().map(|t| (*t).to_owned()).collect();
    expected.sort();
    assert_eq!(announced, expected);
}

/// SQLite announces nothing, so there every anonymous query runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_nothing_is_kept() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("sqlite-cache@example.com").await;
    let creator = app.create_creator(&owner, "Embedded").await;
    for _ in 0..2 {
        let (body, statements) = cost(&app, None, CREATOR, json!({ "id": creator })).await;
        assert_eq!(body["data"]["creator"]["name"], "Embedded", "{body}");
        assert!(statements > 0);
    }
}
