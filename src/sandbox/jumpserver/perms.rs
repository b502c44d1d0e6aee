//! Asset permissions and the "who can reach what" queries of the simulated JumpServer.
use super::assets::*;
use super::handler::*;
use super::model::*;
use super::response::*;
use super::users::*;
use super::util::{self, fmt_dt, paginate, parse_dt, qget, Query};
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

pub(super) fn valid_grants(st: &State, uid: &str, now: Timestamp) -> Vec<Permission> {
    st.perms
        .iter()
        .filter(|p| p.user_ids.iter().any(|u| u == uid) && p.is_valid(now))
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

pub(super) fn perm_detail(st: &State, p: &Permission, now: Timestamp) -> Value {
    let users = p
        .user_ids
        .iter()
        .filter_map(|id| st.users.iter().find(|u| &u.id == id))
        .map(|u| json!({"id": u.id, "name": u.name}))
        .collect();
    let assets = p
        .asset_ids
        .iter()
        .filter_map(|id| st.hosts.iter().find(|h| &h.id == id))
        .map(|h| json!({"id": h.id, "name": h.name}))
        .collect();
    let nodes = p
        .node_ids
        .iter()
        .filter_map(|id| st.nodes.iter().find(|n| &n.id == id))
        .map(|n| json!({"id": n.id, "name": n.value}))
        .collect();
    perm_json(p, now, Some((users, assets, nodes)))
}

pub(super) fn perms_list(st: &State, c: &Ctx) -> Out {
    let addr_hosts: Option<Vec<&Host>> =
        qget(c.q, "address").map(|a| st.hosts.iter().filter(|h| h.address == a).collect());
    let asset: Option<Option<&Host>> =
        qget(c.q, "asset_id").map(|id| st.hosts.iter().find(|h| h.id == id));
    let mut rows: Vec<&Permission> = st
        .perms
        .iter()
        .filter(|p| qget(c.q, "name").is_none_or(|x| x == p.name))
        .filter(|p| qget(c.q, "user_id").is_none_or(|x| p.user_ids.iter().any(|u| u == x)))
        .filter(|p| {
            asset
                .as_ref()
                .is_none_or(|h| h.is_some_and(|h| perm_covers(st, p, h)))
        })
        .filter(|p| {
            addr_hosts
                .as_ref()
                .is_none_or(|hs| hs.iter().any(|h| perm_covers(st, p, h)))
        })
        .filter(|p| valid_filter(c.q, p, c.now))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = rows.iter().map(|p| perm_json(p, c.now, None)).collect();
    out(200, paginate(rows, c.q, c.base, true))
}

/// Validates the writable permission fields present in `obj` into `p`.
pub(super) fn apply_perm_fields(
    st: &State,
    p: &mut Permission,
    obj: &serde_json::Map<String, Value>,
) -> Result<(), Out> {
    let id_list = |field: &str| -> Result<Option<Vec<String>>, Out> {
        let Some(v) = obj.get(field) else {
            return Ok(None);
        };
        let Some(arr) = v.as_array() else {
            return Err(field_err(field, "Expected a list of items."));
        };
        let mut ids = Vec::new();
        for x in arr {
            let id = x
                .as_str()
                .or_else(|| x.get("id").and_then(Value::as_str))
                .unwrap_or("");
            let exists = match field {
                "users" => st.users.iter().any(|u| u.id == id),
                "assets" => st.hosts.iter().any(|h| h.id == id),
                "nodes" => st.nodes.iter().any(|n| n.id == id),
                _ => false,
            };
            if !exists {
                return Err(field_err(
                    field,
                    &format!("Invalid pk \"{id}\" - object does not exist."),
                ));
            }
            ids.push(id.to_owned());
        }
        Ok(Some(ids))
    };
    if let Some(v) = id_list("users")? {
        p.user_ids = v;
    }
    if let Some(v) = id_list("assets")? {
        p.asset_ids = v;
    }
    if let Some(v) = id_list("nodes")? {
        p.node_ids = v;
    }
    let strings = |field: &str| -> Option<Vec<String>> {
        obj.get(field).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    };
    if let Some(a) = strings("accounts") {
        p.accounts = a;
    }
    if let Some(a) = strings("protocols") {
        p.protocols = a;
    }
    if let Some(acts) = strings("actions") {
        let mut out_acts = Vec::new();
        for a in &acts {
            if a == "all" {
                out_acts = ACTIONS.iter().map(|(v, _)| (*v).to_owned()).collect();
            } else if ACTIONS.iter().any(|(v, _)| v == a) {
                if !out_acts.contains(a) {
                    out_acts.push(a.clone());
                }
            } else {
                return Err(field_err("actions", &format!("Invalid choice: {a}")));
            }
        }
        p.actions = out_acts;
    }
    for (field, slot) in [("date_start", 0), ("date_expired", 1)] {
        if let Some(v) = obj.get(field) {
            let t = v.as_str().and_then(parse_dt);
            let Some(t) = t else {
                return Err(field_err(field, util::DT_FORMAT_ERROR));
            };
            if slot == 0 {
                p.date_start = t;
            } else {
                p.date_expired = t;
            }
        }
    }
    if let Some(a) = obj.get("is_active").and_then(Value::as_bool) {
        p.is_active = a;
    }
    if let Some(cm) = obj.get("comment").and_then(Value::as_str) {
        p.comment = cm.into();
    }
    if let Some(n) = obj.get("name").and_then(Value::as_str) {
        p.name = n.into();
    }
    Ok(())
}

pub(super) fn perms_create(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    if c.org == Org::Root {
        return out(400, json!(["Please save in a org"]));
    }
    let Some(obj) = b.and_then(Value::as_object) else {
        return detail(400, "Invalid data. Expected a dictionary.", "invalid");
    };
    let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        return field_err("name", "This field is required.");
    }
    if st.perms.iter().any(|p| p.name == name) {
        return field_err("name", "This field must be unique.");
    }
    let mut p = Permission {
        id: util::new_id(),
        name: name.into(),
        user_ids: vec![],
        asset_ids: vec![],
        node_ids: vec![],
        accounts: vec!["@ALL".into()],
        protocols: vec!["all".into()],
        actions: ACTIONS.iter().map(|(v, _)| (*v).to_owned()).collect(),
        is_active: true,
        date_start: c.now,
        date_expired: util::far_future(c.now),
        date_created: c.now,
        created_by: caller_name(st, c),
        comment: String::new(),
    };
    if let Err(o) = apply_perm_fields(st, &mut p, obj) {
        return o;
    }
    let v = perm_detail(st, &p, c.now);
    st.perms.push(p);
    out(201, v)
}

