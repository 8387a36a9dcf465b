//! Statement shapes shared by every aggregate: all-or-nothing groups of
//! statements, multi-row INSERTs of a few fixed sizes, padded `IN` lists,
//! and the index hints the hot path's reads and UPDATEs need. Each shape is
//! here because a measured cost (docs/performance.md) made it so; the
//! comment on each says which.

use crate::entities::task;
use callback_core::lock;
use callback_core::TaskStatus;
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    DbErr, EntityName, EntityTrait, ExecResult, IdenStatic, Iterable, QueryTrait, Statement,
    TransactionTrait,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Runs `statements` all or none and gives their results. A single
/// statement is atomic by itself and goes alone: the transaction around it
/// would cost two more round trips (`BEGIN`, `COMMIT`). At low rates, where
/// a group holds one task, those were 4 of the 10 round trips a delivered
/// task cost MariaDB. A statement that fails rolls its transaction back at
/// once: a dropped transaction only queues its rollback for the
/// connection's next use, and until then its row locks stall others.
pub(crate) async fn write_atomically(
    db: &DatabaseConnection,
    statements: Vec<Statement>,
) -> Result<Vec<ExecResult>, DbErr> {
    if statements.len() < 2 {
        let mut results = Vec::with_capacity(1);
        for statement in statements {
            results.push(db.execute(statement).await?);
        }
        return Ok(results);
    }
    let txn = db.begin().await?;
    let mut results = Vec::with_capacity(statements.len());
    for statement in statements {
        match txn.execute(statement).await {
            Ok(result) => results.push(result),
            Err(err) => {
                // The statement's error says what went wrong; a rollback
                // that fails too leaves a broken connection, which the
                // pool drops.
                let _ = txn.rollback().await;
                return Err(err);
            }
        }
    }
    txn.commit().await?;
    Ok(results)
}

/// An UPDATE of rows picked by their primary key (an `id IN (...)` list,
/// or an ordering key's endpoint with a list of its keys), told on MySQL
/// to find them by that key. Left to itself, MariaDB reaches tasks through
/// `ix_tasks_status` (the status test narrows the range on paper), and an
/// UPDATE that changes the status of rows found through the status index
/// must first buffer them all: on 100,000 tasks, a success UPDATE of 112
/// ids cost 37-42 us of MariaDB CPU a row that way, 24-32 by the key. And
/// past 200 keys (`eq_range_index_dive_limit`) it guesses instead of
/// looking, and scans: an UPDATE of 235 of 1,000 ordering keys read and
/// locked all 1,000, 21 ms each, while intakes of those keys waited.
pub(crate) fn by_primary_key<E: EntityTrait>(
    backend: DbBackend,
    update: sea_orm::UpdateMany<E>,
) -> Statement {
    force_primary_key(
        backend,
        update.build(backend),
        "UPDATE",
        E::default().table_name(),
    )
}

/// A SELECT of rows picked by their primary key: see `by_primary_key`.
pub(crate) fn select_by_primary_key<E: EntityTrait>(
    backend: DbBackend,
    select: sea_orm::Select<E>,
) -> Statement {
    force_primary_key(
        backend,
        select.build(backend),
        "FROM",
        E::default().table_name(),
    )
}

fn force_primary_key(
    backend: DbBackend,
    mut statement: Statement,
    before: &str,
    table: &str,
) -> Statement {
    if backend == DbBackend::MySql {
        statement.sql = statement.sql.replacen(
            &format!("{before} `{table}` "),
            &format!("{before} `{table}` FORCE INDEX (PRIMARY) "),
            1,
        );
    }
    statement
}

