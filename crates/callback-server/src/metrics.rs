//! `GET /metrics`: the counters the engines keep, and gauges read at each
//! scrape (the backlog from the store, breakers from the receivers, the
//! delay queue's health), in the OpenMetrics text format.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use callback_core::{DelayQueue, OperatorStore, ReceiverWatch};
use callback_metrics::{Metrics, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

/// A scrape waits at most this for the store's backlog figures; past it
/// the store counts as down for this scrape.
const BACKLOG_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Scrape {
    pub metrics: Arc<Metrics>,
    pub operators: Arc<dyn OperatorStore>,
    pub queue: Arc<dyn DelayQueue>,
    pub receivers: Arc<dyn ReceiverWatch>,
    /// When set, a scrape must present it as a bearer token.
    pub token: Option<SecretString>,
}

/// Mounts `GET /metrics`.
pub fn configure(scrape: web::Data<Scrape>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(scrape).route("/metrics", web::get().to(serve));
    }
}

async fn serve(req: HttpRequest, scrape: web::Data<Scrape>) -> HttpResponse {
    if let Some(token) = &scrape.token {
        let presented = callback_api::bearer_token(req.headers()).unwrap_or("");
        if !constant_time_eq::constant_time_eq(
            presented.as_bytes(),
            token.expose_secret().as_bytes(),
        ) {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="metrics""#))
                .finish();
        }
    }
    let now = chrono::Utc::now();
    let (backlog, queue) = tokio::join!(
        tokio::time::timeout(BACKLOG_TIMEOUT, scrape.operators.backlog(now)),
        scrape.queue.ping()
    );
    match backlog {
        Ok(Ok(backlog)) => {
            scrape.metrics.set_backlog(&backlog, now);
            scrape.metrics.set_store_up(true);
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "metrics: the backlog could not be read");
            scrape.metrics.set_store_up(false);
        }
        Err(_) => {
            tracing::warn!("metrics: the backlog was not read within {BACKLOG_TIMEOUT:?}");
            scrape.metrics.set_store_up(false);
        }
    }
    scrape.metrics.set_redis_up(queue.is_ok());
    scrape
        .metrics
        .set_receivers(&scrape.receivers.busy_receivers());
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(scrape.metrics.render())
}
