//! The local index of JumpServer: users, groups, hosts, nodes, asset permissions and the
//! permission relation tables as of the last `/sync`, so `/who-has` and the preview answer
//! without walking JumpServer each time.
//!
//! Every sync writes a whole new generation and then swaps one pointer, so readers see either
//! the old index or the new one, never a mix; a crash while writing leaves the pointer on the
//! previous generation and the half-written one is swept by the next sync.
//!
//! Each generation is its own sled database (`<storage path>/index/<generation>/`, opened by
//! `Store::create_generation_db` / `generation_db`); only `index_meta` lives in the main one. The
//! writer's database is closed when the generation is committed and reopened for reading, which
//! hands back everything sled kept resident from the write, and a superseded generation is
//! deleted as a directory. Generations written before this layout (`Meta::own_db` false) are
//! read from the main database's trees, which the second sync after them drops.
//!
//! The index keeps JumpServer's relations as they are (permission to user, group, host, node;
//! group to user) and expands groups and nodes when asked, not when written: a node grant on a
//! system of 1000 hosts is one row, not 1000, so a generation grows with JumpServer's tables
//! and is written page by page as the walk reads them (`IndexWriter`), never held whole.
//!
//! In the main database, `index_meta`: `current` → `Meta` (generation, synced at, counts, where
//! its rows are); `next_gen` → u64 BE.
//!
//! Trees of a generation (keys are `<generation:020>/` + the key below, in its own database as in
//! the legacy layout, so one reader serves both; values in postcard unless noted, in JSON in
//! generations written before it (`Meta::compact`, `Codec`); a version older than postcard cannot
//! read a newer generation, so going back a version means running `/sync` again):
//! - `index_users` (`<user id>`), `index_users_by_name` (`<username>` → user id, raw)
//! - `index_hosts` (`<host id>`), `index_hosts_by_address` / `index_hosts_by_name`
//!   (`<address or name>/<host id>` → empty)
//! - `index_nodes` (`<node id>`), `index_nodes_by_key` (`<node key>` → node id, raw)
//! - `index_perms` (`<permission id>` → the permission without member lists)
//! - `index_relations` (`<tag>/<a>/<b>` → empty), both directions of each relation:
//!   `pu`/`up` permission-user, `pg`/`gp` permission-group, `pa`/`ap` permission-host,
//!   `pn`/`np` permission-node, `gu`/`ug` group-user, `nh` node-host.
//! - `index_views`: answers `/who-has` would otherwise expand at query time (2–30 ms at 50k
//!   hosts), written by `IndexWriter::commit` from the rows above, one key at a time, after the
//!   walk: `nv/<node>` → the permissions naming the node or a node above it; `nt/<node>` → the
//!   first hosts of the node's subtree in address order; `pv/<permission>` → the permission
//!   and its users (groups expanded); `ph/<permission>` → how many hosts it covers and the
//!   first ones in address order. A query is then a handful of point reads. Validity is still
//!   judged at query time (`now`), so the views hold expired and disabled entries too.
//!
//! Longer than 600 lines on purpose: writing a generation, its views and every read of it share
//! the key layout above, which is easiest to keep right in one file; its unit tests are at the end.
use super::audit::Audit;
use super::{Store, StoreError};
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::inventory::{
    Grant, IndexStats, IndexedHost, IndexedNode, IndexedPermission, IndexedUser, Member, Reach,
    ReachPermission, Relation, Snapshot, UserAccess,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

const META: &str = "index_meta";
const USERS: &str = "index_users";
const USERS_BY_NAME: &str = "index_users_by_name";
const HOSTS: &str = "index_hosts";
const HOSTS_BY_ADDRESS: &str = "index_hosts_by_address";
const HOSTS_BY_NAME: &str = "index_hosts_by_name";
const NODES: &str = "index_nodes";
const NODES_BY_KEY: &str = "index_nodes_by_key";
const PERMS: &str = "index_perms";
const RELATIONS: &str = "index_relations";
const VIEWS: &str = "index_views";
/// Trees of earlier layouts in the main database: dropped with the legacy generations.
const OLD_TREES: [&str; 2] = ["index_perms_by_address", "index_perms_by_user"];

/// Every tree that holds generation-scoped data (`index_meta` excluded): in a generation's own
/// database, or (legacy) in the main one.
const DATA_TREES: [&str; 10] = [
    USERS,
    USERS_BY_NAME,
    HOSTS,
    HOSTS_BY_ADDRESS,
    HOSTS_BY_NAME,
    NODES,
    NODES_BY_KEY,
    PERMS,
    RELATIONS,
    VIEWS,
];

const CURRENT: &[u8] = b"current";
const NEXT_GEN: &[u8] = b"next_gen";

/// Views are written in batches of this many keys, and a reader's caches (users, hosts) last
/// this many permissions or nodes, so writing the views never holds a generation's tables.
const VIEW_CHUNK: usize = 500;

/// Hosts kept in address order per node subtree and per permission (`nt/`, `ph/`): what a
/// bounded `/who-has <user>` shows.
const VIEW_HOSTS: usize = crate::domain::inventory::GRANT_HOSTS_SHOWN;

/// The `current` record: the generation readers use and the one before it (kept so a reader
/// that started on it finishes; swept by the next sync).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    stats: IndexStats,
    previous: Option<u64>,
    /// The generation has its `index_views` (written by versions since the views came;
    /// an older generation is answered by expanding the relation rows at query time).
    #[serde(default)]
    views: bool,
    /// The generation has its own database (every version since they came); `false`: its rows
    /// are in the main database's trees.
    #[serde(default)]
    own_db: bool,
    /// The previous generation is a legacy one, so the main database's index trees are kept
    /// for a reader still on it (dropped by the next sync).
    #[serde(default)]
    legacy_kept: bool,
    /// The generation's rows and views are postcard (every version since it came); `false`:
    /// JSON.
    #[serde(default)]
    compact: bool,
}

impl Meta {
    fn gen(&self) -> Gen {
        Gen {
            g: self.stats.generation,
            own_db: self.own_db,
            codec: if self.compact {
                Codec::Compact
            } else {
                Codec::Json
            },
        }
    }
}

/// A generation to read: its number and where its rows are.
#[derive(Clone, Copy, Debug)]
struct Gen {
    g: u64,
    own_db: bool,
    codec: Codec,
}

/// How a generation's rows and views are encoded. Postcard since `/who-has <host>` was profiled:
/// decoding its JSON views was half of the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Json,
    Compact,
}

impl Codec {
    fn enc<T: Serialize>(self, v: &T) -> Result<Vec<u8>, StoreError> {
        match self {
            Codec::Json => enc(v),
            Codec::Compact => {
                postcard::to_allocvec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
            }
        }
    }

