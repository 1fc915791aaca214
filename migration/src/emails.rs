//! Rewrites of stored email addresses into the form `auth::canonical_email` gives them now.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DbBackend, Statement, TryGetable},
};

/// Rewrites every stored address that `canonical` changes. One whose new form is already
/// another account's (or another address's rewritten before) stays as it is: two accounts
/// cannot be merged here. It is reported (`form` says what the other account's address is),
/// and its owner signs in by typing it as it was stored (`auth::find_account` tries that
/// form first).
pub async fn rewrite(
    manager: &SchemaManager<'_>,
    canonical: impl Fn(&str) -> String,
    form: &str,
) -> Result<(), DbErr> {
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
        let rewritten = canonical(email);
        if rewritten == *email {
            continue;
        }
        if taken.contains(&rewritten) {
            eprintln!(
                "migration: the account with the email {email:?} keeps it as stored: {form} it \
                 is the email of another account"
            );
            continue;
        }
        let placeholder = |n: usize| match backend {
            DbBackend::Postgres => format!("${n}"),
            _ => format!("?{n}"),
        };
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE users SET email = {} WHERE email = {}",
                placeholder(1),
                placeholder(2)
            ),
            [rewritten.clone().into(), email.clone().into()],
        ))
        .await?;
        taken.insert(rewritten);
    }
    Ok(())
}
