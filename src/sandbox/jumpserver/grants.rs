//! "Who can reach what" in the simulated JumpServer: which hosts a permission covers (directly
//! or through nodes, recursively), which users it reaches (directly or through their groups),
//! and the query endpoints built on that: `perms/users/{id}/assets/` (+ detail with
//! `permed_accounts`), `asset-permissions/{id}/users/all/` and `/assets/all/`,
//! `assets/{id}/perm-users/` and `…/perm-users/{user}/permissions/`.
use super::assets::node_refs;
use super::groups::user_out;
use super::handler::*;
use super::model::*;
use super::response::*;
use super::util::{self, fmt_dt, paginate, qget, Query};
use super::State;
use jiff::Timestamp;
use serde_json::{json, Value};

/// True when node `inner` is `outer` or below it.
pub(super) fn key_under(inner: &str, outer: &str) -> bool {
    inner == outer || inner.starts_with(&format!("{outer}:"))
}

pub(super) fn perm_covers(st: &State, p: &Permission, h: &Host) -> bool {
    if p.asset_ids.contains(&h.id) {
        return true;
    }
    let pkeys: Vec<&str> = p
        .node_ids
        .iter()
        .filter_map(|id| st.nodes.iter().find(|n| &n.id == id))
        .map(|n| n.key.as_str())
        .collect();
    h.node_ids
        .iter()
        .filter_map(|id| st.nodes.iter().find(|n| &n.id == id))
        .any(|n| pkeys.iter().any(|pk| key_under(&n.key, pk)))
}

pub(super) fn perm_assets<'a>(st: &'a State, p: &Permission) -> Vec<&'a Host> {
    let mut v: Vec<&Host> = st.hosts.iter().filter(|h| perm_covers(st, p, h)).collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The permission names `uid` directly or through one of its groups (§4.6: users ∪ members of
/// user_groups).
pub(super) fn perm_reaches(st: &State, p: &Permission, uid: &str) -> bool {
    p.user_ids.iter().any(|u| u == uid)
        || st
            .groups
            .iter()
            .any(|g| p.group_ids.contains(&g.id) && g.user_ids.iter().any(|u| u == uid))
}

/// Users a permission reaches: its direct users, then its groups' members, each once.
pub(super) fn perm_users<'a>(st: &'a State, p: &Permission) -> Vec<&'a User> {
    let mut ids: Vec<&String> = p.user_ids.iter().collect();
    for g in st.groups.iter().filter(|g| p.group_ids.contains(&g.id)) {
        for u in &g.user_ids {
            if !ids.contains(&u) {
                ids.push(u);
            }
        }
    }
    ids.iter()
        .filter_map(|id| st.users.iter().find(|u| &&u.id == id))
        .collect()
}

/// Valid permissions reaching `uid`. The user's own `is_active` plays no part: a disabled user
/// keeps its granted assets (168).
pub(super) fn valid_grants(st: &State, uid: &str, now: Timestamp) -> Vec<Permission> {
    st.perms
        .iter()
        .filter(|p| p.is_valid(now) && perm_reaches(st, p, uid))
        .cloned()
        .collect()
}

pub(super) fn bool_filter(q: &Query, key: &str) -> Option<bool> {
    match qget(q, key)? {
        "1" | "true" | "True" => Some(true),
        "0" | "false" | "False" => Some(false),
        _ => None,
    }
}

pub(super) fn valid_filter(q: &Query, p: &Permission, now: Timestamp) -> bool {
    bool_filter(q, "is_valid").is_none_or(|v| v == p.is_valid(now))
}

pub(super) fn granted_asset(st: &State, h: &Host) -> Option<serde_json::Map<String, Value>> {
    let p = st.platforms.iter().find(|p| p.id == h.platform_id)?;
    Some(granted_asset_json(h, p, &node_refs(st, &h.node_ids)))
}