    fn dec<T: for<'de> Deserialize<'de>>(self, what: &str, v: &[u8]) -> Result<T, StoreError> {
        match self {
            Codec::Json => dec(what, v),
            Codec::Compact => postcard::from_bytes(v)
                .map_err(|e| StoreError::Corrupt(format!("index {what}: {e}"))),
        }
    }
}

/// What a new generation is written in.
const WRITE_CODEC: Codec = Codec::Compact;

/// `pv/<permission>`: a permission with its users, groups expanded (by id; a user the listed
/// org lacks is kept as a bare id, as `who_can_reach` always did).
#[derive(Serialize, Deserialize)]
struct PermView {
    perm: IndexedPermission,
    users: Vec<IndexedUser>,
}

/// `ph/<permission>` and `nt/<node>`: how many hosts, and the first `VIEW_HOSTS` in address
/// order.
#[derive(Serialize, Deserialize, Default)]
struct HostsView {
    count: usize,
    first: Vec<IndexedHost>,
}

/// Display order of hosts: addresses numerically (10.0.0.9 before 10.0.0.10), names after
/// them; the id breaks ties so the order is total.
type HostOrder = (bool, Option<std::net::IpAddr>, String, String);

fn host_order(h: &IndexedHost) -> HostOrder {
    let ip = h.address.parse::<std::net::IpAddr>().ok();
    (ip.is_none(), ip, h.address.clone(), h.id.clone())
}

/// The first `VIEW_HOSTS` hosts in display order among those pushed (each host once).
#[derive(Default)]
struct FirstHosts(std::collections::BTreeMap<HostOrder, IndexedHost>);

impl FirstHosts {
    fn push(&mut self, h: IndexedHost) {
        let k = host_order(&h);
        if self.0.len() == VIEW_HOSTS && self.0.last_key_value().is_some_and(|(l, _)| &k >= l) {
            return;
        }
        self.0.insert(k, h);
        if self.0.len() > VIEW_HOSTS {
            self.0.pop_last();
        }
    }

    fn into_vec(self) -> Vec<IndexedHost> {
        self.0.into_values().collect()
    }
}

/// Relation tags, both directions (see the module header).
fn tags(m: Member) -> (&'static str, &'static str) {
    match m {
        Member::User => ("pu", "up"),
        Member::UserGroup => ("pg", "gp"),
        Member::Asset => ("pa", "ap"),
        Member::Node => ("pn", "np"),
    }
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
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push('/');
        }
        k.push_str(p);
    }
    k.into_bytes()
}

/// True when node key `inner` is `outer` or below it.
fn key_under(inner: &str, outer: &str) -> bool {
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with(':'))
}

/// `1:3:5` → `1`, `1:3`, `1:3:5`: the node and every node above it.
fn key_and_ancestors(k: &str) -> impl Iterator<Item = &str> {
    k.match_indices(':')
        .map(move |(i, _)| &k[..i])
        .chain(std::iter::once(k))
}

