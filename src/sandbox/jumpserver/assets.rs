//! Nodes (keys "1", "1:N"), hosts, platforms' use and node membership in the simulated JumpServer.
use super::handler::*;
use super::model::*;
use super::response::*;
use super::users::*;
use super::util::{self, paginate, paginate_with, qget};
use super::State;
use serde_json::{json, Value};

/// The org's root node (key "1"), created on first need like `/nodes/children/` does.
pub(crate) fn ensure_root(st: &mut State) -> String {
    if let Some(n) = st.nodes.iter().find(|n| n.key == "1") {
        return n.id.clone();
    }
    let id = util::new_id();
    st.nodes.push(Node {
        id: id.clone(),
        key: "1".into(),
        value: DEFAULT_ORG_NAME.into(),
        child_mark: 0,
    });
    id
}

pub(super) fn parent_key(key: &str) -> Option<&str> {
    key.rsplit_once(':').map(|(p, _)| p)
}

pub(super) fn full_value(st: &State, n: &Node) -> String {
    let mut parts = vec![n.value.clone()];
    let mut k = n.key.as_str();
    while let Some(pk) = parent_key(k) {
        match st.nodes.iter().find(|x| x.key == pk) {
            Some(p) => parts.push(p.value.clone()),
            None => break,
        }
        k = pk;
    }
    parts.reverse();
    format!("/{}", parts.join("/"))
}

pub(super) fn node_json(st: &State, n: &Node) -> Value {
    json!({"id": n.id, "key": n.key, "value": n.value, "org_id": DEFAULT_ORG_ID, "name": n.value,
        "full_value": full_value(st, n), "org_name": DEFAULT_ORG_NAME})
}

pub(super) fn nodes_list(st: &State, c: &Ctx) -> Out {
    let search = qget(c.q, "search").map(str::to_lowercase);
    let mut rows: Vec<&Node> = st
        .nodes
        .iter()
        .filter(|n| qget(c.q, "key").is_none_or(|x| x == n.key))
        .filter(|n| qget(c.q, "value").is_none_or(|x| x == n.value))
        .filter(|n| qget(c.q, "id").is_none_or(|x| x == n.id))
        // Node search matches the whole path, so children of a hit are hits too [082].
        .filter(|n| {
            search
                .as_ref()
                .is_none_or(|s| full_value(st, n).to_lowercase().contains(s))
        })
        .collect();
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    let rows = rows.iter().map(|n| node_json(st, n)).collect();
    out(200, paginate(rows, c.q, c.base, true))
}

/// Creates `value` under the node with `parent_key`; `None` when a sibling has that value.
pub(super) fn create_child(st: &mut State, parent_key: &str, value: &str) -> Option<String> {
    let prefix = format!("{parent_key}:");
    let dup = st.nodes.iter().any(|n| {
        n.value == value
            && n.key
                .strip_prefix(&prefix)
                .is_some_and(|rest| !rest.contains(':'))
    });
    if dup {
        return None;
    }
    let parent = st.nodes.iter_mut().find(|n| n.key == parent_key)?;
    let mark = parent.child_mark;
    parent.child_mark += 1;
    let id = util::new_id();
    st.nodes.push(Node {
        id: id.clone(),
        key: format!("{parent_key}:{mark}"),
        value: value.into(),
        child_mark: 0,
    });
    Some(id)
}

/// Create-or-get along a `/`-separated path; a leading root segment is skipped.
pub(crate) fn node_by_full_value(st: &mut State, full: &str) -> String {
    let root = ensure_root(st);
    let mut cur_key = "1".to_owned();
    let mut cur_id = root;
    let segs: Vec<&str> = full.split('/').filter(|s| !s.is_empty()).collect();
    let skip = usize::from(segs.first() == Some(&DEFAULT_ORG_NAME));
    for seg in segs.into_iter().skip(skip) {
        let prefix = format!("{cur_key}:");
        let existing = st
            .nodes
            .iter()
            .find(|n| {
                n.value == seg
                    && n.key
                        .strip_prefix(&prefix)
                        .is_some_and(|r| !r.contains(':'))
            })
            .map(|n| (n.id.clone(), n.key.clone()));
        let (id, key) = match existing {
            Some(x) => x,
            None => {
                let id = create_child(st, &cur_key, seg).unwrap_or_default();
                let key = st
                    .nodes
                    .iter()
                    .find(|n| n.id == id)
                    .map(|n| n.key.clone())
                    .unwrap_or_default();
                (id, key)
            }
        };
        cur_id = id;
        cur_key = key;
    }
    cur_id
}

