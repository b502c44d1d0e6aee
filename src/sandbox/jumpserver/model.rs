//! The simulated JumpServer's in-memory data (users, orgs, nodes, platforms, hosts, accounts,
//! asset permissions, sessions, terminal tasks) and the JSON shapes v4.10.16 gives each of them.
use super::util::{fmt_dt, fmt_opt};
use jiff::Timestamp;
use serde_json::{json, Value};

pub const DEFAULT_ORG_ID: &str = "00000000-0000-0000-0000-000000000002";
pub const ROOT_ORG_ID: &str = "00000000-0000-0000-0000-000000000000";
/// The built-in SYSTEM org (035, 170).
pub const SYSTEM_ORG_ID: &str = "00000000-0000-0000-0000-000000000004";
pub const DEFAULT_ORG_NAME: &str = "DEFAULT";
/// The access-key owner's id in the recording; kept so fixtures line up.
pub const ADMIN_ID: &str = "d3a2c8d5-0277-4719-8533-880261211b5f";

/// The seven concrete actions `"all"` expands to, with their labels.
pub const ACTIONS: [(&str, &str); 7] = [
    ("connect", "Connect (All protocols)"),
    ("upload", "Upload (RDP, SFTP)"),
    ("download", "Download (RDP, SFTP)"),
    ("copy", "Copy (RDP, VNC)"),
    ("paste", "Paste (RDP, VNC)"),
    ("delete", "Delete (SFTP)"),
    ("share", "Share (Web SSH, Web RDP, Web VNC)"),
];

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub username: String,
    pub email: String,
    pub password: Option<String>,
    pub otp_seed: Option<String>,
    pub is_active: bool,
    pub is_superuser: bool,
    pub need_update_password: bool,
    /// Removed from Default stays a user (the username stays taken) but is invisible there.
    pub in_default_org: bool,
    pub date_expired: Timestamp,
    pub date_joined: Timestamp,
    pub last_login: Option<Timestamp>,
    pub comment: Option<String>,
    pub created_by: String,
}

impl User {
    pub fn display(&self) -> String {
        format!("{}({})", self.name, self.username)
    }
    pub fn mfa_level(&self) -> u8 {
        if self.otp_seed.is_some() {
            2
        } else {
            0
        }
    }
}

/// Which serializer variant a user response uses (the key sets differ per endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserShape {
    List,
    Detail,
    Profile,
    Write,
    WritePatch,
    Login,
}

pub fn user_json(u: &User, shape: UserShape, now: Timestamp) -> Value {
    let expired = u.date_expired <= now;
    let mfa = u.mfa_level();
    let (role_id, role) = if u.is_superuser {
        ("00000000-0000-0000-0000-000000000001", "SystemAdmin")
    } else {
        ("00000000-0000-0000-0000-000000000003", "User")
    };
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("id", json!(u.id));
    put("name", json!(u.name));
    put("username", json!(u.username));
    put("email", json!(u.email));
    put("wechat", json!(""));
    put("phone", Value::Null);
    put(
        "mfa_level",
        json!({"value": mfa, "label": if mfa == 2 { "Force enabled" } else { "Disabled" }}),
    );
    put("source", json!({"value": "local", "label": "Local"}));
    let write = matches!(
        shape,
        UserShape::Write | UserShape::WritePatch | UserShape::Login
    );
    if write {
        for k in [
            "wecom_id",
            "dingtalk_id",
            "feishu_id",
            "lark_id",
            "slack_id",
        ] {
            put(k, Value::Null);
        }
        put(
            "org_roles",
            json!([{"id": "00000000-0000-0000-0000-000000000007", "display_name": "OrgUser", "name": "OrgUser"}]),
        );
    }
    put(
        "avatar_url",
        json!(if u.is_superuser {
            "/static/img/avatar/admin.png"
        } else {
            "/static/img/avatar/user.png"
        }),
    );
    put("groups", json!([]));
    put(
        "system_roles",
        json!([{"id": role_id, "display_name": role}]),
    );
    put("labels", json!([]));
    if shape != UserShape::WritePatch {
        put(
            "password_strategy",
            json!({"value": "email", "label": "Reset link will be generated and sent to the user"}),
        );
    }
    if matches!(shape, UserShape::Profile | UserShape::Login) {
        put("public_key_comment", json!(""));
        put("public_key_hash_md5", json!(""));
        put("guide_url", json!(""));
        put("lang", json!("en"));
        put("receive_backends", json!(["site_msg", "email"]));
    }
    if write {
        put("is_org_admin", json!(false));
    }
    put("is_superuser", json!(u.is_superuser));
    put("is_service_account", json!(false));
    put("is_valid", json!(u.is_active && !expired));
    put("is_expired", json!(expired));
    put("is_active", json!(u.is_active));
    put("is_otp_secret_key_bound", json!(u.otp_seed.is_some()));
    put("can_public_key_auth", json!(true));
    put("mfa_enabled", json!(mfa > 0));
    put("need_update_password", json!(u.need_update_password));
    put("is_face_code_set", json!(false));
    put("mfa_force_enabled", json!(mfa == 2));
    put("is_first_login", json!(u.last_login.is_none()));
    put("login_blocked", json!(false));
    put("date_expired", json!(fmt_dt(u.date_expired)));
    put("date_joined", json!(fmt_dt(u.date_joined)));
    put("last_login", fmt_opt(u.last_login));
    put("date_updated", json!(fmt_dt(u.date_joined)));
    put("date_api_key_last_used", Value::Null);
    put("date_password_last_updated", json!(fmt_dt(u.date_joined)));
    put("created_by", json!(u.created_by));
    put("updated_by", json!(u.created_by));
    put("comment", json!(u.comment));
    if shape == UserShape::Detail {
        put("has_public_keys", json!(false));
    }
    Value::Object(m)
}

