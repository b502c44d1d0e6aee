//! `/my`: the sender's open requests and active grants, one status line each.
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::workflow::commands::{Answer, Ctx};
use crate::workflow::retry;

pub(super) fn run(cx: &Ctx<'_>) -> Result<Answer, DispatchError> {
    let (wf, sender) = (cx.wf, cx.sender);
    let orders = wf.orders.list_by_requester(sender).map_err(retry)?;
    let lines: Vec<String> = orders
        .iter()
        .filter(|o| !o.state.is_terminal())
        .map(|o| wf.text_in(cx.lang).status_line(o))
        .collect();
    Ok(Answer::Say(text::my_lines(cx.lang, &lines)))
}