pub(super) fn nodes_create(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    if c.org == Org::Root {
        return out(400, json!(["Please save in a org"]));
    }
    if let Some(fv) = str_field(b, "full_value") {
        let id = node_by_full_value(st, fv);
        return match st.nodes.iter().find(|n| n.id == id) {
            Some(n) => out(201, node_json(st, n)),
            None => internal(),
        };
    }
    let Some(value) = str_field(b, "value").filter(|v| !v.is_empty()) else {
        return field_err("value", "This field is required.");
    };
    ensure_root(st);
    match create_child(st, "1", value) {
        Some(id) => match st.nodes.iter().find(|n| n.id == id) {
            Some(n) => out(201, node_json(st, n)),
            None => internal(),
        },
        None => field_err("value", "The same level node name cannot be the same"),
    }
}

pub(super) fn node_child_create(
    st: &mut State,
    c: &Ctx,
    parent_id: &str,
    b: Option<&Value>,
) -> Out {
    if c.org == Org::Root {
        return out(400, json!(["Please save in a org"]));
    }
    let Some(pkey) = st
        .nodes
        .iter()
        .find(|n| n.id == parent_id)
        .map(|n| n.key.clone())
    else {
        return not_found_obj("Node");
    };
    let value = str_field(b, "value").unwrap_or("New node").to_owned();
    match create_child(st, &pkey, &value) {
        Some(id) => match st.nodes.iter().find(|n| n.id == id) {
            Some(n) => out(201, node_json(st, n)),
            None => internal(),
        },
        None => detail(400, "The same level node name cannot be the same", "error"),
    }
}

/// `PUT /nodes/{id}/assets/add|remove/ {"assets": [...]}`: not in the recording; answers the
/// serializer echo the update view returns. A host never loses its last node (it falls back to root).
pub(super) fn node_assets(st: &mut State, node_id: &str, b: Option<&Value>, add: bool) -> Out {
    if !st.nodes.iter().any(|n| n.id == node_id) {
        return not_found_obj("Node");
    }
    let Some(list) = b.and_then(|v| v.get("assets")).and_then(Value::as_array) else {
        return field_err("assets", "This field is required.");
    };
    let mut ids = Vec::new();
    for x in list {
        let id = x.as_str().unwrap_or("");
        if !st.hosts.iter().any(|h| h.id == id) {
            return field_err(
                "assets",
                &format!("Invalid pk \"{id}\" - object does not exist."),
            );
        }
        ids.push(id.to_owned());
    }
    let root = if add { None } else { Some(ensure_root(st)) };
    for h in st.hosts.iter_mut().filter(|h| ids.contains(&h.id)) {
        if add {
            if !h.node_ids.iter().any(|n| n == node_id) {
                h.node_ids.push(node_id.to_owned());
            }
        } else {
            h.node_ids.retain(|n| n != node_id);
            if h.node_ids.is_empty() {
                h.node_ids.extend(root.clone());
            }
        }
    }
    out(200, json!({ "assets": ids }))
}

pub(super) fn node_refs(st: &State, ids: &[String]) -> NodeRefs {
    let nodes: Vec<&Node> = ids
        .iter()
        .filter_map(|id| st.nodes.iter().find(|n| &n.id == id))
        .collect();
    NodeRefs {
        refs: nodes
            .iter()
            .map(|n| json!({"id": n.id, "name": n.value}))
            .collect(),
        full_values: nodes.iter().map(|n| full_value(st, n)).collect(),
    }
}

