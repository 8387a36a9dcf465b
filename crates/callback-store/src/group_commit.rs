//! Group commit of intake. Concurrent submissions of tasks without an
//! idempotency key wait at most `max_wait` for each other and are written as
//! one multi-row INSERT in one transaction; each caller is answered only
//! after that commit. One fsync then serves many tasks instead of one.
//!
//! Tasks with an idempotency key take the single path, which tells an
//! existing task from a new one exactly.

use crate::SqlTaskStore;
use callback_core::{Inserted, NewTask, StoreError, TaskStore};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How intake commits are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// Tasks written together, at most.
    pub max_batch: usize,
    /// How long the first task of a group waits for others, at most.
    pub max_wait: Duration,
}

struct Pending {
    task: NewTask,
    reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

/// The intake side of group commit: hands a task to the writer and waits
/// for its commit.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("task", &self.task.id)
            .finish()
    }
}

impl GroupCommit {
    /// Starts the writer on `store` (which must not group itself).
    pub(crate) fn start(store: SqlTaskStore, options: GroupCommitOptions) -> Self {
        let max_batch = options.max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch * 4);
        tokio::spawn(write_groups(store, rx, max_batch, options.max_wait));
        Self { tx }
    }

    /// `None` when the writer is gone; the caller then inserts alone.
    pub(crate) async fn insert(&self, task: &NewTask) -> Option<Result<Inserted, StoreError>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending {
                task: task.clone(),
                reply,
            })
            .await
            .ok()?;
        answer.await.ok()
    }
}

async fn write_groups(
    store: SqlTaskStore,
    mut rx: mpsc::Receiver<Pending>,
    max_batch: usize,
    max_wait: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        let deadline = tokio::time::Instant::now() + max_wait;
        while group.len() < max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(next)) => group.push(next),
                _ => break,
            }
        }
        let (tasks, replies): (Vec<NewTask>, Vec<_>) =
            group.into_iter().map(|p| (p.task, p.reply)).unzip();
        match store.insert_batch(&tasks).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(err) => {
                // Nothing of the group was stored: every caller hears so.
                let message = err.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(Box::new(
                        std::io::Error::other(message.clone()),
                    ))));
                }
            }
        }
    }
}
