//! GraphQL over WebSocket, spoken as real clients speak it: `graphql-transport-ws` (the
//! `graphql-ws` npm client) and the legacy `graphql-ws` (subscriptions-transport-ws), with
//! every close code of the protocol, auth, keep-alives and shutdown.

use std::{net::SocketAddr, time::Duration};

use chrono::Utc;
use entity::{JobKind, JobStatus, UserRole, job};
use futures_util::{SinkExt, StreamExt};
use reelgraph::{graphql::Schemas, http::router_with, ws::WsSettings};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};
use uuid::Uuid;

use crate::{
    both_backends,
    helpers::{Backend, Session, TestApp},
};

const TRANSPORT: &str = "graphql-transport-ws";
const LEGACY: &str = "graphql-ws";
/// Longest a test waits for any one message.
const WAIT: Duration = Duration::from_secs(10);
const ME: &str = "{ me { id email } }";
/// Never ends on its own: no job changes during these tests.
const JOBS_UPDATED: &str = "subscription { jobsUpdated { id status } }";

/// A raw WebSocket client: sends and expects protocol messages one at a time.
struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The subprotocol the server selected, if it echoed one.
    selected: Option<String>,
}

impl Client {
    async fn connect(url: &str, protocol: Option<&str>, authorization: Option<&str>) -> Self {
        match Self::try_connect(url, protocol, authorization).await {
            Ok(client) => client,
            Err(err) => panic!("WebSocket handshake with {url} failed: {err}"),
        }
    }

    async fn try_connect(
        url: &str,
        protocol: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Self, tungstenite::Error> {
        let mut request = url.into_client_request()?;
        if let Some(protocol) = protocol {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(protocol).expect("protocol header"),
            );
        }
        if let Some(authorization) = authorization {
            request.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(authorization).expect("authorization header"),
            );
        }
        let (socket, response) = connect_async(request).await?;
        let selected = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Self { socket, selected })
    }

    async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("message sent");
    }

    /// The next protocol message; fails on a close, a timeout or anything but JSON text.
    async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a message within the wait")
                .expect("socket open")
                .expect("frame read");
            match frame {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).expect("JSON message");
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// The close code and reason; fails if any message comes first.
    async fn closed(&mut self) -> (u16, String) {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("the server closes within the wait");
            match frame {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.as_str().to_owned());
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Sends `connection_init` and expects `connection_ack` (and the legacy first `ka`).
    async fn init(&mut self, payload: Value) {
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        assert_eq!(self.recv().await, json!({ "type": "connection_ack" }));
        if self.selected.as_deref() == Some(LEGACY) {
            assert_eq!(self.recv().await, json!({ "type": "ka" }));
        }
    }

    async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.selected.as_deref() == Some(LEGACY) {
            "start"
        } else {
            "subscribe"
        };
        self.send(json!({
            "id": id,
            "type": kind,
            "payload": { "query": query, "variables": variables },
        }))
        .await;
    }

    /// Sends a `ping` and expects its `pong`: proof that nothing else was queued before it.
    /// Reads server pings (answering them when `pong`) until the server closes, within the
    /// wait; the close code.
    async fn close_code_after_pings(&mut self, pong: bool) -> u16 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("closed within the wait")
            {
                Some(Ok(Message::Text(text))) => {
                    assert!(text.contains("ping"), "{text}");
                    if pong {
                        self.send(json!({ "type": "pong" })).await;
                    }
                }
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                other => panic!("expected pings then a close, got {other:?}"),
            }
        }
    }

    async fn round_trip(&mut self) {
        self.send(json!({ "type": "ping", "payload": { "n": 1 } }))
            .await;
        assert_eq!(
            self.recv().await,
            json!({ "type": "pong", "payload": { "n": 1 } })
        );
    }
}

fn ws_url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.base.replacen("http://", "ws://", 1))
}

/// `app` served with a keep-alive of 200 ms (pings every 200 ms); returns its ws URL.
async fn with_fast_pings(app: &TestApp) -> String {
    serve_with(
        app,
        WsSettings {
            keep_alive: Duration::from_millis(200),
            ..WsSettings::default()
        },
    )
    .await
}

/// Serves `app`'s state on a second port with other WebSocket settings; returns its ws URL.
async fn serve_with(app: &TestApp, settings: WsSettings) -> String {
    let schema = Schemas::new(&app.state.config, Some(app.state.clone()));
    let router = router_with(app.state.clone(), schema, settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .ok();
    });
    format!("ws://{addr}/graphql/ws")
}

fn bearer(session: &Session) -> Value {
    json!({ "authorization": format!("Bearer {}", session.access_token) })
}

/// A job of `owner` that no worker will pick up before the test ends.
async fn parked_job(app: &TestApp, owner: &Session) -> String {
    let now = Utc::now();
    let id = Uuid::now_v7();
    job::ActiveModel {
        id: Set(id),
        kind: Set(JobKind::Render),
        job_type: Set("test.parked".to_owned()),
        status: Set(JobStatus::Queued),
        priority: Set(job::PRIORITY_NORMAL),
        parent_id: Set(None),
        provider: Set("local".to_owned()),
        progress: Set(0.0),
        current_phase: Set(None),
        input: Set(json!({})),
        output: Set(None),
        output_ref: Set(None),
        error: Set(None),
        owner_id: Set(owner.user_id.parse().expect("user id")),
        creator_id: Set(None),
        attempts: Set(0),
        max_attempts: Set(3),
        run_at: Set(now + chrono::Duration::days(1)),
        lease_token: Set(None),
        lease_expires_at: Set(None),
        cancel_requested: Set(false),
        pending_children: Set(0),
        idempotency_key: Set(None),
        seq: Set(1),
        cached: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        parent_attempt: Set(None),
    }
    .insert(&app.state.db)
    .await
    .expect("job inserted");
    id.to_string()
}

