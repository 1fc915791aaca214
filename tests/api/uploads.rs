//! Video uploads end to end: presigned PUT, `completeVideoUpload`, the `video.probe` job with
//! real ffmpeg, de-duplication by SHA-256, failures a person can act on, and who may do what.

use std::{path::Path, time::Duration};

use reelgraph::render::ffmpeg;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::{
    both_backends,
    helpers::{
        Backend, Session, TestApp, collect_until_complete, error_code, error_field, next_payload,
        put_presigned, put_presigned_status, subscribe,
    },
    s3,
};

const REQUEST: &str = "mutation($input: RequestVideoUploadInput!) {
    requestVideoUpload(input: $input) {
        video { id status title originalFilename sizeBytes sha256 }
        uploadUrl uploadHeaders expiresAt deduplicated
    }
}";
const COMPLETE: &str =
    "mutation($id: ID!) { completeVideoUpload(videoId: $id) { id type status } }";
const UPDATES: &str = "subscription($id: ID!) {
    jobUpdated(id: $id) { status progress currentPhase error outputUrl }
}";
const VIDEO: &str = "query($id: ID!) {
    video(id: $id) {
        id status failureReason durationSecs width height mime sizeBytes sha256 pipelineStage
        thumbnailUrl proxyUrl
        variants { profile mime sizeBytes width height bitrate url }
    }
}";

/// The 20-second 1280×720 source with picture and sound, made once per test run.
async fn long_source() -> &'static [u8] {
    static SOURCE: OnceCell<Vec<u8>> = OnceCell::const_new();
    SOURCE
        .get_or_init(|| make_video("1280x720", 20))
        .await
        .as_slice()
}

/// A 2-second 320×240 clip for tests that only need some READY video.
async fn short_source() -> &'static [u8] {
    static SOURCE: OnceCell<Vec<u8>> = OnceCell::const_new();
    SOURCE
        .get_or_init(|| make_video("320x240", 2))
        .await
        .as_slice()
}

async fn make_video(size: &str, secs: u32) -> Vec<u8> {
    let tools = ffmpeg::check()
        .await
        .expect("ffmpeg is installed (scripts/test installs it)");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("source.mp4");
    let status = tokio::process::Command::new(&tools.ffmpeg)
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac"])
        .arg(&file)
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(status.success(), "the source video was made");
    std::fs::read(&file).expect("source read")
}

/// `bytes` (an MP4) remuxed with a display matrix turning it a quarter, as phones store
/// portrait video: the pixels stay as they are, players show them turned.
async fn quarter_turned(bytes: &[u8]) -> Vec<u8> {
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let dir = tempfile::tempdir().expect("dir");
    let (plain, turned) = (dir.path().join("plain.mp4"), dir.path().join("turned.mp4"));
    std::fs::write(&plain, bytes).expect("written");
    let status = tokio::process::Command::new(&tools.ffmpeg)
        .args(["-v", "error", "-y", "-i"])
        .arg(&plain)
        .args(["-c", "copy", "-metadata:s:v:0", "rotate=90"])
        .arg(&turned)
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(status.success(), "the turned video was made");
    std::fs::read(&turned).expect("read")
}

