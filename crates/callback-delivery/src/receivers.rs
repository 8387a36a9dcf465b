//! Per-receiver policy, consulted after a task is claimed and before it is
//! sent. A receiver is an endpoint (for event tasks) or a URL origin (for
//! plain tasks). Each has a cap on attempts in flight, an optional rate
//! limit and a circuit breaker, so one slow, hanging or failing receiver
//! cannot take the workers from the others. A task whose receiver is at its
//! cap waits in memory, without a worker, for that receiver's next attempt
//! to end (a bounded number: see `ReceiverLimits::max_waiting`); any other
//! task its receiver cannot take now is deferred in the store, not
//! attempted, never dropped.
//!
//! State is per instance and bounded: idle receivers are forgotten.

use crate::breaker::{Breaker, BreakerConfig, BreakerState, Transition, Verdict};
use crate::health::{EndpointHealth, HealthWrite};
use crate::pace::Pace;
use crate::work::Work;
use callback_core::{lock, TtlCache};
use callback_core::{
    AlertHook, AlertHookId, AlertKind, AlertStore, Endpoint, EndpointName, EndpointStore, Notices,
    ReceiverStatus, ReceiverWatch, SharedLimits, SignatureScheme, Signing, TargetUrl, Task,
};
use chrono::{DateTime, TimeDelta, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a task of a disabled endpoint is put off. Enabling the endpoint
/// brings its tasks forward at once; this bounds the wait were that missed.
const DISABLED_DEFERRAL: TimeDelta = TimeDelta::hours(1);
/// How long endpoint settings are cached: an update is seen within this.
const ENDPOINT_TTL: Duration = Duration::from_secs(2);
/// Receivers remembered before idle ones are forgotten.
const MAX_REMEMBERED: usize = 10_000;
/// How often the cluster's paused receivers are read: a pause one
/// instance decides holds on all of them within this.
const SHARED_SYNC: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct ReceiverLimits {
    /// Attempts in flight per receiver unless its endpoint says otherwise.
    pub max_in_flight: u32,
    /// Tasks waiting in memory for a slot, over all receivers. One receiver
    /// may hold its cap or half of these, whichever is more, so that one
    /// slow receiver cannot fill the room for all.
    pub max_waiting: usize,
    pub breaker: BreakerConfig,
}

/// What the gate decided for one claimed task.
pub enum Admission {
    Send(Pass),
    /// Not now: give the task back, due at `until`, without an attempt.
    Defer {
        until: DateTime<Utc>,
        why: String,
        /// How the deferral is counted: a limit of the receiver's (breaker,
        /// rate), or `None` for the rest (a disabled endpoint, a store
        /// hiccup).
        limit: Option<callback_core::AttemptResult>,
    },
    /// It can never be sent (its endpoint is gone).
    Fail(String),
    /// Its receiver has every slot taken: wait for one (`Receivers::wait`),
    /// or, with no room to wait, defer to `until`.
    AtCap {
        key: String,
        until: DateTime<Utc>,
        why: String,
    },
}

/// What became of a task that waits for a slot of its receiver.
pub(crate) enum Waiting {
    /// Held until an attempt of its receiver ends (`Receivers::next_waiting`).
    Held,
    /// A slot freed meanwhile: admit it again.
    SlotFree(Work),
    /// No room to wait: defer it, until the time the receiver's pace gives
    /// once it has one.
    NoRoom(Work, Option<DateTime<Utc>>),
}

/// Leave to send one attempt: holds a slot of the receiver until dropped.
pub struct Pass {
    pub(crate) key: String,
    _slot: OwnedSemaphorePermit,
    /// How to sign, with the current secret of the endpoint or alert hook.
    pub signing: Option<Signing>,
}

/// How much an allowance grows by when it must: an eighth of the cap, so
/// that a busy receiver costs a few Redis calls, not one per attempt.
fn allowance_chunk(capacity: u32) -> u32 {
    (capacity / 8).max(1)
}

/// How long an instance's allowance of a receiver's cluster-wide cap
/// lasts unless set again (every `SHARED_SYNC`): an instance that dies
/// gives its share back within this.
const ALLOWANCE_LEASE: Duration = Duration::from_secs(10);

struct Receiver {
    slots: Arc<Semaphore>,
    capacity: u32,
    limiter: Option<(u32, DefaultDirectRateLimiter)>,
    breaker: Breaker,
    /// Claimed tasks waiting for a slot, oldest first, with when they began.
    waiting: VecDeque<(Instant, Work)>,
    /// When tasks that find no room should come back.
    pace: Pace,
    /// Its streak of failures, and what the store was told of it (for an
    /// endpoint).
    health: EndpointHealth,
    /// How many attempts this instance may have in flight under the
    /// receiver's cluster-wide cap (with Redis).
    allowance: u32,
}

impl Receiver {
    fn new(capacity: u32, breaker: BreakerConfig) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            limiter: None,
            breaker: Breaker::new(breaker),
            waiting: VecDeque::new(),
            pace: Pace::default(),
            health: EndpointHealth::default(),
            allowance: 0,
        }
    }

    fn in_flight(&self) -> u32 {
        self.capacity
            .saturating_sub(u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX))
    }
}

