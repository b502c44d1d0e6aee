//! Typed JumpServer operations (§4, §5): users, platforms, nodes, hosts, asset permissions,
//! "what can X reach" / "who can reach X", and live sessions. Creates look first so a repeated
//! call finds what the earlier one made; exact filters are re-checked client-side (case-sensitive).
//!
//! Longer than 600 lines on purpose: one short typed function per endpoint the bot uses, grouped by
//! family in sections; the families share the look-first create rule and the client-side
//! exact-match checks.
use super::client::{fmt_jms_time, lock, parse_jms_time, JmsClient, Req, Retry, ServerLine};
use super::config::ROOT_ORG;
use super::error::{JmsError, Problem, Words};
use crate::domain::ids::JmsUserId;
use jiff::Timestamp;
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JmsUser {
    pub id: JmsUserId,
    pub username: String,
    pub name: String,
    pub email: String,
    pub is_active: bool,
    /// Active and not past the user's `date_expired` (the server's `is_valid`).
    pub is_valid: bool,
}

/// What the bot needs to create a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUserSpec {
    pub name: String,
    pub username: String,
    pub email: String,
    /// Stored on the user; the bot writes its ownership marker here.
    pub comment: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub key: String,
    pub value: String,
    pub full_value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub id: String,
    pub name: String,
    pub address: String,
    pub platform_id: Option<i64>,
    pub node_ids: Vec<String>,
    pub nodes_display: Vec<String>,
    /// How many accounts (logins) the host has, when the server says (v3+ lists do).
    pub accounts_amount: Option<u64>,
}

/// What to put on a new host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHostSpec {
    pub name: String,
    pub address: String,
    pub platform_id: i64,
    pub node_id: Option<String>,
    /// Empty = the platform's default protocols.
    pub protocols: Vec<(String, u16)>,
    /// Account usernames created inline without a secret.
    pub account_usernames: Vec<String>,
    pub comment: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    pub id: String,
    pub name: String,
    pub user_ids: Vec<String>,
    pub asset_ids: Vec<String>,
    pub node_ids: Vec<String>,
    pub accounts: Vec<String>,
    pub protocols: Vec<String>,
    pub actions: Vec<String>,
    pub is_active: bool,
    pub is_valid: bool,
    pub date_start: Option<Timestamp>,
    pub date_expired: Option<Timestamp>,
    pub comment: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPermissionSpec {
    pub name: String,
    pub user_ids: Vec<String>,
    pub asset_ids: Vec<String>,
    pub node_ids: Vec<String>,
    /// Account usernames, or `@ALL`; `@SPEC` is added in front of plain usernames.
    pub accounts: Vec<String>,
    /// Empty = `["all"]`.
    pub protocols: Vec<String>,
    pub actions: Vec<String>,
    pub date_start: Timestamp,
    pub date_expired: Timestamp,
    pub comment: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantedAsset {
    pub id: String,
    pub name: String,
    pub address: String,
}

/// One login (account) on one host (§4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAccount {
    pub id: String,
    pub host_id: String,
    pub name: String,
    pub username: String,
}

/// One entry of `permed_accounts` on `perms/users/{u}/assets/{a}/` (§4.7, transcript 167).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermedAccount {
    /// `@USER`, `@INPUT`, or the account id for a real account.
    pub alias: String,
    pub name: String,
    pub username: String,
    pub date_expired: Option<Timestamp>,
}

/// One user reaching an address through one valid permission (§4.8 precise method).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reacher {
    pub user_id: JmsUserId,
    pub user_display: String,
    pub permission_id: String,
    pub permission_name: String,
    pub accounts: Vec<String>,
    pub actions: Vec<String>,
    pub date_expired: Option<Timestamp>,
}

