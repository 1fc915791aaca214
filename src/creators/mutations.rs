//! Creating, editing, following and unfollowing creators.

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object};
use chrono::Utc;
use entity::{MemberRole, UserRole, creator, creator_follow, creator_member, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use uuid::Uuid;

use super::{Creator, validate};
use crate::{
    error::{AppError, AppResult, unique_violation},
    graphql::{
        inputs::given,
        loaders,
        loaders::{FollowerCount, ViewerFollows},
        parse_id, state, viewer,
    },
};

#[derive(InputObject)]
pub struct CreateCreatorInput {
    /// Unique display name, 1–100 characters.
    pub name: String,
    /// Unique URL handle; derived from the name when omitted.
    pub slug: Option<String>,
    pub bio: Option<String>,
    pub genres: Option<Vec<String>>,
    pub avatar_url: Option<String>,
    /// Platform name → profile URL.
    pub social_links: Option<Json<serde_json::Value>>,
    /// Intro/outro cards put around every short of the creator's: `{"intro": {"text",
    /// "durationSecs" (0.5–10, default 2), "background", "color" ("#RRGGBB", default white on
    /// black)}, "outro": {…}}`; either may be left out. Other keys are kept as given.
    pub shorts_template: Option<Json<serde_json::Value>>,
    /// The creator's voice and style (a JSON object of at most 16 KiB), shown on the profile.
    pub personality_profile: Option<Json<serde_json::Value>>,
}

/// Omitted fields stay as they are; `null` clears a nullable field and is refused for the others.
#[derive(InputObject)]
pub struct UpdateCreatorInput {
    pub name: MaybeUndefined<String>,
    pub slug: MaybeUndefined<String>,
    pub bio: MaybeUndefined<String>,
    /// `[]` clears them.
    pub genres: MaybeUndefined<Vec<String>>,
    pub avatar_url: MaybeUndefined<String>,
    /// `{}` clears them.
    pub social_links: MaybeUndefined<Json<serde_json::Value>>,
    /// Intro/outro cards put around every short rendered from now on of the creator's: `{"intro": {"text",
    /// "durationSecs" (0.5–10, default 2), "background", "color" ("#RRGGBB", default white on
    /// black)}, "outro": {…}}`; either may be left out. Other keys are kept as given.
    pub shorts_template: MaybeUndefined<Json<serde_json::Value>>,
    /// The creator's voice and style (a JSON object of at most 16 KiB), shown on the profile;
    /// `null` removes it.
    pub personality_profile: MaybeUndefined<Json<serde_json::Value>>,
    /// Administrators only.
    pub featured: MaybeUndefined<bool>,
}

/// Maps a unique violation on `creators` to the field that clashed.
fn creator_conflict(err: sea_orm::DbErr) -> AppError {
    match unique_violation(&err) {
        Some(detail) if detail.contains("slug") => AppError::conflict(
            Some("input.slug"),
            "a creator with this slug already exists",
        ),
        Some(_) => AppError::conflict(
            Some("input.name"),
            "a creator with this name already exists",
        ),
        None => err.into(),
    }
}

#[derive(Default)]
pub struct CreatorMutation;

#[Object]
impl CreatorMutation {
    /// Creates a creator profile with the caller as its owner. A viewer who creates one
    /// becomes a creator.
    async fn create_creator(
        &self,
        ctx: &Context<'_>,
        input: CreateCreatorInput,
    ) -> AppResult<Creator> {
        let caller = viewer(ctx)?.require_user()?.clone();
        let name = validate::name("input.name", &input.name)?;
        let slug_given = input.slug.is_some();
        let slug = match input.slug.as_deref() {
            Some(slug) => validate::slug("input.slug", slug)?,
            None => validate::slug_from_name("input.name", &name)?,
        };
        let bio = input
            .bio
            .as_deref()
            .map(|b| validate::bio("input.bio", b))
            .transpose()?
            .flatten();
        let genres = validate::genres("input.genres", input.genres.as_deref().unwrap_or_default())?;
        let avatar_url = input
            .avatar_url
            .as_deref()
            .map(|u| validate::url("input.avatarUrl", u))
            .transpose()?;
        let social_links = match &input.social_links {
            Some(links) => validate::social_links("input.socialLinks", &links.0)?,
            None => serde_json::json!({}),
        };
        let shorts_template = input
            .shorts_template
            .as_ref()
            .map(|t| validate::template("input.shortsTemplate", &t.0))
            .transpose()?;
        let personality_profile = input
            .personality_profile
            .as_ref()
            .map(|p| validate::personality_profile("input.personalityProfile", &p.0))
            .transpose()?;

        let db = &state(ctx)?.db;
        let now = Utc::now();
        let txn = db.begin().await?;
        let created = creator::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(name.clone()),
            slug: Set(slug.clone()),
            genres: Set(genres),
            bio: Set(bio),
            avatar_url: Set(avatar_url),
            social_links: Set(social_links),
            featured: Set(false),
            personality_profile: Set(personality_profile),
            shorts_template: Set(shorts_template),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await;
        let created = match created {
            Ok(created) => created,
            // The client sent no slug: the clash is with its name, or with the slug made
            // from it, not with a `slug` it never sent.
            Err(err) if !slug_given && unique_violation(&err).is_some() => {
                drop(txn);
                let same_name = creator::Entity::find()
                    .filter(creator::Column::Name.eq(name.as_str()))
                    .one(db)
                    .await?
                    .is_some();
                return Err(AppError::conflict(
                    Some("input.name"),
                    if same_name {
                        "a creator with this name already exists".to_owned()
                    } else {
                        format!(
                            "another creator has the slug made from this name, `{slug}`: \
                             pass a `slug` of your own"
                        )
                    },
                ));
            }
            Err(err) => return Err(creator_conflict(err)),
        };
        creator_member::ActiveModel {
            id: Set(Uuid::now_v7()),
            creator_id: Set(created.id),
            user_id: Set(caller.id),
            role: Set(MemberRole::Owner),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        user::Entity::update_many()
            .col_expr(
                user::Column::Role,
                sea_orm::sea_query::Expr::val(UserRole::Creator),
            )
            .col_expr(user::Column::UpdatedAt, sea_orm::sea_query::Expr::val(now))
            .filter(user::Column::Id.eq(caller.id))
            .filter(user::Column::Role.eq(UserRole::Viewer))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(Creator(created))
    }

    /// Edits a creator profile. Members and administrators only; `featured` is for
    /// administrators.
    async fn update_creator(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateCreatorInput,
    ) -> AppResult<Creator> {
        let id = parse_id("id", &id)?;
        let viewer = viewer(ctx)?;
        viewer.require_user()?;
        let db = &state(ctx)?.db;
        let existing = creator::Entity::find_by_id(id)
            .one(db)
            .await?
            .ok_or(AppError::NotFound("creator"))?;
        viewer.ensure_manages_creator(db, id).await?;
        let name = given("input.name", input.name)?;
        let slug = given("input.slug", input.slug)?;
        let genres = given("input.genres", input.genres)?;
        let social_links = given("input.socialLinks", input.social_links)?;
        let featured = given("input.featured", input.featured)?;
        if featured.is_some() && !viewer.is_admin() {
            return Err(AppError::forbidden(
                "only administrators may feature creators",
            ));
        }

        let mut row: creator::ActiveModel = existing.into();
        if let Some(name) = &name {
            row.name = Set(validate::name("input.name", name)?);
        }
        if let Some(slug) = &slug {
            row.slug = Set(validate::slug("input.slug", slug)?);
        }
        match &input.bio {
            MaybeUndefined::Undefined => {}
            MaybeUndefined::Null => row.bio = Set(None),
            MaybeUndefined::Value(bio) => row.bio = Set(validate::bio("input.bio", bio)?),
        }
        if let Some(genres) = &genres {
            row.genres = Set(validate::genres("input.genres", genres)?);
        }
        match &input.avatar_url {
            MaybeUndefined::Undefined => {}
            MaybeUndefined::Null => row.avatar_url = Set(None),
            MaybeUndefined::Value(url) => {
                row.avatar_url = Set(Some(validate::url("input.avatarUrl", url)?))
            }
        }
        if let Some(links) = &social_links {
            row.social_links = Set(validate::social_links("input.socialLinks", &links.0)?);
        }
        match &input.shorts_template {
            MaybeUndefined::Undefined => {}
            MaybeUndefined::Null => row.shorts_template = Set(None),
            MaybeUndefined::Value(t) => {
                row.shorts_template = Set(Some(validate::template("input.shortsTemplate", &t.0)?));
            }
        }
        match &input.personality_profile {
            MaybeUndefined::Undefined => {}
            MaybeUndefined::Null => row.personality_profile = Set(None),
            MaybeUndefined::Value(p) => {
                row.personality_profile = Set(Some(validate::personality_profile(
                    "input.personalityProfile",
                    &p.0,
                )?));
            }
        }
        if let Some(featured) = featured {
            row.featured = Set(featured);
        }
        row.updated_at = Set(Utc::now());
        let updated = row.update(db).await.map_err(creator_conflict)?;
        Ok(Creator(updated))
    }

    /// Follows a creator; following twice is the same as once.
    async fn follow_creator(&self, ctx: &Context<'_>, creator_id: ID) -> AppResult<Creator> {
        let creator_id = parse_id("creatorId", &creator_id)?;
        let user = viewer(ctx)?.require_user()?;
        let db = &state(ctx)?.db;
        let creator = creator::Entity::find_by_id(creator_id)
            .one(db)
            .await?
            .ok_or(AppError::NotFound("creator"))?;
        creator_follow::Entity::insert(creator_follow::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user.id),
            creator_id: Set(creator_id),
            created_at: Set(Utc::now()),
        })
        .on_conflict_do_nothing_on([
            creator_follow::Column::UserId,
            creator_follow::Column::CreatorId,
        ])
        .exec(db)
        .await?;
        followed(ctx, creator_id, true)?;
        Ok(Creator(creator))
    }

    /// Stops following a creator; unfollowing one not followed is not an error.
    async fn unfollow_creator(&self, ctx: &Context<'_>, creator_id: ID) -> AppResult<Creator> {
        let creator_id = parse_id("creatorId", &creator_id)?;
        let user = viewer(ctx)?.require_user()?;
        let db = &state(ctx)?.db;
        let creator = creator::Entity::find_by_id(creator_id)
            .one(db)
            .await?
            .ok_or(AppError::NotFound("creator"))?;
        creator_follow::Entity::delete_many()
            .filter(creator_follow::Column::UserId.eq(user.id))
            .filter(creator_follow::Column::CreatorId.eq(creator_id))
            .exec(db)
            .await?;
        followed(ctx, creator_id, false)?;
        Ok(Creator(creator))
    }
}

/// What this request read of the caller's following `creator` and of its follower count is
/// stale now: an answer (or a later field of the same request) reads them as they are.
fn followed(ctx: &Context<'_>, creator: Uuid, following: bool) -> AppResult<()> {
    let loaders = loaders(ctx)?;
    loaders.replace(ViewerFollows(creator), Some(following));
    loaders.forget(&FollowerCount(creator));
    Ok(())
}
