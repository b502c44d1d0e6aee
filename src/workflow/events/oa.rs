//! OA approval results (`bpms_instance_change`): the instance decides its order, once. The same
//! mapping from an instance's state to its event serves the results DingTalk pushes, the ones a
//! deadline finds by polling and the ones a resumed OA start finds (`jobs::oa`).
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::audit::Actor;
use crate::domain::change::Change;
use crate::domain::ids::DingUserId;
use crate::domain::jobs::JobKind;
use crate::domain::notice::Notice;
use crate::domain::order::{State, TransitionError};
use crate::inbound::{ApprovalEvent, ApprovalEventKind, ApprovalOutcome};
use crate::workflow::commands::Refusal;
use crate::workflow::ports::{
    ApprovalRecord, ApprovalResult, ApprovalState, ApprovalStatus, CasError, OrderStoreExt,
};
use crate::workflow::OA_DECIDER;
use crate::workflow::{retry, Workflow};

/// `bpms_instance_change`: the OA instance decides its order. A refusal names who refused and
/// their comment, read from the instance's operation records; without them (the read failed,
/// DingTalk lists none) the notice says "the DingTalk approval" refused.
pub(in crate::workflow) async fn on_approval_event(
    wf: &Workflow,
    ev: ApprovalEvent,
) -> Result<(), DispatchError> {
    let refusal = match (&ev.kind, ev.result) {
        (ApprovalEventKind::Finish, Some(ApprovalOutcome::Refuse)) => {
            match wf.chat.approval_detail(&ev.process_instance_id).await {
                Ok(d) => d.refusal().cloned(),
                Err(e) => {
                    tracing::info!(instance = %ev.process_instance_id, error = %e, "OA operation records not available; refusal unnamed");
                    None
                }
            }
        }
        _ => None,
    };
    on_approval(wf, ev, refusal.as_ref())
}

/// [`on_approval_event`] with the refusing operation record already at hand (if any).
pub(in crate::workflow) fn on_approval(
    wf: &Workflow,
    ev: ApprovalEvent,
    refusal: Option<&ApprovalRecord>,
) -> Result<(), DispatchError> {
    let Some(order) = wf
        .orders
        .find_by_oa_instance(&ev.process_instance_id)
        .map_err(retry)?
    else {
        tracing::info!(instance = %ev.process_instance_id, "approval event for an unknown instance; ignored");
        return Ok(());
    };
    let now = wf.now();
    let oa = DingUserId::new(OA_DECIDER);
    let lang = wf.lang();
    let res = wf.orders.update(&order.id, |o| {
        if o.state != State::PendingApproval {
            return Err(Refusal::Text("not pending".into()));
        }
        let refuse = |e: TransitionError| Refusal::Text(e.to_string());
        match (&ev.kind, ev.result) {
            (ApprovalEventKind::Finish, Some(ApprovalOutcome::Agree)) => {
                let t = o.approve(&oa, now).map_err(refuse)?;
                Ok(Change::from_transition(
                    t,
                    Actor::System,
                    format!("OA instance {} agreed", ev.process_instance_id),
                    vec![JobKind::Grant],
                ))
            }
            (ApprovalEventKind::Finish, Some(ApprovalOutcome::Refuse)) => {
                let by = refusal.and_then(|r| r.user.clone()).unwrap_or(oa.clone());
                let reason = refusal
                    .and_then(|r| r.remark.clone())
                    .unwrap_or_else(|| text::oa_refused_reason(lang));
                let t = o.reject(&by, now, Some(reason)).map_err(refuse)?;
                Ok(Change::from_transition(
                    t,
                    Actor::System,
                    format!("OA instance {} refused", ev.process_instance_id),
                    vec![JobKind::tell_requester(Notice::Rejected)],
                ))
            }
            (ApprovalEventKind::Terminate | ApprovalEventKind::Delete, _) => {
                let t = o.cancel(&o.requester, now).map_err(refuse)?;
                Ok(Change::from_transition(
                    t,
                    Actor::System,
                    format!("OA instance {} withdrawn", ev.process_instance_id),
                    vec![JobKind::tell_requester(Notice::WithdrawnOa)],
                ))
            }
            _ => Err(Refusal::Text("no decision in this event".into())),
        }
    });
    match res {
        Ok(_) | Err(CasError::Refused(_)) | Err(CasError::NotFound(_)) => Ok(()),
        Err(CasError::Stale { .. }) => Err(DispatchError::Retry("order busy".into())),
        Err(CasError::Store(e)) => Err(retry(e)),
    }
}

/// The event an OA instance's state amounts to, for a state found by polling or search rather
/// than pushed; `None` while nobody decided.
pub(in crate::workflow) fn event_of(instance: &str, st: &ApprovalState) -> Option<ApprovalEvent> {
    let (kind, result) = match (&st.status, &st.result) {
        (ApprovalStatus::Completed, Some(ApprovalResult::Agree)) => {
            (ApprovalEventKind::Finish, Some(ApprovalOutcome::Agree))
        }
        (ApprovalStatus::Completed, Some(ApprovalResult::Refuse)) => {
            (ApprovalEventKind::Finish, Some(ApprovalOutcome::Refuse))
        }
        (ApprovalStatus::Terminated | ApprovalStatus::Canceled, _) => {
            (ApprovalEventKind::Terminate, None)
        }
        _ => return None,
    };
    Some(ApprovalEvent {
        event_id: None,
        process_instance_id: instance.to_string(),
        process_code: None,
        kind,
        result,
        staff_id: None,
        finish_time_ms: None,
    })
}
