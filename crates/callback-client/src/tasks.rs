//! Tasks: submit, read, list, re-send, cancel, wait; in bulk and by
//! failed bucket.

use crate::client::{Client, Repeat};
use crate::error::Error;
use crate::ops;
use crate::types::{
    Batch, Bucket, Bulk, BulkResult, NewTask, Page, RetriedBucket, RetryBucket, Task, TaskFilter,
};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// What a submit came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub task: Task,
    /// `false` when the idempotency key named a task submitted before:
    /// `task` is that one, and nothing new was created.
    pub created: bool,
}

/// A key for a submit that has none, so that its retries are one task.
pub(crate) fn fresh_idempotency_key() -> String {
    format!("cbc-client-{}", uuid::Uuid::new_v4().simple())
}

/// A listing's query: its filter, and where the previous page ended.
#[derive(Serialize)]
pub(crate) struct Cursor<'a, F: Serialize> {
    #[serde(flatten)]
    pub(crate) filter: &'a F,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<&'a str>,
}

#[derive(Serialize)]
struct Tasks<'a> {
    tasks: &'a [NewTask],
}

/// A listing that is one page: its items.
#[derive(Deserialize)]
pub(crate) struct Items<T> {
    pub(crate) items: Vec<T>,
}

impl Client {
    /// Submits a task. Without an `idempotency_key` one is generated, so
    /// that a submit retried after a broken connection creates one task.
    pub async fn submit(&self, task: &NewTask) -> Result<Submitted, Error> {
        let keyed;
        let task = if task.idempotency_key.is_some() {
            task
        } else {
            keyed = NewTask {
                idempotency_key: Some(fresh_idempotency_key()),
                ..task.clone()
            };
            &keyed
        };
        let (status, task) = self
            .call(ops::CREATE_TASK, &[], None, Some(task), Repeat::Safe)
            .await?;
        Ok(Submitted {
            task,
            created: status == 201,
        })
    }

    /// Submits up to 1,000 tasks in one transaction: all are stored, or
    /// none. Each without an idempotency key gets one.
    pub async fn submit_batch(&self, tasks: &[NewTask]) -> Result<Batch, Error> {
        let tasks: Vec<NewTask> = tasks
            .iter()
            .map(|t| NewTask {
                idempotency_key: t
                    .idempotency_key
                    .clone()
                    .or_else(|| Some(fresh_idempotency_key())),
                ..t.clone()
            })
            .collect();
        let body = Tasks { tasks: &tasks };
        Ok(self
            .call(ops::CREATE_TASKS, &[], None, Some(&body), Repeat::Safe)
            .await?
            .1)
    }

    /// One task, with every attempt.
    pub async fn task(&self, task_id: &str) -> Result<Task, Error> {
        Ok(self
            .call(ops::GET_TASK, &[task_id], None, None, Repeat::Safe)
            .await?
            .1)
    }

    /// One page of tasks, newest first; pass the previous page's
    /// `next_cursor` for the next.
    pub async fn tasks(
        &self,
        filter: &TaskFilter,
        cursor: Option<&str>,
    ) -> Result<Page<Task>, Error> {
        let query = Cursor { filter, cursor };
        Ok(self
            .call(ops::LIST_TASKS, &[], Some(&query), None, Repeat::Safe)
            .await?
            .1)
    }

