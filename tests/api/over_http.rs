//! GraphQL over HTTP as clients beyond the plain POST use it: automatic persisted queries
//! (Apollo's protocol) over POST, GET, batches and WebSocket; `GET` query strings naming their
//! operation; media types and status codes (graphql-http's audits); CORS preflights asking for
//! client headers; and Apollo Client itself.

use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    both_backends,
    helpers::{Backend, TestApp, error_code, error_field, next_payload, subscribe_with},
};

const ME: &str = "query Me { me { email } }";

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn persisted(text: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256(text) } })
}

async fn post(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn get(app: &TestApp, token: &str, params: &[(&str, String)]) -> (u16, Value) {
    let response = app
        .client
        .get(format!("{}/graphql", app.base))
        .bearer_auth(token)
        .query(params)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// A hash the server has not seen is `PersistedQueryNotFound` (what Apollo Client retries on),
/// a request error without `data`; once the text came with its hash, the hash alone runs it
/// over POST, GET and WebSocket; a text that is not its hash's is refused and not stored.
async fn persisted_queries_run_by_hash_once_their_text_was_sent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("ada@example.com").await;
    let token = ada.access_token.as_str();

    let (status, body) = post(&app, token, json!({ "extensions": persisted(ME) })).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["errors"][0]["message"], "PersistedQueryNotFound",
        "{body}"
    );
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    assert!(body.get("data").is_none(), "{body}");

    // A text sent with another text's hash is refused, and the hash stays unknown.
    let (_, body) = post(
        &app,
        token,
        json!({ "query": "query Me { me { id } }", "extensions": persisted(ME) }),
    )
    .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "extensions.persistedQuery.sha256Hash");
    assert!(body.get("data").is_none(), "{body}");
    let (_, body) = post(&app, token, json!({ "extensions": persisted(ME) })).await;
    assert_eq!(
        body["errors"][0]["message"], "PersistedQueryNotFound",
        "{body}"
    );

    let (_, body) = post(
        &app,
        token,
        json!({ "query": ME, "extensions": persisted(ME) }),
    )
    .await;
    assert_eq!(
        body,
        json!({ "data": { "me": { "email": "ada@example.com" } } })
    );

    let (_, body) = post(&app, token, json!({ "extensions": persisted(ME) })).await;
    assert_eq!(
        body,
        json!({ "data": { "me": { "email": "ada@example.com" } } })
    );

    // GET with only the hash and variables: the short, cacheable form.
    let with_variable =
        "query Creators($first: Int) { creators(first: $first) { totalCount } me { email } }";
    post(
        &app,
        token,
        json!({ "query": with_variable, "extensions": persisted(with_variable) }),
    )
    .await;
    let (status, body) = get(
        &app,
        token,
        &[
            ("variables", json!({ "first": 3 }).to_string()),
            ("extensions", persisted(with_variable).to_string()),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"]["email"], "ada@example.com", "{body}");
    let (_, body) = get(
        &app,
        token,
        &[
            ("variables", json!({ "first": 500 }).to_string()),
            ("extensions", persisted(with_variable).to_string()),
        ],
    )
    .await;
    assert_eq!(
        error_field(&body),
        "first",
        "the variables are applied: {body}"
    );

    // In a batch, an unknown hash is answered in its place and the others run.
    let unknown = "{ me { id } }";
    let (status, body) = post(
        &app,
        token,
        json!([
            { "extensions": persisted(unknown) },
            { "extensions": persisted(ME) },
            { "query": "{ creators { totalCount } }" },
        ]),
    )
    .await;
    assert_eq!(status, 200);
    let answers = body.as_array().expect("one answer per operation");
    assert_eq!(answers.len(), 3, "{body}");
    assert_eq!(answers[0]["errors"][0]["message"], "PersistedQueryNotFound");
    assert!(answers[0].get("data").is_none(), "{body}");
    assert_eq!(
        answers[1],
        json!({ "data": { "me": { "email": "ada@example.com" } } })
    );
    assert_eq!(answers[2]["data"]["creators"]["totalCount"], 0, "{body}");

    // Over WebSocket: the same store.
    let mut socket = subscribe_with(&app.base, token, json!({ "extensions": persisted(ME) })).await;
    assert_eq!(
        next_payload(&mut socket).await,
        json!({ "data": { "me": { "email": "ada@example.com" } } })
    );
    // An unknown hash is a request error: graphql-transport-ws answers it with `error`.
    let mut socket = subscribe_with(
        &app.base,
        token,
        json!({ "extensions": persisted(unknown) }),
    )
    .await;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let message = socket.next().await.expect("open").expect("message");
            if let Message::Text(text) = message {
                return serde_json::from_str::<Value>(&text).expect("json");
            }
        }
    })
    .await
    .expect("an answer");
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(
        answer["payload"][0]["message"], "PersistedQueryNotFound",
        "{answer}"
    );
    assert_eq!(
        answer["payload"][0]["extensions"]["code"], "NOT_FOUND",
        "{answer}"
    );
}

