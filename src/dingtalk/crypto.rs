//! HTTP event-push callback crypto (reference §2.3–2.4): the SHA1 signature over the sorted
//! `[token, timestamp, nonce, encrypt]`, AES-256-CBC with 32-byte PKCS#7 blocks, the
//! `random16 | u32be len | msg | owner_key` layout, and the encrypted `success` reply.
//!
//! Everything here takes untrusted input and answers with a typed [`CryptoError`]; nothing panics.
use aes::Aes256;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use rand::Rng as _;
use serde::Serialize;
use sha1::{Digest, Sha1};
use std::fmt;
use subtle::ConstantTimeEq;

/// AES block size; the ciphertext must be a whole number of these.
const AES_BLOCK: usize = 16;
/// DingTalk pads to 32-byte blocks (PKCS#7 with block size 32), not the AES block size.
const PAD_BLOCK: usize = 32;
/// `random16 || u32be length`.
const HEADER_LEN: usize = 20;

/// Why a callback could not be verified or decrypted. The Display text is short English meant
/// for a 4xx body or a log line; it never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("aes_key must be 43 base64 characters decoding to 32 bytes")]
    BadAesKey,
    #[error("signature mismatch")]
    SignatureMismatch,
    #[error("encrypt is not valid base64")]
    Base64,
    #[error("ciphertext length is not a positive multiple of 16")]
    BadCiphertextLength,
    #[error("bad padding in decrypted payload")]
    BadPadding,
    #[error("length prefix does not fit the decrypted payload")]
    BadLength,
    #[error("owner key in payload does not match the configured one")]
    OwnerKeyMismatch,
    #[error("decrypted message is not UTF-8")]
    NotUtf8,
}

/// The JSON body DingTalk expects in answer to a push (reference §2.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SuccessReply {
    pub msg_signature: String,
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    pub nonce: String,
    pub encrypt: String,
}

/// The query parameters of an event push (reference §2.2). DingTalk's docs and official samples
/// disagree on spelling, so `msg_signature` is preferred over `signature` and `timeStamp` over
/// `timestamp`. Values are kept exactly as received (they are signed as strings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushQuery {
    pub signature: String,
    pub timestamp: String,
    pub nonce: String,
}

impl PushQuery {
    /// Parses a raw (percent-encoded) query string; `None` when a parameter is missing or empty.
    pub fn parse(query: &str) -> Option<Self> {
        let mut sig = (None, None);
        let mut ts = (None, None);
        let mut nonce = None;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "msg_signature" => sig.0 = Some(v),
                "signature" => sig.1 = Some(v),
                "timeStamp" => ts.0 = Some(v),
                "timestamp" => ts.1 = Some(v),
                "nonce" => nonce = Some(v),
                _ => {}
            }
        }
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        Some(Self {
            signature: nonempty(sig.0).or(nonempty(sig.1))?,
            timestamp: nonempty(ts.0).or(nonempty(ts.1))?,
            nonce: nonempty(nonce)?,
        })
    }
}

/// Callback crypto bound to one subscription's token, AES key and owner key.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: String,
    iv: [u8; 16],
    /// The AES key schedule of the 32-byte key, expanded once: every push is decrypted and
    /// answered with an encryption, and expanding the key each time was a visible share of that
    /// work. (No key field is kept beside it; `Debug` is hand-written and prints neither.)
    cipher: Aes256,
    owner_key: String,
}

// Hand-written so that neither the token nor the key can reach a log through `{:?}`.
impl fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackCrypto")
            .field("token", &"<redacted>")
            .field("key", &"<redacted>")
            .field("owner_key", &self.owner_key)
            .finish()
    }
}

