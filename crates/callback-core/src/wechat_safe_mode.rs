//! WeChat's safe mode (安全模式): pushes arrive encrypted with the
//! EncodingAESKey, signed by `msg_signature` over the ciphertext.
//!
//! The key is the 43-character EncodingAESKey, base64 with its `=` left
//! off: 32 bytes for AES-256-CBC, whose first 16 are the IV. The plaintext
//! is 16 random bytes, the message length (4 bytes, big-endian), the
//! message, and the appid it is for, padded PKCS#7-style to 32 bytes.

use crate::inbound::sorted_sha1_hex;
use aes::cipher::{BlockDecryptMut, KeyIvInit};
use base64::Engine;
use constant_time_eq::constant_time_eq;
use std::fmt;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// WeChat pads to a multiple of 32 bytes, not AES's 16.
const PAD_BLOCK: usize = 32;

#[derive(Clone)]
pub struct EncodingAesKey([u8; 32]);

impl fmt::Debug for EncodingAesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncodingAesKey(***)")
    }
}

impl EncodingAesKey {
    pub fn parse(key: &str) -> Result<Self, String> {
        let key = key.trim();
        if key.len() != 43 {
            return Err("an EncodingAESKey is 43 characters".into());
        }
        // WeChat's keys leave bits set past the 32nd byte; its own
        // samples decode them leniently, and so must we.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let bytes = lenient
            .decode(format!("{key}="))
            .map_err(|_| "an EncodingAESKey is letters and digits (base64)".to_string())?;
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| "an EncodingAESKey decodes to 32 bytes".into())
    }
}

/// `msg_signature`: the SHA-1 of token, timestamp, nonce and the
/// ciphertext, sorted and joined.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sorted_sha1_hex(&mut [token, timestamp, nonce, encrypt])
}

/// Whether `signature` was made over `encrypt` with one of `tokens`.
pub fn msg_signature_ok(
    tokens: &[&str],
    signature: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
) -> bool {
    let signature = signature.to_ascii_lowercase();
    tokens.iter().any(|token| {
        let expected = msg_signature(token, timestamp, nonce, encrypt);
        constant_time_eq(expected.as_bytes(), signature.as_bytes())
    })
}

/// A decrypted push: the message as WeChat would have sent it in plain
/// mode, and the appid it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    pub message: Vec<u8>,
    pub appid: String,
}

/// Decrypts the `Encrypt` field of a push.
pub fn decrypt(key: &EncodingAesKey, encrypt: &str) -> Result<Decrypted, String> {
    let mut data = base64::engine::general_purpose::STANDARD
        .decode(encrypt.trim())
        .map_err(|_| "Encrypt is not base64".to_string())?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err("Encrypt is not whole AES blocks".into());
    }
    let iv: [u8; 16] = key.0[..16]
        .try_into()
        .map_err(|_| "the key is too short".to_string())?;
    let plain = Aes256CbcDec::new(&key.0.into(), &iv.into())
        .decrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut data)
        .map_err(|_| "Encrypt does not decrypt".to_string())?;
    let pad = usize::from(*plain.last().unwrap_or(&0));
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err("Encrypt does not decrypt with this key (bad padding)".into());
    }
    let plain = &plain[..plain.len() - pad];
    if plain.len() < 20 {
        return Err("the decrypted push is too short".into());
    }
    let length = u32::from_be_bytes([plain[16], plain[17], plain[18], plain[19]]) as usize;
    let rest = &plain[20..];
    if length > rest.len() {
        return Err("Encrypt does not decrypt with this key (bad length)".into());
    }
    let (message, appid) = rest.split_at(length);
    Ok(Decrypted {
        message: message.to_vec(),
        appid: String::from_utf8(appid.to_vec())
            .map_err(|_| "the appid of the push is not text".to_string())?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aes::cipher::BlockEncryptMut;

    /// From WeChat's published sample of the message encryption
    /// (WXBizMsgCrypt, Sample.py): a text message to `gh_10f6c3c3ac5a`.
    pub const SAMPLE_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    pub const SAMPLE_TOKEN: &str = "spamtest";
    pub const SAMPLE_APPID: &str = "wx2c2769f8efd9abc2";
    pub const SAMPLE_TIMESTAMP: &str = "1409735669";
    pub const SAMPLE_NONCE: &str = "1320562132";
    pub const SAMPLE_MSG_SIGNATURE: &str = "5d197aaffba7e9b25a30732f161a50dee96bd5fa";
    pub const SAMPLE_ENCRYPT: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";

    /// Encrypts as WeChat does, for round trips.
    pub fn encrypt(key: &str, message: &[u8], appid: &str) -> String {
        type Enc = cbc::Encryptor<aes::Aes256>;
        let key = EncodingAesKey::parse(key).unwrap();
        let mut plain = b"0123456789abcdef".to_vec();
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message);
        plain.extend_from_slice(appid.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let len = plain.len();
        let iv: [u8; 16] = key.0[..16].try_into().unwrap();
        Enc::new(&key.0.into(), &iv.into())
            .encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut plain, len)
            .unwrap();
        base64::engine::general_purpose::STANDARD.encode(plain)
    }

    #[test]
    fn wechats_published_sample_verifies_and_decrypts() {
        assert!(msg_signature_ok(
            &["other", SAMPLE_TOKEN],
            SAMPLE_MSG_SIGNATURE,
            SAMPLE_TIMESTAMP,
            SAMPLE_NONCE,
            SAMPLE_ENCRYPT
        ));
        assert!(!msg_signature_ok(
            &[SAMPLE_TOKEN],
            SAMPLE_MSG_SIGNATURE,
            "1409735670",
            SAMPLE_NONCE,
            SAMPLE_ENCRYPT
        ));
        let key = EncodingAesKey::parse(SAMPLE_KEY).unwrap();
        let decrypted = decrypt(&key, SAMPLE_ENCRYPT).unwrap();
        assert_eq!(decrypted.appid, SAMPLE_APPID);
        let message = String::from_utf8(decrypted.message).unwrap();
        assert!(message.starts_with("<xml>"), "{message}");
        assert!(
            message.contains("<Content><![CDATA[abcdteT]]></Content>"),
            "{message}"
        );
    }

    #[test]
    fn a_round_trip_holds_and_a_wrong_key_or_garbage_is_an_error() {
        let json = br#"{"Event":"wxa_media_check","trace_id":"t1"}"#;
        let encrypted = encrypt(SAMPLE_KEY, json, "wx8f16a5e5f7ad1234");
        let key = EncodingAesKey::parse(SAMPLE_KEY).unwrap();
        let decrypted = decrypt(&key, &encrypted).unwrap();
        assert_eq!(decrypted.message, json);
        assert_eq!(decrypted.appid, "wx8f16a5e5f7ad1234");

        let other = EncodingAesKey::parse("bbcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        assert!(decrypt(&other, &encrypted).is_err_or_garbage(json));
        assert!(decrypt(&key, "not base64!").is_err());
        assert!(decrypt(&key, "AAAA").is_err());
        assert!(EncodingAesKey::parse("short").is_err());
        assert!(EncodingAesKey::parse(&"!".repeat(43)).is_err());
    }

    trait ErrOrGarbage {
        fn is_err_or_garbage(&self, expected: &[u8]) -> bool;
    }

    /// A wrong key usually breaks the padding or the length; when by
    /// chance it does not, the message is still not the original.
    impl ErrOrGarbage for Result<Decrypted, String> {
        fn is_err_or_garbage(&self, expected: &[u8]) -> bool {
            self.as_ref().map_or(true, |d| d.message != expected)
        }
    }
}
