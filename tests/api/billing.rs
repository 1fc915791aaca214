//! Render-minute billing on both databases: the quota check under concurrency, credits past the
//! plan's limits, settling and releasing reservations, plans, and the billing API over HTTP.

use chrono::{DateTime, TimeZone, Utc};
use entity::{JobKind, PlanCode, credit_ledger_entry, render_usage, subscription};
use futures_util::future::join_all;
use reelgraph::{
    billing::{self, Reservation},
    error::{AppError, AppResult},
    jobs::{NewJob, queue},
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    both_backends,
    helpers::{Backend, Session, TestApp, error_code, error_field},
};

/// A grant with an idempotency key is made once: the same grant sent again (here eight at
/// once, and once more after) answers the balance the first left and writes no second ledger
/// row; the key with other credits or another reason is a CONFLICT; another key grants anew.
async fn a_grant_sent_again_with_its_key_is_made_once(backend: Backend) {
    let app = spawn(backend).await;
    let db = &app.state.db;
    let admin = app.admin("grant-admin@example.com").await;
    let token = Some(admin.access_token.as_str());
    let session = app.register("granted@example.com").await;
    let user = uid(&session);
    const KEYED: &str = "mutation($u: ID!, $c: Int!, $r: String!, $k: String) {
        grantCredits(userId: $u, credits: $c, reason: $r, idempotencyKey: $k) }";
    let vars = json!({ "u": session.user_id, "c": 40, "r": "invoice 17", "k": "inv-17" });
    let answers =
        futures_util::future::join_all((0..8).map(|_| app.gql(token, KEYED, vars.clone()))).await;
    for body in &answers {
        assert_eq!(body["data"]["grantCredits"], json!(40), "{body}");
    }
    let again = app.ok(token, KEYED, vars.clone()).await;
    assert_eq!(again["grantCredits"], json!(40));
    for (changed, what) in [
        (
            json!({ "u": session.user_id, "c": 41, "r": "invoice 17", "k": "inv-17" }),
            "credits",
        ),
        (
            json!({ "u": session.user_id, "c": 40, "r": "invoice 18", "k": "inv-17" }),
            "reason",
        ),
    ] {
        let body = app.gql(token, KEYED, changed).await;
        assert_eq!(error_code(&body), "CONFLICT", "{what}: {body}");
        assert_eq!(error_field(&body), "idempotencyKey", "{what}: {body}");
    }
    let body = app
        .gql(
            token,
            KEYED,
            json!({ "u": session.user_id, "c": 1, "r": "x", "k": "" }),
        )
        .await;
    assert_eq!(error_field(&body), "idempotencyKey", "{body}");
    let other = json!({ "u": session.user_id, "c": 2, "r": "invoice 18", "k": "inv-18" });
    assert_eq!(app.ok(token, KEYED, other).await["grantCredits"], json!(42));
    // The same key is another user's own.
    let second = app.register("granted-too@example.com").await;
    let theirs = json!({ "u": second.user_id, "c": 40, "r": "invoice 17", "k": "inv-17" });
    assert_eq!(
        app.ok(token, KEYED, theirs).await["grantCredits"],
        json!(40)
    );
    let rows = ledger(db, user).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_ledger_consistent(&rows, 42);
}

