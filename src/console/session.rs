//! Console sessions: who is logged in, until when, with the CSRF token of their forms. The
//! session id is a random 256-bit value that only the browser holds (in an HttpOnly cookie);
//! the store keeps its SHA-256, so a copy of the database does not hand out live logins.
//! Storage is behind [`SessionStore`] (sled's lives in `store::sessions`).
use crate::domain::ids::DingUserId;
use crate::store::StoreError;
use jiff::Timestamp;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A logged-in person. Debug leaves the CSRF token out: it is as good as the session for a form.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: DingUserId,
    pub name: String,
    /// Sent back in every form (`csrf`) and compared with this on every POST.
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("name", &self.name)
            .field("csrf", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where sessions are kept, by the SHA-256 of their id (see [`key_of`]).
pub trait SessionStore: Send + Sync {
    fn put(&self, key: &[u8; 32], session: &Session) -> Result<(), StoreError>;
    fn get(&self, key: &[u8; 32]) -> Result<Option<Session>, StoreError>;
    fn delete(&self, key: &[u8; 32]) -> Result<(), StoreError>;
    /// Removes sessions expired at `now`; returns how many.
    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError>;
}

/// 32 random bytes from the OS-seeded generator, hex: session ids, CSRF tokens, login states.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The storage key of a session id.
pub fn key_of(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Constant-time comparison of two tokens (CSRF, login state).
pub fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &b));
        assert!(!same_token("", ""));
        assert!(!same_token(&a, &a[..63]));
        assert_ne!(key_of(&a), key_of(&b));
    }
}