/// The sound of `bytes` (an MP4) as an M4A with an album cover (a 100×100 PNG).
async fn with_cover(bytes: &[u8]) -> Vec<u8> {
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let dir = tempfile::tempdir().expect("dir");
    let (source, song) = (dir.path().join("source.mp4"), dir.path().join("song.m4a"));
    std::fs::write(&source, bytes).expect("written");
    let status = tokio::process::Command::new(&tools.ffmpeg)
        .args(["-v", "error", "-y", "-i"])
        .arg(&source)
        .args([
            "-f",
            "lavfi",
            "-i",
            "color=red:size=100x100:duration=0.1",
            "-frames:v",
            "1",
        ])
        .args(["-map", "0:a", "-map", "1:v", "-c:a", "copy", "-c:v", "png"])
        .args(["-disposition:v:0", "attached_pic"])
        .arg(&song)
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(status.success(), "the song was made");
    std::fs::read(&song).expect("read")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `requestVideoUpload`; returns the whole response.
async fn request(app: &TestApp, session: &Session, input: Value) -> Value {
    app.gql(
        Some(&session.access_token),
        REQUEST,
        json!({ "input": input }),
    )
    .await
}

/// Requests an upload for `bytes` (promising their SHA-256) and expects a fresh one.
async fn request_ok(app: &TestApp, session: &Session, creator: &str, bytes: &[u8]) -> Value {
    let body = request(
        app,
        session,
        json!({
            "creatorId": creator, "filename": "lesson one.mp4", "contentType": "video/mp4",
            "sizeBytes": bytes.len(), "sha256": sha256_hex(bytes),
        }),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let upload = body["data"]["requestVideoUpload"].clone();
    assert_eq!(upload["deduplicated"], false, "{upload:#}");
    upload
}

async fn complete(app: &TestApp, session: &Session, video_id: &str) -> Value {
    app.gql(
        Some(&session.access_token),
        COMPLETE,
        json!({ "id": video_id }),
    )
    .await
}

/// Completes the upload and follows the job to its end; returns the job's updates.
async fn complete_and_follow(app: &TestApp, session: &Session, video_id: &str) -> Vec<Value> {
    let body = complete(app, session, video_id).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let job = &body["data"]["completeVideoUpload"];
    assert_eq!(job["type"], "video.probe");
    let id = job["id"].as_str().expect("job id");
    let mut socket = subscribe(
        &app.base,
        &session.access_token,
        UPDATES,
        json!({ "id": id }),
    )
    .await;
    collect_until_complete(&mut socket, Duration::from_secs(240))
        .await
        .into_iter()
        .map(|p| p["data"]["jobUpdated"].clone())
        .collect()
}

/// Uploads `bytes` to `creator` and completes the upload; returns the video's id, its probe
/// job's id and a subscription to that job (`UPDATES`).
async fn uploaded_and_followed(
    app: &TestApp,
    session: &Session,
    creator: &str,
    bytes: &[u8],
) -> (
    String,
    String,
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) {
    let upload = request_ok(app, session, creator, bytes).await;
    let id = upload["video"]["id"].as_str().expect("id").to_owned();
    put_presigned(app, &upload, bytes).await;
    let body = complete(app, session, &id).await;
    let job = body["data"]["completeVideoUpload"]["id"]
        .as_str()
        .expect("job")
        .to_owned();
    let socket = subscribe(
        &app.base,
        &session.access_token,
        UPDATES,
        json!({ "id": job }),
    )
    .await;
    (id, job, socket)
}

/// Uploads `bytes` to `creator` and waits until the video is processed; returns its id.
async fn upload_and_process(
    app: &TestApp,
    session: &Session,
    creator: &str,
    bytes: &[u8],
) -> String {
    let upload = request_ok(app, session, creator, bytes).await;
    let id = upload["video"]["id"].as_str().expect("id").to_owned();
    put_presigned(app, &upload, bytes).await;
    let updates = complete_and_follow(app, session, &id).await;
    assert_eq!(
        updates.last().expect("updates")["status"],
        "DONE",
        "{updates:#?}"
    );
    id
}

async fn video(app: &TestApp, session: Option<&Session>, id: &str) -> Value {
    app.gql(
        session.map(|s| s.access_token.as_str()),
        VIDEO,
        json!({ "id": id }),
    )
    .await
}

async fn download(app: &TestApp, url: &str, to: &Path) -> Vec<u8> {
    let response = app.client.get(url).send().await.expect("download");
    assert_eq!(response.status(), 200, "{url}");
    let bytes = response.bytes().await.expect("body").to_vec();
    std::fs::write(to, &bytes).expect("written");
    bytes
}

/// Codec names of a file's streams, by ffprobe.
async fn codecs(path: &Path) -> Vec<String> {
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let output = tokio::process::Command::new(&tools.ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .await
        .expect("ffprobe runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

async fn an_uploaded_video_becomes_ready_with_a_thumbnail_and_a_720p_proxy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("uploader@example.com").await;
    let creator = app.create_creator(&owner, "Upload Studio").await;
    let bytes = long_source().await;

    let upload = request_ok(&app, &owner, &creator, bytes).await;
    let video_id = upload["video"]["id"].as_str().expect("id").to_owned();
    assert_eq!(upload["video"]["status"], "UPLOADING");
    assert_eq!(upload["video"]["title"], "lesson one");
    assert_eq!(upload["uploadHeaders"]["content-type"], "video/mp4");
    let expires: chrono::DateTime<chrono::Utc> = upload["expiresAt"]
        .as_str()
        .expect("expiresAt")
        .parse()
        .expect("RFC 3339");
    let ttl = expires - chrono::Utc::now();
    assert!(
        ttl > chrono::Duration::minutes(9) && ttl <= chrono::Duration::minutes(10),
        "the upload URL lives 10 minutes, not {ttl}"
    );

    put_presigned(&app, &upload, bytes).await;
    let updates = complete_and_follow(&app, &owner, &video_id).await;
    let last = updates.last().expect("updates");
    assert_eq!(last["status"], "DONE", "{updates:#?}");
    let mut phases: Vec<&str> = updates
        .iter()
        .filter_map(|u| u["currentPhase"].as_str())
        .collect();
    phases.dedup();
    assert!(phases.contains(&"transcoding"), "{phases:?}");
    let progress: Vec<f64> = updates
        .iter()
        .filter_map(|u| u["progress"].as_f64())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {progress:?}"
    );

    let data = video(&app, Some(&owner), &video_id).await;
    let v = &data["data"]["video"];
    assert_eq!(v["status"], "READY", "{data:#}");
    assert!(v["failureReason"].is_null());
    let duration = v["durationSecs"].as_f64().expect("duration");
    assert!((duration - 20.0).abs() <= 0.1, "duration {duration}");
    assert_eq!(
        (v["width"].as_i64(), v["height"].as_i64()),
        (Some(1280), Some(720))
    );
    assert_eq!(v["mime"], "video/mp4");
    assert_eq!(v["sizeBytes"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(v["sha256"], sha256_hex(bytes));
    assert_eq!(v["pipelineStage"], 1);

    let variants = v["variants"].as_array().expect("variants");
    let profiles: Vec<&str> = variants
        .iter()
        .filter_map(|x| x["profile"].as_str())
        .collect();
    assert_eq!(profiles, ["proxy_720p", "thumbnail"], "{variants:#?}");
    let dir = tempfile::tempdir().expect("dir");

    let thumbnail = &variants[1];
    assert_eq!(thumbnail["mime"], "image/jpeg");
    let jpeg = dir.path().join("thumbnail.jpg");
    let jpeg_bytes = download(
        &app,
        v["thumbnailUrl"].as_str().expect("thumbnailUrl"),
        &jpeg,
    )
    .await;
    assert!(jpeg_bytes.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");
    assert_eq!(
        thumbnail["sizeBytes"].as_u64(),
        Some(jpeg_bytes.len() as u64)
    );
    assert!(thumbnail["height"].as_i64().is_some_and(|h| h <= 720));
    download(&app, thumbnail["url"].as_str().expect("url"), &jpeg).await;

    let proxy = &variants[0];
    assert_eq!(proxy["mime"], "video/mp4");
    assert!(
        proxy["bitrate"].as_i64().is_some_and(|b| b > 0),
        "{proxy:#}"
    );
    let mp4 = dir.path().join("proxy.mp4");
    let proxy_bytes = download(&app, v["proxyUrl"].as_str().expect("proxyUrl"), &mp4).await;
    assert_eq!(proxy["sizeBytes"].as_u64(), Some(proxy_bytes.len() as u64));
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let probe = ffmpeg::probe(&tools, &mp4)
        .await
        .expect("ffprobe reads the proxy");
    let (width, height) = (probe.width.expect("width"), probe.height.expect("height"));
    assert!(
        height <= 720 && width % 2 == 0 && height % 2 == 0,
        "{probe:?}"
    );
    assert_eq!(
        (proxy["width"].as_i64(), proxy["height"].as_i64()),
        (Some(width.into()), Some(height.into()))
    );
    let proxy_duration = probe.duration_secs.expect("duration");
    assert!((proxy_duration - 20.0).abs() <= 0.2, "{probe:?}");
    assert_eq!(codecs(&mp4).await, ["h264", "aac"]);

    // The job's output is the proxy, too.
    let output = last["outputUrl"].as_str().expect("outputUrl once done");
    let output_bytes = download(&app, output, &dir.path().join("output.mp4")).await;
    assert!(
        output_bytes == proxy_bytes,
        "the job's output is not the proxy"
    );
}

async fn uploading_the_same_bytes_again_returns_the_ready_video_without_an_upload(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("again@example.com").await;
    let creator = app.create_creator(&owner, "Repeat Studio").await;
    let other_creator = app.create_creator(&owner, "Second Studio").await;
    let bytes = short_source().await;
    let first = upload_and_process(&app, &owner, &creator, bytes).await;

    let input = json!({
        "creatorId": creator, "filename": "copy.mp4", "contentType": "video/mp4",
        "sizeBytes": bytes.len(), "sha256": sha256_hex(bytes).to_uppercase(),
    });
    let body = request(&app, &owner, input.clone()).await;
    let again = &body["data"]["requestVideoUpload"];
    assert_eq!(again["deduplicated"], true, "{body:#}");
    assert_eq!(again["video"]["id"], first.as_str());
    assert_eq!(again["video"]["status"], "READY");
    assert!(again["uploadUrl"].is_null());
    assert!(again["expiresAt"].is_null());
    assert_eq!(again["uploadHeaders"], json!({}));

    // De-duplication is per creator, and only on a promised hash.
    let mut elsewhere = input.clone();
    elsewhere["creatorId"] = json!(other_creator);
    let body = request(&app, &owner, elsewhere).await;
    assert_eq!(
        body["data"]["requestVideoUpload"]["deduplicated"], false,
        "{body:#}"
    );
    // A size that cannot go with the hash is not that video.
    let mut other_size = input.clone();
    other_size["sizeBytes"] = json!(bytes.len() + 1);
    let body = request(&app, &owner, other_size).await;
    assert_eq!(
        body["data"]["requestVideoUpload"]["deduplicated"], false,
        "{body:#}"
    );
    let mut unhashed = input;
    unhashed.as_object_mut().expect("object").remove("sha256");
    let body = request(&app, &owner, unhashed).await;
    let fresh = &body["data"]["requestVideoUpload"];
    assert_eq!(fresh["deduplicated"], false, "{body:#}");
    assert_ne!(fresh["video"]["id"], first.as_str());
}

/// Two uploads of one file requested at once both get links (neither is there yet); the one
/// completed second is `CONFLICT` naming the first, and ends FAILED saying so: one video per
/// file and creator (both hashes were checked on completing: a small file).
async fn one_file_uploaded_twice_at_once_makes_one_video(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("twice-at-once@example.com").await;
    let creator = app.create_creator(&owner, "Twice Studio").await;
    let bytes = short_source().await;
    let first = request_ok(&app, &owner, &creator, bytes).await;
    let second = request_ok(&app, &owner, &creator, bytes).await;
    crate::helpers::put_presigned(&app, &first, bytes).await;
    crate::helpers::put_presigned(&app, &second, bytes).await;
    let first_id = first["video"]["id"].as_str().expect("id");
    let second_id = second["video"]["id"].as_str().expect("id");
    let body = complete(&app, &owner, first_id).await;
    assert!(body.get("errors").is_none(), "{body:#}");

    let body = complete(&app, &owner, second_id).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body:#}");
    assert_eq!(error_field(&body), "videoId", "{body:#}");
    let message = body["errors"][0]["message"].as_str().expect("message");
    assert!(message.contains(first_id), "{message}");
    let data = video(&app, Some(&owner), second_id).await["data"]["video"].clone();
    assert_eq!(data["status"], "FAILED", "{data}");
    assert!(
        data["failureReason"]
            .as_str()
            .is_some_and(|r| r.contains(first_id)),
        "{data}"
    );
    // Its link takes no other file meanwhile (it goes with the FAILED uploads' after a week).
    assert_eq!(
        crate::helpers::put_presigned_status(&app, &second, bytes).await,
        412
    );
}

/// On PostgreSQL, two uploads of one file completed at the very same time: one is processed,
/// the other is `CONFLICT` (the creator's row orders them).
#[tokio::test]
async fn one_file_completed_twice_at_the_same_time_makes_one_video() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let owner = app.register("same-time@example.com").await;
    let creator = app.create_creator(&owner, "Same Time Studio").await;
    let bytes = short_source().await;
    let first = request_ok(&app, &owner, &creator, bytes).await;
    let second = request_ok(&app, &owner, &creator, bytes).await;
    crate::helpers::put_presigned(&app, &first, bytes).await;
    crate::helpers::put_presigned(&app, &second, bytes).await;
    // Both completions wait on the creator's row, held here, then go at once.
    let held = app.state.db.begin().await.expect("begin");
    held.execute_unprepared(&format!(
        "SELECT id FROM creators WHERE id = '{creator}' FOR UPDATE"
    ))
    .await
    .expect("locked");
    let completing = [&first, &second].map(|upload| {
        let app = &app;
        let owner = &owner;
        let id = upload["video"]["id"].as_str().expect("id").to_owned();
        async move { complete(app, owner, &id).await }
    });
    let both = futures_util::future::join_all(completing);
    let release = async {
        crate::helpers::wait_for_lock_waits(&app, 2).await;
        held.commit().await.expect("released");
    };
    let (answers, ()) = tokio::join!(both, release);
    let mut codes: Vec<&str> = answers
        .iter()
        .map(|body| {
            if body.get("errors").is_none() {
                "ok"
            } else {
                error_code(body)
            }
        })
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, ["CONFLICT", "ok"], "{answers:#?}");
}

async fn a_file_that_is_not_a_video_ends_failed_with_a_clear_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("texter@example.com").await;
    let creator = app.create_creator(&owner, "Text Studio").await;
    let bytes = b"These are lecture notes, not a video.\n".repeat(20);

    let upload = request_ok(&app, &owner, &creator, &bytes).await;
    let id = upload["video"]["id"].as_str().expect("id").to_owned();
    put_presigned(&app, &upload, &bytes).await;
    let updates = complete_and_follow(&app, &owner, &id).await;
    let last = updates.last().expect("updates");
    assert_eq!(last["status"], "FAILED", "{updates:#?}");
    assert_eq!(last["error"], "the file is not a video");

    let data = video(&app, Some(&owner), &id).await;
    let v = &data["data"]["video"];
    assert_eq!(v["status"], "FAILED", "{data:#}");
    assert_eq!(v["failureReason"], "the file is not a video");
    assert!(v["thumbnailUrl"].is_null() && v["proxyUrl"].is_null());
    assert_eq!(v["variants"], json!([]));
    assert!(v["mime"].is_null(), "nothing was detected: {v:#}");

    // Completing it again is a conflict: it is no longer waiting for its upload.
    let body = complete(&app, &owner, &id).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body:#}");

    // A song with its album cover: ffprobe lists the cover as a one-frame video stream.
    let song = with_cover(short_source().await).await;
    let upload = request_ok(&app, &owner, &creator, &song).await;
    let id = upload["video"]["id"].as_str().expect("id").to_owned();
    put_presigned(&app, &upload, &song).await;
    let updates = complete_and_follow(&app, &owner, &id).await;
    let last = updates.last().expect("updates");
    assert_eq!(last["status"], "FAILED", "{updates:#?}");
    assert_eq!(
        last["error"], "the file is not a video: it has sound but no picture",
        "{updates:#?}"
    );

    // A playlist whose entries are files on the worker (here a real MP4, standing for
    // another tenant's video) is not read: ffmpeg would follow its file:// segments.
    let dir = tempfile::tempdir().expect("dir");
    let victim = dir.path().join("victim.mp4");
    std::fs::write(&victim, short_source().await).expect("written");
    let playlist = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2.0,\nfile://{}\n#EXT-X-ENDLIST\n",
        victim.display()
    )
    .into_bytes();
    let upload = request_ok(&app, &owner, &creator, &playlist).await;
    let id = upload["video"]["id"].as_str().expect("id").to_owned();
    put_presigned(&app, &upload, &playlist).await;
    let updates = complete_and_follow(&app, &owner, &id).await;
    let last = updates.last().expect("updates");
    assert_eq!(last["status"], "FAILED", "{updates:#?}");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("the file is not a video container Reelgraph reads")),
        "{updates:#?}"
    );
}

