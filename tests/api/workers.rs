//! The jobs engine across real processes sharing one PostgreSQL: `reelgraph worker` processes
//! killed with SIGKILL, many workers draining one queue, and a subscriber on one server
//! watching a job enqueued through another and run by a third process.

use std::{process::Stdio, time::Duration};

use entity::{JobStatus, job, job_transition};
use futures_util::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::{
    helpers::{TEST_JWT_SECRET, TestApp, create_database, postgres_base_url, subscribe},
    jobs::{enqueue, transitions, wait_for},
};

/// Starts `reelgraph worker` on `database` with `slots` concurrent jobs.
fn spawn_worker(database: &str, slots: usize, lease_secs: u64) -> Child {
    spawn_worker_with(database, slots, lease_secs, &[])
}

/// [`spawn_worker`] with more arguments after `worker`.
pub fn spawn_worker_with(database: &str, slots: usize, lease_secs: u64, args: &[&str]) -> Child {
    worker_command(database, slots, lease_secs, args)
        .spawn()
        .expect("reelgraph worker starts")
}

/// The command [`spawn_worker_with`] runs.
fn worker_command(database: &str, slots: usize, lease_secs: u64, args: &[&str]) -> Command {
    let data_dir = std::env::temp_dir().join(format!("rg-worker-{}", Uuid::now_v7()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_reelgraph"));
    command
        .arg("worker")
        .args(args)
        .env(
            "DATABASE_URL",
            format!("{}/{database}", postgres_base_url()),
        )
        .env("JWT_SECRET", TEST_JWT_SECRET)
        .env("REELGRAPH_STORAGE_DIR", data_dir.join("objects"))
        .env("REELGRAPH_DATA_DIR", data_dir)
        .env("REELGRAPH_WORKERS", slots.to_string())
        .env("REELGRAPH_JOB_LEASE_SECS", lease_secs.to_string())
        .env("REELGRAPH_JOB_HEARTBEAT_MS", "300")
        .env("REELGRAPH_JOB_POLL_MS", "300")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    command
}

/// An app without workers on a fresh PostgreSQL database (dropped with the app).
async fn server_without_workers() -> (TestApp, String) {
    let database = create_database().await;
    let mut app = TestApp::spawn_on(Some(&database), |a| a.no_worker = true).await;
    app.adopt_database(database.clone());
    (app, database)
}

/// A worker that cannot reach the database stops running a job once its lease has run out:
/// by then the reaper may have given the job to another worker, whose files this one would
/// overwrite. Here the jobs table is out of reach (renamed) for longer than the lease; once
/// it is back, the job runs again (the reaper re-queues it) and ends after its second attempt.
/// Before, the first run went on and, its heartbeat renewing the lease as soon as the table
/// was back, ended the job itself after one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_from_the_database_stops_the_job_when_its_lease_runs_out() {
    use sea_orm::ConnectionTrait;

    let (app, database) = server_without_workers().await;
    let owner = app.register("cut-off@example.com").await;
    let worker = worker_command(&database, 1, 2, &[])
        .stderr(Stdio::piped())
        .spawn()
        .expect("reelgraph worker starts");
    let id = enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 8000, "steps": 80 }),
        3,
    )
    .await;
    wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(30),
        |j| j["status"] == "RUNNING" && j["progress"].as_f64() > Some(0.0),
    )
    .await;
    let db = &app.state.db;
    db.execute_unprepared("ALTER TABLE jobs RENAME TO jobs_out_of_reach")
        .await
        .expect("hidden");
    // The lease (2 s) runs out, with a margin for the heartbeat's interval (300 ms).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    db.execute_unprepared("ALTER TABLE jobs_out_of_reach RENAME TO jobs")
        .await
        .expect("back");
    let done = wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(60),
        |j| j["status"] == "DONE",
    )
    .await;
    assert_eq!(done["attempts"], 2, "the first run stopped: {done}");
    assert_eq!(transitions(&app, id, JobStatus::Done).await, 1);
    terminate(&worker).await;
    let output = worker.wait_with_output().await.expect("worker output");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("the lease ran out while"),
        "the worker said why it stopped: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_killed_worker_is_rerun_after_its_lease_and_completed_once() {
    let (app, database) = server_without_workers().await;
    let owner = app.register("crash@example.com").await;
    let mut first = spawn_worker(&database, 1, 2);
    let id = enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 3000, "steps": 30 }),
        3,
    )
    .await;
    wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(30),
        |j| j["status"] == "RUNNING" && j["progress"].as_f64() > Some(0.0),
    )
    .await;
    first.start_kill().expect("SIGKILL");
    first.wait().await.expect("killed");

    let _second = spawn_worker(&database, 1, 2);
    let done = wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(60),
        |j| j["status"] == "DONE",
    )
    .await;
    assert_eq!(done["attempts"], 2, "ran again after the lease expired");
    assert_eq!(transitions(&app, id, JobStatus::Running).await, 2);
    assert_eq!(
        transitions(&app, id, JobStatus::Done).await,
        1,
        "completed exactly once"
    );
    let workers: Vec<Option<String>> = job_transition::Entity::find()
        .select_only()
        .column(job_transition::Column::Worker)
        .filter(job_transition::Column::JobId.eq(id))
        .filter(job_transition::Column::Status.eq(JobStatus::Running))
        .into_tuple()
        .all(&app.state.db)
        .await
        .expect("workers");
    assert_ne!(workers[0], workers[1], "a different worker took over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_drained_by_four_workers_are_each_completed_once() {
    let (app, database) = server_without_workers().await;
    let owner = app.register("drain@example.com").await;
    let owner_id: Uuid = owner.user_id.parse().expect("uuid");
    let txn = reelgraph::jobs::queue::begin_write(&app.state.db)
        .await
        .expect("txn");
    for _ in 0..1000 {
        let new = reelgraph::jobs::NewJob::new(
            entity::JobKind::Workflow,
            "diagnostics.sleep",
            owner_id,
            json!({ "ms": 0, "steps": 1 }),
        );
        let _ = reelgraph::jobs::queue::enqueue(&txn, new)
            .await
            .map_err(|e| e.public_message())
            .expect("enqueue");
    }
    txn.commit().await.expect("commit");
    let _workers: Vec<Child> = (0..4).map(|_| spawn_worker(&database, 2, 10)).collect();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let done = job::Entity::find()
            .filter(job::Column::Status.eq(JobStatus::Done))
            .count(&app.state.db)
            .await
            .expect("count");
        if done == 1000 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {done} of 1000 done"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let completions = job_transition::Entity::find()
        .filter(job_transition::Column::Status.eq(JobStatus::Done))
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(completions, 1000, "one completion per job");
    let claims = job_transition::Entity::find()
        .filter(job_transition::Column::Status.eq(JobStatus::Running))
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(claims, 1000, "no job claimed twice");
    let workers: Vec<Option<String>> = job_transition::Entity::find()
        .select_only()
        .column(job_transition::Column::Worker)
        .filter(job_transition::Column::Status.eq(JobStatus::Running))
        .distinct()
        .into_tuple()
        .all(&app.state.db)
        .await
        .expect("workers");
    assert!(workers.len() >= 2, "the work was shared: {workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_server_sees_every_status_of_a_job_run_elsewhere() {
    let (server_a, database) = server_without_workers().await;
    let server_b = TestApp::spawn_on(Some(&database), |a| a.no_worker = true).await;
    let admin = server_b.admin("ops@example.com").await;
    let data = server_b
        .ok(
            Some(&admin.access_token),
            "mutation { runDiagnosticJob(input: {durationMs: 1500, steps: 5}) { id status } }",
            json!({}),
        )
        .await;
    assert_eq!(data["runDiagnosticJob"]["status"], "QUEUED");
    let id = data["runDiagnosticJob"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let mut socket = subscribe(
        &server_a.base,
        &admin.access_token,
        "subscription($id: ID!) { jobUpdated(id: $id) { status progress version } }",
        json!({ "id": id }),
    )
    .await;
    let first = socket.next().await.expect("open").expect("message");
    let first: Value = serde_json::from_str(first.to_text().expect("text")).expect("json");
    assert_eq!(first["type"], "next", "the snapshot comes first: {first}");
    let _worker = spawn_worker(&database, 1, 10);
    let mut updates = vec![first["payload"].clone()];
    updates
        .extend(crate::helpers::collect_until_complete(&mut socket, Duration::from_secs(60)).await);
    let jobs: Vec<&Value> = updates.iter().map(|u| &u["data"]["jobUpdated"]).collect();
    let mut statuses: Vec<&str> = jobs.iter().filter_map(|j| j["status"].as_str()).collect();
    statuses.dedup();
    assert_eq!(statuses, ["QUEUED", "RUNNING", "DONE"], "{updates:#?}");
    let versions: Vec<i64> = jobs.iter().filter_map(|j| j["version"].as_i64()).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions only grow: {versions:?}"
    );
    let progress: Vec<f64> = jobs.iter().filter_map(|j| j["progress"].as_f64()).collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {progress:?}"
    );
    assert!(
        jobs.len() >= 4,
        "progress was streamed, not just the ends: {jobs:#?}"
    );
}

