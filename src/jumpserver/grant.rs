//! The composite grant (recipe B, §5) and its read-only preview, renew and revoke, built on two
//! rules that a real JumpServer taught us:
//!
//! 1. **Only modify what is provably ours.** Everything the bot creates carries the order's
//!    ownership marker in its `comment` (`domain::ownership`). A permission name that is taken
//!    is read back and its marker checked (transcript 164: the list row carries `comment`):
//!    ours (a re-run after a crash) is repaired to the plan with one PATCH, which replaces
//!    users, assets, nodes, accounts and actions and sets both dates (transcript 169);
//!    anything else is left alone and the next name in the order's fixed sequence is tried,
//!    and the skipped names are reported so an administrator hears of it.
//! 2. **Report what is, not what was planned.** After the write, each granted host is read back
//!    through `perms/users/{u}/assets/{a}/` (§4.7), whose `permed_accounts` lists the logins
//!    the user can really use. `[@SPEC, ops]` on a host without `ops` is accepted but lists
//!    nothing (transcript 167), so a host can be granted and still unusable; the outcome says
//!    so per host, and nothing tells a person "ready" for a login that was not read back.
//!
//! Finding before creating: hosts by address (`?ips=`, one call) and by name (`?search=`, one
//! call per name, filtered to an exact name or address ignoring case: `?name=` is exact and
//! case-sensitive, transcript 166); users by username, then in another letter case and by
//! e-mail (usernames and e-mails are unique but case-sensitive, transcript 171), so a grant does
//! not fail after approval on a user whose e-mail is taken.
//!
//! Calls, with the caches `start` warms (version, root node, platform, the root's children):
//! n existing hosts asked for by address: user, hosts, permission, and n read-backs = n + 3;
//! +1 per host asked for by name; +1 per host created; +1 or +2 when the user is not found by
//! username (+1 to create it); a re-run whose permission exists: +2 (read it by name, repair).
//! A whole-system grant: user, permission, one count of the user's hosts in the node.
//!
//! Missing accounts are reported, not created: the bot has no secret for them and would put
//! empty logins on hosts administrators own. Hosts the bot creates itself get the accounts
//! inline (`create_host_accounts`).
//!
//! Longer than 600 lines on purpose: the plan, the writes, the repair and the read-back of one
//! grant obey the same ownership rules and are read together when a grant goes wrong.
use super::api::{
    granted_usernames, permission_accounts, permission_body, validate_node_value, Host, JmsUser,
    NewHostSpec, NewPermissionSpec, NewUserSpec, Node, PermedAccount, Permission,
};
use super::client::JmsClient;
use super::error::{JmsError, Problem, Words};
use crate::domain::access::{
    host_label, HostAccess, Login, LoginKind, NodeAccess, PermissionState, ReadBack, Revocation,
    RevokedHow,
};
use crate::domain::ids::JmsUserId;
use crate::domain::ownership::{Marker, Ownership};
use jiff::Timestamp;
use serde_json::json;
use std::net::IpAddr;

/// Names tried for one order's permission. Each skipped name is held by an object without our
/// marker, which does not happen by accident more than once; after this many, a person must look.
const NAME_ATTEMPTS: u32 = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    pub name: String,
    pub email: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantPlan {
    pub username: String,
    /// The person's e-mail: finds their JumpServer user when its username differs (the
    /// mapped username is free but the e-mail is taken, transcript 171).
    pub email: Option<String>,
    /// Create the user when missing; `None` makes a missing user an error.
    pub new_user: Option<NewUser>,
    /// The system: a child node of the org root.
    pub node_name: String,
    /// IP addresses or host names (a host name is looked up by name, then by address). Empty =
    /// grant the node itself (the whole system, including hosts added to it later).
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
    /// The first name to try; later attempts append `-2`, `-3`, … (see the module header).
    pub permission_name: String,
    /// Lines for people, stored after the marker line.
    pub comment: String,
    /// Proof of ownership written into everything the grant creates.
    pub owner: Marker,
}

