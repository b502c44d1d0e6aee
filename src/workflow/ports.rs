//! What the workflow needs from the world, as traits: the chat platform people talk through,
//! the bastion that grants access, and the store that keeps orders (with their outbox jobs and
//! audit, in one transaction), dialogs and the JumpServer index. The workflow holds these as
//! `Arc<dyn …>` and names no adapter; `app` plugs the adapters in (`DingTalkClient`,
//! `JmsClient`, the sled store), and a second store or chat platform is one module implementing
//! these traits plus a line of wiring.
//!
//! Data crossing a port is the domain's where the domain has a word for it. The chat platform's
//! cards, messages and approval records and the bastion's grant plan and outcomes are re-exported
//! from their adapters: they are plain data shaped by those systems (and still moving while the
//! adapters are split), and this file is the one place the workflow names them.
use crate::domain::access::{HostAccess, NodeAccess, ReadBack};
use crate::domain::audit::{Actor, AuditPage, AuditQuery, AuditRecord, ChainReport};
use crate::domain::change::Change;
use crate::domain::dialog::DialogState;
use crate::domain::ids::{DingUserId, JmsUserId, OrderId};
use crate::domain::inventory::{
    IndexStats, IndexedHost, IndexedNode, IndexedPermission, IndexedUser, Member, Reach, Relation,
    Snapshot, SyncProgress, UserAccess,
};
use crate::domain::jobs::JobKind;
use crate::domain::notice::FailureKind;
use crate::domain::order::{Order, State};
use crate::domain::ownership::Marker;
use futures::future::BoxFuture;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::convert::Infallible;

pub use crate::dingtalk::client::{
    ApprovalDetail, ApprovalInstanceQuery, ApprovalRecord, ApprovalResult, ApprovalStart,
    ApprovalState, ApprovalStatus, CardDelivery, CardTarget, DingUser,
};
pub use crate::dingtalk::message::{dtmd_send_link, CardButton, OutMessage};
pub use crate::jumpserver::{
    GrantOutcome, GrantPlan, GrantPreview, GrantedAsset, JmsUser, NewUser, NewUserSpec, Reacher,
    RevokeMode, RevokeOutcome, UserMatch,
};
pub use crate::store::dialogs::UserPrefs;
use crate::store::orders::update_with;
pub use crate::store::orders::{CasError, Committed, CreateError, OrderChanges};
pub use crate::store::outbox::OutboxJob;
pub use crate::store::StoreError;

// ------------------------------------------------------------------ chat platform ----------

/// A chat platform call that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ChatError {
    /// Trying again later may succeed (throttling, a server error, the network).
    pub transient: bool,
    pub message: String,
}

impl ChatError {
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

/// What a send reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// Recipients the platform throttled: the message did not reach them.
    pub throttled: Vec<DingUserId>,
    /// Recipients the platform will never deliver to (DingTalk's `invalidStaffIdList`: outside
    /// the app's visible range, or gone).
    pub undeliverable: Vec<DingUserId>,
}

/// The chat platform: messages, cards, OA approvals and the directory.
pub trait ChatPlatform: Send + Sync {
    /// A 1:1 message to each of `to`.
    fn send_to_users<'a>(
        &'a self,
        to: &'a [DingUserId],
        msg: &'a OutMessage,
    ) -> BoxFuture<'a, Result<Sent, ChatError>>;
    /// A reply on the session webhook a chat message came with.
    fn reply_on_session<'a>(
        &'a self,
        webhook: &'a str,
        msg: &'a OutMessage,
    ) -> BoxFuture<'a, Result<(), ChatError>>;
    /// Creates and delivers a card; delivering the same `out_track_id` again is a no-op.
    fn deliver_card(&self, card: CardDelivery) -> BoxFuture<'_, Result<(), ChatError>>;
    fn update_card<'a>(
        &'a self,
        out_track_id: &'a str,
        vars: std::collections::BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), ChatError>>;
    /// Starts an OA approval instance; returns its id.
    fn start_approval(&self, start: ApprovalStart) -> BoxFuture<'_, Result<String, ChatError>>;
    fn terminate_approval<'a>(
        &'a self,
        instance: &'a str,
        remark: &'a str,
    ) -> BoxFuture<'a, Result<(), ChatError>>;
    /// Ids of the instances a query matches.
    fn find_approvals<'a>(
        &'a self,
        query: &'a ApprovalInstanceQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, ChatError>>;
    fn approval_detail<'a>(
        &'a self,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<ApprovalDetail, ChatError>>;
    fn approval_state<'a>(
        &'a self,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<ApprovalState, ChatError>>;
    /// A person in the directory.
    fn look_up_user<'a>(
        &'a self,
        user: &'a DingUserId,
    ) -> BoxFuture<'a, Result<DingUser, ChatError>>;
}

