//! Asking an approver: the approval card, or (without a card template) an action card with
//! `/approve` and `/reject` buttons; and what happens when approvers cannot be reached (the admins
//! hear which one; when nobody can decide, the approval failed).
use crate::domain::audit::Actor;
use crate::domain::change::Change;
use crate::domain::ids::DingUserId;
use crate::domain::jobs::JobKind;
use crate::domain::notice::Notice;
use crate::domain::order::{ApprovalMode, Order, State};
use crate::worker::outbox::JobError;
use crate::workflow::jobs::notify;
use crate::workflow::jobs::{cas_done, dt_err};
use crate::workflow::ports::{CardDelivery, CardTarget, OrderStoreExt};
use crate::workflow::Workflow;
use jiff::Timestamp;

pub(in crate::workflow) async fn run(
    wf: &Workflow,
    o: &Order,
    approver: &DingUserId,
) -> Result<(), JobError> {
    if o.state != State::PendingApproval {
        return Ok(());
    }
    if let Some(tpl) = wf.settings.approval_template() {
        let req = CardDelivery {
            template_id: tpl.to_string(),
            out_track_id: o.card_track_id(approver),
            params: wf.approval_card_vars(o, None),
            to: CardTarget::User(approver.clone()),
            callback_route_key: wf.settings.route_key(),
        };
        return wf.chat.deliver_card(req).await.map_err(dt_err);
    }
    let msg = notify::out_message(wf.text().approval_prompt(o));
    notify::send(wf, std::slice::from_ref(approver), &msg).await
}

/// One approver's approval request could not be delivered for good. While another approver
/// got theirs the order waits for them (the admins hear which approver and why); when
/// nobody can decide, the approval failed.
pub(in crate::workflow) fn undelivered(
    wf: &Workflow,
    o: &Order,
    approver: &DingUserId,
    reason: &str,
) -> Result<(), JobError> {
    let now = wf.now();
    let res = wf.orders.update(&o.id, |cur| {
        if cur.state != State::PendingApproval {
            return Err("moved on");
        }
        let marked = cur.with_undelivered(approver, now);
        if marked.nobody_can_decide() {
            return failed_change(wf, &marked, reason, now);
        }
        Ok(
            Change::new(marked).job(JobKind::tell_admins(Notice::ApproverUnreachable {
                approver: approver.clone(),
                reason: reason.to_string(),
            })),
        )
    });
    cas_done(res)
}

/// The approval could not be started: the order fails, the requester and the admins are
/// told what failed and what to fix, and what was started is cleaned up (cards updated, an
/// OA instance terminated, found by search when its start's answer was lost).
pub(in crate::workflow) fn fail(wf: &Workflow, o: &Order, reason: &str) -> Result<(), JobError> {
    let now = wf.now();
    let res = wf.orders.update(&o.id, |cur| {
        if cur.state != State::PendingApproval {
            return Err("moved on");
        }
        failed_change(wf, cur, reason, now)
    });
    cas_done(res)
}

pub(in crate::workflow) fn failed_change(
    wf: &Workflow,
    cur: &Order,
    reason: &str,
    now: Timestamp,
) -> Result<Change, &'static str> {
    let t = cur.approval_failed(reason, now).map_err(|_| "moved on")?;
    let mut jobs = Vec::new();
    match cur.approval_mode {
        ApprovalMode::Oa => jobs.push(JobKind::TerminateOaApproval),
        ApprovalMode::Card if wf.settings.approval_template().is_some() => {
            jobs.push(JobKind::UpdateCards)
        }
        ApprovalMode::Card => {}
    }
    jobs.push(JobKind::tell_requester(Notice::ApprovalFailed));
    jobs.push(JobKind::tell_admins(Notice::ApprovalFailedAdmin {
        reason: reason.to_string(),
    }));
    Ok(Change::from_transition(
        t,
        Actor::System,
        reason.to_string(),
        jobs,
    ))
}
