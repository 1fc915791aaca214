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
