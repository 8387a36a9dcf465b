//! Plays WeChat in safe mode: encrypts a push as WeChat's servers do, so
//! that the server's decryption is tested on messages it did not make.

use aes::cipher::{BlockEncryptMut, KeyIvInit};
use base64::Engine;

/// Encrypts `message` for `appid` with the 43-character EncodingAESKey:
/// 16 random bytes, the length, the message and the appid, padded to 32
/// bytes, AES-256-CBC with the key's first 16 bytes as IV, base64.
pub fn wechat_encrypt(encoding_aes_key: &str, message: &[u8], appid: &str) -> String {
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let key: [u8; 32] = lenient
        .decode(format!("{encoding_aes_key}="))
        .expect("a 43-character EncodingAESKey")
        .try_into()
        .expect("32 bytes");
    let mut plain: Vec<u8> = (0..16).map(|_| fastrand::u8(..)).collect();
    plain.extend_from_slice(&u32::try_from(message.len()).expect("short").to_be_bytes());
    plain.extend_from_slice(message);
    plain.extend_from_slice(appid.as_bytes());
    let pad = 32 - plain.len() % 32;
    plain.extend(std::iter::repeat_n(pad as u8, pad));
    let len = plain.len();
    let iv: [u8; 16] = key[..16].try_into().expect("16 bytes");
    cbc::Encryptor::<aes::Aes256>::new(&key.into(), &iv.into())
        .encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut plain, len)
        .expect("whole blocks");
    base64::engine::general_purpose::STANDARD.encode(plain)
}
