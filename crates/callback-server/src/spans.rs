//! Export of attempt spans over OTLP: built with the `otlp` feature, and
//! on when `otlp.endpoint` is set. A binary built without the feature
//! refuses an endpoint rather than ignore it.

use crate::settings::OtlpSettings;
use std::sync::Arc;

#[cfg(feature = "otlp")]
pub type Export = callback_otlp::SpanExport;

/// Stands for the exporter in a binary built without it; never made.
#[cfg(not(feature = "otlp"))]
pub struct Export;

#[cfg(not(feature = "otlp"))]
impl Export {
    fn shutdown(&self) {}
}

#[cfg(not(feature = "otlp"))]
impl callback_core::Observe for Export {}

/// Starts the export when `otlp.endpoint` is set.
pub fn start(settings: &OtlpSettings) -> anyhow::Result<Option<Arc<Export>>> {
    if settings.endpoint.trim().is_empty() {
        return Ok(None);
    }
    #[cfg(feature = "otlp")]
    {
        let config = callback_otlp::OtlpConfig {
            endpoint: settings.endpoint.clone(),
            service_name: settings.service_name.clone(),
            headers: settings.headers.clone(),
            timeout: std::time::Duration::from_millis(settings.timeout_ms.max(1)),
            interval: std::time::Duration::from_millis(settings.interval_ms.max(10)),
        };
        let export = Export::start(&config)?;
        tracing::info!(endpoint = %settings.endpoint, "exporting attempt spans over OTLP");
        Ok(Some(Arc::new(export)))
    }
    #[cfg(not(feature = "otlp"))]
    {
        anyhow::bail!(
            "otlp.endpoint is set, but this binary was built without OTLP export: build it with `cargo build --release --features otlp`"
        )
    }
}

/// Sends the spans still queued. The exporter's thread waits on the
/// runtime, so the wait happens off it.
pub async fn flush(export: Option<Arc<Export>>) {
    if let Some(export) = export {
        let _ = tokio::task::spawn_blocking(move || export.shutdown()).await;
    }
}
