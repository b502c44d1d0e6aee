//! The permission relation tables of the simulated JumpServer:
//! `/api/v1/perms/asset-permissions-{users,user-groups,assets,nodes}-relations/`.
//!
//! Each is a through table with integer ids (160-163): a membership created by a permission
//! POST/PATCH or a relation POST gets the next id of its table, a membership that goes away
//! drops its row, and deleting a permission drops all of its rows. Rows are
//! `{id, <member>, <member>_display, assetpermission, assetpermission_display}` with
//! `Name(username)`, the group name, `name(address)` or the node's full path as display.
//!
//! Without `order` the real server returns the rows in no stable order (surprise 17: the same
//! filter gave `[9, 8]` then `[10]` with `limit=2` but `[8, 9, 10]` in one page, 163), so a
//! client paging without `order=id` skips and repeats rows. The simulator reproduces that: every
//! unordered request sorts by a hash of the row id and a per-request salt. `order=id` / `-id` give
//! id order.
use super::assets::full_value;
use super::handler::*;
use super::model::*;
use super::response::*;
use super::util::{page_limit, page_offset, paginate_with, qget, Query};
use super::State;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The four relation tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    User,
    UserGroup,
    Asset,
    Node,
}

impl Kind {
    pub(super) const ALL: [Kind; 4] = [Kind::User, Kind::UserGroup, Kind::Asset, Kind::Node];

    fn idx(self) -> usize {
        match self {
            Kind::User => 0,
            Kind::UserGroup => 1,
            Kind::Asset => 2,
            Kind::Node => 3,
        }
    }

    /// The member column (and filter) name.
    pub(super) fn field(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::UserGroup => "usergroup",
            Kind::Asset => "asset",
            Kind::Node => "node",
        }
    }

    /// From the route segment `asset-permissions-<x>-relations`.
    pub(super) fn from_route(route: &str) -> Option<Kind> {
        let seg = route.rsplit('/').next()?;
        match seg {
            "asset-permissions-users-relations" => Some(Kind::User),
            "asset-permissions-user-groups-relations" => Some(Kind::UserGroup),
            "asset-permissions-assets-relations" => Some(Kind::Asset),
            "asset-permissions-nodes-relations" => Some(Kind::Node),
            _ => None,
        }
    }

    fn members(self, p: &Permission) -> &Vec<String> {
        match self {
            Kind::User => &p.user_ids,
            Kind::UserGroup => &p.group_ids,
            Kind::Asset => &p.asset_ids,
            Kind::Node => &p.node_ids,
        }
    }

    fn members_mut(self, p: &mut Permission) -> &mut Vec<String> {
        match self {
            Kind::User => &mut p.user_ids,
            Kind::UserGroup => &mut p.group_ids,
            Kind::Asset => &mut p.asset_ids,
            Kind::Node => &mut p.node_ids,
        }
    }

    fn exists(self, st: &State, id: &str) -> bool {
        match self {
            Kind::User => st.users.iter().any(|u| u.id == id),
            Kind::UserGroup => st.groups.iter().any(|g| g.id == id),
            Kind::Asset => st.hosts.iter().any(|h| h.id == id),
            Kind::Node => st.nodes.iter().any(|n| n.id == id),
        }
    }

    fn display(self, st: &State, id: &str) -> String {
        self.display_in(st, id).unwrap_or_default()
    }

    fn display_in(self, st: &State, id: &str) -> Option<String> {
        match self {
            Kind::User => st.users.iter().find(|u| u.id == id).map(User::display),
            Kind::UserGroup => st
                .groups
                .iter()
                .find(|g| g.id == id)
                .map(|g| g.name.clone()),
            Kind::Asset => st.hosts.iter().find(|h| h.id == id).map(Host::display),
            Kind::Node => st
                .nodes
                .iter()
                .find(|n| n.id == id)
                .map(|n| full_value(st, n)),
        }
    }
}

/// One through-table row.
#[derive(Debug, Clone)]
pub(crate) struct RelRow {
    pub id: u64,
    pub perm_id: String,
    pub member_id: String,
}

#[derive(Debug, Default)]
pub(crate) struct Relations {
    tables: [Vec<RelRow>; 4],
    /// Last id handed out per table (ids are never reused, like a database sequence).
    last: [u64; 4],
    /// Bumped by every unordered list request.
    salt: u64,
}

