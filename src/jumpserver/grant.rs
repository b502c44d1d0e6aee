//! The composite grant (recipe B, §5): user → hosts → node (only when a host must be created)
//! → permission → accounts check (only when the permission was created), spending the fewest
//! calls. With the caches `start` warms
//! (version, root node, platform, the root's direct children):
//! - every host exists: 4 (user, hosts, accounts, permission); 3 with `@ALL` or when no found
//!   host has accounts;
//! - n new hosts: n + 3, or n + 4 when some of the hosts exist too (their accounts are checked);
//! - +1 each when the user or the node must be created, or when the node appeared after `start`
//!   (one lookup, then cached);
//! - a re-run whose permission exists: user, hosts, create (refused: name exists) and one GET for
//!   its id — 4; the accounts check is skipped, it ran when the permission was created;
//! - an empty address list grants the node itself (a whole system): user → node → permission,
//!   2 calls with the node cached.
//!
//! The accounts check asks by host when there are no more hosts than granted usernames (a
//! single host is always one call), else once per username: one call while the org has ≤ 1000
//! accounts of that username (the v4.10.8+ page cap), a page more per 1000 beyond.
//!
//! Every step looks before it creates and the permission name is the idempotency key, so
//! replaying a plan creates nothing. Also the read-only preview for approval cards, renew, revoke.
//!
//! Missing accounts are reported, not created. An `@SPEC` grant names account usernames; when a
//! host lacks one, JumpServer still accepts the grant but the user cannot log in with it (§4.7:
//! `permed_accounts: []`). Recipe B step 3 shows how to add accounts in bulk, but the bot has no
//! secret for them: it would create empty logins on hosts administrators own, suggesting a login
//! that does not exist on the machine, and spend a call beyond the budget. So the outcome names
//! the missing (host, account) pairs in words for the chat, and an administrator decides.
//! Hosts the bot creates itself get the accounts inline (`create_host_accounts`).
use super::api::{
    granted_usernames, permission_accounts, validate_node_value, Host, NewHostSpec,
    NewPermissionSpec, NewUserSpec, Node, Permission,
};
use super::client::JmsClient;
use super::error::{JmsError, Words};
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
    /// IPs or hostnames. Empty = grant the node itself (the whole system, including hosts
    /// added to it later); the node is found or created by value.
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

/// A granted account username that does not exist on a granted host: the grant is in place,
/// but that login does not work there until an administrator adds the account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingAccount {
    pub address: String,
    pub username: String,
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
    /// The permission is on the node (whole system), not on listed hosts.
    pub node_grant: bool,
    /// Set for a node grant, or when a host had to be created.
    pub node: Option<Node>,
    pub node_created: bool,
    pub hosts_found: Vec<HostRef>,
    pub hosts_created: Vec<HostRef>,
    /// Existing hosts that are not under the plan's node (left where they are).
    pub hosts_outside_node: Vec<String>,
    /// Granted usernames absent on granted hosts (not checked for node grants, whose host set
    /// changes over time; JumpServer resolves accounts when the user connects).
    pub accounts_missing: Vec<MissingAccount>,
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

    /// Sentences for the chat user about what will not work yet (empty when all is usable);
    /// `english = false` gives zh-CN.
    pub fn notices(&self, english: bool) -> Vec<String> {
        notices(self.user_active, &self.accounts_missing, english)
    }
}

/// What a grant would do, for the approval card. Read-only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantPreview {
    pub user_exists: bool,
    pub user_id: Option<JmsUserId>,
    pub user_active: bool,
    pub node_grant: bool,
    pub node_exists: bool,
    pub hosts_existing: Vec<HostRef>,
    pub hosts_to_create: Vec<String>,
    /// Granted usernames absent on existing hosts (and on hosts to create when the bot does not
    /// create accounts on them).
    pub accounts_missing: Vec<MissingAccount>,
    pub permission_exists: bool,
}

impl GrantPreview {
    /// Same sentences as `GrantOutcome::notices`, for the approver before approving.
    pub fn notices(&self, english: bool) -> Vec<String> {
        notices(
            !self.user_exists || self.user_active,
            &self.accounts_missing,
            english,
        )
    }
}

