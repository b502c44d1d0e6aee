//! Deadline scheduler: approval reminders, approval timeouts, expiry reminders and expiries.
//! Deadlines are not stored: they are a function of each order (`Order::deadlines`), so they are
//! rebuilt from sled at start and follow every committed order change (the scheduler is an
//! `OrderObserver`). The loop sleeps until the earliest deadline and is woken early when an
//! earlier one is added; on fire it calls a `DeadlineHandler`, which must be idempotent and
//! check the order's state (a deadline can be stale by the time it fires; the state machine
//! refuses e.g. an early expiry after a renewal).
use crate::clock::SharedClock;
use crate::domain::ids::OrderId;
use crate::domain::order::{DeadlineKind, DeadlinePolicy, Order, State};
use crate::store::orders::{OrderObserver, Orders};
use crate::store::StoreError;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Where `rebuild` reads the orders that have deadlines: the store's orders (sled's `Orders`
/// below; another store implements it beside the workflow's ports).
pub trait OrdersByState {
    fn list_by_state(&self, state: State) -> Result<Vec<Order>, StoreError>;
}

impl OrdersByState for Orders {
    fn list_by_state(&self, state: State) -> Result<Vec<Order>, StoreError> {
        Orders::list_by_state(self, state)
    }
}

/// One deadline. Ordered by time, then kind (at equal times a reminder fires before the thing
/// it reminds of), then order id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Deadline {
    pub at: Timestamp,
    pub kind: DeadlineKind,
    pub order: OrderId,
}

/// Acts on a deadline. Reminders must be recorded on the order (`Order::mark_*_reminded`) in
/// the same change that queues the message: deadlines are recomputed from the order on every
/// change and at start, so an unrecorded reminder would be sent again.
pub trait DeadlineHandler: Send + Sync + 'static {
    /// `Err` means "try again later" (after `SchedulerConfig::retry_after`).
    fn on_deadline(&self, deadline: &Deadline) -> impl Future<Output = Result<(), String>> + Send;
}

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    pub policy: DeadlinePolicy,
    /// Delay before a failed handler call is retried.
    pub retry_after: SignedDuration,
    /// Longest sleep without a wake-up; bounds how late a ManualClock-driven loop notices time.
    pub idle_poll: std::time::Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            policy: DeadlinePolicy::default(),
            retry_after: SignedDuration::from_secs(60),
            idle_poll: std::time::Duration::from_secs(30),
        }
    }
}

#[derive(Default)]
struct Inner {
    queue: BTreeSet<Deadline>,
    by_order: HashMap<OrderId, Vec<Deadline>>,
}

impl Inner {
    fn remove_order(&mut self, id: &OrderId) {
        if let Some(old) = self.by_order.remove(id) {
            for d in old {
                self.queue.remove(&d);
            }
        }
    }
    fn insert(&mut self, d: Deadline) {
        self.by_order
            .entry(d.order.clone())
            .or_default()
            .push(d.clone());
        self.queue.insert(d);
    }
    fn pop_due(&mut self, now: Timestamp) -> Option<Deadline> {
        let first = self.queue.first()?.clone();
        if first.at > now {
            return None;
        }
        self.queue.remove(&first);
        if let Some(v) = self.by_order.get_mut(&first.order) {
            v.retain(|d| d != &first);
            if v.is_empty() {
                self.by_order.remove(&first.order);
            }
        }
        Some(first)
    }
}

/// What `fire_due` did with one deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    pub deadline: Deadline,
    pub result: Result<(), String>,
}

pub struct Scheduler<H: DeadlineHandler> {
    clock: SharedClock,
    handler: Arc<H>,
    cfg: SchedulerConfig,
    inner: Mutex<Inner>,
    wake: Notify,
}

impl<H: DeadlineHandler> Scheduler<H> {
    pub fn new(clock: SharedClock, handler: Arc<H>, cfg: SchedulerConfig) -> Self {
        Self {
            clock,
            handler,
            cfg,
            inner: Mutex::default(),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces everything scheduled with the deadlines of the orders stored now (at start).
    /// Deadlines already past fire on the next tick, so downtime delays them, never drops them.
    /// Register the scheduler with `Orders::observe` first, so no change falls in between.
    pub fn rebuild(&self, orders: &dyn OrdersByState) -> Result<usize, StoreError> {
        let mut fresh = Inner::default();
        for state in [State::PendingApproval, State::Active] {
            for o in orders.list_by_state(state)? {
                for (at, kind) in o.deadlines(&self.cfg.policy) {
                    fresh.insert(Deadline {
                        at,
                        kind,
                        order: o.id.clone(),
                    });
                }
            }
        }
        let n = fresh.queue.len();
        *self.lock() = fresh;
        self.wake.notify_one();
        Ok(n)
    }

    /// Makes the scheduled deadlines of `order` match its current state (none once it is done).
    pub fn schedule_order(&self, order: &Order) {
        let wanted = order.deadlines(&self.cfg.policy);
        let mut inner = self.lock();
        let earliest_before = inner.queue.first().map(|d| d.at);
        inner.remove_order(&order.id);
        for (at, kind) in wanted {
            inner.insert(Deadline {
                at,
                kind,
                order: order.id.clone(),
            });
        }
        let earliest_after = inner.queue.first().map(|d| d.at);
        drop(inner);
        // Only an earlier first deadline changes how long the loop should sleep.
        if earliest_after.is_some()
            && (earliest_before.is_none() || earliest_after < earliest_before)
        {
            self.wake.notify_one();
        }
    }

    pub fn cancel_order(&self, id: &OrderId) {
        self.lock().remove_order(id);
    }

    /// Everything scheduled, earliest first.
    pub fn pending(&self) -> Vec<Deadline> {
        self.lock().queue.iter().cloned().collect()
    }

    pub fn next_deadline(&self) -> Option<Deadline> {
        self.lock().queue.first().cloned()
    }

    /// Fires every deadline due by the clock's now, earliest first, one at a time (the handler
    /// may change orders, which reschedules them through the observer). A failed call is put
    /// back `retry_after` later.
    pub async fn fire_due(&self) -> Vec<Fired> {
        let mut out = Vec::new();
        loop {
            let now = self.clock.now();
            let Some(d) = self.lock().pop_due(now) else {
                break;
            };
            let result = self.handler.on_deadline(&d).await;
            if let Err(e) = &result {
                tracing::warn!(order = %d.order, kind = ?d.kind, error = %e, "deadline handler failed; retrying later");
                let at = now
                    .checked_add(self.cfg.retry_after.max(SignedDuration::from_secs(1)))
                    .unwrap_or(Timestamp::MAX);
                self.lock().insert(Deadline { at, ..d.clone() });
            }
            out.push(Fired {
                deadline: d,
                result,
            });
        }
        out
    }

    /// Runs until `shutdown` resolves: fire what is due, sleep until the next deadline or
    /// until woken by an earlier one.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.fire_due().await;
            let now = self.clock.now();
            let wait = self
                .next_deadline()
                .map(|d| {
                    std::time::Duration::try_from(d.at.duration_since(now)).unwrap_or_default()
                })
                .unwrap_or(self.cfg.idle_poll)
                .min(self.cfg.idle_poll);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

impl<H: DeadlineHandler> OrderObserver for Scheduler<H> {
    fn order_changed(&self, order: &Order) {
        self.schedule_order(order);
    }
}
