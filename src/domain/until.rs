//! "Until" durations: `到周五`, `到今晚`, `明天下班前`, `until Friday`, `till tomorrow 18:00`.
//! Parsing is pure and clock-free (what the person named: a day and maybe a time of day);
//! [`Until::resolve`] turns it into an end instant with the clock and the configured time zone
//! at the moment the request is made, so the command parser stays without IO.
//!
//! Defaults, chosen so that the window ends when people stop working, and always echoed back
//! in words before anything is granted: a day without a time ends at the end of the working
//! day (`workday_end`, 18:00 unless configured); "tonight" / 今晚 at 23:59; 中午 / noon 12:00.
use crate::domain::duration::{AccessDuration, DurationError, MAX_MINUTES};
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

/// Which day an "until" names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum DayRef {
    /// Today plus this many days (0 today, 1 tomorrow, 2 the day after).
    Offset(u8),
    /// The next such weekday (today counts when its time is still ahead); `next_week` skips
    /// to the week after (下周五).
    Weekday { day: u8, next_week: bool },
}

/// A time of day an "until" names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum TimeRef {
    /// The end of the working day (下班, or a day alone).
    WorkdayEnd,
    /// An explicit `hh:mm`.
    At { hour: u8, minute: u8 },
}

/// `until <day> [<time>]`, as typed, not yet placed on a calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Until {
    pub day: DayRef,
    pub time: TimeRef,
}

/// Words that make the rest an "until": `到周五`, `until friday`. Longest first.
const LEADS: &[&str] = &[
    "until",
    "till",
    "直到",
    "截至",
    "截止到",
    "截止",
    "到",
    "至",
];

const WEEKDAYS_ZH: &[(&str, u8)] = &[
    ("一", 1),
    ("二", 2),
    ("三", 3),
    ("四", 4),
    ("五", 5),
    ("六", 6),
    ("日", 7),
    ("天", 7),
    ("末", 6),
];

const WEEKDAYS_EN: &[(&str, u8)] = &[
    ("monday", 1),
    ("mon", 1),
    ("tuesday", 2),
    ("tue", 2),
    ("wednesday", 3),
    ("wed", 3),
    ("thursday", 4),
    ("thu", 4),
    ("friday", 5),
    ("fri", 5),
    ("saturday", 6),
    ("sat", 6),
    ("sunday", 7),
    ("sun", 7),
];

fn fold(input: &str) -> String {
    input
        .chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_lowercase()
}

/// Reads an "until" phrase; `None` when the text is not one (it may be a plain duration).
pub fn parse(input: &str) -> Option<Until> {
    let text = fold(input);
    let mut rest = text.as_str();
    let mut led = false;
    for lead in LEADS {
        if let Some(r) = rest.strip_prefix(lead) {
            rest = r.trim_start();
            led = true;
            break;
        }
    }
    let (day, after_day) = day_ref(rest)?;
    let tail = after_day.trim();
    let time = time_ref(tail)?;
    // Without 到/until, only phrases that clearly end a window count (明天下班前, 今晚): a bare
    // `明天` could be a mistake for a duration and is better asked about.
    if !led && tail.is_empty() && !matches!(rest, "今晚" | "tonight") {
        return None;
    }
    Some(Until { day, time })
}

