//! Seeds the simulated JumpServer with a large org in one go (`accessbot scale`, the who-has
//! bench): users in groups, a two-level node tree, hosts spread over its leaves, and
//! permissions naming users, groups, hosts and nodes, with the relation tables filled to a
//! given total. Straight into the model, without the per-item checks of `add_user` /
//! `add_host` (quadratic at 50k hosts). Deterministic: the same spec gives the same names.
use super::assets::ensure_root;
use super::groups::UserGroup;
use super::model::{Host, Node, Permission, User};
use super::relations::{push_row, Kind};
use super::{util, SimJumpServer};
use jiff::SignedDuration;

/// How large an org to seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleSpec {
    pub users: usize,
    pub hosts: usize,
    pub permissions: usize,
    /// Relation rows over the four tables together.
    pub relations: usize,
    /// Users per group (groups are consecutive runs of users).
    pub group_size: usize,
    /// Systems (children of the root), each with `leaves` environment nodes under it.
    pub systems: usize,
    pub leaves: usize,
}

impl ScaleSpec {
    /// The size issue 11 measures at: 10k users, 50k hosts, 10k permissions, 200k relations.
    pub const LARGE: ScaleSpec = ScaleSpec {
        users: 10_000,
        hosts: 50_000,
        permissions: 10_000,
        relations: 200_000,
        group_size: 20,
        systems: 50,
        leaves: 10,
    };
}

/// What `seed_scale` made, for the caller to ask about.
#[derive(Clone, Debug, Default)]
pub struct ScaleSeeded {
    /// `u00000`, … (the JumpServer usernames).
    pub usernames: Vec<String>,
    /// Host addresses, in host order.
    pub addresses: Vec<String>,
    pub relations: usize,
}

