//! For receivers: checking that a request came from callback-center.
//!
//! ```
//! use callback_client::verify::{verify_standard, StandardHeaders};
//! # let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! # let body = br#"{"order":42}"#;
//! # let now = chrono::Utc::now().timestamp();
//! # let signature = callback_client::verify::sign_standard(secret, "msg_1", now, body).unwrap();
//! let headers = StandardHeaders {
//!     id: "msg_1",
//!     timestamp: &now.to_string(),
//!     signature: &signature,
//! };
//! verify_standard(secret, &headers, body, chrono::Utc::now()).expect("signed by us");
//! ```

use callback_core::{md5_legacy_signature, standard_signature, SignatureScheme, SigningSecret};
use chrono::{DateTime, Utc};

/// How far a request's timestamp may be from now: Standard Webhooks'
/// tolerance, against replays.
pub const TOLERANCE_S: i64 = 5 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the secret is not usable: {0}")]
    Secret(String),
    #[error("the {0} header is missing or malformed")]
    Header(&'static str),
    #[error("the timestamp is more than five minutes from now")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
    #[error("the body is not the legacy envelope: {0}")]
    Envelope(String),
}

/// The three Standard Webhooks headers of a request.
#[derive(Debug, Clone, Copy)]
pub struct StandardHeaders<'a> {
    /// `webhook-id`
    pub id: &'a str,
    /// `webhook-timestamp`, seconds since the epoch.
    pub timestamp: &'a str,
    /// `webhook-signature`: one or more `v1,<base64>`, space-separated.
    pub signature: &'a str,
}

/// The `webhook-signature` callback-center sends for this request.
pub fn sign_standard(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, VerifyError> {
    let secret =
        SigningSecret::parse(secret, SignatureScheme::Standard).map_err(VerifyError::Secret)?;
    Ok(standard_signature(&secret, id, timestamp, body))
}

/// Checks a Standard Webhooks signature (`whsec_...` secret) over the raw
/// body, and that the timestamp is within five minutes of `now`.
pub fn verify_standard(
    secret: &str,
    headers: &StandardHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    let timestamp: i64 = headers
        .timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::Header("webhook-timestamp"))?;
    if headers.id.is_empty() {
        return Err(VerifyError::Header("webhook-id"));
    }
    if (now.timestamp() - timestamp).abs() > TOLERANCE_S {
        return Err(VerifyError::Stale);
    }
    let expected = sign_standard(secret, headers.id, timestamp, body)?;
    let matches = headers
        .signature
        .split_whitespace()
        .any(|given| constant_time_eq::constant_time_eq(given.as_bytes(), expected.as_bytes()));
    if matches {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Checks the legacy envelope an `md5_legacy` endpoint gets: `security`
/// is the hex MD5 of `callId + secret + timestamp`, inside the JSON body.
pub fn verify_md5_legacy(secret: &str, body: &[u8]) -> Result<(), VerifyError> {
    let envelope: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| VerifyError::Envelope(e.to_string()))?;
    let field = |name: &'static str| {
        envelope
            .get(name)
            .ok_or_else(|| VerifyError::Envelope(format!("no {name}")))
    };
    let call_id = field("callId")?
        .as_str()
        .ok_or_else(|| VerifyError::Envelope("callId is not a string".into()))?;
    let timestamp = field("timestamp")?
        .as_i64()
        .ok_or_else(|| VerifyError::Envelope("timestamp is not a number".into()))?;
    let given = field("security")?
        .as_str()
        .ok_or_else(|| VerifyError::Envelope("security is not a string".into()))?;
    let secret =
        SigningSecret::parse(secret, SignatureScheme::Md5Legacy).map_err(VerifyError::Secret)?;
    let expected = md5_legacy_signature(call_id, &secret, timestamp);
    if constant_time_eq::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn the_standard_webhooks_example_verifies() {
        // The example of the Standard Webhooks specification.
        let headers = StandardHeaders {
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: "1614265330",
            signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        };
        let at = DateTime::from_timestamp(1_614_265_330, 0).unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(verify_standard(SECRET, &headers, body, at), Ok(()));
        assert_eq!(
            verify_standard(SECRET, &headers, br#"{"test": 1}"#, at),
            Err(VerifyError::Mismatch)
        );
        let later = at + chrono::TimeDelta::seconds(TOLERANCE_S + 1);
        assert_eq!(
            verify_standard(SECRET, &headers, body, later),
            Err(VerifyError::Stale)
        );
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let now = Utc::now();
        let good = sign_standard(SECRET, "m", now.timestamp(), b"x").unwrap();
        let headers = StandardHeaders {
            id: "m",
            timestamp: &now.timestamp().to_string(),
            signature: &format!("v1,bm90IGl0 {good}"),
        };
        assert_eq!(verify_standard(SECRET, &headers, b"x", now), Ok(()));
    }

    #[test]
    fn the_legacy_envelope_verifies_and_a_changed_one_does_not() {
        let secret = "legacy-secret-1";
        let security = md5_legacy_signature(
            "c-1",
            &SigningSecret::parse(secret, SignatureScheme::Md5Legacy).unwrap(),
            1_700_000_000_000,
        );
        let body = serde_json::json!({"callId": "c-1", "timestamp": 1_700_000_000_000_i64, "security": security, "payload": {}});
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(verify_md5_legacy(secret, &bytes), Ok(()));
        let mut forged = body;
        forged["callId"] = "c-2".into();
        assert_eq!(
            verify_md5_legacy(secret, &serde_json::to_vec(&forged).unwrap()),
            Err(VerifyError::Mismatch)
        );
    }
}
