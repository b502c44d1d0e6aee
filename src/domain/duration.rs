//! Access durations: parsing what people type (`4h`, `2h30m`, `3 days`, `3 天`, `两个小时`,
//! `1.5h`, `半天`, `两天半`, `一个月`) into a whole number of minutes, and the typed errors for
//! what cannot be read. "Until" forms (`到周五`, `明天下班前`) need a clock and live in
//! `domain::until`. Rendering lives in `chat::text`, which turns an `AccessDuration` into
//! `3天4小时` / `3 days 4 hours`.
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const MINUTE: u64 = 1;
pub const HOUR: u64 = 60;
pub const DAY: u64 = 24 * HOUR;
pub const WEEK: u64 = 7 * DAY;
/// A month of access is 30 days: calendar months differ, and a grant's end is shown anyway.
pub const MONTH: u64 = 30 * DAY;

/// Hard ceiling whatever the policy says: one year. Beyond this a grant is a standing permission,
/// which this bot is not for, and the number is probably a typo (`300d` for `30d`).
pub const MAX_MINUTES: u64 = 366 * DAY;

/// A positive length of access, in whole minutes (JumpServer dates have minute-level meaning here).
/// Deserialising goes through [`AccessDuration::from_minutes`], so a stored or hand-edited
/// zero or oversized value is refused rather than trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "u64", try_from = "u64")]
pub struct AccessDuration(u64);

impl From<AccessDuration> for u64 {
    fn from(d: AccessDuration) -> u64 {
        d.0
    }
}

impl TryFrom<u64> for AccessDuration {
    type Error = DurationError;
    fn try_from(minutes: u64) -> Result<Self, DurationError> {
        Self::from_minutes(minutes)
    }
}

