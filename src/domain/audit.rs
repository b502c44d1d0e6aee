//! The audit vocabulary: who did what to which order, and what it moved; the hash-chained form
//! a record is kept in; what a query asks for; and what checking the chain found. Pure data; the
//! store appends records in the same transaction as the order change they describe
//! (`store::audit`, which also documents the bytes hashed), so the trail can never disagree
//! with the orders.
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::order::{Action, Order, State, Transition};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Actor {
    User(DingUserId),
    /// The bot itself: scheduler, outbox runner, reconcile.
    System,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    Requested,
    Submitted,
    Approved,
    Rejected,
    Cancelled,
    TimedOut,
    ProvisioningStarted,
    Granted,
    ProvisioningFailed,
    /// The approval could not be started (no approver reachable, OA start refused).
    ApprovalFailed,
    Revoked,
    Expired,
    Renewed,
    Reminded,
    /// An outbox job stopped retrying (permanent error or past its deadline).
    JobGaveUp,
    Note,
    /// Records written before the trail was hash-chained were chained, once, when the store
    /// was opened by a version that chains (the record says how many).
    TrailMigrated,
}

impl AuditEvent {
    /// The stable word for the event (exports, the JSON form): never changes once shipped.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::Requested => "requested",
            AuditEvent::Submitted => "submitted",
            AuditEvent::Approved => "approved",
            AuditEvent::Rejected => "rejected",
            AuditEvent::Cancelled => "cancelled",
            AuditEvent::TimedOut => "timed_out",
            AuditEvent::ProvisioningStarted => "provisioning_started",
            AuditEvent::Granted => "granted",
            AuditEvent::ProvisioningFailed => "provisioning_failed",
            AuditEvent::ApprovalFailed => "approval_failed",
            AuditEvent::Revoked => "revoked",
            AuditEvent::Expired => "expired",
            AuditEvent::Renewed => "renewed",
            AuditEvent::Reminded => "reminded",
            AuditEvent::JobGaveUp => "job_gave_up",
            AuditEvent::Note => "note",
            AuditEvent::TrailMigrated => "trail_migrated",
        }
    }
}

impl Actor {
    /// `user:<id>` or `system`, as exports write it.
    pub fn label(&self) -> String {
        match self {
            Actor::User(u) => format!("user:{u}"),
            Actor::System => "system".into(),
        }
    }
}

impl From<Action> for AuditEvent {
    fn from(a: Action) -> Self {
        match a {
            Action::Submit => AuditEvent::Submitted,
            Action::Approve => AuditEvent::Approved,
            Action::Reject => AuditEvent::Rejected,
            Action::Cancel => AuditEvent::Cancelled,
            Action::TimeOut => AuditEvent::TimedOut,
            Action::StartProvisioning => AuditEvent::ProvisioningStarted,
            Action::Provisioned => AuditEvent::Granted,
            Action::ProvisioningFailed => AuditEvent::ProvisioningFailed,
            Action::Expire => AuditEvent::Expired,
            Action::Revoke => AuditEvent::Revoked,
            Action::Renew => AuditEvent::Renewed,
            Action::ApprovalFailed => AuditEvent::ApprovalFailed,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: Timestamp,
    pub order_id: Option<OrderId>,
    pub actor: Actor,
    pub event: AuditEvent,
    pub from: Option<State>,
    pub to: Option<State>,
    /// Free text for humans (reason, permission name, error); never a secret.
    pub detail: String,
    /// What the order was about when this was written (filled by the store from the order the
    /// change writes), so the trail reads on its own after a renewal moved `until` or the
    /// order is gone. Absent on records no order is behind (a sync, a job of no order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<AuditSubject>,
}

/// An order as the audit trail remembers it at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSubject {
    pub requester: DingUserId,
    #[serde(default)]
    pub requester_name: String,
    /// The JumpServer username the requester maps to.
    #[serde(default)]
    pub jms_username: String,
    /// The hosts or system asked for, then the addresses granted (each once, as written).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The role key (`ops`, `readonly`); `None` for an account request.
    #[serde(default)]
    pub role: Option<String>,
    /// The logins JumpServer showed on the last read-back (or the account granted).
    #[serde(default)]
    pub logins: Vec<String>,
    /// When the access ends (the window's end), once approved.
    #[serde(default)]
    pub until: Option<Timestamp>,
    /// The requester's reason.
    #[serde(default)]
    pub reason: String,
}

impl AuditSubject {
    pub fn of(o: &Order) -> Self {
        let mut hosts: Vec<String> = Vec::new();
        let push = |h: String, hosts: &mut Vec<String>| {
            if !h.is_empty() && !hosts.iter().any(|x| x.eq_ignore_ascii_case(&h)) {
                hosts.push(h);
            }
        };
        for t in o.request.targets() {
            push(t.to_string(), &mut hosts);
        }
        let mut logins: Vec<String> = Vec::new();
        if let Some(g) = &o.grant {
            for h in &g.hosts {
                push(h.clone(), &mut hosts);
            }
            if let Some(rb) = &g.readback {
                for l in rb.hosts.iter().flat_map(|h| &h.logins) {
                    if !logins.contains(&l.username) {
                        logins.push(l.username.clone());
                    }
                }
            }
            if logins.is_empty() {
                logins.extend(g.account.clone());
            }
        }
        Self {
            requester: o.requester.clone(),
            requester_name: o.requester_name.clone(),
            jms_username: o.jms_username.clone(),
            hosts,
            role: o.request.role().map(|r| r.key().to_owned()),
            logins,
            until: o.window.as_ref().map(|w| w.end),
            reason: o.request.reason().to_owned(),
        }
    }
}

/// A record as the chain keeps it: its place, the hash of the record before it and its own
/// (lowercase hex SHA-256; see `store::audit` for the exact bytes hashed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedRecord {
    /// 1 for the first record, +1 for each after it, never reused.
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
    pub record: AuditRecord,
}

