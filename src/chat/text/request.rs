//! A request as the requester and the approvers read it, and the answers to asking: received,
//! already open, over the limit, refused before approval.
use crate::chat::text::words::{duration, minutes, pick, role, targets, time, Lang};
use crate::domain::command::Role;
use crate::domain::duration::AccessDuration;
use crate::domain::ids::OrderId;
use crate::domain::target::Target;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// What a request is, as shown to the requester and the approvers.
#[derive(Clone, Debug)]
pub struct RequestView<'a> {
    pub order: &'a OrderId,
    pub requester_name: &'a str,
    /// JumpServer username the grant goes to (shown to approvers, per design).
    pub username: &'a str,
    pub targets: &'a [Target],
    pub role: Role,
    pub duration: AccessDuration,
    /// When it ends, in words (`至 12月5日（周五）18:00`, or "from approval").
    pub window: String,
    pub reason: Option<&'a str>,
}

/// A window that opens at approval (its end is not known before): `批准后起算`.
pub fn from_approval(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "批准后起算",
        Lang::En => "from approval",
    }
}

fn request_lines(lang: Lang, r: &RequestView<'_>) -> String {
    let reason = r.reason.unwrap_or("-");
    pick(
        lang,
        format!(
            "单号：{}\n申请人：{}（JumpServer 用户 {}）\n主机：{}\n权限：{}\n时长：{}（{}）\n原因：{reason}",
            r.order,
            r.requester_name,
            r.username,
            targets(lang, r.targets),
            role(lang, r.role),
            duration(lang, r.duration),
            r.window
        ),
        format!(
            "Order: {}\nRequester: {} (JumpServer user {})\nHosts: {}\nAccess: {}\nFor: {} ({})\nReason: {reason}",
            r.order,
            r.requester_name,
            r.username,
            targets(lang, r.targets),
            role(lang, r.role),
            duration(lang, r.duration),
            r.window
        ),
    )
}

pub fn request_submitted(lang: Lang, r: &RequestView<'_>, approver_names: &[&str]) -> String {
    let who = approver_names.join(if lang == Lang::ZhCn { "、" } else { ", " });
    pick(
        lang,
        format!(
            "申请已提交，等待 {who} 审批。\n{}\n查询进度：状态 {}",
            request_lines(lang, r),
            r.order
        ),
        format!(
            "Request submitted; waiting for {who} to approve.\n{}\nTrack it: /status {}",
            request_lines(lang, r),
            r.order
        ),
    )
}

/// Text for approvers (also the fallback when a card cannot be delivered).
pub fn approval_request(lang: Lang, r: &RequestView<'_>) -> String {
    pick(
        lang,
        format!(
            "{} 申请主机访问权限，请审批：\n{}\n同意：同意 {}\n拒绝：拒绝 {} <原因>",
            r.requester_name,
            request_lines(lang, r),
            r.order,
            r.order
        ),
        format!(
            "{} asks for host access:\n{}\nApprove: /approve {}\nReject: /reject {} <reason>",
            r.requester_name,
            request_lines(lang, r),
            r.order,
            r.order
        ),
    )
}

pub fn account_request_view(
    lang: Lang,
    order: &OrderId,
    requester: &str,
    username: &str,
) -> String {
    pick(
        lang,
        format!("{requester} 申请 JumpServer 账号 {username}。\n单号：{order}\n同意：同意 {order}\n拒绝：拒绝 {order} <原因>"),
        format!("{requester} asks for the JumpServer account {username}.\nOrder: {order}\nApprove: /approve {order}\nReject: /reject {order} <reason>"),
    )
}

pub fn account_submitted(
    lang: Lang,
    order: &OrderId,
    username: &str,
    approvers: &[&str],
) -> String {
    pick(
        lang,
        format!(
            "账号申请 {order} 已提交（JumpServer 用户 {username}），等待 {} 审批。",
            approvers.join("、")
        ),
        format!(
            "Account request {order} submitted (JumpServer user {username}); waiting for {}.",
            approvers.join(", ")
        ),
    )
}

