//! Orders repository. Every change is ONE sled transaction over the order, its indexes, the
//! outbox jobs it causes and its audit records, guarded by compare-and-swap on the order's
//! version: of two concurrent deciders exactly one commits; the other gets the current order
//! back (to answer "already approved by X at T"), and nothing it computed is written.
//!
//! Trees: `orders` id → JSON `Order`; `orders_by_requester` `<userid>/<id>` → ""; `orders_by_state`
//! `<state>/<id>` → ""; `order_refs` `oa/<instance id>` or `card/<outTrackId>` → id;
//! `order_seq` `<yymmdd>` → u64 BE (per-day id counter, see `domain::order::format_order_id`).
use super::audit;
use super::outbox::{self, Outbox, OutboxJob};
use super::{Store, StoreError};
use crate::domain::audit::{AuditRecord, AuditSubject};
use crate::domain::change::Change;
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::jobs::JobKind;
use crate::domain::order::{format_order_id, Order, State};
use jiff::{tz::TimeZone, Timestamp};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, RwLock};
use thiserror::Error;

const ORDERS: &str = "orders";
const BY_REQUESTER: &str = "orders_by_requester";
const BY_STATE: &str = "orders_by_state";
const REFS: &str = "order_refs";
const SEQ: &str = "order_seq";

/// The committed result: the order as stored (version bumped) and the jobs written.
#[derive(Clone, Debug)]
pub struct Committed {
    pub order: Order,
    pub jobs: Vec<OutboxJob>,
}

#[derive(Debug, Error)]
pub enum CasError<E> {
    #[error("no order {0}")]
    NotFound(OrderId),
    /// Someone else changed the order first; `current` is what is stored now.
    #[error("order {} changed meanwhile (now version {}, {})", current.id, current.version, current.state)]
    Stale { current: Box<Order> },
    /// The caller's function refused the change (e.g. a state-machine `TransitionError`).
    #[error(transparent)]
    Refused(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Compare-and-swap against whatever is stored now: reads the order, computes the change from
/// it, commits it if the order is still at that version, and computes again (up to 16 times in
/// all) when another change won the race. `f` refusing leaves everything as it is. The one
/// retry loop of every order store (`Orders::update`, `workflow::ports::OrderStoreExt`).
pub fn update_with<E>(
    id: &OrderId,
    get: impl Fn(&OrderId) -> Result<Option<Order>, StoreError>,
    commit: impl Fn(u64, Change) -> Result<Committed, CasError<Infallible>>,
    mut f: impl FnMut(&Order) -> Result<Change, E>,
) -> Result<Committed, CasError<E>> {
    let mut lost = 0;
    loop {
        let current = get(id)?.ok_or_else(|| CasError::NotFound(id.clone()))?;
        let change = f(&current).map_err(CasError::Refused)?;
        match commit(current.version, change) {
            Ok(c) => return Ok(c),
            Err(CasError::Stale { .. }) if lost < 15 => lost += 1,
            Err(CasError::Stale { current }) => return Err(CasError::Stale { current }),
            Err(CasError::NotFound(id)) => return Err(CasError::NotFound(id)),
            Err(CasError::Store(e)) => return Err(CasError::Store(e)),
            Err(CasError::Refused(never)) => match never {},
        }
    }
}

#[derive(Debug, Error)]
pub enum CreateError {
    #[error("order {0} already exists")]
    Exists(OrderId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Told about every committed order change (the scheduler uses it to follow deadlines).
/// Called after the commit, outside any lock of the store; must be quick and must not block.
pub trait OrderObserver: Send + Sync {
    fn order_changed(&self, order: &Order);
}

type Observers = Arc<RwLock<Vec<Arc<dyn OrderObserver>>>>;

/// How many changed order ids the feed keeps: a reader further behind reloads everything.
const FEED_LEN: usize = 4096;

/// Which orders changed, in commit order, for readers that keep a decoded copy of every order
/// (the console): a revision number counts the commits of this process, and the ids of the
/// last `FEED_LEN` are kept. Noted after the write, so an id read here is stored at least in
/// the version that noted it. In memory: a reader's copy starts with a full load after a
/// restart anyway. Not an `OrderObserver`: observers belong to one `Orders` handle (the console
/// has its own), and a reader pulling ids keeps its locks and decoding off the commit path.
#[derive(Debug, Default)]
pub struct OrderFeed {
    inner: Mutex<FeedInner>,
}

#[derive(Debug, Default)]
struct FeedInner {
    revision: u64,
    recent: VecDeque<(u64, OrderId)>,
}

/// The answer of [`OrderFeed::since`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderChanges {
    /// The feed's revision when the ids were read: pass it to the next call.
    pub revision: u64,
    /// The orders changed after the revision asked about (repeats removed), or `None` when the
    /// feed no longer reaches back that far (or was asked about a revision it never had): the
    /// reader loads everything again.
    pub changed: Option<Vec<OrderId>>,
}

impl OrderFeed {
    fn note(&self, id: &OrderId) {
        let mut f = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f.revision += 1;
        let rev = f.revision;
        if f.recent.len() == FEED_LEN {
            f.recent.pop_front();
        }
        f.recent.push_back((rev, id.clone()));
    }

    /// The orders changed after `revision` (see [`OrderChanges`]).
    pub fn since(&self, revision: u64) -> OrderChanges {
        let f = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let oldest_kept = f.recent.front().map_or(f.revision + 1, |(r, _)| *r);
        // Revisions after `revision` must all still be here: the first one missing is lost.
        let changed = (revision <= f.revision && revision + 1 >= oldest_kept).then(|| {
            let mut ids: Vec<OrderId> = f
                .recent
                .iter()
                .filter(|(r, _)| *r > revision)
                .map(|(_, id)| id.clone())
                .collect();
            ids.sort();
            ids.dedup();
            ids
        });
        OrderChanges {
            revision: f.revision,
            changed,
        }
    }
}

#[derive(Clone)]
pub struct Orders {
    orders: sled::Tree,
    by_requester: sled::Tree,
    by_state: sled::Tree,
    refs: sled::Tree,
    seq: sled::Tree,
    outbox: Outbox,
    audit_chain: sled::Tree,
    audit_head: sled::Tree,
    audit_index: sled::Tree,
    observers: Observers,
    feed: Arc<OrderFeed>,
    /// fsync each commit before returning, so a decision acknowledged to DingTalk survives a
    /// power cut (sled otherwise flushes every 500 ms). Off only for benches.
    durable: bool,
}

impl std::fmt::Debug for Orders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orders")
            .field("len", &self.orders.len())
            .finish()
    }
}

enum Abort {
    Stale(Box<Order>),
    Missing,
    Exists,
    Store(StoreError),
}

fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<Abort>> {
    Err(ConflictableTransactionError::Abort(Abort::Store(e)))
}

fn stage_err(e: ConflictableTransactionError<StoreError>) -> ConflictableTransactionError<Abort> {
    match e {
        ConflictableTransactionError::Abort(e) => {
            ConflictableTransactionError::Abort(Abort::Store(e))
        }
        ConflictableTransactionError::Conflict => ConflictableTransactionError::Conflict,
        ConflictableTransactionError::Storage(e) => ConflictableTransactionError::Storage(e),
    }
}

fn decode(v: &[u8]) -> Result<Order, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("order: {e}")))
}

