//! What the console reads, as ports: the orders and the JumpServer index (the workflow's own
//! store ports, shared), the audit trail behind [`AuditTrail`] — the console's own small trait,
//! so a hash-chained trail with its reading API can replace today's `store::audit` by
//! implementing it — and the DingTalk login behind [`DingLogin`].
use crate::domain::audit::AuditRecord;
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::order::Order;
use crate::store::StoreError;
use crate::workflow::ports::OrderStore;
use futures::future::BoxFuture;
use jiff::Timestamp;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Whether the audit trail can prove it was not altered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainStatus {
    /// The trail carries no hash chain (today's `store::audit`): nothing to verify.
    Missing,
    /// Every record links to the one before; `records` checked.
    Verified { records: u64 },
    /// The chain does not hold (`breaks` places), or could not be read.
    Broken { breaks: usize },
}

/// The audit trail as the console reads it.
pub trait AuditTrail: Send + Sync {
    /// One order's records, oldest first.
    fn for_order(&self, id: &OrderId) -> Result<Vec<AuditRecord>, StoreError>;
    /// Records at or after `since`, oldest first, at most `limit`.
    fn since(&self, since: Timestamp, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
    /// Records at or after `since` of the orders `orders`, and those of no order that `actor`
    /// made; oldest first (in the trail's order), at most `limit`. What a viewer who does not
    /// see everything may see, read through the trail's indexes instead of a walk of all of it.
    fn visible(
        &self,
        orders: &[OrderId],
        actor: &DingUserId,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// One page of the whole trail, newest or oldest first, and how many records there are:
    /// an unfiltered History without reading every record.
    fn page(
        &self,
        newest_first: bool,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, usize), StoreError>;
    /// The chain's state (see [`ChainStatus`]).
    fn chain(&self) -> ChainStatus;
}

/// Who logged in, as DingTalk says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginIdentity {
    pub user: DingUserId,
    pub name: String,
}

/// DingTalk's login, turned into a userid. Errors are for the log (never shown with detail).
pub trait DingLogin: Send + Sync {
    /// Web login: the authorize page's `authCode`.
    fn web<'a>(&'a self, code: &'a str) -> BoxFuture<'a, Result<LoginIdentity, String>>;
    /// In-app login: the JSAPI `requestAuthCode` code.
    fn in_app<'a>(&'a self, code: &'a str) -> BoxFuture<'a, Result<LoginIdentity, String>>;
}

/// Every order, decoded once and kept: the pages filter them in memory, and decoding every
/// order on every page cost 120 ms at 10,000 orders (benches/console.rs), on a runtime thread the
/// DingTalk routes share. Kept current through the store's change feed: a page re-reads only the
/// orders changed since the page before (all of them when the feed no longer reaches back that
/// far, or the store keeps no feed). Costs the decoded orders in memory (about 1.5 KB each)
/// once the console has been opened.
#[derive(Default)]
pub struct OrderBook {
    current: Mutex<Option<Arc<OrderSnapshot>>>,
}

/// The orders as of one revision of the store's change feed, with what every page derives from
/// all of them.
#[derive(Clone, Debug, Default)]
pub struct OrderSnapshot {
    revision: u64,
    orders: HashMap<OrderId, Arc<Order>>,
    /// Display names, from the orders people requested.
    pub names: HashMap<DingUserId, String>,
    /// Everyone any order names as an approver.
    pub approvers: HashSet<DingUserId>,
}

impl OrderSnapshot {
    pub fn get(&self, id: &OrderId) -> Option<&Order> {
        self.orders.get(id).map(|o| &**o)
    }

    pub fn values(&self) -> impl Iterator<Item = &Order> {
        self.orders.values().map(|o| &**o)
    }

    fn add(&mut self, o: Order) {
        if !o.requester_name.is_empty() {
            self.names
                .insert(o.requester.clone(), o.requester_name.clone());
        }
        self.approvers.extend(o.approvers.iter().cloned());
        self.orders.insert(o.id.clone(), Arc::new(o));
    }
}

impl OrderBook {
    /// The orders as stored now (as far as this process's commits go; see `OrderChanges`).
    pub fn read(&self, store: &dyn OrderStore) -> Result<Arc<OrderSnapshot>, StoreError> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(snap) = current.as_mut() {
            let changes = store.changes_since(snap.revision);
            if let Some(ids) = changes.changed {
                if !ids.is_empty() {
                    // In place unless a page still renders the previous snapshot.
                    let s = Arc::make_mut(snap);
                    for id in ids {
                        match store.get(&id)? {
                            Some(o) => s.add(o),
                            None => {
                                s.orders.remove(&id);
                            }
                        }
                    }
                    // Only now: a failed read above leaves the revision, so it is read again.
                    s.revision = changes.revision;
                }
                return Ok(snap.clone());
            }
        }
        // The revision before the walk: a change committed during it is read again next time.
        let revision = store.changes_since(u64::MAX).revision;
        let mut s = OrderSnapshot {
            revision,
            ..OrderSnapshot::default()
        };
        for o in store.all()? {
            s.add(o);
        }
        let s = Arc::new(s);
        *current = Some(s.clone());
        Ok(s)
    }
}
