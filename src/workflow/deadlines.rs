//! The scheduler side: approval reminders and timeouts, expiry reminders and expiry. Each
//! deadline re-checks the order (it may be stale) and records what it did in the same change
//! that queues its messages, so a restart that rebuilds the deadlines does not repeat them.
use super::chat::notify;
use super::Workflow;
use crate::domain::order::{ApprovalMode, DeadlineKind, State};
use crate::store::audit::{Actor, AuditEvent, AuditRecord};
use crate::store::orders::{CasError, Change};
use crate::store::outbox::JobKind;
use crate::worker::scheduler::{Deadline, DeadlineHandler};
use std::collections::BTreeMap;
use std::future::Future;

impl DeadlineHandler for Workflow {
    fn on_deadline(&self, d: &Deadline) -> impl Future<Output = Result<(), String>> + Send {
        let r = self.deadline(d);
        async move { r }
    }
}

impl Workflow {
    fn deadline(&self, d: &Deadline) -> Result<(), String> {
        let now = self.now();
        let cards = self.settings.approval_template().is_some();
        let res = self.orders.update(&d.order, |o| {
            let stale = Err("stale deadline");
            match d.kind {
                DeadlineKind::ApprovalReminder => {
                    if o.state != State::PendingApproval
                        || o.reminders.approval_reminded_at.is_some()
                    {
                        return stale;
                    }
                    let rec = AuditRecord::new(
                        now,
                        Some(o.id.clone()),
                        Actor::System,
                        AuditEvent::Reminded,
                        "approvers reminded",
                    );
                    Ok(Change::new(o.mark_approval_reminded(now)).audit(rec).job(
                        JobKind::NotifyApprovers {
                            template: "reminder".into(),
                            params: BTreeMap::new(),
                        },
                    ))
                }
                DeadlineKind::ApprovalTimeout => {
                    let t = o.time_out(now).map_err(|_| "stale deadline")?;
                    let mut jobs = Vec::new();
                    if o.approval_mode == ApprovalMode::Oa {
                        jobs.push(JobKind::TerminateOaApproval);
                    }
                    if cards {
                        jobs.push(JobKind::UpdateCards);
                    }
                    jobs.push(notify("timed_out", &[]));
                    Ok(Change::from_transition(
                        t,
                        Actor::System,
                        "nobody decided in time",
                        jobs,
                    ))
                }
                DeadlineKind::ExpiryReminder => {
                    let Some(w) = o.window else { return stale };
                    if o.state != State::Active
                        || o.reminders.expiry_reminded_for_end == Some(w.end)
                    {
                        return stale;
                    }
                    let rec = AuditRecord::new(
                        now,
                        Some(o.id.clone()),
                        Actor::System,
                        AuditEvent::Reminded,
                        "requester reminded of the expiry",
                    );
                    Ok(Change::new(o.mark_expiry_reminded(now))
                        .audit(rec)
                        .job(notify("expiry_reminder", &[])))
                }
                DeadlineKind::Expiry => {
                    let t = o.expire(now).map_err(|_| "stale deadline")?;
                    Ok(Change::from_transition(
                        t,
                        Actor::System,
                        "access window ended",
                        vec![JobKind::Revoke, notify("expired", &[])],
                    ))
                }
            }
        });
        match res {
            Ok(_) | Err(CasError::Refused(_)) | Err(CasError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}
