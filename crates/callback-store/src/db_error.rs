//! The one place where driver errors are classified.

use callback_core::StoreError;
use sea_orm::{DbErr, DeleteResult, SqlErr};

/// Any database error means nothing was written that the caller may rely on.
pub fn unavailable(err: DbErr) -> StoreError {
    StoreError::Unavailable(Box::new(err))
}

/// `true` when an insert hit the unique index on the idempotency key.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// A delete by primary key: `NotFound` when there was nothing to delete,
/// so that deleting twice answers 404 the second time.
pub fn deleted_one(result: Result<DeleteResult, DbErr>) -> Result<(), StoreError> {
    match result.map_err(unavailable)?.rows_affected {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

/// `true` when MariaDB chose this transaction as a deadlock's victim and
/// rolled it back whole (error 1213, SQLSTATE 40001): nothing of it was
/// written, and running it again is what the server asks for.
pub fn is_deadlock(err: &StoreError) -> bool {
    matches!(err, StoreError::Unavailable(cause) if cause.to_string().contains("(40001)"))
}

/// Runs a transaction again when it lost a deadlock, a few times. Keyed
/// writes lock ordering keys and the gaps of their places; two intakes of
/// new keys that sort next to each other can each wait on the other's gap.
pub async fn retrying_deadlocks<T, F, Fut>(mut run: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    const TRIES: u32 = 5;
    let mut tries = 1;
    loop {
        match run().await {
            Err(err) if tries < TRIES && is_deadlock(&err) => {
                tries += 1;
                // A moment apart, so that the two do not meet again.
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(tries) * 2)).await;
            }
            other => return other,
        }
    }
}