#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub key: String,
    pub value: String,
    /// Next child index; keys are never reused.
    pub child_mark: u32,
}

#[derive(Debug, Clone)]
pub struct PlatformProtocol {
    pub id: u32,
    pub name: &'static str,
    pub port: u16,
    pub primary: bool,
    pub default: bool,
}

#[derive(Debug, Clone)]
pub struct Platform {
    pub id: u64,
    pub name: &'static str,
    pub type_value: &'static str,
    pub type_label: &'static str,
    pub category: &'static str,
    pub protocols: Vec<PlatformProtocol>,
}

impl Platform {
    pub fn is_windows(&self) -> bool {
        self.type_value == "windows"
    }
}

fn proto(id: u32, name: &'static str, port: u16, primary: bool, default: bool) -> PlatformProtocol {
    PlatformProtocol {
        id,
        name,
        port,
        primary,
        default,
    }
}

/// The 25 built-in platforms of a fresh v4.10.16. Ids observed live: Linux 1, Unix 2, macOS 3,
/// BSD 4, Windows 5, AIX 10, Cisco 14 (and 25 rows in total); the other ids follow the built-in
/// creation order and are an inference, as are non-host protocol ids. Clients resolve by name.
pub fn builtin_platforms() -> Vec<Platform> {
    fn mk(
        id: u64,
        name: &'static str,
        ty: (&'static str, &'static str),
        category: &'static str,
        protocols: Vec<PlatformProtocol>,
    ) -> Platform {
        Platform {
            id,
            name,
            type_value: ty.0,
            type_label: ty.1,
            category,
            protocols,
        }
    }
    let unix_protos = |base: u32| {
        vec![
            proto(base + 1, "telnet", 23, false, false),
            proto(base + 2, "vnc", 5900, false, false),
            proto(base + 3, "rdp", 3389, false, false),
            proto(base, "ssh", 22, true, false),
        ]
    };
    let win_protos = |base: u32| {
        vec![
            proto(base + 1, "ssh", 22, false, false),
            proto(base + 2, "vnc", 5900, false, false),
            proto(base + 3, "winrm", 5985, false, false),
            proto(base, "rdp", 3389, true, false),
        ]
    };
    let single = |id: u32, name: &'static str, port: u16| vec![proto(id, name, port, true, false)];
    const LINUX: (&str, &str) = ("linux", "Linux");
    const UNIX: (&str, &str) = ("unix", "Unix");
    const WIN: (&str, &str) = ("windows", "Windows");
    const GENERAL: (&str, &str) = ("general", "General");
    let mut v = vec![
        mk(
            1,
            "Linux",
            LINUX,
            "host",
            vec![
                proto(2, "telnet", 23, false, false),
                proto(3, "vnc", 5900, false, false),
                proto(4, "rdp", 3389, false, false),
                proto(5, "sftp", 22, false, true),
                proto(1, "ssh", 22, true, false),
            ],
        ),
        mk(2, "Unix", UNIX, "host", unix_protos(6)),
        mk(3, "macOS", UNIX, "host", unix_protos(10)),
        mk(4, "BSD", UNIX, "host", unix_protos(14)),
        mk(5, "Windows", WIN, "host", win_protos(18)),
        mk(6, "Windows2016", WIN, "host", win_protos(22)),
        mk(
            7,
            "Other",
            ("other", "Other"),
            "host",
            single(26, "ssh", 22),
        ),
        mk(8, "Windows-RDP", WIN, "host", win_protos(28)),
        mk(9, "Windows-TLS", WIN, "host", win_protos(32)),
        mk(10, "AIX", UNIX, "host", unix_protos(40)),
        mk(11, "Gateway", LINUX, "host", single(44, "ssh", 22)),
        mk(12, "RemoteAppHost", WIN, "host", win_protos(46)),
        mk(13, "General", GENERAL, "device", single(52, "ssh", 22)),
        mk(
            14,
            "Cisco",
            GENERAL,
            "device",
            vec![
                proto(55, "telnet", 23, false, false),
                proto(54, "ssh", 22, true, false),
            ],
        ),
        mk(15, "Huawei", GENERAL, "device", single(56, "ssh", 22)),
        mk(16, "H3C", GENERAL, "device", single(58, "ssh", 22)),
        mk(
            17,
            "MySQL",
            ("mysql", "MySQL"),
            "database",
            single(60, "mysql", 3306),
        ),
        mk(
            18,
            "MariaDB",
            ("mariadb", "MariaDB"),
            "database",
            single(61, "mariadb", 3306),
        ),
        mk(
            19,
            "PostgreSQL",
            ("postgresql", "PostgreSQL"),
            "database",
            single(62, "postgresql", 5432),
        ),
        mk(
            20,
            "Oracle",
            ("oracle", "Oracle"),
            "database",
            single(63, "oracle", 1521),
        ),
        mk(
            21,
            "SQLServer",
            ("sqlserver", "SQLServer"),
            "database",
            single(64, "sqlserver", 1433),
        ),
        mk(
            22,
            "ClickHouse",
            ("clickhouse", "ClickHouse"),
            "database",
            single(65, "clickhouse", 9000),
        ),
        mk(
            23,
            "MongoDB",
            ("mongodb", "MongoDB"),
            "database",
            single(66, "mongodb", 27017),
        ),
        mk(
            24,
            "Redis",
            ("redis", "Redis"),
            "database",
            single(67, "redis", 6379),
        ),
        mk(
            25,
            "Website",
            ("website", "Website"),
            "web",
            single(68, "http", 80),
        ),
    ];
    v.sort_by(|a, b| a.name.cmp(b.name));
    v
}

