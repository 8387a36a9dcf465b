//! The dispatcher, the delay-queue pump and the reconciler, and the handle
//! intake uses to offer new tasks.

use crate::receivers::{receiver_key, Admission, Receivers, Waiting};
use crate::work::{Origin, Work};
use crate::HttpSender;
use async_trait::async_trait;
use callback_core::lock;
use callback_core::{
    decide, Attempt, AttemptFacts, AttemptReport, AttemptResult, AttemptTrace, ClaimedTask,
    DelayQueue, Dispatch, Disposition, Finish, Handoff, Lease, LeaseToken, Observe, Recorded,
    RetrySchedule, Task, TaskId, TaskStore,
};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Attempts in flight at once, over all receivers.
    pub concurrency: usize,
    /// Ids waiting for a worker. Past this, due tasks wait in the store.
    pub channel_capacity: usize,
    pub default_schedule: RetrySchedule,
    /// At most this fraction of a default-schedule delay is added at random.
    pub jitter: f64,
    /// A lease lasts a task's timeout plus this margin.
    pub lease_margin: Duration,
    pub reconcile_interval: Duration,
    /// Due tasks read from the store per reconciler pass, at most.
    pub reconcile_batch: u32,
    /// Scheduled tasks loaded into the delay queue at start, at most.
    pub rebuild_limit: u32,
    /// How long attempts in flight may finish at shutdown before their
    /// leases are released.
    pub shutdown_grace: Duration,
}

/// What became of an id offered to the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    Taken,
    /// In the channel or being delivered here already.
    AlreadyHere,
    /// The channel is full; the id must wait elsewhere.
    ChannelFull,
}

struct Engine {
    store: Arc<dyn TaskStore>,
    queue: Arc<dyn DelayQueue>,
    sender: HttpSender,
    receivers: Arc<Receivers>,
    config: DeliveryConfig,
    tx: mpsc::Sender<TaskId>,
    /// Ids in the channel or being delivered here, so that the reconciler
    /// and the pump do not queue one task twice.
    queued: Mutex<HashSet<TaskId>>,
    /// Told of every attempt and every task that ends (the metrics).
    observer: Arc<dyn Observe>,
    /// Free workers; the dispatcher and intake's handoffs take them.
    workers: Arc<Semaphore>,
    /// Attempts in flight, waited for at shutdown.
    attempts: TaskTracker,
    /// The runtime delivery runs on, once it runs. Intake calls from the
    /// HTTP server's own per-thread runtimes, which stop first at shutdown:
    /// attempts it hands over must not run there.
    runtime: OnceLock<tokio::runtime::Handle>,
    /// Cancelled when shutdown starts: intake hands over no more tasks.
    closing: CancellationToken,
    /// Cancelled when the shutdown grace is over: attempts still in flight
    /// give their lease back and stop.
    hard_stop: CancellationToken,
    /// Queue writes nobody waits for, sent together: one queue call for all
    /// that came while the last one was out.
    queue_writes: Mutex<QueueWrites>,
    /// Woken when `queue_writes` gets its first entry.
    queue_writes_ready: Notify,
}

/// Queue writes waiting to be sent. None needs to be in the queue before
/// its caller goes on: the store is the truth, and the reconciler puts
/// back what the queue lacks.
#[derive(Default)]
struct QueueWrites {
    /// Ids taken from the queue whose attempts have ended.
    acks: Vec<TaskId>,
    /// New tasks, and when they are due.
    fresh: Vec<(TaskId, DateTime<Utc>)>,
    /// Taken ids put off (deferred, or retried later), and when they are
    /// due again.
    later: Vec<(TaskId, DateTime<Utc>)>,
}

impl QueueWrites {
    fn len(&self) -> usize {
        self.acks.len() + self.fresh.len() + self.later.len()
    }
}

/// Queue writes waiting to be sent, at most. Past this, the caller sends
/// its own, which slows it down as the queue is.
const QUEUE_WRITES_MAX: usize = 8192;

