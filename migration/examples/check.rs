//! Round trip of the migrations plus an entity/schema consistency check
//! against a real database.
//!
//! ```sh
//! DATABASE_URL='sqlite:///tmp/mcheck.db?mode=rwc' cargo run -p migration --example check
//! DATABASE_URL='postgres://postgres@127.0.0.1:5432/mcheck' cargo run -p migration --example check
//! ```
//!
//! Steps: `Migrator::up` (all), `Migrator::down` (all, verifying every table is
//! gone), `Migrator::up` again; then rows are inserted into every table through
//! the entity `ActiveModel`s and read back (defaults, JSON, f64/i64, enums,
//! nullable columns), CHECK / UNIQUE / ON DELETE behaviour is exercised, and
//! finally the plan seed is rolled back and re-applied. The database is left
//! migrated (with a few rows). The URL may also be passed as the first
//! command-line argument. `tests/sqlite_roundtrip.rs` runs the same checks
//! against a temporary SQLite file during `cargo test`.

use std::error::Error;

use chrono::{Duration, Utc};
use entity::{
    CaptionFormat, CaptionKind, CaptionSource, ConsentField, JobKind, JobStatus, MemberRole,
    PlanCode, ShortPreset, ShortStatus, UserRole, VideoStatus, caption_track, consent_audit_entry,
    creator, creator_follow, creator_member, credit_ledger_entry, highlight, invite_code, job,
    key_moment, plan, refresh_token, render_plan, render_usage, scene_cache_entry, session, short,
    subscription, transcript_segment, user, video, video_consent, video_variant,
};
use migration::{Migrator, MigratorTrait, SchemaManager};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, Database, DatabaseConnection,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
};
use serde_json::json;
use uuid::Uuid;

pub type BoxError = Box<dyn Error + Send + Sync>;

/// Every table the migrations create.
pub const TABLES: [&str; 24] = [
    "job_transitions",
    "users",
    "sessions",
    "refresh_tokens",
    "invite_codes",
    "creators",
    "creator_members",
    "creator_follows",
    "videos",
    "video_variants",
    "transcript_segments",
    "caption_tracks",
    "key_moments",
    "highlights",
    "shorts",
    "video_consents",
    "consent_audit_log",
    "jobs",
    "render_plans",
    "scene_cache",
    "plans",
    "subscriptions",
    "render_usage",
    "credit_ledger",
];

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .ok_or("set DATABASE_URL or pass the database URL as the first argument")?;
    let db = Database::connect(&url).await?;
    println!("connected ({:?})", db.get_database_backend());
    run(&db).await?;
    println!("all checks passed");
    Ok(())
}

