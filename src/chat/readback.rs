//! What JumpServer grants, in words: the messages after a grant, renewal, revocation or expiry,
//! built only from what was read back (`domain::access`), and the logins as people know them
//! (`运维账号 ops`, never `@SPEC`). Also the administrators' notices about what needs a person.
use crate::chat::text::words::{pick, time, Lang};
use crate::domain::access::{HostAccess, Login, LoginKind, ReadBack, Revocation, RevokedHow};
use crate::domain::ids::OrderId;
use jiff::tz::TimeZone;
use jiff::Timestamp;

fn sep(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "、",
        Lang::En => ", ",
    }
}

/// A permission's account list as words: markers dropped, `@ALL` / `@USER` / `@INPUT` said
/// plainly, plain usernames with the label of the role that grants them (`运维账号 ops`);
/// `label_of` gives that label, empty when no role names the account.
pub fn accounts(lang: Lang, label_of: &dyn Fn(&str) -> String, accounts: &[String]) -> String {
    let words: Vec<String> = accounts
        .iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty() && *a != "@SPEC")
        .map(|a| match a {
            "@ALL" => pick(
                lang,
                "主机上的全部账号".into(),
                "every account on the host".into(),
            ),
            "@USER" => pick(
                lang,
                "与 JumpServer 用户名同名的账号".into(),
                "an account named like your JumpServer user".into(),
            ),
            "@INPUT" => pick(
                lang,
                "连接时手动输入的账号".into(),
                "an account typed in when connecting".into(),
            ),
            u => account_word(lang, &label_of(u), u),
        })
        .collect();
    words.join(sep(lang))
}

fn account_word(lang: Lang, role_label: &str, username: &str) -> String {
    match (lang, role_label.is_empty()) {
        (Lang::ZhCn, _) => format!("{role_label}账号 {username}"),
        (Lang::En, true) => format!("login `{username}`"),
        (Lang::En, false) => format!("{role_label} login `{username}`"),
    }
}

/// One login as read back.
pub fn login(lang: Lang, role_label: &str, l: &Login) -> String {
    match l.kind {
        LoginKind::Account => account_word(lang, role_label, &l.username),
        LoginKind::SameUser => pick(
            lang,
            format!("同名账号 {}", l.username),
            format!("your own name `{}`", l.username),
        ),
        LoginKind::ManualInput => pick(
            lang,
            "连接时手动输入账号".into(),
            "an account typed in when connecting".into(),
        ),
    }
}

/// `web-01 (10.1.2.3)：运维账号 ops，至 …` for a usable host; a warning line for one without
/// the login.
fn host_line(lang: Lang, role_label: &str, h: &HostAccess, tz: &TimeZone) -> String {
    let mut out = Vec::new();
    if !h.logins.is_empty() {
        let logins: Vec<String> = h
            .logins
            .iter()
            .map(|l| login(lang, role_label, l))
            .collect();
        let until = h.logins.iter().filter_map(|l| l.until).max();
        let until = until
            .map(|t| time(t, tz))
            .unwrap_or_else(|| pick(lang, "长期".into(), "no end".into()));
        out.push(pick(
            lang,
            format!("• {}：{}，至 {until}", h.label(), logins.join(sep(lang))),
            format!("• {}: {}, until {until}", h.label(), logins.join(sep(lang))),
        ));
    }
    if !h.missing.is_empty() {
        let missing = h.missing.join(sep(lang));
        out.push(pick(
            lang,
            format!(
                "⚠️ {}：主机上没有账号 {missing}，这个登录目前无法使用（已通知管理员添加）",
                h.label()
            ),
            format!(
                "⚠️ {}: the host has no account {missing}; that login does not work yet (the administrators were told to add it)",
                h.label()
            ),
        ));
    }
    out.join("\n")
}