fn encode(o: &Order) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(o).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn state_key(s: State, id: &OrderId) -> String {
    format!("{}/{}", s.as_str(), id)
}

fn requester_key(u: &DingUserId, id: &OrderId) -> String {
    format!("{u}/{id}")
}

fn ref_keys(o: &Order) -> BTreeSet<String> {
    let mut k: BTreeSet<String> = o
        .approval_refs
        .card_track_ids
        .iter()
        .map(|t| format!("card/{t}"))
        .collect();
    if let Some(i) = &o.approval_refs.oa_instance_id {
        k.insert(format!("oa/{i}"));
    }
    k
}

fn build_jobs(o: &Order, kinds: &[JobKind]) -> Vec<OutboxJob> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for k in kinds {
        if seen.insert(k.key()) {
            let idx = u8::try_from(out.len()).unwrap_or(u8::MAX);
            out.push(OutboxJob::new(
                &o.id,
                o.version,
                idx,
                k.clone(),
                o.updated_at,
            ));
        }
    }
    out
}

/// Gives each record about `o` that does not say what the order was about the order as it is
/// now written (see `AuditRecord::subject`).
fn with_subject(mut recs: Vec<AuditRecord>, o: &Order) -> Vec<AuditRecord> {
    for r in &mut recs {
        if r.subject.is_none() && r.order_id.as_ref() == Some(&o.id) {
            r.subject = Some(AuditSubject::of(o));
        }
    }
    recs
}

