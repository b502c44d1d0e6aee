//! The composite grant (recipe B, §5): user → hosts → node (only when a host must be created)
//! → permission, spending the fewest calls: ≤ 4 when every host exists, ≤ n + 4 for n new hosts
//! (caches warmed by `start`; +1 each when the user or the node must be created). Every step
//! looks before it creates and the permission name is the idempotency key, so replaying a plan
//! creates nothing. Also the read-only preview for approval cards, renew and revoke.
use super::api::{
    permission_accounts, validate_node_value, Host, NewHostSpec, NewPermissionSpec, NewUserSpec,
    Node, Permission,
};
use super::client::JmsClient;
use super::error::JmsError;
use crate::domain::ids::JmsUserId;
use jiff::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    pub name: String,
    pub email: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantPlan {
    pub username: String,
    /// Create the user when missing; `None` makes a missing user an error.
    pub new_user: Option<NewUser>,
    /// The system: a child node of the org root.
    pub node_name: String,
    /// IPs or hostnames.
    pub addresses: Vec<String>,
    /// Platform of hosts that must be created (e.g. `Linux`).
    pub platform: String,
    /// Account usernames (`readonly`, `ops`) or `@ALL`.
    pub accounts: Vec<String>,
    /// `connect`, `upload`, `download`, `copy`, `paste`, `delete`, `share` or `all`.
    pub actions: Vec<String>,
    /// Protocols for new hosts and for the grant; empty = platform defaults / all protocols.
    pub protocols: Vec<(String, u16)>,
    pub date_start: Timestamp,
    pub date_expired: Timestamp,
    /// Unique per org; derived from the order id by the caller.
    pub permission_name: String,
    pub comment: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRef {
    pub address: String,
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermissionResult {
    Created,
    AlreadyExisted,
    /// It existed with another end date; the end date was set to the plan's.
    ExpiryUpdated,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantOutcome {
    pub user_id: JmsUserId,
    pub user_created: bool,
    /// `false` when the JumpServer account is disabled: the grant exists but cannot be used
    /// until someone enables the user (the bot does not do that on its own).
    pub user_active: bool,
    /// Looked up only when a host had to be created.
    pub node: Option<Node>,
    pub node_created: bool,
    pub hosts_found: Vec<HostRef>,
    pub hosts_created: Vec<HostRef>,
    /// Existing hosts that are not under the plan's node (left where they are).
    pub hosts_outside_node: Vec<String>,
    pub permission: PermissionResult,
    pub permission_id: String,
}

impl GrantOutcome {
    /// Objects this grant created (user, node, hosts, permission).
    pub fn creates(&self) -> usize {
        usize::from(self.user_created)
            + usize::from(self.node_created)
            + self.hosts_created.len()
            + usize::from(self.permission == PermissionResult::Created)
    }
}

/// What a grant would do, for the approval card. Read-only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantPreview {
    pub user_exists: bool,
    pub user_id: Option<JmsUserId>,
    pub user_active: bool,
    pub node_exists: bool,
    pub hosts_existing: Vec<HostRef>,
    pub hosts_to_create: Vec<String>,
    pub permission_exists: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeOutcome {
    /// `false` when no permission had that name (already revoked).
    pub found: bool,
    pub permission_id: Option<String>,
}

const ACTIONS: [&str; 8] = [
    "connect", "upload", "download", "copy", "paste", "delete", "share", "all",
];

impl GrantPlan {
    /// Every check that needs no server, with messages a chat user can read.
    pub fn validate(&self) -> Result<(), JmsError> {
        let bad = |m: String| Err(JmsError::Invalid(m));
        if self.username.trim().is_empty() {
            return bad("username is empty".into());
        }
        if self.permission_name.trim().is_empty() || self.permission_name.len() > 128 {
            return bad("permission name must be 1..128 characters".into());
        }
        validate_node_value(&self.node_name)?;
        if self.addresses.is_empty() {
            return bad("no host address given".into());
        }
        for a in &self.addresses {
            let ok = !a.is_empty()
                && a.len() <= 253
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b));
            if !ok {
                return bad(format!("{a:?} is not an IP address or host name"));
            }
        }
        if self.platform.trim().is_empty() {
            return bad("platform is empty".into());
        }
        permission_accounts(&self.accounts)?;
        if self.actions.is_empty() {
            return bad("no action given (e.g. connect)".into());
        }
        if let Some(a) = self.actions.iter().find(|a| !ACTIONS.contains(&a.as_str())) {
            return bad(format!("unknown action {a:?}"));
        }
        if self.date_expired <= self.date_start {
            // The server accepts this (transcript 103) and the grant would never be valid.
            return bad("the end time must be after the start time".into());
        }
        if let Some(nu) = &self.new_user {
            if nu.name.trim().is_empty() || !nu.email.contains('@') {
                return bad("a new user needs a name and an e-mail".into());
            }
        }
        Ok(())
    }

    fn unique_addresses(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for a in &self.addresses {
            if !v.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                v.push(a.clone());
            }
        }
        v
    }
}

