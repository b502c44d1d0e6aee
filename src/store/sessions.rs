//! Console sessions (`console::session` says what one is). Tree `console_sessions`: SHA-256 of
//! the session id → JSON `Session`. Expired ones are refused on read and purged at login.
use super::{Store, StoreError};
use crate::console::session::{Session, SessionStore};
use jiff::Timestamp;

pub(crate) const TREE: &str = "console_sessions";

#[derive(Clone, Debug)]
pub struct Sessions {
    tree: sled::Tree,
}

impl Sessions {
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
        })
    }
}

fn decode(v: &[u8]) -> Result<Session, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("console session: {e}")))
}

impl SessionStore for Sessions {
    fn put(&self, key: &[u8; 32], session: &Session) -> Result<(), StoreError> {
        let v = serde_json::to_vec(session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.tree.insert(key, v)?;
        Ok(())
    }

    fn get(&self, key: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        self.tree.get(key)?.map(|v| decode(&v)).transpose()
    }

    fn delete(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        self.tree.remove(key)?;
        Ok(())
    }

    fn purge_expired(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut n = 0;
        for item in self.tree.iter() {
            let (k, v) = item?;
            // An unreadable record is no session anyone can use: removed too.
            if decode(&v).map_or(true, |s| s.expires_at <= now) {
                self.tree.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
