use chrono::Utc;
use entity::{VideoStatus, video_consent, video_variant};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::json;
use uuid::Uuid;

use crate::{
    both_backends,
    helpers::{Backend, TestApp, error_code, insert_video},
};

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
    let ready = insert_video(&app, &creator, "ready", VideoStatus::Ready, None).await;
    let processing =
        insert_video(&app, &creator, "processing", VideoStatus::Processing, None).await;
    let withheld = insert_video(&app, &creator, "withheld", VideoStatus::Ready, None).await;
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
        // With the creator selected the video is read joined to it: hidden just the same.
        for (hidden, query) in [
            (processing, "query($id: ID!) { video(id: $id) { id } }"),
            (withheld, "query($id: ID!) { video(id: $id) { id } }"),
            (
                processing,
                "query($id: ID!) { video(id: $id) { id creator { name } } }",
            ),
            (
                withheld,
                "query($id: ID!) { video(id: $id) { id creator { name } } }",
            ),
        ] {
            let body = app.gql(token, query, json!({ "id": hidden })).await;
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
                "query($c: ID!) { creator(id: $c) { followerCount
                    videos { totalCount nodes { title highlightCount } } } }",
                json!({ "c": creator }),
            )
            .await;
        assert_eq!(nested["creator"]["videos"]["totalCount"], 1);
        assert_eq!(
            nested["creator"]["videos"]["nodes"],
            json!([{ "title": "ready", "highlightCount": 0 }])
        );
        assert_eq!(nested["creator"]["followerCount"], 0);
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
            let video = insert_video(
                &app,
                &creator,
                &format!("c{c}v{v}"),
                VideoStatus::Ready,
                None,
            )
            .await;
            // The newest video of each creator (v3) has both renditions, v2 a thumbnail only.
            let profiles: &[&str] = match v {
                3 => &["proxy_720p", "thumbnail"],
                2 => &["thumbnail"],
                _ => &[],
            };
            for profile in profiles {
                video_variant::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    video_id: Set(video),
                    profile: Set((*profile).to_owned()),
                    storage_key: Set(format!("variants/{video}/{profile}")),
                    created_at: Set(Utc::now()),
                    ..Default::default()
                }
                .insert(&app.state.db)
                .await
                .expect("variant inserted");
            }
        }
    }
    let query = "query($n: Int!) { creators(first: $n) { totalCount nodes { name followerCount viewerIsFollowing
        videos(first: 3) { totalCount pageInfo { hasNextPage }
            nodes { title creator { name } thumbnailUrl proxyUrl variants { profile } } } } } }";
    let mut costs = Vec::new();
    // The owner sees the renditions' list; anyone else gets the links but an empty list.
    for (token, member) in [(&owner.access_token, true), (&viewer.access_token, false)] {
        for n in [1, 4, 12] {
            let before = app.request_statements();
            let data = app.ok(Some(token), query, json!({ "n": n })).await;
            costs.push(app.request_statements() - before);
            let nodes = data["creators"]["nodes"].as_array().expect("nodes");
            assert_eq!(nodes.len(), n as usize);
            for node in nodes {
                let videos = node["videos"]["nodes"].as_array().expect("videos");
                assert_eq!(videos.len(), 3);
                assert_eq!(node["videos"]["totalCount"], 4);
                assert_eq!(node["videos"]["pageInfo"]["hasNextPage"], true);
                let has = |i: usize, field: &str| videos[i][field].is_string();
                assert!(has(0, "thumbnailUrl") && has(0, "proxyUrl"), "{node}");
                assert!(has(1, "thumbnailUrl") && !has(1, "proxyUrl"), "{node}");
                assert!(!has(2, "thumbnailUrl") && !has(2, "proxyUrl"), "{node}");
                let profiles = videos[0]["variants"].clone();
                if member {
                    assert_eq!(
                        profiles,
                        json!([{ "profile": "proxy_720p" }, { "profile": "thumbnail" }])
                    );
                } else {
                    assert_eq!(profiles, json!([]));
                }
            }
        }
        let own = &costs[costs.len() - 3..];
        assert!(
            own.iter().all(|&c| c == own[0]),
            "statements per request grew with parents: {costs:?}"
        );
    }
    assert!(costs[0] <= 11, "statements per request: {costs:?}");
}

both_backends!(
    unpublished_videos_are_visible_to_members_only,
    nested_lists_cost_the_same_statements_whatever_the_number_of_parents,
);