pub fn request_received(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("收到，申请单号 {order}，正在核对 JumpServer 信息，稍后告诉你审批人。"),
        format!("Got it: request {order}. Checking JumpServer now; I'll tell you who approves it."),
    )
}

/// `/apply for <user> …` taken: the order is the other person's.
pub fn request_received_for(lang: Lang, order: &OrderId, for_whom: &str) -> String {
    pick(
        lang,
        format!("收到，已为 {for_whom} 提交申请，单号 {order}。审批结果会同时告诉你和 {for_whom}。"),
        format!("Got it: request {order} for {for_whom}. You and {for_whom} will both hear the outcome."),
    )
}

/// `/apply for <user> …` from someone who is neither an admin nor a team lead.
pub fn may_not_file_for_others(lang: Lang) -> String {
    pick(
        lang,
        "只有管理员和团队负责人（policy.team_leads）可以替他人申请；请让本人发送申请。".into(),
        "Only admins and team leads (policy.team_leads) may ask on someone else's behalf; ask them to send the request themselves.".into(),
    )
}

pub fn account_request_done(lang: Lang, order: &OrderId) -> String {
    request_received(lang, order)
}

/// The requester asked again for what one of their open orders already asks for; nothing new
/// was created. `waiting_for`: the approvers' names while the order awaits a decision.
pub fn same_request_open(
    lang: Lang,
    order: &OrderId,
    status: &str,
    waiting_for: Option<&[String]>,
) -> String {
    match waiting_for {
        Some(names) => {
            let who = names.join(if lang == Lang::ZhCn { "、" } else { ", " });
            pick(
                lang,
                format!(
                    "你已有相同的申请 {order}，正在等待 {who} 审批，这次没有重复提交。\n查询进度：状态 {order}；要改申请内容，先撤回：取消 {order}"
                ),
                format!(
                    "You already have the same request open: {order}, waiting for {who} to approve; it was not submitted again.\nTrack it: /status {order}; to change it, withdraw it first: /cancel {order}"
                ),
            )
        }
        None => pick(
            lang,
            format!("你已有相同的申请 {order}（{status}），这次没有重复提交。\n查询进度：状态 {order}"),
            format!(
                "You already have the same request: {order} ({status}); it was not submitted again.\nTrack it: /status {order}"
            ),
        ),
    }
}

/// The requester reached the per-user limit of new requests; `retry_at` is when one more fits.
pub fn too_many_requests(
    lang: Lang,
    max: u32,
    window_minutes: u64,
    retry_at: Timestamp,
    tz: &TimeZone,
) -> String {
    let window = minutes(lang, window_minutes);
    let at = time(retry_at, tz);
    let requests = if max == 1 { "request" } else { "requests" };
    pick(
        lang,
        format!(
            "你在 {window}内已提交 {max} 个申请，达到上限，这次没有提交。请在 {at} 之后再试；已有的申请可用“我的权限”查看。"
        ),
        format!(
            "You have made {max} {requests} within {window}, the most allowed; this one was not submitted. Try again after {at}; /my lists the ones you have."
        ),
    )
}

/// No approver is left for a request (everyone who could approve is the requester).
pub fn no_approvers(lang: Lang) -> String {
    pick(
        lang,
        "没有可以审批这个申请的人（审批人不能是你自己），请联系管理员配置审批人。".into(),
        "Nobody can approve this request (approvers cannot be yourself); ask an administrator to configure approvers.".into(),
    )
}

/// A request mixing a whole system with other systems or single hosts.
pub fn one_scope_per_request(lang: Lang) -> String {
    pick(
        lang,
        "一个申请只能是一个系统，或者若干台主机。请把系统和主机分开申请。".into(),
        "One request covers one system or some hosts, not both; please send them separately."
            .into(),
    )
}

