//! What the console reads, as ports: the orders and the JumpServer index (the workflow's own
//! store ports, shared), the audit trail behind [`AuditTrail`] — the console's own small trait,
//! so a hash-chained trail with its reading API can replace today's `store::audit` by
//! implementing it — and the DingTalk login behind [`DingLogin`]; and the [`OrderBook`], the
//! decoded orders the pages share between requests.
use crate::domain::audit::AuditRecord;
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::order::Order;
use crate::store::StoreError;
use crate::workflow::ports::OrderStore;
use futures::future::BoxFuture;
use jiff::Timestamp;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

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
    /// The records of any of `orders` or about any of `users` (actor, requester; ids as
    /// `users` returns them), at or after `since`, oldest first, at most `limit`.
    fn records_of(
        &self,
        orders: &[OrderId],
        users: &[String],
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Everyone the trail has records about (lowercase ids).
    fn users(&self) -> Result<Vec<String>, StoreError>;
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
/// order on every page cost 120 ms at 10,000 orders (benches/console.rs). Kept current through
/// the store's change feed: a page re-reads only the orders changed since the page before (all
/// of them when the feed no longer reaches back that far, or the store keeps no feed). The
/// decoded orders cost memory (about 3 KB each, 34 MB at 10,000 in the bench), so a book no page
/// has read for `IDLE_DROP` is dropped and the next page loads it again.
pub struct OrderBook {
    state: Arc<Mutex<BookState>>,
    /// Where the idle check runs; none outside a runtime (then the book is kept).
    runtime: Option<tokio::runtime::Handle>,
}

/// How long a book nobody reads is kept.
pub const IDLE_DROP: Duration = Duration::from_secs(10 * 60);

struct BookState {
    snapshot: Option<Arc<OrderSnapshot>>,
    last_read: tokio::time::Instant,
    /// An idle check is scheduled.
    watched: bool,
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
    /// The order behind each JumpServer permission name the bot planned or granted.
    permissions: HashMap<String, OrderId>,
}

impl OrderSnapshot {
    pub fn get(&self, id: &OrderId) -> Option<&Order> {
        self.orders.get(id).map(|o| &**o)
    }

    pub fn values(&self) -> impl Iterator<Item = &Order> {
        self.orders.values().map(|o| &**o)
    }

    /// The order whose JumpServer permission (planned or granted) has this name: a row of the
    /// index that is the bot's own, with its provenance.
    pub fn by_permission(&self, name: &str) -> Option<&Order> {
        self.permissions.get(name).and_then(|id| self.get(id))
    }

    fn add(&mut self, o: Order) {
        if !o.requester_name.is_empty() {
            self.names
                .insert(o.requester.clone(), o.requester_name.clone());
        }
        self.approvers.extend(o.approvers.iter().cloned());
        let granted = o.grant.as_ref().and_then(|g| g.permission_name.clone());
        let planned = o.preview.as_ref().map(|p| p.permission_name.clone());
        for name in [granted, planned].into_iter().flatten() {
            if !name.is_empty() {
                self.permissions.insert(name, o.id.clone());
            }
        }
        self.orders.insert(o.id.clone(), Arc::new(o));
    }
}

impl Default for OrderBook {
    fn default() -> Self {
        Self::new()
    }
}

impl OrderBook {
    /// A book that drops its orders when idle if made inside a tokio runtime.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(BookState {
                snapshot: None,
                last_read: tokio::time::Instant::now(),
                watched: false,
            })),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Whether the orders are in memory now.
    pub fn is_loaded(&self) -> bool {
        lock(&self.state).snapshot.is_some()
    }

    /// The orders as stored now (as far as this process's commits go; see `OrderChanges`).
    pub fn read(&self, store: &dyn OrderStore) -> Result<Arc<OrderSnapshot>, StoreError> {
        let mut state = lock(&self.state);
        state.last_read = tokio::time::Instant::now();
        let current = &mut state.snapshot;
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
        if let (false, Some(rt)) = (state.watched, &self.runtime) {
            state.watched = true;
            rt.spawn(drop_when_idle(Arc::downgrade(&self.state)));
        }
        Ok(s)
    }
}

fn lock(state: &Mutex<BookState>) -> std::sync::MutexGuard<'_, BookState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drops the book's orders once nobody has read them for `IDLE_DROP`; ends with the book.
async fn drop_when_idle(state: Weak<Mutex<BookState>>) {
    loop {
        tokio::time::sleep(IDLE_DROP / 4).await;
        let Some(state) = state.upgrade() else { return };
        let mut st = lock(&state);
        if st.last_read.elapsed() >= IDLE_DROP {
            st.snapshot = None;
            st.watched = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{OrderBook, IDLE_DROP};
    use crate::domain::ids::{DingUserId, OrderId};
    use crate::domain::order::{ApprovalMode, NewOrder, Order};
    use crate::domain::request::Request;
    use crate::store::orders::Orders;
    use crate::store::outbox::Outbox;
    use crate::store::Store;
    use std::time::Duration;

    fn order(id: &str) -> Order {
        Order::new(
            NewOrder {
                id: OrderId::new(id),
                requester: DingUserId::new("alice01"),
                requester_name: "张三".into(),
                jms_username: "alice".into(),
                request: Request::Account { reason: "x".into() },
                approval_mode: ApprovalMode::Card,
                approvers: vec![DingUserId::new("boss01")],
            },
            jiff::Timestamp::UNIX_EPOCH,
        )
    }

    /// Let the idle check run after the clock moved.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_book_follows_new_orders_and_is_dropped_when_nobody_reads_it() {
        let store = Store::temporary().unwrap();
        let orders = Orders::new(&store, &Outbox::new(&store).unwrap()).unwrap();
        orders.create(order("R1"), vec![], vec![]).unwrap();
        let book = OrderBook::new();
        assert!(!book.is_loaded());
        let snap = book.read(&orders).unwrap();
        assert_eq!(snap.values().count(), 1);
        assert!(snap.approvers.contains(&DingUserId::new("boss01")));
        assert_eq!(snap.names[&DingUserId::new("alice01")], "张三");

        orders.create(order("R2"), vec![], vec![]).unwrap();
        assert!(book
            .read(&orders)
            .unwrap()
            .get(&OrderId::new("R2"))
            .is_some());

        // Read within the idle time: kept.
        tokio::time::advance(IDLE_DROP - Duration::from_secs(60)).await;
        book.read(&orders).unwrap();
        tokio::time::advance(IDLE_DROP - Duration::from_secs(60)).await;
        settle().await;
        assert!(book.is_loaded(), "read less than IDLE_DROP ago");
        // Not read for longer: dropped; the next page loads it again, complete.
        tokio::time::advance(IDLE_DROP).await;
        settle().await;
        assert!(!book.is_loaded());
        assert_eq!(book.read(&orders).unwrap().values().count(), 2);
        assert!(book.is_loaded());
    }
}