fn day_ref(s: &str) -> Option<(DayRef, &str)> {
    for (word, offset) in [
        ("今天", 0),
        ("今日", 0),
        ("今晚", 0),
        ("today", 0),
        ("tonight", 0),
        ("明天", 1),
        ("明日", 1),
        ("明晚", 1),
        ("tomorrow", 1),
        ("后天", 2),
    ] {
        if let Some(r) = s.strip_prefix(word) {
            // 今晚 / tonight carry their own time; leave the word for `time_ref`.
            let keep = matches!(word, "今晚" | "明晚" | "tonight");
            return Some((DayRef::Offset(offset), if keep { s } else { r }));
        }
    }
    // 下周五 / 下星期五: the weekday follows the prefix directly.
    if let Some(r) = s
        .strip_prefix("下周")
        .or_else(|| s.strip_prefix("下星期"))
        .or_else(|| s.strip_prefix("下礼拜"))
    {
        for (w, d) in WEEKDAYS_ZH {
            if let Some(r) = r.strip_prefix(w) {
                return Some((
                    DayRef::Weekday {
                        day: *d,
                        next_week: true,
                    },
                    r,
                ));
            }
        }
        return None;
    }
    let (next_week, s) = match s.strip_prefix("next ") {
        Some(r) => (true, r),
        None => (false, s),
    };
    for prefix in ["周", "星期", "礼拜"] {
        if let Some(r) = s.strip_prefix(prefix) {
            for (w, d) in WEEKDAYS_ZH {
                if let Some(r) = r.strip_prefix(w) {
                    return Some((DayRef::Weekday { day: *d, next_week }, r));
                }
            }
        }
    }
    for (w, d) in WEEKDAYS_EN {
        if let Some(r) = s.strip_prefix(w) {
            if r.is_empty() || r.starts_with([' ', ',']) {
                return Some((DayRef::Weekday { day: *d, next_week }, r));
            }
        }
    }
    None
}

fn time_ref(s: &str) -> Option<TimeRef> {
    let s = s
        .trim_start_matches([',', ' '])
        .trim_end_matches(['前', '之', ' '])
        .trim_end_matches("之")
        .trim_end_matches("before")
        .trim();
    match s {
        "" | "下班" | "end of day" | "eod" | "close of business" | "cob" => {
            Some(TimeRef::WorkdayEnd)
        }
        "今晚" | "明晚" | "晚上" | "tonight" | "night" | "midnight" | "午夜" => {
            Some(TimeRef::At {
                hour: 23,
                minute: 59,
            })
        }
        "中午" | "noon" | "midday" => Some(TimeRef::At {
            hour: 12,
            minute: 0,
        }),
        other => clock_time(other),
    }
}

/// `18:00`, `18点`, `18点30`, `下午6点`, `6pm`, `at 18:00`.
fn clock_time(s: &str) -> Option<TimeRef> {
    let s = s.strip_prefix("at ").unwrap_or(s).trim();
    let (pm, s) = if let Some(r) = s.strip_prefix("下午").or_else(|| s.strip_prefix("晚上")) {
        (true, r)
    } else {
        (
            false,
            s.strip_prefix("上午")
                .or_else(|| s.strip_prefix("早上"))
                .unwrap_or(s),
        )
    };
    let (pm, s) = match s.strip_suffix("pm") {
        Some(r) => (true, r.trim()),
        None => (pm, s.strip_suffix("am").map(str::trim).unwrap_or(s)),
    };
    let (h, m) = if let Some((h, m)) = s.split_once(':') {
        (h, m)
    } else if let Some((h, m)) = s.split_once('点') {
        (h, m.trim_end_matches('分'))
    } else {
        (s, "")
    };
    let mut hour: u8 = h.trim().parse().ok()?;
    let minute: u8 = match m.trim() {
        "" => 0,
        "半" => 30,
        m => m.parse().ok()?,
    };
    if pm && hour < 12 {
        hour += 12;
    }
    (hour < 24 && minute < 60).then_some(TimeRef::At { hour, minute })
}

