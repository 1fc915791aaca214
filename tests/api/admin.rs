//! Administrators managing accounts: the `users` directory and `updateUser` (role, active),
//! whose taking away of rights applies at once.

use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Backend, TestApp, error_code, error_field},
};

const USERS: &str =
    "query($first: Int, $after: String, $search: String, $role: UserRole, $active: Boolean) {
    users(first: $first, after: $after, search: $search, role: $role, active: $active) {
        totalCount pageInfo { hasNextPage endCursor } nodes { id email role isActive } } }";
const UPDATE_USER: &str = "mutation($id: ID!, $input: UpdateUserInput!) {
    updateUser(id: $id, input: $input) { id role isActive } }";
const ME: &str = "{ me { id role } }";
const LOGIN: &str = "mutation($e: String!) { login(email: $e, password: \"correct horse battery\") { accessToken refreshToken user { id } } }";
const REFRESH: &str = "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }";

fn emails(data: &Value) -> Vec<&str> {
    data["users"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|u| u["email"].as_str().expect("email"))
        .collect()
}

/// The directory is for administrators: newest first, paged, searched by email or name
/// (case-insensitively, `%` and `_` taken literally), narrowed by role and status.
async fn administrators_list_and_search_accounts(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let admin = app.admin("root@example.com").await;
    let viewer = app.register("ada.lovelace@example.com").await;
    app.register("grace_hopper@example.com").await;
    let alan = app.register("alan@example.com").await;
    app.ok(
        Some(&alan.access_token),
        "mutation { updateMe(input: {displayName: \"Alan Ångström\"}) { id } }",
        json!({}),
    )
    .await;
    let token = Some(admin.access_token.as_str());

    for who in [Some(viewer.access_token.as_str()), None] {
        let body = app.gql(who, USERS, json!({})).await;
        let expected = if who.is_some() {
            "FORBIDDEN"
        } else {
            "UNAUTHENTICATED"
        };
        assert_eq!(error_code(&body), expected, "{body}");
    }

    let data = app.ok(token, USERS, json!({ "first": 2 })).await;
    assert_eq!(data["users"]["totalCount"], 4);
    assert_eq!(
        emails(&data),
        ["alan@example.com", "grace_hopper@example.com"]
    );
    assert_eq!(data["users"]["pageInfo"]["hasNextPage"], true);
    let after = data["users"]["pageInfo"]["endCursor"].clone();
    let data = app
        .ok(token, USERS, json!({ "first": 2, "after": after }))
        .await;
    assert_eq!(
        emails(&data),
        ["ada.lovelace@example.com", "root@example.com"]
    );

    let search = |term: &str| json!({ "search": term });
    let data = app.ok(token, USERS, search("LOVELACE")).await;
    assert_eq!(emails(&data), ["ada.lovelace@example.com"]);
    // `_` is a character here, not LIKE's any-character.
    let data = app.ok(token, USERS, search("e_h")).await;
    assert_eq!(emails(&data), ["grace_hopper@example.com"]);
    let data = app.ok(token, USERS, search("a_a")).await;
    assert_eq!(data["users"]["totalCount"], 0, "{data}");
    let data = app.ok(token, USERS, search("ÅNGSTRÖM")).await;
    assert_eq!(emails(&data), ["alan@example.com"], "{data}");
    let data = app.ok(token, USERS, json!({ "role": "ADMIN" })).await;
    assert_eq!(emails(&data), ["root@example.com"]);
    let body = app.gql(token, USERS, search(&"x".repeat(101))).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "search", "{body}");

    app.ok(
        token,
        UPDATE_USER,
        json!({ "id": viewer.user_id, "input": { "isActive": false } }),
    )
    .await;
    let data = app.ok(token, USERS, json!({ "active": false })).await;
    assert_eq!(emails(&data), ["ada.lovelace@example.com"]);
    let data = app.ok(token, USERS, json!({ "active": true })).await;
    assert_eq!(data["users"]["totalCount"], 3, "{data}");
}