pub struct Receivers {
    endpoints: Arc<dyn EndpointStore>,
    alerts: Arc<dyn AlertStore>,
    notices: Arc<dyn Notices>,
    limits: ReceiverLimits,
    receivers: Mutex<HashMap<String, Receiver>>,
    /// Tasks waiting for a slot over all receivers (changed under the
    /// `receivers` lock).
    waiting: AtomicUsize,
    endpoint_cache: TtlCache<EndpointName, Endpoint>,
    hook_cache: TtlCache<AlertHookId, AlertHook>,
    /// The cluster's breakers (Redis); `None`: each instance alone.
    shared: Option<Arc<dyn SharedLimits>>,
    /// This instance's name for its allowances of cluster-wide caps.
    holder: String,
    /// Receivers the cluster paused, as last read, with the end of each
    /// pause; and whether that read succeeded (else: local breakers only).
    shared_open: Mutex<HashMap<String, DateTime<Utc>>>,
    shared_ok: std::sync::atomic::AtomicBool,
}

/// The receiver key of a task: its endpoint, or its URL's origin.
pub fn receiver_key(task: &Task) -> String {
    match (&task.spec.endpoint, task.spec.alert_hook) {
        (Some(name), _) => format!("endpoint:{name}"),
        (None, Some(hook)) => format!("alert:{hook}"),
        (None, None) => origin_key(&task.spec.url),
    }
}

/// The URL's origin, `scheme://host[:port]`: what `Url::origin` serializes
/// for an http(s) URL without credentials (which `TargetUrl` refuses), cut
/// from the URL's own text instead of rebuilt and formatted per task.
fn origin_key(url: &TargetUrl) -> String {
    url.as_url()[..url::Position::BeforePath].to_owned()
}