impl Index {
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            store: store.clone(),
            meta: store.tree(META)?,
            audit: Audit::new(store)?,
        })
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

    /// Starts a new generation; pages go in through the writer, `commit` makes it current.
    pub fn begin(&self, now: Timestamp) -> Result<IndexWriter, StoreError> {
        self.begin_in(now, WRITE_CODEC)
    }

    fn begin_in(&self, now: Timestamp, codec: Codec) -> Result<IndexWriter, StoreError> {
        let generation = self.allocate_generation()?;
        // A fresh database: whatever a crashed sync left under this number is removed first.
        let db = self.store.create_generation_db(generation)?;
        Ok(IndexWriter {
            ix: self.clone(),
            g: generation,
            now,
            trees: Trees::open(&db)?,
            db,
            codec,
        })
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
        let mut w = self.begin(synced_at)?;
        // Pages of a walk's size, as a sync would write them.
        for c in snap.users.chunks(1000) {
            w.users(c)?;
        }
        for c in snap.nodes.chunks(1000) {
            w.nodes(c)?;
        }
        for c in snap.hosts.chunks(1000) {
            w.hosts(c)?;
        }
        for c in snap.permissions.chunks(1000) {
            w.permissions(c)?;
        }
        w.commit(synced_at, duration_ms, 0, actor).await
    }

    /// Makes generation `g` current and sweeps all but it and the one it replaces.
    async fn make_current(
        &self,
        stats: IndexStats,
        codec: Codec,
        actor: Actor,
    ) -> Result<IndexStats, StoreError> {
        let generation = stats.generation;
        // (The generation's own database was flushed by the writer before this.)
        let before = self.meta_record()?;
        let previous = before.as_ref().map(|m| m.stats.generation);
        let legacy_kept = before.as_ref().is_some_and(|m| !m.own_db);
        self.meta.insert(
            CURRENT,
            enc(&Meta {
                stats: stats.clone(),
                previous,
                views: true,
                own_db: true,
                legacy_kept,
                compact: codec == Codec::Compact,
            })?,
        )?;
        self.store.flush().await?;
        // The previous generation stays for a reader that started on it; older ones go.
        let keep: Vec<u64> = [Some(generation), previous].into_iter().flatten().collect();
        self.store.remove_generations_except(&keep)?;
        if !legacy_kept {
            self.drop_legacy_trees()?;
        }
        self.audit.append(&AuditRecord::new(
            stats.synced_at,
            None,
            actor,
            AuditEvent::Note,
            format!(
                "JumpServer index synced: generation {generation}, {} users, {} hosts, {} permissions ({} valid), {} relations, {} JumpServer calls, {} ms",
                stats.users, stats.hosts, stats.permissions, stats.valid_permissions,
                stats.relations, stats.calls, stats.duration_ms
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

    /// Drops the main database's index trees of the layout before generations had their own
    /// database, once no generation still readable is there.
    fn drop_legacy_trees(&self) -> Result<(), StoreError> {
        let db = self.store.db();
        for name in db.tree_names() {
            let legacy = std::str::from_utf8(&name)
                .is_ok_and(|n| DATA_TREES.contains(&n) || OLD_TREES.contains(&n));
            if legacy {
                db.drop_tree(&name)?;
            }
        }
        Ok(())
    }

    fn current(&self) -> Result<Option<Gen>, StoreError> {
        Ok(self.meta_record()?.map(|m| m.gen()))
    }

    /// The last path segment of every key under `<g>/<parts…>/`.
    fn ids_under(
        &self,
        tree: &sled::Tree,
        g: u64,
        parts: &[&str],
    ) -> Result<Vec<String>, StoreError> {
        let mut prefix = key(g, parts);
        prefix.push(b'/');
        let mut out = Vec::new();
        for k in tree.scan_prefix(&prefix).keys() {
            let k = k?;
            if let Some(rest) = k.get(prefix.len()..) {
                // A name with a slash in it shares the prefix of a shorter one; not ours.
                if !rest.contains(&b'/') {
                    out.push(String::from_utf8_lossy(rest).into_owned());
                }
            }
        }
        Ok(out)
    }

    /// The user with this JumpServer username in the current generation.
    pub fn user_by_username(&self, username: &str) -> Result<Option<IndexedUser>, StoreError> {
        match self.current()? {
            Some(g) => Reader::new(self, g)?.user_named(username),
            None => Ok(None),
        }
    }

    /// Hosts whose address or name is `subject`.
    pub fn hosts_matching(&self, subject: &str) -> Result<Vec<IndexedHost>, StoreError> {
        let Some(g) = self.current()? else {
            return Ok(Vec::new());
        };
        let r = Reader::new(self, g)?;
        let mut ids: BTreeSet<String> = self
            .ids_under(&r.t.hosts_by_address, r.g, &[subject])?
            .into_iter()
            .collect();
        ids.extend(self.ids_under(&r.t.hosts_by_name, r.g, &[subject])?);
        let mut out = Vec::new();
        for id in ids {
            if let Some(h) = r.host(&id)? {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// Who can reach `address` at `now` through valid permissions (nodes and groups expanded),
    /// one row per user, host and permission; ordered by user then permission name.
    pub fn who_can_reach(&self, address: &str, now: Timestamp) -> Result<Vec<Reach>, StoreError> {
        let Some(meta) = self.meta_record()? else {
            return Ok(Vec::new());
        };
        let g = meta.gen();
        if meta.views {
            return self.who_can_reach_viewed(g, address, now);
        }
        let mut r = Reader::new(self, g)?;
        let mut out = Vec::new();
        for hid in self.ids_under(&r.t.hosts_by_address, r.g, &[address])? {
            let Some(h) = r.host(&hid)? else { continue };
            let host = Arc::new(h);
            for pid in r.perms_reaching(&host)? {
                let Some(p) = r.perm(&pid)? else { continue };
                if !p.is_valid(now) {
                    continue;
                }
                let permission = Arc::new(ReachPermission::from(&p));
                for uid in r.users_of(&pid)? {
                    let user = r.user(&uid)?.unwrap_or_else(|| {
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
                        user: Arc::new(user),
                        host: host.clone(),
                        permission: permission.clone(),
                    });
                }
            }
        }
        sort_reach(&mut out);
        Ok(out)
    }

    /// `who_can_reach` from the views: the host's own permission rows, its nodes' `nv/`
    /// (permissions on the node or above), then one `pv/` per permission.
    fn who_can_reach_viewed(
        &self,
        g: Gen,
        address: &str,
        now: Timestamp,
    ) -> Result<Vec<Reach>, StoreError> {
        let r = Reader::new(self, g)?;
        let mut out = Vec::new();
        for hid in self.ids_under(&r.t.hosts_by_address, r.g, &[address])? {
            let Some(h) = r.host(&hid)? else { continue };
            let mut perms: BTreeSet<String> = r.rel("ap", &h.id)?.into_iter().collect();
            let host = Arc::new(h);
            for n in &host.node_ids {
                if let Some(v) = r.view::<Vec<String>>("nv", n)? {
                    perms.extend(v);
                }
            }
            for pid in perms {
                let Some(v) = r.view::<PermView>("pv", &pid)? else {
                    continue;
                };
                if !v.perm.is_valid(now) {
                    continue;
                }
                let permission = Arc::new(ReachPermission::from(&v.perm));
                for user in v.users {
                    out.push(Reach {
                        user: Arc::new(user),
                        host: host.clone(),
                        permission: permission.clone(),
                    });
                }
            }
        }
        sort_reach(&mut out);
        Ok(out)
    }

    /// `user_access` bounded for chat: per grant the first `GRANT_HOSTS_SHOWN` hosts and the
    /// exact count, read from the views (a node grant can cover thousands of hosts; reading
    /// them all took 30 ms at 50k hosts).
    pub fn user_access_summary(
        &self,
        username: &str,
        now: Timestamp,
    ) -> Result<Option<UserAccess>, StoreError> {
        let Some(meta) = self.meta_record()? else {
            return Ok(None);
        };
        if !meta.views {
            // A generation from before the views: expand, then cut.
            let mut a = self.user_access(username, now)?;
            for gr in a.iter_mut().flat_map(|a| a.grants.iter_mut()) {
                gr.hosts.truncate(VIEW_HOSTS);
            }
            return Ok(a);
        }
        let mut r = Reader::new(self, meta.gen())?;
        let Some(user) = r.user_named(username)? else {
            return Ok(None);
        };
        let mut grants = Vec::new();
        for pid in r.perms_of_user(&user.id)? {
            let Some(p) = r.perm(&pid)? else { continue };
            if !p.is_valid(now) {
                continue;
            }
            let hosts = r.view::<HostsView>("ph", &pid)?.unwrap_or_default();
            grants.push(Grant {
                permission_id: p.id,
                permission_name: p.name,
                hosts: hosts.first,
                host_count: hosts.count,
                accounts: p.accounts,
                actions: p.actions,
                date_expired: p.date_expired,
            });
        }
        grants.sort_by(|a, b| a.permission_name.cmp(&b.permission_name));
        Ok(Some(UserAccess { user, grants }))
    }

    /// For each of `addresses`: whether user `user_id` reaches a host there through a
    /// permission valid at `now`, and the latest end among those permissions (`Some(None)`
    /// when one has no end). Answers the preview's "already has access" without JumpServer.
    pub fn reach_of(
        &self,
        user_id: &str,
        addresses: &[String],
        now: Timestamp,
    ) -> Result<Vec<Option<Option<Timestamp>>>, StoreError> {
        let Some(g) = self.current()? else {
            return Ok(vec![None; addresses.len()]);
        };
        let mut r = Reader::new(self, g)?;
        let mine: BTreeSet<String> = r.perms_of_user(user_id)?;
        let mut out = Vec::with_capacity(addresses.len());
        for a in addresses {
            let mut ends: Option<Option<Timestamp>> = None;
            for hid in self.ids_under(&r.t.hosts_by_address, r.g, &[a])? {
                let Some(h) = r.host(&hid)? else { continue };
                for pid in r.perms_reaching(&h)?.intersection(&mine) {
                    let Some(p) = r.perm(pid)? else { continue };
                    if !p.is_valid(now) {
                        continue;
                    }
                    // No end on any permission beats every end.
                    ends = Some(match (ends, p.date_expired) {
                        (Some(None), _) | (_, None) => None,
                        (Some(Some(a)), Some(b)) => Some(a.max(b)),
                        (None, Some(b)) => Some(b),
                    });
                }
            }
            out.push(ends);
        }
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
        let mut r = Reader::new(self, g)?;
        let Some(user) = r.user_named(username)? else {
            return Ok(None);
        };
        let mut grants = Vec::new();
        for pid in r.perms_of_user(&user.id)? {
            let Some(p) = r.perm(&pid)? else { continue };
            if !p.is_valid(now) {
                continue;
            }
            let mut hosts = Vec::new();
            for hid in r.hosts_of(&pid)? {
                if let Some(h) = r.host(&hid)? {
                    hosts.push(h);
                }
            }
            // Addresses in numeric order (10.0.0.9 before 10.0.0.10); names after them.
            hosts.sort_by_cached_key(host_order);
            grants.push(Grant {
                permission_id: p.id,
                permission_name: p.name,
                host_count: hosts.len(),
                hosts,
                accounts: p.accounts,
                actions: p.actions,
                date_expired: p.date_expired,
            });
        }
        grants.sort_by(|a, b| a.permission_name.cmp(&b.permission_name));
        Ok(Some(UserAccess { user, grants }))
    }

    /// What a sync should have swept and has not: generation databases other than the current
    /// and the previous one, plus legacy trees in the main database no generation is read from
    /// (0 after a clean sync; a crashed sync leaves its database until the next one). For tests
    /// and status.
    pub fn stray_generations(&self) -> Result<usize, StoreError> {
        let meta = self.meta_record()?;
        let keep: Vec<u64> = meta
            .iter()
            .flat_map(|m| [Some(m.stats.generation), m.previous])
            .flatten()
            .collect();
        let mut n = self
            .store
            .generation_dirs()?
            .into_iter()
            .filter(|g| !keep.contains(g))
            .count();
        let legacy_read = meta.is_some_and(|m| !m.own_db || m.legacy_kept);
        if !legacy_read {
            let db = self.store.db();
            n += db
                .tree_names()
                .iter()
                .filter_map(|t| std::str::from_utf8(t).ok())
                .filter(|t| DATA_TREES.contains(t) || OLD_TREES.contains(t))
                .count();
        }
        Ok(n)
    }
}

/// `who_can_reach`'s order: by user, then permission name, then host name.
fn sort_reach(rows: &mut [Reach]) {
    rows.sort_by(|a, b| {
        (&a.user.username, &a.permission.name, &a.host.name).cmp(&(
            &b.user.username,
            &b.permission.name,
            &b.host.name,
        ))
    });
}

/// The index trees, opened once per reader or writer.
#[derive(Clone)]
struct Trees {
    users: sled::Tree,
    users_by_name: sled::Tree,
    hosts: sled::Tree,
    hosts_by_address: sled::Tree,
    hosts_by_name: sled::Tree,
    nodes: sled::Tree,
    nodes_by_key: sled::Tree,
    perms: sled::Tree,
    rel: sled::Tree,
    views: sled::Tree,
}

impl Trees {
    fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            users: db.open_tree(USERS)?,
            users_by_name: db.open_tree(USERS_BY_NAME)?,
            hosts: db.open_tree(HOSTS)?,
            hosts_by_address: db.open_tree(HOSTS_BY_ADDRESS)?,
            hosts_by_name: db.open_tree(HOSTS_BY_NAME)?,
            nodes: db.open_tree(NODES)?,
            nodes_by_key: db.open_tree(NODES_BY_KEY)?,
            perms: db.open_tree(PERMS)?,
            rel: db.open_tree(RELATIONS)?,
            views: db.open_tree(VIEWS)?,
        })
    }
}

/// One query's view of generation `g`, remembering what it decoded (a who-has row per user
/// and permission reads the same permission and user many times).
struct Reader<'a> {
    ix: &'a Index,
    g: u64,
    codec: Codec,
    t: Trees,
    /// Keeps the generation's database open while the query runs (`None`: a legacy generation
    /// in the main database).
    _db: Option<Arc<sled::Db>>,
    perms: HashMap<String, Option<IndexedPermission>>,
    users: HashMap<String, Option<IndexedUser>>,
}

impl<'a> Reader<'a> {
    fn new(ix: &'a Index, gen: Gen) -> Result<Self, StoreError> {
        if !gen.own_db {
            return Ok(Self::on(ix, gen, Trees::open(ix.store.db())?, None));
        }
        let db = ix.store.generation_db(gen.g)?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "index generation {} has no database; run /sync again",
                gen.g
            ))
        })?;
        Ok(Self::on(ix, gen, Trees::open(&db)?, Some(db)))
    }

    fn on(ix: &'a Index, gen: Gen, t: Trees, db: Option<Arc<sled::Db>>) -> Self {
        Self {
            ix,
            g: gen.g,
            codec: gen.codec,
            t,
            _db: db,
            perms: HashMap::new(),
            users: HashMap::new(),
        }
    }

    fn rel(&self, tag: &str, id: &str) -> Result<Vec<String>, StoreError> {
        self.ix.ids_under(&self.t.rel, self.g, &[tag, id])
    }

    fn get<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &sled::Tree,
        what: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        match tree.get(key(self.g, &[id]))? {
            None => Ok(None),
            Some(v) => self.codec.dec(what, &v).map(Some),
        }
    }

    fn host(&self, id: &str) -> Result<Option<IndexedHost>, StoreError> {
        self.get(&self.t.hosts, "host", id)
    }

    /// The view `<tag>/<id>` (see the module header).
    fn view<T: for<'de> Deserialize<'de>>(
        &self,
        tag: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.t.views.get(key(self.g, &[tag, id]))? {
            None => Ok(None),
            Some(v) => self.codec.dec(tag, &v).map(Some),
        }
    }

    /// The node and every node below it (by key), as ids.
    fn subtree(&self, node_id: &str) -> Result<Vec<String>, StoreError> {
        let Some(k) = self.node_key(node_id)? else {
            return Ok(Vec::new());
        };
        let mut nodes = vec![node_id.to_owned()];
        let mut below = key(self.g, &[&k]);
        below.push(b':');
        for item in self.t.nodes_by_key.scan_prefix(&below) {
            let (kk, v) = item?;
            let kk = String::from_utf8_lossy(&kk[21..]).into_owned();
            if key_under(&kk, &k) {
                nodes.push(String::from_utf8_lossy(&v).into_owned());
            }
        }
        Ok(nodes)
    }

    fn perm(&mut self, id: &str) -> Result<Option<IndexedPermission>, StoreError> {
        if let Some(p) = self.perms.get(id) {
            return Ok(p.clone());
        }
        let p: Option<IndexedPermission> = self.get(&self.t.perms, "permission", id)?;
        self.perms.insert(id.to_owned(), p.clone());
        Ok(p)
    }

    fn user(&mut self, id: &str) -> Result<Option<IndexedUser>, StoreError> {
        if let Some(u) = self.users.get(id) {
            return Ok(u.clone());
        }
        let u: Option<IndexedUser> = self.get(&self.t.users, "user", id)?;
        self.users.insert(id.to_owned(), u.clone());
        Ok(u)
    }

    fn user_named(&self, username: &str) -> Result<Option<IndexedUser>, StoreError> {
        let Some(id) = self.t.users_by_name.get(key(self.g, &[username]))? else {
            return Ok(None);
        };
        self.get(&self.t.users, "user", &String::from_utf8_lossy(&id))
    }

    fn node_key(&self, node_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .get::<IndexedNode>(&self.t.nodes, "node", node_id)?
            .map(|n| n.key))
    }

    /// Permissions naming the host, or a node it is in, or a node above one of those.
    fn perms_reaching(&self, h: &IndexedHost) -> Result<BTreeSet<String>, StoreError> {
        let mut out: BTreeSet<String> = self.rel("ap", &h.id)?.into_iter().collect();
        let mut seen = BTreeSet::new();
        for n in &h.node_ids {
            let Some(k) = self.node_key(n)? else { continue };
            for anc in key_and_ancestors(&k) {
                if !seen.insert(anc.to_owned()) {
                    continue;
                }
                if let Some(nid) = self.t.nodes_by_key.get(key(self.g, &[anc]))? {
                    out.extend(self.rel("np", &String::from_utf8_lossy(&nid))?);
                }
            }
        }
        Ok(out)
    }

    /// Users a permission names, directly or through its groups.
    fn users_of(&self, perm: &str) -> Result<BTreeSet<String>, StoreError> {
        let mut out: BTreeSet<String> = self.rel("pu", perm)?.into_iter().collect();
        for grp in self.rel("pg", perm)? {
            out.extend(self.rel("gu", &grp)?);
        }
        Ok(out)
    }

    /// Permissions naming the user, directly or through one of their groups.
    fn perms_of_user(&self, user: &str) -> Result<BTreeSet<String>, StoreError> {
        let mut out: BTreeSet<String> = self.rel("up", user)?.into_iter().collect();
        for grp in self.rel("ug", user)? {
            out.extend(self.rel("gp", &grp)?);
        }
        Ok(out)
    }

    /// Hosts a permission names, directly or in (or below) one of its nodes.
    fn hosts_of(&self, perm: &str) -> Result<BTreeSet<String>, StoreError> {
        let mut out: BTreeSet<String> = self.rel("pa", perm)?.into_iter().collect();
        for nid in self.rel("pn", perm)? {
            for n in self.subtree(&nid)? {
                out.extend(self.rel("nh", &n)?);
            }
        }
        Ok(out)
    }
}

