//! A creator's team: who its members are (`Creator.members`), adding and removing them, and
//! changing their roles.
//!
//! Owners (and administrators) manage the team; any member may leave it. A creator always
//! keeps at least one owner: changes to one creator's team run one at a time (the creator's
//! row is locked on PostgreSQL; SQLite serialises writers), so two owners removing each other
//! at once cannot leave it without one.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::{MemberRole, creator, creator_member};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use crate::{
    auth::{find_account, normalize_email},
    db::RowLock,
    error::{AppError, AppResult},
    graphql::{
        loaders,
        loaders::{CreatorTeam, UserById},
        parse_id, state, viewer,
    },
    jobs::queue,
    users::User,
};

/// One member of a creator's team.
pub struct CreatorMember(pub creator_member::Model);

#[Object]
impl CreatorMember {
    async fn user(&self, ctx: &Context<'_>) -> AppResult<User> {
        loaders(ctx)?
            .load_one(UserById(self.0.user_id))
            .await?
            .map(User::new)
            .ok_or(AppError::NotFound("user"))
    }
    /// `OWNER`s manage the team; `MEMBER`s manage the creator's content.
    async fn role(&self) -> MemberRole {
        self.0.role
    }
    /// When they joined.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Commits a team change and hands the team as it now is to this request's loader, so a
/// `members` read later in the same request (whose loader caches) sees the change.
async fn commit_team_change(
    ctx: &Context<'_>,
    txn: DatabaseTransaction,
    creator_id: Uuid,
) -> AppResult<()> {
    let team = creator_member::Entity::find()
        .filter(creator_member::Column::CreatorId.eq(creator_id))
        // `OWNER` sorts after `MEMBER`, as the loader orders them.
        .order_by_desc(creator_member::Column::Role)
        .order_by_asc(creator_member::Column::CreatedAt)
        .order_by_asc(creator_member::Column::Id)
        .all(&txn)
        .await?;
    txn.commit().await?;
    loaders(ctx)?.replace(CreatorTeam(creator_id), Some(team));
    Ok(())
}

/// Starts a change to `creator_id`'s team: the creator must exist, and the caller must see it
/// (creators are public) and be signed in. Returns the transaction, with the creator's row
/// locked on PostgreSQL.
async fn begin_team_change(
    ctx: &Context<'_>,
    creator_id: Uuid,
) -> AppResult<(DatabaseTransaction, creator::Model)> {
    viewer(ctx)?.require_user()?;
    let db = &state(ctx)?.db;
    let txn = queue::begin_write(db).await?;
    let find = creator::Entity::find_by_id(creator_id).for_update(&txn);
    let creator = find.one(&txn).await?.ok_or(AppError::NotFound("creator"))?;
    Ok((txn, creator))
}

/// The caller's role in the creator's team, if any.
async fn role_in(
    txn: &DatabaseTransaction,
    creator_id: Uuid,
    user_id: Uuid,
) -> AppResult<Option<creator_member::Model>> {
    Ok(creator_member::Entity::find()
        .filter(creator_member::Column::CreatorId.eq(creator_id))
        .filter(creator_member::Column::UserId.eq(user_id))
        .one(txn)
        .await?)
}

/// Fails with `FORBIDDEN` unless the caller is an administrator or an owner of the creator.
async fn ensure_owner(
    ctx: &Context<'_>,
    txn: &DatabaseTransaction,
    creator_id: Uuid,
) -> AppResult<()> {
    let viewer = viewer(ctx)?;
    if viewer.is_admin() {
        return Ok(());
    }
    let me = viewer.require_user()?;
    match role_in(txn, creator_id, me.id).await? {
        Some(m) if m.role == MemberRole::Owner => Ok(()),
        _ => Err(AppError::forbidden(
            "only the creator's owners (and administrators) manage its team",
        )),
    }
}

#[derive(Default)]
pub struct CreatorMemberMutation;

#[Object]
impl CreatorMemberMutation {
    /// Adds the account with this email to a creator's team (as a `MEMBER` unless `role`
    /// says otherwise). Owners of the creator and administrators only. `CONFLICT` when the
    /// account is already in the team. An owner may try 60 additions an hour (`RATE_LIMITED`
    /// past that; administrators any number).
    async fn add_creator_member(
        &self,
        ctx: &Context<'_>,
        creator_id: ID,
        email: String,
        #[graphql(desc = "`MEMBER` when omitted or null.")] role: Option<MemberRole>,
    ) -> AppResult<CreatorMember> {
        let creator_id = parse_id("creatorId", &creator_id)?;
        normalize_email("email", &email)?;
        let (txn, creator) = begin_team_change(ctx, creator_id).await?;
        ensure_owner(ctx, &txn, creator.id).await?;
        let viewer = viewer(ctx)?;
        if let Some(me) = viewer.user().filter(|_| !viewer.is_admin()) {
            state(ctx)?.sign_in.team_add(me.id)?;
        }
        let account = find_account(&txn, &email).await?.ok_or_else(|| {
            AppError::bad_input(
                "email",
                "no account has this email: they need to register first",
            )
        })?;
        if role_in(&txn, creator.id, account.id).await?.is_some() {
            return Err(AppError::conflict(
                Some("email"),
                "this account is already in the creator's team",
            ));
        }
        let member = creator_member::ActiveModel {
            id: Set(Uuid::now_v7()),
            creator_id: Set(creator.id),
            user_id: Set(account.id),
            role: Set(role.unwrap_or(MemberRole::Member)),
            created_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await?;
        commit_team_change(ctx, txn, creator.id).await?;
        Ok(CreatorMember(member))
    }

    /// Removes someone from a creator's team: owners and administrators may remove anyone,
    /// and any member may remove themselves (leave). The last owner cannot go (`CONFLICT`):
    /// make another member an owner first (`setCreatorMemberRole`), or add one. `NOT_FOUND`
    /// when they are not in the team.
    async fn remove_creator_member(
        &self,
        ctx: &Context<'_>,
        creator_id: ID,
        user_id: ID,
    ) -> AppResult<bool> {
        let creator_id = parse_id("creatorId", &creator_id)?;
        let user_id = parse_id("userId", &user_id)?;
        let (txn, creator) = begin_team_change(ctx, creator_id).await?;
        let me = viewer(ctx)?.require_user()?.id;
        if me != user_id {
            ensure_owner(ctx, &txn, creator.id).await?;
        }
        let Some(member) = role_in(&txn, creator.id, user_id).await? else {
            return Err(AppError::NotFound("member"));
        };
        if member.role == MemberRole::Owner {
            keep_an_owner(&txn, creator.id).await?;
        }
        creator_member::Entity::delete_by_id(member.id)
            .exec(&txn)
            .await?;
        commit_team_change(ctx, txn, creator.id).await?;
        Ok(true)
    }

    /// Makes a member of a creator's team an `OWNER` or a `MEMBER`: owners and administrators
    /// only. The last owner cannot become a `MEMBER` (`CONFLICT`): make another member an
    /// owner first. `NOT_FOUND` when they are not in the team; their role unchanged when it
    /// already is `role`.
    async fn set_creator_member_role(
        &self,
        ctx: &Context<'_>,
        creator_id: ID,
        user_id: ID,
        role: MemberRole,
    ) -> AppResult<CreatorMember> {
        let creator_id = parse_id("creatorId", &creator_id)?;
        let user_id = parse_id("userId", &user_id)?;
        let (txn, creator) = begin_team_change(ctx, creator_id).await?;
        ensure_owner(ctx, &txn, creator.id).await?;
        let Some(member) = role_in(&txn, creator.id, user_id).await? else {
            return Err(AppError::NotFound("member"));
        };
        if member.role == role {
            txn.rollback().await?;
            return Ok(CreatorMember(member));
        }
        if member.role == MemberRole::Owner {
            keep_an_owner(&txn, creator.id).await?;
        }
        let mut changed: creator_member::ActiveModel = member.into();
        changed.role = Set(role);
        let member = changed.update(&txn).await?;
        commit_team_change(ctx, txn, creator.id).await?;
        Ok(CreatorMember(member))
    }
}

/// Fails with `CONFLICT` when the creator has one owner only (who is about to leave or become
/// a member).
async fn keep_an_owner(txn: &DatabaseTransaction, creator_id: Uuid) -> AppResult<()> {
    let owners = creator_member::Entity::find()
        .filter(creator_member::Column::CreatorId.eq(creator_id))
        .filter(creator_member::Column::Role.eq(MemberRole::Owner))
        .count(txn)
        .await?;
    if owners <= 1 {
        return Err(last_owner());
    }
    Ok(())
}

/// The last owner of a creator leaving, or becoming a member.
fn last_owner() -> AppError {
    AppError::conflict(
        Some("userId"),
        "a creator keeps at least one owner: make another member an owner first \
         (setCreatorMemberRole), or add one (addCreatorMember with role OWNER)",
    )
}
