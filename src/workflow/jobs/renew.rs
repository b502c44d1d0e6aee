//! Renewal: the permission's end moves to the order's renewed window, and what JumpServer then
//! grants is read back for the "renewed" message that follows.
use crate::domain::change::Change;
use crate::domain::ids::JmsUserId;
use crate::domain::order::{Order, State};
use crate::worker::outbox::JobError;
use crate::workflow::jobs::{cas_done, jms_err};
use crate::workflow::ports::OrderStoreExt;
use crate::workflow::Workflow;

/// Moves the end of the order's permission to its (renewed) window and records what
/// JumpServer then grants, for the "renewed" message that follows.
pub(in crate::workflow) async fn run(wf: &Workflow, o: &Order) -> Result<(), JobError> {
    let (State::Active, Some(w)) = (o.state, o.window) else {
        return Ok(());
    };
    let name = o.granted_permission_name();
    let renewed = wf
        .bastion
        .renew(&name, &o.marker(), w.end)
        .await
        .map_err(|e| jms_err(&e))?;
    let before = o.grant.as_ref().and_then(|g| g.readback.clone());
    let after = match &before {
        Some(rb) if !rb.user_id.is_empty() => {
            let accounts = wf.role_accounts(o);
            wf.bastion
                .read_back(
                    &JmsUserId::new(rb.user_id.clone()),
                    &renewed,
                    &rb.hosts,
                    rb.node.as_ref(),
                    &accounts,
                )
                .await
                .map_err(|e| jms_err(&e))?
        }
        _ => return Ok(()),
    };
    let now = wf.now();
    let res = wf.orders.update(&o.id, |cur| {
        let mut g = cur.grant.clone().unwrap_or_default();
        g.readback = Some(after.clone());
        Ok::<_, &str>(Change::new(cur.with_grant(g, now)))
    });
    cas_done(res)
}