/// Balances are GraphQL `Int`s: a grant that would take one past 2147483647 is refused on
/// `credits`, and writes nothing.
async fn a_grant_cannot_take_a_balance_past_a_graphql_int(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.admin("cap-admin@example.com").await;
    let token = Some(admin.access_token.as_str());
    let session = app.register("rich@example.com").await;
    const GRANT: &str = "mutation($u: ID!, $c: Int!) {
        grantCredits(userId: $u, credits: $c, reason: \"top-up\") }";
    for expected in [1_000_000_000, 2_000_000_000] {
        let data = app
            .ok(
                token,
                GRANT,
                json!({ "u": session.user_id, "c": 1_000_000_000 }),
            )
            .await;
        assert_eq!(data["grantCredits"], json!(expected));
    }
    let body = app
        .gql(
            token,
            GRANT,
            json!({ "u": session.user_id, "c": 1_000_000_000 }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(error_field(&body), "credits", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2147483647")),
        "{body}"
    );
    // Up to the cap exactly is fine.
    let data = app
        .ok(
            token,
            GRANT,
            json!({ "u": session.user_id, "c": 147_483_647 }),
        )
        .await;
    assert_eq!(data["grantCredits"], json!(2_147_483_647));
    let body = app
        .gql(token, GRANT, json!({ "u": session.user_id, "c": 1 }))
        .await;
    assert_eq!(error_field(&body), "credits", "{body}");
    let rows = ledger(&app.state.db, uid(&session)).await;
    assert_eq!(rows.len(), 3, "refusals write no ledger row: {rows:?}");
    assert_ledger_consistent(&rows, 2_147_483_647);
    let body = app
        .gql(
            token,
            GRANT,
            json!({ "u": uuid::Uuid::now_v7().to_string(), "c": 1 }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body}");
}

/// A grant leaves room under the cap for what unfinished renders may still give back: with 1
/// credit held by a queued render, the balance may be granted up to 2147483646 only, and the
/// refund then lands exactly on the cap. Once the render is over, the room is free again.
async fn a_grant_leaves_room_for_the_refunds_of_unfinished_renders(backend: Backend) {
    let app = spawn(backend).await;
    let db = &app.state.db;
    let now = Utc::now();
    let user = uid(&app.register("refund-room@example.com").await);
    grant(db, user, 5).await;
    let (free, _) = reserve_one(db, user, 4.0, true, now).await;
    settle(db, &free.expect("4 minutes fit"), 4.0).await;
    let (paid, job) = reserve_one(db, user, 2.0, true, now).await;
    let paid = paid.expect("paid with a credit");
    assert_eq!((paid.credits, balance(db, user).await), (1, 4));

    for _ in 0..2 {
        grant(db, user, 1_000_000_000).await;
    }
    let refused = billing::grant_credits(db, user, 147_483_643, "top-up", None).await;
    let Err(AppError::BadInput { field, message }) = &refused else {
        panic!("a grant leaving no room for the refund: {refused:?}");
    };
    assert_eq!(field, "credits");
    assert!(
        message.contains("1 credits that unfinished renders"),
        "{message}"
    );
    assert_eq!(grant(db, user, 147_483_642).await, 2_147_483_646);
    release(db, &paid, job).await;
    assert_eq!(balance(db, user).await, 2_147_483_647);
    assert_ledger_consistent(&ledger(db, user).await, 2_147_483_647);

    // A finished render's charge is kept, so it holds no room.
    let (kept, job) = reserve_one(db, user, 2.0, true, now).await;
    assert_eq!(kept.expect("paid").credits, 1);
    let held = billing::grant_credits(db, user, 1, "top-up", None).await;
    assert!(matches!(held, Err(AppError::BadInput { .. })), "{held:?}");
    let job = job.expect("job");
    let mut row: entity::job::ActiveModel = entity::job::Entity::find_by_id(job)
        .one(db)
        .await
        .expect("job query")
        .expect("job")
        .into();
    row.status = sea_orm::Set(entity::JobStatus::Done);
    sea_orm::ActiveModelTrait::update(row, db)
        .await
        .expect("job done");
    assert_eq!(grant(db, user, 1).await, 2_147_483_647);
}

both_backends!(
    minutes_paid_with_credits_leave_the_months_free_minutes,
    a_grant_leaves_room_for_the_refunds_of_unfinished_renders,
    a_grant_cannot_take_a_balance_past_a_graphql_int,
    a_grant_sent_again_with_its_key_is_made_once,
    concurrent_reservations_admit_exactly_what_fits,
    credits_pay_past_the_plan_and_a_refusal_writes_nothing,
    settle_consumes_and_release_gives_back,
    plans_set_the_limits,
    render_usage_and_admin_mutations_over_http,
    the_credit_ledger_is_for_its_user_and_admins,
    a_job_shows_the_credits_it_took,
    renders_that_fill_the_day_exactly_cost_no_credit_however_many,
);

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |args| args.no_worker = true).await
}

fn uid(session: &Session) -> Uuid {
    session.user_id.parse().expect("user id is a UUID")
}

fn approx(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() < 1e-6
}

#[track_caller]
fn assert_minutes(actual: f64, expected: f64, what: &str) {
    assert!(approx(actual, expected), "{what}: {actual} != {expected}");
}

fn at(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 12, 0, 0)
        .single()
        .expect("valid date")
}

/// Message of an expected error (AppError has no Display on purpose).
fn message(result: &AppResult<Reservation>) -> String {
    match result {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(e) => e.public_message(),
    }
}

fn code(result: &AppResult<Reservation>) -> &'static str {
    result.as_ref().err().map_or("<ok>", AppError::code)
}

/// Inserts a job row in `txn`, so ledger rows can point at it.
async fn new_job(txn: &DatabaseTransaction, owner: Uuid) -> Uuid {
    let new = NewJob::new(JobKind::Render, "test.billing", owner, json!({}));
    queue::enqueue(txn, new)
        .await
        .map_err(|e| e.public_message())
        .expect("job enqueued")
        .job
        .id
}

/// One reservation in its own write transaction, committed on success and rolled back on error
/// — what `renderMovie` does. With `with_job`, a job row is inserted first and charged.
async fn reserve_one(
    db: &DatabaseConnection,
    user: Uuid,
    minutes: f64,
    with_job: bool,
    now: DateTime<Utc>,
) -> (AppResult<Reservation>, Option<Uuid>) {
    let txn = queue::begin_write(db).await.expect("write transaction");
    let job_id = if with_job {
        Some(new_job(&txn, user).await)
    } else {
        None
    };
    let result = billing::reserve(&txn, user, minutes, job_id, now).await;
    if result.is_ok() {
        txn.commit().await.expect("commit");
    } else {
        txn.rollback().await.expect("rollback");
    }
    (result, job_id)
}

/// `count` reservations of `minutes` each, all at once, each in its own transaction.
async fn race(
    db: &DatabaseConnection,
    user: Uuid,
    count: usize,
    minutes: f64,
    now: DateTime<Utc>,
) -> Vec<AppResult<Reservation>> {
    let tasks = (0..count).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { reserve_one(&db, user, minutes, false, now).await.0 })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("reservation task"))
        .collect()
}

async fn settle(db: &DatabaseConnection, reservation: &Reservation, actual: f64) {
    let txn = queue::begin_write(db).await.expect("write transaction");
    billing::settle(&txn, reservation, actual)
        .await
        .map_err(|e| e.public_message())
        .expect("settled");
    txn.commit().await.expect("commit");
}

async fn release(db: &DatabaseConnection, reservation: &Reservation, job_id: Option<Uuid>) {
    let txn = queue::begin_write(db).await.expect("write transaction");
    billing::release(&txn, reservation, job_id)
        .await
        .map_err(|e| e.public_message())
        .expect("released");
    txn.commit().await.expect("commit");
}

async fn grant(db: &DatabaseConnection, user: Uuid, credits: i64) -> i64 {
    billing::grant_credits(db, user, credits, "test grant", None)
        .await
        .map_err(|e| e.public_message())
        .expect("credits granted")
}

