//! The product's `Dispatch`: routes each verified `Inbound` event to its handler in `events`,
//! one user's messages (and request-form submits) at a time, different users in parallel.
use crate::dispatch::{Dispatch, DispatchError, DispatchReply};
use crate::domain::ids::DingUserId;
use crate::inbound::Inbound;
use crate::workflow::events::{card, form, message, oa, org};
use crate::workflow::Workflow;
use futures::future::BoxFuture;
use std::sync::Arc;

/// Stripes of the per-user chat lock: enough that unrelated users rarely share one.
const USER_STRIPES: usize = 64;

/// The product's dispatcher: chat messages, card taps, OA results and org events.
pub struct WorkflowDispatcher {
    wf: Arc<Workflow>,
    /// One user's messages are handled one at a time (their dialog is read, advanced and
    /// written back); different users proceed in parallel. Decisions need no lock: they are
    /// compare-and-swap on the order.
    user_locks: Vec<std::sync::Mutex<()>>,
}

impl WorkflowDispatcher {
    pub fn new(wf: Arc<Workflow>) -> Self {
        Self {
            wf,
            user_locks: (0..USER_STRIPES)
                .map(|_| std::sync::Mutex::new(()))
                .collect(),
        }
    }

    fn user_lock(&self, user: Option<&DingUserId>) -> Option<std::sync::MutexGuard<'_, ()>> {
        use std::hash::{Hash, Hasher};
        let user = user?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        user.as_str().hash(&mut h);
        let i = usize::try_from(h.finish() % USER_STRIPES as u64).unwrap_or(0);
        self.user_locks
            .get(i)
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Dispatch for WorkflowDispatcher {
    fn handle(&self, event: Inbound) -> BoxFuture<'_, Result<DispatchReply, DispatchError>> {
        Box::pin(async move {
            let wf = &self.wf;
            match event {
                Inbound::Chat(msg) => {
                    // Held across synchronous work only (no await inside on_chat).
                    let _guard = self.user_lock(msg.sender_staff_id.as_ref());
                    message::on_chat(wf, msg).map(|_| DispatchReply::None)
                }
                Inbound::CardAction(a) => {
                    // A request form submit creates an order like a chat message does, so it
                    // takes the same per-user lock: the "identical open request" and rate-limit
                    // checks must not race the same user's message. Approval taps need none.
                    let form = a.out_track_id.starts_with(form::FORM_PREFIX);
                    let _guard = form.then(|| self.user_lock(Some(&a.user_id))).flatten();
                    card::on_card(wf, a)
                }
                Inbound::Approval(a) => oa::on_approval_event(wf, a)
                    .await
                    .map(|_| DispatchReply::None),
                Inbound::Org(o) => org::on_org(wf, o).map(|_| DispatchReply::None),
                Inbound::Other { event_type, .. } => {
                    tracing::debug!(%event_type, "event ignored");
                    Ok(DispatchReply::None)
                }
            }
        })
    }
}
