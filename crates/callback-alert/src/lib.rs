//! Alerts: tells each enabled alert hook (DingTalk, WeCom, webhook) about
//! tasks that failed for good and receivers whose breaker opened.
//!
//! The store is the truth here too. Each hook has a watermark: failures up
//! to it have been told. Every `check_interval`, for each hook whose last
//! message is at least `min_gap` old, the failures after the watermark are
//! read from the store (a hook's first message goes at once), summed into one message, and the message is stored
//! as a task to the hook in the same transaction that moves the watermark
//! (a conditional update: of several instances, one sends). So an alert
//! survives a crash, is retried like any task, and a burst of failures
//! makes one message a minute per hook, never a flood. Alert tasks are
//! never themselves the subject of an alert.

use callback_core::lock;
use callback_core::{
    alert_body, ops_alert_body, AlertDigest, AlertHook, AlertLinks, AlertStore, Body, DelayQueue,
    Dispatch, Expectation, HeaderList, JsonExpectation, MaxAttempts, Method, NewTask, Notices,
    Observe, OperatorStore, OpsAlert, QueryList, RetrySchedule, StoreError, TaskId, TaskSpec,
};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod failing_endpoints;
mod store_outage;
mod success_rate;
pub use store_outage::DirectSend;
pub use success_rate::{AttemptWindow, SuccessRateRule};

/// Breaker openings kept for the next messages, at most.
const MAX_NOTICES: usize = 100;
/// Retries of an alert: quick, since a stale alert is of little use.
const ALERT_RETRY_DELAYS_S: [u32; 4] = [10, 30, 60, 300];
const ALERT_MAX_ATTEMPTS: u32 = 5;
const ALERT_TIMEOUT_MS: u32 = 10_000;

#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// How often hooks are checked for news.
    pub check_interval: Duration,
    /// At least this long between two messages to one hook; what happens
    /// meanwhile is summed into the next.
    pub min_gap: Duration,
    /// A failure is reported once it is at least this old. Its failure
    /// time is taken just before its commit; a watermark closer to now
    /// could pass a failure not yet visible, which would then never be told.
    pub settle: Duration,
    pub links: AlertLinks,
    /// Tell the hooks when the oldest due task has waited longer than
    /// this; `None`: never.
    pub lag_threshold: Option<Duration>,
    /// Tell the hooks when Redis has not answered for this long; `None`:
    /// never.
    pub outage_after: Option<Duration>,
    /// Tell the hooks when too few delivery attempts succeed; `None`:
    /// never.
    pub success_rate: Option<SuccessRateRule>,
    /// While an operational condition lasts, it is told again this often.
    pub ops_repeat: Duration,
}

pub struct Alerter {
    store: Arc<dyn AlertStore>,
    /// Where the backlog is read, for the lag alert.
    operations: Arc<dyn OperatorStore>,
    /// Pinged for the Redis alert.
    queue: Arc<dyn DelayQueue>,
    /// Since when this instance has seen Redis not answer.
    redis_down_since: Mutex<Option<std::time::Instant>>,
    dispatch: Arc<dyn Dispatch>,
    /// Told of each message queued (the metrics).
    observer: Arc<dyn Observe>,
    config: AlertConfig,
    notices: Mutex<VecDeque<String>>,
    /// Names this instance's count of attempts in the store.
    instance: String,
    /// This instance's recent attempts, for the success rate alert.
    attempts: Arc<AttemptWindow>,
    /// How the store outage alert reaches the hooks; `None`: it is not told.
    direct: Option<DirectSend>,
    /// Endpoints failing every attempt this long are disabled; `None`:
    /// never.
    endpoint_watch: Option<(Arc<dyn callback_core::EndpointStore>, Duration)>,
    store_watch: Mutex<store_outage::StoreWatch>,
}