// --- both subprotocols: operations -------------------------------------------------------

async fn a_query_and_a_mutation_over_graphql_transport_ws_get_next_then_complete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("ada@example.com").await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    assert_eq!(client.selected.as_deref(), Some(TRANSPORT));
    client.init(bearer(&ada)).await;

    client.subscribe("q", ME, json!({})).await;
    let next = client.recv().await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], "q");
    assert_eq!(next["payload"]["data"]["me"]["email"], "ada@example.com");
    assert_eq!(
        client.recv().await,
        json!({ "id": "q", "type": "complete" })
    );

    client
        .subscribe(
            "m",
            "mutation($e: String!) { login(email: $e, password: \"correct horse battery\") { user { email } } }",
            json!({ "e": "ada@example.com" }),
        )
        .await;
    let next = client.recv().await;
    assert_eq!(
        next["payload"]["data"]["login"]["user"]["email"], "ada@example.com",
        "{next}"
    );
    assert_eq!(
        client.recv().await,
        json!({ "id": "m", "type": "complete" })
    );
}

async fn a_query_over_the_legacy_protocol_gets_data_then_complete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("ada@example.com").await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(LEGACY), None).await;
    assert_eq!(client.selected.as_deref(), Some(LEGACY));
    client.init(bearer(&ada)).await;

    client.subscribe("1", ME, json!({})).await;
    let data = client.recv().await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["id"], "1");
    assert_eq!(data["payload"]["data"]["me"]["email"], "ada@example.com");
    assert_eq!(
        client.recv().await,
        json!({ "id": "1", "type": "complete" })
    );
}

async fn job_updated_sends_the_snapshot_and_a_duplicate_id_closes_with_4409(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("ada@example.com").await;
    let job = parked_job(&app, &ada).await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client.init(bearer(&ada)).await;
    let query = "subscription($id: ID!) { jobUpdated(id: $id) { id status } }";

    client.subscribe("job", query, json!({ "id": job })).await;
    let next = client.recv().await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["payload"]["data"]["jobUpdated"]["id"], job.as_str());
    assert_eq!(next["payload"]["data"]["jobUpdated"]["status"], "QUEUED");

    client.subscribe("job", query, json!({ "id": job })).await;
    assert_eq!(
        client.closed().await,
        (4409, "Subscriber for job already exists".to_owned())
    );
}

/// A subscription's root field may come through a fragment, and may be written more than
/// once: async-graphql opened a stream only per field written directly, so the first ended
/// at once with no event, and the second sent each event in halves.
async fn a_root_field_through_fragments_or_written_twice_is_one_stream(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("ada@example.com").await;
    let job = parked_job(&app, &ada).await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client.init(bearer(&ada)).await;
    let queries = [
        "subscription($id: ID!) { ...F } fragment F on SubscriptionRoot { jobUpdated(id: $id) { id status } }",
        "subscription($id: ID!) { ... on SubscriptionRoot { jobUpdated(id: $id) { id status } } }",
        "subscription($id: ID!) { jobUpdated(id: $id) { id } jobUpdated(id: $id) { status } }",
        "subscription($id: ID!, $no: Boolean = false) { jobUpdated(id: $id) { id } \
         ...F @include(if: $no) ...G } fragment F on SubscriptionRoot { jobUpdated(id: $id) { type } } \
         fragment G on SubscriptionRoot { jobUpdated(id: $id) { status } }",
        "subscription($id: ID!, $a: Boolean = true, $b: Boolean = true) { jobUpdated(id: $id) { id } \
         ... @include(if: $a) { jobUpdated(id: $id) @include(if: $b) { status } } }",
    ];
    for (n, query) in queries.iter().enumerate() {
        let id = format!("s{n}");
        client.subscribe(&id, query, json!({ "id": job })).await;
        let next = client.recv().await;
        assert_eq!(next["type"], "next", "{query}: {next}");
        assert_eq!(
            next["payload"]["data"]["jobUpdated"],
            json!({ "id": job, "status": "QUEUED" }),
            "{query}: {next}"
        );
        client.send(json!({ "id": id, "type": "complete" })).await;
    }
}

async fn a_completed_subscription_stops_without_a_server_complete_and_frees_its_id(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("ada@example.com").await;
    let job = parked_job(&app, &ada).await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client.init(bearer(&ada)).await;
    let query = "subscription($id: ID!) { jobUpdated(id: $id) { id } }";

    client.subscribe("1", query, json!({ "id": job })).await;
    assert_eq!(client.recv().await["type"], "next");
    client.send(json!({ "id": "1", "type": "complete" })).await;
    client.round_trip().await;

    client.subscribe("1", query, json!({ "id": job })).await;
    let next = client.recv().await;
    assert_eq!(next["type"], "next", "the id is free again: {next}");
    assert_eq!(next["id"], "1");
}

both_backends!(
    a_query_and_a_mutation_over_graphql_transport_ws_get_next_then_complete,
    a_query_over_the_legacy_protocol_gets_data_then_complete,
    job_updated_sends_the_snapshot_and_a_duplicate_id_closes_with_4409,
    a_completed_subscription_stops_without_a_server_complete_and_frees_its_id,
    a_root_field_through_fragments_or_written_twice_is_one_stream,
);