/// The delivery engine, built and ready to run.
pub struct Delivery {
    engine: Arc<Engine>,
    rx: mpsc::Receiver<TaskId>,
}

/// What intake holds to offer committed tasks to delivery.
#[derive(Clone)]
pub struct DeliveryHandle {
    engine: Arc<Engine>,
}

impl Delivery {
    pub fn new(
        store: Arc<dyn TaskStore>,
        queue: Arc<dyn DelayQueue>,
        sender: HttpSender,
        receivers: Arc<Receivers>,
        observer: Arc<dyn Observe>,
        config: DeliveryConfig,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let engine = Arc::new(Engine {
            store,
            queue,
            sender,
            receivers,
            observer,
            workers: Arc::new(Semaphore::new(config.concurrency.max(1))),
            tx,
            queued: Mutex::new(HashSet::new()),
            attempts: TaskTracker::new(),
            runtime: OnceLock::new(),
            closing: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            queue_writes: Mutex::new(QueueWrites::default()),
            queue_writes_ready: Notify::new(),
            config,
        });
        Self { engine, rx }
    }

    pub fn handle(&self) -> DeliveryHandle {
        DeliveryHandle {
            engine: self.engine.clone(),
        }
    }

    /// Delivers until `shutdown` is cancelled, then lets attempts in flight
    /// finish within the grace period and releases the leases of the rest.
    pub async fn run(self, shutdown: CancellationToken) {
        let Delivery { engine, mut rx } = self;
        let _ = engine.runtime.set(tokio::runtime::Handle::current());
        let background = TaskTracker::new();
        background.spawn(reconcile(engine.clone(), shutdown.clone()));
        background.spawn(pump(engine.clone(), shutdown.clone()));
        background.spawn(send_queue_writes(engine.clone(), shutdown.clone()));
        background.spawn(
            engine
                .receivers
                .clone()
                .sync_shared_limits(shutdown.clone()),
        );

        let attempts = engine.attempts.clone();
        loop {
            // The id first, then a worker: an idle dispatcher holds no
            // worker that intake could hand a task to.
            let id = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                id = rx.recv() => match id {
                    Some(id) => id,
                    None => break,
                },
            };
            let permit = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    // Still due in the store: the next start finds it.
                    engine.queued().remove(&id);
                    break;
                }
                permit = engine.workers.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let engine = engine.clone();
            attempts.spawn(spawned(async move {
                engine.deliver(id).await;
                drop(permit);
            }));
        }

        engine.closing.cancel();
        background.close();
        attempts.close();
        if tokio::time::timeout(engine.config.shutdown_grace, attempts.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = attempts.len(),
                "shutdown grace over: releasing the leases of attempts still in flight"
            );
            engine.hard_stop.cancel();
            attempts.wait().await;
        }
        // Tasks still waiting for a slot go back to the store untried.
        for work in engine.receivers.take_all_waiting() {
            engine.defer(&work.claim, Utc::now(), "shutting down").await;
        }
        background.wait().await;
        engine.flush_queue_writes().await;
    }
}

#[async_trait]
impl Dispatch for DeliveryHandle {
    async fn accepted(&self, id: TaskId, due: DateTime<Utc>) {
        self.accepted_many(&[(id, due)]).await;
    }

    async fn accepted_many(&self, tasks: &[(TaskId, DateTime<Utc>)]) {
        self.engine.accepted_many(tasks).await;
    }

    fn reserve(&self, timeout_ms: u32) -> Option<Box<dyn Handoff>> {
        if self.engine.closing.is_cancelled() {
            return None;
        }
        let runtime = self.engine.runtime.get()?.clone();
        let worker = self.engine.workers.clone().try_acquire_owned().ok()?;
        let lasts = Duration::from_millis(u64::from(timeout_ms)) + self.engine.config.lease_margin;
        Some(Box::new(Reserved {
            engine: self.engine.clone(),
            runtime,
            worker,
            lease: Lease {
                token: LeaseToken::new(),
                until: Utc::now()
                    + chrono::TimeDelta::from_std(lasts).unwrap_or(chrono::TimeDelta::MAX),
            },
        }))
    }
}

