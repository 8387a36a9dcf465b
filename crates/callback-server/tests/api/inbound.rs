//! Inbound vendor callbacks end to end: the test plays WeChat with the
//! example push of its documentation (trace_id 60f96f1d-3845297a-1976a3ae)
//! and real signatures, and a generic vendor signing with an HMAC header.

use crate::helpers::{spawn_app_with, TestApp};
use callback_server::settings::SourceSettings;
use callback_testkit::{redis_command, Backend, Receiver, TestRedis};
use hmac::Mac;
use secrecy::SecretString;
use serde_json::{json, Value};
use sha1::Digest;
use std::time::Duration;

const TOKEN: &str = "wechat-push-token";
const TRACE_ID: &str = "60f96f1d-3845297a-1976a3ae";
/// The example `wxa_media_check` push of WeChat's documentation, with its
/// formatting kept: it must reach the service byte for byte.
const PUSH: &str = r#"{
   "ToUserName": "gh_9df7d78a1234",
   "FromUserName": "o4_t144jTUSEoxydysUA2E234_tc",
   "CreateTime": 1626959646,
   "MsgType": "event",
   "Event": "wxa_media_check",
   "appid": "wx8f16a5e5f7ad1234",
   "trace_id": "60f96f1d-3845297a-1976a3ae",
   "version": 2,
   "detail": [{
        "strategy": "content_model",
        "errcode": 0,
        "suggest": "pass",
        "label": 100,
        "prob": 90
   }],
   "errcode": 0,
   "errmsg": "ok",
   "result": {
        "suggest": "pass",
        "label": 100
   }
}"#;

/// WeChat's algorithm, written here independently: SHA-1 of the sorted parts.
fn signed_query(token: &str) -> String {
    let (timestamp, nonce) = ("1626959646", "1827341856");
    let mut parts = [token, timestamp, nonce];
    parts.sort();
    let signature = hex::encode(sha1::Sha1::digest(parts.concat().as_bytes()));
    format!("signature={signature}&timestamp={timestamp}&nonce={nonce}")
}

async fn wechat_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.inbound.wechat.token = Some(SecretString::from(TOKEN.to_string()));
        s.inbound.sources.insert(
            "acme".into(),
            SourceSettings {
                namespace: "acme".into(),
                key_pointer: "/data/order_id".into(),
                hmac_header: Some("X-Acme-Signature".into()),
                hmac_secret: Some(SecretString::from("acme-secret".to_string())),
                token_header: None,
                token: None,
                default_target: None,
            },
        );
    })
    .await
}

