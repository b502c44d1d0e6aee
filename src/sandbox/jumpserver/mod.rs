//! Simulated JumpServer v4.10.16: a real axum server on 127.0.0.1 that answers like the recorded
//! transcripts (tests/fixtures/jumpserver-v4.10.16/): access-key HTTP Signatures checked with the
//! client's own primitives, private token, password + TOTP login to a Bearer token, org header
//! quirks, DRF pagination, throttling, and the user/group/node/host/permission/session model
//! with the permission relation tables. Used by integration tests and `accessbot demo`; time
//! comes from an injected clock.
//!
//! Files: `handler` (middleware order, route table), `auth`, `users` (users, orgs), `groups`
//! (user groups, membership), `assets` (nodes, hosts, accounts), `platforms`, `perms`
//! (permission CRUD), `relations` (the four relation tables), `grants` (what a permission
//! reaches: user assets, permed accounts, users/all, perm-users), `terminal`, `model`,
//! `response`, `util`.
//!
//! Simplifications (none of them visible in the recorded transcripts): one real org (Default;
//! the root org reads the same data and refuses writes; the SYSTEM org is reported by
//! `orgs/current/` (170) but reads and writes Default's data; other orgs are only listed), user
//! groups are plain member lists (no group-level nodes or roles, and the shape of a group with
//! members is inferred), no login lock-out counters, one anonymous throttle bucket for all
//! clients, sessions without replays/commands. Platform ids other than the ones the recording
//! showed are inferred (clients resolve by name).
mod assets;
mod auth;
mod grants;
mod groups;
mod handler;
pub mod model;
mod perms;
mod platforms;
mod relations;
mod response;
pub mod scale;
mod terminal;
mod users;
pub mod util;

pub use groups::UserGroup;

use crate::clock::SharedClock;
use crate::secret::Secret;
use jiff::Timestamp;
use model::{Host, Node, Permission, Platform, Session, Task, User};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// The access key of the recording (vector `get_query_minimal`); the demo and tests default to it.
pub const VECTOR_KEY_ID: &str = "5d0b6f9e-1c2a-4e3b-9f47-8a6c2d1e0b93";
pub const VECTOR_KEY_SECRET: &str = "q8ZfW2nLr5Tx0Hb7Kc3Vy9Jm4Pd6Sg1AeUoR";

/// A user who can log in with a password (and a TOTP seed when MFA is forced).
#[derive(Debug, Clone)]
pub struct SimLoginUser {
    pub username: String,
    pub name: String,
    pub email: String,
    pub password: Secret,
    /// Base32 RFC 6238 seed; `Some` means `mfa_level` 2.
    pub otp_seed: Option<Secret>,
}

/// How to start the simulator.
#[derive(Debug, Clone)]
pub struct SimJmsOptions {
    pub clock: SharedClock,
    /// Access key owned by `admin` (SystemAdmin).
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// `Authorization: Token <this>` acts as `admin`.
    pub private_token: Option<Secret>,
    pub login_users: Vec<SimLoginUser>,
    /// Requests per minute per authenticated user before 429 (v4.10.16 default was 180); `None` = off.
    pub rate_limit_per_minute: Option<u32>,
    /// Anonymous requests per minute (login and MFA calls count; v4.10.16 default 60); `None` = off.
    pub anon_rate_limit_per_minute: Option<u32>,
    /// Bearer token lifetime (server default 24 h).
    pub bearer_ttl: jiff::SignedDuration,
}

impl SimJmsOptions {
    /// The recording's key, no private token, no login users, throttling off.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            access_key_id: VECTOR_KEY_ID.to_owned(),
            access_key_secret: Secret::new(VECTOR_KEY_SECRET.to_owned()),
            private_token: None,
            login_users: Vec::new(),
            rate_limit_per_minute: None,
            anon_rate_limit_per_minute: None,
            bearer_ttl: jiff::SignedDuration::from_hours(24),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub user_id: String,
    pub mfa_ok: bool,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub users: Vec<User>,
    pub nodes: Vec<Node>,
    pub platforms: Vec<Platform>,
    pub hosts: Vec<Host>,
    pub accounts: Vec<model::Account>,
    pub perms: Vec<Permission>,
    pub groups: Vec<UserGroup>,
    /// Through-table rows of permission members (160-163).
    pub relations: relations::Relations,
    /// Orgs made outside the API: (id, name); listed only (CE resolves their id to Default).
    pub orgs: Vec<(String, String)>,
    pub sessions: Vec<Session>,
    pub tasks: Vec<Task>,
    /// token -> (user id, expiry)
    pub bearer: HashMap<String, (String, Timestamp)>,
    /// jms_sessionid -> pending login
    pub pending: HashMap<String, Pending>,
    /// (method, path) -> count; distinct paths only, so a long demo run stays small.
    pub calls: std::collections::BTreeMap<(String, String), usize>,
    /// (remaining, status)
    pub fail: Option<(usize, u16)>,
    /// user id -> (minute window start, count)
    pub throttle: HashMap<String, (i64, u32)>,
    /// Every session id and Bearer token handed out, so tests can look for them in logs.
    /// Bounded: a long demo run logs in a handful of times.
    pub issued: std::collections::VecDeque<String>,
}