/// How the grant's JumpServer user was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserMatch {
    /// Created by this grant.
    Created,
    Username,
    /// The same username in another letter case (JumpServer compares case-sensitively).
    UsernameOtherCase,
    /// The mapped username is free but the e-mail belongs to this user.
    Email,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRef {
    /// What was asked for: an address or a name.
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
    /// Ours from an earlier attempt: made to match the plan again.
    Repaired,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantOutcome {
    pub user_id: JmsUserId,
    /// The JumpServer username the grant went to (may differ from the plan's, see `user_match`).
    pub username: String,
    pub user_created: bool,
    pub user_match: UserMatch,
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
    /// New hosts whose natural name another host holds: `(address, name used)`.
    pub hosts_renamed: Vec<(String, String)>,
    /// Existing hosts that are not under the plan's node (left where they are).
    pub hosts_outside_node: Vec<String>,
    /// Granted usernames JumpServer does not list on a granted host (read back).
    pub accounts_missing: Vec<MissingAccount>,
    pub permission: PermissionResult,
    pub permission_id: String,
    /// The name the permission has (a later attempt when earlier names were not ours).
    pub permission_name: String,
    /// Names held by permissions without our marker: skipped, never touched.
    pub name_conflicts: Vec<String>,
    /// What the user can reach now, read from JumpServer after the write.
    pub readback: ReadBack,
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
    /// How the user was found (`None`: not found).
    pub user_match: Option<UserMatch>,
    /// The JumpServer username the grant will go to, when found.
    pub username: Option<String>,
    pub node_grant: bool,
    pub node_exists: bool,
    pub hosts_existing: Vec<HostRef>,
    /// `name (address)` of each existing host, in `hosts_existing` order.
    pub hosts_existing_labels: Vec<String>,
    /// Addresses of the existing hosts (host names resolved), for routing by policy.
    pub addresses: Vec<String>,
    pub hosts_to_create: Vec<String>,
    /// New hosts whose natural name another host holds: `(address, name that will be used)`.
    pub hosts_renamed: Vec<(String, String)>,
    /// Names that match several hosts: `(name, candidates)`.
    pub ambiguous: Vec<(String, Vec<String>)>,
    /// Granted usernames absent on existing hosts (and on hosts to create when the bot does not
    /// create accounts on them).
    pub accounts_missing: Vec<MissingAccount>,
    /// A permission of this order exists already (it will be repaired to the plan).
    pub permission_exists: bool,
    /// The name the grant will use.
    pub permission_name: String,
    /// Names held by permissions without our marker (they will be skipped).
    pub name_conflicts: Vec<String>,
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

/// What a revoke did in JumpServer, and what the user can still reach there afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeOutcome {
    /// `false` when no permission had that name (already revoked).
    pub found: bool,
    pub permission_id: Option<String>,
    pub revocation: Revocation,
}

/// How a revoke ends a permission: keep it inactive for the record (JumpServer's own audit
/// trail keeps it; every "valid" query drops it, transcript 168), or delete it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeMode {
    Deactivate,
    Delete,
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
        // Room for the `-N` of a later attempt.
        if self.permission_name.trim().is_empty() || self.permission_name.len() > 124 {
            return bad(
                "permission name must be 1..124 characters".into(),
                "授权名称长度须为 1 到 124 个字符".into(),
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

    /// The name of attempt `n` (1 = the plain name).
    fn name_for(&self, attempt: u32) -> String {
        if attempt <= 1 {
            self.permission_name.clone()
        } else {
            format!("{}-{attempt}", self.permission_name)
        }
    }

    /// The comment of everything this plan creates: the marker line, then the people's text.
    fn marked_comment(&self) -> String {
        let human: Vec<String> = self
            .comment
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        self.owner.comment(&human)
    }

    fn email(&self) -> Option<&str> {
        self.email
            .as_deref()
            .or(self.new_user.as_ref().map(|n| n.email.as_str()))
    }

    fn permission_spec(
        &self,
        name: String,
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
            name,
            user_ids: vec![user_id.as_str().to_owned()],
            asset_ids: assets,
            node_ids: nodes,
            accounts: self.accounts.clone(),
            protocols,
            actions: self.actions.clone(),
            date_start: self.date_start,
            date_expired: self.date_expired,
            comment: self.marked_comment(),
        }
    }

    /// The name a host the grant creates for `wanted` gets when its natural name is taken by
    /// another host (names are unique per org, addresses are not: transcript 165).
    fn alternative_host_name(&self, wanted: &str) -> String {
        let tag = if self.owner.installation.is_empty() {
            "accessbot"
        } else {
            &self.owner.installation
        };
        format!("{wanted}-{tag}")
    }
}

fn is_address(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
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

/// What a name stands for among `?search=` results.
enum NamePick<'a> {
    Found(&'a Host),
    /// Several hosts whose names differ only in letter case, none spelled exactly as asked.
    Ambiguous(Vec<&'a Host>),
    None,
}

/// A name matches a host's name exactly first (names are unique per org), then ignoring case
/// (people do not type case; JumpServer keeps `FX2-WEB-01` beside `fx2-web-01`, transcript
/// 165), then a host whose *address* is that name (a DNS name registered as the address).
fn pick_by_name<'a>(hosts: &'a [Host], name: &str, node_path: &str) -> NamePick<'a> {
    if let Some(h) = hosts.iter().find(|h| h.name == name) {
        return NamePick::Found(h);
    }
    let ci: Vec<&Host> = hosts
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .collect();
    match ci.len() {
        1 => return NamePick::Found(ci[0]),
        n if n > 1 => return NamePick::Ambiguous(ci),
        _ => {}
    }
    match pick(hosts, name, node_path) {
        Some(h) => NamePick::Found(h),
        None => NamePick::None,
    }
}

/// A 400 that names the `nodes` field: the node id we sent (from the cache) is gone.
fn rejects_node(e: &JmsError) -> bool {
    matches!(e, JmsError::Rejected { problems, .. } if problems.iter().any(|p| p.field == "nodes"))
}

fn name_taken(e: &JmsError) -> bool {
    matches!(
        e,
        JmsError::Rejected {
            kind: Problem::NameTaken,
            ..
        }
    )
}

/// The parts of a host a read-back names.
struct HostKey<'a> {
    id: &'a str,
    name: &'a str,
    address: &'a str,
}