/// An upload requested and never completed is failed after a day (the worker's hourly
/// maintenance), with a reason; a recent one is left waiting and can still be completed.
async fn uploads_never_completed_are_failed_after_a_day(backend: Backend) {
    use reelgraph::media::record::{ABANDONED_UPLOAD, UPLOAD_GRACE, abandon_stale_uploads};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("forgetful@example.com").await;
    let creator = app.create_creator(&owner, "Forgetful Studio").await;
    let bytes = b"never sent".repeat(10);
    // Both were uploaded, neither completed.
    let old_upload = request_ok(&app, &owner, &creator, &bytes).await;
    put_presigned(&app, &old_upload, &bytes).await;
    let old = old_upload["video"]["id"].as_str().expect("id").to_owned();
    let recent_upload = request_ok(&app, &owner, &creator, &bytes).await;
    put_presigned(&app, &recent_upload, &bytes).await;
    let recent = recent_upload["video"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let key_of = |upload: &Value| {
        let video =
            uuid::Uuid::parse_str(upload["video"]["id"].as_str().expect("id")).expect("uuid");
        let creator = uuid::Uuid::parse_str(&creator).expect("uuid");
        reelgraph::media::keys::original(creator, video)
    };
    let stored = |key: String| {
        let storage = app.state.storage.clone();
        async move { storage.head(&key).await.expect("head").is_some() }
    };
    let (old_key, recent_key) = (key_of(&old_upload), key_of(&recent_upload));
    assert!(stored(old_key.clone()).await);
    let requested = chrono::Utc::now() - UPLOAD_GRACE - chrono::TimeDelta::minutes(1);
    entity::video::Entity::update_many()
        .col_expr(entity::video::Column::CreatedAt, Expr::value(requested))
        .filter(entity::video::Column::Id.eq(uuid::Uuid::parse_str(&old).expect("uuid")))
        .exec(&app.state.db)
        .await
        .expect("backdated");

    let failed = abandon_stale_uploads(&app.state.db, &app.state.storage, UPLOAD_GRACE)
        .await
        .expect("sweep");
    assert_eq!(failed, 1);
    // The abandoned upload's bytes are gone; the recent one's are kept for its completion.
    assert!(!stored(old_key).await);
    assert!(stored(recent_key).await);
    let data = video(&app, Some(&owner), &old).await;
    assert_eq!(data["data"]["video"]["status"], "FAILED", "{data:#}");
    assert_eq!(data["data"]["video"]["failureReason"], ABANDONED_UPLOAD);
    let body = complete(&app, &owner, &old).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body:#}");

    let data = video(&app, Some(&owner), &recent).await;
    assert_eq!(data["data"]["video"]["status"], "UPLOADING", "{data:#}");
    assert!(data["data"]["video"]["failureReason"].is_null());
    // A second sweep finds nothing more.
    assert_eq!(
        abandon_stale_uploads(&app.state.db, &app.state.storage, UPLOAD_GRACE)
            .await
            .expect("sweep"),
        0
    );
    // The recent upload still completes.
    let body = complete(&app, &owner, &recent).await;
    assert!(body.get("errors").is_none(), "{body:#}");
}

async fn complete_video_upload_refuses_a_missing_short_or_different_file_and_changes_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("careful@example.com").await;
    let creator = app.create_creator(&owner, "Careful Studio").await;
    let bytes = short_source().await;
    let upload = request_ok(&app, &owner, &creator, bytes).await;
    let id = upload["video"]["id"].as_str().expect("id").to_owned();
    let jobs_before = app
        .ok(
            Some(&owner.access_token),
            "{ jobs { totalCount } }",
            json!({}),
        )
        .await;

    // Nothing uploaded yet.
    let body = complete(&app, &owner, &id).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert_eq!(error_field(&body), "videoId");

    // More bytes than promised: refused while uploading (the size is part of the link).
    let mut longer = bytes.to_vec();
    longer.extend_from_slice(&[0; 4096]);
    assert_eq!(put_presigned_status(&app, &upload, &longer).await, 413);

    // Fewer bytes than promised: refused at the end of the body, and nothing is stored.
    assert_eq!(
        put_presigned_status(&app, &upload, &bytes[..bytes.len() - 10]).await,
        400
    );
    let body = complete(&app, &owner, &id).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert_eq!(error_field(&body), "videoId");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("nothing"),
        "nothing was uploaded: {message}"
    );
    // The same sent without a length (chunked): refused once the body has ended short.
    let status = put_chunked_status(&upload, &bytes[..bytes.len() - 10]).await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    let body = complete(&app, &owner, &id).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("nothing"),
        "nothing was uploaded: {message}"
    );

    // The right size, other bytes: the promised SHA-256 does not match.
    let mut other = bytes.to_vec();
    let last = other.len() - 1;
    other[last] ^= 0xFF;
    put_presigned(&app, &upload, &other).await;
    let body = complete(&app, &owner, &id).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("SHA-256"), "{message}");

    let data = video(&app, Some(&owner), &id).await;
    assert_eq!(data["data"]["video"]["status"], "UPLOADING", "{data:#}");
    let jobs_after = app
        .ok(
            Some(&owner.access_token),
            "{ jobs { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(jobs_before, jobs_after, "no job was enqueued");

    // The right bytes complete it.
    put_presigned(&app, &upload, bytes).await;
    let body = complete(&app, &owner, &id).await;
    assert_eq!(
        body["data"]["completeVideoUpload"]["type"], "video.probe",
        "{body:#}"
    );
    // The link is write-once: what was checked cannot be replaced through it, and a PUT is
    // told so before it sends its body.
    assert_eq!(
        put_presigned_status(&app, &upload, b"something else").await,
        412
    );
    let url = url::Url::parse(upload["uploadUrl"].as_str().expect("url")).expect("url");
    assert_eq!(put_head_only(&url, &upload, bytes.len()).await, 412);
    use sea_orm::EntityTrait;
    let row = entity::video::Entity::find_by_id(id.parse::<uuid::Uuid>().expect("uuid"))
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("video");
    let stored = app
        .state
        .storage
        .head(&row.storage_key)
        .await
        .expect("head")
        .expect("the upload is there");
    assert_eq!(
        stored.size,
        bytes.len() as u64,
        "the checked upload is kept"
    );
}