impl AccessDuration {
    /// Builds from minutes; zero and values above [`MAX_MINUTES`] are refused.
    pub fn from_minutes(minutes: u64) -> Result<Self, DurationError> {
        if minutes == 0 {
            Err(DurationError::Zero)
        } else if minutes > MAX_MINUTES {
            Err(DurationError::TooLong {
                max_minutes: MAX_MINUTES,
            })
        } else {
            Ok(Self(minutes))
        }
    }
    pub fn minutes(self) -> u64 {
        self.0
    }
    pub fn millis(self) -> i64 {
        // MAX_MINUTES * 60_000 fits easily in i64.
        (self.0 as i64) * 60_000
    }
    /// Splits into (weeks, days, hours, minutes) for display; weeks only when exact.
    pub fn parts(self) -> DurationParts {
        let mut m = self.0;
        let weeks = if m.is_multiple_of(WEEK) { m / WEEK } else { 0 };
        m -= weeks * WEEK;
        let days = m / DAY;
        m %= DAY;
        let hours = m / HOUR;
        DurationParts {
            weeks,
            days,
            hours,
            minutes: m % HOUR,
        }
    }
    /// Canonical short form, e.g. `3d4h` or `30m`; `parse` reads it back.
    pub fn short(self) -> String {
        let p = self.parts();
        let mut s = String::new();
        for (n, u) in [
            (p.weeks, "w"),
            (p.days, "d"),
            (p.hours, "h"),
            (p.minutes, "m"),
        ] {
            if n > 0 {
                s.push_str(&n.to_string());
                s.push_str(u);
            }
        }
        s
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationParts {
    pub weeks: u64,
    pub days: u64,
    pub hours: u64,
    pub minutes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("no duration given")]
    Empty,
    #[error("duration must be longer than zero")]
    Zero,
    #[error("duration cannot be negative")]
    Negative,
    #[error("duration is longer than the allowed {max_minutes} minutes")]
    TooLong { max_minutes: u64 },
    #[error("`{unit}` is not a unit of time")]
    UnknownUnit { unit: String },
    #[error("`{number}` has no unit (write e.g. {number}h or {number}d)")]
    MissingUnit { number: String },
    #[error("`{text}` is not a duration")]
    Garbage { text: String },
    #[error("that time has already passed")]
    Past,
}

/// Unit words, longest first so `mins` wins over `m` and `小时` over `时`.
const UNITS: &[(&str, u64)] = &[
    ("months", MONTH),
    ("minutes", MINUTE),
    ("month", MONTH),
    ("minute", MINUTE),
    ("weeks", WEEK),
    ("hours", HOUR),
    ("week", WEEK),
    ("hour", HOUR),
    ("days", DAY),
    ("mins", MINUTE),
    ("min", MINUTE),
    ("hrs", HOUR),
    ("day", DAY),
    ("wks", WEEK),
    ("hr", HOUR),
    ("wk", WEEK),
    ("个小时", HOUR),
    ("个半月", MONTH),
    ("个月", MONTH),
    ("个星期", WEEK),
    ("个礼拜", WEEK),
    ("分钟", MINUTE),
    ("小时", HOUR),
    ("星期", WEEK),
    ("礼拜", WEEK),
    ("钟头", HOUR),
    ("个钟", HOUR),
    ("m", MINUTE),
    ("h", HOUR),
    ("d", DAY),
    ("w", WEEK),
    ("mo", MONTH),
    ("分", MINUTE),
    ("时", HOUR),
    ("天", DAY),
    ("日", DAY),
    ("周", WEEK),
    ("月", MONTH),
];

/// Parses one duration written as one or more `<number><unit>` groups, e.g. `4h`, `2h30m`,
/// `3天`, `1周2天`, `3 days`, `三天`. Spaces between groups and between a number and its unit are
/// allowed; the groups are added up.
pub fn parse(input: &str) -> Result<AccessDuration, DurationError> {
    let text: String = input
        .chars()
        .map(fold_width)
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') || text.starts_with('负') {
        return Err(DurationError::Negative);
    }
    // Echo at most a short prefix of what was typed back to the user.
    let garbage = || DurationError::Garbage {
        text: input.trim().chars().take(40).collect(),
    };
    let too_long = || DurationError::TooLong {
        max_minutes: MAX_MINUTES,
    };
    let mut rest = text.as_str();
    // Tenths of a minute, so `1.5h` and `半天` stay exact until the end.
    let mut total_tenths: u64 = 0;
    while !rest.is_empty() {
        // `半天` / `半小时`: a half with no number before it.
        let (tenths, after_number) = match rest.strip_prefix('半') {
            Some(after) => (5, after),
            None => take_number(rest).ok_or_else(garbage)?,
        };
        if after_number.is_empty() {
            return Err(DurationError::MissingUnit {
                number: rest.chars().take(20).collect(),
            });
        }
        // `一个半小时` / `1个半月`: the half sits between the number and the unit.
        let (tenths, after_number) = match after_number
            .strip_prefix("个半")
            .or_else(|| after_number.strip_prefix('半').filter(|r| !r.is_empty()))
        {
            Some(r) if tenths % 10 == 0 => (tenths + 5, r),
            _ => (tenths, after_number),
        };
        let (unit, after_unit) = match UNITS.iter().find(|(w, _)| after_number.starts_with(w)) {
            Some((w, u)) => (*u, &after_number[w.len()..]),
            None => {
                let word: String = after_number
                    .chars()
                    .take_while(|c| !c.is_ascii_digit())
                    .take(20)
                    .collect();
                return Err(DurationError::UnknownUnit { unit: word });
            }
        };
        // `两天半`: a half of the unit just named.
        let (tenths, after_unit) = match after_unit.strip_prefix('半') {
            Some(r) if tenths % 10 == 0 => (tenths + 5, r),
            _ => (tenths, after_unit),
        };
        let part = tenths.checked_mul(unit).ok_or_else(too_long)?;
        total_tenths = total_tenths.checked_add(part).ok_or_else(too_long)?;
        rest = after_unit;
    }
    // A fraction of a minute rounds up: asking for some access is never asking for none.
    AccessDuration::from_minutes(total_tenths.div_ceil(10))
}