pub(super) fn host_out(st: &State, h: &Host) -> Value {
    let Some(p) = st.platforms.iter().find(|p| p.id == h.platform_id) else {
        return Value::Null;
    };
    let n = st.accounts.iter().filter(|a| a.asset_id == h.id).count();
    host_json(h, p, &node_refs(st, &h.node_ids), n)
}

/// Which list serializer: `assets/hosts/` rows, or the `assets/assets/` rows, which lack
/// `gathered_info` and `spec_info` (166).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HostRows {
    Host,
    Asset,
}

/// `GET assets/hosts/` and `assets/assets/`: exact `address`, `name` (case-sensitive: a prefix or
/// other case finds nothing, 166), `id`, `ips=a,b`; `search` = case-insensitive substring of name
/// or address (`10.30.0.1` matched .11, .12, .13, 166).
pub(super) fn hosts_list(st: &State, c: &Ctx, shape: HostRows) -> Out {
    let ips: Option<Vec<&str>> = qget(c.q, "ips").map(|s| s.split(',').map(str::trim).collect());
    let search = qget(c.q, "search").map(str::to_lowercase);
    let mut rows: Vec<&Host> = st
        .hosts
        .iter()
        .filter(|h| qget(c.q, "address").is_none_or(|x| x == h.address))
        .filter(|h| qget(c.q, "name").is_none_or(|x| x == h.name))
        .filter(|h| qget(c.q, "id").is_none_or(|x| x == h.id))
        .filter(|h| ips.as_ref().is_none_or(|l| l.contains(&h.address.as_str())))
        .filter(|h| {
            search.as_ref().is_none_or(|s| {
                h.name.to_lowercase().contains(s) || h.address.to_lowercase().contains(s)
            })
        })
        .collect();
    // Ordered by name, which keeps a limit/offset walk stable.
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let page = paginate_with(rows, c.q, c.base, true, |h| {
        let mut v = host_out(st, h);
        if let (HostRows::Asset, Value::Object(m)) = (shape, &mut v) {
            m.remove("gathered_info");
            m.remove("spec_info");
        }
        v
    });
    out(200, page)
}

/// `GET /accounts/accounts/`: one row per account, i.e. per (host, name) — the same username on
/// two hosts is two rows [098]. Exact filters `asset`/`asset_id`, `username`, `name`, `address`,
/// `asset_name`, `id`; `node_id`/`nodes` = hosts in that node or below it; case-insensitive
/// `search` over username, name and the asset's name and address (§4.5). Ordered by asset name,
/// then account name, so a limit/offset walk is stable.
pub(super) fn accounts_list(st: &State, c: &Ctx) -> Out {
    let exact = |key: &str, v: &str| qget(c.q, key).is_none_or(|x| x == v);
    let node_key: Option<Option<&str>> = qget(c.q, "node_id")
        .or_else(|| qget(c.q, "nodes"))
        .map(|id| st.nodes.iter().find(|n| n.id == id).map(|n| n.key.as_str()));
    let in_node = |h: &Host| match node_key {
        None => true,
        Some(None) => false,
        Some(Some(k)) => h.node_ids.iter().any(|id| {
            st.nodes.iter().any(|n| {
                &n.id == id
                    && (n.key == k || n.key.strip_prefix(k).is_some_and(|r| r.starts_with(':')))
            })
        }),
    };
    let search = qget(c.q, "search").map(str::to_lowercase);
    // Indexed once: the bench grows the org to thousands of hosts and accounts.
    let hosts: std::collections::HashMap<&str, &Host> =
        st.hosts.iter().map(|h| (h.id.as_str(), h)).collect();
    let mut rows: Vec<(&Account, &Host)> = st
        .accounts
        .iter()
        .filter(|a| exact("username", &a.username) && exact("asset_id", &a.asset_id))
        .filter_map(|a| Some((a, *hosts.get(a.asset_id.as_str())?)))
        .filter(|(a, h)| {
            exact("asset", &h.id)
                && exact("asset_id", &h.id)
                && exact("username", &a.username)
                && exact("name", &a.name)
                && exact("address", &h.address)
                && exact("asset_name", &h.name)
                && exact("id", &a.id)
                && in_node(h)
        })
        .filter(|(a, h)| {
            search.as_ref().is_none_or(|s| {
                [&a.username, &a.name, &h.name, &h.address]
                    .iter()
                    .any(|f| f.to_lowercase().contains(s))
            })
        })
        .collect();
    rows.sort_by(|(a, h), (b, g)| (&h.name, &a.name).cmp(&(&g.name, &b.name)));
    let rows = rows
        .into_iter()
        .filter_map(|(a, h)| {
            let p = st.platforms.iter().find(|p| p.id == h.platform_id)?;
            Some(account_json(a, h, p))
        })
        .collect();
    out(200, paginate(rows, c.q, c.base, true))
}