async fn request_video_upload_names_each_invalid_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("strict@example.com").await;
    let creator = app.create_creator(&owner, "Strict Studio").await;
    let valid = json!({
        "creatorId": creator, "filename": "a.mp4", "contentType": "video/mp4", "sizeBytes": 1000,
    });
    let cases = [
        ("filename", json!(""), "input.filename"),
        ("filename", json!("x".repeat(256)), "input.filename"),
        ("contentType", json!("text/plain"), "input.contentType"),
        ("sizeBytes", json!(0), "input.sizeBytes"),
        (
            "sizeBytes",
            json!(5_i64 * 1024 * 1024 * 1024 + 1),
            "input.sizeBytes",
        ),
        ("sha256", json!("abc"), "input.sha256"),
        ("sha256", json!("z".repeat(64)), "input.sha256"),
        ("title", json!("t".repeat(201)), "input.title"),
        ("creatorId", json!("not-an-id"), "input.creatorId"),
    ];
    for (key, value, field) in cases {
        let mut input = valid.clone();
        input[key] = value;
        let body = request(&app, &owner, input).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{key}: {body:#}");
        assert_eq!(error_field(&body), field, "{body:#}");
    }
    let mut biggest = valid;
    // 5 GiB, the most one PUT carries to S3.
    biggest["sizeBytes"] = json!(5_i64 * 1024 * 1024 * 1024);
    let body = request(&app, &owner, biggest).await;
    assert!(body.get("errors").is_none(), "5 GiB is allowed: {body:#}");
}

/// An account may ask for 200 upload links in a day, also when it asks for several at once;
/// the next is RATE_LIMITED and writes nothing. An administrator is not held back by it.
async fn upload_links_are_limited_per_account_and_day(backend: Backend) {
    use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
    let app = TestApp::spawn(backend).await;
    let owner = app.register("busy@example.com").await;
    let creator = app.create_creator(&owner, "Busy Studio").await;
    let owner_id: uuid::Uuid = owner.user_id.parse().expect("uuid");
    // 199 asked for within the day, one two days ago.
    for n in 0..200 {
        let id = crate::helpers::insert_video(
            &app,
            &creator,
            &format!("v{n}"),
            entity::VideoStatus::Uploading,
            None,
        )
        .await;
        let mut row: entity::video::ActiveModel = entity::video::Entity::find_by_id(id)
            .one(&app.state.db)
            .await
            .expect("read")
            .expect("video")
            .into();
        row.uploaded_by = Set(Some(owner_id));
        if n == 0 {
            row.created_at = Set(chrono::Utc::now() - chrono::TimeDelta::days(2));
        }
        row.update(&app.state.db).await.expect("updated");
    }
    let input = json!({
        "creatorId": creator, "filename": "a.mp4", "contentType": "video/mp4", "sizeBytes": 1000,
    });
    // Four at once for the last one left: one gets it.
    let answers =
        futures_util::future::join_all((0..4).map(|_| request(&app, &owner, input.clone()))).await;
    let granted = answers.iter().filter(|b| b.get("errors").is_none()).count();
    assert_eq!(granted, 1, "the 200th, once: {answers:#?}");
    for body in answers.iter().filter(|b| b.get("errors").is_some()) {
        assert_eq!(error_code(body), "RATE_LIMITED", "{body:#}");
    }
    let count = || entity::video::Entity::find().count(&app.state.db);
    let before = count().await.expect("count");
    let body = request(&app, &owner, input.clone()).await;
    assert_eq!(error_code(&body), "RATE_LIMITED", "the 201st: {body:#}");
    assert_eq!(count().await.expect("count"), before, "nothing written");
    let admin = app.admin("upload-admin@example.com").await;
    let body = request(&app, &admin, input).await;
    assert!(body.get("errors").is_none(), "an administrator: {body:#}");
}

async fn only_members_may_upload_to_complete_or_see_a_creators_videos(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("member@example.com").await;
    let outsider = app.register("outsider@example.com").await;
    let admin = app.admin("root@example.com").await;
    let creator = app.create_creator(&owner, "Members Only").await;
    let outsiders_creator = app.create_creator(&outsider, "Elsewhere").await;
    let bytes = short_source().await;
    let input = json!({
        "creatorId": creator, "filename": "a.mp4", "contentType": "video/mp4",
        "sizeBytes": bytes.len(), "sha256": sha256_hex(bytes),
    });

    // Anonymous callers must sign in; a visible creator one does not belong to is FORBIDDEN;
    // an unknown one NOT_FOUND.
    let body = app.gql(None, REQUEST, json!({ "input": input })).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body:#}");
    let body = request(&app, &outsider, input.clone()).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");
    let mut unknown = input.clone();
    unknown["creatorId"] = json!(uuid::Uuid::now_v7().to_string());
    let body = request(&app, &outsider, unknown).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");

    // An upload in progress is invisible to outsiders: NOT_FOUND to see or complete it.
    let pending = request_ok(&app, &owner, &creator, bytes).await;
    let pending_id = pending["video"]["id"].as_str().expect("id").to_owned();
    put_presigned(&app, &pending, bytes).await;
    let body = complete(&app, &outsider, &pending_id).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
    let body = video(&app, Some(&outsider), &pending_id).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
    // …and its owner's uploads do not de-duplicate theirs (nor reveal that they exist).
    let mut own = input.clone();
    own["creatorId"] = json!(outsiders_creator);
    let body = request(&app, &outsider, own).await;
    assert_eq!(
        body["data"]["requestVideoUpload"]["deduplicated"], false,
        "{body:#}"
    );

    // Once READY (and public), outsiders see the video and its thumbnail but not the
    // variants, and still may not complete it.
    let updates = complete_and_follow(&app, &owner, &pending_id).await;
    assert_eq!(
        updates.last().expect("updates")["status"],
        "DONE",
        "{updates:#?}"
    );
    let data = video(&app, Some(&outsider), &pending_id).await;
    let seen = &data["data"]["video"];
    assert_eq!(seen["status"], "READY", "{data:#}");
    assert_eq!(seen["variants"], json!([]));
    assert!(seen["thumbnailUrl"].is_string() && seen["proxyUrl"].is_string());
    let body = complete(&app, &outsider, &pending_id).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");
    let body = complete(&app, &owner, &pending_id).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body:#}");

    // Administrators may upload anywhere and see the variants.
    let body = request(
        &app,
        &admin,
        json!({
            "creatorId": creator, "filename": "b.mp4", "contentType": "video/webm", "sizeBytes": 5,
        }),
    )
    .await;
    assert_eq!(
        body["data"]["requestVideoUpload"]["video"]["status"], "UPLOADING",
        "{body:#}"
    );
    let data = video(&app, Some(&admin), &pending_id).await;
    assert_eq!(
        data["data"]["video"]["variants"].as_array().map(Vec::len),
        Some(2),
        "{data:#}"
    );
}

