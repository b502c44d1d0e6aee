//! The one place an approver's decision is recorded, by text (`commands::decide`) or by card tap
//! (`events::card`): one compare-and-swap on the order. Of two approvers deciding at once exactly
//! one commits and the other is told who decided; a redelivered decision changes nothing.
use crate::chat::text;
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::change::Change;
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::jobs::JobKind;
use crate::domain::notice::Notice;
use crate::domain::order::{ApprovalMode, Order, State};
use crate::domain::policy::{DecisionSubject, Denied};
use crate::workflow::ports::{CasError, Committed, OrderStoreExt};
use crate::workflow::Workflow;

/// What a decision did.
pub(in crate::workflow) enum Decided {
    /// The order is approved (or rejected) now.
    Final(Order),
    /// One more approval recorded; `remaining` still needed.
    Partial { order: Order, remaining: u32 },
}

pub(in crate::workflow) enum DecideRefused {
    Denied(Denied),
    /// Not pending any more (decided, cancelled, timed out): the current order.
    NotPending(Box<Order>),
    OaMode,
    Invalid(String),
}

/// The one place an approver's decision is recorded. `reason: None` approves.
pub(in crate::workflow) fn decide(
    wf: &Workflow,
    by: &DingUserId,
    id: &OrderId,
    reason: Option<String>,
) -> Result<Decided, CasError<DecideRefused>> {
    let now = wf.now();
    let has_cards = wf.settings.approval_template().is_some();
    let mut partial_remaining = 0u32;
    let res = wf.orders.update(id, |o| {
        if o.state != State::PendingApproval {
            return Err(DecideRefused::NotPending(Box::new(o.clone())));
        }
        if o.approval_mode == ApprovalMode::Oa {
            return Err(DecideRefused::OaMode);
        }
        let subject = DecisionSubject {
            requester: o.requester.clone(),
            approvers: o.approvers.clone(),
            decided_by: o.approvals.clone(),
        };
        wf.policy
            .can_decide(by, &subject)
            .map_err(DecideRefused::Denied)?;
        let actor = Actor::User(by.clone());
        let mut jobs = Vec::new();
        if has_cards {
            jobs.push(JobKind::UpdateCards);
        }
        match &reason {
            None => {
                let mut after = subject.clone();
                after.decided_by.push(by.clone());
                let recorded = o.with_approval(by, now);
                if wf.policy.approvals_complete(&after) {
                    let t = recorded
                        .approve(by, now)
                        .map_err(|e| DecideRefused::Invalid(e.to_string()))?;
                    jobs.insert(0, JobKind::Grant);
                    if !has_cards && o.approvers.len() > 1 {
                        jobs.push(JobKind::tell_approvers(Notice::Decided { approved: true }));
                    }
                    Ok(Change::from_transition(t, actor, "approved", jobs))
                } else {
                    let done = after.decided_by.len() as u32;
                    partial_remaining = wf.policy.approvals_required.saturating_sub(done);
                    let remaining = partial_remaining;
                    jobs.push(JobKind::tell_requester(Notice::ApprovedWaiting {
                        by: by.clone(),
                        remaining,
                    }));
                    let rec = AuditRecord::new(
                        now,
                        Some(o.id.clone()),
                        actor,
                        AuditEvent::Approved,
                        format!("approval recorded; {remaining} more needed"),
                    );
                    let mut c = Change::new(recorded).audit(rec);
                    c.jobs = jobs;
                    Ok(c)
                }
            }
            Some(r) => {
                let t = o
                    .reject(by, now, Some(r.clone()))
                    .map_err(|e| DecideRefused::Invalid(e.to_string()))?;
                jobs.push(JobKind::tell_requester(Notice::Rejected));
                if !has_cards && o.approvers.len() > 1 {
                    jobs.push(JobKind::tell_approvers(Notice::Decided { approved: false }));
                }
                Ok(Change::from_transition(t, actor, r.clone(), jobs))
            }
        }
    });
    res.map(|c: Committed| {
        if c.order.state == State::PendingApproval {
            Decided::Partial {
                order: c.order,
                remaining: partial_remaining,
            }
        } else {
            Decided::Final(c.order)
        }
    })
}

pub(in crate::workflow) fn refused_text(wf: &Workflow, id: &OrderId, r: &DecideRefused) -> String {
    let lang = wf.lang();
    match r {
        DecideRefused::Denied(d) => text::denied(lang, d, id),
        DecideRefused::NotPending(o) => text::already_decided_by(
            lang,
            id,
            wf.text().status_label(o),
            &wf.decider_name(o),
            o.decided_at.or(o.closure.as_ref().map(|c| c.at)),
            &wf.settings.tz,
        ),
        DecideRefused::OaMode => text::decide_in_oa(lang, id),
        DecideRefused::Invalid(e) => e.clone(),
    }
}
