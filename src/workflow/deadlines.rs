//! The scheduler side: approval reminders and timeouts, expiry reminders and expiry. Each
//! deadline re-checks the order (it may be stale) and records what it did in the same change
//! that queues its messages, so a restart that rebuilds the deadlines does not repeat them.
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::change::Change;
use crate::domain::jobs::JobKind;
use crate::domain::notice::Notice;
use crate::domain::order::{ApprovalMode, DeadlineKind, Order, State};
use crate::worker::scheduler::{Deadline, DeadlineHandler};
use crate::workflow::events::oa;
use crate::workflow::ports::{CasError, OrderStoreExt};
use crate::workflow::Workflow;

impl DeadlineHandler for Workflow {
    async fn on_deadline(&self, d: &Deadline) -> Result<(), String> {
        if matches!(
            d.kind,
            DeadlineKind::ApprovalReminder | DeadlineKind::ApprovalTimeout
        ) && reconcile_oa(self, d).await
        {
            return Ok(());
        }
        deadline(self, d)
    }
}

/// Before reminding or timing out an OA order, ask DingTalk whether it was decided and the
/// event got lost (missed push, or it came before the instance was recorded). Returns true
/// when that settled the order.
async fn reconcile_oa(wf: &Workflow, d: &Deadline) -> bool {
    let Ok(Some(o)) = wf.orders.get(&d.order) else {
        return false;
    };
    let (State::PendingApproval, ApprovalMode::Oa, Some(inst)) = (
        o.state,
        o.approval_mode,
        o.approval_refs.oa_instance_id.clone(),
    ) else {
        return false;
    };
    let st = match wf.chat.approval_state(&inst).await {
        Ok(st) => st,
        Err(e) => {
            tracing::info!(instance = %inst, error = %e, "OA status not available");
            return false;
        }
    };
    let Some(ev) = oa::event_of(&inst, &st) else {
        return false;
    };
    tracing::info!(order = %o.id, instance = %inst, "OA decision found by polling");
    if oa::on_approval_event(wf, ev).await.is_err() {
        return false;
    }
    matches!(wf.orders.get(&d.order), Ok(Some(o)) if o.state != State::PendingApproval)
}

fn deadline(wf: &Workflow, d: &Deadline) -> Result<(), String> {
    let now = wf.now();
    // A reminder is recorded on the order with its audit record and its message, in one change.
    let reminded = |marked: Order, detail: &str, message: JobKind| {
        let rec = AuditRecord::new(
            now,
            Some(marked.id.clone()),
            Actor::System,
            AuditEvent::Reminded,
            detail,
        );
        Change::new(marked).audit(rec).job(message)
    };
    let res = wf.orders.update(&d.order, |o| {
        let stale = Err("stale deadline");
        match d.kind {
            DeadlineKind::ApprovalReminder => {
                if o.state != State::PendingApproval || o.reminders.approval_reminded_at.is_some() {
                    return stale;
                }
                Ok(reminded(
                    o.mark_approval_reminded(now),
                    "approvers reminded",
                    JobKind::tell_approvers(Notice::Reminder),
                ))
            }
            DeadlineKind::ApprovalTimeout => {
                let t = o.time_out(now).map_err(|_| "stale deadline")?;
                let mut jobs = wf.closing_jobs(o);
                jobs.push(JobKind::tell_requester(Notice::TimedOut));
                Ok(Change::from_transition(
                    t,
                    Actor::System,
                    "nobody decided in time",
                    jobs,
                ))
            }
            DeadlineKind::ExpiryReminder => {
                let Some(w) = o.window else { return stale };
                if o.state != State::Active || o.reminders.expiry_reminded_for_end == Some(w.end) {
                    return stale;
                }
                Ok(reminded(
                    o.mark_expiry_reminded(now),
                    "requester reminded of the expiry",
                    JobKind::tell_requester(Notice::ExpiryReminder),
                ))
            }
            DeadlineKind::Expiry => {
                let t = o.expire(now).map_err(|_| "stale deadline")?;
                Ok(Change::from_transition(
                    t,
                    Actor::System,
                    "access window ended",
                    vec![JobKind::Revoke, JobKind::tell_requester(Notice::Expired)],
                ))
            }
        }
    });
    match res {
        Ok(_) | Err(CasError::Refused(_)) | Err(CasError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
