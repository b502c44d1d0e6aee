//! RFC 6238 TOTP as JumpServer (pyotp) computes it: base32 seed, 30 s step, 6 digits, HMAC-SHA1
//! (SHA-256 kept for servers configured with `OTP_DIGEST: sha256`). Time comes from the caller.
use hmac::{Hmac, Mac};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpDigest {
    Sha1,
    Sha256,
}

/// Decodes RFC 4648 base32 (case-insensitive, spaces and `=` padding ignored).
pub fn decode_base32(seed: &str) -> Option<Vec<u8>> {
    let mut bits: u64 = 0;
    let mut nbits = 0u32;
    let mut out = Vec::new();
    for c in seed.chars() {
        if c == '=' || c.is_whitespace() {
            continue;
        }
        let v = match c.to_ascii_uppercase() {
            u @ 'A'..='Z' => u as u64 - 'A' as u64,
            d @ '2'..='7' => d as u64 - '2' as u64 + 26,
            _ => return None,
        };
        bits = (bits << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1u64 << nbits) - 1;
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

fn hotp_raw(key: &[u8], counter: u64, digest: TotpDigest) -> u32 {
    let msg = counter.to_be_bytes();
    let hash: Vec<u8> = match digest {
        TotpDigest::Sha1 => {
            let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
            m.update(&msg);
            m.finalize().into_bytes().to_vec()
        }
        TotpDigest::Sha256 => {
            let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
            m.update(&msg);
            m.finalize().into_bytes().to_vec()
        }
    };
    // Dynamic truncation (RFC 4226 §5.3); the last nibble picks a 4-byte window inside the hash.
    let off = (hash.last().copied().unwrap_or(0) & 0x0f) as usize;
    let w = hash.get(off..off + 4).unwrap_or(&[0, 0, 0, 0]);
    u32::from_be_bytes([w[0] & 0x7f, w[1], w[2], w[3]])
}

/// The code for `unix_secs` with a raw key.
pub fn totp_raw(key: &[u8], unix_secs: i64, step: i64, digits: u32, digest: TotpDigest) -> String {
    let counter = unix_secs.max(0) / step.max(1);
    let code = hotp_raw(key, counter as u64, digest) % 10u32.pow(digits.min(9));
    format!("{code:0width$}", width = digits as usize)
}

/// JumpServer's TOTP: base32 seed, 30 s, 6 digits, SHA-1. `None` when the seed is not base32.
pub fn totp(seed_base32: &str, unix_secs: i64) -> Option<String> {
    let key = decode_base32(seed_base32)?;
    Some(totp_raw(&key, unix_secs, 30, 6, TotpDigest::Sha1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_roundtrip_of_rfc_seed() {
        assert_eq!(
            decode_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(),
            b"12345678901234567890"
        );
        assert!(decode_base32("not base32!").is_none());
        assert!(decode_base32("").is_none());
    }

    #[test]
    fn totp_matches_transcript_019() {
        assert_eq!(
            totp("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 1_795_347_762).as_deref(),
            Some("941207")
        );
    }

    #[test]
    fn totp_rfc6238_vector() {
        // RFC 6238 appendix B, SHA1 at T=59 -> 94287082 (8 digits); last 6 digits.
        assert_eq!(
            totp("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 59).as_deref(),
            Some("287082")
        );
    }
}
