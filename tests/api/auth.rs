use chrono::{Duration, Utc};
use entity::UserRole;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    both_backends,
    helpers::{Backend, TestApp, error_code, error_field, session_of},
};

const ME: &str = "{ me { id email role displayName } }";
const REFRESH: &str = "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken user { id } } }";

async fn register_login_and_me_work(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let data = app
        .ok(
            None,
            "mutation { register(input: {email: \"  Ada@Example.COM \", password: \"correct horse battery\", displayName: \"Ada\"}) { accessToken expiresAt user { email role } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["register"]["user"]["email"], "ada@example.com");
    assert_eq!(data["register"]["user"]["role"], "VIEWER");

    let login = app
        .ok(
            None,
            "mutation { login(email: \"ada@example.com\", password: \"correct horse battery\") { accessToken refreshToken user { id } } }",
            json!({}),
        )
        .await;
    let session = session_of(&login["login"]);
    let me = app.ok(Some(&session.access_token), ME, json!({})).await;
    assert_eq!(me["me"]["email"], "ada@example.com");
    assert_eq!(me["me"]["displayName"], "Ada");
    assert_eq!(me["me"]["id"], session.user_id.as_str());

    let anonymous = app.ok(None, ME, json!({})).await;
    assert!(anonymous["me"].is_null());

    // The scheme's name in any case (RFC 9110), as on WebSocket.
    for scheme in ["BEARER", "bEaReR"] {
        let header = format!("{scheme} {}", session.access_token);
        let body = post_with_authorization(
            &app,
            header.parse().expect("header"),
            json!({ "query": ME }),
        )
        .await;
        assert_eq!(body["data"]["me"]["email"], "ada@example.com", "{body}");
    }

    // An email longer than any account's is refused before it is counted or looked up.
    let long = format!("{}@example.com", "a".repeat(100_000));
    let body = app
        .gql(
            None,
            "mutation($e: String!) { login(email: $e, password: \"x\") { accessToken } }",
            json!({ "e": long }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "email", "{body}");
}

/// The account a `register`, `login` or `refreshSession` answers with is shown as its own:
/// sent without a token (or with another account's), its own fields were null (or the other
/// account's session was `current`), and a client cache took those nulls for the account's.
async fn a_sign_in_answer_shows_the_account_as_its_own(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    const OWN: &str = "user { id credits onboardingCompleted notificationPreferences { digestEnabled } \
                       webhookSecret creditLedger(first: 1) { totalCount } sessions { id current } }";
    let current = |user: &serde_json::Value| -> Vec<String> {
        let sessions = user["sessions"].as_array().expect("sessions");
        sessions
            .iter()
            .filter(|s| s["current"] == true)
            .map(|s| s["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let own = |user: &serde_json::Value| {
        assert!(user["credits"].is_i64(), "{user}");
        assert_eq!(user["onboardingCompleted"], false, "{user}");
        assert!(
            user["notificationPreferences"]["digestEnabled"].is_boolean(),
            "{user}"
        );
        assert!(user["webhookSecret"].is_string(), "{user}");
        assert!(user["creditLedger"]["totalCount"].is_i64(), "{user}");
    };
    let data = app
        .ok(
            None,
            &format!("mutation {{ register(input: {{ email: \"ada@example.com\", password: \"correct horse battery\" }}) {{ accessToken {OWN} }} }}"),
            json!({}),
        )
        .await;
    let registered = &data["register"]["user"];
    own(registered);
    assert_eq!(current(registered).len(), 1, "{registered}");

    // Signed in as Bob, Ada signs in: her answer shows her own fields and her new session.
    let bob = app.register("bob@example.com").await;
    let data = app
        .ok(
            Some(&bob.access_token),
            &format!("mutation {{ login(email: \"ada@example.com\", password: \"correct horse battery\") {{ accessToken refreshToken {OWN} }} }}"),
            json!({}),
        )
        .await;
    let login = &data["login"];
    own(&login["user"]);
    let sessions = login["user"]["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2, "{login}");
    let token = login["accessToken"].as_str().expect("token");
    let me = app
        .ok(Some(token), "{ me { sessions { id current } } }", json!({}))
        .await;
    assert_eq!(current(&login["user"]), current(&me["me"]), "{login} {me}");
    assert_ne!(current(&login["user"]), current(registered));

    // A refresh answers for the session it refreshed.
    let refresh = login["refreshToken"].as_str().expect("refresh");
    let data = app
        .ok(
            None,
            &format!("mutation($r: String!) {{ refreshSession(refreshToken: $r) {{ {OWN} }} }}"),
            json!({ "r": refresh }),
        )
        .await;
    own(&data["refreshSession"]["user"]);
    assert_eq!(current(&data["refreshSession"]["user"]), current(&me["me"]));
}

/// A client refreshing in a loop is held back (each refresh adds a row), without losing its
/// token; the workers' upkeep deletes used refresh tokens after a week and ended sessions
/// after a month, and leaves live ones alone.
async fn refreshes_are_throttled_and_old_sessions_cleaned_up(backend: Backend) {
    use entity::{refresh_token, session};
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr};

    let app = TestApp::spawn(backend).await;
    let mut current = app.register("looping@example.com").await;
    let mut refused = None;
    for _ in 0..30 {
        let body = app
            .gql(None, REFRESH, json!({ "t": current.refresh_token }))
            .await;
        if body.get("errors").is_some() {
            refused = Some(body);
            break;
        }
        current = session_of(&body["data"]["refreshSession"]);
    }
    let refused = refused.expect("a loop of refreshes is throttled");
    assert_eq!(error_code(&refused), "RATE_LIMITED", "{refused}");
    // The wait, for clients to act on.
    assert!(
        refused["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .is_some_and(|secs| (1..=60).contains(&secs)),
        "{refused}"
    );
    let db = &app.state.db;
    let tokens = || refresh_token::Entity::find().count(db);
    let issued = tokens().await.expect("count");
    assert!((10..=12).contains(&issued), "{issued} refresh tokens");

    // An ended session of a month ago (and its tokens), and the used tokens, made old.
    let ended = app.register("ended-long-ago@example.com").await;
    app.ok(
        None,
        "mutation($t: String!) { logout(refreshToken: $t) }",
        json!({ "t": ended.refresh_token }),
    )
    .await;
    let long_ago = Utc::now() - Duration::days(31);
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::val(long_ago))
        .filter(session::Column::UserId.eq(ended.user_id.parse::<Uuid>().expect("uuid")))
        .exec(db)
        .await
        .expect("ended long ago");
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::UsedAt,
            Expr::val(Utc::now() - Duration::days(8)),
        )
        .filter(refresh_token::Column::UsedAt.is_not_null())
        .exec(db)
        .await
        .expect("used long ago");
    let deleted = reelgraph::auth::clean_up(db, Utc::now())
        .await
        .map_err(|e| e.public_message())
        .expect("cleaned up");
    // Every token but the live session's unused one, and the ended session.
    assert_eq!(deleted, issued + 1, "{deleted} rows deleted");
    assert_eq!(tokens().await.expect("count"), 1);
    assert_eq!(session::Entity::find().count(db).await.expect("count"), 1);
    assert_eq!(
        reelgraph::auth::clean_up(db, Utc::now()).await.ok(),
        Some(0)
    );
    // The live session goes on.
    let me = app.ok(Some(&current.access_token), ME, json!({})).await;
    assert_eq!(me["me"]["email"], "looping@example.com");

    // A thief refreshing as fast as the throttle allows does not keep the owner's reuse of
    // the stolen token from ending the session.
    let stolen = app.register("robbed@example.com").await;
    let mut thief = stolen.clone();
    loop {
        let body = app
            .gql(None, REFRESH, json!({ "t": thief.refresh_token }))
            .await;
        if body.get("errors").is_some() {
            assert_eq!(error_code(&body), "RATE_LIMITED", "{body}");
            break;
        }
        thief = session_of(&body["data"]["refreshSession"]);
    }
    let owner = app
        .gql(None, REFRESH, json!({ "t": stolen.refresh_token }))
        .await;
    assert_eq!(error_code(&owner), "UNAUTHENTICATED", "{owner}");
    let body = app.gql(Some(&thief.access_token), ME, json!({})).await;
    assert_eq!(
        error_code(&body),
        "UNAUTHENTICATED",
        "the session ended: {body}"
    );
}

async fn wrong_password_and_unknown_email_fail_alike(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("bob@example.com").await;
    let login =
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";
    let wrong = app
        .gql(
            None,
            login,
            json!({ "e": "bob@example.com", "p": "not the password" }),
        )
        .await;
    let unknown = app
        .gql(
            None,
            login,
            json!({ "e": "nobody@example.com", "p": "not the password" }),
        )
        .await;
    assert_eq!(error_code(&wrong), "UNAUTHENTICATED");
    assert_eq!(error_code(&unknown), "UNAUTHENTICATED");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert!(wrong["data"].is_null());
}

async fn duplicate_email_is_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("carol@example.com").await;
    let body = app
        .gql(
            None,
            "mutation { register(input: {email: \"CAROL@example.com\", password: \"another password\"}) { accessToken } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT");
    assert_eq!(error_field(&body), "input.email");
}

async fn invalid_registration_input_names_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let register = "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }";
    let cases = [
        (
            json!({ "email": "not-an-email", "password": "long enough pw" }),
            "input.email",
        ),
        (
            json!({ "email": "a@b", "password": "long enough pw" }),
            "input.email",
        ),
        (
            json!({ "email": "dan@example.com", "password": "short" }),
            "input.password",
        ),
        (
            json!({ "email": "dan@example.com", "password": "long enough pw", "displayName": "x".repeat(51) }),
            "input.displayName",
        ),
    ];
    for (input, field) in cases {
        let body = app.gql(None, register, json!({ "input": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
        assert_eq!(error_field(&body), field, "{input}: {body}");
    }
    // Nothing was half-written: the valid email can still register.
    app.register("dan@example.com").await;
}

async fn refresh_rotates_and_reuse_revokes_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.register("erin@example.com").await;

    let rotated = app
        .ok(None, REFRESH, json!({ "t": first.refresh_token }))
        .await;
    let second = session_of(&rotated["refreshSession"]);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.user_id, first.user_id);
    let me = app.ok(Some(&second.access_token), ME, json!({})).await;
    assert_eq!(me["me"]["email"], "erin@example.com");

    // The first token again: it leaked, so the whole session goes.
    let reused = app
        .gql(None, REFRESH, json!({ "t": first.refresh_token }))
        .await;
    assert_eq!(error_code(&reused), "UNAUTHENTICATED");
    let after = app
        .gql(None, REFRESH, json!({ "t": second.refresh_token }))
        .await;
    assert_eq!(
        error_code(&after),
        "UNAUTHENTICATED",
        "the rotated token died with its session"
    );
    // Sent again once its session has ended, a used token is refused on reads alone (the
    // token and its session), without a write transaction each time.
    let before = app.request_statements();
    let again = app
        .gql(None, REFRESH, json!({ "t": first.refresh_token }))
        .await;
    assert_eq!(error_code(&again), "UNAUTHENTICATED", "{again}");
    assert_eq!(app.request_statements() - before, 2, "{again}");

    let garbage = app.gql(None, REFRESH, json!({ "t": "garbage" })).await;
    assert_eq!(error_code(&garbage), "UNAUTHENTICATED");

    // Another session of the same user is untouched.
    let other = app
        .ok(
            None,
            "mutation { login(email: \"erin@example.com\", password: \"correct horse battery\") { accessToken refreshToken user { id } } }",
            json!({}),
        )
        .await;
    let other = session_of(&other["login"]);
    app.ok(None, REFRESH, json!({ "t": other.refresh_token }))
        .await;
}

async fn logout_ends_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.register("fay@example.com").await;
    let logout = "mutation($t: String!) { logout(refreshToken: $t) }";
    let data = app
        .ok(None, logout, json!({ "t": session.refresh_token }))
        .await;
    assert_eq!(data["logout"], true);
    let again = app
        .ok(None, logout, json!({ "t": session.refresh_token }))
        .await;
    assert_eq!(again["logout"], false);
    let refresh = app
        .gql(None, REFRESH, json!({ "t": session.refresh_token }))
        .await;
    assert_eq!(error_code(&refresh), "UNAUTHENTICATED");
}

/// POSTs `body` to `/graphql` with `authorization` as the header's raw value; the JSON answer.
async fn post_with_authorization(
    app: &TestApp,
    authorization: reqwest::header::HeaderValue,
    body: Value,
) -> Value {
    app.client
        .post(format!("{}/graphql", app.base))
        .header(reqwest::header::AUTHORIZATION, authorization)
        .json(&body)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON")
}

async fn expired_and_forged_tokens_are_unauthenticated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.register("gus@example.com").await;
    let user_id: Uuid = session.user_id.parse().expect("uuid");
    let expired = app
        .state
        .tokens
        .issue_with_times(
            user_id,
            UserRole::Viewer,
            Uuid::now_v7(),
            Utc::now() - Duration::hours(2),
            Utc::now() - Duration::hours(1),
        )
        .map_err(|e| e.public_message())
        .expect("token");
    let body = app.gql(Some(&expired), ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired")
    );

    // A client refreshes with its stale token still attached (as auth links do): the
    // mutations that get a new one run; anything else, public reads included, is refused.
    let refreshed = app
        .gql(
            Some(&expired),
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({ "t": session.refresh_token }),
        )
        .await;
    assert!(refreshed.get("errors").is_none(), "{refreshed:#}");
    assert!(refreshed["data"]["refreshSession"]["accessToken"].is_string());
    for query in [
        "{ creators { totalCount } }",
        "mutation { refreshSession(refreshToken: \"x\") { accessToken } logoutEverywhere }",
        "mutation { ...M } fragment M on MutationRoot { logout(refreshToken: \"x\") }",
    ] {
        let body = app.gql(Some(&expired), query, json!({})).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{query}: {body}");
        assert!(body["data"].is_null(), "{query}: {body}");
    }
    // In a batch, each operation is answered in its place.
    let answers = post_with_authorization(
        &app,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {expired}")).expect("header"),
        json!([
            { "query": "{ creators { totalCount } }" },
            { "query": "mutation { logout(refreshToken: \"unknown\") }" },
        ]),
    )
    .await;
    let answers = answers.as_array().expect("one answer per operation");
    assert_eq!(answers.len(), 2, "{answers:#?}");
    assert_eq!(error_code(&answers[0]), "UNAUTHENTICATED", "{answers:#?}");
    assert!(answers[1].get("errors").is_none(), "{answers:#?}");
    // An Authorization header that is not text is a bad credential, not an absent one.
    let body = post_with_authorization(
        &app,
        reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("header"),
        json!({ "query": "{ creators { totalCount } }" }),
    )
    .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");

    // Same claims, signed with another key.
    let forger =
        reelgraph::auth::tokens::TokenKeys::new(b"another-secret-another-secret-another", 900);
    let (forged, _) = forger
        .issue(user_id, UserRole::Admin, Uuid::now_v7())
        .map_err(|e| e.public_message())
        .expect("token");
    let body = app.gql(Some(&forged), ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");

    // Tampered payload on a real token.
    let mut parts: Vec<String> = session.access_token.split('.').map(str::to_owned).collect();
    parts[1] = format!("{}x", parts[1]);
    let body = app.gql(Some(&parts.join(".")), ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
}

async fn invite_codes_gate_registration_and_cannot_be_overused(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.config.require_invite = true).await;
    let register = "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }";
    let without = app
        .gql(
            None,
            register,
            json!({ "input": { "email": "h@example.com", "password": "long enough pw" } }),
        )
        .await;
    assert_eq!(error_code(&without), "BAD_USER_INPUT");
    assert_eq!(error_field(&without), "input.inviteCode");

    let admin = app.admin("root@example.com").await;
    let data = app
        .ok(
            Some(&admin.access_token),
            "mutation { createInviteCode(input: {code: \"launch-party\", uses: 3}) { code usesRemaining createdBy { email } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["createInviteCode"]["usesRemaining"], 3);
    assert_eq!(
        data["createInviteCode"]["createdBy"]["email"],
        "root@example.com"
    );

    // Ten people race for three uses: exactly three get in.
    let attempts = (0..10).map(|i| {
        let app = &app;
        async move {
            app.gql(
                None,
                register,
                json!({ "input": { "email": format!("racer{i}@example.com"), "password": "long enough pw", "inviteCode": "launch-party" } }),
            )
            .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let admitted = results.iter().filter(|b| b.get("errors").is_none()).count();
    assert_eq!(admitted, 3, "{results:#?}");
    for refused in results.iter().filter(|b| b.get("errors").is_some()) {
        assert_eq!(error_field(refused), "input.inviteCode");
    }
    // What was kept: the administrator and the three admitted, and a used-up code.
    use sea_orm::{EntityTrait, PaginatorTrait};
    let users = entity::user::Entity::find()
        .count(&app.state.db)
        .await
        .expect("counted");
    assert_eq!(users, 4);
    let code = entity::invite_code::Entity::find()
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("the code");
    assert_eq!(code.uses_remaining, 0);
    let late = app
        .gql(
            None,
            register,
            json!({ "input": { "email": "late@example.com", "password": "long enough pw", "inviteCode": "launch-party" } }),
        )
        .await;
    assert_eq!(error_field(&late), "input.inviteCode", "{late}");
}

async fn only_admins_create_invite_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.register("ivy@example.com").await;
    let create = "mutation { createInviteCode(input: {uses: 1}) { code } }";
    let body = app.gql(Some(&viewer.access_token), create, json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let body = app.gql(None, create, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    let admin = app.admin("boss@example.com").await;
    let data = app.ok(Some(&admin.access_token), create, json!({})).await;
    assert_eq!(
        data["createInviteCode"]["code"].as_str().map(str::len),
        Some(24)
    );
}

/// Password guessing is cut off: of ten wrong passwords for one account sent at once from one
/// address, five are checked and the others RATE_LIMITED before any check (each counts from
/// when it arrives, not once its hash is done), and the right password is then RATE_LIMITED
/// too, while other accounts go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_sign_in_attempts_are_rate_limited_per_account() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.register("target@example.com").await;
    app.register("bystander@example.com").await;
    let login =
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";
    // At once, as a guesser would send them (each refusal is answered a second later).
    let guesses = (0..10).map(|_| {
        app.gql(
            None,
            login,
            json!({ "e": "target@example.com", "p": "wrong guess 1234" }),
        )
    });
    let answers = futures_util::future::join_all(guesses).await;
    let codes: Vec<&str> = answers.iter().map(error_code).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "UNAUTHENTICATED").count(),
        5,
        "{answers:#?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "RATE_LIMITED").count(),
        5,
        "{answers:#?}"
    );
    let body = app
        .gql(
            None,
            login,
            json!({ "e": "Target@Example.com", "p": "correct horse battery" }),
        )
        .await;
    assert_eq!(error_code(&body), "RATE_LIMITED", "{body}");
    assert!(body["data"].is_null() || body["data"]["login"].is_null());
    let message = body["errors"][0]["message"].as_str().expect("message");
    assert!(message.contains("try again in"), "{message}");
    let data = app
        .ok(
            None,
            login,
            json!({ "e": "bystander@example.com", "p": "correct horse battery" }),
        )
        .await;
    assert!(data["login"]["accessToken"].is_string());
}

/// POSTs `body` to `/graphql` as forwarded by a proxy for `from` (`X-Forwarded-For`).
fn post_forwarded(
    app: &TestApp,
    from: String,
    body: Value,
) -> impl std::future::Future<Output = Value> + use<> {
    let request = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("x-forwarded-for", from)
        .json(&body);
    async move {
        request
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json")
    }
}

/// Behind a trusted proxy the client's address is the one the proxy appended to
/// `X-Forwarded-For`; a made-up address the client puts in front does not reset the sign-in
/// throttle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_a_client_makes_up_do_not_escape_the_throttle() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.config.trust_proxy = true).await;
    app.register("guarded@example.com").await;
    let body = json!({
        "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
        "variables": { "e": "guarded@example.com", "p": "wrong guess 1234" },
    });
    let guess = |i: usize| {
        let answer = post_forwarded(&app, format!("10.9.{i}.1, 203.0.113.7"), body.clone());
        async move { error_code(&answer.await).to_owned() }
    };
    // Ten at once, all from the proxy's client: five are checked, then that address is held
    // for the account (one address per made-up entry would have had all ten checked).
    let mut codes = futures_util::future::join_all((0..10).map(guess)).await;
    codes.sort();
    assert_eq!(
        codes,
        [["RATE_LIMITED"; 5], ["UNAUTHENTICATED"; 5]].concat(),
        "{codes:?}"
    );
    assert_eq!(guess(10).await, "RATE_LIMITED");
}

/// Guesses spread over many addresses use up an account's sign-in attempts from anywhere —
/// the right password from a new address is then RATE_LIMITED — but not its owner's: an
/// address the account signed in from lately (its /64 for IPv6) still signs in, unless that
/// session was ended because something was wrong with it.
async fn guesses_from_elsewhere_do_not_lock_the_owner_out(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.config.trust_proxy = true).await;
    let login = |from: String, password: &'static str| {
        let body = json!({
            "query": SIGN_IN,
            "variables": { "e": "owner@example.com", "p": password },
        });
        post_forwarded(&app, from, body)
    };
    // The owner signs up, signs in from home, a phone and an office, and revokes the office.
    let home = "198.51.100.7";
    let data = app
        .ok(
            None,
            "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }",
            json!({ "input": { "email": "owner@example.com", "password": "correct horse battery" } }),
        )
        .await;
    assert!(data["register"]["accessToken"].is_string());
    let first = login(home.to_owned(), "correct horse battery").await;
    assert!(first["data"]["login"]["accessToken"].is_string(), "{first}");
    let phone = login("2001:db8:5:6::1".to_owned(), "correct horse battery").await;
    assert!(phone["data"]["login"]["accessToken"].is_string(), "{phone}");
    let office = login("203.0.113.50".to_owned(), "correct horse battery").await;
    let office = session_of(&office["data"]["login"]);
    app.ok(
        Some(&office.access_token),
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({ "id": office_id(&app, &office).await }),
    )
    .await;
    // Guesses from twenty-one addresses at once, one each, use up the account's 20 failures
    // from anywhere (the sign-ins above that succeeded do not count): the twenty-first is
    // refused before it is checked.
    let guesses = (0..21).map(|i| login(format!("10.7.{i}.1"), "wrong guess 1234"));
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|b| error_code(b) == "UNAUTHENTICATED")
        .count();
    assert_eq!(checked, 20, "{answers:#?}");
    assert!(
        answers
            .iter()
            .all(|b| ["UNAUTHENTICATED", "RATE_LIMITED"].contains(&error_code(b))),
        "{answers:#?}"
    );
    let stranger = login("10.8.0.1".to_owned(), "correct horse battery").await;
    assert_eq!(error_code(&stranger), "RATE_LIMITED", "{stranger}");
    // The office session was revoked by its user: that address vouches for nothing.
    let office_again = login("203.0.113.50".to_owned(), "correct horse battery").await;
    assert_eq!(error_code(&office_again), "RATE_LIMITED", "{office_again}");
    // Home, and the phone's /64 from another host in it, still sign in.
    let again = login(home.to_owned(), "correct horse battery").await;
    assert!(again["data"]["login"]["accessToken"].is_string(), "{again}");
    let phone = login("2001:db8:5:6::99".to_owned(), "correct horse battery").await;
    assert!(phone["data"]["login"]["accessToken"].is_string(), "{phone}");
    // A wrong password from home is still refused.
    let wrong = login(home.to_owned(), "wrong guess 1234").await;
    assert_eq!(error_code(&wrong), "UNAUTHENTICATED", "{wrong}");
}

