//! Header signatures of the two unencrypted DingTalk callbacks: the robot HTTP-mode
//! `timestamp`/`sign` pair (reference §4.1) and the interactive-card `x-ddpaas-signature`
//! pair (reference §5.4). Both are base64(HMAC-SHA256), compared in constant time.
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Robot requests older or newer than this are refused (reference §4.1: one hour).
pub const ROBOT_WINDOW_MS: i64 = 3_600_000;

/// Freshness window for card callbacks. DingTalk documents none (reference §5.4/§12,
/// UNCONFIRMED); five minutes tolerates ordinary clock skew while still bounding replays.
pub const CARD_WINDOW_MS: i64 = 300_000;

pub const ROBOT_TIMESTAMP_HEADER: &str = "timestamp";
pub const ROBOT_SIGN_HEADER: &str = "sign";
pub const CARD_TIMESTAMP_HEADER: &str = "x-ddpaas-signature-timestamp";
pub const CARD_SIGN_HEADER: &str = "x-ddpaas-signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("signature headers missing")]
    Missing,
    #[error("signature timestamp is not a number")]
    Malformed,
    #[error("signature timestamp outside the allowed window")]
    Stale,
    #[error("signature mismatch")]
    Mismatch,
}

fn hmac_b64(key: &[u8], parts: &[&[u8]]) -> String {
    // HMAC accepts keys of any length, so this constructor cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `base64(HMAC-SHA256(key = app_secret, msg = timestamp + "\n" + app_secret))`.
pub fn robot_sign(timestamp: &str, app_secret: &str) -> String {
    hmac_b64(
        app_secret.as_bytes(),
        &[timestamp.as_bytes(), b"\n", app_secret.as_bytes()],
    )
}

/// `base64(HMAC-SHA256(key = api_secret, msg = timestamp))`.
pub fn card_sign(timestamp: &str, api_secret: &str) -> String {
    hmac_b64(api_secret.as_bytes(), &[timestamp.as_bytes()])
}

fn check(
    ts: Option<&str>,
    sig: Option<&str>,
    now_ms: i64,
    window_ms: i64,
    expected: impl FnOnce(&str) -> String,
) -> Result<(), SignError> {
    let (ts, sig) = match (ts, sig) {
        (Some(t), Some(s)) if !t.is_empty() && !s.is_empty() => (t, s),
        _ => return Err(SignError::Missing),
    };
    let ts_ms: i64 = ts.trim().parse().map_err(|_| SignError::Malformed)?;
    // i128 so that extreme timestamps cannot overflow the subtraction.
    let skew = (i128::from(now_ms) - i128::from(ts_ms)).abs();
    if skew > i128::from(window_ms) {
        return Err(SignError::Stale);
    }
    // The header value is compared raw: DingTalk does not URL-encode it (reference §4.1).
    if bool::from(expected(ts).as_bytes().ct_eq(sig.as_bytes())) {
        Ok(())
    } else {
        Err(SignError::Mismatch)
    }
}

/// Verifies the robot HTTP-mode headers `timestamp` and `sign` against `now_ms`.
pub fn verify_robot_request(
    timestamp_header: Option<&str>,
    sign_header: Option<&str>,
    app_secret: &str,
    now_ms: i64,
) -> Result<(), SignError> {
    check(
        timestamp_header,
        sign_header,
        now_ms,
        ROBOT_WINDOW_MS,
        |ts| robot_sign(ts, app_secret),
    )
}

/// Verifies `x-ddpaas-signature-timestamp` / `x-ddpaas-signature`; pass [`CARD_WINDOW_MS`]
/// unless configured otherwise.
pub fn verify_card_request(
    ts: Option<&str>,
    sig: Option<&str>,
    api_secret: &str,
    now_ms: i64,
    window_ms: i64,
) -> Result<(), SignError> {
    check(ts, sig, now_ms, window_ms, |t| card_sign(t, api_secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_symmetric_and_inclusive() {
        let ts = "1700000000000";
        let s = robot_sign(ts, "sec");
        let t0 = 1_700_000_000_000;
        assert_eq!(
            verify_robot_request(Some(ts), Some(&s), "sec", t0 + ROBOT_WINDOW_MS),
            Ok(())
        );
        assert_eq!(
            verify_robot_request(Some(ts), Some(&s), "sec", t0 - ROBOT_WINDOW_MS),
            Ok(())
        );
        assert_eq!(
            verify_robot_request(Some(ts), Some(&s), "sec", t0 + ROBOT_WINDOW_MS + 1),
            Err(SignError::Stale)
        );
        assert_eq!(
            verify_robot_request(Some(ts), Some(&s), "sec", t0 - ROBOT_WINDOW_MS - 1),
            Err(SignError::Stale)
        );
    }

    #[test]
    fn missing_malformed_mismatch() {
        let now = 1_700_000_000_000;
        assert_eq!(
            verify_robot_request(None, Some("x"), "s", now),
            Err(SignError::Missing)
        );
        assert_eq!(
            verify_robot_request(Some("1"), None, "s", now),
            Err(SignError::Missing)
        );
        assert_eq!(
            verify_robot_request(Some(""), Some("x"), "s", now),
            Err(SignError::Missing)
        );
        assert_eq!(
            verify_robot_request(Some("12a"), Some("x"), "s", now),
            Err(SignError::Malformed)
        );
        assert_eq!(
            verify_robot_request(Some("99999999999999999999999"), Some("x"), "s", now),
            Err(SignError::Malformed)
        );
        assert_eq!(
            verify_card_request(
                Some("1700000000000"),
                Some("AAAA"),
                "s",
                now,
                CARD_WINDOW_MS
            ),
            Err(SignError::Mismatch)
        );
        assert_eq!(
            verify_card_request(
                Some("-9223372036854775808"),
                Some("AAAA"),
                "s",
                i64::MAX,
                i64::MAX
            ),
            Err(SignError::Stale)
        );
    }
}