struct TxTrees<'a> {
    orders: &'a TransactionalTree,
    by_state: &'a TransactionalTree,
    refs: &'a TransactionalTree,
    outbox: &'a TransactionalTree,
    audit: audit::AuditTx<'a>,
}

impl TxTrees<'_> {
    fn write(
        &self,
        old: Option<&Order>,
        new: &Order,
        val: &[u8],
        jobs: &[OutboxJob],
        recs: &[AuditRecord],
    ) -> Result<(), ConflictableTransactionError<Abort>> {
        self.orders.insert(new.id.as_str().as_bytes(), val)?;
        if old.map(|o| o.state) != Some(new.state) {
            if let Some(o) = old {
                self.by_state.remove(state_key(o.state, &o.id).as_bytes())?;
            }
            self.by_state
                .insert(state_key(new.state, &new.id).as_bytes(), &[][..])?;
        }
        let before = old.map(ref_keys).unwrap_or_default();
        let after = ref_keys(new);
        for k in before.difference(&after) {
            self.refs.remove(k.as_bytes())?;
        }
        for k in after.difference(&before) {
            self.refs.insert(k.as_bytes(), new.id.as_str().as_bytes())?;
        }
        for j in jobs {
            outbox::stage(self.outbox, j).map_err(stage_err)?;
        }
        for r in recs {
            audit::stage(&self.audit, r).map_err(stage_err)?;
        }
        Ok(())
    }
}

impl Orders {
    /// `outbox` is the handle whose bell rings after commits that add jobs; give the runner a
    /// clone of the same handle.
    pub fn new(store: &Store, outbox: &Outbox) -> Result<Self, StoreError> {
        Ok(Self {
            orders: store.tree(ORDERS)?,
            by_requester: store.tree(BY_REQUESTER)?,
            by_state: store.tree(BY_STATE)?,
            refs: store.tree(REFS)?,
            seq: store.tree(SEQ)?,
            outbox: outbox.clone(),
            audit_chain: store.tree(audit::CHAIN)?,
            audit_head: store.tree(audit::HEAD)?,
            audit_index: store.tree(audit::INDEX)?,
            observers: Arc::default(),
            feed: store.order_feed(),
            durable: true,
        })
    }

    /// The outbox this store writes jobs to (for work no order change carries).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Turns the per-commit fsync off (benches, throwaway demo stores) or on.
    pub fn with_durability(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    pub fn observe(&self, o: Arc<dyn OrderObserver>) {
        self.observers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(o);
    }

    /// A fresh order id for an order created at `now`, dated in `tz` (what users see).
    /// Atomic and persisted: concurrent callers and restarts never get the same id.
    pub fn next_id(&self, now: Timestamp, tz: &TimeZone) -> Result<OrderId, StoreError> {
        let date = now.to_zoned(tz.clone()).date();
        let day = format!(
            "{:02}{:02}{:02}",
            date.year().rem_euclid(100),
            date.month(),
            date.day()
        );
        let v = self.seq.update_and_fetch(day.as_bytes(), |old| {
            let n = old
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            Some(n.saturating_add(1).to_be_bytes().to_vec())
        })?;
        let n = v
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map_or(1, u64::from_be_bytes);
        Ok(format_order_id(date, n))
    }

    /// Stores a new order (version becomes 1) with its first jobs and audit records.
    pub fn create(
        &self,
        order: Order,
        jobs: Vec<JobKind>,
        audit: Vec<AuditRecord>,
    ) -> Result<Committed, CreateError> {
        let mut order = order;
        order.version = 1;
        let jobs = build_jobs(&order, &jobs);
        let audit = with_subject(audit, &order);
        let val = encode(&order)?;
        let rkey = requester_key(&order.requester, &order.id);
        let res = (
            &self.orders,
            &self.by_state,
            &self.refs,
            self.outbox.tree(),
            &self.audit_chain,
            &self.audit_head,
            &self.audit_index,
            &self.by_requester,
        )
            .transaction(|(o, s, r, ob, ac, ah, ai, br)| {
                if o.get(order.id.as_str().as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(Abort::Exists));
                }
                let t = TxTrees {
                    orders: o,
                    by_state: s,
                    refs: r,
                    outbox: ob,
                    audit: audit::AuditTx {
                        chain: ac,
                        head: ah,
                        index: ai,
                    },
                };
                t.write(None, &order, &val, &jobs, &audit)?;
                if self.durable {
                    o.flush();
                }
                br.insert(rkey.as_bytes(), &[][..])?;
                Ok(())
            });
        match res {
            Ok(()) => {}
            Err(TransactionError::Abort(Abort::Exists)) => {
                return Err(CreateError::Exists(order.id))
            }
            Err(TransactionError::Abort(Abort::Store(e))) => return Err(e.into()),
            Err(TransactionError::Abort(_)) => {
                return Err(StoreError::Conflict("unexpected abort".into()).into())
            }
            Err(TransactionError::Storage(e)) => return Err(StoreError::Sled(e).into()),
        }
        self.after_commit(&order, &jobs);
        Ok(Committed { order, jobs })
    }