pub(crate) fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Foreign keys come back as `{"id": …}` objects (v3+) or bare ids (v2).
pub(crate) fn ids(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| match i {
                    Value::String(x) => Some(x.clone()),
                    Value::Object(_) => i.get("id").and_then(Value::as_str).map(str::to_owned),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Choice lists: `[{"value": …, "label": …}]` or bare strings.
fn choices(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| match i {
                    Value::String(x) => Some(x.clone()),
                    Value::Object(_) => i.get("value").and_then(Value::as_str).map(str::to_owned),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn need_id(v: &Value, what: &str) -> Result<String, JmsError> {
    let id = s(v, "id");
    if id.is_empty() {
        Err(JmsError::Decode(format!("{what} without id")))
    } else {
        Ok(id)
    }
}

pub(crate) fn user_from(v: &Value) -> Result<JmsUser, JmsError> {
    Ok(JmsUser {
        id: JmsUserId::new(need_id(v, "user")?),
        username: s(v, "username"),
        name: s(v, "name"),
        email: s(v, "email"),
        is_active: v.get("is_active").and_then(Value::as_bool).unwrap_or(true),
        is_valid: v
            .get("is_valid")
            .and_then(Value::as_bool)
            .unwrap_or_else(|| v.get("is_active").and_then(Value::as_bool).unwrap_or(true)),
    })
}

pub(crate) fn node_from(v: &Value) -> Result<Node, JmsError> {
    Ok(Node {
        id: need_id(v, "node")?,
        key: s(v, "key"),
        value: s(v, "value"),
        full_value: s(v, "full_value"),
    })
}

pub(crate) fn host_from(v: &Value) -> Result<Host, JmsError> {
    let platform_id = match v.get("platform") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(p @ Value::Object(_)) => p.get("id").and_then(Value::as_i64),
        _ => None,
    };
    let address = match s(v, "address") {
        a if a.is_empty() => s(v, "ip"),
        a => a,
    };
    let name = match s(v, "name") {
        n if n.is_empty() => s(v, "hostname"),
        n => n,
    };
    Ok(Host {
        id: need_id(v, "host")?,
        name,
        address,
        platform_id,
        node_ids: ids(v, "nodes"),
        nodes_display: v
            .get("nodes_display")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        accounts_amount: v.get("accounts_amount").and_then(Value::as_u64),
    })
}

pub(crate) fn perm_from(v: &Value) -> Result<Permission, JmsError> {
    let time = |k: &str| v.get(k).and_then(Value::as_str).and_then(parse_jms_time);
    Ok(Permission {
        id: need_id(v, "permission")?,
        name: s(v, "name"),
        user_ids: ids(v, "users"),
        asset_ids: ids(v, "assets"),
        node_ids: ids(v, "nodes"),
        accounts: choices(v, "accounts"),
        protocols: choices(v, "protocols"),
        actions: choices(v, "actions"),
        is_active: v.get("is_active").and_then(Value::as_bool).unwrap_or(true),
        is_valid: v.get("is_valid").and_then(Value::as_bool).unwrap_or(false),
        date_start: time("date_start"),
        date_expired: time("date_expired"),
        comment: s(v, "comment"),
    })
}

pub(crate) const USERS: &str = "/api/v1/users/users/";
pub(crate) const NODES: &str = "/api/v1/assets/nodes/";
pub(crate) const HOSTS: &str = "/api/v1/assets/hosts/";
const PLATFORMS: &str = "/api/v1/assets/platforms/";
pub(crate) const PERMS: &str = "/api/v1/perms/asset-permissions/";
const ACCOUNTS: &str = "/api/v1/accounts/accounts/";

impl JmsClient {
    async fn send_json(
        &self,
        method: Method,
        path: String,
        body: &Value,
        retry: Retry,
    ) -> Result<Value, JmsError> {
        self.call(Req::new(method, path, Some(body), retry)).await
    }

    /// Version probe plus the caches every grant needs (root node, default platform, the
    /// root's direct children), so that grants spend their calls on the work itself.
    pub async fn start(&self) -> Result<ServerLine, JmsError> {
        let line = self.detect_version().await?;
        self.root_node().await?;
        if line >= ServerLine::V3 {
            let p = self.inner.cfg.default_platform.clone();
            self.platform_id(&p).await?;
        }
        self.load_child_nodes().await?;
        Ok(line)
    }

    /// The bot account's own profile (`GET /api/v1/users/profile/`, signed): the cheapest call
    /// that proves the server is reachable *and* accepts our credentials. Returns the username.
    pub async fn profile(&self) -> Result<String, JmsError> {
        let v = self.call(Req::get("/api/v1/users/profile/", &[])).await?;
        Ok(v.get("username")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned())
    }

    /// One signed read of `path` (first page, one row): whether the bot account holds the view
    /// right of that endpoint family (`accessbot doctor`'s right checks).
    pub async fn probe_read(&self, path: &str, query: &[(&str, &str)]) -> Result<(), JmsError> {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("limit", "1"));
        self.call(Req::get(path, &q)).await.map(|_| ())
    }

    // ---------- users ----------

    async fn find_user_by(
        &self,
        field: &str,
        value: &str,
        org: Option<&str>,
    ) -> Result<Option<JmsUser>, JmsError> {
        let rows = self.list_all(USERS, &[(field, value)], org).await?;
        for r in &rows {
            if r.get(field).and_then(Value::as_str) == Some(value) {
                return user_from(r).map(Some);
            }
        }
        Ok(None)
    }

    /// Exact, case-sensitive username match within the configured org.
    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<JmsUser>, JmsError> {
        self.find_user_by("username", username, None).await
    }

    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<JmsUser>, JmsError> {
        self.find_user_by("email", email, None).await
    }

    /// Creates a user with the configured source, roles and MFA level. When the username is
    /// taken outside our org (invisible to the first lookup), returns that user instead.
    pub async fn create_user(&self, spec: &NewUserSpec) -> Result<(JmsUser, bool), JmsError> {
        if spec.username.trim().is_empty() || spec.name.trim().is_empty() {
            return Err(JmsError::Invalid(Words::new(
                "user name and username are required",
                "用户的姓名和用户名不能为空",
            )));
        }
        if !spec.email.contains('@') {
            return Err(JmsError::Invalid(Words::new(
                format!("invalid e-mail {:?}", spec.email),
                format!("邮箱 {:?} 格式不正确", spec.email),
            )));
        }
        let cfg = &self.inner.cfg;
        let mut body = json!({
            "name": spec.name, "username": spec.username, "email": spec.email,
            "source": cfg.user_source, "mfa_level": cfg.user_mfa_level,
            "is_active": true,
            "comment": if spec.comment.is_empty() { "created by accessbot" } else { spec.comment.as_str() },
        });
        if !cfg.user_system_roles.is_empty() {
            body["system_roles"] = json!(cfg.user_system_roles);
        }
        match self
            .send_json(Method::POST, USERS.into(), &body, Retry::Idempotent)
            .await
        {
            Ok(v) => Ok((user_from(&v)?, true)),
            Err(JmsError::Rejected {
                kind: Problem::UsernameTaken,
                ..
            }) => {
                // Either a retry of our own create, or a user outside this org (§4.1).
                if let Some(u) = self.find_user_by_username(&spec.username).await? {
                    return Ok((u, false));
                }
                match self
                    .find_user_by("username", &spec.username, Some(ROOT_ORG))
                    .await?
                {
                    Some(u) => Ok((u, false)),
                    None => Err(JmsError::Invalid(Words::new(
                        format!("username {} already exists", spec.username),
                        format!("用户名 {} 已存在", spec.username),
                    ))),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub async fn set_user_active(&self, id: &JmsUserId, active: bool) -> Result<(), JmsError> {
        self.send_json(
            Method::PATCH,
            format!("{USERS}{}/", seg(id.as_str())?),
            &json!({"is_active": active}),
            Retry::Idempotent,
        )
        .await
        .map(|_| ())
    }

    /// A user by id; `None` when it does not exist (or is outside the org).
    pub async fn get_user(&self, id: &JmsUserId) -> Result<Option<JmsUser>, JmsError> {
        match self
            .call(Req::get(&format!("{USERS}{}/", seg(id.as_str())?), &[]))
            .await
        {
            Ok(v) => user_from(&v).map(Some),
            Err(JmsError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `?search=`: case-insensitive substring of username and name (and e-mail up to
    /// v4.10.16, transcript 171). The caller filters what it means by a match.
    pub async fn search_users(&self, term: &str) -> Result<Vec<JmsUser>, JmsError> {
        self.list_all(USERS, &[("search", term)], None)
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    pub async fn list_users(&self) -> Result<Vec<JmsUser>, JmsError> {
        self.list_all(USERS, &[], None)
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    // ---------- platforms ----------

    /// Platform id by exact name; cached, since ids differ per install (§4.3).
    pub async fn platform_id(&self, name: &str) -> Result<i64, JmsError> {
        if let Some(id) = lock(&self.inner.platforms).get(name) {
            return Ok(*id);
        }
        let rows = self.list_all(PLATFORMS, &[("name", name)], None).await?;
        let id = rows
            .iter()
            .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|r| r.get("id").and_then(Value::as_i64))
            .ok_or_else(|| {
                JmsError::NotFound(Words::new(
                    format!("no platform named {name}"),
                    format!("JumpServer 中没有名为 {name} 的平台"),
                ))
            })?;
        lock(&self.inner.platforms).insert(name.to_owned(), id);
        Ok(id)
    }

    // ---------- nodes ----------

    /// The org's root node via `/nodes/children/`, which also creates it on a fresh org
    /// (`?key=1` answers `[]` until then, §4.2). Cached.
    pub async fn root_node(&self) -> Result<Node, JmsError> {
        if let Some(n) = lock(&self.inner.root_node).clone() {
            return Ok(n);
        }
        let v = self
            .call(Req::get(&format!("{NODES}children/"), &[]))
            .await?;
        let first = match &v {
            Value::Array(a) => a.first(),
            Value::Object(_) => v
                .get("results")
                .and_then(Value::as_array)
                .and_then(|a| a.first()),
            _ => None,
        }
        .ok_or_else(|| JmsError::Decode("no root node".into()))?;
        let n = node_from(first)?;
        *lock(&self.inner.root_node) = Some(n.clone());
        Ok(n)
    }

    pub async fn list_nodes(&self) -> Result<Vec<Node>, JmsError> {
        self.list_all(NODES, &[], None)
            .await?
            .iter()
            .map(node_from)
            .collect()
    }

    /// A direct child of the root whose value is exactly `value` (asks the server; refreshes
    /// the cache).
    pub async fn find_child_node(&self, value: &str) -> Result<Option<Node>, JmsError> {
        let root = self.root_node().await?;
        let rows = self.list_all(NODES, &[("value", value)], None).await?;
        for r in &rows {
            let n = node_from(r)?;
            if n.value == value && is_direct_child(&root, &n) {
                self.remember_child_node(&n);
                return Ok(Some(n));
            }
        }
        lock(&self.inner.child_nodes).remove(value);
        Ok(None)
    }

    /// Caches every direct child of the root (one paginated walk, large pages).
    async fn load_child_nodes(&self) -> Result<(), JmsError> {
        let root = self.root_node().await?;
        let rows = self.list_all_by(NODES, &[], None, "1000").await?;
        let mut cache = lock(&self.inner.child_nodes);
        for r in &rows {
            let n = node_from(r)?;
            if is_direct_child(&root, &n) {
                cache.insert(n.value.clone(), n);
            }
        }
        Ok(())
    }

    fn remember_child_node(&self, n: &Node) {
        lock(&self.inner.child_nodes).insert(n.value.clone(), n.clone());
    }

    pub(crate) fn forget_child_node(&self, value: &str) {
        lock(&self.inner.child_nodes).remove(value);
    }

    /// Like `ensure_child_node`, but a cached node costs no call; `(node, created, from_cache)`.
    pub(crate) async fn child_node_cached(
        &self,
        value: &str,
    ) -> Result<(Node, bool, bool), JmsError> {
        validate_node_value(value)?;
        if let Some(n) = lock(&self.inner.child_nodes).get(value).cloned() {
            return Ok((n, false, true));
        }
        let (n, created) = self.ensure_child_node(value).await?;
        Ok((n, created, false))
    }

    /// Find-or-create a child of the root; `bool` = created now.
    pub async fn ensure_child_node(&self, value: &str) -> Result<(Node, bool), JmsError> {
        validate_node_value(value)?;
        if let Some(n) = self.find_child_node(value).await? {
            return Ok((n, false));
        }
        self.create_child_node(value).await
    }

    pub(crate) async fn create_child_node(&self, value: &str) -> Result<(Node, bool), JmsError> {
        let root = self.root_node().await?;
        match self
            .send_json(
                Method::POST,
                format!("{NODES}{}/children/", seg(&root.id)?),
                &json!({"value": value}),
                Retry::Idempotent,
            )
            .await
        {
            Ok(v) => {
                let n = node_from(&v)?;
                self.remember_child_node(&n);
                Ok((n, true))
            }
            Err(JmsError::Rejected {
                kind: Problem::NodeExists,
                ..
            }) => self
                .find_child_node(value)
                .await?
                .map(|n| (n, false))
                .ok_or_else(|| JmsError::Decode(format!("node {value} exists but is not found"))),
            Err(e) => Err(e),
        }
    }

    /// Adds existing hosts to a node (keeps their other nodes).
    pub async fn add_hosts_to_node(
        &self,
        node_id: &str,
        host_ids: &[String],
    ) -> Result<(), JmsError> {
        if host_ids.is_empty() {
            return Ok(());
        }
        self.send_json(
            Method::PUT,
            format!("{NODES}{}/assets/add/", seg(node_id)?),
            &json!({"assets": host_ids}),
            Retry::Idempotent,
        )
        .await
        .map(|_| ())
    }

    // ---------- hosts ----------

    /// All hosts whose address is one of `addresses`, in one `ips=` call per 100 addresses.
    pub async fn find_hosts(&self, addresses: &[String]) -> Result<Vec<Host>, JmsError> {
        let line = self.detect_version().await?;
        let path = if line >= ServerLine::V3 {
            HOSTS
        } else {
            "/api/v1/assets/assets/"
        };
        let mut out = Vec::new();
        for chunk in addresses.chunks(100) {
            let joined = chunk.join(",");
            for r in self
                .list_all(path, &[("ips", joined.as_str())], None)
                .await?
            {
                let h = host_from(&r)?;
                if chunk.iter().any(|a| a.eq_ignore_ascii_case(&h.address)) {
                    out.push(h);
                }
            }
        }
        Ok(out)
    }

    /// Hosts whose name or address contains `term`, ignoring case (`?search=`, transcript 166).
    /// Used to find a host asked for by name: `?name=` is exact and case-sensitive, so it misses
    /// `WEB-01` when `web-01` is typed.
    pub async fn search_hosts(&self, term: &str) -> Result<Vec<Host>, JmsError> {
        self.require_v3("finding hosts by name").await?;
        self.list_all(HOSTS, &[("search", term)], None)
            .await?
            .iter()
            .map(host_from)
            .collect()
    }

    /// The host named exactly `name` (names are unique per org and case-sensitive, 165/166).
    pub async fn find_host_named(&self, name: &str) -> Result<Option<Host>, JmsError> {
        self.require_v3("finding hosts by name").await?;
        for r in self.list_all(HOSTS, &[("name", name)], None).await? {
            let h = host_from(&r)?;
            if h.name == name {
                return Ok(Some(h));
            }
        }
        Ok(None)
    }

    pub async fn list_hosts(&self) -> Result<Vec<Host>, JmsError> {
        self.require_v3("listing hosts").await?;
        self.list_all(HOSTS, &[], None)
            .await?
            .iter()
            .map(host_from)
            .collect()
    }

    /// One host per request: bulk bodies drop nested protocols and accounts (§4.4).
    pub async fn create_host(&self, spec: &NewHostSpec) -> Result<Host, JmsError> {
        self.require_v3("creating hosts").await?;
        let mut body = json!({
            "name": spec.name, "address": spec.address, "platform": spec.platform_id,
            "comment": spec.comment,
        });
        if let Some(n) = &spec.node_id {
            body["nodes"] = json!([n]);
        }
        if !spec.protocols.is_empty() {
            body["protocols"] = Value::Array(
                spec.protocols
                    .iter()
                    .map(|(n, p)| json!({"name": n, "port": p}))
                    .collect(),
            );
        }
        if !spec.account_usernames.is_empty() {
            body["accounts"] = Value::Array(
                spec.account_usernames
                    .iter()
                    .map(|u| json!({"name": u, "username": u, "secret_type": "password", "privileged": false}))
                    .collect(),
            );
        }
        match self
            .send_json(Method::POST, HOSTS.into(), &body, Retry::Idempotent)
            .await
        {
            Ok(v) => host_from(&v),
            Err(JmsError::Rejected {
                kind: Problem::NameTaken,
                problems,
                status,
            }) => {
                // A retried create that did land the first time: same name and address.
                let found = self.find_hosts(std::slice::from_ref(&spec.address)).await?;
                found
                    .into_iter()
                    .find(|h| h.name == spec.name)
                    .ok_or(JmsError::Rejected {
                        status,
                        kind: Problem::NameTaken,
                        problems,
                    })
            }
            Err(e) => Err(e),
        }
    }

    // ---------- accounts ----------

    /// Accounts with one of `usernames` on the hosts `host_ids`. By `asset_id`, one call per
    /// host, when there are no more hosts than usernames; else one query per username, scoped
    /// with `node_id` when the caller knows every host is in that node (so the rows scale with
    /// the system, not the org). Rows of other hosts are dropped here, so a server that ignores
    /// `node_id` costs pages, never correctness. Username matching is exact and case-sensitive.
    pub async fn host_accounts(
        &self,
        host_ids: &[String],
        usernames: &[String],
        within_node: Option<&str>,
    ) -> Result<Vec<HostAccount>, JmsError> {
        if host_ids.is_empty() || usernames.is_empty() {
            return Ok(Vec::new());
        }
        self.require_v3("accounts").await?;
        let mut rows = Vec::new();
        if host_ids.len() <= usernames.len() {
            for h in host_ids {
                rows.extend(
                    self.list_all_by(ACCOUNTS, &[("asset_id", seg(h)?)], None, "1000")
                        .await?,
                );
            }
        } else {
            for u in usernames {
                let mut q = vec![("username", u.as_str())];
                if let Some(n) = within_node {
                    q.push(("node_id", seg(n)?));
                }
                rows.extend(self.list_all_by(ACCOUNTS, &q, None, "1000").await?);
            }
        }
        let mut out: Vec<HostAccount> = Vec::new();
        for r in &rows {
            let host_id = match r.get("asset") {
                Some(a @ Value::Object(_)) => s(a, "id"),
                Some(Value::String(x)) => x.clone(),
                _ => String::new(),
            };
            let a = HostAccount {
                id: s(r, "id"),
                host_id,
                name: s(r, "name"),
                username: s(r, "username"),
            };
            if host_ids.contains(&a.host_id)
                && usernames.contains(&a.username)
                && !out.iter().any(|x| x.id == a.id && !a.id.is_empty())
            {
                out.push(a);
            }
        }
        Ok(out)
    }

    // ---------- permissions ----------

    pub async fn find_permission(&self, name: &str) -> Result<Option<Permission>, JmsError> {
        let rows = self.list_all(PERMS, &[("name", name)], None).await?;
        for r in &rows {
            if r.get("name").and_then(Value::as_str) == Some(name) {
                return perm_from(r).map(Some);
            }
        }
        Ok(None)
    }

    pub async fn list_permissions(&self) -> Result<Vec<Permission>, JmsError> {
        self.list_all(PERMS, &[], None)
            .await?
            .iter()
            .map(perm_from)
            .collect()
    }

    /// Creates a permission. A taken name is `Rejected { kind: NameTaken }` (transcript 164):
    /// never "found" here, because a permission by that name may be someone else's — the
    /// caller reads its comment for our marker before it touches it (`grant.rs`).
    pub async fn create_permission(
        &self,
        spec: &NewPermissionSpec,
    ) -> Result<Permission, JmsError> {
        self.require_v3("account-based permissions").await?;
        let body = permission_body(spec)?;
        let v = self
            .send_json(Method::POST, PERMS.into(), &body, Retry::Idempotent)
            .await?;
        perm_from(&v)
    }

    pub async fn set_permission_expiry(
        &self,
        id: &str,
        date_expired: Timestamp,
    ) -> Result<Permission, JmsError> {
        let v = self
            .send_json(
                Method::PATCH,
                format!("{PERMS}{}/", seg(id)?),
                &json!({"date_expired": fmt_jms_time(date_expired)}),
                Retry::Idempotent,
            )
            .await?;
        perm_from(&v)
    }

    /// Changes the fields in `body` (lists given are replaced, fields not given kept,
    /// transcript 169) and returns the permission as stored.
    pub async fn patch_permission(&self, id: &str, body: &Value) -> Result<Permission, JmsError> {
        let v = self
            .send_json(
                Method::PATCH,
                format!("{PERMS}{}/", seg(id)?),
                body,
                Retry::Idempotent,
            )
            .await?;
        perm_from(&v)
    }

    /// Suspends a permission but keeps it for the audit trail.
    pub async fn deactivate_permission(&self, id: &str) -> Result<(), JmsError> {
        self.send_json(
            Method::PATCH,
            format!("{PERMS}{}/", seg(id)?),
            &json!({"is_active": false}),
            Retry::Idempotent,
        )
        .await
        .map(|_| ())
    }

    /// Deletes a permission; `false` when it was already gone.
    pub async fn delete_permission(&self, id: &str) -> Result<bool, JmsError> {
        match self
            .call(Req::new(
                Method::DELETE,
                format!("{PERMS}{}/", seg(id)?),
                None,
                Retry::Idempotent,
            ))
            .await
        {
            Ok(_) => Ok(true),
            Err(JmsError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ---------- queries ----------

    /// Assets a user can reach through valid permissions (§4.7).
    pub async fn user_granted_assets(
        &self,
        user: &JmsUserId,
    ) -> Result<Vec<GrantedAsset>, JmsError> {
        let rows = self
            .list_all(
                &format!("/api/v1/perms/users/{}/assets/", seg(user.as_str())?),
                &[],
                None,
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| GrantedAsset {
                id: s(r, "id"),
                name: match s(r, "name") {
                    n if n.is_empty() => s(r, "hostname"),
                    n => n,
                },
                address: match s(r, "address") {
                    a if a.is_empty() => s(r, "ip"),
                    a => a,
                },
            })
            .collect())
    }

    /// What the user may use on one host now: the decisive check of §4.7. `None` when the
    /// user reaches the host through no valid permission (404, transcript 168). A listed host
    /// can still have no login (`permed_accounts: []`, transcript 167).
    pub async fn user_asset_access(
        &self,
        user: &JmsUserId,
        asset_id: &str,
    ) -> Result<Option<Vec<PermedAccount>>, JmsError> {
        let path = format!(
            "/api/v1/perms/users/{}/assets/{}/",
            seg(user.as_str())?,
            seg(asset_id)?
        );
        let v = match self.call(Req::get(&path, &[])).await {
            Ok(v) => v,
            Err(JmsError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let rows = v
            .get("permed_accounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(Some(
            rows.iter()
                .map(|r| PermedAccount {
                    alias: s(r, "alias"),
                    name: s(r, "name"),
                    username: s(r, "username"),
                    date_expired: r
                        .get("date_expired")
                        .and_then(Value::as_str)
                        .and_then(parse_jms_time),
                })
                .collect(),
        ))
    }

    /// How many hosts the user reaches through valid grants within a node (and below it).
    pub async fn user_assets_in_node(
        &self,
        user: &JmsUserId,
        node_id: &str,
    ) -> Result<u64, JmsError> {
        let path = format!("/api/v1/perms/users/{}/assets/", seg(user.as_str())?);
        let v = self
            .call(Req::get(
                &path,
                &[("node_id", seg(node_id)?), ("limit", "1")],
            ))
            .await?;
        Ok(v.get("count").and_then(Value::as_u64).unwrap_or(0))
    }

    /// Who can reach `address` now: valid permissions touching it, expanded to their users
    /// (groups included). Not `perm-users`, which ignores validity (§4.8).
    pub async fn who_can_reach(&self, address: &str) -> Result<Vec<Reacher>, JmsError> {
        let line = self.detect_version().await?;
        let filter = if line >= ServerLine::V3 {
            "address"
        } else {
            "ip"
        };
        let perms = self
            .list_all(PERMS, &[(filter, address), ("is_valid", "1")], None)
            .await?;
        let mut out = Vec::new();
        for pv in &perms {
            let p = perm_from(pv)?;
            // Defence against servers that ignore an unknown filter (§4.6): keep valid ones only.
            if pv.get("is_valid").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let users = self
                .list_all(&format!("{PERMS}{}/users/all/", seg(&p.id)?), &[], None)
                .await?;
            for u in &users {
                let uid = match u.get("user") {
                    Some(Value::String(x)) => x.clone(),
                    Some(o @ Value::Object(_)) => s(o, "id"),
                    _ => s(u, "id"),
                };
                if uid.is_empty() {
                    continue;
                }
                out.push(Reacher {
                    user_id: JmsUserId::new(uid),
                    user_display: s(u, "user_display"),
                    permission_id: p.id.clone(),
                    permission_name: p.name.clone(),
                    accounts: p.accounts.clone(),
                    actions: p.actions.clone(),
                    date_expired: p.date_expired,
                });
            }
        }
        Ok(out)
    }

    /// For each of `addresses` (at most `max`): whether `user` reaches a host there through a
    /// valid permission, with the latest end among those (`Some(None)`: one has no end). One
    /// call per address: `asset-permissions/?user_id=&address=&is_valid=1`, whose `user_id`
    /// includes the user's groups (§4.6) and whose rows carry the end — instead of listing
    /// everyone who reaches the host and every permission's users.
    pub async fn user_reach(
        &self,
        user: &JmsUserId,
        addresses: &[String],
    ) -> Result<Vec<Option<Option<Timestamp>>>, JmsError> {
        let line = self.detect_version().await?;
        let filter = if line >= ServerLine::V3 {
            "address"
        } else {
            "ip"
        };
        let mut out = Vec::with_capacity(addresses.len());
        for a in addresses {
            let rows = self
                .list_all(
                    PERMS,
                    &[
                        ("user_id", user.as_str()),
                        (filter, a.as_str()),
                        ("is_valid", "1"),
                    ],
                    None,
                )
                .await?;
            let mut ends: Option<Option<Timestamp>> = None;
            for r in &rows {
                // Defence against a server that ignores a filter: keep valid ones only.
                if r.get("is_valid").and_then(Value::as_bool) == Some(false) {
                    continue;
                }
                let end = perm_from(r)?.date_expired;
                ends = Some(match (ends, end) {
                    (Some(None), _) | (_, None) => None,
                    (Some(Some(x)), Some(y)) => Some(x.max(y)),
                    (None, Some(y)) => Some(y),
                });
            }
            out.push(ends);
        }
        Ok(out)
    }

    /// Asks the terminals to end the user's live sessions on an asset; returns the session ids
    /// the server accepted. A kill only queues a task (§ transcripts 142–146).
    pub async fn end_sessions(
        &self,
        user: &JmsUserId,
        asset_id: &str,
    ) -> Result<Vec<String>, JmsError> {
        let rows = self
            .list_all(
                "/api/v1/terminal/sessions/",
                &[
                    ("user_id", user.as_str()),
                    ("asset_id", asset_id),
                    ("is_finished", "0"),
                ],
                None,
            )
            .await?;
        let live: Vec<String> = rows
            .iter()
            .filter(|r| r.get("is_finished").and_then(Value::as_bool) != Some(true))
            .map(|r| s(r, "id"))
            .filter(|id| !id.is_empty())
            .collect();
        if live.is_empty() {
            return Ok(Vec::new());
        }
        // The body must be a list; an object answers 500 (transcript 144).
        let v = self
            .send_json(
                Method::POST,
                "/api/v1/terminal/tasks/kill-session/".into(),
                &json!(live),
                Retry::NotExecuted,
            )
            .await?;
        Ok(v.get("ok")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn is_direct_child(root: &Node, n: &Node) -> bool {
    n.key
        .strip_prefix(&root.key)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(':'))
}

/// The plain account usernames a grant names (what must exist on a host for `@SPEC` to give a
/// usable login); empty for `@ALL` and for the other `@`/`!`/`%` forms, which need no account.
pub fn granted_usernames(accounts: &[String]) -> Vec<String> {
    let trimmed: Vec<&str> = accounts.iter().map(|a| a.trim()).collect();
    if trimmed.contains(&"@ALL") {
        return Vec::new();
    }
    let mut v: Vec<String> = Vec::new();
    for a in trimmed {
        let special =
            a.is_empty() || a.starts_with('@') || a.starts_with('!') || a.starts_with('%');
        if !special && !v.iter().any(|x| x == a) {
            v.push(a.to_owned());
        }
    }
    v
}

/// `["@ALL"]` stays; plain usernames get the `@SPEC` marker the UI expects; empty is refused
/// because it would grant nothing usable (pitfall 6).
pub fn permission_accounts(accounts: &[String]) -> Result<Vec<String>, JmsError> {
    let plain: Vec<String> = accounts
        .iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty() && a != "@SPEC")
        .collect();
    if plain.is_empty() {
        return Err(JmsError::Invalid(Words::new(
            "a permission needs at least one account (e.g. readonly or @ALL)",
            "授权至少需要一个账号（例如 readonly 或 @ALL）",
        )));
    }
    if plain.iter().any(|a| a == "@ALL") {
        return Ok(vec!["@ALL".into()]);
    }
    if plain.iter().all(|a| a.starts_with('@')) {
        return Ok(plain);
    }
    let mut v = vec!["@SPEC".to_owned()];
    v.extend(plain);
    Ok(v)
}

/// Every writable field of a permission, so that a PATCH with it makes an existing permission
/// exactly the spec (lists given are replaced, transcript 169) and a POST creates it.
pub fn permission_body(spec: &NewPermissionSpec) -> Result<Value, JmsError> {
    let accounts = permission_accounts(&spec.accounts)?;
    let protocols = if spec.protocols.is_empty() {
        vec!["all".to_owned()]
    } else {
        spec.protocols.clone()
    };
    Ok(json!({
        "name": spec.name, "users": spec.user_ids, "user_groups": [],
        "assets": spec.asset_ids, "nodes": spec.node_ids,
        "accounts": accounts, "protocols": protocols, "actions": spec.actions,
        "date_start": fmt_jms_time(spec.date_start),
        "date_expired": fmt_jms_time(spec.date_expired),
        "is_active": true, "comment": spec.comment,
    }))
}

/// An id placed in a path. Ids are UUIDs (or small integers); anything else would be escaped
/// by the URL layer and then rebuilt differently by Django, breaking the signature (§2.1).
pub(crate) fn seg(id: &str) -> Result<&str, JmsError> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(id)
    } else {
        Err(JmsError::Invalid(Words::new(
            format!("{id:?} is not a JumpServer id"),
            format!("{id:?} 不是有效的 JumpServer ID"),
        )))
    }
}

pub(crate) fn validate_node_value(value: &str) -> Result<(), JmsError> {
    if value.trim().is_empty() || value.contains('/') || value.len() > 128 {
        return Err(JmsError::Invalid(Words::new(
            format!(
                "system (node) name {value:?} must be non-empty, without '/', at most 128 bytes"
            ),
            format!("系统（节点）名称 {value:?} 不能为空、不能包含“/”，且不超过 128 字节"),
        )));
    }
    Ok(())
}