/// A read of tasks in due-time order, told to walk `ix_tasks_next_attempt_at`
/// on both backends. SQLite, which keeps no statistics unless asked, takes
/// `status IN (...)` for the narrower test, reads every live task through
/// `ix_tasks_status` and sorts them all: with a million tasks scheduled for
/// later, each reconciler pass (one a second) cost 0.3 s of CPU and the
/// server burnt half a core while idle. Through the due-time index a pass
/// reads only the due tasks. MariaDB chose that index already; the hint
/// keeps it from choosing otherwise on a table whose statistics mislead.
pub(crate) fn by_due_time(backend: DbBackend, select: sea_orm::Select<task::Entity>) -> Statement {
    let mut statement = select.build(backend);
    let (from, through) = match backend {
        DbBackend::MySql => (
            "FROM `tasks` ",
            "FROM `tasks` FORCE INDEX (`ix_tasks_next_attempt_at`) ",
        ),
        DbBackend::Sqlite => (
            "FROM \"tasks\" ",
            "FROM \"tasks\" INDEXED BY \"ix_tasks_next_attempt_at\" ",
        ),
        DbBackend::Postgres => return statement,
    };
    statement.sql = statement.sql.replacen(from, through, 1);
    statement
}

/// A page of tasks filtered on two indexed columns (`source_app` and
/// `status`, say), read through one of their indexes in id order. Left to
/// itself MariaDB intersects both indexes and then sorts every match by id:
/// 1.7 s a page at a million tasks, against milliseconds this way. The
/// switch is set for this statement only, in a comment that MariaDB
/// executes (`/*M! ... */`); MySQL ignores it and reads its own hint.
pub(crate) fn without_index_merge(
    backend: DbBackend,
    select: sea_orm::Select<task::Entity>,
) -> Statement {
    let mut statement = select.build(backend);
    if backend == DbBackend::MySql {
        statement.sql = format!(
            "/*M! SET STATEMENT optimizer_switch='index_merge_intersection=off' FOR */ {}",
            statement
                .sql
                .replacen("SELECT ", "SELECT /*+ NO_INDEX_MERGE(`tasks`) */ ", 1)
        );
    }
    statement
}

/// A multi-row `INSERT` of `rows` (one of `STATEMENT_ROWS` in number), of
/// the columns they set. Its text depends only on the table, the backend
/// and the row count, so it is written once and kept: building it with the
/// query builder for every group cost a quarter of the server's CPU on
/// batch intake. The values come from the row mappings (`new_task_row`,
/// `attempt_row`), which set the same columns for every row; they are
/// moved out of the rows, not copied.
pub(crate) fn insert_rows<A>(backend: DbBackend, rows: Vec<A>) -> Statement
where
    A: ActiveModelTrait + 'static,
{
    static TEXTS: OnceLock<Mutex<InsertTexts>> = OnceLock::new();
    let columns: Vec<<A::Entity as EntityTrait>::Column> =
        <A::Entity as EntityTrait>::Column::iter()
            .filter(|&c| rows.first().is_some_and(|row| !row.is_not_set(c)))
            .collect();
    let key = (
        std::any::TypeId::of::<A>(),
        backend == DbBackend::MySql,
        rows.len(),
    );
    let text = {
        let mut texts = lock(TEXTS.get_or_init(Default::default));
        texts
            .entry(key)
            .or_insert_with(|| {
                let names: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
                let table = A::Entity::default();
                insert_text(backend, table.table_name(), &names, rows.len()).into()
            })
            .clone()
    };
    let mut values = Vec::with_capacity(rows.len() * columns.len());
    for mut row in rows {
        values.extend(columns.iter().map(|&column| {
            row.take(column)
                .into_value()
                .unwrap_or(sea_orm::Value::Bytes(None))
        }));
    }
    Statement::from_sql_and_values(backend, text.as_ref(), values)
}

/// Statement texts by (row type, is MySQL, rows): the two backends we run
/// on differ only in quoting.
type InsertTexts = HashMap<(std::any::TypeId, bool, usize), Arc<str>>;

fn insert_text(backend: DbBackend, table: &str, columns: &[&str], rows: usize) -> String {
    let quote = |name: &str| match backend {
        DbBackend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    };
    let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let row = format!("({})", vec!["?"; names.len()].join(", "));
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        quote(table),
        names.join(", "),
        vec![row; rows].join(", ")
    )
}