impl<'a> HostKey<'a> {
    fn of(h: &'a Host) -> Self {
        Self {
            id: &h.id,
            name: &h.name,
            address: &h.address,
        }
    }
}

/// Hosts as the plan asked for them, found or missing.
struct Resolution {
    /// `(what was asked for, the host)`, one per distinct host.
    found: Vec<(String, Host)>,
    /// Asked-for addresses or names with no host.
    missing: Vec<String>,
    ambiguous: Vec<(String, Vec<Host>)>,
}

/// The logins of one host's `permed_accounts` that this grant gives: for `@ALL` every listed
/// login, else the granted usernames and the virtual `@USER` / `@INPUT` when granted.
fn logins_for(permed: &[PermedAccount], accounts: &[String]) -> Vec<Login> {
    let all = accounts.iter().any(|a| a == "@ALL");
    permed
        .iter()
        .filter_map(|p| {
            let kind = match p.alias.as_str() {
                "@USER" => LoginKind::SameUser,
                "@INPUT" => LoginKind::ManualInput,
                _ => LoginKind::Account,
            };
            let granted = all
                || match kind {
                    LoginKind::SameUser => accounts.iter().any(|a| a == "@USER"),
                    LoginKind::ManualInput => accounts.iter().any(|a| a == "@INPUT"),
                    LoginKind::Account => accounts.iter().any(|a| a == &p.username || a == &p.name),
                };
            granted.then(|| Login {
                username: p.username.clone(),
                kind,
                until: p.date_expired,
            })
        })
        .collect()
}

fn perm_state(p: &Permission) -> PermissionState {
    PermissionState {
        name: p.name.clone(),
        id: p.id.clone(),
        is_active: p.is_active,
        is_valid: p.is_valid,
        until: p.date_expired,
    }
}

impl JmsClient {
    async fn node_path(&self, node_name: &str) -> Result<String, JmsError> {
        let root = self.root_node().await?;
        Ok(format!("{}/{node_name}", root.full_value))
    }

    /// The JumpServer user a plan's person is: by username, then the same username in another
    /// letter case, then by e-mail. Several users matching only ignoring case is a conflict a
    /// person must settle (the bot will not guess which one is the requester).
    pub async fn find_user_for(
        &self,
        username: &str,
        email: Option<&str>,
    ) -> Result<Option<(JmsUser, UserMatch)>, JmsError> {
        if let Some(u) = self.find_user_by_username(username).await? {
            return Ok(Some((u, UserMatch::Username)));
        }
        let similar = self.search_users(username).await?;
        let other_case: Vec<&JmsUser> = similar
            .iter()
            .filter(|u| u.username.eq_ignore_ascii_case(username))
            .collect();
        match other_case.len() {
            1 => return Ok(Some((other_case[0].clone(), UserMatch::UsernameOtherCase))),
            0 => {}
            _ => {
                let names: Vec<&str> = other_case.iter().map(|u| u.username.as_str()).collect();
                return Err(JmsError::Conflict(Words::new(
                    format!(
                        "several JumpServer users are {username} apart from letter case ({}); an administrator must settle which one is meant",
                        names.join(", ")
                    ),
                    format!(
                        "JumpServer 中有多个仅大小写不同的用户 {username}（{}）；需管理员确认是哪一个",
                        names.join("、")
                    ),
                )));
            }
        }
        let Some(email) = email.map(str::trim).filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        // Up to v4.10.16 the search above matched e-mails too.
        if let Some(u) = similar.iter().find(|u| u.email.eq_ignore_ascii_case(email)) {
            return Ok(Some((u.clone(), UserMatch::Email)));
        }
        if let Some(u) = self.find_user_by_email(email).await? {
            return Ok(Some((u, UserMatch::Email)));
        }
        let lower = email.to_ascii_lowercase();
        if lower != email {
            if let Some(u) = self.find_user_by_email(&lower).await? {
                return Ok(Some((u, UserMatch::Email)));
            }
        }
        Ok(None)
    }

