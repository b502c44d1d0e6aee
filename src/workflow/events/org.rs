//! Org events: a leaver's open requests are closed, their grants revoked (the admins told), and
//! their JumpServer user disabled by a job keyed to the leaver.
use crate::dispatch::DispatchError;
use crate::domain::audit::Actor;
use crate::domain::change::Change;
use crate::domain::ids::OrderId;
use crate::domain::jobs::JobKind;
use crate::domain::notice::Notice;
use crate::domain::order::State;
use crate::inbound::{OrgEvent, OrgEventKind};
use crate::workflow::commands::Refusal;
use crate::workflow::ports::{CasError, OrderStoreExt, OutboxJob};
use crate::workflow::{retry, Workflow};

/// `user_leave_org`: close everything the leaver has, disable their JumpServer user.
pub(in crate::workflow) fn on_org(wf: &Workflow, ev: OrgEvent) -> Result<(), DispatchError> {
    if ev.kind != OrgEventKind::UserLeft {
        return Ok(());
    }
    let now = wf.now();
    for user in &ev.user_ids {
        let orders = wf.orders.list_by_requester(user).map_err(retry)?;
        let username = orders
            .iter()
            .find(|o| !o.jms_username.is_empty())
            .map(|o| o.jms_username.clone());
        for o in orders.iter().filter(|o| !o.state.is_terminal()) {
            let res = wf.orders.update(&o.id, |cur| -> Result<Change, Refusal> {
                let reason = "requester left the organisation".to_string();
                match cur.state {
                    State::Draft | State::PendingApproval => {
                        let t = cur
                            .cancel(user, now)
                            .map_err(|e| Refusal::Text(e.to_string()))?;
                        let jobs = wf.closing_jobs(cur);
                        Ok(Change::from_transition(t, Actor::System, reason, jobs))
                    }
                    _ => {
                        let t = cur
                            .revoke(None, Some(reason.clone()), now)
                            .map_err(|e| Refusal::Text(e.to_string()))?;
                        let jobs = vec![JobKind::Revoke, JobKind::tell_admins(Notice::LeftOrg)];
                        Ok(Change::from_transition(t, Actor::System, reason, jobs))
                    }
                }
            });
            match res {
                Ok(_) | Err(CasError::Refused(_)) | Err(CasError::NotFound(_)) => {}
                Err(CasError::Stale { .. }) => {
                    return Err(DispatchError::Retry("order busy".into()))
                }
                Err(CasError::Store(e)) => return Err(retry(e)),
            }
        }
        if let Some(username) = username {
            // Not tied to one order: a pseudo order key keeps the job unique per leaver.
            let key = OrderId::new(format!("leaver-{}", hex::encode(user.as_str())));
            let job = OutboxJob::new(&key, 0, 0, JobKind::DisableJmsUser { username }, now);
            wf.orders.enqueue(&job).map_err(retry)?;
        }
    }
    Ok(())
}
