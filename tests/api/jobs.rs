//! The jobs engine through the API and through its own functions, on both databases, with the
//! server's embedded worker pool running the jobs.

use std::time::Duration;

use entity::{JobKind, JobStatus, job, job_transition};
use reelgraph::jobs::{NewJob, lifecycle, queue};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    both_backends,
    helpers::{
        Backend, Session, TestApp, collect_until_complete, error_code, next_payload, subscribe,
    },
};

const JOB: &str =
    "query($id: ID!) { job(id: $id) { id type status progress attempts error currentPhase
    children { totalCount nodes { type status } } } }";

/// `n` `diagnostics.sleep` jobs of `owner`'s, to give a parent as its children.
fn sleepers(owner: &Session, n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| {
            NewJob::new(
                JobKind::Workflow,
                "diagnostics.sleep",
                owner.user_id.parse().expect("uuid"),
                json!({ "i": i }),
            )
        })
        .collect()
}

/// Enqueues a job owned by `owner` the way a mutation would, and announces it.
pub async fn enqueue(
    app: &TestApp,
    owner: &Session,
    job_type: &str,
    input: Value,
    max_attempts: i32,
) -> Uuid {
    let mut new = NewJob::new(
        JobKind::Workflow,
        job_type,
        owner.user_id.parse().expect("uuid"),
        input,
    );
    new.max_attempts = max_attempts;
    let job = enqueue_unannounced(app, new).await;
    app.state.events.publish(&[queue::event_of(&job)]).await;
    job.id
}

/// Inserts `new` the way a mutation would, without announcing it (as when its event is lost).
async fn enqueue_unannounced(app: &TestApp, new: NewJob) -> job::Model {
    let txn = queue::begin_write(&app.state.db).await.expect("txn");
    let enqueued = queue::enqueue(&txn, new)
        .await
        .map_err(|e| e.public_message())
        .expect("enqueued");
    txn.commit().await.expect("commit");
    enqueued.job
}

/// Makes every queued job due now (past its backoff) and claims up to `n` as `worker`.
async fn claim_due(app: &TestApp, worker: &str, n: u64) -> Vec<job::Model> {
    job::Entity::update_many()
        .col_expr(
            job::Column::RunAt,
            sea_orm::sea_query::Expr::val(chrono::Utc::now() - chrono::Duration::seconds(60)),
        )
        .exec(&app.state.db)
        .await
        .expect("due");
    queue::claim(&app.state.db, worker, n, Duration::from_secs(30))
        .await
        .expect("claim")
}

/// Ends the claimed `job`'s attempt `how`, as its worker would.
async fn finish_claimed(app: &TestApp, job: &job::Model, how: lifecycle::Finish) -> bool {
    let lease = queue::Lease::of(job).expect("claimed");
    lifecycle::finish(&app.state.db, &app.state.events, lease, how, None)
        .await
        .map_err(|e| e.public_message())
        .expect("finished")
}

/// Polls the job through the API until `done(job)` holds (at most `within`).
pub async fn wait_for(
    app: &TestApp,
    token: &str,
    id: Uuid,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let data = app.ok(Some(token), JOB, json!({ "id": id })).await;
        if done(&data["job"]) {
            return data["job"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job never got there: {data:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |job| job["status"] == status
}

/// How many times the job entered `status`, from its timeline.
pub async fn transitions(app: &TestApp, id: Uuid, status: JobStatus) -> u64 {
    job_transition::Entity::find()
        .filter(job_transition::Column::JobId.eq(id))
        .filter(job_transition::Column::Status.eq(status))
        .count(&app.state.db)
        .await
        .expect("count")
}

/// Progress is given to the millionth: a third done is 0.333333, not 0.3333333333333333.
async fn progress_is_given_to_the_millionth(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("thirds@example.com").await;
    let id = enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 6_000, "steps": 3 }),
        1,
    )
    .await;
    let job = wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(20),
        |job| job["progress"].as_f64().is_some_and(|p| p > 0.0),
    )
    .await;
    assert_eq!(job["progress"].to_string(), "0.333333", "{job}");
    app.ok(
        Some(&owner.access_token),
        "mutation($id: ID!) { cancelJob(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await;
}

async fn a_job_runs_to_done_with_progress_and_is_completed_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("jobs@example.com").await;
    let id = enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 200, "steps": 4, "output": { "ok": 1 } }),
        3,
    )
    .await;
    let job = wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(20),
        status_is("DONE"),
    )
    .await;
    assert_eq!(job["progress"], 1.0);
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["currentPhase"], "sleeping");
    assert_eq!(transitions(&app, id, JobStatus::Done).await, 1);
    assert_eq!(transitions(&app, id, JobStatus::Running).await, 1);

    let stranger = app.register("stranger-jobs@example.com").await;
    let hidden = app
        .gql(Some(&stranger.access_token), JOB, json!({ "id": id }))
        .await;
    assert_eq!(error_code(&hidden), "NOT_FOUND");
    let list = app
        .ok(
            Some(&stranger.access_token),
            "{ jobs { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(list["jobs"]["totalCount"], 0);
    let mine = app
        .ok(
            Some(&owner.access_token),
            "{ jobs(status: [DONE], rootOnly: true) { totalCount nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(mine["jobs"]["nodes"], json!([{ "id": id.to_string() }]));
}

async fn a_parent_waits_for_its_children_then_runs_its_last_step(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("fan@example.com").await;
    let id = enqueue(
        &app,
        &owner,
        "diagnostics.fanout",
        json!({ "children": 3, "child_ms": 50 }),
        3,
    )
    .await;
    let job = wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(30),
        status_is("DONE"),
    )
    .await;
    assert_eq!(
        job["children"]["totalCount"], 4,
        "three children and the final step: {job:#}"
    );
    let children = job["children"]["nodes"].as_array().expect("nodes");
    assert_eq!(children.len(), 4, "{job:#}");
    assert!(children.iter().all(|c| c["status"] == "DONE"), "{job:#}");
    let row = job::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .expect("row")
        .expect("job");
    assert_eq!(
        row.output,
        Some(json!({ "assembled": 3 })),
        "the parent carries its last step's output"
    );
    assert_eq!(row.pending_children, 0);
    assert_eq!(transitions(&app, id, JobStatus::Waiting).await, 1);
    assert_eq!(transitions(&app, id, JobStatus::Done).await, 1);
}

async fn a_child_that_fails_fails_its_parent_and_cancels_its_siblings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("fail@example.com").await;
    let id = enqueue(
        &app,
        &owner,
        "diagnostics.fanout",
        json!({ "children": 4, "child_ms": 3000, "failing_child": 0 }),
        1,
    )
    .await;
    let job = wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(30),
        status_is("FAILED"),
    )
    .await;
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("diagnostics.sleep failed"),
        "{job:#}"
    );
    // Every sibling ends cancelled (running ones within a heartbeat), none done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let data = app
            .ok(Some(&owner.access_token), JOB, json!({ "id": id }))
            .await;
        let statuses: Vec<String> = data["job"]["children"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|c| c["status"].as_str().unwrap_or_default().to_owned())
            .collect();
        if statuses.iter().all(|s| s == "FAILED" || s == "CANCELLED") {
            assert_eq!(
                statuses.iter().filter(|s| *s == "FAILED").count(),
                1,
                "{statuses:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "siblings still going: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Cancelling a running job ends it CANCELLED and stops its handler: with one worker slot,
/// the next job can only run once the cancelled handler has given its slot back.
async fn cancelling_a_running_job_stops_its_handler(backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.config.workers = Some(1)).await;
    let owner = app.register("cancel@example.com").await;
    let id = enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 600000, "steps": 6000 }),
        3,
    )
    .await;
    wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(20),
        |j| j["status"] == "RUNNING" && j["progress"].as_f64() > Some(0.0),
    )
    .await;
    let data = app
        .ok(
            Some(&owner.access_token),
            "mutation($id: ID!) { cancelJob(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data["cancelJob"]["status"], "RUNNING",
        "a running job is stopped by its worker"
    );
    wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(30),
        status_is("CANCELLED"),
    )
    .await;
    // The handler is gone: the one slot runs the next job (the cancelled one would hold it
    // for ten minutes).
    let next = enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 50, "steps": 1 }),
        1,
    )
    .await;
    wait_for(
        &app,
        &owner.access_token,
        next,
        Duration::from_secs(30),
        status_is("DONE"),
    )
    .await;
    let later = job::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .expect("row")
        .expect("job");
    assert_eq!(later.status, JobStatus::Cancelled);
    assert_eq!(transitions(&app, id, JobStatus::Done).await, 0);

    // A queued job is cancelled at once.
    let mut queued = NewJob::new(
        JobKind::Workflow,
        "diagnostics.sleep",
        owner.user_id.parse().expect("uuid"),
        json!({}),
    );
    queued.run_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let txn = queue::begin_write(&app.state.db).await.expect("txn");
    let queued = queue::enqueue(&txn, queued)
        .await
        .map_err(|e| e.public_message())
        .expect("enqueue")
        .job;
    txn.commit().await.expect("commit");
    let data = app
        .ok(
            Some(&owner.access_token),
            "mutation($id: ID!) { cancelJob(id: $id) { status } }",
            json!({ "id": queued.id }),
        )
        .await;
    assert_eq!(data["cancelJob"]["status"], "CANCELLED");
}

async fn a_failed_job_is_retried_as_a_new_attempt(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("retry@example.com").await;
    // Fails its first attempt, and has only one.
    let id = enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 10, "fail_attempts": 1 }),
        1,
    )
    .await;
    let failed = wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(20),
        status_is("FAILED"),
    )
    .await;
    assert_eq!(failed["attempts"], 1);
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("failed on purpose")
    );
    let retry = "mutation($id: ID!) { retryJob(id: $id) { status error } }";
    let data = app
        .ok(Some(&owner.access_token), retry, json!({ "id": id }))
        .await;
    assert_eq!(
        data["retryJob"],
        json!({ "status": "QUEUED", "error": null })
    );
    let done = wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(20),
        status_is("DONE"),
    )
    .await;
    assert_eq!(done["attempts"], 2);
    let again = app
        .gql(Some(&owner.access_token), retry, json!({ "id": id }))
        .await;
    assert_eq!(error_code(&again), "CONFLICT", "a done job is not retried");

    // A job stopped halfway keeps its progress when queued again: progress does not go back
    // within an attempt, and the next attempt starts at 0 when a worker claims it.
    let slow = enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 60_000, "steps": 600 }),
        1,
    )
    .await;
    let token = Some(owner.access_token.as_str());
    wait_for(
        &app,
        &owner.access_token,
        slow,
        Duration::from_secs(20),
        |job| job["progress"].as_f64().is_some_and(|p| p > 0.0),
    )
    .await;
    let cancel = "mutation($id: ID!) { cancelJob(id: $id) { status } }";
    app.ok(token, cancel, json!({ "id": slow })).await;
    let stopped = wait_for(
        &app,
        &owner.access_token,
        slow,
        Duration::from_secs(20),
        status_is("CANCELLED"),
    )
    .await;
    let retried = app
        .ok(
            token,
            "mutation($id: ID!) { retryJob(id: $id) { attempts progress } }",
            json!({ "id": slow }),
        )
        .await;
    assert_eq!(retried["retryJob"]["attempts"], stopped["attempts"]);
    assert_eq!(retried["retryJob"]["progress"], stopped["progress"]);
    app.ok(token, cancel, json!({ "id": slow })).await;

    // Another member of the job's creator sees it, but may not retry it: a retry is billed
    // to the owner. A stranger does not even see it.
    let creator: Uuid = app
        .create_creator(&owner, "Retry Team")
        .await
        .parse()
        .expect("uuid");
    let member = app.register("retry-member@example.com").await;
    entity::creator_member::ActiveModel {
        id: sea_orm::Set(Uuid::now_v7()),
        creator_id: sea_orm::Set(creator),
        user_id: sea_orm::Set(member.user_id.parse().expect("uuid")),
        role: sea_orm::Set(entity::MemberRole::Member),
        created_at: sea_orm::Set(chrono::Utc::now()),
    }
    .insert(&app.state.db)
    .await
    .expect("member");
    let txn = queue::begin_write(&app.state.db).await.expect("txn");
    let mut teamwork = NewJob::new(
        JobKind::Workflow,
        "diagnostics.sleep",
        owner.user_id.parse().expect("uuid"),
        json!({ "ms": 10, "fail_attempts": 1 }),
    );
    teamwork.creator_id = Some(creator);
    teamwork.max_attempts = 1;
    let teamwork = queue::enqueue(&txn, teamwork)
        .await
        .map_err(|e| e.public_message())
        .expect("enqueue")
        .job;
    txn.commit().await.expect("commit");
    app.state
        .events
        .publish(&[queue::event_of(&teamwork)])
        .await;
    let teamwork = teamwork.id;
    wait_for(
        &app,
        &member.access_token,
        teamwork,
        Duration::from_secs(20),
        status_is("FAILED"),
    )
    .await;
    let body = app
        .gql(Some(&member.access_token), retry, json!({ "id": teamwork }))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let stranger = app.register("retry-stranger@example.com").await;
    let body = app
        .gql(
            Some(&stranger.access_token),
            retry,
            json!({ "id": teamwork }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let data = app
        .ok(Some(&owner.access_token), retry, json!({ "id": teamwork }))
        .await;
    assert_eq!(data["retryJob"]["status"], "QUEUED");

    // A transient failure with attempts left is retried by itself, after a backoff.
    let id = enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 10, "fail_attempts": 1 }),
        3,
    )
    .await;
    let done = wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(20),
        status_is("DONE"),
    )
    .await;
    assert_eq!(done["attempts"], 2);
}

