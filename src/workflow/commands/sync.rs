//! `/sync` (admins): queues the one index sync job (`jobs::sync`); a second `/sync` before it
//! finished joins it.
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::workflow::commands::{Answer, Ctx};
use crate::workflow::ports::OutboxJob;
use crate::workflow::retry;

/// `/sync` (admin): queues the one sync job; a second `/sync` before it finished joins it.
pub(super) fn run(cx: &Ctx<'_>) -> Result<Answer, DispatchError> {
    let wf = cx.wf;
    let job = OutboxJob::sync(cx.sender.clone(), wf.now());
    Ok(Answer::Say(if wf.orders.enqueue(&job).map_err(retry)? {
        text::sync_started(cx.lang)
    } else {
        text::sync_already_running(cx.lang)
    }))
}
