//! The committed `schema.graphql` is the contract typed clients are generated from.

use std::process::Command;

#[test]
fn committed_schema_matches_the_reelgraph_schema_command() {
    let output = Command::new(env!("CARGO_BIN_EXE_reelgraph"))
        .arg("schema")
        .output()
        .expect("reelgraph schema runs");
    assert!(output.status.success());
    let generated = String::from_utf8(output.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .unwrap_or_default();
    assert!(
        generated == committed,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql` and commit it"
    );
}

#[test]
fn schema_keeps_the_contract_names() {
    let sdl = reelgraph::graphql::sdl();
    for name in [
        "me: User",
        "creators(first: Int, after: String",
        "creator(id: ID, slug: String): Creator",
        "video(id: ID!): Video",
        "videos(first: Int, after: String",
        "register(input: RegisterInput!): AuthPayload!",
        "login(email: String!, password: String!): AuthPayload!",
        "refreshSession(refreshToken: String!): AuthPayload!",
        "logout(refreshToken: String!): Boolean!",
        "createCreator(input: CreateCreatorInput!): Creator!",
        "updateCreator(id: ID!, input: UpdateCreatorInput!): Creator!",
        "followCreator(creatorId: ID!): Creator!",
        "unfollowCreator(creatorId: ID!): Creator!",
        "createInviteCode(input: CreateInviteCodeInput!): InviteCode!",
        "totalCount: Int!",
        "hasPreviousPage: Boolean!",
        "auditLog(first: Int, after: String): ConsentAuditConnection!",
        "type ConsentAuditEdge",
        "priority: JobPriority = NORMAL",
        "captions: Boolean = false",
    ] {
        assert!(sdl.contains(name), "schema lost `{name}`");
    }
}

/// Descriptions speak the schema's language, not the server's: no Rust type, no snake_case
/// column where a field is meant (typed clients copy descriptions into their code).
#[test]
fn descriptions_name_no_rust_types_or_columns() {
    let sdl = reelgraph::graphql::sdl();
    for leak in [
        "DateTime<Utc>",
        "Implement the",
        "failure_reason",
        "Option<",
        "Vec<",
    ] {
        assert!(!sdl.contains(leak), "the schema says `{leak}`");
    }
}

/// graphql-js — what graphql-codegen, Apollo and Relay build on — reads the committed SDL
/// without errors, and finds no breaking or dangerous change between it and the schema the
/// server serves by introspection (`tests/node/schema-check.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_sdl_is_what_graphql_js_reads_from_the_server() {
    use crate::helpers::{Backend, TestApp};
    let dir = crate::helpers::node_clients().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = format!("{}/graphql", app.base);
    let sdl = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let seen = crate::helpers::run_node(&dir, "schema-check.mjs", &[&url, sdl]).await;
    assert_eq!(seen["schemaErrors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["breaking"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["dangerous"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["oneOf"], serde_json::json!([true, true]), "{seen}");
    assert!(seen["types"].as_u64().is_some_and(|n| n > 50), "{seen}");
}

/// Runs one of `tests/node`'s installed command-line tools in `dir`; panics with its output
/// unless it succeeds.
async fn node_tool(dir: &std::path::Path, tool: &str, args: &[&str]) {
    let bin = dir
        .ancestors()
        .map(|d| d.join("node_modules/.bin").join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{tool} is installed by `npm ci` in tests/node"));
    let run = tokio::process::Command::new(bin)
        .args(args)
        .current_dir(dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the tool finishes")
        .expect("the tool runs");
    assert!(
        output.status.success(),
        "{tool} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What a TypeScript SPA does with the committed SDL: graphql-codegen's client preset
/// generates typed documents from it (`strictScalars`: every custom scalar must be mapped),
/// `tsc --strict` checks a client written against them — including lines that must not
/// compile, so types that degrade to `any` fail it — and the compiled client then signs up,
/// creates a creator, queues a render (a `@oneOf` layer input) and reads it back from the
/// live server (`tests/node/typed/client.ts`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_client_generated_from_the_committed_schema_compiles_and_runs() {
    use crate::helpers::{Backend, TestApp};
    use serde_json::json;
    let dir = crate::helpers::node_clients().await.join("typed");
    for generated in ["gql", "dist"] {
        let _ = std::fs::remove_dir_all(dir.join(generated));
    }
    node_tool(&dir, "graphql-codegen", &["--config", "codegen.json"]).await;
    node_tool(&dir, "tsc", &["-p", "."]).await;

    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = format!("{}/graphql", app.base);
    let seen = crate::helpers::run_node(&dir, "dist/client.js", &[&url]).await;
    assert_eq!(seen["roleBefore"], "VIEWER", "{seen}");
    assert_eq!(seen["roleAfter"], "CREATOR", "{seen}");
    assert_eq!(seen["creator"]["name"], "Typed Creator", "{seen}");
    assert_eq!(seen["creator"]["slug"], "typed-creator", "{seen}");
    assert_eq!(seen["creator"]["genres"], json!(["dubstep"]), "{seen}");
    assert_eq!(
        seen["creator"]["socialLinks"],
        json!({ "youtube": "https://youtube.com/@typed" }),
        "{seen}"
    );
    assert_eq!(
        seen["job"],
        json!({ "kind": "RENDER", "status": "QUEUED", "priority": "HIGH" }),
        "{seen}"
    );
    assert!(
        ["QUEUED", "RUNNING", "WAITING", "DONE"]
            .contains(&seen["statusNow"].as_str().unwrap_or_default()),
        "{seen}"
    );
    assert_eq!(
        seen["page"],
        json!({ "totalCount": 1, "names": ["Typed Creator"] }),
        "{seen}"
    );
    assert_eq!(
        seen["refused"],
        json!([{ "code": "BAD_USER_INPUT", "field": "input.spec.scenes.0.duration" }]),
        "{seen}"
    );
    assert_eq!(seen["refusedData"], serde_json::Value::Null, "{seen}");
}

/// Every migration's `down` undoes its `up`: a database migrated to the end, rolled back to
/// the start and migrated again ends where it was (an `up` of something left behind would
/// fail), and holds the indexes of the latest migrations.
async fn migrations_roll_back_and_forward(backend: crate::helpers::Backend) {
    use migration::MigratorTrait;
    use sea_orm::ConnectionTrait;
    let app = crate::helpers::TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let db = &app.state.db;
    migration::Migrator::down(db, None)
        .await
        .expect("every migration rolls back");
    migration::Migrator::up(db, None)
        .await
        .expect("and applies again");
    let sql = match backend {
        crate::helpers::Backend::Postgres => {
            "SELECT count(*) AS n FROM pg_indexes WHERE indexname = 'idx_credit_ledger_job_id'"
        }
        crate::helpers::Backend::Sqlite => {
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'index' AND name = 'idx_credit_ledger_job_id'"
        }
    };
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.try_get::<i64>("", "n").expect("n"), 1);
}

crate::both_backends!(migrations_roll_back_and_forward);