/// Sends SIGTERM to a child process.
pub async fn terminate(child: &Child) {
    let pid = child.id().expect("running");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_finishes_short_jobs_and_releases_long_ones() {
    let (app, database) = server_without_workers().await;
    let owner = app.register("stop@example.com").await;
    let mut worker = Command::new(env!("CARGO_BIN_EXE_reelgraph"))
        .arg("worker")
        .env(
            "DATABASE_URL",
            format!("{}/{database}", postgres_base_url()),
        )
        .env("JWT_SECRET", TEST_JWT_SECRET)
        .env(
            "REELGRAPH_STORAGE_DIR",
            std::env::temp_dir().join(format!("rg-objects-{}", Uuid::now_v7())),
        )
        .env(
            "REELGRAPH_DATA_DIR",
            std::env::temp_dir().join(format!("rg-worker-{}", Uuid::now_v7())),
        )
        .env("REELGRAPH_WORKERS", "2")
        .env("REELGRAPH_JOB_POLL_MS", "200")
        .env("REELGRAPH_SHUTDOWN_GRACE_SECS", "15")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("worker starts");
    let short = enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 6000, "steps": 12 }),
        3,
    )
    .await;
    let long = enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 600000, "steps": 600 }),
        3,
    )
    .await;
    for id in [short, long] {
        wait_for(
            &app,
            &owner.access_token,
            id,
            Duration::from_secs(30),
            |j| j["status"] == "RUNNING",
        )
        .await;
    }
    // The short job is still running when the worker is told to stop: the grace period is
    // what lets it finish.
    let running = job::Entity::find_by_id(short)
        .one(&app.state.db)
        .await
        .expect("row")
        .expect("job");
    assert_eq!(running.status, JobStatus::Running);
    assert!(running.progress < 1.0, "{}", running.progress);
    terminate(&worker).await;
    let exit = tokio::time::timeout(Duration::from_secs(60), worker.wait())
        .await
        .expect("worker exits")
        .expect("status");
    assert!(exit.success(), "clean exit: {exit:?}");

    let finished = job::Entity::find_by_id(short)
        .one(&app.state.db)
        .await
        .expect("row")
        .expect("job");
    assert_eq!(
        finished.status,
        JobStatus::Done,
        "finished within the grace period"
    );
    let released = job::Entity::find_by_id(long)
        .one(&app.state.db)
        .await
        .expect("row")
        .expect("job");
    assert_eq!(
        released.status,
        JobStatus::Queued,
        "released back to the queue"
    );
    assert_eq!(
        (released.attempts, released.max_attempts),
        (1, 4),
        "a release does not use up an attempt: one more is allowed"
    );
    assert!(released.lease_token.is_none());
}