// ------------------------------------------------------------------ bastion ----------

/// A bastion call that failed, with what the requester is told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct BastionError {
    /// Trying again later may succeed.
    pub transient: bool,
    /// What failed, in the requester's words.
    pub kind: FailureKind,
    /// For logs and the audit trail.
    pub detail: String,
    /// For people, in English and in Chinese.
    pub en: String,
    pub zh: String,
}

impl BastionError {
    /// A request the bastion cannot take as it is (`en` / `zh`: why).
    pub fn invalid(en: impl Into<String>, zh: impl Into<String>) -> Self {
        let en = en.into();
        Self {
            transient: false,
            kind: FailureKind::GrantFailed,
            detail: format!("invalid request: {en}"),
            en,
            zh: zh.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// A sentence for the chat user.
    pub fn user_message(&self, english: bool) -> String {
        if english {
            self.en.clone()
        } else {
            self.zh.clone()
        }
    }
}

type Bastioned<'a, T> = BoxFuture<'a, Result<T, BastionError>>;

/// The bastion (JumpServer): grants with their preview and read-back, revocation, renewal, the
/// users, who reaches what, and the whole inventory for the local index.
pub trait Bastion: Send + Sync {
    /// What `plan` would change, without changing anything.
    fn preview<'a>(&'a self, plan: &'a GrantPlan) -> Bastioned<'a, GrantPreview>;
    /// Makes the permission match `plan` (look before create; repair what is ours).
    fn grant<'a>(&'a self, plan: &'a GrantPlan) -> Bastioned<'a, GrantOutcome>;
    /// What `user` reaches through `permission` now, host by host.
    fn read_back<'a>(
        &'a self,
        user: &'a JmsUserId,
        permission: &'a str,
        hosts: &'a [HostAccess],
        node: Option<&'a NodeAccess>,
        accounts: &'a [String],
    ) -> Bastioned<'a, ReadBack>;
    /// Ends a permission carrying `owner`'s marker; ends the holder's sessions on those hosts
    /// when `sessions_of` is given.
    fn revoke<'a>(
        &'a self,
        permission: &'a str,
        owner: &'a Marker,
        mode: RevokeMode,
        sessions_of: Option<(&'a JmsUserId, &'a [String])>,
    ) -> Bastioned<'a, RevokeOutcome>;
    /// Moves the end of a permission of ours; returns its name as the bastion has it.
    fn renew<'a>(
        &'a self,
        permission: &'a str,
        owner: &'a Marker,
        end: Timestamp,
    ) -> Bastioned<'a, String>;
    fn find_user<'a>(&'a self, username: &'a str) -> Bastioned<'a, Option<JmsUser>>;
    fn user<'a>(&'a self, id: &'a JmsUserId) -> Bastioned<'a, Option<JmsUser>>;
    fn create_user<'a>(&'a self, spec: &'a NewUserSpec) -> Bastioned<'a, ()>;
    fn set_user_active<'a>(&'a self, id: &'a JmsUserId, active: bool) -> Bastioned<'a, ()>;
    /// Every valid permission row that reaches `address`.
    fn who_can_reach<'a>(&'a self, address: &'a str) -> Bastioned<'a, Vec<Reacher>>;
    /// For each of `addresses`: whether `user` reaches a host there through a valid
    /// permission, and the latest end among those (`Some(None)`: one never ends).
    fn user_reach<'a>(
        &'a self,
        user: &'a JmsUserId,
        addresses: &'a [String],
    ) -> Bastioned<'a, Vec<Option<Option<Timestamp>>>>;
    /// The hosts a user reaches.
    fn granted_assets<'a>(&'a self, user: &'a JmsUserId) -> Bastioned<'a, Vec<GrantedAsset>>;
    /// Walks users (with their groups), nodes, hosts, permissions and the permission relation
    /// tables into `sink`, page by page, so nothing holds the whole inventory; returns what the
    /// walk took. Paced to the configured share of JumpServer's request budget.
    fn inventory<'a>(&'a self, sink: &'a mut dyn InventorySink) -> Bastioned<'a, SyncProgress>;
}