    async fn grant_user(&self, plan: &GrantPlan) -> Result<(JmsUser, UserMatch), JmsError> {
        if let Some(found) = self.find_user_for(&plan.username, plan.email()).await? {
            return Ok(found);
        }
        match &plan.new_user {
            Some(nu) => {
                let (u, created) = self
                    .create_user(&NewUserSpec {
                        name: nu.name.clone(),
                        username: plan.username.clone(),
                        email: nu.email.clone(),
                        comment: plan.owner.comment(&[]),
                    })
                    .await?;
                Ok((
                    u,
                    if created {
                        UserMatch::Created
                    } else {
                        UserMatch::Username
                    },
                ))
            }
            None => Err(JmsError::NotFound(Words::new(
                format!("no JumpServer user named {}", plan.username),
                format!("JumpServer 中没有用户 {}", plan.username),
            ))),
        }
    }

    /// Finds every asked-for host: addresses in one `?ips=` call, names one `?search=` each.
    async fn resolve_hosts(
        &self,
        wanted: &[String],
        node_path: &str,
    ) -> Result<Resolution, JmsError> {
        let addresses: Vec<String> = wanted.iter().filter(|w| is_address(w)).cloned().collect();
        let by_address = if addresses.is_empty() {
            Vec::new()
        } else {
            self.find_hosts(&addresses).await?
        };
        let mut r = Resolution {
            found: Vec::new(),
            missing: Vec::new(),
            ambiguous: Vec::new(),
        };
        for w in wanted {
            let host = if is_address(w) {
                pick(&by_address, w, node_path).cloned()
            } else {
                let candidates = self.search_hosts(w).await?;
                match pick_by_name(&candidates, w, node_path) {
                    NamePick::Found(h) => Some(h.clone()),
                    NamePick::Ambiguous(v) => {
                        r.ambiguous
                            .push((w.clone(), v.into_iter().cloned().collect()));
                        continue;
                    }
                    NamePick::None => None,
                }
            };
            match host {
                // `web-01` and its address in one request are one host, granted once.
                Some(h) if r.found.iter().any(|(_, x)| x.id == h.id) => {}
                Some(h) => r.found.push((w.clone(), h)),
                None => r.missing.push(w.clone()),
            }
        }
        Ok(r)
    }

