//! `reelgraph render` and `reelgraph follow`: the built binary, run as a user runs it, against
//! the real server (GraphQL over HTTP, progress over WebSocket, real ffmpeg output).

use std::{process::Stdio, time::Duration};

use reelgraph::render::ffmpeg;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, make_png};

struct Run {
    ok: bool,
    /// The exit status (none when a signal ended it).
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the `reelgraph` binary with `args` (and nothing from this process's `REELGRAPH_*`
/// environment), with no standard input.
async fn reelgraph(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_reelgraph"));
    command
        .args(args)
        .env_remove("REELGRAPH_URL")
        .env_remove("REELGRAPH_TOKEN")
        .env_remove("REELGRAPH_EMAIL")
        .env_remove("REELGRAPH_PASSWORD")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("the command ends in time")
        .expect("the command runs");
    Run {
        ok: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn job_status(app: &TestApp, token: &str, id: &str) -> Value {
    app.ok(
        Some(token),
        "query($id: ID!) { job(id: $id) { status type progress } }",
        json!({ "id": id }),
    )
    .await["job"]
        .clone()
}

async fn render_follows_and_downloads_the_mp4(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("cli@example.com").await;
    let dir = tempfile::tempdir().expect("dir");
    make_png(&dir.path().join("logo.png"), "0x33ccff", "48x48").await;
    // The same local picture in two layers: uploaded once, named by its asset key in both.
    let spec = json!({
        "width": 320, "height": 240, "fps": 25,
        "scenes": [
            { "id": "one", "duration": 1.0, "bgColor": "#102030",
              "layers": [
                { "image": { "file": "logo.png", "x": 10, "y": 10 } },
                { "text": { "text": "from the command line", "fontSize": 20 } }
              ] },
            { "id": "two", "duration": 1.5, "bgColor": "#302010",
              "layers": [{ "image": { "file": "./logo.png", "x": 100, "y": 100, "width": 96, "height": 96 } }] }
        ]
    });
    std::fs::write(dir.path().join("spec.json"), spec.to_string()).expect("spec written");
    let spec_path = dir.path().join("spec.json");
    let out = dir.path().join("movie.mp4");
    let run = reelgraph(
        &[
            "render",
            spec_path.to_str().expect("utf-8"),
            "--server",
            &app.base,
            "--priority",
            "high",
            "-o",
            out.to_str().expect("utf-8"),
        ],
        &[("REELGRAPH_TOKEN", &owner.access_token)],
    )
    .await;
    assert!(run.ok, "render failed:\n{}", run.stderr);
    let id = run.stdout.trim();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "stdout is the job id: {:?}",
        run.stdout
    );
    assert!(run.stderr.contains("100%  DONE"), "{}", run.stderr);
    assert!(run.stderr.contains("rendering"), "{}", run.stderr);

    let job = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { job(id: $id) { status type priority } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        job["job"],
        json!({ "status": "DONE", "type": "render.movie", "priority": "HIGH" })
    );

    let tools = ffmpeg::check().await.expect("ffmpeg");
    let probe = ffmpeg::probe(&tools, &out)
        .await
        .expect("ffprobe reads the download");
    assert_eq!((probe.width, probe.height), (Some(320), Some(240)));
    let duration = probe
        .video_duration_secs
        .or(probe.duration_secs)
        .expect("duration");
    assert!((duration - 2.5).abs() <= 0.05, "duration {duration}");
    // The download went through a temporary file that is gone now.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["logo.png", "movie.mp4", "spec.json"]);

    // One upload for the two layers: the render plan names one asset key twice.
    let plan_file = dir.path().join("plan.json");
    app.state
        .storage
        .get_to_file(&format!("render-plans/{id}/plan.json"), &plan_file)
        .await
        .expect("the render plan is stored");
    let plan = std::fs::read_to_string(&plan_file).expect("plan");
    let prefix = format!("assets/{}/", owner.user_id);
    let mut keys: Vec<&str> = plan
        .match_indices(&prefix)
        .map(|(at, _)| plan[at..].split('"').next().expect("key"))
        .collect();
    assert_eq!(keys.len(), 2, "{plan}");
    keys.dedup();
    assert_eq!(keys.len(), 1, "{plan}");

    // Someone else's job is not found, as over the API.
    let stranger = app.register("stranger-cli@example.com").await;
    let run = reelgraph(
        &["follow", id, "--server", &app.base],
        &[("REELGRAPH_TOKEN", &stranger.access_token)],
    )
    .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("(NOT_FOUND)"), "{}", run.stderr);
}

async fn render_refusals_say_what_is_wrong_and_queue_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("refused@example.com").await;
    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("written");
        path.to_str().expect("utf-8").to_owned()
    };
    let token = [("REELGRAPH_TOKEN", owner.access_token.as_str())];
    let server = ["--server", app.base.as_str()];

