//! The business-event journal: an `OrderStore` wrapper that, after each committed change, writes
//! one `info` line per audit record (requested, decided, granted with what was read back,
//! renewed, revoked, given back, expired, failed …) and feeds the order-timing metrics.
//!
//! Audit records are the one place every business event is recorded, and they reach the store
//! only through `create` / `commit`; logging here, after the commit succeeded, means a line is
//! written exactly for what was stored (never for a change that lost its compare-and-swap), and
//! no handler can forget it. The fields are structured (`order_id`, `requester`, `approver`,
//! `hosts`, …), so the JSON log format carries them as fields.
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::change::Change;
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::jobs::JobKind;
use crate::domain::order::{Order, State};
use crate::metrics::Metrics;
use crate::workflow::ports::{
    CasError, Committed, CreateError, OrderChanges, OrderStore, OutboxJob, StoreError,
};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::convert::Infallible;
use std::sync::Arc;

/// `inner` with a log line and metrics for every audit record it stores.
pub struct Journaled {
    inner: Arc<dyn OrderStore>,
    metrics: Metrics,
}

impl Journaled {
    pub fn new(inner: Arc<dyn OrderStore>, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }

    fn record(&self, order: &Order, audit: &[AuditRecord]) {
        for rec in audit {
            log_event(order, rec);
            self.observe(order, rec);
        }
    }

    fn observe(&self, o: &Order, rec: &AuditRecord) {
        let secs = |from: Timestamp, to: Timestamp| to.duration_since(from).as_secs_f64();
        match rec.event {
            // The decision that moved the order (a partial approval of several does not).
            AuditEvent::Approved | AuditEvent::Rejected
                if rec.to != Some(State::PendingApproval) =>
            {
                self.metrics.request_decided(secs(o.created_at, rec.at));
            }
            AuditEvent::Granted => {
                if let Some(decided) = o.decided_at {
                    self.metrics.grant_verified(secs(decided, rec.at));
                }
            }
            _ => {}
        }
    }
}

/// The word an audit event is logged under. A revocation by the requester is a give-back.
fn event_name(o: &Order, rec: &AuditRecord) -> &'static str {
    match rec.event {
        AuditEvent::Requested => "requested",
        AuditEvent::Submitted => "submitted",
        AuditEvent::Approved => "approved",
        AuditEvent::Rejected => "rejected",
        AuditEvent::Cancelled => "cancelled",
        AuditEvent::TimedOut => "timed_out",
        AuditEvent::ProvisioningStarted => "provisioning",
        AuditEvent::Granted => "granted",
        AuditEvent::ProvisioningFailed => "grant_failed",
        AuditEvent::ApprovalFailed => "approval_failed",
        AuditEvent::Revoked if rec.actor == Actor::User(o.requester.clone()) => "given_back",
        AuditEvent::Revoked => "revoked",
        AuditEvent::Expired => "expired",
        AuditEvent::Renewed => "renewed",
        AuditEvent::Reminded => "reminded",
        AuditEvent::JobGaveUp => "job_gave_up",
        AuditEvent::Note => "note",
        AuditEvent::TrailMigrated => "trail_migrated",
    }
}

fn actor_id(a: &Actor) -> String {
    match a {
        Actor::User(u) => u.to_string(),
        Actor::System => "system".into(),
    }
}

/// One line for one audit record. Reminders and notes are routine: `debug`.
fn log_event(o: &Order, rec: &AuditRecord) {
    let event = event_name(o, rec);
    let approver = o.decided_by.as_ref().map(DingUserId::to_string);
    let hosts = o
        .request
        .targets()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let from = rec.from.map(State::as_str);
    let to = rec.to.map(State::as_str);
    match rec.event {
        AuditEvent::Reminded
        | AuditEvent::Note
        | AuditEvent::ProvisioningStarted
        | AuditEvent::TrailMigrated => {
            tracing::debug!(
                event,
                order_id = %o.id,
                requester = %o.requester,
                actor = %actor_id(&rec.actor),
                detail = %rec.detail,
                "order event"
            );
        }
        AuditEvent::Granted | AuditEvent::Renewed => {
            // What JumpServer was read back to grant, not what was planned.
            let rb = o.grant.as_ref().and_then(|g| g.readback.as_ref());
            let granted = rb
                .map(|rb| {
                    rb.hosts
                        .iter()
                        .map(|h| {
                            let logins = h
                                .logins
                                .iter()
                                .map(|l| l.username.as_str())
                                .collect::<Vec<_>>()
                                .join("|");
                            format!("{}[{logins}]", h.label())
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let until = rb
                .and_then(|rb| rb.permission.as_ref())
                .and_then(|p| p.until)
                .map(|t| t.to_string());
            let node = rb.and_then(|rb| rb.node.as_ref()).map(|n| n.path.clone());
            tracing::info!(
                event,
                order_id = %o.id,
                requester = %o.requester,
                jms_user = %o.jms_username,
                approver = approver.as_deref(),
                hosts = %hosts,
                granted = %granted,
                node = node.as_deref(),
                until = until.as_deref(),
                usable = rb.map(|rb| rb.usable()),
                actor = %actor_id(&rec.actor),
                "order {event}"
            );
        }
        _ => {
            tracing::info!(
                event,
                order_id = %o.id,
                requester = %o.requester,
                approver = approver.as_deref(),
                hosts = %hosts,
                actor = %actor_id(&rec.actor),
                from,
                to,
                detail = %rec.detail,
                "order {event}"
            );
        }
    }
}

impl OrderStore for Journaled {
    fn next_id(&self, now: Timestamp, tz: &TimeZone) -> Result<OrderId, StoreError> {
        self.inner.next_id(now, tz)
    }

    fn create(
        &self,
        order: Order,
        jobs: Vec<JobKind>,
        audit: Vec<AuditRecord>,
    ) -> Result<Committed, CreateError> {
        let recs = audit.clone();
        let c = self.inner.create(order, jobs, audit)?;
        self.record(&c.order, &recs);
        Ok(c)
    }

    fn get(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        self.inner.get(id)
    }

    fn commit(
        &self,
        expected_version: u64,
        change: Change,
    ) -> Result<Committed, CasError<Infallible>> {
        let recs = change.audit.clone();
        let c = self.inner.commit(expected_version, change)?;
        self.record(&c.order, &recs);
        Ok(c)
    }

    fn list_by_requester(&self, user: &DingUserId) -> Result<Vec<Order>, StoreError> {
        self.inner.list_by_requester(user)
    }

    fn list_by_state(&self, state: State) -> Result<Vec<Order>, StoreError> {
        self.inner.list_by_state(state)
    }

    fn all(&self) -> Result<Vec<Order>, StoreError> {
        self.inner.all()
    }

    fn changes_since(&self, revision: u64) -> OrderChanges {
        self.inner.changes_since(revision)
    }

    fn find_by_card_track_id(&self, track_id: &str) -> Result<Option<Order>, StoreError> {
        self.inner.find_by_card_track_id(track_id)
    }

    fn find_by_oa_instance(&self, instance: &str) -> Result<Option<Order>, StoreError> {
        self.inner.find_by_oa_instance(instance)
    }

    fn enqueue(&self, job: &OutboxJob) -> Result<bool, StoreError> {
        self.inner.enqueue(job)
    }
}
