//! Users, orgs and the caller's profile in the simulated JumpServer.
use super::auth::*;
use super::groups::{group_ids, set_user_groups, user_out};
use super::handler::*;
use super::model::*;
use super::response::*;
use super::util::{self, paginate, paginate_with, parse_dt, qget};
use super::State;
use jiff::Timestamp;
use serde_json::{json, Value};

pub(super) fn profile(st: &State, caller: &Caller, now: Timestamp) -> Out {
    match st.users.iter().find(|u| u.id == caller.user_id) {
        Some(u) => out(200, user_out(st, u, UserShape::Profile, now)),
        None => not_authenticated(),
    }
}

pub(super) fn org_json(org: Org) -> Value {
    match org {
        Org::Default => json!({"id": DEFAULT_ORG_ID, "name": DEFAULT_ORG_NAME, "is_default": true,
            "is_root": false, "is_system": false, "comment": ""}),
        Org::Root => json!({"id": ROOT_ORG_ID, "name": "GLOBAL", "is_default": false,
            "is_root": true, "is_system": false, "comment": ""}),
        // The built-in SYSTEM org is honoured on CE (170).
        Org::System => json!({"id": SYSTEM_ORG_ID, "name": "SYSTEM", "is_default": false,
            "is_root": false, "is_system": true, "comment": ""}),
    }
}

/// `GET /orgs/orgs/`: DEFAULT and SYSTEM (035), then orgs made outside the API (170's `Team2`,
/// seeded with `SimJumpServer::add_org`). Only Default holds resources here.
pub(super) fn orgs_list(st: &State, c: &Ctx) -> Out {
    let org_row = |id: &str, name: &str, def: bool, internal: bool| {
        let n = |x: usize| if def { x } else { 0 };
        json!({"id": id, "name": name,
            "resource_statistics": {"users_amount": n(st.users.iter().filter(|u| u.in_default_org).count()),
                "groups_amount": n(st.groups.len()), "assets_amount": n(st.hosts.len()),
                "nodes_amount": n(st.nodes.len()), "zones_amount": 0,
                "asset_perms_amount": n(st.perms.len())},
            "is_default": def, "is_root": false, "internal": internal,
            "date_created": "2026/11/22 19:19:53 +0800", "created_by": "System", "comment": ""})
    };
    let mut rows = vec![
        org_row(DEFAULT_ORG_ID, DEFAULT_ORG_NAME, true, true),
        org_row(SYSTEM_ORG_ID, "SYSTEM", false, true),
    ];
    rows.extend(
        st.orgs
            .iter()
            .map(|(id, name)| org_row(id, name, false, false)),
    );
    out(200, paginate(rows, c.q, c.base, true))
}

pub(super) fn visible(u: &User, org: Org) -> bool {
    org == Org::Root || u.in_default_org
}

pub(super) fn users_list(st: &State, c: &Ctx) -> Out {
    let search = qget(c.q, "search")
        .or_else(|| qget(c.q, "q"))
        .map(str::to_lowercase);
    let mut rows: Vec<&User> = st
        .users
        .iter()
        .filter(|u| visible(u, c.org))
        .filter(|u| qget(c.q, "username").is_none_or(|x| x == u.username))
        .filter(|u| qget(c.q, "email").is_none_or(|x| x == u.email))
        .filter(|u| qget(c.q, "id").is_none_or(|x| x == u.id))
        .filter(|u| {
            search.as_ref().is_none_or(|s| {
                u.username.to_lowercase().contains(s)
                    || u.name.to_lowercase().contains(s)
                    || u.email.to_lowercase().contains(s)
            })
        })
        .collect();
    rows.sort_by(|a, b| a.username.cmp(&b.username));
    let page = paginate_with(rows, c.q, c.base, true, |u| {
        user_out(st, u, UserShape::List, c.now)
    });
    out(200, page)
}

pub(super) fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(char::is_whitespace)
}

pub(super) fn str_field<'a>(b: Option<&'a Value>, k: &str) -> Option<&'a str> {
    b.and_then(|v| v.get(k)).and_then(Value::as_str)
}