    /// Every task the filter shows, page after page, as a stream.
    ///
    /// ```no_run
    /// # async fn run(client: callback_client::Client) -> Result<(), callback_client::Error> {
    /// use futures_util::TryStreamExt;
    /// let filter = callback_client::TaskFilter { status: Some("failed".into()), ..Default::default() };
    /// let failed: Vec<_> = client.tasks_stream(filter).try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn tasks_stream(&self, filter: TaskFilter) -> impl Stream<Item = Result<Task, Error>> + '_ {
        pages(move |cursor| {
            let filter = filter.clone();
            async move { self.tasks(&filter, cursor.as_deref()).await }
        })
    }

    /// Re-sends a finished task with a fresh budget of attempts.
    pub async fn retry_task(&self, task_id: &str) -> Result<Task, Error> {
        Ok(self
            .call(ops::RETRY_TASK, &[task_id], None, None, Repeat::Unsafe)
            .await?
            .1)
    }

    /// Cancels a task that has not finished.
    pub async fn cancel_task(&self, task_id: &str) -> Result<Task, Error> {
        Ok(self
            .call(ops::CANCEL_TASK, &[task_id], None, None, Repeat::Unsafe)
            .await?
            .1)
    }

    /// Re-sends every finished task the filter matches (or only counts
    /// them, with `dry_run`).
    pub async fn retry_tasks(&self, filter: &Bulk) -> Result<BulkResult, Error> {
        let repeat = if filter.dry_run == Some(true) {
            Repeat::Safe
        } else {
            Repeat::Unsafe
        };
        Ok(self
            .call(ops::RETRY_TASKS, &[], None, Some(filter), repeat)
            .await?
            .1)
    }

    /// Cancels every unfinished task the filter matches (or only counts
    /// them, with `dry_run`).
    pub async fn cancel_tasks(&self, filter: &Bulk) -> Result<BulkResult, Error> {
        let repeat = if filter.dry_run == Some(true) {
            Repeat::Safe
        } else {
            Repeat::Unsafe
        };
        Ok(self
            .call(ops::CANCEL_TASKS, &[], None, Some(filter), repeat)
            .await?
            .1)
    }

    /// The ten-minute buckets of tasks that failed for good.
    pub async fn buckets(&self) -> Result<Vec<Bucket>, Error> {
        let (_, list): (_, Items<Bucket>) = self
            .call(ops::LIST_BUCKETS, &[], None, None, Repeat::Safe)
            .await?;
        Ok(list.items)
    }

    /// Re-sends a bucket's tasks, to their URL or `target_url`.
    pub async fn retry_bucket(&self, bucket: &RetryBucket) -> Result<RetriedBucket, Error> {
        Ok(self
            .call(ops::RETRY_BUCKET, &[], None, Some(bucket), Repeat::Unsafe)
            .await?
            .1)
    }

    /// The receivers whose breaker is open or half open, on the instance
    /// that answers.
    pub async fn breakers(&self) -> Result<Vec<serde_json::Value>, Error> {
        let (_, list): (_, Items<serde_json::Value>) = self
            .call(ops::LIST_BREAKERS, &[], None, None, Repeat::Safe)
            .await?;
        Ok(list.items)
    }

    /// Polls the task until its status is one of `statuses` (e.g.
    /// `["succeeded", "failed"]`), or `timeout` passes.
    pub async fn wait_for(
        &self,
        task_id: &str,
        statuses: &[&str],
        timeout: Duration,
    ) -> Result<Task, Error> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let task = self.task(task_id).await?;
            if statuses.contains(&task.status.as_str()) {
                return Ok(task);
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(Error::WaitTimedOut {
                    task_id: task_id.to_string(),
                    status: task.status,
                    waited,
                });
            }
            tokio::time::sleep(pause.min(timeout - waited)).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

/// The items of every page, fetched one page at a time as they are read.
pub(crate) fn pages<T, F, Fut>(fetch: F) -> impl Stream<Item = Result<T, Error>>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, Error>>,
{
    struct State<T> {
        items: std::vec::IntoIter<T>,
        next: Option<Option<String>>,
    }
    let start = State {
        items: Vec::new().into_iter(),
        next: Some(None),
    };
    futures_util::stream::try_unfold((start, fetch), |(mut state, fetch)| async move {
        loop {
            if let Some(item) = state.items.next() {
                return Ok(Some((item, (state, fetch))));
            }
            let Some(cursor) = state.next.take() else {
                return Ok(None);
            };
            let page = fetch(cursor).await?;
            state.items = page.items.into_iter();
            state.next = page.next_cursor.map(Some);
        }
    })
}
