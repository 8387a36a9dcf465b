//! Group commit. Concurrent writes of one kind (new tasks, claims, attempt
//! results) wait at most `max_wait` for each other and are written together:
//! a few statements and one commit serve many callers instead of one each.
//! A write that follows a group of one does not wait: at a modest rate
//! nothing would join it, and the wait was latency (three kinds of write,
//! 500 us each, on every task) for nothing.
//! Each caller is answered only after that commit, so "answered" still means
//! "durable".
//!
//! Tasks with an idempotency key take the single path, which tells an
//! existing task from a new one exactly.

use callback_core::StoreError;
use std::future::Future;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How writes are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// Writes grouped together, at most.
    pub max_batch: usize,
    /// How long the first write of a group waits for others, at most.
    pub max_wait: Duration,
}

type Reply<Out> = oneshot::Sender<Result<Out, StoreError>>;

struct Pending<In, Out> {
    item: In,
    reply: Reply<Out>,
}

/// One writer that groups the items handed to it and writes each group with
/// `write`, which answers every item of the group, in order, or fails the
/// whole group.
pub(crate) struct Batcher<In, Out> {
    tx: mpsc::Sender<Pending<In, Out>>,
}

impl<In, Out> Clone for Batcher<In, Out> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<In, Out> std::fmt::Debug for Batcher<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("waiting", &(self.tx.max_capacity() - self.tx.capacity()))
            .finish()
    }
}

impl<In: Send + 'static, Out: Send + 'static> Batcher<In, Out> {
    /// Starts the writer; each item counts as one write.
    pub(crate) fn start<W, Fut>(options: GroupCommitOptions, write: W) -> Self
    where
        W: Fn(Vec<In>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Out>, StoreError>> + Send + 'static,
    {
        Self::start_weighed(options, |_| 1, 1, write)
    }

    /// Starts the writer, where an item counts as `weigh(item)` writes
    /// towards `max_batch` (a batch of tasks as its tasks). A group takes
    /// at least one item, however heavy.
    pub(crate) fn start_weighed<W, Fut>(
        options: GroupCommitOptions,
        weigh: fn(&In) -> usize,
        in_flight: usize,
        write: W,
    ) -> Self
    where
        W: Fn(Vec<In>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Out>, StoreError>> + Send + 'static,
    {
        let max_batch = options.max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch * 4);
        tokio::spawn(write_groups(
            rx,
            max_batch,
            options.max_wait,
            weigh,
            in_flight.max(1),
            write,
        ));
        Self { tx }
    }

    /// Writes `item` with others. `Err` gives it back when the writer is
    /// gone (the runtime is shutting down); the caller then writes alone.
    pub(crate) async fn submit(&self, item: In) -> Result<Result<Out, StoreError>, In> {
        let (reply, answer) = oneshot::channel();
        if let Err(refused) = self.tx.send(Pending { item, reply }).await {
            return Err(refused.0.item);
        }
        Ok(answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(Box::new(std::io::Error::other(
                "the group writer stopped before answering",
            ))))
        }))
    }
}

async fn write_groups<In, Out, W, Fut>(
    mut rx: mpsc::Receiver<Pending<In, Out>>,
    max_batch: usize,
    max_wait: Duration,
    weigh: fn(&In) -> usize,
    in_flight: usize,
    write: W,
) where
    In: Send + 'static,
    Out: Send + 'static,
    W: Fn(Vec<In>) -> Fut,
    Fut: Future<Output = Result<Vec<Out>, StoreError>> + Send + 'static,
{
    let writers = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    // Waiting for company pays only when company comes: after a group of
    // one, the next write goes at once, and whatever arrives while it is
    // written makes the next group.
    let mut company = false;
    loop {
        let Ok(permit) = writers.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut weight = weigh(&first.item);
        let mut group = vec![first];
        let deadline = tokio::time::Instant::now() + max_wait;
        while weight < max_batch {
            // Whatever queued up while the last group was written joins at
            // once; only then is it worth waiting for more.
            let next = match rx.try_recv() {
                Ok(next) => next,
                Err(_) if !company => break,
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(next)) => next,
                    _ => break,
                },
            };
            weight += weigh(&next.item);
            group.push(next);
        }
        company = group.len() > 1;
        let (items, replies): (Vec<In>, Vec<_>) =
            group.into_iter().map(|p| (p.item, p.reply)).unzip();
        let written = write(items);
        tokio::spawn(async move {
            answer(written.await, replies);
            drop(permit);
        });
    }
}

