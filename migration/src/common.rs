//! Column helpers shared by the migrations.
//!
//! Everything here produces plain sea-query schema statements that render
//! correctly on both PostgreSQL and SQLite.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

/// Server-side "now" for `timestamp_with_time_zone` defaults.
///
/// On PostgreSQL this is `CURRENT_TIMESTAMP`. On SQLite `CURRENT_TIMESTAMP`
/// yields `YYYY-MM-DD HH:MM:SS` (second precision, space separator), which
/// does not sort/compare correctly against the RFC 3339 strings
/// (`YYYY-MM-DDTHH:MM:SS.fff+00:00`) that sqlx writes for `DateTime<Utc>`,
/// so SQLite gets an equivalent `strftime` expression in that format.
pub fn now(backend: DbBackend) -> Expr {
    match backend {
        DbBackend::Sqlite => Expr::cust("strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"),
        _ => Expr::current_timestamp(),
    }
}

/// `timestamptz NOT NULL DEFAULT now`.
pub fn ts_now<T: IntoIden>(col: T, backend: DbBackend) -> ColumnDef {
    timestamp_with_time_zone(col).default(now(backend)).take()
}

/// A NOT NULL string column restricted to `values` by a CHECK constraint,
/// optionally with a default.
pub fn enum_col<T: IntoIden>(col: T, values: &[&str], default: Option<&str>) -> ColumnDef {
    let col = col.into_iden();
    let mut def = string(col.clone());
    def.check(Expr::col(col).is_in(values.iter().copied()));
    if let Some(default) = default {
        def.default(default);
    }
    def
}

/// A nullable string column restricted to `values` by a CHECK constraint.
pub fn enum_col_null<T: IntoIden>(col: T, values: &[&str]) -> ColumnDef {
    let col = col.into_iden();
    string_null(col.clone())
        .check(Expr::col(col).is_in(values.iter().copied()))
        .take()
}

/// Named foreign key `table.column -> ref_table.ref_column` with the given ON DELETE action.
pub fn fk<T, C, R, RC>(
    name: &str,
    table: T,
    column: C,
    ref_table: R,
    ref_column: RC,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement
where
    T: IntoIden,
    C: IntoIden,
    R: IntoIden,
    RC: IntoIden,
{
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(ref_table, ref_column)
        .on_delete(on_delete)
        .take()
}

/// Drops the given tables, in the order given (children before parents).
pub async fn drop_tables(
    manager: &SchemaManager<'_>,
    tables: impl IntoIterator<Item = DynIden>,
) -> Result<(), DbErr> {
    for table in tables {
        manager
            .drop_table(Table::drop().table(table).if_exists().take())
            .await?;
    }
    Ok(())
}
