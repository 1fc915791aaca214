//! Webhooks: a render's end POSTed to its `callbackUrl`, signed, retried until the receiver
//! takes it, and refused for private addresses unless the server allows them.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    both_backends,
    helpers::{Backend, Session, TestApp, error_code, error_field},
};

/// What a receiver was sent.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Inbox {
    received: Arc<Mutex<Vec<Received>>>,
    /// The statuses to answer with, in turn; 204 once they run out.
    answers: Arc<Mutex<Vec<u16>>>,
}

/// An HTTP server on 127.0.0.1 that records every POST.
async fn receiver(answers: &[u16]) -> (String, Inbox) {
    let inbox = Inbox {
        received: Arc::default(),
        answers: Arc::new(Mutex::new(answers.iter().rev().copied().collect())),
    };
    let app = Router::new()
        .route(
            "/hooks/render",
            post(
                |State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes| async move {
                    inbox
                        .received
                        .lock()
                        .expect("lock")
                        .push(Received { headers, body });
                    let status = inbox.answers.lock().expect("lock").pop().unwrap_or(204);
                    StatusCode::from_u16(status).expect("status")
                },
            ),
        )
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/hooks/render?from=reelgraph",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    (url, inbox)
}

const RENDER: &str =
    "mutation($input: RenderMovieInput!) { renderMovie(input: $input) { id status } }";

fn tiny_render(callback: &str) -> Value {
    json!({ "input": {
        "spec": { "width": 320, "height": 240, "fps": 25,
                  "scenes": [{ "id": "only", "duration": 0.5, "bgColor": "#204060" }] },
        "callbackUrl": callback,
    } })
}

/// The owner's webhook deliveries once all of them have ended.
async fn deliveries(app: &TestApp, owner: &Session) -> Vec<Value> {
    deliveries_once(app, owner, |nodes| {
        !nodes.is_empty()
            && nodes
                .iter()
                .all(|n| matches!(n["status"].as_str(), Some("DONE" | "FAILED" | "CANCELLED")))
    })
    .await
}