    // A whole RenderMovieInput, one scene of which has no duration to speak of.
    let bad_scene = write(
        "bad.json",
        &json!({ "spec": { "width": 320, "height": 240, "fps": 25, "scenes": [
            { "id": "a", "duration": 1.0, "bgColor": "#000000" },
            { "id": "b", "duration": 0, "bgColor": "#000000" }
        ] } })
        .to_string(),
    );
    let run = reelgraph(&[&["render", &bad_scene][..], &server].concat(), &token).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("the server refused the render")
            && run.stderr.contains("input.spec.scenes.1.duration")
            && run.stderr.contains("(BAD_USER_INPUT)"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "", "no job id for a refused render");

    // Nothing listens there: the server did not refuse anything, it was not reached.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let nowhere = format!("http://127.0.0.1:{closed}");
    let good = write(
        "good.json",
        &json!({ "width": 320, "height": 240, "fps": 25, "scenes": [
            { "id": "a", "duration": 1.0, "bgColor": "#000000" }
        ] })
        .to_string(),
    );
    let run = reelgraph(&["render", &good, "--server", &nowhere], &token).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("cannot reach") && !run.stderr.contains("the server refused"),
        "{}",
        run.stderr
    );
    // The same when a picture is to be uploaded first: not "refused the upload".
    make_png(&dir.path().join("pic.png"), "0x3366ff", "16x16").await;
    let with_picture = write(
        "with-picture.json",
        &json!({ "width": 320, "height": 240, "fps": 25, "scenes": [
            { "id": "a", "duration": 1.0, "layers": [{ "image": { "file": "pic.png" } }] }
        ] })
        .to_string(),
    );
    let run = reelgraph(&["render", &with_picture, "--server", &nowhere], &token).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("cannot reach") && !run.stderr.contains("the server refused"),
        "{}",
        run.stderr
    );

    // An output nobody can write is told before anything is queued.
    let missing = dir.path().join("missing").join("movie.mp4");
    for output in [
        missing.to_str().expect("utf-8"),
        dir.path().to_str().expect("utf-8"),
    ] {
        let run = reelgraph(
            &[&["render", &good, "-o", output][..], &server].concat(),
            &token,
        )
        .await;
        assert!(!run.ok);
        assert!(
            run.stderr
                .contains(&format!("cannot write the output to {output}")),
            "{}",
            run.stderr
        );
        assert_eq!(
            run.stdout, "",
            "no job for an output that cannot be written"
        );
    }

    let not_json = write("broken.json", "{ \"width\": 320,\n  oops }");
    let run = reelgraph(&[&["render", &not_json][..], &server].concat(), &token).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("is not a movie spec") && run.stderr.contains("line 2"),
        "{}",
        run.stderr
    );

    let missing_picture = write(
        "picture.json",
        &json!({ "width": 320, "height": 240, "fps": 25, "scenes": [
            { "id": "a", "duration": 1.0, "bgColor": "#000000",
              "layers": [{ "image": { "file": "nowhere.png" } }] }
        ] })
        .to_string(),
    );
    let run = reelgraph(
        &[&["render", &missing_picture][..], &server].concat(),
        &token,
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("scenes.0.layers.0.image.file: nowhere.png: cannot read it"),
        "{}",
        run.stderr
    );

    let run = reelgraph(&[&["render", &bad_scene][..], &server].concat(), &[]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("sign in first"), "{}", run.stderr);

    let run = reelgraph(
        &[&["render", &bad_scene][..], &server].concat(),
        &[("REELGRAPH_TOKEN", "not-a-token")],
    )
    .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("(UNAUTHENTICATED)"), "{}", run.stderr);

    let run = reelgraph(
        &["render", &bad_scene, "--server", "http://127.0.0.1:9"],
        &token,
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("cannot reach http://127.0.0.1:9/graphql"),
        "{}",
        run.stderr
    );

    let run = reelgraph(
        &["render", &bad_scene, "--server", "ftp://127.0.0.1:9"],
        &token,
    )
    .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("http:// or https://"), "{}", run.stderr);

    let jobs = app
        .ok(
            Some(&owner.access_token),
            "{ jobs { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(jobs["jobs"]["totalCount"], 0, "nothing was queued");
}

