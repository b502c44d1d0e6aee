//! The sled store as the workflow's store ports: `Orders` (with its outbox and audit in one
//! transaction), `Dialogs` (typed here: sled keeps the state as JSON, so a dialog this version
//! cannot read comes back as `Unreadable` instead of vanishing) and `Index` (whose writer takes a
//! sync's pages).
use crate::domain::audit::{Actor, AuditPage, AuditQuery, AuditRecord, ChainReport};
use crate::domain::change::Change;
use crate::domain::dialog::DialogState;
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::inventory::{
    IndexStats, IndexedHost, IndexedNode, IndexedPermission, IndexedUser, Member, Reach, Relation,
    Snapshot, UserAccess,
};
use crate::domain::jobs::JobKind;
use crate::domain::order::{Order, State};
use crate::store::audit::Audit;
use crate::store::dialogs::Dialogs;
use crate::store::dialogs::UserPrefs;
use crate::store::index::{Index, IndexWriter};
use crate::store::orders::Orders;
use crate::workflow::ports::{
    AuditTrail, CasError, Committed, CreateError, DialogStore, IndexBuild, IndexStore,
    InventorySink, OrderChanges, OrderStore, OutboxJob, StoreError, StoredDialog,
};
use futures::future::BoxFuture;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::convert::Infallible;

impl OrderStore for Orders {
    fn next_id(&self, now: Timestamp, tz: &TimeZone) -> Result<OrderId, StoreError> {
        Orders::next_id(self, now, tz)
    }

    fn create(
        &self,
        order: Order,
        jobs: Vec<JobKind>,
        audit: Vec<AuditRecord>,
    ) -> Result<Committed, CreateError> {
        Orders::create(self, order, jobs, audit)
    }

    fn get(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        Orders::get(self, id)
    }

    fn commit(
        &self,
        expected_version: u64,
        change: Change,
    ) -> Result<Committed, CasError<Infallible>> {
        Orders::commit(self, expected_version, change)
    }

    fn list_by_requester(&self, user: &DingUserId) -> Result<Vec<Order>, StoreError> {
        Orders::list_by_requester(self, user)
    }

    fn all(&self) -> Result<Vec<Order>, StoreError> {
        Orders::all(self)
    }

    fn changes_since(&self, revision: u64) -> OrderChanges {
        Orders::changes_since(self, revision)
    }

    fn list_by_state(&self, state: State) -> Result<Vec<Order>, StoreError> {
        Orders::list_by_state(self, state)
    }

    fn find_by_card_track_id(&self, track_id: &str) -> Result<Option<Order>, StoreError> {
        Orders::find_by_card_track_id(self, track_id)
    }

    fn find_by_oa_instance(&self, instance: &str) -> Result<Option<Order>, StoreError> {
        Orders::find_by_oa_instance(self, instance)
    }

    fn enqueue(&self, job: &OutboxJob) -> Result<bool, StoreError> {
        self.outbox().enqueue(job)
    }
}

impl AuditTrail for Audit {
    fn query(&self, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        Audit::query(self, q)
    }

    fn verify(&self) -> Result<ChainReport, StoreError> {
        Audit::verify(self)
    }
}

impl DialogStore for Dialogs {
    fn load(&self, user: &DingUserId) -> Result<Option<StoredDialog>, StoreError> {
        let entry = match self.get(user) {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(None),
            Err(StoreError::Corrupt(why)) => return Ok(Some(StoredDialog::Unreadable(why))),
            Err(e) => return Err(e),
        };
        Ok(Some(match serde_json::from_value(entry.state) {
            Ok(state) => StoredDialog::Open(state),
            Err(e) => StoredDialog::Unreadable(format!("dialog state: {e}")),
        }))
    }

