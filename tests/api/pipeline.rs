//! The creator pipeline end to end, with a real source video: presigned upload → probe →
//! transcript → key moments → scored highlights → approve and trim → shorts in three aspect
//! ratios (one with burned-in captions) → public sharing governed by consent.

use std::time::Duration;

use reelgraph::render::ffmpeg;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    both_backends,
    helpers::{Backend, Session, TestApp},
};

/// A 20 s source with picture and sound.
async fn source_video(dir: &std::path::Path) -> Vec<u8> {
    source_video_sounding(dir, None).await
}

/// [`source_video`], its sound stopping after `sound_secs` when given (the picture runs on).
async fn source_video_sounding(dir: &std::path::Path, sound_secs: Option<u32>) -> Vec<u8> {
    let sine = match sound_secs {
        Some(secs) => format!("sine=frequency=440:sample_rate=48000:duration={secs}"),
        None => "sine=frequency=440:sample_rate=48000".to_owned(),
    };
    make_source(
        &dir.join("source.mp4"),
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            &sine,
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
    )
    .await
}

/// Polls a job until it ends; returns its final status.
async fn finish(app: &TestApp, token: &str, job: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let data = app
            .ok(
                Some(token),
                "query($id: ID!) { job(id: $id) { status error } }",
                json!({ "id": job }),
            )
            .await;
        let status = data["job"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if ["DONE", "FAILED", "CANCELLED"].contains(&status.as_str()) {
            if status != "DONE" {
                eprintln!("job {job} ended {status}: {}", data["job"]["error"]);
            }
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job} never finished: {data}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn request_upload(app: &TestApp, owner: &Session, creator: &str, bytes: &[u8]) -> Value {
    let sha = hex::encode(Sha256::digest(bytes));
    let data = app
        .ok(
            Some(&owner.access_token),
            "mutation($input: RequestVideoUploadInput!) { requestVideoUpload(input: $input) {
                video { id status } uploadUrl uploadHeaders expiresAt deduplicated } }",
            json!({ "input": { "creatorId": creator, "filename": "talk.mp4", "contentType": "video/mp4",
                "sizeBytes": bytes.len(), "sha256": sha, "title": "A talk" } }),
        )
        .await;
    data["requestVideoUpload"].clone()
}

async fn short(
    app: &TestApp,
    owner: &Session,
    highlight: &str,
    preset: &str,
    captions: bool,
) -> Value {
    let data = app
        .ok(
            Some(&owner.access_token),
            "mutation($input: GenerateShortInput!) { generateShort(input: $input) { id status job { id } } }",
            json!({ "input": { "highlightId": highlight, "preset": preset, "captions": captions } }),
        )
        .await;
    let created = &data["generateShort"];
    assert_eq!(created["status"], "PENDING");
    let job = created["job"]["id"].as_str().expect("job");
    assert_eq!(finish(app, &owner.access_token, job).await, "DONE");
    let data = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { short(id: $id) { id status preset captionsEnabled durationSecs fileSize url shareToken highlight { id } } }",
            json!({ "id": created["id"] }),
        )
        .await;
    data["short"].clone()
}

async fn probe_url(app: &TestApp, url: &str) -> ffmpeg::Probe {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("short.mp4");
    let response = app.client.get(url).send().await.expect("download");
    assert_eq!(response.status(), 200);
    std::fs::write(&path, response.bytes().await.expect("bytes")).expect("write");
    let tools = ffmpeg::check().await.expect("ffmpeg");
    ffmpeg::probe(&tools, &path)
        .await
        .expect("ffprobe reads the short")
}

