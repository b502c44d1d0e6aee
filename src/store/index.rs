//! The local index of JumpServer: users, hosts, nodes and asset permissions as of the last
//! `/sync`, so `/who-has` answers without walking JumpServer each time.
//!
//! Every sync writes a whole new generation and then swaps one pointer, so readers see either
//! the old index or the new one, never a mix; a crash while writing leaves the pointer on the
//! previous generation and the half-written one is swept by the next sync.
//!
//! Trees (keys are `<generation:020>/` + the key below; values JSON unless noted):
//! - `index_meta`: `current` → `Meta` (generation, synced at, counts); `next_gen` → u64 BE
//! - `index_users` (`<user id>`), `index_users_by_name` (`<username>` → user id, raw)
//! - `index_hosts` (`<host id>`), `index_hosts_by_address` / `index_hosts_by_name`
//!   (`<address or name>/<host id>` → empty)
//! - `index_nodes` (`<node id>`)
//! - `index_perms` (`<permission id>` → the permission plus the host ids it covers, nodes
//!   expanded), `index_perms_by_address` (`<address>/<permission id>` → empty),
//!   `index_perms_by_user` (`<user id>/<permission id>` → empty)
//!
//! Longer than 600 lines on purpose: writing a generation and every read of it share the key
//! layout above, which is easiest to keep right in one file; its unit tests are at the end.
use super::audit::Audit;
use super::{Store, StoreError};
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::inventory::{
    Grant, IndexStats, IndexedHost, IndexedPermission, IndexedUser, Reach, Snapshot, UserAccess,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

const META: &str = "index_meta";
const USERS: &str = "index_users";
const USERS_BY_NAME: &str = "index_users_by_name";
const HOSTS: &str = "index_hosts";
const HOSTS_BY_ADDRESS: &str = "index_hosts_by_address";
const HOSTS_BY_NAME: &str = "index_hosts_by_name";
const NODES: &str = "index_nodes";
const PERMS: &str = "index_perms";
const PERMS_BY_ADDRESS: &str = "index_perms_by_address";
const PERMS_BY_USER: &str = "index_perms_by_user";

/// Every tree that holds generation-scoped data (`index_meta` excluded).
pub(crate) const DATA_TREES: [&str; 9] = [
    USERS,
    USERS_BY_NAME,
    HOSTS,
    HOSTS_BY_ADDRESS,
    HOSTS_BY_NAME,
    NODES,
    PERMS,
    PERMS_BY_ADDRESS,
    PERMS_BY_USER,
];

const CURRENT: &[u8] = b"current";
const NEXT_GEN: &[u8] = b"next_gen";

/// The `current` record: the generation readers use and the one before it (kept so a reader
/// that started on it finishes; swept by the next sync).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    stats: IndexStats,
    previous: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredPerm {
    perm: IndexedPermission,
    /// Hosts covered: the permission's assets plus every host in or under its nodes.
    host_ids: Vec<String>,
}

/// Handle on the index trees. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Index {
    store: Store,
    meta: sled::Tree,
    audit: Audit,
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn dec<T: for<'de> Deserialize<'de>>(what: &str, v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("index {what}: {e}")))
}

fn gen_prefix(generation: u64) -> String {
    format!("{generation:020}/")
}

fn key(generation: u64, parts: &[&str]) -> Vec<u8> {
    let mut k = gen_prefix(generation);
    k.push_str(&parts.join("/"));
    k.into_bytes()
}

/// True when node key `inner` is `outer` or below it.
fn key_under(inner: &str, outer: &str) -> bool {
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with(':'))
}

