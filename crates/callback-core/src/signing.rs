//! Signatures a receiver checks to know a request came from us.
//!
//! - Standard Webhooks: `webhook-id`, `webhook-timestamp` (seconds) and
//!   `webhook-signature` = `v1,` + base64 HMAC-SHA256 over
//!   `{id}.{timestamp}.{body}`, keyed with the base64-decoded part of a
//!   `whsec_...` secret. Any Standard Webhooks library verifies it.
//! - The legacy envelope: lowercase hex MD5 of `callId + secret + timestamp`,
//!   carried inside the JSON body.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use std::fmt;

/// Which signature an endpoint's requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    #[default]
    Standard,
    Md5Legacy,
}

impl SignatureScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Md5Legacy => "md5_legacy",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "standard" => Ok(Self::Standard),
            "md5_legacy" => Ok(Self::Md5Legacy),
            _ => Err(format!("must be standard or md5_legacy, not {raw:?}")),
        }
    }
}

/// An endpoint's signing secret. Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

impl SigningSecret {
    const PREFIX: &'static str = "whsec_";

    /// A new `whsec_` secret with 24 random bytes.
    pub fn generate() -> Self {
        let mut key = Vec::with_capacity(32);
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        key.extend_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
        Self(format!("{}{}", Self::PREFIX, BASE64.encode(key)))
    }

    /// A secret given by an operator. For the standard scheme it must be
    /// `whsec_` and base64 of 16 to 64 bytes; for the legacy scheme, 8 to
    /// 128 printable characters.
    pub fn parse(raw: &str, scheme: SignatureScheme) -> Result<Self, String> {
        match scheme {
            SignatureScheme::Standard => {
                let key = raw
                    .strip_prefix(Self::PREFIX)
                    .and_then(|b64| BASE64.decode(b64).ok())
                    .ok_or("must be whsec_ followed by base64")?;
                if !(16..=64).contains(&key.len()) {
                    return Err("must encode 16 to 64 bytes".into());
                }
            }
            SignatureScheme::Md5Legacy => {
                if !(8..=128).contains(&raw.len()) || !raw.chars().all(|c| c.is_ascii_graphic()) {
                    return Err("must be 8 to 128 printable ASCII characters".into());
                }
            }
        }
        Ok(Self(raw.to_string()))
    }

    /// For a secret read back from the store, already validated once.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the decoded part of a `whsec_` secret, else the bytes.
    fn key(&self) -> Vec<u8> {
        self.0
            .strip_prefix(Self::PREFIX)
            .and_then(|b64| BASE64.decode(b64).ok())
            .unwrap_or_else(|| self.0.as_bytes().to_vec())
    }
}

/// HMAC-SHA256 of the concatenated `parts`, keyed with `key`: the one
/// primitive of every signature here (Standard Webhooks, DingTalk, vendor
/// HMAC headers).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The `webhook-signature` value for one request.
pub fn standard_signature(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let signed = format!("{id}.{timestamp}.");
    let mac = hmac_sha256(&secret.key(), &[signed.as_bytes(), body]);
    format!("v1,{}", BASE64.encode(mac))
}

/// The legacy envelope's `security`: hex MD5 of `callId + secret + timestamp`.
pub fn md5_legacy_signature(call_id: &str, secret: &SigningSecret, timestamp_ms: i64) -> String {
    let mut md5 = Md5::new();
    md5.update(call_id.as_bytes());
    md5.update(secret.expose().as_bytes());
    md5.update(timestamp_ms.to_string().as_bytes());
    hex::encode(md5.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_signature_matches_the_specification_example() {
        // The example of the Standard Webhooks specification.
        let secret = SigningSecret::parse(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            SignatureScheme::Standard,
        )
        .unwrap();
        let signature = standard_signature(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn md5_legacy_signature_is_hex_md5_of_call_id_secret_and_timestamp() {
        let secret = SigningSecret::from_stored("s3cret-key".into());
        // md5("call-1" + "s3cret-key" + "1700000000000")
        let expected = hex::encode(Md5::digest(b"call-1s3cret-key1700000000000"));
        assert_eq!(
            md5_legacy_signature("call-1", &secret, 1_700_000_000_000),
            expected
        );
        assert_eq!(expected.len(), 32);
    }

    #[test]
    fn generated_secrets_are_standard_and_distinct() {
        let a = SigningSecret::generate();
        let b = SigningSecret::generate();
        assert_ne!(a, b);
        assert!(SigningSecret::parse(a.expose(), SignatureScheme::Standard).is_ok());
        assert_eq!(a.key().len(), 24);
        assert_eq!(format!("{a:?}"), "SigningSecret(..)");
    }

    #[test]
    fn secrets_are_checked_for_their_scheme() {
        assert!(SigningSecret::parse("plain", SignatureScheme::Standard).is_err());
        assert!(SigningSecret::parse("whsec_!!", SignatureScheme::Standard).is_err());
        assert!(SigningSecret::parse("whsec_c2hvcnQ=", SignatureScheme::Standard).is_err());
        assert!(SigningSecret::parse("short", SignatureScheme::Md5Legacy).is_err());
        assert!(SigningSecret::parse("a-long-enough-secret", SignatureScheme::Md5Legacy).is_ok());
    }
}