/// The owner's webhook deliveries once `ready` holds of them (within 90 s).
async fn deliveries_once(
    app: &TestApp,
    owner: &Session,
    ready: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let data = app
            .ok(
                Some(&owner.access_token),
                "{ jobs(kind: PUBLISH) { nodes { type status attempts error } } }",
                json!({}),
            )
            .await;
        let nodes = data["jobs"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if ready(&nodes) {
            return nodes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deliveries did not get there: {data:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn webhook_secret(app: &TestApp, session: &Session) -> String {
    app.ok(
        Some(&session.access_token),
        "{ me { webhookSecret } }",
        json!({}),
    )
    .await["me"]["webhookSecret"]
        .as_str()
        .expect("a secret for oneself")
        .to_owned()
}

/// The `t` and every `v1` of a delivery's `Reelgraph-Signature`.
fn signatures(request: &Received) -> (String, Vec<String>) {
    let header = request.headers["reelgraph-signature"]
        .to_str()
        .expect("ascii");
    let mut parts = header.split(',');
    let t = parts
        .next()
        .and_then(|t| t.strip_prefix("t="))
        .expect("t=… first");
    let v1 = parts
        .map(|part| part.strip_prefix("v1=").expect("v1=…").to_owned())
        .collect();
    (t.to_owned(), v1)
}

/// What a receiver computes: the hex HMAC-SHA256 of `"<t>.<body>"` under `secret`.
fn sign(secret: &str, t: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn a_finished_render_is_posted_to_its_callback_signed_and_retried(backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.config.webhook_allow_private = true).await;
    // The receiver fails the first attempt: the delivery is retried.
    let (url, inbox) = receiver(&[500]).await;
    let owner = app.register("hooked@example.com").await;
    let secret = webhook_secret(&app, &owner).await;
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 64,
        "{secret}"
    );
    let stranger = app.register("other-hooks@example.com").await;
    assert_ne!(webhook_secret(&app, &stranger).await, secret);

    let data = app
        .ok(Some(&owner.access_token), RENDER, tiny_render(&url))
        .await;
    let job_id = data["renderMovie"]["id"].as_str().expect("id").to_owned();
    let ended = deliveries(&app, &owner).await;
    assert_eq!(
        ended,
        [json!({ "type": "webhook.deliver", "status": "DONE", "attempts": 2, "error": null })],
        "one delivery, taken at the second attempt"
    );

    let received = inbox.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 2, "{received:?}");
    let delivery_ids: Vec<&str> = received
        .iter()
        .map(|r| r.headers["reelgraph-delivery"].to_str().expect("ascii"))
        .collect();
    assert_eq!(
        delivery_ids[0], delivery_ids[1],
        "one delivery id across attempts"
    );
    for request in &received {
        assert_eq!(request.headers["content-type"], "application/json");
        // Verified as a receiver would, with nothing from the server but the secret.
        let (t, v1) = signatures(request);
        assert_eq!(v1, [sign(&secret, &t, &request.body)], "signature");
        let sent: i64 = t.parse().expect("timestamp");
        assert!((chrono::Utc::now().timestamp() - sent).abs() < 120);
    }
    let notice: Value = serde_json::from_slice(&received[1].body).expect("JSON");
    assert_eq!(notice["event"], "job.finished");
    assert!(
        notice["job"]["version"].as_i64().is_some_and(|v| v > 1),
        "{notice}"
    );
    assert_eq!(notice["job"]["attempts"], 1, "{notice}");
    // The secret the owner was shown is kept from the first callback on: a new server key
    // (JWT_SECRET) does not change what deliveries are signed with.
    let kept = <entity::webhook_secret::Entity as sea_orm::EntityTrait>::find_by_id(
        owner.user_id.parse::<uuid::Uuid>().expect("uuid"),
    )
    .one(&app.state.db)
    .await
    .expect("read")
    .expect("the secret is stored");
    assert_eq!(kept.secret, secret);
    assert_eq!(notice["deliveryId"], delivery_ids[1]);
    assert_eq!(notice["job"]["id"], job_id);
    assert_eq!(notice["job"]["type"], "render.movie");
    assert_eq!(notice["job"]["status"], "DONE");
    let output = notice["job"]["outputUrl"].as_str().expect("outputUrl");
    let response = app.client.get(output).send().await.expect("download");
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.expect("bytes").len() > 1000,
        "the MP4"
    );

    // A callback that is not an http(s) URL is refused, and nothing is queued.
    for bad in ["ftp://example.com/hook", "not a url"] {
        let body = app
            .gql(Some(&owner.access_token), RENDER, tiny_render(bad))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), "input.callbackUrl", "{body}");
    }
    let count = app
        .ok(
            Some(&owner.access_token),
            "{ jobs(rootOnly: true) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        count["jobs"]["totalCount"], 2,
        "the render and its delivery only"
    );
}

