//! Rendering movie specs into real MP4s with ffmpeg, on the local and the S3 backend.

use std::{path::Path, time::Duration};

use reelgraph::render::ffmpeg;
use serde_json::{Value, json};

use crate::{
    helpers::{
        Backend, Session, TestApp, collect_until_complete, error_code, error_field, make_png,
        next_payload, subscribe,
    },
    s3,
};

const RENDER: &str =
    "mutation($input: RenderMovieInput!) { renderMovie(input: $input) { id status } }";
const UPDATES: &str =
    "subscription($id: ID!) { jobUpdated(id: $id) { status progress currentPhase outputUrl } }";
const CHILDREN: &str = "query($id: ID!) { job(id: $id) { outputUrl children(first: 100) { nodes { type cached status sceneId sceneIndex } } } }";

/// Makes a 64×64 PNG with ffmpeg and stores it as an asset of `owner`.
async fn upload_logo(app: &TestApp, owner: &Session) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let png = dir.path().join("logo.png");
    make_png(&png, "0xff3366", "64x64").await;
    let key = format!("assets/{}/logo.png", owner.user_id);
    app.state
        .storage
        .put_file(&key, &png, "image/png")
        .await
        .expect("stored");
    key
}

fn movie(logo: &str, last_scene_text: &str) -> Value {
    json!({
        "width": 640, "height": 360, "fps": 30,
        "scenes": [
            { "id": "intro", "duration": 1.0, "bgColor": "#1A1A2E",
              "layers": [{ "text": { "text": "Reelgraph", "fontSize": 64, "color": "#FFFFFF" } }] },
            { "id": "logo", "duration": 1.5, "bgColor": "#16213E",
              "layers": [
                { "image": { "assetKey": logo, "x": 40, "y": 40, "width": 128, "height": 128, "start": 0.25 } },
                { "text": { "text": "with an image", "x": 200, "y": 150, "start": 0.5, "end": 1.4 } },
                // The same picture again: looked up and downloaded once, drawn twice.
                { "image": { "assetKey": logo, "x": 472, "y": 40, "width": 128, "height": 128 } }
              ] },
            { "id": "outro", "duration": 2.0, "bgColor": "#0F3460",
              "layers": [{ "text": { "text": last_scene_text, "fontSize": 40, "color": "#E94560" } }] }
        ]
    })
}

/// Renders `spec` and follows it to the end; returns the job id, the updates and the time.
///
/// The app runs without a worker until the subscription has delivered its first event (the
/// job, still QUEUED), so every phase the job goes through is seen, however busy the machine.
async fn render(app: &TestApp, owner: &Session, spec: Value) -> (String, Vec<Value>, Duration) {
    let started = tokio::time::Instant::now();
    let data = app
        .ok(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": spec } }),
        )
        .await;
    let id = data["renderMovie"]["id"].as_str().expect("id").to_owned();
    let mut socket = subscribe(&app.base, &owner.access_token, UPDATES, json!({ "id": id })).await;
    let first = next_payload(&mut socket).await["data"]["jobUpdated"].clone();
    assert_eq!(
        first["status"], "QUEUED",
        "no worker has run it yet: {first}"
    );
    let workers =
        tokio::spawn(reelgraph::app::worker_pool(&app.state).run(app.state.shutdown.child_token()));
    let updates: Vec<Value> = std::iter::once(first)
        .chain(
            collect_until_complete(&mut socket, Duration::from_secs(180))
                .await
                .into_iter()
                .map(|p| p["data"]["jobUpdated"].clone()),
        )
        .collect();
    workers.abort();
    (id, updates, started.elapsed())
}

/// Renders `spec` to its end, which must be FAILED; returns the job's error.
async fn render_failure(app: &TestApp, owner: &Session, spec: Value) -> String {
    let (id, _, _) = render(app, owner, spec).await;
    let data = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { job(id: $id) { status error } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["job"]["status"], "FAILED", "{data}");
    data["job"]["error"].as_str().unwrap_or_default().to_owned()
}

async fn download(app: &TestApp, url: &str, to: &Path) {
    let response = app.client.get(url).send().await.expect("download");
    assert_eq!(response.status(), 200, "{url}");
    std::fs::write(to, response.bytes().await.expect("body")).expect("written");
}