/// A file too large for one PUT (S3 takes at most 5 GiB in one; the proxy of a long source
/// can be more) goes up in parts and reads back whole; here 12 MiB in parts of 5 MiB, the
/// smallest S3 allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_to_s3_in_parts_and_reads_back_whole() {
    let server = s3::start().await;
    let app = TestApp::spawn_with(Backend::Sqlite, |a| {
        s3::configure_url(&mut a.config, &server)
    })
    .await;
    let reelgraph::storage::Storage::S3(store) = &app.state.storage else {
        panic!("S3 storage");
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("large");
    let bytes: Vec<u8> = (0..12u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &bytes).expect("written");
    store
        .put_file_in_parts("videos/large/proxy.mp4", &source, "video/mp4", 5 << 20)
        .await
        .expect("uploaded in parts");
    let head = app
        .state
        .storage
        .head("videos/large/proxy.mp4")
        .await
        .expect("head")
        .expect("stored");
    assert_eq!(head.size, bytes.len() as u64);
    let back = dir.path().join("back");
    app.state
        .storage
        .get_to_file("videos/large/proxy.mp4", &back)
        .await
        .expect("read back");
    assert!(
        std::fs::read(&back).expect("read") == bytes,
        "the same bytes, in order"
    );
    // An empty file is one empty part.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").expect("written");
    store
        .put_file_in_parts("videos/large/empty", &empty, "video/mp4", 5 << 20)
        .await
        .expect("uploaded");
    let head = app
        .state
        .storage
        .head("videos/large/empty")
        .await
        .expect("head");
    assert_eq!(head.map(|h| h.size), Some(0));
}

/// A bucket that refuses the server at start says which setting to check: wrong credentials
/// (403) and a bucket that is not there (404) are told apart, where the SDK said only
/// "unhandled error" (a HEAD has no body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_refuses_the_server_at_start_says_why() {
    let server = s3::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = reelgraph::config::Config::embedded(dir.path());
    s3::configure(&mut config, &server);
    config.s3_secret_access_key = Some("not-the-secret".to_owned());
    let bucket = config.s3_bucket.clone().expect("bucket");
    let err = reelgraph::storage::s3::S3Store::connect(&config, &bucket)
        .await
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("403") && message.contains("credentials"),
        "{message}"
    );
    assert!(!message.contains("unhandled"), "{message}");
    s3::configure(&mut config, &server);
    let err = reelgraph::storage::s3::S3Store::connect(&config, "no-such-bucket")
        .await
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("404") && message.contains("S3_BUCKET"),
        "{message}"
    );
}

/// A multipart upload dropped midway (a cancelled job stops waiting for it) is aborted: its
/// parts are not left stored. 60 MiB in parts of 5 MiB, dropped once the first part is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_dropped_midway_leaves_no_parts() {
    let server = s3::start().await;
    let app = TestApp::spawn_with(Backend::Sqlite, |a| {
        s3::configure_url(&mut a.config, &server)
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("large");
    std::fs::write(&source, vec![7u8; 60 << 20]).expect("written");
    let storage = app.state.storage.clone();
    let upload = tokio::spawn(async move {
        let reelgraph::storage::Storage::S3(store) = &storage else {
            panic!("S3 storage");
        };
        store
            .put_file_in_parts("videos/dropped/proxy.mp4", &source, "video/mp4", 5 << 20)
            .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while server.pending_parts() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no part arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    upload.abort();
    assert!(upload.await.is_err(), "dropped before it ended");
    while server.pending_parts() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} parts left stored",
            server.pending_parts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let head = app.state.storage.head("videos/dropped/proxy.mp4").await;
    assert_eq!(head.expect("head"), None, "never completed");
}

/// On S3 the PUT goes to the bucket itself, and the SHA-256 check reads the object back. The
/// bucket is configured by `STORAGE_URL` here (the render test uses the separate S3_* settings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_through_s3_presigned_urls_is_checked_and_processed() {
    let server = s3::start().await;
    let app = TestApp::spawn_with(Backend::Postgres, |a| {
        s3::configure_url(&mut a.config, &server)
    })
    .await;
    assert_eq!(app.state.storage.backend_name(), "s3");
    let owner = app.register("bucket@example.com").await;
    let creator = app.create_creator(&owner, "Bucket Studio").await;
    let bytes = short_source().await;

    let upload = request_ok(&app, &owner, &creator, bytes).await;
    let id = upload["video"]["id"].as_str().expect("id").to_owned();
    // Signed for the address clients use (S3_PUBLIC_ENDPOINT), not the server's own.
    let public = s3::public_endpoint(&server);
    assert_ne!(public, server.endpoint);
    assert!(
        upload["uploadUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{public}/"))),
        "{upload:#}"
    );
    // The length is signed (S3 refuses a body of another length: SignatureDoesNotMatch).
    assert_eq!(
        upload["uploadHeaders"]["content-length"],
        bytes.len().to_string(),
        "{upload:#}"
    );
    let url = upload["uploadUrl"].as_str().expect("url");
    assert!(
        url.contains("X-Amz-SignedHeaders=content-length%3B"),
        "{url}"
    );
    let mut other = bytes.to_vec();
    other[0] ^= 0xFF;
    put_presigned(&app, &upload, &other).await;
    let body = complete(&app, &owner, &id).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");

    put_presigned(&app, &upload, bytes).await;
    let updates = complete_and_follow(&app, &owner, &id).await;
    assert_eq!(
        updates.last().expect("updates")["status"],
        "DONE",
        "{updates:#?}"
    );
    let data = video(&app, Some(&owner), &id).await;
    let v = &data["data"]["video"];
    assert_eq!(v["status"], "READY", "{data:#}");
    let dir = tempfile::tempdir().expect("dir");
    let thumbnail = v["thumbnailUrl"].as_str().expect("thumbnailUrl");
    assert!(thumbnail.starts_with(&format!("{public}/")), "{thumbnail}");
    let jpeg = download(&app, thumbnail, &dir.path().join("t.jpg")).await;
    assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");
    // The link is write-once on S3 too (`If-None-Match: *` is part of what was signed).
    assert_eq!(upload["uploadHeaders"]["if-none-match"], "*", "{upload:#}");
    assert_eq!(put_presigned_status(&app, &upload, b"garbage").await, 412);
    let data = video(&app, Some(&owner), &id).await;
    assert_eq!(data["data"]["video"]["status"], "READY", "{data:#}");
}