/// By default a callback to a non-public address is never called. One written as an address
/// is refused by the mutation, and nothing is queued. One found to be such an address only
/// when it is delivered (a name whose DNS changed; here, a job whose stored callback was
/// rewritten before a worker ran it) fails its delivery at once, saying why, and the render
/// itself is unaffected.
async fn callbacks_to_private_addresses_are_refused_by_default(backend: Backend) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let (url, inbox) = receiver(&[]).await;
    let owner = app.register("internal@example.com").await;
    for private in [url.as_str(), "http://2130706433:9/x", "http://[::1]/x"] {
        let body = app
            .gql(Some(&owner.access_token), RENDER, tiny_render(private))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{private}: {body}");
        assert_eq!(error_field(&body), "input.callbackUrl", "{body}");
    }
    let none = app
        .ok(
            Some(&owner.access_token),
            "{ jobs { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(none["jobs"]["totalCount"], 0, "nothing queued");

    let data = app
        .ok(
            Some(&owner.access_token),
            RENDER,
            tiny_render("http://93.184.215.14/hook"),
        )
        .await;
    let job_id = data["renderMovie"]["id"].as_str().expect("id").to_owned();
    let row = entity::job::Entity::find_by_id(job_id.parse::<uuid::Uuid>().expect("uuid"))
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("job");
    let mut input = row.input.clone();
    assert_eq!(
        input["callback_url"], "http://93.184.215.14/hook",
        "{input}"
    );
    input["callback_url"] = json!(url);
    entity::job::Entity::update_many()
        .col_expr(
            entity::job::Column::Input,
            sea_orm::sea_query::Expr::value(input),
        )
        .filter(entity::job::Column::Id.eq(row.id))
        .exec(&app.state.db)
        .await
        .expect("rewritten");
    let stop = tokio_util::sync::CancellationToken::new();
    let workers = tokio::spawn(reelgraph::app::worker_pool(&app.state).run(stop.clone()));
    let ended = deliveries(&app, &owner).await;
    stop.cancel();
    workers.await.expect("the workers stopped");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["status"], "FAILED");
    assert_eq!(ended[0]["attempts"], 1, "not retried");
    let error = ended[0]["error"].as_str().expect("error");
    assert!(
        error.contains("callback host 127.0.0.1 is a non-public address")
            && error.contains("REELGRAPH_WEBHOOK_ALLOW_PRIVATE"),
        "{error}"
    );
    assert!(inbox.received.lock().expect("lock").is_empty());
    let render = app
        .ok(
            Some(&owner.access_token),
            "query($id: ID!) { job(id: $id) { status } }",
            json!({ "id": job_id }),
        )
        .await;
    assert_eq!(render["job"]["status"], "DONE");
}

const ROTATE: &str = "mutation($keep: Int) { rotateWebhookSecret(keepPreviousSecs: $keep) }";

/// Rotating the secret: deliveries carry a second `v1` under the old secret while it is kept,
/// and only the new one once it is dropped. Nobody else's secret changes.
async fn a_rotated_secret_signs_beside_the_old_one_until_it_is_dropped(backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.config.webhook_allow_private = true).await;
    let (url, inbox) = receiver(&[]).await;
    let owner = app.register("rotating@example.com").await;
    let stranger = app.register("bystander@example.com").await;
    let stranger_secret = webhook_secret(&app, &stranger).await;
    let old = webhook_secret(&app, &owner).await;

    let rotated = app.ok(Some(&owner.access_token), ROTATE, json!({})).await["rotateWebhookSecret"]
        .as_str()
        .expect("the new secret")
        .to_owned();
    assert!(
        rotated.starts_with("whsec_") && rotated.len() == 6 + 64 && rotated != old,
        "{rotated}"
    );
    assert_eq!(webhook_secret(&app, &owner).await, rotated);
    assert_eq!(webhook_secret(&app, &stranger).await, stranger_secret);

    app.ok(Some(&owner.access_token), RENDER, tiny_render(&url))
        .await;
    assert_eq!(deliveries(&app, &owner).await.len(), 1);
    let first = inbox.received.lock().expect("lock")[0].clone();
    let (t, v1) = signatures(&first);
    assert_eq!(
        v1,
        [sign(&rotated, &t, &first.body), sign(&old, &t, &first.body)],
        "signed under the new secret, then the one it replaced"
    );

    // Rotating again while the old secret still signs would drop it from under a receiver
    // that has not switched: refused, nothing changed.
    let body = app
        .gql(Some(&owner.access_token), ROTATE, json!({ "keep": 60 }))
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    assert_eq!(error_field(&body), "keepPreviousSecs", "{body}");
    assert_eq!(webhook_secret(&app, &owner).await, rotated);

    // A leaked secret is dropped at once.
    let newest = app
        .ok(Some(&owner.access_token), ROTATE, json!({ "keep": 0 }))
        .await["rotateWebhookSecret"]
        .as_str()
        .expect("the new secret")
        .to_owned();
    assert_ne!(newest, rotated);
    app.ok(Some(&owner.access_token), RENDER, tiny_render(&url))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while inbox.received.lock().expect("lock").len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second delivery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = inbox.received.lock().expect("lock")[1].clone();
    let (t, v1) = signatures(&second);
    assert_eq!(v1, [sign(&newest, &t, &second.body)], "the new secret only");

    for keep in [-1, 604_801] {
        let body = app
            .gql(Some(&owner.access_token), ROTATE, json!({ "keep": keep }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), "keepPreviousSecs", "{body}");
    }
    assert_eq!(
        webhook_secret(&app, &owner).await,
        newest,
        "refusals change nothing"
    );
    let body = app.gql(None, ROTATE, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
}