/// One address cannot use up the account's failures from anywhere: after 5 wrong passwords
/// for the account (sent at once) it is held (even with the right password) while another address, never
/// used by the account, still signs in. Before, one request every 6 s from one address kept
/// the account-wide count empty and the owner out of every new device.
async fn one_address_cannot_lock_an_account_out(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.config.trust_proxy = true).await;
    let login = |from: &str, password: &'static str| {
        let body = json!({
            "query": SIGN_IN,
            "variables": { "e": "target@example.com", "p": password },
        });
        post_forwarded(&app, from.to_owned(), body)
    };
    app.ok(
        None,
        "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }",
        json!({ "input": { "email": "target@example.com", "password": "correct horse battery" } }),
    )
    .await;
    let attacker = "192.0.2.66";
    let guesses = (0..5).map(|_| login(attacker, "wrong guess 1234"));
    for body in futures_util::future::join_all(guesses).await {
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    }
    // The sixth is refused before its password is checked, right or wrong.
    let sixth = login(attacker, "wrong guess 1234").await;
    assert_eq!(error_code(&sixth), "RATE_LIMITED", "{sixth}");
    let held = login(attacker, "correct horse battery").await;
    assert_eq!(error_code(&held), "RATE_LIMITED", "{held}");
    assert!(
        held["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("wrong passwords for this account from this address")),
        "{held}"
    );
    let owner = login("198.51.100.99", "correct horse battery").await;
    assert!(owner["data"]["login"]["accessToken"].is_string(), "{owner}");
}

