//! Who sees what in the console (pure rules, no IO). Every route asks these functions on the
//! server; an order a viewer may not see is answered exactly like an order that does not exist
//! (404), so a guessed URL tells nothing.
//!
//! - **employee**: their own requests and grants;
//! - **approver**: also the orders they decided (or approved, when several approvals are
//!   needed) and the ones waiting for them;
//! - **admin** (`[policy] admins`) and **auditor** (`[console] auditors`): everything.
use crate::domain::audit::{Actor, AuditRecord};
use crate::domain::ids::DingUserId;
use crate::domain::order::{Order, State};
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Employee,
    Approver,
    /// Sees everything; `[policy] admins` or `[console] auditors`.
    Admin,
}

impl Role {
    pub fn key(self) -> &'static str {
        match self {
            Role::Employee => "employee",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

/// The people who see everything.
#[derive(Clone, Debug, Default)]
pub struct Overseers(pub BTreeSet<DingUserId>);

/// A logged-in person and what they may see.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub user: DingUserId,
    pub name: String,
    pub role: Role,
}

impl Viewer {
    /// `approvers`: everyone who may approve something (configured approvers, and whoever an
    /// order names).
    pub fn new(user: DingUserId, name: String, overseers: &Overseers, is_approver: bool) -> Self {
        let role = if overseers.0.contains(&user) {
            Role::Admin
        } else if is_approver {
            Role::Approver
        } else {
            Role::Employee
        };
        Self { user, name, role }
    }

    pub fn sees_everything(&self) -> bool {
        self.role == Role::Admin
    }

    /// The order waits for this viewer's decision.
    pub fn waits_for(&self, o: &Order) -> bool {
        o.state == State::PendingApproval
            && o.approvers.contains(&self.user)
            && !o.approvals.contains(&self.user)
    }

    /// This viewer decided (or approved) the order.
    pub fn decided(&self, o: &Order) -> bool {
        o.decided_by.as_ref() == Some(&self.user) || o.approvals.contains(&self.user)
    }

    pub fn can_see(&self, o: &Order) -> bool {
        self.sees_everything() || o.requester == self.user || self.decided(o) || self.waits_for(o)
    }

    /// An audit record is visible with its order; one without an order (a sync, a job that gave
    /// up) only to those who see everything, or to its own actor.
    pub fn can_see_record(&self, r: &AuditRecord, order: Option<&Order>) -> bool {
        match order {
            Some(o) => self.can_see(o),
            None => self.sees_everything() || r.actor == Actor::User(self.user.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::OrderId;
    use crate::domain::order::{ApprovalMode, NewOrder, Request};
    use jiff::Timestamp;

    fn order(requester: &str, approvers: &[&str]) -> Order {
        Order::new(
            NewOrder {
                id: OrderId::new("R261122-001"),
                requester: requester.into(),
                requester_name: requester.into(),
                jms_username: requester.into(),
                request: Request::Account { reason: "x".into() },
                approval_mode: ApprovalMode::Card,
                approvers: approvers.iter().map(|a| DingUserId::new(*a)).collect(),
            },
            Timestamp::UNIX_EPOCH,
        )
    }

    fn viewer(id: &str, admins: &[&str], approver: bool) -> Viewer {
        let o = Overseers(admins.iter().map(|a| DingUserId::new(*a)).collect());
        Viewer::new(id.into(), id.into(), &o, approver)
    }

    #[test]
    fn each_role_sees_its_own_share() {
        let mut o = order("zhangsan", &["lisi"]);
        let (me, other, approver, admin) = (
            viewer("zhangsan", &[], false),
            viewer("wangwu", &[], false),
            viewer("lisi", &[], true),
            viewer("zhaoliu", &["zhaoliu"], false),
        );
        assert_eq!(admin.role, Role::Admin);
        // Draft: nothing waits yet.
        assert!(me.can_see(&o) && admin.can_see(&o));
        assert!(!other.can_see(&o) && !approver.can_see(&o));
        o.state = State::PendingApproval;
        assert!(approver.can_see(&o) && approver.waits_for(&o));
        assert!(!other.can_see(&o));
        // Decided by someone else: no longer the approver's business.
        o.state = State::Rejected;
        o.decided_by = Some("zhaoliu".into());
        assert!(!approver.can_see(&o));
        o.decided_by = Some("lisi".into());
        assert!(approver.can_see(&o) && !approver.waits_for(&o));
    }
}