/// A receiver that refuses for good (410) ends the delivery at once, and the error the team
/// reads names the callback without its credentials or query.
async fn a_refused_delivery_names_the_callback_without_its_secrets(backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.config.webhook_allow_private = true).await;
    let (url, inbox) = receiver(&[410]).await;
    let secret_url = format!(
        "{}&token=T0K3N",
        url.replacen("http://", "http://hook:S3CRET@", 1)
    );
    let owner = app.register("gone@example.com").await;
    app.ok(Some(&owner.access_token), RENDER, tiny_render(&secret_url))
        .await;
    let ended = deliveries(&app, &owner).await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["status"], "FAILED");
    assert_eq!(ended[0]["attempts"], 1, "410 is not retried");
    let parsed = url::Url::parse(&url).expect("url");
    let shown = format!(
        "http://{}:{}/…",
        parsed.host_str().expect("host"),
        parsed.port().expect("port")
    );
    assert_eq!(
        ended[0]["error"],
        format!("callback {shown} answered HTTP 410"),
        "no credentials, no path, no query"
    );
    assert_eq!(inbox.received.lock().expect("lock").len(), 1);
}

/// A job fails (its delivery is held up by the receiver), is retried and done: each delivery
/// tells its own end — the failure with its error, under a lower version than the success —
/// whatever the job is when it goes out.
async fn each_delivery_tells_the_end_it_was_made_for(backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.config.webhook_allow_private = true).await;
    let (url, inbox) = receiver(&[500, 500]).await;
    let owner = app.register("twice-ended@example.com").await;
    let id = crate::jobs::enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 10, "fail_attempts": 1, "callback_url": url }),
        1,
    )
    .await;
    let token = owner.access_token.clone();
    crate::jobs::wait_for(&app, &token, id, Duration::from_secs(30), |job| {
        job["status"] == "FAILED"
    })
    .await;
    app.ok(
        Some(&token),
        "mutation($id: ID!) { retryJob(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await;
    crate::jobs::wait_for(&app, &token, id, Duration::from_secs(30), |job| {
        job["status"] == "DONE"
    })
    .await;
    let ended = deliveries(&app, &owner).await;
    assert_eq!(ended.len(), 2, "{ended:?}");
    let received = inbox.received.lock().expect("lock").clone();
    // Every attempt of a delivery (the last, taken one included) tells the same end.
    let told = |status: &str| {
        received
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).expect("JSON"))
            .filter(|notice| notice["job"]["status"] == status)
            .last()
            .unwrap_or_else(|| panic!("no {status} notice"))
    };
    let (failed, done) = (told("FAILED"), told("DONE"));
    assert_eq!(
        failed["job"]["error"], "attempt 1 failed on purpose",
        "{failed}"
    );
    assert_eq!(failed["job"]["attempts"], 1, "{failed}");
    assert!(done["job"]["error"].is_null(), "{done}");
    assert_eq!(done["job"]["attempts"], 2, "{done}");
    let version = |notice: &Value| notice["job"]["version"].as_i64().expect("version");
    assert!(version(&failed) < version(&done), "{failed} {done}");
}