fn category_label(c: &str) -> &'static str {
    match c {
        "host" => "Host",
        "device" => "Device",
        "database" => "Database",
        "web" => "Web",
        _ => "Custom",
    }
}

fn protocol_setting(name: &str) -> Value {
    match name {
        "ssh" => json!({"sftp_home": "/tmp", "sftp_enabled": true}),
        "sftp" => json!({"sftp_home": "/tmp"}),
        "rdp" => json!({"console": false, "security": "any"}),
        "winrm" => json!({"use_ssl": false}),
        _ => json!({}),
    }
}

fn automation(p: &Platform) -> serde_json::Map<String, Value> {
    let v = if p.category != "host" {
        json!({"id": p.id, "ansible_enabled": true, "ansible_config": {"ansible_connection": "local", "first_connect_delay": 0.5},
            "ping_enabled": true, "ping_method": "ping_by_ssh", "ping_params": {},
            "push_account_enabled": false, "push_account_method": null, "push_account_params": {},
            "gather_facts_enabled": false, "gather_facts_method": null, "gather_facts_params": {},
            "change_secret_enabled": true, "change_secret_method": "change_secret_by_ssh", "change_secret_params": {},
            "verify_account_enabled": true, "verify_account_method": "verify_account_by_ssh", "verify_account_params": {},
            "gather_accounts_enabled": false, "gather_accounts_method": null, "gather_accounts_params": {},
            "remove_account_enabled": false, "remove_account_method": null, "remove_account_params": {}})
    } else if p.is_windows() {
        json!({"id": p.id, "ansible_enabled": true, "ansible_config": {"ansible_connection": "ssh", "ansible_shell_type": "cmd"},
            "ping_enabled": true, "ping_method": "ping_by_rdp", "ping_params": {},
            "push_account_enabled": true, "push_account_method": "push_account_local_windows", "push_account_params": {"groups": "Users,Remote Desktop Users"},
            "gather_facts_enabled": true, "gather_facts_method": "gather_facts_windows", "gather_facts_params": {},
            "change_secret_enabled": true, "change_secret_method": "change_secret_local_windows", "change_secret_params": {},
            "verify_account_enabled": true, "verify_account_method": "verify_account_by_rdp", "verify_account_params": {},
            "gather_accounts_enabled": true, "gather_accounts_method": "gather_accounts_windows", "gather_accounts_params": {},
            "remove_account_enabled": true, "remove_account_method": "remove_account_windows", "remove_account_params": {}})
    } else {
        json!({"id": p.id, "ansible_enabled": true, "ansible_config": {"ansible_connection": "smart"},
            "ping_enabled": true, "ping_method": "posix_ping", "ping_params": {},
            "push_account_enabled": true, "push_account_method": "push_account_posix", "push_account_params": {"home": "", "sudo": "/bin/whoami", "shell": "/bin/bash", "groups": ""},
            "gather_facts_enabled": true, "gather_facts_method": "gather_facts_posix", "gather_facts_params": {},
            "change_secret_enabled": true, "change_secret_method": "change_secret_posix", "change_secret_params": {},
            "verify_account_enabled": true, "verify_account_method": "verify_account_posix", "verify_account_params": {},
            "gather_accounts_enabled": true, "gather_accounts_method": "gather_accounts_posix", "gather_accounts_params": {},
            "remove_account_enabled": true, "remove_account_method": "remove_account_posix", "remove_account_params": {}})
    };
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// A host's `auto_config`: the platform automation plus `su_enabled`/`gateway_enabled`/`platform`.
fn auto_config(p: &Platform) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("su_enabled".into(), json!(true));
    m.insert("gateway_enabled".into(), json!(true));
    m.extend(automation(p));
    m.insert("platform".into(), json!(p.id));
    Value::Object(m)
}

