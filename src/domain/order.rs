//! The order: one request for access, from the ask to its end. Owns the state machine (pure: every
//! transition is a function from the current order to a new one, or a typed refusal), the stable
//! identities every side effect derives from (permission name, card outTrackIds), the order id
//! format, and the deadlines the scheduler must watch. No IO, no clock: callers pass the time.
//!
//! Versions are not bumped here: the store owns the version counter, because only the store knows
//! which version it compared against (compare-and-swap lives in `store::orders`).
//!
//! Longer than 600 lines on purpose: the state table (`Action::allowed_from`), the transitions
//! that obey it and the identities and deadlines they imply are read together when the state
//! machine changes; its unit tests are at the end.
use crate::domain::access::{ReadBack, Revocation};
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::ownership::{self, Marker};
/// What the requester asked for (its own file; re-exported here, where orders are).
pub use crate::domain::request::Request;
use jiff::{civil::Date, SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// Interactive cards sent to each approver; first decision wins.
    Card,
    /// A DingTalk OA approval instance (process code from config); its result event decides.
    Oa,
}

/// Where the approval lives outside us; recorded so an incoming event finds its order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRefs {
    pub oa_instance_id: Option<String>,
    pub card_track_ids: Vec<String>,
    /// When the first attempt to start the OA instance began, recorded before the call: the
    /// start has no idempotency key, so a retry that finds this without an instance id first
    /// looks for an instance started since then (a lost answer, or a crash before recording).
    #[serde(default)]
    pub oa_start_attempted_at: Option<Timestamp>,
    /// Approvers whose approval request could not be delivered for good; when it is every
    /// approver, nobody can decide and the order fails.
    #[serde(default)]
    pub undelivered: Vec<DingUserId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Draft,
    PendingApproval,
    Approved,
    Provisioning,
    Active,
    Expired,
    Revoked,
    Rejected,
    Cancelled,
    /// Provisioning failed; the outbox is still retrying until the order's retry deadline.
    FailedRetrying,
    /// Provisioning failed for good; an admin has been told.
    Failed,
}

impl State {
    pub const ALL: [State; 11] = [
        State::Draft,
        State::PendingApproval,
        State::Approved,
        State::Provisioning,
        State::Active,
        State::Expired,
        State::Revoked,
        State::Rejected,
        State::Cancelled,
        State::FailedRetrying,
        State::Failed,
    ];

    /// Stable name used in storage index keys and logs (never shown to users untranslated).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::PendingApproval => "pending_approval",
            State::Approved => "approved",
            State::Provisioning => "provisioning",
            State::Active => "active",
            State::Expired => "expired",
            State::Revoked => "revoked",
            State::Rejected => "rejected",
            State::Cancelled => "cancelled",
            State::FailedRetrying => "failed_retrying",
            State::Failed => "failed",
        }
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        Action::ALL
            .iter()
            .all(|a| !a.allowed_from().contains(&self))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an order stands as people are told: its [`State`], with what the state alone does not
/// say (a failed order either never reached an approver or failed to be granted). Replies,
/// status lines and labels all derive from this one value (see `Order::status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    PendingApproval,
    Approved,
    Provisioning,
    Active,
    Expired,
    Revoked,
    Rejected,
    Cancelled,
    /// Granting failed and is being retried.
    Retrying,
    /// Granting failed for good.
    Failed,
    /// The approval could not be started; nobody decided.
    ApprovalFailed,
}

/// Every way an order can move. `allowed_from` is the whole table of the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Submit,
    Approve,
    Reject,
    Cancel,
    /// Nobody decided before the pending-approval deadline.
    TimeOut,
    StartProvisioning,
    Provisioned,
    ProvisioningFailed,
    Expire,
    Revoke,
    Renew,
    /// The approval could not be started (no card reached any approver, or the OA instance
    /// could not be created) and retrying will not help: the order fails before a decision.
    ApprovalFailed,
}

impl Action {
    pub const ALL: [Action; 12] = [
        Action::Submit,
        Action::Approve,
        Action::Reject,
        Action::Cancel,
        Action::TimeOut,
        Action::StartProvisioning,
        Action::Provisioned,
        Action::ProvisioningFailed,
        Action::Expire,
        Action::Revoke,
        Action::Renew,
        Action::ApprovalFailed,
    ];

