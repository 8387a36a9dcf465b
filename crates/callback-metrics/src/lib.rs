//! The server's metrics: an [`Observe`] that counts what the engines tell
//! it, gauges sampled from the store and the receivers, rendered in the
//! OpenMetrics text format that Prometheus scrapes.
//!
//! One registry per running application, not a process-wide one: several
//! instances in one process (the test suites) each count their own.

mod labels;

use callback_core::{AttemptResult, Backlog, Finish, Intake, Observe, ReceiverStatus};
use chrono::{DateTime, Utc};
use labels::Capped;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Distinct values one label keeps before the rest are counted as `other`.
pub const LABEL_VALUES: usize = 50;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppIntake {
    app: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabel {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverOutcome {
    receiver: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabel {
    receiver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelOutcome {
    channel: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceRouted {
    source: String,
    routed: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    apps: Capped,
    receivers: Capped,
    accepted: Family<AppIntake, Counter>,
    delivered: Family<AppLabel, Counter>,
    failed: Family<AppLabel, Counter>,
    cancelled: Family<AppLabel, Counter>,
    attempts: Family<ReceiverOutcome, Counter>,
    attempt_seconds: Family<OutcomeLabel, Histogram>,
    end_to_end_seconds: Histogram,
    due: Gauge,
    oldest_due_age: FloatGauge,
    retrying_later: Gauge,
    breaker_open: Family<ReceiverLabel, Gauge>,
    in_flight: Family<ReceiverLabel, Gauge>,
    /// Receivers given a breaker or in-flight gauge, so that one that is no
    /// longer listed goes back to zero instead of keeping its last value.
    shown: Mutex<Vec<String>>,
    alerts: Family<ChannelOutcome, Counter>,
    inbound: Family<SourceRouted, Counter>,
    store_up: Gauge,
    store_errors: Counter,
    redis_up: Gauge,
}

impl Metrics {
    pub fn new(version: &str) -> Self {
        let mut registry = Registry::with_prefix("callback");
        let accepted = Family::<AppIntake, Counter>::default();
        registry.register(
            "tasks_accepted",
            "Tasks committed, by application and how they came in",
            accepted.clone(),
        );
        let delivered = Family::<AppLabel, Counter>::default();
        registry.register(
            "tasks_delivered",
            "Tasks whose receiver answered as expected",
            delivered.clone(),
        );
        let failed = Family::<AppLabel, Counter>::default();
        registry.register(
            "tasks_failed",
            "Tasks that used every attempt without success",
            failed.clone(),
        );
        let cancelled = Family::<AppLabel, Counter>::default();
        registry.register(
            "tasks_cancelled",
            "Tasks cancelled before they finished",
            cancelled.clone(),
        );
        let attempts = Family::<ReceiverOutcome, Counter>::default();
        registry.register(
            "delivery_attempts",
            "Delivery attempts by receiver and outcome, deferrals included",
            attempts.clone(),
        );
        let attempt_seconds = Family::<OutcomeLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register_with_unit(
            "delivery_attempt_duration",
            "Time from sending an attempt to its answer or failure",
            Unit::Seconds,
            attempt_seconds.clone(),
        );
        let end_to_end_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 18));
        registry.register_with_unit(
            "task_end_to_end",
            "Time from a task's acceptance to its delivery",
            Unit::Seconds,
            end_to_end_seconds.clone(),
        );
        let due = Gauge::default();
        registry.register(
            "backlog_due_tasks",
            "Unfinished tasks due now and not yet attempted",
            due.clone(),
        );
        let oldest_due_age = FloatGauge::default();
        registry.register_with_unit(
            "backlog_oldest_due_age",
            "How long the longest-waiting due task has waited (the lag)",
            Unit::Seconds,
            oldest_due_age.clone(),
        );
        let retrying_later = Gauge::default();
        registry.register(
            "backlog_retrying_tasks",
            "Tasks waiting for a later retry",
            retrying_later.clone(),
        );
        let breaker_open = Family::<ReceiverLabel, Gauge>::default();
        registry.register(
            "receiver_breaker_open",
            "1 while the receiver's circuit breaker is open or half open",
            breaker_open.clone(),
        );
        let in_flight = Family::<ReceiverLabel, Gauge>::default();
        registry.register(
            "receiver_in_flight",
            "Attempts in flight to the receiver",
            in_flight.clone(),
        );
        let alerts = Family::<ChannelOutcome, Counter>::default();
        registry.register(
            "alerts",
            "Alert messages handed to delivery, by channel",
            alerts.clone(),
        );
        let inbound = Family::<SourceRouted, Counter>::default();
        registry.register(
            "inbound_callbacks",
            "Vendor callbacks recorded, by source, routed or not",
            inbound.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "1 when the last use of the task store succeeded",
            store_up.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Uses of the task store that failed",
            store_errors.clone(),
        );
        let redis_up = Gauge::default();
        registry.register(
            "redis_up",
            "1 when Redis answered the last check; absent Redis counts as 1",
            redis_up.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register("build_info", "The running version", build.clone());
        build
            .get_or_create(&BuildLabels {
                version: version.to_string(),
            })
            .set(1);
        store_up.set(1);
        redis_up.set(1);
        Self {
            registry,
            apps: Capped::new(LABEL_VALUES),
            receivers: Capped::new(LABEL_VALUES),
            accepted,
            delivered,
            failed,
            cancelled,
            attempts,
            attempt_seconds,
            end_to_end_seconds,
            due,
            oldest_due_age,
            retrying_later,
            breaker_open,
            in_flight,
            shown: Mutex::default(),
            alerts,
            inbound,
            store_up,
            store_errors,
            redis_up,
        }
    }

    /// The backlog as last sampled from the store.
    pub fn set_backlog(&self, backlog: &Backlog, now: DateTime<Utc>) {
        self.due.set(i64::try_from(backlog.due).unwrap_or(i64::MAX));
        self.retrying_later
            .set(i64::try_from(backlog.retrying_later).unwrap_or(i64::MAX));
        let age = backlog.oldest_due_at.map_or(0.0, |at| {
            (now - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        self.oldest_due_age.set(age);
    }

    /// The receivers busy now (attempts in flight, or a breaker not
    /// closed); every other receiver shown before goes back to 0.
    pub fn set_receivers(&self, busy: &[ReceiverStatus]) {
        let mut shown = callback_core::lock(&self.shown);
        for receiver in shown.iter() {
            let label = ReceiverLabel {
                receiver: receiver.clone(),
            };
            self.breaker_open.get_or_create(&label).set(0);
            self.in_flight.get_or_create(&label).set(0);
        }
        for status in busy {
            let receiver = self.receivers.label(&status.receiver);
            let label = ReceiverLabel {
                receiver: receiver.clone(),
            };
            let open = status.breaker != "closed";
            self.breaker_open.get_or_create(&label).set(i64::from(open));
            self.in_flight
                .get_or_create(&label)
                .set(i64::from(status.in_flight));
            if !shown.contains(&receiver) {
                shown.push(receiver);
            }
        }
    }

    /// Whether the store answered this scrape's backlog query.
    pub fn set_store_up(&self, up: bool) {
        self.store_up.set(i64::from(up));
        if !up {
            self.store_errors.inc();
        }
    }

    pub fn set_redis_up(&self, up: bool) {
        self.redis_up.set(i64::from(up));
    }

    /// Everything, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing to a String fails only on a formatting bug of ours.
            out = format!("# metrics could not be written: {err}\n# EOF\n");
        }
        out
    }
}

impl Observe for Metrics {
    fn accepted(&self, app: Option<&str>, intake: Intake, count: u64) {
        self.accepted
            .get_or_create(&AppIntake {
                app: self.apps.label_of(app),
                source: intake.as_str().into(),
            })
            .inc_by(count);
    }

    fn attempt(&self, receiver: &str, result: AttemptResult, duration: Duration) {
        self.attempts
            .get_or_create(&ReceiverOutcome {
                receiver: self.receivers.label(receiver),
                outcome: result.as_str().into(),
            })
            .inc();
        let deferred = matches!(
            result,
            AttemptResult::DeferredBreaker
                | AttemptResult::DeferredCap
                | AttemptResult::DeferredRate
        );
        if !deferred {
            self.attempt_seconds
                .get_or_create(&OutcomeLabel {
                    outcome: result.as_str().into(),
                })
                .observe(duration.as_secs_f64());
        }
    }

    fn finished(&self, app: Option<&str>, finish: Finish, since_accepted: Duration) {
        let label = AppLabel {
            app: self.apps.label_of(app),
        };
        match finish {
            Finish::Delivered => {
                self.delivered.get_or_create(&label).inc();
                self.end_to_end_seconds
                    .observe(since_accepted.as_secs_f64());
            }
            Finish::Failed => {
                self.failed.get_or_create(&label).inc();
            }
            Finish::Cancelled => {
                self.cancelled.get_or_create(&label).inc();
            }
        }
    }

    fn alert(&self, channel: &str, sent: bool) {
        self.alerts
            .get_or_create(&ChannelOutcome {
                channel: channel.into(),
                outcome: if sent { "queued" } else { "failed" }.into(),
            })
            .inc();
    }

    fn inbound(&self, source: &str, routed: bool) {
        self.inbound
            .get_or_create(&SourceRouted {
                source: self.receivers.label(source),
                routed: routed.to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_with_their_labels_and_histograms_add_up() {
        let metrics = Metrics::new("1.2.3");
        metrics.accepted(Some("shop"), Intake::Api, 3);
        metrics.accepted(None, Intake::Batch, 2);
        metrics.attempt(
            "http://a:80",
            AttemptResult::Success,
            Duration::from_millis(20),
        );
        metrics.attempt(
            "http://a:80",
            AttemptResult::Timeout,
            Duration::from_secs(5),
        );
        metrics.attempt(
            "http://a:80",
            AttemptResult::DeferredBreaker,
            Duration::ZERO,
        );
        metrics.finished(Some("shop"), Finish::Delivered, Duration::from_millis(150));
        metrics.finished(Some("shop"), Finish::Failed, Duration::from_secs(60));
        let text = metrics.render();
        for line in [
            r#"callback_tasks_accepted_total{app="shop",source="api"} 3"#,
            r#"callback_tasks_accepted_total{app="",source="batch"} 2"#,
            r#"callback_delivery_attempts_total{receiver="http://a:80",outcome="success"} 1"#,
            r#"callback_delivery_attempts_total{receiver="http://a:80",outcome="deferred_breaker"} 1"#,
            r#"callback_tasks_delivered_total{app="shop"} 1"#,
            r#"callback_tasks_failed_total{app="shop"} 1"#,
            "callback_task_end_to_end_seconds_count 1",
            r#"callback_build_info{version="1.2.3"} 1"#,
            "callback_store_up 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        // A deferral is counted, not timed.
        assert!(text
            .contains(r#"callback_delivery_attempt_duration_seconds_count{outcome="timeout"} 1"#));
        assert!(!text.contains(r#"duration_seconds_count{outcome="deferred_breaker"}"#));
    }

    #[test]
    fn a_closed_breaker_goes_back_to_zero_and_the_backlog_has_an_age() {
        let metrics = Metrics::new("x");
        let open = ReceiverStatus {
            receiver: "endpoint:orders".into(),
            breaker: "open",
            open_until: None,
            recent_failures: 90,
            recent_attempts: 100,
            failure_ratio: 0.9,
            openings_24h: 1,
            in_flight: 2,
        };
        metrics.set_receivers(std::slice::from_ref(&open));
        assert!(metrics
            .render()
            .contains(r#"callback_receiver_breaker_open{receiver="endpoint:orders"} 1"#));
        metrics.set_receivers(&[]);
        assert!(metrics
            .render()
            .contains(r#"callback_receiver_breaker_open{receiver="endpoint:orders"} 0"#));
        let now = Utc::now();
        metrics.set_backlog(
            &Backlog {
                due: 7,
                oldest_due_at: Some(now - chrono::TimeDelta::seconds(30)),
                retrying_later: 4,
            },
            now,
        );
        let text = metrics.render();
        assert!(text.contains("callback_backlog_due_tasks 7"), "{text}");
        assert!(
            text.contains("callback_backlog_oldest_due_age_seconds 30.0"),
            "{text}"
        );
        assert!(text.contains("callback_backlog_retrying_tasks 4"), "{text}");
    }
}