#[tokio::test]
async fn invalid_queries_get_an_error_message_with_codes_and_no_complete() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client.init(json!({})).await;

    let too_deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(26),
        " }".repeat(26)
    );
    let mut deep_data = String::from("videos { totalCount }");
    for _ in 0..3 {
        deep_data = format!("videos(first: 1) {{ nodes {{ creator {{ {deep_data} }} }} }}");
    }
    let deep_data = format!("{{ creators(first: 1) {{ nodes {{ {deep_data} }} }} }}");
    let bomb = crate::helpers::fragment_bomb(40);
    let cases = [
        ("syntax", "{ me { id ".to_owned(), None, "BAD_USER_INPUT"),
        (
            "unknown-field",
            "{ nope }".to_owned(),
            None,
            "BAD_USER_INPUT",
        ),
        (
            "unknown-operation",
            "query A { me { id } }".to_owned(),
            Some("B"),
            "BAD_USER_INPUT",
        ),
        ("too-deep", too_deep, None, "QUERY_TOO_COMPLEX"),
        ("too-deep-data", deep_data, None, "QUERY_TOO_COMPLEX"),
        ("fragment-bomb", bomb, None, "QUERY_TOO_COMPLEX"),
        (
            "fragment-chain",
            crate::helpers::fragment_chain(20_000),
            None,
            "QUERY_TOO_COMPLEX",
        ),
        (
            "deep-literal",
            format!(
                "{{ creators(first: {}1{}) {{ totalCount }} }}",
                "[".repeat(500),
                "]".repeat(500)
            ),
            None,
            "QUERY_TOO_COMPLEX",
        ),
        (
            "self-spreading",
            "subscription { ...A } fragment A on SubscriptionRoot { jobsUpdated { id } \
             ...A ...A ...A ...A ...A ...A ...A ...A }"
                .to_owned(),
            None,
            "QUERY_TOO_COMPLEX",
        ),
        (
            "two-roots",
            "subscription { jobsUpdated { id } b: jobsUpdated { type } }".to_owned(),
            None,
            "BAD_USER_INPUT",
        ),
        (
            "typename-root",
            "subscription { ...R } fragment R on SubscriptionRoot { __typename }".to_owned(),
            None,
            "BAD_USER_INPUT",
        ),
        (
            "nul-character",
            r#"{ creators(search: "a\u0000b") { totalCount } }"#.to_owned(),
            None,
            "BAD_USER_INPUT",
        ),
    ];
    for (id, query, operation_name, code) in cases {
        client
            .send(json!({
                "id": id,
                "type": "subscribe",
                "payload": { "query": query, "operationName": operation_name },
            }))
            .await;
        let error = client.recv().await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["id"], id);
        let errors = error["payload"]
            .as_array()
            .expect("an array of GraphQL errors");
        assert!(!errors.is_empty());
        for e in errors {
            assert_eq!(e["extensions"]["code"], code, "{error}");
        }
        // No `complete` follows an `error`: the next message is the pong.
        client.round_trip().await;
    }
}