pub(super) fn users_create(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    if c.org == Org::Root {
        return out(400, json!(["Please save in a org"]));
    }
    for f in ["name", "username", "email"] {
        if str_field(b, f).is_none_or(str::is_empty) {
            return field_err(f, "This field is required.");
        }
    }
    let name = str_field(b, "name").unwrap_or_default();
    let username = str_field(b, "username").unwrap_or_default();
    let email = str_field(b, "email").unwrap_or_default();
    if st.users.iter().any(|u| u.username == username) {
        return field_err("username", "User with this Username already exists.");
    }
    if !valid_email(email) {
        return field_err("email", "Enter a valid email address.");
    }
    if st.users.iter().any(|u| u.email == email) {
        return field_err("email", "User with this Email already exists.");
    }
    let date_expired = match str_field(b, "date_expired") {
        Some(s) => match parse_dt(s) {
            Some(t) => t,
            None => return field_err("date_expired", util::DT_FORMAT_ERROR),
        },
        None => util::far_future(c.now),
    };
    let u = User {
        id: util::new_id(),
        name: name.into(),
        username: username.into(),
        email: email.into(),
        password: str_field(b, "password").map(str::to_owned),
        otp_seed: None,
        is_active: b
            .and_then(|v| v.get("is_active"))
            .and_then(Value::as_bool)
            .unwrap_or(true),
        is_superuser: false,
        need_update_password: b
            .and_then(|v| v.get("need_update_password"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        in_default_org: true,
        date_expired,
        date_joined: c.now,
        last_login: None,
        comment: str_field(b, "comment").map(str::to_owned),
        created_by: caller_name(st, c),
    };
    let groups = match b.and_then(|v| v.get("groups")) {
        Some(v) => match group_ids(st, "groups", v) {
            Ok(g) => g,
            Err(o) => return o,
        },
        None => Vec::new(),
    };
    let uid = u.id.clone();
    st.users.push(u);
    set_user_groups(st, &uid, &groups);
    match st.users.iter().find(|u| u.id == uid) {
        Some(u) => out(201, user_out(st, u, UserShape::Write, c.now)),
        None => internal(),
    }
}

pub(super) fn caller_name(st: &State, c: &Ctx) -> String {
    st.users
        .iter()
        .find(|u| u.id == c.caller.user_id)
        .map(|u| u.name.clone())
        .unwrap_or_default()
}

pub(super) fn users_get(st: &State, c: &Ctx, id: &str) -> Out {
    match st
        .users
        .iter()
        .find(|u| (u.id == id || u.username == id) && visible(u, c.org))
    {
        Some(u) => out(200, user_out(st, u, UserShape::Detail, c.now)),
        None => not_found_obj("User"),
    }
}

pub(super) fn users_patch(st: &mut State, c: &Ctx, id: &str, b: Option<&Value>) -> Out {
    let Some(obj) = b.and_then(Value::as_object) else {
        return detail(400, "Invalid data. Expected a dictionary.", "invalid");
    };
    let taken_email = |e: &str| st.users.iter().any(|u| u.email == e && u.id != id);
    if let Some(e) = obj.get("email").and_then(Value::as_str) {
        if !valid_email(e) {
            return field_err("email", "Enter a valid email address.");
        }
        if taken_email(e) {
            return field_err("email", "User with this Email already exists.");
        }
    }
    let date_expired = match obj.get("date_expired").and_then(Value::as_str) {
        Some(s) => match parse_dt(s) {
            Some(t) => Some(t),
            None => return field_err("date_expired", util::DT_FORMAT_ERROR),
        },
        None => None,
    };
    let groups = match obj.get("groups") {
        Some(v) => match group_ids(st, "groups", v) {
            Ok(g) => Some(g),
            Err(o) => return o,
        },
        None => None,
    };
    let Some(u) = st
        .users
        .iter_mut()
        .find(|u| u.id == id && visible(u, c.org))
    else {
        return not_found_obj("User");
    };
    if let Some(a) = obj.get("is_active").and_then(Value::as_bool) {
        u.is_active = a;
    }
    if let Some(t) = date_expired {
        u.date_expired = t;
    }
    if let Some(n) = obj.get("name").and_then(Value::as_str) {
        u.name = n.into();
    }
    if let Some(e) = obj.get("email").and_then(Value::as_str) {
        u.email = e.into();
    }
    if let Some(cm) = obj.get("comment").and_then(Value::as_str) {
        u.comment = Some(cm.into());
    }
    let uid = u.id.clone();
    if let Some(g) = groups {
        set_user_groups(st, &uid, &g);
    }
    match st.users.iter().find(|u| u.id == uid) {
        Some(u) => out(200, user_out(st, u, UserShape::WritePatch, c.now)),
        None => internal(),
    }
}
