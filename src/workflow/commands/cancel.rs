//! `/cancel <order>`: the requester withdraws a request that is not decided yet (cards updated,
//! an OA instance terminated, the requester told through the outbox).
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::audit::Actor;
use crate::domain::change::Change;
use crate::domain::ids::OrderId;
use crate::domain::jobs::JobKind;
use crate::domain::notice::Notice;
use crate::domain::order::State;
use crate::workflow::commands::{refusal_or, Answer, Ctx, Refusal};
use crate::workflow::ports::OrderStoreExt;

pub(super) fn run(cx: &Ctx<'_>, id: &OrderId) -> Result<Answer, DispatchError> {
    let (wf, sender) = (cx.wf, cx.sender);
    let lang = cx.lang;
    let res = wf.orders.update(id, |o| {
        if o.requester != *sender {
            return Err(Refusal::Text(text::not_your_order(lang, id)));
        }
        if !matches!(o.state, State::Draft | State::PendingApproval) {
            return Err(Refusal::Text(text::not_pending(
                lang,
                id,
                wf.text_in(lang).status_label(o),
            )));
        }
        let t = o
            .cancel(sender, wf.now())
            .map_err(|e| Refusal::Text(e.to_string()))?;
        let mut jobs = wf.closing_jobs(o);
        jobs.push(JobKind::tell_requester(Notice::Cancelled));
        Ok(Change::from_transition(
            t,
            Actor::User(sender.clone()),
            "cancelled by the requester",
            jobs,
        ))
    });
    refusal_or(wf, res, id, |_| Answer::Quiet)
}
