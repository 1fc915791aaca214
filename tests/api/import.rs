//! `reelgraph admin import-users`: accounts from another platform sign in with the passwords
//! they had, their hashes become Argon2id, and a bad file imports nothing.

use std::process::Stdio;

use argon2::{Algorithm, Argon2, Params, Version, password_hash::PasswordHasher};
use entity::user;
use reelgraph::users::import;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Backend, TestApp, create_database, error_code, postgres_base_url, session_of},
};

const LOGIN: &str = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken user { id } } }";
const ME: &str = "{ me { email displayName role isVerified credits createdAt onboardingCompleted notificationPreferences { digestEnabled digestFrequency } creditLedger(first: 5) { nodes { delta reason balanceAfter } } } }";

fn bcrypt_hash(password: &str, version: bcrypt::Version) -> String {
    bcrypt::hash_with_result(password, 4)
        .expect("bcrypt")
        .format_for_version(version)
}

async fn stored_hash(app: &TestApp, email: &str) -> String {
    user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(&app.state.db)
        .await
        .expect("query")
        .expect("account")
        .password_hash
}

async fn login(app: &TestApp, email: &str, password: &str) -> Value {
    app.gql(None, LOGIN, json!({ "e": email, "p": password }))
        .await
}

async fn imported_accounts_sign_in_with_their_old_passwords(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("taken@example.com").await;
    let argon2i = Argon2::new(
        Algorithm::Argon2i,
        Version::V0x13,
        Params::new(4096, 3, 1, None).expect("params"),
    )
    .hash_password(b"cy's old password")
    .expect("argon2")
    .to_string();
    let lines = [
        json!({ "email": " Ana@Example.com ", "passwordHash": bcrypt_hash("ana's old password", bcrypt::Version::TwoB),
                "displayName": "Ana", "username": "ana_42", "role": "creator", "isVerified": true, "credits": 250,
                "createdAt": "2024-01-02T03:04:05Z", "onboardingCompleted": true,
                "notificationPreferences": { "digest_enabled": true, "digest_frequency": "weekly" } }),
        // The roles of the platform whose `role` column says 'user' | 'admin' | 'team'.
        json!({ "email": "ben@example.com", "passwordHash": bcrypt_hash("ben's old password", bcrypt::Version::TwoY),
                "isActive": false, "role": "team" }),
        // The knowledge base's column name for the hash.
        json!({ "email": "cy@example.com", "hashed_password": argon2i, "role": "user" }),
        json!({ "email": "taken@example.com", "passwordHash": bcrypt_hash("another password", bcrypt::Version::TwoA) }),
        // A row of the video-generation platform's table as exported: snake_case columns, its
        // `username`, and a `TIMESTAMP` without an offset (UTC).
        json!({ "email": "dan@example.com", "password_hash": bcrypt_hash("dan's old password", bcrypt::Version::TwoB),
                "username": "dan_makes", "avatar_url": "https://cdn.example.com/dan.png",
                "created_at": "2023-05-06T07:08:09.123456" }),
    ];
    let text = lines
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n\n");
    let users_before = user::Entity::find()
        .count(&app.state.db)
        .await
        .expect("count");
    let taken_hash = stored_hash(&app, "taken@example.com").await;

    // A dry run reports and writes nothing.
    let parsed = import::parse(&text, chrono::Utc::now()).expect("valid file");
    let report = import::import(&app.state.db, parsed.clone(), true)
        .await
        .expect("dry run");
    assert_eq!(
        report.imported,
        [
            "ana@example.com",
            "ben@example.com",
            "cy@example.com",
            "dan@example.com"
        ]
    );
    assert_eq!(report.existing, ["taken@example.com"]);
    assert_eq!(report.to_upgrade, 4);
    assert_eq!(
        user::Entity::find()
            .count(&app.state.db)
            .await
            .expect("count"),
        users_before
    );
    assert_eq!(
        error_code(&login(&app, "ana@example.com", "ana's old password").await),
        "UNAUTHENTICATED"
    );

    let report = import::import(&app.state.db, parsed, false)
        .await
        .expect("import");
    assert_eq!(report.imported.len(), 4);
    assert_eq!(
        user::Entity::find()
            .count(&app.state.db)
            .await
            .expect("count"),
        users_before + 4
    );

    // bcrypt: the old password signs in, and the hash becomes Argon2id.
    assert!(
        stored_hash(&app, "ana@example.com")
            .await
            .starts_with("$2b$04$")
    );
    assert_eq!(
        error_code(&login(&app, "ana@example.com", "ana's old passwore").await),
        "UNAUTHENTICATED"
    );
    assert!(
        stored_hash(&app, "ana@example.com")
            .await
            .starts_with("$2b$")
    );
    let body = login(&app, "ana@example.com", "ana's old password").await;
    let session = session_of(&body["data"]["login"]);
    let upgraded = stored_hash(&app, "ana@example.com").await;
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{upgraded}"
    );
    let body = login(&app, "ana@example.com", "ana's old password").await;
    assert!(
        body["errors"].is_null(),
        "the upgraded hash verifies: {body}"
    );
    assert_eq!(stored_hash(&app, "ana@example.com").await, upgraded);
    // Its id is of its creation time, as ids of accounts made here are: lists order by id.
    let ana = session.user_id.parse::<uuid::Uuid>().expect("uuid");
    assert_eq!(
        ana.get_timestamp().map(|t| t.to_unix()),
        Some((1_704_164_645, 0))
    );
    let me = app.ok(Some(&session.access_token), ME, json!({})).await;
    assert_eq!(
        me["me"],
        json!({
            "email": "ana@example.com", "displayName": "Ana", "role": "CREATOR",
            "isVerified": true, "credits": 250, "createdAt": "2024-01-02T03:04:05+00:00",
            "onboardingCompleted": true,
            "notificationPreferences": { "digestEnabled": true, "digestFrequency": "WEEKLY" },
            "creditLedger": { "nodes": [
                { "delta": 250, "reason": import::REASON_IMPORT, "balanceAfter": 250 }
            ] }
        })
    );

    // A disabled account is imported disabled: no sign-in, and its hash is left alone.
    assert_eq!(
        error_code(&login(&app, "ben@example.com", "ben's old password").await),
        "UNAUTHENTICATED"
    );
    assert!(
        stored_hash(&app, "ben@example.com")
            .await
            .starts_with("$2y$04$")
    );
    let ben = user::Entity::find()
        .filter(user::Column::Email.eq("ben@example.com"))
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("ben");
    assert_eq!(ben.role, entity::UserRole::Creator, "'team' is a creator");

    // Argon2i with other parameters: verified with its own, then replaced.
    let body = login(&app, "cy@example.com", "cy's old password").await;
    assert!(body["errors"].is_null(), "{body}");
    let cy = app
        .ok(
            Some(&session_of(&body["data"]["login"]).access_token),
            ME,
            json!({}),
        )
        .await;
    assert_eq!(cy["me"]["role"], "VIEWER");
    assert_eq!(cy["me"]["isVerified"], false);
    assert_eq!(cy["me"]["credits"], 0);
    assert_eq!(cy["me"]["creditLedger"]["nodes"], json!([]));
    assert_eq!(cy["me"]["onboardingCompleted"], false);
    assert_eq!(
        cy["me"]["notificationPreferences"],
        json!({ "digestEnabled": false, "digestFrequency": "DAILY" })
    );
    assert!(
        stored_hash(&app, "cy@example.com")
            .await
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );

    // The exported row: its name, avatar and creation time are kept, and it signs in.
    let body = login(&app, "dan@example.com", "dan's old password").await;
    assert!(body["errors"].is_null(), "{body}");
    let dan = user::Entity::find()
        .filter(user::Column::Email.eq("dan@example.com"))
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("dan");
    assert_eq!(dan.display_name.as_deref(), Some("dan_makes"));
    assert_eq!(
        dan.avatar_url.as_deref(),
        Some("https://cdn.example.com/dan.png")
    );
    assert_eq!(
        dan.created_at.to_rfc3339(),
        "2023-05-06T07:08:09.123456+00:00"
    );

    // The account that existed is untouched: its own password, not the file's, signs in.
    assert_eq!(stored_hash(&app, "taken@example.com").await, taken_hash);
    assert_eq!(
        error_code(&login(&app, "taken@example.com", "another password").await),
        "UNAUTHENTICATED"
    );
    assert!(login(&app, "taken@example.com", "correct horse battery").await["errors"].is_null());

    // The same file again imports nothing twice.
    let again = import::import(
        &app.state.db,
        import::parse(&text, chrono::Utc::now()).expect("valid"),
        false,
    )
    .await
    .expect("rerun");
    assert!(again.imported.is_empty());
    assert_eq!(again.existing.len(), 5);
    assert_eq!(
        user::Entity::find()
            .count(&app.state.db)
            .await
            .expect("count"),
        users_before + 4
    );
}

