//! Emails are kept with a Greek final sigma written `σ` (`auth::canonical_email`): lower-casing
//! gives `ς` for a capital `Σ` at the end of a word and `σ` elsewhere, so one address typed in
//! capitals and in small letters made two accounts. Addresses stored with `ς` are rewritten;
//! one that would then clash with another account's stays as it is (see
//! [`crate::emails::rewrite`]).

use sea_orm_migration::prelude::*;
use unicode_normalization::UnicodeNormalization;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // An address left out of normal form C by the NFC migration (its NFC form is another
        // account's) stays whole: its owner reaches it by typing it as stored.
        crate::emails::rewrite(
            manager,
            |e| match e.nfc().eq(e.chars()) {
                true => e.replace('\u{3c2}', "\u{3c3}"),
                false => e.to_owned(),
            },
            "with its final sigma (ς) written σ",
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Which `σ` was a `ς` is not kept; the folded form stays.
        Ok(())
    }
}