/// Inserts into a tree in batches of `VIEW_CHUNK` keys, each written out to disk once applied
/// (as the row pages are, `IndexWriter::page_done`): sled holds written pages in memory until
/// its next flush, whatever its cache bound.
struct ViewBatch<'a> {
    db: &'a sled::Db,
    tree: &'a sled::Tree,
    batch: sled::Batch,
    n: usize,
}

impl<'a> ViewBatch<'a> {
    fn new(db: &'a sled::Db, tree: &'a sled::Tree) -> Self {
        Self {
            db,
            tree,
            batch: sled::Batch::default(),
            n: 0,
        }
    }

    fn put(&mut self, k: Vec<u8>, v: Vec<u8>) -> Result<(), StoreError> {
        self.batch.insert(k, v);
        self.n += 1;
        if self.n == VIEW_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.n > 0 {
            self.tree.apply_batch(std::mem::take(&mut self.batch))?;
            self.n = 0;
            self.db.flush()?;
        }
        Ok(())
    }
}

/// A generation being written, page by page; see `Index::begin`.
pub struct IndexWriter {
    ix: Index,
    g: u64,
    now: Timestamp,
    trees: Trees,
    /// The generation's own database, closed when the writer is dropped (commit or failure).
    db: Arc<sled::Db>,
    codec: Codec,
}

