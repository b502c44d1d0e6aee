//! Per-user dialog state (multi-turn conversations). `domain::dialog` owns the shape of the state;
//! this tree stores it as JSON with the time of the user's last activity, so idle dialogs can be
//! swept without knowing what they are. The workflow's `DialogStore` port (`app::sled_store`)
//! reads it back typed, and reports one it cannot read instead of dropping it.
//!
//! Tree `dialogs`: key = DingTalk userid → JSON `DialogEntry`.
//! Tree `user_prefs`: key = DingTalk userid → JSON `UserPrefs` (the language a person reads),
//! apart from dialogs so sweeping idle dialogs never touches it.
use super::{Store, StoreError};
use crate::domain::command::Lang;
use crate::domain::ids::DingUserId;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

const TREE: &str = "dialogs";
const PREFS_TREE: &str = "user_prefs";

/// What the bot remembers about how a person wants to be answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPrefs {
    /// The language they last wrote in, or set with `/lang`.
    #[serde(default)]
    pub lang: Option<Lang>,
    /// Set with `/lang`: kept whatever language they write in afterwards.
    #[serde(default)]
    pub chosen: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DialogEntry {
    pub state: serde_json::Value,
    pub last_active: Timestamp,
}

#[derive(Clone, Debug)]
pub struct Dialogs {
    tree: sled::Tree,
    prefs: sled::Tree,
}

fn decode(v: &[u8]) -> Result<DialogEntry, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("dialog: {e}")))
}

impl Dialogs {
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
            prefs: store.tree(PREFS_TREE)?,
        })
    }

    /// A person's preferences; an unreadable entry reads as none (it is rewritten on the next
    /// change, and answering in the configured language is always acceptable).
    pub fn prefs(&self, user: &DingUserId) -> Result<UserPrefs, StoreError> {
        Ok(self
            .prefs
            .get(user.as_str().as_bytes())?
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default())
    }

    pub fn put_prefs(&self, user: &DingUserId, prefs: &UserPrefs) -> Result<(), StoreError> {
        let v = serde_json::to_vec(prefs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.prefs.insert(user.as_str().as_bytes(), v)?;
        Ok(())
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