#[tokio::test]
async fn resolver_errors_travel_in_next_with_their_code() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client.init(json!({})).await;

    client
        .subscribe("1", "{ video(id: \"not-a-uuid\") { id } }", json!({}))
        .await;
    let next = client.recv().await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(
        next["payload"]["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    assert_eq!(
        client.recv().await,
        json!({ "id": "1", "type": "complete" })
    );

    // A required variable left out: a request error (variables are coerced before anything
    // runs), so `error`, naming the variable, and no `complete`.
    client
        .subscribe("v", "query($id: ID!) { video(id: $id) { id } }", json!({}))
        .await;
    let error = client.recv().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "v", "{error}");
    assert_eq!(error["payload"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(error["payload"][0]["extensions"]["field"], "id");

    // A document repeating one mistake gets at most 100 errors, the last saying how many more.
    let repeated = crate::helpers::unknown_fields(500);
    client.subscribe("many", &repeated, json!({})).await;
    let error = client.recv().await;
    assert_eq!(error["type"], "error", "{error}");
    let errors = error["payload"].as_array().expect("errors");
    assert_eq!(errors.len(), 100, "{error}");
    assert_eq!(
        errors[99]["message"],
        "401 more errors left out (an answer lists at most 100)"
    );
    assert_eq!(errors[99]["extensions"]["code"], "BAD_USER_INPUT");

    // Introspection's lists count against the list budget here too: one error (of the whole
    // request, as over HTTP: no data), and no `complete`.
    let walks: String = (0..400)
        .map(|i| format!(" a{i}: __schema {{ types {{ fields {{ name }} }} }}"))
        .collect();
    client
        .subscribe("walks", &format!("{{{walks} }}"), json!({}))
        .await;
    let error = client.recv().await;
    let head: String = error.to_string().chars().take(300).collect();
    assert_eq!(error["type"], "error", "{head}");
    assert_eq!(error["payload"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        error["payload"][0]["extensions"]["code"],
        "QUERY_TOO_COMPLEX"
    );
    client.round_trip().await;

    // A subscription that needs a user, asked anonymously.
    client.subscribe("2", JOBS_UPDATED, json!({})).await;
    let next = client.recv().await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(
        next["payload"]["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    assert_eq!(
        client.recv().await,
        json!({ "id": "2", "type": "complete" })
    );
}

// --- close codes of graphql-transport-ws --------------------------------------------------

#[tokio::test]
async fn messages_that_are_not_valid_close_with_4400_and_a_reason() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = ws_url(&app, "/graphql/ws");
    let cases = [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (r#"{"payload":{}}"#, "'type'"),
        (
            r#"{"type":"subscribe!"}"#,
            "Invalid message 'type' property",
        ),
        (
            r#"{"type":"subscribe","payload":{"query":"{ me { id } }"}}"#,
            "'id'",
        ),
        (
            r#"{"type":"subscribe","id":"1","payload":{"variables":{}}}"#,
            "'query'",
        ),
        (r#"{"type":"subscribe","id":"1"}"#, "'payload'"),
        (r#"{"type":"complete"}"#, "'id'"),
        (r#"{"type":"ping","payload":42}"#, "'payload'"),
        (
            r#"{"type":"next","id":"1","payload":{}}"#,
            "Unexpected message",
        ),
        (
            r#"{"type":"start","id":"1","payload":{"query":"{ me { id } }"}}"#,
            "\"start\"",
        ),
    ];
    for (message, reason) in cases {
        let mut client = Client::connect(&url, Some(TRANSPORT), None).await;
        client.init(json!({})).await;
        client.send_text(message).await;
        let (code, why) = client.closed().await;
        assert_eq!(code, 4400, "{message} → {code} {why}");
        assert!(why.contains(reason), "{message} → {why:?}");
    }
}

/// Over the body limit, and past tungstenite's own cap (twice the limit) too: the client
/// hears 1009 either way, not a dropped connection (which graphql-ws would answer by retrying
/// the same message).
#[tokio::test]
async fn a_message_over_the_body_limit_closes_with_1009() {
    let app = TestApp::spawn_with(Backend::Sqlite, |args| args.config.max_body_bytes = 4096).await;
    for padding in [5_000, 20_000] {
        let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
        client.init(json!({})).await;
        let query = format!("{{ me {{ id }} }} # {}", "x".repeat(padding));
        client.subscribe("1", &query, json!({})).await;
        let (code, reason) = client.closed().await;
        assert_eq!(code, 1009, "{padding}: {reason}");
    }
}

/// Operation ids are kept while their operation runs: one over 128 bytes is refused (4400).
#[tokio::test]
async fn an_operation_id_over_128_bytes_closes_with_4400() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client.init(json!({})).await;
    client
        .subscribe(&"i".repeat(128), "{ __typename }", json!({}))
        .await;
    assert_eq!(client.recv().await["type"], "next");
    assert_eq!(client.recv().await["type"], "complete");
    client
        .subscribe(&"i".repeat(129), "{ __typename }", json!({}))
        .await;
    let (code, reason) = client.closed().await;
    assert_eq!(code, 4400, "{reason}");
    assert!(reason.contains("longer than 128 bytes"), "{reason}");
}

/// A new account's socket (keep-alive every 200 ms) with a `jobsUpdated` subscription.
async fn subscribed_with_fast_pings(app: &TestApp, email: &str) -> (Client, Session) {
    let account = app.register(email).await;
    let url = with_fast_pings(app).await;
    let mut client = Client::connect(&url, Some(TRANSPORT), None).await;
    client
        .init(json!({ "authorization": format!("Bearer {}", account.access_token) }))
        .await;
    client.subscribe("1", JOBS_UPDATED, json!({})).await;
    (client, account)
}

/// A graphql-transport-ws client that stops answering pings is hung up on after two
/// keep-alive periods, with its subscriptions.
#[tokio::test]
async fn a_client_that_stops_ponging_is_closed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (mut client, _) = subscribed_with_fast_pings(&app, "silent@example.com").await;
    assert_eq!(app.state.connections.len(), 1);
    assert_eq!(client.recv().await, json!({ "type": "ping" }));
    // No pong: closed after two periods (well within the wait, however many pings first).
    assert_eq!(client.close_code_after_pings(false).await, 1001);
    // The server's side is gone too, with the subscription it ran.
    for _ in 0..200 {
        if app.state.connections.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the connection task outlived its close");
}

/// A socket whose session ends (here: `logout` from elsewhere) is closed with `4403` within a
/// keep-alive period, subscriptions and all, though its access token has not expired.
#[tokio::test]
async fn a_socket_of_an_ended_session_is_closed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (mut client, ada) = subscribed_with_fast_pings(&app, "signed-out@example.com").await;
    app.ok(
        None,
        "mutation($t: String!) { logout(refreshToken: $t) }",
        json!({ "t": ada.refresh_token }),
    )
    .await;
    assert_eq!(client.close_code_after_pings(true).await, 4403);
}

/// An event that comes after the socket's session ended (here: `logout` from elsewhere) is not
/// sent, even before the next keep-alive (15 s here): the socket is closed with `4403`
/// instead, so a revoked or demoted session gets no more job changes or download links.
#[tokio::test]
async fn no_event_goes_to_a_session_that_ended() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ended-events@example.com").await;
    let job = parked_job(&app, &ada).await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client.init(bearer(&ada)).await;
    let query = "subscription($id: ID!) { jobUpdated(id: $id) { id status } }";
    client.subscribe("job", query, json!({ "id": job })).await;
    let next = client.recv().await;
    assert_eq!(
        next["payload"]["data"]["jobUpdated"]["status"], "QUEUED",
        "{next}"
    );
    app.ok(
        None,
        "mutation($t: String!) { logout(refreshToken: $t) }",
        json!({ "t": ada.refresh_token }),
    )
    .await;
    reelgraph::jobs::lifecycle::cancel(&app.state.db, &app.state.events, job.parse().expect("id"))
        .await
        .map_err(|e| e.public_message())
        .expect("cancelled");
    assert_eq!(
        client.closed().await,
        (
            4403,
            "Forbidden: this session has ended (signed out or revoked): sign in again".to_owned()
        )
    );
}

/// A legacy (subscriptions-transport-ws) client's `ka` is never answered, so the server also
/// sends WebSocket pings, which every WebSocket answers: a client that answers them stays,
/// and one whose WebSocket stops answering is hung up on after two keep-alive periods (its
/// subscriptions would otherwise live on until TCP gives up).
#[tokio::test]
async fn a_legacy_client_that_stops_answering_pings_is_closed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = with_fast_pings(&app).await;
    let mut legacy = Client::connect(&url, Some(LEGACY), None).await;
    legacy.init(json!({})).await;
    // Reading answers the pings (tungstenite pongs by itself): well past two periods, open.
    for _ in 0..6 {
        assert_eq!(legacy.recv().await, json!({ "type": "ka" }));
    }
    // Not reading: nothing answers them any more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let code = loop {
        match tokio::time::timeout_at(deadline, legacy.socket.next())
            .await
            .expect("closed within the wait")
        {
            Some(Ok(Message::Text(text))) => assert!(text.contains("ka"), "{text}"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            other => panic!("expected keep-alives then a close, got {other:?}"),
        }
    };
    assert_eq!(code, 1001);
}

/// An operation sent on the socket of a session that ended since it opened does not run (as
/// on HTTP), even before the next keep-alive: the socket is closed with `4403` instead.
#[tokio::test]
async fn an_operation_of_an_ended_session_does_not_run() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ended-op@example.com").await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client
        .init(json!({ "authorization": format!("Bearer {}", ada.access_token) }))
        .await;
    app.ok(
        None,
        "mutation($t: String!) { logout(refreshToken: $t) }",
        json!({ "t": ada.refresh_token }),
    )
    .await;
    let create = r#"mutation { createCreator(input: {name: "After Logout"}) { id } }"#;
    client.subscribe("1", create, json!({})).await;
    assert_eq!(
        client.closed().await,
        (
            4403,
            "Forbidden: this session has ended (signed out or revoked): sign in again".to_owned()
        )
    );
    let creators = app.ok(None, "{ creators { totalCount } }", json!({})).await;
    assert_eq!(creators["creators"]["totalCount"], 0, "{creators}");
}

/// Queries over WebSocket are counted like HTTP ones (`reelgraph_graphql_operations_total`).
#[tokio::test]
async fn websocket_operations_are_counted() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let count = || async {
        let text = app
            .client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix("reelgraph_graphql_operations_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = count().await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client.init(json!({})).await;
    for id in ["1", "2"] {
        client.subscribe(id, "{ __typename }", json!({})).await;
        assert_eq!(client.recv().await["type"], "next");
        assert_eq!(client.recv().await["type"], "complete");
    }
    assert_eq!(count().await, before + 2);
}

#[tokio::test]
async fn subscribe_before_connection_ack_closes_with_4401() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client.subscribe("1", ME, json!({})).await;
    assert_eq!(client.closed().await, (4401, "Unauthorized".to_owned()));

    let mut legacy = Client::connect(&ws_url(&app, "/graphql/ws"), Some(LEGACY), None).await;
    legacy.subscribe("1", ME, json!({})).await;
    assert_eq!(legacy.closed().await, (4401, "Unauthorized".to_owned()));
}

#[tokio::test]
async fn a_bad_or_expired_token_closes_with_4403() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = ws_url(&app, "/graphql/ws");
    let ada = app.register("ada@example.com").await;
    let user_id: Uuid = ada.user_id.parse().expect("user id");
    let expired = app
        .state
        .tokens
        .issue_with_times(
            user_id,
            UserRole::Viewer,
            Uuid::now_v7(),
            Utc::now() - chrono::Duration::minutes(20),
            Utc::now() - chrono::Duration::minutes(5),
        )
        .map_err(|e| e.public_message())
        .expect("token");

    // The reason says why, as HTTP's error does: whether a refreshed token will do.
    for (payload, why) in [
        (
            json!({ "authorization": "Bearer not-a-token" }),
            "invalid access token",
        ),
        (json!({ "token": expired }), "access token expired"),
        (json!({ "authorization": 42 }), "invalid access token"),
    ] {
        let mut client = Client::connect(&url, Some(TRANSPORT), None).await;
        client
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        assert_eq!(
            client.closed().await,
            (4403, format!("Forbidden: {why}")),
            "{payload}"
        );
    }

    // A bad header, with no token in the payload to override it; also one that is not text
    // (it was taken for no header, and the socket for anonymous).
    for header in ["Bearer forged", "Bearer tökén"] {
        let mut client = Client::connect(&url, Some(TRANSPORT), Some(header)).await;
        client.send(json!({ "type": "connection_init" })).await;
        assert_eq!(
            client.closed().await,
            (4403, "Forbidden: invalid access token".to_owned()),
            "{header}"
        );
    }

    // The legacy protocol is told why first.
    let mut legacy = Client::connect(&url, Some(LEGACY), None).await;
    legacy
        .send(json!({ "type": "connection_init", "payload": { "authorization": "Bearer nope" } }))
        .await;
    let error = legacy.recv().await;
    assert_eq!(error["type"], "connection_error", "{error}");
    assert_eq!(error["payload"]["extensions"]["code"], "UNAUTHENTICATED");
    assert_eq!(
        legacy.closed().await,
        (4403, "Forbidden: invalid access token".to_owned())
    );
}