/// A worker held for a task intake is about to store leased.
struct Reserved {
    engine: Arc<Engine>,
    runtime: tokio::runtime::Handle,
    worker: OwnedSemaphorePermit,
    lease: Lease,
}

impl Handoff for Reserved {
    fn lease(&self) -> Lease {
        self.lease
    }

    fn deliver(self: Box<Self>, task: Task) {
        let Reserved {
            engine,
            runtime,
            worker,
            lease,
        } = *self;
        let claim = ClaimedTask::leased_at_intake(task, lease.token);
        // A fresh id: nobody else can have queued it.
        engine.queued().insert(claim.task.id);
        // Should shutdown win the race with this spawn, the lease expires
        // and the task is delivered again: at least once, never lost.
        let attempts = engine.attempts.clone();
        attempts.spawn_on(
            spawned(async move {
                engine.attempt(claim, Origin::Intake).await;
                drop(worker);
            }),
            &runtime,
        );
    }
}

/// An attempt's future, boxed before it is spawned. It is several KiB,
/// and tokio moves a spawned future whole into its task cell and writes
/// that cell whole again as the task finishes: while a backlog drained,
/// memory copies were a tenth of the server's CPU samples, half of them of
/// these futures. Boxed, the cell holds a pointer and the future is copied
/// once, into its box. (The HTTP exchange inside had been boxed on its own
/// for the same reason; with the whole attempt boxed, that second box
/// counted no fewer instructions under callgrind, and went.)
fn spawned<F: std::future::Future<Output = ()>>(attempt: F) -> std::pin::Pin<Box<F>> {
    Box::pin(attempt)
}

impl Engine {
    /// Takes tasks that became due in the store (new ones, or the next of
    /// an ordering key): a free worker here, else the shared queue.
    async fn accepted_many(&self, tasks: &[(TaskId, DateTime<Utc>)]) {
        let now = Utc::now();
        let later: Vec<(TaskId, DateTime<Utc>)> = tasks
            .iter()
            .copied()
            .filter(|&(id, due)| !(due <= now && self.offer(id) == Offer::Taken))
            .collect();
        if later.is_empty() {
            return;
        }
        // Not due yet, or our workers are busy: a shared queue lets any
        // instance take them, sent with other writes just after the
        // answer. Should that fail, the reconciler finds them.
        if !self.queue_write(|w| w.fresh.extend_from_slice(&later)) {
            self.send_fresh(&later).await;
        }
    }

