//! Where orders stand: the status label of each `Status`, one line per order, `/my` and
//! `/status`.
use crate::chat::text::words::{pick, role, targets, time, Lang};
use crate::domain::command::Role;
use crate::domain::ids::OrderId;
use crate::domain::order::Status;
use crate::domain::target::Target;
use jiff::tz::TimeZone;
use jiff::Timestamp;

pub fn status_label(lang: Lang, k: Status) -> &'static str {
    match (lang, k) {
        (Lang::ZhCn, Status::PendingApproval) => "待审批",
        (Lang::ZhCn, Status::Approved) => "已同意",
        (Lang::ZhCn, Status::Provisioning) => "开通中",
        (Lang::ZhCn, Status::Active) => "生效中",
        (Lang::ZhCn, Status::Expired) => "已到期",
        (Lang::ZhCn, Status::Revoked) => "已收回",
        (Lang::ZhCn, Status::Rejected) => "已拒绝",
        (Lang::ZhCn, Status::Cancelled) => "已撤回",
        (Lang::ZhCn, Status::Retrying) => "开通失败，重试中",
        (Lang::ZhCn, Status::Failed) => "开通失败",
        (Lang::ZhCn, Status::ApprovalFailed) => "审批发起失败",
        (Lang::En, Status::PendingApproval) => "waiting for approval",
        (Lang::En, Status::Approved) => "approved",
        (Lang::En, Status::Provisioning) => "being set up",
        (Lang::En, Status::Active) => "active",
        (Lang::En, Status::Expired) => "expired",
        (Lang::En, Status::Revoked) => "revoked",
        (Lang::En, Status::Rejected) => "rejected",
        (Lang::En, Status::Cancelled) => "withdrawn",
        (Lang::En, Status::Retrying) => "setup failed, retrying",
        (Lang::En, Status::Failed) => "failed",
        (Lang::En, Status::ApprovalFailed) => "approval could not start",
    }
}

/// One order in `/status`, `/my` and `/who-has` answers.
#[derive(Clone, Debug)]
pub struct StatusView<'a> {
    pub order: &'a OrderId,
    pub status: Status,
    pub targets: &'a [Target],
    pub role: Role,
    /// Who holds or asked for the access (display name; used by `/who-has`).
    pub holder: &'a str,
    /// End of access for approved/active orders.
    pub expires_at: Option<Timestamp>,
}

/// `R261122-007 · 生效中 · 10.1.2.3 · 运维 · 到期 2026-11-25 10:00 (Asia/Shanghai)`.
pub fn status_line(lang: Lang, v: &StatusView<'_>, tz: &TimeZone) -> String {
    let mut parts = vec![
        v.order.to_string(),
        status_label(lang, v.status).to_string(),
        targets(lang, v.targets),
        role(lang, v.role).to_string(),
    ];
    if let Some(t) = v.expires_at {
        parts.push(pick(
            lang,
            format!("到期 {}", time(t, tz)),
            format!("until {}", time(t, tz)),
        ));
    }
    parts.join(" · ")
}

/// Answer to `/my`.
pub fn my_orders(lang: Lang, orders: &[StatusView<'_>], tz: &TimeZone) -> String {
    if orders.is_empty() {
        return nothing_active(lang);
    }
    let head = pick(lang, "你的申请：".into(), "Your requests:".into());
    let lines: Vec<String> = orders
        .iter()
        .map(|v| format!("• {}", status_line(lang, v, tz)))
        .collect();
    format!("{head}\n{}", lines.join("\n"))
}

/// Answer to `/my` from already rendered status lines.
pub fn my_lines(lang: Lang, lines: &[String]) -> String {
    if lines.is_empty() {
        return nothing_active(lang);
    }
    let head = pick(lang, "你的申请：".into(), "Your requests:".into());
    let body: Vec<String> = lines.iter().map(|l| format!("• {l}")).collect();
    format!("{head}\n{}", body.join("\n"))
}

pub fn nothing_active(lang: Lang) -> String {
    pick(
        lang,
        "你目前没有申请或有效权限。".into(),
        "You have no requests or active access.".into(),
    )
}

/// `/status` details beyond the status line.
pub fn status_detail(
    lang: Lang,
    line: &str,
    requester: &str,
    approvers: &[String],
    decided_by: Option<&str>,
    note: Option<&str>,
) -> String {
    let sep = if lang == Lang::ZhCn { "、" } else { ", " };
    let mut out = vec![
        line.to_string(),
        pick(
            lang,
            format!("申请人：{requester}"),
            format!("Requester: {requester}"),
        ),
        pick(
            lang,
            format!("审批人：{}", approvers.join(sep)),
            format!("Approvers: {}", approvers.join(sep)),
        ),
    ];
    if let Some(d) = decided_by {
        out.push(pick(
            lang,
            format!("处理人：{d}"),
            format!("Decided by: {d}"),
        ));
    }
    if let Some(n) = note {
        out.push(n.to_string());
    }
    out.join("\n")
}

pub fn account_order_line(lang: Lang, order: &OrderId, status: &str, username: &str) -> String {
    pick(
        lang,
        format!("{order} · {status} · JumpServer 账号 {username}"),
        format!("{order} · {status} · JumpServer account {username}"),
    )
}

pub fn order_not_found(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("找不到单号 {order}。发送“我的权限”查看你的申请。"),
        format!("No order {order}. Send /my to list yours."),
    )
}