/// The mean colour of the top-left 16×16 pixels of the frame at `at` seconds.
async fn corner_rgb(path: &std::path::Path, at: f64) -> [u8; 3] {
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let output = tokio::process::Command::new(&tools.ffmpeg)
        .args(["-v", "error", "-ss", &format!("{at:.3}"), "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "crop=16:16:0:0,scale=1:1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .await
        .expect("ffmpeg runs");
    assert!(output.status.success(), "{output:?}");
    output.stdout[..3].try_into().expect("three bytes")
}

/// The mean volume (dB) of `len` seconds of `path`'s sound from `from`.
async fn mean_volume(path: &std::path::Path, from: f64, len: f64) -> f64 {
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let output = tokio::process::Command::new(&tools.ffmpeg)
        .args([
            "-ss",
            &format!("{from:.3}"),
            "-t",
            &format!("{len:.3}"),
            "-i",
        ])
        .arg(path)
        .args(["-vn", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .await
        .expect("ffmpeg runs");
    let said = String::from_utf8_lossy(&output.stderr);
    said.lines()
        .find_map(|l| l.split("mean_volume: ").nth(1))
        .and_then(|v| v.trim_end_matches(" dB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no mean_volume in: {said}"))
}

fn near(actual: [u8; 3], expected: [u8; 3]) -> bool {
    actual
        .iter()
        .zip(expected)
        .all(|(a, e)| a.abs_diff(e) <= 40)
}

/// The cards of the two template tests: a 1 s red intro and a 1.5 s blue outro.
fn studio_cards() -> Value {
    json!({
        "intro": { "text": "Studio Cards\npresents", "durationSecs": 1.0, "background": "#E01010", "color": "#FFFFFF" },
        "outro": { "text": "Follow @cards for more", "durationSecs": 1.5, "background": "#1010E0" },
        "brandKit": { "kept": true },
    })
}

/// Uploads `bytes` as a video of `creator`'s, waits for its probe, adds one key moment over
/// `range` and returns the approved highlight detected from it.
async fn approved_highlight_of(
    app: &TestApp,
    owner: &Session,
    creator: &str,
    bytes: &[u8],
    (start, end): (f64, f64),
) -> String {
    let token = Some(owner.access_token.as_str());
    let upload = request_upload(app, owner, creator, bytes).await;
    let video = upload["video"]["id"].as_str().expect("video").to_owned();
    crate::helpers::put_presigned(app, &upload, bytes).await;
    let data = app
        .ok(
            token,
            "mutation($v: ID!) { completeVideoUpload(videoId: $v) { id } }",
            json!({ "v": video }),
        )
        .await;
    let probe_job = data["completeVideoUpload"]["id"].as_str().expect("job");
    assert_eq!(finish(app, &owner.access_token, probe_job).await, "DONE");
    app.ok(
        token,
        "mutation($v: ID!, $m: [KeyMomentInput!]!) { addKeyMoments(videoId: $v, moments: $m) { id } }",
        json!({ "v": video, "m": [{ "title": "The point", "startTime": start, "endTime": end }] }),
    )
    .await;
    let data = app
        .ok(
            token,
            "mutation($v: ID!) { detectHighlights(videoId: $v) { id } }",
            json!({ "v": video }),
        )
        .await;
    let highlight = data["detectHighlights"][0]["id"]
        .as_str()
        .expect("highlight")
        .to_owned();
    app.ok(
        token,
        "mutation($id: ID!) { approveHighlight(id: $id) { status } }",
        json!({ "id": highlight }),
    )
    .await;
    highlight
}

/// Runs `app`'s worker pool until the returned token is cancelled (apps spawned with
/// `no_worker`, whose tests choose when jobs run).
fn run_jobs(
    app: &TestApp,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let pool = reelgraph::app::worker_pool(&app.state);
    (stop.clone(), tokio::spawn(pool.run(stop)))
}

/// `generateShort` of `highlight` as SQUARE by `owner`: the short's id and its job's.
async fn queue_square_short(app: &TestApp, owner: &Session, highlight: &str) -> (String, String) {
    let data = app
        .ok(
            Some(&owner.access_token),
            "mutation($input: GenerateShortInput!) { generateShort(input: $input) { id job { id } } }",
            json!({ "input": { "highlightId": highlight, "preset": "SQUARE" } }),
        )
        .await;
    let id = |value: &Value| value.as_str().expect("id").to_owned();
    (
        id(&data["generateShort"]["id"]),
        id(&data["generateShort"]["job"]["id"]),
    )
}

/// Runs the worker pool until the short's job `job` is DONE; the seconds its file lasts.
async fn render_queued_short(app: &TestApp, owner: &Session, job: &str, short_id: &str) -> f64 {
    let (stop, pool) = run_jobs(app);
    assert_eq!(finish(app, &owner.access_token, job).await, "DONE");
    stop.cancel();
    pool.await.expect("drained");
    let made = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { short(id: $id) { status url } }",
            json!({ "id": short_id }),
        )
        .await;
    let probe = probe_url(app, made["short"]["url"].as_str().expect("url")).await;
    probe.duration_secs.expect("duration")
}

/// The (one) `render.short` job of `app`.
async fn short_job(app: &TestApp) -> entity::job::Model {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    entity::job::Entity::find()
        .filter(entity::job::Column::JobType.eq("render.short"))
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("the short's job")
}

/// A creator with `template`, and an approved highlight of 5 s (4 s to 9 s) of an uploaded
/// and probed source video (the app must run jobs until this returns); returns the highlight
/// and the folder the source was made in.
async fn approved_highlight_with_cards(
    app: &TestApp,
    owner: &Session,
    template: &Value,
) -> (String, tempfile::TempDir) {
    let token = Some(owner.access_token.as_str());
    let data = app
        .ok(
            token,
            "mutation($input: CreateCreatorInput!) { createCreator(input: $input) { id shortsTemplate } }",
            json!({ "input": { "name": "Studio Cards", "shortsTemplate": template } }),
        )
        .await;
    assert_eq!(&data["createCreator"]["shortsTemplate"], template);
    let creator = data["createCreator"]["id"].as_str().expect("id").to_owned();
    let dir = tempfile::tempdir().expect("dir");
    let bytes = source_video(dir.path()).await;
    let highlight = approved_highlight_of(app, owner, &creator, &bytes, (4.0, 9.0)).await;

    (highlight, dir)
}

/// A creator's `shortsTemplate` puts its intro and outro cards around the creator's shorts:
/// the short is longer by the cards, opens on the intro's colour and closes on the outro's,
/// with the clip (and its sound) between them.
async fn shorts_open_and_close_with_the_creators_cards(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("cards@example.com").await;
    let (highlight, dir) = approved_highlight_with_cards(&app, &owner, &studio_cards()).await;
    let made = short(&app, &owner, &highlight, "SQUARE", false).await;
    assert_eq!(made["status"], "COMPLETE");
    let url = made["url"].as_str().expect("url");
    let path = dir.path().join("short.mp4");
    let response = app.client.get(url).send().await.expect("download");
    std::fs::write(&path, response.bytes().await.expect("bytes")).expect("write");
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let probe = ffmpeg::probe(&tools, &path)
        .await
        .expect("ffprobe reads it");
    assert_eq!((probe.width, probe.height), (Some(720), Some(720)));
    assert!(probe.has_audio);
    let duration = probe.duration_secs.expect("duration");
    assert!(
        (duration - 7.5).abs() <= 0.15,
        "1 s intro + 5 s clip + 1.5 s outro: {duration}"
    );
    let (red, blue) = ([0xE0, 0x10, 0x10], [0x10, 0x10, 0xE0]);
    let opening = corner_rgb(&path, 0.5).await;
    assert!(near(opening, red), "intro: {opening:?}");
    let middle = corner_rgb(&path, 3.5).await;
    assert!(
        !near(middle, red) && !near(middle, blue) && !near(middle, [0, 0, 0]),
        "the clip's own picture: {middle:?}"
    );
    // The clip keeps its sound (a 440 Hz tone, about -21 dB); the cards are silent.
    let clip = mean_volume(&path, 2.0, 3.0).await;
    assert!(clip > -40.0, "the clip's sound: {clip} dB");
    let intro = mean_volume(&path, 0.0, 0.8).await;
    assert!(intro < -80.0, "the intro is silent: {intro} dB");
    let closing = corner_rgb(&path, duration - 0.5).await;
    assert!(near(closing, blue), "outro: {closing:?}");
    // The cards count towards the minutes the short reserved (and then consumed).
    let job = short_job(&app).await;
    let reserved = job.input["reservation"]["minutes"]
        .as_f64()
        .expect("minutes");
    assert!((reserved * 60.0 - 7.5).abs() < 1e-6, "{reserved} min");
}

/// A short is what `generateShort` asked for and reserved: a trim and a template saved while
/// it waits in the queue change neither its range nor its cards, so the minutes it uses are
/// the minutes it reserved.
async fn a_short_renders_what_was_reserved_whatever_changes_meanwhile(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("reserved@example.com").await;
    let token = Some(owner.access_token.as_str());
    let (stop, pool) = run_jobs(&app);
    let (highlight, _dir) = approved_highlight_with_cards(&app, &owner, &studio_cards()).await;
    stop.cancel();
    pool.await.expect("drained");

    let (short_id, job) = queue_square_short(&app, &owner, &highlight).await;
    // While it waits: the highlight trimmed to 4 s, and cards of 3 s and 4 s.
    app.ok(
        token,
        "mutation($id: ID!) { trimHighlight(id: $id, trimStart: 5.0, trimEnd: 9.0) { durationSecs } }",
        json!({ "id": highlight }),
    )
    .await;
    let creator = app
        .ok(
            token,
            "query($id: ID!) { highlight(id: $id) { video { creator { id } } } }",
            json!({ "id": highlight }),
        )
        .await["highlight"]["video"]["creator"]["id"]
        .clone();
    app.ok(
        token,
        "mutation($id: ID!, $t: JSON) { updateCreator(id: $id, input: { shortsTemplate: $t }) { id } }",
        json!({ "id": creator, "t": {
            "intro": { "text": "Longer", "durationSecs": 3.0 },
            "outro": { "text": "Longest", "durationSecs": 4.0 } } }),
    )
    .await;

    let duration = render_queued_short(&app, &owner, &job, &short_id).await;
    assert!(
        (duration - 7.5).abs() <= 0.15,
        "the reserved 1 s intro + 5 s clip + 1.5 s outro, not 3 + 4 + 4: {duration}"
    );
    let usage = app
        .ok(
            token,
            "{ renderUsage { minutesConsumed minutesReserved } }",
            json!({}),
        )
        .await;
    let used = usage["renderUsage"]["minutesConsumed"]
        .as_f64()
        .expect("used");
    assert!((used * 60.0 - duration).abs() < 0.2, "{usage}");
}

async fn a_source_video_becomes_shorts_that_consent_governs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("studio@example.com").await;
    let creator = app.create_creator(&owner, "Studio").await;
    let dir = tempfile::tempdir().expect("dir");
    let bytes = source_video(dir.path()).await;

    // Presigned upload with a plain HTTP client.
    let upload = request_upload(&app, &owner, &creator, &bytes).await;
    assert_eq!(upload["deduplicated"], false);
    let video = upload["video"]["id"].as_str().expect("video").to_owned();
    crate::helpers::put_presigned(&app, &upload, &bytes).await;
    let data = app
        .ok(
            Some(&owner.access_token),
            "mutation($v: ID!) { completeVideoUpload(videoId: $v) { id type } }",
            json!({ "v": video }),
        )
        .await;
    assert_eq!(data["completeVideoUpload"]["type"], "video.probe");
    assert_eq!(
        finish(
            &app,
            &owner.access_token,
            data["completeVideoUpload"]["id"].as_str().expect("job")
        )
        .await,
        "DONE"
    );
    let data = app
        .ok(
            Some(&owner.access_token),
            "query($v: ID!) { video(id: $v) { status durationSecs width height } }",
            json!({ "v": video }),
        )
        .await;
    assert_eq!(data["video"]["status"], "READY");
    assert!(
        (data["video"]["durationSecs"].as_f64().expect("duration") - 20.0).abs() <= 0.1,
        "{data}"
    );
    assert_eq!(
        (
            data["video"]["width"].clone(),
            data["video"]["height"].clone()
        ),
        (json!(1280), json!(720))
    );

    // Transcript, key moments, highlights.
    let segments: Vec<Value> = (0..10)
        .map(|i| json!({ "startTime": f64::from(i) * 2.0, "endTime": f64::from(i) * 2.0 + 1.8, "text": format!("Line number {i} of the talk!"), "speaker": "host" }))
        .collect();
    app.ok(Some(&owner.access_token), "mutation($v: ID!, $s: [TranscriptSegmentInput!]!) { setTranscript(videoId: $v, segments: $s) { id } }", json!({ "v": video, "s": segments }))
        .await;
    let moments = json!([
        { "title": "The opening", "summary": "How it starts", "startTime": 2.0, "endTime": 14.0, "topicCategory": "Intro", "topicTags": ["start"], "contentType": "CONCEPT" },
        { "title": "The middle", "startTime": 10.0, "endTime": 19.0 }
    ]);
    app.ok(Some(&owner.access_token), "mutation($v: ID!, $m: [KeyMomentInput!]!) { addKeyMoments(videoId: $v, moments: $m) { id } }", json!({ "v": video, "m": moments }))
        .await;
    let data = app
        .ok(Some(&owner.access_token), "mutation($v: ID!) { detectHighlights(videoId: $v) { id score scoreBreakdown keyMoment { title } } }", json!({ "v": video }))
        .await;
    let highlights = data["detectHighlights"]
        .as_array()
        .expect("highlights")
        .clone();
    assert_eq!(highlights.len(), 2);
    for h in &highlights {
        let score = h["score"].as_f64().expect("score");
        assert!((0.0..=1.0).contains(&score));
        assert!(
            h["scoreBreakdown"]
                .as_object()
                .is_some_and(|b| !b.is_empty())
        );
    }
    let opening = highlights
        .iter()
        .find(|h| h["keyMoment"]["title"] == "The opening")
        .expect("opening")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.ok(
        Some(&owner.access_token),
        "mutation($id: ID!) { approveHighlight(id: $id) { status } }",
        json!({ "id": opening }),
    )
    .await;
    let data = app
        .ok(Some(&owner.access_token), "mutation($id: ID!) { trimHighlight(id: $id, trimStart: 3.0, trimEnd: 11.5) { trimStart trimEnd status } }", json!({ "id": opening }))
        .await;
    assert_eq!(data["trimHighlight"]["status"], "APPROVED");

    // Another creator's member may not generate from this video, nor change its consent.
    let rival = app.register("rival@example.com").await;
    app.create_creator(&rival, "Rival Studio").await;
    let body = app
        .gql(
            Some(&rival.access_token),
            "mutation($h: ID!) { generateShort(input: {highlightId: $h, preset: SQUARE}) { id } }",
            json!({ "h": opening }),
        )
        .await;
    assert_eq!(crate::helpers::error_code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            Some(&rival.access_token),
            "mutation($v: ID!) { setVideoConsent(videoId: $v, input: {publicDisplay: false}) { publicDisplay } }",
            json!({ "v": video }),
        )
        .await;
    assert_eq!(crate::helpers::error_code(&body), "FORBIDDEN", "{body}");
    let data = app
        .ok(
            Some(&rival.access_token),
            "query($v: ID!) { video(id: $v) { consent { version } } }",
            json!({ "v": video }),
        )
        .await;
    assert!(
        data["video"]["consent"].is_null(),
        "consent is for members only"
    );

    // Shorts in three aspect ratios.
    let vertical = short(&app, &owner, &opening, "VERTICAL", true).await;
    assert_eq!(vertical["status"], "COMPLETE");
    assert_eq!(vertical["captionsEnabled"], true);
    let probe = probe_url(&app, vertical["url"].as_str().expect("url")).await;
    assert_eq!((probe.width, probe.height), (Some(720), Some(1280)), "9:16");
    let duration = probe.duration_secs.expect("duration");
    assert!(
        (duration - 8.5).abs() <= 0.1,
        "trimmed duration: {duration}"
    );
    assert!(probe.has_audio, "the short keeps the sound");
    for (preset, size) in [("SQUARE", (720, 720)), ("HORIZONTAL", (1280, 720))] {
        let made = short(&app, &owner, &opening, preset, false).await;
        let probe = probe_url(&app, made["url"].as_str().expect("url")).await;
        assert_eq!(
            (probe.width, probe.height),
            (Some(size.0), Some(size.1)),
            "{preset}"
        );
        assert!((probe.duration_secs.expect("duration") - 8.5).abs() <= 0.1);
        assert!(probe.has_audio);
    }

    // A second vertical short after a new trim is a file of its own: the first one keeps its
    // 8.5 s (both shorts stored under one key, the second would replace the first).
    app.ok(
        Some(&owner.access_token),
        "mutation($id: ID!) { trimHighlight(id: $id, trimStart: 4.0, trimEnd: 9.0) { status } }",
        json!({ "id": opening }),
    )
    .await;
    let retrimmed = short(&app, &owner, &opening, "VERTICAL", false).await;
    assert_ne!(retrimmed["url"], vertical["url"]);

    // A list of shorts reads their highlights and jobs in one batch each, not one per short
    // (counted per request: the worker's own statements meanwhile are not).
    let cost = |query: &'static str| {
        let (app, owner, opening) = (&app, &owner, &opening);
        async move {
            let before = app.request_statements();
            let data = app
                .ok(Some(&owner.access_token), query, json!({ "id": opening }))
                .await;
            (app.request_statements() - before, data)
        }
    };
    let (bare, _) = cost("query($id: ID!) { highlight(id: $id) { shorts { id } } }").await;
    let (nested, data) = cost(
        "query($id: ID!) { highlight(id: $id) { shorts { id highlight { id } job { status } } } }",
    )
    .await;
    let shorts = data["highlight"]["shorts"].as_array().expect("shorts");
    assert_eq!(shorts.len(), 4);
    assert!(
        shorts.iter().all(|s| s["job"]["status"] == "DONE"),
        "{data:#}"
    );
    assert!(
        nested - bare <= 2,
        "4 shorts' highlights and jobs cost {} more statements",
        nested - bare
    );
    let probe = probe_url(&app, retrimmed["url"].as_str().expect("url")).await;
    assert!((probe.duration_secs.expect("duration") - 5.0).abs() <= 0.1);
    let data = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { short(id: $id) { url captionsEnabled } }",
            json!({ "id": vertical["id"] }),
        )
        .await;
    assert_eq!(data["short"]["captionsEnabled"], true);
    let probe = probe_url(&app, data["short"]["url"].as_str().expect("url")).await;
    assert!(
        (probe.duration_secs.expect("duration") - 8.5).abs() <= 0.1,
        "the first short's file was replaced: {probe:?}"
    );

    // Shorts are renders: their minutes count against the plan, settled by the real length.
    let usage = "{ renderUsage { minutesConsumed minutesReserved dailyLimit } }";
    let data = app.ok(Some(&owner.access_token), usage, json!({})).await;
    let consumed = data["renderUsage"]["minutesConsumed"]
        .as_f64()
        .expect("consumed");
    assert!(
        (consumed - (3.0 * 8.5 + 5.0) / 60.0).abs() < 0.01,
        "four shorts of 8.5, 8.5, 8.5 and 5 s: {data}"
    );
    assert_eq!(data["renderUsage"]["minutesReserved"], 0.0, "{data}");
    // Past the daily cap, a short is refused and nothing of it is written.
    let daily = data["renderUsage"]["dailyLimit"]
        .as_f64()
        .expect("the free plan has a daily cap");
    let owner_id = uuid::Uuid::parse_str(&owner.user_id).expect("uuid");
    let txn = reelgraph::jobs::queue::begin_write(&app.state.db)
        .await
        .expect("txn");
    reelgraph::billing::reserve(&txn, owner_id, daily - consumed, None, chrono::Utc::now())
        .await
        .map_err(|e| e.public_message())
        .expect("the rest of the day reserved");
    txn.commit().await.expect("commit");
    let shorts = "query($id: ID!) { highlight(id: $id) { shorts { id } } }";
    let before = app
        .ok(Some(&owner.access_token), shorts, json!({ "id": opening }))
        .await;
    let body = app
        .gql(
            Some(&owner.access_token),
            "mutation($h: ID!) { generateShort(input: {highlightId: $h, preset: SQUARE}) { id } }",
            json!({ "h": opening }),
        )
        .await;
    assert_eq!(
        crate::helpers::error_code(&body),
        "QUOTA_EXCEEDED",
        "{body}"
    );
    let after = app
        .ok(Some(&owner.access_token), shorts, json!({ "id": opening }))
        .await;
    assert_eq!(before, after, "no short row was left behind");

    // Sharing: anyone with the token while public display is on; nobody once it is off.
    let token = vertical["shareToken"]
        .as_str()
        .expect("members see the share token")
        .to_owned();
    assert!(token.len() >= 22, "at least 128 random bits");
    let shared = "query($t: String!) { sharedShort(token: $t) { id preset url } }";
    let data = app.ok(None, shared, json!({ "t": token })).await;
    assert_eq!(data["sharedShort"]["id"], vertical["id"]);
    let outsider = app.register("someone@example.com").await;
    let data = app
        .ok(
            Some(&outsider.access_token),
            "query($id: ID!) { short(id: $id) { shareToken } }",
            json!({ "id": vertical["id"] }),
        )
        .await;
    assert!(
        data["short"]["shareToken"].is_null(),
        "only members see share tokens"
    );
    let last = if token.ends_with('A') { "B" } else { "A" };
    let guessed = format!("{}{last}", &token[..token.len() - 1]);
    assert!(app.ok(None, shared, json!({ "t": guessed })).await["sharedShort"].is_null());
    app.ok(
        Some(&owner.access_token),
        "mutation($v: ID!) { setVideoConsent(videoId: $v, input: {publicDisplay: false}) { publicDisplay } }",
        json!({ "v": video }),
    )
    .await;
    assert!(
        app.ok(None, shared, json!({ "t": token })).await["sharedShort"].is_null(),
        "hidden at once"
    );
    app.ok(
        Some(&owner.access_token),
        "mutation($v: ID!) { setVideoConsent(videoId: $v, input: {publicDisplay: true}) { publicDisplay } }",
        json!({ "v": video }),
    )
    .await;
    let data = app.ok(None, shared, json!({ "t": token })).await;
    assert_eq!(data["sharedShort"]["id"], vertical["id"], "shown again");
    // A video held back (QUARANTINED) is not public, and neither are its shorts.
    let set_status = |status: entity::VideoStatus| {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        entity::video::Entity::update_many()
            .col_expr(entity::video::Column::Status, Expr::val(status))
            .filter(entity::video::Column::Id.eq(video.parse::<uuid::Uuid>().expect("id")))
            .exec(&app.state.db)
    };
    set_status(entity::VideoStatus::Quarantined)
        .await
        .expect("held back");
    assert!(
        app.ok(None, shared, json!({ "t": token })).await["sharedShort"].is_null(),
        "a held-back video's shorts are not shared"
    );
    set_status(entity::VideoStatus::Ready).await.expect("ready");

    // The same bytes again: de-duplicated, no upload.
    let again = request_upload(&app, &owner, &creator, &bytes).await;
    assert_eq!(again["deduplicated"], true);
    assert_eq!(again["video"]["id"], video.as_str());
    assert!(again["uploadUrl"].is_null());
}