impl IndexWriter {
    /// Writes what sled holds dirty in memory out to disk after every page. sled keeps written
    /// pages in memory until its next flush, beyond its cache bound; a sync that writes a whole
    /// large org between two of its timed flushes grew the process by hundreds of MB.
    fn page_done(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn users(&mut self, page: &[IndexedUser]) -> Result<(), StoreError> {
        let (mut users, mut by_name) = (sled::Batch::default(), sled::Batch::default());
        for u in page.iter().filter(|u| !u.id.is_empty()) {
            users.insert(key(self.g, &[&u.id]), self.codec.enc(u)?);
            by_name.insert(key(self.g, &[&u.username]), u.id.as_bytes());
        }
        self.trees.users.apply_batch(users)?;
        self.trees.users_by_name.apply_batch(by_name)?;
        self.page_done()
    }

    pub fn memberships(&mut self, page: &[(String, String)]) -> Result<(), StoreError> {
        let mut rel = sled::Batch::default();
        for (grp, user) in page.iter().filter(|(g, u)| !g.is_empty() && !u.is_empty()) {
            rel.insert(key(self.g, &["gu", grp, user]), &[]);
            rel.insert(key(self.g, &["ug", user, grp]), &[]);
        }
        self.trees.rel.apply_batch(rel)?;
        self.page_done()
    }

    pub fn nodes(&mut self, page: &[IndexedNode]) -> Result<(), StoreError> {
        let (mut nodes, mut by_key) = (sled::Batch::default(), sled::Batch::default());
        for n in page.iter().filter(|n| !n.id.is_empty()) {
            nodes.insert(key(self.g, &[&n.id]), self.codec.enc(n)?);
            by_key.insert(key(self.g, &[&n.key]), n.id.as_bytes());
        }
        self.trees.nodes.apply_batch(nodes)?;
        self.trees.nodes_by_key.apply_batch(by_key)?;
        self.page_done()
    }

    pub fn hosts(&mut self, page: &[IndexedHost]) -> Result<(), StoreError> {
        let mut hosts = sled::Batch::default();
        let mut by_address = sled::Batch::default();
        let mut by_name = sled::Batch::default();
        let mut rel = sled::Batch::default();
        for h in page.iter().filter(|h| !h.id.is_empty()) {
            hosts.insert(key(self.g, &[&h.id]), self.codec.enc(h)?);
            by_address.insert(key(self.g, &[&h.address, &h.id]), &[]);
            by_name.insert(key(self.g, &[&h.name, &h.id]), &[]);
            for n in &h.node_ids {
                rel.insert(key(self.g, &["nh", n, &h.id]), &[]);
            }
        }
        self.trees.hosts.apply_batch(hosts)?;
        self.trees.hosts_by_address.apply_batch(by_address)?;
        self.trees.hosts_by_name.apply_batch(by_name)?;
        self.trees.rel.apply_batch(rel)?;
        self.page_done()
    }

    pub fn permissions(&mut self, page: &[IndexedPermission]) -> Result<(), StoreError> {
        let mut perms = sled::Batch::default();
        for p in page.iter().filter(|p| !p.id.is_empty()) {
            let bare = IndexedPermission {
                user_ids: Vec::new(),
                asset_ids: Vec::new(),
                node_ids: Vec::new(),
                ..p.clone()
            };
            perms.insert(key(self.g, &[&p.id]), self.codec.enc(&bare)?);
            for (m, ids) in [
                (Member::User, &p.user_ids),
                (Member::Asset, &p.asset_ids),
                (Member::Node, &p.node_ids),
            ] {
                let rows: Vec<Relation> = ids
                    .iter()
                    .map(|id| Relation {
                        permission: p.id.clone(),
                        member: id.clone(),
                    })
                    .collect();
                self.relations(m, &rows)?;
            }
        }
        self.trees.perms.apply_batch(perms)?;
        self.page_done()
    }

    pub fn relations(&mut self, m: Member, page: &[Relation]) -> Result<(), StoreError> {
        let (fwd, back) = tags(m);
        let mut rel = sled::Batch::default();
        for r in page
            .iter()
            .filter(|r| !r.permission.is_empty() && !r.member.is_empty())
        {
            rel.insert(key(self.g, &[fwd, &r.permission, &r.member]), &[]);
            rel.insert(key(self.g, &[back, &r.member, &r.permission]), &[]);
        }
        self.trees.rel.apply_batch(rel)?;
        self.page_done()
    }

    /// Writes the views (module header) from the rows already in this generation: first per
    /// node (`nv/`, `nt/`), then per permission (`pv/`, `ph/`, which merge the node views).
    /// Streams the trees in bounded chunks; what it holds at once is one chunk's batch and
    /// caches, and one permission's host ids.
    fn write_views(&self) -> Result<(), StoreError> {
        let prefix = gen_prefix(self.g);
        let mut out = ViewBatch::new(&self.db, &self.trees.views);
        let gen = Gen {
            g: self.g,
            own_db: true,
            codec: self.codec,
        };
        let reader = || Reader::on(&self.ix, gen, self.trees.clone(), None);
        let mut r = reader();
        for (i, item) in self.trees.nodes.scan_prefix(&prefix).values().enumerate() {
            if i % VIEW_CHUNK == 0 {
                r = reader();
            }
            let node: IndexedNode = self.codec.dec("node", &item?)?;
            let mut perms = BTreeSet::new();
            for anc in key_and_ancestors(&node.key) {
                if let Some(nid) = self.trees.nodes_by_key.get(key(self.g, &[anc]))? {
                    perms.extend(r.rel("np", &String::from_utf8_lossy(&nid))?);
                }
            }
            // A host in two nodes of the subtree counts once.
            let mut first = FirstHosts::default();
            let mut ids = BTreeSet::new();
            for n in r.subtree(&node.id)? {
                for hid in r.rel("nh", &n)? {
                    if !ids.contains(&hid) {
                        if let Some(h) = r.host(&hid)? {
                            first.push(h);
                        }
                        ids.insert(hid);
                    }
                }
            }
            let count = ids.len();
            drop(ids);
            let perms: Vec<String> = perms.into_iter().collect();
            out.put(key(self.g, &["nv", &node.id]), self.codec.enc(&perms)?)?;
            let hosts = HostsView {
                count,
                first: first.into_vec(),
            };
            out.put(key(self.g, &["nt", &node.id]), self.codec.enc(&hosts)?)?;
        }
        // The permission views merge the node views, so those must be readable first.
        out.flush()?;
        for (i, item) in self.trees.perms.scan_prefix(&prefix).values().enumerate() {
            if i % VIEW_CHUNK == 0 {
                r = reader();
            }
            let perm: IndexedPermission = self.codec.dec("permission", &item?)?;
            let mut users = Vec::new();
            for uid in r.users_of(&perm.id)? {
                users.push(r.user(&uid)?.unwrap_or_else(|| IndexedUser {
                    id: uid.clone(),
                    username: uid.clone(),
                    name: String::new(),
                    email: String::new(),
                    is_active: true,
                }));
            }
            // Every host once: its own rows (when the index has the host), then each node's
            // subtree; the first ones come from the hosts and the node views' first ones.
            let mut ids = BTreeSet::new();
            let mut first = FirstHosts::default();
            for hid in r.rel("pa", &perm.id)? {
                if let Some(h) = r.host(&hid)? {
                    ids.insert(hid);
                    first.push(h);
                }
            }
            for nid in r.rel("pn", &perm.id)? {
                for n in r.subtree(&nid)? {
                    ids.extend(r.rel("nh", &n)?);
                }
                for h in r.view::<HostsView>("nt", &nid)?.unwrap_or_default().first {
                    first.push(h);
                }
            }
            let hosts = HostsView {
                count: ids.len(),
                first: first.into_vec(),
            };
            out.put(key(self.g, &["ph", &perm.id]), self.codec.enc(&hosts)?)?;
            let id = perm.id.clone();
            out.put(
                key(self.g, &["pv", &id]),
                self.codec.enc(&PermView { perm, users })?,
            )?;
        }
        out.flush()
    }

    /// Counts what was written (repeated rows once) and makes the generation current.
    pub async fn commit(
        self,
        synced_at: Timestamp,
        duration_ms: u64,
        calls: u64,
        actor: Actor,
    ) -> Result<IndexStats, StoreError> {
        self.write_views()?;
        let prefix = gen_prefix(self.g);
        let count = |t: &sled::Tree| t.scan_prefix(prefix.as_bytes()).count();
        let mut valid = 0;
        for v in self.trees.perms.scan_prefix(prefix.as_bytes()).values() {
            if self
                .codec
                .dec::<IndexedPermission>("permission", &v?)?
                .is_valid(self.now)
            {
                valid += 1;
            }
        }
        let stats = IndexStats {
            generation: self.g,
            synced_at,
            duration_ms,
            users: count(&self.trees.users),
            hosts: count(&self.trees.hosts),
            nodes: count(&self.trees.nodes),
            permissions: count(&self.trees.perms),
            valid_permissions: valid,
            // Both directions are stored (node-host rows once).
            relations: self
                .trees
                .rel
                .scan_prefix(prefix.as_bytes())
                .keys()
                .filter(|k| {
                    k.as_ref().is_ok_and(|k| {
                        matches!(
                            k.get(21..24),
                            Some(b"pu/" | b"pg/" | b"pa/" | b"pn/" | b"gu/")
                        )
                    })
                })
                .count(),
            calls,
        };
        // On disk before the pointer names it; then closed, so what sled kept resident from
        // the write is freed (readers reopen it fresh).
        let IndexWriter {
            ix,
            trees,
            db,
            codec,
            ..
        } = self;
        db.flush_async().await?;
        drop(trees);
        drop(db);
        ix.make_current(stats, codec, actor).await
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
            .map(|r| r.user.username.clone())
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
        let mut w = ix.begin(now).unwrap();
        let g = w.g;
        let mut half = snap();
        half.users.truncate(1);
        w.users(&half.users).unwrap();
        w.hosts(&half.hosts).unwrap();
        drop(w);
        assert!(ix.stray_generations().unwrap() > 0);
        assert_eq!(ix.stats().unwrap().unwrap().generation, 1);
        assert!(ix.user_by_username("bob").unwrap().is_some());
        let mut next = snap();
        next.users.retain(|u| u.username == "bob");
        let s = ix.replace(&next, now, 1, Actor::System).await.unwrap();
        assert_eq!(s.generation, g + 1);
        assert!(ix.user_by_username("alice").unwrap().is_none());
        assert_eq!(ix.stray_generations().unwrap(), 0);
    }

    /// Generations are databases of their own on disk: the writer's is closed at commit and
    /// read back after a restart, superseded ones are deleted, and a generation of the layout
    /// before (rows in the main database) is still answered until two syncs have replaced it.
    #[tokio::test]
    async fn generations_are_databases_of_their_own_and_the_old_layout_is_read_then_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let now = t("2026-06-01T00:00:00Z");
        {
            // An index written by an older version: generation 7 in the main database.
            let store = Store::open(dir.path()).unwrap();
            let users = store.tree(USERS).unwrap();
            let alice = &snap().users[0];
            users
                .insert(key(7, &[&alice.id]), enc(alice).unwrap())
                .unwrap();
            let by_name = store.tree(USERS_BY_NAME).unwrap();
            by_name
                .insert(key(7, &[&alice.username]), alice.id.as_bytes())
                .unwrap();
            let old = Meta {
                stats: IndexStats {
                    generation: 7,
                    synced_at: now,
                    duration_ms: 0,
                    users: 1,
                    hosts: 0,
                    nodes: 0,
                    permissions: 0,
                    valid_permissions: 0,
                    relations: 0,
                    calls: 0,
                },
                previous: None,
                views: false,
                own_db: false,
                legacy_kept: false,
                compact: false,
            };
            store
                .tree(META)
                .unwrap()
                .insert(CURRENT, enc(&old).unwrap())
                .unwrap();
            store.flush().await.unwrap();
        }
        let gen_dir = |g: u64| dir.path().join("index").join(format!("{g:020}"));
        let store = Store::open(dir.path()).unwrap();
        let ix = Index::new(&store).unwrap();
        assert!(
            ix.user_by_username("alice").unwrap().is_some(),
            "old layout read"
        );
        assert_eq!(ix.stray_generations().unwrap(), 0);

        // First sync: its own database; the old rows stay for a reader still on them.
        let mut only_bob = snap();
        only_bob.users.retain(|u| u.username == "bob");
        let s8 = ix.replace(&only_bob, now, 1, Actor::System).await.unwrap();
        assert_eq!(s8.generation, 8);
        assert!(gen_dir(8).is_dir());
        assert!(store
            .db()
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == USERS.as_bytes()));
        assert!(ix.user_by_username("alice").unwrap().is_none());
        assert!(ix.user_by_username("bob").unwrap().is_some());
        assert_eq!(ix.stray_generations().unwrap(), 0);