impl Receivers {
    pub fn new(
        endpoints: Arc<dyn EndpointStore>,
        alerts: Arc<dyn AlertStore>,
        notices: Arc<dyn Notices>,
        limits: ReceiverLimits,
    ) -> Self {
        Self {
            endpoints,
            alerts,
            notices,
            limits,
            receivers: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            endpoint_cache: TtlCache::new(ENDPOINT_TTL, MAX_REMEMBERED),
            hook_cache: TtlCache::new(ENDPOINT_TTL, MAX_REMEMBERED),
            shared: None,
            holder: format!("{:016x}", fastrand::u64(..)),
            shared_open: Mutex::new(HashMap::new()),
            shared_ok: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Shares breakers with the other instances: a receiver one of them
    /// paused is paused here too, within `SHARED_SYNC`.
    pub fn with_shared_limits(mut self, shared: Arc<dyn SharedLimits>) -> Self {
        self.shared = Some(shared);
        self.shared_ok.store(true, Ordering::Relaxed);
        self
    }

    /// The cluster's limits while Redis answers. After a failed call each
    /// attempt uses this instance's own limits, without waiting on Redis
    /// again, until the next sync finds Redis answering.
    fn shared_while_up(&self) -> Option<&Arc<dyn SharedLimits>> {
        self.shared
            .as_ref()
            .filter(|_| self.shared_ok.load(Ordering::Relaxed))
    }

    fn shared_failed(&self, what: &str, key: &str, err: &callback_core::QueueError) {
        if self.shared_ok.swap(false, Ordering::Relaxed) {
            tracing::warn!(receiver = %key, error = %err, "{what} unreachable; each instance uses its own limits until Redis answers");
        }
    }

    /// Reads the cluster's paused receivers every `SHARED_SYNC` until
    /// `shutdown`. While Redis does not answer, the local breakers go on
    /// alone (never no breaker), and `/readyz` says so.
    pub async fn sync_shared_limits(
        self: Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        loop {
            if self.shared_ok.load(Ordering::Relaxed) {
                self.settle_allowances(shared.as_ref()).await;
            }
            match shared.open_now(Utc::now()).await {
                Ok(open) => {
                    *lock(&self.shared_open) = open.into_iter().collect();
                    if !self.shared_ok.swap(true, Ordering::Relaxed) {
                        // Redis is back: allowances held from before may
                        // have ended there; each is asked for afresh.
                        for receiver in lock(&self.receivers).values_mut() {
                            receiver.allowance = 0;
                        }
                    }
                }
                Err(err) => self.shared_failed("the shared circuit breakers", "*", &err),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(SHARED_SYNC) => {}
            }
        }
    }

    /// Makes sure this instance's allowance of the receiver's cluster-wide
    /// cap covers one more attempt, growing it by a chunk when it does not:
    /// `Ok(false)` when the cluster has no room.
    async fn grow_allowance(
        &self,
        shared: &dyn SharedLimits,
        key: &str,
        capacity: u32,
        breaker: BreakerConfig,
    ) -> Result<bool, callback_core::QueueError> {
        let capacity = capacity.max(1);
        let (needed, allowance) = {
            let mut receivers = lock(&self.receivers);
            let receiver = receivers
                .entry(key.to_string())
                .or_insert_with(|| Receiver::new(capacity, breaker));
            (receiver.in_flight() + 1, receiver.allowance)
        };
        if needed <= allowance {
            return Ok(true);
        }
        let want = (needed + allowance_chunk(capacity)).min(capacity);
        let granted = shared
            .allow(key, capacity, &self.holder, want, ALLOWANCE_LEASE, true)
            .await?;
        if let Some(receiver) = lock(&self.receivers).get_mut(key) {
            receiver.allowance = receiver.allowance.max(granted);
        }
        Ok(granted >= needed)
    }

    /// Sets each allowance to what its receiver uses now (plus a chunk
    /// while busy, nothing once idle), which also renews its lease: room
    /// this instance does not use goes back to the others.
    async fn settle_allowances(&self, shared: &dyn SharedLimits) {
        let held: Vec<(String, u32, u32)> = lock(&self.receivers)
            .iter()
            .filter(|(_, r)| r.allowance > 0)
            .map(|(key, r)| {
                let in_flight = r.in_flight();
                let target = if in_flight == 0 {
                    0
                } else {
                    (in_flight + allowance_chunk(r.capacity)).min(r.capacity)
                };
                (key.clone(), r.capacity, target)
            })
            .collect();
        for (key, capacity, target) in held {
            match shared
                .allow(&key, capacity, &self.holder, target, ALLOWANCE_LEASE, false)
                .await
            {
                Ok(granted) => {
                    if let Some(receiver) = lock(&self.receivers).get_mut(&key) {
                        receiver.allowance = granted;
                    }
                }
                Err(err) => {
                    self.shared_failed("the shared in-flight cap", &key, &err);
                    return;
                }
            }
        }
    }

    /// Tells the cluster, in the background, that this instance paused a
    /// receiver or saw it answer again.
    fn share_transition(&self, key: &str, until: Option<DateTime<Utc>>) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let key = key.to_string();
        tokio::spawn(async move {
            let told = match until {
                Some(until) => shared.open(&key, until).await,
                None => shared.close(&key).await,
            };
            if let Err(err) = told {
                tracing::debug!(receiver = %key, error = %err, "could not share a breaker's change; this instance keeps it");
            }
        });
    }

    async fn endpoint(&self, name: &EndpointName) -> Result<Option<Endpoint>, String> {
        if let Some(cached) = self.endpoint_cache.get(name) {
            return Ok(cached);
        }
        let found = self
            .endpoints
            .endpoint(name)
            .await
            .map_err(|e| format!("cannot read endpoint {name}: {e}"))?;
        self.endpoint_cache.put(name.clone(), found.clone());
        Ok(found)
    }

    async fn hook(&self, id: AlertHookId) -> Result<Option<AlertHook>, String> {
        if let Some(cached) = self.hook_cache.get(&id) {
            return Ok(cached);
        }
        let found = self
            .alerts
            .hook(id)
            .await
            .map_err(|e| format!("cannot read alert hook {id}: {e}"))?;
        self.hook_cache.put(id, found.clone());
        Ok(found)
    }

    /// Decides whether the claimed task may be sent now.
    pub async fn admit(&self, task: &Task, now: DateTime<Utc>) -> Admission {
        let mut capacity = self.limits.max_in_flight;
        let mut breaker = self.limits.breaker;
        let mut rate = None;
        let mut signing = None;
        if let Some(name) = &task.spec.endpoint {
            let endpoint = match self.endpoint(name).await {
                Ok(Some(endpoint)) => endpoint,
                Ok(None) => {
                    return Admission::Fail(format!("endpoint {name} no longer exists; not sent"))
                }
                Err(why) => {
                    return Admission::Defer {
                        until: now + TimeDelta::seconds(5),
                        why,
                        limit: None,
                    }
                }
            };
            if !endpoint.enabled {
                return Admission::Defer {
                    until: now + DISABLED_DEFERRAL,
                    why: format!("endpoint {name} is disabled"),
                    limit: None,
                };
            }
            capacity = endpoint.max_in_flight.unwrap_or(capacity);
            rate = endpoint.rate_limit_per_s;
            breaker.failure_threshold = endpoint
                .breaker
                .failure_threshold
                .unwrap_or(breaker.failure_threshold);
            breaker.failure_ratio = endpoint
                .breaker
                .failure_ratio
                .unwrap_or(breaker.failure_ratio);
            if endpoint.signature == SignatureScheme::Standard {
                signing = Some(Signing::Standard(endpoint.secret));
            }
        } else if let Some(id) = task.spec.alert_hook {
            let hook = match self.hook(id).await {
                Ok(Some(hook)) => hook,
                Ok(None) => {
                    return Admission::Fail(format!("alert hook {id} no longer exists; not sent"))
                }
                Err(why) => {
                    return Admission::Defer {
                        until: now + TimeDelta::seconds(5),
                        why,
                        limit: None,
                    }
                }
            };
            signing = match (hook.kind, hook.secret) {
                (AlertKind::Dingtalk, Some(secret)) => {
                    Some(Signing::Dingtalk(secret.expose().to_string()))
                }
                (AlertKind::Webhook, Some(secret)) => Some(Signing::Standard(secret)),
                _ => None,
            };
        }
        let key = receiver_key(task);
        // Paused by another instance: put off before this instance's own
        // breaker is asked, which could otherwise hand out its half-open
        // trial to a task that then never goes.
        let paused_until = self.shared.as_ref().and_then(|_| {
            lock(&self.shared_open)
                .get(&key)
                .copied()
                .filter(|until| *until > now)
        });
        if let Some(until) = paused_until {
            return Admission::Defer {
                until,
                why: format!("another instance opened the circuit breaker of {key}"),
                limit: Some(callback_core::AttemptResult::DeferredBreaker),
            };
        }
        // With Redis, the cap on attempts in flight holds for the cluster:
        // this instance grows its allowance before it needs it (a Redis
        // call now and then, not one per attempt); while Redis does not
        // answer, each instance's own cap (below) holds.
        let mut within_allowance = false;
        if let Some(shared) = self.shared_while_up() {
            match self
                .grow_allowance(shared.as_ref(), &key, capacity, breaker)
                .await
            {
                Ok(true) => within_allowance = true,
                Ok(false) => {
                    let wait = u64::from(task.spec.timeout_ms).clamp(200, 1_000);
                    return Admission::Defer {
                        until: now
                            + TimeDelta::milliseconds((wait + fastrand::u64(0..wait)) as i64),
                        why: format!("{key} has {capacity} attempts in flight across the cluster"),
                        limit: Some(callback_core::AttemptResult::DeferredCap),
                    };
                }
                Err(err) => self.shared_failed("the shared in-flight cap", &key, &err),
            }
        }
        // With Redis, a rate limit holds for the cluster; while Redis does
        // not answer, each instance's own limiter (below) holds instead.
        let mut rate_shared = false;
        if let (Some(per_s), Some(shared)) = (rate.filter(|r| *r > 0), self.shared_while_up()) {
            match shared.take_rate_token(&key, per_s, now).await {
                Ok(true) => rate_shared = true,
                Ok(false) => {
                    let next_second = now.timestamp() + 1;
                    let until = DateTime::from_timestamp(next_second, 0).unwrap_or(now)
                        + TimeDelta::milliseconds(fastrand::i64(0..250));
                    return Admission::Defer {
                        until,
                        why: format!(
                            "{key} is limited to {per_s} requests a second across the cluster"
                        ),
                        limit: Some(callback_core::AttemptResult::DeferredRate),
                    };
                }
                Err(err) => self.shared_failed("the shared rate limit", &key, &err),
            }
        }
        let clock = Instant::now();
        let mut receivers = lock(&self.receivers);
        if receivers.len() >= MAX_REMEMBERED && !receivers.contains_key(&key) {
            receivers.retain(|_, r| r.in_flight() > 0 || !r.breaker.is_idle(clock));
        }
        let receiver = receivers
            .entry(key.clone())
            .or_insert_with(|| Receiver::new(capacity, breaker));
        let limits = receiver.breaker.config();
        if (limits.failure_threshold, limits.failure_ratio)
            != (breaker.failure_threshold, breaker.failure_ratio)
        {
            receiver
                .breaker
                .set_limits(breaker.failure_threshold, breaker.failure_ratio);
        }
        if receiver.capacity != capacity.max(1) {
            // Settings changed: new slots; attempts in flight keep the old ones.
            receiver.slots = Arc::new(Semaphore::new(capacity.max(1) as usize));
            receiver.capacity = capacity.max(1);
        }
        let Ok(slot) = receiver.slots.clone().try_acquire_owned() else {
            // A slot frees when an attempt ends; spread the retries out.
            let wait = u64::from(task.spec.timeout_ms).clamp(500, 2_000);
            return Admission::AtCap {
                until: now + TimeDelta::milliseconds((wait + fastrand::u64(0..wait)) as i64),
                why: format!("{key} has {capacity} attempts in flight"),
                key,
            };
        };
        // Others admitted meanwhile on this instance may have used the
        // allowance up: checked again under the lock, before the breaker
        // could hand this task its half-open trial. Its slot goes back and
        // it is admitted again, which grows the allowance past those
        // others, or finds the cluster's cap reached and defers it. Given
        // back to the store at once instead, 1% of a burst of 2,000 tasks
        // due together arrived 2 s late, the rest within 0.14 s.
        if within_allowance && receiver.in_flight() > receiver.allowance {
            let wait = u64::from(task.spec.timeout_ms).clamp(200, 1_000);
            return Admission::AtCap {
                until: now + TimeDelta::milliseconds((wait + fastrand::u64(0..wait)) as i64),
                why: format!("{key} has {capacity} attempts in flight across the cluster"),
                key,
            };
        }
        if let Some(per_s) = rate.and_then(NonZeroU32::new).filter(|_| !rate_shared) {
            let limiter = match &receiver.limiter {
                Some((r, limiter)) if *r == per_s.get() => limiter,
                _ => {
                    receiver.limiter =
                        Some((per_s.get(), RateLimiter::direct(Quota::per_second(per_s))));
                    &receiver.limiter.as_ref().expect("just set").1
                }
            };
            if let Err(not_until) = limiter.check() {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
                return Admission::Defer {
                    until: now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(1)),
                    why: format!("{key} is limited to {per_s} requests a second"),
                    limit: Some(callback_core::AttemptResult::DeferredRate),
                };
            }
        }
        if let Verdict::WaitUntil(until) = receiver.breaker.check(clock) {
            let wait = until.saturating_duration_since(clock);
            return Admission::Defer {
                until: now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(5)),
                why: format!("the circuit breaker of {key} is open"),
                limit: Some(callback_core::AttemptResult::DeferredBreaker),
            };
        }
        Admission::Send(Pass {
            key,
            _slot: slot,
            signing,
        })
    }

    /// Holds a task whose receiver was at its cap until one of the
    /// receiver's attempts ends. Checked under the same lock as the slots
    /// are handed out, so that a slot freed meanwhile is never missed.
    pub(crate) fn wait(&self, key: &str, work: Work) -> Waiting {
        let mut receivers = lock(&self.receivers);
        let Some(receiver) = receivers.get_mut(key) else {
            return Waiting::SlotFree(work);
        };
        if receiver.slots.available_permits() > 0 {
            return Waiting::SlotFree(work);
        }
        let own_room = (receiver.capacity as usize).max(self.limits.max_waiting / 2);
        let room = receiver.waiting.len() < own_room
            && self.waiting.load(Ordering::Relaxed) < self.limits.max_waiting;
        if !room {
            let ahead = receiver.waiting.len();
            let capacity = receiver.capacity;
            let paced = receiver
                .pace
                .put_off(Instant::now(), ahead, capacity)
                .and_then(|off| TimeDelta::from_std(off).ok())
                .map(|off| Utc::now() + off);
            return Waiting::NoRoom(work, paced);
        }
        receiver.waiting.push_back((Instant::now(), work));
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting::Held
    }

    /// After an attempt of `key` ended and gave its slot back: the task
    /// that has waited longest for one, with how long it waited.
    pub(crate) fn next_waiting(&self, key: &str) -> Option<(Duration, Work)> {
        let mut receivers = lock(&self.receivers);
        let (since, work) = receivers.get_mut(key)?.waiting.pop_front()?;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        Some((since.elapsed(), work))
    }

    /// Tasks that have waited longer than `age`. A waiting task is taken by
    /// the next attempt of its receiver to end; should those attempts all
    /// end in a deferral instead, this sweep is what frees it.
    pub(crate) fn take_waiting_longer_than(&self, age: Duration) -> Vec<Work> {
        let mut receivers = lock(&self.receivers);
        let mut stale = Vec::new();
        for receiver in receivers.values_mut() {
            while receiver
                .waiting
                .front()
                .is_some_and(|(since, _)| since.elapsed() > age)
            {
                if let Some((_, work)) = receiver.waiting.pop_front() {
                    stale.push(work);
                }
            }
        }
        self.waiting.fetch_sub(stale.len(), Ordering::Relaxed);
        stale
    }

    /// Every waiting task, at shutdown.
    pub(crate) fn take_all_waiting(&self) -> Vec<Work> {
        let mut receivers = lock(&self.receivers);
        let all: Vec<Work> = receivers
            .values_mut()
            .flat_map(|r| r.waiting.drain(..).map(|(_, work)| work))
            .collect();
        self.waiting.store(0, Ordering::Relaxed);
        all
    }

    /// Feeds an attempt's outcome to the receiver's breaker, and how long
    /// it took to its pace; logs openings and closings.
    pub fn record(&self, pass: &Pass, success: bool, took: Duration) {
        let now = Instant::now();
        let is_endpoint = pass.key.starts_with("endpoint:");
        let (transition, health) =
            lock(&self.receivers)
                .get_mut(&pass.key)
                .map_or((None, None), |r| {
                    r.pace.ended(took);
                    let health = if is_endpoint {
                        r.health.record(success, Utc::now(), now)
                    } else {
                        None
                    };
                    (r.breaker.record(success, now), health)
                });
        if let Some(health) = health {
            self.write_health(&pass.key, health);
        }
        match transition {
            Some(Transition::Opened {
                pause,
                openings_24h,
            }) => {
                tracing::warn!(
                    receiver = %pass.key,
                    pause_s = pause.as_secs(),
                    openings_24h,
                    "circuit breaker opened: the receiver keeps failing; its tasks wait"
                );
                self.share_transition(
                    &pass.key,
                    Some(Utc::now() + TimeDelta::from_std(pause).unwrap_or(TimeDelta::minutes(5))),
                );
                self.notices.breaker_opened(&pass.key, pause, openings_24h);
            }
            Some(Transition::Closed) => {
                tracing::info!(receiver = %pass.key, "circuit breaker closed: the receiver answers again");
                self.share_transition(&pass.key, None);
            }
            None => {}
        }
    }

    /// Writes, in the background, since when an endpoint has failed every
    /// attempt, or that it answers: what disabling endpoints that fail for
    /// days reads (`health.rs` says how seldom).
    fn write_health(&self, key: &str, health: HealthWrite) {
        let Some(name) = key
            .strip_prefix("endpoint:")
            .and_then(|n| EndpointName::parse(n).ok())
        else {
            return;
        };
        let endpoints = self.endpoints.clone();
        tokio::spawn(async move {
            let written = match health {
                HealthWrite::FailingSince(since) => endpoints.mark_failing(&name, since).await,
                HealthWrite::Answers => endpoints.clear_failing(&name).await,
            };
            if let Err(err) = written {
                tracing::debug!(endpoint = %name, error = %err, "could not write the endpoint's health; it is written again within a minute");
            }
        });
    }

    fn status(key: &str, r: &Receiver, now: Instant) -> ReceiverStatus {
        let (breaker, open_until) = match r.breaker.state() {
            BreakerState::Closed => ("closed", None),
            BreakerState::Open { until } => (
                "open",
                Some(
                    Utc::now()
                        + TimeDelta::from_std(until.saturating_duration_since(now))
                            .unwrap_or_default(),
                ),
            ),
            BreakerState::HalfOpen { .. } => ("half_open", None),
        };
        let (attempts, failures) = r.breaker.recent(now);
        ReceiverStatus {
            receiver: key.to_string(),
            breaker,
            open_until,
            recent_failures: u32::try_from(failures).unwrap_or(u32::MAX),
            recent_attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            failure_ratio: if attempts == 0 {
                0.0
            } else {
                failures as f64 / attempts as f64
            },
            openings_24h: u32::try_from(r.breaker.openings_24h(now)).unwrap_or(u32::MAX),
            in_flight: r.in_flight(),
        }
    }
}