/// What happens to a render's media, or to its owner, between two deliveries of its end.
enum Change {
    /// The member who started it is removed from the creator's team.
    MemberRemoved,
    /// An administrator disables the account of the member, whose render here is their own
    /// (no creator's: no team check stands in for the account's).
    AccountDisabled,
    /// The output is deleted (as `deleteShort` or a video's deletion forgets a job's output).
    OutputDeleted,
}

/// A creator's render reports to the callback of the member who started it; after `change`,
/// a delivery (here the retry of the first) carries no `outputUrl`, as `Job.outputUrl` no
/// longer gives one.
async fn a_delivery_after(backend: Backend, change: Change) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = TestApp::spawn_with(backend, |args| args.config.webhook_allow_private = true).await;
    let (url, inbox) = receiver(&[500]).await;
    let owner = app.register("hook-team-owner@example.com").await;
    let member = app.register("hook-team-member@example.com").await;
    let creator = app.create_creator(&owner, "Hooked Team").await;
    app.ok(
        Some(&owner.access_token),
        "mutation($c: ID!) { addCreatorMember(creatorId: $c, email: \"hook-team-member@example.com\") { role } }",
        json!({ "c": creator }),
    )
    .await;
    let mut render = tiny_render(&url);
    if !matches!(change, Change::AccountDisabled) {
        render["input"]["creatorId"] = json!(creator);
    }
    let job = app.ok(Some(&member.access_token), RENDER, render).await["renderMovie"]["id"]
        .as_str()
        .and_then(|id| id.parse::<uuid::Uuid>().ok())
        .expect("id");
    // The first delivery (refused by the receiver) carried the link; the change comes before
    // it is retried.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while inbox.received.lock().expect("lock").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no delivery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match change {
        Change::MemberRemoved => {
            app.ok(
                Some(&owner.access_token),
                "mutation($c: ID!, $u: ID!) { removeCreatorMember(creatorId: $c, userId: $u) }",
                json!({ "c": creator, "u": member.user_id }),
            )
            .await;
        }
        Change::AccountDisabled => {
            let admin = app.admin("hook-admin@example.com").await;
            app.ok(
                Some(&admin.access_token),
                "mutation($u: ID!) { updateUser(id: $u, input: { isActive: false }) { isActive } }",
                json!({ "u": member.user_id }),
            )
            .await;
        }
        Change::OutputDeleted => {
            entity::job::Entity::update_many()
                .col_expr(
                    entity::job::Column::OutputRef,
                    sea_orm::sea_query::Expr::val(Option::<String>::None),
                )
                .filter(entity::job::Column::Id.eq(job))
                .exec(&app.state.db)
                .await
                .expect("output forgotten");
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while inbox.received.lock().expect("lock").len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second delivery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = inbox.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 2, "{received:?}");
    let first: Value = serde_json::from_slice(&received[0].body).expect("JSON");
    let second: Value = serde_json::from_slice(&received[1].body).expect("JSON");
    assert!(first["job"]["outputUrl"].is_string(), "{first}");
    assert!(second["job"]["outputUrl"].is_null(), "{second}");
    assert_eq!(second["job"]["status"], "DONE");
}

async fn a_removed_member_gets_no_output_url_by_webhook(backend: Backend) {
    a_delivery_after(backend, Change::MemberRemoved).await;
}

async fn a_disabled_account_gets_no_output_url_by_webhook(backend: Backend) {
    a_delivery_after(backend, Change::AccountDisabled).await;
}

async fn a_delivery_after_its_output_was_deleted_links_to_nothing(backend: Backend) {
    a_delivery_after(backend, Change::OutputDeleted).await;
}

