//! `/metrics` as an operator reads it: HTTP requests by route and status, the shared job
//! queue read from the database, job attempts by outcome, open WebSockets and their
//! operations; and the same series from a `reelgraph worker --listen` process.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    both_backends,
    helpers::{Backend, TestApp, create_database, subscribe},
    jobs::{enqueue, wait_for},
    workers::{spawn_worker_with, terminate},
};

/// The text at `url`'s `/metrics`.
pub async fn scrape(client: &reqwest::Client, base: &str) -> String {
    scrape_with(client, base, None).await
}

/// The text at `url`'s `/metrics`, sending `token` as a bearer token.
async fn scrape_with(client: &reqwest::Client, base: &str, token: Option<&str>) -> String {
    let mut request = client.get(format!("{base}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("sent");
    assert_eq!(response.status(), 200);
    response.text().await.expect("text")
}

/// The status and `WWW-Authenticate` of a `/metrics` request with this `Authorization`.
async fn metrics_refusal(
    client: &reqwest::Client,
    base: &str,
    authorization: Option<&str>,
) -> (u16, String) {
    let mut request = client.get(format!("{base}/metrics"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.expect("sent");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.status().as_u16(), challenge)
}

/// With `REELGRAPH_METRICS_TOKEN`, `/metrics` answers only its bearer token; the other
/// routes, probes included, are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_keeps_the_scrape_private() {
    let token = "scrape-token-0123456789";
    let app = TestApp::spawn_with(Backend::Sqlite, |a| {
        a.no_worker = true;
        a.config.metrics_token = Some(token.to_owned());
    })
    .await;
    for refused in [
        None,
        Some("Bearer wrong-token"),
        Some("Bearer scrape-token-012345678"),
        Some("Basic c2NyYXBlLXRva2VuLTAxMjM0NTY3ODk="),
        Some(token),
    ] {
        assert_eq!(
            metrics_refusal(&app.client, &app.base, refused).await,
            (401, "Bearer".to_owned()),
            "{refused:?}"
        );
    }
    let text = scrape_with(&app.client, &app.base, Some(token)).await;
    assert!(text.contains("reelgraph_http_requests_total"), "{text}");
    // The scheme is case-insensitive, as in any HTTP authentication.
    assert_eq!(
        metrics_refusal(&app.client, &app.base, Some(&format!("bearer {token}")))
            .await
            .0,
        200
    );
    // The refusals were counted like any other response.
    let text = scrape_with(&app.client, &app.base, Some(token)).await;
    assert_eq!(
        value(
            &text,
            r#"reelgraph_http_requests_total{method="GET",route="/metrics",status="401"}"#
        ),
        Some(5.0),
        "{text}"
    );
    for open in ["/livez", "/healthz"] {
        let status = app
            .client
            .get(format!("{}{open}", app.base))
            .send()
            .await
            .expect("sent")
            .status();
        assert_eq!(status, 200, "{open}");
    }
}

/// The value of the series `series` (name and labels, exactly as exposed), if present.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Scrapes until `series` has `expected` (the gauges follow sockets and jobs a moment later).
async fn until(app: &TestApp, series: &str, expected: f64) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(&app.client, &app.base).await;
        if value(&text, series) == Some(expected) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never became {expected}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Requests are counted by route pattern (never the raw path) and status, with their time to
/// headers in a histogram; a path no route matches is one `unmatched` series.
async fn http_requests_are_counted_by_route_and_status(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for _ in 0..3 {
        app.ok(None, "{ __typename }", json!({})).await;
    }
    for path in ["/no/such/page", "/another-missing-page"] {
        let response = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 404);
    }
    // A method of the client's own making is counted as `other`, not as a series of its own.
    let odd = reqwest::Method::from_bytes(b"RANDOM123").expect("method");
    let response = app
        .client
        .request(odd, format!("{}/graphql", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 405);
    let text = scrape(&app.client, &app.base).await;
    assert_eq!(
        value(
            &text,
            r#"reelgraph_http_requests_total{method="other",route="/graphql",status="405"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("RANDOM123"), "{text}");
    assert_eq!(
        value(
            &text,
            r#"reelgraph_http_requests_total{method="POST",route="/graphql",status="200"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"reelgraph_http_request_duration_seconds_count{method="POST",route="/graphql"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"reelgraph_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert!(!text.contains("no/such/page"), "{text}");

    // SQL statements per GraphQL request: none for `__typename`, though the app's worker
    // polls the database all along; some for a read.
    let statements = |text: &str, what: &str| {
        value(
            text,
            &format!("reelgraph_graphql_request_statements_{what}"),
        )
    };
    assert_eq!(statements(&text, "count"), Some(3.0), "{text}");
    assert_eq!(statements(&text, "sum"), Some(0.0), "{text}");
    assert!(
        app.statements() > 0,
        "the worker's polls are counted in the total"
    );
    app.ok(None, "{ creators { totalCount } }", json!({})).await;
    let text = scrape(&app.client, &app.base).await;
    assert_eq!(statements(&text, "count"), Some(4.0), "{text}");
    assert!(statements(&text, "sum").is_some_and(|n| n >= 1.0), "{text}");
}

/// The queue gauges come from the database: two jobs waiting with no worker to take them
/// are reported with their type and status, and the lag grows while they wait.
async fn the_queue_is_read_from_the_database_at_each_scrape(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let ada = app.register("queue@example.com").await;
    let series = r#"reelgraph_jobs{type="diagnostics.sleep",status="QUEUED"}"#;
    let empty = scrape(&app.client, &app.base).await;
    assert_eq!(value(&empty, series), None, "{empty}");
    assert_eq!(
        value(&empty, "reelgraph_jobs_queued_lag_seconds"),
        Some(0.0)
    );
    for _ in 0..2 {
        enqueue(&app, &ada, "diagnostics.sleep", json!({ "ms": 0 }), 1).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let text = scrape(&app.client, &app.base).await;
    assert_eq!(value(&text, series), Some(2.0), "{text}");
    let lag = value(&text, "reelgraph_jobs_queued_lag_seconds").expect("lag");
    assert!((1.0..60.0).contains(&lag), "lag {lag}:\n{text}");
    // The database gone, the queue is not reported at all: not as empty, not as no lag.
    app.state.db.clone().close().await.expect("pool closed");
    let text = scrape(&app.client, &app.base).await;
    assert_eq!(value(&text, series), None, "{text}");
    assert_eq!(
        value(&text, "reelgraph_jobs_queued_lag_seconds"),
        None,
        "{text}"
    );
}

/// A worker in the server counts each attempt by type and outcome, with its duration; the
/// jobs it finished leave the queue gauges.
async fn job_attempts_are_counted_by_outcome(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("attempts@example.com").await;
    let done = enqueue(&app, &ada, "diagnostics.sleep", json!({ "ms": 10 }), 1).await;
    let failed = enqueue(
        &app,
        &ada,
        "diagnostics.sleep",
        json!({ "ms": 10, "fail_attempts": 1 }),
        1,
    )
    .await;
    for id in [done, failed] {
        wait_for(
            &app,
            &ada.access_token,
            id,
            Duration::from_secs(30),
            |job| job["status"] == "DONE" || job["status"] == "FAILED",
        )
        .await;
    }
    let text = until(
        &app,
        r#"reelgraph_job_attempts_total{type="diagnostics.sleep",outcome="done"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        value(
            &text,
            r#"reelgraph_job_attempts_total{type="diagnostics.sleep",outcome="failed"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"reelgraph_job_attempt_duration_seconds_count{type="diagnostics.sleep"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(value(&text, "reelgraph_worker_jobs_running"), Some(0.0));
    assert!(!text.contains(r#"status="QUEUED""#), "{text}");
}

/// Open WebSockets and the operations running on them are gauges that go back down when the
/// subscription completes and the socket closes.
async fn websocket_connections_and_operations_are_gauges(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let ada = app.register("sockets@example.com").await;
    let id = enqueue(&app, &ada, "diagnostics.sleep", json!({ "ms": 0 }), 1).await;
    let mut socket = subscribe(
        &app.base,
        &ada.access_token,
        "subscription($id: ID!) { jobUpdated(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await;
    until(&app, "reelgraph_websocket_connections", 1.0).await;
    until(&app, "reelgraph_websocket_operations", 1.0).await;
    socket
        .send(Message::Text(
            json!({ "type": "complete", "id": "1" }).to_string().into(),
        ))
        .await
        .expect("complete sent");
    until(&app, "reelgraph_websocket_operations", 0.0).await;
    socket.close(None).await.expect("closed");
    drop(socket);
    until(&app, "reelgraph_websocket_connections", 0.0).await;
}

both_backends!(
    http_requests_are_counted_by_route_and_status,
    the_queue_is_read_from_the_database_at_each_scrape,
    job_attempts_are_counted_by_outcome,
    websocket_connections_and_operations_are_gauges,
);

/// `reelgraph worker --listen` serves liveness, readiness and metrics, counts the attempts it
/// runs, and stops serving them once it has drained after SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_listen_serves_probes_and_its_own_metrics() {
    let database = create_database().await;
    let mut app = TestApp::spawn_on(Some(&database), |a| a.no_worker = true).await;
    app.adopt_database(database.clone());
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("addr").port()
    };
    let listen = format!("127.0.0.1:{port}");
    let token = "worker-scrape-token";
    let mut worker = spawn_worker_with(
        &database,
        1,
        10,
        &["--listen", &listen, "--metrics-token", token],
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let live = app.client.get(format!("{base}/livez")).send().await;
        if live.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never served /livez"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = app
        .client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 200);

    let ada = app.register("worker-metrics@example.com").await;
    let id = enqueue(&app, &ada, "diagnostics.sleep", json!({ "ms": 10 }), 1).await;
    wait_for(
        &app,
        &ada.access_token,
        id,
        Duration::from_secs(60),
        |job| job["status"] == "DONE",
    )
    .await;
    assert_eq!(metrics_refusal(&app.client, &base, None).await.0, 401);
    let text = scrape_with(&app.client, &base, Some(token)).await;
    assert_eq!(
        value(
            &text,
            r#"reelgraph_job_attempts_total{type="diagnostics.sleep",outcome="done"}"#
        ),
        Some(1.0),
        "{text}"
    );
    // The server ran nothing itself.
    let server = scrape(&app.client, &app.base).await;
    assert_eq!(
        value(
            &server,
            r#"reelgraph_job_attempts_total{type="diagnostics.sleep",outcome="done"}"#
        ),
        None,
        "{server}"
    );

    terminate(&worker).await;
    let status = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("the worker stops")
        .expect("status");
    assert!(status.success(), "{status}");
    assert!(
        app.client
            .get(format!("{base}/livez"))
            .send()
            .await
            .is_err(),
        "the probes stopped with the worker"
    );
}

/// A database that stops answering (its connections frozen, not refused) makes `/healthz`
/// answer 503 and `/metrics` answer (without the queue's figures, when they cannot be read)
/// within seconds, instead of both waiting for it for as long as it is gone. (One app each:
/// the first request's timeout drops its frozen connection, and the next gets a new one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_answer_while_the_database_does_not() {
    for path in ["/healthz", "/metrics"] {
        let (app, freeze) = crate::helpers::spawn_behind_relay(|a| a.no_worker = true).await;
        let before = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("sent");
        assert_eq!(before.status(), 200);
        // The connection that answered is back in the pool before the freeze (it is returned
        // after the answer is sent): otherwise the next request opens one made after the
        // freeze, which the relay leaves alone, and the database looks fine.
        let pool = app.state.db.get_postgres_connection_pool();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while pool.num_idle() < pool.size() as usize {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a connection stayed checked out"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        freeze.store(true, std::sync::atomic::Ordering::SeqCst);
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            app.client.get(format!("{}{path}", app.base)).send(),
        )
        .await
        .unwrap_or_else(|_| panic!("{path} did not answer within 20 s"))
        .expect("sent");
        if path == "/healthz" {
            assert_eq!(answer.status(), 503);
            let body: serde_json::Value = answer.json().await.expect("json");
            assert_eq!(body["status"], "unavailable", "{body}");
        } else {
            assert_eq!(answer.status(), 200);
            let text = answer.text().await.expect("text");
            assert!(text.contains("reelgraph_http_requests_total"), "{text}");
        }
    }
}

/// `/metrics`, `/healthz` and `/livez` are for probes and scrapers: they carry no CORS
/// headers, so a web page of another origin cannot read an open `/metrics` from a browser on
/// the server's network; `/graphql` still allows other origins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_endpoints_are_not_open_to_other_origins() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    for path in ["/metrics", "/healthz", "/livez"] {
        let answer = app
            .client
            .get(format!("{}{path}", app.base))
            .header("origin", "https://elsewhere.example")
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.status(), 200, "{path}");
        assert!(
            answer
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{path}: {:?}",
            answer.headers()
        );
    }
    let graphql = app
        .client
        .get(format!("{}/graphql?query=%7B__typename%7D", app.base))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .expect("sent");
    assert_eq!(graphql.headers()["access-control-allow-origin"], "*");
}