/// `GET perms/users/{id}/assets/`: hosts of the user's valid grants (direct, via groups, via
/// nodes), by name; filters `address`, `name` (exact), `search` (name or address, any case)
/// and `node_id` (that node and below) (§4.7).
pub(super) fn user_assets(st: &State, c: &Ctx, uid: &str) -> Out {
    let grants = valid_grants(st, uid, c.now);
    let mut hosts: Vec<&Host> = Vec::new();
    for p in &grants {
        for h in perm_assets(st, p) {
            if !hosts.iter().any(|x| x.id == h.id) {
                hosts.push(h);
            }
        }
    }
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    let node_key: Option<Option<&str>> =
        qget(c.q, "node_id").map(|id| st.nodes.iter().find(|n| n.id == id).map(|n| n.key.as_str()));
    let in_node = |h: &Host| match node_key {
        None => true,
        Some(None) => false,
        Some(Some(k)) => h
            .node_ids
            .iter()
            .filter_map(|id| st.nodes.iter().find(|n| &n.id == id))
            .any(|n| key_under(&n.key, k)),
    };
    let search = qget(c.q, "search").map(str::to_lowercase);
    let rows: Vec<Value> = hosts
        .iter()
        .filter(|h| qget(c.q, "address").is_none_or(|a| a == h.address))
        .filter(|h| qget(c.q, "name").is_none_or(|a| a == h.name))
        .filter(|h| {
            search.as_ref().is_none_or(|s| {
                h.name.to_lowercase().contains(s) || h.address.to_lowercase().contains(s)
            })
        })
        .filter(|h| in_node(h))
        .filter_map(|h| granted_asset(st, h).map(Value::Object))
        .collect();
    out(200, paginate(rows, c.q, c.base, true))
}

/// Whether `p` grants real account `a`: `@ALL` or its username/name, unless `!username`
/// excludes it (§4.6). `@SPEC` only marks the list. A name the host lacks grants nothing there
/// (167: `[@SPEC, ops]` on a host without `ops` lists the host with `permed_accounts: []`).
fn grants_account(p: &Permission, a: &Account) -> bool {
    let excluded = p
        .accounts
        .iter()
        .any(|x| x.strip_prefix('!') == Some(a.username.as_str()));
    !excluded
        && p.accounts
            .iter()
            .any(|x| x == "@ALL" || x == &a.username || x == &a.name)
}

/// Virtual accounts of 167: `(alias, name, username)`; `None` = the user's own username.
const VIRTUAL: [(&str, &str, Option<&str>); 2] = [
    ("@USER", "Dynamic user", None),
    ("@INPUT", "Manual input", Some("@INPUT")),
];

fn merged(grants: &[&Permission], now: Timestamp) -> (Value, String) {
    let mut acts: Vec<String> = Vec::new();
    for p in grants {
        for x in &p.actions {
            if !acts.contains(x) {
                acts.push(x.clone());
            }
        }
    }
    let exp = grants.iter().map(|p| p.date_expired).max().unwrap_or(now);
    (actions_json(&acts), fmt_dt(exp))
}

/// `GET perms/users/{u}/assets/{a}/`: the host with `permed_protocols` and `permed_accounts`.
/// A host no valid grant of the user covers (e.g. its permission was deactivated) is 404
/// `Object object does not exist.` (168). Real accounts come first (by name); `@USER` and
/// `@INPUT` follow whenever a covering grant names them, even on a host without accounts, each
/// with a new random id per call (167; their place after real accounts is not recorded).
pub(super) fn granted_asset_detail(st: &State, uid: &str, aid: &str, now: Timestamp) -> Out {
    let Some(h) = st.hosts.iter().find(|h| h.id == aid) else {
        return not_found_obj("Object");
    };
    let grants: Vec<Permission> = valid_grants(st, uid, now)
        .into_iter()
        .filter(|p| perm_covers(st, p, h))
        .collect();
    if grants.is_empty() {
        return not_found_obj("Object");
    }
    let Some(mut m) = granted_asset(st, h) else {
        return internal();
    };
    let mut accounts: Vec<&Account> = st.accounts.iter().filter(|a| a.asset_id == h.id).collect();
    accounts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut permed = Vec::new();
    for a in accounts {
        let matching: Vec<&Permission> = grants.iter().filter(|p| grants_account(p, a)).collect();
        if matching.is_empty() {
            continue;
        }
        let (actions, exp) = merged(&matching, now);
        permed.push(
            json!({"id": a.id, "alias": a.id, "name": a.name, "username": a.username,
            "has_username": true, "has_secret": true, "secret_type": a.secret_type,
            "actions": actions, "date_expired": exp}),
        );
    }
    let username = st
        .users
        .iter()
        .find(|u| u.id == uid)
        .map(|u| u.username.clone())
        .unwrap_or_default();
    for (alias, name, fixed) in VIRTUAL {
        let matching: Vec<&Permission> = grants
            .iter()
            .filter(|p| p.accounts.iter().any(|x| x == alias))
            .collect();
        if matching.is_empty() {
            continue;
        }
        let (actions, exp) = merged(&matching, now);
        permed.push(json!({"id": util::new_id(), "alias": alias, "name": name,
            "username": fixed.unwrap_or(&username), "has_username": true, "has_secret": false,
            "secret_type": "password", "actions": actions, "date_expired": exp}));
    }
    let all_protocols = grants
        .iter()
        .any(|p| p.protocols.iter().any(|x| x == "all"));
    let protocols: Vec<Value> = h
        .protocols
        .iter()
        .filter(|(n, _)| all_protocols || grants.iter().any(|p| p.protocols.contains(n)))
        .map(|(n, port)| json!({"name": n, "port": port, "public": true, "setting": protocol_setting_for(n)}))
        .collect();
    // Keep the server's key order: permed_* sit after spec_info.
    let tail: Vec<(String, Value)> = [
        "is_active",
        "date_verified",
        "date_created",
        "comment",
        "created_by",
    ]
    .iter()
    .filter_map(|k| m.remove(*k).map(|v| ((*k).to_owned(), v)))
    .collect();
    m.insert("spec_info".into(), json!({}));
    m.insert("permed_protocols".into(), Value::Array(protocols));
    m.insert("permed_accounts".into(), Value::Array(permed));
    m.extend(tail);
    out(200, Value::Object(m))
}