/// Malformed `extensions.persistedQuery` values name what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_persisted_queries_are_bad_user_input_naming_the_field() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada@example.com").await;
    for (persisted, field) in [
        (json!(true), "extensions.persistedQuery"),
        (
            json!({ "version": 2, "sha256Hash": sha256(ME) }),
            "extensions.persistedQuery.version",
        ),
        (
            json!({ "version": 1, "sha256Hash": "not hex" }),
            "extensions.persistedQuery.sha256Hash",
        ),
    ] {
        let body = json!({ "query": ME, "extensions": { "persistedQuery": persisted } });
        let (status, body) = post(&app, &ada.access_token, body).await;
        assert_eq!(status, 200);
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
}

/// `GET /graphql` honours `operationName` (async-graphql 7.2's own reader ignored it, so a
/// document of several operations could not be run by GET), and a query string whose
/// `variables` or `extensions` are not JSON objects is a 400 naming the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_requests_run_the_operation_they_name_and_name_bad_parameters() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada@example.com").await;
    let token = ada.access_token.as_str();
    let document = "query Count { creators { totalCount } } query Me { me { email } }";
    for (operation, expected) in [
        ("Me", json!({ "me": { "email": "ada@example.com" } })),
        ("Count", json!({ "creators": { "totalCount": 0 } })),
    ] {
        let (status, body) = get(
            &app,
            token,
            &[
                ("query", document.into()),
                ("operationName", operation.into()),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({ "data": expected }));
    }
    for (name, value, message) in [
        ("variables", "{not json", "is not valid JSON"),
        ("variables", "[1]", "must be a JSON object"),
        ("extensions", "\"x\"", "must be a JSON object"),
    ] {
        let (status, body) = get(&app, token, &[("query", ME.into()), (name, value.into())]).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), name, "{body}");
        let text = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{body}");
    }
    // A document of several operations, one a mutation, without a name: which to run is not
    // said, so it is a request error (status by the media type, as for POST), not a mutation
    // over GET (405).
    let both =
        "query Count { creators { totalCount } } mutation Out { logout(refreshToken: \"x\") }";
    let (status, body) = get(&app, token, &[("query", both.into())]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    let text = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(text.contains("peration name"), "{body}");
    assert!(body.get("data").is_none(), "{body}");
    // Empty parameters are absent ones.
    let (status, body) = get(
        &app,
        token,
        &[
            ("query", ME.into()),
            ("operationName", String::new()),
            ("variables", String::new()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["me"]["email"], "ada@example.com");
}

/// A browser's preflight for a GraphQL client that adds its own headers (Apollo's
/// `apollographql-client-name`) is allowed those headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_allowed_the_headers_clients_add() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "apollographql-client-name, authorization, content-type",
        )
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_success(), "{}", response.status());
    let allowed = response
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    for header in ["apollographql-client-name", "authorization", "content-type"] {
        assert!(allowed.contains(header), "{header} not in {allowed:?}");
    }
}