/// Where an inventory walk puts each page as it arrives. A sink error stops the walk.
pub trait InventorySink: Send {
    fn users(&mut self, page: &[IndexedUser]) -> Result<(), StoreError>;
    /// Group memberships as `(group id, user id)`.
    fn memberships(&mut self, page: &[(String, String)]) -> Result<(), StoreError>;
    fn nodes(&mut self, page: &[IndexedNode]) -> Result<(), StoreError>;
    fn hosts(&mut self, page: &[IndexedHost]) -> Result<(), StoreError>;
    /// Permissions; their member lists, when filled, are written as relations too.
    fn permissions(&mut self, page: &[IndexedPermission]) -> Result<(), StoreError>;
    fn relations(&mut self, member: Member, page: &[Relation]) -> Result<(), StoreError>;
    /// Called after every page; the default ignores it.
    fn progress(&mut self, _p: &SyncProgress) {}
}

/// A new index generation being written; nobody reads it until `commit` makes it current.
/// Dropping it without `commit` leaves the previous generation current (the next sync sweeps
/// what was written).
pub trait IndexBuild: InventorySink {
    /// Makes the written generation current (audited as `actor`'s) and returns its figures.
    fn commit(
        self: Box<Self>,
        synced_at: Timestamp,
        duration_ms: u64,
        calls: u64,
        actor: Actor,
    ) -> BoxFuture<'static, Result<IndexStats, StoreError>>;
}

// ------------------------------------------------------------------ store ----------

/// Orders, with the outbox jobs and audit records each change causes, written together.
pub trait OrderStore: Send + Sync {
    /// A fresh order id for an order created at `now`, dated in `tz`.
    fn next_id(&self, now: Timestamp, tz: &TimeZone) -> Result<OrderId, StoreError>;
    /// Stores a new order with its first jobs and audit records.
    fn create(
        &self,
        order: Order,
        jobs: Vec<JobKind>,
        audit: Vec<AuditRecord>,
    ) -> Result<Committed, CreateError>;
    fn get(&self, id: &OrderId) -> Result<Option<Order>, StoreError>;
    /// Writes `change` (the order, its jobs, its audit) in one transaction if the stored order
    /// still has `expected_version`; `Stale` with the current order otherwise.
    fn commit(
        &self,
        expected_version: u64,
        change: Change,
    ) -> Result<Committed, CasError<Infallible>>;
    /// A requester's orders, newest first.
    fn list_by_requester(&self, user: &DingUserId) -> Result<Vec<Order>, StoreError>;
    /// Orders in `state`, oldest first.
    fn list_by_state(&self, state: State) -> Result<Vec<Order>, StoreError>;
    /// The order a card (by its outTrackId) belongs to.
    fn find_by_card_track_id(&self, track_id: &str) -> Result<Option<Order>, StoreError>;
    /// The order an OA approval instance belongs to.
    fn find_by_oa_instance(&self, instance: &str) -> Result<Option<Order>, StoreError>;
    /// Queues work that no order change carries (a leaver's user, `/sync`); `false` when a job
    /// with the same id is queued already.
    fn enqueue(&self, job: &OutboxJob) -> Result<bool, StoreError>;
    /// Every order (for readers that keep a copy of them all: the console).
    fn all(&self) -> Result<Vec<Order>, StoreError> {
        let mut all = Vec::new();
        for s in State::ALL {
            all.extend(self.list_by_state(s)?);
        }
        Ok(all)
    }
    /// The orders changed after `revision`, so a reader that keeps a copy re-reads only those.
    /// A store that does not track changes answers "unknown" and the reader loads everything.
    fn changes_since(&self, revision: u64) -> OrderChanges {
        let _ = revision;
        OrderChanges {
            revision: 0,
            changed: None,
        }
    }
}