/// A name that resolves to an internal address is answered like a name that does not
/// resolve at all, and both are tried again (DNS may change): the team reading the error
/// learns nothing of the server's internal names. An internal address written out is refused
/// for good, naming it.
async fn internal_names_are_not_told_from_names_that_do_not_resolve(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (url, inbox) = receiver(&[]).await;
    let port = url::Url::parse(&url).expect("url").port().expect("port");
    let owner = app.register("names@example.com").await;
    let token = Some(owner.access_token.as_str());
    for host in ["localhost", "no-such-host.invalid"] {
        app.ok(
            token,
            RENDER,
            tiny_render(&format!("http://{host}:{port}/hooks/render")),
        )
        .await;
    }
    let nodes = deliveries_once(&app, &owner, |nodes| {
        nodes.len() == 2 && nodes.iter().all(|n| n["error"].is_string())
    })
    .await;
    for node in &nodes {
        assert_ne!(node["status"], "FAILED", "tried again: {node}");
    }
    let mut errors: Vec<String> = nodes
        .iter()
        .map(|n| n["error"].as_str().expect("error").to_owned())
        .collect();
    errors.sort();
    let refused = |host: &str| {
        format!(
            "callback host {host} does not resolve to a public address; deliveries go to \
             public addresses only unless the server sets REELGRAPH_WEBHOOK_ALLOW_PRIVATE=true"
        )
    };
    assert_eq!(
        errors,
        [refused("localhost"), refused("no-such-host.invalid")],
        "the same words for both"
    );
    assert!(inbox.received.lock().expect("lock").is_empty());
}

/// Deliveries have slots of their own: with the pool's only slot held by a long job, the
/// notice of a cancelled render still goes out, instead of waiting behind the job (receivers
/// that never answer cannot hold the slots renders need either).
async fn a_notice_goes_out_while_every_work_slot_is_busy(backend: Backend) {
    use sea_orm::EntityTrait;
    let app = TestApp::spawn_with(backend, |args| {
        args.config.webhook_allow_private = true;
        args.config.workers = Some(1);
    })
    .await;
    let (url, inbox) = receiver(&[]).await;
    let owner = app.register("busy@example.com").await;
    let token = Some(owner.access_token.as_str());
    let busy = crate::jobs::enqueue(
        &app,
        &owner,
        "diagnostics.sleep",
        json!({ "ms": 300_000, "steps": 300 }),
        1,
    )
    .await;
    let running = |app: &TestApp| {
        let db = app.state.db.clone();
        async move {
            entity::job::Entity::find_by_id(busy)
                .one(&db)
                .await
                .expect("read")
                .expect("job")
                .status
                == entity::JobStatus::Running
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !running(&app).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the long job never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data = app.ok(token, RENDER, tiny_render(&url)).await;
    let render = data["renderMovie"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        data["renderMovie"]["status"], "QUEUED",
        "the only slot is busy"
    );
    app.ok(
        token,
        "mutation($id: ID!) { cancelJob(id: $id) { status } }",
        json!({ "id": render }),
    )
    .await;
    let ended = deliveries(&app, &owner).await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["status"], "DONE", "{ended:?}");
    let received = inbox.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 1);
    let body: Value = serde_json::from_slice(&received[0].body).expect("json");
    assert_eq!(body["job"]["status"], "CANCELLED", "{body}");
    assert!(running(&app).await, "the long job still holds its slot");
    app.ok(
        token,
        "mutation($id: ID!) { cancelJob(id: $id) { status } }",
        json!({ "id": busy.to_string() }),
    )
    .await;
}

/// A receiver that takes connections and never answers: how many it has taken, and how many
/// the sender has given up on (closed).
async fn silent_receiver() -> (String, Arc<Mutex<(usize, usize)>>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/hooks/silent",
        listener.local_addr().expect("addr")
    );
    let counts: Arc<Mutex<(usize, usize)>> = Arc::default();
    let seen = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            seen.lock().expect("lock").0 += 1;
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                seen.lock().expect("lock").1 += 1;
            });
        }
    });
    (url, counts)
}

