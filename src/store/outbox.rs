//! The outbox: work that a committed decision causes (grant, revoke, messages, cards), written in
//! the same transaction as the decision and removed only when done. A crash in between re-runs
//! the work, which is safe because every job's effect is idempotent by its stable identity.
//!
//! Tree `outbox`: key = job id = `<order id>/<version:010>-<idx:02>/<kind key>` → JSON. Keys of
//! one order are contiguous and in creation order, so "jobs of one order run in order" is a
//! prefix scan. The job kind is stored as raw JSON and decoded on read: a kind written by a newer
//! version (after a rollback) is parked with an error instead of crashing or being lost.
use super::{Store, StoreError};
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::jobs::JobKind;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use std::sync::Arc;
use tokio::sync::Notify;

pub(crate) const TREE: &str = "outbox";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxJob {
    pub id: String,
    pub order_id: OrderId,
    pub kind: JobKind,
    /// Failed attempts so far.
    pub attempts: u32,
    pub created_at: Timestamp,
    pub not_before: Timestamp,
    pub last_error: Option<String>,
}

/// The pseudo order every `Sync` job belongs to (not an order id: those start with a letter
/// and a date).
pub const SYNC_KEY: &str = "index-sync";

impl OutboxJob {
    /// The one `/sync` job: its id is the same whoever asks, so concurrent requests are one sync.
    pub fn sync(requested_by: DingUserId, now: Timestamp) -> Self {
        Self::new(
            &OrderId::new(SYNC_KEY),
            0,
            0,
            JobKind::Sync { requested_by },
            now,
        )
    }

    /// `version` is the order version whose commit caused the job and `idx` its position among
    /// that commit's jobs; together with the kind they make the id, so enqueueing it again is a
    /// no-op.
    pub fn new(order_id: &OrderId, version: u64, idx: u8, kind: JobKind, now: Timestamp) -> Self {
        Self {
            id: format!("{order_id}/{version:010}-{idx:02}/{}", kind.key()),
            order_id: order_id.clone(),
            kind,
            attempts: 0,
            created_at: now,
            not_before: now,
            last_error: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkReason {
    /// This version cannot decode the job's kind (written by a newer version).
    UnknownKind,
    /// The job failed permanently or ran past its retry deadline.
    GaveUp,
}

/// A job kept for an operator (or a newer version) but not run.
#[derive(Clone, Debug, PartialEq)]
pub struct ParkedJob {
    pub id: String,
    pub order_id: OrderId,
    pub kind: serde_json::Value,
    pub reason: ParkReason,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    id: String,
    order_id: OrderId,
    kind: serde_json::Value,
    attempts: u32,
    created_at: Timestamp,
    not_before: Timestamp,
    last_error: Option<String>,
    #[serde(default)]
    parked: Option<ParkReason>,
}

impl Stored {
    fn from_job(j: &OutboxJob) -> Result<Self, StoreError> {
        Ok(Self {
            id: j.id.clone(),
            order_id: j.order_id.clone(),
            kind: serde_json::to_value(&j.kind).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            attempts: j.attempts,
            created_at: j.created_at,
            not_before: j.not_before,
            last_error: j.last_error.clone(),
            parked: None,
        })
    }
    fn to_job(&self) -> Result<OutboxJob, serde_json::Error> {
        Ok(OutboxJob {
            id: self.id.clone(),
            order_id: self.order_id.clone(),
            kind: serde_json::from_value(self.kind.clone())?,
            attempts: self.attempts,
            created_at: self.created_at,
            not_before: self.not_before,
            last_error: self.last_error.clone(),
        })
    }
}

fn decode(v: &[u8]) -> Result<Stored, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("outbox entry: {e}")))
}

fn encode(s: &Stored) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The smallest key above every key of the order `key` belongs to; always above `key` itself,
/// so the scan in `heads` makes progress even over a malformed key.
fn next_order_start(key: &[u8]) -> Vec<u8> {
    match key.iter().position(|b| *b == b'/') {
        Some(i) => {
            let mut s = key.get(..i).unwrap_or_default().to_vec();
            s.push(b'0');
            s
        }
        None => {
            let mut s = key.to_vec();
            s.push(0);
            s
        }
    }
}

/// A notice job as versions before typed notices wrote it (`notify_requester` and its kin, with
/// a `template` name): it no longer decodes and is parked.
fn is_untyped_notice(kind: &serde_json::Value) -> bool {
    kind.get("template").is_some()
        && kind
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|k| k.starts_with("notify_"))
}

/// Inserts `job` inside a transaction unless a job with the same id exists.
pub(crate) fn stage(
    tree: &TransactionalTree,
    job: &OutboxJob,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if tree.get(job.id.as_bytes())?.is_some() {
        return Ok(());
    }
    let v = Stored::from_job(job)
        .and_then(|s| encode(&s))
        .map_err(ConflictableTransactionError::Abort)?;
    tree.insert(job.id.as_bytes(), v)?;
    Ok(())
}

