//! The audit vocabulary: who did what to which order, and what it moved. Pure data; the store
//! appends records in the same transaction as the order change they describe (`store::audit`),
//! so the trail can never disagree with the orders.
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::order::{Action, State, Transition};
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
        }
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
        }
    }
}