    /// Compare-and-swap change: if the stored order still has `expected_version`, `f` computes
    /// the change from it and everything is written in one transaction. `f` runs at most once
    /// (it may have computed a reply); on a lost race the caller gets `Stale` with the current
    /// order and decides again.
    pub fn transition<E>(
        &self,
        id: &OrderId,
        expected_version: u64,
        f: impl FnOnce(&Order) -> Result<Change, E>,
    ) -> Result<Committed, CasError<E>> {
        let current = self
            .get(id)?
            .ok_or_else(|| CasError::NotFound(id.clone()))?;
        if current.version != expected_version {
            return Err(CasError::Stale {
                current: Box::new(current),
            });
        }
        let change = f(&current).map_err(CasError::Refused)?;
        let mut order = change.order;
        if order.id != current.id {
            return Err(StoreError::Conflict(format!(
                "a change of order {} tried to write order {}",
                current.id, order.id
            ))
            .into());
        }
        order.version = expected_version + 1;
        let jobs = build_jobs(&order, &change.jobs);
        let recs = with_subject(change.audit, &order);
        let val = encode(&order)?;
        let res = (
            &self.orders,
            &self.by_state,
            &self.refs,
            self.outbox.tree(),
            &self.audit_chain,
            &self.audit_head,
            &self.audit_index,
        )
            .transaction(|(o, s, r, ob, ac, ah, ai)| {
                let Some(raw) = o.get(id.as_str().as_bytes())? else {
                    return Err(ConflictableTransactionError::Abort(Abort::Missing));
                };
                let stored = match decode(&raw) {
                    Ok(v) => v,
                    Err(e) => return abort(e),
                };
                if stored.version != expected_version {
                    return Err(ConflictableTransactionError::Abort(Abort::Stale(Box::new(
                        stored,
                    ))));
                }
                let t = TxTrees {
                    orders: o,
                    by_state: s,
                    refs: r,
                    outbox: ob,
                    audit: audit::AuditTx {
                        chain: ac,
                        head: ah,
                        index: ai,
                    },
                };
                t.write(Some(&stored), &order, &val, &jobs, &recs)?;
                if self.durable {
                    o.flush();
                }
                Ok(())
            });
        match res {
            Ok(()) => {}
            Err(TransactionError::Abort(Abort::Stale(current))) => {
                return Err(CasError::Stale { current })
            }
            Err(TransactionError::Abort(Abort::Missing)) => {
                return Err(CasError::NotFound(id.clone()))
            }
            Err(TransactionError::Abort(Abort::Store(e))) => return Err(e.into()),
            Err(TransactionError::Abort(Abort::Exists)) => {
                return Err(StoreError::Conflict("unexpected abort".into()).into())
            }
            Err(TransactionError::Storage(e)) => return Err(StoreError::Sled(e).into()),
        }
        self.after_commit(&order, &jobs);
        Ok(Committed { order, jobs })
    }

    /// Writes an already computed change if the stored order still has `expected_version`.
    pub fn commit(
        &self,
        expected_version: u64,
        change: Change,
    ) -> Result<Committed, CasError<Infallible>> {
        let id = change.order.id.clone();
        self.transition(&id, expected_version, move |_| Ok(change))
    }

    /// `transition` against whatever is stored now, re-deciding on a lost race (up to 16
    /// times). For system actors (scheduler, runner) whose decision depends only on the order.
    pub fn update<E>(
        &self,
        id: &OrderId,
        f: impl FnMut(&Order) -> Result<Change, E>,
    ) -> Result<Committed, CasError<E>> {
        update_with(id, |id| self.get(id), |v, c| self.commit(v, c), f)
    }

    fn after_commit(&self, order: &Order, jobs: &[OutboxJob]) {
        self.feed.note(&order.id);
        if !jobs.is_empty() {
            self.outbox.notify();
        }
        let observers = self
            .observers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for o in observers {
            o.order_changed(order);
        }
    }