fn notices(user_active: bool, missing: &[MissingAccount], english: bool) -> Vec<String> {
    let mut out = Vec::new();
    if !user_active {
        out.push(if english {
            "The JumpServer account is disabled: the grant cannot be used until an administrator enables it.".to_owned()
        } else {
            "该 JumpServer 账号已被禁用：管理员启用之前无法使用此授权。".to_owned()
        });
    }
    // One sentence per account username, listing its hosts in plan order.
    let mut usernames: Vec<&str> = Vec::new();
    for m in missing {
        if !usernames.contains(&m.username.as_str()) {
            usernames.push(&m.username);
        }
    }
    for u in usernames {
        let hosts: Vec<&str> = missing
            .iter()
            .filter(|m| m.username == u)
            .map(|m| m.address.as_str())
            .collect();
        out.push(if english {
            format!(
                "Account \"{u}\" does not exist on {}: the grant is in place, but that login will not work there until an administrator adds the account.",
                hosts.join(", ")
            )
        } else {
            format!(
                "主机 {} 上没有账号“{u}”：授权已生效，但在管理员添加该账号之前无法用它登录这些主机。",
                hosts.join("、")
            )
        });
    }
    out
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
        let bad = |en: String, zh: String| Err(JmsError::Invalid(Words::new(en, zh)));
        if self.username.trim().is_empty() {
            return bad("username is empty".into(), "用户名为空".into());
        }
        if self.permission_name.trim().is_empty() || self.permission_name.len() > 128 {
            return bad(
                "permission name must be 1..128 characters".into(),
                "授权名称长度须为 1 到 128 个字符".into(),
            );
        }
        if self.addresses.is_empty() && self.node_name.trim().is_empty() {
            return bad(
                "name the hosts, or the system to grant as a whole".into(),
                "请给出主机地址，或要整体授权的系统名称".into(),
            );
        }
        validate_node_value(&self.node_name)?;
        for a in &self.addresses {
            let ok = !a.is_empty()
                && a.len() <= 253
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b));
            if !ok {
                return bad(
                    format!("{a:?} is not an IP address or host name"),
                    format!("{a:?} 不是 IP 地址或主机名"),
                );
            }
        }
        if self.platform.trim().is_empty() {
            return bad("platform is empty".into(), "平台为空".into());
        }
        permission_accounts(&self.accounts)?;
        if self.actions.is_empty() {
            return bad(
                "no action given (e.g. connect)".into(),
                "没有给出操作（例如 connect）".into(),
            );
        }
        if let Some(a) = self.actions.iter().find(|a| !ACTIONS.contains(&a.as_str())) {
            return bad(format!("unknown action {a:?}"), format!("未知操作 {a:?}"));
        }
        if self.date_expired <= self.date_start {
            // The server accepts this (transcript 103) and the grant would never be valid.
            return bad(
                "the end time must be after the start time".into(),
                "结束时间必须晚于开始时间".into(),
            );
        }
        if let Some(nu) = &self.new_user {
            if nu.name.trim().is_empty() || !nu.email.contains('@') {
                return bad(
                    "a new user needs a name and an e-mail".into(),
                    "新用户需要姓名和邮箱".into(),
                );
            }
        }
        Ok(())
    }

    /// `true` when the plan grants the node itself rather than listed hosts.
    pub fn is_node_grant(&self) -> bool {
        self.addresses.is_empty()
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

    fn permission_spec(
        &self,
        user_id: &JmsUserId,
        assets: Vec<String>,
        nodes: Vec<String>,
    ) -> NewPermissionSpec {
        let mut protocols: Vec<String> = Vec::new();
        for (p, _) in &self.protocols {
            if !protocols.contains(p) {
                protocols.push(p.clone());
            }
        }
        NewPermissionSpec {
            name: self.permission_name.clone(),
            user_ids: vec![user_id.as_str().to_owned()],
            asset_ids: assets,
            node_ids: nodes,
            accounts: self.accounts.clone(),
            protocols,
            actions: self.actions.clone(),
            date_start: self.date_start,
            date_expired: self.date_expired,
            comment: self.comment.clone(),
        }
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

/// The hosts among `ids` that may have accounts: a list row saying `accounts_amount: 0` needs
/// no lookup (every granted username is missing there).
fn with_accounts(hosts: &[Host], ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter(|id| {
            hosts
                .iter()
                .find(|h| &h.id == *id)
                .is_none_or(|h| h.accounts_amount != Some(0))
        })
        .cloned()
        .collect()
}

/// A 400 that names the `nodes` field: the node id we sent (from the cache) is gone.
fn rejects_node(e: &JmsError) -> bool {
    matches!(e, JmsError::Rejected { problems, .. } if problems.iter().any(|p| p.field == "nodes"))
}

impl JmsClient {
    async fn node_path(&self, node_name: &str) -> Result<String, JmsError> {
        let root = self.root_node().await?;
        Ok(format!("{}/{node_name}", root.full_value))
    }

    /// The plan's node id from the cache (no call), when every found host sits in it.
    fn cached_node_scope(
        &self,
        plan: &GrantPlan,
        node_path: &str,
        hosts_outside_node: &[String],
    ) -> Option<String> {
        if !hosts_outside_node.is_empty() {
            return None;
        }
        super::client::lock(&self.inner.child_nodes)
            .get(&plan.node_name)
            .filter(|n| n.full_value == node_path)
            .map(|n| n.id.clone())
    }

    async fn grant_user(&self, plan: &GrantPlan) -> Result<(super::api::JmsUser, bool), JmsError> {
        match self.find_user_by_username(&plan.username).await? {
            Some(u) => Ok((u, false)),
            None => match &plan.new_user {
                Some(nu) => {
                    self.create_user(&NewUserSpec {
                        name: nu.name.clone(),
                        username: plan.username.clone(),
                        email: nu.email.clone(),
                    })
                    .await
                }
                None => Err(JmsError::NotFound(Words::new(
                    format!("no JumpServer user named {}", plan.username),
                    format!("JumpServer 中没有用户 {}", plan.username),
                ))),
            },
        }
    }

    /// Creates the permission, or finds it by name and moves its end to the plan's.
    async fn grant_permission(
        &self,
        plan: &GrantPlan,
        spec: &NewPermissionSpec,
    ) -> Result<(Permission, PermissionResult), JmsError> {
        let (perm, created) = self.create_permission(spec).await?;
        if created {
            Ok((perm, PermissionResult::Created))
        } else if !same_second(perm.date_expired, plan.date_expired) {
            let p = self
                .set_permission_expiry(&perm.id, plan.date_expired)
                .await?;
            Ok((p, PermissionResult::ExpiryUpdated))
        } else {
            Ok((perm, PermissionResult::AlreadyExisted))
        }
    }

    /// Grants `plan` idempotently; see the module header for the call budget.
    pub async fn grant(&self, plan: &GrantPlan) -> Result<GrantOutcome, JmsError> {
        plan.validate()?;
        self.require_v3("grant").await?;
        if plan.is_node_grant() {
            return self.grant_node(plan).await;
        }
        let node_path = self.node_path(&plan.node_name).await?;
        let (user, user_created) = self.grant_user(plan).await?;

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

        let usernames = granted_usernames(&plan.accounts);
        let mut node = None;
        let mut node_created = false;
        let mut hosts_created = Vec::new();
        let mut accounts_missing = Vec::new();
        if !missing.is_empty() {
            let platform_id = self.platform_id(&plan.platform).await?;
            let (mut n, created, mut cached) = self.child_node_cached(&plan.node_name).await?;
            node_created = created;
            let protocols = if plan.protocols.is_empty() {
                self.inner.cfg.default_protocol_pairs()
            } else {
                plan.protocols.clone()
            };
            let inline_accounts = self.inner.cfg.create_host_accounts;
            for a in &missing {
                let mut spec = NewHostSpec {
                    name: a.clone(),
                    address: a.clone(),
                    platform_id,
                    node_id: Some(n.id.clone()),
                    protocols: protocols.clone(),
                    account_usernames: if inline_accounts {
                        usernames.clone()
                    } else {
                        Vec::new()
                    },
                    comment: "created by accessbot".into(),
                };
                let h = match self.create_host(&spec).await {
                    Err(e) if cached && rejects_node(&e) => {
                        // Deleted since we cached it: look again (creating it if need be).
                        self.forget_child_node(&plan.node_name);
                        let (fresh, created) = self.ensure_child_node(&plan.node_name).await?;
                        node_created |= created;
                        n = fresh;
                        cached = false;
                        spec.node_id = Some(n.id.clone());
                        self.create_host(&spec).await?
                    }
                    r => r?,
                };
                if !inline_accounts {
                    accounts_missing.extend(usernames.iter().map(|u| MissingAccount {
                        address: a.clone(),
                        username: u.clone(),
                    }));
                }
                hosts_created.push(HostRef {
                    address: a.clone(),
                    id: h.id,
                });
            }
            node = Some(n);
        }

        let found_ids: Vec<String> = hosts_found.iter().map(|h| h.id.clone()).collect();
        let mut asset_ids = found_ids.clone();
        asset_ids.extend(hosts_created.iter().map(|h| h.id.clone()));
        let spec = plan.permission_spec(&user.id, asset_ids, Vec::new());
        let (perm, permission) = self.grant_permission(plan, &spec).await?;

        // Missing accounts are reported, never created, so the check can follow the grant. It
        // runs only when this call created the permission: a re-run of the same plan was checked
        // the first time (and `preview` showed the approver), and skipping it keeps a re-run
        // within the budget of 4 calls.
        if permission == PermissionResult::Created {
            let scope = match &node {
                Some(n) if hosts_outside_node.is_empty() => Some(n.id.clone()),
                Some(_) => None,
                None => self.cached_node_scope(plan, &node_path, &hosts_outside_node),
            };
            let present = self
                .host_accounts(
                    &with_accounts(&existing, &found_ids),
                    &usernames,
                    scope.as_deref(),
                )
                .await?;
            let mut missing_on_found = Vec::new();
            for h in &hosts_found {
                for u in &usernames {
                    if !present
                        .iter()
                        .any(|x| x.host_id == h.id && &x.username == u)
                    {
                        missing_on_found.push(MissingAccount {
                            address: h.address.clone(),
                            username: u.clone(),
                        });
                    }
                }
            }
            missing_on_found.append(&mut accounts_missing);
            accounts_missing = missing_on_found;
        }
        Ok(GrantOutcome {
            user_active: user.is_active,
            user_id: user.id,
            user_created,
            node_grant: false,
            node,
            node_created,
            hosts_found,
            hosts_created,
            hosts_outside_node,
            accounts_missing,
            permission,
            permission_id: perm.id,
        })
    }

    /// The whole-system grant: the permission names the node, found or created by value.
    async fn grant_node(&self, plan: &GrantPlan) -> Result<GrantOutcome, JmsError> {
        let (user, user_created) = self.grant_user(plan).await?;
        let (mut node, mut node_created, cached) = self.child_node_cached(&plan.node_name).await?;
        let spec = plan.permission_spec(&user.id, Vec::new(), vec![node.id.clone()]);
        let (perm, permission) = match self.grant_permission(plan, &spec).await {
            Err(e) if cached && rejects_node(&e) => {
                self.forget_child_node(&plan.node_name);
                let (fresh, created) = self.ensure_child_node(&plan.node_name).await?;
                node = fresh;
                node_created = created;
                let spec = plan.permission_spec(&user.id, Vec::new(), vec![node.id.clone()]);
                self.grant_permission(plan, &spec).await?
            }
            r => r?,
        };
        Ok(GrantOutcome {
            user_active: user.is_active,
            user_id: user.id,
            user_created,
            node_grant: true,
            node: Some(node),
            node_created,
            hosts_found: Vec::new(),
            hosts_created: Vec::new(),
            hosts_outside_node: Vec::new(),
            accounts_missing: Vec::new(),
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
        let existing = if addresses.is_empty() {
            Vec::new()
        } else {
            self.find_hosts(&addresses).await?
        };
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
        let usernames = granted_usernames(&plan.accounts);
        let ids: Vec<String> = hosts_existing.iter().map(|h| h.id.clone()).collect();
        let outside: Vec<String> = hosts_existing
            .iter()
            .filter(|r| {
                existing
                    .iter()
                    .find(|h| h.id == r.id)
                    .is_none_or(|h| !h.nodes_display.iter().any(|d| d == &node_path))
            })
            .map(|r| r.address.clone())
            .collect();
        let scope = match &node {
            Some(n) if outside.is_empty() && n.full_value == node_path => Some(n.id.clone()),
            _ => None,
        };
        let present = self
            .host_accounts(
                &with_accounts(&existing, &ids),
                &usernames,
                scope.as_deref(),
            )
            .await?;
        let mut accounts_missing = Vec::new();
        for h in &hosts_existing {
            for u in &usernames {
                if !present
                    .iter()
                    .any(|x| x.host_id == h.id && &x.username == u)
                {
                    accounts_missing.push(MissingAccount {
                        address: h.address.clone(),
                        username: u.clone(),
                    });
                }
            }
        }
        if !self.inner.cfg.create_host_accounts {
            for a in &hosts_to_create {
                accounts_missing.extend(usernames.iter().map(|u| MissingAccount {
                    address: a.clone(),
                    username: u.clone(),
                }));
            }
        }
        let permission_exists = self.find_permission(&plan.permission_name).await?.is_some();
        Ok(GrantPreview {
            user_exists: user.is_some(),
            user_active: user.as_ref().is_some_and(|u| u.is_active),
            user_id: user.map(|u| u.id),
            node_grant: plan.is_node_grant(),
            node_exists: node.is_some(),
            hosts_existing,
            hosts_to_create,
            accounts_missing,
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
            .ok_or_else(|| {
                JmsError::NotFound(Words::new(
                    format!("no permission named {permission_name}"),
                    format!("没有名为 {permission_name} 的授权"),
                ))
            })?;
        if same_second(p.date_expired, new_expiry) {
            return Ok(p);
        }
        self.set_permission_expiry(&p.id, new_expiry).await
    }
}
