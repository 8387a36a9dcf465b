//! Swapping SQLite indexes for others: the migrations that give SQLite
//! wider or partial indexes, which MariaDB does not need or lacks.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// The name a `CREATE INDEX` statement gives.
fn name(create: &str) -> &str {
    create.split_whitespace().nth(2).unwrap_or_default()
}

/// On SQLite, makes the index each pair swaps to (its second going up,
/// its first going down), then drops the one it replaces; elsewhere does
/// nothing. The new index is made first, under a name of its own:
/// dropping an index and creating one of the same name failed with
/// "already exists" when the server migrated a database from before the
/// sparse indexes (the migrator's statements may each take another
/// connection of the pool). An index already made, or already dropped, is
/// left as it is, so a database that has the swap already is not harmed.
pub(crate) async fn swap(
    manager: &SchemaManager<'_>,
    pairs: &[(&str, &str)],
    up: bool,
) -> Result<(), DbErr> {
    if manager.get_database_backend() != DatabaseBackend::Sqlite {
        return Ok(());
    }
    let db = manager.get_connection();
    for &(old, new) in pairs {
        let (make, drop) = if up { (new, old) } else { (old, new) };
        let make = make.replacen("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1);
        db.execute_unprepared(&make).await?;
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {}", name(drop)))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::name;

    #[test]
    fn an_index_is_named_by_its_create_statement() {
        assert_eq!(
            name(
                "CREATE INDEX ix_tasks_endpoint_set ON tasks (endpoint) WHERE endpoint IS NOT NULL"
            ),
            "ix_tasks_endpoint_set"
        );
    }
}