both_backends!(
    a_source_video_becomes_shorts_that_consent_governs,
    shorts_open_and_close_with_the_creators_cards,
    a_short_renders_what_was_reserved_whatever_changes_meanwhile,
);

/// A video whose picture is one frame over ten seconds of sound (it probes READY) gives no
/// short of sound alone: the short FAILs, saying there is no picture in its range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_without_a_picture_fails_instead_of_being_sound_alone() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("still@example.com").await;
    let token = Some(owner.access_token.as_str());
    let creator = app.create_creator(&owner, "Still Frame").await;
    let dir = tempfile::tempdir().expect("dir");
    let frame = dir.path().join("frame.mp4");
    let path = dir.path().join("still.mp4");
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let ffmpeg = |args: Vec<String>| {
        let tools = tools.clone();
        async move {
            let status = tokio::process::Command::new(&tools.ffmpeg)
                .args(["-v", "error"])
                .args(args)
                .status()
                .await
                .expect("ffmpeg runs");
            assert!(status.success());
        }
    };
    let to_args = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    ffmpeg(to_args(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-frames:v",
        "1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        &frame.display().to_string(),
    ]))
    .await;
    // The frame, with ten seconds of sound beside it (stream copy).
    ffmpeg(to_args(&[
        "-i",
        &frame.display().to_string(),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=10",
        "-c:v",
        "copy",
        "-c:a",
        "aac",
        &path.display().to_string(),
    ]))
    .await;
    let bytes = std::fs::read(&path).expect("video");
    let highlight = approved_highlight_of(&app, &owner, &creator, &bytes, (2.0, 7.0)).await;
    let data = app
        .ok(
            token,
            "mutation($input: GenerateShortInput!) { generateShort(input: $input) { id job { id } } }",
            json!({ "input": { "highlightId": highlight, "preset": "VERTICAL" } }),
        )
        .await;
    let job = data["generateShort"]["job"]["id"].as_str().expect("job");
    assert_eq!(finish(&app, &owner.access_token, job).await, "FAILED");
    let data = app
        .ok(
            token,
            "query($id: ID!) { short(id: $id) { status error } }",
            json!({ "id": data["generateShort"]["id"] }),
        )
        .await;
    assert_eq!(data["short"]["status"], "FAILED", "{data}");
    let error = data["short"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("no picture from 2s to 7s"), "{error}");
}

