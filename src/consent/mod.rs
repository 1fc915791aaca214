//! Per-video consent: the current flags, and an append-only audit log with one row per
//! changed field under a per-video version that is gap-free and unique even when updates
//! race (the consent row is locked for the change; the database rejects any UPDATE or DELETE
//! of audit rows).

use async_graphql::{
    Context, ID, InputObject, MaybeUndefined, Object, OutputType,
    connection::{ConnectionNameType, EdgeNameType},
};
use chrono::{DateTime, Utc};
use entity::{ConsentField, consent_audit_entry, creator_member, video, video_consent};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use crate::{
    access::Viewer,
    db::RowLock,
    error::{AppError, AppResult},
    graphql::{
        client_info,
        inputs::given,
        loaders,
        loaders::{UserById, VisibleVideoById},
        pagination::{Page, PageArgs, RelayConnection, TotalCount},
        parse_id, state, viewer,
    },
    jobs::queue::begin_write,
    users::User,
    videos::Video,
};

/// Omitted fields stay as they are (`null` is refused).
#[derive(InputObject)]
pub struct VideoConsentInput {
    /// May the video be indexed into the knowledge base.
    pub kb_inclusion: MaybeUndefined<bool>,
    /// May the video be used for training.
    pub training_usage: MaybeUndefined<bool>,
    /// May the video and its shorts be shown publicly (shared links included).
    pub public_display: MaybeUndefined<bool>,
}

/// The consent a creator gave for one video. Readable by the creator's members and admins.
pub struct VideoConsent(pub video_consent::Model);

#[Object]
impl VideoConsent {
    /// The same for a video's consent on every read (before and after the first change), and
    /// no other object's: client caches keep one consent per video by it.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn video(&self, ctx: &Context<'_>) -> AppResult<Video> {
        loaders(ctx)?
            .load_one(VisibleVideoById(self.0.video_id))
            .await?
            .map(Video)
            .ok_or(AppError::NotFound("video"))
    }
    async fn kb_inclusion(&self) -> bool {
        self.0.kb_inclusion
    }
    async fn training_usage(&self) -> bool {
        self.0.training_usage
    }
    async fn public_display(&self) -> bool {
        self.0.public_display
    }
    /// Version of the latest change (0 before any).
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn updated_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        let Some(id) = self.0.updated_by else {
            return Ok(None);
        };
        Ok(loaders(ctx)?.load_one(UserById(id)).await?.map(User::new))
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Every change, oldest first.
    #[graphql(
        complexity = "crate::graphql::pagination::connection_complexity(first, None, child_complexity)"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<RelayConnection<ConsentAuditEntry, ConsentAuditConnection, ConsentAuditEdge>>
    {
        let args = PageArgs::new(first, after, None, None)?;
        let db = &state(ctx)?.db;
        let select = consent_audit_entry::Entity::find()
            .filter(consent_audit_entry::Column::VideoConsentId.eq(self.0.id));
        let total = TotalCount::of(db, select);
        // Batched with the other consents of a list.
        let rows = crate::graphql::loaders(ctx)?
            .load_one(crate::graphql::loaders::AuditPage {
                consent: self.0.id,
                page: args,
            })
            .await?
            .unwrap_or_default();
        Ok(Page::from_rows(rows, args).into_connection(|e| e.id, ConsentAuditEntry, total))
    }
}

/// The audit log's connection type is `ConsentAuditConnection` (API.md), not the default
/// `ConsentAuditEntryConnection`.
pub struct ConsentAuditConnection;

impl ConnectionNameType for ConsentAuditConnection {
    fn type_name<T: OutputType>() -> String {
        "ConsentAuditConnection".to_owned()
    }
}

/// The audit log's edge type, `ConsentAuditEdge`, named like its connection.
pub struct ConsentAuditEdge;

impl EdgeNameType for ConsentAuditEdge {
    fn type_name<T: OutputType>() -> String {
        "ConsentAuditEdge".to_owned()
    }
}

/// One changed field of one consent change.
pub struct ConsentAuditEntry(pub consent_audit_entry::Model);