async fn usage(db: &DatabaseConnection, user: Uuid, period: &str) -> render_usage::Model {
    render_usage::Entity::find()
        .filter(render_usage::Column::UserId.eq(user))
        .filter(render_usage::Column::BillingPeriod.eq(period))
        .one(db)
        .await
        .expect("usage query")
        .expect("usage row exists")
}

fn daily(row: &render_usage::Model, day: &str) -> f64 {
    row.daily_minutes[day].as_f64().unwrap_or(0.0)
}

/// The user's ledger, oldest first.
async fn ledger(db: &DatabaseConnection, user: Uuid) -> Vec<credit_ledger_entry::Model> {
    credit_ledger_entry::Entity::find()
        .filter(credit_ledger_entry::Column::UserId.eq(user))
        .order_by_asc(credit_ledger_entry::Column::CreatedAt)
        .order_by_asc(credit_ledger_entry::Column::Id)
        .all(db)
        .await
        .expect("ledger query")
}

async fn balance(db: &DatabaseConnection, user: Uuid) -> i64 {
    entity::user::Entity::find_by_id(user)
        .one(db)
        .await
        .expect("user query")
        .expect("user exists")
        .credits
}

/// Every ledger row's `balance_after` follows from the previous one, and the last one is the
/// balance.
#[track_caller]
fn assert_ledger_consistent(rows: &[credit_ledger_entry::Model], balance: i64) {
    let mut running = 0;
    for row in rows {
        running += row.delta;
        assert_eq!(row.balance_after, running, "ledger chain broken: {rows:#?}");
    }
    assert_eq!(running, balance, "ledger does not add up to the balance");
}

/// 100 simultaneous 1.5-minute renders of a FREE user (5-minute daily cap): exactly 3 fit.
/// With 3 credits, exactly 2 more fit (the 4th overflows by 1 minute = 1 credit, the 5th by
/// 1.5 minutes = 2 credits), and the balance ends at exactly 0.
async fn concurrent_reservations_admit_exactly_what_fits(backend: Backend) {
    let app = spawn(backend).await;
    let db = &app.state.db;
    let now = Utc::now();
    let period = billing::billing_period(now);
    let day = billing::billing_day(now);

    let broke = uid(&app.register("broke@example.com").await);
    let outcomes = race(db, broke, 100, 1.5, now).await;
    let admitted: Vec<&Reservation> = outcomes.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(admitted.len(), 3, "admitted: {admitted:?}");
    let refused: Vec<&AppError> = outcomes.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(refused.len(), 97);
    assert!(
        refused.iter().all(|e| e.code() == "QUOTA_EXCEEDED"),
        "{refused:?}"
    );
    assert!(admitted.iter().all(|r| r.credits == 0 && r.day == day));
    let row = usage(db, broke, &period).await;
    assert_minutes(row.minutes_reserved, 4.5, "reserved");
    assert_minutes(row.minutes_consumed, 0.0, "consumed");
    assert_minutes(daily(&row, &day), 4.5, "daily");
    assert_eq!(row.minutes_limit, Some(30.0));
    assert!(ledger(db, broke).await.is_empty());
    assert_eq!(balance(db, broke).await, 0);

    let paying = uid(&app.register("paying@example.com").await);
    grant(db, paying, 3).await;
    let outcomes = race(db, paying, 100, 1.5, now).await;
    let mut charged: Vec<i64> = outcomes
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.credits)
        .collect();
    charged.sort_unstable();
    assert_eq!(charged, vec![0, 0, 0, 1, 2]);
    assert!(
        outcomes
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.code() == "QUOTA_EXCEEDED")
    );
    let row = usage(db, paying, &period).await;
    assert_minutes(row.minutes_reserved, 7.5, "reserved");
    assert_minutes(daily(&row, &day), 7.5, "daily");
    assert_eq!(balance(db, paying).await, 0);
    let rows = ledger(db, paying).await;
    assert_ledger_consistent(&rows, 0);
    let overage: Vec<i64> = rows
        .iter()
        .filter(|r| r.reason == billing::REASON_OVERAGE)
        .map(|r| r.delta)
        .collect();
    assert_eq!(overage, vec![-1, -2]);
}

/// Credits pay for started minutes past the cap; without enough of them the reservation is
/// refused and nothing at all is written — even if the caller commits anyway.
async fn credits_pay_past_the_plan_and_a_refusal_writes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let db = &app.state.db;
    let now = Utc::now();
    let period = billing::billing_period(now);
    let day = billing::billing_day(now);

    let rich = uid(&app.register("rich@example.com").await);
    assert_eq!(grant(db, rich, 10).await, 10);
    let (exact, _) = reserve_one(db, rich, 5.0, true, now).await;
    assert_eq!(exact.as_ref().map(|r| r.credits).ok(), Some(0), "exact fit");
    let (over, over_job) = reserve_one(db, rich, 1.5, true, now).await;
    assert_eq!(
        over.as_ref().map(|r| r.credits).ok(),
        Some(2),
        "1.5 min over"
    );
    let (sliver, sliver_job) = reserve_one(db, rich, 0.25, true, now).await;
    assert_eq!(sliver.as_ref().map(|r| r.credits).ok(), Some(1), "0.25 min");
    assert_eq!(balance(db, rich).await, 7);
    let rows = ledger(db, rich).await;
    assert_ledger_consistent(&rows, 7);
    let summary: Vec<(i64, &str, Option<Uuid>)> = rows
        .iter()
        .map(|r| (r.delta, r.reason.as_str(), r.job_id))
        .collect();
    assert_eq!(
        summary,
        vec![
            (10, "test grant", None),
            (-2, billing::REASON_OVERAGE, over_job),
            (-1, billing::REASON_OVERAGE, sliver_job),
        ]
    );
    let row = usage(db, rich, &period).await;
    assert_minutes(row.minutes_reserved, 6.75, "reserved");
    assert_minutes(daily(&row, &day), 6.75, "daily");

    let poor = uid(&app.register("poor@example.com").await);
    grant(db, poor, 1).await;
    let (first, _) = reserve_one(db, poor, 5.0, false, now).await;
    assert!(first.is_ok());
    let before = usage(db, poor, &period).await;

    // Refused, then committed by a careless caller: still nothing may have changed.
    let txn = queue::begin_write(db).await.expect("write transaction");
    let job = new_job(&txn, poor).await;
    let refused = billing::reserve(&txn, poor, 2.5, Some(job), now).await;
    txn.commit().await.expect("commit");
    assert_eq!(code(&refused), "QUOTA_EXCEEDED");
    let text = message(&refused);
    for part in [
        "daily",
        "0 of 5 minutes left today",
        "Free plan",
        "needs 2.5",
        "3 credits",
        "balance is 1",
    ] {
        assert!(text.contains(part), "{part:?} missing from {text:?}");
    }
    assert_eq!(balance(db, poor).await, 1);
    assert_eq!(ledger(db, poor).await.len(), 1, "only the grant");
    assert_eq!(usage(db, poor, &period).await, before);
}