/// A source whose pixels are not square (720×576 stored, pixel aspect 64:45: 1024×576, 16:9
/// as shown) makes a short of what is shown: as a 1280×720 short it fills the frame whole, its
/// red band along the top included. Read by its stored 5:4 shape it was scaled to 1280×1024
/// and cropped, which cut the band off and squeezed the picture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_of_a_source_with_non_square_pixels_keeps_its_shape() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("anamorphic@example.com").await;
    let creator = app.create_creator(&owner, "Widescreen PAL").await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("pal.mp4");
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let status = tokio::process::Command::new(&tools.ffmpeg)
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg("color=c=blue:s=720x576:r=25:d=6,drawbox=x=0:y=0:w=iw:h=58:color=red:t=fill,setsar=64/45")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-shortest"])
        .arg(&path)
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(status.success());
    let bytes = std::fs::read(&path).expect("source");
    let highlight = approved_highlight_of(&app, &owner, &creator, &bytes, (1.0, 4.0)).await;
    let made = short(&app, &owner, &highlight, "HORIZONTAL", false).await;
    let url = made["url"].as_str().expect("url");
    let probe = probe_url(&app, url).await;
    assert_eq!((probe.width, probe.height), (Some(1280), Some(720)));
    let file = dir.path().join("short.mp4");
    let response = app.client.get(url).send().await.expect("download");
    std::fs::write(&file, response.bytes().await.expect("bytes")).expect("write");
    let [r, _, b] = corner_rgb(&file, 1.0).await;
    assert!(
        r > 180 && b < 80,
        "the top band is in the short: {:?}",
        (r, b)
    );
    // The video is as wide as it shows, and so are its thumbnail and proxy (square pixels:
    // browsers ignore a JPEG's pixel aspect, and the thumbnail was squeezed to 5:4).
    let data = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { highlight(id: $id) { video { width height variants { profile width height } } } }",
            json!({ "id": highlight }),
        )
        .await;
    let video = &data["highlight"]["video"];
    assert_eq!(
        (video["width"].as_i64(), video["height"].as_i64()),
        (Some(1024), Some(576)),
        "{video}"
    );
    for variant in video["variants"].as_array().expect("variants") {
        assert_eq!(
            (variant["width"].as_i64(), variant["height"].as_i64()),
            (Some(1024), Some(576)),
            "{variant}"
        );
    }
}