/// `GET asset-permissions/{id}/users/all/`: rows `{user, user_display}`, groups expanded (§4.8);
/// disabled users stay listed (168).
pub(super) fn users_all(st: &State, c: &Ctx, pid: &str) -> Out {
    let Some(p) = st.perms.iter().find(|p| p.id == pid) else {
        return not_found_obj("AssetPermission");
    };
    let rows: Vec<Value> = perm_users(st, p)
        .into_iter()
        .map(|u| json!({"user": u.id, "user_display": u.display()}))
        .collect();
    out(200, paginate(rows, c.q, c.base, true))
}

/// `GET asset-permissions/{id}/assets/all/`: rows `{asset, asset_display}`, nodes expanded.
pub(super) fn assets_all(st: &State, c: &Ctx, pid: &str) -> Out {
    let Some(p) = st.perms.iter().find(|p| p.id == pid) else {
        return not_found_obj("AssetPermission");
    };
    let rows: Vec<Value> = perm_assets(st, p)
        .into_iter()
        .map(|h| json!({"asset": h.id, "asset_display": h.display()}))
        .collect();
    out(200, paginate(rows, c.q, c.base, true))
}

/// `GET assets/{id}/perm-users/`: users (groups expanded) of every permission touching the
/// host, valid or not (134), in the user shape that shows `is_active`/`is_valid` (168).
pub(super) fn asset_perm_users(st: &State, c: &Ctx, aid: &str) -> Out {
    let Some(h) = st.hosts.iter().find(|h| h.id == aid) else {
        return not_found_obj("Asset");
    };
    let mut users: Vec<&User> = Vec::new();
    for p in st.perms.iter().filter(|p| perm_covers(st, p, h)) {
        for u in perm_users(st, p) {
            if !users.iter().any(|x| x.id == u.id) {
                users.push(u);
            }
        }
    }
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let rows = users
        .iter()
        .map(|u| user_out(st, u, UserShape::List, c.now))
        .collect();
    out(200, paginate(rows, c.q, c.base, true))
}

/// `GET assets/{id}/perm-users/{user}/permissions/`: the permissions linking them (135).
pub(super) fn asset_user_permissions(st: &State, c: &Ctx, aid: &str, uid: &str) -> Out {
    let Some(h) = st.hosts.iter().find(|h| h.id == aid) else {
        return not_found_obj("Asset");
    };
    let rows: Vec<Value> = st
        .perms
        .iter()
        .filter(|p| perm_reaches(st, p, uid) && perm_covers(st, p, h))
        .filter(|p| valid_filter(c.q, p, c.now))
        .map(|p| super::perms::perm_detail(st, p, c.now))
        .collect();
    out(200, paginate(rows, c.q, c.base, true))
}