#[tokio::test]
async fn an_open_socket_closes_with_4403_when_its_access_token_expires() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada@example.com").await;
    // Long enough to connect, init and subscribe on a loaded machine; the close comes well
    // within `WAIT` (10 s) of the round trip.
    let expires_at = Utc::now() + chrono::Duration::seconds(6);
    closes_when_the_token_ends(&app, &ada, Utc::now(), expires_at, expires_at).await;

    // A token issued for a day (under a longer lifetime than the server's 15 minutes) closes
    // where HTTP stops taking it: a minute past that lifetime from its `iat`, not at its `exp`.
    let lifetime = i64::try_from(app.state.config.access_token_ttl_secs).expect("lifetime") + 60;
    let ends_at = Utc::now() + chrono::Duration::seconds(6);
    let issued = ends_at - chrono::Duration::seconds(lifetime);
    let exp = issued + chrono::Duration::days(1);
    closes_when_the_token_ends(&app, &ada, issued, exp, ends_at).await;
}

/// A socket signed in with a token of `session`'s account issued at `iat` to expire at `exp`
/// closes with 4403 when that token stops being accepted, at `ends_at` (not more than a
/// second before: times in tokens are whole seconds).
async fn closes_when_the_token_ends(
    app: &TestApp,
    session: &Session,
    iat: chrono::DateTime<Utc>,
    exp: chrono::DateTime<Utc>,
    ends_at: chrono::DateTime<Utc>,
) {
    let token = app
        .state
        .tokens
        .issue_with_times(
            session.user_id.parse().expect("user id"),
            UserRole::Viewer,
            Uuid::now_v7(),
            iat,
            exp,
        )
        .map_err(|e| e.public_message())
        .expect("token");
    let mut client = Client::connect(&ws_url(app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client
        .init(json!({ "authorization": format!("Bearer {token}") }))
        .await;
    client.subscribe("1", JOBS_UPDATED, json!({})).await;
    client.round_trip().await;
    assert_eq!(
        client.closed().await,
        (4403, "Forbidden: access token expired".to_owned())
    );
    let early = (ends_at - Utc::now()).num_milliseconds();
    assert!(early <= 1000, "closed {early} ms before the token ended");
}

#[tokio::test]
async fn no_connection_init_within_the_timeout_closes_with_4408() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = serve_with(
        &app,
        WsSettings {
            init_timeout: Duration::from_millis(300),
            ..WsSettings::default()
        },
    )
    .await;
    for protocol in [TRANSPORT, LEGACY] {
        // Taken before connecting: the server's deadline starts later, so the close can come
        // no sooner than 300 ms after this.
        let started = std::time::Instant::now();
        let mut client = Client::connect(&url, Some(protocol), None).await;
        assert_eq!(
            client.closed().await,
            (4408, "Connection initialisation timeout".to_owned())
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
    // A socket that did init in time is not kicked off afterwards.
    let mut client = Client::connect(&url, Some(TRANSPORT), None).await;
    client.init(json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.round_trip().await;
}

#[tokio::test]
async fn a_second_connection_init_closes_with_4429() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for protocol in [TRANSPORT, LEGACY] {
        let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(protocol), None).await;
        client.init(json!({})).await;
        client.send(json!({ "type": "connection_init" })).await;
        assert_eq!(
            client.closed().await,
            (4429, "Too many initialisation requests".to_owned())
        );
    }
}

#[tokio::test]
async fn server_shutdown_closes_open_sockets_with_1001() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada@example.com").await;
    let url = ws_url(&app, "/graphql/ws");
    let mut acknowledged = Client::connect(&url, Some(TRANSPORT), None).await;
    acknowledged.init(bearer(&ada)).await;
    let mut legacy = Client::connect(&url, Some(LEGACY), None).await;
    legacy.init(bearer(&ada)).await;
    let mut waiting = Client::connect(&url, Some(TRANSPORT), None).await;
    acknowledged.round_trip().await;

    app.state.shutdown.cancel();
    for client in [&mut acknowledged, &mut legacy, &mut waiting] {
        assert_eq!(client.closed().await, (1001, "Going away".to_owned()));
    }
}

// --- limits, keep-alives, negotiation, auth -----------------------------------------------

#[tokio::test]
async fn an_operation_beyond_the_per_socket_cap_gets_an_error_and_the_socket_stays_open() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada@example.com").await;
    let url = serve_with(
        &app,
        WsSettings {
            max_operations: 1,
            ..WsSettings::default()
        },
    )
    .await;
    let mut client = Client::connect(&url, Some(TRANSPORT), None).await;
    client.init(bearer(&ada)).await;
    client.subscribe("a", JOBS_UPDATED, json!({})).await;
    client.subscribe("b", ME, json!({})).await;
    let error = client.recv().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "b");
    assert_eq!(error["payload"][0]["extensions"]["code"], "RATE_LIMITED");

    client.send(json!({ "id": "a", "type": "complete" })).await;
    client.subscribe("b", ME, json!({})).await;
    assert_eq!(client.recv().await["type"], "next");
    assert_eq!(
        client.recv().await,
        json!({ "id": "b", "type": "complete" })
    );
}