/// Runs ffmpeg with `args` (quietly) to make a source file at `path`; returns its bytes.
async fn make_source(path: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let tools = ffmpeg::check()
        .await
        .expect("ffmpeg is installed (scripts/test installs it)");
    let status = tokio::process::Command::new(&tools.ffmpeg)
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(status.success(), "{args:?}");
    std::fs::read(path).expect("source")
}

/// Uploads `bytes` as a new video of `creator` and completes the upload: the video's id and
/// its probe job's.
async fn uploaded(
    app: &TestApp,
    owner: &Session,
    creator: &str,
    bytes: &[u8],
) -> (uuid::Uuid, uuid::Uuid) {
    let upload = request_upload(app, owner, creator, bytes).await;
    crate::helpers::put_presigned(app, &upload, bytes).await;
    let data = app
        .ok(
            Some(&owner.access_token),
            "mutation($v: ID!) { completeVideoUpload(videoId: $v) { id } }",
            json!({ "v": upload["video"]["id"] }),
        )
        .await;
    let id = |value: &Value| {
        value
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("an id")
    };
    (
        id(&upload["video"]["id"]),
        id(&data["completeVideoUpload"]["id"]),
    )
}

/// Uploads `bytes` as a new video of `creator` and runs its processing to the end; the row.
async fn processed(
    app: &TestApp,
    owner: &Session,
    creator: &str,
    bytes: &[u8],
) -> entity::video::Model {
    use sea_orm::EntityTrait;
    let (video, job) = uploaded(app, owner, creator, bytes).await;
    assert_eq!(
        finish(app, &owner.access_token, &job.to_string()).await,
        "DONE"
    );
    entity::video::Entity::find_by_id(video)
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("the video")
}