/// Settling charges the actual minutes and frees the reservation; releasing frees it and
/// refunds its credits with a ledger row.
async fn settle_consumes_and_release_gives_back(backend: Backend) {
    let app = spawn(backend).await;
    let db = &app.state.db;
    let now = Utc::now();
    let period = billing::billing_period(now);
    let day = billing::billing_day(now);
    let user = uid(&app.register("settle@example.com").await);
    grant(db, user, 5).await;

    let (first, _) = reserve_one(db, user, 4.0, true, now).await;
    let first = first.expect("4 minutes fit");
    assert_eq!(first.credits, 0);
    settle(db, &first, 3.5).await;
    let row = usage(db, user, &period).await;
    assert_minutes(row.minutes_consumed, 3.5, "consumed");
    assert_minutes(row.minutes_reserved, 0.0, "reserved");
    assert_minutes(daily(&row, &day), 3.5, "daily");

    // 3.5 + 2.5 = 6 > 5: one credit.
    let (paid, job) = reserve_one(db, user, 2.5, true, now).await;
    let paid = paid.expect("paid with a credit");
    assert_eq!(paid.credits, 1);
    assert_eq!(balance(db, user).await, 4);
    let row = usage(db, user, &period).await;
    assert_minutes(row.minutes_reserved, 2.5, "reserved");
    assert_minutes(daily(&row, &day), 6.0, "daily");

    release(db, &paid, job).await;
    let row = usage(db, user, &period).await;
    assert_minutes(row.minutes_reserved, 0.0, "reserved after release");
    assert_minutes(row.minutes_consumed, 3.5, "consumed after release");
    assert_minutes(daily(&row, &day), 3.5, "daily after release");
    assert_eq!(balance(db, user).await, 5);
    let rows = ledger(db, user).await;
    assert_ledger_consistent(&rows, 5);
    let refund = rows.last().expect("refund row");
    assert_eq!(
        (refund.delta, refund.reason.as_str(), refund.job_id),
        (1, billing::REASON_REFUND, job)
    );

    // A free reservation released writes no ledger row.
    let (free, _) = reserve_one(db, user, 1.0, false, now).await;
    release(db, &free.expect("fits"), None).await;
    assert_eq!(ledger(db, user).await.len(), rows.len());

    // A render longer than its estimate is charged what it really took.
    let (longer, _) = reserve_one(db, user, 1.0, false, now).await;
    settle(db, &longer.expect("fits"), 1.2).await;
    let row = usage(db, user, &period).await;
    assert_minutes(row.minutes_consumed, 4.7, "consumed");
    assert_minutes(row.minutes_reserved, 0.0, "reserved");
    assert_minutes(daily(&row, &day), 4.7, "daily");
    assert_eq!(row.daily_minutes.as_object().map(|m| m.len()), Some(1));
}

