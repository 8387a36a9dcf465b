//! Exports each attempt of a traced task as an OpenTelemetry span, over
//! OTLP/HTTP with JSON, to a collector (Jaeger, Tempo, the OpenTelemetry
//! Collector...).
//!
//! A task submitted with a sampled `traceparent` is sent to its receiver
//! as a child span of it; this crate exports that very span (same trace
//! id, same span id as the receiver sees), so the trace shows the
//! submitter, each attempt with its outcome, and the receiver's work under
//! the attempt that reached it. Tasks without a trace cost nothing.
//!
//! Spans go through the SDK's batch processor: a bounded queue (spans
//! beyond it are dropped, never delivery slowed) drained by a thread of
//! its own, which sends through a reqwest client on the server's runtime.

use async_trait::async_trait;
use bytes::Bytes;
use callback_core::{AttemptReport, AttemptResult, AttemptTrace, Observe};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// Where spans go.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP address, e.g. `http://collector:4318`;
    /// `/v1/traces` is added unless it is there.
    pub endpoint: String,
    /// `service.name` of the spans.
    pub service_name: String,
    /// Sent with each export, e.g. an `authorization` the collector asks.
    pub headers: HashMap<String, String>,
    /// For one export.
    pub timeout: Duration,
    /// How often the queued spans are sent.
    pub interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("otlp.endpoint must be an http:// or https:// URL, not {0:?}")]
    Endpoint(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Build(String),
    #[error("the OTLP exporter must start within the server's runtime")]
    NoRuntime,
}

/// The exporter: an observer that hears of each traced attempt.
pub struct SpanExport {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

impl SpanExport {
    /// Starts the export thread. Must be called on the server's runtime,
    /// which then carries the exports.
    pub fn start(config: &OtlpConfig) -> Result<Self, OtlpError> {
        let endpoint = traces_url(&config.endpoint)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| OtlpError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| OtlpError::Build(e.to_string()))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(endpoint)
            .with_timeout(config.timeout)
            .with_headers(config.headers.clone())
            .with_http_client(OnRuntime { client, runtime })
            .build()
            .map_err(|e| OtlpError::Build(e.to_string()))?;
        let batch = opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_scheduled_delay(config.interval)
            .build();
        let mut processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        processor.set_resource(
            &Resource::builder_empty()
                .with_service_name(config.service_name.clone())
                .build(),
        );
        Ok(Self {
            processor,
            scope: InstrumentationScope::builder("callback-center")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        })
    }

    /// Sends what is queued and stops the export thread.
    pub fn shutdown(&self) {
        if let Err(err) = self.processor.shutdown() {
            tracing::warn!(error = %err, "could not send the last spans");
        }
    }
}

impl Observe for SpanExport {
    fn attempt_report(&self, report: &AttemptReport<'_>) {
        // Only attempts of a trace the submitter records.
        if let Some(trace) = report.trace.filter(|t| t.parent.sampled()) {
            self.processor.on_end(span_data(report, trace, &self.scope));
        }
    }
}

fn traces_url(endpoint: &str) -> Result<String, OtlpError> {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(OtlpError::Endpoint(endpoint.to_string()));
    }
    Ok(if endpoint.ends_with("/v1/traces") {
        endpoint.to_string()
    } else {
        format!("{endpoint}/v1/traces")
    })
}

/// One attempt as OpenTelemetry's HTTP client span: named by its method,
/// with the semantic conventions' attributes and the task's own.
pub fn span_data(
    span: &AttemptReport<'_>,
    trace: AttemptTrace,
    scope: &InstrumentationScope,
) -> SpanData {
    let start_time: SystemTime = span.started_at.into();
    let url = span.url.as_url();
    let mut attributes = vec![
        KeyValue::new("http.request.method", span.method.as_str()),
        // Robot tokens and keys in the query are masked.
        KeyValue::new("url.full", span.url.redacted()),
        KeyValue::new(
            "server.address",
            url.host_str().unwrap_or_default().to_string(),
        ),
        KeyValue::new("callback.task_id", span.task_id.to_string()),
        KeyValue::new("callback.attempt", i64::from(span.attempt)),
        KeyValue::new("callback.receiver", span.receiver.to_string()),
        KeyValue::new("callback.outcome", span.result.as_str()),
    ];
    if let Some(port) = url.port_or_known_default() {
        attributes.push(KeyValue::new("server.port", i64::from(port)));
    }
    if let Some(status) = span.status_code {
        attributes.push(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    let status = if span.result == AttemptResult::Success {
        Status::Unset
    } else {
        attributes.push(KeyValue::new("error.type", span.result.as_str()));
        Status::error(span.error.unwrap_or(span.result.as_str()).to_string())
    };
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace.span.trace_id_bytes()),
            SpanId::from_bytes(trace.span.span_id_bytes()),
            TraceFlags::new(trace.span.flags()),
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from_bytes(trace.parent.span_id_bytes()),
        parent_span_is_remote: true,
        span_kind: SpanKind::Client,
        name: span.method.as_str().into(),
        start_time,
        end_time: start_time + span.duration,
        attributes,
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

/// The exporter's HTTP client: reqwest, run on the server's runtime. The
/// batch processor's thread has no runtime of its own and waits for the
/// spawned call.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let call = async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut answer = http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            Ok::<_, HttpError>(answer.body(response.bytes().await?)?)
        };
        self.runtime.spawn(call).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collector_address_gets_the_traces_path_once() {
        assert_eq!(
            traces_url("http://collector:4318").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://c.example/v1/traces/").unwrap(),
            "https://c.example/v1/traces"
        );
        assert!(matches!(
            traces_url("collector:4318"),
            Err(OtlpError::Endpoint(_))
        ));
    }
}