pub fn platform_json(p: &Platform, assets_amount: usize) -> Value {
    let protocols: Vec<Value> = p
        .protocols
        .iter()
        .map(|x| {
            let secret_types = if x.name == "ssh" || x.name == "sftp" {
                json!(["password", "ssh_key"])
            } else {
                json!(["password"])
            };
            json!({"id": x.id, "name": x.name, "port": x.port, "port_from_addr": false, "primary": x.primary,
                "required": false, "default": x.default, "public": true, "secret_types": secret_types,
                "setting": protocol_setting(x.name)})
        })
        .collect();
    let su_method = if p.category == "device" {
        json!({"value": "enable", "label": "enable"})
    } else {
        Value::Null
    };
    json!({"su_method": su_method, "type": {"value": p.type_value, "label": p.type_label},
        "category": {"value": p.category, "label": category_label(p.category)},
        "id": p.id, "protocols": protocols, "charset": {"value": "utf-8", "label": "UTF-8"},
        "custom_fields": [], "labels": [], "assets_amount": assets_amount, "automation": Value::Object(automation(p)),
        "name": p.name, "ds_enabled": false, "su_enabled": true, "internal": true, "gateway_enabled": true,
        "date_created": "2026/11/22 19:19:42 +0800", "date_updated": "2026/11/22 19:19:42 +0800",
        "updated_by": "System", "created_by": "System", "comment": ""})
}

#[derive(Debug, Clone)]
pub struct Host {
    pub id: String,
    pub name: String,
    pub address: String,
    pub platform_id: u64,
    pub node_ids: Vec<String>,
    pub protocols: Vec<(String, u16)>,
    pub comment: String,
    pub is_active: bool,
    pub date_created: Timestamp,
    pub created_by: String,
}

impl Host {
    pub fn display(&self) -> String {
        format!("{}({})", self.name, self.address)
    }
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub asset_id: String,
    pub name: String,
    pub username: String,
    pub secret_type: String,
    pub privileged: bool,
    pub date_created: Timestamp,
    pub created_by: String,
}

fn secret_type_json(t: &str) -> Value {
    let label = match t {
        "ssh_key" => "SSH key",
        "token" => "Token",
        "access_key" => "Access key",
        _ => "Password",
    };
    json!({"value": t, "label": label})
}