/// Access tokens last 2 s in the follow test: it signs in afresh for each request it makes.
async fn operator_token(app: &TestApp) -> String {
    app.ok(
        None,
        "mutation { login(email: \"operator@example.com\", password: \"correct horse battery\") { accessToken } }",
        json!({}),
    )
    .await["login"]["accessToken"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// A 5 s diagnostics job of the operator's.
async fn run_job(app: &TestApp, fail: bool) -> String {
    app.ok(
        Some(&operator_token(app).await),
        "mutation($fail: Boolean!) { runDiagnosticJob(input: { durationMs: 5000, steps: 20, fail: $fail }) { id } }",
        json!({ "fail": fail }),
    )
    .await["runDiagnosticJob"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// A job outlives the access token: following with a password session renews it when the
/// server closes the socket (4403) and sees the job to its end; a bare token cannot be renewed
/// and says so. A job that fails makes the command fail with the job's reason.
async fn follow_renews_the_session_and_reports_how_the_job_ended(backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.config.access_token_ttl_secs = 2).await;
    app.admin("operator@example.com").await;
    let long = run_job(&app, false).await;
    let run = reelgraph(
        &[
            "follow",
            &long,
            "--server",
            &app.base,
            "--email",
            "operator@example.com",
        ],
        // A token left in the environment: the account typed on the command line is used.
        &[
            ("REELGRAPH_PASSWORD", "correct horse battery"),
            ("REELGRAPH_TOKEN", "a-stale-token"),
        ],
    )
    .await;
    assert!(run.ok, "follow failed:\n{}", run.stderr);
    assert!(run.stderr.contains("100%  DONE"), "{}", run.stderr);
    assert_eq!(
        job_status(&app, &operator_token(&app).await, &long).await["status"],
        "DONE"
    );

    // A token lasts 2 s, and the job takes 5 s.
    let long = run_job(&app, false).await;
    let run = reelgraph(
        &["follow", &long, "--server", &app.base],
        &[("REELGRAPH_TOKEN", &operator_token(&app).await)],
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("refused the access token")
            && run.stderr.contains(&format!("reelgraph follow {long}")),
        "{}",
        run.stderr
    );

    let failing = run_job(&app, true).await;
    let run = reelgraph(
        &[
            "follow",
            &failing,
            "--server",
            &app.base,
            "--email",
            "operator@example.com",
        ],
        &[("REELGRAPH_PASSWORD", "correct horse battery")],
    )
    .await;
    assert_eq!(run.code, Some(3), "a job that failed: {}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "job {failing} ended FAILED: failed on purpose (diagnostics)"
        )),
        "{}",
        run.stderr
    );
}

/// Ctrl-C stops following, not the job: the command says how to pick it up again, exits 130,
/// and leaves nothing in the output's folder. A token typed on the command line is used though
/// `REELGRAPH_EMAIL` is set without a password, and the server's URL is read as a URL
/// (`HTTP://` is `http://`, for the WebSocket too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_stops_on_ctrl_c_and_takes_the_typed_token() {
    use tokio::io::AsyncBufReadExt;
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.admin("operator@example.com").await;
    let token = operator_token(&app).await;
    // Upper case, and the GraphQL endpoint pasted in place of the server's base.
    let server = format!("{}/graphql", app.base.replacen("http://", "HTTP://", 1));
    let short = run_job(&app, false).await;
    let run = reelgraph(
        &["follow", &short, "--server", &server, "--token", &token],
        &[("REELGRAPH_EMAIL", "someone@example.com")],
    )
    .await;
    assert!(run.ok, "follow failed:\n{}", run.stderr);
    assert!(run.stderr.contains("100%  DONE"), "{}", run.stderr);

    let long = app
        .ok(
            Some(&token),
            "mutation { runDiagnosticJob(input: { durationMs: 120000, steps: 120 }) { id } }",
            json!({}),
        )
        .await["runDiagnosticJob"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let dir = tempfile::tempdir().expect("dir");
    let output = dir.path().join("out.mp4");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_reelgraph"))
        .args(["follow", &long, "--server", &app.base, "-o"])
        .arg(&output)
        .env_remove("REELGRAPH_URL")
        .env_remove("REELGRAPH_EMAIL")
        .env_remove("REELGRAPH_PASSWORD")
        .env("REELGRAPH_TOKEN", &token)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("started");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    // Following: the job's state has been printed.
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("a progress line in time")
        .expect("read")
        .expect("a line");
    assert!(
        first.contains("RUNNING") || first.contains("QUEUED"),
        "{first}"
    );
    let pid = child.id().expect("running").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stopped in time")
        .expect("status");
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(
        rest.contains(&format!("interrupted: job {long} goes on on the server"))
            && rest.contains(&format!("reelgraph follow {long}")),
        "{rest}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert!(left.is_empty(), "no output file: {left:?}");
    let job = job_status(&app, &token, &long).await;
    assert_eq!(job["status"], "RUNNING", "the job goes on: {job}");
    app.ok(
        Some(&token),
        "mutation($id: ID!) { cancelJob(id: $id) { status } }",
        json!({ "id": long }),
    )
    .await;
}

/// `seed` makes its demo content through the API: two creators, each with two probed videos
/// with transcripts, key moments and an approved highlight, and one captioned vertical short.
/// Run again, it finds the content there and changes nothing.
async fn seed_fills_a_server_through_its_api(backend: Backend) {
    // Access tokens last 3 s: seeding takes longer, so the command renews its session.
    let app = TestApp::spawn_with(backend, |args| args.config.access_token_ttl_secs = 3).await;
    // A bad token is refused before anything is made, and nothing is said to have been.
    let run = reelgraph(
        &["seed", "--server", &app.base, "--token", "not-a-token"],
        &[],
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("checking the account to seed as")
            && !run.stderr.contains("what was made so far stays"),
        "{}",
        run.stderr
    );
    let run = reelgraph(&["seed", "--server", &app.base], &[]).await;
    assert!(run.ok, "seed failed:\n{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("account:  {}", reelgraph::client::DEMO_EMAIL)),
        "{}",
        run.stdout
    );
    let password = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("password: "))
        .expect("the generated password is printed")
        .trim()
        .to_owned();
    let sign_in = || async {
        app.ok(
            None,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            json!({ "e": reelgraph::client::DEMO_EMAIL, "p": password }),
        )
        .await["login"]["accessToken"]
            .as_str()
            .expect("token")
            .to_owned()
    };
    let token = sign_in().await;
    let content =
        "{ creators(first: 10) { totalCount nodes { slug videos(first: 10) { totalCount nodes {
        title status durationSecs width height transcript { text } keyMoments { title }
        highlights { status shorts { preset status captionsEnabled url } } } } } } }";
    let data = app.ok(Some(&token), content, json!({})).await;
    let creators = data["creators"]["nodes"].as_array().expect("creators");
    assert_eq!(data["creators"]["totalCount"], 2, "{data:#}");
    let mut slugs: Vec<&str> = creators.iter().filter_map(|c| c["slug"].as_str()).collect();
    slugs.sort_unstable();
    assert_eq!(slugs, ["demo-northern-kitchen", "demo-orbit-lab"]);
    let tools = ffmpeg::check().await.expect("ffmpeg");
    let dir = tempfile::tempdir().expect("dir");
    for creator in creators {
        let videos = creator["videos"]["nodes"].as_array().expect("videos");
        assert_eq!(videos.len(), 2, "{creator:#}");
        let mut shorts = Vec::new();
        for video in videos {
            assert_eq!(video["status"], "READY", "{video:#}");
            assert_eq!(
                (video["width"].clone(), video["height"].clone()),
                (json!(640), json!(360))
            );
            let duration = video["durationSecs"].as_f64().expect("probed duration");
            assert!((duration - 15.0).abs() < 0.1, "{video:#}");
            assert_eq!(video["transcript"].as_array().map(Vec::len), Some(5));
            assert_eq!(video["keyMoments"].as_array().map(Vec::len), Some(3));
            let highlights = video["highlights"].as_array().expect("highlights");
            assert_eq!(highlights.len(), 3, "{video:#}");
            let approved: Vec<&Value> = highlights
                .iter()
                .filter(|h| h["status"] == "APPROVED")
                .collect();
            assert_eq!(approved.len(), 1, "{video:#}");
            shorts.extend(
                highlights
                    .iter()
                    .flat_map(|h| h["shorts"].as_array().cloned().unwrap_or_default()),
            );
        }
        assert_eq!(shorts.len(), 1, "one short per creator: {creator:#}");
        let short = &shorts[0];
        assert_eq!(
            (
                short["preset"].clone(),
                short["status"].clone(),
                short["captionsEnabled"].clone()
            ),
            (json!("VERTICAL"), json!("COMPLETE"), json!(true))
        );
        let path = dir.path().join("short.mp4");
        let response = app
            .client
            .get(short["url"].as_str().expect("url"))
            .send()
            .await
            .expect("download");
        assert_eq!(response.status(), 200);
        std::fs::write(&path, response.bytes().await.expect("bytes")).expect("written");
        let probe = ffmpeg::probe(&tools, &path)
            .await
            .expect("ffprobe reads the short");
        let (width, height) = (probe.width.expect("width"), probe.height.expect("height"));
        assert_eq!(width * 16, height * 9, "9:16: {probe:?}");
    }

    let again = reelgraph(&["seed", "--server", &app.base], &[]).await;
    assert!(again.ok, "{}", again.stderr);
    assert!(again.stderr.contains("nothing to do"), "{}", again.stderr);
    // Credentials that do not work are said so even with nothing to do.
    let refused = reelgraph(&["seed", "--server", &app.base, "--token", "garbage"], &[]).await;
    assert!(!refused.ok, "{}", refused.stderr);
    assert!(
        !refused.stderr.contains("nothing to do"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        app.ok(
            Some(&sign_in().await),
            "{ creators { totalCount } videos { totalCount } }",
            json!({})
        )
        .await,
        json!({ "creators": { "totalCount": 2 }, "videos": { "totalCount": 4 } })
    );

    // A run that stopped halfway (here: a video is gone) is finished by the next one, as the
    // same account; what is there stays.
    let token = sign_in().await;
    let videos = app
        .ok(
            Some(&token),
            "{ videos(first: 10) { nodes { id title } } }",
            json!({}),
        )
        .await;
    let gone = &videos["videos"]["nodes"][0];
    app.ok(
        Some(&token),
        "mutation($id: ID!) { deleteVideo(id: $id) }",
        json!({ "id": gone["id"] }),
    )
    .await;
    let resumed = reelgraph(
        &[
            "seed",
            "--server",
            &app.base,
            "--no-shorts",
            "--email",
            reelgraph::client::DEMO_EMAIL,
            "--password",
            &password,
        ],
        &[],
    )
    .await;
    assert!(resumed.ok, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("finishing it"),
        "{}",
        resumed.stderr
    );
    // Signed in again: the run outlives a 3 s token (with the 5 s leeway) on a busy machine.
    let after = app
        .ok(
            Some(&sign_in().await),
            "{ videos(first: 10) { totalCount nodes { id title } } }",
            json!({}),
        )
        .await;
    assert_eq!(after["videos"]["totalCount"], 4, "{after}");
    let titles = |list: &Value| {
        let mut titles: Vec<String> = list["videos"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["title"].as_str().map(str::to_owned))
            .collect();
        titles.sort();
        titles
    };
    assert_eq!(titles(&after), titles(&videos));
}