/// A job of a type this process has no handler for (one a newer version enqueued, during a
/// rollout) stays queued for a process that has one: it is not claimed and failed for good.
async fn an_unknown_job_type_waits_for_a_worker_that_knows_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("unknown@example.com").await;
    let unknown = enqueue(&app, &owner, "no.such.type", json!({}), 3).await;
    // Queued after it, so the pool has passed over the unknown one by the time this is done.
    let known = enqueue(&app, &owner, "diagnostics.sleep", json!({ "ms": 10 }), 3).await;
    wait_for(
        &app,
        &owner.access_token,
        known,
        Duration::from_secs(20),
        status_is("DONE"),
    )
    .await;
    let job = app
        .ok(Some(&owner.access_token), JOB, json!({ "id": unknown }))
        .await;
    assert_eq!(job["job"]["status"], "QUEUED", "{job:#}");
    assert_eq!(job["job"]["attempts"], 0, "{job:#}");

    // A claim limited to the types it knows takes the known job only, and no deliveries
    // when it does not know them (on an app whose own pool claims nothing).
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("unknown-claims@example.com").await;
    let unknown = enqueue(&app, &owner, "no.such.type", json!({}), 3).await;
    let delivery = enqueue(
        &app,
        &owner,
        reelgraph::jobs::webhooks::JOB_TYPE,
        json!({}),
        3,
    )
    .await;
    let other = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 3).await;
    let slots = queue::Slots {
        work: 5,
        deliveries: 5,
    };
    let known_types = ["diagnostics.sleep".to_owned()];
    let claimed = queue::claim_slots(
        &app.state.db,
        "old-worker",
        slots,
        Duration::from_secs(30),
        Some(&known_types),
    )
    .await
    .map_err(|e| e.public_message())
    .expect("claim");
    let ids: Vec<Uuid> = claimed.iter().map(|j| j.id).collect();
    assert_eq!(ids, [other], "not {unknown} nor the delivery {delivery}");
}

async fn idempotency_keys_return_the_same_unfinished_job(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("idem@example.com").await;
    let make = || {
        let mut new = NewJob::new(
            JobKind::Render,
            "diagnostics.sleep",
            owner.user_id.parse().expect("uuid"),
            json!({}),
        );
        new.idempotency_key = Some("render-42".to_owned());
        new
    };
    let attempts = (0..8).map(|_| {
        let app = &app;
        let new = make();
        async move {
            let txn = queue::begin_write(&app.state.db).await.expect("txn");
            let enqueued = queue::enqueue(&txn, new)
                .await
                .map_err(|e| e.public_message())
                .expect("enqueue");
            txn.commit().await.expect("commit");
            enqueued.job.id
        }
    });
    let ids = futures_util::future::join_all(attempts).await;
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let total = job::Entity::find()
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(total, 1);
}

async fn a_worker_that_lost_its_lease_cannot_write_progress_or_complete(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("fence@example.com").await;
    let id = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 5).await;
    let lease_time = Duration::from_secs(30);
    let first = queue::claim(&app.state.db, "stale-worker", 1, lease_time)
        .await
        .expect("claim");
    let stale = queue::Lease::of(&first[0]).expect("lease");
    // The stale worker stops heartbeating; its lease runs out and the reaper re-queues the job.
    job::Entity::update_many()
        .col_expr(
            job::Column::LeaseExpiresAt,
            sea_orm::sea_query::Expr::val(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(job::Column::Id.eq(id))
        .exec(&app.state.db)
        .await
        .expect("expire");
    queue::reap_expired(&app.state.db)
        .await
        .map_err(|e| e.public_message())
        .expect("reap");
    job::Entity::update_many()
        .col_expr(
            job::Column::RunAt,
            sea_orm::sea_query::Expr::val(chrono::Utc::now()),
        )
        .filter(job::Column::Id.eq(id))
        .exec(&app.state.db)
        .await
        .expect("skip backoff");
    let second = queue::claim(&app.state.db, "new-worker", 1, lease_time)
        .await
        .expect("claim");
    let current = queue::Lease::of(&second[0]).expect("lease");
    assert_ne!(stale.token, current.token);

    let progress = queue::progress(&app.state.db, stale, 0.9, Some("stale"), lease_time)
        .await
        .map_err(|e| e.public_message())
        .expect("query");
    assert!(progress.is_none(), "a stale lease writes no progress");
    // A handler's writes to other rows carry the same fence (`queue::held`).
    let owner_id: Uuid = owner.user_id.parse().expect("uuid");
    for (lease, name, expected) in [(stale, "stale", 0), (current, "current", 1)] {
        let written = entity::user::Entity::update_many()
            .col_expr(
                entity::user::Column::DisplayName,
                sea_orm::sea_query::Expr::val(name),
            )
            .filter(entity::user::Column::Id.eq(owner_id))
            .filter(queue::held(lease))
            .exec(&app.state.db)
            .await
            .expect("update");
        assert_eq!(written.rows_affected, expected, "{name}");
    }
    assert!(
        queue::heartbeat(&app.state.db, stale, lease_time)
            .await
            .map_err(|e| e.public_message())
            .expect("query")
            .is_none()
    );
    let done = lifecycle::Finish::Done {
        output: json!({ "by": "stale" }),
        output_ref: None,
    };
    let applied = lifecycle::finish(
        &app.state.db,
        &app.state.events,
        stale,
        done,
        Some("stale-worker"),
    )
    .await
    .map_err(|e| e.public_message())
    .expect("finish");
    assert!(!applied, "a stale lease cannot complete");

    let done = lifecycle::Finish::Done {
        output: json!({ "by": "current" }),
        output_ref: None,
    };
    let applied = lifecycle::finish(
        &app.state.db,
        &app.state.events,
        current,
        done,
        Some("new-worker"),
    )
    .await
    .map_err(|e| e.public_message())
    .expect("finish");
    assert!(applied);
    let row = job::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .expect("row")
        .expect("job");
    assert_eq!(row.status, JobStatus::Done);
    assert_eq!(row.output, Some(json!({ "by": "current" })));
    assert_eq!(row.attempts, 2);
    assert_eq!(transitions(&app, id, JobStatus::Done).await, 1);
}

/// Sets `id`'s lease to end `secs` from now (negative: already ended).
async fn lease_ends_in(app: &TestApp, id: Uuid, secs: i64) {
    job::Entity::update_many()
        .col_expr(
            job::Column::LeaseExpiresAt,
            sea_orm::sea_query::Expr::val(chrono::Utc::now() + chrono::Duration::seconds(secs)),
        )
        .filter(job::Column::Id.eq(id))
        .exec(&app.state.db)
        .await
        .expect("lease set");
}

/// The reaper acts only on a lease that is still over when it writes: one its worker renewed
/// after the reaper read the row (a heartbeat that waited on a lock) is left alone, whether
/// the reaper would re-queue, fail or cancel the job. One job the reaper cannot write does not
/// stop it recovering the others.
async fn the_reaper_leaves_renewed_leases_alone_and_goes_on_past_a_failing_job(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("reaper@example.com").await;
    let lease_time = Duration::from_secs(30);
    let renewed = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 3).await;
    let claimed = queue::claim(&app.state.db, "slow-worker", 1, lease_time)
        .await
        .expect("claim");
    let lease = queue::Lease::of(&claimed[0]).expect("lease");
    // As the reaper saw it a moment ago: over. The heartbeat renewed it since.
    let reaper_read_at = chrono::Utc::now();
    let mut reaper_view = lease;
    reaper_view.expired_before = Some(reaper_read_at);
    for how in [
        lifecycle::Finish::Cancelled,
        lifecycle::Finish::Failed {
            error: "worker stopped responding on all 3 attempts".into(),
            retryable: false,
        },
    ] {
        let txn = queue::begin_write(&app.state.db).await.expect("txn");
        let finished = lifecycle::finish_in(&txn, reaper_view, how, None)
            .await
            .map_err(|e| e.public_message())
            .expect("finish");
        txn.commit().await.expect("commit");
        assert!(!finished.applied, "a renewed lease is not ended");
    }
    let row = job::Entity::find_by_id(renewed)
        .one(&app.state.db)
        .await
        .expect("row")
        .expect("job");
    assert_eq!(row.status, JobStatus::Running);
    assert!(
        queue::heartbeat(&app.state.db, lease, lease_time)
            .await
            .map_err(|e| e.public_message())
            .expect("heartbeat")
            .is_some(),
        "its worker still holds it"
    );
    // The same lease once over is ended.
    lease_ends_in(&app, renewed, -1).await;
    let txn = queue::begin_write(&app.state.db).await.expect("txn");
    let finished = lifecycle::finish_in(&txn, reaper_view, lifecycle::Finish::Cancelled, None)
        .await
        .map_err(|e| e.public_message())
        .expect("finish");
    txn.commit().await.expect("commit");
    assert!(finished.applied, "an expired lease is ended");

    // Two expired jobs; writing the first fails (a PL/pgSQL trigger raises an error, so
    // this part runs on PostgreSQL).
    if backend == Backend::Postgres {
        use sea_orm::ConnectionTrait;
        let poisoned = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 3).await;
        let healthy = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 3).await;
        let claimed = queue::claim(&app.state.db, "dead-worker", 2, lease_time)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 2);
        lease_ends_in(&app, poisoned, -20).await;
        lease_ends_in(&app, healthy, -10).await;
        app.state
            .db
            .execute_unprepared(&format!(
                "CREATE FUNCTION refuse_job() RETURNS trigger AS $$ BEGIN \
                 IF NEW.id = '{poisoned}' AND NEW.status <> OLD.status THEN \
                 RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER refuse_job BEFORE UPDATE ON jobs FOR EACH ROW \
                 EXECUTE FUNCTION refuse_job();"
            ))
            .await
            .expect("trigger");
        let events = queue::reap_expired(&app.state.db)
            .await
            .map_err(|e| e.public_message())
            .expect("the pass goes on");
        assert!(events.iter().any(|e| e.job_id == healthy), "{events:?}");
        for (id, expected) in [(healthy, JobStatus::Queued), (poisoned, JobStatus::Running)] {
            let row = job::Entity::find_by_id(id)
                .one(&app.state.db)
                .await
                .expect("row")
                .expect("job");
            assert_eq!(row.status, expected);
        }
    }
}