    pub fn allowed_from(self) -> &'static [State] {
        use State::*;
        match self {
            Action::Submit => &[Draft],
            Action::Approve | Action::Reject | Action::TimeOut | Action::ApprovalFailed => {
                &[PendingApproval]
            }
            Action::Cancel => &[Draft, PendingApproval],
            // A retrying order goes back through Provisioning for each attempt.
            Action::StartProvisioning => &[Approved, FailedRetrying],
            Action::Provisioned | Action::ProvisioningFailed => &[Provisioning],
            Action::Expire | Action::Renew => &[Active],
            // Revoking something not yet active is allowed: the revoke job deletes whatever the
            // grant may have created (by its stable name), so a racing grant cannot leak access.
            Action::Revoke => &[Approved, Provisioning, Active, FailedRetrying],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Submit => "submit",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Cancel => "cancel",
            Action::TimeOut => "time_out",
            Action::StartProvisioning => "start_provisioning",
            Action::Provisioned => "provisioned",
            Action::ProvisioningFailed => "provisioning_failed",
            Action::Expire => "expire",
            Action::Revoke => "revoke",
            Action::Renew => "renew",
            Action::ApprovalFailed => "approval_failed",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The access window. Starts when the order is approved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The JumpServer change a grant will make, as shown to approvers (filled before approval).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePreview {
    /// The JumpServer user exists already (else it is created, when policy allows).
    pub user_exists: bool,
    pub user_active: bool,
    /// Node (system) the permission or new hosts go to.
    pub node: String,
    /// The whole node is granted (a request for a system), not single hosts.
    #[serde(default)]
    pub whole_node: bool,
    pub hosts_existing: Vec<String>,
    pub hosts_to_create: Vec<String>,
    pub accounts: Vec<String>,
    pub actions: Vec<String>,
    /// Hosts of this request the requester can already reach, with the end of that access.
    pub already: Vec<(String, Option<Timestamp>)>,
    /// Why JumpServer could not be asked (the approval then says the preview is missing).
    pub unavailable: Option<String>,
    /// The existing JumpServer user the grant goes to when it is not the mapped username: found
    /// by e-mail (the mapped name is free but the e-mail is taken, transcript 171) or in another
    /// letter case. `(username, by_email)`.
    #[serde(default)]
    pub user_matched: Option<(String, bool)>,
    /// Granted logins that do not exist on a host: `(host, username)`. The grant would give no
    /// usable login there (transcript 167).
    #[serde(default)]
    pub missing_logins: Vec<(String, String)>,
    /// The permission name the grant will use.
    #[serde(default)]
    pub permission_name: String,
    /// A permission of this order exists already (an earlier attempt): it will be repaired to
    /// the plan.
    #[serde(default)]
    pub permission_repair: bool,
    /// Names held by permissions that are not ours; they are left alone and skipped.
    #[serde(default)]
    pub name_conflicts: Vec<String>,
    /// New hosts whose natural name another host holds: `(address, name used instead)`.
    #[serde(default)]
    pub hosts_renamed: Vec<(String, String)>,
    /// Requested names that match several hosts: `(name, candidates)`; the grant cannot guess.
    #[serde(default)]
    pub ambiguous: Vec<(String, Vec<String>)>,
    /// `(asked for, address)` of every requested host found in JumpServer (host names
    /// resolved), which policy routes by the `[[systems]]` ranges.
    #[serde(default)]
    pub resolved: Vec<(String, String)>,
}

/// What the grant created in JumpServer; needed to revoke it and to tell the requester.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantResult {
    pub permission_name: Option<String>,
    pub permission_id: Option<String>,
    pub hosts: Vec<String>,
    pub account: Option<String>,
    /// What JumpServer grants, read back after the last write (grant, renewal, revocation).
    #[serde(default)]
    pub readback: Option<ReadBack>,
    /// Permission names held by objects without our marker, skipped; admins are told.
    #[serde(default)]
    pub name_conflicts: Vec<String>,
    /// How the grant ended in JumpServer (revoke, give-back, expiry).
    #[serde(default)]
    pub revocation: Option<Revocation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub reason: String,
    /// Provisioning attempts that failed so far.
    pub attempts: u32,
    /// Retrying stops here; `None` means the failure is final.
    pub retry_until: Option<Timestamp>,
}

/// How an order ended without a grant being in force (cancel, timeout, revoke, expiry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    /// `None` when the system closed it (timeout, expiry).
    pub by: Option<DingUserId>,
    pub at: Timestamp,
    pub reason: Option<String>,
}