/// Runs `tests/node/apollo.mjs`: Apollo Client with its `PersistedQueryLink` sending hashed
/// queries by GET. The first run of a query costs a GET (hash unknown) and a POST (text and
/// hash); the next runs are one GET with the hash alone. A field error keeps the rest of the
/// answer, with `null` in the failed field's place. Skips, saying why, when `node` is not on
/// PATH or the packages cannot be installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apollo_client_runs_queries_by_hash_over_get() {
    let dir = crate::helpers::node_clients().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada@example.com").await;
    let url = format!("{}/graphql", app.base);
    let seen = crate::helpers::run_node(&dir, "apollo.mjs", &[&url, &ada.access_token]).await;

    // Apollo accepts application/graphql-response+json, so the unknown hash (a request error)
    // is a 400, whose body Apollo reads and retries on.
    let unknown = json!({ "method": "GET", "query": false, "hash": true, "status": 400 });
    let by_hash = json!({ "method": "GET", "query": false, "hash": true, "status": 200 });
    let with_text = json!({ "method": "POST", "query": true, "hash": true, "status": 200 });
    assert_eq!(
        seen["first"]["requests"],
        json!([unknown, with_text]),
        "{seen}"
    );
    assert_eq!(seen["again"]["requests"], json!([by_hash]), "{seen}");
    for run in ["first", "again"] {
        assert_eq!(seen[run]["errors"], Value::Null, "{seen}");
        assert_eq!(
            seen[run]["data"]["me"]["email"], "ada@example.com",
            "{seen}"
        );
        assert_eq!(seen[run]["data"]["creators"]["totalCount"], 0, "{seen}");
    }
    assert_eq!(seen["partlyAgain"]["requests"], json!([by_hash]), "{seen}");
    for run in ["partly", "partlyAgain"] {
        assert_eq!(seen[run]["data"]["video"], Value::Null, "{seen}");
        assert_eq!(seen[run]["data"]["creators"]["totalCount"], 0, "{seen}");
        assert_eq!(seen[run]["errors"][0]["code"], "BAD_USER_INPUT", "{seen}");
    }
    // A document that does not validate: 400 with its errors, which Apollo reports.
    let invalid = &seen["invalid"];
    let rejected = json!({ "method": "POST", "query": true, "hash": true, "status": 400 });
    assert_eq!(invalid["requests"], json!([unknown, rejected]), "{seen}");
    assert_eq!(invalid["data"], Value::Null, "{seen}");
    assert_eq!(invalid["errors"][0]["code"], "BAD_USER_INPUT", "{seen}");
}

/// graphql-http's audits of the GraphQL-over-HTTP specification (media types, status codes,
/// request errors without `data`, GET and POST parameters): every one passes, MUSTs,
/// SHOULDs and MAYs alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_over_http_audits_pass() {
    let dir = crate::helpers::node_clients().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = format!("{}/graphql", app.base);
    let seen = crate::helpers::run_node(&dir, "http-audit.mjs", &[&url]).await;
    let audits = seen.as_array().expect("audit results");
    assert!(audits.len() >= 50, "{seen}");
    let failed: Vec<&Value> = audits.iter().filter(|a| a["status"] != "ok").collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

/// A required variable left out refuses the whole request before anything runs (variables
/// are coerced before execution): a mutation whose second field needs it writes nothing.
async fn a_missing_required_variable_runs_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("ada@example.com").await;
    let token = ada.access_token.as_str();
    let two = "mutation Two($name: String!) { \
        one: createCreator(input: { name: \"First\" }) { id } \
        two: createCreator(input: { name: $name }) { id } }";
    for variables in [json!({}), json!({ "name": null })] {
        let (status, body) =
            post(&app, token, json!({ "query": two, "variables": variables })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), "name", "{body}");
        assert!(body.get("data").is_none(), "{body}");
    }
    let data = app
        .ok(Some(token), "{ me { creators { id } } }", json!({}))
        .await;
    assert_eq!(data["me"]["creators"], json!([]), "nothing was written");
    // With the variable, both run.
    let (_, body) = post(
        &app,
        token,
        json!({ "query": two, "variables": { "name": "Second" } }),
    )
    .await;
    assert!(body["data"]["two"]["id"].is_string(), "{body}");

    // A nullable variable given to a non-null argument (or one of another type) makes the
    // document invalid, whatever the variables: refused before anything runs, naming the
    // argument, as graphql-js refuses it.
    for (query, field) in [
        (
            "mutation Three($name: String) { \
             one: createCreator(input: { name: \"Third\" }) { id } \
             two: createCreator(input: { name: $name }) { id } }",
            "input.name",
        ),
        (
            "mutation Four($name: Int!) { \
             one: createCreator(input: { name: \"Fourth\" }) { id } \
             two: createCreator(input: { name: \"x\", bio: $name }) { id } }",
            "input.bio",
        ),
    ] {
        for variables in [json!({}), json!({ "name": "Fifth" }), json!({ "name": 5 })] {
            let (status, body) = post(
                &app,
                token,
                json!({ "query": query, "variables": variables }),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
            assert_eq!(error_field(&body), field, "{body}");
            assert!(body.get("data").is_none(), "{body}");
        }
    }
    let data = app
        .ok(Some(token), "{ me { creators { name } } }", json!({}))
        .await;
    assert_eq!(
        data["me"]["creators"].as_array().map(Vec::len),
        Some(2),
        "{data}"
    );
    // A nullable variable with a default fits a non-null place (and the query runs).
    let (_, body) = post(
        &app,
        token,
        json!({ "query": "query($id: ID = \"01a2494a-b32f-70b5-9775-9787cbc30ab8\") { video(id: $id) { id } }" }),
    )
    .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "it ran: {body}");
}