/// On S3 `completeVideoUpload` checks a promised SHA-256 itself only up to 32 MiB (it would
/// have to download the object within the request): a larger upload that is not the promised
/// file is accepted there and refused by the probe, which reads it anyway, saying so.
#[tokio::test]
async fn a_large_s3_upload_has_its_sha256_checked_by_the_probe() {
    let server = s3::start().await;
    let app = TestApp::spawn_with(Backend::Postgres, |a| {
        s3::configure_url(&mut a.config, &server)
    })
    .await;
    let owner = app.register("big-bucket@example.com").await;
    let creator = app.create_creator(&owner, "Big Bucket").await;
    let bytes = vec![7_u8; (32 << 20) + 1];
    let promised = sha256_hex(b"another file");
    let upload = request(
        &app,
        &owner,
        json!({
            "creatorId": creator, "filename": "big.mp4", "contentType": "video/mp4",
            "sizeBytes": bytes.len(), "sha256": promised,
        }),
    )
    .await;
    assert!(upload.get("errors").is_none(), "{upload:#}");
    let upload = &upload["data"]["requestVideoUpload"];
    let id = upload["video"]["id"].as_str().expect("id").to_owned();
    put_presigned(&app, upload, &bytes).await;
    let updates = complete_and_follow(&app, &owner, &id).await;
    assert_eq!(
        updates.last().expect("updates")["status"],
        "FAILED",
        "{updates:#?}"
    );
    let data = video(&app, Some(&owner), &id).await;
    let v = &data["data"]["video"];
    assert_eq!(v["status"], "FAILED", "{data:#}");
    let actual = sha256_hex(&bytes);
    assert_eq!(
        v["failureReason"],
        format!(
            "the uploaded file's SHA-256 is {actual}, not the promised {promised}: upload the \
             right file with a new requestVideoUpload"
        ),
        "{data:#}"
    );
}

/// The upload of a video that FAILED a week ago is removed by the upkeep (it is never read
/// again); the row stays with its reason. One that failed a day ago is kept, and so is a
/// READY video's. Each is swept once.
#[tokio::test]
async fn a_failed_videos_upload_is_removed_after_a_week() {
    use reelgraph::media::record::{FAILED_ORIGINAL_GRACE, remove_failed_originals};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("failed-kept@example.com").await;
    let creator = app.create_creator(&owner, "Failed Studio").await;
    let mut keys = Vec::new();
    for text in [
        "week-old notes, not a video\n",
        "day-old notes, not a video\n",
    ] {
        let bytes = text.repeat(20).into_bytes();
        let upload = request_ok(&app, &owner, &creator, &bytes).await;
        let id = upload["video"]["id"].as_str().expect("id").to_owned();
        put_presigned(&app, &upload, &bytes).await;
        let updates = complete_and_follow(&app, &owner, &id).await;
        assert_eq!(
            updates.last().expect("updates")["status"],
            "FAILED",
            "{updates:#?}"
        );
        let id: uuid::Uuid = id.parse().expect("uuid");
        let row = entity::video::Entity::find_by_id(id)
            .one(&app.state.db)
            .await
            .expect("read")
            .expect("video");
        keys.push((id, row.storage_key));
    }
    let ready = short_source().await;
    let ready_id: uuid::Uuid = upload_and_process(&app, &owner, &creator, ready)
        .await
        .parse()
        .expect("uuid");
    for (id, days) in [(keys[0].0, 8), (keys[1].0, 1), (ready_id, 8)] {
        entity::video::Entity::update_many()
            .col_expr(
                entity::video::Column::UpdatedAt,
                Expr::val(chrono::Utc::now() - chrono::Duration::days(days)),
            )
            .filter(entity::video::Column::Id.eq(id))
            .exec(&app.state.db)
            .await
            .expect("aged");
    }
    let storage = &app.state.storage;
    let swept = remove_failed_originals(&app.state.db, storage, FAILED_ORIGINAL_GRACE)
        .await
        .expect("swept");
    assert_eq!(swept, 1);
    assert_eq!(storage.head(&keys[0].1).await.expect("head"), None);
    assert!(storage.head(&keys[1].1).await.expect("head").is_some());
    let data = video(&app, Some(&owner), &keys[0].0.to_string()).await;
    assert_eq!(data["data"]["video"]["status"], "FAILED", "{data:#}");
    assert_eq!(
        data["data"]["video"]["failureReason"],
        "the file is not a video"
    );
    let ready = entity::video::Entity::find_by_id(ready_id)
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("video");
    assert!(
        storage
            .head(&ready.storage_key)
            .await
            .expect("head")
            .is_some()
    );
    let again = remove_failed_originals(&app.state.db, storage, FAILED_ORIGINAL_GRACE)
        .await
        .expect("swept");
    assert_eq!(again, 0, "swept once");
    // A process stopped between marking the video and removing its file left the file: the
    // next sweep removes it.
    storage
        .put_bytes(&keys[0].1, b"still here".to_vec(), "video/mp4")
        .await
        .expect("put back");
    entity::video::Entity::update_many()
        .col_expr(
            entity::video::Column::FilesRemovedAt,
            Expr::val(chrono::Utc::now() - chrono::Duration::hours(1)),
        )
        .filter(entity::video::Column::Id.eq(keys[0].0))
        .exec(&app.state.db)
        .await
        .expect("marked an hour ago");
    remove_failed_originals(&app.state.db, storage, FAILED_ORIGINAL_GRACE)
        .await
        .expect("swept");
    assert_eq!(storage.head(&keys[0].1).await.expect("head"), None);
    // A probe retried after the sweep leaves it FAILED: nothing is left to make READY.
    reelgraph::media::record::reopen(&app.state.db, keys[0].0, sea_orm::Condition::all())
        .await
        .expect("reopen");
    let data = video(&app, Some(&owner), &keys[0].0.to_string()).await;
    assert_eq!(data["data"]["video"]["status"], "FAILED", "{data:#}");
    // Reopened before the sweep, it keeps its upload.
    reelgraph::media::record::reopen(&app.state.db, keys[1].0, sea_orm::Condition::all())
        .await
        .expect("reopen");
    entity::video::Entity::update_many()
        .col_expr(
            entity::video::Column::UpdatedAt,
            Expr::val(chrono::Utc::now() - chrono::Duration::days(30)),
        )
        .filter(entity::video::Column::Id.eq(keys[1].0))
        .exec(&app.state.db)
        .await
        .expect("aged");
    let swept = remove_failed_originals(&app.state.db, storage, FAILED_ORIGINAL_GRACE)
        .await
        .expect("swept");
    assert_eq!(swept, 0, "a processing video's upload stays");
    assert!(storage.head(&keys[1].1).await.expect("head").is_some());
}

/// Sends only the head of a PUT to an upload link (no body) and returns the status the
/// server answers with: it must answer without the body.
async fn put_head_only(url: &url::Url, upload: &Value, length: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream =
        tokio::net::TcpStream::connect((url.host_str().expect("host"), url.port().expect("port")))
            .await
            .expect("connect");
    let mut head = format!(
        "PUT {}?{} HTTP/1.1\r\nhost: {}\r\ncontent-length: {length}\r\n",
        url.path(),
        url.query().expect("query"),
        url.host_str().expect("host"),
    );
    for (name, value) in upload["uploadHeaders"].as_object().expect("headers") {
        if name != "content-length" {
            head.push_str(&format!("{name}: {}\r\n", value.as_str().expect("value")));
        }
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut answer = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut answer))
        .await
        .expect("answered without the body")
        .expect("read");
    let line = String::from_utf8_lossy(&answer);
    line[9..12].parse().expect("a status code")
}

