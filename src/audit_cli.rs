//! `accessbot audit verify` and `accessbot audit export`: the audit trail checked and written out
//! for an auditor, over a store opened by path (the bot must not hold it: sled locks the
//! directory). `main` parses the arguments; everything that decides what is printed is here, so
//! it is tested without a process.
//!
//! Export columns (stable: new ones are only ever added at the end), the same names as CSV
//! header and JSON keys:
//!
//! | column | content |
//! |---|---|
//! | `time` | when, RFC 3339 with the offset of the configured zone (`2026-11-22T10:00:00+08:00`) |
//! | `seq` | the record's sequence number in the chain |
//! | `order` | order id, empty for records of no order |
//! | `event` | `requested`, `submitted`, `approved`, `rejected`, `cancelled`, `timed_out`, `provisioning_started`, `granted`, `provisioning_failed`, `approval_failed`, `revoked`, `expired`, `renewed`, `reminded`, `job_gave_up`, `note`, `trail_migrated` |
//! | `actor` | `user:<DingTalk userid>` or `system` |
//! | `requester` | the order's requester (DingTalk userid) |
//! | `requester_name` | their display name |
//! | `jms_username` | the JumpServer username they map to |
//! | `hosts` | hosts or system asked for, then addresses granted (CSV: space-separated; JSON: array) |
//! | `role` | `ops` / `readonly`, empty for an account request |
//! | `logins` | logins read back from JumpServer (CSV: space-separated; JSON: array) |
//! | `until` | end of the access window (RFC 3339 with offset), empty before approval |
//! | `reason` | the requester's reason |
//! | `from_state`, `to_state` | the order's state change, empty when none |
//! | `detail` | free text (decision reason, permission name, error) |
//! | `hash`, `prev_hash` | the record's chain hash and its predecessor's (hex SHA-256) |
//!
//! CSV cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or
//! carriage return) are written with a leading `'` (OWASP "CSV injection"); JSON is left as is.
use crate::domain::audit::{AuditQuery, AuditSubject, ChainReport, ChainedRecord};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};
use serde::Serialize;
use std::io::Write;

/// The export columns, in order (see the module header).
pub const COLUMNS: [&str; 18] = [
    "time",
    "seq",
    "order",
    "event",
    "actor",
    "requester",
    "requester_name",
    "jms_username",
    "hosts",
    "role",
    "logins",
    "until",
    "reason",
    "from_state",
    "to_state",
    "detail",
    "hash",
    "prev_hash",
];

/// Export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

/// One exported record; field order = [`COLUMNS`].
#[derive(Debug, Serialize)]
pub struct Row {
    pub time: String,
    pub seq: u64,
    pub order: String,
    pub event: &'static str,
    pub actor: String,
    pub requester: String,
    pub requester_name: String,
    pub jms_username: String,
    pub hosts: Vec<String>,
    pub role: String,
    pub logins: Vec<String>,
    pub until: String,
    pub reason: String,
    pub from_state: String,
    pub to_state: String,
    pub detail: String,
    pub hash: String,
    pub prev_hash: String,
}

fn rfc3339(ts: Timestamp, tz: &TimeZone) -> String {
    ts.display_with_offset(tz.to_offset(ts)).to_string()
}

impl Row {
    pub fn of(c: &ChainedRecord, tz: &TimeZone) -> Row {
        let r = &c.record;
        let s = r.subject.clone();
        let s = s.as_ref();
        let text = |f: fn(&AuditSubject) -> &str| s.map(|s| f(s).to_owned()).unwrap_or_default();
        Row {
            time: rfc3339(r.at, tz),
            seq: c.seq,
            order: r
                .order_id
                .as_ref()
                .map(|o| o.to_string())
                .unwrap_or_default(),
            event: r.event.as_str(),
            actor: r.actor.label(),
            requester: text(|s| s.requester.as_str()),
            requester_name: text(|s| &s.requester_name),
            jms_username: text(|s| &s.jms_username),
            hosts: s.map(|s| s.hosts.clone()).unwrap_or_default(),
            role: s.and_then(|s| s.role.clone()).unwrap_or_default(),
            logins: s.map(|s| s.logins.clone()).unwrap_or_default(),
            until: s
                .and_then(|s| s.until)
                .map(|u| rfc3339(u, tz))
                .unwrap_or_default(),
            reason: text(|s| &s.reason),
            from_state: r.from.map(|x| x.as_str().to_owned()).unwrap_or_default(),
            to_state: r.to.map(|x| x.as_str().to_owned()).unwrap_or_default(),
            detail: r.detail.clone(),
            hash: c.hash.clone(),
            prev_hash: c.prev_hash.clone(),
        }
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.time.clone(),
            self.seq.to_string(),
            self.order.clone(),
            self.event.to_owned(),
            self.actor.clone(),
            self.requester.clone(),
            self.requester_name.clone(),
            self.jms_username.clone(),
            self.hosts.join(" "),
            self.role.clone(),
            self.logins.join(" "),
            self.until.clone(),
            self.reason.clone(),
            self.from_state.clone(),
            self.to_state.clone(),
            self.detail.clone(),
            self.hash.clone(),
            self.prev_hash.clone(),
        ]
    }
}

