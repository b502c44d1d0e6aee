//! The outbox side: one file per job, dispatched on `JobKind` here. Each job re-reads its order
//! and acts on the state it finds (a job can run again after a crash, or after the order moved
//! on), and every external effect has a stable identity: the permission name, the card
//! outTrackIds, the OA instance recorded on the order before anything else happens.
mod approval;
mod cards;
mod gave_up;
mod grant;
mod leaver;
mod notify;
mod oa;
mod plan;
mod prepare;
mod renew;
mod revoke;
mod sync;

pub(in crate::workflow) use notify::out_message;

use crate::domain::jobs::JobKind;
use crate::worker::outbox::{JobError, JobRunner};
use crate::workflow::ports::{BastionError, CasError, ChatError, OutboxJob};
use crate::workflow::Workflow;
use std::future::Future;

impl JobRunner for Workflow {
    fn run(&self, job: &OutboxJob) -> impl Future<Output = Result<(), JobError>> + Send {
        run_job(self, job)
    }

    fn gave_up(&self, job: &OutboxJob, reason: &str) -> impl Future<Output = ()> + Send {
        gave_up::run(self, job, reason.to_string())
    }
}

async fn run_job(wf: &Workflow, job: &OutboxJob) -> Result<(), JobError> {
    // Jobs of no order: a leaver's user, the index sync.
    match &job.kind {
        JobKind::DisableJmsUser { username } => return leaver::run(wf, username).await,
        JobKind::Sync { requested_by } => return sync::run(wf, job, requested_by).await,
        _ => {}
    }
    let Some(o) = wf.orders.get(&job.order_id).map_err(store_err)? else {
        tracing::warn!(job = %job.id, "job for a missing order; dropped");
        return Ok(());
    };
    match &job.kind {
        JobKind::Prepare => prepare::run(wf, job, &o).await,
        JobKind::SendApprovalRequest { approver } => approval::run(wf, &o, approver).await,
        JobKind::StartOaApproval => oa::start(wf, &o).await,
        JobKind::TerminateOaApproval => oa::terminate(wf, &o).await,
        JobKind::Notify { to, notice } => notify::notify(wf, &o, to, notice).await,
        JobKind::UpdateCards => cards::run(wf, &o).await,
        JobKind::Grant => grant::run(wf, job, &o).await,
        JobKind::Revoke => revoke::run(wf, &o).await,
        JobKind::Renew => renew::run(wf, &o).await,
        JobKind::DisableJmsUser { .. } | JobKind::Sync { .. } => Ok(()),
    }
}

fn dt_err(e: ChatError) -> JobError {
    if e.is_transient() {
        JobError::transient(e.to_string())
    } else {
        JobError::permanent(e.to_string())
    }
}

fn jms_err(e: &BastionError) -> JobError {
    if e.is_transient() {
        JobError::transient(e.to_string())
    } else {
        JobError::permanent(e.to_string())
    }
}

fn store_err<E: std::fmt::Display>(e: E) -> JobError {
    JobError::transient(format!("storage: {e}"))
}

/// An order update that found the order moved on is done, not failed.
fn cas_done<T, E>(res: Result<T, CasError<E>>) -> Result<(), JobError> {
    match res {
        Ok(_) | Err(CasError::Refused(_)) | Err(CasError::NotFound(_)) => Ok(()),
        Err(CasError::Stale { .. }) => Err(JobError::transient("order kept changing")),
        Err(CasError::Store(e)) => Err(store_err(e)),
    }
}
