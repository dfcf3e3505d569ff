//! The payload transformers of the `aesgcm`, `aescbc` and `secretbox` providers, byte
//! compatible with Kubernetes (`pkg/storage/value/encrypt/aes`, `.../secretbox`):
//!
//! | provider  | stored payload (after the prefix)                        | authenticated data |
//! |-----------|----------------------------------------------------------|--------------------|
//! | aesgcm    | 12-byte random nonce ‖ AES-GCM ciphertext ‖ 16-byte tag  | the full key       |
//! | aescbc    | 16-byte random IV ‖ AES-CBC ciphertext (PKCS#7 padding)  | none               |
//! | secretbox | 24-byte random nonce ‖ 16-byte tag ‖ XSalsa20 ciphertext | none               |
//!
//! Decryption failures are [`Error::Internal`]; nothing here panics on bad input.

use std::borrow::Cow;
use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use crypto_secretbox::XSalsa20Poly1305;
use rand::RngCore;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::transformer::Transformer;

type Aes192Gcm = AesGcm<aes::Aes192, U12>;

const GCM_NONCE_SIZE: usize = 12;
const CBC_BLOCK_SIZE: usize = 16;
const SECRETBOX_NONCE_SIZE: usize = 24;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

fn short_data() -> Error {
    Error::internal("the stored data was shorter than the required size")
}

enum GcmCipher {
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<Aes192Gcm>),
    Aes256(Box<Aes256Gcm>),
}

/// AES-GCM with a random 12-byte nonce per write; the full storage key is the
/// authenticated data, so a ciphertext copied under another key fails to decrypt.
pub struct AesGcmTransformer {
    cipher: GcmCipher,
}

impl fmt::Debug for AesGcmTransformer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesGcmTransformer")
    }
}

impl AesGcmTransformer {
    /// A transformer for a 16, 24 or 32-byte key.
    ///
    /// Errors: [`Error::Invalid`] for any other key length.
    pub fn new(key: &[u8]) -> Result<Self> {
        let bad = |_| Error::invalid("secret", "REDACTED", "invalid AES key");
        let cipher = match key.len() {
            16 => GcmCipher::Aes128(Box::new(Aes128Gcm::new_from_slice(key).map_err(bad)?)),
            24 => GcmCipher::Aes192(Box::new(Aes192Gcm::new_from_slice(key).map_err(bad)?)),
            32 => GcmCipher::Aes256(Box::new(Aes256Gcm::new_from_slice(key).map_err(bad)?)),
            other => return Err(key_length_error(other, &[16, 24, 32])),
        };
        Ok(AesGcmTransformer { cipher })
    }
}

impl Transformer for AesGcmTransformer {
    fn transform_from_storage<'a>(&self, data: &'a [u8], authenticated_data: &[u8]) -> Result<(Cow<'a, [u8]>, bool)> {
        if data.len() < GCM_NONCE_SIZE {
            return Err(short_data());
        }
        let (nonce, ciphertext) = data.split_at(GCM_NONCE_SIZE);
        let nonce = aes_gcm::Nonce::from_slice(nonce);
        let payload = Payload { msg: ciphertext, aad: authenticated_data };
        let plain = match &self.cipher {
            GcmCipher::Aes128(c) => c.decrypt(nonce, payload),
            GcmCipher::Aes192(c) => c.decrypt(nonce, payload),
            GcmCipher::Aes256(c) => c.decrypt(nonce, payload),
        }
        .map_err(|_| Error::internal("cipher: message authentication failed"))?;
        Ok((Cow::Owned(plain), false))
    }

    fn transform_to_storage(&self, data: Bytes, authenticated_data: &[u8]) -> Result<Bytes> {
        let data = &data[..];
        let nonce_bytes = random_bytes::<GCM_NONCE_SIZE>();
        let nonce = aes_gcm::Nonce::from_slice(&nonce_bytes);
        let payload = Payload { msg: data, aad: authenticated_data };
        let sealed = match &self.cipher {
            GcmCipher::Aes128(c) => c.encrypt(nonce, payload),
            GcmCipher::Aes192(c) => c.encrypt(nonce, payload),
            GcmCipher::Aes256(c) => c.encrypt(nonce, payload),
        }
        .map_err(|_| Error::internal("AES-GCM encryption failed"))?;
        let mut out = Vec::with_capacity(GCM_NONCE_SIZE + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        Ok(Bytes::from(out))
    }
}

/// AES-CBC with a random IV per write and PKCS#7 padding (no authentication, as in
/// Kubernetes; prefer aesgcm or secretbox).
pub struct AesCbcTransformer {
    key: Vec<u8>,
}

impl fmt::Debug for AesCbcTransformer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesCbcTransformer")
    }
}