/// A worker whose write of a job's end fails (here the first two, refused by a trigger: as in
/// a failover) tries again, keeping its lease, instead of leaving the job to the reaper to run
/// again: the job is DONE after its one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_tries_again_to_record_a_jobs_end() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn(Backend::Postgres).await;
    let owner = app.register("finisher@example.com").await;
    app.state
        .db
        .execute_unprepared(
            "CREATE SEQUENCE ends_refused; \
             CREATE FUNCTION refuse_end() RETURNS trigger AS $$ BEGIN \
             IF NEW.status = 'DONE' AND OLD.status = 'RUNNING' AND nextval('ends_refused') <= 2 THEN \
             RAISE EXCEPTION 'the database is failing over'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER refuse_end BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_end();",
        )
        .await
        .expect("trigger");
    let id = enqueue(&app, &owner, "diagnostics.sleep", json!({ "ms": 10 }), 3).await;
    let done = wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(60),
        status_is("DONE"),
    )
    .await;
    assert_eq!(done["attempts"], 1, "{done}");
    let refused = app
        .state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT last_value FROM ends_refused",
        ))
        .await
        .expect("read")
        .expect("row")
        .try_get::<i64>("", "last_value")
        .expect("value");
    assert_eq!(refused, 3, "two refused, the third recorded");
}

/// Waits for the bus to tell its subscribers to read again.
async fn next_resync(
    bus: &mut tokio::sync::broadcast::Receiver<reelgraph::jobs::events::BusMessage>,
) {
    loop {
        if let Ok(reelgraph::jobs::events::BusMessage::Resync) = bus.recv().await {
            return;
        }
    }
}

/// A LISTEN connection that stops carrying anything without closing is noticed (it must answer
/// a check after a quiet spell) and replaced, and subscribers are told to read again, instead
/// of the server waiting for notifications on it for ever; so is one that ends with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_connection_dropped_silently_is_replaced() {
    let (app, freeze) = crate::helpers::spawn_behind_relay(|a| {
        a.no_worker = true;
        a.config.listen_check_ms = 300;
    })
    .await;
    let mut bus = app.state.events.subscribe();
    // Settled: the listener answers its checks.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    freeze.store(true, std::sync::atomic::Ordering::SeqCst);
    let resync = tokio::time::timeout(Duration::from_secs(20), next_resync(&mut bus)).await;
    assert!(
        resync.is_ok(),
        "the frozen LISTEN connection was never replaced"
    );
    // A connection that ends with an error is replaced too, and subscribers told. (Ended from
    // a connection of the test's own: the app's older ones are frozen.)
    crate::helpers::end_database_connections(&app).await;
    let resync = tokio::time::timeout(Duration::from_secs(20), next_resync(&mut bus)).await;
    assert!(
        resync.is_ok(),
        "the ended LISTEN connection was never replaced"
    );
}

/// `retryJob` gives a job a new budget of attempts the size of its first (at most its type's),
/// not one the size of all it has had: a job failed after 6 of 6 attempts gets 9, not 12; one
/// of a single attempt gets one more; a webhook delivery 15 more.
async fn a_retry_adds_one_budget_of_attempts(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("budget@example.com").await;
    let retry = "mutation($id: ID!) { retryJob(id: $id) { status attempts maxAttempts } }";
    for (job_type, attempts, max, expected) in [
        ("diagnostics.sleep", 6, 6, 9),
        ("diagnostics.sleep", 1, 1, 2),
        ("diagnostics.sleep", 4, 4, 7),
        // A webhook delivery is enqueued with 15.
        ("webhook.deliver", 15, 15, 30),
    ] {
        let id = enqueue(&app, &owner, job_type, json!({}), max).await;
        job::Entity::update_many()
            .col_expr(
                job::Column::Status,
                sea_orm::sea_query::Expr::val(JobStatus::Failed),
            )
            .col_expr(
                job::Column::Attempts,
                sea_orm::sea_query::Expr::val(attempts),
            )
            .col_expr(
                job::Column::FinishedAt,
                sea_orm::sea_query::Expr::val(chrono::Utc::now()),
            )
            .filter(job::Column::Id.eq(id))
            .exec(&app.state.db)
            .await
            .expect("failed");
        let data = app
            .ok(Some(&owner.access_token), retry, json!({ "id": id }))
            .await;
        assert_eq!(
            data["retryJob"],
            json!({ "status": "QUEUED", "attempts": attempts, "maxAttempts": expected })
        );
    }
}

/// The next `jobsUpdated` event about `id` (earlier announcements skipped).
async fn next_about(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    id: Uuid,
) -> Value {
    loop {
        let update = next_payload(socket).await["data"]["jobsUpdated"].clone();
        if update["id"] == id.to_string() {
            return update;
        }
    }
}

/// Every subscriber of a job hears each event at once, and one read of the row serves them
/// all: a change costs the same SQL statements with 1 `jobUpdated` and 1 `jobsUpdated`
/// subscriber as with 6 of each.
async fn subscribers_of_one_job_share_one_read_per_event(backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.no_worker = true).await;
    let owner = app.register("watched@example.com").await;
    let mut costs = Vec::new();
    for subscribers in [1, 6] {
        let mut all_jobs = Vec::new();
        for _ in 0..subscribers {
            all_jobs.push(
                subscribe(
                    &app.base,
                    &owner.access_token,
                    "subscription { jobsUpdated { id status } }",
                    json!({}),
                )
                .await,
            );
        }
        // jobsUpdated has no first event, and one sent before the server has taken the
        // subscription in is not heard: announce jobs until every socket has heard one.
        let mut listening = vec![false; subscribers];
        for tries in 0.. {
            if !listening.contains(&false) {
                break;
            }
            assert!(
                tries < 30,
                "a jobsUpdated socket never heard a job: {listening:?}"
            );
            enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await;
            for (socket, heard) in all_jobs.iter_mut().zip(&mut listening) {
                if !*heard {
                    *heard = tokio::time::timeout(Duration::from_secs(2), next_payload(socket))
                        .await
                        .is_ok();
                }
            }
        }
        let id = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await;
        // Every socket has now also handled every announcement before this one.
        for socket in &mut all_jobs {
            assert_eq!(next_about(socket, id).await["status"], "QUEUED");
        }
        let mut one_job = Vec::new();
        for _ in 0..subscribers {
            let mut socket = subscribe(
                &app.base,
                &owner.access_token,
                "subscription($id: ID!) { jobUpdated(id: $id) { status } }",
                json!({ "id": id }),
            )
            .await;
            assert_eq!(
                next_payload(&mut socket).await["data"]["jobUpdated"]["status"],
                "QUEUED"
            );
            one_job.push(socket);
        }

        let before = app.statements();
        app.ok(
            Some(&owner.access_token),
            "mutation($id: ID!) { cancelJob(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
        for socket in &mut one_job {
            let updates = collect_until_complete(socket, Duration::from_secs(30)).await;
            assert_eq!(updates.len(), 1, "{updates:?}");
            assert_eq!(updates[0]["data"]["jobUpdated"]["status"], "CANCELLED");
        }
        for socket in &mut all_jobs {
            assert_eq!(next_about(socket, id).await["status"], "CANCELLED");
        }
        costs.push(app.statements() - before);
    }
    assert_eq!(
        costs[0], costs[1],
        "statements for one change, 1 vs 6 subscribers of each kind"
    );
}

/// `cancelJob` on a running job raises its flag; when its worker then dies (the lease runs
/// out) or stops and hands it back, the job ends CANCELLED instead of running again.
async fn a_job_asked_to_stop_is_not_run_again_when_its_worker_goes(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("cancel-reap@example.com").await;
    let lease_time = Duration::from_secs(30);
    let db = &app.state.db;
    let reaped = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 5).await;
    let released = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 5).await;
    let claimed = queue::claim(db, "doomed-worker", 2, lease_time)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    let lease_of = |id: Uuid| {
        claimed
            .iter()
            .find(|j| j.id == id)
            .and_then(queue::Lease::of)
            .expect("lease")
    };
    for id in [reaped, released] {
        let row = lifecycle::cancel(db, &app.state.events, id)
            .await
            .map_err(|e| e.public_message())
            .expect("cancel");
        assert_eq!(row.status, JobStatus::Running, "flagged, still running");
        assert!(row.cancel_requested);
    }

    // One worker dies: its lease runs out and the reaper finds the job.
    job::Entity::update_many()
        .col_expr(
            job::Column::LeaseExpiresAt,
            sea_orm::sea_query::Expr::val(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(job::Column::Id.eq(reaped))
        .exec(db)
        .await
        .expect("expire");
    queue::reap_expired(db)
        .await
        .map_err(|e| e.public_message())
        .expect("reap");
    // The other stops gracefully and hands its job back.
    let applied = lifecycle::finish(
        db,
        &app.state.events,
        lease_of(released),
        lifecycle::Finish::Released,
        Some("doomed-worker"),
    )
    .await
    .map_err(|e| e.public_message())
    .expect("release");
    assert!(applied);

    for id in [reaped, released] {
        let row = job::Entity::find_by_id(id)
            .one(db)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(row.status, JobStatus::Cancelled, "{id}");
        assert!(row.finished_at.is_some());
    }
    job::Entity::update_many()
        .col_expr(
            job::Column::RunAt,
            sea_orm::sea_query::Expr::val(chrono::Utc::now() - chrono::Duration::seconds(60)),
        )
        .exec(db)
        .await
        .expect("no backoff");
    let again = queue::claim(db, "new-worker", 5, lease_time)
        .await
        .expect("claim");
    assert!(again.is_empty(), "nothing to run again: {again:?}");
}

/// A job whose storage or database did not answer is put back in the queue with backoff, its
/// attempt not counted, for `OUTAGE_GRACE` from its start: more outages than it has attempts
/// do not fail it (three tries 1 s and 2 s apart failed every render in flight when object
/// storage restarted). Past the grace, such a failure counts as any other.
async fn an_outage_does_not_use_up_a_jobs_attempts(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("outage@example.com").await;
    let db = &app.state.db;
    let id = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 3).await;
    let fail = async |how: lifecycle::Finish| {
        let claimed = claim_due(&app, "outage-worker", 1).await;
        finish_claimed(&app, claimed.first().expect("claimed"), how).await;
        job::Entity::find_by_id(id)
            .one(db)
            .await
            .expect("read")
            .expect("row")
    };
    let outage = || lifecycle::Finish::Unavailable {
        error: "object storage was unavailable".into(),
    };
    for attempt in 1..=5 {
        let row = fail(outage()).await;
        assert_eq!(row.status, JobStatus::Queued, "outage {attempt}");
        assert_eq!(row.attempts, attempt);
        assert_eq!(row.max_attempts, 3 + attempt, "the attempt is not counted");
        assert_eq!(row.error.as_deref(), Some("object storage was unavailable"));
        assert!(row.run_at > chrono::Utc::now(), "backoff");
    }
    // Started longer ago than the grace: it counts, and the last attempt fails the job.
    job::Entity::update_many()
        .col_expr(
            job::Column::StartedAt,
            sea_orm::sea_query::Expr::val(
                chrono::Utc::now() - lifecycle::OUTAGE_GRACE - chrono::Duration::seconds(1),
            ),
        )
        .filter(job::Column::Id.eq(id))
        .exec(db)
        .await
        .expect("started long ago");
    for attempt in 6..=8 {
        let row = fail(outage()).await;
        assert_eq!(row.max_attempts, 8, "outage {attempt} counts");
        let expected = if attempt < 8 {
            JobStatus::Queued
        } else {
            JobStatus::Failed
        };
        assert_eq!(row.status, expected, "outage {attempt}");
    }
    // Retried by its owner: started again, and so is its grace.
    let retried = lifecycle::retry(db, &app.state.events, id)
        .await
        .map_err(|e| e.public_message())
        .expect("retry");
    assert_eq!(retried.started_at, None);
    let row = fail(outage()).await;
    assert_eq!(
        row.status,
        JobStatus::Queued,
        "an outage in the retry's grace"
    );
    assert_eq!(
        row.max_attempts,
        retried.max_attempts + 1,
        "the attempt is not counted"
    );
    assert!(
        row.started_at
            .is_some_and(|at| chrono::Utc::now() - at < lifecycle::OUTAGE_GRACE)
    );
}