/// The lines describing what the user reaches, shared by every message below.
fn reach_lines(lang: Lang, role_label: &str, rb: &ReadBack, tz: &TimeZone) -> Vec<String> {
    let mut lines = Vec::new();
    for h in &rb.hosts {
        lines.push(host_line(lang, role_label, h, tz));
    }
    if let Some(n) = &rb.node {
        let until = rb
            .permission
            .as_ref()
            .and_then(|p| p.until)
            .map(|t| time(t, tz))
            .unwrap_or_else(|| pick(lang, "长期".into(), "no end".into()));
        lines.push(pick(
            lang,
            format!("• 系统 {}（目前 {} 台主机），至 {until}", n.path, n.hosts),
            format!("• System {} ({} hosts now), until {until}", n.path, n.hosts),
        ));
    }
    for u in &rb.unreachable {
        lines.push(pick(
            lang,
            format!("⚠️ {u}：JumpServer 显示你无法访问"),
            format!("⚠️ {u}: JumpServer shows no access for you"),
        ));
    }
    if let Some(p) = rb.permission.as_ref().filter(|p| !p.is_valid) {
        lines.push(if p.is_active {
            pick(
                lang,
                format!("⚠️ JumpServer 显示授权 {} 当前不在有效期内。", p.name),
                format!("⚠️ JumpServer shows the permission {} outside its valid window.", p.name),
            )
        } else {
            pick(
                lang,
                format!("⚠️ JumpServer 中授权 {} 已被停用（管理员操作）：目前无法使用。", p.name),
                format!("⚠️ The permission {} is deactivated in JumpServer (by an administrator): it does not work now.", p.name),
            )
        });
    }
    if !rb.user_active {
        lines.push(pick(
            lang,
            format!(
                "⚠️ 你的 JumpServer 账号 {} 已被禁用：管理员启用之前无法登录。",
                rb.username
            ),
            format!(
                "⚠️ Your JumpServer account {} is disabled: nothing works until an administrator enables it.",
                rb.username
            ),
        ));
    }
    lines
}

/// The message after a grant, from the read-back. "Ready" only when something is usable.
pub struct GrantedView<'a> {
    pub order: &'a OrderId,
    pub approver_name: &'a str,
    pub role_label: &'a str,
    pub readback: &'a ReadBack,
    pub jms_url: Option<&'a str>,
    /// The window's end in words (`至 12月5日（周五）18:00`), for host grants.
    pub ends: Option<String>,
}

pub fn granted(lang: Lang, g: &GrantedView<'_>, tz: &TimeZone) -> String {
    let rb = g.readback;
    let head = if rb.usable() {
        pick(
            lang,
            format!(
                "✅ {} 已同意申请 {}，权限已开通。JumpServer 现在为用户 {} 授予：",
                g.approver_name, g.order, rb.username
            ),
            format!(
                "✅ {} approved {}; access is ready. JumpServer now grants user {}:",
                g.approver_name, g.order, rb.username
            ),
        )
    } else {
        pick(
            lang,
            format!(
                "⚠️ {} 已同意申请 {}，授权已写入 JumpServer，但目前没有可用的登录（用户 {}）：",
                g.approver_name, g.order, rb.username
            ),
            format!(
                "⚠️ {} approved {}; the grant is in JumpServer but gives no usable login yet (user {}):",
                g.approver_name, g.order, rb.username
            ),
        )
    };
    let mut lines = vec![head];
    if let Some(e) = &g.ends {
        lines.push(pick(lang, format!("有效期：{e}"), format!("Valid {e}")));
    }
    lines.extend(reach_lines(lang, g.role_label, rb, tz));
    if rb.usable() {
        if let Some(u) = g.jms_url {
            lines.push(pick(lang, format!("登录：{u}"), format!("Log in: {u}")));
        }
    }
    lines.join("\n")
}

