//! Append-only audit trail (`domain::audit` says what a record is; this file only keeps them).
//! Records are written in the same sled transaction as the order change they describe (see
//! orders.rs), so the trail can never disagree with the orders.
//!
//! Trees: `audit` key = 8-byte big-endian time (ms, sign bit flipped so order is chronological)
//! then 8-byte sled id (ties and uniqueness) → JSON `AuditRecord`; `audit_by_order` key =
//! `<order id>/` + the audit key → empty, for `list_for_order`.
use super::{Store, StoreError};
use crate::domain::audit::AuditRecord;
use crate::domain::ids::OrderId;
use jiff::Timestamp;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

pub(crate) const TREE: &str = "audit";
pub(crate) const BY_ORDER: &str = "audit_by_order";

#[derive(Clone, Debug)]
pub struct Audit {
    tree: sled::Tree,
    by_order: sled::Tree,
}

fn time_key(ms: i64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&((ms as u64) ^ (1 << 63)).to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn order_key(order: &OrderId, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(order.as_str().len() + 1 + key.len());
    k.extend_from_slice(order.as_str().as_bytes());
    k.push(b'/');
    k.extend_from_slice(key);
    k
}

fn decode(v: &[u8]) -> Result<AuditRecord, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("audit record: {e}")))
}

/// Writes `rec` inside a transaction over (`audit`, `audit_by_order`).
pub(crate) fn stage(
    tree: &TransactionalTree,
    by_order: &TransactionalTree,
    rec: &AuditRecord,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let seq = tree.generate_id()?;
    let key = time_key(rec.at.as_millisecond(), seq);
    let val = serde_json::to_vec(rec)
        .map_err(|e| ConflictableTransactionError::Abort(StoreError::Corrupt(e.to_string())))?;
    tree.insert(&key[..], val)?;
    if let Some(o) = &rec.order_id {
        by_order.insert(order_key(o, &key), &[][..])?;
    }
    Ok(())
}

impl Audit {
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
            by_order: store.tree(BY_ORDER)?,
        })
    }

    /// Appends a record that is not part of an order transition (e.g. a job that gave up).
    pub fn append(&self, rec: &AuditRecord) -> Result<(), StoreError> {
        use sled::Transactional;
        (&self.tree, &self.by_order)
            .transaction(|(t, b)| stage(t, b, rec))
            .map_err(super::tx_error)
    }

    /// The trail of one order, oldest first.
    pub fn list_for_order(&self, order: &OrderId) -> Result<Vec<AuditRecord>, StoreError> {
        let prefix = order_key(order, &[]);
        let mut out = Vec::new();
        for item in self.by_order.scan_prefix(&prefix) {
            let (k, _) = item?;
            let key = k.get(prefix.len()..).unwrap_or_default();
            if let Some(v) = self.tree.get(key)? {
                out.push(decode(&v)?);
            }
        }
        Ok(out)
    }

    /// Records at or after `since`, oldest first, at most `limit`.
    pub fn list_since(
        &self,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let start = time_key(since.as_millisecond(), 0);
        let mut out = Vec::new();
        for item in self.tree.range(&start[..]..).take(limit) {
            let (_, v) = item?;
            out.push(decode(&v)?);
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
