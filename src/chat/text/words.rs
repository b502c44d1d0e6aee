//! The words every message is made of: the language switch, durations, moments in the
//! configured zone, roles and targets.
pub use crate::domain::command::Lang;
use crate::domain::command::Role;
use crate::domain::duration::AccessDuration;
use crate::domain::target::Target;
use jiff::tz::TimeZone;
use jiff::Timestamp;

pub(crate) fn pick(lang: Lang, zh: String, en: String) -> String {
    match lang {
        Lang::ZhCn => zh,
        Lang::En => en,
    }
}

/// `3天4小时` / `3 days 4 hours`.
pub fn duration(lang: Lang, d: AccessDuration) -> String {
    let p = d.parts();
    let mut zh = String::new();
    let mut en: Vec<String> = Vec::new();
    for (n, z, e) in [
        (p.weeks, "周", "week"),
        (p.days, "天", "day"),
        (p.hours, "小时", "hour"),
        (p.minutes, "分钟", "minute"),
    ] {
        if n > 0 {
            zh.push_str(&format!("{n}{z}"));
            en.push(format!("{n} {e}{}", if n == 1 { "" } else { "s" }));
        }
    }
    pick(lang, zh, en.join(" "))
}

/// Minutes as text (for limits that are not an `AccessDuration`).
pub(crate) fn minutes(lang: Lang, m: u64) -> String {
    match AccessDuration::from_minutes(m) {
        Ok(d) => duration(lang, d),
        Err(_) => m.to_string(),
    }
}

/// A moment in the configured time zone: `2026-11-22 18:00 (Asia/Shanghai)`.
pub fn time(ts: Timestamp, tz: &TimeZone) -> String {
    let local = ts
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string();
    match tz.iana_name() {
        Some(name) => format!("{local} ({name})"),
        None => local,
    }
}

/// A moment as people say it, in the configured zone: `12月5日（周五）18:00` /
/// `Fri 5 Dec 18:00`; the year only when it is not this one.
pub fn moment(lang: Lang, ts: Timestamp, tz: &TimeZone, now: Timestamp) -> String {
    let z = ts.to_zoned(tz.clone());
    let this_year = now.to_zoned(tz.clone()).year() == z.year();
    let wd = z.weekday().to_monday_zero_offset() as usize;
    const ZH: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];
    let hm = z.strftime("%H:%M").to_string();
    let zh = if this_year {
        format!("{}月{}日（周{}）{hm}", z.month(), z.day(), ZH[wd])
    } else {
        format!(
            "{}年{}月{}日（周{}）{hm}",
            z.year(),
            z.month(),
            z.day(),
            ZH[wd]
        )
    };
    let en = if this_year {
        z.strftime("%a %-d %b %H:%M").to_string()
    } else {
        z.strftime("%a %-d %b %Y %H:%M").to_string()
    };
    pick(lang, zh, en)
}

/// The end of a window in words: `至 12月5日（周五）18:00` / `until Fri 5 Dec 18:00`.
pub fn until(lang: Lang, ts: Timestamp, tz: &TimeZone, now: Timestamp) -> String {
    let m = moment(lang, ts, tz, now);
    pick(lang, format!("至 {m}"), format!("until {m}"))
}

pub fn role(lang: Lang, r: Role) -> &'static str {
    match (lang, r) {
        (Lang::ZhCn, Role::Ops) => "运维",
        (Lang::ZhCn, Role::Readonly) => "只读",
        (Lang::En, Role::Ops) => "ops",
        (Lang::En, Role::Readonly) => "read-only",
    }
}

/// `10.1.2.3、web1、支付系统（系统）`.
pub fn targets(lang: Lang, ts: &[Target]) -> String {
    let items: Vec<String> = ts
        .iter()
        .map(|t| match t {
            Target::System(s) => pick(lang, format!("{s}（系统）"), format!("{s} (system)")),
            other => other.to_string(),
        })
        .collect();
    items.join(if lang == Lang::ZhCn { "、" } else { ", " })
}