/// A worker without a usable ffmpeg does not start (every render and probe it took would
/// fail): it exits at once, naming what is missing and how to install it, before it touches
/// the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_ffmpeg_refuses_to_start() {
    let database = format!("{}/no_such_database_needed", postgres_base_url());
    let (ok, said) = run_reelgraph(
        &["worker"],
        &[
            ("DATABASE_URL", database.as_str()),
            ("JWT_SECRET", TEST_JWT_SECRET),
            ("FFMPEG_PATH", "/nonexistent/ffmpeg"),
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        said.contains("a worker needs ffmpeg: ffmpeg was not found"),
        "{said}"
    );
}

/// Runs the `reelgraph` binary with `args` and `env` (no standard input, no DATABASE_URL of
/// this process); whether it exited 0, and what it printed (stdout, then stderr).
async fn run_reelgraph(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_reelgraph"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the command ends in time")
        .expect("the command runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// Runs `reelgraph healthz --url URL`; whether it exited 0, and what it printed.
async fn healthz(url: &str) -> (bool, String) {
    run_reelgraph(&["healthz", "--url", url], &[]).await
}

/// GraphQL over HTTP against the server at `base`; the `data` of a successful answer.
async fn graphql(base: &str, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut post = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        post = post.bearer_auth(token);
    }
    let body: Value = post.send().await.expect("sent").json().await.expect("JSON");
    assert!(body.get("errors").is_none(), "{body:#}");
    body["data"].clone()
}