impl Alerter {
    pub fn new(
        store: Arc<dyn AlertStore>,
        operations: Arc<dyn OperatorStore>,
        queue: Arc<dyn DelayQueue>,
        dispatch: Arc<dyn Dispatch>,
        observer: Arc<dyn Observe>,
        config: AlertConfig,
    ) -> Self {
        Self {
            observer,
            store,
            operations,
            queue,
            redis_down_since: Mutex::new(None),
            dispatch,
            attempts: Arc::new(AttemptWindow::new(
                config
                    .success_rate
                    .map_or(Duration::from_secs(300), |rule| rule.window),
            )),
            config,
            notices: Mutex::new(VecDeque::new()),
            instance: uuid::Uuid::new_v4().to_string(),
            direct: None,
            endpoint_watch: None,
            store_watch: Mutex::default(),
        }
    }

    /// Lets the alerter disable endpoints that have failed every attempt for
    /// `disable_after` (`None`: never), and tell the hooks.
    pub fn with_endpoint_watch(
        mut self,
        endpoints: Arc<dyn callback_core::EndpointStore>,
        disable_after: Option<Duration>,
    ) -> Self {
        self.endpoint_watch = disable_after.map(|after| (endpoints, after));
        self
    }

    /// Lets the alerter tell the hooks that the store is down, which it
    /// cannot do with a stored task.
    pub fn with_direct_send(mut self, direct: DirectSend) -> Self {
        self.direct = Some(direct);
        self
    }

    /// What the delivery engine tells of each attempt, besides the
    /// metrics: the count the success rate alert judges.
    pub fn attempts(&self) -> Arc<AttemptWindow> {
        self.attempts.clone()
    }

    /// Checks every `check_interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // The outage watch keeps its own pace: the other checks ask the
        // store, and while it hangs they wait for its timeouts, which is
        // exactly when the store outage must be told.
        tokio::spawn(self.clone().watch_outages(shutdown.clone()));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.check_interval) => {}
            }
            if let Err(err) = self.check(Utc::now()).await {
                tracing::warn!(error = %err, "could not check for alerts; trying again shortly");
            }
            if let Err(err) = self.check_lag(Utc::now()).await {
                tracing::warn!(error = %err, "could not check the lag; trying again shortly");
            }
            if let Err(err) = self.check_failing_endpoints(Utc::now()).await {
                tracing::warn!(error = %err, "could not check for failing endpoints; trying again shortly");
            }
            if let Err(err) = self.check_success_rate(Utc::now()).await {
                tracing::warn!(error = %err, "could not check the success rate; trying again shortly");
            }
        }
    }

    /// Redis and the store, every `check_interval` until `shutdown`.
    async fn watch_outages(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.check_interval) => {}
            }
            self.check_store(Utc::now()).await;
            if let Err(err) = self.check_redis(Utc::now()).await {
                tracing::warn!(error = %err, "could not tell of Redis; trying again shortly");
            }
        }
    }

    /// One pass over the hooks; returns how many messages were queued.
    pub async fn check(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let settle = TimeDelta::from_std(self.config.settle).unwrap_or(TimeDelta::seconds(5));
        // Watermarks are stored in milliseconds: a message's window says
        // what was stored, so the next one starts where it ended.
        let until = (now - settle).trunc_subsecs(3);
        let breakers: Vec<String> = lock(&self.notices).drain(..).collect();
        let min_gap = TimeDelta::from_std(self.config.min_gap).unwrap_or(TimeDelta::minutes(1));
        let mut sent = 0;
        for hook in self.store.hooks().await? {
            if !hook.enabled {
                continue;
            }
            let (since, last_alert) = self.store.alert_state(hook.id).await?;
            // Breaker openings go out at once, with whatever failures have
            // settled; failures alone wait for the gap.
            let until = if breakers.is_empty() {
                if until <= since || last_alert.is_some_and(|at| until - at < min_gap) {
                    continue;
                }
                until
            } else {
                until.max(since)
            };
            let digest = match self.store.failures(&hook, since, until).await? {
                Some(mut digest) => {
                    digest.breakers = breakers.clone();
                    digest
                }
                None if !breakers.is_empty() => AlertDigest {
                    total: 0,
                    since,
                    until,
                    examples: Vec::new(),
                    by_host: Vec::new(),
                    breakers: breakers.clone(),
                },
                None => continue,
            };
            let body = alert_body(hook.kind, &digest, &self.config.links);
            let task = alert_task(&hook, body, now);
            if self.store.claim_alert(hook.id, since, until, &task).await? {
                tracing::info!(hook = %hook.id, kind = hook.kind.as_str(), failures = digest.total, "alert queued");
                self.observer.alert(hook.kind.as_str(), true);
                self.dispatch.accepted(task.id, now).await;
                sent += 1;
            }
        }
        Ok(sent)
    }
}