/// A refused sign-in is answered at a whole second after it started, whatever the hash behind
/// it: an imported cost-4 bcrypt hash (checked in about a millisecond), an Argon2id hash like
/// ours, and an unknown email (checked against a dummy hash) cannot be told apart by time.
async fn refused_sign_ins_take_a_whole_second_whatever_the_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("ours@example.com").await;
    let line = json!({ "email": "cheap@example.com", "passwordHash": bcrypt_hash("cheap's password", bcrypt::Version::TwoB) });
    let users = import::parse(&line.to_string(), chrono::Utc::now()).expect("valid");
    import::import(&app.state.db, users, false)
        .await
        .expect("imported");
    for email in [
        "cheap@example.com",
        "ours@example.com",
        "nobody@example.com",
    ] {
        let started = std::time::Instant::now();
        let body = login(&app, email, "not the password").await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
        assert!(
            started.elapsed() >= std::time::Duration::from_secs(1),
            "{email} was refused after {:?}",
            started.elapsed()
        );
    }
    // The right password is not held up by the floor.
    assert!(login(&app, "cheap@example.com", "cheap's password").await["errors"].is_null());
}

/// An account created while an import runs, with an email the import also has (a sign-up,
/// the same file imported twice at once), is left as it is, as one that was there before:
/// the import does not fail on the unique email, and carries no credits over to it.
#[tokio::test]
async fn an_account_created_while_importing_is_left_as_it_is() {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, TransactionTrait};
    let app = TestApp::spawn(Backend::Postgres).await;
    app.register("model@example.com").await;
    let hash = bcrypt_hash("an old password", bcrypt::Version::TwoB);
    let text = [
        json!({ "email": "meanwhile@example.com", "passwordHash": hash, "credits": 5 }),
        json!({ "email": "new@example.com", "passwordHash": hash, "credits": 7 }),
    ]
    .map(|line| line.to_string())
    .join("\n");
    let users = import::parse(&text, chrono::Utc::now()).expect("parsed");
    // The other account's transaction has written its row, and not committed yet.
    let model = user::Entity::find()
        .filter(user::Column::Email.eq("model@example.com"))
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("model");
    let other = app.state.db.begin().await.expect("begin");
    let mut row: user::ActiveModel = model.into();
    row.id = Set(uuid::Uuid::now_v7());
    row.email = Set("meanwhile@example.com".into());
    row.insert(&other).await.expect("inserted");
    let db = app.state.db.clone();
    let importing = tokio::spawn(async move { import::import(&db, users, false).await });
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    other.commit().await.expect("committed");
    let report = importing
        .await
        .expect("joined")
        .map_err(|e| e.public_message())
        .expect("imported");
    assert_eq!(report.imported, ["new@example.com"]);
    assert_eq!(report.existing, ["meanwhile@example.com"]);
    let credits = |email: &'static str| {
        let db = app.state.db.clone();
        async move {
            user::Entity::find()
                .filter(user::Column::Email.eq(email))
                .one(&db)
                .await
                .expect("read")
                .expect("account")
                .credits
        }
    };
    assert_eq!(credits("new@example.com").await, 7);
    assert_eq!(credits("meanwhile@example.com").await, 0);
}

