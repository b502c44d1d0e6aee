//! `/history`: the audit trail of a host, a user or an order, newest first, one page at a time.
use crate::chat::text::words::{pick, role, Lang};
use crate::dingtalk::message::MAX_GROUP_MSG_PARAM_BYTES;
use crate::domain::audit::AuditEvent;
use crate::domain::command::{display_word, CommandKind, Role};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Records on one `/history` page. With each line cut to [`HISTORY_LINE_CHARS`] a full page stays
/// far below DingTalk's message size limit (15 000 bytes, dingtalk.md §3 `msgParam`;
/// [`MAX_GROUP_MSG_PARAM_BYTES`]) even in three-byte Chinese, and pages stay the same size, so
/// page numbers mean the same thing from one ask to the next.
pub const HISTORY_PAGE_ROWS: usize = 20;
/// Longest line of a `/history` page, in characters.
pub const HISTORY_LINE_CHARS: usize = 160;
/// The whole answer is kept under this (header and footer included), a fifth below the limit
/// for the JSON around the text.
pub const HISTORY_MAX_BYTES: usize = MAX_GROUP_MSG_PARAM_BYTES / 5 * 4;
/// Hosts named per line; the rest are counted.
const HOSTS_SHOWN: usize = 3;

/// One record as a `/history` line shows it.
#[derive(Clone, Debug)]
pub struct HistoryRow<'a> {
    pub at: Timestamp,
    pub event: AuditEvent,
    /// Who did it, in words (a name, a userid, or the bot).
    pub who: String,
    pub order: Option<&'a str>,
    pub hosts: &'a [String],
    /// Role key (`ops`, `readonly`).
    pub role: Option<&'a str>,
    pub until: Option<Timestamp>,
    pub detail: &'a str,
}

pub fn event_word(lang: Lang, e: AuditEvent) -> &'static str {
    let (zh, en) = match e {
        AuditEvent::Requested => ("申请", "requested"),
        AuditEvent::Submitted => ("提交审批", "submitted"),
        AuditEvent::Approved => ("批准", "approved"),
        AuditEvent::Rejected => ("拒绝", "rejected"),
        AuditEvent::Cancelled => ("撤回", "cancelled"),
        AuditEvent::TimedOut => ("审批超时", "timed out"),
        AuditEvent::ProvisioningStarted => ("开始开通", "provisioning"),
        AuditEvent::Granted => ("已开通", "granted"),
        AuditEvent::ProvisioningFailed => ("开通失败", "grant failed"),
        AuditEvent::ApprovalFailed => ("发起审批失败", "approval failed"),
        AuditEvent::Revoked => ("撤销", "revoked"),
        AuditEvent::Expired => ("到期", "expired"),
        AuditEvent::Renewed => ("续期", "renewed"),
        AuditEvent::Reminded => ("提醒", "reminded"),
        AuditEvent::JobGaveUp => ("任务放弃", "job gave up"),
        AuditEvent::Note => ("备注", "note"),
        AuditEvent::TrailMigrated => ("审计记录迁移", "trail chained"),
    };
    match lang {
        Lang::ZhCn => zh,
        Lang::En => en,
    }
}