impl Alerter {
    /// The lag alert: told to every enabled hook without an application
    /// filter when the oldest due task has waited longer than
    /// `lag_threshold`, again every `ops_repeat` while it lasts, and once
    /// when it clears (below half the threshold). Of several instances, the one whose claim of the
    /// change succeeds tells it. Returns whether a message was queued.
    pub async fn check_lag(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some(threshold) = self.config.lag_threshold else {
            return Ok(false);
        };
        let backlog = self.operations.backlog(now).await?;
        let lag = backlog
            .oldest_due_at
            .map_or(Duration::ZERO, |at| (now - at).to_std().unwrap_or_default());
        // Hysteresis: it fires past the threshold and clears only below
        // half of it, so a lag that hovers at the threshold is one alert,
        // not one a check.
        let was_firing = self.store.ops_alert_firing("lag").await?;
        let firing = if was_firing {
            lag >= threshold / 2
        } else {
            lag > threshold
        };
        let detail = if firing {
            format!(
                "The oldest due task has waited **{} s** for its attempt (threshold {} s); {} tasks are due. Delivery is not keeping up: check the workers, the slowest receivers and the store.",
                lag.as_secs(),
                threshold.as_secs(),
                backlog.due
            )
        } else {
            format!(
                "Delivery has caught up: {} tasks are due, the oldest waited {} s.",
                backlog.due,
                lag.as_secs()
            )
        };
        self.tell(
            OpsAlert {
                condition: "lag",
                firing,
                detail,
            },
            was_firing,
            now,
        )
        .await
    }

    /// The Redis alert: told when the delay queue has not answered for
    /// `outage_after`, and once when it answers again. Without Redis (the
    /// embedded queue) there is nothing to tell. While Redis is down
    /// delivery goes on from the store; the alert says it is slower.
    pub async fn check_redis(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some(outage_after) = self.config.outage_after else {
            return Ok(false);
        };
        if self.queue.backend() != "redis" {
            return Ok(false);
        }
        let answered = matches!(
            tokio::time::timeout(Duration::from_secs(2), self.queue.ping()).await,
            Ok(Ok(()))
        );
        let down_for = {
            let mut since = lock(&self.redis_down_since);
            match (answered, *since) {
                (true, _) => {
                    *since = None;
                    Duration::ZERO
                }
                (false, Some(at)) => at.elapsed(),
                (false, None) => {
                    *since = Some(std::time::Instant::now());
                    Duration::ZERO
                }
            }
        };
        let firing = !answered && down_for >= outage_after;
        let was_firing = self.store.ops_alert_firing("redis").await?;
        let detail = if firing {
            format!(
                "Redis has not answered for **{} s**. Nothing is lost: intake goes on and delivery takes due tasks from the store, more slowly. Check Redis.",
                down_for.as_secs()
            )
        } else {
            "Redis answers again; the delay queue is refilled from the store.".to_string()
        };
        self.tell(
            OpsAlert {
                condition: "redis",
                firing,
                detail,
            },
            was_firing,
            now,
        )
        .await
    }