/// Compare-and-swap against whatever is stored, for any order store.
pub trait OrderStoreExt {
    /// Computes a change from the stored order and commits it, computing again (up to 16 times)
    /// when another change won the race. `f` refusing leaves everything as it is.
    fn update<E>(
        &self,
        id: &OrderId,
        f: impl FnMut(&Order) -> Result<Change, E>,
    ) -> Result<Committed, CasError<E>>;
}

impl<S: OrderStore + ?Sized> OrderStoreExt for S {
    fn update<E>(
        &self,
        id: &OrderId,
        f: impl FnMut(&Order) -> Result<Change, E>,
    ) -> Result<Committed, CasError<E>> {
        update_with(id, |id| self.get(id), |v, c| self.commit(v, c), f)
    }
}

/// The audit trail as readers see it (`/history`, `accessbot audit`, the console): queries by
/// order, user, host and time, a page at a time, and the check of the hash chain. Writing goes
/// through `OrderStore` (in the order's transaction) and never through here.
pub trait AuditTrail: Send + Sync {
    fn query(&self, q: &AuditQuery) -> Result<AuditPage, StoreError>;
    /// Walks the whole chain; see `ChainReport`.
    fn verify(&self) -> Result<ChainReport, StoreError>;
}

/// A user's dialog as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredDialog {
    Open(DialogState),
    /// Stored but not readable by this version (or damaged): why.
    Unreadable(String),
}

/// Per-user dialog state, typed.
pub trait DialogStore: Send + Sync {
    fn load(&self, user: &DingUserId) -> Result<Option<StoredDialog>, StoreError>;
    fn save(
        &self,
        user: &DingUserId,
        state: &DialogState,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Returns whether there was a dialog.
    fn delete(&self, user: &DingUserId) -> Result<bool, StoreError>;
    /// How a person wants to be answered (the language they last wrote in, or set with
    /// `/lang`); the default when nothing is stored.
    fn prefs(&self, user: &DingUserId) -> Result<UserPrefs, StoreError>;
    fn set_prefs(&self, user: &DingUserId, prefs: &UserPrefs) -> Result<(), StoreError>;
}

/// The local JumpServer index `/sync` builds and `/who-has` reads.
pub trait IndexStore: Send + Sync {
    /// The current generation's figures; `None` until the first sync completed.
    fn stats(&self) -> Result<Option<IndexStats>, StoreError>;
    /// Starts writing a new generation (validity counted at `now`).
    fn begin(&self, now: Timestamp) -> Result<Box<dyn IndexBuild>, StoreError>;
    /// Writes `snap` as the new generation and makes it current (audited as `actor`'s).
    fn replace<'a>(
        &'a self,
        snap: &'a Snapshot,
        synced_at: Timestamp,
        duration_ms: u64,
        actor: Actor,
    ) -> BoxFuture<'a, Result<IndexStats, StoreError>>;
    /// Whether the user with JumpServer id `user_id` reaches each of `addresses` through a permission valid at `now`, with
    /// the latest end among them (`Some(None)`: one never ends). One entry per address.
    fn reach_of(
        &self,
        user_id: &str,
        addresses: &[String],
        now: Timestamp,
    ) -> Result<Vec<Option<Option<Timestamp>>>, StoreError>;
    /// Audits a sync that did not complete (the previous generation stays current).
    fn record_failure(&self, at: Timestamp, actor: Actor, detail: &str) -> Result<(), StoreError>;
    /// A user (by username) and the valid grants they hold at `now`.
    fn user_access(&self, username: &str, now: Timestamp)
        -> Result<Option<UserAccess>, StoreError>;
    /// `user_access` bounded for a chat reply: per grant the first
    /// `inventory::GRANT_HOSTS_SHOWN` hosts in address order and the exact `host_count`.
    fn user_access_summary(
        &self,
        username: &str,
        now: Timestamp,
    ) -> Result<Option<UserAccess>, StoreError>;
    /// Hosts whose address or name is `subject`.
    fn hosts_matching(&self, subject: &str) -> Result<Vec<IndexedHost>, StoreError>;
    /// Who reaches `address` through a permission valid at `now`.
    fn who_can_reach(&self, address: &str, now: Timestamp) -> Result<Vec<Reach>, StoreError>;
}
