//! The work a committed decision causes, as the workflow names it: grant, revoke, cards, OA,
//! notices. Pure data; `store::outbox` keeps these in the same transaction as the decision and
//! the worker runs them. Serialized into sled: keep old variants decodable.
use crate::domain::ids::DingUserId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    NotifyRequester {
        template: String,
        #[serde(default)]
        params: BTreeMap<String, String>,
    },
    SendApprovalRequest {
        approver: DingUserId,
    },
    /// Refresh every card of the order to its current state (buttons off once decided).
    UpdateCards,
    StartOaApproval,
    NotifyAdmins {
        template: String,
        #[serde(default)]
        params: BTreeMap<String, String>,
    },
    /// Resolve the requester's identity and preview the JumpServer change, then submit.
    Prepare,
    /// A 1:1 message to one user about the order (e.g. the approver who decided by text).
    NotifyUser {
        user: DingUserId,
        template: String,
        #[serde(default)]
        params: BTreeMap<String, String>,
    },
    /// A message to every approver of the order (text-mode approvals: "decided by X").
    NotifyApprovers {
        template: String,
        #[serde(default)]
        params: BTreeMap<String, String>,
    },
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
    /// Short stable name, part of the job id: the same kind enqueued twice for the same order
    /// version is the same job.
    pub fn key(&self) -> String {
        match self {
            JobKind::Grant => "grant".into(),
            JobKind::Revoke => "revoke".into(),
            JobKind::Renew => "renew".into(),
            JobKind::NotifyRequester { template, .. } => format!("notify-requester.{template}"),
            JobKind::SendApprovalRequest { approver } => format!("send-approval.{approver}"),
            JobKind::UpdateCards => "update-cards".into(),
            JobKind::StartOaApproval => "start-oa".into(),
            JobKind::NotifyAdmins { template, .. } => format!("notify-admins.{template}"),
            JobKind::Prepare => "prepare".into(),
            JobKind::NotifyUser { user, template, .. } => {
                format!("notify-user.{user}.{template}")
            }
            JobKind::NotifyApprovers { template, .. } => format!("notify-approvers.{template}"),
            JobKind::TerminateOaApproval => "terminate-oa".into(),
            JobKind::DisableJmsUser { username } => format!("disable-jms-user.{username}"),
            JobKind::Sync { .. } => "sync".into(),
        }
    }
}