/// Full-width digits and letters to ASCII so `３ｄ` reads like `3d`.
fn fold_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// Reads an ASCII number (`3`, `1.5`, one decimal place kept) or a small Chinese one (一 …
/// 九十九, 两) at the start of `s`, in tenths.
fn take_number(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 {
        // A number too big for u64 is far beyond MAX_MINUTES anyway; saturate and let TooLong say so.
        let whole = s[..digits].parse::<u64>().unwrap_or(u64::MAX / 10);
        let mut rest = &s[digits..];
        let mut tenths = whole.saturating_mul(10);
        if let Some(frac) = rest.strip_prefix('.') {
            let fd = frac.bytes().take_while(u8::is_ascii_digit).count();
            if fd == 0 {
                return None;
            }
            // `1.25h`: more precision than a tenth is rounded up, never down to nothing.
            let first = u64::from(frac.as_bytes()[0] - b'0');
            let more = frac.as_bytes()[1..fd].iter().any(|b| *b != b'0');
            tenths = tenths.saturating_add(first + u64::from(more));
            rest = &frac[fd..];
        }
        return Some((tenths, rest));
    }
    let mut value: Option<u64> = None;
    let mut tens: Option<u64> = None;
    let mut used = 0;
    for c in s.chars() {
        let d = match c {
            '零' => 0,
            '一' => 1,
            '二' | '两' => 2,
            '三' => 3,
            '四' => 4,
            '五' => 5,
            '六' => 6,
            '七' => 7,
            '八' => 8,
            '九' => 9,
            '十' => 10,
            _ => break,
        };
        if d == 10 {
            if tens.is_some() {
                return None;
            }
            tens = Some(value.take().unwrap_or(1) * 10);
        } else {
            if value.is_some() {
                return None;
            }
            value = Some(d);
        }
        used += c.len_utf8();
    }
    if used == 0 {
        return None;
    }
    Some(((tens.unwrap_or(0) + value.unwrap_or(0)) * 10, &s[used..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mins(s: &str) -> u64 {
        parse(s).map(|d| d.minutes()).unwrap_or(0)
    }

    #[test]
    fn english_units() {
        assert_eq!(mins("30m"), 30);
        assert_eq!(mins("4h"), 240);
        assert_eq!(mins("3d"), 3 * DAY);
        assert_eq!(mins("1w"), WEEK);
        assert_eq!(mins("2h30m"), 150);
        assert_eq!(mins("2 hours"), 120);
        assert_eq!(mins("3 Days"), 3 * DAY);
        assert_eq!(mins("45min"), 45);
    }

    #[test]
    fn chinese_units_and_numerals() {
        assert_eq!(mins("3天"), 3 * DAY);
        assert_eq!(mins("4小时"), 240);
        assert_eq!(mins("30分钟"), 30);
        assert_eq!(mins("1周"), WEEK);
        assert_eq!(mins("三天"), 3 * DAY);
        assert_eq!(mins("两个小时"), 120);
        assert_eq!(mins("十二小时"), 12 * HOUR);
        assert_eq!(mins("二十天"), 20 * DAY);
        assert_eq!(mins("１天２小时"), DAY + 2 * HOUR);
    }

    #[test]
    fn what_people_type() {
        for (text, want) in [
            ("3 天", 3 * DAY),
            ("2 hours", 2 * HOUR),
            ("1.5h", 90),
            ("1.5 天", 36 * HOUR),
            ("0.5d", 12 * HOUR),
            ("半天", 12 * HOUR),
            ("半小时", 30),
            ("半个小时", 30),
            ("一个半小时", 90),
            ("两天半", 60 * HOUR),
            ("一个月", MONTH),
            ("1个月", MONTH),
            ("2 months", 2 * MONTH),
            ("1个半月", 45 * DAY),
            ("1 week 2 days", WEEK + 2 * DAY),
            ("0.01h", 6),
        ] {
            assert_eq!(mins(text), want, "{text}");
        }
        assert!(matches!(parse("1.h"), Err(DurationError::Garbage { .. })));
        assert!(matches!(
            parse("半"),
            Err(DurationError::MissingUnit { .. })
        ));
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("0h"), Err(DurationError::Zero));
        assert_eq!(parse("-3d"), Err(DurationError::Negative));
        assert!(matches!(parse("400d"), Err(DurationError::TooLong { .. })));
        assert!(matches!(
            parse("99999999999999999999999w"),
            Err(DurationError::TooLong { .. })
        ));
        assert_eq!(
            parse("3"),
            Err(DurationError::MissingUnit { number: "3".into() })
        );
        assert_eq!(
            parse("3x"),
            Err(DurationError::UnknownUnit { unit: "x".into() })
        );
        assert!(matches!(parse("soon"), Err(DurationError::Garbage { .. })));
        assert!(matches!(parse("h3"), Err(DurationError::Garbage { .. })));
    }

    #[test]
    fn serde_refuses_invalid_minutes() {
        assert_eq!(
            serde_json::to_string(&parse("2h").ok()).ok(),
            Some("120".into())
        );
        assert!(serde_json::from_str::<AccessDuration>("0").is_err());
        assert!(serde_json::from_str::<AccessDuration>("99999999").is_err());
        assert_eq!(
            serde_json::from_str::<AccessDuration>("90")
                .ok()
                .map(|d| d.minutes()),
            Some(90)
        );
    }

    #[test]
    fn short_form_round_trips() {
        for s in ["30m", "4h", "3d4h", "1w", "2w", "8d", "1d1h1m"] {
            let d = parse(s).map_err(|e| e.to_string());
            assert_eq!(d.clone().map(|d| d.short()), Ok(s.to_string()), "{s}");
        }
    }
}