/// Reminders already sent, so a restart (which rebuilds deadlines) does not send them twice.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminders {
    pub approval_reminded_at: Option<Timestamp>,
    /// The window end that the expiry reminder was sent for; a renewal makes it stale.
    pub expiry_reminded_for_end: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub requester: DingUserId,
    pub requester_name: String,
    /// The JumpServer username the requester maps to (shown to approvers).
    pub jms_username: String,
    pub request: Request,
    pub approval_mode: ApprovalMode,
    pub approvers: Vec<DingUserId>,
    #[serde(default)]
    pub approval_refs: ApprovalRefs,
    pub state: State,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub window: Option<Window>,
    pub decided_by: Option<DingUserId>,
    pub decided_at: Option<Timestamp>,
    pub decision_reason: Option<String>,
    pub grant: Option<GrantResult>,
    pub failure: Option<Failure>,
    pub closure: Option<Closure>,
    #[serde(default)]
    pub reminders: Reminders,
    /// Approvers who approved so far (several when `approvals_required` > 1), in order.
    #[serde(default)]
    pub approvals: Vec<DingUserId>,
    /// What the grant will change in JumpServer, worked out before the approval is asked for,
    /// so approvers see the exact change.
    #[serde(default)]
    pub preview: Option<ChangePreview>,
    /// The requester's e-mail from the directory; needed when the grant creates their user.
    #[serde(default)]
    pub requester_email: Option<String>,
    /// The installation that made the order (`domain::ownership`); empty for orders stored
    /// before installation ids existed, which keep their old permission name.
    #[serde(default)]
    pub installation: String,
    /// Who asked for it when it is someone else's (`/apply for <user> …`): they are told
    /// what the requester is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filed_by: Option<DingUserId>,
    /// Compare-and-swap counter, owned by the store: +1 on every stored change.
    pub version: u64,
}

/// The result of a successful transition: the new order (version unchanged; the store bumps it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub action: Action,
    pub order: Order,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TransitionError {
    /// The order is not in a state this action starts from (double tap, late event, race).
    /// The caller has the current order and can say "already approved by X at T".
    #[error("cannot {action} an order that is {from}")]
    NotAllowed { from: State, action: Action },
    #[error("the access window only ends at {end}")]
    TooEarly { end: Timestamp },
    #[error("invalid renewal: {0}")]
    InvalidRenewal(String),
    #[error("the access window does not fit in the calendar (duration {secs}s)")]
    WindowOverflow { secs: i64 },
}

/// What a new order is made from (everything the workflow knows before it exists).
#[derive(Clone, Debug)]
pub struct NewOrder {
    pub id: OrderId,
    pub requester: DingUserId,
    pub requester_name: String,
    pub jms_username: String,
    pub request: Request,
    pub approval_mode: ApprovalMode,
    pub approvers: Vec<DingUserId>,
}

impl Order {
    /// A new order in `Draft`; `submit` moves it to `PendingApproval` (usually straight away).
    pub fn new(n: NewOrder, at: Timestamp) -> Self {
        Self {
            id: n.id,
            requester: n.requester,
            requester_name: n.requester_name,
            jms_username: n.jms_username,
            request: n.request,
            approval_mode: n.approval_mode,
            approvers: n.approvers,
            approval_refs: ApprovalRefs::default(),
            state: State::Draft,
            created_at: at,
            updated_at: at,
            window: None,
            decided_by: None,
            decided_at: None,
            decision_reason: None,
            grant: None,
            failure: None,
            closure: None,
            reminders: Reminders::default(),
            approvals: Vec::new(),
            preview: None,
            requester_email: None,
            installation: String::new(),
            filed_by: None,
            version: 0,
        }
    }

    /// Where the order stands, as people are told.
    pub fn status(&self) -> Status {
        match self.state {
            State::Draft | State::PendingApproval => Status::PendingApproval,
            State::Approved => Status::Approved,
            State::Provisioning => Status::Provisioning,
            State::Active => Status::Active,
            State::Expired => Status::Expired,
            State::Revoked => Status::Revoked,
            State::Rejected => Status::Rejected,
            State::Cancelled => Status::Cancelled,
            State::FailedRetrying => Status::Retrying,
            State::Failed if self.decided_at.is_none() => Status::ApprovalFailed,
            State::Failed => Status::Failed,
        }
    }

