//! Access once decided: granted (without a read-back), account ready, expiry and its reminder,
//! revocation, renewal, and what failed after a decision.
use crate::chat::text::words::{duration, pick, role, targets, time, Lang};
use crate::domain::command::Role;
use crate::domain::duration::AccessDuration;
use crate::domain::ids::OrderId;
/// Things that can go wrong after a decision, in words a requester understands.
pub use crate::domain::notice::FailureKind as Failure;
use crate::domain::target::Target;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// What was granted and until when.
#[derive(Clone, Debug)]
pub struct GrantView<'a> {
    pub order: &'a OrderId,
    pub targets: &'a [Target],
    /// JumpServer username to log in with.
    pub username: &'a str,
    pub role: Role,
    pub expires_at: Timestamp,
    /// JumpServer web address, when configured.
    pub jms_url: Option<&'a str>,
}

pub fn granted(lang: Lang, g: &GrantView<'_>, approver_name: &str, tz: &TimeZone) -> String {
    let url_zh = g
        .jms_url
        .map(|u| format!("\n登录：{u}"))
        .unwrap_or_default();
    let url_en = g
        .jms_url
        .map(|u| format!("\nLog in: {u}"))
        .unwrap_or_default();
    pick(
        lang,
        format!(
            "✅ {approver_name} 已同意申请 {}，权限已开通。\n主机：{}\n账号：{}（{}）\n到期：{} · {}{url_zh}",
            g.order,
            targets(lang, g.targets),
            g.username,
            role(lang, g.role),
            crate::chat::text::words::until(lang, g.expires_at, tz, g.expires_at),
            time(g.expires_at, tz)
        ),
        format!(
            "✅ {approver_name} approved {}; access is ready.\nHosts: {}\nAccount: {} ({})\nExpires: {} · {}{url_en}",
            g.order,
            targets(lang, g.targets),
            g.username,
            role(lang, g.role),
            crate::chat::text::words::until(lang, g.expires_at, tz, g.expires_at),
            time(g.expires_at, tz)
        ),
    )
}

pub fn account_ready(lang: Lang, username: &str, jms_url: Option<&str>) -> String {
    let url = jms_url.unwrap_or("");
    pick(
        lang,
        format!(
            "JumpServer 账号已就绪：{username}。{}",
            if url.is_empty() {
                String::new()
            } else {
                format!("登录地址：{url}")
            }
        ),
        format!(
            "Your JumpServer account is ready: {username}.{}",
            if url.is_empty() {
                String::new()
            } else {
                format!(" Log in at {url}")
            }
        ),
    )
}

pub fn account_exists(lang: Lang, username: &str) -> String {
    pick(
        lang,
        format!("你已经有 JumpServer 账号：{username}。"),
        format!("You already have a JumpServer account: {username}."),
    )
}

pub fn expiry_reminder(
    lang: Lang,
    order: &OrderId,
    ts: &[Target],
    expires_at: Timestamp,
    left: AccessDuration,
    tz: &TimeZone,
) -> String {
    pick(
        lang,
        format!(
            "⏰ 申请 {order} 的权限将在 {} 后到期（{}）。\n主机：{}\n需要延长请联系管理员续期，或重新申请。",
            duration(lang, left),
            time(expires_at, tz),
            targets(lang, ts)
        ),
        format!(
            "⏰ Access from {order} ends in {} ({}).\nHosts: {}\nAsk an administrator to renew it, or request again.",
            duration(lang, left),
            time(expires_at, tz),
            targets(lang, ts)
        ),
    )
}

pub fn expiry_title(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("权限即将到期 {order}"),
        format!("Access ending soon {order}"),
    )
}

pub fn renew_button(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "一键续期",
        Lang::En => "Renew",
    }
}

pub fn expired(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请 {order} 的权限已到期并收回。"),
        format!("Access from {order} has expired and was removed."),
    )
}

pub fn revoked(lang: Lang, order: &OrderId, by_name: &str) -> String {
    pick(
        lang,
        format!("申请 {order} 的权限已被 {by_name} 提前收回。"),
        format!("Access from {order} was revoked by {by_name}."),
    )
}

