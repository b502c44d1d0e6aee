//! Revoke, give-back and expiry: the permission is deactivated (or deleted) only when it carries
//! our marker, the holder's live sessions ended when configured, and what the user still reaches
//! read back for the message that follows.
use crate::domain::access::RevokedHow;
use crate::domain::change::Change;
use crate::domain::ids::JmsUserId;
use crate::domain::jobs::JobKind;
use crate::domain::notice::Notice;
use crate::domain::order::{Order, Request};
use crate::worker::outbox::JobError;
use crate::workflow::jobs::{cas_done, jms_err};
use crate::workflow::ports::OrderStoreExt;
use crate::workflow::Workflow;

/// Ends the order's permission in JumpServer (only when it carries our marker), ends live
/// sessions when configured, reads back what the user still reaches there, and records
/// both on the order for the message that follows.
pub(in crate::workflow) async fn run(wf: &Workflow, o: &Order) -> Result<(), JobError> {
    if let Request::Account { .. } = o.request {
        return Ok(());
    }
    if o.grant.as_ref().is_some_and(|g| g.revocation.is_some()) {
        return Ok(());
    }
    let name = o.granted_permission_name();
    let before = o.grant.as_ref().and_then(|g| g.readback.clone());
    let user = before
        .as_ref()
        .filter(|rb| !rb.user_id.is_empty())
        .map(|rb| JmsUserId::new(rb.user_id.clone()));
    let host_ids: Vec<String> = before
        .iter()
        .flat_map(|rb| rb.hosts.iter().map(|h| h.id.clone()))
        .collect();
    let sessions = match &user {
        Some(u) if wf.settings.end_sessions => Some((u, host_ids.as_slice())),
        _ => None,
    };
    let out = wf
        .bastion
        .revoke(&name, &o.marker(), wf.settings.revoke_mode, sessions)
        .await
        .map_err(|e| jms_err(&e))?;
    let after = match (&user, &before) {
        (Some(u), Some(rb)) => {
            let accounts = wf.role_accounts(o);
            match wf
                .bastion
                .read_back(u, &name, &rb.hosts, rb.node.as_ref(), &accounts)
                .await
            {
                Ok(a) => Some(a),
                // The revoke itself is done; a failed look afterwards only loses detail.
                Err(e) => {
                    tracing::warn!(order = %o.id, error = %e, "read-back after revoke failed");
                    None
                }
            }
        }
        _ => None,
    };
    tracing::info!(order = %o.id, how = ?out.revocation.how, sessions = out.revocation.sessions_ended, "permission revoked");
    let now = wf.now();
    let not_ours = out.revocation.how == RevokedHow::NotOurs;
    let res = wf.orders.update(&o.id, |cur| {
        let mut g = cur.grant.clone().unwrap_or_default();
        if g.revocation.is_some() {
            return Err("recorded");
        }
        g.revocation = Some(out.revocation.clone());
        if let Some(a) = &after {
            g.readback = Some(a.clone());
        }
        let mut c = Change::new(cur.with_grant(g, now));
        if not_ours {
            c = c.job(JobKind::tell_admins(Notice::RevokeNotOurs {
                name: name.clone(),
            }));
        }
        Ok(c)
    });
    cas_done(res)
}
