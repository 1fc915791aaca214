use serde_json::json;

use crate::{
    both_backends,
    helpers::{Backend, TestApp, error_code, error_field},
};

async fn deep_and_expensive_queries_are_rejected_before_running(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut deep = String::from("id");
    for _ in 0..8 {
        deep = format!("videos {{ nodes {{ creator {{ {deep} }} }} }}");
    }
    let body = app
        .gql(
            None,
            &format!("{{ creators {{ nodes {{ {deep} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");

    let wide = "{ creators(first: 100) { nodes { videos(first: 100) { nodes { creator { videos(first: 100) { nodes { id } } } } } } } }";
    let body = app.gql(None, wide, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body}");
}

async fn malformed_queries_are_bad_user_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for query in [
        "{ creators { ",
        "{ noSuchField }",
        "{ creators(first: \"ten\") { totalCount } }",
    ] {
        let body = app.gql(None, query, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body}");
    }
    let body = app
        .gql(None, "{ video(id: \"not-a-uuid\") { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(error_field(&body), "id");
}

async fn mutations_over_get_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .client
        .get(format!("{}/graphql", app.base))
        .query(&[("query", "mutation { logout(refreshToken: \"x\") }")])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 405);
    let response = app
        .client
        .get(format!("{}/graphql", app.base))
        .query(&[("query", "{ creators { totalCount } }")])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["data"]["creators"]["totalCount"], 0);
}

async fn health_graphiql_and_metrics_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), 200);
    let graphiql = app
        .client
        .get(format!("{}/graphiql", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql.text().await.expect("text").contains("graphiql"));
    app.gql(None, "{ creators { totalCount } }", json!({}))
        .await;
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("sent");
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains("reelgraph_graphql_operations_total 1"),
        "{text}"
    );
}

both_backends!(
    deep_and_expensive_queries_are_rejected_before_running,
    malformed_queries_are_bad_user_input,
    mutations_over_get_are_refused,
    health_graphiql_and_metrics_answer,
);