/// An upload cut short leaves nothing behind: no object, no work file. A work file a killed
/// process left (untouched for an hour) is removed by the storage sweep; one still being
/// written is not.
#[tokio::test]
async fn cut_uploads_leave_nothing_and_stale_work_files_are_swept() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("cut@example.com").await;
    let creator = app.create_creator(&owner, "Cut Studio").await;
    let bytes = short_source().await;
    let upload = request_ok(&app, &owner, &creator, bytes).await;
    let url = url::Url::parse(upload["uploadUrl"].as_str().expect("url")).expect("url");
    let reelgraph::storage::Storage::Local(local) = &app.state.storage else {
        panic!("tests run on local storage");
    };
    let incoming = local.path_of(".incoming");
    let mut stream =
        tokio::net::TcpStream::connect((url.host_str().expect("host"), url.port().expect("port")))
            .await
            .expect("connect");
    let mut head = format!(
        "PUT {}?{} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n",
        url.path(),
        url.query().expect("query"),
        url.host_str().expect("host"),
        bytes.len()
    );
    for (name, value) in upload["uploadHeaders"].as_object().expect("headers") {
        if name != "content-length" {
            head.push_str(&format!("{name}: {}\r\n", value.as_str().expect("value")));
        }
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&bytes[..1000])
        .await
        .expect("part of the body");
    stream.flush().await.expect("flush");
    // The work file appears while the body streams in…
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let count = || std::fs::read_dir(&incoming).map_or(0, Iterator::count);
    while count() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no work file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One body at a time: a second PUT with the link is refused before its body is read.
    let status = put_head_only(&url, &upload, bytes.len()).await;
    assert_eq!(status, 409, "a second upload at once");
    // …and goes once the client hangs up.
    drop(stream);
    while count() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the work file stayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let video = upload["video"]["id"].as_str().expect("id");
    let body = complete(&app, &owner, video).await;
    assert_eq!(
        error_code(&body),
        "BAD_USER_INPUT",
        "nothing uploaded: {body:#}"
    );

    let stale = incoming.join("left-by-a-killed-process");
    let fresh = incoming.join("still-being-written");
    std::fs::write(&stale, b"half an upload").expect("stale");
    std::fs::write(&fresh, b"an upload").expect("fresh");
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| f.set_modified(two_hours_ago))
        .expect("aged");
    let removed = app
        .state
        .storage
        .sweep_incoming(reelgraph::jobs::worker::INCOMING_IDLE)
        .await
        .expect("swept");
    assert_eq!(removed, 1);
    assert!(!stale.exists());
    assert!(fresh.exists());
}

/// A server listening on all interfaces (`0.0.0.0`, as in the Docker image) without
/// `PUBLIC_URL` signs its upload links for `127.0.0.1`, an address a client can use.
#[tokio::test]
async fn upload_links_never_point_at_the_unspecified_address() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| {
        a.listen = "0.0.0.0:0".parse().expect("addr");
    })
    .await;
    let owner = app.register("anywhere@example.com").await;
    let creator = app.create_creator(&owner, "Anywhere").await;
    let upload = request_ok(&app, &owner, &creator, b"not yet a video").await;
    let url = upload["uploadUrl"].as_str().expect("uploadUrl");
    assert!(url.starts_with(&format!("{}/objects/", app.base)), "{url}");
}

/// A portrait phone video (stored 320×240 with a quarter turn) is 240×320, as players show it
/// and as its proxy is encoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turned_video_has_the_size_it_is_shown_at() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("portrait@example.com").await;
    let creator = app.create_creator(&owner, "Portrait").await;
    let bytes = quarter_turned(short_source().await).await;
    let id = upload_and_process(&app, &owner, &creator, &bytes).await;

    let data = video(&app, Some(&owner), &id).await;
    let v = &data["data"]["video"];
    assert_eq!(
        (v["width"].as_i64(), v["height"].as_i64()),
        (Some(240), Some(320)),
        "{data:#}"
    );
    let proxy = &v["variants"][0];
    assert_eq!(proxy["profile"], "proxy_720p", "{data:#}");
    assert_eq!(
        (proxy["width"].as_i64(), proxy["height"].as_i64()),
        (Some(240), Some(320)),
        "{data:#}"
    );
    let dir = tempfile::tempdir().expect("dir");
    let mp4 = dir.path().join("proxy.mp4");
    download(&app, v["proxyUrl"].as_str().expect("proxyUrl"), &mp4).await;
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let probe = ffmpeg::probe(&tools, &mp4)
        .await
        .expect("the proxy is read");
    assert_eq!((probe.width, probe.height), (Some(240), Some(320)));
}

both_backends!(
    one_file_uploaded_twice_at_once_makes_one_video,
    an_uploaded_video_becomes_ready_with_a_thumbnail_and_a_720p_proxy,
    uploading_the_same_bytes_again_returns_the_ready_video_without_an_upload,
    a_file_that_is_not_a_video_ends_failed_with_a_clear_reason,
    uploads_never_completed_are_failed_after_a_day,
    complete_video_upload_refuses_a_missing_short_or_different_file_and_changes_nothing,
    request_video_upload_names_each_invalid_field,
    only_members_may_upload_to_complete_or_see_a_creators_videos,
    upload_links_are_limited_per_account_and_day,
);

/// `deleteVideo` landing while `completeVideoUpload` checks the upload (PostgreSQL: the
/// deletion holds the video's row when the completion comes to move it): the completion is
/// NOT_FOUND and queues no probe for the deleted video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_completed_while_its_video_is_deleted_is_not_found() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait, sea_query::Expr};

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let owner = app.register("deleted-midway@example.com").await;
    let creator = app.create_creator(&owner, "Midway Studio").await;
    let bytes = b"the bytes of a video deleted midway";
    let upload = request_ok(&app, &owner, &creator, bytes).await;
    put_presigned(&app, &upload, bytes).await;
    let id = upload["video"]["id"].as_str().expect("id").to_owned();
    let video_id: uuid::Uuid = id.parse().expect("uuid");

    let deletion = app.state.db.begin().await.expect("txn");
    entity::video::Entity::update_many()
        .col_expr(
            entity::video::Column::DeletedAt,
            Expr::val(chrono::Utc::now()),
        )
        .filter(entity::video::Column::Id.eq(video_id))
        .exec(&deletion)
        .await
        .expect("deleted, not yet committed");
    let completing = app.gql_in_background(&owner.access_token, COMPLETE, json!({ "id": id }));
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    deletion.commit().await.expect("commit");
    let body = completing.await.expect("joined");
    assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
    let jobs = app
        .ok(
            Some(&owner.access_token),
            "{ jobs { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        jobs["jobs"]["totalCount"], 0,
        "no probe for a deleted video"
    );
}

/// A local object link serves byte ranges as players ask for them (206 with `Content-Range`,
/// 416 past the end), and a page of another origin may read those headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_links_serve_byte_ranges_readable_across_origins() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let bytes: Vec<u8> = (0..1000_u32).map(|i| (i % 251) as u8).collect();
    let key = "renders/range-test/movie.mp4";
    app.state
        .storage
        .put_bytes(key, bytes.clone(), "video/mp4")
        .await
        .expect("stored");
    let url = app
        .state
        .storage
        .presign_get(key, Duration::from_secs(60))
        .await
        .expect("link");
    let response = app
        .client
        .get(&url)
        .header("range", "bytes=100-199")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 206);
    let headers = response.headers().clone();
    assert_eq!(headers["content-range"], "bytes 100-199/1000");
    assert_eq!(headers["content-type"], "video/mp4");
    let exposed = headers["access-control-expose-headers"]
        .to_str()
        .expect("text")
        .to_ascii_lowercase();
    assert!(
        exposed.contains("content-range") && exposed.contains("accept-ranges"),
        "{exposed}"
    );
    assert_eq!(
        response.bytes().await.expect("body").as_ref(),
        &bytes[100..200]
    );
    let past = app
        .client
        .get(&url)
        .header("range", "bytes=5000-")
        .send()
        .await
        .expect("sent");
    assert_eq!(past.status(), 416);

    // The link without its signature, or cut short: refused in words of links, not axum's.
    let bare = url::Url::parse(&url).expect("url");
    let mut cut = bare.clone();
    cut.set_query(bare.query().and_then(|q| q.split('&').next()));
    let mut unsigned = bare.clone();
    unsigned.set_query(None);
    for link in [unsigned, cut] {
        for put in [false, true] {
            let request = if put {
                app.client.put(link.clone()).body("x")
            } else {
                app.client.get(link.clone())
            };
            let response = request.send().await.expect("sent");
            assert_eq!(response.status(), 403, "{link}");
            let text = response.text().await.expect("text");
            assert_eq!(text, "this link is invalid or has expired", "{link}");
        }
    }
}