        // Second sync: the old layout's trees are dropped; a crashed writer's database (9)
        // and the generation before the previous one are deleted by the one after.
        let mut w = ix.begin(now).unwrap();
        w.users(&snap().users).unwrap();
        drop(w);
        assert!(gen_dir(9).is_dir());
        assert_eq!(ix.stray_generations().unwrap(), 1);
        let s10 = ix.replace(&snap(), now, 1, Actor::System).await.unwrap();
        assert_eq!(s10.generation, 10);
        assert!(!store
            .db()
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == USERS.as_bytes()));
        assert!(!gen_dir(9).exists());
        assert!(gen_dir(8).is_dir(), "the previous generation is kept");
        ix.replace(&snap(), now, 1, Actor::System).await.unwrap();
        assert!(!gen_dir(8).exists() && gen_dir(10).is_dir() && gen_dir(11).is_dir());
        assert_eq!(ix.stray_generations().unwrap(), 0);

        // After a restart the current generation is opened from disk.
        drop(ix);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let ix = Index::new(&store).unwrap();
        assert_eq!(ix.stats().unwrap().unwrap().generation, 11);
        assert!(ix.user_by_username("alice").unwrap().is_some());
    }

    /// Answers with the views and, for the same generation, by expanding the relation rows as
    /// a generation from before the views is answered: they must agree.
    fn both_ways<T>(ix: &Index, f: impl Fn(&Index) -> T) -> (T, T) {
        let viewed = f(ix);
        let mut meta = ix.meta_record().unwrap().unwrap();
        meta.views = false;
        ix.meta.insert(CURRENT, enc(&meta).unwrap()).unwrap();
        let expanded = f(ix);
        meta.views = true;
        ix.meta.insert(CURRENT, enc(&meta).unwrap()).unwrap();
        (viewed, expanded)
    }

    fn host(id: &str, address: &str, node: &str) -> IndexedHost {
        IndexedHost {
            id: id.into(),
            name: format!("host-{id}"),
            address: address.into(),
            node_ids: vec![node.into()],
        }
    }

    /// Groups, nodes (a parent's grant reaching a child's hosts), an expired permission, a
    /// disabled user and a user the org lacks, written the way a sync writes them.
    async fn write_rich(ix: &Index, now: Timestamp, codec: Codec) {
        let mut w = ix.begin_in(now, codec).unwrap();
        let mut base = snap();
        base.users.push(IndexedUser {
            id: "u3".into(),
            username: "carol".into(),
            name: "Carol".into(),
            email: String::new(),
            is_active: false,
        });
        w.users(&base.users).unwrap();
        w.nodes(&base.nodes).unwrap();
        let mut hosts = base.hosts.clone();
        hosts.push(host("h3", "10.0.0.10", "n2"));
        hosts.push(host("h4", "10.0.0.9", "n1"));
        w.hosts(&hosts).unwrap();
        w.permissions(&base.permissions).unwrap();
        w.memberships(&[("g1".into(), "u2".into()), ("g1".into(), "u3".into())])
            .unwrap();
        let rel = |p: &str, m: &str| Relation {
            permission: p.into(),
            member: m.into(),
        };
        // d: group g1 on host h2 and node n2 (valid); e: the expired one; f: a user outside
        // the listed org.
        let mut extra = snap().permissions;
        let ends = [
            ("d", "2027-01-01T00:00:00Z"),
            ("e", "2026-05-01T00:00:00Z"),
            ("f", "2027-01-01T00:00:00Z"),
        ];
        for (p, (id, end)) in extra.iter_mut().zip(ends) {
            p.id = id.into();
            p.name = format!("p-{id}");
            p.user_ids.clear();
            p.asset_ids.clear();
            p.node_ids.clear();
            p.is_active = true;
            p.date_start = Some(t("2026-01-01T00:00:00Z"));
            p.date_expired = Some(t(end));
        }
        w.permissions(&extra).unwrap();
        w.relations(Member::UserGroup, &[rel("d", "g1")]).unwrap();
        w.relations(
            Member::Asset,
            &[rel("d", "h2"), rel("e", "h2"), rel("f", "h1")],
        )
        .unwrap();
        w.relations(Member::Node, &[rel("d", "n2")]).unwrap();
        w.relations(Member::User, &[rel("e", "u1"), rel("f", "ghost")])
            .unwrap();
        w.commit(now, 1, 0, Actor::System).await.unwrap();
    }

    const RICH_ADDRESSES: [&str; 5] = ["10.0.0.1", "10.0.0.2", "10.0.0.9", "10.0.0.10", "10.9.9.9"];

    #[tokio::test]
    async fn views_answer_like_the_expanded_rows() {
        let store = Store::temporary().unwrap();
        let ix = Index::new(&store).unwrap();
        let now = t("2026-06-01T00:00:00Z");
        write_rich(&ix, now, WRITE_CODEC).await;
        for address in RICH_ADDRESSES {
            let (v, e) = both_ways(&ix, |ix| ix.who_can_reach(address, now).unwrap());
            assert_eq!(v, e, "{address}");
        }
        let rows = ix.who_can_reach("10.0.0.1", now).unwrap();
        let who: Vec<(&str, &str, bool)> = rows
            .iter()
            .map(|r| {
                let (u, p) = (r.user.username.as_str(), r.permission.name.as_str());
                (u, p, r.user.is_active)
            })
            .collect();
        assert_eq!(
            who,
            [
                ("alice", "p-a", true),
                ("bob", "p-d", true),
                ("carol", "p-d", false),
                ("ghost", "p-f", true)
            ]
        );
        // The expired permission on h2 is left out; the group's is there.
        let on_h2: Vec<String> = ix
            .who_can_reach("10.0.0.2", now)
            .unwrap()
            .into_iter()
            .map(|r| r.permission.name.clone())
            .collect();
        assert_eq!(on_h2, ["p-d", "p-d"]);
        for user in ["alice", "bob", "carol", "nobody"] {
            let (v, e) = both_ways(&ix, |ix| ix.user_access_summary(user, now).unwrap());
            assert_eq!(v, e, "{user}");
            let full = ix.user_access(user, now).unwrap();
            assert_eq!(v, full, "{user}: under ten hosts a grant is shown whole");
        }
        let bob = ix.user_access_summary("bob", now).unwrap().unwrap();
        assert_eq!(bob.grants.len(), 1);
        let g = &bob.grants[0];
        let addresses: Vec<&str> = g.hosts.iter().map(|h| h.address.as_str()).collect();
        assert_eq!(
            (g.host_count, addresses),
            (3, vec!["10.0.0.1", "10.0.0.2", "10.0.0.10"])
        );
    }

    /// A generation written in JSON (by a version before the compact encoding) is read as it
    /// was written, and answers every query as the same generation in postcard does.
    #[tokio::test]
    async fn json_generations_answer_like_compact_ones() {
        let now = t("2026-06-01T00:00:00Z");
        let (json_store, compact_store) =
            (Store::temporary().unwrap(), Store::temporary().unwrap());
        let (json, compact) = (
            Index::new(&json_store).unwrap(),
            Index::new(&compact_store).unwrap(),
        );
        write_rich(&json, now, Codec::Json).await;
        write_rich(&compact, now, Codec::Compact).await;
        assert!(!json.meta_record().unwrap().unwrap().compact);
        assert!(compact.meta_record().unwrap().unwrap().compact);
        let ask = |ix: &Index| {
            let bob = ix.user_by_username("bob").unwrap().unwrap();
            let addresses: Vec<String> = RICH_ADDRESSES.iter().map(|a| a.to_string()).collect();
            let reach: Vec<_> = RICH_ADDRESSES
                .iter()
                .map(|a| {
                    (
                        ix.who_can_reach(a, now).unwrap(),
                        ix.hosts_matching(a).unwrap(),
                    )
                })
                .collect();
            let users: Vec<_> = ["alice", "bob", "carol", "nobody"]
                .iter()
                .map(|u| {
                    (
                        ix.user_access_summary(u, now).unwrap(),
                        ix.user_access(u, now).unwrap(),
                    )
                })
                .collect();
            (reach, users, ix.reach_of(&bob.id, &addresses, now).unwrap())
        };
        let (a, b) = (ask(&json), ask(&compact));
        assert!(
            a.0.iter().any(|(rows, _)| !rows.is_empty()),
            "answers to compare"
        );
        assert_eq!(a, b);
    }

    /// A grant on a node of many hosts: the bounded answer names the first ten in address
    /// order and counts each host once, also when the permission names some of them directly.
    #[tokio::test]
    async fn a_large_grant_is_counted_exactly_and_shown_in_part() {
        let store = Store::temporary().unwrap();
        let ix = Index::new(&store).unwrap();
        let now = t("2026-06-01T00:00:00Z");
        let mut s = snap();
        s.hosts = (1..=25)
            .map(|i| host(&format!("h{i}"), &format!("10.0.1.{i}"), "n2"))
            .chain([host("x", "db.internal", "n3")])
            .collect();
        s.permissions.truncate(1);
        // Node n1 (above n2), plus three of its hosts and one elsewhere directly.
        s.permissions[0].asset_ids = vec!["h3".into(), "h20".into(), "h25".into(), "x".into()];
        ix.replace(&s, now, 1, Actor::System).await.unwrap();
        let a = ix.user_access_summary("alice", now).unwrap().unwrap();
        let g = &a.grants[0];
        assert_eq!(g.host_count, 26);
        let shown: Vec<&str> = g.hosts.iter().map(|h| h.address.as_str()).collect();
        let want: Vec<String> = (1..=10).map(|i| format!("10.0.1.{i}")).collect();
        assert_eq!(shown, want);
        let full = ix.user_access("alice", now).unwrap().unwrap();
        assert_eq!(full.grants[0].hosts.len(), 26);
        assert_eq!(full.grants[0].hosts[..10], g.hosts[..]);
        assert_eq!(full.grants[0].hosts[25].address, "db.internal");
        let (v, e) = both_ways(&ix, |ix| ix.user_access_summary("alice", now).unwrap());
        assert_eq!(v, e);
    }
}