/// A probe that cannot reach object storage (here its upload is a link to itself: every read
/// fails, as in an outage) waits with backoff, its attempts not used up and its video still
/// PROCESSING; once storage answers again it goes on to READY. Three tries a second or two
/// apart failed the video for good during a storage restart of a few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_waits_out_a_storage_outage() {
    use sea_orm::{EntityTrait, QueryFilter, sea_query::Expr};
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("probe-outage@example.com").await;
    let creator = app.create_creator(&owner, "Probe Outage").await;
    let dir = tempfile::tempdir().expect("dir");
    let bytes = make_source(
        &dir.path().join("source.mp4"),
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=160x120:r=10:d=2",
            "-pix_fmt",
            "yuv420p",
        ],
    )
    .await;
    let (video_id, job_id) = uploaded(&app, &owner, &creator, &bytes).await;
    let video = || async {
        entity::video::Entity::find_by_id(video_id)
            .one(&app.state.db)
            .await
            .expect("read")
            .expect("video")
    };
    let reelgraph::storage::Storage::Local(local) = &app.state.storage else {
        panic!("tests run on local storage");
    };
    let path = local.path_of(&video().await.storage_key);
    std::fs::remove_file(&path).expect("removed");
    std::os::unix::fs::symlink(&path, &path).expect("a link to itself");
    let workers =
        tokio::spawn(reelgraph::app::worker_pool(&app.state).run(app.state.shutdown.child_token()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = entity::job::Entity::find_by_id(job_id)
            .one(&app.state.db)
            .await
            .expect("read")
            .expect("job");
        assert_ne!(job.status, entity::JobStatus::Failed, "{job:?}");
        if job.status == entity::JobStatus::Queued && job.attempts == 3 {
            assert_eq!(job.max_attempts, 6, "no attempt used up: {job:?}");
            assert_eq!(video().await.status, entity::VideoStatus::Processing);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Storage answers again; the next attempt is due now.
    std::fs::remove_file(&path).expect("link removed");
    std::fs::write(&path, &bytes).expect("upload back");
    entity::job::Entity::update_many()
        .col_expr(entity::job::Column::RunAt, Expr::val(chrono::Utc::now()))
        .filter(sea_orm::ColumnTrait::eq(&entity::job::Column::Id, job_id))
        .exec(&app.state.db)
        .await
        .expect("due now");
    assert_eq!(
        finish(&app, &owner.access_token, &job_id.to_string()).await,
        "DONE"
    );
    assert_eq!(video().await.status, entity::VideoStatus::Ready);
    workers.abort();
}

/// The sine tone of `secs` seconds, as ffmpeg's second input.
fn tone(secs: u32) -> String {
    format!("sine=frequency=440:sample_rate=48000:d={secs}")
}

/// A WebM recorded in a browser (MediaRecorder writes it live: its container gives no
/// duration) is processed, its length read from its packets; it was refused as "not a video:
/// it has no duration", the usual upload of a web app's recorder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_recording_without_a_duration_is_processed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("media-recorder@example.com").await;
    let creator = app.create_creator(&owner, "Web Recorder").await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("recording.webm");
    let tone = tone(6);
    let bytes = make_source(
        &path,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=25:d=6",
            "-f",
            "lavfi",
            "-i",
            &tone,
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-c:a",
            "libopus",
            "-live",
            "1",
            "-f",
            "webm",
        ],
    )
    .await;
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let probed = ffmpeg::probe(&tools, &path).await.expect("probe");
    assert_eq!(probed.duration_secs, None, "the container says no length");
    let highlight = approved_highlight_of(&app, &owner, &creator, &bytes, (1.0, 5.0)).await;
    let video = {
        use sea_orm::EntityTrait;
        entity::video::Entity::find()
            .one(&app.state.db)
            .await
            .expect("read")
            .expect("the video")
    };
    assert_eq!(video.status, entity::VideoStatus::Ready, "{video:?}");
    let duration = video.duration_secs.expect("duration");
    assert!((duration - 6.0).abs() <= 0.1, "{duration}");
    let made = short(&app, &owner, &highlight, "VERTICAL", false).await;
    assert_eq!(made["status"], "COMPLETE", "{made}");
}

/// A file cut off in its upload (half of a 10 s MP4 whose index comes first: the index
/// still claims 10 s, and so does its timecode track) is READY with the length it holds, about 5 s, not the 10 s it claimed
/// (its shorts were padded to that with a still picture and silence). Whole, a last frame held
/// long (a slideshow: 3 frames, the last shown 20 s) keeps its length, though its proxy comes
/// out shorter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_file_has_the_length_it_holds() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("cut-off@example.com").await;
    let creator = app.create_creator(&owner, "Cut Off").await;
    let dir = tempfile::tempdir().expect("dir");
    let tone = tone(10);
    let mut bytes = make_source(
        &dir.path().join("whole.mp4"),
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=640x360:r=25:d=10",
            "-f",
            "lavfi",
            "-i",
            &tone,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
            // A timecode track (as cameras and editors write): one packet as long as the
            // index claims, whatever the file holds.
            "-timecode",
            "01:00:00:00",
        ],
    )
    .await;
    bytes.truncate(bytes.len() / 2);
    let video = processed(&app, &owner, &creator, &bytes).await;
    assert_eq!(video.status, entity::VideoStatus::Ready, "{video:?}");
    let duration = video.duration_secs.expect("duration");
    assert!((2.0..8.0).contains(&duration), "{duration}");

    let frames = dir.path().join("frames.mp4");
    make_source(
        &frames,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=320x240:r=1:d=3",
            "-c:v",
            "libx264",
            "-g",
            "1",
            "-pix_fmt",
            "yuv420p",
        ],
    )
    .await;
    let bytes = make_source(
        &dir.path().join("held.mp4"),
        &[
            "-i",
            frames.to_str().expect("path"),
            "-c",
            "copy",
            "-bsf:v",
            "setts=duration=if(eq(N\\,2)\\,DURATION*20\\,DURATION)",
        ],
    )
    .await;
    let video = processed(&app, &owner, &creator, &bytes).await;
    let duration = video.duration_secs.expect("duration");
    assert!((duration - 22.0).abs() < 0.5, "{duration}");
}