impl Index {
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        for t in DATA_TREES {
            store.tree(t)?;
        }
        Ok(Self {
            store: store.clone(),
            meta: store.tree(META)?,
            audit: Audit::new(store)?,
        })
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.store.tree(name)
    }

    /// The current generation's figures; `None` until the first sync completed.
    pub fn stats(&self) -> Result<Option<IndexStats>, StoreError> {
        Ok(self.meta_record()?.map(|m| m.stats))
    }

    fn meta_record(&self) -> Result<Option<Meta>, StoreError> {
        match self.meta.get(CURRENT)? {
            None => Ok(None),
            Some(v) => dec("meta", &v).map(Some),
        }
    }

    /// Writes `snap` as a new generation and makes it current; the previous generation is
    /// kept (a reader may still be on it) and older ones are removed. Records an audit entry.
    /// A crash before the swap leaves the previous generation current.
    pub async fn replace(
        &self,
        snap: &Snapshot,
        synced_at: Timestamp,
        duration_ms: u64,
        actor: Actor,
    ) -> Result<IndexStats, StoreError> {
        let generation = self.allocate_generation()?;
        let stats = self.write_generation(generation, snap, synced_at, duration_ms)?;
        // The data must be on disk before the pointer names it.
        self.store.flush().await?;
        let previous = self.stats()?.map(|s| s.generation);
        self.meta.insert(
            CURRENT,
            enc(&Meta {
                stats: stats.clone(),
                previous,
            })?,
        )?;
        self.store.flush().await?;
        self.sweep(&[Some(generation), previous])?;
        self.audit.append(&AuditRecord::new(
            synced_at,
            None,
            actor,
            AuditEvent::Note,
            format!(
                "JumpServer index synced: generation {generation}, {} users, {} hosts, {} permissions ({} valid), {} ms",
                stats.users, stats.hosts, stats.permissions, stats.valid_permissions, duration_ms
            ),
        ))?;
        Ok(stats)
    }

    /// Records a sync that did not complete (the previous generation stays current).
    pub fn record_failure(
        &self,
        at: Timestamp,
        actor: Actor,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.audit.append(&AuditRecord::new(
            at,
            None,
            actor,
            AuditEvent::Note,
            format!("JumpServer index sync failed, previous index kept: {detail}"),
        ))
    }

    fn allocate_generation(&self) -> Result<u64, StoreError> {
        let current = self.stats()?.map(|s| s.generation).unwrap_or(0);
        let next = self.meta.update_and_fetch(NEXT_GEN, |old| {
            let n = old
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            Some(n.max(current).saturating_add(1).to_be_bytes().to_vec())
        })?;
        next.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| StoreError::Corrupt("index generation counter".into()))
    }

    /// Removes every generation not in `keep` (half-written ones from a crash included).
    fn sweep(&self, keep: &[Option<u64>]) -> Result<(), StoreError> {
        let keep: BTreeSet<String> = keep.iter().flatten().map(|g| gen_prefix(*g)).collect();
        for name in DATA_TREES {
            let tree = self.tree(name)?;
            let mut batch = sled::Batch::default();
            let mut n = 0usize;
            for item in tree.iter().keys() {
                let k = item?;
                let prefix = k.get(..21).and_then(|p| std::str::from_utf8(p).ok());
                if prefix.is_none_or(|p| !keep.contains(p)) {
                    batch.remove(k);
                    n += 1;
                }
            }
            if n > 0 {
                tree.apply_batch(batch)?;
            }
        }
        Ok(())
    }

    fn write_generation(
        &self,
        g: u64,
        snap: &Snapshot,
        synced_at: Timestamp,
        duration_ms: u64,
    ) -> Result<IndexStats, StoreError> {
        // Start from a clean slate in case a crashed sync used this number before.
        let prefix = gen_prefix(g);
        for name in DATA_TREES {
            let tree = self.tree(name)?;
            let mut batch = sled::Batch::default();
            for k in tree.scan_prefix(prefix.as_bytes()).keys() {
                batch.remove(k?);
            }
            tree.apply_batch(batch)?;
        }

        let mut users = sled::Batch::default();
        let mut users_by_name = sled::Batch::default();
        let mut user_ids = BTreeSet::new();
        for u in &snap.users {
            if u.id.is_empty() || !user_ids.insert(u.id.as_str()) {
                continue;
            }
            users.insert(key(g, &[&u.id]), enc(u)?);
            users_by_name.insert(key(g, &[&u.username]), u.id.as_bytes());
        }

        let mut nodes = sled::Batch::default();
        let node_key: BTreeMap<&str, &str> = snap
            .nodes
            .iter()
            .map(|n| (n.id.as_str(), n.key.as_str()))
            .collect();
        for n in &snap.nodes {
            nodes.insert(key(g, &[&n.id]), enc(n)?);
        }

        let mut hosts = sled::Batch::default();
        let mut hosts_by_address = sled::Batch::default();
        let mut hosts_by_name = sled::Batch::default();
        let mut host_by_id: BTreeMap<&str, &IndexedHost> = BTreeMap::new();
        for h in &snap.hosts {
            if h.id.is_empty() || host_by_id.insert(h.id.as_str(), h).is_some() {
                continue;
            }
            hosts.insert(key(g, &[&h.id]), enc(h)?);
            hosts_by_address.insert(key(g, &[&h.address, &h.id]), &[]);
            hosts_by_name.insert(key(g, &[&h.name, &h.id]), &[]);
        }

        let mut perms = sled::Batch::default();
        let mut perms_by_address = sled::Batch::default();
        let mut perms_by_user = sled::Batch::default();
        let mut valid = 0usize;
        for p in &snap.permissions {
            let pkeys: Vec<&str> = p
                .node_ids
                .iter()
                .filter_map(|id| node_key.get(id.as_str()).copied())
                .collect();
            let mut covered: BTreeSet<&str> = p
                .asset_ids
                .iter()
                .filter_map(|a| host_by_id.get_key_value(a.as_str()).map(|(k, _)| *k))
                .collect();
            // Only node grants need the walk over every host.
            if !pkeys.is_empty() {
                covered.extend(
                    host_by_id
                        .values()
                        .filter(|h| {
                            h.node_ids.iter().any(|n| {
                                node_key
                                    .get(n.as_str())
                                    .is_some_and(|hk| pkeys.iter().any(|pk| key_under(hk, pk)))
                            })
                        })
                        .map(|h| h.id.as_str()),
                );
            }
            for hid in &covered {
                if let Some(h) = host_by_id.get(hid) {
                    perms_by_address.insert(key(g, &[&h.address, &p.id]), &[]);
                }
            }
            for u in &p.user_ids {
                perms_by_user.insert(key(g, &[u, &p.id]), &[]);
            }
            if p.is_valid(synced_at) {
                valid += 1;
            }
            let stored = StoredPerm {
                perm: p.clone(),
                host_ids: covered.iter().map(|s| (*s).to_string()).collect(),
            };
            perms.insert(key(g, &[&p.id]), enc(&stored)?);
        }

        for (name, batch) in [
            (USERS, users),
            (USERS_BY_NAME, users_by_name),
            (NODES, nodes),
            (HOSTS, hosts),
            (HOSTS_BY_ADDRESS, hosts_by_address),
            (HOSTS_BY_NAME, hosts_by_name),
            (PERMS, perms),
            (PERMS_BY_ADDRESS, perms_by_address),
            (PERMS_BY_USER, perms_by_user),
        ] {
            self.tree(name)?.apply_batch(batch)?;
        }
        Ok(IndexStats {
            generation: g,
            synced_at,
            duration_ms,
            users: user_ids.len(),
            hosts: host_by_id.len(),
            nodes: snap.nodes.len(),
            permissions: snap.permissions.len(),
            valid_permissions: valid,
        })
    }

    fn current(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.stats()?.map(|s| s.generation))
    }

    fn get<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &str,
        g: u64,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.tree(tree)?.get(key(g, &[id]))? {
            None => Ok(None),
            Some(v) => dec(tree, &v).map(Some),
        }
    }

    /// The last path segment of every key under `<g>/<first>/`.
    fn ids_under(&self, tree: &str, g: u64, first: &str) -> Result<Vec<String>, StoreError> {
        let prefix = key(g, &[first, ""]);
        let mut out = Vec::new();
        for k in self.tree(tree)?.scan_prefix(&prefix).keys() {
            let k = k?;
            if let Some(rest) = k.get(prefix.len()..) {
                out.push(String::from_utf8_lossy(rest).into_owned());
            }
        }
        Ok(out)
    }

    /// The user with this JumpServer username in the current generation.
    pub fn user_by_username(&self, username: &str) -> Result<Option<IndexedUser>, StoreError> {
        match self.current()? {
            Some(g) => self.user_in(g, username),
            None => Ok(None),
        }
    }

    fn user_in(&self, g: u64, username: &str) -> Result<Option<IndexedUser>, StoreError> {
        let Some(id) = self.tree(USERS_BY_NAME)?.get(key(g, &[username]))? else {
            return Ok(None);
        };
        self.get(USERS, g, &String::from_utf8_lossy(&id))
    }

    /// Hosts whose address or name is `subject`.
    pub fn hosts_matching(&self, subject: &str) -> Result<Vec<IndexedHost>, StoreError> {
        let Some(g) = self.current()? else {
            return Ok(Vec::new());
        };
        let mut ids: BTreeSet<String> = self
            .ids_under(HOSTS_BY_ADDRESS, g, subject)?
            .into_iter()
            .collect();
        ids.extend(self.ids_under(HOSTS_BY_NAME, g, subject)?);
        let mut out = Vec::new();
        for id in ids {
            if let Some(h) = self.get::<IndexedHost>(HOSTS, g, &id)? {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// Who can reach `address` at `now` through valid permissions (nodes and groups expanded),
    /// one row per user, host and permission; ordered by user then permission name.
    pub fn who_can_reach(&self, address: &str, now: Timestamp) -> Result<Vec<Reach>, StoreError> {
        let Some(g) = self.current()? else {
            return Ok(Vec::new());
        };
        let hosts: Vec<IndexedHost> = self
            .ids_under(HOSTS_BY_ADDRESS, g, address)?
            .iter()
            .filter_map(|id| self.get::<IndexedHost>(HOSTS, g, id).transpose())
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for pid in self.ids_under(PERMS_BY_ADDRESS, g, address)? {
            let Some(sp) = self.get::<StoredPerm>(PERMS, g, &pid)? else {
                continue;
            };
            if !sp.perm.is_valid(now) {
                continue;
            }
            for h in hosts.iter().filter(|h| sp.host_ids.contains(&h.id)) {
                for uid in &sp.perm.user_ids {
                    let user = self.get::<IndexedUser>(USERS, g, uid)?.unwrap_or_else(|| {
                        // A permission may name a user outside the listed org; keep the row.
                        IndexedUser {
                            id: uid.clone(),
                            username: uid.clone(),
                            name: String::new(),
                            email: String::new(),
                            is_active: true,
                        }
                    });
                    out.push(Reach {
                        user,
                        host: h.clone(),
                        permission_id: sp.perm.id.clone(),
                        permission_name: sp.perm.name.clone(),
                        accounts: sp.perm.accounts.clone(),
                        actions: sp.perm.actions.clone(),
                        date_expired: sp.perm.date_expired,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.user.username, &a.permission_name, &a.host.name).cmp(&(
                &b.user.username,
                &b.permission_name,
                &b.host.name,
            ))
        });
        Ok(out)
    }

    /// What `username` can reach at `now` through valid permissions; `None` when the index
    /// has no such user.
    pub fn user_access(
        &self,
        username: &str,
        now: Timestamp,
    ) -> Result<Option<UserAccess>, StoreError> {
        let Some(g) = self.current()? else {
            return Ok(None);
        };
        let Some(user) = self.user_in(g, username)? else {
            return Ok(None);
        };
        let mut grants = Vec::new();
        for pid in self.ids_under(PERMS_BY_USER, g, &user.id)? {
            let Some(sp) = self.get::<StoredPerm>(PERMS, g, &pid)? else {
                continue;
            };
            if !sp.perm.is_valid(now) {
                continue;
            }
            let mut hosts = Vec::new();
            for hid in &sp.host_ids {
                if let Some(h) = self.get::<IndexedHost>(HOSTS, g, hid)? {
                    hosts.push(h);
                }
            }
            // Addresses in numeric order (10.0.0.9 before 10.0.0.10); names after them.
            hosts.sort_by_cached_key(|h| {
                let ip = h.address.parse::<std::net::IpAddr>().ok();
                (ip.is_none(), ip, h.address.clone())
            });
            grants.push(Grant {
                permission_id: sp.perm.id,
                permission_name: sp.perm.name,
                hosts,
                accounts: sp.perm.accounts,
                actions: sp.perm.actions,
                date_expired: sp.perm.date_expired,
            });
        }
        grants.sort_by(|a, b| a.permission_name.cmp(&b.permission_name));
        Ok(Some(UserAccess { user, grants }))
    }

    /// Keys held by generations other than the current and the previous one (0 after a clean
    /// sync; a crashed sync leaves some until the next one). For tests and status.
    pub fn stray_keys(&self) -> Result<usize, StoreError> {
        let Some(cur) = self.meta_record()? else {
            return DATA_TREES
                .iter()
                .map(|t| self.tree(t).map(|t| t.len()))
                .sum::<Result<usize, _>>();
        };
        let keep: Vec<String> = [Some(cur.stats.generation), cur.previous]
            .iter()
            .flatten()
            .map(|g| gen_prefix(*g))
            .collect();
        let mut n = 0;
        for name in DATA_TREES {
            for k in self.tree(name)?.iter().keys() {
                let k = k?;
                let p = k.get(..21).and_then(|p| std::str::from_utf8(p).ok());
                if p.is_none_or(|p| !keep.iter().any(|x| x == p)) {
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inventory::IndexedNode;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn snap() -> Snapshot {
        let user = |id: &str, name: &str| IndexedUser {
            id: id.into(),
            username: name.into(),
            name: name.to_uppercase(),
            email: format!("{name}@example.com"),
            is_active: true,
        };
        let perm = |id: &str, users: &[&str], assets: &[&str], nodes: &[&str], active, s, e| {
            IndexedPermission {
                id: id.into(),
                name: format!("p-{id}"),
                user_ids: users.iter().map(|s| s.to_string()).collect(),
                asset_ids: assets.iter().map(|s| s.to_string()).collect(),
                node_ids: nodes.iter().map(|s| s.to_string()).collect(),
                accounts: vec!["@ALL".into()],
                actions: vec!["connect".into()],
                is_active: active,
                date_start: Some(t(s)),
                date_expired: Some(t(e)),
            }
        };
        Snapshot {
            users: vec![user("u1", "alice"), user("u2", "bob")],
            nodes: vec![
                IndexedNode {
                    id: "n1".into(),
                    key: "1:1".into(),
                    full_value: "/Default/Pay".into(),
                },
                IndexedNode {
                    id: "n2".into(),
                    key: "1:1:4".into(),
                    full_value: "/Default/Pay/prod".into(),
                },
                IndexedNode {
                    id: "n3".into(),
                    key: "1:11".into(),
                    full_value: "/Default/Other".into(),
                },
            ],
            hosts: vec![
                IndexedHost {
                    id: "h1".into(),
                    name: "web1".into(),
                    address: "10.0.0.1".into(),
                    node_ids: vec!["n2".into()],
                },
                IndexedHost {
                    id: "h2".into(),
                    name: "web2".into(),
                    address: "10.0.0.2".into(),
                    node_ids: vec!["n3".into()],
                },
            ],
            permissions: vec![
                // node grant on the parent: covers h1 (in a child) but not h2 (key 1:11)
                perm(
                    "a",
                    &["u1"],
                    &[],
                    &["n1"],
                    true,
                    "2026-01-01T00:00:00Z",
                    "2027-01-01T00:00:00Z",
                ),
                perm(
                    "b",
                    &["u2"],
                    &["h2"],
                    &[],
                    false,
                    "2026-01-01T00:00:00Z",
                    "2027-01-01T00:00:00Z",
                ),
                perm(
                    "c",
                    &["u2"],
                    &["h1"],
                    &[],
                    true,
                    "2026-12-01T00:00:00Z",
                    "2027-01-01T00:00:00Z",
                ),
            ],
        }
    }

    #[tokio::test]
    async fn nodes_expand_by_key_and_only_valid_grants_count() {
        let store = Store::temporary().unwrap();
        let ix = Index::new(&store).unwrap();
        assert!(ix.stats().unwrap().is_none());
        let now = t("2026-06-01T00:00:00Z");
        let s = ix.replace(&snap(), now, 5, Actor::System).await.unwrap();
        assert_eq!(
            (s.users, s.hosts, s.permissions, s.valid_permissions),
            (2, 2, 3, 1)
        );
        let r = ix.who_can_reach("10.0.0.1", now).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].user.username, "alice");
        assert!(ix.who_can_reach("10.0.0.2", now).unwrap().is_empty());
        // The future permission becomes valid in December.
        let later = t("2026-12-02T00:00:00Z");
        let names: Vec<String> = ix
            .who_can_reach("10.0.0.1", later)
            .unwrap()
            .into_iter()
            .map(|r| r.user.username)
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        let a = ix.user_access("alice", now).unwrap().unwrap();
        assert_eq!(a.grants.len(), 1);
        assert_eq!(a.grants[0].hosts[0].address, "10.0.0.1");
        assert!(ix
            .user_access("bob", now)
            .unwrap()
            .unwrap()
            .grants
            .is_empty());
        assert!(ix.user_access("carol", now).unwrap().is_none());
        assert_eq!(ix.hosts_matching("web2").unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_new_generation_replaces_the_old_and_sweeps_strays() {
        let store = Store::temporary().unwrap();
        let ix = Index::new(&store).unwrap();
        let now = t("2026-06-01T00:00:00Z");
        ix.replace(&snap(), now, 1, Actor::System).await.unwrap();
        // A crashed sync: data written for a generation that never became current.
        let g = ix.allocate_generation().unwrap();
        let mut half = snap();
        half.users.truncate(1);
        ix.write_generation(g, &half, now, 0).unwrap();
        assert!(ix.stray_keys().unwrap() > 0);
        assert_eq!(ix.stats().unwrap().unwrap().generation, 1);
        assert!(ix.user_by_username("bob").unwrap().is_some());
        let mut next = snap();
        next.users.retain(|u| u.username == "bob");
        let s = ix.replace(&next, now, 1, Actor::System).await.unwrap();
        assert_eq!(s.generation, g + 1);
        assert!(ix.user_by_username("alice").unwrap().is_none());
        assert_eq!(ix.stray_keys().unwrap(), 0);
    }
}