/// An account holds at most so many sockets (one more closes at `connection_init` with 1013,
/// which graphql-ws clients retry later), and an address so many, signed in or not (one more
/// is refused at the upgrade with 429); a closed socket gives its place back.
#[tokio::test]
async fn sockets_are_limited_per_account_and_per_address() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada@example.com").await;
    let bob = app.register("bob@example.com").await;
    let url = serve_with(
        &app,
        WsSettings {
            max_sockets_per_account: 2,
            max_sockets_per_address: 4,
            ..WsSettings::default()
        },
    )
    .await;
    let mut first = Client::connect(&url, Some(TRANSPORT), None).await;
    first.init(bearer(&ada)).await;
    let mut second = Client::connect(&url, Some(TRANSPORT), None).await;
    second.init(bearer(&ada)).await;
    let mut third = Client::connect(&url, Some(TRANSPORT), None).await;
    third
        .send(json!({ "type": "connection_init", "payload": bearer(&ada) }))
        .await;
    assert_eq!(
        third.closed().await,
        (
            1013,
            "too many sockets are open for this account: close some".to_owned()
        )
    );
    // Its place at the address comes back once the close handshake ends.
    third.socket.close(None).await.ok();
    drop(third);
    // Bob is another account.
    let mut bobs = connect_when_room(&url).await;
    bobs.init(bearer(&bob)).await;
    // The address holds four: one more is refused before it is a socket.
    let mut anonymous = connect_when_room(&url).await;
    anonymous.init(json!({})).await;
    let refused = Client::try_connect(&url, Some(TRANSPORT), None).await;
    match refused {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        Err(other) => panic!("refused with {other}"),
        Ok(_) => panic!("a fifth socket from one address was opened"),
    }
    // Ada's first socket closes: her place, and the address's, come back (the legacy
    // protocol is told why before a close).
    first.socket.close(None).await.ok();
    anonymous.socket.close(None).await.ok();
    drop((first, anonymous));
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut again = loop {
        if let Ok(mut client) = Client::try_connect(&url, Some(LEGACY), None).await {
            client
                .send(json!({ "type": "connection_init", "payload": bearer(&ada) }))
                .await;
            let answer = client.socket.next().await;
            if let Some(Ok(Message::Text(text))) = answer {
                let message: Value = serde_json::from_str(text.as_str()).expect("JSON");
                if message["type"] == "connection_ack" {
                    break client;
                }
                assert_eq!(message["type"], "connection_error", "{message}");
                assert_eq!(message["payload"]["extensions"]["code"], "RATE_LIMITED");
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a closed socket gave its place back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(again.recv().await["type"], "ka", "sent after the ack");
    again.subscribe("1", ME, json!({})).await;
    assert_eq!(again.recv().await["type"], "data");
    second.round_trip().await;
    // And the address's: Ada's second, Bob's, this one and one more make its four.
    let mut fourth = connect_when_room(&url).await;
    fourth.init(json!({})).await;
}

/// The server's own router takes its socket limits from the settings
/// (`REELGRAPH_WS_MAX_SOCKETS_PER_ACCOUNT`).
#[tokio::test]
async fn the_socket_limit_per_account_is_a_setting() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| {
        a.config.ws_max_sockets_per_account = 1;
    })
    .await;
    let ada = app.register("ada@example.com").await;
    let url = ws_url(&app, "/graphql/ws");
    let mut first = Client::connect(&url, Some(TRANSPORT), None).await;
    first.init(bearer(&ada)).await;
    let mut second = Client::connect(&url, Some(TRANSPORT), None).await;
    second
        .send(json!({ "type": "connection_init", "payload": bearer(&ada) }))
        .await;
    assert_eq!(second.closed().await.0, 1013);
    first.round_trip().await;
}

