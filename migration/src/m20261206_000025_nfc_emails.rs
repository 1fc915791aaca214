//! Emails are kept in Unicode normal form C (`auth::canonical_email`): an address stored before
//! in another form (`e` and a combining accent for `é`) is rewritten, so that its owner signs in
//! however the address is typed. One that would then clash with another account's stays as it
//! is (two accounts cannot be merged here; it is reported, and its owner signs in by typing
//! the address as it was stored: `auth::login` tries that form first).

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, Statement, TryGetable},
};
use unicode_normalization::UnicodeNormalization;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(backend, "SELECT email FROM users"))
            .await?;
        let emails: Vec<String> = rows
            .iter()
            .map(|row| String::try_get(row, "", "email").map_err(DbErr::from))
            .collect::<Result<_, _>>()?;
        let mut taken: std::collections::HashSet<String> = emails.iter().cloned().collect();
        // Only addresses with a character past ASCII can change.
        for email in emails.iter().filter(|e| !e.is_ascii()) {
            let canonical: String = email.nfc().collect();
            if canonical == *email {
                continue;
            }
            // Another account has it, or another spelling rewritten before (marks in another
            // order) took it.
            if taken.contains(&canonical) {
                eprintln!(
                    "migration: the account with the email {email:?} keeps it as stored: in Unicode \
                     normal form C it is the email of another account"
                );
                continue;
            }
            let placeholder = |n: usize| match backend {
                sea_orm_migration::sea_orm::DbBackend::Postgres => format!("${n}"),
                _ => format!("?{n}"),
            };
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE users SET email = {} WHERE email = {}",
                    placeholder(1),
                    placeholder(2)
                ),
                [canonical.clone().into(), email.clone().into()],
            ))
            .await?;
            taken.insert(canonical);
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The forms the addresses had before are not kept; normal form C stays.
        Ok(())
    }
}