crate::both_backends!(
    render_follows_and_downloads_the_mp4,
    render_refusals_say_what_is_wrong_and_queue_nothing,
    follow_renews_the_session_and_reports_how_the_job_ended,
    seed_fills_a_server_through_its_api,
);

/// `DATABASE_URL=` set but empty (an env file's blank line) is unset: the embedded SQLite
/// database, as the README says, not a refusal after the JWT secret was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_database_url_means_the_embedded_database() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let run = reelgraph(
        &["migrate"],
        &[("DATABASE_URL", ""), ("REELGRAPH_DATA_DIR", data)],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        dir.path().join("data").join("reelgraph.db").exists(),
        "{}",
        run.stderr
    );
}

/// A `sqlite:` DATABASE_URL names a file that is created when missing, as the embedded
/// default's is (sqlx opens an existing one only, unless told `mode=rwc`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_url_creates_its_file() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("explicit.db");
    let url = format!("sqlite:{}", file.display());
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let run = reelgraph(
        &["migrate"],
        &[("DATABASE_URL", url.as_str()), ("REELGRAPH_DATA_DIR", data)],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(file.exists(), "{}", run.stderr);
}

/// Processes started together on a fresh data folder (`migrate` beside `serve` in a container,
/// replicas) migrate it once; the others wait for it. Each applied the first migration, and
/// all but one stopped on "table users already exists".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_started_together_on_sqlite_migrate_once() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let env = [("REELGRAPH_DATA_DIR", data)];
    let runs = futures_util::future::join_all((0..4).map(|_| reelgraph(&["migrate"], &env))).await;
    for run in runs {
        assert!(run.ok, "{}", run.stderr);
    }
}