/// Answers every caller of a group, in order.
fn answer<Out>(written: Result<Vec<Out>, StoreError>, replies: Vec<Reply<Out>>) {
    match written {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(err) => {
            // Nothing of the group was written: every caller hears so,
            // with the store's own words for why.
            let message = match std::error::Error::source(&err) {
                Some(cause) => format!("{err}: {cause}"),
                None => err.to_string(),
            };
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable(Box::new(
                    std::io::Error::other(message.clone()),
                ))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn concurrent_items_are_written_together_and_answered_in_order() {
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = writes.clone();
        let batcher = Batcher::start(
            GroupCommitOptions {
                max_batch: 64,
                max_wait: Duration::from_millis(50),
            },
            move |items: Vec<u32>| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { Ok(items.into_iter().map(|i| i * 2).collect()) }
            },
        );
        let calls: Vec<_> = (0..40u32)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.submit(i).await) })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.expect("join");
            let answer = answer.expect("writer alive");
            assert_eq!(answer.expect("written"), i * 2);
        }
        assert!(writes.load(Ordering::SeqCst) < 40, "items were not grouped");
    }

    #[tokio::test]
    async fn a_group_holds_items_up_to_their_weight() {
        let groups = Arc::new(Mutex::new(Vec::new()));
        let seen = groups.clone();
        let batcher = Batcher::start_weighed(
            GroupCommitOptions {
                max_batch: 25,
                max_wait: Duration::from_millis(50),
            },
            Vec::len,
            1,
            move |lists: Vec<Vec<u32>>| {
                seen.lock()
                    .unwrap()
                    .push(lists.iter().map(Vec::len).sum::<usize>());
                async move { Ok(lists) }
            },
        );
        let calls: Vec<_> = (0..6u32)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.submit(vec![i; 10]).await) })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.expect("join");
            assert_eq!(answer.expect("writer alive").expect("written"), vec![i; 10]);
        }
        let groups = groups.lock().unwrap().clone();
        assert_eq!(groups.iter().sum::<usize>(), 60);
        // A group closes once it weighs 25 or more: three lists of ten.
        assert!(groups.iter().all(|&rows| rows <= 30), "{groups:?}");
        assert!(groups.len() >= 2, "{groups:?}");
    }

    #[tokio::test]
    async fn groups_are_written_side_by_side_up_to_the_bound() {
        let (writing, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (now, peak) = (writing.clone(), most.clone());
        let batcher = Batcher::start_weighed(
            GroupCommitOptions {
                max_batch: 1,
                max_wait: Duration::from_millis(1),
            },
            |_: &u32| 1,
            2,
            move |items: Vec<u32>| {
                let (now, peak) = (now.clone(), peak.clone());
                async move {
                    let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(at_once, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    Ok(items)
                }
            },
        );
        let calls: Vec<_> = (0..8u32)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { b.submit(i).await })
            })
            .collect();
        for call in calls {
            assert!(call.await.expect("join").expect("writer alive").is_ok());
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    /// On tokio's paused clock, which moves only when every task waits: a
    /// write that waited for company would move it by `max_wait`.
    #[tokio::test(start_paused = true)]
    async fn writes_wait_for_company_only_after_a_group_had_some() {
        let max_wait = Duration::from_secs(10);
        let groups = Arc::new(Mutex::new(Vec::new()));
        let seen = groups.clone();
        let batcher = Batcher::start(
            GroupCommitOptions {
                max_batch: 8,
                max_wait,
            },
            move |items: Vec<u32>| {
                seen.lock().unwrap().push(items.len());
                async move { Ok(items) }
            },
        );
        let started = tokio::time::Instant::now();
        assert_eq!(batcher.submit(1).await.expect("alive").expect("written"), 1);
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "a lone write went at once"
        );

        // Two together make a group with company; the write after it
        // waits for more, up to max_wait.
        let (a, b) = tokio::join!(batcher.submit(2), batcher.submit(3));
        assert!(a.is_ok() && b.is_ok());
        let started = tokio::time::Instant::now();
        assert_eq!(batcher.submit(4).await.expect("alive").expect("written"), 4);
        assert_eq!(started.elapsed(), max_wait);
        // That one was alone: the next goes at once again.
        let started = tokio::time::Instant::now();
        assert_eq!(batcher.submit(5).await.expect("alive").expect("written"), 5);
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(*groups.lock().unwrap(), [1, 2, 1, 1]);
    }

    #[tokio::test]
    async fn a_failed_write_fails_every_item_of_its_group() {
        let batcher = Batcher::start(
            GroupCommitOptions {
                max_batch: 8,
                max_wait: Duration::from_millis(20),
            },
            |_: Vec<u32>| async { Err::<Vec<u32>, _>(StoreError::NotFound) },
        );
        let (a, b) = tokio::join!(batcher.submit(1), batcher.submit(2));
        assert!(matches!(a, Ok(Err(StoreError::Unavailable(_)))));
        assert!(matches!(b, Ok(Err(StoreError::Unavailable(_)))));
    }
}