/// Appends a row without the per-permission bookkeeping of `sync` (which scans the table): for
/// seeding a large org whose permissions already name the member (`scale`).
pub(super) fn push_row(st: &mut State, kind: Kind, perm_id: &str, member_id: &str) {
    let i = kind.idx();
    st.relations.last[i] += 1;
    let id = st.relations.last[i];
    st.relations.tables[i].push(RelRow {
        id,
        perm_id: perm_id.to_owned(),
        member_id: member_id.to_owned(),
    });
}

/// Makes the rows of permission `perm_id` match its member lists: rows of members that went
/// away are dropped, new members get the next id of their table (in list order). A permission
/// that no longer exists loses all its rows.
pub(super) fn sync(st: &mut State, perm_id: &str) {
    let perm = st.perms.iter().find(|p| p.id == perm_id).cloned();
    for kind in Kind::ALL {
        let want: Vec<String> = perm
            .as_ref()
            .map(|p| kind.members(p).clone())
            .unwrap_or_default();
        let i = kind.idx();
        let table = &mut st.relations.tables[i];
        table.retain(|r| r.perm_id != perm_id || want.contains(&r.member_id));
        for m in &want {
            if !table
                .iter()
                .any(|r| r.perm_id == perm_id && &r.member_id == m)
            {
                st.relations.last[i] += 1;
                table.push(RelRow {
                    id: st.relations.last[i],
                    perm_id: perm_id.to_owned(),
                    member_id: m.clone(),
                });
            }
        }
    }
}

fn row_json(st: &State, kind: Kind, r: &RelRow) -> Value {
    let f = kind.field();
    let perm_name = st
        .perms
        .iter()
        .find(|p| p.id == r.perm_id)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    json!({"id": r.id, f: r.member_id, format!("{f}_display"): kind.display(st, &r.member_id),
        "assetpermission": r.perm_id, "assetpermission_display": perm_name})
}

fn matches(q: &Query, kind: Kind, r: &RelRow) -> bool {
    qget(q, "assetpermission").is_none_or(|x| x == r.perm_id)
        && qget(q, kind.field()).is_none_or(|x| x == r.member_id)
}

/// splitmix64: a cheap, well-mixed hash for the per-request row order.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `GET …-relations/`: filters `assetpermission` and the member field; `order=id`/`-id` is
/// stable, anything else is a fresh order per request (see the module header).
pub(super) fn list(st: &mut State, c: &Ctx, kind: Kind) -> Out {
    let mut rows: Vec<RelRow> = st.relations.tables[kind.idx()]
        .iter()
        .filter(|r| matches(c.q, kind, r))
        .cloned()
        .collect();
    match qget(c.q, "order") {
        Some("id") => rows.sort_by_key(|r| r.id),
        Some("-id") => rows.sort_by_key(|r| std::cmp::Reverse(r.id)),
        _ => {
            st.relations.salt += 1;
            let salt = mix(st.relations.salt);
            rows.sort_by_key(|r| mix(salt ^ r.id));
        }
    }
    let st: &State = st;
    // Names by id, built once per request: a page of 1000 rows looked up one by one in
    // 10k permissions and 50k hosts made the simulator, not the client, the slow side.
    let perm_names: HashMap<&str, &str> = st
        .perms
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    let page_rows = || rows.iter().skip(page_offset(c.q)).take(page_limit(c.q));
    let displays: HashMap<String, String> = match kind {
        Kind::Asset => {
            let hosts: HashMap<&str, &Host> = st.hosts.iter().map(|h| (h.id.as_str(), h)).collect();
            page_rows()
                .filter_map(|r| {
                    Some((
                        r.member_id.clone(),
                        hosts.get(r.member_id.as_str())?.display(),
                    ))
                })
                .collect()
        }
        Kind::User => {
            let users: HashMap<&str, &User> = st.users.iter().map(|u| (u.id.as_str(), u)).collect();
            page_rows()
                .filter_map(|r| {
                    Some((
                        r.member_id.clone(),
                        users.get(r.member_id.as_str())?.display(),
                    ))
                })
                .collect()
        }
        _ => page_rows()
            .filter_map(|r| Some((r.member_id.clone(), kind.display_in(st, &r.member_id)?)))
            .collect(),
    };
    let page = paginate_with(rows, c.q, c.base, true, |r| {
        let f = kind.field();
        json!({"id": r.id, f: r.member_id,
            format!("{f}_display"): displays.get(r.member_id.as_str()).cloned().unwrap_or_default(),
            "assetpermission": r.perm_id,
            "assetpermission_display": perm_names.get(r.perm_id.as_str()).copied().unwrap_or_default()})
    });
    out(200, page)
}