/// A parent that ends DONE through its children keeps no error of an earlier attempt (its
/// worker stopped answering while it planned): `DONE` with "worker stopped responding;
/// retrying" was sent to clients and webhooks. Nor does it keep it while it waits.
async fn a_job_done_through_its_children_keeps_no_earlier_error(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("done-error@example.com").await;
    let owner_id: Uuid = owner.user_id.parse().expect("uuid");
    let db = &app.state.db;
    let parent = enqueue(&app, &owner, "diagnostics.fanout", json!({}), 3).await;
    let claim = async || {
        claim_due(&app, "planner", 1)
            .await
            .into_iter()
            .next()
            .expect("claimed")
    };
    let finish =
        async |job: &job::Model, how: lifecycle::Finish| finish_claimed(&app, job, how).await;
    let first = claim().await;
    let failed = lifecycle::Finish::Failed {
        error: "worker stopped responding; retrying".into(),
        retryable: true,
    };
    finish(&first, failed).await;
    let second = claim().await;
    assert_eq!(
        (second.error.as_deref(), second.current_phase.as_deref()),
        (None, None),
        "a new attempt shows nothing of the last one's end"
    );
    let child = NewJob::new(JobKind::Workflow, "diagnostics.sleep", owner_id, json!({}));
    let wait = lifecycle::Finish::Wait {
        children: vec![child],
        then: None,
    };
    finish(&second, wait).await;
    let read = async |id: Uuid| {
        job::Entity::find_by_id(id)
            .one(db)
            .await
            .expect("read")
            .expect("row")
    };
    let waiting = read(parent).await;
    assert_eq!(waiting.status, JobStatus::Waiting);
    assert_eq!(waiting.error, None);
    // One left waiting with it before this was so.
    job::Entity::update_many()
        .col_expr(
            job::Column::Error,
            sea_orm::sea_query::Expr::val("worker stopped responding; retrying"),
        )
        .filter(job::Column::Id.eq(parent))
        .exec(db)
        .await
        .expect("stale error");
    let child = claim().await;
    assert_eq!(child.parent_id, Some(parent));
    let done = lifecycle::Finish::Done {
        output: json!({}),
        output_ref: None,
    };
    finish(&child, done).await;
    let ended = read(parent).await;
    assert_eq!(ended.status, JobStatus::Done);
    assert_eq!(ended.error, None);
}

/// A cancelled job keeps no error of an earlier attempt, whether cancelled while queued for
/// its retry or while running: the error said why an attempt failed, not why the job ended
/// (a cancelled short showed "object storage was unavailable").
async fn a_cancelled_job_keeps_no_earlier_error(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("cancel-error@example.com").await;
    let queued = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 5).await;
    let running = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 5).await;
    let flaky = || lifecycle::Finish::Failed {
        error: "object storage was unavailable".into(),
        retryable: true,
    };
    for claimed in claim_due(&app, "flaky-worker", 2).await {
        assert!(finish_claimed(&app, &claimed, flaky()).await);
    }
    let claimed = claim_due(&app, "flaky-worker", 2).await;
    assert_eq!(claimed.len(), 2);
    // One put back in the queue, then cancelled there; the other cancelled while it runs,
    // its handler stopping as asked.
    let requeued = claimed.iter().find(|j| j.id == queued).expect("claimed");
    finish_claimed(&app, requeued, flaky()).await;
    let token = Some(owner.access_token.as_str());
    for id in [queued, running] {
        app.ok(
            token,
            "mutation($id: ID!) { cancelJob(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    }
    let stopping = claimed.iter().find(|j| j.id == running).expect("claimed");
    finish_claimed(&app, stopping, lifecycle::Finish::Cancelled).await;
    for id in [queued, running] {
        let job = app.ok(token, JOB, json!({ "id": id })).await;
        assert_eq!(job["job"]["status"], "CANCELLED", "{job}");
        assert!(job["job"]["error"].is_null(), "{job}");
    }
}

/// A `cancelJob` that lands while a handler is returning, before its heartbeat noticed, is not
/// lost: the handler's end (waiting for new children, a failure to retry, or one for good: a
/// probe stopped because its video was deleted) becomes CANCELLED,
/// no children are made, and nothing is claimed again. A job whose work did finish stays DONE.
async fn a_cancel_that_lands_as_the_handler_returns_wins(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("cancel-race@example.com").await;
    let owner_id: Uuid = owner.user_id.parse().expect("uuid");
    let (db, bus) = (&app.state.db, &app.state.events);
    let waits = enqueue(&app, &owner, "diagnostics.fanout", json!({}), 5).await;
    let retries = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 5).await;
    let gives_up = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 5).await;
    let done = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 5).await;
    let claimed = queue::claim(db, "racing-worker", 4, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 4);
    for id in [waits, retries, gives_up, done] {
        let row = lifecycle::cancel(db, bus, id)
            .await
            .map_err(|e| e.public_message())
            .expect("cancel");
        assert!(row.cancel_requested && row.status == JobStatus::Running);
    }
    let child = NewJob::new(JobKind::Workflow, "diagnostics.sleep", owner_id, json!({}));
    for (id, how) in [
        (
            waits,
            lifecycle::Finish::Wait {
                children: vec![child],
                then: None,
            },
        ),
        (
            retries,
            lifecycle::Finish::Failed {
                error: "flaky".into(),
                retryable: true,
            },
        ),
        (
            gives_up,
            lifecycle::Finish::Failed {
                error: "the video was deleted".into(),
                retryable: false,
            },
        ),
        (
            done,
            lifecycle::Finish::Done {
                output: json!({}),
                output_ref: None,
            },
        ),
    ] {
        let lease = claimed
            .iter()
            .find(|j| j.id == id)
            .and_then(queue::Lease::of)
            .expect("lease");
        let applied = lifecycle::finish(db, bus, lease, how, Some("racing-worker"))
            .await
            .map_err(|e| e.public_message())
            .expect("finish");
        assert!(applied);
    }
    for (id, status) in [
        (waits, JobStatus::Cancelled),
        (retries, JobStatus::Cancelled),
        (gives_up, JobStatus::Cancelled),
        (done, JobStatus::Done),
    ] {
        let row = job::Entity::find_by_id(id)
            .one(db)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(row.status, status, "{id}");
    }
    let children = job::Entity::find()
        .filter(job::Column::ParentId.eq(waits))
        .count(db)
        .await
        .expect("count");
    assert_eq!(children, 0, "a cancelled job makes no children");
    job::Entity::update_many()
        .col_expr(
            job::Column::RunAt,
            sea_orm::sea_query::Expr::val(chrono::Utc::now() - chrono::Duration::seconds(60)),
        )
        .exec(db)
        .await
        .expect("no backoff");
    let again = queue::claim(db, "racing-worker", 5, Duration::from_secs(30))
        .await
        .expect("claim");
    assert!(again.is_empty(), "nothing to run again: {again:?}");
}

/// `retryJob` on a parent whose failed attempt still has children stopping: their ends (done
/// or cancelled) do not count towards, fail or cancel the new attempt, and `children` lists
/// the new attempt's. Driven step by step through the engine's own functions.
async fn children_of_an_earlier_attempt_do_not_touch_the_retried_parent(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("retry-family@example.com").await;
    let (db, bus) = (&app.state.db, &app.state.events);
    let lease_time = Duration::from_secs(30);
    let id = enqueue(&app, &owner, "diagnostics.fanout", json!({}), 1).await;
    let kids = |n: usize| {
        (0..n)
            .map(|i| {
                NewJob::new(
                    JobKind::Workflow,
                    "diagnostics.sleep",
                    owner.user_id.parse().expect("uuid"),
                    json!({ "i": i }),
                )
            })
            .collect::<Vec<_>>()
    };
    let finish = |job: &job::Model, how: lifecycle::Finish| {
        let lease = queue::Lease::of(job).expect("lease");
        async move {
            lifecycle::finish(db, bus, lease, how, Some("test"))
                .await
                .map_err(|e| e.public_message())
                .expect("finish")
        }
    };
    let claim = |n: u64| async move {
        queue::claim(db, "test", n, lease_time)
            .await
            .map_err(|e| e.public_message())
            .expect("claim")
    };
    let parent = || async {
        job::Entity::find_by_id(id)
            .one(db)
            .await
            .expect("read")
            .expect("row")
    };

    // Attempt 1: three children; the first fails, the other two are running.
    let claimed = claim(1).await;
    let wait = lifecycle::Finish::Wait {
        children: kids(3),
        then: None,
    };
    assert!(finish(&claimed[0], wait).await);
    let old = claim(3).await;
    assert_eq!(old.len(), 3);
    let failed = lifecycle::Finish::Failed {
        error: "boom".into(),
        retryable: false,
    };
    assert!(finish(&old[0], failed).await);
    assert_eq!(parent().await.status, JobStatus::Failed);

    // Retried, and waiting on attempt 2's two children before the old two have stopped.
    lifecycle::retry(db, bus, id)
        .await
        .map_err(|e| e.public_message())
        .expect("retry");
    let claimed = claim(1).await;
    assert_eq!(claimed[0].id, id);
    let wait = lifecycle::Finish::Wait {
        children: kids(2),
        then: None,
    };
    assert!(finish(&claimed[0], wait).await);
    let waiting = parent().await;
    assert_eq!(
        (waiting.status, waiting.pending_children),
        (JobStatus::Waiting, 2)
    );

    // The old ones stop now: one finished its work anyway, one notices the cancel.
    let done = lifecycle::Finish::Done {
        output: json!({ "stale": true }),
        output_ref: None,
    };
    assert!(finish(&old[1], done).await);
    assert!(finish(&old[2], lifecycle::Finish::Cancelled).await);
    let still = parent().await;
    assert_eq!(
        (still.status, still.pending_children),
        (JobStatus::Waiting, 2),
        "the old attempt's children changed the new one"
    );
    let data = app
        .ok(Some(&owner.access_token), JOB, json!({ "id": id }))
        .await;
    assert_eq!(data["job"]["children"]["totalCount"], 2, "{data:#}");

    // Attempt 2's own children finish it.
    let new = claim(5).await;
    assert_eq!(new.len(), 2, "only attempt 2's children are queued");
    for (i, child) in new.iter().enumerate() {
        let done = lifecycle::Finish::Done {
            output: json!({ "new": i }),
            output_ref: None,
        };
        assert!(finish(child, done).await);
    }
    let finished = parent().await;
    assert_eq!(finished.status, JobStatus::Done);
    assert_eq!(finished.attempts, 2);
}

/// Fails the claimed `job` for good without announcing it (as when the failure's event is
/// lost), then retries it, announced.
async fn fail_unannounced_then_retry(app: &TestApp, job: &job::Model, error: &str) {
    let (db, bus) = (&app.state.db, &app.state.events);
    let txn = queue::begin_write(db).await.expect("txn");
    let failed = lifecycle::Finish::Failed {
        error: error.into(),
        retryable: false,
    };
    let lease = queue::Lease::of(job).expect("lease");
    let finished = lifecycle::finish_in(&txn, lease, failed, Some("test"))
        .await
        .map_err(|e| e.public_message())
        .expect("fail");
    assert!(finished.applied);
    txn.commit().await.expect("commit");
    lifecycle::retry(db, bus, job.id)
        .await
        .map_err(|e| e.public_message())
        .expect("retry");
}