async fn push(app: &TestApp, query: &str, content_type: &str, body: &str) -> (u16, String) {
    let response = app
        .client
        .post(app.url(&format!("/inbound/wechat?{query}")))
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn route(app: &TestApp, namespace: &str, key: &str, url: &str) -> Value {
    let (status, view) = app
        .send_json(
            "POST",
            "/api/v1/routes",
            &json!({"namespace": namespace, "key": key, "target_url": url, "ttl_s": 3600, "remark": "moderation result"}),
        )
        .await;
    assert!(status == 201 || status == 200, "{view:#}");
    view
}

async fn wechat_handshake_echoes_only_with_a_valid_signature(backend: Backend) {
    let app = wechat_app(backend).await;
    let ok = app
        .client
        .get(app.url(&format!(
            "/inbound/wechat?{}&echostr=hello-wechat",
            signed_query(TOKEN)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "hello-wechat");
    let bad = app
        .client
        .get(app.url(&format!(
            "/inbound/wechat?{}&echostr=x",
            signed_query("wrong-token")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    app.stop().await;
}

async fn a_media_check_result_reaches_its_route_byte_for_byte(backend: Backend) {
    let app = wechat_app(backend).await;
    let service = Receiver::start().await;
    route(
        &app,
        "moderate",
        TRACE_ID,
        &service.url("/moderation/result"),
    )
    .await;

    let (status, answer) = push(&app, &signed_query(TOKEN), "application/json", PUSH).await;
    assert_eq!((status, answer.as_str()), (200, "success"));
    let got = service.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, PUSH.as_bytes(), "forwarded byte for byte");
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert_eq!(got[0].path, "/moderation/result");

    let (_, found) = app
        .send_json(
            "GET",
            &format!("/api/v1/inbound?source=wechat&key={TRACE_ID}"),
            &json!(null),
        )
        .await;
    assert_eq!(found["items"][0]["status"], "forwarded");
    let task_id = found["items"][0]["task_id"].as_str().unwrap();
    app.wait_for_status(task_id, "succeeded", Duration::from_secs(10))
        .await;

    // A bad signature is refused and nothing is recorded.
    let (status, _) = push(&app, &signed_query("forged"), "application/json", PUSH).await;
    assert_eq!(status, 401);
    let (_, all) = app.send_json("GET", "/api/v1/inbound", &json!(null)).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);

    // A deleted route no longer applies, cached or not.
    let (status, _) = app
        .send_json(
            "DELETE",
            &format!("/api/v1/routes/moderate/{TRACE_ID}"),
            &json!(null),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = push(&app, &signed_query(TOKEN), "application/json", PUSH).await;
    assert_eq!(status, 200);
    let (_, waiting) = app
        .send_json("GET", "/api/v1/inbound/unrouted", &json!(null))
        .await;
    assert_eq!(waiting["items"].as_array().unwrap().len(), 1);
    assert_eq!(service.requests().len(), 1);
    app.stop().await;
}

async fn a_callback_before_its_route_waits_and_goes_when_the_route_appears(backend: Backend) {
    let app = wechat_app(backend).await;
    let service = Receiver::start().await;
    let (status, _) = push(&app, &signed_query(TOKEN), "application/json", PUSH).await;
    assert_eq!(status, 200, "WeChat hears success: the callback is stored");
    let (_, waiting) = app
        .send_json("GET", "/api/v1/inbound/unrouted", &json!(null))
        .await;
    assert_eq!(waiting["items"][0]["key"], TRACE_ID);
    assert_eq!(waiting["items"][0]["namespace"], "moderate");

    let created = route(&app, "moderate", TRACE_ID, &service.url("/late")).await;
    assert_eq!(created["forwarded_waiting"], 1);
    let got = service.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, PUSH.as_bytes());
    let (_, waiting) = app
        .send_json("GET", "/api/v1/inbound/unrouted", &json!(null))
        .await;
    assert_eq!(waiting["items"], json!([]));
    app.stop().await;
}

on_every_backend!(
    wechat_handshake_echoes_only_with_a_valid_signature,
    a_media_check_result_reaches_its_route_byte_for_byte,
    a_callback_before_its_route_waits_and_goes_when_the_route_appears,
    safe_mode_pushes_are_verified_decrypted_and_routed_in_xml_and_json,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xml_form_of_a_push_is_routed_too() {
    let app = wechat_app(Backend::Sqlite).await;
    let service = Receiver::start().await;
    route(&app, "moderate", TRACE_ID, &service.url("/xml")).await;
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_9df7d78a1234]]></ToUserName><FromUserName><![CDATA[o4_t144jTUSEoxydysUA2E234_tc]]></FromUserName><CreateTime>1626959646</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_media_check]]></Event><appid><![CDATA[wx8f16a5e5f7ad1234]]></appid><trace_id><![CDATA[{TRACE_ID}]]></trace_id><version>2</version><result><suggest><![CDATA[risky]]></suggest><label>20001</label></result></xml>"
    );
    let (status, answer) = push(&app, &signed_query(TOKEN), "text/xml", &xml).await;
    assert_eq!((status, answer.as_str()), (200, "success"));
    let got = service.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, xml.as_bytes());
    assert_eq!(got[0].header("content-type"), Some("text/xml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_written_as_a_plain_redis_key_still_works() {
    let redis = TestRedis::create().await;
    let legacy = format!("{}-legacy", redis.prefix);
    let (url, prefix, legacy_prefix) = (redis.url.clone(), redis.prefix.clone(), legacy.clone());
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.inbound.wechat.token = Some(SecretString::from(TOKEN.to_string()));
        s.redis.url = Some(SecretString::from(url));
        s.redis.key_prefix = prefix;
        s.inbound.legacy_key_prefix = legacy_prefix;
    })
    .await;
    let service = Receiver::start().await;
    let key = format!("{legacy}:moderate:{TRACE_ID}");
    let _: String =
        redis_command(&redis.url, &["SET", &key, &service.url("/from-redis-key")]).await;
    let (status, _) = push(&app, &signed_query(TOKEN), "application/json", PUSH).await;
    assert_eq!(status, 200);
    let got = service.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].path, "/from-redis-key");
    assert_eq!(got[0].body, PUSH.as_bytes());
    let _: i64 = redis_command(&redis.url, &["DEL", &key]).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generic_vendor_is_verified_by_hmac_and_routed_by_json_pointer() {
    let app = wechat_app(Backend::Mysql).await;
    let service = Receiver::start().await;
    let rescue = Receiver::start().await;
    route(&app, "acme", "A-1001", &service.url("/orders")).await;
    let body = r#"{"event":"paid","data":{"order_id":"A-1001","amount":990}}"#;
    let sign = |body: &str| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"acme-secret").unwrap();
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let send = |body: &'static str, signature: String| {
        app.client
            .post(app.url("/inbound/acme"))
            .header("Content-Type", "application/json")
            .header("X-Acme-Signature", signature)
            .body(body)
            .send()
    };
    let forged = send(body, sign("something else")).await.unwrap();
    assert_eq!(forged.status(), 401);
    let ok = send(body, sign(body)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let received: Value = ok.json().await.unwrap();
    assert_eq!(received["status"], "forwarded");
    let got = service.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, body.as_bytes());

    // No route for this order: kept, then forwarded by an operator.
    let other = r#"{"event":"paid","data":{"order_id":"B-7","amount":1}}"#;
    let waiting: Value = send(other, sign(other))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(waiting["status"], "unrouted");
    let id = waiting["id"].as_str().unwrap();
    let (status, forwarded) = app
        .send_json(
            "POST",
            &format!("/api/v1/inbound/{id}/forward"),
            &json!({"target_url": rescue.url("/manual")}),
        )
        .await;
    assert_eq!(status, 200, "{forwarded:#}");
    assert_eq!(forwarded["status"], "forwarded");
    let got = rescue.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, other.as_bytes());

    let unknown = app
        .client
        .post(app.url("/inbound/nobody"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    app.stop().await;
}

/// WeChat's published safe-mode sample (WXBizMsgCrypt's Sample.py).
mod safe_mode_sample {
    pub const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    pub const TOKEN: &str = "spamtest";
    pub const QUERY: &str = "timestamp=1409735669&nonce=1320562132&encrypt_type=aes&msg_signature=5d197aaffba7e9b25a30732f161a50dee96bd5fa";
    pub const ENCRYPT: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";
}

async fn safe_mode_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.inbound.wechat.token = Some(SecretString::from(safe_mode_sample::TOKEN.to_string()));
        s.inbound.wechat.encoding_aes_key =
            Some(SecretString::from(safe_mode_sample::KEY.to_string()));
    })
    .await
}

