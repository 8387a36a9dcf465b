//! Delay queues: indexes of task ids by due time that hand due tasks to the
//! dispatcher on time. The in-process queue serves the embedded default; the
//! store remains the truth, so a queue may forget an entry (capacity, crash)
//! and the reconciler finds the task again in the store.

mod in_process;

pub use in_process::InProcessDelayQueue;
