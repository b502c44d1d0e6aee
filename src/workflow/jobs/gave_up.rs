//! When a job stops retrying, someone hears it: the order fails (grant, prepare, approval), or the
//! admins are told what a person must now do by hand (revoke, renewal, an undelivered notice,
//! cards or an OA instance left behind, a leaver's user still enabled).
use crate::chat::failures;
use crate::chat::text;
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::change::Change;
use crate::domain::ids::DingUserId;
use crate::domain::jobs::JobKind;
use crate::domain::notice::{Audience, FailureKind, Notice};
use crate::domain::order::Order;
use crate::worker::outbox::JobError;
use crate::workflow::jobs::cas_done;
use crate::workflow::jobs::{approval, grant, notify, prepare};
use crate::workflow::ports::{OrderStoreExt, OutMessage, OutboxJob};
use crate::workflow::Workflow;

pub(in crate::workflow) async fn run(wf: &Workflow, job: &OutboxJob, reason: String) {
    if let JobKind::DisableJmsUser { username } = &job.kind {
        // A leaver who keeps a working JumpServer login is a security matter: the admins
        // must hear it, directly (there is no order to hang an outbox notice on).
        tracing::error!(username = %username, %reason, "leaver's JumpServer user not disabled");
        let m = OutMessage::text(failures::admin_leaver_not_disabled(
            wf.lang(),
            username,
            &reason,
        ));
        let admins: Vec<DingUserId> = wf.policy.admins.iter().cloned().collect();
        if let Err(e) = notify::send(wf, &admins, &m).await {
            tracing::error!(error = %e, "could not tell the admins about the leaver");
        }
        return;
    }
    let Ok(Some(o)) = wf.orders.get(&job.order_id) else {
        return;
    };
    let detail = text::gave_up(wf.lang(), &reason);
    let r = match &job.kind {
        JobKind::Grant => {
            grant::grant_failed(wf, &o, FailureKind::JumpServerUnavailable, &detail).await
        }
        JobKind::Prepare => prepare::fail_prepare(wf, &o, &detail).await,
        // The order says the access ended; JumpServer may still grant it. A person must
        // end it by hand, and needs to hear so.
        JobKind::Revoke => tell_admins(wf, &o, Notice::RevokeFailed { detail }),
        JobKind::Renew => tell_admins(wf, &o, Notice::RenewFailed { detail }),
        JobKind::SendApprovalRequest { approver } => {
            approval::undelivered(wf, &o, approver, &reason)
        }
        JobKind::StartOaApproval => approval::fail(wf, &o, &reason),
        // Telling the admins failed: nothing left to tell; the log line below is it.
        JobKind::Notify {
            to: Audience::Admins,
            ..
        } => {
            tracing::error!(order = %o.id, %reason, "admin notice not delivered");
            Ok(())
        }
        // A person did not get a message about their order: the admins hear which one.
        JobKind::Notify { notice, .. } => tell_admins(
            wf,
            &o,
            Notice::NoticeUndelivered {
                detail: format!("{}: {reason}", notice.name()),
            },
        ),
        // Cards left showing an old state, or an OA instance not withdrawn: said to the
        // admins, since the people concerned may act on what they still see.
        JobKind::UpdateCards | JobKind::TerminateOaApproval => tell_admins(
            wf,
            &o,
            Notice::CleanupFailed {
                detail: reason.clone(),
            },
        ),
        _ => Ok(()),
    };
    if let Err(e) = r {
        tracing::error!(order = %o.id, error = %e, "could not record the failure");
    }
}

/// Queues a notice to the admins about this order (and, for a failed renewal, the
/// requester, whose access ends earlier than the bot said).
pub(in crate::workflow) fn tell_admins(
    wf: &Workflow,
    o: &Order,
    notice: Notice,
) -> Result<(), JobError> {
    let now = wf.now();
    let detail = match &notice {
        Notice::RevokeFailed { detail }
        | Notice::RenewFailed { detail }
        | Notice::NoticeUndelivered { detail }
        | Notice::CleanupFailed { detail } => detail.clone(),
        _ => String::new(),
    };
    let res = wf.orders.update(&o.id, |cur| {
        let rec = AuditRecord::new(
            now,
            Some(cur.id.clone()),
            Actor::System,
            AuditEvent::Note,
            format!("{}: {detail}", notice.name()),
        );
        let mut c = Change::new(cur.touched(now))
            .audit(rec)
            .job(JobKind::tell_admins(notice.clone()));
        if let Notice::RenewFailed { .. } = notice {
            c = c.job(JobKind::tell_requester(notice.clone()));
        }
        Ok::<_, &str>(c)
    });
    cas_done(res)
}