/// Taking `ADMIN` away ends the account's sessions at once: its access token and refresh
/// token stop working; signed in again, it is what it was made. Granting a role applies from
/// the next token.
async fn a_demoted_administrator_loses_the_rights_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let root = app.admin("root@example.com").await;
    let other = app.admin("other@example.com").await;
    let token = Some(root.access_token.as_str());
    let data = app
        .ok(
            token,
            UPDATE_USER,
            json!({ "id": other.user_id, "input": { "role": "CREATOR" } }),
        )
        .await;
    assert_eq!(data["updateUser"]["role"], "CREATOR");
    let body = app.gql(Some(&other.access_token), ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let body = app
        .gql(None, REFRESH, json!({ "t": other.refresh_token }))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let data = app
        .ok(None, LOGIN, json!({ "e": "other@example.com" }))
        .await;
    let again = data["login"]["accessToken"].as_str().expect("token");
    let body = app.gql(Some(again), USERS, json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");

    // A promotion keeps the sessions; the next token carries the role.
    let promoted = app.register("promoted@example.com").await;
    app.ok(
        token,
        UPDATE_USER,
        json!({ "id": promoted.user_id, "input": { "role": "ADMIN" } }),
    )
    .await;
    let data = app
        .ok(None, REFRESH, json!({ "t": promoted.refresh_token }))
        .await;
    let fresh = data["refreshSession"]["accessToken"]
        .as_str()
        .expect("token");
    let data = app.ok(Some(fresh), USERS, json!({})).await;
    assert_eq!(data["users"]["totalCount"], 3);
}

/// A disabled account is signed out everywhere and cannot sign in; enabled again, it can.
async fn a_disabled_account_is_signed_out_and_cannot_sign_in(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let root = app.admin("root@example.com").await;
    let user = app.register("troll@example.com").await;
    let token = Some(root.access_token.as_str());
    let data = app
        .ok(
            token,
            UPDATE_USER,
            json!({ "id": user.user_id, "input": { "isActive": false } }),
        )
        .await;
    assert_eq!(data["updateUser"]["isActive"], false);
    let body = app.gql(Some(&user.access_token), ME, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    let body = app
        .gql(None, LOGIN, json!({ "e": "troll@example.com" }))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    app.ok(
        token,
        UPDATE_USER,
        json!({ "id": user.user_id, "input": { "isActive": true } }),
    )
    .await;
    let data = app
        .ok(None, LOGIN, json!({ "e": "troll@example.com" }))
        .await;
    assert!(data["login"]["accessToken"].is_string());
}

/// Refusals: not an administrator, one's own account, a bad or unknown id. Nothing changes.
async fn update_user_refusals_change_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let root = app.admin("root@example.com").await;
    let user = app.register("someone@example.com").await;
    let token = Some(root.access_token.as_str());
    let body = app
        .gql(
            Some(&user.access_token),
            UPDATE_USER,
            json!({ "id": root.user_id, "input": { "role": "VIEWER" } }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    for (input, field) in [
        (json!({ "role": "VIEWER" }), "input.role"),
        (json!({ "isActive": false }), "input.isActive"),
    ] {
        let body = app
            .gql(
                token,
                UPDATE_USER,
                json!({ "id": root.user_id, "input": input }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }
    let body = app
        .gql(token, UPDATE_USER, json!({ "id": "nope", "input": {} }))
        .await;
    assert_eq!(error_field(&body), "id", "{body}");
    let body = app
        .gql(
            token,
            UPDATE_USER,
            json!({ "id": "0190c3a4-0000-7000-8000-000000000000", "input": { "role": "ADMIN" } }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
    let data = app.ok(token, ME, json!({})).await;
    assert_eq!(data["me"]["role"], "ADMIN");
    let data = app.ok(token, USERS, json!({ "role": "ADMIN" })).await;
    assert_eq!(data["users"]["totalCount"], 1);
}

both_backends!(
    administrators_list_and_search_accounts,
    a_demoted_administrator_loses_the_rights_at_once,
    a_disabled_account_is_signed_out_and_cannot_sign_in,
    update_user_refusals_change_nothing,
);

/// Two administrators demoting each other at the same moment (held at the first one's row
/// until both wait there): one succeeds, the other is refused, and an administrator remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_demoting_each_other_at_once_leave_one() {
    use sea_orm::{
        ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, TransactionTrait,
    };

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let one = app.admin("one@example.com").await;
    let two = app.admin("two@example.com").await;
    let first: uuid::Uuid = (&one.user_id).min(&two.user_id).parse().expect("uuid");
    let hold = app.state.db.begin().await.expect("txn");
    entity::user::Entity::find_by_id(first)
        .lock_exclusive()
        .one(&hold)
        .await
        .expect("locked")
        .expect("user");
    let demote = |id: &str| json!({ "id": id, "input": { "role": "VIEWER" } });
    let calls = [
        app.gql_in_background(&one.access_token, UPDATE_USER, demote(&two.user_id)),
        app.gql_in_background(&two.access_token, UPDATE_USER, demote(&one.user_id)),
    ];
    crate::helpers::wait_for_lock_waits(&app, 2).await;
    hold.commit().await.expect("commit");
    let mut codes = Vec::new();
    for call in calls {
        let body = call.await.expect("joined");
        codes.push(if body["errors"].is_null() {
            "ok".to_owned()
        } else {
            error_code(&body).to_owned()
        });
    }
    codes.sort();
    assert_eq!(codes, ["FORBIDDEN", "ok"]);
    let admins = entity::user::Entity::find()
        .filter(entity::user::Column::Role.eq(entity::UserRole::Admin))
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(admins, 1);
}

/// A sign-in whose password check overlaps a change to the account gets no session. The test
/// holds the account's row (as `updateUser`, `changePassword` and `resetPassword` do) until the
/// sign-in waits on it, then writes `column = value` and commits: the sign-in must see that,
/// not the account it read before checking the password.
async fn a_sign_in_overlapping(column: entity::user::Column, value: sea_orm::sea_query::Expr) {
    overlapping(
        column,
        value,
        false,
        "mutation { login(email: \"eve@example.com\", password: \"correct horse battery\") { accessToken } }",
        "UNAUTHENTICATED",
    )
    .await;
}

/// [`a_sign_in_overlapping`] for any `query` (sent with Eve's token when `as_eve`): it is
/// refused with `code`, starts no session and leaves what the test wrote.
async fn overlapping(
    column: entity::user::Column,
    value: sea_orm::sea_query::Expr,
    as_eve: bool,
    query: &'static str,
    code: &str,
) {
    use sea_orm::{
        ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, TransactionTrait,
    };

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let eve = app.register("eve@example.com").await;
    let id: uuid::Uuid = eve.user_id.parse().expect("uuid");
    let hold = app.state.db.begin().await.expect("txn");
    entity::user::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&hold)
        .await
        .expect("locked")
        .expect("user");
    let (base, client) = (app.base.clone(), app.client.clone());
    let token = as_eve.then(|| eve.access_token.clone());
    let request = tokio::spawn(async move {
        let mut post = client
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": query }));
        if let Some(token) = token {
            post = post.bearer_auth(token);
        }
        post.send()
            .await
            .expect("sent")
            .json::<serde_json::Value>()
            .await
            .expect("json")
    });
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    entity::user::Entity::update_many()
        .col_expr(column, value)
        .filter(entity::user::Column::Id.eq(id))
        .exec(&hold)
        .await
        .expect("changed");
    hold.commit().await.expect("commit");
    let written = entity::user::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("user");
    let body = request.await.expect("joined");
    assert_eq!(error_code(&body), code, "{body}");
    let sessions = entity::session::Entity::find()
        .filter(entity::session::Column::UserId.eq(id))
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(sessions, 1, "only the registration's session");
    let after = entity::user::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(after, written, "the refused request changed the account");
}

/// A password change overlapping a disable: refused, the password stays, no session starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_overlapping_a_disable_changes_nothing() {
    overlapping(
        entity::user::Column::IsActive,
        sea_orm::sea_query::Expr::val(false),
        true,
        "mutation { changePassword(currentPassword: \"correct horse battery\", newPassword: \"another long password\") { accessToken } }",
        "UNAUTHENTICATED",
    )
    .await;
}

/// A password change overlapping another change (or a reset) of the password: the current
/// password it checked is no longer the account's, so it is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_overlapping_another_changes_nothing() {
    let other = reelgraph::auth::password::hash("a different password".into())
        .await
        .map_err(|e| e.public_message())
        .expect("hashed");
    overlapping(
        entity::user::Column::PasswordHash,
        sea_orm::sea_query::Expr::val(other),
        true,
        "mutation { changePassword(currentPassword: \"correct horse battery\", newPassword: \"another long password\") { accessToken } }",
        "BAD_USER_INPUT",
    )
    .await;
}

/// An administrator disabling the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_overlapping_a_disable_gets_no_session() {
    a_sign_in_overlapping(
        entity::user::Column::IsActive,
        sea_orm::sea_query::Expr::val(false),
    )
    .await;
}

/// A password change or reset: the password the sign-in checked is no longer the account's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_overlapping_a_password_change_gets_no_session() {
    let other = reelgraph::auth::password::hash("a different password".into())
        .await
        .map_err(|e| e.public_message())
        .expect("hashed");
    a_sign_in_overlapping(
        entity::user::Column::PasswordHash,
        sea_orm::sea_query::Expr::val(other),
    )
    .await;
}
