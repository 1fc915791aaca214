use chrono::Utc;
use entity::{VideoStatus, video, video_consent};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::json;
use uuid::Uuid;

use crate::{
    both_backends,
    helpers::{Backend, TestApp, error_code},
};

/// Inserts a video row directly (uploads arrive with the content pipeline).
async fn insert_video(app: &TestApp, creator_id: &str, title: &str, status: VideoStatus) -> Uuid {
    let now = Utc::now();
    let id = Uuid::now_v7();
    video::ActiveModel {
        id: Set(id),
        creator_id: Set(creator_id.parse().expect("uuid")),
        title: Set(title.to_owned()),
        original_filename: Set(format!("{title}.mp4")),
        storage_key: Set(format!("creators/{creator_id}/videos/{id}/original")),
        status: Set(status),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .expect("video inserted");
    id
}

async fn hide_publicly(app: &TestApp, creator_id: &str, video_id: Uuid) {
    let now = Utc::now();
    video_consent::ActiveModel {
        id: Set(Uuid::now_v7()),
        video_id: Set(video_id),
        creator_id: Set(creator_id.parse().expect("uuid")),
        kb_inclusion: Set(false),
        training_usage: Set(false),
        public_display: Set(false),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .expect("consent inserted");
}

async fn unpublished_videos_are_visible_to_members_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("vo@example.com").await;
    let outsider = app.register("vx@example.com").await;
    let admin = app.admin("va@example.com").await;
    let creator = app.create_creator(&owner, "Visible Creator").await;
    let ready = insert_video(&app, &creator, "ready", VideoStatus::Ready).await;
    let processing = insert_video(&app, &creator, "processing", VideoStatus::Processing).await;
    let withheld = insert_video(&app, &creator, "withheld", VideoStatus::Ready).await;
    hide_publicly(&app, &creator, withheld).await;

    let list = "query($c: ID) { videos(creatorId: $c) { totalCount nodes { id title } } }";
    let titles = |data: &serde_json::Value| -> Vec<String> {
        data["videos"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["title"].as_str().expect("title").to_owned())
            .collect()
    };
    for token in [None, Some(outsider.access_token.as_str())] {
        let data = app.ok(token, list, json!({ "c": creator })).await;
        assert_eq!(titles(&data), vec!["ready"]);
        assert_eq!(data["videos"]["totalCount"], 1);
        for hidden in [processing, withheld] {
            let body = app
                .gql(
                    token,
                    "query($id: ID!) { video(id: $id) { id } }",
                    json!({ "id": hidden }),
                )
                .await;
            assert_eq!(
                error_code(&body),
                "NOT_FOUND",
                "hidden exactly like a missing id"
            );
            assert!(body["data"]["video"].is_null());
        }
        let nested = app
            .ok(
                token,
                "query($c: ID!) { creator(id: $c) { videos { totalCount nodes { title } } } }",
                json!({ "c": creator }),
            )
            .await;
        assert_eq!(nested["creator"]["videos"]["totalCount"], 1);
    }
    for token in [&owner.access_token, &admin.access_token] {
        let data = app.ok(Some(token), list, json!({ "c": creator })).await;
        assert_eq!(titles(&data), vec!["withheld", "processing", "ready"]);
        let one = app
            .ok(
                Some(token),
                "query($id: ID!) { video(id: $id) { title creator { name } } }",
                json!({ "id": processing }),
            )
            .await;
        assert_eq!(one["video"]["creator"]["name"], "Visible Creator");
    }
    let body = app
        .gql(
            None,
            "query($id: ID!) { video(id: $id) { id } }",
            json!({ "id": ready }),
        )
        .await;
    assert!(body.get("errors").is_none());
}

async fn nested_lists_cost_the_same_statements_whatever_the_number_of_parents(backend: Backend) {
    // No worker pool: its polling would add statements of its own to the count.
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("n1@example.com").await;
    let viewer = app.register("n2@example.com").await;
    for c in 0..12 {
        let creator = app.create_creator(&owner, &format!("Nested {c}")).await;
        for v in 0..4 {
            insert_video(&app, &creator, &format!("c{c}v{v}"), VideoStatus::Ready).await;
        }
    }
    let query = "query($n: Int!) { creators(first: $n) { totalCount nodes { name followerCount viewerIsFollowing
        videos(first: 3) { totalCount pageInfo { hasNextPage } nodes { title creator { name } } } } } }";
    let mut costs = Vec::new();
    for n in [1, 4, 12] {
        let before = app.statements();
        let data = app
            .ok(Some(&viewer.access_token), query, json!({ "n": n }))
            .await;
        costs.push(app.statements() - before);
        let nodes = data["creators"]["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), n as usize);
        for node in nodes {
            assert_eq!(node["videos"]["nodes"].as_array().map(Vec::len), Some(3));
            assert_eq!(node["videos"]["totalCount"], 4);
            assert_eq!(node["videos"]["pageInfo"]["hasNextPage"], true);
        }
    }
    assert!(
        costs.iter().all(|&c| c == costs[0]),
        "statements per request grew with parents: {costs:?}"
    );
    assert!(costs[0] <= 10, "statements per request: {costs:?}");
}

both_backends!(
    unpublished_videos_are_visible_to_members_only,
    nested_lists_cost_the_same_statements_whatever_the_number_of_parents,
);