/// A video deleted while its upload is transcoded leaves no files behind, and its probe job is
/// cancelled (it ran the whole transcode on, and ended FAILED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_deleted_while_it_is_processed_leaves_no_renditions() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("hasty@example.com").await;
    let creator = app.create_creator(&owner, "Hasty Studio").await;
    let bytes = long_source().await;
    let (id, _, mut socket) = uploaded_and_followed(&app, &owner, &creator, bytes).await;
    // Deleted once the proxy is being made: after the thumbnail, before anything is stored.
    loop {
        let update = next_payload(&mut socket).await["data"]["jobUpdated"].clone();
        assert_ne!(update["status"], "DONE", "deleted too late: {update}");
        if update["currentPhase"] == "transcoding" {
            break;
        }
    }
    app.ok(
        Some(&owner.access_token),
        "mutation($id: ID!) { deleteVideo(id: $id) }",
        json!({ "id": id }),
    )
    .await;
    let rest = collect_until_complete(&mut socket, Duration::from_secs(240)).await;
    let last = &rest.last().expect("updates")["data"]["jobUpdated"];
    assert_eq!(last["status"], "CANCELLED", "{rest:#?}");
    assert!(
        rest.iter()
            .all(|u| u["data"]["jobUpdated"]["currentPhase"] != "storing"),
        "stopped before storing: {rest:#?}"
    );
    let creator: uuid::Uuid = creator.parse().expect("uuid");
    let video: uuid::Uuid = id.parse().expect("uuid");
    for profile in reelgraph::media::PROFILES {
        let key = reelgraph::media::keys::variant(creator, video, profile);
        let stored = app.state.storage.head(&key).await.expect("head");
        assert!(stored.is_none(), "{key} is left behind");
    }
}

/// Highlights of moments added while the upload was waiting (its length unknown) fit the
/// video once it is probed: a moment of an hour on a 2-second video made a highlight of an
/// hour until highlights were detected again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highlights_made_before_the_probe_fit_the_video_after_it() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("early-moments@example.com").await;
    let creator = app.create_creator(&owner, "Early Moments").await;
    let bytes = short_source().await;
    let upload = request_ok(&app, &owner, &creator, bytes).await;
    let id = upload["video"]["id"].as_str().expect("id").to_owned();
    let token = Some(owner.access_token.as_str());
    app.ok(
        token,
        "mutation($v: ID!, $m: [KeyMomentInput!]!) { addKeyMoments(videoId: $v, moments: $m) { id } }",
        json!({ "v": id, "m": [
            { "title": "all of it", "startTime": 0, "endTime": 3600 },
            { "title": "past the end", "startTime": 1.5, "endTime": 100 },
            { "title": "inside", "startTime": 0.5, "endTime": 1.5 },
        ] }),
    )
    .await;
    let detected = app
        .ok(
            token,
            "mutation($v: ID!) { detectHighlights(videoId: $v) { durationSecs } }",
            json!({ "v": id }),
        )
        .await;
    let mut before: Vec<f64> = detected["detectHighlights"]
        .as_array()
        .expect("highlights")
        .iter()
        .filter_map(|h| h["durationSecs"].as_f64())
        .collect();
    before.sort_by(f64::total_cmp);
    assert_eq!(before, [1.0, 98.5, 3600.0], "{detected}");
    put_presigned(&app, &upload, bytes).await;
    let updates = complete_and_follow(&app, &owner, &id).await;
    assert_eq!(updates.last().expect("updates")["status"], "DONE");
    let data = app
        .ok(
            token,
            "query($v: ID!) { video(id: $v) { durationSecs highlights { durationSecs keyMoment { title } } } }",
            json!({ "v": id }),
        )
        .await;
    let length = data["video"]["durationSecs"].as_f64().expect("probed");
    for highlight in data["video"]["highlights"].as_array().expect("highlights") {
        let expected = match highlight["keyMoment"]["title"].as_str() {
            Some("all of it") => length,
            Some("past the end") => length - 1.5,
            _ => 1.0,
        };
        let got = highlight["durationSecs"].as_f64().expect("duration");
        assert!((got - expected).abs() < 1e-9, "{data}");
    }
}

/// A video deleted (by `deleteVideo`, or at the end of its retention) before its probe ran has
/// its probe job cancelled: it would have run the transcode for a video that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_videos_waiting_probe_is_cancelled() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("early-delete@example.com").await;
    let creator = app.create_creator(&owner, "Early Delete").await;
    let status = |job: String| {
        let db = app.state.db.clone();
        async move {
            let id: uuid::Uuid = job.parse().expect("uuid");
            entity::job::Entity::find_by_id(id)
                .one(&db)
                .await
                .expect("read")
                .expect("job")
                .status
        }
    };
    let mut jobs = Vec::new();
    for name in ["deleted", "expired", "kept"] {
        let bytes = format!("{name} bytes").repeat(10).into_bytes();
        let upload = request_ok(&app, &owner, &creator, &bytes).await;
        let id = upload["video"]["id"].as_str().expect("id").to_owned();
        put_presigned(&app, &upload, &bytes).await;
        let body = complete(&app, &owner, &id).await;
        let job = body["data"]["completeVideoUpload"]["id"]
            .as_str()
            .expect("job")
            .to_owned();
        assert_eq!(status(job.clone()).await, entity::JobStatus::Queued);
        jobs.push((id, job));
    }
    app.ok(
        Some(&owner.access_token),
        "mutation($id: ID!) { deleteVideo(id: $id) }",
        json!({ "id": jobs[0].0 }),
    )
    .await;
    assert_eq!(
        status(jobs[0].1.clone()).await,
        entity::JobStatus::Cancelled
    );
    let expired: uuid::Uuid = jobs[1].0.parse().expect("uuid");
    entity::video::Entity::update_many()
        .col_expr(
            entity::video::Column::RetentionUntil,
            Expr::val(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(entity::video::Column::Id.eq(expired))
        .exec(&app.state.db)
        .await
        .expect("backdated");
    let swept = reelgraph::media::record::expire_videos(
        &app.state.db,
        &app.state.storage,
        &app.state.events,
    )
    .await
    .expect("swept");
    assert_eq!(swept, 1);
    assert_eq!(
        status(jobs[1].1.clone()).await,
        entity::JobStatus::Cancelled
    );
    assert_eq!(status(jobs[2].1.clone()).await, entity::JobStatus::Queued);
}

/// Once its video is deleted, the probe job that made it READY no longer links to its proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_videos_probe_job_links_to_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("probe-link@example.com").await;
    let creator = app.create_creator(&owner, "Probe Link Studio").await;
    let bytes = short_source().await;
    let (id, job, mut socket) = uploaded_and_followed(&app, &owner, &creator, bytes).await;
    let updates = collect_until_complete(&mut socket, Duration::from_secs(120)).await;
    let last = &updates.last().expect("updates")["data"]["jobUpdated"];
    assert_eq!(last["status"], "DONE", "{updates:#?}");
    assert!(last["outputUrl"].is_string(), "{last}");
    app.ok(
        Some(&owner.access_token),
        "mutation($id: ID!) { deleteVideo(id: $id) }",
        json!({ "id": id }),
    )
    .await;
    let data = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { job(id: $id) { status outputUrl } }",
            json!({ "id": job }),
        )
        .await;
    assert_eq!(data["job"], json!({ "status": "DONE", "outputUrl": null }));
}

/// PUTs `bytes` to a presigned upload of the local storage with `Transfer-Encoding: chunked`
/// (no `content-length`, as a client streaming a file of unknown length sends it); returns
/// the status line.
async fn put_chunked_status(upload: &Value, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let url = upload["uploadUrl"].as_str().expect("uploadUrl");
    let rest = url.strip_prefix("http://").expect("a local http URL");
    let (host, target) = rest.split_at(rest.find('/').expect("a path"));
    let mut head = format!(
        "PUT {target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ntransfer-encoding: chunked\r\n"
    );
    for (name, value) in upload["uploadHeaders"].as_object().expect("headers") {
        head.push_str(&format!(
            "{name}: {}\r\n",
            value.as_str().expect("header value")
        ));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head sent");
    for chunk in bytes.chunks(4096) {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .expect("chunk size");
        stream.write_all(chunk).await.expect("chunk");
        stream.write_all(b"\r\n").await.expect("chunk end");
    }
    stream.write_all(b"0\r\n\r\n").await.expect("last chunk");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answer");
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}