/// The address of host `i`: `10.<i / 65536>.<i / 256 % 256>.<i % 256>`, distinct below 2^24.
pub fn scale_address(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

impl SimJumpServer {
    /// Seeds an org of `spec`'s size (see the module header). Permission `p` names two users,
    /// every 10th one a group, every 4th one a node (a system every 10th time, else a leaf),
    /// and hosts for the rest of the relation budget; every 20th permission has expired.
    pub fn seed_scale(&self, spec: ScaleSpec) -> ScaleSeeded {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let mut out = ScaleSeeded::default();
        let root = ensure_root(&mut st);
        let root_key = st
            .nodes
            .iter()
            .find(|n| n.id == root)
            .map(|n| n.key.clone())
            .unwrap_or_else(|| "1".into());
        let mut systems = Vec::new();
        let mut leaves = Vec::new();
        let base_mark = st
            .nodes
            .iter()
            .find(|n| n.id == root)
            .map_or(0, |n| n.child_mark);
        for s in 0..spec.systems {
            let sid = util::new_id();
            let skey = format!("{root_key}:{}", base_mark as usize + s);
            st.nodes.push(Node {
                id: sid.clone(),
                key: skey.clone(),
                value: format!("sys-{s:03}"),
                child_mark: spec.leaves as u32,
            });
            systems.push(sid);
            for l in 0..spec.leaves {
                let lid = util::new_id();
                st.nodes.push(Node {
                    id: lid.clone(),
                    key: format!("{skey}:{l}"),
                    value: format!("env-{l}"),
                    child_mark: 0,
                });
                leaves.push(lid);
            }
        }
        if let Some(r) = st.nodes.iter_mut().find(|n| n.id == root) {
            r.child_mark += spec.systems as u32;
        }
        let mut user_ids = Vec::with_capacity(spec.users);
        for i in 0..spec.users {
            let id = util::new_id();
            let username = format!("u{i:05}");
            st.users.push(User {
                id: id.clone(),
                name: format!("User {i}"),
                username: username.clone(),
                email: format!("{username}@example.com"),
                password: None,
                otp_seed: None,
                is_active: true,
                is_superuser: false,
                need_update_password: false,
                in_default_org: true,
                date_expired: util::far_future(now),
                date_joined: now,
                last_login: None,
                comment: None,
                created_by: "Administrator".into(),
            });
            user_ids.push(id);
            out.usernames.push(username);
        }
        let mut group_ids = Vec::new();
        for (g, members) in user_ids.chunks(spec.group_size.max(1)).enumerate() {
            let id = util::new_id();
            st.groups.push(UserGroup {
                id: id.clone(),
                name: format!("grp-{g:04}"),
                comment: String::new(),
                user_ids: members.to_vec(),
                date_created: now,
                created_by: "Administrator".into(),
            });
            group_ids.push(id);
        }
        let mut host_ids = Vec::with_capacity(spec.hosts);
        for i in 0..spec.hosts {
            let id = util::new_id();
            let address = scale_address(i);
            st.hosts.push(Host {
                id: id.clone(),
                name: format!("h{i:05}"),
                address: address.clone(),
                platform_id: 1,
                node_ids: leaves
                    .get(i % leaves.len().max(1))
                    .cloned()
                    .into_iter()
                    .collect(),
                protocols: vec![("ssh".into(), 22)],
                comment: String::new(),
                is_active: true,
                date_created: now,
                created_by: "Administrator".into(),
            });
            host_ids.push(id);
            out.addresses.push(address);
        }
        // The relation budget: users and groups and nodes first, hosts take the rest.
        let p_n = spec.permissions.max(1);
        let fixed = 2 * p_n + p_n / 10 + p_n / 4;
        let asset_rows = spec.relations.saturating_sub(fixed);
        let mut next_host = 0usize;
        for p in 0..spec.permissions {
            let id = util::new_id();
            let users: Vec<String> = (0..2)
                .filter_map(|k| user_ids.get((p * 7 + k) % user_ids.len().max(1)).cloned())
                .collect();
            let groups: Vec<String> = if p % 10 == 0 {
                group_ids
                    .get(p / 10 % group_ids.len().max(1))
                    .cloned()
                    .into_iter()
                    .collect()
            } else {
                Vec::new()
            };
            let nodes: Vec<String> = if p % 4 == 0 {
                let pick = if p % 40 == 0 {
                    systems.get(p / 40 % systems.len().max(1))
                } else {
                    leaves.get(p / 4 % leaves.len().max(1))
                };
                pick.cloned().into_iter().collect()
            } else {
                Vec::new()
            };
            // This permission's share of the host rows, spread evenly.
            let n_assets = asset_rows * (p + 1) / p_n - asset_rows * p / p_n;
            let assets: Vec<String> = (0..n_assets)
                .filter_map(|_| {
                    let h = host_ids.get(next_host % host_ids.len().max(1)).cloned();
                    next_host += 1;
                    h
                })
                .collect();
            let expired = p % 20 == 19;
            let perm = Permission {
                id: id.clone(),
                name: format!("perm-{p:05}"),
                user_ids: users,
                group_ids: groups,
                asset_ids: assets,
                node_ids: nodes,
                accounts: vec!["@ALL".into()],
                protocols: vec!["all".into()],
                actions: vec!["connect".into()],
                is_active: true,
                date_start: now - SignedDuration::from_hours(24),
                date_expired: if expired {
                    now - SignedDuration::from_hours(1)
                } else {
                    now + SignedDuration::from_hours(24 * 30)
                },
                date_created: now,
                created_by: "Administrator".into(),
                comment: String::new(),
            };
            for (kind, members) in [
                (Kind::User, &perm.user_ids),
                (Kind::UserGroup, &perm.group_ids),
                (Kind::Asset, &perm.asset_ids),
                (Kind::Node, &perm.node_ids),
            ] {
                for m in members {
                    push_row(&mut st, kind, &id, m);
                    out.relations += 1;
                }
            }
            st.perms.push(perm);
        }
        out
    }
}
