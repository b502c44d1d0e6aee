//! `/status <order>`: one order in detail, for its requester, its approvers and the admins.
//! People are named as DingTalk names them (李四), as in every other message: from the names
//! seen before, else looked up in the directory before answering.
use crate::chat::order::OrderText;
use crate::chat::text::{self, Lang};
use crate::dispatch::DispatchError;
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::order::Order;
use crate::workflow::commands::{Answer, Ctx};
use crate::workflow::ports::OutMessage;
use crate::workflow::{retry, OA_DECIDER};
use std::collections::HashMap;

pub(super) fn run(cx: &Ctx<'_>, id: &OrderId) -> Result<Answer, DispatchError> {
    let (wf, sender) = (cx.wf, cx.sender);
    let lang = cx.lang;
    let Some(o) = wf.orders.get(id).map_err(retry)? else {
        return Ok(Answer::Say(text::order_not_found(lang, id)));
    };
    if o.requester != *sender && !o.is_approver(sender) && !wf.policy.is_admin(sender) {
        // Same answer as a missing order would leak nothing; but the user typed an id
        // they know exists, so say plainly that it is not theirs.
        return Ok(Answer::Say(text::not_your_order(lang, id)));
    }
    let mut known: HashMap<DingUserId, String> = HashMap::new();
    let mut unknown: Vec<DingUserId> = Vec::new();
    for u in o.approvers.iter().chain(o.decided_by.iter()) {
        if u.as_str() == OA_DECIDER {
            continue;
        }
        match wf.names.get(u) {
            Some(n) => {
                known.insert(u.clone(), n);
            }
            None => unknown.push(u.clone()),
        }
    }
    let webhook = match (unknown.is_empty(), cx.webhook.clone()) {
        (false, Some(w)) => w,
        _ => return Ok(Answer::Say(status(wf.text_in(lang), &o, &known))),
    };
    // Names not seen since the start: asked of the directory, then answered.
    let chat = wf.chat.clone();
    let policy = wf.policy.clone();
    let tz = wf.settings.tz.clone();
    tokio::spawn(async move {
        for u in unknown {
            if let Ok(d) = chat.look_up_user(&u).await {
                if !d.name.is_empty() {
                    known.insert(u, d.name);
                }
            }
        }
        let t = OrderText {
            lang,
            tz: &tz,
            policy: &policy,
        };
        let msg = OutMessage::text(status(t, &o, &known));
        if let Err(e) = chat.reply_on_session(&webhook, &msg).await {
            tracing::warn!(error = %e, "status reply failed");
        }
    });
    Ok(Answer::Later)
}

fn status(t: OrderText<'_>, o: &Order, names: &HashMap<DingUserId, String>) -> String {
    let lang: Lang = t.lang;
    let name = |u: &DingUserId| -> String {
        if u.as_str() == OA_DECIDER {
            return text::oa_decider(lang).to_string();
        }
        names.get(u).cloned().unwrap_or_else(|| u.to_string())
    };
    let approvers: Vec<String> = o.approvers.iter().map(name).collect();
    let decided = o.decided_by.as_ref().map(name);
    let note = o
        .failure
        .as_ref()
        .map(|f| f.reason.clone())
        .or_else(|| o.closure.as_ref().and_then(|c| c.reason.clone()))
        .or_else(|| o.decision_reason.clone());
    text::status_detail(
        lang,
        &t.status_line(o),
        &format!("{} ({})", o.requester_name, o.requester),
        &approvers,
        decided.as_deref(),
        note.as_deref(),
    )
}
