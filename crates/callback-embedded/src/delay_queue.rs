//! An in-process delay queue: a `BTreeSet<(due, id)>` plus a `Notify`, the
//! timer index of mini-redis. Its size is capped: when full it keeps the
//! soonest entries and forgets the latest, which wait in the store instead.

use async_trait::async_trait;
use callback_core::lock;
use callback_core::{DelayQueue, QueueError, TaskId};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Default)]
struct Entries {
    by_due: BTreeSet<(DateTime<Utc>, TaskId)>,
    due_of: HashMap<TaskId, DateTime<Utc>>,
}

pub struct InProcessDelayQueue {
    entries: Mutex<Entries>,
    /// Woken when an entry becomes the soonest, so the waiter re-arms its timer.
    sooner: Notify,
    capacity: usize,
}

impl InProcessDelayQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            sooner: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().by_due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding this lock leaves the sets consistent (every
        // mutation is a single insert/remove pair), so the data is usable.
        lock(&self.entries)
    }

    fn earliest(&self) -> Option<DateTime<Utc>> {
        self.lock().by_due.first().map(|(due, _)| *due)
    }
}

#[async_trait]
impl DelayQueue for InProcessDelayQueue {
    fn backend(&self) -> &'static str {
        "in_process"
    }

    async fn ping(&self) -> Result<(), QueueError> {
        Ok(())
    }

    async fn restore(&self, entries: &[(TaskId, DateTime<Utc>)]) -> Result<(), QueueError> {
        // Taken ids leave this queue at once, so nothing here is in flight;
        // the dispatcher drops an id it already holds.
        for &(id, due) in entries {
            self.schedule(id, due).await?;
        }
        Ok(())
    }

    async fn schedule(&self, id: TaskId, due: DateTime<Utc>) -> Result<(), QueueError> {
        let became_first = {
            let mut e = self.lock();
            if let Some(old) = e.due_of.remove(&id) {
                e.by_due.remove(&(old, id));
            }
            if e.by_due.len() >= self.capacity {
                match e.by_due.last().copied() {
                    Some(latest) if latest.0 > due => {
                        e.by_due.remove(&latest);
                        e.due_of.remove(&latest.1);
                    }
                    // Later than everything kept: the store keeps it.
                    _ => return Ok(()),
                }
            }
            e.by_due.insert((due, id));
            e.due_of.insert(id, due);
            e.by_due.first() == Some(&(due, id))
        };
        if became_first {
            self.sooner.notify_one();
        }
        Ok(())
    }

    async fn take_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<TaskId>, QueueError> {
        let mut e = self.lock();
        let mut taken = Vec::new();
        while taken.len() < limit {
            match e.by_due.first().copied() {
                Some((due, id)) if due <= now => {
                    e.by_due.remove(&(due, id));
                    e.due_of.remove(&id);
                    taken.push(id);
                }
                _ => break,
            }
        }
        Ok(taken)
    }

    async fn ack(&self, _ids: &[TaskId]) -> Result<(), QueueError> {
        // Taken ids leave the set at once; a lost one is found in the store.
        Ok(())
    }

    async fn wait(&self, max_wait: Duration) {
        let wait = match self.earliest() {
            Some(due) => (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(max_wait),
            None => max_wait,
        };
        if wait.is_zero() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.sooner.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(base: DateTime<Utc>, s: i64) -> DateTime<Utc> {
        base + TimeDelta::seconds(s)
    }

    #[tokio::test]
    async fn a_full_queue_keeps_the_soonest_entries() {
        let q = InProcessDelayQueue::new(2);
        let now = Utc::now();
        let (a, b, c, d) = (TaskId::new(), TaskId::new(), TaskId::new(), TaskId::new());
        q.schedule(a, at(now, -3)).await.unwrap();
        q.schedule(b, at(now, -1)).await.unwrap();
        q.schedule(c, at(now, 100)).await.unwrap(); // later than all: not kept
        q.schedule(d, at(now, -2)).await.unwrap(); // evicts b
        assert_eq!(q.len(), 2);
        assert_eq!(q.take_due(now, 10).await.unwrap(), vec![a, d]);
    }

    #[tokio::test]
    async fn wait_wakes_when_a_sooner_entry_arrives() {
        let q = std::sync::Arc::new(InProcessDelayQueue::new(10));
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                q.wait(Duration::from_secs(30)).await;
                started.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        q.schedule(TaskId::new(), Utc::now()).await.unwrap();
        let waited = waiter.await.unwrap();
        assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    }
}