/// A job fails and is retried before its subscribers read it (here: the failure's event is
/// never published at all). `jobUpdated` still sends FAILED, from the job's timeline, and
/// completes; `jobsUpdated` sends FAILED, then QUEUED.
async fn subscribers_see_an_end_that_a_retry_overtook(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("overtaken@example.com").await;
    let (db, bus) = (&app.state.db, &app.state.events);
    let id = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await;
    let claimed = queue::claim(db, "test", 1, Duration::from_secs(30))
        .await
        .expect("claim");
    let running = claimed[0].clone();
    let mut one = subscribe(
        &app.base,
        &owner.access_token,
        "subscription($id: ID!) { jobUpdated(id: $id) { status attempts error } }",
        json!({ "id": id }),
    )
    .await;
    let first = next_payload(&mut one).await;
    assert_eq!(first["data"]["jobUpdated"]["status"], "RUNNING");
    let mut all = subscribe(
        &app.base,
        &owner.access_token,
        "subscription { jobsUpdated { id status attempts error } }",
        json!({}),
    )
    .await;
    // jobsUpdated has no first event: announce the running job until it is heard.
    for tries in 0.. {
        assert!(tries < 30, "jobsUpdated never heard the running job");
        bus.publish(&[queue::event_of(&running)]).await;
        if let Ok(update) =
            tokio::time::timeout(Duration::from_secs(2), next_about(&mut all, id)).await
        {
            assert_eq!(update["status"], "RUNNING");
            break;
        }
    }

    fail_unannounced_then_retry(&app, &running, "the disk is full").await;

    let updates = collect_until_complete(&mut one, Duration::from_secs(10)).await;
    assert_eq!(
        updates
            .iter()
            .map(|u| u["data"]["jobUpdated"].clone())
            .collect::<Vec<_>>(),
        [json!({ "status": "FAILED", "attempts": 1, "error": "the disk is full" })]
    );
    let end = next_about(&mut all, id).await;
    assert_eq!(
        (&end["status"], &end["error"]),
        (&json!("FAILED"), &json!("the disk is full"))
    );
    assert_eq!(next_about(&mut all, id).await["status"], "QUEUED");

    // A job `jobsUpdated` has not heard of yet: failed (unannounced) and retried at once, it
    // is heard of first as QUEUED. Its failure still goes first.
    let mut new = NewJob::new(
        JobKind::Workflow,
        "diagnostics.sleep",
        owner.user_id.parse().expect("uuid"),
        json!({}),
    );
    new.max_attempts = 1;
    let unheard = enqueue_unannounced(&app, new).await.id;
    // (The first job, queued again, is claimed too.)
    let claimed = queue::claim(db, "test", 2, Duration::from_secs(30))
        .await
        .expect("claim");
    let claimed: Vec<_> = claimed.into_iter().filter(|j| j.id == unheard).collect();
    assert_eq!(claimed.len(), 1);
    fail_unannounced_then_retry(&app, &claimed[0], "the network went away").await;
    let end = next_about(&mut all, unheard).await;
    assert_eq!(
        (&end["status"], &end["error"]),
        (&json!("FAILED"), &json!("the network went away"))
    );
    assert_eq!(next_about(&mut all, unheard).await["status"], "QUEUED");
}

/// An owner's creator with a member on its team, and a queued job of the creator's
/// (unannounced): `(owner, member, creator, job)`. Accounts are named after `name`.
async fn team_job(app: &TestApp, name: &str) -> (Session, Session, Uuid, Uuid) {
    let owner = app.register(&format!("{name}-owner@example.com")).await;
    let member_email = format!("{name}-member@example.com");
    let member = app.register(&member_email).await;
    let creator: Uuid = app
        .create_creator(&owner, &format!("{name} team"))
        .await
        .parse()
        .expect("uuid");
    app.ok(
        Some(&owner.access_token),
        "mutation($c: ID!, $e: String!) { addCreatorMember(creatorId: $c, email: $e) { role } }",
        json!({ "c": creator, "e": member_email }),
    )
    .await;
    let mut new = NewJob::new(
        JobKind::Render,
        "diagnostics.sleep",
        owner.user_id.parse().expect("uuid"),
        json!({}),
    );
    new.creator_id = Some(creator);
    let id = enqueue_unannounced(app, new).await.id;
    (owner, member, creator, id)
}

/// A team member's `jobUpdated` does not read the team's members again at every event (a
/// render's parent changes several times a second): it keeps them for a moment
/// (`LIVE_MEMBERSHIPS_FOR`), so a job's events cost the one shared read of the job each.
async fn a_members_subscription_does_not_read_the_team_at_every_event(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (_, member, _, id) = team_job(&app, "busy").await;
    let (db, bus) = (&app.state.db, &app.state.events);
    let claimed = queue::claim(db, "test", 1, Duration::from_secs(30))
        .await
        .expect("claim");
    let lease = queue::Lease::of(&claimed[0]).expect("lease");
    let mut watching = subscribe(
        &app.base,
        &member.access_token,
        "subscription($id: ID!) { jobUpdated(id: $id) { status progress } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(
        next_payload(&mut watching).await["data"]["jobUpdated"]["status"],
        "RUNNING"
    );
    let before = app.statements();
    for step in 1..=5 {
        let row = queue::progress(
            db,
            lease,
            f64::from(step) / 10.0,
            None,
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| e.public_message())
        .expect("progress")
        .expect("held");
        bus.publish(&[queue::event_of(&row)]).await;
        let heard = next_payload(&mut watching).await;
        assert_eq!(
            heard["data"]["jobUpdated"]["progress"],
            f64::from(step) / 10.0,
            "{heard:#}"
        );
    }
    let spent = app.statements() - before;
    // Per event: the progress write, its announcement (NOTIFY, on PostgreSQL) and the shared
    // read of the job; and two more in all, for a slow machine (the team's members read again
    // once they are 2 s old, a background re-read landing in between). Read at every event,
    // they were 5 more.
    let per_event = match backend {
        Backend::Postgres => 3,
        Backend::Sqlite => 2,
    };
    assert!(
        spent <= 5 * per_event + 2,
        "{spent} statements for 5 events"
    );
}

/// A member watching a job of their creator (`jobUpdated`) who is removed from its team meanwhile
/// hears no more of it: at its next change, `NOT_FOUND` (as `job(id)` answers them now), and
/// the subscription completes. A subscription reads memberships afresh for the job's end.
async fn a_subscriber_removed_from_the_team_stops_hearing_of_its_jobs(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (owner, member, creator, id) = team_job(&app, "watched").await;
    let (db, bus) = (&app.state.db, &app.state.events);
    let mut watching = subscribe(
        &app.base,
        &member.access_token,
        "subscription($id: ID!) { jobUpdated(id: $id) { status outputUrl } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(
        next_payload(&mut watching).await["data"]["jobUpdated"]["status"],
        "QUEUED"
    );

    app.ok(
        Some(&owner.access_token),
        "mutation($c: ID!, $u: ID!) { removeCreatorMember(creatorId: $c, userId: $u) }",
        json!({ "c": creator, "u": member.user_id }),
    )
    .await;
    let claimed = queue::claim(db, "test", 1, Duration::from_secs(30))
        .await
        .expect("claim");
    let lease = queue::Lease::of(&claimed[0]).expect("lease");
    let done = lifecycle::Finish::Done {
        output: json!({}),
        output_ref: Some("renders/test/watched.mp4".into()),
    };
    lifecycle::finish(db, bus, lease, done, Some("test"))
        .await
        .map_err(|e| e.public_message())
        .expect("done");
    let heard = collect_until_complete(&mut watching, Duration::from_secs(20)).await;
    assert_eq!(heard.len(), 1, "{heard:#?}");
    assert_eq!(
        heard[0]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{heard:#?}"
    );
    assert!(heard[0]["data"].is_null(), "{heard:#?}");
    let body = app
        .gql(
            Some(&member.access_token),
            "query($id: ID!) { job(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert!(body["data"]["job"].is_null(), "{body}");
}

/// `jobs { nodes { parent { … } } }` reads the parents in one batch: the same statements for
/// 3 child jobs as for 12, under 2 parents.
async fn child_jobs_read_their_parents_in_one_batch(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("parents@example.com").await;
    let owner_id: Uuid = owner.user_id.parse().expect("uuid");
    let parents = [
        enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await,
        enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await,
    ];
    let query =
        "query($n: Int!) { jobs(first: $n, rootOnly: false) { nodes { id parent { id type } } } }";
    let mut costs = Vec::new();
    for children in [3, 12] {
        let txn = queue::begin_write(&app.state.db).await.expect("txn");
        for i in 0..children {
            let mut child =
                NewJob::new(JobKind::Workflow, "diagnostics.sleep", owner_id, json!({}));
            child.parent_id = Some(parents[i % 2]);
            let _ = queue::enqueue(&txn, child)
                .await
                .map_err(|e| e.public_message())
                .expect("child");
        }
        txn.commit().await.expect("commit");
        let before = app.request_statements();
        let data = app
            .ok(Some(&owner.access_token), query, json!({ "n": 100 }))
            .await;
        costs.push(app.request_statements() - before);
        let nodes = data["jobs"]["nodes"].as_array().expect("nodes");
        let with_parent = nodes.iter().filter(|n| !n["parent"].is_null()).count();
        assert_eq!(with_parent, if children == 3 { 3 } else { 15 }, "{data:#}");
    }
    assert_eq!(costs[0], costs[1], "statements for 3 and 15 children");
}

/// A stopping worker hands its job back: it keeps its progress while queued, one more
/// attempt is allowed, and the next run is a new attempt that starts from 0 (so progress
/// never goes backwards within one attempt).
async fn a_released_job_keeps_its_progress_until_its_next_attempt(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("released@example.com").await;
    let (db, bus) = (&app.state.db, &app.state.events);
    let lease_time = Duration::from_secs(30);
    let id = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 3).await;
    let claimed = queue::claim(db, "stopping", 1, lease_time)
        .await
        .expect("claim");
    let lease = queue::Lease::of(&claimed[0]).expect("lease");
    queue::progress(db, lease, 0.6, Some("halfway"), lease_time)
        .await
        .map_err(|e| e.public_message())
        .expect("progress")
        .expect("ours");
    let applied = lifecycle::finish(
        db,
        bus,
        lease,
        lifecycle::Finish::Released,
        Some("stopping"),
    )
    .await
    .map_err(|e| e.public_message())
    .expect("release");
    assert!(applied);
    let row = job::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.status, JobStatus::Queued);
    assert_eq!((row.attempts, row.max_attempts), (1, 4));
    assert!((row.progress - 0.6).abs() < 1e-9, "{}", row.progress);
    let again = queue::claim(db, "next", 1, lease_time)
        .await
        .expect("claim");
    assert_eq!((again[0].attempts, again[0].progress), (2, 0.0));
}

/// A `jobsUpdated` subscriber that falls behind the bus re-reads what changed since it
/// started: all of it, a page of 1,000 at a time (it used to stop after the first 1,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_jobs_subscriber_catches_up_on_every_change() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let owner = app.register("lagging@example.com").await;
    let owner_id: Uuid = owner.user_id.parse().expect("uuid");
    let mut socket = subscribe(
        &app.base,
        &owner.access_token,
        "subscription { jobsUpdated { id } }",
        json!({}),
    )
    .await;
    // jobsUpdated has no first event: announce a job until it is heard.
    let probe = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await;
    for tries in 0.. {
        assert!(tries < 30, "jobsUpdated never heard the probe job");
        if tokio::time::timeout(Duration::from_secs(2), next_about(&mut socket, probe))
            .await
            .is_ok()
        {
            break;
        }
        let row = job::Entity::find_by_id(probe)
            .one(&app.state.db)
            .await
            .expect("read")
            .expect("row");
        app.state.events.publish(&[queue::event_of(&row)]).await;
    }

    // 1,100 jobs change without a word on the bus, then the bus floods past the
    // subscriber's buffer (made-up versions of the probe), so it lags and re-reads.
    let txn = queue::begin_write(&app.state.db).await.expect("txn");
    let mut quiet = std::collections::HashSet::new();
    for _ in 0..1100 {
        let new = NewJob::new(JobKind::Workflow, "diagnostics.sleep", owner_id, json!({}));
        let enqueued = queue::enqueue(&txn, new)
            .await
            .map_err(|e| e.public_message())
            .expect("enqueue");
        quiet.insert(enqueued.job.id.to_string());
    }
    txn.commit().await.expect("commit");
    let flood: Vec<reelgraph::jobs::JobEvent> = (0..3000)
        .map(|i| reelgraph::jobs::JobEvent {
            job_id: probe,
            owner_id,
            seq: 1_000_000 + i,
            wake: false,
        })
        .collect();
    app.state.events.publish(&flood).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !quiet.is_empty() {
        let update = tokio::time::timeout_at(deadline, next_payload(&mut socket))
            .await
            .unwrap_or_else(|_| panic!("{} changed jobs never sent", quiet.len()));
        if let Some(id) = update["data"]["jobsUpdated"]["id"].as_str() {
            quiet.remove(id);
        }
    }
}

