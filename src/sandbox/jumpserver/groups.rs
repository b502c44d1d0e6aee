//! User groups of the simulated JumpServer (`/api/v1/users/groups/`) and group membership: who a
//! user is through its groups, and the `groups` field of the user shapes.
//!
//! Recorded: the create echo of a group without members (172 steps 12-14) and groups as
//! permission members (172 step 27, 161, 164). A group with members echoes them as `{id, name}`
//! like every other related-object list of v4 (an inference: no recording shows one).
use super::handler::*;
use super::model::*;
use super::relations;
use super::response::*;
use super::users::*;
use super::util::{self, fmt_dt, paginate_with, qget};
use super::State;
use jiff::Timestamp;
use serde_json::{json, Value};

/// A user group; membership lives here (`user_ids`).
#[derive(Debug, Clone)]
pub struct UserGroup {
    pub id: String,
    pub name: String,
    pub comment: String,
    pub user_ids: Vec<String>,
    pub date_created: Timestamp,
    pub created_by: String,
}

/// The group shape of 172 (create echo); list and detail use the same serializer.
pub(super) fn group_json(st: &State, g: &UserGroup) -> Value {
    let users: Vec<Value> = st
        .users
        .iter()
        .filter(|u| g.user_ids.contains(&u.id))
        .map(|u| json!({"id": u.id, "name": u.name}))
        .collect();
    json!({"id": g.id, "name": g.name, "users": users, "labels": [], "org_id": DEFAULT_ORG_ID,
        "org_name": DEFAULT_ORG_NAME, "date_created": fmt_dt(g.date_created), "comment": g.comment,
        "created_by": g.created_by})
}

/// Ids of the groups `uid` belongs to.
pub(super) fn groups_of<'a>(st: &'a State, uid: &str) -> Vec<&'a UserGroup> {
    st.groups
        .iter()
        .filter(|g| g.user_ids.iter().any(|u| u == uid))
        .collect()
}

/// A user's JSON with its `groups` filled in as `{id, name}`.
pub(super) fn user_out(st: &State, u: &User, shape: UserShape, now: Timestamp) -> Value {
    let mut v = user_json(u, shape, now);
    if let Value::Object(m) = &mut v {
        let gs: Vec<Value> = groups_of(st, &u.id)
            .iter()
            .map(|g| json!({"id": g.id, "name": g.name}))
            .collect();
        m.insert("groups".into(), Value::Array(gs));
    }
    v
}

