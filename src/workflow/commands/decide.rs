//! `/approve <order>` and `/reject <order> <reason>` typed (or sent by a `dtmd://` button): the
//! text fallback of the approval card, through the same decision as a card tap.
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::ids::OrderId;
use crate::workflow::commands::{Answer, Ctx};
use crate::workflow::decision::{self, Decided};
use crate::workflow::ports::CasError;
use crate::workflow::retry;

/// `/approve` and `/reject` typed (or sent by a dtmd button).
pub(super) fn run(
    cx: &Ctx<'_>,
    id: &OrderId,
    reason: Option<String>,
) -> Result<Answer, DispatchError> {
    let (wf, sender) = (cx.wf, cx.sender);
    let lang = cx.lang;
    let approved = reason.is_none();
    match decision::decide(wf, sender, id, reason) {
        Ok(Decided::Final(_)) => Ok(Answer::Say(text::decision_recorded(lang, id, approved))),
        Ok(Decided::Partial { remaining, .. }) => Ok(Answer::Say(text::approval_recorded_waiting(
            lang, id, remaining,
        ))),
        Err(CasError::Refused(r)) => Ok(Answer::Say(decision::refused_text(wf, id, &r))),
        Err(CasError::NotFound(_)) => Ok(Answer::Say(text::order_not_found(lang, id))),
        Err(CasError::Stale { .. }) => Err(DispatchError::Retry("order busy".into())),
        Err(CasError::Store(e)) => Err(retry(e)),
    }
}
