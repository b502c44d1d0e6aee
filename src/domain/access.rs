//! What JumpServer says a user can reach, read back after every grant, renewal and revocation.
//! Every message about access is built from these values, never from the plan: a permission
//! JumpServer accepted can still give no usable login (`[@SPEC, ops]` on a host without an
//! `ops` account is accepted and lists `permed_accounts: []`, transcript 167), and a disabled
//! user keeps valid-looking grants (transcript 168).
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How a login reaches the host (`permed_accounts[].alias`, transcript 167).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginKind {
    /// A real account on the host (`ops`, `readonly`, `root`).
    Account,
    /// `@USER`: the user's own JumpServer username, no stored secret.
    SameUser,
    /// `@INPUT`: the user types a username and password when connecting.
    ManualInput,
}

/// One login the user may use on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub username: String,
    pub kind: LoginKind,
    /// The latest end among the valid permissions that grant this login.
    pub until: Option<Timestamp>,
}

/// One host as JumpServer grants it to the user now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAccess {
    pub id: String,
    pub name: String,
    pub address: String,
    /// The logins of this order that JumpServer lists for the user on this host (for `@ALL`,
    /// every listed login). Empty: the host is granted but nothing can log in through it.
    pub logins: Vec<Login>,
    /// Logins this order grants that JumpServer does not list here: the account does not
    /// exist on the host, so the grant gives no usable login through it.
    pub missing: Vec<String>,
}

impl HostAccess {
    /// `name (address)`, or just one when they are the same.
    pub fn label(&self) -> String {
        host_label(&self.name, &self.address)
    }
}

/// `name (address)`, or just one when they are the same or one is empty.
pub fn host_label(name: &str, address: &str) -> String {
    if name.is_empty() || name.eq_ignore_ascii_case(address) {
        address.to_owned()
    } else if address.is_empty() {
        name.to_owned()
    } else {
        format!("{name} ({address})")
    }
}

/// A whole-system grant as read back: the node and how many hosts the user reaches in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAccess {
    pub id: String,
    pub path: String,
    pub hosts: u64,
}

/// The order's permission as JumpServer holds it after the write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionState {
    pub name: String,
    pub id: String,
    pub is_active: bool,
    pub is_valid: bool,
    pub until: Option<Timestamp>,
}

/// What the user can reach, read from JumpServer at `at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadBack {
    pub at: Timestamp,
    /// The JumpServer username the access belongs to.
    pub username: String,
    pub user_id: String,
    /// A disabled JumpServer user cannot log in whatever the grants say.
    pub user_active: bool,
    /// `None` when the permission is gone (deleted, or never created).
    pub permission: Option<PermissionState>,
    /// The order's hosts the user reaches now, in the order's order.
    pub hosts: Vec<HostAccess>,
    /// The order's hosts the user does not reach at all (by label).
    pub unreachable: Vec<String>,
    /// Set for a whole-system grant.
    pub node: Option<NodeAccess>,
}

impl ReadBack {
    /// Hosts where JumpServer lists at least one login of this order.
    pub fn usable_hosts(&self) -> Vec<&HostAccess> {
        self.hosts.iter().filter(|h| !h.logins.is_empty()).collect()
    }

    /// Whether the user can connect through this order somewhere: active user, valid
    /// permission, and a usable login on a host (or a whole system with hosts in it).
    pub fn usable(&self) -> bool {
        self.user_active
            && self.permission.as_ref().is_some_and(|p| p.is_valid)
            && (self.node.as_ref().is_some_and(|n| n.hosts > 0) || !self.usable_hosts().is_empty())
    }

    /// `(host label, username)` for every granted login that does not exist on its host.
    pub fn missing_logins(&self) -> Vec<(String, String)> {
        self.hosts
            .iter()
            .flat_map(|h| h.missing.iter().map(move |u| (h.label(), u.clone())))
            .collect()
    }
}

/// How a revocation ended in JumpServer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokedHow {
    /// `is_active: false`: kept for the record, invisible to every "valid" query.
    Deactivated,
    Deleted,
    /// Nothing by that name was there any more.
    AlreadyGone,
    /// A permission by that name exists but does not carry our marker: left untouched.
    NotOurs,
}

/// The end of a grant (revoke, give-back, expiry) as it happened in JumpServer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub how: RevokedHow,
    /// Live sessions the terminals were asked to end (when configured).
    pub sessions_ended: u32,
    /// Whether ending sessions was attempted at all (configured).
    pub sessions_checked: bool,
}