    fn save(
        &self,
        user: &DingUserId,
        state: &DialogState,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let v = serde_json::to_value(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.put(user, v, now)
    }

    fn delete(&self, user: &DingUserId) -> Result<bool, StoreError> {
        Dialogs::delete(self, user)
    }

    fn prefs(&self, user: &DingUserId) -> Result<UserPrefs, StoreError> {
        Dialogs::prefs(self, user)
    }

    fn set_prefs(&self, user: &DingUserId, prefs: &UserPrefs) -> Result<(), StoreError> {
        self.put_prefs(user, prefs)
    }
}

impl IndexStore for Index {
    fn stats(&self) -> Result<Option<IndexStats>, StoreError> {
        Index::stats(self)
    }

    fn replace<'a>(
        &'a self,
        snap: &'a Snapshot,
        synced_at: Timestamp,
        duration_ms: u64,
        actor: Actor,
    ) -> BoxFuture<'a, Result<IndexStats, StoreError>> {
        Box::pin(Index::replace(self, snap, synced_at, duration_ms, actor))
    }

    fn begin(&self, now: Timestamp) -> Result<Box<dyn IndexBuild>, StoreError> {
        Ok(Box::new(Index::begin(self, now)?))
    }

    fn reach_of(
        &self,
        user_id: &str,
        addresses: &[String],
        now: Timestamp,
    ) -> Result<Vec<Option<Option<Timestamp>>>, StoreError> {
        Index::reach_of(self, user_id, addresses, now)
    }

    fn record_failure(&self, at: Timestamp, actor: Actor, detail: &str) -> Result<(), StoreError> {
        Index::record_failure(self, at, actor, detail)
    }

    fn user_access(
        &self,
        username: &str,
        now: Timestamp,
    ) -> Result<Option<UserAccess>, StoreError> {
        Index::user_access(self, username, now)
    }

    fn user_access_summary(
        &self,
        username: &str,
        now: Timestamp,
    ) -> Result<Option<UserAccess>, StoreError> {
        Index::user_access_summary(self, username, now)
    }

    fn hosts_matching(&self, subject: &str) -> Result<Vec<IndexedHost>, StoreError> {
        Index::hosts_matching(self, subject)
    }

    fn who_can_reach(&self, address: &str, now: Timestamp) -> Result<Vec<Reach>, StoreError> {
        Index::who_can_reach(self, address, now)
    }
}

impl InventorySink for IndexWriter {
    fn users(&mut self, page: &[IndexedUser]) -> Result<(), StoreError> {
        IndexWriter::users(self, page)
    }
    fn memberships(&mut self, page: &[(String, String)]) -> Result<(), StoreError> {
        IndexWriter::memberships(self, page)
    }
    fn nodes(&mut self, page: &[IndexedNode]) -> Result<(), StoreError> {
        IndexWriter::nodes(self, page)
    }
    fn hosts(&mut self, page: &[IndexedHost]) -> Result<(), StoreError> {
        IndexWriter::hosts(self, page)
    }
    fn permissions(&mut self, page: &[IndexedPermission]) -> Result<(), StoreError> {
        IndexWriter::permissions(self, page)
    }
    fn relations(&mut self, m: Member, page: &[Relation]) -> Result<(), StoreError> {
        IndexWriter::relations(self, m, page)
    }
}

impl IndexBuild for IndexWriter {
    fn commit(
        self: Box<Self>,
        synced_at: Timestamp,
        duration_ms: u64,
        calls: u64,
        actor: Actor,
    ) -> BoxFuture<'static, Result<IndexStats, StoreError>> {
        // The commit writes the views and counts the generation: 11 s of synchronous sled work
        // at the issue-11 org. On a blocking thread, so it does not hold one of the runtime's
        // workers (and whatever delivery waits on it) for that long.
        Box::pin(async move {
            let rt = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                rt.block_on(IndexWriter::commit(
                    *self,
                    synced_at,
                    duration_ms,
                    calls,
                    actor,
                ))
            })
            .await
            .unwrap_or_else(|e| match e.try_into_panic() {
                // As if it had run here: a panic goes on up to the job runner.
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => Err(StoreError::Conflict(format!(
                    "the index commit was cancelled: {e}"
                ))),
            })
        })
    }
}
