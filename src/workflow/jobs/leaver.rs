//! A leaver's JumpServer user is disabled (the job is keyed to the leaver, not to an order).
use crate::worker::outbox::JobError;
use crate::workflow::jobs::jms_err;
use crate::workflow::Workflow;

pub(in crate::workflow) async fn run(wf: &Workflow, username: &str) -> Result<(), JobError> {
    match wf.bastion.find_user(username).await {
        Ok(Some(u)) if u.is_active => wf
            .bastion
            .set_user_active(&u.id, false)
            .await
            .map_err(|e| jms_err(&e)),
        Ok(_) => Ok(()),
        Err(e) => Err(jms_err(&e)),
    }
}