/// A source in a container without an index (MPEG-TS, as cameras and OBS record, here with
/// one keyframe at its start) is entered before the clip and the clip cut in the graph:
/// entered at the clip's start, nothing decoded until the next keyframe, and the short was
/// black from end to end, yet COMPLETE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_of_a_source_without_an_index_shows_its_picture_from_its_start() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("transport-stream@example.com").await;
    let creator = app.create_creator(&owner, "Camcorder").await;
    let dir = tempfile::tempdir().expect("dir");
    let tone = tone(10);
    let bytes = make_source(
        &dir.path().join("camera.ts"),
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=blue:s=640x360:r=25:d=10",
            "-f",
            "lavfi",
            "-i",
            &tone,
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "1000",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            "-f",
            "mpegts",
        ],
    )
    .await;
    let highlight = approved_highlight_of(&app, &owner, &creator, &bytes, (4.0, 8.0)).await;
    let made = short(&app, &owner, &highlight, "HORIZONTAL", false).await;
    assert_eq!(made["status"], "COMPLETE", "{made}");
    let url = made["url"].as_str().expect("url");
    let probe = probe_url(&app, url).await;
    let duration = probe.duration_secs.expect("duration");
    assert!((duration - 4.0).abs() <= 0.15, "{duration}");
    let file = dir.path().join("short.mp4");
    let response = app.client.get(url).send().await.expect("download");
    std::fs::write(&file, response.bytes().await.expect("bytes")).expect("write");
    for at in [0.1, 3.5] {
        let [r, g, b] = corner_rgb(&file, at).await;
        assert!(
            b > 180 && r < 80 && g < 80,
            "the source's blue at {at} s: {:?}",
            (r, g, b)
        );
    }
}

/// A key moment added before its video was probed can run past the video's end (here 12 s
/// to 35 s of a 20 s video). Its short is cut to the end of the video, and it reserves (and
/// charges) those 8 s, not the 20 s of the whole video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_past_the_videos_end_reserves_only_what_it_cuts() {
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("past-end@example.com").await;
    let creator = app.create_creator(&owner, "Past End").await;
    let dir = tempfile::tempdir().expect("dir");
    let bytes = source_video(dir.path()).await;
    let highlight = approved_highlight_of(&app, &owner, &creator, &bytes, (12.0, 16.0)).await;
    // As addKeyMoments leaves it for a video not yet probed (only the 24 h bound applies).
    let moment = entity::key_moment::Entity::find()
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("the moment");
    let mut moment: entity::key_moment::ActiveModel = moment.into();
    moment.end_time = Set(35.0);
    moment.update(&app.state.db).await.expect("moved");

    let made = short(&app, &owner, &highlight, "SQUARE", false).await;
    assert_eq!(made["status"], "COMPLETE", "{made}");
    let job = short_job(&app).await;
    let reserved = job.input["reservation"]["minutes"]
        .as_f64()
        .expect("minutes");
    assert!((reserved * 60.0 - 8.0).abs() < 1e-6, "{reserved} min");
    let probe = probe_url(&app, made["url"].as_str().expect("url")).await;
    let duration = probe.duration_secs.expect("duration");
    assert!((duration - 8.0).abs() <= 0.15, "{duration}");
}

/// How long each stream of the short at `url` lasts: `(picture, sound)`, as ffprobe reads
/// them; the file is left at `path`.
async fn stream_secs(
    app: &TestApp,
    url: &str,
    path: &std::path::Path,
) -> (Option<f64>, Option<f64>) {
    let response = app.client.get(url).send().await.expect("download");
    std::fs::write(path, response.bytes().await.expect("bytes")).expect("write");
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let out = tokio::process::Command::new(&tools.ffprobe)
        .args(["-v", "error", "-show_entries", "stream=codec_type,duration"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .await
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let of = |kind: &str| {
        text.lines().find_map(|line| {
            let (codec, secs) = line.split_once(',')?;
            (codec == kind).then(|| secs.trim().parse().ok()).flatten()
        })
    };
    (of("video"), of("audio"))
}

/// A source whose sound stops at 3 s while its picture runs for 20 s (a recording whose
/// microphone stopped). A short cut past the sound still has a sound track, silent, as long
/// as its picture; with cards, the clip stops at its own length instead of holding its last
/// frame to the end of the source (and being charged for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_of_a_source_whose_sound_stops_early_keeps_its_length() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.register("mic-off@example.com").await;
    let dir = tempfile::tempdir().expect("dir");
    let bytes = source_video_sounding(dir.path(), Some(3)).await;

    let plain = app.create_creator(&owner, "Plain").await;
    let highlight = approved_highlight_of(&app, &owner, &plain, &bytes, (5.0, 8.0)).await;
    let made = short(&app, &owner, &highlight, "SQUARE", false).await;
    assert_eq!(made["status"], "COMPLETE", "{made}");
    let path = dir.path().join("short.mp4");
    let url = made["url"].as_str().expect("url");
    let (picture, sound) = stream_secs(&app, url, &path).await;
    let (picture, sound) = (picture.expect("picture"), sound.expect("a sound track"));
    assert!((picture - 3.0).abs() <= 0.1, "{picture}");
    assert!((sound - 3.0).abs() <= 0.1, "{sound}");

    let token = Some(owner.access_token.as_str());
    // Across the sound's end, and past it (a creator each: the same upload again would be
    // taken for the first).
    for (range, name) in [((2.0, 5.0), "Carded across"), ((5.0, 8.0), "Carded past")] {
        let data = app
            .ok(
                token,
                "mutation($input: CreateCreatorInput!) { createCreator(input: $input) { id } }",
                json!({ "input": { "name": name, "shortsTemplate": studio_cards() } }),
            )
            .await;
        let carded = data["createCreator"]["id"].as_str().expect("id").to_owned();
        let highlight = approved_highlight_of(&app, &owner, &carded, &bytes, range).await;
        let made = short(&app, &owner, &highlight, "SQUARE", false).await;
        assert_eq!(made["status"], "COMPLETE", "{made}");
        let url = made["url"].as_str().expect("url");
        let (picture, sound) = stream_secs(&app, url, &path).await;
        let (picture, sound) = (picture.expect("picture"), sound.expect("a sound track"));
        // 1 s intro + 3 s clip + 1.5 s outro, which closes it.
        let closing = corner_rgb(&path, 5.2).await;
        assert!(
            near(closing, [0x10, 0x10, 0xE0]),
            "{range:?}: outro {closing:?}"
        );
        assert!(
            (picture - 5.5).abs() <= 0.15,
            "{range:?}: picture {picture}"
        );
        assert!((sound - 5.5).abs() <= 0.15, "{range:?}: sound {sound}");
        let seconds = made["durationSecs"].as_f64().expect("durationSecs");
        assert!((seconds - 5.5).abs() <= 0.15, "{range:?}: {made}");
    }

    // A sound that starts 1.5 s after the picture stays where it is: silence first.
    let late = dir.path().join("late.mp4");
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let status = tokio::process::Command::new(&tools.ffmpeg)
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
        ])
        .args(["-itsoffset", "1.5", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:sample_rate=48000:duration=10"])
        .args(["-map", "0:v", "-map", "1:a", "-t", "12", "-c:v", "libx264"])
        .args(["-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"])
        .arg(&late)
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(status.success());
    let bytes = std::fs::read(&late).expect("late source");
    let creator = app.create_creator(&owner, "Late Sound").await;
    let highlight = approved_highlight_of(&app, &owner, &creator, &bytes, (0.0, 4.0)).await;
    let made = short(&app, &owner, &highlight, "SQUARE", false).await;
    let url = made["url"].as_str().expect("url");
    stream_secs(&app, url, &path).await;
    let before = mean_volume(&path, 0.2, 1.0).await;
    let after = mean_volume(&path, 2.2, 1.0).await;
    assert!(
        before < -60.0 && after > -40.0,
        "silence {before} dB, then sound {after} dB"
    );
}

/// A `render.short` job queued without its clip (as earlier versions queued them) cuts the
/// highlight's range only up to the end of the source it downloads: its cards are not held
/// apart by silence standing in for the missing picture, nor are minutes counted for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_job_without_a_clip_stops_at_the_end_of_its_source() {
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("no-clip@example.com").await;
    let (stop, pool) = run_jobs(&app);
    let (highlight, _dir) = approved_highlight_with_cards(&app, &owner, &studio_cards()).await;
    stop.cancel();
    pool.await.expect("drained");
    // A key moment of 12 s to 35 s of the 20 s source (addKeyMoments allows it before the
    // video is probed).
    let moment = entity::key_moment::Entity::find()
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("the moment");
    let mut moment: entity::key_moment::ActiveModel = moment.into();
    moment.start_time = Set(12.0);
    moment.end_time = Set(35.0);
    moment.update(&app.state.db).await.expect("moved");
    let (short_id, job_id) = queue_square_short(&app, &owner, &highlight).await;
    // The job as an earlier version queued it: no clip.
    let job = short_job(&app).await;
    let mut input = job.input.clone();
    input.as_object_mut().expect("object").remove("clip");
    let mut job: entity::job::ActiveModel = job.into();
    job.input = Set(input);
    job.update(&app.state.db).await.expect("older shape");

    let duration = render_queued_short(&app, &owner, &job_id, &short_id).await;
    assert!(
        (duration - 10.5).abs() <= 0.15,
        "1 s intro + the 8 s left of the source + 1.5 s outro: {duration}"
    );
}