    /// Tells an operational condition to every enabled hook without an
    /// application filter, when it is news: it started firing, still fires
    /// and was told longer than `ops_repeat` ago, or cleared. Of several
    /// instances, the one whose claim of the change succeeds tells it.
    /// Returns whether a message was queued.
    pub(crate) async fn tell(
        &self,
        alert: OpsAlert,
        was_firing: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if !alert.firing && !was_firing {
            // Quiet, and it was: the usual case costs one read.
            return Ok(false);
        }
        let (hooks, messages) = self.ops_messages(&alert, now).await?;
        let repeat = TimeDelta::from_std(self.config.ops_repeat).unwrap_or(TimeDelta::minutes(10));
        if !self
            .store
            .claim_ops_alert(alert.condition, alert.firing, now, repeat, &messages)
            .await?
        {
            return Ok(false);
        }
        tracing::warn!(
            condition = alert.condition,
            firing = alert.firing,
            detail = %alert.detail,
            "operational alert told"
        );
        self.hand_over(&hooks, &messages, now).await;
        Ok(true)
    }

    /// The hooks that hear operational alerts (enabled, without an
    /// application filter), and the message telling `alert` to each.
    pub(crate) async fn ops_messages(
        &self,
        alert: &OpsAlert,
        now: DateTime<Utc>,
    ) -> Result<(Vec<AlertHook>, Vec<NewTask>), StoreError> {
        let hooks: Vec<AlertHook> = self
            .store
            .hooks()
            .await?
            .into_iter()
            .filter(AlertHook::hears_ops)
            .collect();
        let messages = hooks
            .iter()
            .map(|hook| alert_task(hook, ops_alert_body(hook.kind, alert), now))
            .collect();
        Ok((hooks, messages))
    }

    /// Counts the messages a claim stored and hands them to delivery.
    pub(crate) async fn hand_over(
        &self,
        hooks: &[AlertHook],
        messages: &[NewTask],
        now: DateTime<Utc>,
    ) {
        for (hook, message) in hooks.iter().zip(messages) {
            self.observer.alert(hook.kind.as_str(), true);
            self.dispatch.accepted(message.id, now).await;
        }
    }
}

impl Notices for Alerter {
    fn breaker_opened(&self, receiver: &str, pause: Duration, openings_24h: u32) {
        // A failing alert hook never raises another alert.
        if receiver.starts_with("alert:") {
            return;
        }
        let mut notices = lock(&self.notices);
        if notices.len() >= MAX_NOTICES {
            notices.pop_front();
        }
        notices.push_back(format!(
            "{receiver} kept failing and is paused for {} min ({openings_24h} time(s) in 24 h); its tasks wait",
            pause.as_secs().div_ceil(60)
        ));
    }
}

/// The task that carries one message to a hook. Robots answer 200 with a
/// JSON `errcode`; anything but 0 is a failure, retried.
pub fn alert_task(hook: &AlertHook, body: Body, now: DateTime<Utc>) -> NewTask {
    let expect = if hook.kind.answers_with_errcode() {
        Expectation {
            json: Some(JsonExpectation {
                pointer: "/errcode".into(),
                equals: 0.into(),
            }),
            ..Expectation::default()
        }
    } else {
        Expectation::default()
    };
    NewTask {
        id: TaskId::new(),
        spec: TaskSpec {
            url: hook.url.clone(),
            method: Method::Post,
            headers: HeaderList::default(),
            query: QueryList::default(),
            body: Some(body),
            max_attempts: MaxAttempts::parse_const(ALERT_MAX_ATTEMPTS)
                .unwrap_or_else(|| unreachable!("5 is within 1..=100")),
            retry_schedule: RetrySchedule::parse(ALERT_RETRY_DELAYS_S.to_vec()).ok(),
            timeout_ms: ALERT_TIMEOUT_MS,
            expect,
            source_app: Some("callback-center".into()),
            target_app: Some(format!("alert:{}", hook.kind.as_str())),
            idempotency_key: None,
            endpoint: None,
            event_type: None,
            alert_hook: Some(hook.id),
            traceparent: None,
            ordering: None,
        },
        first_attempt_at: now,
        created_at: now,
        lease: None,
        held: false,
    }
}
