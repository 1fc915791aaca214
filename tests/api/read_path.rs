//! The queries of the read benchmark (`bench/read`) cost a fixed number of SQL statements,
//! whatever the page size: every relation under a page is loaded in one batch for all of the
//! page's parents, never once per parent. Each query runs at two page sizes against the same
//! data, and the statements it sent are counted with the server's own counter.

use chrono::{Duration, Utc};
use entity::{
    HighlightStatus, KeyMomentContentType, ReviewStatus, UserRole, VideoStatus, creator,
    creator_follow, highlight, key_moment, user, video,
};
use reelgraph::graphql::{narrow::Skip, rows};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, IdenStatic,
    Iterable, JoinType, QueryFilter, QueryOrder, QueryTrait, Set,
    sea_query::{Alias, Expr, ExprTrait},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    both_backends,
    helpers::{Backend, TestApp},
};

/// What the seed created, newest first.
struct Catalogue {
    creators: Vec<Uuid>,
    videos: Vec<Uuid>,
}

const CREATORS: usize = 6;
const VIDEOS_PER_CREATOR: usize = 6;
const MOMENTS_PER_VIDEO: usize = 2;
const FOLLOWERS: usize = 5;

/// Public creators, videos, key moments with one highlight each, and followers — inserted
/// directly, as the benchmark's generator does. Ids are UUIDv7 of increasing times, so the
/// API's newest-first order is the reverse of insertion.
async fn seed(app: &TestApp) -> Catalogue {
    let db = &app.state.db;
    let start = Utc::now() - Duration::days(30);
    let mut tick = 0i64;
    let mut next = || {
        tick += 1;
        let at = start + Duration::seconds(tick);
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            at.timestamp() as u64,
            at.timestamp_subsec_nanos(),
        );
        (Uuid::new_v7(ts), at)
    };

    let mut followers = Vec::new();
    for n in 0..FOLLOWERS {
        let (id, at) = next();
        user::ActiveModel {
            id: Set(id),
            email: Set(format!("fan{n}@example.com")),
            password_hash: Set("not-a-hash: nobody signs in".to_owned()),
            role: Set(UserRole::Viewer),
            is_active: Set(true),
            is_verified: Set(true),
            credits: Set(0),
            created_at: Set(at),
            updated_at: Set(at),
            // Given, as the server's own inserts give them (SQLite's INSERT … RETURNING and
            // columns added by ALTER TABLE: see `auth::register`).
            onboarding_completed: Set(false),
            digest_enabled: Set(false),
            digest_frequency: Set(entity::DigestFrequency::Daily),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("user inserted");
        followers.push(id);
    }

    let mut catalogue = Catalogue {
        creators: Vec::new(),
        videos: Vec::new(),
    };
    let mut moments = Vec::new();
    let mut highlights = Vec::new();
    for c in 0..CREATORS {
        let (creator_id, at) = next();
        creator::ActiveModel {
            id: Set(creator_id),
            name: Set(format!("Reader {c}")),
            slug: Set(format!("reader-{c}")),
            genres: Set(json!(["editing"])),
            social_links: Set(json!({})),
            featured: Set(false),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("creator inserted");
        catalogue.creators.push(creator_id);
        // Every creator has followers, some more than others.
        for follower in followers.iter().take(1 + c % FOLLOWERS) {
            let (id, at) = next();
            creator_follow::ActiveModel {
                id: Set(id),
                user_id: Set(*follower),
                creator_id: Set(creator_id),
                created_at: Set(at),
            }
            .insert(db)
            .await
            .expect("follow inserted");
        }
        for v in 0..VIDEOS_PER_CREATOR {
            let (video_id, at) = next();
            video::ActiveModel {
                id: Set(video_id),
                creator_id: Set(creator_id),
                title: Set(format!("c{c}v{v}")),
                original_filename: Set(format!("c{c}v{v}.mp4")),
                storage_key: Set(format!("creators/{creator_id}/videos/{video_id}/original")),
                duration_secs: Set(Some(600.0)),
                size_bytes: Set(Some(1_000_000 + v as i64)),
                width: Set(Some(1280)),
                height: Set(Some(720)),
                pipeline_stage: Set(3),
                status: Set(VideoStatus::Ready),
                created_at: Set(at),
                updated_at: Set(at),
                ..Default::default()
            }
            .insert(db)
            .await
            .expect("video inserted");
            catalogue.videos.push(video_id);
            // Videos have between one and MOMENTS_PER_VIDEO highlights.
            for m in 0..(1 + (c + v) % MOMENTS_PER_VIDEO) {
                let (moment_id, at) = next();
                let start = 60.0 * m as f64;
                moments.push(key_moment::ActiveModel {
                    id: Set(moment_id),
                    video_id: Set(video_id),
                    title: Set(format!("c{c}v{v}m{m}")),
                    start_time: Set(start),
                    end_time: Set(start + 30.0),
                    topic_tags: Set(json!([])),
                    review_status: Set(ReviewStatus::Approved),
                    sort_order: Set(m as i32),
                    created_at: Set(at),
                    updated_at: Set(at),
                    ..Default::default()
                });
                let (highlight_id, at) = next();
                // Scores spread so the best ones belong to many different videos and creators.
                let score = ((highlights.len() * 37) % 100) as f64 / 100.0;
                highlights.push(highlight::ActiveModel {
                    id: Set(highlight_id),
                    key_moment_id: Set(moment_id),
                    video_id: Set(video_id),
                    score: Set(score),
                    score_breakdown: Set(json!({})),
                    duration_secs: Set(30.0),
                    status: Set(HighlightStatus::Candidate),
                    created_at: Set(at),
                    updated_at: Set(at),
                    ..Default::default()
                });
            }
        }
    }
    key_moment::Entity::insert_many(moments)
        .exec_without_returning(db)
        .await
        .expect("key moments inserted");
    highlight::Entity::insert_many(highlights)
        .exec_without_returning(db)
        .await
        .expect("highlights inserted");
    catalogue.creators.reverse();
    catalogue.videos.reverse();
    catalogue
}

/// Runs `query` signed out and returns its data and the SQL statements it cost.
async fn cost(app: &TestApp, query: &str, variables: Value) -> (Value, u64) {
    let before = app.request_statements();
    let data = app.ok(None, query, variables).await;
    (data, app.request_statements() - before)
}

fn len(value: &Value) -> usize {
    value.as_array().map_or(0, Vec::len)
}

const VIDEO: &str = "query($id: ID!) { video(id: $id) { id title durationSecs status createdAt creator { id name } } }";

const CREATORS_WITH_VIDEOS: &str = "query($n: Int!, $m: Int!) {
    creators(first: $n) { nodes { id name videos(first: $m) { nodes { id title } } } } }";

