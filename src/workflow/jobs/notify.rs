//! Notices: who an `Audience` is for an order, the names a notice shows looked up, the text
//! rendered by `chat::notice` from the order as it is now, and the send.
use crate::chat::message::Message;
use crate::chat::notice::{self as notices, NoticeContext};
use crate::chat::text::Lang;
use crate::domain::ids::DingUserId;
use crate::domain::notice::{Audience, Notice};
use crate::domain::order::Order;
use crate::worker::outbox::JobError;
use crate::workflow::jobs::cards;
use crate::workflow::jobs::dt_err;
use crate::workflow::ports::{dtmd_send_link, CardButton, OutMessage};
use crate::workflow::Workflow;
use std::collections::HashMap;

/// Sends `notice` about `o` to `to`, rendered from the order as it is now.
pub(in crate::workflow) async fn notify(
    wf: &Workflow,
    o: &Order,
    to: &Audience,
    notice: &Notice,
) -> Result<(), JobError> {
    if to == &Audience::Requester && notice == &Notice::Submitted {
        cards::deliver_requester_card(wf, o).await?;
    }
    let recipients: Vec<DingUserId> = match to {
        // Whoever asked on the requester's behalf hears what the requester hears.
        Audience::Requester => std::iter::once(o.requester.clone())
            .chain(o.filed_by.clone())
            .collect(),
        Audience::User(u) => vec![u.clone()],
        Audience::Approvers => o
            .approvers
            .iter()
            .filter(|a| Some(*a) != o.decided_by.as_ref())
            .cloned()
            .collect(),
        Audience::Admins => wf.policy.admins.iter().cloned().collect(),
    };
    if recipients.is_empty() {
        return Ok(());
    }
    // Each person reads it in their language (`/lang`, or the one they last wrote in): one
    // send per language, so a group send stays one call when everyone reads the same.
    let mut by_lang: Vec<(Lang, Vec<DingUserId>)> = Vec::new();
    for r in recipients {
        let l = wf.lang_of(&r);
        match by_lang.iter_mut().find(|(x, _)| *x == l) {
            Some((_, v)) => v.push(r),
            None => by_lang.push((l, vec![r])),
        }
    }
    for (lang, to) in by_lang {
        if let Some(m) = render_in(wf, o, notice, lang).await {
            send(wf, &to, &m).await?;
        }
    }
    Ok(())
}

/// Renders a notice at send time from the order as it is now, after looking up the names
/// it shows.
pub(in crate::workflow) async fn render(
    wf: &Workflow,
    o: &Order,
    notice: &Notice,
) -> Option<OutMessage> {
    render_in(wf, o, notice, wf.lang_of(&o.requester)).await
}

/// [`render`] in `lang`.
async fn render_in(wf: &Workflow, o: &Order, notice: &Notice, lang: Lang) -> Option<OutMessage> {
    let mut names: HashMap<DingUserId, String> = HashMap::new();
    for u in notices::mentions(o, notice) {
        let name = wf.name_of(&u).await;
        names.insert(u, name);
    }
    let name_of = |u: &DingUserId| names.get(u).cloned().unwrap_or_else(|| u.to_string());
    let cx = NoticeContext {
        text: wf.text_in(lang),
        jms_web_url: wf.settings.jms_web_url.as_deref(),
        now: wf.now(),
        name_of: &name_of,
    };
    notices::render(&cx, o, notice).map(out_message)
}

pub(in crate::workflow) async fn send(
    wf: &Workflow,
    to: &[DingUserId],
    m: &OutMessage,
) -> Result<(), JobError> {
    let sent = wf.chat.send_to_users(to, m).await.map_err(dt_err)?;
    // Re-sending to everyone would duplicate the message for those who got it; only a
    // single throttled recipient is worth a retry.
    if to.len() == 1 && !sent.throttled.is_empty() {
        return Err(JobError::transient("recipient is flow-controlled"));
    }
    if !sent.undeliverable.is_empty() {
        // Accepted by the platform but never delivered to these: not silent. A lone recipient
        // fails the job, so it gives up and the admins are told; in a group send the others
        // did get it.
        tracing::warn!(users = ?sent.undeliverable, "recipients the chat platform will not deliver to");
        if to.len() == 1 {
            return Err(JobError::permanent(format!(
                "DingTalk will not deliver to {} (invalidStaffIdList: outside the app's visible range, or no longer in the organisation)",
                to[0]
            )));
        }
    }
    Ok(())
}

/// DingTalk markdown needs two trailing spaces for a line break.
fn md(s: &str) -> String {
    s.replace('\n', "  \n")
}

/// A rendered message as DingTalk sends it: a prompt becomes an action card whose buttons send
/// their command back through `dtmd://` links.
pub(in crate::workflow) fn out_message(m: Message) -> OutMessage {
    match m {
        Message::Text(t) => OutMessage::text(t),
        Message::Prompt {
            title,
            text,
            buttons,
        } => OutMessage::ActionCard {
            title,
            text: md(&text),
            buttons: buttons
                .into_iter()
                .map(|b| CardButton::new(b.label, dtmd_send_link(&b.sends)))
                .collect(),
        },
    }
}