/// A setting the server could not use is refused at start with what to change, not ignored:
/// a log format it does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_a_server_cannot_use_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let run = reelgraph(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("REELGRAPH_LOG_FORMAT", "xml"),
            ("REELGRAPH_DATA_DIR", data),
        ],
    )
    .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("REELGRAPH_LOG_FORMAT must be `text` or `json`"),
        "{}",
        run.stderr
    );
}

/// Signed in with a password, a client call whose access token has expired renews the session
/// and runs again, instead of failing (a long `seed` or `render` outlives a token between
/// follows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_call_renews_an_expired_session() {
    let app = TestApp::spawn_with(Backend::Sqlite, |args| {
        args.config.access_token_ttl_secs = 1
    })
    .await;
    app.register("renews@example.com").await;
    let api = reelgraph::client::Api::connect(&reelgraph::client::ServerArgs {
        server: app.base.clone(),
        token: None,
        email: Some("renews@example.com".into()),
        password: Some("correct horse battery".into()),
    })
    .await
    .expect("signed in");
    let first = api.access_token();
    // Until the server refuses the token: past its second and the 5 s allowed for clock skew
    // (counted in whole seconds, so up to 7 s after it was issued).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.gql(Some(&first), "{ me { email } }", json!({})).await["errors"].is_null() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the token never expired"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let data = api
        .call("{ me { email } }", json!({}))
        .await
        .expect("the call renews the session");
    assert_eq!(data["me"]["email"], "renews@example.com");
    assert_ne!(api.access_token(), first, "a new access token");
}

