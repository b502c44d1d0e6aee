//! What JumpServer holds, as the local index records it (users, hosts, nodes, asset
//! permissions) and what `/who-has` reads from it. Pure data and JumpServer's validity rule; the
//! bastion adapter fills a [`Snapshot`], the store keeps generations of it (`store::index`).
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedUser {
    pub id: String,
    pub username: String,
    pub name: String,
    pub email: String,
    pub is_active: bool,
}

impl IndexedUser {
    /// `Name(username)`, the way JumpServer shows a user.
    pub fn display(&self) -> String {
        if self.name.is_empty() || self.name == self.username {
            self.username.clone()
        } else {
            format!("{}({})", self.name, self.username)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedHost {
    pub id: String,
    pub name: String,
    pub address: String,
    pub node_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedNode {
    pub id: String,
    /// Tree key such as `1:3:5`; a node is under another when its key extends the other's.
    pub key: String,
    pub full_value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedPermission {
    pub id: String,
    pub name: String,
    /// Users the permission reaches, user groups already expanded.
    pub user_ids: Vec<String>,
    pub asset_ids: Vec<String>,
    pub node_ids: Vec<String>,
    pub accounts: Vec<String>,
    pub actions: Vec<String>,
    pub is_active: bool,
    pub date_start: Option<Timestamp>,
    pub date_expired: Option<Timestamp>,
}

impl IndexedPermission {
    /// JumpServer's rule: active and `date_start <= now < date_expired` (a missing bound is
    /// open).
    pub fn is_valid(&self, now: Timestamp) -> bool {
        self.is_active
            && self.date_start.is_none_or(|s| s <= now)
            && self.date_expired.is_none_or(|e| now < e)
    }
}

/// Which member a row of one of JumpServer's permission relation tables names
/// (`asset-permissions-{users,user-groups,assets,nodes}-relations/`, transcripts 160-163).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Member {
    User,
    UserGroup,
    Asset,
    Node,
}

impl Member {
    pub const ALL: [Member; 4] = [Member::User, Member::UserGroup, Member::Asset, Member::Node];
}

/// One relation row: permission `permission` names `member`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub permission: String,
    pub member: String,
}

/// How far a sync's walk has got, for progress messages and the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// JumpServer requests the walk has made (retries of one request count once).
    pub calls: u64,
    /// Rows read so far, every list together.
    pub rows: u64,
    /// Rows the lists said they hold (their `count`s), as far as the walk has seen them.
    pub rows_expected: u64,
}

/// Everything one sync read from JumpServer (tests and benches write a whole one at once; a
/// real sync streams page by page through `ports::InventorySink`).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub users: Vec<IndexedUser>,
    pub hosts: Vec<IndexedHost>,
    pub nodes: Vec<IndexedNode>,
    pub permissions: Vec<IndexedPermission>,
}

/// What the current generation holds and when it was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStats {
    pub generation: u64,
    pub synced_at: Timestamp,
    /// How long reading JumpServer and writing the index took.
    pub duration_ms: u64,
    pub users: usize,
    pub hosts: usize,
    pub nodes: usize,
    pub permissions: usize,
    /// Permissions valid at `synced_at`.
    pub valid_permissions: usize,
    /// Relation rows (permission to user, group, host or node) and group memberships.
    #[serde(default)]
    pub relations: usize,
    /// JumpServer requests the sync took (0 for an index written without a walk).
    #[serde(default)]
    pub calls: u64,
}

/// One user reaching one host through one valid permission. The parts are shared between
/// rows: a host's answer has a row per user and permission, and copying the host and the
/// permission into each was a fifth of a `/who-has <host>` query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    pub user: Arc<IndexedUser>,
    pub host: Arc<IndexedHost>,
    pub permission: Arc<ReachPermission>,
}

/// What a `Reach` row says of its permission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReachPermission {
    pub id: String,
    pub name: String,
    pub accounts: Vec<String>,
    pub actions: Vec<String>,
    pub date_expired: Option<Timestamp>,
}

impl From<&IndexedPermission> for ReachPermission {
    fn from(p: &IndexedPermission) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            accounts: p.accounts.clone(),
            actions: p.actions.clone(),
            date_expired: p.date_expired,
        }
    }
}

/// Hosts a grant names in a bounded answer (`/who-has <user>`): the first ones in address
/// order; `Grant::host_count` has them all.
pub const GRANT_HOSTS_SHOWN: usize = 10;

/// One valid permission of a user and the hosts it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub permission_id: String,
    pub permission_name: String,
    /// In address order (10.0.0.9 before 10.0.0.10; names after addresses): all of them, or
    /// in a bounded answer the first `GRANT_HOSTS_SHOWN`.
    pub hosts: Vec<IndexedHost>,
    /// How many hosts the grant covers (`hosts.len()` unless the answer is bounded).
    pub host_count: usize,
    pub accounts: Vec<String>,
    pub actions: Vec<String>,
    pub date_expired: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAccess {
    pub user: IndexedUser,
    pub grants: Vec<Grant>,
}