const TOP_HIGHLIGHTS: &str = "query($n: Int!) {
    highlights(first: $n) { nodes { id score video { id title creator { id name } } keyMoment { id title } } } }";

const CREATOR_PAGE: &str = "query($id: ID!, $n: Int!) {
    creator(id: $id) { id name followerCount videos(first: $n) { nodes { id title highlightCount } } } }";

async fn one_video_costs_the_same_statements_whichever_video(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let catalogue = seed(&app).await;
    let mut costs = Vec::new();
    for id in [
        catalogue.videos[0],
        catalogue.videos[catalogue.videos.len() - 1],
    ] {
        let (data, statements) = cost(&app, VIDEO, json!({ "id": id })).await;
        assert_eq!(data["video"]["id"], id.to_string());
        assert!(data["video"]["creator"]["name"].is_string());
        costs.push(statements);
    }
    assert_eq!(costs[0], costs[1], "statements per request: {costs:?}");
    assert_eq!(costs[0], 1, "the video joined to its creator: {costs:?}");
}

async fn a_page_of_creators_with_their_videos_costs_the_same_statements_whatever_its_size(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let catalogue = seed(&app).await;
    let mut costs = Vec::new();
    for (n, m) in [(2, 2), (CREATORS, VIDEOS_PER_CREATOR - 1)] {
        let (data, statements) = cost(&app, CREATORS_WITH_VIDEOS, json!({ "n": n, "m": m })).await;
        let nodes = &data["creators"]["nodes"];
        assert_eq!(len(nodes), n);
        assert_eq!(nodes[0]["id"], catalogue.creators[0].to_string());
        for node in nodes.as_array().into_iter().flatten() {
            assert_eq!(len(&node["videos"]["nodes"]), m);
        }
        costs.push(statements);
    }
    assert_eq!(
        costs[0], costs[1],
        "statements grew with the page: {costs:?}"
    );
    let expected = match backend {
        // One LATERAL join: each creator's page of videos comes with it.
        Backend::Postgres => 1,
        Backend::Sqlite => 2,
    };
    assert_eq!(
        costs[0], expected,
        "the creators and all of their videos: {costs:?}"
    );
}