async fn render_flow(app: TestApp) {
    let owner = app.register("director@example.com").await;
    let logo = upload_logo(&app, &owner).await;

    let (id, updates, first_time) = render(&app, &owner, movie(&logo, "The end")).await;
    let last = updates.last().expect("updates");
    assert_eq!(last["status"], "DONE", "{updates:#?}");
    // Billed the movie's 4.5 s exactly (its sound ran 21 ms past the picture, and was billed).
    let usage = app
        .ok(
            Some(&owner.access_token),
            "{ renderUsage { minutesConsumed } }",
            json!({}),
        )
        .await;
    let shown = (4.5_f64 / 60.0 * 1e6).round() / 1e6;
    assert_eq!(
        usage["renderUsage"]["minutesConsumed"].as_f64(),
        Some(shown),
        "{usage}"
    );
    let mut phases: Vec<&str> = updates
        .iter()
        .filter_map(|u| u["currentPhase"].as_str())
        .collect();
    phases.dedup();
    // Each event is the job as it is when the subscriber re-reads it (DESIGN.md: coalescing),
    // so a short phase can be overtaken by the next one on a busy machine; the order cannot.
    let order = ["planning", "rendering", "assembling"];
    assert!(
        phases.is_sorted_by_key(|p| order.iter().position(|o| o == p)),
        "phases out of order: {phases:?}"
    );
    assert!(
        phases.iter().all(|p| order.contains(p)) && phases.contains(&"rendering"),
        "{updates:#?}"
    );
    assert!(
        updates
            .iter()
            .filter_map(|u| u["progress"].as_f64())
            .any(|p| p > 0.0 && p < 1.0),
        "no progress between queued and done was streamed: {updates:#?}"
    );
    let progress: Vec<f64> = updates
        .iter()
        .filter_map(|u| u["progress"].as_f64())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {progress:?}"
    );
    assert_eq!(progress.last().copied(), Some(1.0));

    let url = last["outputUrl"].as_str().expect("outputUrl once done");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("movie.mp4");
    download(&app, url, &file).await;
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let probe = ffmpeg::probe(&tools, &file)
        .await
        .expect("ffprobe reads the output");
    assert_eq!((probe.width, probe.height), (Some(640), Some(360)));
    assert!(
        probe.fps.is_some_and(|fps| (fps - 30.0).abs() < 0.01),
        "{probe:?}"
    );
    let duration = probe
        .video_duration_secs
        .or(probe.duration_secs)
        .expect("duration");
    assert!(
        (duration - 4.5).abs() <= 1.0 / 30.0 + 1e-6,
        "duration {duration} vs 4.5 ({probe:?})"
    );
    assert!(
        probe.has_audio,
        "every scene carries a (silent) audio track"
    );

    // One scene changed: only that scene renders again.
    let (second, updates, second_time) = render(&app, &owner, movie(&logo, "The new end")).await;
    assert_eq!(updates.last().expect("updates")["status"], "DONE");
    let data = app
        .ok(Some(&owner.access_token), CHILDREN, json!({ "id": second }))
        .await;
    let scenes: Vec<&Value> = data["job"]["children"]["nodes"]
        .as_array()
        .expect("children")
        .iter()
        .filter(|c| c["type"] == "render.scene")
        .collect();
    let cached: Vec<bool> = scenes
        .iter()
        .map(|s| s["cached"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(cached, [true, true, false], "{data:#}");
    // Each scene job says which scene of the spec it is; the assembly is none.
    let named: Vec<(Value, Value)> = scenes
        .iter()
        .map(|s| (s["sceneId"].clone(), s["sceneIndex"].clone()))
        .collect();
    assert_eq!(
        named,
        [
            (json!("intro"), json!(0)),
            (json!("logo"), json!(1)),
            (json!("outro"), json!(2))
        ],
        "{data:#}"
    );
    let assembly = data["job"]["children"]["nodes"]
        .as_array()
        .expect("children")
        .iter()
        .find(|c| c["type"] == "render.assemble")
        .expect("the assembly");
    assert_eq!(
        (&assembly["sceneId"], &assembly["sceneIndex"]),
        (&Value::Null, &Value::Null)
    );
    println!("first render {first_time:?}, one scene changed {second_time:?}");

    // New bytes under the same asset key (its presigned PUT is good for 10 minutes): the
    // scene that shows the picture renders again, the others come from the cache.
    let dir = tempfile::tempdir().expect("dir");
    let png = dir.path().join("logo.png");
    make_png(&png, "0x33ff66", "64x64").await;
    app.state
        .storage
        .put_file(&logo, &png, "image/png")
        .await
        .expect("stored");
    let (third, updates, _) = render(&app, &owner, movie(&logo, "The new end")).await;
    assert_eq!(updates.last().expect("updates")["status"], "DONE");
    let data = app
        .ok(Some(&owner.access_token), CHILDREN, json!({ "id": third }))
        .await;
    let cached: Vec<bool> = data["job"]["children"]["nodes"]
        .as_array()
        .expect("children")
        .iter()
        .filter(|c| c["type"] == "render.scene")
        .map(|s| s["cached"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(cached, [true, false, true], "{data:#}");
    // Three renders of three scenes: 3 + 1 + 1 rendered, 2 + 2 from the cache.
    let text = crate::metrics::scrape(&app.client, &app.base).await;
    for (result, n) in [("hit", 4.0), ("miss", 5.0)] {
        let series = format!(r#"reelgraph_scene_cache_lookups_total{{result="{result}"}}"#);
        assert_eq!(crate::metrics::value(&text, &series), Some(n), "{text}");
    }

    // Every scene from the cache: the movie still goes through assembling, and a finished
    // movie names the last phase it went through, however many of its scenes were cached.
    let (fourth, updates, _) = render(&app, &owner, movie(&logo, "The new end")).await;
    assert_eq!(updates.last().expect("updates")["status"], "DONE");
    for job in [&id, &second, &third, &fourth] {
        let data = app
            .ok(
                Some(&owner.access_token),
                "query($id: ID!) { job(id: $id) { status currentPhase } }",
                json!({ "id": job }),
            )
            .await;
        assert_eq!(
            data["job"],
            json!({ "status": "DONE", "currentPhase": "assembling" }),
            "{job}"
        );
    }

    // The local backend serves objects as inert data: not sniffed, not a page.
    if app.state.storage.backend_name() == "local" {
        assert!(url.contains("/objects/"), "{url}");
        let response = app.client.get(url).send().await.expect("download");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            response.headers()["content-security-policy"],
            "default-src 'none'; sandbox"
        );
    }

    // Presigned URLs: a plain client fetches them; tampered or expired ones fail.
    let key = format!("outputs/{id}/movie.mp4");
    let tampered = tamper_signature(url);
    let response = app.client.get(&tampered).send().await.expect("request");
    assert_eq!(response.status(), 403, "tampered URL must fail");
    // Expiry times are whole seconds (SigV4's X-Amz-Date too), so a URL valid for 5 s is
    // still good for at least 4 s, and one valid for 1 s is surely dead 2.1 s later.
    let valid = app
        .state
        .storage
        .presign_get(&key, Duration::from_secs(5))
        .await
        .expect("presigned");
    assert_eq!(
        app.client
            .get(&valid)
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
    let short = app
        .state
        .storage
        .presign_get(&key, Duration::from_secs(1))
        .await
        .expect("presigned");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        app.client
            .get(&short)
            .send()
            .await
            .expect("request")
            .status(),
        403,
        "expired URL must fail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_movie_renders_to_an_mp4_on_local_storage_and_rerenders_only_changed_scenes() {
    render_flow(TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_movie_renders_to_an_mp4_on_s3_storage_and_rerenders_only_changed_scenes() {
    let server = s3::start().await;
    let app = TestApp::spawn_with(Backend::Postgres, |a| {
        a.no_worker = true;
        s3::configure(&mut a.config, &server);
    })
    .await;
    assert_eq!(app.state.storage.backend_name(), "s3");
    render_flow(app).await;
}

/// Scenes join at their exact boundaries: three scenes of 7, 6 and 7 frames at 12 fps (0.55 s,
/// 0.5 s and 0.55 s asked, rounded up to whole frames) make 20 frames a twelfth of a second
/// apart, 1.667 s in all. Each scene's MP4 says it lasts a whole millisecond (0.584 s for
/// 0.583 s), and the pictures after each boundary came a little late: the movie read as
/// 12000/1001 fps and lasted 1.6680 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenes_join_at_whole_frames_of_the_movies_frame_rate() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("frames@example.com").await;
    let spec = json!({ "width": 160, "height": 120, "fps": 12, "scenes": [
        { "id": "a", "duration": 0.55, "bgColor": "#102030" },
        { "id": "b", "duration": 0.5, "bgColor": "#302010" },
        { "id": "c", "duration": 0.55, "bgColor": "#102030" }] });
    let (id, updates, _) = render(&app, &owner, spec).await;
    let last = updates.last().expect("updates");
    assert_eq!(last["status"], "DONE", "{updates:#?}");
    // "c" is "a" again: one job renders both, before either is in the cache.
    let children = app
        .ok(Some(&owner.access_token), CHILDREN, json!({ "id": id }))
        .await;
    let scenes: Vec<_> = children["job"]["children"]["nodes"]
        .as_array()
        .expect("children")
        .iter()
        .filter(|c| c["type"] == "render.scene")
        .map(|c| (c["sceneId"].as_str(), c["cached"].as_bool()))
        .collect();
    assert_eq!(
        scenes,
        [(Some("a"), Some(false)), (Some("b"), Some(false))],
        "{children}"
    );
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("movie.mp4");
    download(&app, last["outputUrl"].as_str().expect("outputUrl"), &file).await;
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let probe = |entries: &'static str| {
        let file = file.clone();
        let ffprobe = tools.ffprobe.clone();
        async move {
            let out = tokio::process::Command::new(ffprobe)
                .args([
                    "-v",
                    "error",
                    "-select_streams",
                    "v:0",
                    "-show_entries",
                    entries,
                ])
                .args(["-of", "csv=p=0"])
                .arg(&file)
                .output()
                .await
                .expect("ffprobe runs");
            String::from_utf8(out.stdout).expect("text")
        }
    };
    let stream = probe("stream=r_frame_rate,time_base,duration").await;
    let fields: Vec<&str> = stream.trim().split(',').collect();
    assert_eq!(fields.first(), Some(&"12/1"), "{stream}");
    let duration: f64 = fields
        .get(2)
        .and_then(|d| d.parse().ok())
        .expect("duration");
    assert!((duration - 20.0 / 12.0).abs() < 1e-4, "{stream}");
    // Picture and sound both start at 0, and the file lasts as long as its pictures: the
    // sound's priming frame moved the pictures of every joined movie 21 ms later.
    let out = tokio::process::Command::new(&tools.ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,start_time",
        ])
        .args(["-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .await
        .expect("ffprobe runs");
    let streams = String::from_utf8(out.stdout).expect("text");
    let lines: Vec<&str> = streams.lines().map(str::trim).collect();
    assert_eq!(
        lines[..2],
        ["video,0.000000", "audio,0.000000"],
        "{streams}"
    );
    let length: f64 = lines[2].parse().expect("format duration");
    assert!((length - 20.0 / 12.0).abs() < 1e-3, "{streams}");
    let tick: f64 = fields
        .get(1)
        .and_then(|tb| tb.strip_prefix("1/"))
        .and_then(|d| d.parse().ok())
        .expect("time base");
    let mut pts: Vec<i64> = probe("packet=pts")
        .await
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    pts.sort_unstable();
    assert_eq!(pts.len(), 20, "{pts:?}");
    let frame = tick / 12.0;
    assert!(
        pts.windows(2)
            .all(|w| ((w[1] - w[0]) as f64 - frame).abs() < 1.0),
        "frames are not evenly spaced ({frame} ticks): {pts:?}"
    );
}

/// An image for a movie's image layer is uploaded the way videos are: a presigned PUT, then
/// its `assetKey` in the spec. Only its uploader may render with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_uploaded_by_presigned_put_and_used_by_their_uploader_only() {
    const UPLOAD: &str = "mutation($input: RequestAssetUploadInput!) { requestAssetUpload(input: $input) { assetKey uploadUrl uploadHeaders expiresAt } }";
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("asset-owner@example.com").await;
    let other = app.register("asset-other@example.com").await;

    let body = app
        .gql(
            None,
            UPLOAD,
            json!({ "input": { "contentType": "image/png", "sizeBytes": 10 } }),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    for (input, field) in [
        (
            json!({ "contentType": "video/mp4", "sizeBytes": 10 }),
            "input.contentType",
        ),
        (
            json!({ "contentType": "image/png", "sizeBytes": 0 }),
            "input.sizeBytes",
        ),
        (
            json!({ "contentType": "image/png", "sizeBytes": (20 << 20) + 1 }),
            "input.sizeBytes",
        ),
    ] {
        let body = app
            .gql(Some(&owner.access_token), UPLOAD, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }

    // A real PNG, PUT with a plain HTTP client.
    let made = upload_logo(&app, &owner).await;
    let png = app
        .state
        .storage
        .head(&made)
        .await
        .expect("head")
        .expect("made");
    let dir = tempfile::tempdir().expect("dir");
    let local = dir.path().join("logo.png");
    app.state
        .storage
        .get_to_file(&made, &local)
        .await
        .expect("read back");
    let bytes = std::fs::read(&local).expect("png");
    assert_eq!(bytes.len() as u64, png.size);
    let data = app
        .ok(
            Some(&owner.access_token),
            UPLOAD,
            json!({ "input": { "contentType": "image/png", "sizeBytes": bytes.len() } }),
        )
        .await;
    let upload = &data["requestAssetUpload"];
    let key = upload["assetKey"].as_str().expect("assetKey").to_owned();
    assert!(
        key.starts_with(&format!("assets/{}/", owner.user_id)),
        "{key}"
    );
    crate::helpers::put_presigned(&app, upload, &bytes).await;

    let spec = json!({ "width": 320, "height": 180, "fps": 30, "scenes": [
        { "id": "only", "duration": 1.0, "bgColor": "#000000", "layers": [{ "image": { "assetKey": key } }] }] });
    let data = app
        .ok(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": spec } }),
        )
        .await;
    assert_eq!(data["renderMovie"]["status"], "QUEUED");
    // Refused: another user's use of it; and keys under your own prefix that no file system
    // path can hold, below an uploaded file or with a part longer than a file name may be
    // (they were internal errors).
    for (who, key) in [
        (&other, key.clone()),
        (&owner, format!("{key}/below")),
        (
            &owner,
            format!("assets/{}/{}.png", owner.user_id, "a".repeat(300)),
        ),
    ] {
        let spec = json!({ "width": 320, "height": 180, "fps": 30, "scenes": [
            { "id": "only", "duration": 1.0, "bgColor": "#000000", "layers": [{ "image": { "assetKey": key } }] }] });
        let body = app
            .gql(
                Some(&who.access_token),
                RENDER,
                json!({ "input": { "spec": spec } }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(
            error_field(&body),
            "input.spec.scenes.0.layers.0.image.assetKey"
        );
    }
}

/// Uploaded pictures are recorded: a render naming one marks it used (one stored before
/// uploads were recorded gets its row then), and the upkeep removes a picture no render has
/// named for the retention period, file and row, keeping the others. An account may ask for
/// 500 uploads a day; an administrator for any number.
#[tokio::test]
async fn unused_pictures_are_removed_and_uploads_are_limited_per_day() {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr};
    const UPLOAD: &str = "mutation($input: RequestAssetUploadInput!) { requestAssetUpload(input: $input) { assetKey } }";
    let png = json!({ "input": { "contentType": "image/png", "sizeBytes": 100 } });
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let db = &app.state.db;
    let owner = app.register("pictures@example.com").await;
    let token = Some(owner.access_token.as_str());
    let row = |key: String| {
        let db = db.clone();
        async move {
            entity::asset::Entity::find_by_id(key)
                .one(&db)
                .await
                .expect("read")
        }
    };
    // Stored before uploads were recorded: no row until a render names it.
    let old = upload_logo(&app, &owner).await;
    let kept = format!("assets/{}/kept.png", owner.user_id);
    let dir = tempfile::tempdir().expect("dir");
    make_png(&dir.path().join("kept.png"), "0x33ff66", "32x32").await;
    app.state
        .storage
        .put_file(&kept, &dir.path().join("kept.png"), "image/png")
        .await
        .expect("stored");
    assert!(row(old.clone()).await.is_none());
    let fresh = app.ok(token, UPLOAD, png.clone()).await["requestAssetUpload"]["assetKey"]
        .as_str()
        .expect("key")
        .to_owned();
    assert!(
        row(fresh.clone()).await.is_some(),
        "recorded at its request"
    );
    for key in [&old, &kept] {
        app.ok(
            token,
            RENDER,
            json!({ "input": { "spec": movie(key, "named") } }),
        )
        .await;
        assert!(
            row(key.clone()).await.is_some(),
            "recorded when a render named it"
        );
    }
    // A month without renders, then one names `kept` again.
    entity::asset::Entity::update_many()
        .col_expr(
            entity::asset::Column::UsedAt,
            Expr::val(chrono::Utc::now() - chrono::Duration::days(31)),
        )
        .exec(db)
        .await
        .expect("aged");
    app.ok(
        token,
        RENDER,
        json!({ "input": { "spec": movie(&kept, "again") } }),
    )
    .await;
    let removed =
        reelgraph::render::sweep_assets(db, &app.state.storage, chrono::Duration::days(30))
            .await
            .expect("swept");
    assert_eq!(removed, 2, "the old picture and the upload never used");
    assert!(row(old.clone()).await.is_none() && row(fresh.clone()).await.is_none());
    assert!(row(kept.clone()).await.is_some());
    assert_eq!(app.state.storage.head(&old).await.expect("head"), None);
    assert!(app.state.storage.head(&kept).await.expect("head").is_some());

    // 500 uploads asked for today (the `kept` row counts: recorded today).
    let owner_id: uuid::Uuid = owner.user_id.parse().expect("uuid");
    let already = entity::asset::Entity::find()
        .filter(entity::asset::Column::OwnerId.eq(owner_id))
        .count(db)
        .await
        .expect("count");
    fill_uploads(&app, owner_id, 500 - already - 1).await;
    // Four at once for the last one left: one gets it.
    let answers =
        futures_util::future::join_all((0..4).map(|_| app.gql(token, UPLOAD, png.clone()))).await;
    let granted = answers.iter().filter(|b| b.get("errors").is_none()).count();
    assert_eq!(granted, 1, "the 500th, once: {answers:#?}");
    let refused = app.gql(token, UPLOAD, png.clone()).await;
    assert_eq!(error_code(&refused), "RATE_LIMITED", "{refused}");
    let admin = app.admin("pictures-admin@example.com").await;
    fill_uploads(&app, admin.user_id.parse().expect("uuid"), 500).await;
    app.ok(Some(&admin.access_token), UPLOAD, png).await;
}

/// `n` upload rows of `owner`'s, made now.
async fn fill_uploads(app: &TestApp, owner: uuid::Uuid, n: u64) {
    use sea_orm::{EntityTrait, Set};
    let now = chrono::Utc::now();
    let rows: Vec<entity::asset::ActiveModel> = (0..n)
        .map(|i| entity::asset::ActiveModel {
            key: Set(format!("assets/{owner}/filler-{i}.png")),
            owner_id: Set(owner),
            created_at: Set(now),
            used_at: Set(now),
        })
        .collect();
    for chunk in rows.chunks(100) {
        entity::asset::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&app.state.db)
            .await
            .expect("filled");
    }
}

/// Rendering on behalf of a creator: one that is not yours is FORBIDDEN (creators are public,
/// as for uploads), one that does not exist NOT_FOUND; your own is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendering_for_a_creator_needs_its_membership() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("render-owner@example.com").await;
    let other = app.register("render-other@example.com").await;
    let mine = app.create_creator(&owner, "Mine").await;
    let theirs = app.create_creator(&other, "Theirs").await;
    let spec = json!({ "width": 320, "height": 180, "fps": 30, "scenes": [
        { "id": "only", "duration": 1.0, "bgColor": "#000000" }] });
    for (creator, code) in [
        (theirs.as_str(), "FORBIDDEN"),
        ("0190b7a0-0000-7000-8000-000000000000", "NOT_FOUND"),
    ] {
        let body = app
            .gql(
                Some(&owner.access_token),
                RENDER,
                json!({ "input": { "spec": spec, "creatorId": creator } }),
            )
            .await;
        assert_eq!(error_code(&body), code, "{body}");
    }
    let data = app
        .ok(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": spec, "creatorId": mine } }),
        )
        .await;
    assert_eq!(data["renderMovie"]["status"], "QUEUED");
}

/// `priority: JobPriority = NORMAL` is nullable, as API.md writes it: generated clients send
/// an explicit null for an unset field, and get the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_null_priority_renders_at_normal_priority() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("null-priority@example.com").await;
    let spec = json!({ "width": 320, "height": 180, "fps": 30, "scenes": [
        { "id": "only", "duration": 1.0, "bgColor": "#000000" }] });
    for priority in [json!(null), json!("HIGH")] {
        let data = app
            .ok(
                Some(&owner.access_token),
                "mutation($input: RenderMovieInput!) { renderMovie(input: $input) { status priority } }",
                json!({ "input": { "spec": spec, "priority": priority } }),
            )
            .await;
        let expected = if priority.is_null() { "NORMAL" } else { "HIGH" };
        assert_eq!(data["renderMovie"]["priority"], expected, "{data}");
    }
}

/// A picture whose header is right and whose body is not (a looping image input that ffmpeg
/// cannot decode spins for ever in a scene) fails the render as it is planned: the owner reads
/// which layer and why, but no server path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picture_ffmpeg_cannot_decode_fails_the_render_with_the_layer_and_no_server_paths() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("broken-asset@example.com").await;
    let key = format!("assets/{}/broken.png", owner.user_id);
    // A PNG's header (so planning takes it for a 64×64 picture) over a body ffmpeg cannot
    // decode.
    let dir = tempfile::tempdir().expect("dir");
    let png = dir.path().join("whole.png");
    make_png(&png, "0xff3366", "64x64").await;
    let mut broken = std::fs::read(&png).expect("png")[..33].to_vec();
    broken.extend_from_slice(b"not the rest of a picture at all");
    app.state
        .storage
        .put_bytes(&key, broken, "image/png")
        .await
        .expect("stored");
    let spec = json!({ "width": 320, "height": 180, "fps": 30, "scenes": [
        { "id": "only", "duration": 1.0, "bgColor": "#000000", "layers": [{ "image": { "assetKey": key } }] }] });
    let (id, updates, _) = render(&app, &owner, spec).await;
    let last = updates.last().expect("updates");
    assert_eq!(last["status"], "FAILED", "{updates:#?}");
    let data = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { job(id: $id) { error children(first: 10) { nodes { status error } } } }",
            json!({ "id": id }),
        )
        .await;
    let mut errors = vec![data["job"]["error"].as_str().unwrap_or_default().to_owned()];
    for child in data["job"]["children"]["nodes"]
        .as_array()
        .expect("children")
    {
        errors.push(child["error"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        errors
            .iter()
            .any(|e| e.contains("scenes.0.layers.0.image.assetKey: the picture cannot be decoded")),
        "the reason is kept: {errors:#?}"
    );
    let data_dir = app.state.config.data_dir.display().to_string();
    for error in &errors {
        for path in ["/tmp", "reelgraph-", data_dir.as_str()] {
            assert!(!error.contains(path), "{path} in {error:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused_with_the_field_and_nothing_is_enqueued() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("bad-spec@example.com").await;
    let other = app.register("other@example.com").await;
    let theirs = upload_logo(&app, &other).await;
    let cases = [
        (
            json!({ "width": 641, "height": 360, "fps": 30, "scenes": [] }),
            "input.spec.width",
        ),
        (
            json!({ "width": 640, "height": 360, "fps": 0, "scenes": [] }),
            "input.spec.fps",
        ),
        (
            json!({ "width": 640, "height": 360, "fps": 30, "scenes": [] }),
            "input.spec.scenes",
        ),
        (
            json!({ "width": 640, "height": 360, "fps": 30, "scenes": [{ "id": "a", "duration": 0, "bgColor": "#000000" }] }),
            "input.spec.scenes.0.duration",
        ),
        // Shorter than one frame: it would last a whole one (a second, at 1 fps).
        (
            json!({ "width": 64, "height": 64, "fps": 1, "scenes": [
                { "id": "a", "duration": 1, "bgColor": "#000000" },
                { "id": "b", "duration": 0.01, "bgColor": "#000000" }] }),
            "input.spec.scenes.1.duration",
        ),
        (
            json!({ "width": 640, "height": 360, "fps": 30, "scenes": [{ "id": "a", "duration": 1, "bgColor": "black" }] }),
            "input.spec.scenes.0.bgColor",
        ),
        (
            json!({ "width": 640, "height": 360, "fps": 30, "scenes": [{ "id": "a", "duration": 1, "bgColor": "#000000",
                "layers": [{ "text": { "text": "late", "start": 0.5, "end": 1.5 } }] }] }),
            "input.spec.scenes.0.layers.0.text.end",
        ),
        (
            json!({ "width": 640, "height": 360, "fps": 30, "scenes": [{ "id": "a", "duration": 1, "bgColor": "#000000",
                "layers": [{ "image": { "assetKey": theirs } }] }] }),
            "input.spec.scenes.0.layers.0.image.assetKey",
        ),
        // Each axis by its own side: below a frame 360 high nothing of the text would show.
        (
            json!({ "width": 640, "height": 360, "fps": 30, "scenes": [{ "id": "a", "duration": 1, "bgColor": "#000000",
                "layers": [{ "text": { "text": "below", "x": 400, "y": 500 } }] }] }),
            "input.spec.scenes.0.layers.0.text.y",
        ),
        (
            json!({ "width": 360, "height": 640, "fps": 30, "scenes": [{ "id": "a", "duration": 1, "bgColor": "#000000",
                "layers": [{ "text": { "text": "right of it", "x": 500, "y": 400 } }] }] }),
            "input.spec.scenes.0.layers.0.text.x",
        ),
    ];
    for (spec, field) in cases {
        let body = app
            .gql(
                Some(&owner.access_token),
                RENDER,
                json!({ "input": { "spec": spec } }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{spec}: {body}");
        assert_eq!(error_field(&body), field, "{spec}: {body}");
    }
    let both = json!({ "width": 640, "height": 360, "fps": 30, "scenes": [{ "id": "a", "duration": 1, "bgColor": "#000000",
        "layers": [{ "text": { "text": "x" }, "image": { "assetKey": "assets/x/y.png" } }] }] });
    let body = app
        .gql(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": both } }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        "BAD_USER_INPUT",
        "a layer is text or image, not both: {body}"
    );
    assert_eq!(error_field(&body), "input.spec.scenes.0.layers.0", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("exactly one of its fields must be given")),
        "{body}"
    );
    let jobs = app
        .ok(
            Some(&owner.access_token),
            "{ jobs { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(jobs["jobs"]["totalCount"], 0);
    let usage = app
        .ok(
            Some(&owner.access_token),
            "{ renderUsage { minutesReserved } }",
            json!({}),
        )
        .await;
    assert_eq!(usage["renderUsage"]["minutesReserved"], 0.0);

    // Minutes are reserved for what is rendered: whole frames, 1.5 s at 1 fps lasts 2 s.
    let rounded = json!({ "width": 64, "height": 64, "fps": 1, "scenes": [
        { "id": "a", "duration": 1.5, "bgColor": "#000000" },
        { "id": "b", "duration": 1.5, "bgColor": "#000000" },
        { "id": "c", "duration": 1.5, "bgColor": "#000000" },
        { "id": "d", "duration": 1.5, "bgColor": "#000000" }] });
    app.ok(
        Some(&owner.access_token),
        RENDER,
        json!({ "input": { "spec": rounded } }),
    )
    .await;
    let usage = app
        .ok(
            Some(&owner.access_token),
            "{ renderUsage { minutesReserved } }",
            json!({}),
        )
        .await;
    let reserved = usage["renderUsage"]["minutesReserved"]
        .as_f64()
        .expect("minutes");
    assert!((reserved - 8.0 / 60.0).abs() < 1e-4, "{usage}");

    // idempotencyKey: 1 to 255 characters (not bytes).
    let tiny = json!({ "width": 320, "height": 180, "fps": 10, "scenes": [{ "id": "a", "duration": 1, "bgColor": "#000000" }] });
    for key in ["", &"é".repeat(256)] {
        let body = app
            .gql(
                Some(&owner.access_token),
                RENDER,
                json!({ "input": { "spec": tiny, "idempotencyKey": key } }),
            )
            .await;
        assert_eq!(error_field(&body), "input.idempotencyKey", "{body}");
    }
    let long = "é".repeat(255);
    let first = app
        .ok(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": tiny, "idempotencyKey": long } }),
        )
        .await;
    let again = app
        .ok(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": tiny, "idempotencyKey": long } }),
        )
        .await;
    assert_eq!(first["renderMovie"]["id"], again["renderMovie"]["id"]);
    // The same key for another spec, or another priority, is refused, and queues nothing.
    let other = json!({ "width": 320, "height": 180, "fps": 10, "scenes": [{ "id": "b", "duration": 1, "bgColor": "#ff0000" }] });
    for input in [
        json!({ "spec": other, "idempotencyKey": long }),
        json!({ "spec": tiny, "idempotencyKey": long, "priority": "HIGH" }),
    ] {
        let body = app
            .gql(Some(&owner.access_token), RENDER, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
        assert_eq!(error_field(&body), "input.idempotencyKey", "{body}");
    }
    let jobs = app
        .ok(
            Some(&owner.access_token),
            "{ jobs(rootOnly: true) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        jobs["jobs"]["totalCount"], 2,
        "the rounded render and the keyed one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_renders_by_a_free_user_admit_exactly_what_the_daily_cap_allows() {
    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let owner = app.register("free@example.com").await;
    // 90 s of output each; the FREE plan allows 5 minutes a day: three fit.
    let spec = json!({ "width": 320, "height": 180, "fps": 10, "scenes": [{ "id": "a", "duration": 90, "bgColor": "#000000" }] });
    let calls = (0..100).map(|_| {
        app.gql(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": spec.clone() } }),
        )
    });
    let results = futures_util::future::join_all(calls).await;
    let admitted = results.iter().filter(|r| r.get("errors").is_none()).count();
    assert_eq!(admitted, 3, "exactly what the cap allows");
    assert!(
        results
            .iter()
            .filter(|r| r.get("errors").is_some())
            .all(|r| error_code(r) == "QUOTA_EXCEEDED")
    );
    let usage = app
        .ok(
            Some(&owner.access_token),
            "{ renderUsage { minutesReserved dailyMinutes plan { code } } jobs { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(usage["renderUsage"]["minutesReserved"], 4.5);
    assert_eq!(usage["renderUsage"]["plan"]["code"], "FREE");
    assert_eq!(usage["jobs"]["totalCount"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_render_kills_ffmpeg_and_gives_the_minutes_back() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("cancel-render@example.com").await;
    let spec = json!({ "width": 1280, "height": 720, "fps": 30, "scenes": [
        { "id": "long", "duration": 240, "bgColor": "#203040", "layers": [{ "text": { "text": "a long scene" } }] }
    ] });
    let data = app
        .ok(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": spec } }),
        )
        .await;
    let id = data["renderMovie"]["id"].as_str().expect("id").to_owned();
    let reserved = app
        .ok(
            Some(&owner.access_token),
            "{ renderUsage { minutesReserved } }",
            json!({}),
        )
        .await;
    assert_eq!(reserved["renderUsage"]["minutesReserved"], 4.0);

    // Wait until the scene's ffmpeg is at work.
    let query =
        "query($id: ID!) { job(id: $id) { status children { nodes { id status progress } } } }";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let scene_id = loop {
        let data = app
            .ok(Some(&owner.access_token), query, json!({ "id": id }))
            .await;
        let child = &data["job"]["children"]["nodes"][0];
        if child["status"] == "RUNNING" && child["progress"].as_f64() > Some(0.0) {
            break child["id"].as_str().expect("id").to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scene never started: {data:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        ffmpeg_running_for(&scene_id).await,
        "ffmpeg works in the scene's folder"
    );
    app.ok(
        Some(&owner.access_token),
        "mutation($id: ID!) { cancelJob(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let data = app
            .ok(Some(&owner.access_token), query, json!({ "id": id }))
            .await;
        let scene = &data["job"]["children"]["nodes"][0]["status"];
        if data["job"]["status"] == "CANCELLED"
            && scene == "CANCELLED"
            && !ffmpeg_running_for(&scene_id).await
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still going: {data:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let usage = app
        .ok(
            Some(&owner.access_token),
            "{ renderUsage { minutesReserved minutesConsumed } }",
            json!({}),
        )
        .await;
    assert_eq!(
        usage["renderUsage"]["minutesReserved"], 0.0,
        "minutes given back"
    );
    assert_eq!(usage["renderUsage"]["minutesConsumed"], 0.0);
}

/// Whether an ffmpeg process works in the temp folder of job `id`.
async fn ffmpeg_running_for(id: &str) -> bool {
    let output = tokio::process::Command::new("pgrep")
        .args(["-f", &format!("reelgraph-{id}")])
        .output()
        .await
        .expect("pgrep runs");
    output.status.success()
}

/// The same URL with one hex digit of its signature changed.
fn tamper_signature(url: &str) -> String {
    let marker = if url.contains("X-Amz-Signature=") {
        "X-Amz-Signature="
    } else {
        "signature="
    };
    let at = url.find(marker).expect("a signed URL") + marker.len();
    let digit = &url[at..=at];
    let other = if digit == "0" { "1" } else { "0" };
    format!("{}{other}{}", &url[..at], &url[at + 1..])
}

/// A movie's Chinese, Japanese or Korean text is drawn in a font that has it: two movies of
/// the same characters in another order look alike only when every one is the same box.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cjk_text_in_a_movie_is_drawn_not_boxed() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("cjk@example.com").await;
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let dir = tempfile::tempdir().expect("dir");
    let mut frames = Vec::new();
    for text in ["東京 한국", "京東 국한"] {
        let spec = json!({ "width": 160, "height": 64, "fps": 10, "scenes": [
            { "id": "a", "duration": 0.2, "bgColor": "#000000",
              "layers": [{ "text": { "text": text, "fontSize": 24 } }] }] });
        let (_, updates, _) = render(&app, &owner, spec).await;
        let last = updates.last().expect("updates");
        assert_eq!(last["status"], "DONE", "{updates:#?}");
        let file = dir.path().join(format!("{}.mp4", frames.len()));
        download(&app, last["outputUrl"].as_str().expect("outputUrl"), &file).await;
        let frame = tokio::process::Command::new(&tools.ffmpeg)
            .args(["-v", "error", "-i"])
            .arg(&file)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
            .output()
            .await
            .expect("ffmpeg runs");
        assert!(frame.status.success() && frame.stdout.len() == 160 * 64);
        frames.push(frame.stdout);
    }
    assert_ne!(frames[0], frames[1], "drawn as boxes");
}

/// The database not answering while a scene is looked up or recorded is an outage, waited
/// out without using up attempts (three cuts of a database restart failed the movie); and a
/// scene stored by an attempt whose cache row was never written is recorded, not rendered
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenes_wait_out_a_database_outage_and_keep_what_was_stored() {
    use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("scene-outage@example.com").await;
    let db = &app.state.db;
    let spec = |colour: &str| {
        json!({ "width": 160, "height": 120, "fps": 10, "scenes": [
            { "id": "a", "duration": 0.5, "bgColor": colour }] })
    };
    let scene_children = async |id: &str| {
        let children = app
            .ok(Some(&owner.access_token), CHILDREN, json!({ "id": id }))
            .await;
        children["job"]["children"]["nodes"]
            .as_array()
            .expect("children")
            .iter()
            .filter(|c| c["type"] == "render.scene")
            .map(|c| c["cached"].clone())
            .collect::<Vec<_>>()
    };
    let (first, updates, _) = render(&app, &owner, spec("#102030")).await;
    assert_eq!(updates.last().expect("updates")["status"], "DONE");
    assert_eq!(scene_children(&first).await, [json!(false)]);
    // Its row lost, as when the database went away after the upload.
    entity::scene_cache_entry::Entity::delete_many()
        .exec(db)
        .await
        .expect("rows deleted");
    let (again, updates, _) = render(&app, &owner, spec("#102030")).await;
    assert_eq!(updates.last().expect("updates")["status"], "DONE");
    assert_eq!(
        scene_children(&again).await,
        [json!(true)],
        "not rendered again"
    );
    assert_eq!(
        entity::scene_cache_entry::Entity::find()
            .count(db)
            .await
            .expect("count"),
        1
    );
    // Not one written long ago, which the cache prune may be removing (its row first).
    let reelgraph::storage::Storage::Local(local) = &app.state.storage else {
        panic!("tests run on local storage");
    };
    let clips = local
        .path_of("intermediates/scenes/x.mp4")
        .parent()
        .expect("folder")
        .to_owned();
    for clip in std::fs::read_dir(&clips).expect("clips") {
        let file = std::fs::File::options()
            .write(true)
            .open(clip.expect("entry").path())
            .expect("clip");
        file.set_modified(std::time::SystemTime::now() - Duration::from_secs(2 * 86_400))
            .expect("dated two days back");
    }
    entity::scene_cache_entry::Entity::delete_many()
        .exec(db)
        .await
        .expect("rows deleted");
    let (old, updates, _) = render(&app, &owner, spec("#102030")).await;
    assert_eq!(updates.last().expect("updates")["status"], "DONE");
    assert_eq!(scene_children(&old).await, [json!(false)], "rendered again");

    // The scene cache cannot be read while a new scene renders.
    db.execute_unprepared("ALTER TABLE scene_cache RENAME TO scene_cache_away")
        .await
        .expect("table away");
    let data = app
        .ok(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": spec("#302010") } }),
        )
        .await;
    let movie: uuid::Uuid = data["renderMovie"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("id");
    let workers =
        tokio::spawn(reelgraph::app::worker_pool(&app.state).run(app.state.shutdown.child_token()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let scene = entity::job::Entity::find()
            .filter(sea_orm::ColumnTrait::eq(
                &entity::job::Column::ParentId,
                movie,
            ))
            .one(db)
            .await
            .expect("read");
        if let Some(scene) = &scene {
            assert_ne!(scene.status, entity::JobStatus::Failed, "{scene:?}");
            if scene.attempts >= 3 && scene.status == entity::JobStatus::Queued {
                assert_eq!(
                    scene.max_attempts,
                    scene.attempts + 3,
                    "none used up: {scene:?}"
                );
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{scene:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.execute_unprepared("ALTER TABLE scene_cache_away RENAME TO scene_cache")
        .await
        .expect("table back");
    entity::job::Entity::update_many()
        .col_expr(
            entity::job::Column::RunAt,
            sea_orm::sea_query::Expr::val(chrono::Utc::now()),
        )
        .exec(db)
        .await
        .expect("due now");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = entity::job::Entity::find_by_id(movie)
            .one(db)
            .await
            .expect("read")
            .expect("job");
        if job.status == entity::JobStatus::Done {
            break;
        }
        assert_ne!(job.status, entity::JobStatus::Failed, "{job:?}");
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    workers.abort();
}

/// A job ended and its idempotency key was taken by a new one: retrying the first says so,
/// naming the new job, instead of "a record with these values already exists".
#[tokio::test]
async fn retrying_a_job_whose_key_was_taken_names_the_job_that_holds_it() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("idem-retry@example.com").await;
    let token = Some(owner.access_token.as_str());
    let spec = json!({ "width": 320, "height": 180, "fps": 10, "scenes": [{ "id": "a", "duration": 1, "bgColor": "#000000" }] });
    let input = json!({ "input": { "spec": spec, "idempotencyKey": "c-1" } });
    let first = app.ok(token, RENDER, input.clone()).await["renderMovie"]["id"].clone();
    let cancel = "mutation($id: ID!) { cancelJob(id: $id) { status } }";
    app.ok(token, cancel, json!({ "id": first })).await;
    let second = app.ok(token, RENDER, input).await["renderMovie"]["id"].clone();
    assert_ne!(first, second);
    let retry = "mutation($id: ID!) { retryJob(id: $id) { status } }";
    let answer = app.gql(token, retry, json!({ "id": first })).await;
    let error = &answer["errors"][0];
    assert_eq!(error["extensions"]["code"], "CONFLICT", "{answer}");
    assert_eq!(error["extensions"]["field"], "id", "{answer}");
    let message = error["message"].as_str().expect("message");
    assert!(message.contains(second.as_str().expect("id")), "{message}");
    // Once the holder has ended too, the retry goes ahead.
    app.ok(token, cancel, json!({ "id": second })).await;
    let retried = app.ok(token, retry, json!({ "id": first })).await;
    assert_eq!(retried["retryJob"]["status"], "QUEUED", "{retried}");
}

/// Two `renderMovie` calls with one idempotency key race: the second does not see the first's
/// job when it looks, and its insert waits on the first's. It answers the first's job and
/// reserves nothing of its own (a reservation no job would ever settle or release).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_that_loses_the_idempotency_race_reserves_nothing() {
    use reelgraph::jobs::{NewJob, queue};

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let owner = app.register("idem-race@example.com").await;
    let spec = json!({ "width": 320, "height": 180, "fps": 10, "scenes": [{ "id": "a", "duration": 60, "bgColor": "#000000" }] });

    // The winner: inserted, not yet committed.
    let txn = queue::begin_write(&app.state.db).await.expect("txn");
    let mut first = NewJob::new(
        entity::JobKind::Render,
        "render.movie",
        owner.user_id.parse().expect("uuid"),
        json!({}),
    );
    first.idempotency_key = Some("movie-7".to_owned());
    let first = queue::enqueue(&txn, first)
        .await
        .map_err(|e| e.public_message())
        .expect("enqueue");
    assert!(!first.existing);

    let second = app.gql_in_background(
        &owner.access_token,
        RENDER,
        json!({ "input": { "spec": spec, "idempotencyKey": "movie-7" } }),
    );
    // Wait until the second's insert waits on the first's row lock.
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    txn.commit().await.expect("commit");

    let answer = second.await.expect("joined");
    assert_eq!(
        answer["data"]["renderMovie"]["id"],
        first.job.id.to_string(),
        "{answer}"
    );
    let usage = app
        .ok(
            Some(&owner.access_token),
            "{ renderUsage { minutesReserved } jobs { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(usage["renderUsage"]["minutesReserved"], 0.0, "{usage}");
    assert_eq!(usage["jobs"]["totalCount"], 1);
}

/// An asset replaced by something far larger after `renderMovie` checked it (its presigned
/// PUT is good for 10 minutes) fails the render when it is read, instead of being hashed
/// and copied into every scene.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_grown_past_the_limit_after_the_check_fails_the_render() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("swapper@example.com").await;
    let logo = upload_logo(&app, &owner).await;
    let data = app
        .ok(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": movie(&logo, "The end") } }),
        )
        .await;
    let id = data["renderMovie"]["id"].as_str().expect("id").to_owned();
    app.state
        .storage
        .put_bytes(&logo, vec![0_u8; 21 << 20], "image/png")
        .await
        .expect("replaced");
    let mut socket = subscribe(&app.base, &owner.access_token, UPDATES, json!({ "id": id })).await;
    let workers =
        tokio::spawn(reelgraph::app::worker_pool(&app.state).run(app.state.shutdown.child_token()));
    let updates = collect_until_complete(&mut socket, Duration::from_secs(60)).await;
    workers.abort();
    let last = &updates.last().expect("updates")["data"]["jobUpdated"];
    assert_eq!(last["status"], "FAILED", "{updates:#?}");
    let error = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { job(id: $id) { error } }",
            json!({ "id": id }),
        )
        .await;
    assert!(
        error["job"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("is larger than 20 MiB")),
        "{error}"
    );
}

/// A client retrying its whole flow uploads its pictures again, under new keys: the same
/// idempotency key still answers its first render, while other text, or another picture under
/// a new key, is another request (another picture got the first render back, which showed the
/// old one).
#[tokio::test]
async fn a_retried_flow_with_its_pictures_uploaded_again_gets_its_first_render() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("retry-flow@example.com").await;
    let first_logo = upload_logo(&app, &owner).await;
    let again_logo = format!("assets/{}/logo-again.png", owner.user_id);
    let dir = tempfile::tempdir().expect("dir");
    let png = dir.path().join("logo.png");
    make_png(&png, "0xff3366", "64x64").await;
    app.state
        .storage
        .put_file(&again_logo, &png, "image/png")
        .await
        .expect("stored");
    let mut ids = Vec::new();
    for logo in [&first_logo, &again_logo] {
        let data = app
            .ok(
                Some(&owner.access_token),
                RENDER,
                json!({ "input": { "spec": movie(logo, "The end"), "idempotencyKey": "flow-1" } }),
            )
            .await;
        ids.push(data["renderMovie"]["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    let body = app
        .gql(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": movie(&again_logo, "Another end"), "idempotencyKey": "flow-1" } }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    let other_logo = format!("assets/{}/logo-other.png", owner.user_id);
    let other_png = dir.path().join("other.png");
    make_png(&other_png, "0x3366ff", "64x64").await;
    app.state
        .storage
        .put_file(&other_logo, &other_png, "image/png")
        .await
        .expect("stored");
    let body = app
        .gql(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": movie(&other_logo, "The end"), "idempotencyKey": "flow-1" } }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    assert_eq!(error_field(&body), "input.idempotencyKey", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("another picture")),
        "{body}"
    );
    // Still the first picture, under a third key: the first render.
    let data = app
        .ok(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": movie(&again_logo, "The end"), "idempotencyKey": "flow-1" } }),
        )
        .await;
    assert_eq!(data["renderMovie"]["id"], ids[0]);
}

/// A picture layer whose asset is not a PNG, JPEG or WebP, or has more than 40 megapixels, fails
/// the render while it is planned, naming the layer, instead of in a scene's ffmpeg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_refuses_pictures_that_are_not_pictures_or_too_many_pixels() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("pictures@example.com").await;
    let dir = tempfile::tempdir().expect("dir");
    let huge = dir.path().join("huge.png");
    make_png(&huge, "0x336699", "8000x6000").await;
    let cases = [
        (
            b"this is text, not a picture".to_vec(),
            "is not a PNG, JPEG or WebP picture",
        ),
        (
            std::fs::read(&huge).expect("png"),
            "8000×6000, more than 40 megapixels",
        ),
    ];
    for (i, (bytes, expected)) in cases.into_iter().enumerate() {
        let key = format!("assets/{}/picture-{i}.png", owner.user_id);
        app.state
            .storage
            .put_bytes(&key, bytes, "image/png")
            .await
            .expect("stored");
        let error = render_failure(&app, &owner, movie(&key, "The end")).await;
        assert!(
            error.contains("scenes.1.layers.0.image.assetKey") && error.contains(expected),
            "{error}"
        );
    }
}

/// `jpeg` with an EXIF segment holding only `orientation`.
fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut exif = b"Exif\0\0II*\0".to_vec();
    exif.extend(8_u32.to_le_bytes());
    exif.extend(1_u16.to_le_bytes());
    exif.extend([0x12, 0x01, 3, 0]);
    exif.extend(1_u32.to_le_bytes());
    exif.extend(u32::from(orientation).to_le_bytes());
    exif.extend(0_u32.to_le_bytes());
    let mut tagged = jpeg[..2].to_vec();
    tagged.extend([0xff, 0xe1]);
    tagged.extend(u16::try_from(exif.len() + 2).expect("short").to_be_bytes());
    tagged.extend(exif);
    tagged.extend(&jpeg[2..]);
    tagged
}

/// A photo tagged to be turned a quarter is measured as it is drawn, turned: stored 32×2, it
/// is 2×32 upright, so 3840 wide it would be 3840×61440 and is refused naming the layer's
/// width. One stored 64×32 (red left, blue right) is drawn upright (red above blue), and a
/// thin divider given one side is drawn at the size worked out for it (ffmpeg's own rounding
/// made 1000×10 at 50 wide 50×0, and the scene failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_are_measured_and_drawn_upright_and_thin_pictures_keep_a_side() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("upright@example.com").await;
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let dir = tempfile::tempdir().expect("dir");
    let put = async |name: &str, path: &Path, orientation: Option<u16>| {
        let bytes = std::fs::read(path).expect("picture");
        let bytes = orientation.map_or(bytes.clone(), |o| with_orientation(&bytes, o));
        let key = format!("assets/{}/{name}", owner.user_id);
        app.state
            .storage
            .put_bytes(&key, bytes, "image/jpeg")
            .await
            .expect("stored");
        key
    };
    let halves = |size: &str, path: &Path| {
        let (w, h) = size.split_once('x').expect("WxH");
        let half = w.parse::<u32>().expect("w") / 2;
        let status = std::process::Command::new(&tools.ffmpeg)
            .args(["-v", "error", "-f", "lavfi", "-i"])
            .arg(format!(
                "color=red:s={half}x{h},format=rgb24[a];color=blue:s={half}x{h},format=rgb24[b];[a][b]hstack"
            ))
            .args(["-frames:v", "1"])
            .arg(path)
            .status()
            .expect("ffmpeg");
        assert!(status.success());
    };

    let sliver = dir.path().join("sliver.jpg");
    halves("32x2", &sliver);
    let sliver = put("sliver.jpg", &sliver, Some(6)).await;
    let spec = json!({ "width": 320, "height": 180, "fps": 30, "scenes": [
        { "id": "only", "duration": 1.0, "bgColor": "#000000",
          "layers": [{ "image": { "assetKey": sliver, "width": 3840 } }] }] });
    let error = render_failure(&app, &owner, spec).await;
    assert!(
        error.contains("scenes.0.layers.0.image.width: the picture would be drawn 3840×61440"),
        "{error}"
    );

    let photo = dir.path().join("photo.jpg");
    halves("64x32", &photo);
    let photo = put("photo.jpg", &photo, Some(6)).await;
    let divider = dir.path().join("divider.png");
    make_png(&divider, "0xffffff", "1000x10").await;
    let divider = put("divider.png", &divider, None).await;
    let spec = json!({ "width": 320, "height": 180, "fps": 30, "scenes": [
        { "id": "only", "duration": 1.0, "bgColor": "#000000", "layers": [
            { "image": { "assetKey": photo } },
            { "image": { "assetKey": divider, "x": 200, "y": 100, "width": 50 } }] }] });
    let (_, updates, _) = render(&app, &owner, spec).await;
    let last = updates.last().expect("updates");
    assert_eq!(last["status"], "DONE", "{updates:#?}");
    let movie = dir.path().join("movie.mp4");
    download(&app, last["outputUrl"].as_str().expect("outputUrl"), &movie).await;
    let pixel = |x: u32, y: u32| {
        let out = std::process::Command::new(&tools.ffmpeg)
            .args(["-v", "error", "-i"])
            .arg(&movie)
            .args(["-vf", &format!("format=rgb24,crop=1:1:{x}:{y}")])
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .expect("ffmpeg");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out.stdout[0], out.stdout[1], out.stdout[2])
    };
    // Upright, the photo is 32×64: its red half above its blue half.
    let (r, _, b) = pixel(16, 12);
    assert!(r > 180 && b < 80, "red above: {:?}", (r, b));
    let (r, _, b) = pixel(16, 52);
    assert!(r < 80 && b > 180, "blue below: {:?}", (r, b));
    let (r, g, b) = pixel(225, 100);
    assert!(
        r > 180 && g > 180 && b > 180,
        "the divider: {:?}",
        (r, g, b)
    );
    assert_eq!(
        pixel(40, 12),
        (0, 0, 0),
        "nothing right of the upright photo"
    );
}

/// A scene's clip removed from storage between its render and the assembly (by hand, by a
/// bucket rule) fails the movie at once, saying which scene and that a retry renders it again,
/// rather than waiting it out as a storage outage for 15 minutes; and the retry does.
#[tokio::test]
async fn a_clip_removed_before_assembly_fails_the_movie_and_its_retry_renders_it_again() {
    use reelgraph::jobs::handlers::{JobContext, JobFailure, JobHandler, Outcome, Registry};

    /// Assembles after taking away the clips it is about to join.
    struct Vanishing(reelgraph::storage::Storage);

    #[async_trait::async_trait]
    impl JobHandler for Vanishing {
        async fn run(&self, ctx: &JobContext) -> Result<Outcome, JobFailure> {
            let input: Value = ctx.input()?;
            for key in input["scene_keys"].as_array().expect("scene keys") {
                self.0
                    .delete(key.as_str().expect("key"))
                    .await
                    .expect("deleted");
            }
            let assemble = Registry::builtin().get("render.assemble").expect("handler");
            assemble.run(ctx).await
        }
    }

    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("clip-gone@example.com").await;
    let spec = json!({ "width": 160, "height": 120, "fps": 10, "scenes": [
        { "id": "a", "duration": 0.5, "bgColor": "#203040" },
        { "id": "b", "duration": 0.5, "bgColor": "#405060" }] });
    let data = app
        .ok(
            Some(&owner.access_token),
            RENDER,
            json!({ "input": { "spec": spec } }),
        )
        .await;
    let id = data["renderMovie"]["id"].as_str().expect("id").to_owned();
    let mut registry = Registry::builtin();
    registry.register("render.assemble", Vanishing(app.state.storage.clone()));
    let pool = app.worker_pool(registry, 2);
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(pool.run(stop.clone()));
    let movie: uuid::Uuid = id.parse().expect("uuid");
    let ended = |job: &Value| matches!(job["status"].as_str(), Some("FAILED" | "DONE"));
    let failed = crate::jobs::wait_for(
        &app,
        &owner.access_token,
        movie,
        Duration::from_secs(90),
        ended,
    )
    .await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    stop.cancel();
    running.await.expect("drained");
    let error = failed["error"].as_str().expect("error");
    assert!(
        error.contains("the rendered clip of spec.scenes.0 was removed from storage")
            && error.contains("retry the job to render it again"),
        "{failed}"
    );

    let retried = app
        .ok(
            Some(&owner.access_token),
            "mutation($id: ID!) { retryJob(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(retried["retryJob"]["status"], "QUEUED", "{retried}");
    let workers =
        tokio::spawn(reelgraph::app::worker_pool(&app.state).run(app.state.shutdown.child_token()));
    let done = crate::jobs::wait_for(
        &app,
        &owner.access_token,
        movie,
        Duration::from_secs(90),
        ended,
    )
    .await;
    assert_eq!(done["status"], "DONE", "{done}");
    workers.abort();
    let children = app
        .ok(Some(&owner.access_token), CHILDREN, json!({ "id": id }))
        .await;
    let scenes: Vec<&Value> = children["job"]["children"]["nodes"]
        .as_array()
        .expect("children")
        .iter()
        .filter(|c| c["type"] == "render.scene")
        .map(|c| &c["cached"])
        .collect();
    assert_eq!(
        scenes,
        [&json!(false), &json!(false)],
        "rendered again: {children}"
    );
}