/// A socket to `url`, once the address has room for one more (a socket closed a moment ago
/// gives its place back when the server has seen it close).
async fn connect_when_room(url: &str) -> Client {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match Client::try_connect(url, Some(TRANSPORT), None).await {
            Ok(client) => return client,
            Err(tungstenite::Error::Http(response)) if response.status() == 429 => {}
            Err(other) => panic!("WebSocket handshake with {url} failed: {other}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the address had no room within the wait"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_server_pings_and_answers_pings_with_their_payload() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // Pings are answered (on the default settings, whose first keep-alive is far off, so the
    // next frame can only be the pong)…
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(TRANSPORT), None).await;
    client
        .send(json!({ "type": "ping", "payload": { "before": "init" } }))
        .await;
    assert_eq!(
        client.recv().await,
        json!({ "type": "pong", "payload": { "before": "init" } })
    );
    client.init(json!({})).await;
    client.send(json!({ "type": "ping" })).await;
    assert_eq!(client.recv().await, json!({ "type": "pong" }));

    // …and the server pings on its own, every keep-alive period.
    let url = with_fast_pings(&app).await;
    let mut client = Client::connect(&url, Some(TRANSPORT), None).await;
    client.init(json!({})).await;
    for _ in 0..2 {
        assert_eq!(client.recv().await, json!({ "type": "ping" }));
        client.send(json!({ "type": "pong" })).await;
    }

    let mut legacy = Client::connect(&url, Some(LEGACY), None).await;
    legacy.init(json!({})).await; // connection_ack, then the first `ka` at once
    assert_eq!(legacy.recv().await, json!({ "type": "ka" }));
}

#[tokio::test]
async fn subprotocol_negotiation_prefers_graphql_transport_ws_and_refuses_unknown_ones() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = ws_url(&app, "/graphql/ws");

    let both = Client::connect(&url, Some("graphql-ws, graphql-transport-ws"), None).await;
    assert_eq!(both.selected.as_deref(), Some(TRANSPORT));

    // Nothing offered: graphql-transport-ws, without echoing a protocol.
    let mut bare = Client::connect(&url, None, None).await;
    assert_eq!(bare.selected, None);
    bare.init(json!({})).await;
    bare.round_trip().await;

    match Client::try_connect(&url, Some("mqtt"), None).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        Err(other) => panic!("expected HTTP 400, got {other}"),
        Ok(_) => panic!("an unknown subprotocol was accepted"),
    }
}

#[tokio::test]
async fn the_graphql_endpoint_upgrades_websockets_and_still_answers_plain_gets() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut client = Client::connect(&ws_url(&app, "/graphql"), Some(TRANSPORT), None).await;
    client.init(json!({})).await;
    client.subscribe("1", "{ __typename }", json!({})).await;
    assert_eq!(
        client.recv().await["payload"]["data"]["__typename"],
        "QueryRoot"
    );

    let body: Value = app
        .client
        .get(format!("{}/graphql?query=%7B__typename%7D", app.base))
        .send()
        .await
        .expect("GET sent")
        .json()
        .await
        .expect("JSON body");
    assert_eq!(body["data"]["__typename"], "QueryRoot");
}

#[tokio::test]
async fn the_init_payload_token_wins_over_the_upgrade_header() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = ws_url(&app, "/graphql/ws");
    let ada = app.register("ada@example.com").await;
    let bob = app.register("bob@example.com").await;
    let header = format!("Bearer {}", bob.access_token);

    let cases = [
        (Some(header.as_str()), bearer(&ada), Some("ada@example.com")),
        (Some(header.as_str()), json!({}), Some("bob@example.com")),
        (
            None,
            json!({ "Authorization": format!("Bearer {}", ada.access_token) }),
            Some("ada@example.com"),
        ),
        (
            None,
            json!({ "token": ada.access_token }),
            Some("ada@example.com"),
        ),
        (
            None,
            json!({ "token": format!("Bearer {}", bob.access_token) }),
            Some("bob@example.com"),
        ),
        (None, json!({}), None),
    ];
    for (header, payload, expected) in cases {
        let mut client = Client::connect(&url, Some(TRANSPORT), header).await;
        client.init(payload.clone()).await;
        client.subscribe("me", ME, json!({})).await;
        let next = client.recv().await;
        let email = next["payload"]["data"]["me"]["email"].as_str();
        assert_eq!(
            email, expected,
            "header {header:?}, payload {payload}: {next}"
        );
    }
}

// --- legacy specifics ---------------------------------------------------------------------