/// A creator's first page of videos, read on its own by the top-level `videos` list.
const ONE_CREATORS_VIDEOS: &str = "query($id: ID!, $m: Int!) {
    videos(creatorId: $id, first: $m) { pageInfo { hasNextPage } nodes { id title highlightCount } } }";

/// A page of creators read with their videos (on PostgreSQL in one joined statement) gives
/// each creator exactly the page it gets on its own: creators with no visible video included,
/// forward and backward, through `nodes` and `edges`, and when two selections ask different
/// pages.
async fn creators_listed_with_their_videos_get_the_videos_they_get_alone(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let catalogue = seed(&app).await;
    let db = &app.state.db;
    // The newest creator has no video; the second newest's videos are all still processing,
    // so nobody signed out sees them.
    let empty = Uuid::now_v7();
    creator::ActiveModel {
        id: Set(empty),
        name: Set("Nobody yet".to_owned()),
        slug: Set("nobody-yet".to_owned()),
        genres: Set(json!([])),
        social_links: Set(json!({})),
        featured: Set(false),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("creator inserted");
    video::Entity::update_many()
        .col_expr(video::Column::Status, Expr::value("PROCESSING"))
        .filter(video::Column::CreatorId.eq(catalogue.creators[0]))
        .exec(db)
        .await
        .expect("videos hidden");

    let alone = |id: String, m: usize| {
        let app = &app;
        async move {
            app.ok(None, ONE_CREATORS_VIDEOS, json!({ "id": id, "m": m }))
                .await["videos"]
                .clone()
        }
    };
    let joined = match backend {
        Backend::Postgres => 1,
        Backend::Sqlite => 2,
    };

    // Forward, through `nodes`, with highlight counts: one statement on PostgreSQL.
    let m = 3;
    let (data, statements) = cost(
        &app,
        "query($m: Int!) { creators(first: 4) { pageInfo { hasNextPage endCursor }
            nodes { id videos(first: $m) { pageInfo { hasNextPage } nodes { id title highlightCount } } } } }",
        json!({ "m": m }),
    )
    .await;
    assert_eq!(statements, joined, "{data}");
    let nodes = data["creators"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ids: Vec<&str> = nodes.iter().filter_map(|n| n["id"].as_str()).collect();
    let mut expected = vec![empty.to_string()];
    expected.extend(catalogue.creators[..3].iter().map(Uuid::to_string));
    assert_eq!(ids, expected, "newest first, the empty creators included");
    assert_eq!(data["creators"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(len(&nodes[0]["videos"]["nodes"]), 0);
    assert_eq!(len(&nodes[1]["videos"]["nodes"]), 0);
    assert_eq!(len(&nodes[2]["videos"]["nodes"]), m);
    for node in &nodes {
        let id = node["id"].as_str().expect("id").to_owned();
        assert_eq!(node["videos"], alone(id, m).await, "{node}");
    }

    // One creator by id, with its follower count: the same page, in one statement on
    // PostgreSQL, also for a creator with no visible video.
    for (id, m) in [(catalogue.creators[2], 4), (catalogue.creators[0], 2)] {
        let (data, statements) = cost(
            &app,
            "query($id: ID!, $m: Int!) { creator(id: $id) { id followerCount
                videos(first: $m) { pageInfo { hasNextPage } nodes { id title highlightCount } } } }",
            json!({ "id": id, "m": m }),
        )
        .await;
        assert_eq!(statements, joined, "{data}");
        assert_eq!(data["creator"]["id"], id.to_string());
        assert!(
            data["creator"]["followerCount"]
                .as_u64()
                .is_some_and(|n| n >= 1),
            "{data}"
        );
        assert_eq!(
            data["creator"]["videos"],
            alone(id.to_string(), m).await,
            "{data}"
        );
    }

    // Backward from that page's end, through `edges`, a whole page of videos.
    let m = VIDEOS_PER_CREATOR;
    let cursor = data["creators"]["pageInfo"]["endCursor"].clone();
    let (data, statements) = cost(
        &app,
        "query($m: Int!, $before: String) { creators(last: 2, before: $before) {
            pageInfo { hasPreviousPage }
            edges { node { id videos(first: $m) { pageInfo { hasNextPage } nodes { id title highlightCount } } } } } }",
        json!({ "m": m, "before": cursor }),
    )
    .await;
    assert_eq!(statements, joined, "{data}");
    let edges = data["creators"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ids: Vec<&str> = edges
        .iter()
        .filter_map(|e| e["node"]["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            catalogue.creators[0].to_string(),
            catalogue.creators[1].to_string()
        ],
        "the two before the cursor, in list order"
    );
    assert_eq!(data["creators"]["pageInfo"]["hasPreviousPage"], true);
    for edge in &edges {
        let node = &edge["node"];
        let id = node["id"].as_str().expect("id").to_owned();
        assert_eq!(node["videos"], alone(id, m).await, "{node}");
    }
    assert_eq!(len(&edges[1]["node"]["videos"]["nodes"]), m);
    assert_eq!(edges[1]["node"]["videos"]["pageInfo"]["hasNextPage"], false);

    // Two different pages of videos under one list: each still gets its own.
    let data = app
        .ok(
            None,
            "{ creators(first: 3) { nodes { id
                two: videos(first: 2) { nodes { id } }
                five: videos(first: 5) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    let nodes = data["creators"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let third = &nodes[2];
    assert_eq!(len(&third["two"]["nodes"]), 2);
    assert_eq!(len(&third["five"]["nodes"]), 5);
    assert_eq!(third["two"]["nodes"][1], third["five"]["nodes"][1]);
}

async fn a_page_of_top_highlights_costs_the_same_statements_whatever_its_size(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    seed(&app).await;
    let mut costs = Vec::new();
    for n in [2, 20] {
        let (data, statements) = cost(&app, TOP_HIGHLIGHTS, json!({ "n": n })).await;
        let nodes = data["highlights"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(nodes.len(), n);
        let scores: Vec<f64> = nodes.iter().filter_map(|h| h["score"].as_f64()).collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "best first: {scores:?}"
        );
        for node in &nodes {
            assert!(node["video"]["creator"]["name"].is_string());
            // Seeded moments are titled after their video: each highlight's own moment.
            let video = node["video"]["title"].as_str().expect("video title");
            assert!(
                node["keyMoment"]["title"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(&format!("{video}m"))),
                "{node}"
            );
        }
        costs.push(statements);
    }
    assert_eq!(
        costs[0], costs[1],
        "statements grew with the page: {costs:?}"
    );
    assert_eq!(
        costs[0], 1,
        "highlights joined to their videos, creators and key moments: {costs:?}"
    );
}

async fn a_creator_page_costs_the_same_statements_whatever_its_size(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let catalogue = seed(&app).await;
    // The last creator seeded (the first listed) has followers and videos with 1 or 2 highlights.
    let creator = catalogue.creators[0];
    let mut costs = Vec::new();
    for n in [2, VIDEOS_PER_CREATOR] {
        let (data, statements) = cost(&app, CREATOR_PAGE, json!({ "id": creator, "n": n })).await;
        let page = &data["creator"];
        assert_eq!(page["id"], creator.to_string());
        assert_eq!(page["followerCount"], 1 + (CREATORS - 1) % FOLLOWERS);
        let videos = page["videos"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(videos.len(), n);
        for video in &videos {
            let count = video["highlightCount"].as_u64().unwrap_or(0);
            assert!((1..=MOMENTS_PER_VIDEO as u64).contains(&count), "{video}");
        }
        costs.push(statements);
    }
    assert_eq!(
        costs[0], costs[1],
        "statements grew with the page: {costs:?}"
    );
    let expected = match backend {
        // The creator, its follower count and its videos with theirs, LATERAL-joined.
        Backend::Postgres => 1,
        // The creator with its follower count, then its videos with their highlight counts.
        Backend::Sqlite => 2,
    };
    assert_eq!(costs[0], expected, "{costs:?}");
}

/// Reads leave out the columns no field of the request reads (see
/// `graphql::narrow`); a field that does read one — in the same operation, through a fragment,
/// or in another operation of the same batch, which shares the loaders' caches — gets the
/// stored value, never the stand-in.
async fn columns_left_out_of_a_read_are_never_what_a_field_reads(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    seed(&app).await;
    key_moment::Entity::update_many()
        .col_expr(
            key_moment::Column::Summary,
            Expr::value("about this moment"),
        )
        .col_expr(key_moment::Column::TopicTags, Expr::value(json!(["cut"])))
        .col_expr(key_moment::Column::StartTime, Expr::value(12.5))
        .col_expr(key_moment::Column::EndTime, Expr::value(42.5))
        .col_expr(key_moment::Column::TopicCategory, Expr::value("craft"))
        .col_expr(key_moment::Column::ContentType, Expr::value("WORKFLOW"))
        .col_expr(key_moment::Column::SortOrder, Expr::value(5))
        .exec(&app.state.db)
        .await
        .expect("key moments updated");
    // Not the values a left-out column reads as (zero, `CANDIDATE`, `PENDING`, `NULL`).
    highlight::Entity::update_many()
        .col_expr(highlight::Column::DurationSecs, Expr::value(27.5))
        .col_expr(highlight::Column::Status, Expr::value("APPROVED"))
        .col_expr(highlight::Column::TrimStart, Expr::value(13.0))
        .col_expr(highlight::Column::TrimEnd, Expr::value(40.5))
        .exec(&app.state.db)
        .await
        .expect("highlights updated");
    let narrow = "{ highlights(first: 3) { nodes { id video { id title creator { id name } } keyMoment { title } } } }";
    let data = app.ok(None, narrow, json!({})).await;
    let nodes = data["highlights"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(nodes.len(), 3);
    let creator = nodes[0]["video"]["creator"]["id"]
        .as_str()
        .expect("creator")
        .to_owned();

    for node in &nodes {
        assert!(
            node["keyMoment"]["title"]
                .as_str()
                .is_some_and(|t| t.starts_with('c')),
            "{node}"
        );
    }

    let wide = "{ highlights(first: 3) { nodes { scoreBreakdown createdAt updatedAt
            durationSecs status trimStart trimEnd
            video { originalFilename durationSecs width height sizeBytes pipelineStage createdAt
                updatedAt creator { genres socialLinks createdAt updatedAt } }
            keyMoment { summary topicTags createdAt startTime endTime topicCategory contentType
                reviewStatus sortOrder } } }
        creators(first: 2) { nodes { genres createdAt videos(first: 2) { nodes { originalFilename
            durationSecs width height sizeBytes pipelineStage createdAt updatedAt } } } } }";
    // Seeded times are of the last 30 days; a left-out timestamp would read as 1970.
    let recent = |value: &Value| {
        assert!(
            value.as_str().is_some_and(|t| t.starts_with("20")),
            "not the stored time: {value}"
        );
    };
    let probed = |video: &Value| {
        recent(&video["createdAt"]);
        recent(&video["updatedAt"]);
        assert_eq!(video["durationSecs"], 600.0, "{video}");
        assert_eq!(video["width"], 1280, "{video}");
        assert_eq!(video["height"], 720, "{video}");
        assert!(
            video["sizeBytes"].as_i64().is_some_and(|s| s >= 1_000_000),
            "{video}"
        );
        assert_eq!(video["pipelineStage"], 3, "{video}");
    };
    let data = app.ok(None, wide, json!({})).await;
    let highlights = data["highlights"]["nodes"].as_array().expect("highlights");
    assert_eq!(highlights.len(), 3, "{data}");
    for node in highlights {
        assert_eq!(node["keyMoment"]["summary"], "about this moment", "{node}");
        assert_eq!(node["keyMoment"]["topicTags"], json!(["cut"]), "{node}");
        assert_eq!(node["keyMoment"]["startTime"], 12.5, "{node}");
        assert_eq!(node["keyMoment"]["endTime"], 42.5, "{node}");
        assert_eq!(node["keyMoment"]["topicCategory"], "craft", "{node}");
        assert_eq!(node["keyMoment"]["contentType"], "WORKFLOW", "{node}");
        assert_eq!(node["keyMoment"]["reviewStatus"], "APPROVED", "{node}");
        assert_eq!(node["keyMoment"]["sortOrder"], 5, "{node}");
        assert_eq!(node["durationSecs"], 27.5, "{node}");
        assert_eq!(node["status"], "APPROVED", "{node}");
        assert_eq!(node["trimStart"], 13.0, "{node}");
        assert_eq!(node["trimEnd"], 40.5, "{node}");
        assert_eq!(node["scoreBreakdown"], json!({}), "{node}");
        assert!(
            node["video"]["originalFilename"]
                .as_str()
                .is_some_and(|f| f.ends_with(".mp4")),
            "{node}"
        );
        assert_eq!(
            node["video"]["creator"]["genres"],
            json!(["editing"]),
            "{node}"
        );
        assert_eq!(node["video"]["creator"]["socialLinks"], json!({}), "{node}");
        probed(&node["video"]);
        for time in [
            &node["createdAt"],
            &node["updatedAt"],
            &node["video"]["creator"]["createdAt"],
            &node["video"]["creator"]["updatedAt"],
            &node["keyMoment"]["createdAt"],
        ] {
            recent(time);
        }
    }
    let creators = data["creators"]["nodes"].as_array().expect("creators");
    assert_eq!(creators.len(), 2, "{data}");
    for node in creators {
        assert_eq!(node["genres"], json!(["editing"]), "{node}");
        recent(&node["createdAt"]);
        let videos = node["videos"]["nodes"].as_array().expect("videos");
        assert_eq!(videos.len(), 2, "{node}");
        for video in videos {
            assert!(
                video["originalFilename"]
                    .as_str()
                    .is_some_and(|f| f.ends_with(".mp4")),
                "{video}"
            );
            probed(video);
        }
    }

    let video_id = nodes[0]["video"]["id"].clone();
    let one = "query($id: ID!) { video(id: $id) { id durationSecs width height sizeBytes
        pipelineStage originalFilename createdAt updatedAt creator { id genres } } }";
    let data = app.ok(None, one, json!({ "id": video_id })).await;
    probed(&data["video"]);
    assert!(
        data["video"]["originalFilename"]
            .as_str()
            .is_some_and(|f| f.ends_with(".mp4")),
        "{data}"
    );
    assert_eq!(
        data["video"]["creator"]["genres"],
        json!(["editing"]),
        "{data}"
    );

    let fragment = "fragment F on Creator { genres }
        { highlights(first: 3) { nodes { video { creator { ...F } } } } }";
    let data = app.ok(None, fragment, json!({})).await;
    assert_eq!(
        data["highlights"]["nodes"][0]["video"]["creator"]["genres"],
        json!(["editing"])
    );

    // A batch: its operations run concurrently and share the loaders' caches. The first reads
    // the creators without their genres and primes the caches with them; the second reads the
    // same highlights, videos and creators, and asks for the genres.
    let batch = json!([
        { "query": narrow },
        { "query": "{ highlights(first: 3) { nodes { id video { id durationSecs creator { id genres } } } } }" },
    ]);
    let answers: Value = app
        .client
        .post(format!("{}/graphql", app.base))
        .json(&batch)
        .send()
        .await
        .expect("batch sent")
        .json()
        .await
        .expect("json");
    let second = answers[1]["data"]["highlights"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(second.len(), 3, "{answers}");
    assert_eq!(second[0]["video"]["creator"]["id"], creator, "{answers}");
    for node in &second {
        assert_eq!(
            node["video"]["creator"]["genres"],
            json!(["editing"]),
            "{answers}"
        );
        assert_eq!(node["video"]["durationSecs"], 600.0, "{answers}");
    }
}