/// Row counts a multi-row INSERT is cut into. Each count is one statement
/// shape, and the driver caches a prepared statement per shape on every
/// connection: a few fixed sizes keep that cache (and memory) small, where
/// every batch size from 1 to 256 would fill it with large statements.
/// Powers of two cut a group into as many statements as its size has bits
/// set (107 rows: 5, where sizes 256, 64, 16, 4, 1 took 8), and each
/// statement is a round trip while the group's callers wait. The largest
/// also keeps a statement under SQLite's bound-variable limit.
const STATEMENT_ROWS: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];

/// Cuts `rows` greedily into chunks of the sizes in `STATEMENT_ROWS`.
pub(crate) fn statement_chunks<T>(rows: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut rest = rows;
    for size in STATEMENT_ROWS {
        while rest.len() >= size {
            let (chunk, tail) = rest.split_at(size);
            chunks.push(chunk);
            rest = tail;
        }
    }
    chunks
}

/// Cuts a list of values for `IN (...)` into lists of the sizes in
/// `STATEMENT_ROWS`, each padded up to its size with `NULL`, which matches
/// nothing: one shape per size. MariaDB's range optimizer drops `NULL`s at
/// no cost, where padding with a repeated value doubled its work for a
/// list padded from 70 to 256.
pub(crate) fn padded_in_lists<T: Clone>(values: &[T]) -> Vec<Vec<Option<T>>> {
    let largest = STATEMENT_ROWS[0];
    values
        .chunks(largest)
        .map(|chunk| {
            let size = STATEMENT_ROWS
                .iter()
                .rev()
                .copied()
                .find(|&s| s >= chunk.len())
                .unwrap_or(largest);
            let mut list: Vec<Option<T>> = chunk.iter().cloned().map(Some).collect();
            list.resize(size, None);
            list
        })
        .collect()
}

/// `column IN (values)` as padded lists (`padded_in_lists`) joined by OR:
/// a statement whose other parts are fixed keeps one of a few shapes,
/// prepared once a connection, however many values it names.
pub(crate) fn is_in_padded<C, T>(column: C, values: &[T]) -> Condition
where
    C: ColumnTrait,
    T: Clone + Into<sea_orm::Value>,
    Option<T>: Into<sea_orm::Value>,
{
    padded_in_lists(values)
        .into_iter()
        .fold(Condition::any(), |any, list| any.add(column.is_in(list)))
}

pub(crate) fn status(s: TaskStatus) -> SimpleExpr {
    Expr::value(s.as_str())
}

/// Live tasks whose due time has come and that nobody holds a valid lease on.
pub(crate) fn claimable(now_ms: i64) -> Condition {
    Condition::all()
        .add(
            task::Column::Status.is_in(
                [
                    TaskStatus::Pending,
                    TaskStatus::Retrying,
                    TaskStatus::Delivering,
                ]
                .map(|s| s.as_str()),
            ),
        )
        .add(task::Column::NextAttemptAt.lte(now_ms))
        .add(
            Condition::any()
                .add(task::Column::LeaseUntil.is_null())
                .add(task::Column::LeaseUntil.lt(now_ms)),
        )
}

/// What cancelling a task sets: no next attempt and no lease, so that a
/// worker whose attempt is in flight cannot move the task on afterwards.
pub(crate) fn cancellation(now_ms: i64) -> Vec<(task::Column, SimpleExpr)> {
    vec![
        (task::Column::Status, status(TaskStatus::Cancelled)),
        (
            task::Column::NextAttemptAt,
            Expr::value(Option::<i64>::None),
        ),
        (
            task::Column::LeaseToken,
            Expr::value(Option::<Vec<u8>>::None),
        ),
        (task::Column::LeaseUntil, Expr::value(Option::<i64>::None)),
        (task::Column::UpdatedAt, Expr::value(now_ms)),
    ]
}