/// How a revocation went, for the requester (revoke, give-back, expiry share it).
fn revocation_lines(
    lang: Lang,
    role_label: &str,
    r: &Revocation,
    after: Option<&ReadBack>,
    tz: &TimeZone,
) -> Vec<String> {
    let mut lines = Vec::new();
    match r.how {
        RevokedHow::Deactivated => lines.push(pick(
            lang,
            "JumpServer 中的授权已停用。".into(),
            "The JumpServer permission is deactivated.".into(),
        )),
        RevokedHow::Deleted => lines.push(pick(
            lang,
            "JumpServer 中的授权已删除。".into(),
            "The JumpServer permission is deleted.".into(),
        )),
        RevokedHow::AlreadyGone => lines.push(pick(
            lang,
            "JumpServer 中已没有这条授权。".into(),
            "JumpServer no longer has that permission.".into(),
        )),
        RevokedHow::NotOurs => lines.push(pick(
            lang,
            "⚠️ JumpServer 中同名授权不带本机器人的标记，未做修改；已通知管理员处理。".into(),
            "⚠️ The JumpServer permission of that name lacks accessbot's marker and was not changed; the administrators were told.".into(),
        )),
    }
    if r.sessions_checked {
        lines.push(if r.sessions_ended > 0 {
            pick(
                lang,
                format!("已要求结束 {} 个在线会话。", r.sessions_ended),
                format!("{} live session(s) were asked to end.", r.sessions_ended),
            )
        } else {
            pick(
                lang,
                "没有需要结束的在线会话。".into(),
                "There were no live sessions to end.".into(),
            )
        });
    }
    if let Some(rb) = after {
        let still: Vec<&HostAccess> = rb.hosts.iter().filter(|h| !h.logins.is_empty()).collect();
        if !still.is_empty() {
            lines.push(pick(
                lang,
                "你仍可通过其它授权访问：".into(),
                "You can still reach these through other grants:".into(),
            ));
            for h in still {
                lines.push(host_line(lang, role_label, h, tz));
            }
        }
    }
    lines
}

pub fn revoked(
    lang: Lang,
    order: &OrderId,
    by_name: &str,
    role_label: &str,
    r: Option<&Revocation>,
    after: Option<&ReadBack>,
    tz: &TimeZone,
) -> String {
    let head = pick(
        lang,
        format!("申请 {order} 的权限已被 {by_name} 提前收回。"),
        format!("Access from {order} was revoked by {by_name}."),
    );
    ended(lang, head, role_label, r, after, tz)
}

pub fn expired(
    lang: Lang,
    order: &OrderId,
    role_label: &str,
    r: Option<&Revocation>,
    after: Option<&ReadBack>,
    tz: &TimeZone,
) -> String {
    let head = pick(
        lang,
        format!("申请 {order} 的权限已到期。"),
        format!("Access from {order} has expired."),
    );
    ended(lang, head, role_label, r, after, tz)
}

/// The end of a grant: the head line, then how JumpServer ended it (when the job has run).
fn ended(
    lang: Lang,
    head: String,
    role_label: &str,
    r: Option<&Revocation>,
    after: Option<&ReadBack>,
    tz: &TimeZone,
) -> String {
    let mut lines = vec![head];
    if let Some(r) = r {
        lines.extend(revocation_lines(lang, role_label, r, after, tz));
    }
    lines.join("\n")
}

/// A renewal: the old and new end, then what JumpServer now grants.
pub struct RenewedView<'a> {
    pub order: &'a OrderId,
    pub old_end: Option<Timestamp>,
    pub new_end: Timestamp,
    /// The requested extension was cut to the role's maximum counted from now.
    pub capped: bool,
    pub role_label: &'a str,
    pub readback: Option<&'a ReadBack>,
}

pub fn renewed(lang: Lang, v: &RenewedView<'_>, tz: &TimeZone) -> String {
    let old = v.old_end.map(|t| time(t, tz)).unwrap_or_else(|| "-".into());
    let mut lines = vec![pick(
        lang,
        format!(
            "申请 {} 的权限已续期：{old} → {}。",
            v.order,
            time(v.new_end, tz)
        ),
        format!(
            "Access from {} renewed: {old} → {}.",
            v.order,
            time(v.new_end, tz)
        ),
    )];
    if v.capped {
        lines.push(pick(
            lang,
            "（已按该角色的最长时限截止。）".into(),
            "(Cut to the role's longest allowed window.)".into(),
        ));
    }
    if let Some(rb) = v.readback {
        lines.push(pick(
            lang,
            "JumpServer 现在显示：".into(),
            "JumpServer now shows:".into(),
        ));
        lines.extend(reach_lines(lang, v.role_label, rb, tz));
    }
    lines.join("\n")
}