/// The highlights page decodes its joined rows by column position (`graphql::rows`); with
/// every column of the three entities set to a distinct value, that must give exactly what
/// SeaORM's decoding by name gives.
async fn joined_rows_decode_by_position_as_seaorm_decodes_them_by_name(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let catalogue = seed(&app).await;
    let db = &app.state.db;
    let video_id = catalogue.videos[0];
    let now = Utc::now();
    let mut video: video::ActiveModel = video::Entity::find_by_id(video_id)
        .one(db)
        .await
        .expect("read")
        .expect("video")
        .into();
    video.uploaded_by = Set(None);
    video.mime = Set(Some("video/mp4".into()));
    video.size_bytes = Set(Some(123_456));
    video.sha256 = Set(Some("ab".repeat(32)));
    video.width = Set(Some(1920));
    video.height = Set(Some(1080));
    video.pipeline_stage = Set(3);
    video.failure_reason = Set(Some("reason".into()));
    video.youtube_url = Set(Some("https://youtube.example/v".into()));
    video.retention_class = Set("archive".into());
    video.retention_until = Set(Some(now + Duration::days(3)));
    video.deleted_at = Set(Some(now - Duration::days(1)));
    video.updated_at = Set(now);
    let video = video.update(db).await.expect("video updated");
    let mut creator: creator::ActiveModel = creator::Entity::find_by_id(video.creator_id)
        .one(db)
        .await
        .expect("read")
        .expect("creator")
        .into();
    creator.bio = Set(Some("bio".into()));
    creator.avatar_url = Set(Some("https://avatars.example/a.png".into()));
    creator.featured = Set(true);
    creator.personality_profile = Set(Some(json!({ "tone": "warm" })));
    creator.shorts_template = Set(Some(json!({ "intro": true })));
    creator.updated_at = Set(now);
    creator.update(db).await.expect("creator updated");
    let mut highlight: highlight::ActiveModel = highlight::Entity::find()
        .filter(highlight::Column::VideoId.eq(video_id))
        .one(db)
        .await
        .expect("read")
        .expect("highlight")
        .into();
    highlight.score_breakdown = Set(json!({ "hook": 0.5 }));
    highlight.status = Set(HighlightStatus::Approved);
    highlight.trim_start = Set(Some(1.5));
    highlight.trim_end = Set(Some(20.25));
    highlight.updated_at = Set(now);
    highlight.update(db).await.expect("highlight updated");

    let mut moment: key_moment::ActiveModel = key_moment::Entity::find()
        .filter(key_moment::Column::VideoId.eq(video_id))
        .one(db)
        .await
        .expect("read")
        .expect("key moment")
        .into();
    moment.summary = Set(Some("summary".into()));
    moment.topic_category = Set(Some("craft".into()));
    moment.topic_tags = Set(json!(["a", "b"]));
    moment.content_type = Set(Some(KeyMomentContentType::Workflow));
    moment.review_status = Set(ReviewStatus::Approved);
    moment.sort_order = Set(7);
    moment.updated_at = Set(now);
    let moment = moment.update(db).await.expect("key moment updated");

    let whole = decoded_both_ways(db, video_id, [Skip::NONE; 4], false).await;
    assert!(whole.iter().any(|(_, m)| *m == moment), "{whole:?}");

    // Columns removed from a statement (`Skip::remove`) decode by position to what the
    // constants read in their place (`Skip::apply`) decode to by name.
    let narrow = decoded_both_ways(
        db,
        video_id,
        [
            Skip::given::<highlight::Entity>(|_| false),
            Skip::given::<video::Entity>(|_| false),
            Skip::given::<creator::Entity>(|_| false),
            Skip::given::<key_moment::Entity>(|_| false),
        ],
        true,
    )
    .await;
    for (v, _) in &narrow {
        assert_eq!(v.id, video_id);
        assert_eq!(v.title, video.title, "a column no skip leaves out");
    }
}