    /// Creates the host for an asked-for address or name under its natural name, or under
    /// `alternative_host_name` when another host holds that name. A host found under either name
    /// with the same address is an earlier attempt's (a re-run) and is used as it is.
    async fn create_wanted_host(
        &self,
        plan: &GrantPlan,
        wanted: &str,
        mut spec: NewHostSpec,
    ) -> Result<(Host, Option<String>), JmsError> {
        let names = [wanted.to_owned(), plan.alternative_host_name(wanted)];
        for (i, name) in names.iter().enumerate() {
            spec.name = name.clone();
            match self.create_host(&spec).await {
                Ok(h) => return Ok((h, (i > 0).then(|| name.clone()))),
                Err(e) if name_taken(&e) => {
                    if let Some(h) = self.find_host_named(name).await? {
                        if h.address.eq_ignore_ascii_case(wanted) {
                            return Ok((h, (i > 0).then(|| name.clone())));
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(JmsError::Conflict(Words::new(
            format!(
                "cannot register host {wanted}: the names {} are held by other hosts",
                names.join(", ")
            ),
            format!(
                "无法登记主机 {wanted}：名称 {} 已被其他主机占用",
                names.join("、")
            ),
        )))
    }

    /// Creates the order's permission, or repairs ours; never touches one without our marker.
    async fn grant_permission(
        &self,
        plan: &GrantPlan,
        user: &JmsUserId,
        assets: &[String],
        nodes: &[String],
    ) -> Result<(Permission, PermissionResult, Vec<String>), JmsError> {
        let mut conflicts = Vec::new();
        let mut attempt = 1;
        let mut vanished = false;
        while attempt <= NAME_ATTEMPTS {
            let spec = plan.permission_spec(
                plan.name_for(attempt),
                user,
                assets.to_vec(),
                nodes.to_vec(),
            );
            let err = match self.create_permission(&spec).await {
                Ok(p) => return Ok((p, PermissionResult::Created, conflicts)),
                Err(e) if name_taken(&e) => e,
                Err(e) => return Err(e),
            };
            // Taken: whose is it? The list row carries `comment` (transcript 164).
            match self.find_permission(&spec.name).await? {
                // Deleted between the two calls: the name is free again; one more try.
                None if !vanished => {
                    vanished = true;
                    continue;
                }
                None => return Err(err),
                Some(existing) => match plan.owner.judge(&existing.comment) {
                    Ownership::Ours => {
                        let body = permission_body(&spec)?;
                        let p = self.patch_permission(&existing.id, &body).await?;
                        return Ok((p, PermissionResult::Repaired, conflicts));
                    }
                    other => {
                        tracing::warn!(
                            permission = %spec.name,
                            owner = ?other,
                            "permission name held by an object without our marker; not touched"
                        );
                        conflicts.push(spec.name.clone());
                    }
                },
            }
            attempt += 1;
        }
        Err(JmsError::Conflict(Words::new(
            format!(
                "the permission names {} are held by permissions accessbot did not create; left untouched",
                conflicts.join(", ")
            ),
            format!(
                "授权名称 {} 已被非本机器人创建的授权占用；未做任何修改",
                conflicts.join("、")
            ),
        )))
    }

    /// Reads back, host by host, what the user can use there now (§4.7).
    async fn read_hosts(
        &self,
        user: &JmsUserId,
        hosts: &[HostKey<'_>],
        accounts: &[String],
    ) -> Result<(Vec<HostAccess>, Vec<String>), JmsError> {
        let usernames = granted_usernames(accounts);
        let mut reached = Vec::new();
        let mut unreachable = Vec::new();
        for h in hosts {
            match self.user_asset_access(user, h.id).await? {
                None => unreachable.push(host_label(h.name, h.address)),
                Some(permed) => {
                    let logins = logins_for(&permed, accounts);
                    let missing = usernames
                        .iter()
                        .filter(|u| !logins.iter().any(|l| &l.username == *u))
                        .cloned()
                        .collect();
                    reached.push(HostAccess {
                        id: h.id.to_owned(),
                        name: h.name.to_owned(),
                        address: h.address.to_owned(),
                        logins,
                        missing,
                    });
                }
            }
        }
        Ok((reached, unreachable))
    }

    /// Grants `plan` idempotently; see the module header for ownership, read-back and calls.
    pub async fn grant(&self, plan: &GrantPlan) -> Result<GrantOutcome, JmsError> {
        plan.validate()?;
        self.require_v3("grant").await?;
        if plan.is_node_grant() {
            return self.grant_node(plan).await;
        }
        let node_path = self.node_path(&plan.node_name).await?;
        let (user, user_match) = self.grant_user(plan).await?;

        let wanted = plan.unique_addresses();
        let res = self.resolve_hosts(&wanted, &node_path).await?;
        if let Some((name, candidates)) = res.ambiguous.first() {
            return Err(ambiguous_error(name, candidates));
        }
        let mut hosts: Vec<(String, Host)> = res.found.clone();
        let hosts_found: Vec<HostRef> = res
            .found
            .iter()
            .map(|(w, h)| HostRef {
                address: w.clone(),
                id: h.id.clone(),
            })
            .collect();
        let hosts_outside_node: Vec<String> = res
            .found
            .iter()
            .filter(|(_, h)| !h.nodes_display.iter().any(|d| d == &node_path))
            .map(|(w, _)| w.clone())
            .collect();

        let usernames = granted_usernames(&plan.accounts);
        let mut node = None;
        let mut node_created = false;
        let mut hosts_created = Vec::new();
        let mut hosts_renamed = Vec::new();
        if !res.missing.is_empty() {
            let platform_id = self.platform_id(&plan.platform).await?;
            let (mut n, created, mut cached) = self.child_node_cached(&plan.node_name).await?;
            node_created = created;
            let protocols = if plan.protocols.is_empty() {
                self.inner.cfg.default_protocol_pairs()
            } else {
                plan.protocols.clone()
            };
            let inline_accounts = self.inner.cfg.create_host_accounts;
            for a in &res.missing {
                let spec = NewHostSpec {
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
                    comment: plan.owner.comment(&[]),
                };
                let (h, renamed) = match self.create_wanted_host(plan, a, spec.clone()).await {
                    Err(e) if cached && rejects_node(&e) => {
                        // Deleted since we cached it: look again (creating it if need be).
                        self.forget_child_node(&plan.node_name);
                        let (fresh, created) = self.ensure_child_node(&plan.node_name).await?;
                        node_created |= created;
                        n = fresh;
                        cached = false;
                        let spec = NewHostSpec {
                            node_id: Some(n.id.clone()),
                            ..spec
                        };
                        self.create_wanted_host(plan, a, spec).await?
                    }
                    r => r?,
                };
                if let Some(name) = renamed {
                    hosts_renamed.push((a.clone(), name));
                }
                hosts_created.push(HostRef {
                    address: a.clone(),
                    id: h.id.clone(),
                });
                hosts.push((a.clone(), h));
            }
            node = Some(n);
        }

        let asset_ids: Vec<String> = hosts.iter().map(|(_, h)| h.id.clone()).collect();
        let (perm, permission, name_conflicts) = self
            .grant_permission(plan, &user.id, &asset_ids, &[])
            .await?;
        let keys: Vec<HostKey<'_>> = hosts.iter().map(|(_, h)| HostKey::of(h)).collect();
        let (reached, unreachable) = self.read_hosts(&user.id, &keys, &plan.accounts).await?;
        let accounts_missing = reached
            .iter()
            .flat_map(|h| {
                let asked = hosts
                    .iter()
                    .find(|(_, x)| x.id == h.id)
                    .map(|(w, _)| w.clone())
                    .unwrap_or_else(|| h.address.clone());
                h.missing.iter().map(move |u| MissingAccount {
                    address: asked.clone(),
                    username: u.clone(),
                })
            })
            .collect();
        let readback = ReadBack {
            at: self.inner.clock.now(),
            username: user.username.clone(),
            user_id: user.id.as_str().to_owned(),
            user_active: user.is_active,
            permission: Some(perm_state(&perm)),
            hosts: reached,
            unreachable,
            node: None,
        };
        Ok(GrantOutcome {
            user_active: user.is_active,
            username: user.username.clone(),
            user_id: user.id,
            user_created: user_match == UserMatch::Created,
            user_match,
            node_grant: false,
            node,
            node_created,
            hosts_found,
            hosts_created,
            hosts_renamed,
            hosts_outside_node,
            accounts_missing,
            permission,
            permission_id: perm.id.clone(),
            permission_name: perm.name.clone(),
            name_conflicts,
            readback,
        })
    }

    /// The whole-system grant: the permission names the node, found or created by value.
    async fn grant_node(&self, plan: &GrantPlan) -> Result<GrantOutcome, JmsError> {
        let (user, user_match) = self.grant_user(plan).await?;
        let (mut node, mut node_created, cached) = self.child_node_cached(&plan.node_name).await?;
        let (perm, permission, name_conflicts) = match self
            .grant_permission(plan, &user.id, &[], std::slice::from_ref(&node.id))
            .await
        {
            Err(e) if cached && rejects_node(&e) => {
                self.forget_child_node(&plan.node_name);
                let (fresh, created) = self.ensure_child_node(&plan.node_name).await?;
                node = fresh;
                node_created = created;
                self.grant_permission(plan, &user.id, &[], std::slice::from_ref(&node.id))
                    .await?
            }
            r => r?,
        };
        let reached = self.user_assets_in_node(&user.id, &node.id).await?;
        let readback = ReadBack {
            at: self.inner.clock.now(),
            username: user.username.clone(),
            user_id: user.id.as_str().to_owned(),
            user_active: user.is_active,
            permission: Some(perm_state(&perm)),
            hosts: Vec::new(),
            unreachable: Vec::new(),
            node: Some(NodeAccess {
                id: node.id.clone(),
                path: node.full_value.clone(),
                hosts: reached,
            }),
        };
        Ok(GrantOutcome {
            user_active: user.is_active,
            username: user.username.clone(),
            user_id: user.id,
            user_created: user_match == UserMatch::Created,
            user_match,
            node_grant: true,
            node: Some(node),
            node_created,
            hosts_found: Vec::new(),
            hosts_created: Vec::new(),
            hosts_renamed: Vec::new(),
            hosts_outside_node: Vec::new(),
            accounts_missing: Vec::new(),
            permission,
            permission_id: perm.id.clone(),
            permission_name: perm.name.clone(),
            name_conflicts,
            readback,
        })
    }

    /// What `grant(plan)` would find and create; makes no change.
    pub async fn preview(&self, plan: &GrantPlan) -> Result<GrantPreview, JmsError> {
        plan.validate()?;
        self.require_v3("grant").await?;
        let node_path = self.node_path(&plan.node_name).await?;
        let user = self.find_user_for(&plan.username, plan.email()).await?;
        // The cache `start` filled is enough for a preview (the grant asks again when it is
        // stale), and saves a call per request.
        let cached = super::client::lock(&self.inner.child_nodes)
            .get(&plan.node_name)
            .cloned();
        let node = match cached {
            Some(n) => Some(n),
            None => self.find_child_node(&plan.node_name).await?,
        };
        let wanted = plan.unique_addresses();
        let res = if wanted.is_empty() {
            Resolution {
                found: Vec::new(),
                missing: Vec::new(),
                ambiguous: Vec::new(),
            }
        } else {
            self.resolve_hosts(&wanted, &node_path).await?
        };
        let hosts_existing: Vec<HostRef> = res
            .found
            .iter()
            .map(|(w, h)| HostRef {
                address: w.clone(),
                id: h.id.clone(),
            })
            .collect();
        // A new host takes the asked-for text as its name unless another host holds it.
        let mut hosts_renamed = Vec::new();
        for w in res.missing.iter().filter(|w| is_address(w)) {
            if self.find_host_named(w).await?.is_some() {
                hosts_renamed.push((w.clone(), plan.alternative_host_name(w)));
            }
        }
        let usernames = granted_usernames(&plan.accounts);
        let ids: Vec<String> = hosts_existing.iter().map(|h| h.id.clone()).collect();
        let outside = res
            .found
            .iter()
            .any(|(_, h)| !h.nodes_display.iter().any(|d| d == &node_path));
        let scope = match &node {
            Some(n) if !outside && n.full_value == node_path => Some(n.id.clone()),
            _ => None,
        };
        let existing: Vec<Host> = res.found.iter().map(|(_, h)| h.clone()).collect();
        let present = self
            .host_accounts(
                &with_accounts(&existing, &ids),
                &usernames,
                scope.as_deref(),
            )
            .await?;
        let mut accounts_missing = Vec::new();
        for (w, h) in &res.found {
            for u in &usernames {
                if !present
                    .iter()
                    .any(|x| x.host_id == h.id && &x.username == u)
                {
                    accounts_missing.push(MissingAccount {
                        address: host_label(&h.name, w),
                        username: u.clone(),
                    });
                }
            }
        }
        if !self.inner.cfg.create_host_accounts {
            for a in &res.missing {
                accounts_missing.extend(usernames.iter().map(|u| MissingAccount {
                    address: a.clone(),
                    username: u.clone(),
                }));
            }
        }
        // Which name the grant will end up with: the first not held by someone else.
        let mut permission_exists = false;
        let mut name_conflicts = Vec::new();
        let mut permission_name = plan.name_for(1);
        for attempt in 1..=NAME_ATTEMPTS {
            let name = plan.name_for(attempt);
            permission_name = name.clone();
            match self.find_permission(&name).await? {
                None => break,
                Some(p) if plan.owner.judge(&p.comment).is_ours() => {
                    permission_exists = true;
                    break;
                }
                Some(_) => name_conflicts.push(name),
            }
        }
        Ok(GrantPreview {
            user_exists: user.is_some(),
            user_active: user.as_ref().is_some_and(|(u, _)| u.is_active),
            user_match: user.as_ref().map(|(_, m)| *m),
            username: user.as_ref().map(|(u, _)| u.username.clone()),
            user_id: user.map(|(u, _)| u.id),
            node_grant: plan.is_node_grant(),
            node_exists: node.is_some(),
            hosts_existing_labels: res
                .found
                .iter()
                .map(|(_, h)| host_label(&h.name, &h.address))
                .collect(),
            addresses: res.found.iter().map(|(_, h)| h.address.clone()).collect(),
            hosts_existing,
            hosts_to_create: res.missing,
            hosts_renamed,
            ambiguous: res
                .ambiguous
                .iter()
                .map(|(n, v)| {
                    (
                        n.clone(),
                        v.iter().map(|h| host_label(&h.name, &h.address)).collect(),
                    )
                })
                .collect(),
            accounts_missing,
            permission_exists,
            permission_name,
            name_conflicts,
        })
    }

    /// The permission by name when it carries `owner`'s marker; `Err(Conflict)` when one by that
    /// name exists without it (left untouched), `Ok(None)` when there is none.
    async fn owned_permission(
        &self,
        name: &str,
        owner: &Marker,
    ) -> Result<Option<Permission>, JmsError> {
        match self.find_permission(name).await? {
            None => Ok(None),
            Some(p) if owner.judge(&p.comment).is_ours() => Ok(Some(p)),
            Some(_) => Err(JmsError::Conflict(Words::new(
                format!("the permission {name} does not carry accessbot's marker for {}; left untouched", owner.order),
                format!("授权 {name} 不带有本机器人针对 {} 的标记；未做任何修改", owner.order),
            ))),
        }
    }

    /// Ends the order's permission: deactivated (kept for the record) or deleted, only when it
    /// carries our marker; asks the terminals to end `sessions_of`'s live sessions on `hosts`
    /// when `end_sessions`. A second call finds it inactive or gone and succeeds.
    pub async fn revoke(
        &self,
        permission_name: &str,
        owner: &Marker,
        mode: RevokeMode,
        sessions_of: Option<(&JmsUserId, &[String])>,
    ) -> Result<RevokeOutcome, JmsError> {
        let found = match self.owned_permission(permission_name, owner).await {
            Ok(p) => p,
            Err(JmsError::Conflict(w)) => {
                tracing::warn!(permission = permission_name, "revoke: {}", w.en);
                return Ok(RevokeOutcome {
                    found: true,
                    permission_id: None,
                    revocation: Revocation {
                        how: RevokedHow::NotOurs,
                        sessions_ended: 0,
                        sessions_checked: false,
                    },
                });
            }
            Err(e) => return Err(e),
        };
        let how = match (&found, mode) {
            (None, _) => RevokedHow::AlreadyGone,
            (Some(p), RevokeMode::Deactivate) => {
                if p.is_active {
                    self.deactivate_permission(&p.id).await?;
                }
                RevokedHow::Deactivated
            }
            (Some(p), RevokeMode::Delete) => {
                self.delete_permission(&p.id).await?;
                RevokedHow::Deleted
            }
        };
        let mut sessions_ended = 0u32;
        if let Some((user, hosts)) = sessions_of {
            for h in hosts {
                let ended = self.end_sessions(user, h).await?;
                sessions_ended += u32::try_from(ended.len()).unwrap_or(u32::MAX);
            }
        }
        Ok(RevokeOutcome {
            found: found.is_some(),
            permission_id: found.map(|p| p.id),
            revocation: Revocation {
                how,
                sessions_ended,
                sessions_checked: sessions_of.is_some(),
            },
        })
    }

    /// Moves the end of the order's permission (only when it carries our marker) and returns
    /// it as stored.
    pub async fn renew(
        &self,
        permission_name: &str,
        owner: &Marker,
        new_expiry: Timestamp,
    ) -> Result<Permission, JmsError> {
        let p = self
            .owned_permission(permission_name, owner)
            .await?
            .ok_or_else(|| {
                JmsError::NotFound(Words::new(
                    format!("no permission named {permission_name}"),
                    format!("没有名为 {permission_name} 的授权"),
                ))
            })?;
        if p.date_expired.map(|t| t.as_second()) == Some(new_expiry.as_second()) {
            return Ok(p);
        }
        // Only the end moves: an administrator who deactivated the permission by hand keeps it
        // deactivated, and the read-back that follows says it is not valid.
        self.patch_permission(
            &p.id,
            &json!({"date_expired": super::client::fmt_jms_time(new_expiry)}),
        )
        .await
    }

    /// What the user reaches now on the given hosts (and node), with the order's permission as
    /// JumpServer holds it (`None` when gone).
    pub async fn read_back(
        &self,
        user: &JmsUserId,
        permission_name: &str,
        hosts: &[HostAccess],
        node: Option<&NodeAccess>,
        accounts: &[String],
    ) -> Result<ReadBack, JmsError> {
        let permission = self.find_permission(permission_name).await?;
        let keys: Vec<HostKey<'_>> = hosts
            .iter()
            .map(|h| HostKey {
                id: &h.id,
                name: &h.name,
                address: &h.address,
            })
            .collect();
        let (reached, unreachable) = self.read_hosts(user, &keys, accounts).await?;
        let node = match node {
            Some(n) => Some(NodeAccess {
                id: n.id.clone(),
                path: n.path.clone(),
                hosts: self.user_assets_in_node(user, &n.id).await?,
            }),
            None => None,
        };
        let u = self.get_user(user).await?;
        Ok(ReadBack {
            at: self.inner.clock.now(),
            username: u.as_ref().map(|u| u.username.clone()).unwrap_or_default(),
            user_id: user.as_str().to_owned(),
            user_active: u.as_ref().is_some_and(|u| u.is_active),
            permission: permission.as_ref().map(perm_state),
            hosts: reached,
            unreachable,
            node,
        })
    }
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

fn ambiguous_error(name: &str, candidates: &[Host]) -> JmsError {
    let labels: Vec<String> = candidates
        .iter()
        .map(|h| host_label(&h.name, &h.address))
        .collect();
    JmsError::Invalid(Words::new(
        format!(
            "{name} matches several hosts ({}); ask for it by address",
            labels.join(", ")
        ),
        format!("{name} 对应多台主机（{}）；请按地址申请", labels.join("、")),
    ))
}