/// A new account (`{name}@example.com`) with a creator and an approved 4–9 s highlight of its
/// one uploaded and probed video (the app's worker runs the probe); the account, the
/// highlight's id and the video's row.
async fn approved_highlight_and_its_video(
    app: &TestApp,
    name: &str,
) -> (Session, String, entity::video::Model) {
    use sea_orm::EntityTrait;
    let owner = app.register(&format!("{name}@example.com")).await;
    let creator = app.create_creator(&owner, name).await;
    let dir = tempfile::tempdir().expect("dir");
    let bytes = source_video(dir.path()).await;
    let highlight = approved_highlight_of(app, &owner, &creator, &bytes, (4.0, 9.0)).await;
    let video = entity::video::Entity::find()
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("the video");
    (owner, highlight, video)
}

/// A short whose source file is gone from storage fails at its first attempt, saying what
/// is missing, instead of retrying as if storage were down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_whose_source_file_is_gone_fails_at_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (owner, highlight, video) = approved_highlight_and_its_video(&app, "gone").await;
    app.state
        .storage
        .delete(&video.storage_key)
        .await
        .expect("removed");
    let (short_id, job_id) = queue_square_short(&app, &owner, &highlight).await;
    assert_eq!(finish(&app, &owner.access_token, &job_id).await, "FAILED");
    let data = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!, $short: ID!) { job(id: $id) { attempts error } short(id: $short) { status error } }",
            json!({ "id": job_id, "short": short_id }),
        )
        .await;
    assert_eq!(data["job"]["attempts"], 1, "{data}");
    let missing = "the source video's file is missing from storage: upload the video again";
    assert_eq!(data["job"]["error"], missing, "{data}");
    assert_eq!(data["short"]["status"], "FAILED", "{data}");
    assert_eq!(data["short"]["error"], missing, "{data}");
}

/// A short whose render failed in a way it retries (here: storage cannot read its source
/// file) is PENDING while its job waits in the queue again, not PROCESSING while nothing
/// renders it; once the attempts are used up (past the grace an outage has) it is FAILED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_waiting_for_another_attempt_is_pending() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (owner, highlight, video) = approved_highlight_and_its_video(&app, "requeued").await;
    // The file becomes a link to itself: every read of it fails (ELOOP), as a storage
    // outage would, rather than finding nothing.
    let reelgraph::storage::Storage::Local(local) = &app.state.storage else {
        panic!("tests run on local storage");
    };
    let path = local.path_of(&video.storage_key);
    std::fs::remove_file(&path).expect("removed");
    std::os::unix::fs::symlink(&path, &path).expect("a link to itself");
    let (short_id, job_id) = queue_square_short(&app, &owner, &highlight).await;
    let short_id: uuid::Uuid = short_id.parse().expect("uuid");
    let job_id: uuid::Uuid = job_id.parse().expect("uuid");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = entity::job::Entity::find_by_id(job_id)
            .one(&app.state.db)
            .await
            .expect("read")
            .expect("job");
        if job.status == entity::JobStatus::Queued && job.attempts == 1 {
            let short = entity::short::Entity::find()
                .filter(entity::short::Column::Id.eq(short_id))
                .one(&app.state.db)
                .await
                .expect("read")
                .expect("short");
            assert_eq!(short.status, entity::ShortStatus::Pending, "{job:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Storage failing does not use up its attempts for a while from its start
    // (`lifecycle::OUTAGE_GRACE`); once that is over, its attempts run out.
    entity::job::Entity::update_many()
        .col_expr(
            entity::job::Column::StartedAt,
            sea_orm::sea_query::Expr::val(
                chrono::Utc::now()
                    - reelgraph::jobs::lifecycle::OUTAGE_GRACE
                    - chrono::Duration::seconds(1),
            ),
        )
        .col_expr(
            entity::job::Column::RunAt,
            sea_orm::sea_query::Expr::val(chrono::Utc::now()),
        )
        .filter(entity::job::Column::Id.eq(job_id))
        .exec(&app.state.db)
        .await
        .expect("started long ago");
    assert_eq!(
        finish(&app, &owner.access_token, &job_id.to_string()).await,
        "FAILED"
    );
    let short = entity::short::Entity::find_by_id(short_id)
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("short");
    assert_eq!(short.status, entity::ShortStatus::Failed);
}