/// Minutes a FREE user pays for with credits past the daily cap are not also taken from the
/// month's 30 free minutes: three days of 5 free and 5 paid minutes leave 15 free minutes,
/// not none (each of those was charged twice). A paid render released gives its paid minutes
/// back with its credits; one shorter than its estimate keeps no more paid minutes than it took.
async fn minutes_paid_with_credits_leave_the_months_free_minutes(backend: Backend) {
    let app = spawn(backend).await;
    let db = &app.state.db;
    let user = uid(&app.register("paid-minutes@example.com").await);
    grant(db, user, 100).await;
    let period = "2030-03";
    let charge = async |day: u32, minutes: f64| {
        let (reserved, _) = reserve_one(db, user, minutes, false, at(2030, 3, day)).await;
        let reserved = reserved.map_err(|e| e.public_message()).expect("reserved");
        settle(db, &reserved, minutes).await;
        reserved.credits
    };
    for day in 1..=3 {
        assert_eq!(
            charge(day, 5.0).await,
            0,
            "day {day}: the day's free minutes"
        );
        assert_eq!(charge(day, 5.0).await, 5, "day {day}: past the daily cap");
    }
    let row = usage(db, user, period).await;
    assert_minutes(row.minutes_consumed, 30.0, "consumed");
    assert_minutes(row.minutes_paid, 15.0, "paid");
    // 15 of the month's 30 free minutes are left: three more free days.
    for day in 4..=6 {
        assert_eq!(charge(day, 5.0).await, 0, "day {day}: still free minutes");
    }
    assert_eq!(balance(db, user).await, 85);
    // Now the month's are used up: every minute is paid for, once.
    assert_eq!(charge(7, 2.0).await, 2, "the month is used up");

    // Released, a paid render gives back its credits and its paid minutes.
    let (paid, _) = reserve_one(db, user, 3.0, false, at(2030, 3, 8)).await;
    let paid = paid.map_err(|e| e.public_message()).expect("paid");
    assert_eq!(paid.credits, 3);
    assert_minutes(
        usage(db, user, period).await.minutes_paid,
        20.0,
        "paid while reserved",
    );
    release(db, &paid, None).await;
    assert_minutes(
        usage(db, user, period).await.minutes_paid,
        17.0,
        "paid after release",
    );
    // Shorter than its estimate: the credits stay spent, but only the minutes it took count
    // as paid.
    let (shorter, _) = reserve_one(db, user, 3.0, false, at(2030, 3, 9)).await;
    let shorter = shorter.map_err(|e| e.public_message()).expect("paid");
    settle(db, &shorter, 1.5).await;
    let row = usage(db, user, period).await;
    assert_minutes(row.minutes_paid, 18.5, "paid after a shorter render");
    assert_minutes(row.minutes_consumed, 48.5, "consumed");

    // `renderUsage` shows them: 0.5 of 3 minutes past the daily cap (2.5 + 3 > 5).
    let session = app.register("paid-minutes-shown@example.com").await;
    let shown = uid(&session);
    grant(db, shown, 1).await;
    let now = Utc::now();
    for (minutes, credits) in [(2.5, 0), (3.0, 1)] {
        let (reserved, _) = reserve_one(db, shown, minutes, false, now).await;
        assert_eq!(reserved.map(|r| r.credits).ok(), Some(credits));
    }
    let usage = &app
        .ok(Some(session.access_token.as_str()), USAGE, json!({}))
        .await["renderUsage"];
    assert_eq!(usage["minutesPaid"], json!(0.5), "{usage}");
    assert_eq!(usage["minutesReserved"], json!(5.5), "{usage}");
}

/// ENTERPRISE is unlimited; PRO has no daily cap but a monthly one; FREE enforces the monthly
/// limit separately from the daily cap.
async fn plans_set_the_limits(backend: Backend) {
    let app = spawn(backend).await;
    let db = &app.state.db;
    let now = Utc::now();
    let period = billing::billing_period(now);

    let big = uid(&app.register("enterprise@example.com").await);
    let plan = billing::set_user_plan(db, big, PlanCode::Enterprise, now)
        .await
        .map_err(|e| e.public_message())
        .expect("plan set");
    assert_eq!(plan.code, PlanCode::Enterprise);
    for minutes in [10_000.0, 50_000.0] {
        let (result, _) = reserve_one(db, big, minutes, false, now).await;
        assert_eq!(result.map(|r| r.credits).ok(), Some(0));
    }
    let row = usage(db, big, &period).await;
    assert_eq!(row.minutes_limit, None);
    assert_minutes(row.minutes_reserved, 60_000.0, "reserved");
    // Changing the plan again updates the one subscription (and the limit snapshot).
    billing::set_user_plan(db, big, PlanCode::Free, now)
        .await
        .map_err(|e| e.public_message())
        .expect("plan set");
    let subscriptions = subscription::Entity::find()
        .filter(subscription::Column::UserId.eq(big))
        .count(db)
        .await
        .expect("count");
    assert_eq!(subscriptions, 1);
    let current = billing::current_plan(db, big)
        .await
        .map_err(|e| e.public_message())
        .expect("plan");
    assert_eq!(current.code, PlanCode::Free);
    assert_eq!(usage(db, big, &period).await.minutes_limit, Some(30.0));

    let pro = uid(&app.register("pro@example.com").await);
    billing::set_user_plan(db, pro, PlanCode::Pro, now)
        .await
        .map_err(|e| e.public_message())
        .expect("plan set");
    for minutes in [500.0, 90.0] {
        let (result, _) = reserve_one(db, pro, minutes, false, now).await;
        assert_eq!(
            result.map(|r| r.credits).ok(),
            Some(0),
            "no daily cap on PRO"
        );
    }
    let (over, _) = reserve_one(db, pro, 20.0, false, now).await;
    assert_eq!(code(&over), "QUOTA_EXCEEDED");
    let text = message(&over);
    for part in [
        "monthly",
        "10 of 600 minutes left this month",
        "Pro plan",
        "10 credits",
    ] {
        assert!(text.contains(part), "{part:?} missing from {text:?}");
    }
    assert_eq!(usage(db, pro, &period).await.minutes_limit, Some(600.0));

    // FREE: six days at the 5-minute daily cap use up the 30-minute month.
    let free = uid(&app.register("free@example.com").await);
    for day in 1..=6 {
        let (result, _) = reserve_one(db, free, 5.0, false, at(2026, 3, day)).await;
        assert!(result.is_ok(), "day {day}");
    }
    let (daily_cap, _) = reserve_one(db, free, 0.5, false, at(2026, 3, 6)).await;
    assert_eq!(code(&daily_cap), "QUOTA_EXCEEDED");
    assert!(message(&daily_cap).starts_with("daily"), "{daily_cap:?}");
    let (monthly_cap, _) = reserve_one(db, free, 1.0, false, at(2026, 3, 7)).await;
    assert_eq!(code(&monthly_cap), "QUOTA_EXCEEDED");
    let text = message(&monthly_cap);
    assert!(
        text.starts_with("monthly") && text.contains("0 of 30 minutes left this month"),
        "{text:?}"
    );
    let row = usage(db, free, "2026-03").await;
    assert_minutes(row.minutes_reserved, 30.0, "reserved");
    assert_eq!(row.daily_minutes.as_object().map(|m| m.len()), Some(6));
    // The next month starts from zero.
    let (april, _) = reserve_one(db, free, 5.0, false, at(2026, 4, 1)).await;
    assert!(april.is_ok());
}