/// Queues a render with `callback` behind the busy pool and cancels it: its notice is queued.
async fn cancelled_render_notice(app: &TestApp, owner: &Session, callback: &str) {
    let token = Some(owner.access_token.as_str());
    let data = app.ok(token, RENDER, tiny_render(callback)).await;
    app.ok(
        token,
        "mutation($id: ID!) { cancelJob(id: $id) { status } }",
        json!({ "id": data["renderMovie"]["id"] }),
    )
    .await;
}

/// One account's receivers that never answer hold at most two delivery slots: another
/// account's notice goes out while all of theirs still hang (none has timed out), instead of
/// waiting for their attempts to give up.
async fn one_accounts_silent_receivers_do_not_hold_up_anothers_notices(backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| {
        args.config.webhook_allow_private = true;
        args.config.workers = Some(1);
    })
    .await;
    let (silent, counts) = silent_receiver().await;
    let (url, inbox) = receiver(&[]).await;
    let flooder = app.register("flooder@example.com").await;
    let other = app.register("patient@example.com").await;
    // The only work slot is held, so renders stay queued until cancelled.
    let busy = crate::jobs::enqueue(
        &app,
        &flooder,
        "diagnostics.sleep",
        json!({ "ms": 300_000, "steps": 300 }),
        1,
    )
    .await;
    crate::jobs::wait_for(
        &app,
        &flooder.access_token,
        busy,
        Duration::from_secs(30),
        |job| job["status"] == "RUNNING",
    )
    .await;
    for _ in 0..6 {
        cancelled_render_notice(&app, &flooder, &silent).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while counts.lock().expect("lock").0 < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent receiver was never called"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancelled_render_notice(&app, &other, &url).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while inbox.received.lock().expect("lock").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other account's notice never went out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (taken, closed) = *counts.lock().expect("lock");
    assert_eq!(
        (taken, closed),
        (2, 0),
        "two of the flooder's attempts hang, and none had to give up for the other's notice"
    );
    app.ok(
        Some(&flooder.access_token),
        "mutation($id: ID!) { cancelJob(id: $id) { status } }",
        json!({ "id": busy.to_string() }),
    )
    .await;
}

/// The secret `webhookSecret` shows is stored as it was shown, before any render asks for a
/// callback: a receiver configured with it keeps working when the server's key
/// (`JWT_SECRET`), from which it was derived, changes later.
async fn a_shown_webhook_secret_is_stored_as_shown(backend: Backend) {
    use sea_orm::EntityTrait;
    let app = TestApp::spawn(backend).await;
    let owner = app.register("shown@example.com").await;
    let shown = webhook_secret(&app, &owner).await;
    let id: uuid::Uuid = owner.user_id.parse().expect("uuid");
    let stored = entity::webhook_secret::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("stored when first shown");
    assert_eq!(stored.secret, shown);
    assert_eq!(
        webhook_secret(&app, &owner).await,
        shown,
        "shown again as stored"
    );
}

both_backends!(
    one_accounts_silent_receivers_do_not_hold_up_anothers_notices,
    a_shown_webhook_secret_is_stored_as_shown,
    a_notice_goes_out_while_every_work_slot_is_busy,
    internal_names_are_not_told_from_names_that_do_not_resolve,
    a_removed_member_gets_no_output_url_by_webhook,
    a_disabled_account_gets_no_output_url_by_webhook,
    a_delivery_after_its_output_was_deleted_links_to_nothing,
    each_delivery_tells_the_end_it_was_made_for,
    a_refused_delivery_names_the_callback_without_its_secrets,
    a_rotated_secret_signs_beside_the_old_one_until_it_is_dropped,
    a_finished_render_is_posted_to_its_callback_signed_and_retried,
    callbacks_to_private_addresses_are_refused_by_default,
);