/// The id of the session `session` signed in with.
async fn office_id(app: &TestApp, session: &crate::helpers::Session) -> String {
    let data = app
        .ok(
            Some(&session.access_token),
            "{ me { sessions { id current } } }",
            json!({}),
        )
        .await;
    data["me"]["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["current"] == true)
        .and_then(|s| s["id"].as_str())
        .expect("the current session")
        .to_owned()
}

const SIGN_IN: &str = "mutation($e: String!, $p: String!) {
    login(email: $e, password: $p) { accessToken refreshToken user { id } } }";
const SESSIONS: &str = "{ me { sessions { id current userAgent expiresAt } } }";

async fn sign_in(app: &TestApp, email: &str, password: &str) -> crate::helpers::Session {
    let data = app
        .ok(None, SIGN_IN, json!({ "e": email, "p": password }))
        .await;
    session_of(&data["login"])
}

/// `changePassword` checks the current password and the new one (each error names its
/// field), then ends every session of the account — another device's refresh token stops
/// working — and returns a new session; only the new password signs in afterwards.
async fn changing_the_password_ends_every_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let laptop = app.register("pw@example.com").await;
    let phone = sign_in(&app, "pw@example.com", "correct horse battery").await;
    let change = "mutation($c: String!, $n: String!) {
        changePassword(currentPassword: $c, newPassword: $n) { accessToken refreshToken user { id } } }";
    for (current, new, field) in [
        ("not my password", "a new long password", "currentPassword"),
        ("correct horse battery", "short", "newPassword"),
    ] {
        let body = app
            .gql(
                Some(&laptop.access_token),
                change,
                json!({ "c": current, "n": new }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let body = app
        .gql(
            None,
            change,
            json!({ "c": "correct horse battery", "n": "a new long password" }),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    // Refused attempts changed nothing: the phone still renews its session.
    let renewed = app
        .ok(None, REFRESH, json!({ "t": phone.refresh_token }))
        .await;
    let phone = session_of(&renewed["refreshSession"]);

    let data = app
        .ok(
            Some(&laptop.access_token),
            change,
            json!({ "c": "correct horse battery", "n": "a new long password" }),
        )
        .await;
    let fresh = session_of(&data["changePassword"]);
    assert_eq!(fresh.user_id, laptop.user_id);
    for old in [&laptop.refresh_token, &phone.refresh_token] {
        let body = app.gql(None, REFRESH, json!({ "t": old })).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    }
    app.ok(None, REFRESH, json!({ "t": fresh.refresh_token }))
        .await;
    let body = app
        .gql(
            None,
            SIGN_IN,
            json!({ "e": "pw@example.com", "p": "correct horse battery" }),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    sign_in(&app, "pw@example.com", "a new long password").await;
}

/// `me.sessions` lists your live devices (the request's own marked `current`); `revokeSession`
/// ends one of yours (another's is NOT_FOUND), `logoutEverywhere` ends them all.
async fn sessions_are_listed_and_revoked_by_their_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let laptop = app.register("devices@example.com").await;
    let phone = sign_in(&app, "devices@example.com", "correct horse battery").await;
    let other = app.register("someone-else@example.com").await;

    let data = app
        .ok(Some(&laptop.access_token), SESSIONS, json!({}))
        .await;
    let sessions = data["me"]["sessions"].as_array().expect("sessions").clone();
    assert_eq!(sessions.len(), 2, "{data}");
    let current: Vec<bool> = sessions.iter().map(|s| s["current"] == true).collect();
    assert_eq!(current, [false, true], "newest (the phone's) first: {data}");
    let phone_session = sessions[0]["id"].as_str().expect("id").to_owned();

    let revoke = "mutation($id: ID!) { revokeSession(id: $id) }";
    let body = app
        .gql(
            Some(&other.access_token),
            revoke,
            json!({ "id": phone_session }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let data = app
        .ok(
            Some(&laptop.access_token),
            revoke,
            json!({ "id": phone_session }),
        )
        .await;
    assert_eq!(data["revokeSession"], true);
    let data = app
        .ok(
            Some(&laptop.access_token),
            revoke,
            json!({ "id": phone_session }),
        )
        .await;
    assert_eq!(data["revokeSession"], false, "already ended");
    let body = app
        .gql(None, REFRESH, json!({ "t": phone.refresh_token }))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let data = app
        .ok(Some(&laptop.access_token), SESSIONS, json!({}))
        .await;
    assert_eq!(
        data["me"]["sessions"].as_array().map(Vec::len),
        Some(1),
        "{data}"
    );

    let data = app
        .ok(
            Some(&laptop.access_token),
            "mutation { logoutEverywhere }",
            json!({}),
        )
        .await;
    assert_eq!(data["logoutEverywhere"], 1);
    let body = app
        .gql(None, REFRESH, json!({ "t": laptop.refresh_token }))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    // Someone else's sessions are untouched.
    app.ok(None, REFRESH, json!({ "t": other.refresh_token }))
        .await;
}

/// Lowering `REELGRAPH_SESSION_TTL_DAYS` (after a suspected leak) shortens the sessions that
/// started under the longer lifetime: one older than the new lifetime refreshes no more and is
/// not listed; a younger one is listed ending at its start plus the new lifetime.
async fn a_shortened_session_lifetime_ends_older_sessions(backend: Backend) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let app = TestApp::spawn_with(backend, |a| a.config.session_ttl_days = 30).await;
    let old = app.register("lifetime@example.com").await;
    let young = sign_in(&app, "lifetime@example.com", "correct horse battery").await;
    let started: Vec<uuid::Uuid> = entity::session::Entity::find()
        .filter(entity::session::Column::UserId.eq(old.user_id.parse::<uuid::Uuid>().expect("id")))
        .order_by_asc(entity::session::Column::CreatedAt)
        .order_by_asc(entity::session::Column::Id)
        .all(&app.state.db)
        .await
        .expect("sessions")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(started.len(), 2);
    let now = chrono::Utc::now();
    // Both started under a ten-year lifetime: 40 and 20 days ago.
    for (session, days) in [(started[0], 40), (started[1], 20)] {
        let created = now - chrono::Duration::days(days);
        entity::session::Entity::update_many()
            .col_expr(
                entity::session::Column::CreatedAt,
                sea_orm::sea_query::Expr::val(created),
            )
            .col_expr(
                entity::session::Column::ExpiresAt,
                sea_orm::sea_query::Expr::val(created + chrono::Duration::days(3650)),
            )
            .filter(entity::session::Column::Id.eq(session))
            .exec(&app.state.db)
            .await
            .expect("aged");
    }
    let body = app
        .gql(None, REFRESH, json!({ "t": old.refresh_token }))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let data = app.ok(Some(&young.access_token), SESSIONS, json!({})).await;
    let sessions = data["me"]["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "the older one is not listed: {data}");
    let ends: chrono::DateTime<chrono::Utc> = sessions[0]["expiresAt"]
        .as_str()
        .and_then(|at| at.parse().ok())
        .expect("expiresAt");
    let expected = now + chrono::Duration::days(10);
    assert!(
        (ends - expected).num_seconds().abs() < 60,
        "ends 30 days after it started: {data}"
    );
    app.ok(None, REFRESH, json!({ "t": young.refresh_token }))
        .await;
}

/// `updateMe` sets and clears your display name and picture; bad values name their field.
async fn update_me_edits_your_profile(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("profile@example.com").await;
    let token = Some(me.access_token.as_str());
    let update =
        "mutation($input: UpdateMeInput!) { updateMe(input: $input) { displayName avatarUrl } }";
    let data = app
        .ok(
            token,
            update,
            json!({ "input": { "displayName": "  Ada L. ", "avatarUrl": "https://example.com/ada.png" } }),
        )
        .await;
    assert_eq!(
        data["updateMe"],
        json!({ "displayName": "Ada L.", "avatarUrl": "https://example.com/ada.png" })
    );
    let data = app
        .ok(token, update, json!({ "input": { "avatarUrl": null } }))
        .await;
    assert_eq!(
        data["updateMe"],
        json!({ "displayName": "Ada L.", "avatarUrl": null })
    );
    for (input, field) in [
        (
            json!({ "displayName": "x".repeat(51) }),
            "input.displayName",
        ),
        (
            json!({ "avatarUrl": "file:///etc/passwd" }),
            "input.avatarUrl",
        ),
    ] {
        let body = app.gql(token, update, json!({ "input": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let body = app
        .gql(
            None,
            update,
            json!({ "input": { "displayName": "Nobody" } }),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let data = app.ok(token, ME, json!({})).await;
    assert_eq!(data["me"]["displayName"], "Ada L.");
}

/// Onboarding and e-mail digest preferences: off and `DAILY` at first, each changed by
/// `updateMe` without touching the other, kept, and shown to the user and administrators only
/// (null to a teammate).
async fn preferences_and_onboarding_are_the_users_own(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("prefs@example.com").await;
    let mate = app.register("prefs-mate@example.com").await;
    let admin = app.admin("prefs-admin@example.com").await;
    let token = Some(me.access_token.as_str());
    const FIELDS: &str =
        "onboardingCompleted notificationPreferences { digestEnabled digestFrequency }";
    let update = format!(
        "mutation($input: UpdateMeInput!) {{ updateMe(input: $input) {{ displayName {FIELDS} }} }}"
    );
    let data = app
        .ok(token, &format!("{{ me {{ {FIELDS} }} }}"), json!({}))
        .await;
    assert_eq!(
        data["me"],
        json!({ "onboardingCompleted": false,
                "notificationPreferences": { "digestEnabled": false, "digestFrequency": "DAILY" } })
    );
    let data = app
        .ok(
            token,
            &update,
            json!({ "input": { "displayName": "Prefs", "onboardingCompleted": true,
                               "notificationPreferences": { "digestEnabled": true } } }),
        )
        .await;
    assert_eq!(
        data["updateMe"],
        json!({ "displayName": "Prefs", "onboardingCompleted": true,
                "notificationPreferences": { "digestEnabled": true, "digestFrequency": "DAILY" } })
    );
    let data = app
        .ok(
            token,
            &update,
            json!({ "input": { "notificationPreferences": { "digestFrequency": "WEEKLY" } } }),
        )
        .await;
    assert_eq!(
        data["updateMe"],
        json!({ "displayName": "Prefs", "onboardingCompleted": true,
                "notificationPreferences": { "digestEnabled": true, "digestFrequency": "WEEKLY" } })
    );
    let body = app
        .gql(
            token,
            &update,
            json!({ "input": { "notificationPreferences": { "digestFrequency": "HOURLY" } } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");

    // A teammate sees the account, not its preferences; an administrator sees them.
    let creator = app.create_creator(&me, "Prefs Studio").await;
    app.ok(
        token,
        "mutation($c: ID!) { addCreatorMember(creatorId: $c, email: \"prefs-mate@example.com\") { role } }",
        json!({ "c": creator }),
    )
    .await;
    let team = format!(
        "query($c: ID!) {{ creator(id: $c) {{ members {{ user {{ email {FIELDS} }} }} }} }}"
    );
    let data = app
        .ok(Some(&mate.access_token), &team, json!({ "c": creator }))
        .await;
    let members = data["creator"]["members"].as_array().expect("members");
    let mine = members
        .iter()
        .find(|m| m["user"]["email"] == "prefs@example.com")
        .expect("owner listed");
    assert_eq!(mine["user"]["onboardingCompleted"], json!(null), "{data}");
    assert_eq!(
        mine["user"]["notificationPreferences"],
        json!(null),
        "{data}"
    );
    let theirs = members
        .iter()
        .find(|m| m["user"]["email"] == "prefs-mate@example.com")
        .expect("member listed");
    assert_eq!(theirs["user"]["onboardingCompleted"], false, "{data}");
    let data = app
        .ok(Some(&admin.access_token), &team, json!({ "c": creator }))
        .await;
    let mine = data["creator"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["user"]["email"] == "prefs@example.com")
        .cloned()
        .expect("owner listed");
    assert_eq!(
        mine["user"]["notificationPreferences"],
        json!({ "digestEnabled": true, "digestFrequency": "WEEKLY" })
    );
    // Kept for later requests.
    let data = app
        .ok(token, &format!("{{ me {{ {FIELDS} }} }}"), json!({}))
        .await;
    assert_eq!(data["me"]["onboardingCompleted"], true);
}

/// Ending a session ends its access tokens at once, not when they expire: after `logout`,
/// `revokeSession`, `logoutEverywhere` or another device's `changePassword`, a token of that
/// session is UNAUTHENTICATED, over HTTP and at a WebSocket's `connection_init`.
async fn an_ended_sessions_access_tokens_stop_working_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ended = |body: &serde_json::Value| {
        error_code(body) == "UNAUTHENTICATED"
            && body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("session has ended"))
    };
    // logout
    let ada = app.register("ended@example.com").await;
    app.ok(Some(&ada.access_token), ME, json!({})).await;
    app.ok(
        None,
        "mutation($t: String!) { logout(refreshToken: $t) }",
        json!({ "t": ada.refresh_token }),
    )
    .await;
    let body = app.gql(Some(&ada.access_token), ME, json!({})).await;
    assert!(ended(&body), "{body}");
    let ws = crate::helpers::ws_init_refused(&app, &ada.access_token).await;
    assert_eq!(ws, 4403);

    // revokeSession, from another device
    let laptop = sign_in(&app, "ended@example.com", "correct horse battery").await;
    let phone = sign_in(&app, "ended@example.com", "correct horse battery").await;
    let data = app
        .ok(Some(&laptop.access_token), SESSIONS, json!({}))
        .await;
    let phone_session = data["me"]["sessions"][0]["id"].clone();
    app.ok(
        Some(&laptop.access_token),
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({ "id": phone_session }),
    )
    .await;
    let body = app.gql(Some(&phone.access_token), ME, json!({})).await;
    assert!(ended(&body), "{body}");
    app.ok(Some(&laptop.access_token), ME, json!({})).await;

    // changePassword ends the others; logoutEverywhere ends one's own
    let tablet = sign_in(&app, "ended@example.com", "correct horse battery").await;
    let data = app
        .ok(
            Some(&laptop.access_token),
            "mutation { changePassword(currentPassword: \"correct horse battery\", newPassword: \"another long one\") { accessToken refreshToken user { id } } }",
            json!({}),
        )
        .await;
    let fresh = session_of(&data["changePassword"]);
    for gone in [&tablet, &laptop] {
        let body = app.gql(Some(&gone.access_token), ME, json!({})).await;
        assert!(ended(&body), "{body}");
    }
    app.ok(
        Some(&fresh.access_token),
        "mutation { logoutEverywhere }",
        json!({}),
    )
    .await;
    let body = app.gql(Some(&fresh.access_token), ME, json!({})).await;
    assert!(ended(&body), "{body}");
}

/// With PostgreSQL, a session ended through one server is refused by the others sharing the
/// database (announced with pg_notify), and by a server started afterwards (read at start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_on_one_server_is_refused_by_every_server() {
    let database = crate::helpers::create_database().await;
    let mut one = TestApp::spawn_on(Some(&database), |a| a.no_worker = true).await;
    one.adopt_database(database.clone());
    let two = TestApp::spawn_on(Some(&database), |a| a.no_worker = true).await;
    let ada = one.register("everywhere@example.com").await;
    two.ok(Some(&ada.access_token), ME, json!({})).await;
    one.ok(
        None,
        "mutation($t: String!) { logout(refreshToken: $t) }",
        json!({ "t": ada.refresh_token }),
    )
    .await;
    refused_within(&two, &ada.access_token, 20).await;
    let three = TestApp::spawn_on(Some(&database), |a| a.no_worker = true).await;
    let body = three.gql(Some(&ada.access_token), ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");

    // Every one of many sessions ended at once (`logoutEverywhere`) is refused there too.
    let mut devices = Vec::new();
    for _ in 0..5 {
        devices.push(sign_in(&one, "everywhere@example.com", "correct horse battery").await);
    }
    for device in &devices {
        two.ok(Some(&device.access_token), ME, json!({})).await;
    }
    one.ok(
        Some(&devices[0].access_token),
        "mutation { logoutEverywhere }",
        json!({}),
    )
    .await;
    for device in &devices {
        refused_within(&two, &device.access_token, 20).await;
    }
}

/// Waits (at most `secs`) until `app` refuses `token` as UNAUTHENTICATED.
async fn refused_within(app: &TestApp, token: &str, secs: u64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let body = app.gql(Some(token), ME, json!({})).await;
        if error_code(&body) == "UNAUTHENTICATED" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other server still takes the token: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A session whose end was never announced (the request that ended it was cut off after its
/// commit) is refused by the other servers once they read the ended sessions again, which
/// they do every `listen_check_ms` however busy their listener is with job events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unannounced_end_is_read_again_while_job_events_keep_coming() {
    use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let database = crate::helpers::create_database().await;
    let mut one = TestApp::spawn_on(Some(&database), |a| a.no_worker = true).await;
    one.adopt_database(database.clone());
    let two = TestApp::spawn_on(Some(&database), |a| {
        a.no_worker = true;
        a.config.listen_check_ms = 300;
    })
    .await;
    let ada = one.register("unannounced@example.com").await;
    two.ok(Some(&ada.access_token), ME, json!({})).await;
    // Job events every 50 ms: the listener is never quiet for 300 ms.
    let db = one.state.db.clone();
    let busy = tokio::spawn(async move {
        loop {
            let _ = db
                .execute_unprepared("SELECT pg_notify('reelgraph_jobs', 'not an event')")
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    entity::session::Entity::update_many()
        .col_expr(
            entity::session::Column::RevokedAt,
            Expr::val(chrono::Utc::now()),
        )
        .col_expr(entity::session::Column::RevokedReason, Expr::val("logout"))
        .filter(entity::session::Column::RevokedAt.is_null())
        .exec(&one.state.db)
        .await
        .expect("ended without a word");
    refused_within(&two, &ada.access_token, 10).await;
    busy.abort();
}

/// Administrators list invite codes (newest first) and revoke one, which admits nobody more;
/// anyone else is FORBIDDEN.
async fn admins_list_and_revoke_invite_codes(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.config.require_invite = true).await;
    let admin = app.admin("codes@example.com").await;
    let token = Some(admin.access_token.as_str());
    for code in ["first-wave", "second-wave"] {
        app.ok(
            token,
            "mutation($c: String!) { createInviteCode(input: {code: $c, uses: 5}) { id } }",
            json!({ "c": code }),
        )
        .await;
    }
    let list = "{ inviteCodes(first: 10) { totalCount nodes { id code usesRemaining createdBy { email } } } }";
    let data = app.ok(token, list, json!({})).await;
    assert_eq!(data["inviteCodes"]["totalCount"], 2, "{data}");
    let nodes = data["inviteCodes"]["nodes"].as_array().expect("nodes");
    let codes: Vec<&str> = nodes.iter().filter_map(|n| n["code"].as_str()).collect();
    assert_eq!(codes, ["second-wave", "first-wave"]);
    assert_eq!(nodes[0]["createdBy"]["email"], "codes@example.com");
    let second = nodes[0]["id"].clone();

    let viewer = app.admin("other-admin@example.com").await;
    let plain = {
        let data = app
            .ok(
                None,
                "mutation { register(input: {email: \"plain@example.com\", password: \"long enough pw\", inviteCode: \"first-wave\"}) { accessToken refreshToken user { id } } }",
                json!({}),
            )
            .await;
        session_of(&data["register"])
    };
    let revoke = "mutation($id: ID!) { revokeInviteCode(id: $id) { code usesRemaining } }";
    for (who, code) in [
        (Some(plain.access_token.as_str()), "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ] {
        let body = app.gql(who, list, json!({})).await;
        assert_eq!(error_code(&body), code, "{body}");
        let body = app.gql(who, revoke, json!({ "id": second })).await;
        assert_eq!(error_code(&body), code, "{body}");
    }
    let data = app
        .ok(Some(&viewer.access_token), revoke, json!({ "id": second }))
        .await;
    assert_eq!(data["revokeInviteCode"]["usesRemaining"], 0);
    let body = app
        .gql(
            None,
            "mutation { register(input: {email: \"late@example.com\", password: \"long enough pw\", inviteCode: \"second-wave\"}) { accessToken } }",
            json!({}),
        )
        .await;
    assert_eq!(error_field(&body), "input.inviteCode", "{body}");
    let body = app
        .gql(token, revoke, json!({ "id": uuid::Uuid::now_v7() }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
}

/// An administrator issues a reset token for an account whose owner forgot the password; the
/// owner sets a new one with it, which ends every session of the account. A token works once,
/// until it expires, and only the newest one works; a refused new password leaves it unused.
async fn a_reset_token_sets_a_new_password_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("helpdesk@example.com").await;
    let forgetful = app.register("forgot@example.com").await;
    let issue =
        "mutation($u: ID!) { createPasswordReset(userId: $u) { token expiresAt user { email } } }";
    let reset = "mutation($t: String!, $p: String!) {
        resetPassword(token: $t, newPassword: $p) { accessToken refreshToken user { id } } }";
    let issued = |token: Option<String>| {
        let app = &app;
        let user = forgetful.user_id.clone();
        async move { app.gql(token.as_deref(), issue, json!({ "u": user })).await }
    };
    let body = issued(Some(forgetful.access_token.clone())).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            Some(&admin.access_token),
            issue,
            json!({ "u": Uuid::now_v7() }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");

    let first = issued(Some(admin.access_token.clone())).await;
    assert!(first["errors"].is_null(), "{first}");
    let first = &first["data"]["createPasswordReset"];
    assert_eq!(first["user"]["email"], "forgot@example.com");
    let expires: chrono::DateTime<Utc> = first["expiresAt"]
        .as_str()
        .expect("expiresAt")
        .parse()
        .expect("RFC 3339");
    let hours = (expires - Utc::now()).num_minutes();
    assert!((23 * 60..=24 * 60).contains(&hours), "{first}");
    let second = issued(Some(admin.access_token.clone())).await;
    let second = second["data"]["createPasswordReset"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let first = first["token"].as_str().expect("token").to_owned();

    let refused = |token: &str, password: &str| {
        let app = &app;
        let vars = json!({ "t": token, "p": password });
        async move { app.gql(None, reset, vars).await }
    };
    // The first token was set aside by the second.
    let body = refused(&first, "a brand new password").await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "token", "{body}");
    // A refused password leaves the token unused.
    let body = refused(&second, "short").await;
    assert_eq!(error_field(&body), "newPassword", "{body}");
    let body = refused("not-a-token", "a brand new password").await;
    assert_eq!(error_field(&body), "token", "{body}");

    let data = app
        .ok(
            None,
            reset,
            json!({ "t": second, "p": "a brand new password" }),
        )
        .await;
    let fresh = session_of(&data["resetPassword"]);
    assert_eq!(fresh.user_id, forgetful.user_id);
    // Every earlier session ended; the old password no longer signs in, the new one does.
    let body = app
        .gql(None, REFRESH, json!({ "t": forgetful.refresh_token }))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let body = app.gql(Some(&forgetful.access_token), ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let body = app
        .gql(
            None,
            SIGN_IN,
            json!({ "e": "forgot@example.com", "p": "correct horse battery" }),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    sign_in(&app, "forgot@example.com", "a brand new password").await;
    // Once only.
    let body = refused(&second, "another new password").await;
    assert_eq!(error_field(&body), "token", "{body}");

    // An expired token does not work.
    let third = issued(Some(admin.access_token.clone())).await;
    let third = third["data"]["createPasswordReset"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        entity::password_reset::Entity::update_many()
            .col_expr(
                entity::password_reset::Column::ExpiresAt,
                Expr::val(Utc::now() - Duration::seconds(1)),
            )
            .filter(entity::password_reset::Column::UsedAt.is_null())
            .exec(&app.state.db)
            .await
            .expect("expired");
    }
    let body = refused(&third, "yet another password").await;
    assert_eq!(error_field(&body), "token", "{body}");

    // A password change by the owner, and disabling the account, set unused tokens aside.
    let token_now = || async {
        let body = issued(Some(admin.access_token.clone())).await;
        body["data"]["createPasswordReset"]["token"]
            .as_str()
            .expect("token")
            .to_owned()
    };
    let fourth = token_now().await;
    let owner = sign_in(&app, "forgot@example.com", "a brand new password").await;
    app.ok(
        Some(&owner.access_token),
        "mutation { changePassword(currentPassword: \"a brand new password\", newPassword: \"changed by the owner\") { accessToken } }",
        json!({}),
    )
    .await;
    let body = refused(&fourth, "not with this token").await;
    assert_eq!(error_field(&body), "token", "{body}");
    let fifth = token_now().await;
    let toggle = "mutation($id: ID!, $a: Boolean!) { updateUser(id: $id, input: {isActive: $a}) { isActive } }";
    for active in [false, true] {
        app.ok(
            Some(&admin.access_token),
            toggle,
            json!({ "id": forgetful.user_id, "a": active }),
        )
        .await;
    }
    let body = refused(&fifth, "not with this token").await;
    assert_eq!(error_field(&body), "token", "{body}");
    sign_in(&app, "forgot@example.com", "changed by the owner").await;

    // The tokens an administrator gave out stop working when the rights are taken away: a
    // demoted one could otherwise take over the account (another administrator's, say).
    let update =
        "mutation($id: ID!, $i: UpdateUserInput!) { updateUser(id: $id, input: $i) { id } }";
    let root = app.admin("root@example.com").await;
    let changes = [
        (json!({ "isActive": false }), json!({ "isActive": true })),
        (json!({ "role": "CREATOR" }), json!({ "role": "ADMIN" })),
    ];
    for (taken, given) in changes {
        let helpdesk = sign_in(&app, "helpdesk@example.com", "correct horse battery").await;
        let sixth =
            issued(Some(helpdesk.access_token)).await["data"]["createPasswordReset"]["token"]
                .as_str()
                .expect("token")
                .to_owned();
        app.ok(
            Some(&root.access_token),
            update,
            json!({ "id": admin.user_id, "i": taken }),
        )
        .await;
        let body = refused(&sixth, "not with this token").await;
        assert_eq!(error_field(&body), "token", "{body}");
        // Nor does one issued after (by a request that checked its rights before the change).
        let issuer = Uuid::parse_str(&admin.user_id).expect("id");
        let forgetful_id = Uuid::parse_str(&forgetful.user_id).expect("id");
        let late = reelgraph::auth::reset::issue(&app.state.db, forgetful_id, Some(issuer)).await;
        assert!(late.is_err(), "issued by a former administrator");
        app.ok(
            Some(&root.access_token),
            update,
            json!({ "id": admin.user_id, "i": given }),
        )
        .await;
    }
}

/// A session ended by another process that told no one (`reelgraph admin create --promote`
/// beside an embedded server; a `pg_notify` that failed) stops its access tokens within a few
/// seconds: servers read the sessions ended lately again (SQLite every 5 s; PostgreSQL's
/// listener when it has heard nothing for a while). Here the row is ended straight in the
/// database.
async fn a_session_ended_elsewhere_without_notice_stops_its_tokens(backend: Backend) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    // PostgreSQL's listener reads them again once it has heard nothing for this long.
    let app = TestApp::spawn_with(backend, |a| a.config.listen_check_ms = 500).await;
    let ada = app.register("ended-elsewhere@example.com").await;
    let token = Some(ada.access_token.as_str());
    app.ok(token, "{ me { id } }", json!({})).await;
    let user: Uuid = ada.user_id.parse().expect("uuid");
    entity::session::Entity::update_many()
        .col_expr(entity::session::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(entity::session::Column::UserId.eq(user))
        .exec(&app.state.db)
        .await
        .expect("ended");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let body = app.gql(token, "{ me { id } }", json!({})).await;
        if body["errors"].is_array() {
            assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ended session's token still works: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Rolls the migrations back to before the one whose name ends with `suffix` (whatever
/// comes after it), and applies them all again.
async fn migrate_again_from(db: &sea_orm::DatabaseConnection, suffix: &str) {
    use migration::MigratorTrait;
    let names: Vec<String> = migration::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let at = names
        .iter()
        .position(|n| n.ends_with(suffix))
        .expect("the migration");
    let steps = u32::try_from(names.len() - at).expect("few");
    migration::Migrator::down(db, Some(steps))
        .await
        .expect("rolled back");
    migration::Migrator::up(db, None).await.expect("and again");
}

/// An email with an accent typed as one character (`é`, NFC) or as `e` and a combining accent
/// (NFD, as some keyboards give it) is one address: registering it the other way is a
/// CONFLICT, and signing in either way reaches the account. Addresses stored before in
/// another form are brought to NFC by a migration, except one that would clash with another
/// account's, which is left as it is.
async fn an_email_is_one_address_however_its_accents_are_typed(backend: Backend) {
    use entity::user;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

    const LOGIN: &str = "mutation($e: String!) { login(email: $e, password: \"correct horse battery\") { user { email } } }";
    let nfc = "jos\u{e9}@example.com";
    let nfd = "jose\u{301}@example.com";
    let app = TestApp::spawn(backend).await;
    app.register(nfd).await;
    let body = app
        .gql(
            None,
            "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }",
            json!({ "input": { "email": nfc, "password": "correct horse battery" } }),
        )
        .await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    for typed in [nfc, nfd, "  JOS\u{c9}@Example.com "] {
        let data = app.ok(None, LOGIN, json!({ "e": typed })).await;
        assert_eq!(data["login"]["user"]["email"], nfc, "{typed:?}: {data}");
    }

    // Stored before in NFD: one alone, and one beside an account with its NFC form.
    let db = &app.state.db;
    let store = async |from: &str, to: &str| {
        user::Entity::update_many()
            .col_expr(user::Column::Email, Expr::val(to))
            .filter(user::Column::Email.eq(from))
            .exec(db)
            .await
            .expect("stored as it was");
    };
    store(nfc, nfd).await;
    app.register("ren\u{e9}e@example.com").await;
    app.register("zo\u{eb}@example.com").await;
    store("zo\u{eb}@example.com", "zoe\u{308}@example.com").await;
    app.register("zo\u{eb}@example.com").await;
    // Two spellings of one address (the same marks in another order), neither in NFC.
    app.register("one@example.com").await;
    app.register("two@example.com").await;
    store("one@example.com", "xa\u{323}\u{307}@example.com").await;
    store("two@example.com", "xa\u{307}\u{323}@example.com").await;
    // Back to before the NFC migration (those after it roll back and apply again too).
    migrate_again_from(db, "_nfc_emails").await;
    let mut emails: Vec<String> = user::Entity::find()
        .all(db)
        .await
        .expect("read")
        .into_iter()
        .map(|u| u.email)
        .collect();
    emails.sort();
    let mut expected = vec![
        nfc.to_owned(),
        "ren\u{e9}e@example.com".to_owned(),
        "zo\u{eb}@example.com".to_owned(),
        "zoe\u{308}@example.com".to_owned(),
        "x\u{1ea1}\u{307}@example.com".to_owned(),
    ];
    expected.sort();
    // Of the two spellings one became NFC, which ever came first; the other stays.
    let kept: Vec<String> = emails
        .iter()
        .filter(|e| {
            [
                "xa\u{323}\u{307}@example.com",
                "xa\u{307}\u{323}@example.com",
            ]
            .contains(&e.as_str())
        })
        .cloned()
        .collect();
    assert_eq!(kept.len(), 1, "{emails:?}");
    emails.retain(|e| !kept.contains(e));
    assert_eq!(emails, expected);
    let data = app.ok(None, LOGIN, json!({ "e": nfd })).await;
    assert_eq!(data["login"]["user"]["email"], nfc, "{data}");
    // The account kept as it was stored is reached by typing it so; the other by its NFC.
    for (typed, reached) in [
        ("zoe\u{308}@example.com", "zoe\u{308}@example.com"),
        ("zo\u{eb}@example.com", "zo\u{eb}@example.com"),
    ] {
        let data = app.ok(None, LOGIN, json!({ "e": typed })).await;
        assert_eq!(data["login"]["user"]["email"], reached, "{typed:?}: {data}");
    }
    // Administrators find the address typed either way.
    let admin = app.admin("nfc-admin@example.com").await;
    let data = app
        .ok(
            Some(&admin.access_token),
            "query($s: String!) { users(search: $s) { nodes { email } } }",
            json!({ "s": "jose\u{301}" }),
        )
        .await;
    assert_eq!(data["users"]["nodes"], json!([{ "email": nfc }]), "{data}");
}

/// Lower-casing gives a capital `Σ` as `ς` at the end of a word and `σ` elsewhere: an address
/// typed in capitals is still the same one. Addresses that read like another's (invisible
/// characters, full-width letters) are refused for new accounts. Stored with `ς` before, an
/// address is rewritten by a migration, unless its new form is another account's: then its
/// owner reaches it by typing it as stored, to sign in and to be added to a team.
async fn an_email_typed_in_capitals_is_one_address_and_lookalikes_are_refused(backend: Backend) {
    use entity::user;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

    const LOGIN: &str = "mutation($e: String!) { login(email: $e, password: \"correct horse battery\") { user { id email } } }";
    const REGISTER: &str =
        "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }";
    let app = TestApp::spawn(backend).await;
    let register = |email: &str| {
        let vars = json!({ "input": { "email": email, "password": "correct horse battery" } });
        let app = &app;
        async move { app.gql(None, REGISTER, vars).await }
    };
    app.register("niko\u{3c3}@example.gr").await;
    let body = register("NIKO\u{3a3}@example.gr").await;
    assert_eq!(error_code(&body), "CONFLICT", "{body}");
    let data = app
        .ok(None, LOGIN, json!({ "e": "NIKO\u{3a3}@EXAMPLE.GR" }))
        .await;
    assert_eq!(data["login"]["user"]["email"], "niko\u{3c3}@example.gr");

    for lookalike in [
        "admin@\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com",
        "ad\u{200b}min@example.com",
        "\u{202e}nimda@example.com",
    ] {
        let body = register(lookalike).await;
        assert_eq!(error_field(&body), "input.email", "{lookalike:?}: {body}");
        let refused =
            reelgraph::users::create_admin(&app.state.db, lookalike, "correct horse battery", None)
                .await;
        assert!(refused.is_err(), "{lookalike:?}");
    }
    // A zero-width non-joiner is part of how Persian is written.
    app.register("\u{646}\u{627}\u{645}\u{647}\u{200c}\u{647}\u{627}@example.com")
        .await;

    // Stored before with `ς`: one alone, and one whose `σ` form is another account's.
    let db = &app.state.db;
    let store = async |from: &str, to: &str| {
        user::Entity::update_many()
            .col_expr(user::Column::Email, Expr::val(to))
            .filter(user::Column::Email.eq(from))
            .exec(db)
            .await
            .expect("stored as it was");
    };
    app.register("alone@example.com").await;
    store(
        "alone@example.com",
        "\u{3b4}\u{3cc}\u{3be}\u{3b1}\u{3c2}@example.gr",
    )
    .await;
    let kept = app.register("kept@example.com").await;
    store(
        "kept@example.com",
        "\u{3bb}\u{3cc}\u{3b3}\u{3bf}\u{3c2}@example.gr",
    )
    .await;
    let other = app
        .register("\u{3bb}\u{3cc}\u{3b3}\u{3bf}\u{3c3}@example.gr")
        .await;
    // Left out of normal form C by the NFC migration (its NFC form was another account's):
    // left whole, as its owner types it.
    let decomposed = "\u{3c7}\u{3bf}\u{301}\u{3c2}@example.gr";
    let apart = app.register("apart@example.com").await;
    store("apart@example.com", decomposed).await;
    migrate_again_from(db, "_fold_final_sigma").await;
    let stored = |email: &'static str| async move {
        user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .one(db)
            .await
            .expect("read")
            .map(|u| u.id.to_string())
    };
    assert!(
        stored("\u{3b4}\u{3cc}\u{3be}\u{3b1}\u{3c3}@example.gr")
            .await
            .is_some()
    );
    assert_eq!(
        stored("\u{3bb}\u{3cc}\u{3b3}\u{3bf}\u{3c2}@example.gr").await,
        Some(kept.user_id.clone()),
        "kept as it was"
    );
    let data = app.ok(None, LOGIN, json!({ "e": decomposed })).await;
    assert_eq!(data["login"]["user"]["id"], json!(apart.user_id));
    let data = app
        .ok(
            None,
            LOGIN,
            json!({ "e": "\u{394}\u{38c}\u{39e}\u{391}\u{3a3}@example.gr" }),
        )
        .await;
    assert_eq!(
        data["login"]["user"]["email"],
        "\u{3b4}\u{3cc}\u{3be}\u{3b1}\u{3c3}@example.gr"
    );
    for (typed, reached) in [
        (
            "\u{3bb}\u{3cc}\u{3b3}\u{3bf}\u{3c2}@example.gr",
            &kept.user_id,
        ),
        (
            "\u{3bb}\u{3cc}\u{3b3}\u{3bf}\u{3c3}@example.gr",
            &other.user_id,
        ),
    ] {
        let data = app.ok(None, LOGIN, json!({ "e": typed })).await;
        assert_eq!(data["login"]["user"]["id"], json!(reached), "{typed:?}");
    }
    // An owner adding the address as it is stored adds that account, not the other one.
    let owner = app.register("team-owner@example.com").await;
    let creator = app.create_creator(&owner, "Greek Team").await;
    let data = app
        .ok(
            Some(&owner.access_token),
            "mutation($c: ID!, $e: String!) { addCreatorMember(creatorId: $c, email: $e) { user { id } } }",
            json!({ "c": creator, "e": "\u{3bb}\u{3cc}\u{3b3}\u{3bf}\u{3c2}@example.gr" }),
        )
        .await;
    assert_eq!(data["addCreatorMember"]["user"]["id"], json!(kept.user_id));
}

both_backends!(
    a_shortened_session_lifetime_ends_older_sessions,
    an_email_is_one_address_however_its_accents_are_typed,
    an_email_typed_in_capitals_is_one_address_and_lookalikes_are_refused,
    a_sign_in_answer_shows_the_account_as_its_own,
    one_address_cannot_lock_an_account_out,
    a_session_ended_elsewhere_without_notice_stops_its_tokens,
    register_login_and_me_work,
    wrong_password_and_unknown_email_fail_alike,
    duplicate_email_is_a_conflict,
    invalid_registration_input_names_the_field,
    refresh_rotates_and_reuse_revokes_the_session,
    refreshes_are_throttled_and_old_sessions_cleaned_up,
    logout_ends_the_session,
    expired_and_forged_tokens_are_unauthenticated,
    invite_codes_gate_registration_and_cannot_be_overused,
    only_admins_create_invite_codes,
    changing_the_password_ends_every_session,
    guesses_from_elsewhere_do_not_lock_the_owner_out,
    sessions_are_listed_and_revoked_by_their_user,
    update_me_edits_your_profile,
    preferences_and_onboarding_are_the_users_own,
    an_ended_sessions_access_tokens_stop_working_at_once,
    admins_list_and_revoke_invite_codes,
    a_reset_token_sets_a_new_password_once,
);

/// A refresh token that was never issued is refused on a read: on SQLite, while another
/// request holds the write lock, a stream of guesses answers at once instead of queueing
/// behind it (and making every writer queue behind them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_refresh_token_is_refused_without_the_write_lock() {
    let app = TestApp::spawn_with(Backend::Sqlite, |a| a.no_worker = true).await;
    let writing = reelgraph::jobs::queue::begin_write(&app.state.db)
        .await
        .expect("the write lock");
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.gql(None, REFRESH, json!({ "t": "never-issued" })),
    )
    .await
    .expect("answered while another request writes");
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    drop(writing);
}
