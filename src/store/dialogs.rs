//! Per-user dialog state (multi-turn conversations). `domain::dialog` owns the shape of the state;
//! this tree stores it as JSON with the time of the user's last activity, so idle dialogs can be
//! swept without knowing what they are. The workflow's `DialogStore` port (`app::sled_store`)
//! reads it back typed, and reports one it cannot read instead of dropping it.
//!
//! Tree `dialogs`: key = DingTalk userid → JSON `DialogEntry`.
use super::{Store, StoreError};
use crate::domain::ids::DingUserId;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

const TREE: &str = "dialogs";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DialogEntry {
    pub state: serde_json::Value,
    pub last_active: Timestamp,
}

#[derive(Clone, Debug)]
pub struct Dialogs {
    tree: sled::Tree,
}

fn decode(v: &[u8]) -> Result<DialogEntry, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("dialog: {e}")))
}

impl Dialogs {
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
        })
    }

    pub fn get(&self, user: &DingUserId) -> Result<Option<DialogEntry>, StoreError> {
        self.tree
            .get(user.as_str().as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn put(
        &self,
        user: &DingUserId,
        state: serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let e = DialogEntry {
            state,
            last_active: now,
        };
        let v = serde_json::to_vec(&e).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.tree.insert(user.as_str().as_bytes(), v)?;
        Ok(())
    }

    /// Returns whether there was a dialog.
    pub fn delete(&self, user: &DingUserId) -> Result<bool, StoreError> {
        Ok(self.tree.remove(user.as_str().as_bytes())?.is_some())
    }

    /// Removes dialogs idle for at least `idle`; returns the users whose dialog was dropped (the
    /// chat layer may tell them). A dialog touched during the sweep is kept (compare-and-swap).
    pub fn sweep_idle(
        &self,
        now: Timestamp,
        idle: SignedDuration,
    ) -> Result<Vec<DingUserId>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.iter() {
            let (k, v) = item?;
            // A corrupt entry is idle by definition: nobody can resume it.
            let stale = decode(&v).map_or(true, |e| now.duration_since(e.last_active) >= idle);
            if stale
                && self
                    .tree
                    .compare_and_swap(&k, Some(v), None::<&[u8]>)?
                    .is_ok()
            {
                out.push(DingUserId::new(String::from_utf8_lossy(&k).into_owned()));
            }
        }
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}