    /// Name of the JumpServer asset permission this order creates. Stable, so "look before
    /// create" finds an earlier attempt's permission after a crash.
    pub fn permission_name(&self) -> String {
        ownership::permission_name(&self.installation, &self.id, 1)
    }

    /// The name the grant actually used (a later attempt when a foreign permission held the
    /// first), else the first name.
    pub fn granted_permission_name(&self) -> String {
        self.grant
            .as_ref()
            .and_then(|g| g.permission_name.clone())
            .unwrap_or_else(|| self.permission_name())
    }

    /// The ownership marker of everything this order makes in JumpServer.
    pub fn marker(&self) -> Marker {
        Marker {
            installation: self.installation.clone(),
            order: self.id.clone(),
        }
    }

    /// outTrackId of the approval card sent to `approver`. DingTalk keys card updates by it, so
    /// re-sending after a crash updates the same card instead of posting a second one.
    pub fn card_track_id(&self, approver: &DingUserId) -> String {
        // userids may contain characters outTrackId does not like; hex keeps it safe and stable.
        format!(
            "ab-{}-{}",
            self.id,
            hex::encode(approver.as_str().as_bytes())
        )
    }

    /// outTrackId of the status card shown to the requester.
    pub fn requester_card_track_id(&self) -> String {
        format!("ab-{}-req", self.id)
    }

    /// Business key for the OA approval instance (shown in the form, used to find it again).
    pub fn oa_business_key(&self) -> String {
        format!("accessbot-{}", self.id)
    }

    pub fn is_approver(&self, user: &DingUserId) -> bool {
        self.approvers.iter().any(|a| a == user)
    }

    fn check(&self, action: Action) -> Result<(), TransitionError> {
        if action.allowed_from().contains(&self.state) {
            Ok(())
        } else {
            Err(TransitionError::NotAllowed {
                from: self.state,
                action,
            })
        }
    }

    fn moved(
        &self,
        action: Action,
        to: State,
        at: Timestamp,
        edit: impl FnOnce(&mut Order),
    ) -> Transition {
        let mut order = self.clone();
        order.state = to;
        order.updated_at = at;
        edit(&mut order);
        Transition {
            from: self.state,
            to,
            action,
            order,
        }
    }

    pub fn submit(&self, at: Timestamp) -> Result<Transition, TransitionError> {
        self.check(Action::Submit)?;
        Ok(self.moved(Action::Submit, State::PendingApproval, at, |_| {}))
    }

    /// Approval opens the window: it runs from `at` for the requested duration.
    pub fn approve(&self, by: &DingUserId, at: Timestamp) -> Result<Transition, TransitionError> {
        self.check(Action::Approve)?;
        let window = match self.request.duration() {
            None => None,
            // The end the requester named holds while it is ahead; approved after it passed,
            // the window falls back to the length they asked for, counted from now.
            Some(_) if self.request.ends_at().is_some_and(|e| e > at) => Some(Window {
                start: at,
                end: self.request.ends_at().unwrap_or(at),
            }),
            Some(d) => {
                let end = at
                    .checked_add(d)
                    .map_err(|_| TransitionError::WindowOverflow { secs: d.as_secs() })?;
                Some(Window { start: at, end })
            }
        };
        Ok(self.moved(Action::Approve, State::Approved, at, |o| {
            o.decided_by = Some(by.clone());
            o.decided_at = Some(at);
            o.window = window;
        }))
    }

    pub fn reject(
        &self,
        by: &DingUserId,
        at: Timestamp,
        reason: Option<String>,
    ) -> Result<Transition, TransitionError> {
        self.check(Action::Reject)?;
        Ok(self.moved(Action::Reject, State::Rejected, at, |o| {
            o.decided_by = Some(by.clone());
            o.decided_at = Some(at);
            o.decision_reason = reason;
        }))
    }

    pub fn cancel(&self, by: &DingUserId, at: Timestamp) -> Result<Transition, TransitionError> {
        self.check(Action::Cancel)?;
        Ok(self.moved(Action::Cancel, State::Cancelled, at, |o| {
            o.closure = Some(Closure {
                by: Some(by.clone()),
                at,
                reason: None,
            });
        }))
    }

