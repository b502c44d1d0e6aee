//! What the console reads, as ports: the orders and the JumpServer index (the workflow's own
//! store ports, shared), the audit trail behind [`AuditTrail`] — the console's own small trait,
//! so a hash-chained trail with its reading API can replace today's `store::audit` by
//! implementing it — and the DingTalk login behind [`DingLogin`].
use crate::domain::audit::AuditRecord;
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::order::{Order, State};
use crate::store::StoreError;
use crate::workflow::ports::OrderStore;
use futures::future::BoxFuture;
use jiff::Timestamp;
use std::collections::HashMap;

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

/// Every order, by id (the console filters in memory; see docs for the scale this suits).
pub fn all_orders(orders: &dyn OrderStore) -> Result<HashMap<OrderId, Order>, StoreError> {
    let mut all = HashMap::new();
    for s in State::ALL {
        for o in orders.list_by_state(s)? {
            all.insert(o.id.clone(), o);
        }
    }
    Ok(all)
}
