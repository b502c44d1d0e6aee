//! `/pending` · `待我审批`: the requests waiting for the sender's decision, oldest first, each
//! with its age and one-tap approve / reject links. The links send `同意 <单号>` / `拒绝 <单号>`
//! as the approver (`dtmd://`), so a tap goes through `decide` — the same decision, policy and
//! exactly-once compare-and-swap as a card tap. Admins see every pending request. A long list
//! stops within DingTalk's message size and says how to see the rest (`待我审批 21`).
use crate::chat::text::{self, lists, Lang};
use crate::dispatch::DispatchError;
use crate::domain::command::{display_word, CommandKind};
use crate::domain::order::{Order, State};
use crate::workflow::commands::{Answer, Ctx};
use crate::workflow::ports::dtmd_send_link;
use crate::workflow::retry;

pub(super) fn run(cx: &Ctx<'_>, from: usize) -> Result<Answer, DispatchError> {
    let (wf, sender, lang) = (cx.wf, cx.sender, cx.lang);
    let now = wf.now();
    let waiting: Vec<Order> = wf
        .orders
        .list_by_state(State::PendingApproval)
        .map_err(retry)?
        .into_iter()
        // An approver sees what still waits for them (not what they approved already, while
        // a second approval is due); admins see everything.
        .filter(|o| cx.admin || (o.is_approver(sender) && !o.approvals.contains(sender)))
        .collect();
    if waiting.is_empty() {
        return Ok(Answer::Say(text::pending_none(lang, cx.admin)));
    }
    let skip = from.saturating_sub(1).min(waiting.len());
    let t = wf.text_in(lang);
    let rows: Vec<String> = waiting[skip..]
        .iter()
        .map(|o| {
            let age = u64::try_from(now.duration_since(o.created_at).as_mins()).unwrap_or(0);
            let what = match o.request.access_duration() {
                Some(d) => format!(
                    "{} · {} · {}",
                    text::targets(lang, &t.targets(o)),
                    t.role_label(o),
                    text::duration(lang, d)
                ),
                None => text::account_word(lang).to_string(),
            };
            let links = o.is_approver(sender).then(|| decide_links(lang, o));
            text::pending_row(lang, &o.id, &o.requester_name, &what, age, links.as_deref())
        })
        .collect();
    let head = text::pending_head(lang, waiting.len(), cx.admin);
    let shown = lists::fit(&head, &rows);
    let mut body = format!("{head}\n\n{}", rows[..shown].join("\n\n"));
    let left = rows.len() - shown;
    if left > 0 {
        let next = format!(
            "{} {}",
            display_word(CommandKind::Pending, lang),
            skip + shown + 1
        );
        body.push_str("\n\n");
        body.push_str(&lists::left_out(lang, left, &next));
    }
    Ok(Answer::Markdown {
        title: text::pending_title(lang).to_string(),
        text: body,
    })
}

/// `[同意](dtmd://…) · [拒绝](dtmd://…)`: markdown links that send the decision as the tapper.
fn decide_links(lang: Lang, o: &Order) -> String {
    let approve = format!("{} {}", display_word(CommandKind::Approve, lang), o.id);
    // As on the approval prompt: the reason is typed after the prefilled text.
    let reject = format!("{} {} ", display_word(CommandKind::Reject, lang), o.id);
    format!(
        "[{}]({}) · [{}]({})",
        text::approve_button(lang),
        dtmd_send_link(&approve),
        text::reject_button(lang),
        dtmd_send_link(&reject)
    )
}
