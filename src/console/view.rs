//! What the pages show, computed without IO: the History filter and its rows, pending rows with
//! their age, "now" rows with their provenance, time formatting in the configured zone, and CSV
//! cells made safe for spreadsheets.
use super::data::OrderSnapshot;
use crate::chat::text::console::{audit_event_label, console_word};
use crate::chat::text::{self, Lang};
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::duration::AccessDuration;
use crate::domain::ids::DingUserId;
use crate::domain::inventory::{Grant, Reach};
use crate::domain::order::Order;
use crate::domain::target::Target;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// `2026-11-22 18:00` in the configured zone (the zone is named once per page).
pub fn local(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// How long something has waited: `3小时20分钟` / `3 hours 20 minutes`; under a minute `<1`.
pub fn age(lang: Lang, from: Timestamp, now: Timestamp) -> String {
    let mins = now.duration_since(from).as_secs().max(0) / 60;
    match AccessDuration::from_minutes(u64::try_from(mins).unwrap_or(0)) {
        Ok(d) if mins > 0 => text::duration(lang, d),
        _ => match lang {
            Lang::ZhCn => "不到1分钟".into(),
            Lang::En => "under a minute".into(),
        },
    }
}

/// `张三 (zhangsan)`, or the id alone when no name is known.
pub fn person(names: &HashMap<DingUserId, String>, id: &DingUserId) -> String {
    match names.get(id) {
        Some(n) if n != id.as_str() => format!("{n} ({id})"),
        _ => id.to_string(),
    }
}

pub fn actor(lang: Lang, names: &HashMap<DingUserId, String>, a: &Actor) -> String {
    match a {
        Actor::User(u) => person(names, u),
        Actor::System => console_word(lang, "system_actor").to_owned(),
    }
}

fn targets_of(o: &Order) -> String {
    o.request
        .targets()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The configured systems an order touches (its system targets, or the node it went to).
fn systems_of(o: &Order) -> Vec<String> {
    let mut s: Vec<String> = o
        .request
        .targets()
        .iter()
        .filter_map(|t| match t {
            Target::System(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    if let Some(p) = &o.preview {
        if !p.node.is_empty() && !s.contains(&p.node) {
            s.push(p.node.clone());
        }
    }
    s
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

/// History's filter, as the query string carries it.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct HistoryFilter {
    pub person: String,
    pub host: String,
    pub system: String,
    /// The order's current state (`State::as_str`).
    pub state: String,
    /// The audit event (`requested`, `approved`, …).
    pub event: String,
    /// Dates `YYYY-MM-DD` in the configured zone, both inclusive.
    pub from: String,
    pub to: String,
    /// `time` (default), `order`, `person`, `event`.
    pub sort: String,
    /// `desc` (default) or `asc`.
    pub dir: String,
    /// 1-based; text, so a bad value falls back to the first page instead of an error.
    pub page: String,
}

/// A filter value that cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub struct BadFilter(pub &'static str);

impl HistoryFilter {
    /// The `[from, to)` instants of the date range.
    pub fn range(
        &self,
        tz: &TimeZone,
    ) -> Result<(Option<Timestamp>, Option<Timestamp>), BadFilter> {
        let day = |s: &str, next: bool| -> Result<Option<Timestamp>, BadFilter> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            let d: Date = s.parse().map_err(|_| BadFilter("date"))?;
            let d = if next {
                d.tomorrow().map_err(|_| BadFilter("date"))?
            } else {
                d
            };
            d.to_zoned(tz.clone())
                .map(|z| Some(z.timestamp()))
                .map_err(|_| BadFilter("date"))
        };
        Ok((day(&self.from, false)?, day(&self.to, true)?))
    }

    pub fn descending(&self) -> bool {
        self.dir != "asc"
    }

    /// Does a record (with its order) pass the filter? The date range is applied by the caller.
    pub fn matches(
        &self,
        r: &AuditRecord,
        o: Option<&Order>,
        names: &HashMap<DingUserId, String>,
    ) -> bool {
        if !self.event.is_empty() && event_key(r.event) != self.event {
            return false;
        }
        if !self.person.is_empty() {
            let actor = match &r.actor {
                Actor::User(u) => self.person_is(u.as_str(), names.get(u).map_or("", |n| n)),
                Actor::System => false,
            };
            if !actor && !o.is_some_and(|o| self.person_requested(o)) {
                return false;
            }
        }
        self.order_matches(o)
    }

    /// The person filter against a user: their id or name contains it.
    pub fn person_is(&self, id: &str, name: &str) -> bool {
        contains(&format!("{id} {name}"), &self.person)
    }

    /// The person filter against an order's requester (id, name, JumpServer username).
    pub fn person_requested(&self, o: &Order) -> bool {
        contains(
            &format!("{} {} {}", o.requester, o.requester_name, o.jms_username),
            &self.person,
        )
    }

    /// What an order alone decides: host, system, state (a record of no order passes none).
    pub fn order_matches(&self, o: Option<&Order>) -> bool {
        if !self.host.is_empty() && !o.is_some_and(|o| contains(&targets_of(o), &self.host)) {
            return false;
        }
        if !self.system.is_empty()
            && !o.is_some_and(|o| systems_of(o).iter().any(|s| contains(s, &self.system)))
        {
            return false;
        }
        if !self.state.is_empty() && o.is_none_or(|o| o.state.as_str() != self.state) {
            return false;
        }
        true
    }

    /// A person, host, system or state is asked for: every matching record belongs to a
    /// matching order or has a matching person as actor, so the trail's indexes find them.
    pub fn names_order_or_person(&self) -> bool {
        [&self.person, &self.host, &self.system, &self.state]
            .iter()
            .any(|v| !v.is_empty())
    }

    /// No filter and no date range: every record, in time order (the view a History opens on).
    pub fn is_whole_trail_by_time(&self) -> bool {
        [
            &self.person,
            &self.host,
            &self.system,
            &self.state,
            &self.event,
            &self.from,
            &self.to,
        ]
        .iter()
        .all(|v| v.trim().is_empty())
            && matches!(self.sort.as_str(), "" | "time")
    }

    pub fn page(&self) -> usize {
        self.page.trim().parse().unwrap_or(1)
    }

    /// The query string of this filter with another page / sort (for links).
    pub fn query_with(&self, page: Option<usize>, sort: Option<(&str, &str)>) -> String {
        let mut f = self.clone();
        f.page = page.map(|p| p.to_string()).unwrap_or_default();
        if let Some((s, d)) = sort {
            f.sort = s.into();
            f.dir = d.into();
        }
        let pairs: Vec<(&str, String)> = [
            ("person", f.person),
            ("host", f.host),
            ("system", f.system),
            ("state", f.state),
            ("event", f.event),
            ("from", f.from),
            ("to", f.to),
            ("sort", f.sort),
            ("dir", f.dir),
            ("page", f.page),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

pub fn event_key(e: AuditEvent) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub const EVENTS: [AuditEvent; 17] = [
    AuditEvent::Requested,
    AuditEvent::Submitted,
    AuditEvent::Approved,
    AuditEvent::Rejected,
    AuditEvent::Cancelled,
    AuditEvent::TimedOut,
    AuditEvent::ProvisioningStarted,
    AuditEvent::Granted,
    AuditEvent::ProvisioningFailed,
    AuditEvent::ApprovalFailed,
    AuditEvent::Revoked,
    AuditEvent::Expired,
    AuditEvent::Renewed,
    AuditEvent::Reminded,
    AuditEvent::JobGaveUp,
    AuditEvent::Note,
    AuditEvent::TrailMigrated,
];

/// One History row (also a CSV line).
#[derive(Clone, Debug, Serialize)]
pub struct HistoryRow {
    pub at: String,
    #[serde(skip)]
    pub at_ts: Timestamp,
    pub order: String,
    pub requester: String,
    pub targets: String,
    pub systems: String,
    pub event: String,
    pub change: String,
    pub actor: String,
    pub detail: String,
    pub state: String,
}

pub fn history_row(
    lang: Lang,
    tz: &TimeZone,
    names: &HashMap<DingUserId, String>,
    r: &AuditRecord,
    o: Option<&Order>,
) -> HistoryRow {
    let change = match (r.from, r.to) {
        (Some(a), Some(b)) => format!(
            "{} → {}",
            text::status_label(lang, status_of(a)),
            text::status_label(lang, status_of(b))
        ),
        _ => String::new(),
    };
    HistoryRow {
        at: local(r.at, tz),
        at_ts: r.at,
        order: r
            .order_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        requester: o.map(|o| person(names, &o.requester)).unwrap_or_default(),
        targets: o.map(targets_of).unwrap_or_default(),
        systems: o.map(|o| systems_of(o).join(", ")).unwrap_or_default(),
        event: audit_event_label(lang, r.event).to_owned(),
        change,
        actor: actor(lang, names, &r.actor),
        detail: r.detail.clone(),
        state: o
            .map(|o| text::status_label(lang, o.status()).to_owned())
            .unwrap_or_default(),
    }
}

/// A state as people are told it (a failed order reads as "failed" here; a draft as pending).
pub fn status_of(st: crate::domain::order::State) -> crate::domain::order::Status {
    use crate::domain::order::{State, Status};
    match st {
        State::Draft | State::PendingApproval => Status::PendingApproval,
        State::Approved => Status::Approved,
        State::Provisioning => Status::Provisioning,
        State::Active => Status::Active,
        State::Expired => Status::Expired,
        State::Revoked => Status::Revoked,
        State::Rejected => Status::Rejected,
        State::Cancelled => Status::Cancelled,
        State::FailedRetrying => Status::Retrying,
        State::Failed => Status::Failed,
    }
}

/// Sorts rows by the filter's key and direction (time breaks ties, keeping the trail's order).
pub fn sort_rows(rows: &mut [HistoryRow], f: &HistoryFilter) {
    let key = f.sort.as_str();
    rows.sort_by(|a, b| {
        let primary = match key {
            "order" => a.order.cmp(&b.order),
            "person" => a.requester.cmp(&b.requester),
            "event" => a.event.cmp(&b.event),
            _ => std::cmp::Ordering::Equal,
        };
        primary.then(a.at_ts.cmp(&b.at_ts))
    });
    if f.descending() {
        rows.reverse();
    }
}

/// One pending order.
#[derive(Clone, Debug, Serialize)]
pub struct PendingRow {
    pub order: String,
    pub requester: String,
    pub targets: String,
    pub role: String,
    pub duration: String,
    pub reason: String,
    pub approvers: String,
    pub created: String,
    pub age: String,
    pub yours: bool,
}

pub fn pending_row(
    lang: Lang,
    tz: &TimeZone,
    names: &HashMap<DingUserId, String>,
    o: &Order,
    now: Timestamp,
    yours: bool,
) -> PendingRow {
    PendingRow {
        order: o.id.to_string(),
        requester: person(names, &o.requester),
        targets: targets_of(o),
        role: o
            .request
            .role()
            .map(|r| text::role(lang, r).to_owned())
            .unwrap_or_default(),
        duration: o
            .request
            .access_duration()
            .map(|d| text::duration(lang, d))
            .unwrap_or_default(),
        reason: o.request.reason().to_owned(),
        approvers: o
            .approvers
            .iter()
            .map(|a| person(names, a))
            .collect::<Vec<_>>()
            .join(", "),
        created: local(o.created_at, tz),
        age: age(lang, o.created_at, now),
        yours,
    }
}

/// One "who reaches what" line with the bot's provenance when the permission is one of ours.
#[derive(Clone, Debug, Serialize)]
pub struct NowRow {
    pub user: String,
    pub host: String,
    pub accounts: String,
    pub until: String,
    pub permission: String,
    pub order: String,
    pub requested_by: String,
    pub approved_by: String,
    pub reason: String,
}

fn approved_by(names: &HashMap<DingUserId, String>, o: &Order) -> String {
    let mut who: Vec<&DingUserId> = o.approvals.iter().collect();
    if let Some(d) = &o.decided_by {
        if !who.contains(&d) {
            who.push(d);
        }
    }
    who.iter()
        .map(|u| person(names, u))
        .collect::<Vec<_>>()
        .join(", ")
}

#[allow(clippy::too_many_arguments)]
fn now_row(
    lang: Lang,
    tz: &TimeZone,
    names: &HashMap<DingUserId, String>,
    ours: Option<&Order>,
    user: String,
    host: String,
    accounts: &[String],
    until: Option<Timestamp>,
    permission: &str,
) -> NowRow {
    NowRow {
        user,
        host,
        accounts: accounts.join(", "),
        until: until
            .map(|t| local(t, tz))
            .unwrap_or_else(|| console_word(lang, "no_end").to_owned()),
        permission: permission.to_owned(),
        order: ours.map(|o| o.id.to_string()).unwrap_or_default(),
        requested_by: ours
            .map(|o| person(names, &o.requester))
            .unwrap_or_else(|| console_word(lang, "not_by_bot").to_owned()),
        approved_by: ours.map(|o| approved_by(names, o)).unwrap_or_default(),
        reason: ours
            .map(|o| o.request.reason().to_owned())
            .unwrap_or_default(),
    }
}

pub fn reach_row(
    lang: Lang,
    tz: &TimeZone,
    names: &HashMap<DingUserId, String>,
    ours: &OrderSnapshot,
    r: &Reach,
) -> NowRow {
    now_row(
        lang,
        tz,
        names,
        ours.by_permission(&r.permission.name),
        r.user.display(),
        format!("{} ({})", r.host.name, r.host.address),
        &r.permission.accounts,
        r.permission.date_expired,
        &r.permission.name,
    )
}

pub fn grant_rows(
    lang: Lang,
    tz: &TimeZone,
    names: &HashMap<DingUserId, String>,
    ours: &OrderSnapshot,
    user: &str,
    g: &Grant,
) -> Vec<NowRow> {
    g.hosts
        .iter()
        .map(|h| {
            now_row(
                lang,
                tz,
                names,
                ours.by_permission(&g.permission_name),
                user.to_owned(),
                format!("{} ({})", h.name, h.address),
                &g.accounts,
                g.date_expired,
                &g.permission_name,
            )
        })
        .collect()
}

/// A CSV cell a spreadsheet will not run: text starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return gets a leading `'` (OWASP's advice for CSV injection).
pub fn csv_cell(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

/// CSV bytes: a UTF-8 BOM (so spreadsheet programs read Chinese right), the header, the rows.
pub fn csv_bytes(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let _ = w.write_record(header);
    for r in rows {
        let _ = w.write_record(r.iter().map(|c| csv_cell(c)));
    }
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_cannot_become_formulas() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("web-01"), "web-01");
        let b = csv_bytes(
            &["a", "b"],
            vec![vec!["=1+1".into(), "x,\"y\"".into()]].into_iter(),
        );
        let s = String::from_utf8(b).unwrap_or_default();
        assert!(s.ends_with("a,b\n'=1+1,\"x,\"\"y\"\"\"\n"), "{s:?}");
    }

    #[test]
    fn date_ranges_are_whole_days_in_the_zone() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap_or(TimeZone::UTC);
        let f = HistoryFilter {
            from: "2026-11-22".into(),
            to: "2026-11-22".into(),
            ..HistoryFilter::default()
        };
        let (a, b) = f.range(&tz).unwrap_or((None, None));
        assert_eq!(
            a.map(|t| t.to_string()).as_deref(),
            Some("2026-11-21T16:00:00Z")
        );
        assert_eq!(
            b.map(|t| t.to_string()).as_deref(),
            Some("2026-11-22T16:00:00Z")
        );
        let bad = HistoryFilter {
            from: "yesterday".into(),
            ..HistoryFilter::default()
        };
        assert_eq!(bad.range(&tz), Err(BadFilter("date")));
    }

    #[test]
    fn event_keys_are_the_stored_names() {
        assert_eq!(event_key(AuditEvent::TimedOut), "timed_out");
        assert_eq!(event_key(AuditEvent::JobGaveUp), "job_gave_up");
    }
}