both_backends!(
    imported_accounts_sign_in_with_their_old_passwords,
    refused_sign_ins_take_a_whole_second_whatever_the_hash,
);

/// Runs `reelgraph admin import-users` on `file` against the PostgreSQL database `name`.
async fn import_command(name: &str, file: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["import-users", file.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    admin_command(name, &args).await
}

/// Runs `reelgraph admin <args>` against the PostgreSQL database `name`: whether it
/// succeeded, and its standard output and error.
async fn admin_command(name: &str, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_reelgraph"))
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", format!("{}/{name}", postgres_base_url()))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("the command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_names_every_bad_line_and_imports_nothing_until_the_file_is_right() {
    let name = create_database().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("users.jsonl");
    let good = bcrypt_hash("dee's old password", bcrypt::Version::TwoB);
    let costly = good.replacen("$04$", "$15$", 1);
    let lines = [
        json!({ "email": "dee@example.com", "passwordHash": good }).to_string(),
        json!({ "email": "not-an-email", "passwordHash": good }).to_string(),
        json!({ "email": "eve@example.com", "passwordHash": "hunter22" }).to_string(),
        json!({ "email": "DEE@example.com", "passwordHash": good }).to_string(),
        json!({ "email": "fay@example.com", "passwordHash": costly }).to_string(),
        json!({ "email": "gus@example.com", "passwordHash": good, "role": "OWNER" }).to_string(),
        json!({ "email": "hal@example.com", "passwordHash": good, "password": "x" }).to_string(),
        "{\"email\": \"ivy@example.com\",".to_owned(),
        json!({ "email": "jo@example.com", "passwordHash": good, "credits": -5 }).to_string(),
        json!({ "email": "kim@example.com", "passwordHash": good, "createdAt": "2999-01-01T00:00:00Z" }).to_string(),
        json!({ "email": "lou@example.com", "passwordHash": good,
                "notificationPreferences": { "digest_frequency": "hourly" } }).to_string(),
        json!(["mo@example.com", good]).to_string(),
        json!({ "email": "nat@example.com", "passwordHash": good, "credits": "250" }).to_string(),
        json!({ "email": "oz@example.com", "passwordHash": good, "createdAt": "last tuesday" }).to_string(),
        json!({ "email": "pam@example.com", "passwordHash": good,
                "notificationPreferences": { "digest_enabled": "yes" } }).to_string(),
        json!({ "email": "quin@example.com", "passwordHash": good, "avatarUrl": "javascript:alert(1)" }).to_string(),
        // An exporter's zero time: an id (UUIDv7) cannot tell a time before 1970.
        json!({ "email": "ray@example.com", "passwordHash": good, "createdAt": "0001-01-01T00:00:00Z" }).to_string(),
    ];
    // With the byte-order mark an editor on Windows writes: not part of line 1.
    std::fs::write(&file, format!("\u{feff}{}", lines.join("\n"))).expect("write");
    let (ok, output) = import_command(&name, &file, &[]).await;
    assert!(!ok, "{output}");
    for expected in [
        "nothing was imported",
        "line 2: email: must be a valid email address",
        "line 3: passwordHash: must be a bcrypt hash",
        "line 4: email: dee@example.com is also on line 1",
        "line 5: passwordHash: bcrypt cost 15 is above the highest accepted, 12",
        "line 6: role: \"OWNER\" is not a role",
        "line 7: password: unknown field `password`",
        "line 8: not a JSON object",
        "line 9: credits: must be between 0",
        "line 10: createdAt: is in the future",
        "line 11: notificationPreferences.digestFrequency: \"hourly\" is not a frequency",
        "line 12: not a JSON object (one account per line",
        // A value of the wrong type names its field.
        "line 13: credits: invalid type: string \"250\", expected a whole number",
        "line 14: createdAt: \"last tuesday\" is not a date and time",
        "line 15: notificationPreferences.digest_enabled: invalid type: string \"yes\"",
        "line 16: avatarUrl: ",
        "line 17: createdAt: is before 1970: leave it out",
    ] {
        assert!(output.contains(expected), "{expected:?} in:\n{output}");
    }
    assert!(!output.contains("line 1:"), "{output}");
    assert!(!output.contains("i64"), "no Rust type names: {output}");

    // A dry run changes nothing, not even the schema of a database never migrated.
    std::fs::write(&file, format!("{}\n", lines[0])).expect("write");
    let (ok, output) = import_command(&name, &file, &["--dry-run"]).await;
    assert!(!ok, "{output}");
    assert!(output.contains("run `reelgraph migrate` first"), "{output}");
    {
        use sea_orm::{ConnectionTrait, Statement};
        let fresh = sea_orm::Database::connect(format!("{}/{name}", postgres_base_url()))
            .await
            .expect("connect");
        let tables = fresh
            .query_one_raw(Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT count(*)::bigint AS n FROM information_schema.tables \
                 WHERE table_schema = 'public'",
            ))
            .await
            .expect("query")
            .expect("row")
            .try_get::<i64>("", "n")
            .expect("n");
        assert_eq!(tables, 0, "the dry run created a table");
        fresh.close().await.expect("closed");
    }

    // Nothing was written: the bad file was refused before the database was opened.
    let app = {
        let mut app = TestApp::spawn_on(Some(&name), |_| {}).await;
        app.adopt_database(name.clone());
        app
    };
    assert_eq!(
        user::Entity::find()
            .count(&app.state.db)
            .await
            .expect("count"),
        0
    );

    let (ok, output) = import_command(&name, &file, &["--dry-run"]).await;
    assert!(ok, "{output}");
    assert!(
        output.contains("would import 1 account(s); 1 of them"),
        "{output}"
    );
    assert_eq!(
        user::Entity::find()
            .count(&app.state.db)
            .await
            .expect("count"),
        0
    );

    let (ok, output) = import_command(&name, &file, &[]).await;
    assert!(ok, "{output}");
    assert!(output.contains("imported 1 account(s)"), "{output}");
    let (ok, output) = import_command(&name, &file, &[]).await;
    assert!(ok, "{output}");
    assert!(
        output.contains("imported 0 account(s)")
            && output.contains("left unchanged 1 account(s) that already exist: dee@example.com"),
        "{output}"
    );
    assert!(
        login(&app, "dee@example.com", "dee's old password").await["errors"].is_null(),
        "the imported account signs in"
    );
}

/// `reelgraph admin reset-password --email` prints a one-time token with which the account's
/// owner sets a new password; an unknown email is an error that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reset_command_prints_a_token_that_sets_a_new_password() {
    let name = create_database().await;
    let mut app = TestApp::spawn_on(Some(&name), |a| a.no_worker = true).await;
    app.adopt_database(name.clone());
    app.register("locked-out@example.com").await;
    let (ok, output) =
        admin_command(&name, &["reset-password", "--email", "nobody@example.com"]).await;
    assert!(!ok, "{output}");
    assert!(
        output.contains("there is no account with the email nobody@example.com"),
        "{output}"
    );
    let (ok, output) = admin_command(
        &name,
        &["reset-password", "--email", "Locked-Out@Example.com"],
    )
    .await;
    assert!(ok, "{output}");
    assert!(
        output.contains("password reset token for locked-out@example.com"),
        "{output}"
    );
    let token = output
        .lines()
        .nth(1)
        .expect("the token's line")
        .trim()
        .to_owned();
    let data = app
        .ok(
            None,
            "mutation($t: String!) { resetPassword(token: $t, newPassword: \"set from the command\") { user { id } } }",
            json!({ "t": token }),
        )
        .await;
    assert!(data["resetPassword"]["user"]["id"].is_string(), "{data}");
    assert!(
        login(&app, "locked-out@example.com", "set from the command").await["errors"].is_null()
    );
}