/// Asserts that each of `keys` (as `"key":`) appears in `text` after the one before it.
fn in_order(text: &str, keys: &[&str]) {
    let mut from = 0;
    for key in keys {
        let quoted = format!("\"{key}\":");
        let at = text[from..]
            .find(&quoted)
            .unwrap_or_else(|| panic!("{quoted} not after the keys before it in {text}"));
        from += at + quoted.len();
    }
}

/// Objects come back with their keys in the order the query asked for them (the spec), at
/// every depth, over HTTP and WebSocket alike. async-graphql wrote each field as it completed,
/// so a field that reads the database came after a `__typename` asked after it (and the order
/// changed between calls); WebSocket answers came out sorted by key.
async fn answers_keep_the_order_of_the_query(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("ordered@example.com").await;
    app.create_creator(&owner, "Ordered").await;
    const QUERY: &str = "{ z: me { creators { slug name } y: __typename email } \
        a: __typename m: renderUsage { minutesLimit billingPeriod } ...F } \
        fragment F on QueryRoot { b: __typename z: me { email } }";
    let keys = [
        "z",
        "creators",
        "slug",
        "name",
        "y",
        "email",
        "a",
        "m",
        "minutesLimit",
        "billingPeriod",
        "b",
    ];
    for _ in 0..3 {
        let text = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&owner.access_token)
            .json(&json!({ "query": QUERY }))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("body");
        in_order(&text, &keys);
    }
    let mut socket =
        subscribe_with(&app.base, &owner.access_token, json!({ "query": QUERY })).await;
    let text = loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(30), socket.next())
            .await
            .expect("an answer within 30 s")
            .expect("open")
            .expect("message");
        if let Message::Text(text) = message
            && text.contains("\"next\"")
        {
            break text.to_string();
        }
    };
    in_order(&text, &keys);
}

both_backends!(
    answers_keep_the_order_of_the_query,
    persisted_queries_run_by_hash_once_their_text_was_sent,
    a_missing_required_variable_runs_nothing,
);

/// A batch holds at most 10 operations: one more is refused whole, 400 with the reason, and
/// none of its operations runs (here: no creator is made); 10 run, each answered in its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_the_limit_runs_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("batch@example.com").await;
    let token = ada.access_token.as_str();
    let create = |i: usize| json!({ "query": format!("mutation {{ createCreator(input: {{ name: \"Batch {i}\" }}) {{ name }} }}") });
    let (status, body) = post(&app, token, Value::Array((0..11).map(create).collect())).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(
        body["errors"][0]["message"],
        "a batch may hold at most 10 operations"
    );
    assert!(body.get("data").is_none(), "{body}");
    let data = app
        .ok(Some(token), "{ me { creators { id } } }", json!({}))
        .await;
    assert_eq!(data["me"]["creators"], json!([]), "nothing ran");

    let (status, body) = post(&app, token, Value::Array((0..10).map(create).collect())).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body
        .as_array()
        .expect("one answer per operation")
        .iter()
        .filter_map(|answer| answer["data"]["createCreator"]["name"].as_str())
        .collect();
    assert_eq!(names.len(), 10, "{body}");
    assert!(
        names
            .iter()
            .enumerate()
            .all(|(i, n)| *n == format!("Batch {i}")),
        "{names:?}"
    );
}

