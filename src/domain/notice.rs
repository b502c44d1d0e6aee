//! What the bot tells people about an order, as typed effects: one [`Notice`] variant per
//! message and the [`Audience`] it goes to. Jobs carry them (`JobKind::Notify`); `chat::notice`
//! renders every variant in one exhaustive `match`, so a notice without a text does not compile.
//! A notice carries only what the order does not say at send time (who, how many, what failed):
//! the text is built from the order as it is when the notice is sent.
use crate::domain::ids::DingUserId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Who a notice goes to, resolved when it is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Audience {
    /// The order's requester.
    Requester,
    /// One person (e.g. the approver who granted what is being renewed).
    User(DingUserId),
    /// Every approver of the order except whoever decided it.
    Approvers,
    /// The configured administrators.
    Admins,
}

impl Audience {
    /// Part of the job key: the same notice to the same audience for the same order version is
    /// one job.
    pub fn key(&self) -> String {
        match self {
            Audience::Requester => "requester".into(),
            Audience::User(u) => format!("user.{u}"),
            Audience::Approvers => "approvers".into(),
            Audience::Admins => "admins".into(),
        }
    }
}

/// What went wrong after a decision, in the words a requester is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// JumpServer could not be reached or answered with a server error; we keep retrying.
    JumpServerUnavailable,
    /// JumpServer refused to create the user (e.g. e-mail already taken).
    UserCreateFailed,
    /// No JumpServer user and `auto_create_user = false`.
    UserMissing,
    /// A host in the request is not in JumpServer.
    HostNotFound,
    /// The grant itself was refused.
    GrantFailed,
    /// The OA approval could not be started.
    ApprovalStartFailed,
    /// A message to DingTalk could not be delivered.
    NotifyFailed,
    Internal,
}

/// One message about an order. Serialized into the outbox: keep old variants decodable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// The request went to its approvers (said only while it is still pending).
    Submitted,
    /// The access (or the account) is ready, from what JumpServer reads back.
    Granted,
    /// `by` approved; `remaining` approvals are still needed.
    ApprovedWaiting {
        by: DingUserId,
        remaining: u32,
    },
    Rejected,
    /// Text-mode approvals: the other approvers hear who decided.
    Decided {
        approved: bool,
    },
    /// Approvers: a request is still waiting for them.
    Reminder,
    Cancelled,
    /// The OA instance was withdrawn in DingTalk.
    WithdrawnOa,
    TimedOut,
    Expired,
    /// `by_name`: the revoker's name as DingTalk gave it; empty: whoever closed the order.
    Revoked {
        by_name: String,
    },
    Renewed {
        old_end: Option<Timestamp>,
        /// The role's longest window cut the renewal short.
        capped: bool,
    },
    /// The approver who granted it sees the new end.
    #[serde(rename = "renewed_approver")]
    RenewedForApprover {
        old_end: Option<Timestamp>,
    },
    /// The approver who granted it: the holder gave the access back early (`/done`).
    GivenBack,
    /// The window ends soon (with a one-tap renewal).
    ExpiryReminder,
    Failed {
        kind: FailureKind,
        detail: String,
    },
    /// Admins: the grant failed for good.
    AdminFailed {
        detail: String,
    },
    /// The requester could not be mapped to a JumpServer user.
    IdentityFailed {
        detail: String,
    },
    /// Refused before approval (ambiguous host, policy, missing login).
    NotTaken {
        detail: String,
    },
    /// `/apply account` for someone who has one.
    AccountExists,
    /// Admins: a leaver's grant was revoked.
    LeftOrg,
    /// Admins: permission names held by others were skipped.
    NameConflicts,
    /// Admins: hosts without the role's login; `refused`: the request was refused for it.
    MissingLogins {
        refused: bool,
    },
    /// Admins: the permission to revoke is not ours.
    RevokeNotOurs {
        name: String,
    },
    /// Admins: a revoke gave up; JumpServer may still grant it.
    RevokeFailed {
        detail: String,
    },
    /// A renewal gave up (requester and admins).
    RenewFailed {
        detail: String,
    },
    /// The approval could not be started.
    ApprovalFailed,
    /// Admins: what failed and which setting to fix.
    ApprovalFailedAdmin {
        reason: String,
    },
    /// Admins: one approver cannot be reached.
    ApproverUnreachable {
        approver: DingUserId,
        reason: String,
    },
    /// Admins: a person did not get a message about their order.
    NoticeUndelivered {
        detail: String,
    },
    /// Admins: cards or an OA instance were left showing an old state.
    CleanupFailed {
        detail: String,
    },
}

impl Notice {
    /// Stable short name: part of the job key and of what the admins hear when a notice could
    /// not be delivered.
    pub fn name(&self) -> &'static str {
        match self {
            Notice::Submitted => "submitted",
            Notice::Granted => "granted",
            Notice::ApprovedWaiting { .. } => "approved_waiting",
            Notice::Rejected => "rejected",
            Notice::Decided { .. } => "decided",
            Notice::Reminder => "reminder",
            Notice::Cancelled => "cancelled",
            Notice::WithdrawnOa => "withdrawn_oa",
            Notice::TimedOut => "timed_out",
            Notice::Expired => "expired",
            Notice::Revoked { .. } => "revoked",
            Notice::Renewed { .. } => "renewed",
            Notice::RenewedForApprover { .. } => "renewed_approver",
            Notice::GivenBack => "given_back",
            Notice::ExpiryReminder => "expiry_reminder",
            Notice::Failed { .. } => "failed",
            Notice::AdminFailed { .. } => "admin_failed",
            Notice::IdentityFailed { .. } => "identity_failed",
            Notice::NotTaken { .. } => "not_taken",
            Notice::AccountExists => "account_exists",
            Notice::LeftOrg => "left_org",
            Notice::NameConflicts => "name_conflicts",
            Notice::MissingLogins { .. } => "missing_logins",
            Notice::RevokeNotOurs { .. } => "revoke_not_ours",
            Notice::RevokeFailed { .. } => "revoke_failed",
            Notice::RenewFailed { .. } => "renew_failed",
            Notice::ApprovalFailed => "approval_failed",
            Notice::ApprovalFailedAdmin { .. } => "approval_failed_admin",
            Notice::ApproverUnreachable { .. } => "approver_unreachable",
            Notice::NoticeUndelivered { .. } => "notice_undelivered",
            Notice::CleanupFailed { .. } => "cleanup_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialized_tags() {
        let all = [
            Notice::RenewedForApprover { old_end: None },
            Notice::GivenBack,
            Notice::ApprovedWaiting {
                by: DingUserId::new("bob"),
                remaining: 1,
            },
            Notice::Failed {
                kind: FailureKind::HostNotFound,
                detail: "x".into(),
            },
            Notice::WithdrawnOa,
        ];
        for n in all {
            let v = serde_json::to_value(&n).expect("ser");
            assert_eq!(v["type"], n.name());
            let back: Notice = serde_json::from_value(v).expect("de");
            assert_eq!(back, n);
        }
    }
}