#[Object]
impl ConsentAuditEntry {
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn field(&self) -> ConsentField {
        self.0.field
    }
    /// Null when the field had never been set explicitly (it held its default).
    async fn old_value(&self) -> Option<bool> {
        self.0.old_value
    }
    async fn new_value(&self) -> bool {
        self.0.new_value
    }
    async fn changed_by(&self, ctx: &Context<'_>) -> AppResult<User> {
        loaders(ctx)?
            .load_one(UserById(self.0.changed_by))
            .await?
            .map(User::new)
            .ok_or(AppError::NotFound("user"))
    }
    /// The address the change came from: for administrators and the one who made it (null
    /// for the rest of the team).
    async fn ip_address(&self, ctx: &Context<'_>) -> AppResult<Option<&str>> {
        let viewer = crate::graphql::viewer(ctx)?;
        let own = viewer.user().is_some_and(|me| me.id == self.0.changed_by);
        Ok((own || viewer.is_admin())
            .then_some(self.0.ip_address.as_deref())
            .flatten())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// The consent row of a video, when the caller manages it; read with those of the other
/// videos of the page (`loaders`).
pub async fn consent_of(
    viewer: &Viewer,
    db: &DatabaseConnection,
    loaders: &crate::graphql::loaders::Loaders,
    video: &video::Model,
) -> AppResult<Option<VideoConsent>> {
    if !viewer.manages_creator(db, video.creator_id).await? {
        return Ok(None);
    }
    let row = loaders
        .load_one(crate::graphql::loaders::ConsentOf(video.id))
        .await?;
    // Never set: as it has been since the video was made.
    Ok(Some(VideoConsent(
        row.unwrap_or_else(|| defaults(video, video.created_at)),
    )))
}

/// The id of a video's consent row, from the video: the consent read before the row exists
/// has the id the row gets when it is made. A UUIDv7, as every id (time-ordered: the video's
/// creation time), whose other 74 bits come from a SHA-256 of the video's id, so no other
/// object shares it. Rows made before keep the id they were given (a UUIDv8 of that hash, or
/// a UUIDv7 of their own).
fn consent_id(video: &video::Model) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"reelgraph video consent ")
        .chain_update(video.id.as_bytes())
        .finalize();
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    let millis = video
        .id
        .get_timestamp()
        .map(|at| {
            let (secs, nanos) = at.to_unix();
            secs * 1000 + u64::from(nanos / 1_000_000)
        })
        .unwrap_or_else(|| u64::try_from(video.created_at.timestamp_millis()).unwrap_or(0));
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// The consent a video has before anyone sets it: public display on, the rest off.
fn defaults(video: &video::Model, now: DateTime<Utc>) -> video_consent::Model {
    video_consent::Model {
        id: consent_id(video),
        video_id: video.id,
        creator_id: video.creator_id,
        kb_inclusion: false,
        training_usage: false,
        public_display: true,
        version: 0,
        updated_by: None,
        created_at: now,
        updated_at: now,
    }
}

/// A UUIDv7 of now that sorts after `previous`. The log is listed (and paged) by id, so each
/// entry's id must follow the one before, also when this server's clock is behind the clock
/// of the server that wrote that one.
fn id_after(previous: Option<Uuid>) -> Uuid {
    let fresh = Uuid::now_v7();
    let Some(previous) = previous.filter(|p| fresh <= *p) else {
        return fresh;
    };
    // The same millisecond and one more in the low random bits keeps the v7 layout.
    const RAND_B: u128 = (1 << 62) - 1;
    if previous.as_u128() & RAND_B != RAND_B {
        return Uuid::from_u128(previous.as_u128() + 1);
    }
    let (secs, nanos) = previous.get_timestamp().map_or((0, 0), |t| t.to_unix());
    let next_ms = u64::from(nanos / 1_000_000) + 1 + secs * 1000;
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        next_ms / 1000,
        (next_ms % 1000) as u32 * 1_000_000,
    ))
}

/// The consent row, created with defaults if missing, and locked until `txn` ends.
async fn locked_consent(
    txn: &DatabaseTransaction,
    video: &video::Model,
) -> AppResult<video_consent::Model> {
    // Dated as the consent read shows it before anyone sets it: a change of nothing keeps it.
    let since = video.created_at;
    video_consent::Entity::insert(video_consent::ActiveModel::from(defaults(video, since)))
        .on_conflict_do_nothing_on([video_consent::Column::VideoId])
        .exec(txn)
        .await?;
    // FOR UPDATE on PostgreSQL; SQLite's write transaction is exclusive already.
    let query = video_consent::Entity::find()
        .filter(video_consent::Column::VideoId.eq(video.id))
        .for_update(txn);
    query.one(txn).await?.ok_or(AppError::NotFound("video"))
}

#[derive(Default)]
pub struct ConsentMutation;