/// To the approvers: a grant they approved was extended.
pub fn renewed_for_approver(
    lang: Lang,
    order: &OrderId,
    requester: &str,
    old_end: Option<Timestamp>,
    new_end: Timestamp,
    tz: &TimeZone,
) -> String {
    let old = old_end.map(|t| time(t, tz)).unwrap_or_else(|| "-".into());
    pick(
        lang,
        format!(
            "{requester} 续期了你批准的申请 {order}：到期 {old} → {}。",
            time(new_end, tz)
        ),
        format!(
            "{requester} renewed {order}, which you approved: ends {old} → {}.",
            time(new_end, tz)
        ),
    )
}

/// To the admins: names held by permissions without our marker were skipped.
pub fn admin_name_conflicts(lang: Lang, order: &OrderId, skipped: &[String], used: &str) -> String {
    pick(
        lang,
        format!(
            "⚠️ 申请 {order}：JumpServer 中已有授权 {} 但不带本机器人的标记（可能来自其它安装或人工创建），未做任何修改；本单改用名称 {used}。请确认这些授权的归属。",
            skipped.join("、")
        ),
        format!(
            "⚠️ Order {order}: JumpServer already holds permission(s) {} without accessbot's marker (another installation, or made by hand); they were not changed, and this order used the name {used}. Please check who owns them.",
            skipped.join(", ")
        ),
    )
}

/// To the admins: granted logins that do not exist on hosts.
pub fn admin_missing_logins(
    lang: Lang,
    order: &OrderId,
    requester: &str,
    pairs: &[(String, String)],
    refused: bool,
) -> String {
    let list: Vec<String> = pairs
        .iter()
        .map(|(h, u)| {
            pick(
                lang,
                format!("{h} 上的账号 {u}"),
                format!("account {u} on {h}"),
            )
        })
        .collect();
    let what = list.join(sep(lang));
    if refused {
        pick(
            lang,
            format!("⚠️ {requester} 的申请 {order} 已被拒绝受理：缺少 {what}。添加这些账号后申请人可重新申请。"),
            format!("⚠️ {requester}'s request {order} was not taken: missing {what}. Once the accounts exist they can ask again."),
        )
    } else {
        pick(
            lang,
            format!("⚠️ 申请 {order}（{requester}）：缺少 {what}，这些登录目前无法使用。请在 JumpServer 中为这些主机添加账号。"),
            format!("⚠️ Order {order} ({requester}): missing {what}; those logins do not work yet. Please add the accounts to the hosts in JumpServer."),
        )
    }
}

/// To the admins: a revoke found a permission that is not provably ours.
pub fn admin_revoke_not_ours(lang: Lang, order: &OrderId, name: &str) -> String {
    pick(
        lang,
        format!("⚠️ 申请 {order}：JumpServer 中的授权 {name} 不带本机器人的标记，撤销时未做修改。请人工确认并处理这条授权。"),
        format!("⚠️ Order {order}: the JumpServer permission {name} lacks accessbot's marker and was not changed by the revoke. Please check and handle it by hand."),
    )
}

/// To the admins: a revoke or expiry could not be done in JumpServer and was given up.
pub fn admin_revoke_failed(
    lang: Lang,
    order: &OrderId,
    name: &str,
    until: Option<Timestamp>,
    detail: &str,
    tz: &TimeZone,
) -> String {
    let until = until.map(|t| time(t, tz)).unwrap_or_else(|| "-".into());
    pick(
        lang,
        format!("❌ 申请 {order}：无法在 JumpServer 中收回授权 {name}（{detail}）。它在 {until} 之前仍然有效，请在 JumpServer 中手工停用。"),
        format!("❌ Order {order}: could not end the JumpServer permission {name} ({detail}). It stays valid until {until}; please deactivate it in JumpServer by hand."),
    )
}

/// A renewal that could not be made in JumpServer: the access ends at the old end.
pub fn renew_failed(
    lang: Lang,
    order: &OrderId,
    still_until: Option<Timestamp>,
    detail: &str,
    tz: &TimeZone,
) -> String {
    let until = still_until
        .map(|t| time(t, tz))
        .unwrap_or_else(|| "-".into());
    pick(
        lang,
        format!("❌ 申请 {order} 的续期未能在 JumpServer 中生效（{detail}）。JumpServer 中的到期时间仍是 {until}；已通知管理员。"),
        format!("❌ The renewal of {order} could not be made in JumpServer ({detail}). JumpServer still ends it at {until}; the administrators were told."),
    )
}