/// The bot itself as the one who did something.
pub fn history_system(lang: Lang) -> String {
    pick(lang, "系统".into(), "the bot".into())
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn short_time(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned(tz.clone()).strftime("%m-%d %H:%M").to_string()
}

fn line(lang: Lang, r: &HistoryRow<'_>, tz: &TimeZone) -> String {
    let mut what: Vec<String> = Vec::new();
    if let Some(o) = r.order {
        what.push(o.to_owned());
    }
    if !r.hosts.is_empty() {
        let sep = if lang == Lang::ZhCn { "、" } else { ", " };
        let shown = r
            .hosts
            .iter()
            .take(HOSTS_SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(sep);
        what.push(match r.hosts.len().saturating_sub(HOSTS_SHOWN) {
            0 => shown,
            more => pick(
                lang,
                format!("{shown} 等 {} 台", r.hosts.len()),
                format!("{shown} +{more}"),
            ),
        });
    }
    if let Some(k) = r.role.and_then(Role::from_word) {
        what.push(role(lang, k).to_owned());
    }
    let with_until = matches!(
        r.event,
        AuditEvent::Approved | AuditEvent::Granted | AuditEvent::Renewed
    );
    if let (true, Some(u)) = (with_until, r.until) {
        let t = short_time(u, tz);
        what.push(pick(lang, format!("至 {t}"), format!("until {t}")));
    }
    let with_detail = r.order.is_none()
        || matches!(
            r.event,
            AuditEvent::Rejected
                | AuditEvent::ProvisioningFailed
                | AuditEvent::ApprovalFailed
                | AuditEvent::JobGaveUp
                | AuditEvent::Note
        );
    if with_detail && !r.detail.is_empty() {
        what.push(cut(r.detail, 60));
    }
    let full = format!(
        "• {} · {} · {} · {}",
        short_time(r.at, tz),
        event_word(lang, r.event),
        r.who,
        what.join(" ")
    );
    cut(&full, HISTORY_LINE_CHARS)
}

fn zone(tz: &TimeZone) -> String {
    tz.iana_name().unwrap_or("UTC").to_owned()
}

/// One page of `/history <subject>`: `rows` newest first, `total` records in all, `page` from 1.
pub fn history(
    lang: Lang,
    subject: &str,
    rows: &[HistoryRow<'_>],
    total: usize,
    page: usize,
    tz: &TimeZone,
) -> String {
    let subject = cut(subject, 64);
    if total == 0 {
        return pick(
            lang,
            format!("没有“{subject}”的操作记录（可以查询主机、用户或单号）。"),
            format!("No audit records for `{subject}` (ask for a host, a user or an order)."),
        );
    }
    let pages = total.div_ceil(HISTORY_PAGE_ROWS);
    if rows.is_empty() {
        return pick(
            lang,
            format!("“{subject}”的操作记录共 {total} 条、{pages} 页，没有第 {page} 页。"),
            format!("`{subject}` has {total} audit records on {pages} page(s); there is no page {page}."),
        );
    }
    let z = zone(tz);
    let head = pick(
        lang,
        format!("“{subject}”的操作记录（共 {total} 条，第 {page}/{pages} 页，最新在前，时间为 {z}）："),
        format!("Audit trail of `{subject}` ({total} records, page {page}/{pages}, newest first, times in {z}):"),
    );
    let shown_before = (page - 1) * HISTORY_PAGE_ROWS;
    let left = total.saturating_sub(shown_before + rows.len());
    let next = if left > 0 {
        let cmd = display_word(CommandKind::History, lang);
        Some(pick(
            lang,
            format!(
                "另有 {left} 条更早的记录未列出，发送“{cmd} {subject} {}”查看下一页。",
                page + 1
            ),
            format!(
                "{left} older records not shown; send `{cmd} {subject} {}` for the next page.",
                page + 1
            ),
        ))
    } else {
        None
    };
    let mut out = head;
    let budget = HISTORY_MAX_BYTES - next.as_ref().map_or(0, |n| n.len() + 1);
    for r in rows {
        let l = line(lang, r, tz);
        // Never reached with the page and line sizes above; kept so no page can outgrow a
        // message whatever those become.
        if out.len() + 1 + l.len() > budget {
            break;
        }
        out.push('\n');
        out.push_str(&l);
    }
    if let Some(n) = next {
        out.push('\n');
        out.push_str(&n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_page_of_long_lines_stays_under_the_message_limit() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap_or(TimeZone::UTC);
        let hosts: Vec<String> = (0..50).map(|i| format!("很长的主机名-{i:03}-")).collect();
        let detail = "原因".repeat(200);
        let rows: Vec<HistoryRow<'_>> = (0..HISTORY_PAGE_ROWS)
            .map(|_| HistoryRow {
                at: Timestamp::UNIX_EPOCH,
                event: AuditEvent::Note,
                who: "张".repeat(100),
                order: Some("R261122-001"),
                hosts: &hosts,
                role: Some("ops"),
                until: None,
                detail: &detail,
            })
            .collect();
        for lang in [Lang::ZhCn, Lang::En] {
            let t = history(lang, &"主".repeat(300), &rows, 10_000, 2, &tz);
            assert!(t.len() <= HISTORY_MAX_BYTES, "{} bytes", t.len());
            assert_eq!(
                t.lines().filter(|l| l.starts_with('•')).count(),
                HISTORY_PAGE_ROWS
            );
            assert!(t.contains("9960"), "{t}");
        }
    }
}
