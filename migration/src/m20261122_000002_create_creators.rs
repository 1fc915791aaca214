//! Creators: `creators`, `creator_members`, `creator_follows`.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{drop_tables, enum_col, fk, ts_now};
use crate::m20261122_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Creators {
    Table,
    Id,
    Name,
    Slug,
    Genres,
    Bio,
    AvatarUrl,
    SocialLinks,
    Featured,
    PersonalityProfile,
    ShortsTemplate,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum CreatorMembers {
    Table,
    Id,
    CreatorId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
pub enum CreatorFollows {
    Table,
    Id,
    UserId,
    CreatorId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();

        manager
            .create_table(
                Table::create()
                    .table(Creators::Table)
                    .col(pk_uuid(Creators::Id))
                    .col(text_uniq(Creators::Name))
                    .col(text_uniq(Creators::Slug))
                    .col(json_binary(Creators::Genres).default("[]"))
                    .col(text_null(Creators::Bio))
                    .col(text_null(Creators::AvatarUrl))
                    .col(json_binary(Creators::SocialLinks).default("{}"))
                    .col(boolean(Creators::Featured).default(false))
                    .col(json_binary_null(Creators::PersonalityProfile))
                    .col(json_binary_null(Creators::ShortsTemplate))
                    .col(ts_now(Creators::CreatedAt, db))
                    .col(ts_now(Creators::UpdatedAt, db))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_creators_featured_id")
                    .table(Creators::Table)
                    .col(Creators::Featured)
                    .col(Creators::Id)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CreatorMembers::Table)
                    .col(pk_uuid(CreatorMembers::Id))
                    .col(uuid(CreatorMembers::CreatorId))
                    .col(uuid(CreatorMembers::UserId))
                    .col(enum_col(
                        CreatorMembers::Role,
                        &["OWNER", "MEMBER"],
                        Some("MEMBER"),
                    ))
                    .col(ts_now(CreatorMembers::CreatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_creator_members_creator_id",
                        CreatorMembers::Table,
                        CreatorMembers::CreatorId,
                        Creators::Table,
                        Creators::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_creator_members_user_id",
                        CreatorMembers::Table,
                        CreatorMembers::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_creator_members_creator_user")
                    .table(CreatorMembers::Table)
                    .col(CreatorMembers::CreatorId)
                    .col(CreatorMembers::UserId)
                    .unique()
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_creator_members_user_id")
                    .table(CreatorMembers::Table)
                    .col(CreatorMembers::UserId)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CreatorFollows::Table)
                    .col(pk_uuid(CreatorFollows::Id))
                    .col(uuid(CreatorFollows::UserId))
                    .col(uuid(CreatorFollows::CreatorId))
                    .col(ts_now(CreatorFollows::CreatedAt, db))
                    .foreign_key(&mut fk(
                        "fk_creator_follows_user_id",
                        CreatorFollows::Table,
                        CreatorFollows::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_creator_follows_creator_id",
                        CreatorFollows::Table,
                        CreatorFollows::CreatorId,
                        Creators::Table,
                        Creators::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_creator_follows_user_creator")
                    .table(CreatorFollows::Table)
                    .col(CreatorFollows::UserId)
                    .col(CreatorFollows::CreatorId)
                    .unique()
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_creator_follows_creator_id")
                    .table(CreatorFollows::Table)
                    .col(CreatorFollows::CreatorId)
                    .take(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            [
                CreatorFollows::Table.into_iden(),
                CreatorMembers::Table.into_iden(),
                Creators::Table.into_iden(),
            ],
        )
        .await
    }
}
