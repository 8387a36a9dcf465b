//! The one place where driver errors are classified.

use callback_core::StoreError;
use sea_orm::{DbErr, SqlErr};

/// Any database error means nothing was written that the caller may rely on.
pub fn unavailable(err: DbErr) -> StoreError {
    StoreError::Unavailable(Box::new(err))
}

/// `true` when an insert hit the unique index on the idempotency key.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}
