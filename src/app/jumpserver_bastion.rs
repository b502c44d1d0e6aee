//! JumpServer as the workflow's bastion: `JmsClient` behind `ports::Bastion`, with what the
//! port adds to the client: errors in the requester's words (which failure it is, a sentence in
//! both languages) and the inventory walk the local index is built from.
use crate::domain::access::{HostAccess, NodeAccess, ReadBack};
use crate::domain::ids::JmsUserId;
use crate::domain::inventory::{
    IndexedHost, IndexedNode, IndexedPermission, IndexedUser, Member, Relation, SyncProgress,
};
use crate::domain::notice::FailureKind;
use crate::domain::ownership::Marker;
use crate::jumpserver::inventory::{Page, RelationTable, WalkCount, WalkError};
use crate::jumpserver::{JmsClient, JmsError, Problem};
use crate::workflow::ports::{
    Bastion, BastionError, GrantOutcome, GrantPlan, GrantPreview, GrantedAsset, InventorySink,
    JmsUser, NewUserSpec, Reacher, RevokeMode, RevokeOutcome, StoreError,
};
use futures::future::BoxFuture;
use jiff::Timestamp;

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

    fn user_reach<'a>(
        &'a self,
        user: &'a JmsUserId,
        addresses: &'a [String],
    ) -> Bastioned<'a, Vec<Option<Option<Timestamp>>>> {
        Box::pin(async move {
            JmsClient::user_reach(self, user, addresses)
                .await
                .map_err(bastion_err)
        })
    }

    fn granted_assets<'a>(&'a self, user: &'a JmsUserId) -> Bastioned<'a, Vec<GrantedAsset>> {
        Box::pin(async move { self.user_granted_assets(user).await.map_err(bastion_err) })
    }

    fn inventory<'a>(&'a self, sink: &'a mut dyn InventorySink) -> Bastioned<'a, SyncProgress> {
        Box::pin(walk(self, sink))
    }
}

/// Walks JumpServer into the sink page by page (`JmsClient::walk_inventory`), turning its rows
/// into the index's words: a user can log in when active and not expired (JumpServer's own
/// `is_valid`), group members come from both the user list and the group list.
async fn walk(jms: &JmsClient, sink: &mut dyn InventorySink) -> Result<SyncProgress, BastionError> {
    let per_minute = jms.config().sync_requests_per_minute;
    // Converting and writing a page (a thousand rows and their indexes into sled) takes tens of
    // milliseconds: off the runtime's worker (`offload`).
    let mut on_page = |page: Page, n: WalkCount| -> Result<(), StoreError> {
        crate::offload::off_worker(|| write_page(&mut *sink, page, n))
    };
    match jms.walk_inventory(per_minute, &mut on_page).await {
        Ok(n) => Ok(SyncProgress {
            calls: n.calls,
            rows: n.rows,
            rows_expected: n.rows_expected,
        }),
        Err(WalkError::Jms(e)) => Err(bastion_err(e)),
        Err(WalkError::Sink(e)) => Err(BastionError {
            transient: true,
            kind: FailureKind::GrantFailed,
            detail: format!("storage: {e}"),
            en: format!("the index could not be written: {e}"),
            zh: format!("索引写入失败：{e}"),
        }),
    }
}

/// One page of the walk into the sink, in the index's words.
fn write_page(sink: &mut dyn InventorySink, page: Page, n: WalkCount) -> Result<(), StoreError> {
    match page {
        Page::Users(rows) => {
            let users: Vec<IndexedUser> = rows
                .iter()
                .map(|(u, _)| IndexedUser {
                    id: u.id.as_str().to_string(),
                    username: u.username.clone(),
                    name: u.name.clone(),
                    email: u.email.clone(),
                    is_active: u.is_active && u.is_valid,
                })
                .collect();
            sink.users(&users)?;
            let members: Vec<(String, String)> = rows
                .iter()
                .flat_map(|(u, groups)| {
                    groups
                        .iter()
                        .map(|g| (g.clone(), u.id.as_str().to_string()))
                })
                .collect();
            sink.memberships(&members)?;
        }
        Page::Groups(rows) => {
            let members: Vec<(String, String)> = rows
                .into_iter()
                .flat_map(|(g, users)| users.into_iter().map(move |u| (g.clone(), u)))
                .collect();
            sink.memberships(&members)?;
        }
        Page::Nodes(rows) => sink.nodes(
            &rows
                .into_iter()
                .map(|n| IndexedNode {
                    id: n.id,
                    key: n.key,
                    full_value: n.full_value,
                })
                .collect::<Vec<_>>(),
        )?,
        Page::Hosts(rows) => sink.hosts(
            &rows
                .into_iter()
                .map(|h| IndexedHost {
                    id: h.id,
                    name: h.name,
                    address: h.address,
                    node_ids: h.node_ids,
                })
                .collect::<Vec<_>>(),
        )?,
        Page::Permissions(rows) => sink.permissions(
            &rows
                .into_iter()
                .map(|p| IndexedPermission {
                    id: p.id,
                    name: p.name,
                    // Members come from the relation tables.
                    user_ids: Vec::new(),
                    asset_ids: Vec::new(),
                    node_ids: Vec::new(),
                    accounts: p.accounts,
                    actions: p.actions,
                    is_active: p.is_active,
                    date_start: p.date_start,
                    date_expired: p.date_expired,
                })
                .collect::<Vec<_>>(),
        )?,
        Page::Relations(table, rows) => {
            let member = match table {
                RelationTable::Users => Member::User,
                RelationTable::UserGroups => Member::UserGroup,
                RelationTable::Assets => Member::Asset,
                RelationTable::Nodes => Member::Node,
            };
            let rows: Vec<Relation> = rows
                .into_iter()
                .map(|(permission, member)| Relation { permission, member })
                .collect();
            sink.relations(member, &rows)?;
        }
    }
    sink.progress(&SyncProgress {
        calls: n.calls,
        rows: n.rows,
        rows_expected: n.rows_expected,
    });
    Ok(())
}