    fn queued(&self) -> MutexGuard<'_, HashSet<TaskId>> {
        // The set stays consistent under a panic (single insert/remove calls).
        lock(&self.queued)
    }

    /// Puts an id in the channel unless it is already queued here or the
    /// channel is full. Never waits.
    fn offer(&self, id: TaskId) -> Offer {
        if !self.queued().insert(id) {
            return Offer::AlreadyHere;
        }
        match self.tx.try_send(id) {
            Ok(()) => Offer::Taken,
            Err(_) => {
                self.queued().remove(&id);
                Offer::ChannelFull
            }
        }
    }

    async fn deliver(&self, id: TaskId) {
        let claim = match self
            .store
            .claim(id, Utc::now(), self.config.lease_margin)
            .await
        {
            Ok(Some(claim)) => claim,
            Ok(None) => {
                // Another worker or instance has it, or it is no longer due:
                // whoever holds it schedules what comes next.
                self.queued().remove(&id);
                self.ack(id, Origin::Queue).await;
                return;
            }
            Err(err) => {
                // Left in flight in the queue: it comes back when that
                // lease ends, and it stays due in the store meanwhile.
                tracing::warn!(task_id = %id, error = %err, "could not claim a task; it stays due in the store");
                self.queued().remove(&id);
                return;
            }
        };
        self.attempt(claim, Origin::Queue).await;
    }

    /// Makes one attempt of a claimed task, then, with the same worker, of
    /// each task that waited for the slot an attempt freed.
    async fn attempt(&self, claim: ClaimedTask, origin: Origin) {
        let mut next = Some(Work { claim, origin });
        while let Some(work) = next.take() {
            next = self.attempt_once(work).await;
        }
    }

    /// Makes one attempt, records it and schedules what comes next. Returns
    /// a task that waited for the slot this attempt freed.
    async fn attempt_once(&self, mut work: Work) -> Option<Work> {
        let id = work.claim.task.id;
        let mut admissions = 0;
        let mut pass = loop {
            admissions += 1;
            match self.receivers.admit(&work.claim.task, Utc::now()).await {
                Admission::Send(pass) => break pass,
                Admission::Defer { until, why, limit } => {
                    if let Some(result) = limit {
                        let receiver = receiver_key(&work.claim.task);
                        self.observer.attempt(&receiver, result, Duration::ZERO);
                    }
                    self.defer(&work.claim, until, &why).await;
                    return None;
                }
                Admission::Fail(why) => {
                    let claim = &work.claim;
                    let attempt = Attempt::without_response(claim.attempt_number, Utc::now(), why);
                    let recorded = self.record(claim, &attempt, Disposition::Failed).await;
                    if recorded.applied {
                        self.finished(&claim.task, Finish::Failed);
                    }
                    self.queued().remove(&id);
                    self.ack(id, work.origin).await;
                    return recorded.promoted.map(|claim| self.take_promoted(claim));
                }
                Admission::AtCap { key, until, why } => {
                    // Every slot taken: counted once per time it is met.
                    self.observer
                        .attempt(&key, AttemptResult::DeferredCap, Duration::ZERO);
                    match self.receivers.wait(&key, work) {
                        Waiting::Held => return None,
                        Waiting::SlotFree(w) if admissions < 3 => work = w,
                        // The freed slot keeps being taken by others first: not
                        // worth chasing.
                        Waiting::SlotFree(w) => {
                            self.defer(&w.claim, until, &why).await;
                            return None;
                        }
                        Waiting::NoRoom(w, paced) => {
                            self.defer(&w.claim, paced.unwrap_or(until), &why).await;
                            return None;
                        }
                    }
                }
            }
        };
        let Work { claim, origin } = work;
        let started_at = Utc::now();
        let clock = std::time::Instant::now();
        let outcome = tokio::select! {
            outcome = self.sender.send(&claim, pass.signing.as_ref()) => outcome,
            _ = self.hard_stop.cancelled() => {
                // Tasks waiting for this slot are given back at shutdown.
                let interrupted = Attempt::without_response(
                    claim.attempt_number,
                    started_at,
                    "interrupted by shutdown; will be attempted again".into(),
                );
                let now = Utc::now();
                if let Err(err) = self.store.release(&claim, &interrupted, now).await {
                    tracing::warn!(task_id = %id, error = %err, "could not release a lease; it expires on its own");
                }
                self.queued().remove(&id);
                // Due again at once, for another instance sharing the queue.
                if let Err(err) = self.queue.schedule(id, now).await {
                    tracing::debug!(task_id = %id, error = %err, "delay queue refused a released task; the reconciler will find it");
                }
                return None;
            }
        };
        self.receivers
            .record(&pass, outcome.success, clock.elapsed());
        let receiver = std::mem::take(&mut pass.key);
        drop(pass);
        let task = &claim.task;
        self.observer.attempt_report(&AttemptReport {
            task_id: id,
            attempt: claim.attempt_number,
            app: task.spec.source_app.as_deref(),
            receiver: &receiver,
            method: task.spec.method,
            url: &task.spec.url,
            trace: task
                .spec
                .traceparent
                .zip(outcome.span)
                .map(|(parent, span)| AttemptTrace { parent, span }),
            started_at: outcome.started_at,
            duration: outcome.duration,
            status_code: outcome.status_code,
            result: outcome.result(),
            error: outcome.error.as_deref(),
        });
        let (schedule, jitter) = match &task.spec.retry_schedule {
            Some(own) => (own, 0.0),
            None => (
                &self.config.default_schedule,
                fastrand::f64() * self.config.jitter,
            ),
        };
        let next = decide(
            AttemptFacts {
                success: outcome.success,
                attempts_used: task.attempts_used() + 1,
                max_attempts: task.spec.max_attempts.get(),
                retry_after: outcome.retry_after,
            },
            schedule,
            jitter,
            Utc::now(),
        );
        let attempt = outcome.to_attempt(claim.attempt_number);
        if attempt.success {
            tracing::debug!(task_id = %id, receiver = %receiver, attempt = attempt.number, duration_ms = attempt.duration_ms, ?next, "attempt finished");
        } else {
            // One line per failure, with what the receiver did; never the
            // request (its headers may hold the receiver's credentials).
            tracing::warn!(
                task_id = %id,
                receiver = %receiver,
                attempt = attempt.number,
                duration_ms = attempt.duration_ms,
                status = attempt.status_code,
                error = attempt.error.as_deref().unwrap_or(""),
                ?next,
                "attempt failed"
            );
        }
        let Recorded {
            applied: recorded,
            promoted,
        } = self.record(&claim, &attempt, next).await;
        match (recorded, next) {
            (true, Disposition::Succeeded) => self.finished(task, Finish::Delivered),
            (true, Disposition::Failed) => self.finished(task, Finish::Failed),
            _ => {}
        }
        self.queued().remove(&id);
        match (recorded, next) {
            // Scheduling also takes the id out of flight.
            (true, Disposition::RetryAt(at)) => self.schedule_later(id, at).await,
            _ => self.ack(id, origin).await,
        }
        let waited = self.next_waiting(&receiver).await;
        // The next task of its ordering key, claimed for this worker in the
        // same commit. Should a task be waiting for the slot just freed, it
        // goes first, and the next of the key waits behind it.
        match (promoted, waited) {
            (Some(claim), None) => Some(self.take_promoted(claim)),
            (Some(claim), Some(waited)) => {
                let work = self.take_promoted(claim);
                let key = receiver_key(&work.claim.task);
                match self.receivers.wait(&key, work) {
                    Waiting::Held => {}
                    Waiting::SlotFree(work) | Waiting::NoRoom(work, _) => {
                        self.defer(
                            &work.claim,
                            Utc::now(),
                            "its worker went on with another task",
                        )
                        .await;
                    }
                }
                Some(waited)
            }
            (None, waited) => waited,
        }
    }

    /// Work for a task claimed by the commit that ended the one before it
    /// on its ordering key.
    fn take_promoted(&self, claim: ClaimedTask) -> Work {
        // Waiting until now, it was never due: nobody else can have it queued.
        self.queued().insert(claim.task.id);
        Work {
            claim,
            origin: Origin::Promoted,
        }
    }

    /// Tells the observer that `task` ended for good now.
    fn finished(&self, task: &Task, finish: Finish) {
        let age = (Utc::now() - task.created_at).to_std().unwrap_or_default();
        self.observer
            .finished(task.spec.source_app.as_deref(), finish, age);
    }

    /// The task that has waited longest for a slot of `receiver`, to take
    /// the one just freed.
    async fn next_waiting(&self, receiver: &str) -> Option<Work> {
        let (waited, work) = self.receivers.next_waiting(receiver)?;
        // Its lease (the task's timeout plus the margin) could end during
        // the attempt: give it back untried instead.
        if waited > self.config.lease_margin / 2 {
            self.defer(&work.claim, Utc::now(), "waited too long for a slot")
                .await;
            return None;
        }
        Some(work)
    }

    /// Gives a claimed task back, untried, for later.
    async fn defer(&self, claim: &ClaimedTask, until: DateTime<Utc>, why: &str) {
        let id = claim.task.id;
        tracing::debug!(task_id = %id, %until, why, "task deferred without an attempt");
        if let Err(err) = self.store.defer(claim, until, Utc::now()).await {
            tracing::warn!(task_id = %id, error = %err, "could not defer a task; its lease expires on its own");
        }
        self.queued().remove(&id);
        self.schedule_later(id, until).await;
    }

    /// Puts a taken id back in the queue, due at `at`, together with the
    /// others put off meanwhile: a busy receiver's deferrals come by the
    /// hundred, and were a queue call each.
    async fn schedule_later(&self, id: TaskId, at: DateTime<Utc>) {
        if !self.queue_write(|w| w.later.push((id, at))) {
            self.send_later(&[(id, at)]).await;
        }
    }

    /// Tells the queue a taken id is done with, together with the others
    /// that finish meanwhile. Until then the id stays in flight there, which
    /// is harmless: should its lease end first, it comes back, and a claim
    /// finds nothing due.
    async fn ack(&self, id: TaskId, origin: Origin) {
        if origin != Origin::Queue {
            return;
        }
        if !self.queue_write(|w| w.acks.push(id)) {
            self.send_acks(&[id]).await;
        }
    }

    /// Adds a write to those waiting to be sent, unless `QUEUE_WRITES_MAX`
    /// are waiting already: then says `false`, and the caller sends it.
    fn queue_write(&self, add: impl FnOnce(&mut QueueWrites)) -> bool {
        let was_empty = {
            let mut writes = self.queue_writes();
            if writes.len() >= QUEUE_WRITES_MAX {
                return false;
            }
            let was_empty = writes.len() == 0;
            add(&mut writes);
            was_empty
        };
        if was_empty {
            self.queue_writes_ready.notify_one();
        }
        true
    }

    fn queue_writes(&self) -> MutexGuard<'_, QueueWrites> {
        // Only added to and taken whole; a panic cannot leave it torn.
        lock(&self.queue_writes)
    }

    async fn flush_queue_writes(&self) {
        let writes = std::mem::take(&mut *self.queue_writes());
        self.send_fresh(&writes.fresh).await;
        self.send_acks(&writes.acks).await;
        self.send_later(&writes.later).await;
    }

    async fn send_later(&self, entries: &[(TaskId, DateTime<Utc>)]) {
        if entries.is_empty() {
            return;
        }
        if let Err(err) = self.queue.schedule_many(entries).await {
            tracing::debug!(tasks = entries.len(), error = %err, "delay queue refused tasks put off; the reconciler will find them");
        }
    }

    /// Puts new tasks in the queue.
    async fn send_fresh(&self, entries: &[(TaskId, DateTime<Utc>)]) {
        if entries.is_empty() {
            return;
        }
        if let Err(err) = self.queue.add_new(entries).await {
            tracing::debug!(tasks = entries.len(), error = %err, "delay queue refused tasks; the reconciler will find them");
        }
    }

    async fn send_acks(&self, ids: &[TaskId]) {
        if ids.is_empty() {
            return;
        }
        if let Err(err) = self.queue.ack(ids).await {
            tracing::debug!(tasks = ids.len(), error = %err, "delay queue ack failed; the in-flight leases expire on their own");
        }
    }

    /// Writes the attempt and the next step, retrying while the store is
    /// unreachable for as long as the lease lasts. Returns whether the state
    /// change applied, and what it let start. If it never could be written,
    /// the lease expires and the task is delivered again: at least once,
    /// never lost.
    async fn record(&self, claim: &ClaimedTask, attempt: &Attempt, next: Disposition) -> Recorded {
        let give_up_at = tokio::time::Instant::now() + self.config.lease_margin;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self
                .store
                .complete(claim, attempt, next, Utc::now(), self.config.lease_margin)
                .await
            {
                Ok(recorded) => {
                    if !recorded.applied {
                        tracing::info!(task_id = %claim.task.id, "attempt recorded, but the task had changed meanwhile (cancelled or lease lost)");
                    }
                    return recorded;
                }
                Err(err) if tokio::time::Instant::now() + backoff < give_up_at => {
                    tracing::warn!(task_id = %claim.task.id, error = %err, "could not record an attempt; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(err) => {
                    tracing::error!(task_id = %claim.task.id, error = %err, "gave up recording an attempt; the task will be delivered again when its lease expires");
                    return Recorded::default();
                }
            }
        }
    }
}