const USAGE: &str =
    "{ renderUsage { billingPeriod minutesConsumed minutesReserved minutesPaid minutesLimit
    dailyMinutes dailyLimit credits
    plan { code name monthlyMinutesLimit dailyMinutesLimit priceCents } } }";
const GRANT: &str = "mutation($u: ID!, $c: Int!, $r: String!) {
    grantCredits(userId: $u, credits: $c, reason: $r) }";
const SET_PLAN: &str = "mutation($u: ID!, $p: PlanCode!) {
    setUserPlan(userId: $u, plan: $p) { code name monthlyMinutesLimit dailyMinutesLimit priceCents } }";

/// `renderUsage` shows the caller's period, usage, limits, daily breakdown, plan and credits;
/// `grantCredits` and `setUserPlan` are for administrators and validate their input.
/// Renders whose lengths add up to the day's limit exactly fit it, however many there were:
/// a second of output is 1/60 minute, no whole number of millionths, and the counters once
/// rounded at every change drifted past the tolerance after four renders, so that the one
/// filling the day was refused (no credits) or charged one. The API shows the counters to a
/// millionth of a minute.
async fn renders_that_fill_the_day_exactly_cost_no_credit_however_many(backend: Backend) {
    let app = spawn(backend).await;
    let db = &app.state.db;
    let session = app.register("seconds@example.com").await;
    let user = uid(&session);
    let now = Utc::now();
    let second = 1.0 / 60.0;
    for n in 0..6 {
        let (one, _) = reserve_one(db, user, second, false, now).await;
        let one = one.expect("a second fits");
        assert_eq!(one.credits, 0);
        // Half finish (consumed), half are still running (reserved).
        if n % 2 == 0 {
            settle(db, &one, second).await;
        }
    }
    let (rest, _) = reserve_one(db, user, 5.0 - 6.0 * second, false, now).await;
    let rest = rest.map_err(|e| e.public_message());
    assert_eq!(
        rest.as_ref().map(|r| r.credits),
        Ok(0),
        "the rest of the day (Free plan: 5 minutes) fits exactly"
    );
    let (more, _) = reserve_one(db, user, second, false, now).await;
    assert_eq!(code(&more), "QUOTA_EXCEEDED", "the day is full");

    let usage = &app
        .ok(Some(session.access_token.as_str()), USAGE, json!({}))
        .await["renderUsage"];
    assert_eq!(usage["minutesConsumed"], json!(0.05), "{usage}");
    assert_eq!(usage["minutesReserved"], json!(4.95), "{usage}");
    assert_eq!(
        usage["dailyMinutes"],
        json!({ billing::billing_day(now): 5.0 }),
        "{usage}"
    );
}