/// Validates a list of user ids (`field` names it in the error).
fn user_ids(st: &State, field: &str, v: &Value) -> Result<Vec<String>, Out> {
    let Some(arr) = v.as_array() else {
        return Err(field_err(field, "Expected a list of items."));
    };
    let mut ids = Vec::new();
    for x in arr {
        let id = x
            .as_str()
            .or_else(|| x.get("id").and_then(Value::as_str))
            .unwrap_or("");
        if !st.users.iter().any(|u| u.id == id) {
            return Err(field_err(
                field,
                &format!("Invalid pk \"{id}\" - object does not exist."),
            ));
        }
        if !ids.iter().any(|x| x == id) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

/// Validates a list of group ids (the `groups` field of a user, the `user_groups` of a permission).
pub(super) fn group_ids(st: &State, field: &str, v: &Value) -> Result<Vec<String>, Out> {
    let Some(arr) = v.as_array() else {
        return Err(field_err(field, "Expected a list of items."));
    };
    let mut ids = Vec::new();
    for x in arr {
        let id = x
            .as_str()
            .or_else(|| x.get("id").and_then(Value::as_str))
            .unwrap_or("");
        if !st.groups.iter().any(|g| g.id == id) {
            return Err(field_err(
                field,
                &format!("Invalid pk \"{id}\" - object does not exist."),
            ));
        }
        if !ids.iter().any(|x| x == id) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

/// Sets the groups of user `uid` to exactly `gids` (the `groups` field on user create/PATCH).
pub(super) fn set_user_groups(st: &mut State, uid: &str, gids: &[String]) {
    for g in st.groups.iter_mut() {
        let member = g.user_ids.iter().any(|u| u == uid);
        let want = gids.contains(&g.id);
        if want && !member {
            g.user_ids.push(uid.to_owned());
        } else if !want && member {
            g.user_ids.retain(|u| u != uid);
        }
    }
}

pub(super) fn groups_list(st: &State, c: &Ctx) -> Out {
    let search = qget(c.q, "search")
        .or_else(|| qget(c.q, "q"))
        .map(str::to_lowercase);
    let mut rows: Vec<&UserGroup> = st
        .groups
        .iter()
        .filter(|g| qget(c.q, "name").is_none_or(|x| x == g.name))
        .filter(|g| qget(c.q, "id").is_none_or(|x| x == g.id))
        .filter(|g| {
            search
                .as_ref()
                .is_none_or(|s| g.name.to_lowercase().contains(s))
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let page = paginate_with(rows, c.q, c.base, true, |g| group_json(st, g));
    out(200, page)
}

/// `POST /users/groups/ {name, users, comment}` (172): the name is unique per org, with the
/// same error the other org-scoped names give (164, 165).
pub(super) fn groups_create(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
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
    if st.groups.iter().any(|g| g.name == name) {
        return field_err("name", "This field must be unique.");
    }
    let users = match obj.get("users") {
        Some(v) => match user_ids(st, "users", v) {
            Ok(ids) => ids,
            Err(o) => return o,
        },
        None => Vec::new(),
    };
    let g = UserGroup {
        id: util::new_id(),
        name: name.to_owned(),
        comment: str_field(b, "comment").unwrap_or("").to_owned(),
        user_ids: users,
        date_created: c.now,
        created_by: caller_name(st, c),
    };
    let v = group_json(st, &g);
    st.groups.push(g);
    out(201, v)
}

pub(super) fn groups_get(st: &State, id: &str) -> Out {
    match st.groups.iter().find(|g| g.id == id) {
        Some(g) => out(200, group_json(st, g)),
        None => not_found_obj("UserGroup"),
    }
}

/// PATCH replaces `users` when given, like the permission's member lists (169).
pub(super) fn groups_patch(st: &mut State, id: &str, b: Option<&Value>) -> Out {
    let Some(obj) = b.and_then(Value::as_object) else {
        return detail(400, "Invalid data. Expected a dictionary.", "invalid");
    };
    let Some(idx) = st.groups.iter().position(|g| g.id == id) else {
        return not_found_obj("UserGroup");
    };
    if let Some(n) = obj.get("name").and_then(Value::as_str) {
        if n.is_empty() {
            return field_err("name", "This field may not be blank.");
        }
        if st.groups.iter().any(|g| g.name == n && g.id != id) {
            return field_err("name", "This field must be unique.");
        }
    }
    let users = match obj.get("users") {
        Some(v) => match user_ids(st, "users", v) {
            Ok(ids) => Some(ids),
            Err(o) => return o,
        },
        None => None,
    };
    let Some(g) = st.groups.get_mut(idx) else {
        return not_found_obj("UserGroup");
    };
    if let Some(n) = obj.get("name").and_then(Value::as_str) {
        g.name = n.to_owned();
    }
    if let Some(cm) = obj.get("comment").and_then(Value::as_str) {
        g.comment = cm.to_owned();
    }
    if let Some(u) = users {
        g.user_ids = u;
    }
    let g = g.clone();
    out(200, group_json(st, &g))
}

/// Deleting a group drops it from every permission (and its relation rows).
pub(super) fn groups_delete(st: &mut State, id: &str) -> Out {
    let before = st.groups.len();
    st.groups.retain(|g| g.id != id);
    if st.groups.len() == before {
        return not_found_obj("UserGroup");
    }
    let touched: Vec<String> = st
        .perms
        .iter_mut()
        .filter(|p| p.group_ids.iter().any(|g| g == id))
        .map(|p| {
            p.group_ids.retain(|g| g != id);
            p.id.clone()
        })
        .collect();
    for pid in touched {
        relations::sync(st, &pid);
    }
    empty(204)
}
