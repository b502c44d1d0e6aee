//! Decisions: approved (and how many more are needed), rejected, decided by someone else,
//! withdrawn, and who the system or DingTalk OA is when they decided.
use crate::chat::text::words::{pick, time, Lang};
use crate::domain::ids::OrderId;
use jiff::tz::TimeZone;
use jiff::Timestamp;

pub fn approved_waiting_more(
    lang: Lang,
    order: &OrderId,
    approver_name: &str,
    remaining: u32,
) -> String {
    pick(
        lang,
        format!("{approver_name} 已同意申请 {order}，还需要 {remaining} 位审批人同意。"),
        format!("{approver_name} approved {order}; {remaining} more approval(s) needed."),
    )
}

pub fn approved_provisioning(lang: Lang, order: &OrderId, approver_name: &str) -> String {
    pick(
        lang,
        format!("{approver_name} 已同意申请 {order}，正在开通权限，完成后通知你。"),
        format!("{approver_name} approved {order}; setting up access now, I'll tell you when it is ready."),
    )
}

pub fn rejected(lang: Lang, order: &OrderId, approver_name: &str, reason: &str) -> String {
    pick(
        lang,
        format!("❌ {approver_name} 拒绝了申请 {order}。\n原因：{reason}"),
        format!("❌ {approver_name} rejected {order}.\nReason: {reason}"),
    )
}

pub fn decision_recorded(lang: Lang, order: &OrderId, approved: bool) -> String {
    match (lang, approved) {
        (Lang::ZhCn, true) => format!("已同意申请 {order}。"),
        (Lang::ZhCn, false) => format!("已拒绝申请 {order}，申请人会收到原因。"),
        (Lang::En, true) => format!("Approved {order}."),
        (Lang::En, false) => format!("Rejected {order}; the requester will see your reason."),
    }
}

pub fn already_decided(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 已经处理过了。"),
        format!("{order} has already been decided."),
    )
}

pub fn already_decided_by(
    lang: Lang,
    order: &OrderId,
    status: &str,
    by: &str,
    at: Option<Timestamp>,
    tz: &TimeZone,
) -> String {
    let when = at.map(|t| time(t, tz)).unwrap_or_default();
    pick(
        lang,
        format!("申请 {order} 已由 {by} 处理（{status}，{when}），无需再操作。"),
        format!("{order} was already decided by {by} ({status}, {when}); nothing to do."),
    )
}

pub fn approval_recorded_waiting(lang: Lang, order: &OrderId, remaining: u32) -> String {
    pick(
        lang,
        format!("已记录你对 {order} 的同意，还需要 {remaining} 位审批人同意。"),
        format!("Your approval of {order} is recorded; {remaining} more needed."),
    )
}

/// The decision of another approver, sent to every approver in text mode.
pub fn decided_notice(
    lang: Lang,
    order: &OrderId,
    by: &str,
    approved: bool,
    reason: &str,
) -> String {
    match (lang, approved) {
        (Lang::ZhCn, true) => format!("申请 {order} 已由 {by} 同意。"),
        (Lang::ZhCn, false) => format!("申请 {order} 已由 {by} 拒绝。原因：{reason}"),
        (Lang::En, true) => format!("{order} was approved by {by}."),
        (Lang::En, false) => format!("{order} was rejected by {by}. Reason: {reason}"),
    }
}

/// Who decided when the decision came from a DingTalk OA approval (approver not named there).
pub fn oa_decider(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "钉钉审批",
        Lang::En => "the DingTalk approval",
    }
}

pub fn system_actor(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "系统",
        Lang::En => "the system",
    }
}

pub fn oa_refused_reason(lang: Lang) -> String {
    pick(
        lang,
        "钉钉审批未通过".into(),
        "refused in the DingTalk approval".into(),
    )
}

pub fn withdrawn_in_oa(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 的钉钉审批已被撤销，申请已关闭。"),
        format!("The DingTalk approval of {order} was withdrawn; the request is closed."),
    )
}

/// `/approve` typed for an order whose approval runs as a DingTalk OA instance.
pub fn decide_in_oa(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 走钉钉 OA 审批，请在钉钉“审批”中处理。"),
        format!("{order} is approved in DingTalk OA; decide it in the DingTalk approval app."),
    )
}

pub fn card_unknown(lang: Lang) -> String {
    pick(
        lang,
        "这张卡片对应的申请已不存在。".into(),
        "The request behind this card no longer exists.".into(),
    )
}

pub fn cancelled(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 已撤回。"),
        format!("Request {order} withdrawn."),
    )
}

pub fn not_pending(lang: Lang, order: &OrderId, status: &str) -> String {
    pick(
        lang,
        format!("申请 {order} 当前状态为“{status}”，不能撤回。"),
        format!("Request {order} is {status}; it can no longer be withdrawn."),
    )
}

pub fn not_your_order(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("你无权查看或操作申请 {order}。"),
        format!("You may not see or change request {order}."),
    )
}