async fn render_usage_and_admin_mutations_over_http(backend: Backend) {
    let app = spawn(backend).await;
    let db = &app.state.db;

    let body = app.gql(None, USAGE, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");

    let session = app.register("usage@example.com").await;
    let token = Some(session.access_token.as_str());
    let user = uid(&session);
    let now = Utc::now();
    let data = app.ok(token, USAGE, json!({})).await;
    assert_eq!(
        data["renderUsage"],
        json!({
            "billingPeriod": billing::billing_period(now),
            "minutesConsumed": 0.0, "minutesReserved": 0.0, "minutesPaid": 0.0, "minutesLimit": 30.0,
            "dailyMinutes": {}, "dailyLimit": 5.0, "credits": 0,
            "plan": { "code": "FREE", "name": "Free", "monthlyMinutesLimit": 30.0,
                      "dailyMinutesLimit": 5.0, "priceCents": 0 },
        })
    );

    let (done, _) = reserve_one(db, user, 2.0, false, now).await;
    settle(db, &done.expect("fits"), 1.5).await;
    let (in_flight, _) = reserve_one(db, user, 1.0, false, now).await;
    assert!(in_flight.is_ok());
    let usage = &app.ok(token, USAGE, json!({})).await["renderUsage"];
    assert_eq!(usage["minutesConsumed"], json!(1.5));
    assert_eq!(usage["minutesReserved"], json!(1.0));
    assert_eq!(
        usage["dailyMinutes"],
        json!({ billing::billing_day(now): 2.5 })
    );

    // Not for users (or the anonymous).
    let grant_vars = json!({ "u": session.user_id, "c": 10, "r": "promo" });
    let body = app.gql(token, GRANT, grant_vars.clone()).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let body = app.gql(None, GRANT, grant_vars.clone()).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    let plan_vars = json!({ "u": session.user_id, "p": "PRO" });
    let body = app.gql(token, SET_PLAN, plan_vars.clone()).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    assert_eq!(balance(db, user).await, 0);
    assert_eq!(
        billing::current_plan(db, user)
            .await
            .map(|p| p.code)
            .map_err(|e| e.public_message())
            .expect("plan"),
        PlanCode::Free
    );

    let admin = app.admin("billing-admin@example.com").await;
    let admin_token = Some(admin.access_token.as_str());
    for (vars, field) in [
        (
            json!({ "u": session.user_id, "c": 0, "r": "promo" }),
            "credits",
        ),
        (
            json!({ "u": session.user_id, "c": -5, "r": "promo" }),
            "credits",
        ),
        (
            json!({ "u": session.user_id, "c": 5, "r": "   " }),
            "reason",
        ),
        (json!({ "u": "not-an-id", "c": 5, "r": "promo" }), "userId"),
    ] {
        let body = app.gql(admin_token, GRANT, vars.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{vars}: {body}");
        assert_eq!(error_field(&body), field, "{vars}: {body}");
    }
    let stranger = json!({ "u": Uuid::now_v7(), "c": 5, "r": "promo" });
    let body = app.gql(admin_token, GRANT, stranger).await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert!(ledger(db, user).await.is_empty());

    let data = app.ok(admin_token, GRANT, grant_vars).await;
    assert_eq!(data["grantCredits"], json!(10));
    let data = app
        .ok(
            admin_token,
            GRANT,
            json!({ "u": session.user_id, "c": 15, "r": "support" }),
        )
        .await;
    assert_eq!(data["grantCredits"], json!(25));
    let rows = ledger(db, user).await;
    assert_ledger_consistent(&rows, 25);
    assert_eq!(
        rows.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>(),
        vec!["promo", "support"]
    );

    let data = app.ok(admin_token, SET_PLAN, plan_vars).await;
    assert_eq!(
        data["setUserPlan"],
        json!({ "code": "PRO", "name": "Pro", "monthlyMinutesLimit": 600.0,
                "dailyMinutesLimit": null, "priceCents": 2900 })
    );
    let body = app
        .gql(
            admin_token,
            SET_PLAN,
            json!({ "u": Uuid::now_v7(), "p": "PRO" }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .gql(admin_token, SET_PLAN, json!({ "u": "nope", "p": "PRO" }))
        .await;
    assert_eq!(
        (error_code(&body), error_field(&body)),
        ("BAD_USER_INPUT", "userId")
    );

    let usage = &app.ok(token, USAGE, json!({})).await["renderUsage"];
    assert_eq!(usage["plan"]["code"], "PRO");
    assert_eq!(usage["minutesLimit"], json!(600.0));
    assert_eq!(usage["dailyLimit"], Value::Null);
    assert_eq!(usage["credits"], json!(25));
    assert_eq!(
        render_usage::Entity::find()
            .filter(render_usage::Column::UserId.eq(user))
            .one(db)
            .await
            .expect("usage query")
            .and_then(|row| row.minutes_limit),
        Some(600.0)
    );
}

/// Two `setUserPlan` calls for a user without a subscription, held up together: one inserts
/// the live subscription, the other updates it (they used to both insert one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_plan_changes_leave_one_live_subscription() {
    use sea_orm::{QuerySelect, TransactionTrait};

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let user = uid(&app.register("plans-race@example.com").await);
    let hold = app.state.db.begin().await.expect("txn");
    entity::user::Entity::find_by_id(user)
        .lock_exclusive()
        .one(&hold)
        .await
        .expect("locked")
        .expect("user");
    let calls: Vec<_> = [PlanCode::Pro, PlanCode::Enterprise]
        .into_iter()
        .map(|code| {
            let db = app.state.db.clone();
            tokio::spawn(async move {
                billing::set_user_plan(&db, user, code, Utc::now())
                    .await
                    .map_err(|e| e.public_message())
            })
        })
        .collect();
    crate::helpers::wait_for_lock_waits(&app, 2).await;
    hold.commit().await.expect("commit");
    for call in calls {
        call.await.expect("joined").expect("plan set");
    }
    let live = subscription::Entity::find()
        .filter(subscription::Column::UserId.eq(user))
        .count(&app.state.db)
        .await
        .expect("count");
    assert_eq!(live, 1);
}

/// `User.creditLedger` lists every change of the balance, newest first, with the balance after
/// it; the user and administrators see it, a teammate who reaches the user gets null.
async fn the_credit_ledger_is_for_its_user_and_admins(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.admin("ledger-admin@example.com").await;
    let owner = app.register("ledger@example.com").await;
    for (credits, reason) in [(100, "welcome"), (25, "referral")] {
        app.ok(
            Some(&admin.access_token),
            GRANT,
            json!({ "u": owner.user_id, "c": credits, "r": reason }),
        )
        .await;
    }
    let mine =
        "{ me { creditLedger(first: 10) { totalCount nodes { delta reason balanceAfter } } } }";
    let data = app.ok(Some(&owner.access_token), mine, json!({})).await;
    assert_eq!(
        data["me"]["creditLedger"],
        json!({ "totalCount": 2, "nodes": [
            { "delta": 25, "reason": "referral", "balanceAfter": 125 },
            { "delta": 100, "reason": "welcome", "balanceAfter": 100 },
        ] })
    );
    // A teammate reaches the owner through the creator's team, without the ledger.
    let creator = app.create_creator(&owner, "Ledger Studio").await;
    let teammate = app.register("teammate@example.com").await;
    app.ok(
        Some(&owner.access_token),
        "mutation($c: ID!) { addCreatorMember(creatorId: $c, email: \"teammate@example.com\") { role } }",
        json!({ "c": creator }),
    )
    .await;
    let team = "query($c: ID!) { creator(id: $c) { members { user { email creditLedger { totalCount } } } } }";
    let ledger_of_owner = |data: &Value| {
        data["creator"]["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["user"]["email"] == "ledger@example.com")
            .expect("the owner")["user"]["creditLedger"]
            .clone()
    };
    let data = app
        .ok(Some(&teammate.access_token), team, json!({ "c": creator }))
        .await;
    assert!(ledger_of_owner(&data).is_null(), "{data}");
    let data = app
        .ok(Some(&admin.access_token), team, json!({ "c": creator }))
        .await;
    assert_eq!(ledger_of_owner(&data)["totalCount"], 2, "{data}");
}

/// `Job.costCredits` is what the job took from the prepaid balance, net of refunds, for its
/// owner and administrators; jobs in a list are summed in one statement.
async fn a_job_shows_the_credits_it_took(backend: Backend) {
    let app = spawn(backend).await;
    let db = &app.state.db;
    let now = Utc::now();
    let session = app.register("costs@example.com").await;
    let user = uid(&session);
    grant(db, user, 10).await;
    // The free plan's 5 minutes a day, then 1 paid minute, then 2 paid and given back.
    let (free, _) = reserve_one(db, user, 5.0, false, now).await;
    assert_eq!(free.expect("fits").credits, 0);
    let (paid, paid_job) = reserve_one(db, user, 1.0, true, now).await;
    assert_eq!(paid.expect("paid").credits, 1);
    let (refunded, refunded_job) = reserve_one(db, user, 2.0, true, now).await;
    let refunded = refunded.expect("paid");
    assert_eq!(refunded.credits, 2);
    release(db, &refunded, refunded_job).await;
    let txn = queue::begin_write(db).await.expect("txn");
    let unpaid_job = new_job(&txn, user).await;
    txn.commit().await.expect("commit");

    let query = "query($id: ID!) { job(id: $id) { costCredits } }";
    let cost = |token: String, id: Uuid| {
        let app = &app;
        async move {
            app.ok(Some(&token), query, json!({ "id": id })).await["job"]["costCredits"].clone()
        }
    };
    let token = session.access_token.clone();
    assert_eq!(cost(token.clone(), paid_job.expect("job")).await, 1);
    assert_eq!(cost(token.clone(), refunded_job.expect("job")).await, 0);
    assert_eq!(cost(token.clone(), unpaid_job).await, 0);
    let admin = app.admin("costs-admin@example.com").await;
    assert_eq!(cost(admin.access_token, paid_job.expect("job")).await, 1);

    let before = app.request_statements();
    let data = app
        .ok(
            Some(&token),
            "{ jobs(first: 10) { nodes { id costCredits } } }",
            json!({}),
        )
        .await;
    let statements = app.request_statements() - before;
    let mut costs: Vec<i64> = data["jobs"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|j| j["costCredits"].as_i64().expect("cost"))
        .collect();
    costs.sort_unstable();
    assert_eq!(costs, [0, 0, 1]);
    // Three here; one statement per job would be five.
    assert!(statements <= 3, "{statements} statements");

    // A job for a creator is seen by its team, but what it cost is its owner's business.
    let creator: Uuid = app
        .create_creator(&session, "Costs Studio")
        .await
        .parse()
        .expect("uuid");
    let member = app.register("costs-member@example.com").await;
    app.ok(
        Some(&token),
        "mutation($c: ID!) { addCreatorMember(creatorId: $c, email: \"costs-member@example.com\") { role } }",
        json!({ "c": creator }),
    )
    .await;
    let txn = queue::begin_write(db).await.expect("txn");
    let mut new = NewJob::new(JobKind::Render, "test.billing", user, json!({}));
    new.creator_id = Some(creator);
    let team_job = queue::enqueue(&txn, new)
        .await
        .map_err(|e| e.public_message())
        .expect("enqueued")
        .job
        .id;
    let paid = billing::reserve(&txn, user, 1.0, Some(team_job), now)
        .await
        .map_err(|e| e.public_message())
        .expect("paid");
    assert_eq!(paid.credits, 1);
    txn.commit().await.expect("commit");
    assert_eq!(cost(token.clone(), team_job).await, 1);
    let seen = app
        .ok(
            Some(&member.access_token),
            "query($id: ID!) { job(id: $id) { id costCredits } }",
            json!({ "id": team_job }),
        )
        .await;
    assert_eq!(
        seen["job"]["id"],
        team_job.to_string(),
        "the team sees the job"
    );
    assert!(seen["job"]["costCredits"].is_null(), "{seen}");
}

/// `setUserPlan` while a render of the user's holds this month's usage row and then changes
/// the user's row (as a release giving back credits does): the plan change waits for the
/// render instead of taking the user's row first, which deadlocked (one of them INTERNAL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_waits_for_a_render_settling_instead_of_deadlocking() {
    use sea_orm::sea_query::{Expr, ExprTrait};

    let app = TestApp::spawn_with(Backend::Postgres, |a| a.no_worker = true).await;
    let user = uid(&app.register("plan-vs-render@example.com").await);
    let db = &app.state.db;
    // This month's usage row exists already, as it does after a user's first render.
    let earlier = queue::begin_write(db).await.expect("txn");
    billing::reserve(&earlier, user, 1.0, None, Utc::now())
        .await
        .map_err(|e| e.public_message())
        .expect("reserved");
    earlier.commit().await.expect("commit");
    let render = queue::begin_write(db).await.expect("txn");
    billing::reserve(&render, user, 1.0, None, Utc::now())
        .await
        .map_err(|e| e.public_message())
        .expect("reserved");
    let plan_change = {
        let db = db.clone();
        tokio::spawn(async move {
            billing::set_user_plan(&db, user, PlanCode::Pro, Utc::now())
                .await
                .map_err(|e| e.public_message())
        })
    };
    crate::helpers::wait_for_lock_waits(&app, 1).await;
    entity::user::Entity::update_many()
        .col_expr(
            entity::user::Column::Credits,
            Expr::col(entity::user::Column::Credits).add(1),
        )
        .filter(entity::user::Column::Id.eq(user))
        .exec(&render)
        .await
        .expect("the render's change of the user's row is not deadlocked");
    render.commit().await.expect("commit");
    plan_change
        .await
        .expect("joined")
        .expect("the plan change went through after the render");
    assert_eq!(
        billing::current_plan(db, user)
            .await
            .map_err(|e| e.public_message())
            .expect("plan")
            .code,
        PlanCode::Pro
    );
}