    /// The approval could not be started for good; the order is `Failed` before any decision,
    /// with the reason kept for `/status`.
    pub fn approval_failed(
        &self,
        reason: impl Into<String>,
        at: Timestamp,
    ) -> Result<Transition, TransitionError> {
        self.check(Action::ApprovalFailed)?;
        let reason = reason.into();
        Ok(self.moved(Action::ApprovalFailed, State::Failed, at, |o| {
            o.failure = Some(Failure {
                reason,
                attempts: 0,
                retry_until: None,
            });
        }))
    }

    /// Nobody decided in time; the order is cancelled by the system.
    pub fn time_out(&self, at: Timestamp) -> Result<Transition, TransitionError> {
        self.check(Action::TimeOut)?;
        Ok(self.moved(Action::TimeOut, State::Cancelled, at, |o| {
            o.closure = Some(Closure {
                by: None,
                at,
                reason: Some("approval timed out".into()),
            });
        }))
    }

    pub fn start_provisioning(&self, at: Timestamp) -> Result<Transition, TransitionError> {
        self.check(Action::StartProvisioning)?;
        Ok(self.moved(Action::StartProvisioning, State::Provisioning, at, |_| {}))
    }

    pub fn provisioned(
        &self,
        result: GrantResult,
        at: Timestamp,
    ) -> Result<Transition, TransitionError> {
        self.check(Action::Provisioned)?;
        Ok(self.moved(Action::Provisioned, State::Active, at, |o| {
            o.grant = Some(result);
        }))
    }