/// Reads `video_id`'s highlights joined to their videos, creators and key moments twice: with
/// the columns `skips` (highlight, video, creator, key moment) leaves out removed, and with
/// constants read in their place. Checks that decoding the first by position gives what
/// SeaORM gives decoding the second by name, every column read once; returns the videos and
/// key moments.
async fn decoded_both_ways(
    db: &sea_orm::DatabaseConnection,
    video_id: Uuid,
    skips: [Skip; 4],
    fewer_columns: bool,
) -> Vec<(video::Model, key_moment::Model)> {
    let backend = db.get_database_backend();
    let page = || {
        let mut select = highlight::Entity::find()
            .find_also_related(video::Entity)
            .and_also_related(creator::Entity)
            .filter(highlight::Column::VideoId.eq(video_id))
            .order_by_asc(highlight::Column::Id);
        QueryTrait::query(&mut select).join(
            JoinType::LeftJoin,
            key_moment::Entity,
            Expr::col((key_moment::Entity, key_moment::Column::Id))
                .equals((highlight::Entity, highlight::Column::KeyMomentId)),
        );
        for column in key_moment::Column::iter() {
            QueryTrait::query(&mut select).expr_as(
                Expr::col((key_moment::Entity, column)),
                Alias::new(format!("D_{}", column.as_str())),
            );
        }
        select
    };
    let mut removed = page();
    let mut constants = page();
    let (query, with) = (
        QueryTrait::query(&mut removed),
        QueryTrait::query(&mut constants),
    );
    skips[0].remove::<highlight::Entity>(query, "A_");
    skips[1].remove::<video::Entity>(query, "B_");
    skips[2].remove::<creator::Entity>(query, "C_");
    skips[3].remove::<key_moment::Entity>(query, "D_");
    skips[0].apply::<highlight::Entity>(with, "A_", backend);
    skips[1].apply::<video::Entity>(with, "B_", backend);
    skips[2].apply::<creator::Entity>(with, "C_", backend);
    skips[3].apply::<key_moment::Entity>(with, "D_", backend);
    let removed = db
        .query_all_raw(removed.build(backend))
        .await
        .expect("rows");
    let constants = db
        .query_all_raw(constants.build(backend))
        .await
        .expect("rows");
    assert!(!removed.is_empty());
    assert_eq!(removed.len(), constants.len());
    let mut decoded = Vec::new();
    for (row, with) in removed.iter().zip(&constants) {
        assert_eq!(
            row.column_names().len() < with.column_names().len(),
            fewer_columns
        );
        let (h, next) = rows::highlight_at(row, 0, skips[0]).expect("highlight");
        let (v, next) = rows::video_at(row, next, skips[1]).expect("video");
        let (c, next) = rows::creator_at(row, next, skips[2]).expect("creator");
        let (m, end) = rows::key_moment_at(row, next, skips[3]).expect("key moment");
        assert_eq!(end, row.column_names().len(), "every column read once");
        assert_eq!(
            h,
            highlight::Model::from_query_result(with, "A_").expect("by name")
        );
        assert_eq!(
            v,
            video::Model::from_query_result(with, "B_").expect("by name")
        );
        assert_eq!(
            c,
            creator::Model::from_query_result(with, "C_").expect("by name")
        );
        assert_eq!(
            m,
            key_moment::Model::from_query_result(with, "D_").expect("by name")
        );
        decoded.push((v, m));
    }
    decoded
}

both_backends!(
    one_video_costs_the_same_statements_whichever_video,
    a_page_of_creators_with_their_videos_costs_the_same_statements_whatever_its_size,
    creators_listed_with_their_videos_get_the_videos_they_get_alone,
    a_page_of_top_highlights_costs_the_same_statements_whatever_its_size,
    a_creator_page_costs_the_same_statements_whatever_its_size,
    columns_left_out_of_a_read_are_never_what_a_field_reads,
    joined_rows_decode_by_position_as_seaorm_decodes_them_by_name,
);
