//! JumpServer as the workflow's bastion: `JmsClient` behind `ports::Bastion`, with what the
//! port adds to the client: errors in the requester's words (which failure it is, a sentence in
//! both languages) and the inventory walk the local index is built from.
use crate::domain::access::{HostAccess, NodeAccess, ReadBack};
use crate::domain::ids::JmsUserId;
use crate::domain::inventory::{
    IndexedHost, IndexedNode, IndexedPermission, IndexedUser, Snapshot,
};
use crate::domain::notice::FailureKind;
use crate::domain::ownership::Marker;
use crate::jumpserver::api::seg;
use crate::jumpserver::client::Req;
use crate::jumpserver::{JmsClient, JmsError, Problem};
use crate::workflow::ports::{
    Bastion, BastionError, GrantOutcome, GrantPlan, GrantPreview, GrantedAsset, JmsUser,
    NewUserSpec, Reacher, RevokeMode, RevokeOutcome,
};
use futures::future::BoxFuture;
use jiff::Timestamp;
use serde_json::Value;

const PERMS: &str = "/api/v1/perms/asset-permissions/";

/// Which plain-words failure a JumpServer error is.
fn failure_kind(e: &JmsError) -> FailureKind {
    match e {
        JmsError::NotFound(m) if m.en.contains("user") => FailureKind::UserMissing,
        JmsError::Rejected {
            kind: Problem::UsernameTaken | Problem::EmailTaken | Problem::InvalidEmail,
            ..
        } => FailureKind::UserCreateFailed,
        JmsError::NotFound(_) => FailureKind::HostNotFound,
        _ => FailureKind::GrantFailed,
    }
}

fn bastion_err(e: JmsError) -> BastionError {
    BastionError {
        transient: e.is_transient(),
        kind: failure_kind(&e),
        en: e.user_message(true),
        zh: e.user_message(false),
        detail: e.to_string(),
    }
}

type Bastioned<'a, T> = BoxFuture<'a, Result<T, BastionError>>;

impl Bastion for JmsClient {
    fn preview<'a>(&'a self, plan: &'a GrantPlan) -> Bastioned<'a, GrantPreview> {
        Box::pin(async move { JmsClient::preview(self, plan).await.map_err(bastion_err) })
    }

    fn grant<'a>(&'a self, plan: &'a GrantPlan) -> Bastioned<'a, GrantOutcome> {
        Box::pin(async move { JmsClient::grant(self, plan).await.map_err(bastion_err) })
    }

    fn read_back<'a>(
        &'a self,
        user: &'a JmsUserId,
        permission: &'a str,
        hosts: &'a [HostAccess],
        node: Option<&'a NodeAccess>,
        accounts: &'a [String],
    ) -> Bastioned<'a, ReadBack> {
        Box::pin(async move {
            JmsClient::read_back(self, user, permission, hosts, node, accounts)
                .await
                .map_err(bastion_err)
        })
    }

    fn revoke<'a>(
        &'a self,
        permission: &'a str,
        owner: &'a Marker,
        mode: RevokeMode,
        sessions_of: Option<(&'a JmsUserId, &'a [String])>,
    ) -> Bastioned<'a, RevokeOutcome> {
        Box::pin(async move {
            JmsClient::revoke(self, permission, owner, mode, sessions_of)
                .await
                .map_err(bastion_err)
        })
    }

    fn renew<'a>(
        &'a self,
        permission: &'a str,
        owner: &'a Marker,
        end: Timestamp,
    ) -> Bastioned<'a, String> {
        Box::pin(async move {
            JmsClient::renew(self, permission, owner, end)
                .await
                .map(|p| p.name)
                .map_err(bastion_err)
        })
    }

    fn find_user<'a>(&'a self, username: &'a str) -> Bastioned<'a, Option<JmsUser>> {
        Box::pin(async move {
            self.find_user_by_username(username)
                .await
                .map_err(bastion_err)
        })
    }

    fn user<'a>(&'a self, id: &'a JmsUserId) -> Bastioned<'a, Option<JmsUser>> {
        Box::pin(async move { self.get_user(id).await.map_err(bastion_err) })
    }

    fn create_user<'a>(&'a self, spec: &'a NewUserSpec) -> Bastioned<'a, ()> {
        Box::pin(async move {
            JmsClient::create_user(self, spec)
                .await
                .map(|_| ())
                .map_err(bastion_err)
        })
    }

    fn set_user_active<'a>(&'a self, id: &'a JmsUserId, active: bool) -> Bastioned<'a, ()> {
        Box::pin(async move {
            JmsClient::set_user_active(self, id, active)
                .await
                .map_err(bastion_err)
        })
    }

    fn who_can_reach<'a>(&'a self, address: &'a str) -> Bastioned<'a, Vec<Reacher>> {
        Box::pin(async move {
            JmsClient::who_can_reach(self, address)
                .await
                .map_err(bastion_err)
        })
    }

    fn granted_assets<'a>(&'a self, user: &'a JmsUserId) -> Bastioned<'a, Vec<GrantedAsset>> {
        Box::pin(async move { self.user_granted_assets(user).await.map_err(bastion_err) })
    }

    fn inventory(&self) -> Bastioned<'_, Snapshot> {
        Box::pin(async move { walk(self).await.map_err(bastion_err) })
    }
}