pub fn renewed(lang: Lang, order: &OrderId, expires_at: Timestamp, tz: &TimeZone) -> String {
    pick(
        lang,
        format!(
            "申请 {order} 的权限已续期，新的到期时间：{}。",
            time(expires_at, tz)
        ),
        format!(
            "Access from {order} renewed; it now ends {}.",
            time(expires_at, tz)
        ),
    )
}

/// A renewal that would not move the end: the grant already runs to the longest window.
pub fn renew_at_limit(lang: Lang, max: AccessDuration) -> String {
    pick(
        lang,
        format!(
            "已达到该角色的最长时限（从现在起 {}），无法再延长",
            duration(lang, max)
        ),
        format!(
            "it already runs to the longest allowed window ({} from now)",
            duration(lang, max)
        ),
    )
}

pub fn renew_refused(lang: Lang, order: &OrderId, detail: &str) -> String {
    pick(
        lang,
        format!("申请 {order} 不能续期：{detail}"),
        format!("{order} cannot be renewed: {detail}"),
    )
}

pub fn no_window(lang: Lang) -> String {
    pick(
        lang,
        "账号申请没有时间窗口".into(),
        "an account request has no time window".into(),
    )
}

pub fn revoke_done(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("已收回申请 {order} 的权限，正在从 JumpServer 删除授权。"),
        format!("Revoking {order}; the JumpServer permission is being removed."),
    )
}

pub fn not_active(lang: Lang, order: &OrderId, status: &str) -> String {
    pick(
        lang,
        format!("申请 {order} 当前状态为“{status}”，不是生效中的权限。"),
        format!("Request {order} is {status}, not active access."),
    )
}

pub fn left_org_closed(lang: Lang, order: &OrderId) -> String {
    pick(
        lang,
        format!("申请人已离职，申请 {order} 已关闭并收回权限。"),
        format!("The requester left the organisation; {order} was closed and its access removed."),
    )
}

pub fn failure(lang: Lang, order: &OrderId, f: Failure, detail: Option<&str>) -> String {
    let (zh, en) = match f {
        Failure::JumpServerUnavailable => (
            "暂时连不上 JumpServer，正在自动重试，成功后通知你。",
            "JumpServer cannot be reached right now; retrying automatically, I'll tell you when it works.",
        ),
        Failure::UserCreateFailed => (
            "无法为你创建 JumpServer 用户，已通知管理员处理。",
            "Your JumpServer user could not be created; the administrators have been told.",
        ),
        Failure::UserMissing => (
            "你还没有 JumpServer 账号，请先发送“申请账号”或联系管理员。",
            "You have no JumpServer account yet; send /apply account first or ask an administrator.",
        ),
        Failure::HostNotFound => (
            "有主机在 JumpServer 中找不到，请确认地址是否正确。",
            "Some hosts are not in JumpServer; check the addresses.",
        ),
        Failure::GrantFailed => (
            "JumpServer 拒绝了授权，已通知管理员处理。",
            "JumpServer refused the grant; the administrators have been told.",
        ),
        Failure::ApprovalStartFailed => (
            "审批流程发起失败，正在重试。",
            "The approval could not be started; retrying.",
        ),
        Failure::NotifyFailed => (
            "消息发送失败，正在重试。",
            "A message could not be delivered; retrying.",
        ),
        Failure::Internal => (
            "处理时出了问题，已记录并通知管理员。",
            "Something went wrong on our side; it is logged and the administrators were told.",
        ),
    };
    let detail = detail.map(|d| format!("\n({d})")).unwrap_or_default();
    pick(
        lang,
        format!("⚠️ 申请 {order}：{zh}{detail}"),
        format!("⚠️ Request {order}: {en}{detail}"),
    )
}

pub fn admin_failure(lang: Lang, order: &OrderId, requester: &str, detail: &str) -> String {
    pick(
        lang,
        format!("⚠️ 申请 {order}（{requester}）开通失败：{detail}"),
        format!("⚠️ Request {order} ({requester}) failed: {detail}"),
    )
}

pub fn gave_up(lang: Lang, reason: &str) -> String {
    pick(
        lang,
        format!("多次重试后仍失败：{reason}"),
        format!("still failing after retries: {reason}"),
    )
}
