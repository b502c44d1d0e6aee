//! Asset permissions of the simulated JumpServer: list (rows carry counts and `comment`, no
//! member lists, 164), detail/echo (members as `{id, name}`), create, PATCH (each list given is
//! replaced, the rest kept, 169) and delete. Member changes keep the relation tables in step
//! (`relations::sync`). What a permission reaches is in `grants.rs`.
use super::grants::*;
use super::groups::group_ids;
use super::handler::*;
use super::model::*;
use super::relations;
use super::response::*;
use super::users::*;
use super::util::{self, paginate_with, parse_dt, qget};
use super::State;
use jiff::Timestamp;
use serde_json::{json, Value};

/// The detail/echo shape: members as `{id, name}` in the order the objects were created (the
/// recorded echoes list them so, not in request order: 167 step 5, 172 step 27).
pub(super) fn perm_detail(st: &State, p: &Permission, now: Timestamp) -> Value {
    let users = st
        .users
        .iter()
        .filter(|u| p.user_ids.contains(&u.id))
        .map(|u| json!({"id": u.id, "name": u.name}))
        .collect();
    let groups = st
        .groups
        .iter()
        .filter(|g| p.group_ids.contains(&g.id))
        .map(|g| json!({"id": g.id, "name": g.name}))
        .collect();
    let assets = st
        .hosts
        .iter()
        .filter(|h| p.asset_ids.contains(&h.id))
        .map(|h| json!({"id": h.id, "name": h.name}))
        .collect();
    let nodes = st
        .nodes
        .iter()
        .filter(|n| p.node_ids.contains(&n.id))
        .map(|n| json!({"id": n.id, "name": n.value}))
        .collect();
    perm_json(p, now, Some((users, groups, assets, nodes)))
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
        // `user_id` includes permissions reached through the user's groups (§4.6, `all=1`).
        .filter(|p| qget(c.q, "user_id").is_none_or(|x| perm_reaches(st, p, x)))
        .filter(|p| qget(c.q, "user_group_id").is_none_or(|x| p.group_ids.iter().any(|g| g == x)))
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
    let page = paginate_with(rows, c.q, c.base, true, |p| perm_json(p, c.now, None));
    out(200, page)
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
            if !ids.iter().any(|x| x == id) {
                ids.push(id.to_owned());
            }
        }
        Ok(Some(ids))
    };
    if let Some(v) = id_list("users")? {
        p.user_ids = v;
    }
    if let Some(v) = obj.get("user_groups") {
        p.group_ids = group_ids(st, "user_groups", v)?;
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
        p.accounts = virtual_order(a);
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
        group_ids: vec![],
        asset_ids: vec![],
        node_ids: vec![],
        // Default `[]`: a permission created without accounts grants no login (§4.6).
        accounts: vec![],
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
    let pid = p.id.clone();
    st.perms.push(p);
    relations::sync(st, &pid);
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
    relations::sync(st, id);
    out(200, v)
}

/// `DELETE asset-permissions/{id}/` → 204, again → 404 (122); its relation rows go (168).
pub(super) fn perms_delete(st: &mut State, id: &str) -> Out {
    let before = st.perms.len();
    st.perms.retain(|p| p.id != id);
    if st.perms.len() == before {
        return not_found_obj("AssetPermission");
    }
    relations::sync(st, id);
    empty(204)
}

/// The stored `accounts` list: the virtual aliases come back as `@USER` before `@INPUT`
/// (`["@INPUT", "@USER"]` was echoed as `["@USER", "@INPUT"]`, 167); everything else keeps its
/// place (`["@SPEC", "ops"]` is echoed as sent, 167/168).
fn virtual_order(mut accounts: Vec<String>) -> Vec<String> {
    const ORDER: [&str; 2] = ["@USER", "@INPUT"];
    let slots: Vec<usize> = (0..accounts.len())
        .filter(|i| ORDER.contains(&accounts[*i].as_str()))
        .collect();
    let mut present: Vec<String> = slots.iter().map(|i| accounts[*i].clone()).collect();
    present.sort_by_key(|a| ORDER.iter().position(|o| o == a));
    for (slot, a) in slots.into_iter().zip(present) {
        accounts[slot] = a;
    }
    accounts
}