fn ensure(cond: bool, what: &str) -> Result<(), BoxError> {
    if cond {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

/// Expects `result` to be a database error (a constraint violation) and prints it.
fn ensure_rejected<T, E: std::fmt::Display>(
    result: Result<T, E>,
    what: &str,
) -> Result<(), BoxError> {
    match result {
        Ok(_) => Err(format!("check failed: {what} was accepted").into()),
        Err(e) => {
            println!("  rejected as expected ({what}): {e}");
            Ok(())
        }
    }
}

/// Inserts `model` with every column set explicitly and checks that the table
/// then contains exactly that row (the table must be empty beforehand).
async fn roundtrip<E>(db: &DatabaseConnection, model: E::Model) -> Result<(), BoxError>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel> + Clone + PartialEq + std::fmt::Debug,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
{
    let am = model.clone().into_active_model().reset_all();
    E::insert(am).exec_without_returning(db).await?;
    let rows = E::find().all(db).await?;
    if rows != vec![model.clone()] {
        return Err(format!(
            "check failed: {} round trip\n expected {model:?}\n      got {rows:?}",
            E::default().table_name()
        )
        .into());
    }
    Ok(())
}

async fn table_count(db: &DatabaseConnection) -> Result<usize, BoxError> {
    let manager = SchemaManager::new(db);
    let mut n = 0;
    for table in TABLES {
        if manager.has_table(table).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// up → down → up, then the entity checks.
pub async fn run(db: &DatabaseConnection) -> Result<(), BoxError> {
    Migrator::up(db, None).await?;
    ensure(
        table_count(db).await? == TABLES.len(),
        "all tables exist after up",
    )?;
    println!("up: {} tables", TABLES.len());

    Migrator::down(db, None).await?;
    ensure(table_count(db).await? == 0, "no tables left after down")?;
    println!("down: all tables dropped");

    Migrator::up(db, None).await?;
    ensure(
        table_count(db).await? == TABLES.len(),
        "all tables exist after second up",
    )?;
    println!("up again: {} tables", TABLES.len());

    check_entities(db).await?;
    println!("entity round trip ok");

    // Rolling back only the plan seed keeps plans that subscriptions still
    // reference; re-applying it restores the rest.
    let after_seed = Migrator::migrations()
        .iter()
        .rev()
        .take_while(|m| m.name() != "m20261122_000006_seed_plans")
        .count();
    Migrator::down(db, Some(after_seed as u32 + 1)).await?;
    let kept = plan::Entity::find().all(db).await?;
    ensure(
        kept.len() == 1 && kept[0].code == PlanCode::Pro,
        "seed down keeps the referenced PRO plan only",
    )?;
    Migrator::up(db, None).await?;
    ensure(
        plan::Entity::find().all(db).await?.len() == 4,
        "seed re-applied",
    )?;
    println!("partial down/up of the plan seed ok");
    Ok(())
}

/// Inserts rows through the entities (leaving defaulted columns unset) and
/// reads them back, proving that entity definitions match the schema.
pub async fn check_entities(db: &DatabaseConnection) -> Result<(), BoxError> {
    // ---- plans (seeded) ----
    let plans = plan::Entity::find()
        .order_by_asc(plan::Column::PriceCents)
        .all(db)
        .await?;
    ensure(plans.len() == 4, "4 seeded plans")?;
    let free = plan::Entity::find_by_id(PlanCode::Free)
        .one(db)
        .await?
        .ok_or("FREE plan missing")?;
    ensure(free.name == "Free", "FREE name")?;
    ensure(free.monthly_minutes_limit == Some(30.0), "FREE monthly")?;
    ensure(free.daily_minutes_limit == Some(5.0), "FREE daily")?;
    let enterprise = plan::Entity::find_by_id(PlanCode::Enterprise)
        .one(db)
        .await?
        .ok_or("ENTERPRISE plan missing")?;
    ensure(
        enterprise.monthly_minutes_limit.is_none(),
        "ENTERPRISE unlimited",
    )?;

    // ---- users ----
    let before = Utc::now() - Duration::seconds(5);
    let user_id = Uuid::now_v7();
    let inserted = user::ActiveModel {
        id: Set(user_id),
        email: Set("alice@example.com".to_owned()),
        password_hash: Set("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        display_name: Set(Some("Alice".to_owned())),
        // role, is_active, is_verified, credits, created_at, updated_at: DB defaults
        ..Default::default()
    }
    .insert(db)
    .await?;
    let read = user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .ok_or("user not found")?;
    ensure(read == inserted, "inserted user equals read-back user")?;
    ensure(read.email == "alice@example.com", "email")?;
    ensure(
        read.display_name.as_deref() == Some("Alice"),
        "display_name",
    )?;
    ensure(read.avatar_url.is_none(), "avatar_url null")?;
    ensure(read.role == UserRole::Viewer, "role default VIEWER")?;
    ensure(read.is_active && !read.is_verified, "bool defaults")?;
    ensure(read.credits == 0, "credits default 0")?;
    ensure(
        !read.onboarding_completed
            && !read.digest_enabled
            && read.digest_frequency == entity::DigestFrequency::Daily,
        "preference defaults",
    )?;
    ensure(read.created_at >= before, "created_at default is now")?;
    let by_email = user::Entity::find_by_email("alice@example.com")
        .one(db)
        .await?;
    ensure(by_email.is_some(), "find_by_email")?;
    // Server-default timestamps must compare correctly against bound values.
    let recent = user::Entity::find()
        .filter(user::Column::CreatedAt.gt(before))
        .filter(user::Column::CreatedAt.lte(Utc::now() + Duration::seconds(5)))
        .all(db)
        .await?;
    ensure(
        recent.len() == 1,
        "timestamp range filter over defaulted created_at",
    )?;
    // CHECK credits >= 0
    let negative = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set("neg@example.com".to_owned()),
        password_hash: Set("x".to_owned()),
        credits: Set(-1),
        ..Default::default()
    }
    .insert(db)
    .await;
    ensure_rejected(negative, "CHECK credits >= 0 rejects -1")?;
    // CHECK on enum columns rejects unknown values.
    let bad_role = db
        .execute_unprepared(
            "INSERT INTO users (id, email, password_hash, role) \
             VALUES ('00000000-0000-0000-0000-000000000001', 'r@example.com', 'x', 'ROOT')",
        )
        .await;
    ensure_rejected(bad_role, "CHECK role IN (...) rejects ROOT")?;

    // ---- creators / videos ----
    let creator_id = Uuid::now_v7();
    let creator = creator::ActiveModel {
        id: Set(creator_id),
        name: Set("Alice Makes".to_owned()),
        slug: Set("alice-makes".to_owned()),
        genres: Set(json!(["woodworking", "diy"])),
        personality_profile: Set(Some(json!({"tone": "calm"}))),
        ..Default::default()
    }
    .insert(db)
    .await?;
    ensure(creator.social_links == json!({}), "social_links default {}")?;
    ensure(
        creator.genres == json!(["woodworking", "diy"]),
        "genres json",
    )?;
    ensure(!creator.featured, "featured default false")?;

    let video_id = Uuid::now_v7();
    let video = video::ActiveModel {
        id: Set(video_id),
        creator_id: Set(creator_id),
        uploaded_by: Set(Some(user_id)),
        title: Set("Dovetails".to_owned()),
        original_filename: Set("dovetails.mp4".to_owned()),
        size_bytes: Set(Some(5_000_000_000)),
        sha256: Set(Some("a".repeat(64))),
        storage_key: Set("videos/dovetails.mp4".to_owned()),
        duration_secs: Set(Some(612.25)),
        width: Set(Some(1920)),
        height: Set(Some(1080)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    ensure(
        video.status == VideoStatus::Uploading,
        "video status default",
    )?;
    ensure(
        video.retention_class == "operational",
        "retention_class default",
    )?;
    ensure(video.size_bytes == Some(5_000_000_000), "size_bytes i64")?;
    ensure(video.duration_secs == Some(612.25), "duration f64")?;

    let moment_id = Uuid::now_v7();
    key_moment::ActiveModel {
        id: Set(moment_id),
        video_id: Set(video_id),
        title: Set("Marking out".to_owned()),
        start_time: Set(10.0),
        end_time: Set(42.5),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let bad_moment = key_moment::ActiveModel {
        id: Set(Uuid::now_v7()),
        video_id: Set(video_id),
        title: Set("Backwards".to_owned()),
        start_time: Set(50.0),
        end_time: Set(40.0),
        ..Default::default()
    }
    .insert(db)
    .await;
    ensure_rejected(bad_moment, "CHECK end_time > start_time")?;

    let highlight_id = Uuid::now_v7();
    let hl = highlight::ActiveModel {
        id: Set(highlight_id),
        key_moment_id: Set(moment_id),
        video_id: Set(video_id),
        score: Set(0.75),
        score_breakdown: Set(json!({"novelty": 0.5, "clarity": 1.0})),
        duration_secs: Set(32.5),
        ..Default::default()
    }
    .insert(db)
    .await?;
    ensure(hl.score == 0.75, "highlight score")?;

    // ---- jobs ----
    let job_id = Uuid::now_v7();
    let j = job::ActiveModel {
        id: Set(job_id),
        kind: Set(JobKind::Render),
        job_type: Set("render.short".to_owned()),
        owner_id: Set(user_id),
        creator_id: Set(Some(creator_id)),
        idempotency_key: Set(Some("k1".to_owned())),
        ..Default::default()
    }
    .insert(db)
    .await?;
    ensure(j.status == JobStatus::Queued, "job status default")?;
    ensure(j.priority == job::PRIORITY_NORMAL, "job priority default")?;
    ensure(
        j.progress == 0.0 && j.seq == 0 && j.max_attempts == 3,
        "job defaults",
    )?;
    ensure(j.input == json!({}), "job input default {}")?;
    ensure(j.provider == "local", "job provider default")?;
    ensure(j.run_at >= before, "run_at default now")?;

    // Idempotency key is unique per owner among active jobs only.
    let dup = job::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(JobKind::Render),
        job_type: Set("render.short".to_owned()),
        owner_id: Set(user_id),
        idempotency_key: Set(Some("k1".to_owned())),
        ..Default::default()
    };
    ensure_rejected(
        dup.clone().insert(db).await,
        "duplicate active idempotency key",
    )?;
    job::ActiveModel {
        id: Set(job_id),
        status: Set(JobStatus::Done),
        ..Default::default()
    }
    .update(db)
    .await?;
    dup.insert(db).await?;

    let bad_progress = job::ActiveModel {
        id: Set(job_id),
        progress: Set(1.5),
        ..Default::default()
    }
    .update(db)
    .await;
    ensure_rejected(bad_progress, "CHECK progress between 0 and 1")?;

    // ---- shorts ----
    let s = short::ActiveModel {
        id: Set(Uuid::now_v7()),
        highlight_id: Set(highlight_id),
        preset: Set(ShortPreset::Vertical),
        job_id: Set(Some(job_id)),
        share_token: Set(Some("tok".to_owned())),
        ..Default::default()
    }
    .insert(db)
    .await?;
    ensure(
        s.status == ShortStatus::Pending && !s.captions_enabled,
        "short defaults",
    )?;

    // ---- every remaining table: full rows (all nullable columns set) ----
    // Whole seconds so that every backend stores the value exactly.
    let ts = chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).ok_or("timestamp")?;
    let session_id = Uuid::now_v7();
    roundtrip::<session::Entity>(
        db,
        session::Model {
            id: session_id,
            user_id,
            user_agent: Some("curl/8".to_owned()),
            ip_address: Some("2001:db8::1".to_owned()),
            created_at: ts,
            last_seen_at: Some(ts),
            expires_at: ts + Duration::days(30),
            revoked_at: Some(ts),
            revoked_reason: Some("logout".to_owned()),
        },
    )
    .await?;
    roundtrip::<refresh_token::Entity>(
        db,
        refresh_token::Model {
            id: Uuid::now_v7(),
            session_id,
            token_hash: "f".repeat(64),
            created_at: ts,
            used_at: Some(ts),
        },
    )
    .await?;
    roundtrip::<invite_code::Entity>(
        db,
        invite_code::Model {
            id: Uuid::now_v7(),
            code: "WELCOME-2026".to_owned(),
            uses_remaining: 3,
            expires_at: Some(ts),
            created_by: Some(user_id),
            created_at: ts,
        },
    )
    .await?;
    roundtrip::<creator_member::Entity>(
        db,
        creator_member::Model {
            id: Uuid::now_v7(),
            creator_id,
            user_id,
            role: MemberRole::Owner,
            created_at: ts,
        },
    )
    .await?;
    roundtrip::<creator_follow::Entity>(
        db,
        creator_follow::Model {
            id: Uuid::now_v7(),
            user_id,
            creator_id,
            created_at: ts,
        },
    )
    .await?;
    roundtrip::<video_variant::Entity>(
        db,
        video_variant::Model {
            id: Uuid::now_v7(),
            video_id,
            profile: "720p".to_owned(),
            storage_key: "variants/720p.mp4".to_owned(),
            size_bytes: Some(3_000_000_000),
            mime: Some("video/mp4".to_owned()),
            width: Some(1280),
            height: Some(720),
            bitrate: Some(2_500_000),
            created_at: ts,
        },
    )
    .await?;
    roundtrip::<transcript_segment::Entity>(
        db,
        transcript_segment::Model {
            id: Uuid::now_v7(),
            video_id,
            start_time: 1.5,
            end_time: 3.25,
            text: "Hello there".to_owned(),
            speaker: Some("S1".to_owned()),
            created_at: ts,
        },
    )
    .await?;
    roundtrip::<caption_track::Entity>(
        db,
        caption_track::Model {
            id: Uuid::now_v7(),
            video_id,
            language: "en-US".to_owned(),
            kind: CaptionKind::Subtitles,
            format: CaptionFormat::Vtt,
            storage_key: "captions/en.vtt".to_owned(),
            source: CaptionSource::Human,
            approved: true,
            reviewed_by: Some(user_id),
            reviewed_at: Some(ts),
            created_at: ts,
        },
    )
    .await?;
    let consent_id = Uuid::now_v7();
    roundtrip::<video_consent::Entity>(
        db,
        video_consent::Model {
            id: consent_id,
            video_id,
            creator_id,
            kb_inclusion: true,
            training_usage: false,
            public_display: true,
            version: 1,
            updated_by: Some(user_id),
            created_at: ts,
            updated_at: ts,
        },
    )
    .await?;
    roundtrip::<consent_audit_entry::Entity>(
        db,
        consent_audit_entry::Model {
            id: Uuid::now_v7(),
            video_consent_id: consent_id,
            version: 1,
            field: ConsentField::KbInclusion,
            old_value: Some(false),
            new_value: true,
            changed_by: user_id,
            ip_address: Some("192.0.2.1".to_owned()),
            created_at: ts,
        },
    )
    .await?;
    roundtrip::<render_plan::Entity>(
        db,
        render_plan::Model {
            id: Uuid::now_v7(),
            job_id,
            version: "1.0".to_owned(),
            spec: json!({"scenes": [{"start": 0.0, "end": 2.5}]}),
            hash: format!("sha256:{}", "b".repeat(64)),
            storage_key: "plans/p.json".to_owned(),
            created_at: ts,
        },
    )
    .await?;
    roundtrip::<scene_cache_entry::Entity>(
        db,
        scene_cache_entry::Model {
            hash: "c".repeat(64),
            storage_key: "scenes/c.mp4".to_owned(),
            duration_secs: 2.5,
            size_bytes: Some(123_456),
            created_at: ts,
            last_used_at: ts,
        },
    )
    .await?;
    roundtrip::<render_usage::Entity>(
        db,
        render_usage::Model {
            id: Uuid::now_v7(),
            user_id,
            billing_period: "2026-11".to_owned(),
            minutes_consumed: 12.5,
            minutes_reserved: 1.25,
            minutes_paid: 0.75,
            minutes_limit: Some(600.0),
            daily_minutes: json!({"2026-11-22": 12.5}),
            last_updated_at: ts,
        },
    )
    .await?;
    roundtrip::<credit_ledger_entry::Entity>(
        db,
        credit_ledger_entry::Model {
            id: Uuid::now_v7(),
            user_id,
            delta: -40,
            reason: "render".to_owned(),
            job_id: Some(job_id),
            balance_after: 60,
            created_at: ts,
            idempotency_key: Some("invoice-17".to_owned()),
        },
    )
    .await?;

    // ---- subscriptions (FK to plans.code) ----
    let now = Utc::now();
    let sub = subscription::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        plan: Set(PlanCode::Pro),
        current_period_start: Set(now),
        current_period_end: Set(now + Duration::days(30)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    ensure(sub.plan == PlanCode::Pro, "subscription plan")?;
    let subs_on_pro = plan::Entity::find_by_id(PlanCode::Pro)
        .find_with_related(subscription::Entity)
        .all(db)
        .await?;
    ensure(
        subs_on_pro.len() == 1 && subs_on_pro[0].1.len() == 1,
        "plan -> subscriptions relation",
    )?;

    // ---- ON DELETE behaviour ----
    // Deleting the job nulls shorts.job_id (SET NULL).
    job::Entity::delete_by_id(job_id).exec(db).await?;
    let s = short::Entity::find_by_id(s.id)
        .one(db)
        .await?
        .ok_or("short vanished")?;
    ensure(s.job_id.is_none(), "shorts.job_id SET NULL")?;
    // The consent audit log is append-only: while it has entries, the cascade
    // creator → videos → video_consents is refused (ON DELETE RESTRICT).
    ensure_rejected(
        creator::Entity::delete_by_id(creator_id).exec(db).await,
        "delete creator with consent audit entries",
    )?;
    // And the database refuses to delete audit rows at all (migration 8's triggers).
    ensure_rejected(
        consent_audit_entry::Entity::delete_many().exec(db).await,
        "delete consent audit entries",
    )?;

    Ok(())
}
