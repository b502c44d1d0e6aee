//! `/history <host | user | order> [page]` (admins): the audit trail about one subject, newest
//! first, a page at a time, read through the `AuditTrail` port. The subject is tried as an order,
//! then a user (DingTalk userid or JumpServer username), then a host; the first that has records
//! is shown.
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::audit::{Actor, AuditPage, AuditQuery};
use crate::domain::ids::OrderId;
use crate::workflow::commands::{Answer, Ctx};
use crate::workflow::{retry, Workflow};

pub(super) fn run(cx: &Ctx<'_>, subject: &str, page: usize) -> Result<Answer, DispatchError> {
    let wf = cx.wf;
    let subject = subject.trim();
    let page = page.max(1);
    let base = AuditQuery {
        newest_first: true,
        offset: (page - 1).saturating_mul(text::HISTORY_PAGE_ROWS),
        limit: text::HISTORY_PAGE_ROWS,
        ..AuditQuery::default()
    };
    let as_order = AuditQuery {
        order: Some(OrderId::new(subject.to_ascii_uppercase())),
        ..base.clone()
    };
    let as_user = AuditQuery {
        user: Some(subject.to_owned()),
        ..base.clone()
    };
    let as_host = AuditQuery {
        host: Some(subject.to_owned()),
        ..base
    };
    let mut found = AuditPage::default();
    for q in [as_order, as_user, as_host] {
        found = wf.audit.query(&q).map_err(retry)?;
        if found.total > 0 {
            break;
        }
    }
    Ok(Answer::Say(render(wf, subject, &found, page)))
}

fn render(wf: &Workflow, subject: &str, found: &AuditPage, page: usize) -> String {
    let lang = wf.lang();
    let rows: Vec<text::HistoryRow<'_>> = found
        .records
        .iter()
        .map(|c| {
            let r = &c.record;
            let s = r.subject.as_ref();
            let who = match &r.actor {
                Actor::System => text::history_system(lang),
                // The directory's name when this process has seen it, else the name the
                // requester's message came with, else the userid.
                Actor::User(u) => wf.names.get(u).unwrap_or_else(|| match s {
                    Some(s) if &s.requester == u && !s.requester_name.is_empty() => {
                        s.requester_name.clone()
                    }
                    _ => u.to_string(),
                }),
            };
            text::HistoryRow {
                at: r.at,
                event: r.event,
                who,
                order: r.order_id.as_ref().map(|o| o.as_str()),
                hosts: s.map(|s| &s.hosts[..]).unwrap_or_default(),
                role: s.and_then(|s| s.role.as_deref()),
                until: s.and_then(|s| s.until),
                detail: &r.detail,
            }
        })
        .collect();
    text::history(lang, subject, &rows, found.total, page, &wf.settings.tz)
}
