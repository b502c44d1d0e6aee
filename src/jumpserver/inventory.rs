//! The inventory walk a `/sync` makes: users (with their groups), user groups, nodes, hosts,
//! permissions and the four permission relation tables, each as a paginated list with the
//! largest page the server accepts, handed to the caller page by page so nothing holds the
//! whole inventory. Permission list rows carry only member counts (README surprise 18), so
//! the members come from the relation tables (transcripts 160-163) — a few pages for the whole
//! org instead of one detail call per permission.
//!
//! The relation tables have no default order (surprise 17: pages of the same filter skip and
//! repeat rows), so they are walked with `order=id`. The other lists are ordered by name by the
//! server (surprise 2), which keeps their pages stable. Every request waits for its turn in
//! the configured share of JumpServer's request budget (`pace`); a 429 is retried after its
//! `Retry-After`, capped (`client::call`).
use super::api::{self, host_from, node_from, perm_from, user_from, Host, JmsUser, Node};
use super::client::{next_path, target, JmsClient, Req, Retry};
use super::pace::Pacer;
use super::{JmsError, Permission};
use reqwest::Method;
use serde_json::Value;

/// Rows a page asks for: the cap of v4.10.8+ (`max_limit` 1000, transcript 153); older
/// servers clamp lower and the walk follows `next` either way.
pub const PAGE: &str = "1000";

/// Which relation table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelationTable {
    Users,
    UserGroups,
    Assets,
    Nodes,
}

impl RelationTable {
    pub const ALL: [RelationTable; 4] = [
        RelationTable::Users,
        RelationTable::UserGroups,
        RelationTable::Assets,
        RelationTable::Nodes,
    ];

    fn path(self) -> &'static str {
        match self {
            RelationTable::Users => "/api/v1/perms/asset-permissions-users-relations/",
            RelationTable::UserGroups => "/api/v1/perms/asset-permissions-user-groups-relations/",
            RelationTable::Assets => "/api/v1/perms/asset-permissions-assets-relations/",
            RelationTable::Nodes => "/api/v1/perms/asset-permissions-nodes-relations/",
        }
    }

    /// The member column of a row.
    fn field(self) -> &'static str {
        match self {
            RelationTable::Users => "user",
            RelationTable::UserGroups => "usergroup",
            RelationTable::Assets => "asset",
            RelationTable::Nodes => "node",
        }
    }
}

/// One page of the walk.
#[derive(Debug)]
pub enum Page {
    /// Users with the ids of their groups (the user list's `groups` field).
    Users(Vec<(JmsUser, Vec<String>)>),
    /// Groups with their members (the group list's `users` field).
    Groups(Vec<(String, Vec<String>)>),
    Nodes(Vec<Node>),
    Hosts(Vec<Host>),
    /// Permissions without members (the list does not carry them).
    Permissions(Vec<Permission>),
    /// `(permission id, member id)` rows of one table.
    Relations(RelationTable, Vec<(String, String)>),
}

/// What the walk took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkCount {
    /// Requests made (a retried request counts once).
    pub calls: u64,
    pub rows: u64,
    /// The lists' own `count`s, summed over the lists seen so far.
    pub rows_expected: u64,
}

/// A walk that stopped: JumpServer failed, or the caller refused a page.
#[derive(Debug)]
pub enum WalkError<E> {
    Jms(JmsError),
    Sink(E),
}

impl<E> From<JmsError> for WalkError<E> {
    fn from(e: JmsError) -> Self {
        WalkError::Jms(e)
    }
}

const GROUPS: &str = "/api/v1/users/groups/";

