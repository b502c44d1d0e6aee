//! Dedupe keys: DingTalk redelivers events (reference §2.6, §3) and users double-tap, so every
//! delivery's key is remembered for a while; a second delivery is acknowledged, not re-run.
//! Value: the expiry as big-endian i64 milliseconds, so stale entries can be swept by value.
use super::{Store, StoreError};

const TREE: &str = "dedupe";

#[derive(Clone, Debug)]
pub struct Dedupe {
    tree: sled::Tree,
}

impl Dedupe {
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
        })
    }

    /// Records `key` until `expires_ms`. Returns `true` if this is the first delivery (or the
    /// previous record has expired), `false` for a duplicate. Atomic under concurrency: of two
    /// simultaneous deliveries exactly one gets `true`.
    pub fn first_seen(&self, key: &str, now_ms: i64, expires_ms: i64) -> Result<bool, StoreError> {
        let new = expires_ms.to_be_bytes();
        let mut current = self.tree.get(key)?;
        loop {
            if let Some(v) = &current {
                if decode(v) > now_ms {
                    return Ok(false);
                }
            }
            match self
                .tree
                .compare_and_swap(key, current.clone(), Some(&new[..]))?
            {
                Ok(()) => return Ok(true),
                Err(e) => current = e.current,
            }
        }
    }

    /// Forgets `key`, so a delivery whose handling failed before any state changed can be retried.
    pub fn forget(&self, key: &str) -> Result<(), StoreError> {
        self.tree.remove(key)?;
        Ok(())
    }

    /// Removes expired keys; returns how many. Called periodically by the scheduler.
    pub fn sweep(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut n = 0;
        for item in self.tree.iter() {
            let (k, v) = item?;
            if decode(&v) <= now_ms
                && self
                    .tree
                    .compare_and_swap(&k, Some(v), None::<&[u8]>)?
                    .is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

fn decode(v: &[u8]) -> i64 {
    v.try_into().map(i64::from_be_bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_within_ttl_is_refused_and_expired_key_is_accepted_again() {
        let store = Store::temporary().unwrap();
        let d = Dedupe::new(&store).unwrap();
        assert!(d.first_seen("msg:1", 1000, 2000).unwrap());
        assert!(!d.first_seen("msg:1", 1500, 2500).unwrap());
        assert!(d.first_seen("msg:1", 2001, 3000).unwrap());
        assert_eq!(d.sweep(3001).unwrap(), 1);
        assert!(d.is_empty());
    }

    #[test]
    fn second_open_of_same_path_reports_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _a = Store::open(dir.path()).unwrap();
        // sled's lock is per process via flock, so a second open inside one process may
        // succeed on some platforms; we only require that it never panics and that a
        // lock failure maps to Locked.
        if let Err(e) = Store::open(dir.path()) {
            assert!(matches!(e, StoreError::Locked { .. }), "{e}");
        }
    }
}
