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
