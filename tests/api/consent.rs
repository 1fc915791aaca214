//! Per-video consent: gap-free audit versions under concurrency, and an audit table that the
//! database itself keeps append-only.

use entity::{VideoStatus, consent_audit_entry};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;
use uuid::Uuid;

use crate::{
    both_backends,
    helpers::{Backend, TestApp, error_code, insert_video},
};

const SET: &str = "mutation($v: ID!, $input: VideoConsentInput!) { setVideoConsent(videoId: $v, input: $input) {
    kbInclusion trainingUsage publicDisplay version updatedBy { email }
    auditLog(first: 100) { totalCount nodes { version field oldValue newValue changedBy { email } ipAddress } } } }";

async fn each_changed_field_is_audited_with_who_and_where(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("consent-owner@example.com").await;
    let creator = app.create_creator(&owner, "Consenting Creator").await;
    let video = insert_video(
        &app,
        &creator,
        "consent test",
        VideoStatus::Ready,
        Some(30.0),
    )
    .await;
    let data = app
        .ok(
            Some(&owner.access_token),
            SET,
            json!({ "v": video, "input": { "kbInclusion": true, "publicDisplay": false } }),
        )
        .await;
    let consent = &data["setVideoConsent"];
    assert_eq!(consent["kbInclusion"], true);
    assert_eq!(consent["publicDisplay"], false);
    assert_eq!(consent["trainingUsage"], false);
    assert_eq!(consent["version"], 2);
    assert_eq!(consent["updatedBy"]["email"], "consent-owner@example.com");
    let entries = consent["auditLog"]["nodes"].as_array().expect("nodes");
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0],
        json!({ "version": 1, "field": "KB_INCLUSION", "oldValue": null, "newValue": true,
        "changedBy": { "email": "consent-owner@example.com" }, "ipAddress": "127.0.0.1" })
    );
    assert_eq!(entries[1]["field"], "PUBLIC_DISPLAY");

    // Unchanged values write nothing; a later change knows its old value.
    let data = app
        .ok(
            Some(&owner.access_token),
            SET,
            json!({ "v": video, "input": { "kbInclusion": true, "publicDisplay": true } }),
        )
        .await;
    let entries = data["setVideoConsent"]["auditLog"]["nodes"]
        .as_array()
        .expect("nodes")
        .clone();
    assert_eq!(entries.len(), 3);
    assert_eq!(
        entries[2],
        json!({ "version": 3, "field": "PUBLIC_DISPLAY", "oldValue": false, "newValue": true,
        "changedBy": { "email": "consent-owner@example.com" }, "ipAddress": "127.0.0.1" })
    );

    // Another member of the team reads who changed what, but not from where; an
    // administrator reads both.
    let teammate = app.register("consent-teammate@example.com").await;
    app.ok(
        Some(&owner.access_token),
        "mutation($c: ID!) { addCreatorMember(creatorId: $c, email: \"consent-teammate@example.com\") { role } }",
        json!({ "c": creator }),
    )
    .await;
    let admin = app.admin("consent-admin@example.com").await;
    let read = "query($v: ID!) { video(id: $v) { consent { auditLog(first: 10) {
        nodes { changedBy { email } ipAddress } } } } }";
    for (reader, address) in [(&teammate, json!(null)), (&admin, json!("127.0.0.1"))] {
        let data = app
            .ok(Some(&reader.access_token), read, json!({ "v": video }))
            .await;
        let nodes = &data["video"]["consent"]["auditLog"]["nodes"];
        assert_eq!(
            nodes[0],
            json!({ "changedBy": { "email": "consent-owner@example.com" }, "ipAddress": address }),
            "{data}"
        );
    }

    let outsider = app.register("consent-outsider@example.com").await;
    let body = app
        .gql(
            Some(&outsider.access_token),
            SET,
            json!({ "v": video, "input": { "kbInclusion": false } }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        "FORBIDDEN",
        "a public video the outsider may see but not change"
    );
    let body = app
        .gql(
            None,
            SET,
            json!({ "v": video, "input": { "kbInclusion": false } }),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    let body = app
        .gql(
            Some(&owner.access_token),
            SET,
            json!({ "v": Uuid::now_v7(), "input": {} }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
}

async fn fifty_concurrent_updates_leave_gap_free_unique_versions(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("race-owner@example.com").await;
    let creator = app.create_creator(&owner, "Racing Creator").await;
    let video = insert_video(
        &app,
        &creator,
        "consent test",
        VideoStatus::Ready,
        Some(30.0),
    )
    .await;
    let updates = (0..50).map(|i| {
        let input = json!({ "kbInclusion": i % 2 == 0, "trainingUsage": i % 3 == 0, "publicDisplay": i % 5 != 0 });
        app.gql(Some(&owner.access_token), "mutation($v: ID!, $input: VideoConsentInput!) { setVideoConsent(videoId: $v, input: $input) { version } }", json!({ "v": video, "input": input }))
    });
    let results = futures_util::future::join_all(updates).await;
    assert!(
        results.iter().all(|r| r.get("errors").is_none()),
        "{results:#?}"
    );
    let versions: Vec<i32> = consent_audit_entry::Entity::find()
        .order_by_asc(consent_audit_entry::Column::Version)
        .all(&app.state.db)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.version)
        .collect();
    assert!(
        versions.len() >= 25,
        "most updates changed something: {}",
        versions.len()
    );
    let expected: Vec<i32> = (1..=versions.len() as i32).collect();
    assert_eq!(versions, expected, "versions 1..N, no gap, no duplicate");
}

async fn the_database_refuses_to_update_or_delete_audit_rows(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("append-only@example.com").await;
    let creator = app.create_creator(&owner, "Append Only").await;
    let video = insert_video(
        &app,
        &creator,
        "consent test",
        VideoStatus::Ready,
        Some(30.0),
    )
    .await;
    app.ok(
        Some(&owner.access_token),
        SET,
        json!({ "v": video, "input": { "trainingUsage": true } }),
    )
    .await;
    let db = &app.state.db;
    let update = db
        .execute_unprepared("UPDATE consent_audit_log SET new_value = FALSE")
        .await;
    assert!(update.is_err(), "UPDATE must fail at the database");
    let delete = db.execute_unprepared("DELETE FROM consent_audit_log").await;
    assert!(delete.is_err(), "DELETE must fail at the database");
    if backend == Backend::Sqlite {
        // REPLACE deletes the row it conflicts with without firing DELETE triggers.
        let replace = db
            .execute_unprepared(
                "INSERT OR REPLACE INTO consent_audit_log (id, video_consent_id, version, field, \
                 old_value, new_value, changed_by, ip_address, created_at) \
                 SELECT id, video_consent_id, version, field, old_value, FALSE, changed_by, \
                 ip_address, created_at FROM consent_audit_log",
            )
            .await;
        assert!(replace.is_err(), "REPLACE must fail at the database");
    }
    let rows = consent_audit_entry::Entity::find()
        .filter(consent_audit_entry::Column::NewValue.eq(true))
        .all(db)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1, "the row is untouched");
}

/// A change written by a server whose clock runs an hour ahead, then one by this server: the
/// log still lists versions in order (it is listed by id, and ids are time-ordered).
async fn the_log_stays_in_version_order_across_skewed_clocks(backend: Backend) {
    use sea_orm::{ActiveModelTrait, Set};

    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("skew@example.com").await;
    let creator = app.create_creator(&owner, "Skewed Creator").await;
    let video = insert_video(&app, &creator, "skew", VideoStatus::Ready, Some(30.0)).await;
    let token = Some(owner.access_token.as_str());
    app.ok(
        token,
        SET,
        json!({ "v": video, "input": { "kbInclusion": true } }),
    )
    .await;
    let db = &app.state.db;
    let consent = entity::video_consent::Entity::find()
        .filter(entity::video_consent::Column::VideoId.eq(video))
        .one(db)
        .await
        .expect("read")
        .expect("consent");
    let ahead = chrono::Utc::now() + chrono::Duration::hours(1);
    consent_audit_entry::ActiveModel {
        id: Set(Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            ahead.timestamp() as u64,
            0,
        ))),
        video_consent_id: Set(consent.id),
        version: Set(2),
        field: Set(entity::ConsentField::TrainingUsage),
        old_value: Set(None),
        new_value: Set(true),
        changed_by: Set(consent.updated_by.expect("changed by the owner")),
        ip_address: Set(None),
        created_at: Set(ahead),
    }
    .insert(db)
    .await
    .expect("entry from the server ahead");
    let mut row: entity::video_consent::ActiveModel = consent.into();
    row.version = Set(2);
    row.training_usage = Set(true);
    row.updated_at = Set(ahead);
    row.update(db).await.expect("consent from the server ahead");

    let data = app
        .ok(
            token,
            SET,
            json!({ "v": video, "input": { "publicDisplay": false } }),
        )
        .await;
    let versions: Vec<i64> = data["setVideoConsent"]["auditLog"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|e| e["version"].as_i64().expect("version"))
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    // Their times go the same way: version 3 is not dated before version 2.
    let data = app
        .ok(
            token,
            "query($v: ID!) { video(id: $v) { consent { updatedAt auditLog { nodes { version createdAt } } } } }",
            json!({ "v": video }),
        )
        .await;
    let consent = &data["video"]["consent"];
    let times: Vec<chrono::DateTime<chrono::Utc>> = consent["auditLog"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|e| {
            e["createdAt"]
                .as_str()
                .expect("createdAt")
                .parse()
                .expect("time")
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{consent}");
    let updated: chrono::DateTime<chrono::Utc> = consent["updatedAt"]
        .as_str()
        .expect("updatedAt")
        .parse()
        .expect("time");
    assert_eq!(Some(&updated), times.last(), "{consent}");
}

/// A video's consent that nobody set is dated from the video, the same on every read (it was
/// the time of each request), and has the same `id` on every read, before and after the
/// first change (it was new on each read, so client caches kept a consent per read).
async fn consent_never_set_dates_from_the_video(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("unset-consent@example.com").await;
    let creator = app.create_creator(&owner, "Unset Consent").await;
    let video = insert_video(&app, &creator, "unset", VideoStatus::Ready, Some(30.0)).await;
    let other = insert_video(&app, &creator, "other", VideoStatus::Ready, Some(30.0)).await;
    let query =
        "query($v: ID!) { video(id: $v) { id createdAt consent { id version updatedAt } } }";
    let first = app
        .ok(Some(&owner.access_token), query, json!({ "v": video }))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let again = app
        .ok(Some(&owner.access_token), query, json!({ "v": video }))
        .await;
    assert_eq!(first["video"]["consent"]["version"], 0, "{first}");
    assert_eq!(
        first["video"]["consent"]["updatedAt"], first["video"]["createdAt"],
        "{first}"
    );
    // A UUIDv7 as every id (API.md), of the video's time.
    let id = |value: &serde_json::Value| {
        value
            .as_str()
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .expect("a UUID")
    };
    let consent_id = id(&first["video"]["consent"]["id"]);
    assert_eq!(consent_id.get_version_num(), 7, "{consent_id}");
    assert_eq!(
        consent_id.get_timestamp().map(|t| t.to_unix().0),
        id(&first["video"]["id"])
            .get_timestamp()
            .map(|t| t.to_unix().0),
    );
    assert_eq!(first, again);
    // A change that changes nothing leaves it so.
    app.ok(
        Some(&owner.access_token),
        SET,
        json!({ "v": video, "input": { "publicDisplay": true } }),
    )
    .await;
    let unchanged = app
        .ok(Some(&owner.access_token), query, json!({ "v": video }))
        .await;
    assert_eq!(first, unchanged);
    // Also where the video is read narrowed to the fields the operation names (no
    // `createdAt` in it): the date is still the video's, not a placeholder.
    let listed = app
        .ok(
            Some(&owner.access_token),
            "query($c: ID!) { creator(id: $c) { videos { nodes { consent { updatedAt } } } } }",
            json!({ "c": creator }),
        )
        .await;
    assert!(
        listed["creator"]["videos"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|v| v["consent"]["updatedAt"] == first["video"]["createdAt"]),
        "{listed}"
    );
    // A real change keeps the id; another video's consent has its own, and neither is a
    // video's.
    let changed = app
        .ok(
            Some(&owner.access_token),
            "mutation($v: ID!, $input: VideoConsentInput!) { setVideoConsent(videoId: $v, input: $input) { id version } }",
            json!({ "v": video, "input": { "kbInclusion": true } }),
        )
        .await;
    let id = &first["video"]["consent"]["id"];
    assert!(id.is_string(), "{first}");
    assert_eq!(&changed["setVideoConsent"]["id"], id, "{changed}");
    assert_eq!(changed["setVideoConsent"]["version"], 1);
    let theirs = app
        .ok(Some(&owner.access_token), query, json!({ "v": other }))
        .await;
    assert_ne!(&theirs["video"]["consent"]["id"], id);
    assert_ne!(id, &first["video"]["id"]);
    assert_ne!(theirs["video"]["consent"]["id"], theirs["video"]["id"]);
}

/// A page of videos with their consent reads the consent rows in one statement, whatever the
/// page's size (it was one per video), their audit logs too.
async fn a_page_of_videos_reads_their_consents_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |a| a.no_worker = true).await;
    let owner = app.register("consent-page@example.com").await;
    let creator = app.create_creator(&owner, "Consent Page").await;
    let token = Some(owner.access_token.as_str());
    // Eight videos, every other one with its consent set.
    for i in 0..8 {
        let video = insert_video(&app, &creator, "page", VideoStatus::Ready, Some(30.0)).await;
        if i % 2 == 0 {
            app.ok(
                token,
                SET,
                json!({ "v": video, "input": { "publicDisplay": false } }),
            )
            .await;
        }
    }
    let query = "query($c: ID!, $n: Int) { creator(id: $c) {
        videos(first: $n) { nodes { id consent { publicDisplay version
            auditLog(first: 1) { nodes { field } } } } } } }";
    let mut costs = Vec::new();
    for n in [2, 8] {
        let before = app.request_statements();
        let data = app.ok(token, query, json!({ "c": creator, "n": n })).await;
        costs.push(app.request_statements() - before);
        let nodes = data["creator"]["videos"]["nodes"]
            .as_array()
            .expect("nodes");
        assert_eq!(nodes.len(), n, "{data}");
        assert!(nodes.iter().any(|v| v["consent"]["version"] == 1), "{data}");
        assert!(nodes.iter().any(|v| v["consent"]["version"] == 0), "{data}");
        // Each its own log (one change of one field, or nothing), read with the others.
        for video in nodes {
            let log = &video["consent"]["auditLog"]["nodes"];
            if video["consent"]["version"] == 1 {
                assert_eq!(log, &json!([{ "field": "PUBLIC_DISPLAY" }]), "{data}");
            } else {
                assert_eq!(log, &json!([]), "{data}");
            }
        }
    }
    assert_eq!(
        costs[0], costs[1],
        "statements grew with the page: {costs:?}"
    );
}

