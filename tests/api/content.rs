//! Transcripts, caption files, key moments and highlights.

use entity::{
    CaptionFormat, CaptionKind, CaptionSource, VideoStatus, caption_track, highlight,
    transcript_segment,
};
use reelgraph::storage::PRESIGN_TTL;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    both_backends,
    helpers::{Backend, Session, TestApp, error_code, error_field, insert_video},
};

const SET_TRANSCRIPT: &str = "mutation($v: ID!, $s: [TranscriptSegmentInput!]!, $l: String) {
    setTranscript(videoId: $v, segments: $s, language: $l) { id } }";
const ADD_MOMENTS: &str = "mutation($v: ID!, $m: [KeyMomentInput!]!) {
    addKeyMoments(videoId: $v, moments: $m) {
        id title summary startTime endTime topicCategory topicTags contentType reviewStatus sortOrder } }";
const DETECT: &str = "mutation($v: ID!) {
    detectHighlights(videoId: $v) { id score scoreBreakdown durationSecs status trimStart trimEnd
        keyMoment { id title } video { id } } }";
const TRIM: &str = "mutation($id: ID!, $s: Float!, $e: Float!) {
    trimHighlight(id: $id, trimStart: $s, trimEnd: $e) { id trimStart trimEnd durationSecs status } }";
const APPROVE: &str = "mutation($id: ID!) { approveHighlight(id: $id) { id status } }";
const REJECT: &str = "mutation($id: ID!) { rejectHighlight(id: $id) { id status } }";
const BREAKDOWN_KEYS: [&str; 10] = [
    "shortFormFit",
    "transcriptDensity",
    "hook",
    "topicTags",
    "position",
    "contentType",
    "summaryQuality",
    "speakerChanges",
    "questionOrExclamation",
    "uniqueness",
];

/// A creator owned by a new account, with one public 10-minute video.
async fn creator_with_video(app: &TestApp, email: &str, name: &str) -> (Session, String, Uuid) {
    let owner = app.register(email).await;
    let creator = app.create_creator(&owner, name).await;
    let video = insert_video(app, &creator, "talk", VideoStatus::Ready, Some(600.0)).await;
    (owner, creator, video)
}

fn segment(start: f64, end: f64, text: &str) -> Value {
    json!({ "startTime": start, "endTime": end, "text": text })
}

fn moment(title: &str, start: f64, end: f64) -> Value {
    json!({ "title": title, "startTime": start, "endTime": end })
}

async fn stored_segments(app: &TestApp, video: Uuid) -> Vec<(f64, f64, String)> {
    transcript_segment::Entity::find()
        .filter(transcript_segment::Column::VideoId.eq(video))
        .order_by_asc(transcript_segment::Column::StartTime)
        .all(&app.state.db)
        .await
        .expect("segments")
        .into_iter()
        .map(|s| (s.start_time, s.end_time, s.text))
        .collect()
}

async fn caption_rows(app: &TestApp, video: Uuid) -> Vec<caption_track::Model> {
    caption_track::Entity::find()
        .filter(caption_track::Column::VideoId.eq(video))
        .order_by_asc(caption_track::Column::Language)
        .order_by_asc(caption_track::Column::Format)
        .all(&app.state.db)
        .await
        .expect("caption tracks")
}

/// Downloads a caption file the way a client does: through a presigned URL.
async fn download(app: &TestApp, key: &str) -> (String, String) {
    let url = app
        .state
        .storage
        .presign_get(key, PRESIGN_TTL)
        .await
        .expect("presigned");
    let response = app.client.get(url).send().await.expect("downloaded");
    assert!(response.status().is_success(), "HTTP {}", response.status());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.text().await.expect("text"), content_type)
}

async fn transcript_validation_names_the_field_and_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, _, video) = creator_with_video(&app, "tv@example.com", "Transcripts").await;
    let token = Some(owner.access_token.as_str());
    let valid = json!([segment(0.0, 2.0, "first"), segment(2.0, 4.0, "second")]);
    app.ok(token, SET_TRANSCRIPT, json!({ "v": video, "s": valid }))
        .await;
    let original = stored_segments(&app, video).await;
    let tracks = caption_rows(&app, video).await;
    let vtt = download(&app, &tracks[1].storage_key).await.0;

    let long_speaker =
        json!([{ "startTime": 0, "endTime": 1, "text": "a", "speaker": "s".repeat(101) }]);
    let cases = [
        (
            json!([segment(0.0, 2.0, "a"), segment(1.0, 3.0, "b")]),
            "segments.1.startTime",
        ),
        (
            json!([segment(5.0, 6.0, "a"), segment(1.0, 2.0, "b")]),
            "segments.1.startTime",
        ),
        (
            json!([segment(0.0, 2.0, "a"), segment(3.0, 3.0, "b")]),
            "segments.1.endTime",
        ),
        (
            json!([segment(0.0, 2.0, "a"), segment(590.0, 601.0, "b")]),
            "segments.1.endTime",
        ),
        (json!([segment(-1.0, 2.0, "a")]), "segments.0.startTime"),
        (json!([segment(0.0, 2.0, "   ")]), "segments.0.text"),
        // Nothing that shows: a zero-width space, a word joiner and a byte-order mark.
        (
            json!([segment(0.0, 2.0, " \u{200B}\u{2060}\u{FEFF} ")]),
            "segments.0.text",
        ),
        (
            json!([segment(0.0, 2.0, &"x".repeat(2001))]),
            "segments.0.text",
        ),
        (long_speaker, "segments.0.speaker"),
    ];
    for (segments, field) in cases {
        let body = app
            .gql(token, SET_TRANSCRIPT, json!({ "v": video, "s": segments }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
        assert_eq!(
            stored_segments(&app, video).await,
            original,
            "nothing written"
        );
    }
    let body = app
        .gql(
            token,
            SET_TRANSCRIPT,
            json!({ "v": video, "s": valid, "l": "../x" }),
        )
        .await;
    assert_eq!(error_field(&body), "language");
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| segment(f64::from(i), f64::from(i) + 0.5, "a"))
        .collect();
    let body = app
        .gql(token, SET_TRANSCRIPT, json!({ "v": video, "s": too_many }))
        .await;
    assert_eq!(error_field(&body), "segments");

    assert_eq!(stored_segments(&app, video).await, original);
    assert_eq!(caption_rows(&app, video).await, tracks);
    assert_eq!(download(&app, &tracks[1].storage_key).await.0, vtt);
}

async fn caption_files_have_the_exact_expected_text(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, creator, video) = creator_with_video(&app, "cf@example.com", "Captions").await;
    let token = Some(owner.access_token.as_str());
    let segments = json!([
        segment(1.5, 4.25, "Welcome back & hello"),
        { "startTime": 62.345, "endTime": 65, "text": "Today: <compression>", "speaker": "Ana" },
    ]);
    let data = app
        .ok(token, SET_TRANSCRIPT, json!({ "v": video, "s": segments }))
        .await;
    assert_eq!(data["setTranscript"]["id"], video.to_string());
    assert_eq!(
        stored_segments(&app, video).await,
        vec![
            (1.5, 4.25, "Welcome back & hello".to_owned()),
            (62.345, 65.0, "Today: <compression>".to_owned()),
        ]
    );

    let tracks = caption_rows(&app, video).await;
    assert_eq!(tracks.len(), 2);
    let (srt, vtt) = (&tracks[0], &tracks[1]);
    assert_eq!(
        (srt.format, vtt.format),
        (CaptionFormat::Srt, CaptionFormat::Vtt)
    );
    for track in &tracks {
        assert_eq!(track.language, "en");
        assert_eq!(track.kind, CaptionKind::Captions);
        assert_eq!(track.source, CaptionSource::Human);
        assert!(track.approved);
        assert_eq!(
            track.reviewed_by.map(|u| u.to_string()),
            Some(owner.user_id.clone())
        );
    }
    let prefix = format!("creators/{creator}/videos/{video}/captions/en.");
    assert!(
        vtt.storage_key.starts_with(&prefix) && vtt.storage_key.ends_with(".vtt"),
        "{}",
        vtt.storage_key
    );
    assert!(
        srt.storage_key.starts_with(&prefix) && srt.storage_key.ends_with(".srt"),
        "{}",
        srt.storage_key
    );
    let (text, content_type) = download(&app, &vtt.storage_key).await;
    assert_eq!(
        text,
        "WEBVTT\n\n\
         00:00:01.500 --> 00:00:04.250\nWelcome back &amp; hello\n\n\
         00:01:02.345 --> 00:01:05.000\n<v Ana>Today: &lt;compression&gt;\n"
    );
    assert!(content_type.starts_with("text/vtt"), "{content_type}");
    let (text, content_type) = download(&app, &srt.storage_key).await;
    assert_eq!(content_type, "application/x-subrip; charset=utf-8");
    assert_eq!(
        text,
        "1\n00:00:01,500 --> 00:00:04,250\nWelcome back & hello\n\n\
         2\n00:01:02,345 --> 00:01:05,000\nAna: Today: <\u{2060}compression>\n",
        "SubRip has no escapes: a word joiner keeps <compression> from reading as a tag"
    );

    // Replacing upserts the same rows, pointed at a new version of the files (never the
    // files the rows named before: those go once the new rows commit).
    app.ok(
        token,
        SET_TRANSCRIPT,
        json!({ "v": video, "s": [segment(0.0, 1.0, "Only line")] }),
    )
    .await;
    let again = caption_rows(&app, video).await;
    assert_eq!(
        again.iter().map(|t| t.id).collect::<Vec<_>>(),
        tracks.iter().map(|t| t.id).collect::<Vec<_>>()
    );
    let (new_srt, new_vtt) = (&again[0], &again[1]);
    assert_ne!(new_vtt.storage_key, vtt.storage_key);
    assert_eq!(
        download(&app, &new_vtt.storage_key).await.0,
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nOnly line\n"
    );
    assert_eq!(
        download(&app, &new_srt.storage_key).await.0,
        "1\n00:00:00,000 --> 00:00:01,000\nOnly line\n"
    );
    for old in [&vtt.storage_key, &srt.storage_key] {
        assert!(
            app.state.storage.head(old).await.expect("head").is_none(),
            "{old} left behind"
        );
    }

    // Another language adds its own tracks (tag canonicalised); an empty transcript in that
    // language clears the transcript and removes those tracks only.
    app.ok(
        token,
        SET_TRANSCRIPT,
        json!({ "v": video, "s": [segment(0.0, 1.0, "Olá")], "l": "pt-br" }),
    )
    .await;
    let languages: Vec<String> = caption_rows(&app, video)
        .await
        .into_iter()
        .map(|t| t.language)
        .collect();
    assert_eq!(languages, ["en", "en", "pt-BR", "pt-BR"]);
    app.ok(
        token,
        SET_TRANSCRIPT,
        json!({ "v": video, "s": [], "l": "pt-BR" }),
    )
    .await;
    assert!(stored_segments(&app, video).await.is_empty());
    let languages: Vec<String> = caption_rows(&app, video)
        .await
        .into_iter()
        .map(|t| t.language)
        .collect();
    assert_eq!(languages, ["en", "en"]);
}