/// Handle on the outbox tree plus the bell that wakes the runner when work is added.
#[derive(Clone, Debug)]
pub struct Outbox {
    tree: sled::Tree,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree(TREE)?,
            wake: Arc::new(Notify::new()),
        })
    }

    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Wakes the runner (called after a commit that added jobs).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Resolves when `notify` was called (a permit is kept if nobody was waiting).
    pub async fn notified(&self) {
        self.wake.notified().await
    }

    /// Adds a job outside an order transition (e.g. reconcile). Returns `false` if a job with
    /// the same id is already there (re-enqueueing is a no-op).
    pub fn enqueue(&self, job: &OutboxJob) -> Result<bool, StoreError> {
        let v = encode(&Stored::from_job(job)?)?;
        let inserted = self
            .tree
            .compare_and_swap(job.id.as_bytes(), None::<&[u8]>, Some(v))?
            .is_ok();
        if inserted {
            self.notify();
        }
        Ok(inserted)
    }

    /// The head job of each order (its oldest job that is not parked), if due by `now`, oldest
    /// first, at most `limit`. Later jobs of an order wait behind its head, so an order's jobs
    /// run in order while different orders proceed independently.
    pub fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxJob>, StoreError> {
        let mut out: Vec<OutboxJob> = self
            .heads()?
            .into_iter()
            .filter(|j| j.not_before <= now)
            .collect();
        out.truncate(limit);
        Ok(out)
    }

    /// The head job of every order, due or not, ordered by `not_before` then id. A head whose
    /// kind cannot be decoded is parked and the next job of that order becomes the head.
    pub fn heads(&self) -> Result<Vec<OutboxJob>, StoreError> {
        let mut out = Vec::new();
        // After an order's head is found, seek past the rest of that order: `<id>0` is the
        // smallest key above every `<id>/...` ('0' follows '/'), so a backlog of many jobs per
        // order costs one decode per order, not one per job.
        let mut start: Vec<u8> = Vec::new();
        'orders: loop {
            for item in self.tree.range(start.as_slice()..) {
                let (k, v) = item?;
                let s = decode(&v)?;
                if s.parked.is_some() {
                    continue;
                }
                match s.to_job() {
                    Ok(job) => {
                        start = next_order_start(&k);
                        out.push(job);
                        continue 'orders;
                    }
                    Err(e) => {
                        if is_untyped_notice(&s.kind) {
                            // Written before notices were typed (a template name and string
                            // parameters): this version cannot say it, so it is kept, not sent.
                            tracing::warn!(job = %s.id, kind = %s.kind, "outbox notice from before typed notices; parked, not sent");
                        } else {
                            tracing::warn!(job = %s.id, error = %e, "outbox job kind unknown to this version; parked");
                        }
                        let mut p = s.clone();
                        p.parked = Some(ParkReason::UnknownKind);
                        p.last_error = Some(format!("cannot decode job kind: {e}"));
                        let _ = self.tree.compare_and_swap(&k, Some(v), Some(encode(&p)?))?;
                    }
                }
            }
            break;
        }
        out.sort_by(|a, b| (a.not_before, &a.id).cmp(&(b.not_before, &b.id)));
        Ok(out)
    }

    /// Removes a finished job. `false` if it was already gone.
    pub fn complete(&self, job_id: &str) -> Result<bool, StoreError> {
        Ok(self.tree.remove(job_id.as_bytes())?.is_some())
    }

    /// Writes everything recorded so far to disk. sled keeps writes in its in-memory log
    /// buffer until the buffer is written out (its write-back every 500 ms, a flush, or a full
    /// buffer); a kill in between loses them.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.tree.flush_async().await?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub fn reschedule(
        &self,
        job_id: &str,
        not_before: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        self.modify(job_id, |s| {
            s.attempts = s.attempts.saturating_add(1);
            s.not_before = not_before;
            s.last_error = Some(error.to_owned());
        })
    }

    /// Stops running a job but keeps it for inspection.
    pub fn park(&self, job_id: &str, reason: ParkReason, error: &str) -> Result<(), StoreError> {
        self.modify(job_id, |s| {
            s.attempts = s.attempts.saturating_add(1);
            s.parked = Some(reason);
            s.last_error = Some(error.to_owned());
        })
    }

    /// Makes a parked job runnable again from `now` (operator action).
    pub fn unpark(&self, job_id: &str, now: Timestamp) -> Result<(), StoreError> {
        self.modify(job_id, |s| {
            s.parked = None;
            s.not_before = now;
        })?;
        self.notify();
        Ok(())
    }

    /// At start-up: retry jobs an older version parked as undecodable; this version may know
    /// their kind (they are parked again at once if not). Returns how many were revived.
    pub fn revive_unknown_kinds(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut n = 0;
        for p in self.parked()? {
            if p.reason == ParkReason::UnknownKind
                && serde_json::from_value::<JobKind>(p.kind.clone()).is_ok()
            {
                self.unpark(&p.id, now)?;
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn parked(&self) -> Result<Vec<ParkedJob>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.iter() {
            let (_, v) = item?;
            let s = decode(&v)?;
            if let Some(reason) = s.parked {
                out.push(ParkedJob {
                    id: s.id,
                    order_id: s.order_id,
                    kind: s.kind,
                    reason,
                    last_error: s.last_error,
                });
            }
        }
        Ok(out)
    }

    /// Runnable jobs of one order, in order (for status pages and tests).
    pub fn pending_for_order(&self, order: &OrderId) -> Result<Vec<OutboxJob>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(format!("{order}/")) {
            let (_, v) = item?;
            let s = decode(&v)?;
            if s.parked.is_none() {
                if let Ok(j) = s.to_job() {
                    out.push(j);
                }
            }
        }
        Ok(out)
    }

    pub fn get(&self, job_id: &str) -> Result<Option<OutboxJob>, StoreError> {
        match self.tree.get(job_id.as_bytes())? {
            None => Ok(None),
            Some(v) => decode(&v)?
                .to_job()
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("outbox job {job_id}: {e}"))),
        }
    }

    /// Writes a raw entry whose kind this version may not know (tests of version skew).
    #[doc(hidden)]
    pub fn insert_raw(
        &self,
        id: &str,
        order_id: &OrderId,
        kind: serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let s = Stored {
            id: id.to_owned(),
            order_id: order_id.clone(),
            kind,
            attempts: 0,
            created_at: now,
            not_before: now,
            last_error: None,
            parked: None,
        };
        self.tree.insert(id.as_bytes(), encode(&s)?)?;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    fn modify(&self, job_id: &str, f: impl Fn(&mut Stored)) -> Result<(), StoreError> {
        let mut current = self.tree.get(job_id.as_bytes())?;
        loop {
            let Some(v) = &current else {
                return Err(StoreError::Conflict(format!("outbox job {job_id} is gone")));
            };
            let mut s = decode(v)?;
            f(&mut s);
            match self.tree.compare_and_swap(
                job_id.as_bytes(),
                current.clone(),
                Some(encode(&s)?),
            )? {
                Ok(()) => return Ok(()),
                Err(e) => current = e.current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_skip_each_orders_tail_and_survive_odd_keys() {
        let store = Store::temporary().unwrap();
        let ob = Outbox::new(&store).unwrap();
        let t = Timestamp::UNIX_EPOCH;
        let a = OrderId::new("A");
        for i in 0..3 {
            ob.enqueue(&OutboxJob::new(&a, 1, i, JobKind::UpdateCards, t))
                .unwrap();
        }
        ob.enqueue(&OutboxJob::new(
            &OrderId::new("A0"),
            1,
            0,
            JobKind::Grant,
            t,
        ))
        .unwrap();
        // a key without '/' and one whose order id is not its prefix must not stall the scan
        ob.insert_raw(
            "zz",
            &OrderId::new("aa"),
            serde_json::json!({"kind": "grant"}),
            t,
        )
        .unwrap();
        ob.insert_raw(
            "B/1",
            &OrderId::new("Q"),
            serde_json::json!({"kind": "revoke"}),
            t,
        )
        .unwrap();
        let ids: Vec<String> = ob.heads().unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(
            ids,
            [
                "A/0000000001-00/update-cards",
                "A0/0000000001-00/grant",
                "B/1",
                "zz"
            ]
        );
    }

    #[test]
    fn notices_from_before_typed_notices_are_parked_not_run() {
        let store = Store::temporary().unwrap();
        let ob = Outbox::new(&store).unwrap();
        let t = Timestamp::UNIX_EPOCH;
        let a = OrderId::new("A");
        let old = serde_json::json!({
            "kind": "notify_requester", "template": "granted", "params": {}
        });
        ob.insert_raw(
            "A/0000000002-00/notify-requester.granted",
            &a,
            old.clone(),
            t,
        )
        .unwrap();
        ob.enqueue(&OutboxJob::new(&a, 2, 1, JobKind::UpdateCards, t))
            .unwrap();
        assert!(is_untyped_notice(&old));
        let heads = ob.heads().unwrap();
        assert_eq!(heads.len(), 1);
        assert_eq!(heads[0].kind, JobKind::UpdateCards);
        let parked = ob.parked().unwrap();
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].reason, ParkReason::UnknownKind);
        assert_eq!(parked[0].kind, old);
        assert_eq!(
            ob.revive_unknown_kinds(t).unwrap(),
            0,
            "still not decodable"
        );
    }
}
