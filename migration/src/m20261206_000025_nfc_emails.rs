//! Emails are kept in Unicode normal form C (`auth::canonical_email`): an address stored before
//! in another form (`e` and a combining accent for `é`) is rewritten, so that its owner signs in
//! however the address is typed. One that would then clash with another account's stays as it
//! is (see [`crate::emails::rewrite`]).

use sea_orm_migration::prelude::*;
use unicode_normalization::UnicodeNormalization;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Marks in another order are one spelling too: the first rewritten takes the form.
        crate::emails::rewrite(manager, |e| e.nfc().collect(), "in Unicode normal form C").await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The forms the addresses had before are not kept; normal form C stays.
        Ok(())
    }
}