/// `POST …-relations/` with a list of `{<member>, assetpermission}` (§4.6); one object is
/// accepted too. Atomic: one bad item fails all, errors come back one dict per item (`{}` for
/// good ones, §1.3); a pair that exists is `non_field_errors` "must make a unique set" (§4.6).
pub(super) fn create(st: &mut State, c: &Ctx, kind: Kind, b: Option<&Value>) -> Out {
    if c.org == Org::Root {
        return out(400, json!(["Please save in a org"]));
    }
    let (items, is_list): (Vec<&Value>, bool) = match b {
        Some(Value::Array(a)) => (a.iter().collect(), true),
        Some(v @ Value::Object(_)) => (vec![v], false),
        _ => return detail(400, "Invalid data. Expected a dictionary.", "invalid"),
    };
    let f = kind.field();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut errors: Vec<Value> = Vec::new();
    for it in &items {
        let s = |k: &str| it.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let (pid, mid) = (s("assetpermission"), s(f));
        let mut e = serde_json::Map::new();
        for (key, id, ok) in [
            (
                "assetpermission",
                &pid,
                st.perms.iter().any(|p| p.id == pid),
            ),
            (f, &mid, kind.exists(st, &mid)),
        ] {
            if id.is_empty() {
                e.insert(key.into(), json!(["This field is required."]));
            } else if !ok {
                e.insert(
                    key.into(),
                    json!([format!("Invalid pk \"{id}\" - object does not exist.")]),
                );
            }
        }
        let taken = st
            .perms
            .iter()
            .any(|p| p.id == pid && kind.members(p).contains(&mid))
            || pairs.contains(&(pid.clone(), mid.clone()));
        if e.is_empty() && taken {
            e.insert(
                "non_field_errors".into(),
                json!([format!(
                    "The fields assetpermission, {f} must make a unique set."
                )]),
            );
        }
        pairs.push((pid, mid));
        errors.push(Value::Object(e));
    }
    if errors
        .iter()
        .any(|e| e.as_object().is_some_and(|m| !m.is_empty()))
    {
        let body = if is_list {
            Value::Array(errors)
        } else {
            errors.pop().unwrap_or(Value::Null)
        };
        return out(400, body);
    }
    for (pid, mid) in &pairs {
        if let Some(p) = st.perms.iter_mut().find(|p| &p.id == pid) {
            kind.members_mut(p).push(mid.clone());
        }
        sync(st, pid);
    }
    let table = &st.relations.tables[kind.idx()];
    let rows: Vec<Value> = pairs
        .iter()
        .filter_map(|(pid, mid)| {
            table
                .iter()
                .find(|r| &r.perm_id == pid && &r.member_id == mid)
        })
        .map(|r| row_json(st, kind, r))
        .collect();
    let body = if is_list {
        Value::Array(rows)
    } else {
        rows.into_iter().next().unwrap_or(Value::Null)
    };
    out(201, body)
}

/// `DELETE …-relations/?assetpermission=<pid>&<member>=<id>` → 204 (§4.6). A bulk DELETE
/// without a filter is refused (§4.6 says so for permissions; the body is not recorded).
pub(super) fn delete(st: &mut State, c: &Ctx, kind: Kind) -> Out {
    if qget(c.q, "assetpermission").is_none() && qget(c.q, kind.field()).is_none() {
        return detail(400, "Bulk delete requires a filter.", "error");
    }
    let gone: Vec<RelRow> = st.relations.tables[kind.idx()]
        .iter()
        .filter(|r| matches(c.q, kind, r))
        .cloned()
        .collect();
    for r in &gone {
        if let Some(p) = st.perms.iter_mut().find(|p| p.id == r.perm_id) {
            kind.members_mut(p).retain(|m| m != &r.member_id);
        }
        sync(st, &r.perm_id);
    }
    empty(204)
}