/// Several hosts may share an address (§4.4): prefer one already in the node, then one named
/// after the address, then the lowest id, so the choice is stable across runs.
fn pick<'a>(hosts: &'a [Host], address: &str, node_path: &str) -> Option<&'a Host> {
    let mut c: Vec<&Host> = hosts
        .iter()
        .filter(|h| h.address.eq_ignore_ascii_case(address))
        .collect();
    c.sort_by(|a, b| {
        let rank = |h: &Host| {
            (
                !h.nodes_display.iter().any(|d| d == node_path),
                h.name != address,
            )
        };
        rank(a).cmp(&rank(b)).then_with(|| a.id.cmp(&b.id))
    });
    c.first().copied()
}

/// The server keeps whole seconds; a plan with sub-second precision is still "the same time".
fn same_second(server: Option<Timestamp>, plan: Timestamp) -> bool {
    server.is_some_and(|t| t.as_second() == plan.as_second())
}

impl JmsClient {
    async fn node_path(&self, node_name: &str) -> Result<String, JmsError> {
        let root = self.root_node().await?;
        Ok(format!("{}/{node_name}", root.full_value))
    }

    /// Grants `plan` idempotently; see the module header for the call budget.
    pub async fn grant(&self, plan: &GrantPlan) -> Result<GrantOutcome, JmsError> {
        plan.validate()?;
        self.require_v3("grant").await?;
        let node_path = self.node_path(&plan.node_name).await?;

        let (user, user_created) = match self.find_user_by_username(&plan.username).await? {
            Some(u) => (u, false),
            None => match &plan.new_user {
                Some(nu) => {
                    self.create_user(&NewUserSpec {
                        name: nu.name.clone(),
                        username: plan.username.clone(),
                        email: nu.email.clone(),
                    })
                    .await?
                }
                None => {
                    return Err(JmsError::NotFound(format!(
                        "no JumpServer user named {}",
                        plan.username
                    )))
                }
            },
        };

        let addresses = plan.unique_addresses();
        let existing = self.find_hosts(&addresses).await?;
        let mut hosts_found = Vec::new();
        let mut missing = Vec::new();
        let mut hosts_outside_node = Vec::new();
        for a in &addresses {
            match pick(&existing, a, &node_path) {
                Some(h) => {
                    if !h.nodes_display.iter().any(|d| d == &node_path) {
                        hosts_outside_node.push(a.clone());
                    }
                    hosts_found.push(HostRef {
                        address: a.clone(),
                        id: h.id.clone(),
                    });
                }
                None => missing.push(a.clone()),
            }
        }

        let mut node = None;
        let mut node_created = false;
        let mut hosts_created = Vec::new();
        if !missing.is_empty() {
            let platform_id = self.platform_id(&plan.platform).await?;
            let (n, created) = self.ensure_child_node(&plan.node_name).await?;
            node_created = created;
            let protocols = if plan.protocols.is_empty() {
                self.inner.cfg.default_protocol_pairs()
            } else {
                plan.protocols.clone()
            };
            let account_usernames: Vec<String> = if self.inner.cfg.create_host_accounts {
                plan.accounts
                    .iter()
                    .filter(|a| !a.starts_with('@') && !a.starts_with('!') && !a.starts_with('%'))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            for a in &missing {
                let h = self
                    .create_host(&NewHostSpec {
                        name: a.clone(),
                        address: a.clone(),
                        platform_id,
                        node_id: Some(n.id.clone()),
                        protocols: protocols.clone(),
                        account_usernames: account_usernames.clone(),
                        comment: "created by accessbot".into(),
                    })
                    .await?;
                hosts_created.push(HostRef {
                    address: a.clone(),
                    id: h.id,
                });
            }
            node = Some(n);
        }

        let mut asset_ids: Vec<String> = hosts_found.iter().map(|h| h.id.clone()).collect();
        asset_ids.extend(hosts_created.iter().map(|h| h.id.clone()));
        let mut protocols: Vec<String> = Vec::new();
        for (p, _) in &plan.protocols {
            if !protocols.contains(p) {
                protocols.push(p.clone());
            }
        }
        let spec = NewPermissionSpec {
            name: plan.permission_name.clone(),
            user_ids: vec![user.id.as_str().to_owned()],
            asset_ids,
            node_ids: Vec::new(),
            accounts: plan.accounts.clone(),
            protocols,
            actions: plan.actions.clone(),
            date_start: plan.date_start,
            date_expired: plan.date_expired,
            comment: plan.comment.clone(),
        };
        let (perm, created) = self.create_permission(&spec).await?;
        let permission = if created {
            PermissionResult::Created
        } else if !same_second(perm.date_expired, plan.date_expired) {
            self.set_permission_expiry(&perm.id, plan.date_expired)
                .await?;
            PermissionResult::ExpiryUpdated
        } else {
            PermissionResult::AlreadyExisted
        };
        Ok(GrantOutcome {
            user_active: user.is_active,
            user_id: user.id,
            user_created,
            node,
            node_created,
            hosts_found,
            hosts_created,
            hosts_outside_node,
            permission,
            permission_id: perm.id,
        })
    }

    /// What `grant(plan)` would find and create; makes no change.
    pub async fn preview(&self, plan: &GrantPlan) -> Result<GrantPreview, JmsError> {
        plan.validate()?;
        self.require_v3("grant").await?;
        let node_path = self.node_path(&plan.node_name).await?;
        let user = self.find_user_by_username(&plan.username).await?;
        let node = self.find_child_node(&plan.node_name).await?;
        let addresses = plan.unique_addresses();
        let existing = self.find_hosts(&addresses).await?;
        let mut hosts_existing = Vec::new();
        let mut hosts_to_create = Vec::new();
        for a in &addresses {
            match pick(&existing, a, &node_path) {
                Some(h) => hosts_existing.push(HostRef {
                    address: a.clone(),
                    id: h.id.clone(),
                }),
                None => hosts_to_create.push(a.clone()),
            }
        }
        let permission_exists = self.find_permission(&plan.permission_name).await?.is_some();
        Ok(GrantPreview {
            user_exists: user.is_some(),
            user_active: user.as_ref().is_some_and(|u| u.is_active),
            user_id: user.map(|u| u.id),
            node_exists: node.is_some(),
            hosts_existing,
            hosts_to_create,
            permission_exists,
        })
    }

    /// Deletes the permission named `permission_name`; a second call finds nothing and succeeds.
    pub async fn revoke(&self, permission_name: &str) -> Result<RevokeOutcome, JmsError> {
        match self.find_permission(permission_name).await? {
            None => Ok(RevokeOutcome {
                found: false,
                permission_id: None,
            }),
            Some(p) => {
                self.delete_permission(&p.id).await?;
                Ok(RevokeOutcome {
                    found: true,
                    permission_id: Some(p.id),
                })
            }
        }
    }

    /// Moves the end of the permission named `permission_name` to `new_expiry`.
    pub async fn renew(
        &self,
        permission_name: &str,
        new_expiry: Timestamp,
    ) -> Result<Permission, JmsError> {
        let p = self
            .find_permission(permission_name)
            .await?
            .ok_or_else(|| JmsError::NotFound(format!("no permission named {permission_name}")))?;
        if same_second(p.date_expired, new_expiry) {
            return Ok(p);
        }
        self.set_permission_expiry(&p.id, new_expiry).await
    }
}
