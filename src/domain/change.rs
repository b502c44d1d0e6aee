//! A change to one order as the workflow decides it: the new order, the jobs it causes (in the
//! order they must run) and its audit records. The store writes all three in one transaction,
//! guarded by compare-and-swap on the order's version (`store::orders`).
use crate::domain::audit::{Actor, AuditRecord};
use crate::domain::jobs::JobKind;
use crate::domain::order::{Order, Transition};

/// What a transition writes besides the order: the jobs it causes (in the order they must run)
/// and its audit records.
#[derive(Clone, Debug)]
pub struct Change {
    pub order: Order,
    pub jobs: Vec<JobKind>,
    pub audit: Vec<AuditRecord>,
}

impl Change {
    pub fn new(order: Order) -> Self {
        Self {
            order,
            jobs: Vec::new(),
            audit: Vec::new(),
        }
    }
    /// The usual case: a state-machine transition, its audit record, and its jobs.
    pub fn from_transition(
        t: Transition,
        actor: Actor,
        detail: impl Into<String>,
        jobs: Vec<JobKind>,
    ) -> Self {
        let rec = AuditRecord::for_transition(&t, actor, detail);
        Self {
            order: t.order,
            jobs,
            audit: vec![rec],
        }
    }
    pub fn job(mut self, kind: JobKind) -> Self {
        self.jobs.push(kind);
        self
    }
    pub fn audit(mut self, rec: AuditRecord) -> Self {
        self.audit.push(rec);
        self
    }
}