/// A child's output (a movie's scene, its assembled file) is given only once its parent is
/// DONE: a movie cancelled after its scenes rendered gives its minutes back, and its scenes
/// were downloadable from `children { outputUrl }` for nothing.
async fn a_childs_output_is_given_once_its_parent_is_done(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("parts@example.com").await;
    let owner_id: Uuid = owner.user_id.parse().expect("uuid");
    let db = &app.state.db;
    let mut ids: Vec<Uuid> = Vec::new();
    for (job_type, parent) in [("render.movie", None), ("render.scene", Some(0))] {
        let mut new = NewJob::new(JobKind::Render, job_type, owner_id, json!({}));
        new.parent_id = parent.map(|i: usize| ids[i]);
        ids.push(enqueue_unannounced(&app, new).await.id);
    }
    let key = "intermediates/scenes/parts.mp4";
    app.state
        .storage
        .put_bytes(key, b"mp4".to_vec(), "video/mp4")
        .await
        .expect("stored");
    let set = async |id: Uuid, status: JobStatus, output_ref: Option<&str>| {
        let mut row: job::ActiveModel = job::Entity::find_by_id(id)
            .one(db)
            .await
            .expect("read")
            .expect("row")
            .into();
        row.status = sea_orm::Set(status);
        row.output_ref = sea_orm::Set(output_ref.map(str::to_owned));
        row.finished_at = sea_orm::Set(Some(chrono::Utc::now()));
        row.update(db).await.expect("updated");
    };
    set(ids[1], JobStatus::Done, Some(key)).await;
    let outputs = async || {
        app.ok(
            Some(&owner.access_token),
            "query($movie: ID!, $scene: ID!) { scene: job(id: $scene) { outputUrl }
                movie: job(id: $movie) { children { nodes { outputUrl } } } }",
            json!({ "movie": ids[0], "scene": ids[1] }),
        )
        .await
    };
    for status in [JobStatus::Waiting, JobStatus::Cancelled, JobStatus::Failed] {
        set(ids[0], status, None).await;
        let data = outputs().await;
        assert!(data["scene"]["outputUrl"].is_null(), "{status:?}: {data}");
        assert!(
            data["movie"]["children"]["nodes"][0]["outputUrl"].is_null(),
            "{status:?}: {data}"
        );
    }
    set(ids[0], JobStatus::Done, Some("outputs/parts/movie.mp4")).await;
    let data = outputs().await;
    assert!(data["scene"]["outputUrl"].is_string(), "{data}");
    assert!(
        data["movie"]["children"]["nodes"][0]["outputUrl"].is_string(),
        "{data}"
    );
}

/// Finished jobs past the retention are deleted with their children, except a rendered movie,
/// whose MP4 its owner reaches only through the job; unfinished and recent jobs stay. A movie
/// that did not render goes with its plan and any MP4 its assembly left.
async fn clean_up_deletes_old_finished_jobs_but_keeps_rendered_movies(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("tidy@example.com").await;
    let owner_id: Uuid = owner.user_id.parse().expect("uuid");
    let db = &app.state.db;
    let long_ago = chrono::Utc::now() - chrono::Duration::days(40);
    let recently = chrono::Utc::now() - chrono::Duration::days(2);
    // (type, status, finished at, parent's index): what is there before the clean-up.
    let jobs = [
        ("render.movie", JobStatus::Done, Some(long_ago), None),
        ("render.scene", JobStatus::Done, Some(long_ago), Some(0)),
        ("render.movie", JobStatus::Failed, Some(long_ago), None),
        ("render.scene", JobStatus::Failed, Some(long_ago), Some(2)),
        ("render.movie", JobStatus::Cancelled, Some(long_ago), None),
        ("diagnostics.sleep", JobStatus::Done, Some(long_ago), None),
        ("video.probe", JobStatus::Done, Some(long_ago), None),
        ("diagnostics.sleep", JobStatus::Done, Some(recently), None),
        ("diagnostics.sleep", JobStatus::Queued, None, None),
    ];
    let mut ids: Vec<Uuid> = Vec::new();
    for (job_type, status, finished_at, parent) in jobs {
        let mut new = NewJob::new(JobKind::Render, job_type, owner_id, json!({}));
        new.parent_id = parent.map(|i: usize| ids[i]);
        let txn = queue::begin_write(db).await.expect("txn");
        let job = queue::enqueue(&txn, new)
            .await
            .map_err(|e| e.public_message())
            .expect("enqueued")
            .job;
        txn.commit().await.expect("commit");
        ids.push(job.id);
        let mut row: job::ActiveModel = job.into();
        row.status = sea_orm::Set(status);
        row.finished_at = sea_orm::Set(finished_at);
        row.update(db).await.expect("updated");
    }
    // The plans of the rendered movie and of the failed one, as `render.movie` stores them.
    let plan_key = |id: Uuid| format!("render-plans/{id}/plan.json");
    for movie in [ids[0], ids[2]] {
        app.state
            .storage
            .put_bytes(&plan_key(movie), b"{}".to_vec(), "application/json")
            .await
            .expect("stored");
        entity::render_plan::Entity::insert(entity::render_plan::ActiveModel {
            id: sea_orm::Set(Uuid::now_v7()),
            job_id: sea_orm::Set(movie),
            version: sea_orm::Set("1.0".to_owned()),
            spec: sea_orm::Set(json!({})),
            hash: sea_orm::Set("sha256:0".to_owned()),
            storage_key: sea_orm::Set(plan_key(movie)),
            created_at: sea_orm::Set(chrono::Utc::now()),
        })
        .exec(db)
        .await
        .expect("plan row");
    }
    // The MP4s of the rendered movie and of the cancelled one (its assembly finished as the
    // cancel landed).
    let output_key = |id: Uuid| format!("outputs/{id}/movie.mp4");
    for movie in [ids[0], ids[4]] {
        app.state
            .storage
            .put_bytes(&output_key(movie), b"mp4".to_vec(), "video/mp4")
            .await
            .expect("stored");
    }
    // First the failed movie's plan cannot be removed (a folder stands where it was): that
    // job stays for the next run, so that something still names the plan; the rest goes.
    let reelgraph::storage::Storage::Local(local) = &app.state.storage else {
        panic!("the test app stores locally");
    };
    let stuck = local.path_of(&plan_key(ids[2]));
    std::fs::remove_file(&stuck).expect("file removed");
    std::fs::create_dir_all(stuck.join("inside")).expect("folder made");
    let clean_up = || queue::clean_up(db, &app.state.storage, chrono::Duration::days(30));
    let deleted = clean_up()
        .await
        .map_err(|e| e.public_message())
        .expect("cleaned up");
    assert_eq!(
        deleted, 3,
        "the cancelled movie, the old diagnostics and probe"
    );
    assert!(
        job::Entity::find_by_id(ids[2])
            .one(db)
            .await
            .expect("read")
            .is_some()
    );
    std::fs::remove_dir_all(&stuck).expect("folder removed");
    let deleted = clean_up()
        .await
        .map_err(|e| e.public_message())
        .expect("cleaned up");
    let storage = &app.state.storage;
    let stored = |id: Uuid| {
        let key = plan_key(id);
        async move { storage.head(&key).await.expect("head").is_some() }
    };
    assert!(stored(ids[0]).await, "the rendered movie's plan is kept");
    assert!(
        !stored(ids[2]).await,
        "the failed movie's plan went with its job"
    );
    assert!(
        storage
            .head(&output_key(ids[0]))
            .await
            .expect("head")
            .is_some(),
        "the rendered movie's MP4 is kept"
    );
    assert!(
        storage
            .head(&output_key(ids[4]))
            .await
            .expect("head")
            .is_none(),
        "the cancelled movie's MP4 went with its job"
    );
    let mut left: Vec<Uuid> = job::Entity::find()
        .all(db)
        .await
        .expect("read")
        .into_iter()
        .map(|j| j.id)
        .collect();
    left.sort();
    // The movie and its scene, the recent job and the queued one.
    let mut kept = vec![ids[0], ids[1], ids[7], ids[8]];
    kept.sort();
    assert_eq!(left, kept);
    assert_eq!(deleted, 1, "the failed movie, once its plan could go");
}

/// Scene clips no render used for the configured time are removed, rows and files; recent
/// ones stay.
async fn scene_clips_unused_for_long_are_pruned(backend: Backend) {
    use entity::scene_cache_entry;
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let db = &app.state.db;
    let now = chrono::Utc::now();
    let entries = [
        ("a", now - chrono::Duration::days(31)),
        ("b", now - chrono::Duration::days(2)),
        ("c", now - chrono::Duration::days(40)),
    ];
    for (name, last_used_at) in entries {
        let hash = name.repeat(64);
        let key = format!("scenes/{hash}.mp4");
        app.state
            .storage
            .put_bytes(&key, b"clip".to_vec(), "video/mp4")
            .await
            .expect("stored");
        scene_cache_entry::Entity::insert(scene_cache_entry::ActiveModel {
            hash: sea_orm::Set(hash),
            storage_key: sea_orm::Set(key),
            duration_secs: sea_orm::Set(1.0),
            size_bytes: sea_orm::Set(Some(4)),
            created_at: sea_orm::Set(last_used_at),
            last_used_at: sea_orm::Set(last_used_at),
        })
        .exec(db)
        .await
        .expect("cache row");
    }
    // "c"'s file cannot be removed (a folder stands where it was): its row stays for the next
    // run to try again (without the row nothing would name the file), as the least stale of
    // the stale ones, behind any others (last used just past the 30 days, so 29 whole days
    // before this test's `now`).
    let reelgraph::storage::Storage::Local(local) = &app.state.storage else {
        panic!("the test app stores locally");
    };
    let stuck = local.path_of(&format!("scenes/{}.mp4", "c".repeat(64)));
    std::fs::remove_file(&stuck).expect("file removed");
    std::fs::create_dir_all(stuck.join("inside")).expect("folder made");
    let prune =
        || reelgraph::render::prune_scene_cache(db, &app.state.storage, chrono::Duration::days(30));
    assert_eq!(prune().await.expect("pruned"), 1);
    let left = || async {
        let mut left: Vec<(String, chrono::DateTime<chrono::Utc>)> =
            scene_cache_entry::Entity::find()
                .all(db)
                .await
                .expect("read")
                .into_iter()
                .map(|e| (e.hash, e.last_used_at))
                .collect();
        left.sort();
        left.into_iter()
            .map(|(hash, used)| (hash[..1].to_owned(), (now - used).num_days()))
            .collect::<Vec<_>>()
    };
    assert_eq!(left().await, [("b".to_owned(), 2), ("c".to_owned(), 29)]);
    std::fs::remove_dir_all(&stuck).expect("folder removed");
    assert_eq!(prune().await.expect("pruned"), 1);
    assert_eq!(left().await, [("b".to_owned(), 2)]);
    let storage = &app.state.storage;
    let stored = |name: &str| {
        let key = format!("scenes/{}.mp4", name.repeat(64));
        async move { storage.head(&key).await.expect("head").is_some() }
    };
    assert!(!stored("a").await, "the old clip's file is removed");
    assert!(stored("b").await, "the recent clip's file stays");
}

/// A folder `reelgraph-<job id>-…` in the temp folder, last touched `idle` ago.
fn work_folder(job_id: Uuid, idle: Duration) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("reelgraph-{job_id}-sweeptest"));
    std::fs::create_dir_all(&path).expect("folder");
    std::fs::write(path.join("source"), b"left by a killed process").expect("file");
    let when = std::time::SystemTime::now() - idle;
    std::fs::File::open(&path)
        .and_then(|dir| dir.set_modified(when))
        .expect("mtime");
    path
}