pub fn host_accounts_json(accs: &[&Account]) -> Value {
    Value::Array(
        accs.iter()
            .map(|a| {
                json!({"id": a.id, "name": a.name, "username": a.username, "secret_type": secret_type_json(&a.secret_type),
                "su_from": null, "version": 0, "ds": null, "source": {"value": "local", "label": "Local"},
                "source_id": null, "login_by": null, "change_secret_status": null, "privileged": a.privileged,
                "is_active": true, "secret_reset": true, "date_updated": fmt_dt(a.date_created),
                "date_last_login": null, "date_verified": null, "date_change_secret": null, "comment": ""})
            })
            .collect(),
    )
}

pub fn account_json(a: &Account, h: &Host, p: &Platform) -> Value {
    json!({"id": a.id, "name": a.name, "username": a.username, "secret_type": secret_type_json(&a.secret_type),
        "labels": [], "su_from": null,
        "asset": {"id": h.id, "name": h.name, "address": h.address,
            "type": {"value": p.type_value, "label": p.type_label},
            "category": {"value": p.category, "label": "Host"},
            "platform": {"id": p.id, "name": p.name, "type": p.type_value}, "auto_config": auto_config(p)},
        "version": 0, "ds": null, "source": {"value": "local", "label": "Local"}, "source_id": null,
        "login_by": null, "connectivity": {"value": "-", "label": "Unknown"}, "change_secret_status": null,
        "org_id": DEFAULT_ORG_ID, "org_name": DEFAULT_ORG_NAME, "privileged": a.privileged, "is_active": true,
        "secret_reset": true, "date_created": fmt_dt(a.date_created), "date_updated": fmt_dt(a.date_created),
        "date_last_login": null, "date_verified": null, "date_change_secret": null, "created_by": a.created_by,
        "comment": ""})
}

/// `nodes` as `[{id, name}]` plus `nodes_display` full paths, resolved by the caller.
pub struct NodeRefs {
    pub refs: Vec<Value>,
    pub full_values: Vec<String>,
}

pub fn host_json(h: &Host, p: &Platform, nodes: &NodeRefs, accounts_amount: usize) -> Value {
    let protocols: Vec<Value> = h
        .protocols
        .iter()
        .map(|(n, port)| json!({"name": n, "port": port}))
        .collect();
    json!({"id": h.id, "name": h.name, "address": h.address, "zone": null,
        "platform": {"id": p.id, "name": p.name, "type": p.type_value}, "nodes": nodes.refs, "labels": [],
        "protocols": protocols, "nodes_display": nodes.full_values, "directory_services": [],
        "accounts_amount": accounts_amount, "category": {"value": "host", "label": "Host"},
        "type": {"value": p.type_value, "label": p.type_label}, "connectivity": {"value": "-", "label": "Unknown"},
        "auto_config": auto_config(p), "gathered_info": {}, "org_id": DEFAULT_ORG_ID, "org_name": DEFAULT_ORG_NAME,
        "spec_info": {}, "is_active": h.is_active, "date_verified": null, "date_created": fmt_dt(h.date_created),
        "date_updated": fmt_dt(h.date_created), "comment": h.comment, "created_by": h.created_by})
}

/// The lighter asset shape of `perms/users/{id}/assets/`.
pub fn granted_asset_json(
    h: &Host,
    p: &Platform,
    nodes: &NodeRefs,
) -> serde_json::Map<String, Value> {
    let v = json!({"id": h.id, "name": h.name, "address": h.address, "zone": null,
        "platform": {"id": p.id, "name": p.name}, "org_id": DEFAULT_ORG_ID,
        "connectivity": {"value": "-", "label": "Unknown"}, "nodes": nodes.refs, "labels": [],
        "category": {"value": "host", "label": "Host"}, "type": {"value": p.type_value, "label": p.type_label},
        "org_name": DEFAULT_ORG_NAME, "is_active": h.is_active, "date_verified": null,
        "date_created": fmt_dt(h.date_created), "comment": h.comment, "created_by": h.created_by});
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

pub fn protocol_setting_for(name: &str) -> Value {
    protocol_setting(name)
}

#[derive(Debug, Clone)]
pub struct Permission {
    pub id: String,
    pub name: String,
    pub user_ids: Vec<String>,
    /// User groups: their members are reached too (§4.6).
    pub group_ids: Vec<String>,
    pub asset_ids: Vec<String>,
    pub node_ids: Vec<String>,
    pub accounts: Vec<String>,
    pub protocols: Vec<String>,
    pub actions: Vec<String>,
    pub is_active: bool,
    pub date_start: Timestamp,
    pub date_expired: Timestamp,
    pub date_created: Timestamp,
    pub created_by: String,
    pub comment: String,
}

impl Permission {
    /// "Outside the date window" — also true before the start (surprise 4).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        !(self.date_start <= now && now < self.date_expired)
    }
    pub fn is_valid(&self, now: Timestamp) -> bool {
        self.is_active && !self.is_expired(now)
    }
}

