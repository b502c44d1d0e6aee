//! `/done` · `归还`: giving one's access back early.
use crate::chat::text::words::{pick, Lang};
use crate::domain::ids::OrderId;

pub fn give_back_done(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("好的，正在归还申请 {order} 的权限；JumpServer 中停用后会告诉你结果。"),
        format!("OK, giving back {order}; I'll tell you once JumpServer has ended it."),
    )
}

pub fn give_back_not_yours(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 不是你的权限，只能归还自己的权限。"),
        format!("{order} is not your access; you can only give back your own."),
    )
}

pub fn nothing_to_give_back(lang: Lang) -> String {
    pick(
        lang,
        "你目前没有生效中的主机权限。".into(),
        "You have no active host access.".into(),
    )
}

/// Several active grants: which one (each line is a status line with its order id).
pub fn which_to_give_back(lang: Lang, lines: &[String]) -> String {
    pick(
        lang,
        format!(
            "你有多个生效中的权限，请带上单号，例如“归还 <单号>”：\n{}",
            lines.join("\n")
        ),
        format!(
            "You have several active grants; name one, e.g. /done <order>:\n{}",
            lines.join("\n")
        ),
    )
}

/// To the approver who granted it.
pub fn given_back_to_approver(lang: Lang, order: &OrderId, holder: &str, what: &str) -> String {
    pick(
        lang,
        format!("{holder} 已提前归还你批准的申请 {order}（{what}），权限已收回。"),
        format!(
            "{holder} gave back {order} ({what}), which you approved, early; the access is ended."
        ),
    )
}