impl AesCbcTransformer {
    /// A transformer for a 16, 24 or 32-byte key.
    ///
    /// Errors: [`Error::Invalid`] for any other key length.
    pub fn new(key: &[u8]) -> Result<Self> {
        match key.len() {
            16 | 24 | 32 => Ok(AesCbcTransformer { key: key.to_vec() }),
            other => Err(key_length_error(other, &[16, 24, 32])),
        }
    }
}

fn cbc_encrypt<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>>
where
    cbc::Encryptor<C>: KeyIvInit + BlockEncryptMut,
    C: cbc::cipher::BlockEncryptMut + cbc::cipher::BlockCipher,
{
    let encryptor =
        cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|_| Error::internal("invalid AES-CBC key or IV"))?;
    Ok(encryptor.encrypt_padded_vec_mut::<Pkcs7>(data))
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>>
where
    cbc::Decryptor<C>: KeyIvInit + BlockDecryptMut,
    C: cbc::cipher::BlockDecryptMut + cbc::cipher::BlockCipher,
{
    let decryptor =
        cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| Error::internal("invalid AES-CBC key or IV"))?;
    decryptor.decrypt_padded_vec_mut::<Pkcs7>(data).map_err(|_| Error::internal("invalid padding on input"))
}

impl Transformer for AesCbcTransformer {
    fn transform_from_storage<'a>(&self, data: &'a [u8], _authenticated_data: &[u8]) -> Result<(Cow<'a, [u8]>, bool)> {
        if data.len() < CBC_BLOCK_SIZE {
            return Err(short_data());
        }
        let (iv, ciphertext) = data.split_at(CBC_BLOCK_SIZE);
        if ciphertext.len() % CBC_BLOCK_SIZE != 0 {
            return Err(Error::internal("the stored data is not a multiple of the block size"));
        }
        let plain = match self.key.len() {
            16 => cbc_decrypt::<aes::Aes128>(&self.key, iv, ciphertext),
            24 => cbc_decrypt::<aes::Aes192>(&self.key, iv, ciphertext),
            _ => cbc_decrypt::<aes::Aes256>(&self.key, iv, ciphertext),
        }?;
        Ok((Cow::Owned(plain), false))
    }

    fn transform_to_storage(&self, data: Bytes, _authenticated_data: &[u8]) -> Result<Bytes> {
        let data = &data[..];
        let iv = random_bytes::<CBC_BLOCK_SIZE>();
        let sealed = match self.key.len() {
            16 => cbc_encrypt::<aes::Aes128>(&self.key, &iv, data),
            24 => cbc_encrypt::<aes::Aes192>(&self.key, &iv, data),
            _ => cbc_encrypt::<aes::Aes256>(&self.key, &iv, data),
        }?;
        let mut out = Vec::with_capacity(CBC_BLOCK_SIZE + sealed.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(&sealed);
        Ok(Bytes::from(out))
    }
}

/// NaCl secretbox (XSalsa20-Poly1305) with a random 24-byte nonce per write.
pub struct SecretboxTransformer {
    cipher: XSalsa20Poly1305,
}

impl fmt::Debug for SecretboxTransformer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretboxTransformer")
    }
}

impl SecretboxTransformer {
    /// A transformer for a 32-byte key.
    ///
    /// Errors: [`Error::Invalid`] for any other key length.
    pub fn new(key: &[u8]) -> Result<Self> {
        if key.len() != 32 {
            return Err(key_length_error(key.len(), &[32]));
        }
        let cipher = XSalsa20Poly1305::new_from_slice(key)
            .map_err(|_| Error::invalid("secret", "REDACTED", "invalid secretbox key"))?;
        Ok(SecretboxTransformer { cipher })
    }
}

impl Transformer for SecretboxTransformer {
    fn transform_from_storage<'a>(&self, data: &'a [u8], _authenticated_data: &[u8]) -> Result<(Cow<'a, [u8]>, bool)> {
        if data.len() < SECRETBOX_NONCE_SIZE {
            return Err(short_data());
        }
        let (nonce, sealed) = data.split_at(SECRETBOX_NONCE_SIZE);
        let plain = self
            .cipher
            .decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
            .map_err(|_| Error::internal("output array was not large enough for encryption"))?;
        Ok((Cow::Owned(plain), false))
    }

    fn transform_to_storage(&self, data: Bytes, _authenticated_data: &[u8]) -> Result<Bytes> {
        let data = &data[..];
        let nonce = random_bytes::<SECRETBOX_NONCE_SIZE>();
        let sealed = self
            .cipher
            .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), data)
            .map_err(|_| Error::internal("secretbox encryption failed"))?;
        let mut out = Vec::with_capacity(SECRETBOX_NONCE_SIZE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(Bytes::from(out))
    }
}