async fn key_moments_are_validated_and_appended(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, _, video) = creator_with_video(&app, "km@example.com", "Moments").await;
    let token = Some(owner.access_token.as_str());
    let first = json!([
        {
            "title": "  Sidechain basics ",
            "summary": "How the kick ducks the bass",
            "startTime": 10,
            "endTime": 40,
            "topicCategory": "Mixing",
            "topicTags": ["sidechain", "Sidechain", "bass"],
            "contentType": "TECHNIQUE"
        },
        moment("Outro", 500.0, 600.0),
    ]);
    let data = app
        .ok(token, ADD_MOMENTS, json!({ "v": video, "m": first }))
        .await;
    let added = data["addKeyMoments"].as_array().expect("moments");
    assert_eq!(added.len(), 2);
    assert_eq!(added[0]["title"], "Sidechain basics");
    assert_eq!(added[0]["topicTags"], json!(["sidechain", "bass"]));
    assert_eq!(added[0]["contentType"], "TECHNIQUE");
    assert_eq!(added[0]["reviewStatus"], "PENDING");
    assert_eq!(added[1]["summary"], Value::Null);
    assert_eq!(added[1]["topicTags"], json!([]));
    assert_eq!(
        (added[0]["sortOrder"].clone(), added[1]["sortOrder"].clone()),
        (json!(0), json!(1))
    );
    let data = app
        .ok(
            token,
            ADD_MOMENTS,
            json!({ "v": video, "m": [moment("Later", 100.0, 130.0)] }),
        )
        .await;
    assert_eq!(data["addKeyMoments"][0]["sortOrder"], 2);

    let tags: Vec<String> = (0..21).map(|i| format!("tag{i}")).collect();
    let cases = [
        (json!([moment("", 0.0, 10.0)]), "moments.0.title"),
        (
            json!([moment(&"t".repeat(201), 0.0, 10.0)]),
            "moments.0.title",
        ),
        (
            json!([
                moment("ok", 0.0, 10.0),
                moment("past the end", 590.0, 601.0)
            ]),
            "moments.1.endTime",
        ),
        (
            json!([moment("backwards", 20.0, 10.0)]),
            "moments.0.endTime",
        ),
        (
            json!([moment("negative", -5.0, 10.0)]),
            "moments.0.startTime",
        ),
        (
            json!([{ "title": "t", "startTime": 0, "endTime": 5, "summary": "s".repeat(2001) }]),
            "moments.0.summary",
        ),
        (
            json!([{ "title": "t", "startTime": 0, "endTime": 5, "topicTags": tags }]),
            "moments.0.topicTags",
        ),
        (
            json!([{ "title": "t", "startTime": 0, "endTime": 5, "topicTags": ["a", "b", "x".repeat(51)] }]),
            "moments.0.topicTags.2",
        ),
        (json!([]), "moments"),
    ];
    for (moments, field) in cases {
        let body = app
            .gql(token, ADD_MOMENTS, json!({ "v": video, "m": moments }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let body = app
        .gql(
            token,
            ADD_MOMENTS,
            json!({ "v": video, "m": [{ "title": "t", "startTime": 0, "endTime": 5, "contentType": "GOSSIP" }] }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let count = entity::key_moment::Entity::find()
        .filter(entity::key_moment::Column::VideoId.eq(video))
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(count, 3, "rejected calls wrote nothing");

    // Before a video is probed its duration is unknown: times are still bounded (a day), or
    // a highlight, and the minutes its short reserves, could be astronomical.
    let creator = app.create_creator(&owner, "Unprobed").await;
    let unprobed = insert_video(&app, &creator, "raw", VideoStatus::Processing, None).await;
    for (path, mutation, vars) in [
        (
            "moments.0.endTime",
            ADD_MOMENTS,
            json!({ "v": unprobed, "m": [moment("forever", 0.0, 1e305)] }),
        ),
        (
            "segments.0.endTime",
            SET_TRANSCRIPT,
            json!({ "v": unprobed, "s": [segment(0.0, 86_400.5, "too late")] }),
        ),
    ] {
        let body = app.gql(token, mutation, vars).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), path, "{body}");
    }
    app.ok(
        token,
        ADD_MOMENTS,
        json!({ "v": unprobed, "m": [moment("late but real", 86_000.0, 86_400.0)] }),
    )
    .await;

    // A video holds at most 1,000 key moments (detectHighlights compares each with each).
    let batch = |from: usize, n: usize| -> Vec<Value> {
        (from..from + n)
            .map(|i| moment(&format!("m{i}"), i as f64, i as f64 + 5.0))
            .collect()
    };
    for (from, n) in [(0, 500), (500, 499)] {
        app.ok(
            token,
            ADD_MOMENTS,
            json!({ "v": unprobed, "m": batch(from, n) }),
        )
        .await;
    }
    let body = app
        .gql(
            token,
            ADD_MOMENTS,
            json!({ "v": unprobed, "m": batch(999, 2) }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "moments", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 1000 key moments (this one has 1000)")),
        "{body}"
    );
}

/// A creator's public video with a scored transcript and key moments, its best highlight
/// detected and approved: `(owner, creator, video, highlight)`.
async fn approved_highlight(
    app: &TestApp,
    email: &str,
    name: &str,
) -> (Session, String, Uuid, String) {
    let (owner, creator, video) = creator_with_video(app, email, name).await;
    let token = Some(owner.access_token.as_str());
    scored_video(app, token, video).await;
    let detected = app.ok(token, DETECT, json!({ "v": video })).await;
    let highlight = detected["detectHighlights"][0]["id"]
        .as_str()
        .expect("highlight id")
        .to_owned();
    app.ok(token, APPROVE, json!({ "id": highlight })).await;
    (owner, creator, video, highlight)
}

/// `generateShort` of `highlight` in `preset` (no captions) as `token`; the new short's id.
async fn generate_short(app: &TestApp, token: &str, highlight: &str, preset: &str) -> String {
    let data = app
        .ok(
            Some(token),
            "mutation($h: ID!, $p: ShortPreset!) { generateShort(input: {highlightId: $h, preset: $p}) { id } }",
            json!({ "h": highlight, "p": preset }),
        )
        .await;
    data["generateShort"]["id"]
        .as_str()
        .expect("short id")
        .to_owned()
}

/// Marks short `id` COMPLETE as the renderer would (no worker runs in these tests), with a
/// share token and a stored file when given.
async fn finish_short(
    app: &TestApp,
    id: &str,
    share_token: Option<&str>,
    object_key: Option<&str>,
) {
    use sea_orm::sea_query::Expr;
    let mut update = entity::short::Entity::update_many()
        .col_expr(
            entity::short::Column::Status,
            Expr::val(entity::ShortStatus::Complete),
        )
        .filter(entity::short::Column::Id.eq(id.parse::<Uuid>().expect("uuid")));
    if let Some(token) = share_token {
        update = update.col_expr(entity::short::Column::ShareToken, Expr::val(token));
    }
    if let Some(key) = object_key {
        update = update.col_expr(entity::short::Column::ObjectKey, Expr::val(key));
    }
    update.exec(&app.state.db).await.expect("short finished");
    // Its job is done too, with the file as its output.
    if let Some(key) = object_key {
        let job = short_job(app, id).await;
        entity::job::Entity::update_many()
            .col_expr(
                entity::job::Column::Status,
                Expr::val(entity::JobStatus::Done),
            )
            .col_expr(entity::job::Column::OutputRef, Expr::val(key))
            .filter(entity::job::Column::Id.eq(job))
            .exec(&app.state.db)
            .await
            .expect("job done");
    }
}

/// The `render.short` job of short `id`.
async fn short_job(app: &TestApp, id: &str) -> Uuid {
    entity::short::Entity::find_by_id(id.parse::<Uuid>().expect("uuid"))
        .one(&app.state.db)
        .await
        .expect("read")
        .and_then(|s| s.job_id)
        .expect("the short has its job")
}

/// A video with a transcript and three key moments of different quality.
async fn scored_video(app: &TestApp, token: Option<&str>, video: Uuid) {
    let segments = json!([
        { "startTime": 10, "endTime": 20, "text": "So why does the bass disappear? Watch this!", "speaker": "Ana" },
        { "startTime": 20, "endTime": 35, "text": "The compressor reacts to the kick and ducks everything else for a moment", "speaker": "Ben" },
        segment(200.0, 230.0, "a long quiet stretch"),
    ]);
    app.ok(token, SET_TRANSCRIPT, json!({ "v": video, "s": segments }))
        .await;
    let moments = json!([
        {
            "title": "Why the bass disappears",
            "summary": "The kick triggers the compressor, which ducks the bass; here is how to hear it and fix it in the mix.",
            "startTime": 10, "endTime": 40,
            "topicCategory": "Mixing", "topicTags": ["compression", "sidechain", "bass"],
            "contentType": "TECHNIQUE"
        },
        moment("Quiet stretch", 200.0, 230.0),
        moment("Rambling outro", 300.0, 590.0),
    ]);
    app.ok(token, ADD_MOMENTS, json!({ "v": video, "m": moments }))
        .await;
}

async fn detect_highlights_is_deterministic_and_rerunnable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, _, video) = creator_with_video(&app, "dh@example.com", "Detect").await;
    let token = Some(owner.access_token.as_str());
    scored_video(&app, token, video).await;

    let first = app.ok(token, DETECT, json!({ "v": video })).await["detectHighlights"].clone();
    let first = first.as_array().expect("highlights").clone();
    assert_eq!(first.len(), 3);
    let mut previous = f64::INFINITY;
    for h in &first {
        let score = h["score"].as_f64().expect("score");
        assert!((0.0..=1.0).contains(&score), "score {score}");
        assert!(score <= previous, "best first");
        previous = score;
        let breakdown = h["scoreBreakdown"].as_object().expect("breakdown");
        let mut keys: Vec<&str> = breakdown.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = BREAKDOWN_KEYS.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        for value in breakdown.values() {
            assert!((0.0..=1.0).contains(&value.as_f64().expect("number")));
        }
        assert_eq!(h["status"], "CANDIDATE");
        assert_eq!(h["video"]["id"], video.to_string());
    }
    assert_eq!(first[0]["keyMoment"]["title"], "Why the bass disappears");
    assert_eq!(first[0]["durationSecs"], 30.0);

    // Curate, then score again: same ids, same scores, no duplicates, curation kept.
    let best = first[0]["id"].as_str().expect("id");
    let second_id = first[1]["id"].as_str().expect("id");
    app.ok(token, APPROVE, json!({ "id": best })).await;
    app.ok(
        token,
        TRIM,
        json!({ "id": second_id, "s": 205.0, "e": 215.0 }),
    )
    .await;
    let again = app.ok(token, DETECT, json!({ "v": video })).await["detectHighlights"].clone();
    let again = again.as_array().expect("highlights").clone();
    let summary = |list: &[Value]| -> Vec<(Value, Value, Value)> {
        list.iter()
            .map(|h| {
                (
                    h["id"].clone(),
                    h["score"].clone(),
                    h["scoreBreakdown"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(summary(&again), summary(&first));
    assert_eq!(again[0]["status"], "APPROVED");
    assert_eq!(again[1]["trimStart"], 205.0);
    assert_eq!(again[1]["durationSecs"], 10.0);
    let stored = highlight::Entity::find()
        .filter(highlight::Column::VideoId.eq(video))
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(stored, 3);

    // The video turns out to end at 400 s, inside the outro (moments added before an upload
    // is probed are not bound by its length): detecting again cuts the untrimmed highlight
    // at the video's end and leaves the trimmed one as it was trimmed.
    use sea_orm::{ActiveModelTrait, Set};
    let found = entity::video::Entity::find_by_id(video)
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("video");
    let mut row: entity::video::ActiveModel = found.into();
    row.duration_secs = Set(Some(400.0));
    row.update(&app.state.db).await.expect("probed length");
    let last = app.ok(token, DETECT, json!({ "v": video })).await["detectHighlights"].clone();
    let length = |title: &str| {
        last.as_array()
            .expect("highlights")
            .iter()
            .find(|h| h["keyMoment"]["title"] == title)
            .map(|h| h["durationSecs"].clone())
    };
    assert_eq!(length("Rambling outro"), Some(json!(100.0)), "{last}");
    assert_eq!(length("Quiet stretch"), Some(json!(10.0)), "{last}");
    assert_eq!(
        length("Why the bass disappears"),
        Some(json!(30.0)),
        "{last}"
    );
}

/// A highlight's length is given to the millionth, without the float noise of its
/// difference (19.99 − 12.0 is 7.989999999999998 in binary floating point).
async fn a_highlights_length_has_no_float_noise(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, _, video) = creator_with_video(&app, "noise@example.com", "Noise").await;
    let token = Some(owner.access_token.as_str());
    app.ok(
        token,
        ADD_MOMENTS,
        json!({ "v": video, "m": [moment("Short one", 12.0, 19.99)] }),
    )
    .await;
    let found = app.ok(token, DETECT, json!({ "v": video })).await;
    assert_eq!(
        found["detectHighlights"][0]["durationSecs"].to_string(),
        "7.99",
        "{found}"
    );
}

async fn highlights_are_approved_rejected_and_trimmed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, _, video) = creator_with_video(&app, "ar@example.com", "Curate").await;
    let token = Some(owner.access_token.as_str());
    app.ok(
        token,
        ADD_MOMENTS,
        json!({ "v": video, "m": [moment("Drop", 10.0, 40.0)] }),
    )
    .await;
    let detected = app.ok(token, DETECT, json!({ "v": video })).await;
    let id = detected["detectHighlights"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let data = app.ok(token, APPROVE, json!({ "id": id })).await;
    assert_eq!(data["approveHighlight"]["status"], "APPROVED");
    let data = app.ok(token, REJECT, json!({ "id": id })).await;
    assert_eq!(data["rejectHighlight"]["status"], "REJECTED");

    let data = app
        .ok(token, TRIM, json!({ "id": id, "s": 12.5, "e": 30.0 }))
        .await;
    assert_eq!(data["trimHighlight"]["trimStart"], 12.5);
    assert_eq!(data["trimHighlight"]["trimEnd"], 30.0);
    assert_eq!(data["trimHighlight"]["durationSecs"], 17.5);
    assert_eq!(data["trimHighlight"]["status"], "REJECTED");
    // The length as the trim says, without float noise (16.0000001 - 13.0000001 is
    // 3.0000000000000018), then back to the trim above.
    let data = app
        .ok(
            token,
            TRIM,
            json!({ "id": id, "s": 13.0000001, "e": 16.0000001 }),
        )
        .await;
    assert_eq!(data["trimHighlight"]["durationSecs"], 3.0, "{data}");
    app.ok(token, TRIM, json!({ "id": id, "s": 12.5, "e": 30.0 }))
        .await;
    for (start, end, field) in [
        (5.0, 30.0, "trimStart"),
        (12.0, 45.0, "trimEnd"),
        (20.0, 22.5, "trimEnd"),
        (30.0, 20.0, "trimEnd"),
    ] {
        let body = app
            .gql(token, TRIM, json!({ "id": id, "s": start, "e": end }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{start}–{end}: {body}");
    }
    let data = app
        .ok(
            token,
            "query($id: ID!) { highlight(id: $id) { trimStart trimEnd durationSecs } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data["highlight"],
        json!({ "trimStart": 12.5, "trimEnd": 30.0, "durationSecs": 17.5 })
    );
    // Exactly the minimum length, at the moment's edges, is fine.
    let data = app
        .ok(token, TRIM, json!({ "id": id, "s": 37.0, "e": 40.0 }))
        .await;
    assert_eq!(data["trimHighlight"]["durationSecs"], 3.0);
    let body = app
        .gql(token, APPROVE, json!({ "id": Uuid::now_v7() }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
}

const PAGE: &str = "query($first: Int, $after: String, $last: Int, $before: String, $v: ID, $c: ID,
        $status: HighlightStatus, $min: Float) {
    highlights(first: $first, after: $after, last: $last, before: $before, videoId: $v, creatorId: $c,
        status: $status, minScore: $min) {
        totalCount
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { cursor node { id score } } } }";

fn page_ids(data: &Value) -> Vec<String> {
    data["highlights"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn highlights_paginate_by_score_with_stable_cursors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, creator, video) = creator_with_video(&app, "pg@example.com", "Pages").await;
    let token = Some(owner.access_token.as_str());
    scored_video(&app, token, video).await;
    // Different lengths give different scores; the two identical moments tie.
    let more = json!([
        moment("Five seconds", 50.0, 55.0),
        moment("Twenty seconds", 60.0, 80.0),
        moment("Two minutes", 100.0, 220.0),
        moment("Twin", 400.0, 420.0),
        moment("Twin", 400.0, 420.0),
    ]);
    app.ok(token, ADD_MOMENTS, json!({ "v": video, "m": more }))
        .await;
    app.ok(token, DETECT, json!({ "v": video })).await;
    // Another creator's highlights must not leak into the filtered lists.
    let (other, other_creator, other_video) =
        creator_with_video(&app, "pg2@example.com", "Other pages").await;
    let other_token = Some(other.access_token.as_str());
    app.ok(
        other_token,
        ADD_MOMENTS,
        json!({ "v": other_video, "m": [moment("Elsewhere", 0.0, 30.0)] }),
    )
    .await;
    app.ok(other_token, DETECT, json!({ "v": other_video }))
        .await;

    let all = app
        .ok(token, PAGE, json!({ "first": 100, "c": creator }))
        .await;
    assert_eq!(all["highlights"]["totalCount"], 8);
    let nodes: Vec<(f64, String)> = all["highlights"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["node"]["score"].as_f64().expect("score"),
                e["node"]["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    assert_eq!(nodes.len(), 8);
    for pair in nodes.windows(2) {
        assert!(
            pair[0].0 > pair[1].0 || (pair[0].0 == pair[1].0 && pair[0].1 < pair[1].1),
            "ordered by score, then id: {pair:?}"
        );
    }
    assert!(
        nodes.windows(2).any(|p| p[0].0 == p[1].0),
        "the twins tie: {nodes:?}"
    );
    let all_ids: Vec<String> = nodes.iter().map(|n| n.1.clone()).collect();

    // Forward, three at a time; re-reading a page with its cursor gives the same page.
    let mut forward = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let vars = json!({ "first": 3, "after": after, "c": creator });
        let page = app.ok(token, PAGE, vars.clone()).await;
        assert_eq!(app.ok(token, PAGE, vars).await, page, "stable cursor");
        assert_eq!(page["highlights"]["totalCount"], 8);
        let info = &page["highlights"]["pageInfo"];
        assert_eq!(info["hasPreviousPage"], after.is_some());
        forward.extend(page_ids(&page));
        if info["hasNextPage"] == false {
            break;
        }
        after = info["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(forward, all_ids);

    // Backward from the end.
    let mut backward: Vec<String> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = app
            .ok(
                token,
                PAGE,
                json!({ "last": 3, "before": before, "c": creator }),
            )
            .await;
        let mut ids = page_ids(&page);
        ids.append(&mut backward);
        backward = ids;
        let info = &page["highlights"]["pageInfo"];
        if info["hasPreviousPage"] == false {
            break;
        }
        before = info["startCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(backward, all_ids);

    // minScore keeps exactly the highlights scoring at least that much.
    let min = nodes[3].0;
    let data = app
        .ok(
            token,
            PAGE,
            json!({ "first": 100, "min": min, "c": creator }),
        )
        .await;
    let expected: Vec<String> = nodes
        .iter()
        .filter(|n| n.0 >= min)
        .map(|n| n.1.clone())
        .collect();
    assert_eq!(page_ids(&data), expected);
    assert_eq!(data["highlights"]["totalCount"], expected.len());

    // status filters, combined with pagination.
    for id in [&all_ids[1], &all_ids[4], &all_ids[6]] {
        app.ok(token, APPROVE, json!({ "id": id })).await;
    }
    let page = app
        .ok(
            token,
            PAGE,
            json!({ "first": 2, "status": "APPROVED", "v": video }),
        )
        .await;
    assert_eq!(page_ids(&page), [all_ids[1].clone(), all_ids[4].clone()]);
    assert_eq!(page["highlights"]["totalCount"], 3);
    let cursor = page["highlights"]["pageInfo"]["endCursor"].clone();
    let page = app
        .ok(
            token,
            PAGE,
            json!({ "first": 2, "after": cursor, "status": "APPROVED", "v": video }),
        )
        .await;
    assert_eq!(page_ids(&page), [all_ids[6].clone()]);
    assert_eq!(page["highlights"]["pageInfo"]["hasNextPage"], false);

    let everything = app.ok(token, PAGE, json!({ "first": 100 })).await;
    assert_eq!(everything["highlights"]["totalCount"], 9);
    let theirs = app
        .ok(token, PAGE, json!({ "first": 100, "c": other_creator }))
        .await;
    assert_eq!(theirs["highlights"]["totalCount"], 1);

    for (vars, field) in [
        (json!({ "after": "bm90IGEgY3Vyc29y" }), "after"),
        (json!({ "min": 1.5 }), "minScore"),
        (json!({ "first": 101 }), "first"),
        (json!({ "first": 1, "last": 1 }), "last"),
        // One direction per page: mixed, one argument used to be lost.
        (
            json!({ "first": 2, "before": "bm90IGEgY3Vyc29y" }),
            "before",
        ),
        (json!({ "last": 2, "after": "bm90IGEgY3Vyc29y" }), "after"),
        (
            json!({ "after": "bm90IGEgY3Vyc29y", "before": "bm90IGEgY3Vyc29y" }),
            "before",
        ),
    ] {
        let body = app.gql(token, PAGE, vars).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
}

async fn only_members_edit_a_videos_content(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, creator, public) = creator_with_video(&app, "ow@example.com", "Owned").await;
    let hidden = insert_video(&app, &creator, "draft", VideoStatus::Processing, Some(60.0)).await;
    let token = Some(owner.access_token.as_str());
    for video in [public, hidden] {
        app.ok(
            token,
            ADD_MOMENTS,
            json!({ "v": video, "m": [moment("Owned moment", 0.0, 30.0)] }),
        )
        .await;
    }
    let public_highlight =
        app.ok(token, DETECT, json!({ "v": public })).await["detectHighlights"][0]["id"].clone();
    let hidden_highlight =
        app.ok(token, DETECT, json!({ "v": hidden })).await["detectHighlights"][0]["id"].clone();

    // A member of another creator.
    let (intruder, _, _) = creator_with_video(&app, "in@example.com", "Intruder").await;
    let theirs = Some(intruder.access_token.as_str());
    let transcript = json!([segment(0.0, 1.0, "mine now")]);
    let moments = json!([moment("Mine now", 0.0, 10.0)]);
    for (video, code) in [(public, "FORBIDDEN"), (hidden, "NOT_FOUND")] {
        for (query, vars) in [
            (SET_TRANSCRIPT, json!({ "v": video, "s": transcript })),
            (ADD_MOMENTS, json!({ "v": video, "m": moments })),
            (DETECT, json!({ "v": video })),
        ] {
            let body = app.gql(theirs, query, vars).await;
            assert_eq!(error_code(&body), code, "{query}: {body}");
        }
    }
    for (highlight, code) in [
        (&public_highlight, "FORBIDDEN"),
        (&hidden_highlight, "NOT_FOUND"),
    ] {
        for (query, vars) in [
            (APPROVE, json!({ "id": highlight })),
            (REJECT, json!({ "id": highlight })),
            (TRIM, json!({ "id": highlight, "s": 0.0, "e": 10.0 })),
        ] {
            let body = app.gql(theirs, query, vars).await;
            assert_eq!(error_code(&body), code, "{query}: {body}");
        }
    }
    let body = app
        .gql(
            None,
            SET_TRANSCRIPT,
            json!({ "v": public, "s": transcript }),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert!(stored_segments(&app, public).await.is_empty());
    let data = app
        .ok(
            token,
            "query($id: ID!) { highlight(id: $id) { status trimStart } }",
            json!({ "id": public_highlight }),
        )
        .await;
    assert_eq!(
        data["highlight"],
        json!({ "status": "CANDIDATE", "trimStart": null })
    );

    // Highlights of a video the caller cannot see are not listed, nor found by id.
    let listed = |data: &Value| page_ids(data);
    let data = app.ok(theirs, PAGE, json!({ "c": creator })).await;
    assert_eq!(listed(&data), [public_highlight.as_str().expect("id")]);
    let data = app.ok(None, PAGE, json!({ "c": creator })).await;
    assert_eq!(data["highlights"]["totalCount"], 1);
    // The same with the video and its creator read in the page's own statement.
    let with_videos = "query { highlights(first: 50) { totalCount
        nodes { id video { id creator { name } } } } }";
    for caller in [theirs, None] {
        let data = app.ok(caller, with_videos, json!({})).await;
        assert_eq!(data["highlights"]["totalCount"], 1);
        let nodes = data["highlights"]["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), 1, "{data}");
        assert_eq!(nodes[0]["id"], public_highlight);
        assert_eq!(nodes[0]["video"]["id"], public.to_string());
        assert!(nodes[0]["video"]["creator"]["name"].is_string());
    }
    let body = app
        .gql(
            None,
            "query($id: ID!) { highlight(id: $id) { id video { id } } }",
            json!({ "id": hidden_highlight }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .gql(
            theirs,
            "query($id: ID!) { highlight(id: $id) { id } }",
            json!({ "id": hidden_highlight }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let data = app.ok(token, PAGE, json!({ "c": creator })).await;
    assert_eq!(data["highlights"]["totalCount"], 2);

    // Administrators manage every creator's content.
    let admin = app.admin("adm@example.com").await;
    app.ok(
        Some(&admin.access_token),
        SET_TRANSCRIPT,
        json!({ "v": hidden, "s": transcript }),
    )
    .await;
    assert_eq!(stored_segments(&app, hidden).await.len(), 1);
}

async fn highlight_pages_cost_a_bounded_number_of_statements(backend: Backend) {
    // No worker pool: its polling would add statements of its own to the count.
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("st@example.com").await;
    let creator = app.create_creator(&owner, "Statements").await;
    let token = Some(owner.access_token.as_str());
    for v in 0..3 {
        let video = insert_video(
            &app,
            &creator,
            &format!("v{v}"),
            VideoStatus::Ready,
            Some(600.0),
        )
        .await;
        let moments: Vec<Value> = (0..10)
            .map(|m| {
                moment(
                    &format!("Moment {v} {m}"),
                    f64::from(m) * 30.0,
                    f64::from(m) * 30.0 + 5.0 + f64::from(m) * 2.0,
                )
            })
            .collect();
        app.ok(token, ADD_MOMENTS, json!({ "v": video, "m": moments }))
            .await;
        app.ok(token, DETECT, json!({ "v": video })).await;
    }
    // The ten best highlights have a finished short each, with its share token.
    let best = app
        .ok(
            token,
            "{ highlights(first: 10) { nodes { id } } }",
            json!({}),
        )
        .await;
    for node in best["highlights"]["nodes"].as_array().expect("nodes") {
        app.ok(
            token,
            "mutation($id: ID!) { approveHighlight(id: $id) { status } }",
            json!({ "id": node["id"] }),
        )
        .await;
        let short = generate_short(
            &app,
            &owner.access_token,
            node["id"].as_str().expect("id"),
            "SQUARE",
        )
        .await;
        finish_short(&app, &short, Some(&format!("share-{short}")), None).await;
    }
    let query = "query($n: Int!) { highlights(first: $n) { totalCount
        nodes { score video { title creator { name } } keyMoment { title startTime }
            shorts { id shareToken } } } }";
    let mut costs = Vec::new();
    for n in [1, 10, 30] {
        let before = app.request_statements();
        let data = app.ok(token, query, json!({ "n": n })).await;
        costs.push(app.request_statements() - before);
        let nodes = data["highlights"]["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), n as usize);
        assert!(nodes.iter().all(|n| n["keyMoment"]["title"].is_string()
            && n["video"]["creator"]["name"] == "Statements"));
        let shared = nodes
            .iter()
            .flat_map(|n| n["shorts"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["shareToken"].is_string())
            .count();
        assert_eq!(shared, n.min(10) as usize, "{data:#}");
    }
    assert!(
        costs.iter().all(|&c| c == costs[0]),
        "statements per request grew with the page: {costs:?}"
    );
    assert!(costs[0] <= 8, "statements per request: {costs:?}");
}

/// `node(id:)` finds a creator, video, highlight, short and job by id alone, through their
/// own query fields' rules: `null` for what the caller may not see and for ids that name
/// nothing, `BAD_USER_INPUT` for an id that is not one.
async fn node_finds_each_kind_by_id_and_hides_what_the_caller_may_not_see(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, creator, video, highlight) =
        approved_highlight(&app, "node@example.com", "Nodes").await;
    let token = Some(owner.access_token.as_str());
    let generated = app
        .ok(
            token,
            "mutation($h: ID!) { generateShort(input: {highlightId: $h, preset: SQUARE}) { id job { id } } }",
            json!({ "h": highlight }),
        )
        .await;
    let short = generated["generateShort"]["id"]
        .as_str()
        .expect("short id")
        .to_owned();
    let job = generated["generateShort"]["job"]["id"]
        .as_str()
        .expect("job id")
        .to_owned();

    let query = "query($id: ID!) { node(id: $id) { __typename id \
        ... on Creator { name } ... on Video { title } ... on Highlight { video { id } } } }";
    let node = |token: Option<&str>, id: &str| {
        let variables = json!({ "id": id });
        let app = &app;
        let token = token.map(str::to_owned);
        async move { app.ok(token.as_deref(), query, variables).await["node"].clone() }
    };
    let video = video.to_string();
    for (id, typename) in [
        (creator.as_str(), "Creator"),
        (video.as_str(), "Video"),
        (highlight.as_str(), "Highlight"),
        (short.as_str(), "Short"),
        (job.as_str(), "Job"),
    ] {
        let found = node(token, id).await;
        assert_eq!(found["__typename"], typename, "{found}");
        assert_eq!(found["id"], id, "{found}");
    }
    assert_eq!(node(token, &creator).await["name"], "Nodes");
    assert_eq!(node(token, &video).await["title"], "talk");
    assert_eq!(node(token, &highlight).await["video"]["id"], video.as_str());

    // Creators and public videos are public; a job is its owner's only.
    let stranger = app.register("stranger@example.com").await;
    let stranger = Some(stranger.access_token.as_str());
    assert_eq!(node(stranger, &video).await["__typename"], "Video");
    assert_eq!(node(stranger, &job).await, Value::Null);
    assert_eq!(node(None, &job).await, Value::Null);
    // A video that is not ready is its members' only, and so are its highlights.
    let draft = insert_video(
        &app,
        &creator,
        "draft",
        VideoStatus::Processing,
        Some(600.0),
    )
    .await;
    assert_eq!(node(None, &draft.to_string()).await, Value::Null);
    assert_eq!(node(stranger, &draft.to_string()).await, Value::Null);
    assert_eq!(node(token, &draft.to_string()).await["title"], "draft");
    scored_video(&app, token, draft).await;
    let detected = app.ok(token, DETECT, json!({ "v": draft })).await;
    let draft_highlight = detected["detectHighlights"][0]["id"]
        .as_str()
        .expect("a highlight of the draft")
        .to_owned();
    assert_eq!(node(None, &draft_highlight).await, Value::Null);
    assert_eq!(node(stranger, &draft_highlight).await, Value::Null);
    assert_eq!(
        node(token, &draft_highlight).await["__typename"],
        "Highlight"
    );
    // An id of nothing is null; text that is not an id is a client error.
    assert_eq!(
        node(token, &uuid::Uuid::now_v7().to_string()).await,
        Value::Null
    );
    let body = app.gql(token, query, json!({ "id": "nope" })).await;
    assert_eq!(
        crate::helpers::error_code(&body),
        "BAD_USER_INPUT",
        "{body}"
    );
}

/// `deleteVideo`: members and administrators only; afterwards the video, its highlights and
/// shorts are in no query, `node` or share link, its files are gone from storage, and a second
/// delete or an edit is `NOT_FOUND`.
async fn deleting_a_video_hides_everything_under_it_and_removes_its_files(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, creator, video, highlight) =
        approved_highlight(&app, "delete@example.com", "Deleted").await;
    let token = Some(owner.access_token.as_str());
    let short = generate_short(&app, &owner.access_token, &highlight, "VERTICAL").await;
    // Not while the short renders: it would be finished, stored and billed for nothing.
    let body = app
        .gql(
            Some(&owner.access_token),
            "mutation($id: ID!) { deleteVideo(id: $id) }",
            json!({ "id": video }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    // The short as the renderer leaves it: finished, with a file and a share link.
    let db = &app.state.db;
    let short_key = format!("shorts/test/{short}.mp4");
    finish_short(
        &app,
        &short,
        Some("a-share-token-of-at-least-sixteen-chars"),
        Some(&short_key),
    )
    .await;
    let row = entity::video::Entity::find_by_id(video)
        .one(db)
        .await
        .expect("read")
        .expect("video");
    let mut keys = vec![row.storage_key.clone(), short_key];
    keys.extend(
        caption_track::Entity::find()
            .filter(caption_track::Column::VideoId.eq(video))
            .all(db)
            .await
            .expect("captions")
            .into_iter()
            .map(|c| c.storage_key),
    );
    assert!(keys.len() >= 3, "the transcript's caption file: {keys:?}");
    for key in &keys {
        if app.state.storage.head(key).await.expect("head").is_none() {
            app.state
                .storage
                .put_bytes(key, b"bytes".to_vec(), "application/octet-stream")
                .await
                .expect("stored");
        }
    }
    let shared = "query($t: String!) { sharedShort(token: $t) { id } }";
    let token_vars = json!({ "t": "a-share-token-of-at-least-sixteen-chars" });
    assert_eq!(
        app.ok(None, shared, token_vars.clone()).await["sharedShort"]["id"],
        short.as_str()
    );

    let delete = "mutation($id: ID!) { deleteVideo(id: $id) }";
    let body = app.gql(None, delete, json!({ "id": video })).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let stranger = app.register("not-a-member@example.com").await;
    let body = app
        .gql(Some(&stranger.access_token), delete, json!({ "id": video }))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let short_job = short_job(&app, &short).await;
    let output = "query($id: ID!) { job(id: $id) { outputUrl } }";
    let before = app.ok(token, output, json!({ "id": short_job })).await;
    assert!(before["job"]["outputUrl"].is_string(), "{before}");
    let data = app.ok(token, delete, json!({ "id": video })).await;
    assert_eq!(data["deleteVideo"], true);
    let after = app.ok(token, output, json!({ "id": short_job })).await;
    assert_eq!(
        after["job"]["outputUrl"],
        json!(null),
        "the short's file is gone"
    );

    for who in [token, None, Some(stranger.access_token.as_str())] {
        let body = app
            .gql(
                who,
                "query($v: ID!, $c: ID!, $s: ID!) {
                    video(id: $v) { id }
                    node(id: $v) { id }
                    videos(creatorId: $c) { totalCount nodes { id } }
                    highlights(videoId: $v) { totalCount }
                    byCreator: highlights(creatorId: $c) { totalCount }
                    short(id: $s) { id } }",
                json!({ "v": video, "c": creator, "s": short }),
            )
            .await;
        // What the caller may not see is NOT_FOUND, as for an id that never existed.
        let mut refused: Vec<(String, String)> = body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| {
                (
                    e["path"][0].as_str().unwrap_or_default().to_owned(),
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        refused.sort();
        assert_eq!(
            refused,
            [
                ("short".to_owned(), "NOT_FOUND".to_owned()),
                ("video".to_owned(), "NOT_FOUND".to_owned())
            ],
            "{body}"
        );
        let data = &body["data"];
        assert!(data["video"].is_null() && data["node"].is_null(), "{data}");
        assert_eq!(data["videos"]["totalCount"], 0, "{data}");
        assert_eq!(data["highlights"]["totalCount"], 0, "{data}");
        assert_eq!(data["byCreator"]["totalCount"], 0, "{data}");
        assert!(data["short"].is_null(), "{data}");
    }
    assert!(app.ok(None, shared, token_vars).await["sharedShort"].is_null());
    for key in &keys {
        assert!(
            app.state.storage.head(key).await.expect("head").is_none(),
            "{key} is still stored"
        );
    }
    let body = app.gql(token, delete, json!({ "id": video })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let body = app
        .gql(
            token,
            "mutation($id: ID!) { updateVideo(id: $id, input: {title: \"Back\"}) { id } }",
            json!({ "id": video }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
}

/// `deleteVideo` and a short being made for the video do not both go through: the short's
/// transaction share-locks the video (held here by the test, as `generateShort` holds it), the
/// deletion waits for it, then finds the new short rendering and is a CONFLICT, the video kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_is_not_deleted_under_a_short_being_made() {
    use sea_orm::{ActiveModelTrait, QuerySelect, Set, TransactionTrait};
    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let (owner, _, video, highlight) =
        approved_highlight(&app, "racing-delete@example.com", "Racing").await;
    let making = app.state.db.begin().await.expect("txn");
    entity::video::Entity::find_by_id(video)
        .lock_shared()
        .one(&making)
        .await
        .expect("locked")
        .expect("video");
    let deleting = app.gql_in_background(
        &owner.access_token,
        "mutation($id: ID!) { deleteVideo(id: $id) }",
        json!({ "id": video }),
    );
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    let now = chrono::Utc::now();
    entity::short::ActiveModel {
        id: Set(Uuid::now_v7()),
        highlight_id: Set(highlight.parse().expect("uuid")),
        preset: Set(entity::ShortPreset::Vertical),
        status: Set(entity::ShortStatus::Pending),
        object_key: Set(None),
        file_size: Set(None),
        duration_secs: Set(None),
        error: Set(None),
        share_token: Set(None),
        captions_enabled: Set(false),
        job_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&making)
    .await
    .expect("short");
    making.commit().await.expect("committed");
    let body = deleting.await.expect("joined");
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    let row = entity::video::Entity::find_by_id(video)
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("video");
    assert!(row.deleted_at.is_none(), "the video is kept");
}

/// `generateShort` and `updateKeyMoment` on one highlight at once both go through: they lock
/// the video before the highlight, in one order. (`generateShort` took the highlight first,
/// then waited for the video that `updateKeyMoment` holds while it waits for the highlight:
/// PostgreSQL broke the deadlock by failing one of them, INTERNAL.) The test holds the key
/// moment so that `updateKeyMoment` stops between the video and the highlight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generating_a_short_while_its_key_moment_changes_does_not_deadlock() {
    use sea_orm::{QuerySelect, TransactionTrait};
    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let (owner, _, _, highlight) =
        approved_highlight(&app, "two-locks@example.com", "Two locks").await;
    let found = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { highlight(id: $id) { keyMoment { id startTime endTime } } }",
            json!({ "id": highlight }),
        )
        .await;
    let moment = &found["highlight"]["keyMoment"];
    let moment_id: Uuid = moment["id"].as_str().expect("id").parse().expect("uuid");
    let holding = app.state.db.begin().await.expect("txn");
    entity::key_moment::Entity::find_by_id(moment_id)
        .lock_exclusive()
        .one(&holding)
        .await
        .expect("locked")
        .expect("moment");
    let updating = app.gql_in_background(
        &owner.access_token,
        "mutation($id: ID!, $m: KeyMomentInput!) { updateKeyMoment(id: $id, moment: $m) { id } }",
        json!({ "id": moment_id, "m": {
            "title": "Retitled",
            "startTime": moment["startTime"],
            "endTime": moment["endTime"],
        } }),
    );
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    let generating = app.gql_in_background(
        &owner.access_token,
        "mutation($h: ID!) { generateShort(input: {highlightId: $h, preset: SQUARE}) { id } }",
        json!({ "h": highlight }),
    );
    crate::helpers::wait_for_lock_waits(&app, 2).await;
    holding.commit().await.expect("released");
    let (updated, generated) = (
        updating.await.expect("joined"),
        generating.await.expect("joined"),
    );
    assert!(updated["errors"].is_null(), "{updated}");
    assert!(generated["errors"].is_null(), "{generated}");
}

/// Deletes `video` as `deleteVideo` does when it looked just before one of the video's shorts
/// was made (it refuses while one renders, so a short queued after its look is the way one is
/// left under a deleted video).
async fn delete_video_under_a_short(app: &TestApp, video: Uuid) {
    let row = entity::video::Entity::find_by_id(video)
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("video");
    let deleted = reelgraph::media::record::delete_video(
        &app.state.db,
        &app.state.storage,
        &app.state.events,
        &row,
    )
    .await
    .expect("deleted");
    assert!(deleted);
}

/// A short queued before its video was deleted fails at once when a worker takes it, saying
/// why, instead of retrying downloads of a file that is gone.
async fn a_short_of_a_deleted_video_fails_without_retrying(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, _, video, highlight) =
        approved_highlight(&app, "gone-source@example.com", "Gone source").await;
    let short = generate_short(&app, &owner.access_token, &highlight, "VERTICAL").await;
    let job = entity::short::Entity::find_by_id(short.parse::<Uuid>().expect("uuid"))
        .one(&app.state.db)
        .await
        .expect("read")
        .and_then(|s| s.job_id)
        .expect("the short's job");
    delete_video_under_a_short(&app, video).await;
    let _workers =
        tokio::spawn(reelgraph::app::worker_pool(&app.state).run(app.state.shutdown.child_token()));
    let ended = crate::jobs::wait_for(
        &app,
        &owner.access_token,
        job,
        std::time::Duration::from_secs(60),
        |job| job["status"] == "FAILED",
    )
    .await;
    assert_eq!(
        ended["error"], "the source video no longer exists",
        "{ended}"
    );
    assert_eq!(ended["attempts"], 1, "{ended}");
}

/// A short's render, a probe or a presigned upload that ends after `deleteVideo` writes a file
/// no deletion will see; the hourly sweep removes it once the video has been deleted for an hour,
/// once, and leaves live videos' files alone.
async fn files_written_after_a_video_was_deleted_are_swept_later(backend: Backend) {
    use reelgraph::media::record::{DELETED_FILES_GRACE, remove_deleted_videos_files};
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, _, video, highlight) =
        approved_highlight(&app, "late-files@example.com", "Late files").await;
    let (_, _, live) = creator_with_video(&app, "live-files@example.com", "Live files").await;
    let short = generate_short(&app, &owner.access_token, &highlight, "SQUARE").await;
    delete_video_under_a_short(&app, video).await;

    // After the deletion: the short's render finishes, the upload's PUT lands.
    let db = &app.state.db;
    let storage = &app.state.storage;
    let short_key = format!("shorts/test/{short}.mp4");
    finish_short(&app, &short, None, Some(&short_key)).await;
    let upload_key = |id: Uuid| async move {
        entity::video::Entity::find_by_id(id)
            .one(db)
            .await
            .expect("read")
            .expect("video")
            .storage_key
    };
    let creator_id = entity::video::Entity::find_by_id(video)
        .one(db)
        .await
        .expect("read")
        .expect("video")
        .creator_id;
    // A probe that was storing renditions writes them with no rows (its results are refused).
    let mut late = vec![short_key, upload_key(video).await];
    late.extend(
        reelgraph::media::PROFILES
            .iter()
            .map(|p| reelgraph::media::keys::variant(creator_id, video, *p)),
    );
    let kept = upload_key(live).await;
    for key in late.iter().chain([&kept]) {
        storage
            .put_bytes(key, b"bytes".to_vec(), "application/octet-stream")
            .await
            .expect("stored");
    }

    // Within the grace, nothing is touched: the job or the upload may still be writing.
    let swept = remove_deleted_videos_files(db, storage, DELETED_FILES_GRACE)
        .await
        .expect("swept");
    assert_eq!(swept, 0);
    for key in &late {
        assert!(storage.head(key).await.expect("head").is_some(), "{key}");
    }
    let deleted_at = chrono::Utc::now() - chrono::Duration::minutes(61);
    entity::video::Entity::update_many()
        .col_expr(
            entity::video::Column::DeletedAt,
            sea_orm::sea_query::Expr::val(deleted_at),
        )
        .filter(entity::video::Column::Id.eq(video))
        .exec(db)
        .await
        .expect("backdated");
    // A file that cannot be removed (here: a folder where the short's file was) leaves the
    // video for the next sweep, at the back of the queue (its `updated_at` moves on).
    let reelgraph::storage::Storage::Local(local) = storage else {
        panic!("the test app stores locally");
    };
    let stuck = local.path_of(&late[0]);
    std::fs::remove_file(&stuck).expect("file removed");
    std::fs::create_dir_all(stuck.join("inside")).expect("folder made");
    let before = entity::video::Entity::find_by_id(video)
        .one(db)
        .await
        .expect("read")
        .expect("video")
        .updated_at;
    let swept = remove_deleted_videos_files(db, storage, DELETED_FILES_GRACE)
        .await
        .expect("swept");
    assert_eq!(swept, 0);
    let row = entity::video::Entity::find_by_id(video)
        .one(db)
        .await
        .expect("read")
        .expect("video");
    assert!(row.files_removed_at.is_none());
    assert!(row.updated_at > before, "moved to the back of the queue");
    std::fs::remove_dir_all(&stuck).expect("folder removed");
    let swept = remove_deleted_videos_files(db, storage, DELETED_FILES_GRACE)
        .await
        .expect("swept");
    assert_eq!(swept, 1);
    for key in &late {
        assert!(
            storage.head(key).await.expect("head").is_none(),
            "{key} is still stored"
        );
    }
    assert!(
        storage.head(&kept).await.expect("head").is_some(),
        "a live video's file went"
    );
    let row = entity::video::Entity::find_by_id(video)
        .one(db)
        .await
        .expect("read")
        .expect("video");
    assert!(row.files_removed_at.is_some());
    let swept = remove_deleted_videos_files(db, storage, DELETED_FILES_GRACE)
        .await
        .expect("swept");
    assert_eq!(swept, 0, "each deleted video is swept once");
}

/// `updateVideo(retentionUntil:)` sets when a video deletes itself (in the future only; shown
/// to members only); the hourly sweep then deletes it as `deleteVideo` would, files included,
/// and leaves videos without one, or with one still ahead, alone.
async fn a_video_past_its_retention_is_deleted(backend: Backend) {
    use reelgraph::media::record::expire_videos;
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, creator, video) =
        creator_with_video(&app, "retention@example.com", "Retention").await;
    let (kept_owner, _, kept) = creator_with_video(&app, "kept@example.com", "Kept").await;
    let token = Some(owner.access_token.as_str());
    let update = "mutation($id: ID!, $at: DateTime) {
        updateVideo(id: $id, input: {retentionUntil: $at}) { retentionUntil } }";
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let body = app
        .gql(token, update, json!({ "id": video, "at": past }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "input.retentionUntil", "{body}");
    let soon = chrono::Utc::now() + chrono::Duration::days(1);
    let data = app
        .ok(
            token,
            update,
            json!({ "id": video, "at": soon.to_rfc3339() }),
        )
        .await;
    assert!(data["updateVideo"]["retentionUntil"].is_string(), "{data}");
    // Pages of creators with their videos read only the columns their fields need: this one
    // is among them.
    for (query, vars) in [
        (
            "query($c: ID!) { creator(id: $c) { videos(first: 5) { nodes { retentionUntil } } } }",
            json!({ "c": creator }),
        ),
        (
            "{ creators(first: 10) { nodes { id videos(first: 5) { nodes { retentionUntil } } } } }",
            json!({}),
        ),
    ] {
        let listed = app.ok(token, query, vars).await;
        let creators = match listed.get("creator") {
            Some(one) => vec![one.clone()],
            None => listed["creators"]["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .filter(|c| c["id"] == creator.as_str())
                .cloned()
                .collect(),
        };
        assert_eq!(
            creators[0]["videos"]["nodes"][0]["retentionUntil"],
            data["updateVideo"]["retentionUntil"],
            "{listed}"
        );
    }
    let stranger = app.register("retention-stranger@example.com").await;
    let query = "query($id: ID!) { video(id: $id) { id retentionUntil } }";
    let seen = app
        .ok(Some(&stranger.access_token), query, json!({ "id": video }))
        .await;
    assert!(
        seen["video"]["retentionUntil"].is_null(),
        "members only: {seen}"
    );

    let db = &app.state.db;
    let storage = &app.state.storage;
    let row = entity::video::Entity::find_by_id(video)
        .one(db)
        .await
        .expect("read")
        .expect("video");
    storage
        .put_bytes(&row.storage_key, b"bytes".to_vec(), "video/mp4")
        .await
        .expect("stored");
    assert_eq!(
        expire_videos(db, storage, &app.state.events)
            .await
            .expect("swept"),
        0,
        "not yet"
    );
    entity::video::Entity::update_many()
        .col_expr(
            entity::video::Column::RetentionUntil,
            sea_orm::sea_query::Expr::val(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(entity::video::Column::Id.eq(video))
        .exec(db)
        .await
        .expect("backdated");
    assert_eq!(
        expire_videos(db, storage, &app.state.events)
            .await
            .expect("swept"),
        1
    );
    let body = app.gql(token, query, json!({ "id": video })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    assert!(
        storage
            .head(&row.storage_key)
            .await
            .expect("head")
            .is_none()
    );
    assert_eq!(
        expire_videos(db, storage, &app.state.events)
            .await
            .expect("swept"),
        0,
        "once"
    );
    let data = app
        .ok(Some(&kept_owner.access_token), query, json!({ "id": kept }))
        .await;
    assert_eq!(data["video"]["id"], kept.to_string());
}

/// The workers delete a video once its `retentionUntil` passes, within
/// `REELGRAPH_RETENTION_SWEEP_SECS` (here 1 s), not at their next hourly upkeep: until then it
/// was still served, to anyone it is public to.
async fn workers_delete_a_video_soon_after_its_retention(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.config.retention_sweep_secs = 1).await;
    let (owner, _, video) = creator_with_video(&app, "soon@example.com", "Soon").await;
    let update = "mutation($id: ID!, $at: DateTime) {
        updateVideo(id: $id, input: {retentionUntil: $at}) { retentionUntil } }";
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    app.ok(
        Some(&owner.access_token),
        update,
        json!({ "id": video, "at": at.to_rfc3339() }),
    )
    .await;
    let query = "query($id: ID!) { video(id: $id) { id } }";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let body = app.gql(None, query, json!({ "id": video })).await;
        if body["errors"].is_array() {
            assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still served 30 s after its retention: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(chrono::Utc::now() >= at, "deleted before its retention");
}

/// `updateVideo` renames a video and sets or clears its link elsewhere; bad values name their
/// field and change nothing; only members and administrators may.
async fn update_video_edits_title_and_link(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, _, video) = creator_with_video(&app, "edit@example.com", "Editors").await;
    let token = Some(owner.access_token.as_str());
    let update = "mutation($id: ID!, $input: UpdateVideoInput!) {
        updateVideo(id: $id, input: $input) { id title youtubeUrl } }";
    let data = app
        .ok(
            token,
            update,
            json!({ "id": video, "input": { "title": "  Mixing, part 2 ", "youtubeUrl": "https://youtu.be/abc" } }),
        )
        .await;
    assert_eq!(data["updateVideo"]["title"], "Mixing, part 2");
    assert_eq!(data["updateVideo"]["youtubeUrl"], "https://youtu.be/abc");
    // Omitted stays; null clears.
    let data = app
        .ok(
            token,
            update,
            json!({ "id": video, "input": { "youtubeUrl": null } }),
        )
        .await;
    assert_eq!(data["updateVideo"]["title"], "Mixing, part 2");
    assert!(data["updateVideo"]["youtubeUrl"].is_null());

    for (input, field) in [
        (json!({ "title": "   " }), "input.title"),
        (json!({ "title": "\u{200B}" }), "input.title"),
        (json!({ "title": "x".repeat(201) }), "input.title"),
        (json!({ "title": "a\u{7}b" }), "input.title"),
        (
            json!({ "title": "fine", "youtubeUrl": "javascript:alert(1)" }),
            "input.youtubeUrl",
        ),
    ] {
        let body = app
            .gql(token, update, json!({ "id": video, "input": input }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let stranger = app.register("meddler@example.com").await;
    let body = app
        .gql(
            Some(&stranger.access_token),
            update,
            json!({ "id": video, "input": { "title": "Mine now" } }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            None,
            update,
            json!({ "id": video, "input": { "title": "Mine now" } }),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let data = app
        .ok(
            None,
            "query($id: ID!) { video(id: $id) { title youtubeUrl } }",
            json!({ "id": video }),
        )
        .await;
    assert_eq!(data["video"]["title"], "Mixing, part 2", "{data}");
    assert!(data["video"]["youtubeUrl"].is_null(), "{data}");
}

const UPDATE_MOMENT: &str = "mutation($id: ID!, $m: KeyMomentInput!) {
    updateKeyMoment(id: $id, moment: $m) { id title startTime endTime topicTags reviewStatus } }";
const HIGHLIGHT_RANGE: &str = "query($id: ID!) { highlight(id: $id) {
    durationSecs trimStart trimEnd keyMoment { id title startTime endTime } } }";

/// `updateKeyMoment` replaces a moment's fields; its highlight keeps a trim that still fits,
/// loses one that does not, and an untrimmed one takes the new length. Bad input names its
/// field and changes nothing; a stranger is FORBIDDEN.
async fn key_moments_are_edited_and_their_highlight_follows(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, _, _, highlight) =
        approved_highlight(&app, "edit-moment@example.com", "Edits").await;
    let token = Some(owner.access_token.as_str());
    let data = app
        .ok(token, HIGHLIGHT_RANGE, json!({ "id": highlight }))
        .await;
    let moment = data["highlight"]["keyMoment"].clone();
    let id = moment["id"].as_str().expect("id").to_owned();
    let start = moment["startTime"].as_f64().expect("start");
    app.ok(
        token,
        TRIM,
        json!({ "id": highlight, "s": start + 1.0, "e": start + 5.0 }),
    )
    .await;
    let edit = |title: &str, from: f64, to: f64| json!({ "id": id, "m": { "title": title, "startTime": from, "endTime": to, "topicTags": ["mix", "Mix"] } });

    // Still holds the trim: the trim stays.
    let data = app
        .ok(token, UPDATE_MOMENT, edit("Renamed", start, start + 8.0))
        .await;
    assert_eq!(data["updateKeyMoment"]["title"], "Renamed");
    assert_eq!(data["updateKeyMoment"]["topicTags"], json!(["mix"]));
    assert_eq!(data["updateKeyMoment"]["reviewStatus"], "PENDING");
    let data = app
        .ok(token, HIGHLIGHT_RANGE, json!({ "id": highlight }))
        .await;
    assert_eq!(data["highlight"]["trimStart"], json!(start + 1.0), "{data}");
    assert_eq!(data["highlight"]["durationSecs"], json!(4.0), "{data}");

    // Moved past it: the trim goes, the highlight is the new range.
    app.ok(
        token,
        UPDATE_MOMENT,
        edit("Moved", start + 2.0, start + 12.0),
    )
    .await;
    let data = app
        .ok(token, HIGHLIGHT_RANGE, json!({ "id": highlight }))
        .await;
    assert!(data["highlight"]["trimStart"].is_null(), "{data}");
    assert_eq!(data["highlight"]["durationSecs"], json!(10.0), "{data}");
    assert_eq!(data["highlight"]["keyMoment"]["title"], "Moved");

    for (vars, field) in [
        (
            edit("Backwards", start + 5.0, start + 1.0),
            "moment.endTime",
        ),
        (edit(" ", start, start + 3.0), "moment.title"),
        (
            json!({ "id": "nope", "m": { "title": "x", "startTime": 0, "endTime": 1 } }),
            "id",
        ),
    ] {
        let body = app.gql(token, UPDATE_MOMENT, vars).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let stranger = app.register("not-an-editor@example.com").await;
    let body = app
        .gql(
            Some(&stranger.access_token),
            UPDATE_MOMENT,
            edit("Hijacked", start, start + 3.0),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let data = app
        .ok(token, HIGHLIGHT_RANGE, json!({ "id": highlight }))
        .await;
    assert_eq!(
        data["highlight"]["keyMoment"]["title"], "Moved",
        "nothing changed"
    );
}

/// A cancelled short is FAILED; `retryJob` renders it again, and from then on it is PENDING
/// (its error gone), so `deleteShort` refuses it as it refuses any short still rendering.
async fn a_retried_short_is_pending_again(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, _, _, highlight) =
        approved_highlight(&app, "retry-short@example.com", "Retries").await;
    let token = Some(owner.access_token.as_str());
    let data = app
        .ok(
            token,
            "mutation($h: ID!) { generateShort(input: {highlightId: $h, preset: SQUARE}) { id job { id } } }",
            json!({ "h": highlight }),
        )
        .await;
    let short = data["generateShort"]["id"].clone();
    let job = data["generateShort"]["job"]["id"].clone();
    let state = "query($id: ID!) { short(id: $id) { status error } }";
    app.ok(
        token,
        "mutation($id: ID!) { cancelJob(id: $id) { status } }",
        json!({ "id": job }),
    )
    .await;
    let data = app.ok(token, state, json!({ "id": short })).await;
    assert_eq!(data["short"]["status"], "FAILED", "{data}");
    let data = app
        .ok(
            token,
            "mutation($id: ID!) { retryJob(id: $id) { status } }",
            json!({ "id": job }),
        )
        .await;
    assert_eq!(data["retryJob"]["status"], "QUEUED");
    let data = app.ok(token, state, json!({ "id": short })).await;
    assert_eq!(
        data["short"],
        json!({ "status": "PENDING", "error": null }),
        "{data}"
    );
    let body = app
        .gql(
            token,
            "mutation($id: ID!) { deleteShort(id: $id) }",
            json!({ "id": short }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
}

/// `deleteKeyMoment` takes its highlight and shorts with it, files included, but not while a
/// short is rendering; `deleteShort` removes one finished short and its file.
async fn key_moments_and_shorts_are_deleted_with_their_files(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, _, _, highlight) =
        approved_highlight(&app, "delete-moment@example.com", "Deletions").await;
    let token = Some(owner.access_token.as_str());
    let moment = app
        .ok(token, HIGHLIGHT_RANGE, json!({ "id": highlight }))
        .await["highlight"]["keyMoment"]["id"]
        .clone();
    let storage = &app.state.storage;
    let mut shorts = Vec::new();
    for preset in ["VERTICAL", "SQUARE"] {
        let short = generate_short(&app, &owner.access_token, &highlight, preset).await;
        let key = format!("shorts/test/{short}.mp4");
        shorts.push((short, key));
    }
    let delete_short = "mutation($id: ID!) { deleteShort(id: $id) }";
    let delete_moment = "mutation($id: ID!) { deleteKeyMoment(id: $id) }";
    // Both still PENDING: neither the short nor the moment may go.
    let body = app
        .gql(token, delete_short, json!({ "id": shorts[0].0 }))
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    let body = app.gql(token, delete_moment, json!({ "id": moment })).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");

    for (short, key) in &shorts {
        finish_short(&app, short, Some(&format!("share-{short}")), Some(key)).await;
        storage
            .put_bytes(key, b"mp4".to_vec(), "video/mp4")
            .await
            .expect("stored");
    }
    let stranger = app.register("not-an-owner@example.com").await;
    let body = app
        .gql(
            Some(&stranger.access_token),
            delete_short,
            json!({ "id": shorts[0].0 }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    // Signed out, sign-in is asked for first, whether the short is seen (as every mutation
    // answers): not NOT_FOUND for one and UNAUTHENTICATED for another.
    for id in [
        shorts[0].0.clone(),
        shorts[1].0.clone(),
        uuid::Uuid::now_v7().to_string(),
    ] {
        let body = app.gql(None, delete_short, json!({ "id": id })).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    }
    // A short's job links its file while the short is there, and no longer once it is gone.
    let mut jobs = Vec::new();
    for (short, _) in &shorts {
        jobs.push(short_job(&app, short).await.to_string());
    }
    let app_ref = &app;
    let output_url = |job: String| async move {
        app_ref
            .ok(
                token,
                "query($id: ID!) { job(id: $id) { outputUrl } }",
                json!({ "id": job }),
            )
            .await["job"]["outputUrl"]
            .clone()
    };
    assert!(output_url(jobs[0].clone()).await.is_string());
    let data = app
        .ok(token, delete_short, json!({ "id": shorts[0].0 }))
        .await;
    assert_eq!(data["deleteShort"], true);
    assert!(storage.head(&shorts[0].1).await.expect("head").is_none());
    assert_eq!(output_url(jobs[0].clone()).await, json!(null));
    assert!(output_url(jobs[1].clone()).await.is_string());
    let body = app
        .gql(
            token,
            "query($id: ID!) { short(id: $id) { id } }",
            json!({ "id": shorts[0].0 }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    assert!(storage.head(&shorts[1].1).await.expect("head").is_some());

    let data = app.ok(token, delete_moment, json!({ "id": moment })).await;
    assert_eq!(data["deleteKeyMoment"], true);
    assert!(
        storage.head(&shorts[1].1).await.expect("head").is_none(),
        "the other short's file went with the moment"
    );
    assert_eq!(output_url(jobs[1].clone()).await, json!(null));
    let body = app
        .gql(
            token,
            "query($id: ID!) { highlight(id: $id) { id } }",
            json!({ "id": highlight }),
        )
        .await;
    assert!(body["data"]["highlight"].is_null(), "{body}");
    let body = app
        .gql(
            None,
            "query($t: String!) { sharedShort(token: $t) { id } }",
            json!({ "t": format!("share-{}", shorts[1].0) }),
        )
        .await;
    assert!(body["data"]["sharedShort"].is_null(), "{body}");
    let body = app.gql(token, delete_moment, json!({ "id": moment })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
}

/// A file whose row is gone but whose delete storage failed (a deleted short, a key moment's
/// shorts, replaced caption files) is kept to be deleted, and the workers' upkeep deletes it
/// once storage answers: it stayed in the bucket for good. Here a transcript replaced while
/// storage cannot delete its old caption file.
async fn a_file_storage_failed_to_delete_is_deleted_later(backend: Backend) {
    use reelgraph::storage::deferred;
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, _, video) = creator_with_video(&app, "deferred@example.com", "Deferred").await;
    let token = Some(owner.access_token.as_str());
    let (db, storage) = (&app.state.db, &app.state.storage);
    let set = |text: &str| json!({ "v": video, "s": [segment(1.0, 2.0, text)] });
    app.ok(token, SET_TRANSCRIPT, set("first")).await;
    let old = caption_rows(&app, video).await[0].storage_key.clone();
    let reelgraph::storage::Storage::Local(local) = storage else {
        panic!("the test app stores locally");
    };
    // Storage cannot delete it now: a folder stands where the file was.
    let path = local.path_of(&old);
    std::fs::remove_file(&path).expect("file removed");
    std::fs::create_dir_all(path.join("inside")).expect("folder made");
    app.ok(token, SET_TRANSCRIPT, set("second")).await;
    assert!(
        caption_rows(&app, video)
            .await
            .iter()
            .all(|t| t.storage_key != old),
        "the new version is named"
    );
    let kept = || entity::storage_deletion::Entity::find().all(db);
    let rows = kept().await.expect("read");
    assert_eq!(
        rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        [old.as_str()],
        "kept to be deleted"
    );
    // Kept once, however often its delete fails.
    deferred::delete_or_defer(db, storage, &old, "a caption file").await;
    assert_eq!(kept().await.expect("read").len(), 1);
    assert_eq!(
        deferred::retry(db, storage).await.expect("retried"),
        0,
        "still failing"
    );
    assert_eq!(kept().await.expect("read").len(), 1);
    // Storage answers again (the file is back where it was, as an outage leaves it).
    std::fs::remove_dir_all(&path).expect("folder removed");
    storage
        .put_bytes(&old, b"WEBVTT".to_vec(), "text/vtt")
        .await
        .expect("stored");
    assert_eq!(deferred::retry(db, storage).await.expect("retried"), 1);
    assert!(storage.head(&old).await.expect("head").is_none(), "deleted");
    assert!(kept().await.expect("read").is_empty());
}

/// A field that cannot be empty may be left out of an update, keeping its value, but `null`
/// there is refused with its path (it was read as "left out": the mutation answered as if the
/// value had been cleared), in variables and in the query text alike, and changes nothing.
async fn null_is_refused_where_a_field_cannot_be_cleared(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, creator, video) = creator_with_video(&app, "nulls@example.com", "Nulls").await;
    let token = Some(owner.access_token.as_str());
    let admin = app.admin("nulls-admin@example.com").await;
    let cases = [
        (
            token,
            "mutation($id: ID!, $input: UpdateVideoInput!) { updateVideo(id: $id, input: $input) { id } }",
            json!({ "id": video, "input": { "title": null } }),
            "input.title",
        ),
        (
            token,
            "mutation($id: ID!, $input: UpdateCreatorInput!) { updateCreator(id: $id, input: $input) { id } }",
            json!({ "id": creator, "input": { "bio": "kept?", "name": null } }),
            "input.name",
        ),
        (
            token,
            "mutation($id: ID!, $input: UpdateCreatorInput!) { updateCreator(id: $id, input: $input) { id } }",
            json!({ "id": creator, "input": { "slug": null } }),
            "input.slug",
        ),
        (
            token,
            "mutation($id: ID!, $input: UpdateCreatorInput!) { updateCreator(id: $id, input: $input) { id } }",
            json!({ "id": creator, "input": { "genres": null } }),
            "input.genres",
        ),
        (
            token,
            "mutation($id: ID!, $input: UpdateCreatorInput!) { updateCreator(id: $id, input: $input) { id } }",
            json!({ "id": creator, "input": { "socialLinks": null } }),
            "input.socialLinks",
        ),
        (
            Some(admin.access_token.as_str()),
            "mutation($id: ID!, $input: UpdateCreatorInput!) { updateCreator(id: $id, input: $input) { id } }",
            json!({ "id": creator, "input": { "featured": null } }),
            "input.featured",
        ),
        (
            token,
            "mutation($input: UpdateMeInput!) { updateMe(input: $input) { id } }",
            json!({ "input": { "displayName": "kept?", "onboardingCompleted": null } }),
            "input.onboardingCompleted",
        ),
        (
            token,
            "mutation($input: UpdateMeInput!) { updateMe(input: $input) { id } }",
            json!({ "input": { "notificationPreferences": null } }),
            "input.notificationPreferences",
        ),
        (
            token,
            "mutation($input: UpdateMeInput!) { updateMe(input: $input) { id } }",
            json!({ "input": { "notificationPreferences": { "digestEnabled": true, "digestFrequency": null } } }),
            "input.notificationPreferences.digestFrequency",
        ),
        (
            Some(admin.access_token.as_str()),
            "mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { id } }",
            json!({ "id": owner.user_id, "input": { "isActive": null } }),
            "input.isActive",
        ),
        (
            Some(admin.access_token.as_str()),
            "mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { id } }",
            json!({ "id": owner.user_id, "input": { "role": null } }),
            "input.role",
        ),
        (
            token,
            "mutation($v: ID!, $input: VideoConsentInput!) { setVideoConsent(videoId: $v, input: $input) { version } }",
            json!({ "v": video, "input": { "kbInclusion": true, "publicDisplay": null } }),
            "input.publicDisplay",
        ),
    ];
    for (token, query, variables, field) in cases {
        let body = app.gql(token, query, variables).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{field}: {body}");
        assert_eq!(error_field(&body), field, "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot be null")),
            "{body}"
        );
    }
    // A literal null in the query text is refused as well.
    let body = app
        .gql(
            token,
            &format!(
                "mutation {{ updateVideo(id: \"{video}\", input: {{title: null}}) {{ id }} }}"
            ),
            json!({}),
        )
        .await;
    assert_eq!(error_field(&body), "input.title", "{body}");

    // Nothing was written by any of them.
    let data = app
        .ok(
            token,
            "query($v: ID!, $c: ID!) { video(id: $v) { title consent { kbInclusion publicDisplay version } }
                creator(id: $c) { name slug bio featured }
                me { displayName onboardingCompleted isActive role notificationPreferences { digestEnabled } } }",
            json!({ "v": video, "c": creator }),
        )
        .await;
    assert_eq!(data["video"]["title"], "talk", "{data}");
    assert_eq!(data["video"]["consent"]["kbInclusion"], false, "{data}");
    assert_eq!(data["video"]["consent"]["version"], 0, "{data}");
    assert!(data["creator"]["bio"].is_null(), "{data}");
    assert_eq!(data["creator"]["name"], "Nulls", "{data}");
    assert_eq!(data["creator"]["featured"], false, "{data}");
    assert_ne!(data["me"]["displayName"], "kept?", "{data}");
    assert_eq!(data["me"]["isActive"], true, "{data}");

    // A variable the request leaves out is a field not given (async-graphql read it as
    // `null`: the title was refused, and a link would have been cleared).
    app.ok(
        token,
        "mutation($id: ID!) { updateVideo(id: $id, input: {youtubeUrl: \"https://youtu.be/kept\"}) { id } }",
        json!({ "id": video }),
    )
    .await;
    let body = app
        .gql(
            token,
            "mutation($id: ID!, $title: String, $url: String) {
                updateVideo(id: $id, input: {title: $title, youtubeUrl: $url}) { title youtubeUrl } }",
            json!({ "id": video }),
        )
        .await;
    assert_eq!(
        body["data"]["updateVideo"],
        json!({ "title": "talk", "youtubeUrl": "https://youtu.be/kept" }),
        "{body}"
    );
    let data = app
        .ok(
            token,
            "mutation($c: ID!, $bio: String, $links: JSON) {
                updateCreator(id: $c, input: {bio: \"Plays bass\"}) { id }
                again: updateCreator(id: $c, input: {bio: $bio, socialLinks: $links}) { bio } }",
            json!({ "c": creator }),
        )
        .await;
    assert_eq!(data["again"]["bio"], "Plays bass", "{data}");

    // What may be emptied is emptied with an empty value.
    let data = app
        .ok(
            token,
            "mutation($id: ID!, $input: UpdateCreatorInput!) { updateCreator(id: $id, input: $input) { genres socialLinks } }",
            json!({ "id": creator, "input": { "genres": ["jazz"], "socialLinks": { "youtube": "https://youtube.com/@nulls" } } }),
        )
        .await;
    assert_eq!(data["updateCreator"]["genres"], json!(["jazz"]), "{data}");
    let data = app
        .ok(
            token,
            "mutation($id: ID!, $input: UpdateCreatorInput!) { updateCreator(id: $id, input: $input) { genres socialLinks } }",
            json!({ "id": creator, "input": { "genres": [], "socialLinks": {} } }),
        )
        .await;
    assert_eq!(data["updateCreator"]["genres"], json!([]), "{data}");
    assert_eq!(data["updateCreator"]["socialLinks"], json!({}), "{data}");
}

/// `reviewKeyMoment` sets a key moment's review status (members only: a stranger sees the
/// public video but may not review, FORBIDDEN); a REJECTED moment gets no highlight candidate
/// from `detectHighlights`, and back to PENDING it does again.
async fn reviewed_key_moments_steer_highlight_detection(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, _, video) = creator_with_video(&app, "review@example.com", "Reviews").await;
    let token = Some(owner.access_token.as_str());
    scored_video(&app, token, video).await;
    let data = app
        .ok(
            token,
            "query($v: ID!) { video(id: $v) { keyMoments { id title reviewStatus } } }",
            json!({ "v": video }),
        )
        .await;
    let moments = data["video"]["keyMoments"]
        .as_array()
        .expect("moments")
        .clone();
    assert!(
        moments.iter().all(|m| m["reviewStatus"] == "PENDING"),
        "{data}"
    );
    let quiet = moments
        .iter()
        .find(|m| m["title"] == "Quiet stretch")
        .expect("the quiet stretch")["id"]
        .clone();
    let review = "mutation($id: ID!, $s: ReviewStatus!) { reviewKeyMoment(id: $id, status: $s) { id reviewStatus } }";
    let stranger = app.register("not-the-editor@example.com").await;
    let body = app
        .gql(
            Some(&stranger.access_token),
            review,
            json!({ "id": quiet, "s": "REJECTED" }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            token,
            review,
            json!({ "id": uuid::Uuid::now_v7(), "s": "REJECTED" }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let data = app
        .ok(token, review, json!({ "id": quiet, "s": "REJECTED" }))
        .await;
    assert_eq!(data["reviewKeyMoment"]["reviewStatus"], "REJECTED");

    let titles = |data: &Value| -> Vec<String> {
        let mut titles: Vec<String> = data["detectHighlights"]
            .as_array()
            .expect("highlights")
            .iter()
            .map(|h| {
                h["keyMoment"]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        titles.sort();
        titles
    };
    let detected = app.ok(token, DETECT, json!({ "v": video })).await;
    assert_eq!(
        titles(&detected),
        ["Rambling outro", "Why the bass disappears"],
        "{detected}"
    );
    app.ok(token, review, json!({ "id": quiet, "s": "PENDING" }))
        .await;
    let detected = app.ok(token, DETECT, json!({ "v": video })).await;
    assert_eq!(titles(&detected).len(), 3, "{detected}");

    // Rejecting a moment rejects its candidate highlight with it; a highlight approved on
    // its own stays approved.
    let highlight_of = |title: &str| {
        detected["detectHighlights"]
            .as_array()
            .expect("highlights")
            .iter()
            .find(|h| h["keyMoment"]["title"] == title)
            .expect("highlight")
            .clone()
    };
    let (bass, outro) = (
        highlight_of("Why the bass disappears"),
        highlight_of("Rambling outro"),
    );
    app.ok(
        token,
        "mutation($id: ID!) { approveHighlight(id: $id) { status } }",
        json!({ "id": bass["id"] }),
    )
    .await;
    for highlight in [&bass, &outro] {
        app.ok(
            token,
            review,
            json!({ "id": highlight["keyMoment"]["id"], "s": "REJECTED" }),
        )
        .await;
    }
    let status = |id: Value| {
        let app = &app;
        async move {
            app.ok(
                token,
                "query($id: ID!) { highlight(id: $id) { status } }",
                json!({ "id": id }),
            )
            .await["highlight"]["status"]
                .clone()
        }
    };
    assert_eq!(status(outro["id"].clone()).await, "REJECTED");
    assert_eq!(status(bass["id"].clone()).await, "APPROVED");
    let candidates = app
        .ok(
            token,
            "query($v: ID!) { highlights(videoId: $v, status: CANDIDATE) { totalCount } }",
            json!({ "v": video }),
        )
        .await;
    assert_eq!(candidates["highlights"]["totalCount"], 1, "{candidates}");
}

/// `generateShort` with an idempotency key: a retry while the render is unfinished returns
/// the first short (one short, one job, one reservation), the same key with another preset is
/// a `CONFLICT`, and once the render has ended the key makes a new short.
async fn a_retried_short_request_returns_its_first_short(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, _, _, highlight) =
        approved_highlight(&app, "retry-short@example.com", "Retrying").await;
    let token = Some(owner.access_token.as_str());
    let generate =
        "mutation($input: GenerateShortInput!) { generateShort(input: $input) { id job { id } } }";
    let input = |preset: &str, key: &str| json!({ "input": { "highlightId": highlight, "preset": preset, "idempotencyKey": key } });
    let counts = "{ renderUsage { minutesReserved } jobs(kind: RENDER) { totalCount } }";
    let first = app.ok(token, generate, input("SQUARE", "short-1")).await;
    let before = app.ok(token, counts, json!({})).await;
    assert_eq!(before["jobs"]["totalCount"], 1, "{before}");
    let again = app.ok(token, generate, input("SQUARE", "short-1")).await;
    assert_eq!(again, first);
    assert_eq!(app.ok(token, counts, json!({})).await, before);

    // Also after the highlight was rejected: the first request went through.
    app.ok(token, REJECT, json!({ "id": highlight })).await;
    assert_eq!(
        app.ok(token, generate, input("SQUARE", "short-1")).await,
        first
    );
    app.ok(token, APPROVE, json!({ "id": highlight })).await;

    let body = app.gql(token, generate, input("VERTICAL", "short-1")).await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    assert_eq!(error_field(&body), "input.idempotencyKey", "{body}");
    for key in ["", &"k".repeat(256)] {
        let body = app.gql(token, generate, input("SQUARE", key)).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), "input.idempotencyKey", "{body}");
    }
    assert_eq!(app.ok(token, counts, json!({})).await, before);

    let short = first["generateShort"]["id"].as_str().expect("id");
    finish_short(&app, short, None, Some("shorts/test/retry.mp4")).await;
    let later = app.ok(token, generate, input("SQUARE", "short-1")).await;
    assert_ne!(later["generateShort"]["id"], first["generateShort"]["id"]);
}

/// A member removed from a creator's team keeps seeing the render jobs they started, but gets
/// no more of the creator's media from them (`outputUrl` is null) and may not run them again.
async fn a_removed_member_gets_no_more_outputs_of_the_creators_jobs(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, creator, _, highlight) =
        approved_highlight(&app, "team-owner@example.com", "Former Team").await;
    let member = app.register("former-member@example.com").await;
    app.ok(
        Some(&owner.access_token),
        "mutation($c: ID!) { addCreatorMember(creatorId: $c, email: \"former-member@example.com\") { role } }",
        json!({ "c": creator }),
    )
    .await;
    let token = Some(member.access_token.as_str());
    let done = generate_short(&app, &member.access_token, &highlight, "SQUARE").await;
    finish_short(&app, &done, None, Some("shorts/test/former.mp4")).await;
    let done_job = short_job(&app, &done).await;
    let failed = generate_short(&app, &member.access_token, &highlight, "VERTICAL").await;
    let failed_job = short_job(&app, &failed).await;
    {
        use sea_orm::sea_query::Expr;
        entity::job::Entity::update_many()
            .col_expr(
                entity::job::Column::Status,
                Expr::val(entity::JobStatus::Failed),
            )
            .filter(entity::job::Column::Id.eq(failed_job))
            .exec(&app.state.db)
            .await
            .expect("failed");
    }
    let output = "query($id: ID!) { job(id: $id) { status outputUrl } }";
    let data = app.ok(token, output, json!({ "id": done_job })).await;
    assert!(data["job"]["outputUrl"].is_string(), "{data}");

    app.ok(
        Some(&owner.access_token),
        "mutation($c: ID!, $u: ID!) { removeCreatorMember(creatorId: $c, userId: $u) }",
        json!({ "c": creator, "u": member.user_id }),
    )
    .await;
    let data = app.ok(token, output, json!({ "id": done_job })).await;
    assert_eq!(data["job"]["status"], "DONE", "{data}");
    assert!(data["job"]["outputUrl"].is_null(), "{data}");
    let retry = "mutation($id: ID!) { retryJob(id: $id) { status } }";
    let body = app.gql(token, retry, json!({ "id": failed_job })).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    // The team's owner still has both.
    let data = app
        .ok(Some(&owner.access_token), output, json!({ "id": done_job }))
        .await;
    assert!(data["job"]["outputUrl"].is_string(), "{data}");
}

/// A short lasts at least a second: one of a key moment a few frames long, or of one the
/// video's end cuts down to less, is a CONFLICT naming the highlight, and nothing is queued
/// or reserved for it; a two-second moment still makes a short.
async fn a_short_of_a_blink_is_refused(backend: Backend) {
    use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("blink@example.com").await;
    let creator = app.create_creator(&owner, "Blink").await;
    // Not probed yet: a moment may then run past the end the probe finds (600 s).
    let video = insert_video(&app, &creator, "talk", VideoStatus::Ready, None).await;
    let token = Some(owner.access_token.as_str());
    let moments = json!([
        moment("A blink", 10.0, 10.05),
        moment("At the end", 599.5, 700.0),
        moment("Two seconds", 20.0, 22.0),
    ]);
    app.ok(token, ADD_MOMENTS, json!({ "v": video, "m": moments }))
        .await;
    let probed = entity::video::ActiveModel {
        id: Set(video),
        duration_secs: Set(Some(600.0)),
        ..Default::default()
    };
    probed.update(&app.state.db).await.expect("probed");
    let detected = app.ok(token, DETECT, json!({ "v": video })).await;
    let highlights = detected["detectHighlights"].as_array().expect("list");
    assert_eq!(highlights.len(), 3, "{detected}");
    let mut made = 0;
    for highlight in highlights {
        let id = highlight["id"].as_str().expect("id");
        if highlight["keyMoment"]["title"] == "Two seconds" {
            // Shorter than a trim may leave, yet a short: accepted as before.
            app.ok(token, APPROVE, json!({ "id": id })).await;
            generate_short(&app, &owner.access_token, id, "SQUARE").await;
            made += 1;
            continue;
        }
        app.ok(token, APPROVE, json!({ "id": id })).await;
        let body = app
            .gql(
                token,
                "mutation($h: ID!) { generateShort(input: {highlightId: $h, preset: SQUARE}) { id } }",
                json!({ "h": id }),
            )
            .await;
        assert_eq!(error_code(&body), "CONFLICT", "{body}");
        assert_eq!(error_field(&body), "input.highlightId", "{body}");
    }
    let jobs = entity::job::Entity::find()
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(jobs, made, "one job, for the two-second short");
}

both_backends!(
    a_highlights_length_has_no_float_noise,
    a_short_of_a_blink_is_refused,
    a_removed_member_gets_no_more_outputs_of_the_creators_jobs,
    a_retried_short_request_returns_its_first_short,
    transcript_validation_names_the_field_and_writes_nothing,
    caption_files_have_the_exact_expected_text,
    key_moments_are_validated_and_appended,
    detect_highlights_is_deterministic_and_rerunnable,
    highlights_are_approved_rejected_and_trimmed,
    highlights_paginate_by_score_with_stable_cursors,
    only_members_edit_a_videos_content,
    highlight_pages_cost_a_bounded_number_of_statements,
    node_finds_each_kind_by_id_and_hides_what_the_caller_may_not_see,
    deleting_a_video_hides_everything_under_it_and_removes_its_files,
    files_written_after_a_video_was_deleted_are_swept_later,
    a_short_of_a_deleted_video_fails_without_retrying,
    key_moments_are_edited_and_their_highlight_follows,
    key_moments_and_shorts_are_deleted_with_their_files,
    a_retried_short_is_pending_again,
    a_video_past_its_retention_is_deleted,
    workers_delete_a_video_soon_after_its_retention,
    update_video_edits_title_and_link,
    null_is_refused_where_a_field_cannot_be_cleared,
    a_file_storage_failed_to_delete_is_deleted_later,
    reviewed_key_moments_steer_highlight_detection,
);

/// Times past the end of a video whose probe finishes meanwhile: `addKeyMoments` checked them
/// against an unknown duration, waits for the probe's write, and checks again under the lock.
/// A moment added before the probe (kept) cannot be trimmed past the video's end, nor made
/// into a short that would start after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_past_the_end_of_a_video_probed_meanwhile_are_refused() {
    use sea_orm::{TransactionTrait, sea_query::Expr};

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let owner = app.register("probed-late@example.com").await;
    let creator = app.create_creator(&owner, "Probed Late").await;
    let video = insert_video(&app, &creator, "late", VideoStatus::Ready, None).await;
    let token = owner.access_token.clone();
    let probed = |duration: Option<f64>| {
        entity::video::Entity::update_many()
            .col_expr(entity::video::Column::DurationSecs, Expr::val(duration))
            .filter(entity::video::Column::Id.eq(video))
    };

    let hold = app.state.db.begin().await.expect("txn");
    probed(Some(30.0)).exec(&hold).await.expect("probe written");
    let late = json!({ "v": video, "m": [moment("Past the end", 100.0, 160.0)] });
    let add = app.gql_in_background(&token, ADD_MOMENTS, late.clone());
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    hold.commit().await.expect("commit");
    let body = add.await.expect("joined");
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "moments.0.endTime", "{body}");

    // Added while the duration was unknown, then probed.
    probed(None).exec(&app.state.db).await.expect("unprobed");
    let token = Some(token.as_str());
    app.ok(token, ADD_MOMENTS, late).await;
    probed(Some(30.0))
        .exec(&app.state.db)
        .await
        .expect("probed");
    let detected = app.ok(token, DETECT, json!({ "v": video })).await;
    let highlight = detected["detectHighlights"][0]["id"].clone();
    app.ok(token, APPROVE, json!({ "id": highlight })).await;
    let body = app
        .gql(
            token,
            TRIM,
            json!({ "id": highlight, "s": 120.0, "e": 130.0 }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "trimStart", "{body}");
    let body = app
        .gql(
            token,
            "mutation($h: ID!) { generateShort(input: {highlightId: $h, preset: SQUARE}) { id } }",
            json!({ "h": highlight }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    assert_eq!(error_field(&body), "input.highlightId", "{body}");
    // The way out it names is one that works: a trim cannot leave the key moment.
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("updateKeyMoment"), "{message}");
    let left = app
        .ok(token, "{ jobs(kind: RENDER) { totalCount } }", json!({}))
        .await;
    assert_eq!(left["jobs"]["totalCount"], 0, "{left}");
}

/// `detectHighlights` and `deleteKeyMoment` overlap: the deletion (written, not committed)
/// holds a moment that detection reads. Detection waits for it and scores the moments that
/// remain; it used to score the deleted one too and fail INTERNAL on its foreign key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highlights_detected_while_a_moment_is_deleted_leave_it_out() {
    use sea_orm::TransactionTrait;

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let (owner, _, video) = creator_with_video(&app, "detect-race@example.com", "Racing").await;
    let token = owner.access_token.clone();
    scored_video(&app, Some(&token), video).await;
    let moments = entity::key_moment::Entity::find()
        .filter(entity::key_moment::Column::VideoId.eq(video))
        .all(&app.state.db)
        .await
        .expect("moments");
    assert_eq!(moments.len(), 3);
    let hold = app.state.db.begin().await.expect("txn");
    entity::key_moment::Entity::delete_by_id(moments[0].id)
        .exec(&hold)
        .await
        .expect("deleted");
    let detect = app.gql_in_background(&token, DETECT, json!({ "v": video }));
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    hold.commit().await.expect("commit");
    let body = detect.await.expect("joined");
    assert!(body.get("errors").is_none(), "{body:#}");
    let found = body["data"]["detectHighlights"]
        .as_array()
        .expect("highlights");
    assert_eq!(found.len(), 2, "{body:#}");
    assert!(
        found
            .iter()
            .all(|h| h["keyMoment"]["id"] != moments[0].id.to_string()),
        "{body:#}"
    );
}

/// `approveHighlight` overlapping the deletion of the highlight's key moment (committed while
/// the approval waits on the row) is NOT_FOUND, not INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_highlight_deleted_meanwhile_is_not_found() {
    use sea_orm::TransactionTrait;

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let (owner, _, video) = creator_with_video(&app, "approve-race@example.com", "Racing").await;
    let token = owner.access_token.clone();
    scored_video(&app, Some(&token), video).await;
    let detected = app.ok(Some(&token), DETECT, json!({ "v": video })).await;
    let highlight = detected["detectHighlights"][0].clone();
    let moment: Uuid = highlight["keyMoment"]["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let hold = app.state.db.begin().await.expect("txn");
    entity::key_moment::Entity::delete_by_id(moment)
        .exec(&hold)
        .await
        .expect("deleted");
    let approve = app.gql_in_background(
        &token,
        "mutation($id: ID!) { approveHighlight(id: $id) { status } }",
        json!({ "id": highlight["id"] }),
    );
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    hold.commit().await.expect("commit");
    let body = approve.await.expect("joined");
    assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
}

/// A mutation that makes two shorts of one highlight, each answer listing the highlight's
/// shorts: the second list has both (the first short's list, read in the same request, is
/// not served again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorts_list_read_after_a_new_short_in_the_same_request_has_it() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let (owner, _, _, highlight) =
        approved_highlight(&app, "two-shorts@example.com", "Twice").await;
    let data = app
        .ok(
            Some(&owner.access_token),
            "mutation($h: ID!) {
              a: generateShort(input: {highlightId: $h, preset: SQUARE}) { id highlight { shorts { id } } }
              b: generateShort(input: {highlightId: $h, preset: VERTICAL}) { id highlight { shorts { id } } } }",
            json!({ "h": highlight }),
        )
        .await;
    assert_eq!(
        data["a"]["highlight"]["shorts"].as_array().map(Vec::len),
        Some(1),
        "{data:#}"
    );
    let second: Vec<&Value> = data["b"]["highlight"]["shorts"]
        .as_array()
        .expect("shorts")
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(second, [&data["a"]["id"], &data["b"]["id"]], "{data:#}");
}

/// `deleteShort` removes the short and unlinks its job's output together: when the second
/// write fails (a trigger refuses it here, as a lost connection would), the short, its file
/// and its link all stay, and deleting again later works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_deletion_that_fails_halfway_keeps_the_short() {
    use sea_orm::ConnectionTrait;

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let (owner, _, _, highlight) =
        approved_highlight(&app, "half-delete@example.com", "Halfway").await;
    let token = Some(owner.access_token.as_str());
    let short = generate_short(&app, &owner.access_token, &highlight, "SQUARE").await;
    let key = format!("shorts/test/{short}.mp4");
    finish_short(&app, &short, None, Some(&key)).await;
    app.state
        .storage
        .put_bytes(&key, b"mp4".to_vec(), "video/mp4")
        .await
        .expect("stored");
    app.state
        .db
        .execute_unprepared(
            "CREATE FUNCTION refuse_output_change() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
             CREATE TRIGGER refuse_output_change BEFORE UPDATE OF output_ref ON jobs \
             FOR EACH ROW EXECUTE FUNCTION refuse_output_change();",
        )
        .await
        .expect("trigger");
    let delete = "mutation($id: ID!) { deleteShort(id: $id) }";
    let body = app.gql(token, delete, json!({ "id": short })).await;
    assert_eq!(error_code(&body), "INTERNAL", "{body}");
    let data = app
        .ok(
            token,
            "query($id: ID!) { short(id: $id) { status job { outputUrl } } }",
            json!({ "id": short }),
        )
        .await;
    assert_eq!(data["short"]["status"], "COMPLETE", "{data}");
    assert!(data["short"]["job"]["outputUrl"].is_string(), "{data}");
    assert!(app.state.storage.head(&key).await.expect("head").is_some());

    app.state
        .db
        .execute_unprepared("DROP TRIGGER refuse_output_change ON jobs")
        .await
        .expect("dropped");
    let data = app.ok(token, delete, json!({ "id": short })).await;
    assert_eq!(data["deleteShort"], true);
    assert!(app.state.storage.head(&key).await.expect("head").is_none());
}

/// `generateShort` and `rejectHighlight` race: the short's checks pass before the rejection
/// commits. It reads the highlight again in its transaction, waits for the rejection, and
/// refuses; no short, job or reservation is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_of_a_highlight_rejected_meanwhile_is_refused() {
    use sea_orm::{TransactionTrait, sea_query::Expr};

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let (owner, _, _, id) = approved_highlight(&app, "race-short@example.com", "Racing").await;
    let token = Some(owner.access_token.as_str());

    // The rejection: written, not yet committed.
    let txn = app.state.db.begin().await.expect("txn");
    highlight::Entity::update_many()
        .col_expr(
            highlight::Column::Status,
            Expr::val(entity::HighlightStatus::Rejected),
        )
        .filter(highlight::Column::Id.eq(id.parse::<Uuid>().expect("uuid")))
        .exec(&txn)
        .await
        .expect("rejected");
    let generate = app.gql_in_background(
        &owner.access_token,
        "mutation($h: ID!) { generateShort(input: {highlightId: $h, preset: SQUARE}) { id } }",
        json!({ "h": id }),
    );
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    txn.commit().await.expect("commit");

    let answer = generate.await.expect("joined");
    assert_eq!(error_code(&answer), "CONFLICT", "{answer}");
    assert_eq!(error_field(&answer), "input.highlightId", "{answer}");
    let left = app
        .ok(
            token,
            "{ renderUsage { minutesReserved } jobs(kind: RENDER) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(left["renderUsage"]["minutesReserved"], 0.0, "{left}");
    assert_eq!(left["jobs"]["totalCount"], 0, "{left}");
    let shorts = entity::short::Entity::find()
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(shorts, 0);
}

/// A short asked for with captions reports `captionsEnabled` as what its renderer did: a clip
/// without transcript lines gets none burned in, and says so once COMPLETE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captions_enabled_says_whether_captions_were_burned() {
    use reelgraph::jobs::{lifecycle, queue};
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let (owner, _, _, highlight) =
        approved_highlight(&app, "captions@example.com", "Captioned").await;
    let token = Some(owner.access_token.as_str());
    let mut shorts = Vec::new();
    for burned in [true, false] {
        let generated = app
            .ok(
                token,
                "mutation($h: ID!) { generateShort(input: {highlightId: $h, preset: VERTICAL, captions: true}) { id captionsEnabled } }",
                json!({ "h": highlight }),
            )
            .await;
        assert_eq!(
            generated["generateShort"]["captionsEnabled"], true,
            "asked for"
        );
        let id = generated["generateShort"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let claimed = queue::claim(&app.state.db, "test", 1, std::time::Duration::from_secs(30))
            .await
            .map_err(|e| e.public_message())
            .expect("claimed");
        let lease = queue::Lease::of(&claimed[0]).expect("lease");
        // What the renderer reports (see shorts::render): burned or not.
        let done = lifecycle::Finish::Done {
            output: json!({ "short_id": id, "duration_secs": 8.0, "size_bytes": 1000,
                "captions_burned": burned }),
            output_ref: Some(format!("shorts/test/{id}.mp4")),
        };
        assert!(
            lifecycle::finish(&app.state.db, &app.state.events, lease, done, Some("test"))
                .await
                .map_err(|e| e.public_message())
                .expect("finished")
        );
        shorts.push((id, burned));
    }
    for (id, burned) in shorts {
        let data = app
            .ok(
                token,
                "query($id: ID!) { short(id: $id) { status captionsEnabled } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(data["short"]["status"], "COMPLETE", "{data}");
        assert_eq!(data["short"]["captionsEnabled"], burned, "{data}");
    }
}

/// A share link imported from an earlier platform (an 11-character `token_urlsafe(8)` token)
/// opens its short like a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_short_share_tokens_still_open_their_short() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let (owner, _, _, highlight) = approved_highlight(&app, "import@example.com", "Imported").await;
    let short = generate_short(&app, &owner.access_token, &highlight, "SQUARE").await;
    finish_short(&app, &short, Some("Xk3_9aQ-2bZ"), None).await;
    let shared = "query($t: String!) { sharedShort(token: $t) { id } }";
    let data = app.ok(None, shared, json!({ "t": "Xk3_9aQ-2bZ" })).await;
    assert_eq!(data["sharedShort"]["id"], short.as_str(), "{data}");
    let data = app.ok(None, shared, json!({ "t": "Xk3_9aQ" })).await;
    assert!(data["sharedShort"].is_null(), "{data}");
}

/// A short that is not COMPLETE (pending, failed) is the creator's business: its members see
/// it, through `highlight.shorts` and `short(id:)`; anyone else sees only finished shorts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_shorts_are_for_the_creators_members() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let (owner, _, video, highlight) =
        approved_highlight(&app, "unfinished@example.com", "Drafts").await;
    let token = Some(owner.access_token.as_str());
    let generated = app
        .ok(
            token,
            "mutation($h: ID!) { generateShort(input: {highlightId: $h, preset: SQUARE}) { id status } }",
            json!({ "h": highlight }),
        )
        .await;
    assert_eq!(generated["generateShort"]["status"], "PENDING");
    let short = generated["generateShort"]["id"].as_str().expect("id");

    let listed =
        "query($v: ID!) { video(id: $v) { highlights { id shorts { id status error } } } }";
    // (highlights seen, shorts seen): everyone sees the video's three highlights.
    let count = |data: &Value| {
        let highlights = data["video"]["highlights"].as_array().expect("highlights");
        let shorts = highlights
            .iter()
            .map(|h| h["shorts"].as_array().expect("shorts").len())
            .sum::<usize>();
        (highlights.len(), shorts)
    };
    let stranger = app.register("passer-by@example.com").await;
    let everyone = [
        (token, 1),
        (None, 0),
        (Some(stranger.access_token.as_str()), 0),
    ];
    for (who, expected) in everyone {
        let data = app.ok(who, listed, json!({ "v": video })).await;
        assert_eq!(count(&data), (3, expected), "{data}");
    }
    let one = "query($id: ID!) { short(id: $id) { status } }";
    let data = app.ok(token, one, json!({ "id": short })).await;
    assert_eq!(data["short"]["status"], "PENDING");
    let body = app.gql(None, one, json!({ "id": short })).await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");

    // Once it is finished, everyone sees it.
    finish_short(&app, short, None, None).await;
    for (who, _) in everyone {
        let data = app.ok(who, listed, json!({ "v": video })).await;
        assert_eq!(count(&data), (3, 1), "{data}");
        let data = app.ok(who, one, json!({ "id": short })).await;
        assert_eq!(data["short"]["status"], "COMPLETE", "{data}");
    }
}

/// A retention extended while the hourly sweep is at work keeps the video: the sweep is held
/// at the video's row (as a concurrent `updateVideo` would hold it) after it listed the video
/// as expired, the retention moves a month ahead and commits, and the sweep deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_extended_during_the_sweep_keeps_the_video() {
    use reelgraph::media::record::expire_videos;
    use sea_orm::{QuerySelect, TransactionTrait, sea_query::Expr};
    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let (owner, _, video) = creator_with_video(&app, "extend@example.com", "Extend").await;
    let db = &app.state.db;
    entity::video::Entity::update_many()
        .col_expr(
            entity::video::Column::RetentionUntil,
            Expr::val(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(entity::video::Column::Id.eq(video))
        .exec(db)
        .await
        .expect("expired");
    let hold = db.begin().await.expect("txn");
    entity::video::Entity::find_by_id(video)
        .lock_exclusive()
        .one(&hold)
        .await
        .expect("locked")
        .expect("video");
    let sweep = {
        let (db, storage) = (db.clone(), app.state.storage.clone());
        let bus = app.state.events.clone();
        tokio::spawn(async move { expire_videos(&db, &storage, &bus).await.expect("swept") })
    };
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    entity::video::Entity::update_many()
        .col_expr(
            entity::video::Column::RetentionUntil,
            Expr::val(chrono::Utc::now() + chrono::Duration::days(30)),
        )
        .filter(entity::video::Column::Id.eq(video))
        .exec(&hold)
        .await
        .expect("extended");
    hold.commit().await.expect("commit");
    assert_eq!(sweep.await.expect("joined"), 0);
    let data = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { video(id: $id) { id } }",
            json!({ "id": video }),
        )
        .await;
    assert_eq!(data["video"]["id"], video.to_string());
}

/// `trimHighlight` and a change of the key moment's range race: the moment's new range is
/// written but not committed when the trim arrives. The trim waits for it and is checked
/// against the new range, so it cannot land outside the moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trim_is_checked_against_a_range_moved_meanwhile() {
    use sea_orm::{TransactionTrait, sea_query::Expr};

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let (owner, _, _, id) = approved_highlight(&app, "race-trim@example.com", "Trims").await;
    let token = Some(owner.access_token.as_str());
    let range = app.ok(token, HIGHLIGHT_RANGE, json!({ "id": id })).await;
    let moment: Uuid = range["highlight"]["keyMoment"]["id"]
        .as_str()
        .expect("moment")
        .parse()
        .expect("uuid");
    let start = range["highlight"]["keyMoment"]["startTime"]
        .as_f64()
        .expect("start");
    let end = range["highlight"]["keyMoment"]["endTime"]
        .as_f64()
        .expect("end");
    assert!(end - start >= 6.0, "{range}");

    // The moment shrinks to its first 4 seconds: written, not yet committed.
    let txn = app.state.db.begin().await.expect("txn");
    entity::key_moment::Entity::update_many()
        .col_expr(entity::key_moment::Column::EndTime, Expr::val(start + 4.0))
        .filter(entity::key_moment::Column::Id.eq(moment))
        .exec(&txn)
        .await
        .expect("moved");
    // A trim of the old range's last 3 seconds, outside the new one.
    let trim = app.gql_in_background(
        &owner.access_token,
        "mutation($id: ID!, $s: Float!, $e: Float!) { trimHighlight(id: $id, trimStart: $s, trimEnd: $e) { trimStart } }",
        json!({ "id": id, "s": end - 3.0, "e": end }),
    );
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    txn.commit().await.expect("commit");

    let answer = trim.await.expect("joined");
    assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer}");
    let after = app.ok(token, HIGHLIGHT_RANGE, json!({ "id": id })).await;
    assert!(after["highlight"]["trimStart"].is_null(), "{after}");
}

/// `updateKeyMoment` of a moment deleted while it was being updated is NOT_FOUND (not an
/// internal error): the deletion is written, not yet committed, when the update arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_a_moment_deleted_meanwhile_is_not_found() {
    use sea_orm::TransactionTrait;

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let (owner, _, _, id) = approved_highlight(&app, "race-update@example.com", "Updates").await;
    let token = Some(owner.access_token.as_str());
    let range = app.ok(token, HIGHLIGHT_RANGE, json!({ "id": id })).await;
    let moment = range["highlight"]["keyMoment"]["id"].clone();
    let txn = app.state.db.begin().await.expect("txn");
    entity::key_moment::Entity::delete_by_id(
        moment.as_str().expect("id").parse::<Uuid>().expect("uuid"),
    )
    .exec(&txn)
    .await
    .expect("deleted");
    let update = app.gql_in_background(
        &owner.access_token,
        UPDATE_MOMENT,
        json!({ "id": moment, "m": { "title": "Renamed", "startTime": 1.0, "endTime": 5.0 } }),
    );
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    txn.commit().await.expect("commit");
    let answer = update.await.expect("joined");
    assert_eq!(error_code(&answer), "NOT_FOUND", "{answer}");
}

/// `deleteKeyMoment` takes the key moment before its highlight, as `trimHighlight` (and
/// `updateKeyMoment`) do: a trim holding the moment while it writes the highlight is waited
/// for, not deadlocked with. Here the test is the trim: it holds the moment share-locked until
/// the deletion waits, then writes the highlight and commits; then the deletion goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_moment_waits_for_a_trim_instead_of_deadlocking() {
    use sea_orm::{QuerySelect, TransactionTrait, sea_query::Expr};

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let (owner, _, _, id) = approved_highlight(&app, "race-delete@example.com", "Deletes").await;
    let token = Some(owner.access_token.as_str());
    let range = app.ok(token, HIGHLIGHT_RANGE, json!({ "id": id })).await;
    let moment = range["highlight"]["keyMoment"]["id"].clone();
    let moment_id: Uuid = moment.as_str().expect("id").parse().expect("uuid");
    let trim = app.state.db.begin().await.expect("txn");
    entity::key_moment::Entity::find_by_id(moment_id)
        .lock_shared()
        .one(&trim)
        .await
        .expect("locked")
        .expect("moment");
    let delete = app.gql_in_background(
        &owner.access_token,
        "mutation($id: ID!) { deleteKeyMoment(id: $id) }",
        json!({ "id": moment }),
    );
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    let written = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        highlight::Entity::update_many()
            .col_expr(highlight::Column::UpdatedAt, Expr::val(chrono::Utc::now()))
            .filter(highlight::Column::Id.eq(id.parse::<Uuid>().expect("uuid")))
            .exec(&trim),
    )
    .await
    .expect("the highlight is not held by the deletion");
    written.expect("no deadlock");
    trim.commit().await.expect("commit");
    let answer = delete.await.expect("joined");
    assert_eq!(answer["data"]["deleteKeyMoment"], true, "{answer}");
}