/// The work folders a killed process left are removed once their job is no longer running;
/// the folder of a running job, a folder just used, and another server's folder stay.
async fn work_folders_of_jobs_no_longer_running_are_swept(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("sweeper@example.com").await;
    let ended = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await;
    let running = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await;
    job::Entity::update_many()
        .col_expr(
            job::Column::Status,
            sea_orm::sea_query::Expr::val(JobStatus::Done),
        )
        .filter(job::Column::Id.eq(ended))
        .exec(&app.state.db)
        .await
        .expect("ended");
    job::Entity::update_many()
        .col_expr(
            job::Column::Status,
            sea_orm::sea_query::Expr::val(JobStatus::Running),
        )
        .filter(job::Column::Id.eq(running))
        .exec(&app.state.db)
        .await
        .expect("running");
    let hour = Duration::from_secs(3600);
    let stale = work_folder(ended, hour);
    let in_use = work_folder(running, hour);
    let fresh_id = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await;
    let fresh = work_folder(fresh_id, Duration::ZERO);
    let elsewhere = work_folder(Uuid::now_v7(), hour);
    // A request's download to hash an object: removed after a day.
    let hashing = |name: &str, idle: Duration| {
        let path = std::env::temp_dir().join(format!("reelgraph-hash-{name}"));
        std::fs::create_dir_all(&path).expect("folder");
        std::fs::File::open(&path)
            .and_then(|dir| dir.set_modified(std::time::SystemTime::now() - idle))
            .expect("mtime");
        path
    };
    let old_hashing = hashing(&Uuid::now_v7().to_string(), 25 * hour);
    let new_hashing = hashing(&Uuid::now_v7().to_string(), hour);

    let removed = reelgraph::jobs::work_folders::sweep(&app.state.db, Duration::from_secs(600))
        .await
        .expect("swept");
    assert!(!stale.exists(), "the ended job's folder is removed");
    assert!(!old_hashing.exists(), "a day-old hashing folder is removed");
    assert!(removed >= 2, "{removed}");
    for kept in [&in_use, &fresh, &elsewhere, &new_hashing] {
        assert!(kept.exists(), "{} stays", kept.display());
        std::fs::remove_dir_all(kept).expect("cleaned up");
    }
}

/// `jobs(status:)` with a status repeated past what one statement can bind (SQLite takes
/// 32,766 parameters, PostgreSQL 65,535) is answered, not an internal error.
async fn a_status_filter_repeated_many_times_is_answered(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let user = app.register("many-statuses@example.com").await;
    let statuses = vec!["QUEUED"; 70_000].join(",");
    let query = format!("{{ jobs(status: [{statuses}, DONE]) {{ totalCount }} }}");
    let data = app.ok(Some(&user.access_token), &query, json!({})).await;
    assert_eq!(data["jobs"]["totalCount"], 0, "{data}");
}

/// `Job.children` of a page of jobs costs the same statements whatever the page's size (it was
/// one page statement per parent), and each parent gets its own first children: those of its
/// latest attempt (or made before attempts were recorded), not an earlier attempt's.
async fn children_of_a_page_of_jobs_are_read_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("families@example.com").await;
    let mut expected = std::collections::HashMap::new();
    for _ in 0..8 {
        let mut parent = NewJob::new(
            JobKind::Workflow,
            "test.parked",
            owner.user_id.parse().expect("uuid"),
            json!({}),
        );
        parent.run_at = Some(chrono::Utc::now() + chrono::Duration::days(1));
        let parent = enqueue_unannounced(&app, parent).await;
        let mut mine = Vec::new();
        for attempt in [Some(0), None, Some(7), Some(0)] {
            let mut child = NewJob::new(
                JobKind::Workflow,
                "test.parked",
                owner.user_id.parse().expect("uuid"),
                json!({}),
            );
            child.parent_id = Some(parent.id);
            child.parent_attempt = attempt;
            child.run_at = Some(parent.run_at);
            let child = enqueue_unannounced(&app, child).await;
            if attempt != Some(7) {
                mine.push(child.id.to_string());
            }
        }
        expected.insert(parent.id.to_string(), mine);
    }
    let query = "query($n: Int) { jobs(rootOnly: true, first: $n) { nodes { id
        children(first: 2) { nodes { id } pageInfo { hasNextPage } } } } }";
    let mut costs = Vec::new();
    for n in [2, 8] {
        let before = app.request_statements();
        let data = app
            .ok(Some(&owner.access_token), query, json!({ "n": n }))
            .await;
        costs.push(app.request_statements() - before);
        let nodes = data["jobs"]["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), n, "{data}");
        for node in nodes {
            let mine = &expected[node["id"].as_str().expect("id")];
            let children: Vec<&str> = node["children"]["nodes"]
                .as_array()
                .expect("children")
                .iter()
                .map(|c| c["id"].as_str().expect("id"))
                .collect();
            assert_eq!(children, [mine[0].as_str(), mine[1].as_str()], "{node}");
            assert_eq!(node["children"]["pageInfo"]["hasNextPage"], true, "{node}");
        }
    }
    assert_eq!(
        costs[0], costs[1],
        "statements grew with the page: {costs:?}"
    );
}

both_backends!(
    progress_is_given_to_the_millionth,
    children_of_a_page_of_jobs_are_read_at_once,
    a_status_filter_repeated_many_times_is_answered,
    work_folders_of_jobs_no_longer_running_are_swept,
    a_job_runs_to_done_with_progress_and_is_completed_once,
    scene_clips_unused_for_long_are_pruned,
    a_parent_waits_for_its_children_then_runs_its_last_step,
    a_child_that_fails_fails_its_parent_and_cancels_its_siblings,
    cancelling_a_running_job_stops_its_handler,
    a_failed_job_is_retried_as_a_new_attempt,
    an_unknown_job_type_waits_for_a_worker_that_knows_it,
    idempotency_keys_return_the_same_unfinished_job,
    a_worker_that_lost_its_lease_cannot_write_progress_or_complete,
    the_reaper_leaves_renewed_leases_alone_and_goes_on_past_a_failing_job,
    a_retry_adds_one_budget_of_attempts,
    jobs_updated_rereads_find_changes_stamped_by_slower_clocks,
    jobs_updated_does_not_resend_what_ended_before_it_started,
    subscribers_of_one_job_share_one_read_per_event,
    a_job_asked_to_stop_is_not_run_again_when_its_worker_goes,
    a_cancel_that_lands_as_the_handler_returns_wins,
    a_cancelled_job_keeps_no_earlier_error,
    a_job_done_through_its_children_keeps_no_earlier_error,
    an_outage_does_not_use_up_a_jobs_attempts,
    a_lost_end_reaches_its_subscriber_however_busy_the_bus,
    children_of_an_earlier_attempt_do_not_touch_the_retried_parent,
    subscribers_see_an_end_that_a_retry_overtook,
    child_jobs_read_their_parents_in_one_batch,
    a_released_job_keeps_its_progress_until_its_next_attempt,
    clean_up_deletes_old_finished_jobs_but_keeps_rendered_movies,
    a_childs_output_is_given_once_its_parent_is_done,
    a_subscriber_removed_from_the_team_stops_hearing_of_its_jobs,
    a_members_subscription_does_not_read_the_team_at_every_event,
    a_handler_that_panics_fails_its_job_and_the_pool_goes_on,
    a_parent_whose_next_step_cannot_be_read_fails,
);

/// A waiting parent whose stored next step cannot be read (written by another version of the
/// server during a rolling upgrade) fails when its children are done, with a reason; before,
/// it ended DONE without ever running that step.
async fn a_parent_whose_next_step_cannot_be_read_fails(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("upgrade@example.com").await;
    let id = enqueue(
        &app,
        &owner,
        "diagnostics.fanout",
        json!({ "children": 2, "child_ms": 4000 }),
        3,
    )
    .await;
    wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(30),
        status_is("WAITING"),
    )
    .await;
    let db = &app.state.db;
    let waiting = job::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("read")
        .expect("job");
    let mut output = waiting.output.clone().expect("the next step is stored");
    assert!(output["continuation"].is_object(), "{output}");
    output["continuation"] = json!({ "stored_as": "a later version's step" });
    // Only while it still waits for both children (they take 4 s each).
    let rewritten = job::Entity::update_many()
        .col_expr(job::Column::Output, sea_orm::sea_query::Expr::value(output))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::Status.eq(JobStatus::Waiting))
        .filter(job::Column::PendingChildren.eq(2))
        .exec(db)
        .await
        .expect("rewritten");
    assert_eq!(rewritten.rows_affected, 1, "rewritten while it waited");
    let ended = wait_for(
        &app,
        &owner.access_token,
        id,
        Duration::from_secs(30),
        |j| j["status"] == "FAILED" || j["status"] == "DONE",
    )
    .await;
    assert_eq!(ended["status"], "FAILED", "{ended}");
    assert!(
        ended["error"]
            .as_str()
            .is_some_and(|e| e.contains("next step could not be read")),
        "{ended}"
    );
    assert_eq!(
        ended["children"]["totalCount"], 2,
        "no last step ran: {ended}"
    );
}

/// A job handler that panics (a bug) fails its job at once, with a message that tells the
/// owner nothing of the server, and the worker pool goes on with the next job. Before, the
/// panic ended the job's task: the job stayed RUNNING until its lease ran out, then ran (and
/// panicked) again on every attempt, and failed as a worker that stopped answering.
async fn a_handler_that_panics_fails_its_job_and_the_pool_goes_on(backend: Backend) {
    use reelgraph::jobs::handlers::{JobContext, JobFailure, JobHandler, Outcome, Registry};

    struct Panics;
    #[async_trait::async_trait]
    impl JobHandler for Panics {
        async fn run(&self, _: &JobContext) -> Result<Outcome, JobFailure> {
            panic!("a bug in a handler");
        }
    }
    struct Works;
    #[async_trait::async_trait]
    impl JobHandler for Works {
        async fn run(&self, _: &JobContext) -> Result<Outcome, JobFailure> {
            Ok(Outcome::Done {
                output: json!({ "worked": true }),
                output_ref: None,
            })
        }
    }

    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("panics@example.com").await;
    let mut registry = Registry::default();
    registry
        .register("test.panics", Panics)
        .register("test.works", Works);
    let pool = app.worker_pool(registry, 1);
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(pool.run(stop.clone()));

    let panics = enqueue(&app, &owner, "test.panics", json!({}), 3).await;
    let failed = wait_for(
        &app,
        &owner.access_token,
        panics,
        Duration::from_secs(20),
        |j| j["status"] == "FAILED",
    )
    .await;
    assert_eq!(failed["attempts"], 1, "not run again: {failed}");
    assert_eq!(failed["error"], "the job failed on the server", "{failed}");
    let works = enqueue(&app, &owner, "test.works", json!({}), 3).await;
    wait_for(
        &app,
        &owner.access_token,
        works,
        Duration::from_secs(20),
        |j| j["status"] == "DONE",
    )
    .await;
    stop.cancel();
    running.await.expect("the pool stopped");
}