pub(super) fn perms_patch(st: &mut State, c: &Ctx, id: &str, b: Option<&Value>) -> Out {
    let Some(obj) = b.and_then(Value::as_object) else {
        return detail(400, "Invalid data. Expected a dictionary.", "invalid");
    };
    let Some(idx) = st.perms.iter().position(|p| p.id == id) else {
        return not_found_obj("AssetPermission");
    };
    let Some(mut p) = st.perms.get(idx).cloned() else {
        return not_found_obj("AssetPermission");
    };
    if let Some(n) = obj.get("name").and_then(Value::as_str) {
        if st.perms.iter().any(|x| x.name == n && x.id != id) {
            return field_err("name", "This field must be unique.");
        }
    }
    if let Err(o) = apply_perm_fields(st, &mut p, obj) {
        return o;
    }
    let v = perm_detail(st, &p, c.now);
    if let Some(slot) = st.perms.get_mut(idx) {
        *slot = p;
    }
    out(200, v)
}

pub(super) fn granted_asset(st: &State, h: &Host) -> Option<serde_json::Map<String, Value>> {
    let p = st.platforms.iter().find(|p| p.id == h.platform_id)?;
    Some(granted_asset_json(h, p, &node_refs(st, &h.node_ids)))
}

pub(super) fn granted_asset_detail(st: &State, uid: &str, aid: &str, now: Timestamp) -> Out {
    let Some(h) = st.hosts.iter().find(|h| h.id == aid) else {
        return not_found_obj("Asset");
    };
    let grants: Vec<Permission> = valid_grants(st, uid, now)
        .into_iter()
        .filter(|p| perm_covers(st, p, h))
        .collect();
    if grants.is_empty() {
        return not_found_obj("Asset");
    }
    let Some(mut m) = granted_asset(st, h) else {
        return internal();
    };
    let mut accounts: Vec<&Account> = st.accounts.iter().filter(|a| a.asset_id == h.id).collect();
    accounts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut permed = Vec::new();
    for a in accounts {
        let matching: Vec<&Permission> = grants
            .iter()
            .filter(|p| {
                p.accounts.iter().any(|x| x == "@ALL")
                    || p.accounts.iter().any(|x| x == &a.name || x == &a.username)
            })
            .collect();
        if matching.is_empty() {
            continue;
        }
        let mut acts: Vec<String> = Vec::new();
        for p in &matching {
            for x in &p.actions {
                if !acts.contains(x) {
                    acts.push(x.clone());
                }
            }
        }
        let exp = matching.iter().map(|p| p.date_expired).max().unwrap_or(now);
        permed.push(
            json!({"id": a.id, "alias": a.id, "name": a.name, "username": a.username,
            "has_username": true, "has_secret": true, "secret_type": a.secret_type,
            "actions": actions_json(&acts), "date_expired": fmt_dt(exp)}),
        );
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
