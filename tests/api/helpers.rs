//! Boots the real application on `127.0.0.1:0` against a fresh database — an SQLite file in a
//! temporary data dir, or a new PostgreSQL database that is dropped afterwards — and talks to
//! it over HTTP like any client.

use std::time::Duration;

use entity::{VideoStatus, video};
use futures_util::{SinkExt, StreamExt};
use reelgraph::{
    Application,
    config::{Config, ServeArgs},
    state::AppState,
};
use sea_orm::{ActiveModelTrait, Set};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The JWT secret of every PostgreSQL-backed test app (so apps on one database share tokens).
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// Creates a fresh PostgreSQL database and returns its name.
pub async fn create_database() -> String {
    let name = format!("rg_test_{}", Uuid::new_v4().simple());
    let admin = Database::connect(format!("{}/postgres", postgres_base_url()))
        .await
        .expect("PostgreSQL must be running for the tests (see README)");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    name
}

/// PostgreSQL server the tests create their databases on.
pub fn postgres_base_url() -> String {
    std::env::var("REELGRAPH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Runs each listed `async fn name(backend: Backend)` once per backend, as `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    _data_dir: tempfile::TempDir,
    pg_database: Option<String>,
    server: tokio::task::JoinHandle<()>,
}

/// A signed-in user.
#[derive(Clone)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: String,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut ServeArgs)) -> Self {
        let pg_database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(create_database().await),
        };
        let mut app = Self::spawn_on(pg_database.as_deref(), configure).await;
        app.pg_database = pg_database;
        app
    }

    /// An app on an existing PostgreSQL database (`None`: a fresh SQLite one), which this app
    /// does not drop — so several apps can share one database.
    pub async fn spawn_on(
        pg_database: Option<&str>,
        configure: impl FnOnce(&mut ServeArgs),
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .try_init();
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::embedded(data_dir.path());
        config.job_poll_ms = 500;
        if let Some(name) = pg_database {
            config.database_url = Some(format!("{}/{name}", postgres_base_url()));
            config.jwt_secret = Some(TEST_JWT_SECRET.to_owned());
            config.db_max_connections = 10;
            config.storage_dir = Some(data_dir.path().join("objects"));
        }
        let mut args = ServeArgs {
            listen: "127.0.0.1:0".parse().expect("addr"),
            no_worker: false,
            config,
        };
        configure(&mut args);
        let app = Application::build(args).await.expect("application builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        let server = tokio::spawn(async move {
            app.run_until(std::future::pending()).await.ok();
        });
        Self {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            state,
            _data_dir: data_dir,
            pg_database: None,
            server,
        }
    }

    /// Sends one GraphQL operation by POST and returns the whole JSON response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        assert!(response.status().is_success(), "HTTP {}", response.status());
        response.json().await.expect("JSON body")
    }

    /// POSTs `body` (a request, or a batch of them) to `/graphql` as it is; returns the JSON
    /// answer.
    pub async fn post_body(&self, token: Option<&str>, body: &Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("sent");
        response.json().await.expect("JSON")
    }

    /// `gql` as a task of its own, for a request the test holds up (a race) while it goes on.
    pub fn gql_in_background(
        &self,
        token: &str,
        query: &str,
        variables: Value,
    ) -> tokio::task::JoinHandle<Value> {
        let (base, client, token) = (self.base.clone(), self.client.clone(), token.to_owned());
        let body = json!({ "query": query, "variables": variables });
        tokio::spawn(async move {
            client
                .post(format!("{base}/graphql"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("sent")
                .json::<Value>()
                .await
                .expect("json")
        })
    }

    /// Like `gql`, but fails the test when the response has errors; returns `data`.
    pub async fn ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    pub async fn register(&self, email: &str) -> Session {
        let data = self
            .ok(
                None,
                "mutation($input: RegisterInput!) { register(input: $input) { accessToken refreshToken user { id } } }",
                json!({ "input": { "email": email, "password": "correct horse battery" } }),
            )
            .await;
        session_of(&data["register"])
    }

    /// Registers an account and makes it an administrator.
    pub async fn admin(&self, email: &str) -> Session {
        reelgraph::users::create_admin(&self.state.db, email, "correct horse battery", None)
            .await
            .map_err(|e| e.public_message())
            .expect("admin created");
        let data = self
            .ok(
                None,
                "mutation($e: String!) { login(email: $e, password: \"correct horse battery\") { accessToken refreshToken user { id } } }",
                json!({ "e": email }),
            )
            .await;
        session_of(&data["login"])
    }

    /// Creates a creator owned by `session`; returns its id.
    pub async fn create_creator(&self, session: &Session, name: &str) -> String {
        let data = self
            .ok(
                Some(&session.access_token),
                "mutation($input: CreateCreatorInput!) { createCreator(input: $input) { id } }",
                json!({ "input": { "name": name } }),
            )
            .await;
        data["createCreator"]["id"].as_str().expect("id").to_owned()
    }

    /// Makes this app drop `database` when it is dropped.
    /// A worker pool of `slots` on this app's database, storage and events, running the
    /// handlers of `registry` (test handlers, or built-in ones wrapped).
    pub fn worker_pool(
        &self,
        registry: reelgraph::jobs::handlers::Registry,
        slots: usize,
    ) -> reelgraph::jobs::worker::WorkerPool {
        reelgraph::jobs::worker::WorkerPool::new(
            self.state.db.clone(),
            self.state.events.clone(),
            self.state.storage.clone(),
            registry,
            self.state.config.job_settings(),
            slots,
            self.state.metrics.clone(),
        )
    }

    pub fn adopt_database(&mut self, database: String) {
        self.pg_database = Some(database);
    }

    /// SQL statements this app has sent so far (its workers' included).
    pub fn statements(&self) -> u64 {
        self.state.metrics.db_statements.get()
    }

    /// SQL statements this app's GraphQL requests over HTTP have sent so far (from
    /// `reelgraph_graphql_request_statements`): the cost of a request, whatever the workers do
    /// meanwhile.
    pub fn request_statements(&self) -> u64 {
        self.state.metrics.request_statements_sum()
    }
}

pub fn session_of(payload: &Value) -> Session {
    Session {
        access_token: payload["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_owned(),
        refresh_token: payload["refreshToken"]
            .as_str()
            .expect("refreshToken")
            .to_owned(),
        user_id: payload["user"]["id"].as_str().expect("user id").to_owned(),
    }
}

/// The `extensions.code` of the first error.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

/// The `extensions.field` of the first error.
pub fn error_field(body: &Value) -> &str {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or("<none>")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        let Some(name) = self.pg_database.take() else {
            return;
        };
        let db = self.state.db.clone();
        // Drop is synchronous; the test's runtime is busy dropping us, so use a fresh one.
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    drop(db);
                    if let Ok(admin) =
                        Database::connect(format!("{}/postgres", postgres_base_url())).await
                    {
                        admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await
                            .ok();
                        admin.close().await.ok();
                    }
                });
            }
        });
        handle.join().ok();
    }
}