/// A job queued again (`retryJob`) while the clean-up is deleting old jobs is not deleted: the
/// retry is written, not yet committed, when the clean-up comes to the job; the clean-up waits
/// for it, sees a queued job and leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_up_leaves_a_job_retried_meanwhile() {
    use sea_orm::{TransactionTrait, sea_query::Expr};
    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let owner = app.register("retried-old@example.com").await;
    let owner_id: Uuid = owner.user_id.parse().expect("uuid");
    let db = &app.state.db;
    let txn = queue::begin_write(db).await.expect("txn");
    let old = queue::enqueue(
        &txn,
        NewJob::new(JobKind::Render, "diagnostics.sleep", owner_id, json!({})),
    )
    .await
    .map_err(|e| e.public_message())
    .expect("enqueued")
    .job;
    txn.commit().await.expect("commit");
    job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::val(JobStatus::Failed))
        .col_expr(
            job::Column::FinishedAt,
            Expr::val(chrono::Utc::now() - chrono::Duration::days(40)),
        )
        .filter(job::Column::Id.eq(old.id))
        .exec(db)
        .await
        .expect("failed long ago");

    let retry = db.begin().await.expect("txn");
    job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::val(JobStatus::Queued))
        .col_expr(
            job::Column::FinishedAt,
            Expr::val(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .filter(job::Column::Id.eq(old.id))
        .exec(&retry)
        .await
        .expect("queued again");
    let cleaning = {
        let (db, storage) = (db.clone(), app.state.storage.clone());
        tokio::spawn(async move {
            queue::clean_up(&db, &storage, chrono::Duration::days(30))
                .await
                .map_err(|e| e.public_message())
                .expect("cleaned up")
        })
    };
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    retry.commit().await.expect("commit");
    assert_eq!(cleaning.await.expect("joined"), 0);
    let left = job::Entity::find_by_id(old.id)
        .one(db)
        .await
        .expect("read")
        .expect("the retried job is still there");
    assert_eq!(left.status, JobStatus::Queued);
}

/// A handler's write under `queue::held` that meets the reaper mid-commit (PostgreSQL: the
/// reaper has re-queued the job, not yet committed) waits for it and then changes nothing: the
/// fence locks the job's row, so it judges the lease as committed after the wait, not as it was
/// before the reaper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_write_waits_for_a_reaper_committing_and_then_changes_nothing() {
    use sea_orm::{TransactionTrait, sea_query::Expr};
    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let owner = app.register("fence-race@example.com").await;
    let owner_id: Uuid = owner.user_id.parse().expect("uuid");
    let db = &app.state.db;
    enqueue(&app, &owner, "diagnostics.sleep", json!({}), 5).await;
    let claimed = queue::claim(db, "slow-worker", 1, Duration::from_secs(30))
        .await
        .expect("claim");
    let lease = claimed.first().and_then(queue::Lease::of).expect("lease");
    // The reaper's re-queue, written and not yet committed.
    let reaper = db.begin().await.expect("txn");
    job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::val(JobStatus::Queued))
        .col_expr(job::Column::LeaseToken, Expr::val(Option::<Uuid>::None))
        .filter(job::Column::Id.eq(lease.job_id))
        .exec(&reaper)
        .await
        .expect("re-queued");
    let writing = {
        let db = db.clone();
        tokio::spawn(async move {
            entity::user::Entity::update_many()
                .col_expr(entity::user::Column::DisplayName, Expr::val("late"))
                .filter(entity::user::Column::Id.eq(owner_id))
                .filter(queue::held(lease))
                .exec(&db)
                .await
                .expect("update")
                .rows_affected
        })
    };
    // The write either waits on the job's row or (without the lock) is soon done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !writing.is_finished()
        && crate::helpers::lock_waits(&app).await == 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finished_early = writing.is_finished();
    reaper.commit().await.expect("commit");
    let written = writing.await.expect("joined");
    assert!(
        !finished_early,
        "the fenced write did not wait for the reaper"
    );
    assert_eq!(
        written, 0,
        "a write under a lease the reaper took changed a row"
    );
}

/// A `cancelJob` that waits for a worker turning its job into a parent (PostgreSQL: the worker
/// holds the job's row) cancels the children that worker made too, though they did not exist
/// when the cancel began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_waiting_on_a_new_parent_cancels_its_new_children() {
    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let owner = app.register("cancel-new-kids@example.com").await;
    let db = &app.state.db;
    let id = enqueue(&app, &owner, "diagnostics.fanout", json!({}), 1).await;
    let claimed = queue::claim(db, "slow-worker", 1, Duration::from_secs(30))
        .await
        .expect("claim");
    let lease = claimed.first().and_then(queue::Lease::of).expect("lease");
    let kids = sleepers(&owner, 3);
    let txn = queue::begin_write(db).await.expect("txn");
    let how = lifecycle::Finish::Wait {
        children: kids,
        then: None,
    };
    let finished = lifecycle::finish_in(&txn, lease, how, Some("slow-worker"))
        .await
        .map_err(|e| e.public_message())
        .expect("wait");
    assert!(finished.applied);
    let cancelling = {
        let (db, bus) = (db.clone(), app.state.events.clone());
        tokio::spawn(async move {
            lifecycle::cancel(&db, &bus, id)
                .await
                .map_err(|e| e.public_message())
                .expect("cancel")
        })
    };
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    txn.commit().await.expect("commit");
    let parent = cancelling.await.expect("joined");
    assert_eq!(parent.status, JobStatus::Cancelled);
    let kids = job::Entity::find()
        .filter(job::Column::ParentId.eq(id))
        .all(db)
        .await
        .expect("children");
    assert_eq!(kids.len(), 3);
    for kid in kids {
        assert_eq!(kid.status, JobStatus::Cancelled, "{}", kid.id);
    }
}

/// A writer that takes a family's rows child first (as the engine's own writers no longer do)
/// and then the parent, while `cancelJob` holds the parent and waits for the child: PostgreSQL
/// breaks the deadlock by aborting the cancel, which then runs again and succeeds instead of
/// answering INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_chosen_to_break_a_deadlock_runs_again() {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let owner = app.register("deadlocked@example.com").await;
    let (db, bus) = (&app.state.db, &app.state.events);
    let lease_time = Duration::from_secs(30);
    let parent = enqueue(&app, &owner, "diagnostics.fanout", json!({}), 1).await;
    let claimed = queue::claim(db, "w", 1, lease_time).await.expect("claim");
    let lease = claimed.first().and_then(queue::Lease::of).expect("lease");
    let kids = sleepers(&owner, 2);
    let how = lifecycle::Finish::Wait {
        children: kids,
        then: None,
    };
    assert!(
        lifecycle::finish(db, bus, lease, how, Some("w"))
            .await
            .map_err(|e| e.public_message())
            .expect("waiting")
    );
    let running = queue::claim(db, "w", 1, lease_time).await.expect("claim");
    let child = running.first().expect("a child runs").id;

    let other = db.begin().await.expect("txn");
    let lock = |sql: String| Statement::from_string(sea_orm::DatabaseBackend::Postgres, sql);
    other
        .execute_raw(lock(format!(
            "SELECT id FROM jobs WHERE id = '{child}' FOR UPDATE"
        )))
        .await
        .expect("child locked");
    let cancelling = {
        let (db, bus) = (db.clone(), app.state.events.clone());
        tokio::spawn(async move { lifecycle::cancel(&db, &bus, parent).await })
    };
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    other
        .execute_raw(lock(format!(
            "UPDATE jobs SET updated_at = now() WHERE id = '{parent}'"
        )))
        .await
        .expect("the cancel, waiting longer, is the one aborted");
    other.commit().await.expect("commit");
    let cancelled = cancelling
        .await
        .expect("joined")
        .map_err(|e| e.public_message())
        .expect("the cancel ran again");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let flagged = job::Entity::find_by_id(child)
        .one(db)
        .await
        .expect("read")
        .expect("child");
    assert!(
        flagged.cancel_requested,
        "the running child is asked to stop"
    );
}

/// A change `jobsUpdated` was not told of is found by its next re-read even when the process
/// that wrote it has a clock behind this one: a job stamped 5 s before the subscription began
/// (and one stamped 5 s ahead, which used to move the cursor past the others) both arrive.
/// A job that ended a moment before `jobsUpdated` started is not sent again by the re-reads
/// (whose window reaches back before the start, for other servers' clocks): the first thing
/// heard is the next change.
async fn jobs_updated_does_not_resend_what_ended_before_it_started(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| {
        a.no_worker = true;
        a.config.subscription_reread_ms = 200;
    })
    .await;
    let owner = app.register("ended-before@example.com").await;
    let (db, bus) = (&app.state.db, &app.state.events);
    let id = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await;
    let claimed = queue::claim(db, "test", 1, Duration::from_secs(30))
        .await
        .expect("claim");
    let lease = queue::Lease::of(&claimed[0]).expect("lease");
    let done = lifecycle::Finish::Done {
        output: json!({}),
        output_ref: None,
    };
    let mut heard_end = bus.subscribe();
    lifecycle::finish(db, bus, lease, done, Some("test"))
        .await
        .map_err(|e| e.public_message())
        .expect("done");
    // Its event has gone by (on PostgreSQL it comes back through NOTIFY, later on a busy
    // machine) before the subscription starts: one heard live would be sent, as it should.
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(message) = heard_end.recv().await {
            if matches!(&message, reelgraph::jobs::events::BusMessage::Job(e) if e.job_id == id) {
                break;
            }
        }
    })
    .await
    .expect("the end's event");
    let mut socket = crate::helpers::subscribe(
        &app.base,
        &owner.access_token,
        "subscription { jobsUpdated { id status } }",
        json!({}),
    )
    .await;
    // Several re-reads' time.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let next = enqueue(&app, &owner, "diagnostics.sleep", json!({ "i": 2 }), 1).await;
    let heard = crate::helpers::next_payload(&mut socket).await;
    assert_eq!(
        heard["data"]["jobsUpdated"]["id"],
        next.to_string(),
        "{heard:#} (the job ended before was {id})"
    );
}

async fn jobs_updated_rereads_find_changes_stamped_by_slower_clocks(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| {
        a.no_worker = true;
        a.config.subscription_reread_ms = 300;
    })
    .await;
    let owner = app.register("slow-clock@example.com").await;
    let mut socket = crate::helpers::subscribe(
        &app.base,
        &owner.access_token,
        "subscription { jobsUpdated { id status } }",
        json!({}),
    )
    .await;
    // Written by processes whose clocks are 5 s ahead and 5 s behind, announced to nobody.
    let stamp = |id: Uuid, secs: i64| {
        let db = app.state.db.clone();
        async move {
            job::Entity::update_many()
                .col_expr(
                    job::Column::UpdatedAt,
                    sea_orm::sea_query::Expr::val(
                        chrono::Utc::now() + chrono::Duration::seconds(secs),
                    ),
                )
                .filter(job::Column::Id.eq(id))
                .exec(&db)
                .await
                .expect("stamped");
        }
    };
    let new = |i: u32| {
        NewJob::new(
            JobKind::Workflow,
            "diagnostics.sleep",
            owner.user_id.parse().expect("uuid"),
            json!({ "i": i }),
        )
    };
    let ahead = enqueue_unannounced(&app, new(1)).await.id;
    stamp(ahead, 5).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let behind = enqueue_unannounced(&app, new(2)).await.id;
    stamp(behind, -5).await;
    let mut heard = std::collections::HashSet::new();
    let within = tokio::time::Instant::now() + Duration::from_secs(10);
    while heard.len() < 2 {
        let next = tokio::time::timeout_at(within, crate::helpers::next_payload(&mut socket))
            .await
            .expect("both jobs are heard of within 10 s");
        let id: Uuid = next["data"]["jobsUpdated"]["id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid");
        heard.insert(id);
    }
    assert!(heard.contains(&ahead) && heard.contains(&behind));
}

/// An event that is lost (here: a job ended in the database and announced to nobody) reaches
/// `jobUpdated` at the next re-read, even while other jobs' events keep arriving: those used to
/// put the re-read off again and again, so the subscriber never heard the end.
async fn a_lost_end_reaches_its_subscriber_however_busy_the_bus(backend: Backend) {
    use sea_orm::sea_query::ExprTrait;
    let app = TestApp::spawn_with(backend, |a| {
        a.no_worker = true;
        a.config.subscription_reread_ms = 500;
    })
    .await;
    let owner = app.register("lost-end@example.com").await;
    let quiet = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await;
    let busy = enqueue(&app, &owner, "diagnostics.sleep", json!({}), 1).await;
    let mut socket = crate::helpers::subscribe(
        &app.base,
        &owner.access_token,
        "subscription($id: ID!) { jobUpdated(id: $id) { status } }",
        json!({ "id": quiet }),
    )
    .await;
    let first = crate::helpers::next_payload(&mut socket).await;
    assert_eq!(first["data"]["jobUpdated"]["status"], "QUEUED", "{first}");
    // Another job's events, every 100 ms.
    let flood = {
        let state = app.state.clone();
        tokio::spawn(async move {
            let row = job::Entity::find_by_id(busy)
                .one(&state.db)
                .await
                .expect("read")
                .expect("busy job");
            loop {
                state.events.publish(&[queue::event_of(&row)]).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    job::Entity::update_many()
        .col_expr(
            job::Column::Status,
            sea_orm::sea_query::Expr::val(JobStatus::Cancelled),
        )
        .col_expr(
            job::Column::Seq,
            sea_orm::sea_query::Expr::col(job::Column::Seq).add(1),
        )
        .filter(job::Column::Id.eq(quiet))
        .exec(&app.state.db)
        .await
        .expect("ended without an event");
    let updates =
        crate::helpers::collect_until_complete(&mut socket, Duration::from_secs(20)).await;
    flood.abort();
    assert_eq!(
        updates.last().expect("the end")["data"]["jobUpdated"]["status"],
        "CANCELLED"
    );
}