#[tokio::test]
async fn legacy_clients_get_connection_error_for_bad_messages_and_complete_after_stop() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada@example.com").await;
    let mut client = Client::connect(&ws_url(&app, "/graphql/ws"), Some(LEGACY), None).await;
    client.init(bearer(&ada)).await;

    client.send_text("not json").await;
    let error = client.recv().await;
    assert_eq!(error["type"], "connection_error", "{error}");
    assert_eq!(error["payload"]["extensions"]["code"], "BAD_USER_INPUT");

    // A `start` with an id but a bad payload fails that operation, which its client waits
    // on: a `connection_error` names none.
    for payload in [
        json!({ "variables": [] }),
        json!({ "query": "{ me { id } }", "variables": 3 }),
    ] {
        client
            .send(json!({ "id": "0", "type": "start", "payload": payload }))
            .await;
        let error = client.recv().await;
        assert_eq!(
            (&error["type"], &error["id"]),
            (&json!("error"), &json!("0")),
            "{error}"
        );
        assert_eq!(error["payload"]["extensions"]["code"], "BAD_USER_INPUT");
        assert!(
            error["payload"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("'")),
            "names the property: {error}"
        );
    }

    client.subscribe("1", "{ nope }", json!({})).await;
    let error = client.recv().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["payload"]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(
        error["payload"]["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );

    // A `start` under a running operation's id replaces it, as subscriptions-transport-ws's
    // own server does (graphql-transport-ws closes with 4409 instead).
    client.subscribe("2", JOBS_UPDATED, json!({})).await;
    client.subscribe("2", ME, json!({})).await;
    let data = client.recv().await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["id"], "2");
    assert_eq!(data["payload"]["data"]["me"]["email"], "ada@example.com");
    assert_eq!(
        client.recv().await,
        json!({ "id": "2", "type": "complete" })
    );

    // A bad `start` under a running subscription's id ends that one too: nothing more comes
    // under the id but the error.
    client.subscribe("4", JOBS_UPDATED, json!({})).await;
    client
        .send(json!({ "id": "4", "type": "start", "payload": { "query": 4 } }))
        .await;
    let error = client.recv().await;
    assert_eq!(
        (&error["type"], &error["id"]),
        (&json!("error"), &json!("4")),
        "{error}"
    );
    client.subscribe("5", ME, json!({})).await;
    let data = client.recv().await;
    assert_eq!(
        (&data["type"], &data["id"]),
        (&json!("data"), &json!("5")),
        "{data}"
    );
    assert_eq!(
        client.recv().await,
        json!({ "id": "5", "type": "complete" })
    );
    // A change to one of her jobs reaches the subscription under "3", and none under "4".
    let parked = parked_job(&app, &ada).await;
    client.subscribe("3", JOBS_UPDATED, json!({})).await;
    app.ok(
        Some(&ada.access_token),
        "mutation($id: ID!) { cancelJob(id: $id) { id } }",
        json!({ "id": parked }),
    )
    .await;
    loop {
        let message = client.recv().await;
        assert_ne!(message["id"], "4", "{message}");
        if message["id"] == "3" && message["type"] == "data" {
            break;
        }
    }
    client.send(json!({ "id": "3", "type": "stop" })).await;
    assert_eq!(
        client.recv().await,
        json!({ "id": "3", "type": "complete" })
    );
    client.send(json!({ "type": "connection_terminate" })).await;
    assert_eq!(client.closed().await.0, 1000);
}

// --- the real npm client ------------------------------------------------------------------

/// Runs `tests/node/ws-query.mjs` (the `graphql-ws` npm client) against the server. Skips, saying
/// why, when `node` is not on PATH or the client's packages cannot be installed.
#[tokio::test]
async fn the_graphql_ws_npm_client_runs_a_query_and_sees_validation_errors() {
    let dir = crate::helpers::node_clients().await;

    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada@example.com").await;
    let url = ws_url(&app, "/graphql/ws");
    let seen = crate::helpers::run_node(&dir, "ws-query.mjs", &[&url, &ada.access_token]).await;
    assert_eq!(
        seen["query"]["results"][0]["data"]["me"]["email"], "ada@example.com",
        "{seen}"
    );
    assert_eq!(seen["query"]["completed"], true, "{seen}");
    assert_eq!(
        seen["invalid"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{seen}"
    );
    assert_eq!(seen["invalid"]["results"], json!([]), "{seen}");
}

/// A server shutting down lets a mutation already running over a socket finish and answers
/// it (`next`, `complete`) before closing with 1001; its subscriptions end. Cut off, the
/// mutation could commit unseen, and a graphql-ws client would send it again after
/// reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_mutation_is_answered_before_a_shutdown_closes_the_socket() {
    use sea_orm::{EntityTrait, QuerySelect, TransactionTrait};
    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let owner = app.register("draining@example.com").await;
    let creator = app.create_creator(&owner, "Before").await;
    let id: Uuid = creator.parse().expect("uuid");
    // The creator's row held, so the mutation waits on it.
    let hold = app.state.db.begin().await.expect("txn");
    entity::creator::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&hold)
        .await
        .expect("locked")
        .expect("creator");
    let mut socket = crate::helpers::subscribe(
        &app.base,
        &owner.access_token,
        "mutation($id: ID!) { updateCreator(id: $id, input: { name: \"After\" }) { name } }",
        json!({ "id": creator }),
    )
    .await;
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    app.state.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    hold.commit().await.expect("released");
    let mut heard = Vec::new();
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    heard.push(serde_json::from_str::<Value>(&text).expect("json"));
                }
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                other => panic!("the socket ended without a close: {other:?}"),
            }
        }
    })
    .await
    .expect("closed within 10 s");
    let types: Vec<&str> = heard.iter().filter_map(|m| m["type"].as_str()).collect();
    assert_eq!(types, ["next", "complete"], "{heard:#?}");
    assert_eq!(
        heard[0]["payload"]["data"]["updateCreator"]["name"],
        "After"
    );
    assert_eq!(close, Some(1001));
}