/// A cell a spreadsheet will not run as a formula.
pub fn defuse(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// Writes `records` in `format`; returns how many were written.
pub fn export(
    records: &[ChainedRecord],
    format: Format,
    tz: &TimeZone,
    out: &mut dyn Write,
) -> Result<usize, String> {
    match format {
        Format::Jsonl => {
            for c in records {
                let line = serde_json::to_string(&Row::of(c, tz)).map_err(|e| e.to_string())?;
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(COLUMNS).map_err(|e| e.to_string())?;
            for c in records {
                let cells: Vec<String> = Row::of(c, tz).cells().iter().map(|x| defuse(x)).collect();
                w.write_record(&cells).map_err(|e| e.to_string())?;
            }
            w.flush().map_err(|e| e.to_string())?;
        }
    }
    Ok(records.len())
}

/// A `--since` / `--until` value: an RFC 3339 instant (`2026-11-22T10:00:00+08:00`), a civil
/// date or date-time in `tz` (`2026-11-22`, `2026-11-22T10:00`, `2026-11-22 10:00`), or a
/// duration back from `now` (`7d`, `24h`, `2 weeks`, `P7D`). With `end_of_day`, a bare date
/// means the end of that day (so `--until 2026-11-30` includes the 30th).
pub fn parse_when(
    s: &str,
    now: Timestamp,
    tz: &TimeZone,
    end_of_day: bool,
) -> Result<Timestamp, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    // A date-time first: jiff's date parser also takes a date-time and drops its time.
    if let Ok(dt) = s.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>() {
        if s.contains(':') {
            return dt
                .to_zoned(tz.clone())
                .map(|z| z.timestamp())
                .map_err(|e| format!("`{s}`: {e}"));
        }
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        let day = d.to_zoned(tz.clone()).map_err(|e| format!("`{s}`: {e}"))?;
        let day = if end_of_day {
            day.tomorrow().map_err(|e| format!("`{s}`: {e}"))?
        } else {
            day
        };
        return Ok(day.timestamp());
    }
    if let Ok(span) = s.parse::<Span>() {
        let now = Zoned::new(now, tz.clone());
        return now
            .checked_sub(span.abs())
            .map(|z| z.timestamp())
            .map_err(|e| format!("`{s}`: {e}"));
    }
    Err(format!(
        "`{s}` is neither a date (2026-11-22), a time (2026-11-22T10:00 or with an offset) nor a duration (7d, 24h)"
    ))
}

/// The filters of an export as a query (all records, oldest first).
pub fn export_query(
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    order: Option<&str>,
    user: Option<&str>,
    host: Option<&str>,
) -> AuditQuery {
    AuditQuery {
        order: order.map(|o| crate::domain::ids::OrderId::new(o.trim().to_ascii_uppercase())),
        user: user.map(|u| u.trim().to_owned()),
        host: host.map(|h| h.trim().to_owned()),
        since,
        until,
        newest_first: false,
        offset: 0,
        limit: 0,
        user_aliases: Vec::new(),
    }
}

/// What `verify` prints: `OK …` for an intact chain, else one line per break (where, what); the
/// flag says whether the chain is intact.
pub fn verify_text(report: &ChainReport, tz: &TimeZone) -> (String, bool) {
    if report.is_intact() {
        let text = match (&report.head_seq, &report.head_hash) {
            (Some(seq), Some(hash)) => format!(
                "OK: {} audit records, chain intact; head #{seq} {hash}\n",
                report.count
            ),
            _ => "OK: the audit trail is empty\n".to_owned(),
        };
        return (text, true);
    }
    let mut out = format!(
        "BROKEN: {} problem(s) in {} audit records\n",
        report.breaks.len(),
        report.count
    );
    for b in &report.breaks {
        let place = if b.last_seq > b.seq {
            format!("#{}..=#{}", b.seq, b.last_seq)
        } else {
            format!("#{}", b.seq)
        };
        let at =
            b.at.map(|t| format!(" at {}", rfc3339(t, tz)))
                .unwrap_or_default();
        let order = b
            .order_id
            .as_ref()
            .map(|o| format!(" order {o}"))
            .unwrap_or_default();
        let between = match (b.written_after, b.written_before) {
            (Some(a), Some(z)) => format!(
                " (written between {} and {})",
                rfc3339(a, tz),
                rfc3339(z, tz)
            ),
            (Some(a), None) => format!(" (written after {})", rfc3339(a, tz)),
            (None, Some(z)) => format!(" (written before {})", rfc3339(z, tz)),
            (None, None) => String::new(),
        };
        out.push_str(&format!(
            "{}: record {place}{at}{order}{between}: {}\n",
            b.kind.as_str(),
            b.detail
        ));
    }
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_plain_text_is_not() {
        for (cell, want) in [
            ("=1+1", "'=1+1"),
            ("+cmd", "'+cmd"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("hotfix", "hotfix"),
            ("", ""),
            ("修复 =1", "修复 =1"),
        ] {
            assert_eq!(defuse(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn when_reads_dates_times_and_durations() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap_or(TimeZone::UTC);
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap_or_default();
        let at = |s: &str, eod| parse_when(s, now, &tz, eod).map(|t| t.to_string());
        assert_eq!(
            at("2026-11-20", false).as_deref(),
            Ok("2026-11-19T16:00:00Z")
        );
        assert_eq!(
            at("2026-11-20", true).as_deref(),
            Ok("2026-11-20T16:00:00Z")
        );
        assert_eq!(
            at("2026-11-20 08:30", false).as_deref(),
            Ok("2026-11-20T00:30:00Z")
        );
        assert_eq!(
            at("2026-11-20T08:30:00Z", true).as_deref(),
            Ok("2026-11-20T08:30:00Z")
        );
        assert_eq!(at("7d", false).as_deref(), Ok("2026-11-15T10:00:00Z"));
        assert_eq!(at("24h", false).as_deref(), Ok("2026-11-21T10:00:00Z"));
        assert!(at("last tuesday", false).is_err());
    }
}