/// A renewal refused for too many at once (the server's limit per session, reached by a short
/// token lifetime) is tried again after the wait the server gives in `extensions.retryAfter`,
/// instead of ending a long `render --email` run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_renewal_refused_for_too_many_waits_and_renews() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.register("renews-later@example.com").await;
    let api = reelgraph::client::Api::connect(&reelgraph::client::ServerArgs {
        server: app.base.clone(),
        token: None,
        email: Some("renews-later@example.com".into()),
        password: Some("correct horse battery".into()),
    })
    .await
    .expect("signed in");
    let first = api.access_token();
    let data = app
        .ok(
            Some(&first),
            "{ me { sessions { id current } } }",
            json!({}),
        )
        .await;
    let session: uuid::Uuid = data["me"]["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["current"] == true))
        .and_then(|s| s["id"].as_str())
        .and_then(|id| id.parse().ok())
        .expect("the client's session");
    let mut spent = 0;
    while app.state.sign_in.refresh(session).is_ok() {
        spent += 1;
        assert!(spent < 100, "the session's renewals are never refused");
    }
    assert!(api.refresh().await.expect("renewed after the wait"));
    assert_ne!(api.access_token(), first, "a new access token");
}

/// `reelgraph migrate` started beside a PostgreSQL server that does not listen yet (compose
/// starting both, a pod's sidecar) waits for it; one that refuses who we are is not waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_waits_for_a_database_that_is_not_up_yet_but_not_for_a_refusal() {
    let name = crate::helpers::create_database().await;
    let base = url::Url::parse(&crate::helpers::postgres_base_url()).expect("url");
    let upstream = format!(
        "{}:{}",
        base.host_str().expect("host"),
        base.port().unwrap_or(5432)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let mut relayed = base.clone();
    relayed.set_host(Some("127.0.0.1")).expect("host");
    relayed.set_port(Some(port)).expect("port");
    relayed.set_path(&name);
    let url = relayed.to_string();
    // The "server" comes up 12 s after the command starts: sqlx's own connect retries give up
    // after the 10 s acquire timeout.
    let relay = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(12)).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the port again");
        loop {
            let (mut client, _) = listener.accept().await.expect("accept");
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("JWT_SECRET", crate::helpers::TEST_JWT_SECRET),
    ];
    let run = reelgraph(&["migrate"], &env).await;
    assert!(run.ok, "migrate waited for the database: {}", run.stderr);
    assert!(run.stderr.contains("not up yet"), "{}", run.stderr);
    relay.abort();

    let mut stranger = base.clone();
    stranger.set_username("no_such_role").expect("user");
    stranger.set_password(None).expect("password");
    stranger.set_path(&name);
    let stranger = stranger.to_string();
    let env = [
        ("DATABASE_URL", stranger.as_str()),
        ("JWT_SECRET", crate::helpers::TEST_JWT_SECRET),
        ("DATABASE_WAIT_SECS", "3600"),
    ];
    let run = tokio::time::timeout(Duration::from_secs(60), reelgraph(&["migrate"], &env))
        .await
        .expect("a refusal is not waited for");
    assert!(!run.ok);
    assert!(run.stderr.contains("no_such_role"), "{}", run.stderr);
    assert!(!run.stderr.contains("not up yet"), "{}", run.stderr);

    // A server that never comes up, waited for 3 s: tried again and again within them (each
    // try took the pool's 10 s acquire timeout, so none was tried again).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let mut nowhere = base.clone();
    nowhere.set_host(Some("127.0.0.1")).expect("host");
    nowhere.set_port(Some(closed)).expect("port");
    nowhere.set_path(&name);
    let nowhere = nowhere.to_string();
    let env = [
        ("DATABASE_URL", nowhere.as_str()),
        ("JWT_SECRET", crate::helpers::TEST_JWT_SECRET),
        ("DATABASE_WAIT_SECS", "3"),
    ];
    let run = reelgraph(&["migrate"], &env).await;
    assert!(!run.ok);
    assert!(
        run.stderr.matches("not up yet").count() >= 2,
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{closed}")),
        "{}",
        run.stderr
    );
}