    /// The orders changed after `revision` by this process (see [`OrderFeed`]).
    pub fn changes_since(&self, revision: u64) -> OrderChanges {
        self.feed.since(revision)
    }

    /// Every order, in id order: one walk of the orders tree (no index).
    pub fn all(&self) -> Result<Vec<Order>, StoreError> {
        self.orders.iter().values().map(|v| decode(&v?)).collect()
    }

    pub fn get(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        self.orders
            .get(id.as_str().as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// A requester's orders, newest first.
    pub fn list_by_requester(&self, user: &DingUserId) -> Result<Vec<Order>, StoreError> {
        let prefix = format!("{user}/");
        let mut out = self.load_index(&self.by_requester, &prefix)?;
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// Orders in `state`, oldest first.
    pub fn list_by_state(&self, state: State) -> Result<Vec<Order>, StoreError> {
        let prefix = format!("{}/", state.as_str());
        let mut out = self.load_index(&self.by_state, &prefix)?;
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Orders waiting for `approver`'s decision, oldest first ("what do I have to approve").
    pub fn list_pending_for_approver(
        &self,
        approver: &DingUserId,
    ) -> Result<Vec<Order>, StoreError> {
        let mut v = self.list_by_state(State::PendingApproval)?;
        v.retain(|o| o.is_approver(approver));
        Ok(v)
    }

    /// The order whose OA approval instance is `instance_id` (an approval result event).
    pub fn find_by_oa_instance(&self, instance_id: &str) -> Result<Option<Order>, StoreError> {
        self.find_ref(&format!("oa/{instance_id}"))
    }

    /// The order a card (by its outTrackId) belongs to (a card button tap).
    pub fn find_by_card_track_id(&self, track_id: &str) -> Result<Option<Order>, StoreError> {
        self.find_ref(&format!("card/{track_id}"))
    }

    /// How many orders are in `state` (a key scan of the state index, no order decoded).
    pub fn count_by_state(&self, state: State) -> usize {
        self.by_state
            .scan_prefix(format!("{}/", state.as_str()).as_bytes())
            .count()
    }

    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    fn find_ref(&self, key: &str) -> Result<Option<Order>, StoreError> {
        match self.refs.get(key.as_bytes())? {
            None => Ok(None),
            Some(id) => {
                let id = String::from_utf8(id.to_vec())
                    .map_err(|e| StoreError::Corrupt(format!("order ref {key}: {e}")))?;
                self.get(&OrderId::new(id))
            }
        }
    }

    fn load_index(&self, tree: &sled::Tree, prefix: &str) -> Result<Vec<Order>, StoreError> {
        let mut out = Vec::new();
        for item in tree.scan_prefix(prefix.as_bytes()) {
            let (k, _) = item?;
            let id = k
                .get(prefix.len()..)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| StoreError::Corrupt(format!("index key under {prefix}")))?;
            if let Some(o) = self.get(&OrderId::new(id))? {
                out.push(o);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod feed_tests {
    use super::{OrderChanges, OrderFeed, FEED_LEN};
    use crate::domain::ids::OrderId;

    fn ids(v: &[&str]) -> Option<Vec<OrderId>> {
        Some(v.iter().map(|s| OrderId::new(*s)).collect())
    }

    #[test]
    fn a_reader_gets_what_changed_since_its_revision_and_reloads_when_the_feed_lost_it() {
        let f = OrderFeed::default();
        assert_eq!(
            f.since(0),
            OrderChanges {
                revision: 0,
                changed: ids(&[])
            }
        );
        f.note(&OrderId::new("b"));
        f.note(&OrderId::new("a"));
        f.note(&OrderId::new("b"));
        assert_eq!(f.since(0).changed, ids(&["a", "b"]), "repeats once");
        assert_eq!(f.since(2).changed, ids(&["b"]));
        assert_eq!(f.since(3).changed, ids(&[]));
        // A revision the feed never had (another process's, a restarted store): reload.
        assert_eq!(f.since(4).changed, None);
        assert_eq!(f.since(u64::MAX).revision, 3);
        for n in 0..FEED_LEN {
            f.note(&OrderId::new(format!("o{n}")));
        }
        let last = f.since(u64::MAX).revision;
        assert_eq!(
            f.since(0).changed,
            None,
            "three commits fell out of the feed"
        );
        assert_eq!(f.since(3).changed.map(|v| v.len()), Some(FEED_LEN));
        assert_eq!(f.since(last).changed, ids(&[]));
    }
}