/// A host name that matches several JumpServer hosts (names differing only in case).
pub fn ambiguous_host(lang: Lang, name: &str, candidates: &[String]) -> String {
    pick(
        lang,
        format!(
            "{name} 对应 JumpServer 中的多台主机（{}），无法确定是哪一台；请按地址重新申请。",
            candidates.join("、")
        ),
        format!(
            "{name} matches several JumpServer hosts ({}); ask again by address.",
            candidates.join(", ")
        ),
    )
}

/// `missing_login = "refuse"`: hosts without the role's login.
pub fn missing_logins_refused(lang: Lang, pairs: &[(String, String)]) -> String {
    let zh: Vec<String> = pairs
        .iter()
        .map(|(h, u)| format!("{h} 上没有账号 {u}"))
        .collect();
    let en: Vec<String> = pairs
        .iter()
        .map(|(h, u)| format!("{h} has no account {u}"))
        .collect();
    pick(
        lang,
        format!(
            "{}，授权后无法登录。已通知管理员添加账号，添加后请重新申请。",
            zh.join("；")
        ),
        format!(
            "{}: the grant would give no usable login. The administrators were told to add the accounts; ask again once they exist.",
            en.join("; ")
        ),
    )
}

/// A request closed before approval, with what stopped it.
pub fn request_not_taken(lang: Lang, order: &OrderId, detail: &str) -> String {
    pick(
        lang,
        format!("⚠️ 申请 {order} 无法办理：{detail}"),
        format!("⚠️ Request {order} cannot proceed: {detail}"),
    )
}

pub fn identity_failed(lang: Lang, order: &OrderId, detail: &str) -> String {
    pick(
        lang,
        format!("⚠️ 申请 {order} 无法办理：{detail}\n请联系管理员在 [identity] 中配置你的 JumpServer 用户名。"),
        format!("⚠️ Request {order} cannot proceed: {detail}\nAsk an administrator to map your JumpServer username in [identity]."),
    )
}

pub fn not_in_directory(lang: Lang, detail: &str) -> String {
    pick(
        lang,
        format!("在钉钉通讯录中查不到你（{detail}）"),
        format!("you are not found in the DingTalk directory ({detail})"),
    )
}

pub fn no_email_for_user(lang: Lang) -> String {
    pick(
        lang,
        "钉钉资料中没有邮箱，无法创建 JumpServer 用户".into(),
        "no e-mail in the DingTalk profile to create the user with".into(),
    )
}

/// What an account request shows where a host request shows hosts.
pub fn account_target(lang: Lang, username: &str) -> String {
    pick(
        lang,
        format!("JumpServer 账号 {username}"),
        format!("JumpServer account {username}"),
    )
}

pub fn approval_title(lang: Lang, requester: &str, order: &OrderId) -> String {
    pick(
        lang,
        format!("{requester} 的权限申请 {order}"),
        format!("Access request {order} from {requester}"),
    )
}

pub fn approve_button(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "同意",
        Lang::En => "Approve",
    }
}

pub fn reject_button(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "拒绝（需填原因）",
        Lang::En => "Reject (add a reason)",
    }
}

pub fn approval_reminder(
    lang: Lang,
    order: &OrderId,
    requester_name: &str,
    waiting: AccessDuration,
) -> String {
    pick(
        lang,
        format!(
            "提醒：{requester_name} 的申请 {order} 已等待 {}，请尽快处理。",
            duration(lang, waiting)
        ),
        format!(
            "Reminder: {requester_name}'s request {order} has been waiting {}.",
            duration(lang, waiting)
        ),
    )
}

pub fn approval_timed_out(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 长时间无人审批，已自动关闭。如仍需要，请重新申请。"),
        format!(
            "Nobody decided on {order} in time, so it was closed. Ask again if you still need it."
        ),
    )
}