/// Hands due ids from the delay queue to the channel as their time comes.
async fn pump(engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = engine.queue.wait(Duration::from_secs(1)) => {}
        }
        let free = engine.tx.capacity();
        if free == 0 {
            // Workers are behind; due ids stay in the queue meanwhile.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        match engine.queue.take_due(Utc::now(), free).await {
            Ok(ids) => {
                failing = false;
                for id in ids {
                    match engine.offer(id) {
                        Offer::Taken => {}
                        // Its holder here schedules what comes next.
                        Offer::AlreadyHere => engine.ack(id, Origin::Queue).await,
                        // Due again, for whichever worker is free first.
                        Offer::ChannelFull => {
                            if let Err(err) = engine.queue.schedule(id, Utc::now()).await {
                                tracing::debug!(task_id = %id, error = %err, "could not put a task back; the reconciler will find it");
                            }
                        }
                    }
                }
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(error = %err, "delay queue unavailable; the reconciler polls the store");
                    failing = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Sends queue writes in groups until shutdown; `run` sends the last ones
/// once every attempt has ended.
async fn send_queue_writes(engine: Arc<Engine>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = engine.queue_writes_ready.notified() => {}
        }
        engine.flush_queue_writes().await;
    }
}

/// Loads the delay queue from the store at start, then periodically puts
/// back every due task nobody holds: overflow from a full channel, tasks
/// whose worker or instance died, entries a queue lost (a Redis flush or
/// restart). While the queue cannot be reached, it offers those tasks to the
/// workers itself: delivery goes on by polling the store.
async fn reconcile(engine: Arc<Engine>, shutdown: CancellationToken) {
    match engine
        .store
        .scheduled(Utc::now(), engine.config.rebuild_limit)
        .await
    {
        Ok(entries) => match engine.queue.restore(&entries).await {
            Ok(()) => tracing::info!(
                scheduled = entries.len(),
                queue = engine.queue.backend(),
                "delay queue rebuilt from the store"
            ),
            Err(err) => {
                tracing::warn!(error = %err, "could not rebuild the delay queue; the reconciler polls the store")
            }
        },
        Err(err) => {
            tracing::warn!(error = %err, "could not rebuild the delay queue; polling the store instead")
        }
    }
    let mut queue_was_down = false;
    loop {
        let now = Utc::now();
        let due = engine.store.due(now, engine.config.reconcile_batch).await;
        // Ids already in this instance's channel or workers are on their
        // way: under load they are most of what the store reports, and
        // putting them back would only send them round the queue again.
        let due = due.map(|ids| {
            let queued = engine.queued();
            ids.into_iter()
                .filter(|id| !queued.contains(id))
                .collect::<Vec<_>>()
        });
        match due {
            Ok(ids) if !ids.is_empty() => {
                let entries: Vec<_> = ids.iter().map(|&id| (id, now)).collect();
                match engine.queue.restore(&entries).await {
                    Ok(()) => {
                        if queue_was_down {
                            tracing::info!(
                                queue = engine.queue.backend(),
                                "delay queue reachable again"
                            );
                            queue_was_down = false;
                        }
                    }
                    Err(err) => {
                        if !queue_was_down {
                            tracing::warn!(error = %err, "delay queue unreachable; delivering by polling the store");
                            queue_was_down = true;
                        }
                        for id in ids {
                            if engine.tx.capacity() == 0 {
                                break;
                            }
                            // Whatever does not fit waits for the next pass.
                            let _ = engine.offer(id);
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "reconciler could not read due tasks"),
        }
        for work in engine
            .receivers
            .take_waiting_longer_than(engine.config.lease_margin / 2)
        {
            engine
                .defer(&work.claim, Utc::now(), "waited too long for a slot")
                .await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(engine.config.reconcile_interval) => {}
        }
    }
}
