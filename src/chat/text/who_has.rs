//! `/who-has`: who reaches a host, what a user reaches, from the index or asked live, and the
//! bot's own orders for it.
use crate::chat::text::lists::{page, Paging};
use crate::chat::text::status::{status_line, StatusView};
use crate::chat::text::words::{pick, time, Lang};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Answer to `/who-has <subject>`.
pub fn who_has(lang: Lang, subject: &str, rows: &[StatusView<'_>], tz: &TimeZone) -> String {
    if rows.is_empty() {
        return pick(
            lang,
            format!("“{subject}”目前没有通过本机器人授予的有效权限。"),
            format!("Nobody has access to `{subject}` through this bot right now."),
        );
    }
    let head = pick(
        lang,
        format!("“{subject}”的有效权限："),
        format!("Active access for `{subject}`:"),
    );
    let lines: Vec<String> = rows
        .iter()
        .map(|v| format!("• {} · {}", v.holder, status_line(lang, v, tz)))
        .collect();
    format!("{head}\n{}", lines.join("\n"))
}

/// A user's display, marked when they cannot connect now (disabled or expired in JumpServer).
pub fn user_marked(lang: Lang, who: &str, can_connect: bool) -> String {
    if can_connect {
        who.to_owned()
    } else {
        pick(
            lang,
            format!("{who}（已禁用）"),
            format!("{who} (disabled)"),
        )
    }
}

/// `/who-has <user>` for a user who cannot connect now.
pub fn who_has_user_disabled(lang: Lang, username: &str) -> String {
    pick(
        lang,
        format!("JumpServer 用户 {username} 已被禁用或已过期，目前无法连接任何主机。加上“全部”可查看其授权。"),
        format!("JumpServer user {username} is disabled or expired and cannot connect anywhere now. Add `all` to see their grants."),
    )
}

/// Rows left out of `/who-has` because those users cannot connect now.
pub fn who_has_hidden(lang: Lang, n: usize) -> String {
    pick(
        lang,
        format!("另有 {n} 条属于已禁用的用户，未列出（加上“全部”查看）。"),
        format!("{n} more belong to disabled users and are not shown (add `all` to see them)."),
    )
}

/// One row of a live `/who-has` answer (straight from JumpServer).
#[derive(Clone, Debug)]
pub struct LiveAccess<'a> {
    pub who: &'a str,
    pub what: &'a str,
    /// The logins in words (`运维账号 ops`), never raw markers.
    pub accounts: String,
    pub until: Option<Timestamp>,
}

pub fn who_has_live(
    lang: Lang,
    subject: &str,
    rows: &[LiveAccess<'_>],
    tz: &TimeZone,
    paging: &Paging<'_>,
) -> String {
    if rows.is_empty() {
        return pick(
            lang,
            format!("JumpServer 中“{subject}”目前没有有效的授权。"),
            format!("JumpServer shows no valid access for `{subject}` right now."),
        );
    }
    let head = pick(
        lang,
        format!("JumpServer 中“{subject}”的有效授权："),
        format!("Valid access for `{subject}` in JumpServer:"),
    );
    page(lang, &head, &access_lines(lang, rows, tz), paging)
}

fn access_lines(lang: Lang, rows: &[LiveAccess<'_>], tz: &TimeZone) -> Vec<String> {
    rows.iter()
        .map(|r| {
            let mut parts = vec![r.who.to_string(), r.what.to_string()];
            if !r.accounts.is_empty() {
                parts.push(r.accounts.clone());
            }
            if let Some(t) = r.until {
                let t = time(t, tz);
                parts.push(pick(lang, format!("至 {t}"), format!("until {t}")));
            }
            format!("• {}", parts.join(" · "))
        })
        .collect()
}

/// `/who-has` answered from the local index (`as_of` = when it was synced).
pub fn who_has_indexed(
    lang: Lang,
    subject: &str,
    rows: &[LiveAccess<'_>],
    as_of: Timestamp,
    tz: &TimeZone,
    paging: &Paging<'_>,
) -> String {
    let at = time(as_of, tz);
    if rows.is_empty() {
        return pick(
            lang,
            format!("截至 {at}（上次同步），“{subject}”没有有效的授权。"),
            format!("As of {at} (last sync), nobody has valid access for `{subject}`."),
        );
    }
    let head = pick(
        lang,
        format!("截至 {at}（上次同步），“{subject}”的有效授权："),
        format!("Valid access for `{subject}` as of {at} (last sync):"),
    );
    page(lang, &head, &access_lines(lang, rows, tz), paging)
}

/// Hosts of one grant: the first few, then how many more.
pub fn hosts_summary(lang: Lang, shown: &[String], total: usize) -> String {
    let sep = if lang == Lang::ZhCn { "、" } else { ", " };
    let list = shown.join(sep);
    match total.saturating_sub(shown.len()) {
        0 => list,
        more => pick(
            lang,
            format!("{list} 等共 {total} 台（另 {more} 台未列出）"),
            format!("{list} and {more} more ({total} hosts)"),
        ),
    }
}

/// The index is synced but knows no user or host by that name.
pub fn who_has_unknown(lang: Lang, subject: &str, as_of: Timestamp, tz: &TimeZone) -> String {
    let at = time(as_of, tz);
    pick(
        lang,
        format!("截至 {at}（上次同步），JumpServer 中没有名为“{subject}”的用户或主机。"),
        format!("As of {at} (last sync), JumpServer has no user or host named `{subject}`."),
    )
}

/// The bot's own active orders for a host, appended to `/who-has <host>`.
pub fn who_has_bot_orders(lang: Lang, rows: &[StatusView<'_>], tz: &TimeZone) -> String {
    if rows.is_empty() {
        return pick(
            lang,
            "本机器人没有为它开通中的申请。".into(),
            "No active request through this bot.".into(),
        );
    }
    let head = pick(
        lang,
        "本机器人开通的有效申请：".into(),
        "Active requests through this bot:".into(),
    );
    let lines: Vec<String> = rows
        .iter()
        .map(|v| format!("• {} · {}", v.holder, status_line(lang, v, tz)))
        .collect();
    format!("{head}\n{}", lines.join("\n"))
}

pub fn who_has_failed(lang: Lang, detail: &str) -> String {
    pick(
        lang,
        format!("查询 JumpServer 失败：{detail}"),
        format!("Could not ask JumpServer: {detail}"),
    )
}