pub(super) fn hosts_create(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    if c.org == Org::Root {
        return out(400, json!(["Please save in a org"]));
    }
    let Some(obj) = b.and_then(Value::as_object) else {
        return detail(400, "Invalid data. Expected a dictionary.", "invalid");
    };
    let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
    let address = obj.get("address").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        return field_err("name", "This field is required.");
    }
    if address.is_empty() {
        return field_err("address", "This field is required.");
    }
    let pid = match obj.get("platform") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_u64),
        // A name makes the v4.10.16 serializer crash (surprise 10).
        Some(Value::String(_)) => return internal(),
        _ => return field_err("platform", "This field is required."),
    };
    let Some(platform) = pid.and_then(|id| st.platforms.iter().find(|p| p.id == id).cloned())
    else {
        return field_err(
            "platform",
            &format!(
                "Invalid pk \"{}\" - object does not exist.",
                pid.unwrap_or(0)
            ),
        );
    };
    if st.hosts.iter().any(|h| h.name == name) {
        return field_err("name", "This field must be unique.");
    }
    let mut node_ids = Vec::new();
    for n in obj
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = n
            .as_str()
            .or_else(|| n.get("id").and_then(Value::as_str))
            .unwrap_or("");
        if !st.nodes.iter().any(|x| x.id == id) {
            return field_err(
                "nodes",
                &format!("Invalid pk \"{id}\" - object does not exist."),
            );
        }
        node_ids.push(id.to_owned());
    }
    if node_ids.is_empty() {
        node_ids.push(ensure_root(st));
    }
    let mut protocols = Vec::new();
    for p in obj
        .get("protocols")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pname = p.get("name").and_then(Value::as_str).unwrap_or("");
        let Some(pp) = platform.protocols.iter().find(|x| x.name == pname) else {
            return field_err("protocols", &format!("Protocol not found: {pname}"));
        };
        let port = p
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|x| u16::try_from(x).ok())
            .unwrap_or(pp.port);
        protocols.push((pname.to_owned(), port));
    }
    if protocols.is_empty() {
        protocols.extend(
            platform
                .protocols
                .iter()
                .filter(|p| p.primary)
                .map(|p| (p.name.to_owned(), p.port)),
        );
    }
    let id = util::new_id();
    let created_by = caller_name(st, c);
    for a in obj
        .get("accounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let username = a.get("username").and_then(Value::as_str).unwrap_or("");
        if username.is_empty() {
            return out(
                400,
                json!({"accounts": [{"username": ["This field is required."]}]}),
            );
        }
        st.accounts.push(Account {
            id: util::new_id(),
            asset_id: id.clone(),
            name: a
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(username)
                .to_owned(),
            username: username.to_owned(),
            secret_type: a
                .get("secret_type")
                .and_then(Value::as_str)
                .unwrap_or("password")
                .to_owned(),
            privileged: a
                .get("privileged")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            date_created: c.now,
            created_by: created_by.clone(),
        });
    }
    let h = Host {
        id,
        name: name.into(),
        address: address.into(),
        platform_id: platform.id,
        node_ids,
        protocols,
        comment: obj
            .get("comment")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        is_active: obj
            .get("is_active")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        date_created: c.now,
        created_by,
    };
    st.hosts.push(h.clone());
    out(201, host_out(st, &h))
}