/// The ids of tasks that failed in `[from, to)`.
pub(crate) fn failed_between(
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> sea_orm::sea_query::SelectStatement {
    use crate::entities::task_failure;
    let mut query = sea_orm::sea_query::Query::select()
        .column(task_failure::Column::TaskId)
        .from(task_failure::Entity)
        .to_owned();
    if let Some(at) = from {
        query.and_where(task_failure::Column::FailedAt.gte(crate::mapping::ms(at)));
    }
    if let Some(at) = to {
        query.and_where(task_failure::Column::FailedAt.lt(crate::mapping::ms(at)));
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::in_memory_store;
    use crate::entities::attempt;
    use crate::mapping::attempt_row;
    use callback_core::{Attempt, TaskId};
    use chrono::Utc;

    #[test]
    fn batches_are_cut_into_a_few_statement_shapes() {
        let rows: Vec<u32> = (0..600).collect();
        let sizes: Vec<usize> = statement_chunks(&rows).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [256, 256, 64, 16, 8]);
        assert_eq!(sizes.iter().sum::<usize>(), 600);
        let rows: Vec<u32> = (0..3).collect();
        assert_eq!(statement_chunks(&rows).len(), 2);
        assert!(statement_chunks::<u32>(&[]).is_empty());
    }

    #[test]
    fn inserts_name_each_column_a_row_sets_once_per_row() {
        assert_eq!(
            insert_text(DbBackend::MySql, "tasks", &["id", "status"], 2),
            "INSERT INTO `tasks` (`id`, `status`) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            insert_text(DbBackend::Sqlite, "tasks", &["id"], 1),
            "INSERT INTO \"tasks\" (\"id\") VALUES (?)"
        );

        let attempt = Attempt::without_response(1, Utc::now(), "refused".into());
        let rows = vec![attempt_row(TaskId::new(), &attempt); 4];
        // The id is the database's to give: every other column, each row.
        let set = attempt::Column::iter().count() - 1;
        for backend in [DbBackend::MySql, DbBackend::Sqlite] {
            let statement = insert_rows(backend, rows.clone());
            assert!(statement.sql.contains("task_id"), "{}", statement.sql);
            assert!(!statement.sql.contains("(`id`"), "{}", statement.sql);
            assert!(!statement.sql.contains("(\"id\""), "{}", statement.sql);
            assert_eq!(statement.sql.matches('?').count(), 4 * set);
            assert_eq!(statement.values.map_or(0, |v| v.0.len()), 4 * set);
        }
    }

    #[test]
    fn in_lists_are_padded_to_a_few_shapes_with_nulls() {
        let values: Vec<u32> = (0..300).collect();
        let lists = padded_in_lists(&values);
        let sizes: Vec<usize> = lists.iter().map(Vec::len).collect();
        assert_eq!(sizes, [256, 64]);
        let tail: Vec<Option<u32>> = values[256..].iter().copied().map(Some).collect();
        assert_eq!(lists[1][..44], tail[..]);
        assert!(lists[1][44..].iter().all(Option::is_none));
        assert_eq!(
            padded_in_lists(&[7u32, 8, 9]),
            [vec![Some(7), Some(8), Some(9), None]]
        );
        assert_eq!(padded_in_lists(&[7u32]), [vec![Some(7)]]);
        assert!(padded_in_lists::<u32>(&[]).is_empty());
    }

    #[tokio::test]
    async fn statements_written_atomically_leave_nothing_when_one_fails() {
        let store = in_memory_store().await;
        let insert = |id: u8| {
            Statement::from_string(
                DbBackend::Sqlite,
                format!("INSERT INTO task_failures (task_id, failed_at) VALUES (x'{id:02x}', 1)"),
            )
        };
        let rows = || async {
            store
                .db
                .query_all(Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT task_id FROM task_failures",
                ))
                .await
                .expect("read")
                .len()
        };
        let refused = write_atomically(&store.writer, vec![insert(1), insert(2), insert(1)]).await;
        assert!(refused.is_err(), "a repeated key must fail the group");
        assert_eq!(rows().await, 0, "nothing of a failed group stays");

        let written = write_atomically(&store.writer, vec![insert(1)]).await;
        assert_eq!(written.expect("written").len(), 1);
        let written = write_atomically(&store.writer, vec![insert(2), insert(3)]).await;
        assert_eq!(written.expect("written").len(), 2);
        assert_eq!(rows().await, 3);
        assert!(write_atomically(&store.writer, vec![insert(3)])
            .await
            .is_err());
        assert!(write_atomically(&store.writer, Vec::new())
            .await
            .expect("nothing")
            .is_empty());
        assert_eq!(rows().await, 3);
    }
}