/// A graphql-transport-ws client: connects, authenticates and subscribes.
pub async fn subscribe(
    base: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    subscribe_with(
        base,
        token,
        json!({ "query": query, "variables": variables }),
    )
    .await
}

/// A `graphql-transport-ws` socket to the server at `base` that has sent `connection_init`
/// with `token` (the answer is the caller's to read).
async fn connect_and_init(
    base: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("{}/graphql/ws", base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connected");
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .expect("init sent");
    socket
}

/// [`subscribe`] with a whole `subscribe` payload (`query`, `variables`, `extensions`, …).
pub async fn subscribe_with(
    base: &str,
    token: &str,
    payload: Value,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut socket = connect_and_init(base, token).await;
    let acked = async {
        loop {
            let message = socket.next().await.expect("open").expect("message");
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).expect("json");
                assert_eq!(value["type"], "connection_ack", "{value}");
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), acked)
        .await
        .expect("connection_ack within 30 s");
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": payload });
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .expect("subscribe sent");
    socket
}

/// The next `next` payload of a subscription.
pub async fn next_payload(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    let read = async {
        loop {
            let message = socket.next().await.expect("open").expect("message");
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).expect("json");
                match value["type"].as_str() {
                    Some("next") => return value["payload"].clone(),
                    Some("error" | "complete") => panic!("subscription ended: {value}"),
                    // As graphql-ws clients do: the server closes a socket that stops ponging.
                    Some("ping") => pong(socket).await,
                    _ => {}
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the subscription's first event")
}

async fn pong(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) {
    use futures_util::SinkExt;
    let _ = socket
        .send(Message::Text(r#"{"type":"pong"}"#.into()))
        .await;
}

/// Reads a subscription's `next` payloads until `complete` (at most `within`).
pub async fn collect_until_complete(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    within: Duration,
) -> Vec<Value> {
    let mut payloads = Vec::new();
    let read = async {
        loop {
            let message = match socket.next().await {
                Some(Ok(message)) => message,
                Some(Err(err)) => panic!("the socket failed before `complete`: {err}"),
                None => panic!("the socket ended before `complete`"),
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => panic!("the server closed before `complete`: {frame:?}"),
                _ => continue,
            };
            let value: Value = serde_json::from_str(&text).expect("json");
            match value["type"].as_str() {
                Some("complete") => break,
                Some("next") => payloads.push(value["payload"].clone()),
                Some("error") => panic!("subscription error: {value}"),
                Some("ping") => pong(socket).await,
                _ => panic!("unexpected message before `complete`: {value}"),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("the subscription completes in time");
    payloads
}

/// Inserts a video row directly, for tests that do not go through uploads.
pub async fn insert_video(
    app: &TestApp,
    creator_id: &str,
    title: &str,
    status: VideoStatus,
    duration_secs: Option<f64>,
) -> Uuid {
    let now = chrono::Utc::now();
    let id = Uuid::now_v7();
    video::ActiveModel {
        id: Set(id),
        creator_id: Set(creator_id.parse().expect("uuid")),
        title: Set(title.to_owned()),
        original_filename: Set(format!("{title}.mp4")),
        storage_key: Set(format!("creators/{creator_id}/videos/{id}/original")),
        status: Set(status),
        duration_secs: Set(duration_secs),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .expect("video inserted");
    id
}

/// `tests/node` with its npm packages installed (`npm ci` on first use). The tests that drive
/// real npm clients (graphql-ws, Apollo, graphql-http, graphql-js) fail, saying why, when
/// Node.js is missing or the packages cannot be installed: a skipped check would pass silently.
pub async fn node_clients() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let node = tokio::process::Command::new("node")
        .arg("--version")
        .output()
        .await;
    let version = match node {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => panic!(
            "`node` is not on PATH: these tests drive the real npm clients; install Node.js 20 \
             or newer (./scripts/test says how)"
        ),
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "Node.js {version} is too old for tests/node (graphql-ws 6 needs 20 or newer)"
    );
    // Two tests may get here at once: one installs, under a lock, the other waits for it.
    static INSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _installing = INSTALL.lock().await;
    let installed = [
        "graphql-ws",
        "graphql",
        "@apollo/client",
        "rxjs",
        "graphql-http",
        "ws",
        "@graphql-codegen/cli",
        "@graphql-codegen/client-preset",
        "typescript",
    ]
    .iter()
    .all(|package| dir.join("node_modules").join(package).exists());
    if !installed {
        let out = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .await
            .expect("npm runs (it comes with Node.js)");
        assert!(
            out.status.success(),
            "`npm ci` in tests/node failed (is the npm registry reachable?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

/// PUTs `bytes` the way any HTTP client would: to an upload's presigned `uploadUrl`, with the
/// `uploadHeaders` it came with (video and asset uploads alike).
pub async fn put_presigned(app: &TestApp, upload: &Value, bytes: &[u8]) {
    let status = put_presigned_status(app, upload, bytes).await;
    assert!((200..300).contains(&status), "PUT failed: {status}");
}

/// The HTTP status of a PUT of `bytes` to an upload's `uploadUrl`, with its `uploadHeaders`.
pub async fn put_presigned_status(app: &TestApp, upload: &Value, bytes: &[u8]) -> u16 {
    let url = upload["uploadUrl"].as_str().expect("uploadUrl");
    let mut put = app.client.put(url).body(bytes.to_vec());
    for (name, value) in upload["uploadHeaders"].as_object().expect("headers") {
        put = put.header(name, value.as_str().expect("header value"));
    }
    put.send().await.expect("PUT sent").status().as_u16()
}

/// Runs `node <script> <args…>` in `tests/node` and returns the one JSON line it prints.
pub async fn run_node(dir: &std::path::Path, script: &str, args: &[&str]) -> Value {
    let run = tokio::process::Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("node finishes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node {script} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

/// A one-colour PNG made with ffmpeg (`color` like `0xff3366`, `size` like `64x64`).
pub async fn make_png(path: &std::path::Path, color: &str, size: &str) {
    let tools = reelgraph::render::ffmpeg::check()
        .await
        .expect("ffmpeg is installed (scripts/test installs it)");
    let status = tokio::process::Command::new(&tools.ffmpeg)
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("color=c={color}:s={size}"))
        .args(["-frames:v", "1"])
        .arg(path)
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg made {}", path.display());
}

/// How many statements in the app's PostgreSQL database wait on a lock now.
pub async fn lock_waits(app: &TestApp) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let waiting = "SELECT count(*)::bigint AS n FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let row = app
        .state
        .db
        .query_one_raw(Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            waiting,
        ))
        .await
        .expect("pg_stat_activity")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("n")
}

/// Waits (up to 20 s) until `n` statements in the app's PostgreSQL database wait on a lock:
/// requests have reached what the test's open transaction holds up.
pub async fn wait_for_lock_waits(app: &TestApp, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if lock_waits(app).await >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no statement ever waited on the test's lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens a `graphql-transport-ws` socket and sends `connection_init` with `token`; returns
/// the close code the server answers with (fails if it acknowledges instead).
pub async fn ws_init_refused(app: &TestApp, token: &str) -> u16 {
    let mut socket = connect_and_init(&app.base, token).await;
    let closed = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Text(text))) => panic!("expected a close, got {text}"),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), closed)
        .await
        .expect("closed within 30 s")
}

/// A document of `levels` fragments on `QueryRoot`, each spreading the next twice: 2^levels
/// fields once expanded, a few bytes per level as written.
pub fn fragment_bomb(levels: usize) -> String {
    let mut bomb = String::from("{ ...F0 }");
    for n in 0..levels {
        bomb.push_str(&format!(
            " fragment F{n} on QueryRoot {{ ...F{} ...F{} }}",
            n + 1,
            n + 1
        ));
    }
    bomb.push_str(&format!(
        " fragment F{levels} on QueryRoot {{ __typename }}"
    ));
    bomb
}

/// Ends every PostgreSQL connection to the app's database (as a restart or an administrator
/// would), from a connection of the test's own.
pub async fn end_database_connections(app: &TestApp) {
    use sea_orm::ConnectionTrait;
    let url = app.state.config.database_url.clone().expect("url");
    let database = url.rsplit('/').next().expect("database name").to_owned();
    let direct = sea_orm::Database::connect(format!("{}/postgres", postgres_base_url()))
        .await
        .expect("connected");
    direct
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
        ))
        .await
        .expect("terminated");
    direct.close().await.ok();
}

/// A query of `n` selections of an unknown field: `n` validation errors.
pub fn unknown_fields(n: usize) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: nope")).collect();
    format!("{{ {} }}", fields.join(" "))
}

/// A query whose `length` fragments each spread the next: one field once expanded, but
/// `length` levels deep (about 38 bytes a level).
pub fn fragment_chain(length: usize) -> String {
    let mut chain = String::from("{ ...f0 }");
    for n in 0..length {
        chain.push_str(&format!(" fragment f{n} on QueryRoot {{ ...f{} }}", n + 1));
    }
    chain.push_str(&format!(
        " fragment f{length} on QueryRoot {{ __typename }}"
    ));
    chain
}

/// A TCP relay to PostgreSQL whose open connections can be frozen: they stay open but carry
/// nothing more, as a connection a NAT or a failover dropped without a word. Connections made
/// after the freeze are relayed. Returns the relay's `host:port` and the freeze switch.
async fn freezable_relay(
    upstream: String,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let frozen = Arc::new(AtomicBool::new(false));
    let switch = frozen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            // Connections made once frozen are not frozen themselves.
            let after_freeze = frozen.load(Ordering::SeqCst);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let pairs: [(
                Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
            ); 2] = [
                (Box::new(client_read), Box::new(server_write)),
                (Box::new(server_read), Box::new(client_write)),
            ];
            for (mut from, mut to) in pairs {
                let frozen = frozen.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 16 * 1024];
                    loop {
                        let n = match from.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if !after_freeze && frozen.load(Ordering::SeqCst) {
                            // Holds both ends open and passes nothing on.
                            std::future::pending::<()>().await;
                        }
                        if to.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    (address, switch)
}

/// An app on a fresh PostgreSQL database reached through a [`freezable_relay`]; setting the
/// switch freezes the connections it has made so far, as a database that stopped answering.
pub async fn spawn_behind_relay(
    configure: impl FnOnce(&mut ServeArgs),
) -> (TestApp, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let base = url::Url::parse(&postgres_base_url()).expect("url");
    let upstream = format!(
        "{}:{}",
        base.host_str().expect("host"),
        base.port().unwrap_or(5432)
    );
    let (relay, freeze) = freezable_relay(upstream.clone()).await;
    let app = TestApp::spawn_with(Backend::Postgres, |a| {
        configure(a);
        let url = a.config.database_url.clone().expect("url");
        a.config.database_url = Some(url.replacen(&upstream, &relay, 1));
    })
    .await;
    (app, freeze)
}

/// `reelgraph serve --no-worker` run as its own process on a free port of 127.0.0.1, on the
/// embedded default in `data_dir`, with `env` added; returns the process (killed when dropped)
/// and its port. Its log (standard error) is piped when `read_log` (read it, or it may fill),
/// shown otherwise; standard output is dropped.
pub fn serve_binary(
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
    read_log: bool,
) -> (tokio::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let server = tokio::process::Command::new(env!("CARGO_BIN_EXE_reelgraph"))
        .args([
            "serve",
            "--no-worker",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("DATABASE_URL")
        .env("REELGRAPH_DATA_DIR", data_dir)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(if read_log {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::inherit()
        })
        .kill_on_drop(true)
        .spawn()
        .expect("the server starts");
    (server, port)
}