impl ReceiverWatch for Receivers {
    fn breakers_shared(&self) -> Option<bool> {
        self.shared
            .as_ref()
            .map(|_| self.shared_ok.load(Ordering::Relaxed))
    }

    fn endpoint_status(&self, name: &EndpointName) -> ReceiverStatus {
        let key = format!("endpoint:{name}");
        let now = Instant::now();
        match lock(&self.receivers).get(&key) {
            Some(r) => Self::status(&key, r, now),
            None => ReceiverStatus::idle(key),
        }
    }

    fn open_breakers(&self) -> Vec<ReceiverStatus> {
        let now = Instant::now();
        let mut open: Vec<_> = lock(&self.receivers)
            .iter()
            .filter(|(_, r)| r.breaker.state() != BreakerState::Closed)
            .map(|(k, r)| Self::status(k, r, now))
            .collect();
        open.sort_by(|a, b| a.receiver.cmp(&b.receiver));
        open
    }

    fn busy_receivers(&self) -> Vec<ReceiverStatus> {
        let now = Instant::now();
        lock(&self.receivers)
            .iter()
            .filter(|(_, r)| r.in_flight() > 0 || r.breaker.state() != BreakerState::Closed)
            .map(|(k, r)| Self::status(k, r, now))
            .collect()
    }

    fn forget_endpoint(&self, name: &EndpointName) {
        self.endpoint_cache.forget(name);
    }

    fn forget_alert_hook(&self, id: AlertHookId) {
        self.hook_cache.forget(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_key_is_the_urls_serialized_origin() {
        for raw in [
            "http://127.0.0.1:9000/hook?x=1",
            "https://Example.COM/a/b",
            "https://example.com:443/",
            "http://example.com:80/x",
            "http://example.com:8080",
            "https://bücher.example/",
            "http://[::1]:3000/p#frag",
        ] {
            let url = TargetUrl::parse(raw).expect("valid");
            assert_eq!(
                origin_key(&url),
                url.as_url().origin().ascii_serialization(),
                "{raw}"
            );
        }
    }
}