/// The status of an answer depends on the media type the client accepts: with
/// `application/graphql-response+json`, a request error is 400 (401 for an access token that
/// is not valid) and a field error 200 beside its data; with `application/json`, all are 200.
/// Either way the body says what went wrong, and a request error has no `data`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_follow_the_media_type_the_client_accepts() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada@example.com").await;
    let cases = [
        // (token, query, status with graphql-response+json, code, request error?)
        (
            Some(ada.access_token.as_str()),
            "{ me { email } }",
            200,
            None,
            false,
        ),
        (
            Some("not-a-token"),
            "{ creators { totalCount } }",
            401,
            Some("UNAUTHENTICATED"),
            true,
        ),
        (
            None,
            "{ creators { nope } }",
            400,
            Some("BAD_USER_INPUT"),
            true,
        ),
        (
            None,
            "query($id: ID!) { video(id: $id) { id } }",
            400,
            Some("BAD_USER_INPUT"),
            true,
        ),
        (
            None,
            "{ creators { totalCount } video(id: \"x\") { id } }",
            200,
            Some("BAD_USER_INPUT"),
            false,
        ),
    ];
    for (token, query, graphql_status, code, request_error) in cases {
        for (accept, status, media) in [
            (
                "application/graphql-response+json, application/json;q=0.9",
                graphql_status,
                "application/graphql-response+json",
            ),
            ("application/json", 200, "application/json"),
        ] {
            let mut request = app
                .client
                .post(format!("{}/graphql", app.base))
                .header("Accept", accept)
                .json(&json!({ "query": query }));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("sent");
            assert_eq!(response.status().as_u16(), status, "{query} / {accept}");
            // The answer depends on both, so a cache in between must key on them.
            assert_eq!(response.headers()["vary"], "Accept, Authorization");
            let challenge = response.headers().get("www-authenticate");
            assert_eq!(
                challenge.map(|v| v.as_bytes()),
                (status == 401).then_some(&b"Bearer"[..]),
                "{query} / {accept}"
            );
            let content_type = response.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .to_owned();
            assert_eq!(content_type, media, "{query} / {accept}");
            let body: Value = response.json().await.expect("JSON body");
            assert_eq!(
                body["errors"][0]["extensions"]["code"].as_str(),
                code,
                "{body}"
            );
            assert_eq!(body.get("data").is_none(), request_error, "{body}");
        }
    }
}

/// A POST body is read as JSON (or a multipart form) only when it says so: `text/plain`, and
/// `application/graphql` (a bare document, which this server does not read), are 415 and run
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_other_media_types_are_refused_with_415() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let body = json!({ "query": "mutation { logout(refreshToken: \"x\") }" }).to_string();
    for media in ["text/plain", "application/graphql", "application/xml"] {
        let response = app
            .client
            .post(format!("{}/graphql", app.base))
            .header("content-type", media)
            .body(body.clone())
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 415, "{media}");
    }
}

/// The server's log ties what happens in a request to its `x-request-id` (the request's span
/// carries it), and never writes the request's query string, which may hold GraphQL variables
/// (a password) or a presigned link's signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_logs_carry_the_request_id_and_no_query_string() {
    let data_dir = tempfile::tempdir().expect("dir");
    let (mut server, port) = crate::helpers::serve_binary(
        data_dir.path(),
        &[
            ("RUST_LOG", "info,tower_http=debug"),
            ("REELGRAPH_LOG_FORMAT", "json"),
        ],
        true,
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while client.get(format!("{base}/livez")).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let query = "{ me { id } }";
    let answer = client
        .get(format!("{base}/graphql"))
        .query(&[
            ("query", query),
            ("variables", r#"{"password":"hunter2-in-a-query"}"#),
        ])
        .header("x-request-id", "trace-me-4242")
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), 200);
    server.start_kill().expect("stopped");
    let output = server.wait_with_output().await.expect("ended");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("trace-me-4242"), "{log}");
    assert!(log.contains("\"path\":\"/graphql\""), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}