impl JmsClient {
    /// Walks the whole inventory into `on_page` (see the module header), at most
    /// `per_minute` requests a minute (0 = unpaced). `on_page` also gets the running count
    /// after each page.
    pub async fn walk_inventory<E>(
        &self,
        per_minute: u32,
        on_page: &mut (dyn FnMut(Page, WalkCount) -> Result<(), E> + Send),
    ) -> Result<WalkCount, WalkError<E>> {
        self.require_v3("listing hosts").await?;
        let mut w = Walker {
            jms: self,
            pacer: Pacer::new(per_minute),
            count: WalkCount::default(),
        };
        w.list(
            api::USERS,
            &[],
            &mut |rows| {
                let page = rows
                    .iter()
                    .map(|r| Ok((user_from(r)?, api::ids(r, "groups"))))
                    .collect::<Result<_, JmsError>>()?;
                Ok(Page::Users(page))
            },
            on_page,
        )
        .await?;
        w.list(
            GROUPS,
            &[],
            &mut |rows| {
                let page = rows
                    .iter()
                    .map(|r| (api::s(r, "id"), api::ids(r, "users")))
                    .filter(|(id, _)| !id.is_empty())
                    .collect();
                Ok(Page::Groups(page))
            },
            on_page,
        )
        .await?;
        w.list(
            api::NODES,
            &[],
            &mut |rows| {
                Ok(Page::Nodes(
                    rows.iter().map(node_from).collect::<Result<_, _>>()?,
                ))
            },
            on_page,
        )
        .await?;
        w.list(
            api::HOSTS,
            &[],
            &mut |rows| {
                Ok(Page::Hosts(
                    rows.iter().map(host_from).collect::<Result<_, _>>()?,
                ))
            },
            on_page,
        )
        .await?;
        w.list(
            api::PERMS,
            &[],
            &mut |rows| {
                Ok(Page::Permissions(
                    rows.iter().map(perm_from).collect::<Result<_, _>>()?,
                ))
            },
            on_page,
        )
        .await?;
        for table in RelationTable::ALL {
            let f = table.field();
            w.list(
                table.path(),
                &[("order", "id")],
                &mut |rows| {
                    let page = rows
                        .iter()
                        .map(|r| (member_id(r, "assetpermission"), member_id(r, f)))
                        .filter(|(p, m)| !p.is_empty() && !m.is_empty())
                        .collect();
                    Ok(Page::Relations(table, page))
                },
                on_page,
            )
            .await?;
        }
        Ok(w.count)
    }
}

/// A relation row's foreign key: an id string, or `{"id": …}` on servers that nest it.
fn member_id(r: &Value, k: &str) -> String {
    match r.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(o @ Value::Object(_)) => api::s(o, "id"),
        _ => String::new(),
    }
}

struct Walker<'a> {
    jms: &'a JmsClient,
    pacer: Pacer,
    count: WalkCount,
}

impl Walker<'_> {
    /// One list, page by page: `typed` turns rows into a page, `on_page` takes it.
    async fn list<E>(
        &mut self,
        path: &str,
        query: &[(&str, &str)],
        typed: &mut (dyn FnMut(&[Value]) -> Result<Page, JmsError> + Send),
        on_page: &mut (dyn FnMut(Page, WalkCount) -> Result<(), E> + Send),
    ) -> Result<(), WalkError<E>> {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("limit", PAGE));
        let mut next = Some(target(path, &q));
        let mut seen = std::collections::HashSet::new();
        let mut first = true;
        while let Some(t) = next.take() {
            if !seen.insert(t.clone()) {
                return Err(JmsError::Decode(format!("pagination loops at {t}")).into());
            }
            self.pacer.take().await;
            self.count.calls += 1;
            let v = self
                .jms
                .call(Req::new(Method::GET, t, None, Retry::Idempotent))
                .await?;
            let rows = match v {
                // Unpaginated answers (older views) are the whole list.
                Value::Array(items) => items,
                Value::Object(mut m) => {
                    if first {
                        self.count.rows_expected +=
                            m.get("count").and_then(Value::as_u64).unwrap_or(0);
                    }
                    if let Some(Value::String(n)) = m.get("next") {
                        next = Some(next_path(n)?);
                    }
                    match m.remove("results") {
                        Some(Value::Array(items)) => items,
                        _ => {
                            return Err(JmsError::Decode(format!("{path}: no results list")).into())
                        }
                    }
                }
                _ => return Err(JmsError::Decode(format!("{path}: not a list")).into()),
            };
            first = false;
            self.count.rows += rows.len() as u64;
            let page = typed(&rows)?;
            drop(rows);
            on_page(page, self.count).map_err(WalkError::Sink)?;
        }
        Ok(())
    }
}