/// Kubernetes' key length message.
pub(crate) fn key_length_error(got: usize, expected: &[usize]) -> Error {
    let expected: Vec<String> = expected.iter().map(ToString::to_string).collect();
    Error::invalid(
        "secret",
        "REDACTED",
        format!("secret is not of the expected length, got {got}, expected one of [{}]", expected.join(" ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"/registry/secrets/default/a";

    #[test]
    fn every_cipher_round_trips_every_key_size_and_randomizes() {
        let mut transformers: Vec<Box<dyn Transformer>> = Vec::new();
        for size in [16, 24, 32] {
            let key = vec![7u8; size];
            transformers.push(Box::new(AesGcmTransformer::new(&key).expect("gcm")));
            transformers.push(Box::new(AesCbcTransformer::new(&key).expect("cbc")));
        }
        transformers.push(Box::new(SecretboxTransformer::new(&[9u8; 32]).expect("secretbox")));
        for t in &transformers {
            for plain in [&b""[..], b"x", b"exactly-16-bytes", b"{\"data\":{\"password\":\"hunter2\"}}"] {
                let a = t.transform_to_storage(Bytes::copy_from_slice(plain), KEY).expect("encrypt").to_vec();
                let b = t.transform_to_storage(Bytes::copy_from_slice(plain), KEY).expect("encrypt").to_vec();
                assert_ne!(a, b, "{t:?}: two encryptions of the same data must differ (random nonce)");
                if plain.len() >= 8 {
                    assert!(!a.windows(plain.len()).any(|w| w == plain), "{t:?}: plaintext visible");
                }
                assert_eq!(
                    t.transform_from_storage(&a, KEY).expect("decrypt"),
                    (plain.to_vec().into(), false),
                    "{t:?}"
                );
            }
        }
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
    }

    /// Vectors made with an independent implementation (Python `cryptography` 48) in the
    /// layout Kubernetes writes: nonce ‖ ciphertext ‖ tag (GCM, AAD = key), IV ‖ ciphertext (CBC).
    #[test]
    fn reads_values_in_the_kubernetes_layout() {
        let key = b"12345678901234567890123456789012";
        let plain = br#"{"kind":"Secret","data":{"a":"b"}}"#.to_vec();
        let gcm = unhex("000102030405060708090a0b23760c731b6fb85084d35450e09a026074f8795e5007690dd8a835c0921bd5e73cf88e1c57c7985341a9abe89338db5b5774");
        let t = AesGcmTransformer::new(key).expect("gcm");
        assert_eq!(
            t.transform_from_storage(&gcm, b"/registry/secrets/default/s").expect("gcm"),
            (plain.clone().into(), false)
        );
        assert!(t.transform_from_storage(&gcm, b"/registry/secrets/default/x").is_err(), "AAD is the key");
        let cbc = unhex("101112131415161718191a1b1c1d1e1f5fe59a47859d02ffd8668cb863d4b05604f2efa3a566fa209823b1fba34d1d0dff28bfcbc31a6734e8fa11322de258b8");
        let t = AesCbcTransformer::new(&key[..16]).expect("cbc");
        assert_eq!(t.transform_from_storage(&cbc, b"ignored").expect("cbc"), (plain.into(), false));
    }

    #[test]
    fn gcm_binds_the_ciphertext_to_its_key() {
        let t = AesGcmTransformer::new(&[1u8; 32]).expect("gcm");
        let sealed = t.transform_to_storage(Bytes::from_static(b"secret"), KEY).expect("encrypt").to_vec();
        let err = t.transform_from_storage(&sealed, b"/registry/secrets/default/b").expect_err("other key");
        assert_eq!(err.code(), 500);
    }

    #[test]
    fn corrupt_or_short_data_is_an_error_not_a_panic() {
        let gcm = AesGcmTransformer::new(&[1u8; 16]).expect("gcm");
        let cbc = AesCbcTransformer::new(&[1u8; 16]).expect("cbc");
        let sb = SecretboxTransformer::new(&[1u8; 32]).expect("secretbox");
        for t in [&gcm as &dyn Transformer, &cbc, &sb] {
            for data in [&b""[..], b"short", &[0u8; 40], &[0xffu8; 41]] {
                let err = t.transform_from_storage(data, KEY).expect_err("must fail");
                assert!(matches!(err, Error::Internal { .. }), "{t:?}: {err}");
            }
        }
        let mut sealed = sb.transform_to_storage(Bytes::from_static(b"payload"), KEY).expect("encrypt").to_vec();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(sb.transform_from_storage(&sealed, KEY).is_err(), "tampered secretbox must fail");
    }

    #[test]
    fn wrong_key_sizes_use_kubernetes_message() {
        let err = AesGcmTransformer::new(&[0u8; 9]).expect_err("9 bytes");
        assert!(err.to_string().contains("secret is not of the expected length, got 9, expected one of [16 24 32]"));
        let err = SecretboxTransformer::new(&[0u8; 16]).expect_err("16 bytes");
        assert!(err.to_string().contains("got 16, expected one of [32]"), "{err}");
        assert!(AesCbcTransformer::new(&[0u8; 33]).is_err());
    }
}