/// What to read from the trail. Every filter given must match; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub order: Option<OrderId>,
    /// A DingTalk userid (as actor or requester) or a JumpServer username (case-insensitive).
    pub user: Option<String>,
    /// A host address, host name or system name as requested or granted (case-insensitive).
    pub host: Option<String>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Newest (highest sequence number) first; oldest first otherwise.
    pub newest_first: bool,
    /// Matches to skip (pagination).
    pub offset: usize,
    /// Most records returned; 0 = no limit.
    pub limit: usize,
    /// DingTalk userids that count as `user` too: the store fills it with the requesters known
    /// by that JumpServer username, so their records from before the username was known match.
    pub user_aliases: Vec<String>,
}

impl AuditQuery {
    /// Whether `r` passes every filter.
    pub fn matches(&self, r: &AuditRecord) -> bool {
        if let Some(o) = &self.order {
            if r.order_id.as_ref() != Some(o) {
                return false;
            }
        }
        if let Some(u) = &self.user {
            let is = |x: &&str| {
                x.eq_ignore_ascii_case(u)
                    || self.user_aliases.iter().any(|a| x.eq_ignore_ascii_case(a))
            };
            if !r.users().iter().any(is) {
                return false;
            }
        }
        if let Some(h) = &self.host {
            let hosts = r.subject.as_ref().map(|s| &s.hosts[..]).unwrap_or_default();
            if !hosts.iter().any(|x| x.eq_ignore_ascii_case(h)) {
                return false;
            }
        }
        if self.since.is_some_and(|s| r.at < s) || self.until.is_some_and(|u| r.at >= u) {
            return false;
        }
        true
    }
}

/// One page of a query's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditPage {
    pub records: Vec<ChainedRecord>,
    /// All the records the query matches, on this page and the others.
    pub total: usize,
}

/// How the chain is broken at one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The record's bytes no longer hash to what was written (or it was rewritten with a new
    /// hash, which the next record's link exposes).
    Edited,
    /// Records are missing: a gap in the sequence numbers, or the newest ones are gone.
    Deleted,
    /// A record sits at another place than the one it was written at.
    Reordered,
    /// The stored bytes are not a record at all.
    Unreadable,
}

impl BreakKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakKind::Edited => "edited",
            BreakKind::Deleted => "deleted",
            BreakKind::Reordered => "reordered",
            BreakKind::Unreadable => "unreadable",
        }
    }
}

/// One place the chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    pub kind: BreakKind,
    /// The sequence number concerned (the first missing one for `Deleted`).
    pub seq: u64,
    /// For `Deleted`, the last missing sequence number; else `seq`.
    pub last_seq: u64,
    /// The record's time and order where it can still be read (for a deleted record, what the
    /// store's indexes still say about it, if anything).
    pub at: Option<Timestamp>,
    pub order_id: Option<OrderId>,
    /// For `Deleted`: the times of the records either side of the gap (the deleted ones were
    /// written between them; no `written_before` when the newest records are gone).
    #[serde(default)]
    pub written_after: Option<Timestamp>,
    #[serde(default)]
    pub written_before: Option<Timestamp>,
    /// What exactly does not match, in words.
    pub detail: String,
}

/// What walking the whole chain found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Records walked.
    pub count: u64,
    /// The newest record's sequence number and hash (`None` for an empty trail).
    pub head_seq: Option<u64>,
    pub head_hash: Option<String>,
    pub breaks: Vec<ChainBreak>,
}

impl ChainReport {
    pub fn is_intact(&self) -> bool {
        self.breaks.is_empty()
    }
}

impl AuditRecord {
    pub fn new(
        at: Timestamp,
        order_id: Option<OrderId>,
        actor: Actor,
        event: AuditEvent,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            at,
            order_id,
            actor,
            event,
            from: None,
            to: None,
            detail: detail.into(),
            subject: None,
        }
    }

    /// The people a record is about: the actor, and the requester (by DingTalk userid and
    /// JumpServer username) of the order it concerns.
    pub fn users(&self) -> Vec<&str> {
        let mut v = Vec::new();
        if let Actor::User(u) = &self.actor {
            v.push(u.as_str());
        }
        if let Some(s) = &self.subject {
            v.push(s.requester.as_str());
            if !s.jms_username.is_empty() {
                v.push(s.jms_username.as_str());
            }
        }
        v
    }

    /// The record for a state change; time and order come from the transition itself.
    pub fn for_transition(t: &Transition, actor: Actor, detail: impl Into<String>) -> Self {
        Self {
            at: t.order.updated_at,
            order_id: Some(t.order.id.clone()),
            actor,
            event: t.action.into(),
            from: Some(t.from),
            to: Some(t.to),
            detail: detail.into(),
            subject: Some(AuditSubject::of(&t.order)),
        }
    }
}
