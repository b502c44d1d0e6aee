//! The simulated JumpServer's in-memory data (users, orgs, nodes, hosts, accounts, asset
//! permissions, sessions, terminal tasks) and the JSON shapes v4.10.16 gives each of them.
//! Platforms are in `platforms.rs` (re-exported here).
use super::platforms::{auto_config, protocol_setting};
pub use super::platforms::{builtin_platforms, platform_json, Platform, PlatformProtocol};
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

#[derive(Debug, Clone, PartialEq, Eq)]
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