async fn safe_mode_pushes_are_verified_decrypted_and_routed_in_xml_and_json(backend: Backend) {
    use safe_mode_sample::{ENCRYPT, KEY, QUERY};
    let app = safe_mode_app(backend).await;

    // WeChat's own sample, in XML: recorded decrypted.
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{ENCRYPT}]]></Encrypt></xml>"
    );
    let (status, answer) = push(&app, QUERY, "text/xml", &xml).await;
    assert_eq!((status, answer.as_str()), (200, "success"));
    let (_, listed) = app
        .send_json("GET", "/api/v1/inbound?source=wechat", &json!(null))
        .await;
    let id = listed["items"][0]["id"].as_str().unwrap();
    let (_, record) = app
        .send_json("GET", &format!("/api/v1/inbound/{id}"), &json!(null))
        .await;
    let body = record["body"].as_str().unwrap();
    assert!(
        body.contains("<Content><![CDATA[abcdteT]]></Content>"),
        "{record}"
    );
    assert!(!body.contains(ENCRYPT), "{record}");

    // A forged msg_signature, or the sample's signature over other
    // ciphertext, is refused and nothing more is recorded.
    let forged = QUERY.replace("5d197aaf", "5d197aa0");
    assert_eq!(push(&app, &forged, "text/xml", &xml).await.0, 401);
    let tampered = xml.replace("hyzAe4", "hyzAe5");
    assert_eq!(push(&app, QUERY, "text/xml", &tampered).await.0, 401);
    assert_eq!(push(&app, QUERY, "text/xml", "<xml></xml>").await.0, 400);

    // A media-check result in JSON, encrypted as WeChat does, reaches its
    // route decrypted.
    let service = Receiver::start().await;
    route(&app, "moderate", TRACE_ID, &service.url("/safe")).await;
    let encrypt = callback_testkit::wechat_encrypt(KEY, PUSH.as_bytes(), "wx8f16a5e5f7ad1234");
    let (timestamp, nonce) = ("1626959646", "1827341856");
    let signature = callback_core::wechat_safe_mode::msg_signature(
        safe_mode_sample::TOKEN,
        timestamp,
        nonce,
        &encrypt,
    );
    let body = json!({"ToUserName": "gh_9df7d78a1234", "Encrypt": encrypt}).to_string();
    let query =
        format!("timestamp={timestamp}&nonce={nonce}&encrypt_type=aes&msg_signature={signature}");
    let (status, _) = push(&app, &query, "application/json", &body).await;
    assert_eq!(status, 200);
    let got = service.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].body,
        PUSH.as_bytes(),
        "the decrypted push, byte for byte"
    );
    app.stop().await;
}