impl Until {
    /// The end instant, from `now` in `tz`. Refused when it is not in the future.
    pub fn resolve(
        &self,
        now: Timestamp,
        tz: &TimeZone,
        workday_end: Time,
    ) -> Result<Timestamp, DurationError> {
        let here = now.to_zoned(tz.clone());
        let time = match self.time {
            TimeRef::WorkdayEnd => workday_end,
            TimeRef::At { hour, minute } => {
                Time::new(hour as i8, minute as i8, 0, 0).map_err(|_| past())?
            }
        };
        let today = here.date();
        let date = match self.day {
            DayRef::Offset(n) => today.checked_add(i64::from(n).days()).map_err(|_| past())?,
            DayRef::Weekday { day, next_week } => {
                let want = Weekday::from_monday_one_offset(day as i8).map_err(|_| past())?;
                let mut ahead =
                    i64::from(want.to_monday_one_offset() - today.weekday().to_monday_one_offset());
                if ahead < 0 || (ahead == 0 && today.to_datetime(time) <= here.datetime()) {
                    ahead += 7;
                }
                if next_week {
                    // 下周五 said on a Wednesday is the Friday of next week, not this one.
                    let days_to_next_monday = i64::from(8 - today.weekday().to_monday_one_offset());
                    if ahead < days_to_next_monday {
                        ahead += 7;
                    }
                }
                today.checked_add(ahead.days()).map_err(|_| past())?
            }
        };
        let end = date
            .to_datetime(time)
            .to_zoned(tz.clone())
            .map_err(|_| past())?
            .timestamp();
        if end <= now {
            return Err(DurationError::Past);
        }
        Ok(end)
    }

    /// The length from `now` to the resolved end, in whole minutes (rounded up).
    pub fn length(
        &self,
        now: Timestamp,
        tz: &TimeZone,
        workday_end: Time,
    ) -> Result<AccessDuration, DurationError> {
        let end = self.resolve(now, tz, workday_end)?;
        let secs = end.as_second() - now.as_second();
        let minutes = u64::try_from(secs)
            .map_err(|_| DurationError::Past)?
            .div_ceil(60);
        if minutes > MAX_MINUTES {
            return Err(DurationError::TooLong {
                max_minutes: MAX_MINUTES,
            });
        }
        AccessDuration::from_minutes(minutes)
    }
}

fn past() -> DurationError {
    DurationError::Past
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    /// Wednesday 2026-12-02 10:00 in Shanghai.
    fn now() -> Timestamp {
        "2026-12-02T02:00:00Z".parse().unwrap()
    }

    fn end(text: &str) -> String {
        let u = parse(text).unwrap_or_else(|| panic!("not an until: {text}"));
        u.resolve(now(), &tz(), Time::constant(18, 0, 0, 0))
            .unwrap()
            .to_zoned(tz())
            .strftime("%a %m-%d %H:%M")
            .to_string()
    }

    #[test]
    fn phrases_people_use() {
        for (text, want) in [
            ("到周五", "Fri 12-04 18:00"),
            ("到星期五", "Fri 12-04 18:00"),
            ("到今晚", "Wed 12-02 23:59"),
            ("今晚", "Wed 12-02 23:59"),
            ("明天下班前", "Thu 12-03 18:00"),
            ("到明天中午", "Thu 12-03 12:00"),
            ("到明天18:30", "Thu 12-03 18:30"),
            ("到后天下午3点", "Fri 12-04 15:00"),
            ("到下周一", "Mon 12-07 18:00"),
            ("到下周五", "Fri 12-11 18:00"),
            ("到周三", "Wed 12-02 18:00"),
            ("到周一", "Mon 12-07 18:00"),
            ("until Friday", "Fri 12-04 18:00"),
            ("until tomorrow 6pm", "Thu 12-03 18:00"),
            ("till tonight", "Wed 12-02 23:59"),
            ("到　周五", "Fri 12-04 18:00"),
            ("到周五下班前", "Fri 12-04 18:00"),
            ("至今天下班", "Wed 12-02 18:00"),
        ] {
            assert_eq!(end(text), want, "{text}");
        }
    }

    #[test]
    fn not_until_phrases_and_the_past() {
        for text in [
            "3d",
            "明天",
            "friday",
            "到",
            "到下辈子",
            "until the cows come home",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
        let morning = parse("到今天中午").unwrap();
        let after_noon: Timestamp = "2026-12-02T05:00:00Z".parse().unwrap();
        assert_eq!(
            morning.resolve(after_noon, &tz(), Time::constant(18, 0, 0, 0)),
            Err(DurationError::Past)
        );
        let len = parse("到今晚")
            .unwrap()
            .length(now(), &tz(), Time::constant(18, 0, 0, 0))
            .unwrap();
        assert_eq!(len.minutes(), 13 * 60 + 59);
    }
}
