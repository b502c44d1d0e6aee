//! `/status <order>`: one order in detail, for its requester, its approvers and the admins.
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::ids::{DingUserId, OrderId};
use crate::workflow::commands::{Answer, Ctx};
use crate::workflow::{retry, Workflow};

pub(super) fn run(cx: &Ctx<'_>, id: &OrderId) -> Result<Answer, DispatchError> {
    let (wf, sender) = (cx.wf, cx.sender);
    status(wf, sender, id).map(Answer::Say)
}

fn status(wf: &Workflow, sender: &DingUserId, id: &OrderId) -> Result<String, DispatchError> {
    let lang = wf.lang();
    let Some(o) = wf.orders.get(id).map_err(retry)? else {
        return Ok(text::order_not_found(lang, id));
    };
    if o.requester != *sender && !o.is_approver(sender) && !wf.policy.is_admin(sender) {
        // Same answer as a missing order would leak nothing; but the user typed an id
        // they know exists, so say plainly that it is not theirs.
        return Ok(text::not_your_order(lang, id));
    }
    let approvers: Vec<String> = o.approvers.iter().map(|a| a.to_string()).collect();
    let decided = o.decided_by.as_ref().map(|d| {
        if d.as_str() == crate::workflow::OA_DECIDER {
            text::oa_decider(lang).to_string()
        } else {
            d.to_string()
        }
    });
    let note = o
        .failure
        .as_ref()
        .map(|f| f.reason.clone())
        .or_else(|| o.closure.as_ref().and_then(|c| c.reason.clone()))
        .or_else(|| o.decision_reason.clone());
    Ok(text::status_detail(
        lang,
        &wf.text().status_line(&o),
        &format!("{} ({})", o.requester_name, o.requester),
        &approvers,
        decided.as_deref(),
        note.as_deref(),
    ))
}
