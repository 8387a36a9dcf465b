//! Key secrets: `cbk_` and 256 random bits, shown once and kept only as
//! their SHA-256.

use base64::Engine;
use callback_core::KeyHash;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// Every key starts with this, so that secret scanners (and people) can
/// tell a callback-center key when one leaks into a repository or a log.
pub const KEY_PREFIX: &str = "cbk_";

/// A new key's secret and the hash to store. Fails only when the operating
/// system has no randomness to give.
pub fn generate_key() -> Result<(SecretString, KeyHash), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let secret = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_key(&secret);
    Ok((SecretString::from(secret), hash))
}

/// The SHA-256 of a presented key. A fast hash is right here, unlike for
/// passwords: the secret has 256 random bits, so no guessing is helped by
/// a fast check.
pub fn hash_key(presented: &str) -> KeyHash {
    KeyHash(Sha256::digest(presented.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn keys_are_prefixed_random_and_hash_to_what_is_stored() {
        let (a, hash_a) = generate_key().unwrap();
        let (b, _) = generate_key().unwrap();
        assert!(a.expose_secret().starts_with(KEY_PREFIX));
        assert_eq!(a.expose_secret().len(), KEY_PREFIX.len() + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(hash_key(a.expose_secret()), hash_a);
        assert_ne!(hash_key(b.expose_secret()), hash_a);
    }
}