/// The work files anywhere under `dir`: in `.incoming` (and, as earlier versions left them,
/// `*.upload-*` and `*.part-*` beside the objects).
fn work_files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                folders.push(path);
            } else if folder.ends_with(".incoming")
                || name.contains(".upload-")
                || name.contains(".part-")
            {
                found.push(path);
            }
        }
    }
    found
}

/// On SIGTERM a server gives in-flight requests the shutdown grace period, then closes what is
/// still open: a client that stopped sending halfway through its body (here with a request
/// time limit of ten minutes) does not keep the process alive, and an upload to a presigned
/// link that stalled halfway leaves no work file in the storage folder. `reelgraph healthz`,
/// the image's health check, says whether the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_does_not_wait_for_a_stalled_client() {
    use tokio::io::AsyncWriteExt;
    let data_dir = tempfile::tempdir().expect("temp dir");
    let (server, port) = crate::helpers::serve_binary(
        data_dir.path(),
        &[
            ("REELGRAPH_SHUTDOWN_GRACE_SECS", "2"),
            ("REELGRAPH_REQUEST_TIMEOUT_MS", "600000"),
            ("RUST_LOG", "warn"),
        ],
        false,
    );
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut answered = false;
    for _ in 0..120 {
        if healthz(&url).await.0 {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(answered, "the server never answered /healthz");

    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connected");
    stalled
        .write_all(
            b"POST /graphql HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n\
              content-length: 1000\r\n\r\n{\"query\":",
        )
        .await
        .expect("half a request sent");
    // The request has reached the server (it answers others meanwhile).
    assert!(healthz(&url).await.0);

    // An upload that stops halfway through its body.
    let base = format!("http://127.0.0.1:{port}");
    let session = graphql(
        &base,
        None,
        "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }",
        json!({ "input": { "email": "stall@example.com", "password": "correct horse battery" } }),
    )
    .await;
    let token = session["register"]["accessToken"].as_str().expect("token");
    let creator = graphql(
        &base,
        Some(token),
        "mutation { createCreator(input: { name: \"Stalled\" }) { id } }",
        json!({}),
    )
    .await;
    let upload = graphql(
        &base,
        Some(token),
        "mutation($input: RequestVideoUploadInput!) { requestVideoUpload(input: $input) { uploadUrl } }",
        json!({ "input": {
            "creatorId": creator["createCreator"]["id"], "filename": "stalled.mp4",
            "contentType": "video/mp4", "sizeBytes": 100_000,
        } }),
    )
    .await;
    let link = url::Url::parse(
        upload["requestVideoUpload"]["uploadUrl"]
            .as_str()
            .expect("uploadUrl"),
    )
    .expect("a URL");
    let mut stalled_upload = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connected");
    stalled_upload
        .write_all(
            format!(
                "PUT {}?{} HTTP/1.1\r\nHost: localhost\r\ncontent-type: video/mp4\r\n\
                 content-length: 100000\r\n\r\n",
                link.path(),
                link.query().expect("signed")
            )
            .as_bytes(),
        )
        .await
        .expect("head sent");
    stalled_upload
        .write_all(&[0u8; 50_000])
        .await
        .expect("half the body sent");
    let mut waited = 0;
    while work_files_under(data_dir.path()).is_empty() {
        waited += 1;
        assert!(waited < 200, "the upload never reached the server");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    terminate(&server).await;
    let mut server = server;
    let exit = tokio::time::timeout(Duration::from_secs(60), server.wait())
        .await
        .expect("the server exits although a client is stalled")
        .expect("status");
    assert!(exit.success(), "clean exit: {exit:?}");
    let (up, said) = healthz(&url).await;
    assert!(!up, "{said}");
    assert!(said.contains("did not answer"), "{said}");
    let left = work_files_under(data_dir.path());
    assert!(left.is_empty(), "work files left behind: {left:?}");
    drop((stalled, stalled_upload));
}

/// A DATABASE_URL that cannot be parsed (an unescaped `#` in the password) is refused without
/// printing the password.
#[tokio::test]
async fn a_database_url_that_cannot_be_parsed_is_not_printed() {
    let (ok, said) = run_reelgraph(
        &["migrate"],
        &[
            (
                "DATABASE_URL",
                "postgres://app:Sup3r#Secret@127.0.0.1:5432/db",
            ),
            ("JWT_SECRET", TEST_JWT_SECRET),
        ],
    )
    .await;
    assert!(!ok);
    assert!(!said.contains("Sup3r"), "{said}");
    // One that parses but where nothing listens says where it tried.
    let (ok, said) = run_reelgraph(
        &["migrate"],
        &[
            ("DATABASE_URL", "postgres://app:Sup3rSecret@127.0.0.1:1/db"),
            ("JWT_SECRET", TEST_JWT_SECRET),
            // Once, not for the default 30 s of waiting for a server to come up.
            ("DATABASE_WAIT_SECS", "0"),
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        said.contains("connecting to the database at 127.0.0.1:1"),
        "{said}"
    );
    assert!(!said.contains("Sup3r"), "{said}");
    assert!(said.contains("connecting to the database"), "{said}");
}

/// Boolean settings take the usual spellings from the environment (`1`, `yes`, `on`, `true`
/// and their opposites), not only `true`/`false`; anything else is refused, naming the flag.
#[tokio::test]
async fn boolean_settings_take_the_usual_spellings() {
    let run = |value: &'static str| async move {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let dir = data_dir.path().to_str().expect("utf-8").to_owned();
        run_reelgraph(
            &["migrate"],
            &[
                ("REELGRAPH_DATA_DIR", dir.as_str()),
                ("REELGRAPH_TRUST_PROXY", value),
                ("REELGRAPH_REQUIRE_INVITE", value),
            ],
        )
        .await
    };
    for value in ["1", "yes", "on", "true", "0", "no", "off", "false"] {
        let (ok, said) = run(value).await;
        assert!(ok, "{value}: {said}");
    }
    let (ok, said) = run("banana").await;
    assert!(!ok);
    assert!(said.contains("invalid value 'banana'"), "{said}");
}

/// A bad value set in the environment is reported with its variable, not only the flag
/// clap knows it by; a bad flag on the command line is not blamed on the environment.
#[tokio::test]
async fn a_bad_value_from_the_environment_names_its_variable() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let dir = data_dir.path().to_str().expect("utf-8");
    let env = [("REELGRAPH_DATA_DIR", dir), ("REELGRAPH_WORKERS", "many")];
    let (ok, said) = run_reelgraph(&["migrate"], &env).await;
    assert!(!ok);
    assert!(said.contains("invalid value 'many'"), "{said}");
    assert!(
        said.contains("environment variable REELGRAPH_WORKERS"),
        "{said}"
    );
    // The subcommand's own flag: `worker --listen` is REELGRAPH_WORKER_LISTEN, not the
    // server's REELGRAPH_LISTEN (set here too, and valid).
    let (ok, said) = run_reelgraph(
        &["worker"],
        &[
            ("REELGRAPH_WORKER_LISTEN", "not-an-address"),
            ("REELGRAPH_LISTEN", "127.0.0.1:0"),
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        said.contains("environment variable REELGRAPH_WORKER_LISTEN"),
        "{said}"
    );
    let (ok, said) = run_reelgraph(&["migrate", "--workers", "few"], &env[..1]).await;
    assert!(!ok);
    assert!(said.contains("invalid value 'few'"), "{said}");
    assert!(!said.contains("environment variable"), "{said}");
}

/// With `REELGRAPH_LOG_FORMAT=json`, the reason a process stops is also a JSON log line (log
/// pipelines that read JSON would drop the plain one).
#[tokio::test]
async fn with_json_logs_the_reason_for_stopping_is_logged_as_json() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let (ok, said) = run_reelgraph(
        &["migrate"],
        &[
            (
                "REELGRAPH_DATA_DIR",
                data_dir.path().to_str().expect("utf-8"),
            ),
            ("DATABASE_URL", "mysql://somewhere/else"),
            ("REELGRAPH_LOG_FORMAT", "json"),
        ],
    )
    .await;
    assert!(!ok);
    let logged = said
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["fields"]["message"] == "stopped")
        .unwrap_or_else(|| panic!("no JSON line says why: {said}"));
    assert_eq!(logged["level"], "ERROR", "{logged}");
    assert!(
        logged["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("DATABASE_URL must start with postgres://")),
        "{logged}"
    );
}

/// An access-token lifetime outside 1 s to a day is refused at start, naming the setting.
#[tokio::test]
async fn an_access_token_lifetime_out_of_range_is_refused() {
    for ttl in ["0", "86401", "99999999999999999"] {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let (ok, said) = run_reelgraph(
            &["migrate"],
            &[
                (
                    "REELGRAPH_DATA_DIR",
                    data_dir.path().to_str().expect("utf-8"),
                ),
                ("REELGRAPH_ACCESS_TOKEN_TTL", ttl),
            ],
        )
        .await;
        assert!(!ok, "{ttl}");
        assert!(said.contains("--access-token-ttl"), "{said}");
    }
}

/// A worker told to stop while the database does not answer (its connections frozen) stops:
/// its claims and reaping are raced against the shutdown instead of waiting for the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stops_while_the_database_does_not_answer() {
    let (app, freeze) = crate::helpers::spawn_behind_relay(|a| {
        a.no_worker = true;
        a.config.job_poll_ms = 20;
    })
    .await;
    let stop = app.state.shutdown.child_token();
    let pool = tokio::spawn(reelgraph::app::worker_pool(&app.state).run(stop.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    freeze.store(true, std::sync::atomic::Ordering::SeqCst);
    // Claiming (every 20 ms) on a connection that no longer answers.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(15), pool)
        .await
        .expect("the worker stopped within 15 s")
        .expect("joined");
}

/// A server started on a new, empty PostgreSQL database migrates it and starts without a
/// warning about it: its LISTEN connection, started while the migrations run, read the ended
/// sessions before the tables existed and logged `relation "sessions" does not exist` (when it
/// won that race, as it mostly does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_a_new_database_starts_without_warnings() {
    let database = format!("{}/{}", postgres_base_url(), create_database().await);
    let data_dir = tempfile::tempdir().expect("temp dir");
    let storage = data_dir.path().join("objects");
    let storage = storage.to_str().expect("utf-8 path");
    let (mut server, port) = crate::helpers::serve_binary(
        data_dir.path(),
        &[
            ("DATABASE_URL", database.as_str()),
            ("JWT_SECRET", TEST_JWT_SECRET),
            ("REELGRAPH_STORAGE_DIR", storage),
            ("RUST_LOG", "warn"),
        ],
        true,
    );
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut answered = false;
    for _ in 0..240 {
        if healthz(&url).await.0 {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(answered, "the server never answered /healthz");
    server.start_kill().expect("stopped");
    let output = server.wait_with_output().await.expect("ended");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!log.contains("could not re-read"), "{log}");
    assert!(!log.contains("does not exist"), "{log}");
}
