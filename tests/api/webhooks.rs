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
        if !nodes.is_empty()
            && nodes
                .iter()
                .all(|n| matches!(n["status"].as_str(), Some("DONE" | "FAILED" | "CANCELLED")))
        {
            return nodes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deliveries did not end: {data:#}"
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
        let header = request.headers["reelgraph-signature"]
            .to_str()
            .expect("ascii");
        let (t, v1) = header
            .split_once(",v1=")
            .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1)))
            .expect("t=…,v1=…");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(&request.body);
        assert_eq!(v1, hex::encode(mac.finalize().into_bytes()), "signature");
        let sent: i64 = t.parse().expect("timestamp");
        assert!((chrono::Utc::now().timestamp() - sent).abs() < 120);
    }
    let notice: Value = serde_json::from_slice(&received[1].body).expect("JSON");
    assert_eq!(notice["event"], "job.finished");
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

/// By default a callback that resolves to a non-public address is never called: the delivery
/// fails at once, saying why (the render itself is unaffected).
async fn callbacks_to_private_addresses_are_refused_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (url, inbox) = receiver(&[]).await;
    let owner = app.register("internal@example.com").await;
    let data = app
        .ok(Some(&owner.access_token), RENDER, tiny_render(&url))
        .await;
    let job_id = data["renderMovie"]["id"].as_str().expect("id").to_owned();
    let ended = deliveries(&app, &owner).await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["status"], "FAILED");
    assert_eq!(ended[0]["attempts"], 1, "not retried");
    let error = ended[0]["error"].as_str().expect("error");
    assert!(
        error.contains("non-public address (127.0.0.1)")
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

both_backends!(
    a_finished_render_is_posted_to_its_callback_signed_and_retried,
    callbacks_to_private_addresses_are_refused_by_default,
);
