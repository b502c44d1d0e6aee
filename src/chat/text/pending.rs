//! `/pending` · `待我审批`: an approver's open requests.
use crate::chat::text::words::{minutes, pick, Lang};
use crate::domain::ids::OrderId;

pub fn pending_title(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "待我审批",
        Lang::En => "Waiting for you",
    }
}

pub fn pending_none(lang: Lang, admin: bool) -> String {
    match (lang, admin) {
        (Lang::ZhCn, false) => "没有等待你审批的申请。".into(),
        (Lang::ZhCn, true) => "目前没有待审批的申请。".into(),
        (Lang::En, false) => "Nothing is waiting for your decision.".into(),
        (Lang::En, true) => "No request is waiting for a decision.".into(),
    }
}

pub fn pending_head(lang: Lang, n: usize, admin: bool) -> String {
    match (lang, admin) {
        (Lang::ZhCn, false) => format!("**等待你审批的申请（{n} 条，最早的在前）**"),
        (Lang::ZhCn, true) => format!("**全部待审批的申请（{n} 条，最早的在前）**"),
        (Lang::En, false) => format!("**Waiting for your decision ({n}, oldest first)**"),
        (Lang::En, true) => format!("**All requests waiting for a decision ({n}, oldest first)**"),
    }
}

/// One request: who, what, how long it has waited, and the decision links when the reader
/// is one of its approvers.
pub fn pending_row(
    lang: Lang,
    order: &OrderId,
    requester: &str,
    what: &str,
    age_minutes: u64,
    links: Option<&str>,
) -> String {
    let age = if age_minutes == 0 {
        pick(lang, "刚刚".into(), "just now".into())
    } else {
        pick(
            lang,
            format!("已等待 {}", minutes(lang, age_minutes)),
            format!("waiting {}", minutes(lang, age_minutes)),
        )
    };
    let head = format!("- **{order}** {requester} · {what} · {age}");
    match links {
        Some(l) => format!("{head}  \n  {l}"),
        None => head,
    }
}

/// An account request, where a list shows hosts.
pub fn account_word(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "JumpServer 账号",
        Lang::En => "a JumpServer account",
    }
}