    /// Records a failed attempt. With `retry_until` in the future the order keeps retrying
    /// (`FailedRetrying`); otherwise the failure is final (`Failed`).
    pub fn provisioning_failed(
        &self,
        reason: impl Into<String>,
        retry_until: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<Transition, TransitionError> {
        self.check(Action::ProvisioningFailed)?;
        let retry_until = retry_until.filter(|u| *u > at);
        let to = if retry_until.is_some() {
            State::FailedRetrying
        } else {
            State::Failed
        };
        let attempts = self.failure.as_ref().map_or(0, |f| f.attempts) + 1;
        let reason = reason.into();
        Ok(self.moved(Action::ProvisioningFailed, to, at, |o| {
            o.failure = Some(Failure {
                reason,
                attempts,
                retry_until,
            });
        }))
    }

    /// Ends an active grant at the end of its window. Refused before the end, so a stale
    /// deadline (the window was renewed meanwhile) cannot cut access short.
    pub fn expire(&self, at: Timestamp) -> Result<Transition, TransitionError> {
        self.check(Action::Expire)?;
        if let Some(w) = self.window {
            if at < w.end {
                return Err(TransitionError::TooEarly { end: w.end });
            }
        }
        Ok(self.moved(Action::Expire, State::Expired, at, |o| {
            o.closure = Some(Closure {
                by: None,
                at,
                reason: None,
            });
        }))
    }

    pub fn revoke(
        &self,
        by: Option<&DingUserId>,
        reason: Option<String>,
        at: Timestamp,
    ) -> Result<Transition, TransitionError> {
        self.check(Action::Revoke)?;
        Ok(self.moved(Action::Revoke, State::Revoked, at, |o| {
            o.closure = Some(Closure {
                by: by.cloned(),
                at,
                reason,
            });
        }))
    }

    /// Moves the end of an active window. Only host grants have a window; the new end must be
    /// in the future (shortening is allowed: it is how "give it back early" can be done).
    pub fn renew(&self, new_end: Timestamp, at: Timestamp) -> Result<Transition, TransitionError> {
        self.check(Action::Renew)?;
        let Some(w) = self.window else {
            return Err(TransitionError::InvalidRenewal(
                "this order has no time window".into(),
            ));
        };
        if new_end <= at {
            return Err(TransitionError::InvalidRenewal(
                "the new end is not in the future".into(),
            ));
        }
        Ok(self.moved(Action::Renew, State::Active, at, |o| {
            o.window = Some(Window {
                start: w.start,
                end: new_end,
            });
        }))
    }

    /// Records the OA approval instance once it is created (not a state change; still versioned
    /// so the store indexes it and an approval result event finds the order).
    pub fn with_oa_instance(&self, instance_id: impl Into<String>, at: Timestamp) -> Order {
        let mut o = self.clone();
        o.approval_refs.oa_instance_id = Some(instance_id.into());
        o.updated_at = at;
        o
    }

    /// Marks the OA start as attempted; the first attempt's time is kept, since an instance
    /// from any earlier attempt must still fall inside the window searched on a retry.
    pub fn with_oa_start_attempt(&self, at: Timestamp) -> Order {
        let mut o = self.clone();
        if o.approval_refs.oa_start_attempted_at.is_none() {
            o.approval_refs.oa_start_attempted_at = Some(at);
        }
        o.updated_at = at;
        o
    }

    /// Records a delivered card's outTrackId (idempotent: recording it twice keeps one entry).
    pub fn with_card_track_id(&self, track_id: impl Into<String>, at: Timestamp) -> Order {
        let mut o = self.clone();
        let t = track_id.into();
        if !o.approval_refs.card_track_ids.contains(&t) {
            o.approval_refs.card_track_ids.push(t);
        }
        o.updated_at = at;
        o
    }

    /// The order unchanged but for its time: a change that only adds audit or jobs.
    pub fn touched(&self, at: Timestamp) -> Order {
        let mut o = self.clone();
        o.updated_at = at;
        o
    }

    /// Records what JumpServer said after a later write (renewal read-back, revocation); not a
    /// state change, still versioned.
    pub fn with_grant(&self, grant: GrantResult, at: Timestamp) -> Order {
        let mut o = self.clone();
        o.grant = Some(grant);
        o.updated_at = at;
        o
    }

    /// Records an approver the approval request could not reach (not a state change).
    pub fn with_undelivered(&self, approver: &DingUserId, at: Timestamp) -> Order {
        let mut o = self.clone();
        if !o.approval_refs.undelivered.contains(approver) {
            o.approval_refs.undelivered.push(approver.clone());
        }
        o.updated_at = at;
        o
    }

    /// Whether no approver can decide: every approval request failed to arrive.
    pub fn nobody_can_decide(&self) -> bool {
        !self.approvers.is_empty()
            && self
                .approvers
                .iter()
                .all(|a| self.approval_refs.undelivered.contains(a))
    }

    /// Records one approval that does not yet complete the order (`approvals_required` > 1).
    pub fn with_approval(&self, by: &DingUserId, at: Timestamp) -> Order {
        let mut o = self.clone();
        if !o.approvals.contains(by) {
            o.approvals.push(by.clone());
        }
        o.updated_at = at;
        o
    }

    /// Records that the approvers were reminded (not a state change; still versioned).
    pub fn mark_approval_reminded(&self, at: Timestamp) -> Order {
        let mut o = self.clone();
        o.reminders.approval_reminded_at = Some(at);
        o.updated_at = at;
        o
    }

    /// Records that the requester was told the window is about to end.
    pub fn mark_expiry_reminded(&self, at: Timestamp) -> Order {
        let mut o = self.clone();
        o.reminders.expiry_reminded_for_end = self.window.map(|w| w.end);
        o.updated_at = at;
        o
    }

    /// The deadlines the scheduler must watch for this order in its current state, earliest
    /// first. Reminders already sent are left out, so rebuilding after a restart is safe.
    pub fn deadlines(&self, p: &DeadlinePolicy) -> Vec<(Timestamp, DeadlineKind)> {
        let mut out = Vec::new();
        match self.state {
            State::PendingApproval => {
                if let Some(after) = p.approval_reminder_after {
                    if self.reminders.approval_reminded_at.is_none() {
                        if let Ok(t) = self.created_at.checked_add(after) {
                            out.push((t, DeadlineKind::ApprovalReminder));
                        }
                    }
                }
                if let Ok(t) = self.created_at.checked_add(p.approval_timeout) {
                    out.push((t, DeadlineKind::ApprovalTimeout));
                }
            }
            State::Active => {
                if let Some(w) = self.window {
                    if let Some(lead) = p.expiry_reminder_before {
                        let reminded = self.reminders.expiry_reminded_for_end == Some(w.end);
                        if let Ok(t) = w.end.checked_sub(lead) {
                            // A window shorter than the lead time gets no reminder: the
                            // requester was just told when it ends.
                            if !reminded && t > w.start {
                                out.push((t, DeadlineKind::ExpiryReminder));
                            }
                        }
                    }
                    out.push((w.end, DeadlineKind::Expiry));
                }
            }
            _ => {}
        }
        out.sort();
        out
    }
}

/// Kinds of deadlines the scheduler fires. Order matters: at equal times a reminder fires first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    ApprovalReminder,
    ApprovalTimeout,
    ExpiryReminder,
    Expiry,
}