#[Object]
impl ConsentMutation {
    /// Changes a video's consent. Each changed field gets an audit row (old value, new value,
    /// who, client IP) under the next version number.
    async fn set_video_consent(
        &self,
        ctx: &Context<'_>,
        video_id: ID,
        input: VideoConsentInput,
    ) -> AppResult<VideoConsent> {
        let video_id = parse_id("videoId", &video_id)?;
        let viewer = viewer(ctx)?;
        let user = viewer.require_user()?.clone();
        let kb_inclusion = given("input.kbInclusion", input.kb_inclusion)?;
        let training_usage = given("input.trainingUsage", input.training_usage)?;
        let public_display = given("input.publicDisplay", input.public_display)?;
        let state = state(ctx)?;
        let video = loaders(ctx)?
            .load_one(VisibleVideoById(video_id))
            .await?
            .ok_or(AppError::NotFound("video"))?;
        if !viewer.manages_creator(&state.db, video.creator_id).await? {
            return Err(AppError::forbidden(
                "only the creator's members may change consent",
            ));
        }
        let client = client_info(ctx);
        let txn = begin_write(&state.db).await?;
        let current = locked_consent(&txn, &video).await?;
        // The membership again, share-locked on PostgreSQL (SQLite's writers are serialised):
        // a removal from the team that committed since the check above is seen, and one that
        // comes later waits for this change.
        if !viewer.is_admin() {
            let member = creator_member::Entity::find()
                .filter(creator_member::Column::CreatorId.eq(video.creator_id))
                .filter(creator_member::Column::UserId.eq(user.id))
                .for_share(&txn)
                .one(&txn)
                .await?;
            if member.is_none() {
                txn.rollback().await?;
                // Removed from the team since the check above: what they may no longer see
                // is not found, as for anyone else.
                if !crate::access::is_public(&video, current.public_display) {
                    return Err(AppError::NotFound("video"));
                }
                return Err(AppError::forbidden(
                    "only the creator's members may change consent",
                ));
            }
        }
        // Never before the change this one follows, also when that was written by a server
        // whose clock runs ahead of ours: the log's times go the way of its versions.
        let now = Utc::now().max(current.updated_at);
        // Fields changed before: their old value is known; the others held their default.
        let touched: Vec<ConsentField> = consent_audit_entry::Entity::find()
            .select_only()
            .column(consent_audit_entry::Column::Field)
            .filter(consent_audit_entry::Column::VideoConsentId.eq(current.id))
            .distinct()
            .into_tuple()
            .all(&txn)
            .await?;
        let mut last_id = consent_audit_entry::Entity::find()
            .select_only()
            .column(consent_audit_entry::Column::Id)
            .filter(consent_audit_entry::Column::VideoConsentId.eq(current.id))
            .order_by_desc(consent_audit_entry::Column::Id)
            .into_tuple::<Uuid>()
            .one(&txn)
            .await?;
        let mut version = current.version;
        let fields = [
            (
                ConsentField::KbInclusion,
                current.kb_inclusion,
                kb_inclusion,
            ),
            (
                ConsentField::TrainingUsage,
                current.training_usage,
                training_usage,
            ),
            (
                ConsentField::PublicDisplay,
                current.public_display,
                public_display,
            ),
        ];
        for (field, old, new) in fields {
            let Some(new) = new.filter(|new| *new != old) else {
                continue;
            };
            version += 1;
            let id = id_after(last_id);
            last_id = Some(id);
            consent_audit_entry::ActiveModel {
                id: Set(id),
                video_consent_id: Set(current.id),
                version: Set(version),
                field: Set(field),
                old_value: Set(touched.contains(&field).then_some(old)),
                new_value: Set(new),
                changed_by: Set(user.id),
                ip_address: Set(client.ip.clone()),
                created_at: Set(now),
            }
            .insert(&txn)
            .await?;
        }
        if version == current.version {
            txn.commit().await?;
            return Ok(VideoConsent(current));
        }
        let mut row: video_consent::ActiveModel = current.into();
        if let Some(v) = kb_inclusion {
            row.kb_inclusion = Set(v);
        }
        if let Some(v) = training_usage {
            row.training_usage = Set(v);
        }
        if let Some(v) = public_display {
            row.public_display = Set(v);
        }
        row.version = Set(version);
        row.updated_by = Set(Some(user.id));
        row.updated_at = Set(now);
        let updated = row.update(&txn).await?;
        txn.commit().await?;
        Ok(VideoConsent(updated))
    }
}

#[cfg(test)]
mod tests {
    use super::id_after;
    use uuid::Uuid;

    #[test]
    fn audit_ids_follow_the_previous_one_even_from_a_clock_behind() {
        let now = Uuid::now_v7();
        let later = id_after(Some(now));
        assert!(later > now);
        // Written by a server an hour ahead: still after it, and still a v7.
        let ahead = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            chrono::Utc::now().timestamp() as u64 + 3600,
            0,
        ));
        let next = id_after(Some(ahead));
        assert!(next > ahead);
        assert_eq!(next.get_version_num(), 7);
        // Its low random bits all ones: the next millisecond.
        let full = Uuid::from_u128(ahead.as_u128() | ((1 << 62) - 1));
        let next = id_after(Some(full));
        assert!(next > full);
        assert_eq!(next.get_version_num(), 7);
        assert_eq!(
            next.get_timestamp().map(|t| t.to_unix().0),
            full.get_timestamp().map(|t| t.to_unix().0)
        );
    }
}