/// `reelgraph admin create` never hands an existing account administrator rights (anyone may
/// have registered the address first): that takes `--promote`, and `--promote --password`
/// also replaces the password and signs out whoever held the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_promotes_an_existing_account_only_when_asked() {
    let name = create_database().await;
    let mut app = TestApp::spawn_on(Some(&name), |a| a.no_worker = true).await;
    app.adopt_database(name.clone());
    let squatter = app.register("ops@example.com").await;
    let role = |app: &TestApp| {
        let db = app.state.db.clone();
        async move {
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            entity::user::Entity::find()
                .filter(entity::user::Column::Email.eq("ops@example.com"))
                .one(&db)
                .await
                .expect("read")
                .expect("user")
                .role
        }
    };

    let (ok, output) = admin_command(
        &name,
        &[
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "the operator's password",
        ],
    )
    .await;
    assert!(!ok, "{output}");
    assert!(
        output.contains("--email: an account with this email exists"),
        "{output}"
    );
    assert!(output.contains("--promote"), "{output}");
    assert_eq!(role(&app).await, entity::UserRole::Viewer);
    // A bad value names the flag it came in.
    let long_name = "n".repeat(51);
    for (args, expected) in [
        (
            vec!["--promote", "--password", "short"],
            "error: promoting the account: --password: password must be at least",
        ),
        (
            vec![
                "--password",
                "the operator's password",
                "--display-name",
                &long_name,
            ],
            "--display-name: must be at most 50 characters",
        ),
        (
            vec!["--password", "short"],
            "--password (or REELGRAPH_ADMIN_PASSWORD): password must be at least",
        ),
    ] {
        let mut all = vec!["create", "--email", "new-ops@example.com"];
        all.extend(args);
        let (ok, output) = admin_command(&name, &all).await;
        assert!(!ok, "{output}");
        assert!(output.contains(expected), "{expected:?} in {output}");
    }

    let (ok, output) = admin_command(
        &name,
        &[
            "create",
            "--promote",
            "--email",
            "Ops@Example.com",
            "--password",
            "the operator's password",
        ],
    )
    .await;
    assert!(ok, "{output}");
    assert!(output.contains("1 sessions ended"), "{output}");
    assert_eq!(role(&app).await, entity::UserRole::Admin);
    // The squatter's password and session no longer work; the operator's password does.
    assert!(!login(&app, "ops@example.com", "correct horse battery").await["errors"].is_null());
    let me = app
        .gql(Some(&squatter.access_token), "{ me { id } }", json!({}))
        .await;
    assert_eq!(crate::helpers::error_code(&me), "UNAUTHENTICATED", "{me}");
    assert!(login(&app, "ops@example.com", "the operator's password").await["errors"].is_null());

    let (ok, output) = admin_command(
        &name,
        &["create", "--promote", "--email", "nobody@example.com"],
    )
    .await;
    assert!(!ok, "{output}");

    // A bootstrap password left in the environment does not replace a promoted account's.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_reelgraph"))
        .args(["admin", "create", "--promote", "--email", "ops@example.com"])
        .env("DATABASE_URL", format!("{}/{name}", postgres_base_url()))
        .env("REELGRAPH_ADMIN_PASSWORD", "a bootstrap password")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the command runs");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("password unchanged"), "{said}");
    assert!(login(&app, "ops@example.com", "the operator's password").await["errors"].is_null());
}
