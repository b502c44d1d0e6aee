//! The work a committed decision causes, as the workflow names it: grant, revoke, cards, OA,
//! notices. Pure data; `store::outbox` keeps these in the same transaction as the decision and
//! the worker runs them. Serialized into sled: keep old variants decodable.
use crate::domain::ids::DingUserId;
use crate::domain::notice::{Audience, Notice};
use serde::{Deserialize, Serialize};

/// What a job does. The workflow adds kinds as it needs them; keep old ones decodable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// Create the JumpServer permission (look first by `Order::permission_name`).
    Grant,
    /// Delete or disable the permission.
    Revoke,
    /// Move the permission's `date_expired` to the order's new window end.
    Renew,
    /// Tell `to` about the order, rendered from the order as it is when the job runs. (Kinds
    /// `notify_requester` / `notify_user` / `notify_approvers` / `notify_admins`, with a
    /// template name and string parameters, were written before notices were typed; they no
    /// longer decode and the outbox parks them with a log line.)
    Notify {
        to: Audience,
        notice: Notice,
    },
    SendApprovalRequest {
        approver: DingUserId,
    },
    /// Refresh every card of the order to its current state (buttons off once decided).
    UpdateCards,
    StartOaApproval,
    /// Resolve the requester's identity and preview the JumpServer change, then submit.
    Prepare,
    /// Withdraw the order's OA approval instance.
    TerminateOaApproval,
    /// Disable a JumpServer user (the person left the organisation).
    DisableJmsUser {
        username: String,
    },
    /// Rebuild the local JumpServer index (`/sync`) and tell `requested_by` the result. Its key
    /// does not name the requester, so a second `/sync` while one is queued is the same job.
    Sync {
        requested_by: DingUserId,
    },
}

impl JobKind {
    /// Whether running the job a second time is something a person notices: it sends a chat
    /// message (DingTalk's robot send has no idempotency key). Such a job's completion is
    /// written to disk before the runner moves on, so a crash cannot bring it back; the other
    /// kinds re-run harmlessly (they look before they act). A new kind that messages someone
    /// belongs here.
    pub fn repeat_is_visible(&self) -> bool {
        match self {
            JobKind::Notify { .. }
            // An action-card message when no card template is configured (a card is keyed by
            // its outTrackId and would not double, but the kind does not say which).
            | JobKind::SendApprovalRequest { .. }
            // Tells the admin who asked how the sync went.
            | JobKind::Sync { .. } => true,
            JobKind::Grant
            | JobKind::Revoke
            | JobKind::Renew
            | JobKind::UpdateCards
            | JobKind::StartOaApproval
            | JobKind::Prepare
            | JobKind::TerminateOaApproval
            | JobKind::DisableJmsUser { .. } => false,
        }
    }

    /// Short stable name, part of the job id: the same kind enqueued twice for the same order
    /// version is the same job.
    pub fn key(&self) -> String {
        match self {
            JobKind::Grant => "grant".into(),
            JobKind::Revoke => "revoke".into(),
            JobKind::Renew => "renew".into(),
            JobKind::Notify { to, notice } => format!("notify-{}.{}", to.key(), notice.name()),
            JobKind::SendApprovalRequest { approver } => format!("send-approval.{approver}"),
            JobKind::UpdateCards => "update-cards".into(),
            JobKind::StartOaApproval => "start-oa".into(),
            JobKind::Prepare => "prepare".into(),
            JobKind::TerminateOaApproval => "terminate-oa".into(),
            JobKind::DisableJmsUser { username } => format!("disable-jms-user.{username}"),
            JobKind::Sync { .. } => "sync".into(),
        }
    }

    /// A notice to the order's requester.
    pub fn tell_requester(notice: Notice) -> Self {
        JobKind::Notify {
            to: Audience::Requester,
            notice,
        }
    }

    /// A notice to the administrators.
    pub fn tell_admins(notice: Notice) -> Self {
        JobKind::Notify {
            to: Audience::Admins,
            notice,
        }
    }

    /// A notice to the order's approvers (but whoever decided).
    pub fn tell_approvers(notice: Notice) -> Self {
        JobKind::Notify {
            to: Audience::Approvers,
            notice,
        }
    }
}