both_backends!(
    a_page_of_videos_reads_their_consents_at_once,
    consent_never_set_dates_from_the_video,
    the_log_stays_in_version_order_across_skewed_clocks,
    each_changed_field_is_audited_with_who_and_where,
    fifty_concurrent_updates_leave_gap_free_unique_versions,
    the_database_refuses_to_update_or_delete_audit_rows,
);

/// A member removed from the team while their consent change is under way: the removal
/// (written, not committed) holds the membership the change reads again in its transaction.
/// The change waits for it and is refused: `FORBIDDEN` on a public video, `NOT_FOUND` on one
/// the former member may no longer see. No audit row is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_change_racing_the_members_removal_is_refused() {
    use sea_orm::TransactionTrait;

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let owner = app.register("consent-owner@example.com").await;
    let member = app.register("consent-member@example.com").await;
    let creator = app.create_creator(&owner, "Consent Race").await;
    for (status, expected) in [
        (VideoStatus::Ready, "FORBIDDEN"),
        (VideoStatus::Processing, "NOT_FOUND"),
    ] {
        app.ok(
            Some(&owner.access_token),
            "mutation($c: ID!) { addCreatorMember(creatorId: $c, email: \"consent-member@example.com\") { role } }",
            json!({ "c": creator }),
        )
        .await;
        let video = insert_video(&app, &creator, "raced", status, Some(30.0)).await;

        let removal = app.state.db.begin().await.expect("txn");
        entity::creator_member::Entity::delete_many()
            .filter(
                entity::creator_member::Column::UserId
                    .eq(member.user_id.parse::<Uuid>().expect("uuid")),
            )
            .exec(&removal)
            .await
            .expect("removed");
        let change = app.gql_in_background(
            &member.access_token,
            SET,
            json!({ "v": video, "input": { "trainingUsage": true } }),
        );
        crate::helpers::wait_for_lock_waits(&app, 1).await;
        removal.commit().await.expect("commit");
        let body = change.await.expect("joined");
        assert_eq!(error_code(&body), expected, "{status:?}: {body}");
        let audited = consent_audit_entry::Entity::find()
            .all(&app.state.db)
            .await
            .expect("rows");
        assert!(audited.is_empty(), "{audited:?}");
    }
}