/// Timing of the deadlines (from config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadlinePolicy {
    /// A pending order nobody decides is cancelled after this long.
    pub approval_timeout: SignedDuration,
    /// Approvers get one reminder after this long (None: never).
    pub approval_reminder_after: Option<SignedDuration>,
    /// The requester is told this long before the window ends (None: never).
    pub expiry_reminder_before: Option<SignedDuration>,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        Self {
            approval_timeout: SignedDuration::from_hours(24),
            approval_reminder_after: Some(SignedDuration::from_hours(2)),
            expiry_reminder_before: Some(SignedDuration::from_hours(1)),
        }
    }
}

/// Order id format: `R` + local date `yymmdd` + `-` + that day's counter, at least 3 digits,
/// e.g. `R261122-007`. Short and typeable on a phone (digits only after the letter), sortable
/// by day, and unique because the counter is persisted per day by the store (see
/// `store::orders::Orders::next_id`). sled's `generate_id` was not used: it jumps by two
/// million after every restart, which would make ids long.
pub fn format_order_id(date: Date, counter: u64) -> OrderId {
    OrderId::new(format!(
        "R{:02}{:02}{:02}-{:03}",
        date.year().rem_euclid(100),
        date.month(),
        date.day(),
        counter
    ))
}

/// Accepts what a user may type for an order id: any case, surrounding spaces, an optional
/// leading `#`, full-width digits/hyphen from Chinese input methods. `None` if it cannot be one.
pub fn parse_order_id(input: &str) -> Option<OrderId> {
    let s: String = input
        .trim()
        .trim_start_matches(['#', '＃'])
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '－' | '—' | '–' => '-',
            'ｒ' | 'Ｒ' | 'r' => 'R',
            other => other,
        })
        .collect();
    let rest = s.strip_prefix('R')?;
    let (date, counter) = rest.split_once('-')?;
    let ok = date.len() == 6
        && date.bytes().all(|b| b.is_ascii_digit())
        && (1..=12).contains(&counter.len())
        && counter.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| OrderId::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_id_format_and_lenient_parse() {
        let d = jiff::civil::date(2026, 11, 2);
        assert_eq!(format_order_id(d, 7).as_str(), "R261102-007");
        assert_eq!(format_order_id(d, 12345).as_str(), "R261102-12345");
        assert_eq!(
            parse_order_id(" #r261102-007 ").map(|i| i.0),
            Some("R261102-007".to_string())
        );
        assert_eq!(
            parse_order_id("Ｒ２６１１０２－００７").map(|i| i.0),
            Some("R261102-007".to_string())
        );
        for bad in [
            "",
            "R",
            "R2611-1",
            "X261102-1",
            "R261102-",
            "R261102-1a",
            "R261102-1-2",
        ] {
            assert_eq!(parse_order_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn terminal_states_are_the_ones_without_exits() {
        let terminal: Vec<State> = State::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            terminal,
            vec![
                State::Expired,
                State::Revoked,
                State::Rejected,
                State::Cancelled,
                State::Failed
            ]
        );
    }

    #[test]
    fn approval_refs_without_the_start_marker_still_load_and_the_first_attempt_is_kept() {
        let old: ApprovalRefs =
            serde_json::from_str(r#"{"oa_instance_id":null,"card_track_ids":["t1"]}"#)
                .expect("refs written before the marker existed");
        assert_eq!(old.oa_start_attempted_at, None);
        assert_eq!(old.card_track_ids, vec!["t1".to_string()]);

        let t1: Timestamp = "2026-11-22T02:00:00Z".parse().expect("t1");
        let t2: Timestamp = "2026-11-22T02:05:00Z".parse().expect("t2");
        let o = Order::new(
            NewOrder {
                id: OrderId::new("R261122-001"),
                requester: DingUserId::new("alice01"),
                requester_name: "张三".into(),
                jms_username: "alice".into(),
                request: Request::Account {
                    reason: "onboarding".into(),
                },
                approval_mode: ApprovalMode::Oa,
                approvers: vec![DingUserId::new("boss01")],
            },
            t1,
        );
        let o = o.with_oa_start_attempt(t1).with_oa_start_attempt(t2);
        assert_eq!(o.approval_refs.oa_start_attempted_at, Some(t1));
        assert_eq!(o.updated_at, t2);
        let back: Order =
            serde_json::from_str(&serde_json::to_string(&o).expect("ser")).expect("round trip");
        assert_eq!(back.approval_refs.oa_start_attempted_at, Some(t1));
    }
}