/// 43 base64 chars carry 258 bits; DingTalk's keys usually have non-zero discarded bits, which a
/// strict decoder refuses (reference §2.3 gotcha), so trailing bits and missing `=` are allowed.
const LENIENT_KEY_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Ciphertext decoding accepts the `=` padding being present or not; the bits must be canonical.
const CIPHERTEXT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl CallbackCrypto {
    /// `aes_key` is the 43-character console value (a trailing `=` is tolerated);
    /// `owner_key` is the AppKey (console subscription) or CorpId (legacy registration).
    pub fn new(token: &str, aes_key: &str, owner_key: &str) -> Result<Self, CryptoError> {
        let decoded = LENIENT_KEY_B64
            .decode(aes_key.trim())
            .map_err(|_| CryptoError::BadAesKey)?;
        let key: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadAesKey)?;
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&key[..16]);
        Ok(Self {
            token: token.to_owned(),
            cipher: Aes256::new(&key.into()),
            iv,
            owner_key: owner_key.to_owned(),
        })
    }

    pub fn owner_key(&self) -> &str {
        &self.owner_key
    }

    /// `hex_lower(SHA1(concat(sort([token, timestamp, nonce, encrypt]))))`.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypt];
        parts.sort_unstable();
        let mut h = Sha1::new();
        for p in parts {
            h.update(p.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// Checks the received `msg_signature` in constant time.
    pub fn verify_signature(
        &self,
        sig: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        let expected = self.signature(timestamp, nonce, encrypt);
        // ct_eq on slices of different length is already false without leaking content.
        if bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
            Ok(())
        } else {
            Err(CryptoError::SignatureMismatch)
        }
    }

    /// Decrypts the `encrypt` field of a push and returns the inner message (usually JSON).
    /// Call [`verify_signature`](Self::verify_signature) first.
    pub fn decrypt(&self, encrypt_b64: &str) -> Result<String, CryptoError> {
        let mut buf = CIPHERTEXT_B64
            .decode(encrypt_b64.trim())
            .map_err(|_| CryptoError::Base64)?;
        if buf.is_empty() || buf.len() % AES_BLOCK != 0 {
            return Err(CryptoError::BadCiphertextLength);
        }
        let plain = cbc::Decryptor::<Aes256>::inner_iv_init(self.cipher.clone(), &self.iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::BadCiphertextLength)?;
        // Padding bytes' values are not checked: the official libraries only read the last one,
        // and the signature over the ciphertext has already authenticated the sender.
        let pad = usize::from(*plain.last().ok_or(CryptoError::BadPadding)?);
        if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
            return Err(CryptoError::BadPadding);
        }
        let body = plain
            .get(..plain.len() - pad)
            .ok_or(CryptoError::BadPadding)?;
        let len_bytes: [u8; 4] = body
            .get(16..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(CryptoError::BadLength)?;
        let msg_len =
            usize::try_from(u32::from_be_bytes(len_bytes)).map_err(|_| CryptoError::BadLength)?;
        let msg_end = HEADER_LEN
            .checked_add(msg_len)
            .ok_or(CryptoError::BadLength)?;
        let msg = body
            .get(HEADER_LEN..msg_end)
            .ok_or(CryptoError::BadLength)?;
        let owner = body.get(msg_end..).ok_or(CryptoError::BadLength)?;
        if !bool::from(owner.ct_eq(self.owner_key.as_bytes())) {
            return Err(CryptoError::OwnerKeyMismatch);
        }
        String::from_utf8(msg.to_vec()).map_err(|_| CryptoError::NotUtf8)
    }

    /// Deterministic encryption with the given 16-byte prefix; used by vectors and simulators.
    pub fn encrypt_with_random(&self, plaintext: &str, random16: &[u8; 16]) -> String {
        let msg = plaintext.as_bytes();
        let owner = self.owner_key.as_bytes();
        let unpadded = HEADER_LEN + msg.len() + owner.len();
        let pad = PAD_BLOCK - unpadded % PAD_BLOCK;
        let mut p = Vec::with_capacity(unpadded + pad);
        p.extend_from_slice(random16);
        // A message over 4 GiB cannot arrive here (HTTP bodies are limited long before that);
        // saturate rather than panic so the function stays total.
        let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(msg);
        p.extend_from_slice(owner);
        // pad is 1..=32, so the cast is lossless.
        p.resize(unpadded + pad, pad as u8);
        let ct = cbc::Encryptor::<Aes256>::inner_iv_init(self.cipher.clone(), &self.iv.into())
            .encrypt_padded_vec_mut::<NoPadding>(&p);
        STANDARD.encode(ct)
    }

    /// Encrypts with 16 random alphanumerics as prefix, as the official libraries do.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut random16 = [0u8; 16];
        let mut rng = rand::rng();
        for b in &mut random16 {
            *b = rng.sample(rand::distr::Alphanumeric);
        }
        self.encrypt_with_random(plaintext, &random16)
    }

    /// The reply that acknowledges a push: encrypted `success`, signed over what is sent.
    /// `timestamp`/`nonce` may be echoed from the request or fresh.
    pub fn success_reply(&self, timestamp: &str, nonce: &str) -> SuccessReply {
        self.reply_with(timestamp, nonce, self.encrypt("success"))
    }

    /// [`success_reply`](Self::success_reply) with a fixed random prefix, for known-answer tests.
    pub fn success_reply_with_random(
        &self,
        timestamp: &str,
        nonce: &str,
        random16: &[u8; 16],
    ) -> SuccessReply {
        self.reply_with(
            timestamp,
            nonce,
            self.encrypt_with_random("success", random16),
        )
    }

    fn reply_with(&self, timestamp: &str, nonce: &str, encrypt: String) -> SuccessReply {
        SuccessReply {
            msg_signature: self.signature(timestamp, nonce, &encrypt),
            time_stamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
            encrypt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto() -> CallbackCrypto {
        CallbackCrypto::new(
            "tok",
            "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",
            "owner",
        )
        .expect("valid key")
    }

    #[test]
    fn short_key_is_refused() {
        assert_eq!(
            CallbackCrypto::new("t", "AQID", "o").err(),
            Some(CryptoError::BadAesKey)
        );
    }

    #[test]
    fn debug_hides_token_and_key() {
        let s = format!("{:?}", crypto());
        assert!(!s.contains("tok\""), "{s}");
        assert!(s.contains("<redacted>"));
    }

    #[test]
    fn length_prefix_past_end_is_bad_length() {
        let c = crypto();
        // Build a payload whose length prefix claims more than the body holds.
        let mut p = b"0123456789abcdef".to_vec();
        p.extend_from_slice(&1000u32.to_be_bytes());
        p.extend_from_slice(b"hi");
        let pad = PAD_BLOCK - p.len() % PAD_BLOCK;
        p.resize(p.len() + pad, pad as u8);
        let ct = cbc::Encryptor::<Aes256>::inner_iv_init(c.cipher.clone(), &c.iv.into())
            .encrypt_padded_vec_mut::<NoPadding>(&p);
        assert_eq!(c.decrypt(&STANDARD.encode(ct)), Err(CryptoError::BadLength));
    }

    #[test]
    fn zero_and_oversized_padding_are_refused() {
        let c = crypto();
        for last in [0u8, 33, 255] {
            let mut p = vec![b'a'; 64];
            if let Some(l) = p.last_mut() {
                *l = last;
            }
            let ct = cbc::Encryptor::<Aes256>::inner_iv_init(c.cipher.clone(), &c.iv.into())
                .encrypt_padded_vec_mut::<NoPadding>(&p);
            assert_eq!(
                c.decrypt(&STANDARD.encode(ct)),
                Err(CryptoError::BadPadding)
            );
        }
    }

    #[test]
    fn invalid_utf8_message_is_refused() {
        let c = crypto();
        let mut p = b"0123456789abcdef".to_vec();
        p.extend_from_slice(&2u32.to_be_bytes());
        p.extend_from_slice(&[0xff, 0xfe]);
        p.extend_from_slice(b"owner");
        let pad = PAD_BLOCK - p.len() % PAD_BLOCK;
        p.resize(p.len() + pad, pad as u8);
        let ct = cbc::Encryptor::<Aes256>::inner_iv_init(c.cipher.clone(), &c.iv.into())
            .encrypt_padded_vec_mut::<NoPadding>(&p);
        assert_eq!(c.decrypt(&STANDARD.encode(ct)), Err(CryptoError::NotUtf8));
    }

    #[test]
    fn not_base64_and_bad_length_are_distinct() {
        let c = crypto();
        assert_eq!(c.decrypt("!!!"), Err(CryptoError::Base64));
        assert_eq!(c.decrypt("AAAA"), Err(CryptoError::BadCiphertextLength));
        assert_eq!(c.decrypt(""), Err(CryptoError::BadCiphertextLength));
    }
}
