//! The exact JumpServer change a grant will make, for approvers (and the requester): user,
//! node, hosts, logins in words, window, and what would fail or surprise after approval.
use crate::chat::readback;
use crate::chat::text::words::{duration, pick, time, Lang};
use crate::domain::duration::AccessDuration;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The exact change the grant will make in JumpServer, for approvers (and the requester).
#[derive(Clone, Debug)]
pub struct ChangeView<'a> {
    pub username: &'a str,
    pub user_exists: bool,
    pub user_active: bool,
    /// `false` when the user is missing and policy does not create users.
    pub will_create_user: bool,
    pub node: &'a str,
    pub whole_node: bool,
    pub hosts_existing: &'a [String],
    pub hosts_to_create: &'a [String],
    pub accounts: &'a [String],
    pub actions: &'a [String],
    pub duration: Option<AccessDuration>,
    pub already: &'a [(String, Option<Timestamp>)],
    pub unavailable: Option<&'a str>,
    /// The role's label, for the accounts in words (`运维账号 ops`).
    pub role_label: &'a str,
    /// `(username, by_email)`: the existing user the grant goes to instead of `username`.
    pub user_matched: Option<(&'a str, bool)>,
    pub missing_logins: &'a [(String, String)],
    pub permission_name: &'a str,
    pub permission_repair: bool,
    pub name_conflicts: &'a [String],
    pub hosts_renamed: &'a [(String, String)],
    pub ambiguous: &'a [(String, Vec<String>)],
}

pub fn change_preview(lang: Lang, c: &ChangeView<'_>, tz: &TimeZone) -> String {
    let sep = if lang == Lang::ZhCn { "、" } else { ", " };
    let none = pick(lang, "无".into(), "none".into());
    let list = |v: &[String]| {
        if v.is_empty() {
            none.clone()
        } else {
            v.join(sep)
        }
    };
    let mut lines = Vec::new();
    lines.push(pick(
        lang,
        "JumpServer 变更：".into(),
        "JumpServer change:".into(),
    ));
    if let Some(why) = c.unavailable {
        lines.push(pick(
            lang,
            format!("• 暂时无法查询 JumpServer（{why}），以下为计划内容"),
            format!("• JumpServer could not be checked ({why}); this is the plan"),
        ));
    }
    let user = match (c.user_exists, c.user_active, c.will_create_user) {
        (true, true, _) => pick(lang, "已存在".into(), "exists".into()),
        (true, false, _) => pick(
            lang,
            "已存在但已禁用".into(),
            "exists but is disabled".into(),
        ),
        (false, _, true) => pick(lang, "将新建".into(), "will be created".into()),
        (false, _, false) => pick(
            lang,
            "不存在（策略不允许自动创建，授权会失败）".into(),
            "missing (policy does not create users; the grant will fail)".into(),
        ),
    };
    match c.user_matched {
        Some((found, true)) => lines.push(pick(
            lang,
            format!(
                "• 用户：{found}（已存在；邮箱与申请人相同，{} 未使用，授权给 {found}）",
                c.username
            ),
            format!(
                "• User: {found} (exists; same e-mail as the requester, {} is not used; the grant goes to {found})",
                c.username
            ),
        )),
        Some((found, false)) => lines.push(pick(
            lang,
            format!("• 用户：{found}（已存在，与 {} 仅大小写不同）", c.username),
            format!("• User: {found} (exists; {} in another letter case)", c.username),
        )),
        None => lines.push(pick(
            lang,
            format!("• 用户：{}（{user}）", c.username),
            format!("• User: {} ({user})", c.username),
        )),
    }
    if c.whole_node {
        lines.push(pick(
            lang,
            format!("• 节点：{}（整个节点授权）", c.node),
            format!("• Node: {} (the whole node is granted)", c.node),
        ));
    } else {
        lines.push(pick(
            lang,
            format!("• 节点：{}", c.node),
            format!("• Node: {}", c.node),
        ));
        lines.push(pick(
            lang,
            format!("• 已有主机：{}", list(c.hosts_existing)),
            format!("• Existing hosts: {}", list(c.hosts_existing)),
        ));
        lines.push(pick(
            lang,
            format!("• 将新建主机：{}", list(c.hosts_to_create)),
            format!("• Hosts to create: {}", list(c.hosts_to_create)),
        ));
        for (addr, name) in c.hosts_renamed {
            lines.push(pick(
                lang,
                format!("• 名称 {addr} 已被另一台主机占用：新主机将命名为 {name}"),
                format!(
                    "• The name {addr} belongs to another host: the new host will be named {name}"
                ),
            ));
        }
    }
    let label = |_: &str| c.role_label.to_owned();
    let accounts = readback::accounts(lang, &label, c.accounts);
    lines.push(pick(
        lang,
        format!("• 账号：{accounts}；动作：{}", list(c.actions)),
        format!("• Logins: {accounts}; actions: {}", list(c.actions)),
    ));
    for (host, candidates) in c.ambiguous {
        lines.push(pick(
            lang,
            format!(
                "⚠️ {host} 对应多台主机（{}）：请按地址申请",
                candidates.join(sep)
            ),
            format!(
                "⚠️ {host} matches several hosts ({}): ask by address",
                candidates.join(sep)
            ),
        ));
    }
    let mut by_host: Vec<(&str, Vec<&str>)> = Vec::new();
    for (h, u) in c.missing_logins {
        match by_host.iter_mut().find(|(x, _)| *x == h.as_str()) {
            Some((_, us)) => us.push(u),
            None => by_host.push((h, vec![u])),
        }
    }
    for (h, us) in by_host {
        let us = us.join(sep);
        lines.push(pick(
            lang,
            format!("⚠️ {h} 上没有 {us} 账号：此授权在该主机上不会提供可用登录（需管理员先添加该账号）"),
            format!("⚠️ {h} has no {us} account: the grant would give no usable login there (an administrator must add it first)"),
        ));
    }
    if c.permission_repair {
        lines.push(pick(
            lang,
            format!("• 授权 {} 已存在（本单上次未完成），将按以上内容修复", c.permission_name),
            format!("• Permission {} exists from an earlier attempt of this order; it will be made to match the above", c.permission_name),
        ));
    }
    if !c.name_conflicts.is_empty() {
        lines.push(pick(
            lang,
            format!(
                "⚠️ JumpServer 中已有授权 {}（非本机器人创建），不会修改它；本单将使用名称 {}",
                c.name_conflicts.join(sep),
                c.permission_name
            ),
            format!(
                "⚠️ JumpServer already has permission {} (not made by accessbot); it will not be touched, and this order will use the name {}",
                c.name_conflicts.join(sep),
                c.permission_name
            ),
        ));
    }
    if let Some(d) = c.duration {
        lines.push(pick(
            lang,
            format!("• 时间窗口：批准时开始，持续 {}", duration(lang, d)),
            format!("• Window: starts at approval, lasts {}", duration(lang, d)),
        ));
    }
    for (host, until) in c.already {
        let until = until
            .map(|t| time(t, tz))
            .unwrap_or_else(|| pick(lang, "长期".into(), "no end".into()));
        lines.push(pick(
            lang,
            format!("• 注意：申请人已可访问 {host}，至 {until}"),
            format!("• Note: the requester can already reach {host} until {until}"),
        ));
    }
    lines.join("\n")
}