/// Ids of a relation in a permission detail: `[{"id": ..}]` or `["id"]`.
fn ref_ids(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(_) => x.get("id").and_then(Value::as_str).map(str::to_owned),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Walks JumpServer: users, nodes, hosts, and every permission with its relations (the list
/// carries only counts, so each permission's detail is read; group members are expanded).
async fn walk(jms: &JmsClient) -> Result<Snapshot, JmsError> {
    let users = jms
        .list_users()
        .await?
        .into_iter()
        .map(|u| IndexedUser {
            id: u.id.as_str().to_string(),
            username: u.username,
            name: u.name,
            email: u.email,
            // "Can log in": JumpServer's own `is_valid` is active and not expired.
            is_active: u.is_active && u.is_valid,
        })
        .collect();
    let nodes = jms
        .list_nodes()
        .await?
        .into_iter()
        .map(|n| IndexedNode {
            id: n.id,
            key: n.key,
            full_value: n.full_value,
        })
        .collect();
    let hosts = jms
        .list_hosts()
        .await?
        .into_iter()
        .map(|h| IndexedHost {
            id: h.id,
            name: h.name,
            address: h.address,
            node_ids: h.node_ids,
        })
        .collect();
    let mut permissions = Vec::new();
    for p in jms.list_permissions().await? {
        // The list serializer carries only amounts; the relations are on the detail.
        let seg = seg(&p.id)?;
        let detail = jms.call(Req::get(&format!("{PERMS}{seg}/"), &[])).await?;
        let mut user_ids = ref_ids(&detail, "users");
        if !ref_ids(&detail, "user_groups").is_empty() {
            // Group members count too: the expanded list names every user.
            let rows = jms
                .list_all(&format!("{PERMS}{seg}/users/all/"), &[], None)
                .await?;
            for r in &rows {
                let id = match r.get("user") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(o @ Value::Object(_)) => {
                        o.get("id").and_then(Value::as_str).map(str::to_owned)
                    }
                    _ => r.get("id").and_then(Value::as_str).map(str::to_owned),
                };
                if let Some(id) = id.filter(|s| !s.is_empty()) {
                    if !user_ids.contains(&id) {
                        user_ids.push(id);
                    }
                }
            }
        }
        permissions.push(IndexedPermission {
            asset_ids: ref_ids(&detail, "assets"),
            node_ids: ref_ids(&detail, "nodes"),
            user_ids,
            id: p.id,
            name: p.name,
            accounts: p.accounts,
            actions: p.actions,
            is_active: p.is_active,
            date_start: p.date_start,
            date_expired: p.date_expired,
        });
    }
    Ok(Snapshot {
        users,
        hosts,
        nodes,
        permissions,
    })
}
