//! The order's DingTalk OA approval: started exactly once (the attempt is recorded first, and a
//! retry looks for the instance an unconfirmed start may have made), the instance recorded on the
//! order, a decision found on it applied, and the instance terminated when the order closes.
use crate::chat::text;
use crate::chat::text::Lang;
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::change::Change;
use crate::domain::order::{Order, State};
use crate::worker::outbox::JobError;
use crate::workflow::events::oa;
use crate::workflow::jobs::{cas_done, dt_err, store_err};
use crate::workflow::ports::{
    ApprovalDetail, ApprovalInstanceQuery, ApprovalStart, CasError, OrderStoreExt,
};
use crate::workflow::Workflow;
use jiff::{SignedDuration, Timestamp};

/// Slack around the recorded attempt when searching DingTalk for an instance it may have
/// created: its clock is not ours, and a wider window costs nothing since the match is on the
/// order id.
const OA_SEARCH_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// Starts the order's OA approval exactly once. DingTalk's start has no idempotency key, so
/// the attempt is recorded on the order before the call; a run that finds that mark
/// without an instance id (the answer was lost, or the process died before recording it)
/// first looks in DingTalk for the instance carrying this order's id, and starts a new one
/// only when there is none.
pub(in crate::workflow) async fn start(wf: &Workflow, o: &Order) -> Result<(), JobError> {
    if o.approval_refs.oa_instance_id.is_some() || o.state != State::PendingApproval {
        return Ok(());
    }
    let Some(code) = wf.policy.process_code.clone() else {
        return Err(JobError::permanent("approval.process_code is not set"));
    };
    if let Some(at) = o.approval_refs.oa_start_attempted_at {
        if let Some((instance, detail)) = find_started(wf, o, &code, at).await? {
            tracing::info!(order = %o.id, instance = %instance, "OA instance from an unconfirmed start found; not starting another");
            record_instance(wf, o, &instance, "found after an unconfirmed start")?;
            return apply_found(wf, &instance, &detail);
        }
    }
    let now = wf.now();
    let marked = wf.orders.update(&o.id, |cur| {
        if cur.approval_refs.oa_instance_id.is_some() || cur.state != State::PendingApproval {
            return Err("moved on");
        }
        Ok(Change::new(cur.with_oa_start_attempt(now)))
    });
    match marked {
        Ok(_) => {}
        Err(CasError::Refused(_)) | Err(CasError::NotFound(_)) => return Ok(()),
        Err(CasError::Stale { .. }) => return Err(JobError::transient("order kept changing")),
        Err(CasError::Store(e)) => return Err(store_err(e)),
    }
    let instance = wf
        .chat
        .start_approval(ApprovalStart {
            process_code: code,
            originator: o.requester.clone(),
            dept_id: -1,
            approvers: o.approvers.clone(),
            form: wf.text().oa_form(o),
        })
        .await
        .map_err(dt_err)?;
    // Recorded at once: the result event is matched to the order through it.
    record_instance(wf, o, &instance, "started")
}

/// The instance an earlier, unconfirmed start of this order created, if DingTalk has one:
/// the requester's instances of the template since the first attempt, matched on the
/// order-id form field.
pub(in crate::workflow) async fn find_started(
    wf: &Workflow,
    o: &Order,
    code: &str,
    attempted_at: Timestamp,
) -> Result<Option<(String, ApprovalDetail)>, JobError> {
    let now = wf.now();
    let from = attempted_at
        .checked_sub(OA_SEARCH_SKEW)
        .unwrap_or(attempted_at);
    let to = now.checked_add(OA_SEARCH_SKEW).unwrap_or(now);
    let q = ApprovalInstanceQuery {
        process_code: code.to_string(),
        start_ms: from.as_millisecond(),
        end_ms: Some(to.as_millisecond()),
        originators: vec![o.requester.clone()],
    };
    let ids = wf.chat.find_approvals(&q).await.map_err(dt_err)?;
    for id in ids {
        match wf.chat.approval_detail(&id).await {
            Ok(d) if is_order_instance(&d, o) => return Ok(Some((id, d))),
            Ok(_) => {}
            Err(e) if e.is_transient() => return Err(dt_err(e)),
            // Gone since it was listed (deleted): it cannot be ours to follow.
            Err(e) => {
                tracing::info!(instance = %id, error = %e, "listed OA instance unreadable; skipped")
            }
        }
    }
    Ok(None)
}

pub(in crate::workflow) fn record_instance(
    wf: &Workflow,
    o: &Order,
    instance: &str,
    how: &str,
) -> Result<(), JobError> {
    let now = wf.now();
    let res = wf.orders.update(&o.id, |cur| {
        if cur.approval_refs.oa_instance_id.is_some() {
            return Err("already recorded");
        }
        let rec = AuditRecord::new(
            now,
            Some(cur.id.clone()),
            Actor::System,
            AuditEvent::Note,
            format!("OA approval instance {instance} ({how})"),
        );
        Ok(Change::new(cur.with_oa_instance(instance, now)).audit(rec))
    });
    cas_done(res)
}

/// A recovered instance may have been decided while it was unknown here, and its result
/// event was then ignored; its state is applied as that event would have been.
fn apply_found(wf: &Workflow, instance: &str, d: &ApprovalDetail) -> Result<(), JobError> {
    let Some(ev) = oa::event_of(instance, &d.state) else {
        return Ok(());
    };
    oa::on_approval(wf, ev, d.refusal()).map_err(|e| JobError::transient(e.to_string()))
}

pub(in crate::workflow) async fn terminate(wf: &Workflow, o: &Order) -> Result<(), JobError> {
    let inst = match (
        &o.approval_refs.oa_instance_id,
        o.approval_refs.oa_start_attempted_at,
    ) {
        (Some(i), _) => i.clone(),
        // A start whose answer was lost may still have made an instance: find it, so it is
        // not left to be approved in DingTalk for an order that no longer waits for it.
        (None, Some(at)) => {
            let Some(code) = wf.policy.process_code.clone() else {
                return Ok(());
            };
            match find_started(wf, o, &code, at).await {
                Ok(Some((i, _))) => {
                    record_instance(wf, o, &i, "found to terminate")?;
                    i
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        (None, None) => return Ok(()),
    };
    match wf
        .chat
        .terminate_approval(&inst, "accessbot: request closed")
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.is_transient() => Err(JobError::transient(e.to_string())),
        Err(e) => {
            // Already finished or withdrawn: nothing left to stop.
            tracing::info!(instance = %inst, error = %e, "OA instance not terminated");
            Ok(())
        }
    }
}

/// Whether an OA instance is this order's: started by its requester and carrying its id in the
/// order-id field (under either language's label, in case the language changed in between).
fn is_order_instance(d: &ApprovalDetail, o: &Order) -> bool {
    if d.originator.as_ref().is_some_and(|u| *u != o.requester) {
        return false;
    }
    let labels = [Lang::ZhCn, Lang::En].map(|l| text::oa_label(l, text::OaField::Order));
    d.form
        .iter()
        .any(|(name, value)| labels.contains(&name.as_str()) && value.trim() == o.id.as_str())
}
