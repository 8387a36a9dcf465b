//! What vendors call: `/inbound/wechat` (WeChat's message push, plain and
//! safe mode) and `/inbound/{source}` (any configured vendor). Each proves
//! itself with its own signature, not a bearer token; what arrives is
//! recorded before it is acknowledged.

use crate::{ApiError, ApiState};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use callback_core::wechat_safe_mode::msg_signature_ok;
use callback_core::{
    hmac_sha256_hex_ok, key_at_pointer, parse_wechat_push, wechat_signature_ok, Namespace, RouteKey,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const DEFAULT_WECHAT_NAMESPACE: &str = "moderate";

fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string()
}

async fn read_body(state: &ApiState, payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    let limit = state.max_body_bytes;
    Ok(payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?
        .map_err(|e| ApiError::MalformedBody(format!("could not read the body: {e}")))?
        .to_vec())
}

#[derive(Debug, Deserialize)]
pub struct WechatQuery {
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
    /// Safe mode: the signature over the encrypted message.
    msg_signature: Option<String>,
}

fn wechat_verified(state: &ApiState, q: &WechatQuery) -> Result<(), ApiError> {
    let tokens = state.inbound.config().wechat.tokens();
    if tokens.is_empty() {
        return Err(ApiError::NotFound(
            "WeChat message push is not configured (inbound.wechat.token)".into(),
        ));
    }
    match (&q.signature, &q.timestamp, &q.nonce) {
        (Some(sig), Some(ts), Some(nonce)) if wechat_signature_ok(&tokens, sig, ts, nonce) => {
            Ok(())
        }
        _ => Err(ApiError::Unauthorized(
            "the WeChat signature does not hold".into(),
        )),
    }
}

/// A safe-mode push, verified by its `msg_signature` and decrypted: the
/// message as plain mode would have sent it. A push that is WeChat's (the
/// signature holds) but cannot be decrypted here is kept as it came, to
/// be recorded as ignored and seen by an operator, never dropped.
fn safe_mode_message(
    state: &ApiState,
    query: &WechatQuery,
    msg_signature: &str,
    body: Vec<u8>,
) -> Result<Vec<u8>, ApiError> {
    let wechat = &state.inbound.config().wechat;
    let tokens = wechat.tokens();
    if tokens.is_empty() {
        return Err(ApiError::NotFound(
            "WeChat message push is not configured (inbound.wechat.token)".into(),
        ));
    }
    let encrypt = parse_wechat_push(&body)
        .ok()
        .and_then(|push| push.encrypt)
        .ok_or_else(|| {
            ApiError::MalformedBody("a safe-mode push carries its message in Encrypt".into())
        })?;
    let (Some(timestamp), Some(nonce)) = (&query.timestamp, &query.nonce) else {
        return Err(ApiError::Unauthorized(
            "the WeChat signature needs timestamp and nonce".into(),
        ));
    };
    if !msg_signature_ok(&tokens, msg_signature, timestamp, nonce, &encrypt) {
        return Err(ApiError::Unauthorized(
            "the WeChat msg_signature does not hold".into(),
        ));
    }
    match wechat.decrypt(&encrypt) {
        Ok(decrypted) => Ok(decrypted.message),
        Err(why) => {
            tracing::warn!(
                why,
                "a signed WeChat push could not be decrypted; kept as received"
            );
            Ok(body)
        }
    }
}

/// WeChat's server verification: echoes `echostr` when the signature holds.
pub async fn wechat_handshake(
    state: web::Data<ApiState>,
    query: web::Query<WechatQuery>,
) -> Result<HttpResponse, ApiError> {
    wechat_verified(&state, &query)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .body(query.echostr.clone().unwrap_or_default()))
}

/// A WeChat message push. A `wxa_media_check` result is forwarded to the
/// route of its `trace_id`; every push is recorded; WeChat hears `success`
/// once it is stored, never waiting for the forwarding.
pub async fn wechat_push(
    state: web::Data<ApiState>,
    query: web::Query<WechatQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = match &query.msg_signature {
        Some(msg_signature) => {
            let body = read_body(&state, payload).await?;
            safe_mode_message(&state, &query, msg_signature, body)?
        }
        None => {
            wechat_verified(&state, &query)?;
            read_body(&state, payload).await?
        }
    };
    let wechat = &state.inbound.config().wechat;
    let route = match parse_wechat_push(&body) {
        Ok(push) if push.is_media_check() => {
            let namespace = wechat.namespace.clone().unwrap_or_else(|| {
                Namespace::parse(DEFAULT_WECHAT_NAMESPACE)
                    .unwrap_or_else(|_| unreachable!("a valid namespace"))
            });
            push.trace_id
                .as_deref()
                .and_then(|t| RouteKey::parse(t).ok())
                .map(|key| (namespace, key))
        }
        Ok(_) => None,
        Err(why) => {
            tracing::warn!(why, "a WeChat push could not be read; recorded as ignored");
            None
        }
    };
    let record = state
        .inbound
        .receive("wechat", route, None, &content_type(&req), body)
        .await
        .map_err(ApiError::StoreUnavailable)?;
    state.observe_inbound(&record);
    tracing::debug!(id = %record.id, status = record.status.as_str(), "WeChat push stored");
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .body("success"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivedView {
    pub id: String,
    /// `forwarded`, `unrouted` or `ignored`.
    pub status: &'static str,
}

/// A callback from a configured vendor.
pub async fn source_callback(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let Some(source) = state.inbound.config().sources.get(&name).cloned() else {
        return Err(ApiError::NotFound(format!(
            "no inbound source is named {name:?}"
        )));
    };
    let body = read_body(&state, payload).await?;
    let header_value = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let (Some(h), Some(secret)) = (&source.hmac_header, &source.hmac_secret) {
        if !header_value(h).is_some_and(|sig| hmac_sha256_hex_ok(secret, &body, sig)) {
            return Err(ApiError::Unauthorized(format!(
                "the {h} signature does not hold"
            )));
        }
    }
    if let (Some(h), Some(token)) = (&source.token_header, &source.token) {
        let given = header_value(h).unwrap_or("");
        if !constant_time_eq::constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return Err(ApiError::Unauthorized(format!("the {h} token is wrong")));
        }
    }
    let route = match key_at_pointer(&body, &source.key_pointer) {
        Ok(key) => RouteKey::parse(&key)
            .ok()
            .map(|k| (source.namespace.clone(), k)),
        Err(why) => {
            tracing::warn!(source = %name, why, "no routing key in an inbound callback");
            None
        }
    };
    let record = state
        .inbound
        .receive(
            &name,
            route,
            source.default_target.as_ref(),
            &content_type(&req),
            body,
        )
        .await
        .map_err(ApiError::StoreUnavailable)?;
    state.observe_inbound(&record);
    Ok(HttpResponse::Ok().json(ReceivedView {
        id: record.id.to_string(),
        status: record.status.as_str(),
    }))
}