pub fn actions_json(actions: &[String]) -> Value {
    Value::Array(
        ACTIONS
            .iter()
            .filter(|(v, _)| actions.iter().any(|a| a == v))
            .map(|(v, l)| json!({"value": v, "label": l}))
            .collect(),
    )
}

/// The member lists of a permission's detail: users, user groups, assets, nodes as `{id, name}`.
pub type PermMembers = (Vec<Value>, Vec<Value>, Vec<Value>, Vec<Value>);

/// `detail` adds the expanded relation lists; the list serializer only has the amounts (164).
pub fn perm_json(p: &Permission, now: Timestamp, detail: Option<PermMembers>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(p.id));
    m.insert("name".into(), json!(p.name));
    if let Some((users, groups, assets, nodes)) = detail {
        m.insert("users".into(), Value::Array(users));
        m.insert("user_groups".into(), Value::Array(groups));
        m.insert("assets".into(), Value::Array(assets));
        m.insert("nodes".into(), Value::Array(nodes));
    }
    let rest = json!({"labels": [], "users_amount": p.user_ids.len(), "user_groups_amount": p.group_ids.len(),
        "assets_amount": p.asset_ids.len(), "nodes_amount": p.node_ids.len(), "accounts": p.accounts,
        "protocols": p.protocols, "actions": actions_json(&p.actions), "org_id": DEFAULT_ORG_ID,
        "org_name": DEFAULT_ORG_NAME, "is_active": p.is_active, "is_expired": p.is_expired(now),
        "is_valid": p.is_valid(now), "from_ticket": false, "date_created": fmt_dt(p.date_created),
        "date_start": fmt_dt(p.date_start), "date_expired": fmt_dt(p.date_expired),
        "created_by": p.created_by, "comment": p.comment});
    if let Value::Object(r) = rest {
        m.extend(r);
    }
    Value::Object(m)
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user: String,
    pub user_id: String,
    pub asset: String,
    pub asset_id: String,
    pub account: String,
    pub account_id: String,
    pub protocol: String,
    pub login_from: String,
    pub remote_addr: String,
    pub is_finished: bool,
    pub date_start: Timestamp,
    pub date_end: Option<Timestamp>,
}

/// `with_commands`: list/detail carry `command_amount`; the create echo does not.
pub fn session_json(s: &Session, with_commands: bool) -> Value {
    let login_from_label = match s.login_from.as_str() {
        "WT" => "Web Terminal",
        "DT" => "DB Terminal",
        "RT" => "RDP Terminal",
        _ => "SSH Terminal",
    };
    let mut v = json!({"id": s.id, "user": s.user, "asset": s.asset, "user_id": s.user_id, "asset_id": s.asset_id,
        "account": s.account, "account_id": s.account_id, "protocol": s.protocol,
        "type": {"value": "normal", "label": "Normal"},
        "login_from": {"value": s.login_from, "label": login_from_label}, "remote_addr": s.remote_addr,
        "duration": "0:00:00", "terminal_display": "", "is_locked": false,
        "error_reason": {"value": "", "label": ""}, "replay_size": 0, "terminal": null,
        "org_id": DEFAULT_ORG_ID, "org_name": DEFAULT_ORG_NAME, "is_success": true,
        "is_finished": s.is_finished, "has_replay": false, "has_command": false, "can_replay": false,
        "can_terminate": !s.is_finished, "date_start": fmt_dt(s.date_start), "date_end": fmt_opt(s.date_end),
        "comment": null});
    if with_commands {
        if let Value::Object(m) = &mut v {
            m.insert("command_amount".into(), json!(0));
        }
    }
    v
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub name: String,
    pub args: String,
    pub is_finished: bool,
    pub date_created: Timestamp,
    pub created_by_name: String,
    pub created_by_display: String,
}

pub fn task_json(t: &Task) -> Value {
    json!({"id": t.id, "created_by": t.created_by_name, "updated_by": t.created_by_name,
        "date_created": fmt_dt(t.date_created), "date_updated": fmt_dt(t.date_created), "comment": "",
        "name": t.name, "args": t.args,
        "kwargs": {"created_by": t.created_by_display, "terminated_by": t.created_by_display},
        "is_finished": t.is_finished, "date_finished": null, "terminal": null})
}