impl State {
    const MAX_ISSUED: usize = 256;

    /// Remembers a credential handed to a client (see `SimJumpServer::issued_credentials`).
    pub(crate) fn remember_issued(&mut self, credential: &str) {
        if self.issued.iter().any(|c| c == credential) {
            return;
        }
        if self.issued.len() >= Self::MAX_ISSUED {
            self.issued.pop_front();
        }
        self.issued.push_back(credential.to_owned());
    }
}

pub(crate) struct Shared {
    pub opts: SimJmsOptions,
    pub state: Mutex<State>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn now(&self) -> Timestamp {
        self.opts.clock.now()
    }
}

/// Arguments of `add_host`.
#[derive(Debug, Clone)]
pub struct SeedHost {
    pub name: String,
    pub address: String,
    pub platform_id: u64,
    /// Node ids; empty = the org root node.
    pub node_ids: Vec<String>,
    /// (name, username, privileged)
    pub accounts: Vec<(String, String, bool)>,
}

/// Arguments of `add_session`.
#[derive(Debug, Clone)]
pub struct SeedSession {
    pub user_id: String,
    pub asset_id: String,
    pub account_username: String,
    pub protocol: String,
}

/// A running simulator; shuts down on drop.
pub struct SimJumpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimJmsError {
    #[error("cannot bind the simulated JumpServer: {0}")]
    Bind(#[from] std::io::Error),
    #[error("seed refers to an unknown {0}")]
    UnknownRef(&'static str),
    #[error("seed value already exists: {0}")]
    Duplicate(&'static str),
}

impl SimJumpServer {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start(opts: SimJmsOptions) -> Result<SimJumpServer, SimJmsError> {
        let now = opts.clock.now();
        let mut st = State {
            platforms: model::builtin_platforms(),
            ..State::default()
        };
        st.users.push(User {
            id: model::ADMIN_ID.to_owned(),
            name: "Administrator".into(),
            username: "admin".into(),
            email: "admin@example.com".into(),
            password: None,
            otp_seed: None,
            is_active: true,
            is_superuser: true,
            need_update_password: false,
            in_default_org: true,
            date_expired: util::far_future(now),
            date_joined: now,
            last_login: None,
            comment: None,
            created_by: "System".into(),
        });
        for lu in &opts.login_users {
            st.users.push(User {
                id: util::new_id(),
                name: lu.name.clone(),
                username: lu.username.clone(),
                email: lu.email.clone(),
                password: Some(lu.password.expose().to_owned()),
                otp_seed: lu.otp_seed.as_ref().map(|s| s.expose().to_owned()),
                is_active: true,
                is_superuser: false,
                need_update_password: false,
                in_default_org: true,
                date_expired: util::far_future(now),
                date_joined: now,
                last_login: None,
                comment: None,
                created_by: "System".into(),
            });
        }
        let shared = Arc::new(Shared {
            opts,
            state: Mutex::new(st),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(handler::handle)
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(SimJumpServer {
            addr,
            shared,
            shutdown: Some(tx),
        })
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Requests whose method matches and whose path starts with `path_prefix`.
    pub fn calls_to(&self, method: &str, path_prefix: &str) -> usize {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|((m, p), _)| m.eq_ignore_ascii_case(method) && p.starts_with(path_prefix))
            .map(|(_, n)| n)
            .sum()
    }
    pub fn total_calls(&self) -> usize {
        self.shared.lock().calls.values().sum()
    }
    pub fn reset_counts(&self) {
        self.shared.lock().calls.clear();
    }
    /// The next `n` requests (any route, after being counted) answer `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.lock().fail = Some((n, status));
    }
    /// The session cookie values (`jms_sessionid`) and Bearer tokens handed out so far, oldest
    /// first (the last 256): what must never show up in a client's logs.
    pub fn issued_credentials(&self) -> Vec<String> {
        self.shared.lock().issued.iter().cloned().collect()
    }
    /// Every Bearer token stops working, as when the server's cache entry expires.
    pub fn expire_bearer_tokens(&self) {
        self.shared.lock().bearer.clear();
    }

    /// Adds an active user in the Default org; returns its id.
    pub fn add_user(&self, username: &str, name: &str, email: &str) -> Result<String, SimJmsError> {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        if st.users.iter().any(|u| u.username == username) {
            return Err(SimJmsError::Duplicate("username"));
        }
        let id = util::new_id();
        st.users.push(User {
            id: id.clone(),
            name: name.into(),
            username: username.into(),
            email: email.into(),
            password: None,
            otp_seed: None,
            is_active: true,
            is_superuser: false,
            need_update_password: false,
            in_default_org: true,
            date_expired: util::far_future(now),
            date_joined: now,
            last_login: None,
            comment: None,
            created_by: "Administrator".into(),
        });
        Ok(id)
    }

    /// Adds a host (and its accounts); returns its id.
    pub fn add_host(&self, h: SeedHost) -> Result<String, SimJmsError> {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let platform = st
            .platforms
            .iter()
            .find(|p| p.id == h.platform_id)
            .cloned()
            .ok_or(SimJmsError::UnknownRef("platform"))?;
        if st.hosts.iter().any(|x| x.name == h.name) {
            return Err(SimJmsError::Duplicate("host name"));
        }
        let node_ids = if h.node_ids.is_empty() {
            vec![assets::ensure_root(&mut st)]
        } else {
            if h.node_ids
                .iter()
                .any(|n| !st.nodes.iter().any(|x| &x.id == n))
            {
                return Err(SimJmsError::UnknownRef("node"));
            }
            h.node_ids
        };
        let primary = platform
            .protocols
            .iter()
            .find(|p| p.primary)
            .map(|p| (p.name.to_owned(), p.port))
            .into_iter()
            .collect();
        let id = util::new_id();
        st.hosts.push(Host {
            id: id.clone(),
            name: h.name,
            address: h.address,
            platform_id: platform.id,
            node_ids,
            protocols: primary,
            comment: String::new(),
            is_active: true,
            date_created: now,
            created_by: "Administrator".into(),
        });
        for (name, username, privileged) in h.accounts {
            st.accounts.push(model::Account {
                id: util::new_id(),
                asset_id: id.clone(),
                name,
                username,
                secret_type: "password".into(),
                privileged,
                date_created: now,
                created_by: "Administrator".into(),
            });
        }
        Ok(id)
    }

    /// A small world for `accessbot demo`: nodes `PaymentSystem/prod` and `HRSystem/web`, hosts
    /// 10.10.1.11 (root + readonly), 10.10.1.12 (readonly), win-10.10.1.21, users fx-alice and
    /// fx-bob. Returns the host ids in that order.
    pub fn seed_demo(&self) -> Result<Vec<String>, SimJmsError> {
        let pay = self.add_node_path("PaymentSystem");
        self.add_node_path("PaymentSystem/prod");
        let web = self.add_node_path("HRSystem/web");
        self.add_user("fx-alice", "Alice FX", "fx-alice@example.com")?;
        self.add_user("fx-bob", "Bob FX", "fx-bob@example.com")?;
        let acc = |n: &str, p: bool| (n.to_owned(), n.to_owned(), p);
        let mut ids = Vec::new();
        for (name, addr, platform, node, accounts) in [
            (
                "10.10.1.11",
                "10.10.1.11",
                1,
                &pay,
                vec![acc("root", true), acc("readonly", false)],
            ),
            (
                "10.10.1.12",
                "10.10.1.12",
                1,
                &pay,
                vec![acc("readonly", false)],
            ),
            (
                "win-10.10.1.21",
                "10.10.1.21",
                5,
                &web,
                vec![acc("Administrator", true)],
            ),
        ] {
            ids.push(self.add_host(SeedHost {
                name: name.into(),
                address: addr.into(),
                platform_id: platform,
                node_ids: vec![node.clone()],
                accounts,
            })?);
        }
        Ok(ids)
    }

    /// Creates a node path under the root (like `full_value` create-or-get); returns the leaf id.
    pub fn add_node_path(&self, full_value: &str) -> String {
        let mut st = self.shared.lock();
        assets::node_by_full_value(&mut st, full_value)
    }

    /// Deletes a node that holds no host (what an administrator can do in the UI; the real
    /// server refuses to delete a node with assets). `false` when absent or not empty.
    pub fn remove_node(&self, id: &str) -> bool {
        let mut st = self.shared.lock();
        if st.hosts.iter().any(|h| h.node_ids.iter().any(|n| n == id)) {
            return false;
        }
        let before = st.nodes.len();
        st.nodes.retain(|n| n.id != id);
        if st.nodes.len() == before {
            return false;
        }
        // A deleted node leaves every permission (and its relation rows).
        let touched: Vec<String> = st
            .perms
            .iter_mut()
            .filter(|p| p.node_ids.iter().any(|n| n == id))
            .map(|p| {
                p.node_ids.retain(|n| n != id);
                p.id.clone()
            })
            .collect();
        for pid in touched {
            relations::sync(&mut st, &pid);
        }
        true
    }

    /// Adds a user group with these members (ids of existing users); returns its id.
    pub fn add_user_group(&self, name: &str, user_ids: &[String]) -> Result<String, SimJmsError> {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        if st.groups.iter().any(|g| g.name == name) {
            return Err(SimJmsError::Duplicate("user group name"));
        }
        if user_ids
            .iter()
            .any(|u| !st.users.iter().any(|x| &x.id == u))
        {
            return Err(SimJmsError::UnknownRef("user"));
        }
        let id = util::new_id();
        st.groups.push(UserGroup {
            id: id.clone(),
            name: name.to_owned(),
            comment: String::new(),
            user_ids: user_ids.to_vec(),
            date_created: now,
            created_by: "Administrator".into(),
        });
        Ok(id)
    }

    /// Adds an org the way `manage.py shell` would (170's `Team2`): `orgs/orgs/` lists it; on
    /// CE its id resolves to Default like any other non-internal org id. Returns its id.
    pub fn add_org(&self, name: &str) -> String {
        let id = util::new_id();
        self.shared.lock().orgs.push((id.clone(), name.to_owned()));
        id
    }

    /// Registers a live session the way a terminal component would; returns its id.
    pub fn add_session(&self, s: SeedSession) -> Result<String, SimJmsError> {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let user = st
            .users
            .iter()
            .find(|u| u.id == s.user_id)
            .cloned()
            .ok_or(SimJmsError::UnknownRef("user"))?;
        let host = st
            .hosts
            .iter()
            .find(|h| h.id == s.asset_id)
            .cloned()
            .ok_or(SimJmsError::UnknownRef("asset"))?;
        let account = st
            .accounts
            .iter()
            .find(|a| a.asset_id == host.id && a.username == s.account_username)
            .cloned();
        let id = util::new_id();
        st.sessions.push(Session {
            id: id.clone(),
            user: user.display(),
            user_id: user.id,
            asset: host.display(),
            asset_id: host.id,
            account: format!("{0}({0})", s.account_username),
            account_id: account.map(|a| a.id).unwrap_or_default(),
            protocol: s.protocol,
            login_from: "ST".into(),
            remote_addr: "127.0.0.1".into(),
            is_finished: false,
            date_start: now,
            date_end: None,
        });
        Ok(id)
    }

    /// Marks a session finished (what a terminal does after a kill task).
    pub fn finish_session(&self, id: &str) -> bool {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let mut found = false;
        for s in st.sessions.iter_mut().filter(|s| s.id == id) {
            s.is_finished = true;
            s.date_end = Some(now);
            found = true;
        }
        found
    }

    pub fn users(&self) -> Vec<User> {
        self.shared.lock().users.clone()
    }
    pub fn hosts(&self) -> Vec<Host> {
        self.shared.lock().hosts.clone()
    }
    pub fn nodes(&self) -> Vec<Node> {
        self.shared.lock().nodes.clone()
    }
    pub fn permissions(&self) -> Vec<Permission> {
        self.shared.lock().perms.clone()
    }
    pub fn user_groups(&self) -> Vec<UserGroup> {
        self.shared.lock().groups.clone()
    }
    pub fn sessions(&self) -> Vec<Session> {
        self.shared.lock().sessions.clone()
    }
    pub fn tasks(&self) -> Vec<Task> {
        self.shared.lock().tasks.clone()
    }
    pub fn accounts(&self) -> Vec<model::Account> {
        self.shared.lock().accounts.clone()
    }
}

impl Drop for SimJumpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
