//! A claimed task on its way to an attempt: what the engine hands to the
//! receivers' gate and what waits there for a slot. In a module of its own
//! so that the gate's bookkeeping (`receivers`) and the engine that drives
//! it both depend on it, and not on each other.

use callback_core::ClaimedTask;

/// A claimed task on its way to an attempt.
pub(crate) struct Work {
    pub(crate) claim: ClaimedTask,
    pub(crate) origin: Origin,
}

/// Where a task being attempted came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Taken from the delay queue or offered by the reconciler: the queue
    /// may hold it in flight until it is acknowledged.
    Queue,
    /// Stored already leased by intake: the queue never saw it.
    Intake,
    /// Claimed by the commit that ended the task before it on its ordering
    /// key: waiting until then, the queue never saw it.
    Promoted,
}
