//! The index sync: walks JumpServer through the bastion port into a new index generation, page
//! by page, and swaps it in, then tells the admin who asked. Nothing is swapped unless the whole walk
//! succeeded, so a failure or crash leaves the previous generation in use.
use crate::chat::text;
use crate::domain::audit::Actor;
use crate::domain::ids::DingUserId;
use crate::domain::inventory::{
    IndexStats, IndexedHost, IndexedNode, IndexedPermission, IndexedUser, Member, Relation,
    SyncProgress,
};
use crate::worker::outbox::JobError;
use crate::workflow::ports::{
    BastionError, IndexBuild, InventorySink, OutMessage, OutboxJob, StoreError,
};
use crate::workflow::Workflow;
use std::time::{Duration, Instant};

/// Transient JumpServer failures are retried this many times before the admin is told the sync
/// failed (the previous index stays in use either way).
const SYNC_ATTEMPTS: u32 = 3;

/// How often a long sync tells the admin how far it got: a 10k-host org at the default
/// request share takes minutes, and silence that long reads as a hang.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Walks JumpServer (users, groups, nodes, hosts, permissions and their relations) into a new
/// index generation page by page, swaps it in, then tells the admin (with progress messages
/// on the way for a long walk). Nothing is swapped unless the whole walk succeeded, so a
/// failure or crash leaves the previous generation in use.
pub(in crate::workflow) async fn run(
    wf: &Workflow,
    job: &OutboxJob,
    requested_by: &DingUserId,
) -> Result<(), JobError> {
    let started = wf.now();
    let storage = |e: StoreError| JobError::transient(format!("storage: {e}"));
    let mut build = wf.index.begin(started).map_err(storage)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<SyncProgress>();
    let inner: &mut dyn IndexBuild = &mut *build;
    let walk = async move {
        let mut sink = Reporting {
            inner,
            tx,
            last: Instant::now(),
        };
        wf.bastion.inventory(&mut sink).await
        // `sink` (and the sender) go here, which ends the reporter below.
    };
    let report = async {
        while let Some(p) = rx.recv().await {
            tell_admin(
                wf,
                requested_by,
                text::sync_progress(wf.lang(), &progress_view(&p)),
            )
            .await;
        }
    };
    let (walked, ()) = futures::join!(walk, report);
    let walked = match walked {
        Ok(p) => p,
        Err(e) => {
            drop(build);
            if let Some(err) = sync_error(&e, job.attempts) {
                return Err(err);
            }
            tracing::warn!(error = %e, "sync failed; previous index kept");
            let actor = Actor::User(requested_by.clone());
            if let Err(se) = wf.index.record_failure(wf.now(), actor, &e.to_string()) {
                tracing::error!(error = %se, "could not audit the failed sync");
            }
            let m = text::sync_failed(wf.lang(), &e.user_message(wf.en()));
            tell_admin(wf, requested_by, m).await;
            return Ok(());
        }
    };
    let done = wf.now();
    let ms = u64::try_from(done.duration_since(started).as_millis()).unwrap_or(0);
    let stats = build
        .commit(done, ms, walked.calls, Actor::User(requested_by.clone()))
        .await
        .map_err(storage)?;
    tracing::info!(
        generation = stats.generation,
        users = stats.users,
        hosts = stats.hosts,
        permissions = stats.permissions,
        relations = stats.relations,
        calls = stats.calls,
        "JumpServer index synced"
    );
    let m = text::sync_done(wf.lang(), &sync_view(&stats), &wf.settings.tz);
    tell_admin(wf, requested_by, m).await;
    Ok(())
}

/// The index writer, plus a progress message every `PROGRESS_EVERY` (sent by `run`'s reporter
/// so the walk never waits on DingTalk).
struct Reporting<'a> {
    inner: &'a mut dyn IndexBuild,
    tx: tokio::sync::mpsc::UnboundedSender<SyncProgress>,
    last: Instant,
}

impl InventorySink for Reporting<'_> {
    fn users(&mut self, page: &[IndexedUser]) -> Result<(), StoreError> {
        self.inner.users(page)
    }
    fn memberships(&mut self, page: &[(String, String)]) -> Result<(), StoreError> {
        self.inner.memberships(page)
    }
    fn nodes(&mut self, page: &[IndexedNode]) -> Result<(), StoreError> {
        self.inner.nodes(page)
    }
    fn hosts(&mut self, page: &[IndexedHost]) -> Result<(), StoreError> {
        self.inner.hosts(page)
    }
    fn permissions(&mut self, page: &[IndexedPermission]) -> Result<(), StoreError> {
        self.inner.permissions(page)
    }
    fn relations(&mut self, m: Member, page: &[Relation]) -> Result<(), StoreError> {
        self.inner.relations(m, page)
    }
    fn progress(&mut self, p: &SyncProgress) {
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.last = Instant::now();
            // The receiver lives as long as the walk; a closed one only loses a message.
            let _ = self.tx.send(*p);
        }
    }
}

fn progress_view(p: &SyncProgress) -> text::SyncProgressView {
    text::SyncProgressView {
        rows: p.rows,
        rows_expected: p.rows_expected,
        calls: p.calls,
    }
}

/// A failed report is logged, not retried: re-running the job would walk JumpServer again
/// for a message, and the index itself is already in place.
pub(in crate::workflow) async fn tell_admin(wf: &Workflow, admin: &DingUserId, m: String) {
    if let Err(e) = wf
        .chat
        .send_to_users(std::slice::from_ref(admin), &OutMessage::text(m))
        .await
    {
        tracing::warn!(error = %e, "sync report not delivered");
    }
}

fn sync_error(e: &BastionError, attempts: u32) -> Option<JobError> {
    (e.is_transient() && attempts + 1 < SYNC_ATTEMPTS).then(|| JobError::transient(e.to_string()))
}

fn sync_view(s: &IndexStats) -> text::SyncView {
    text::SyncView {
        users: s.users,
        hosts: s.hosts,
        permissions: s.permissions,
        valid_permissions: s.valid_permissions,
        duration_ms: s.duration_ms,
        synced_at: s.synced_at,
        calls: s.calls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::index::Index;
    use crate::store::Store;

    fn progress(calls: u64) -> SyncProgress {
        SyncProgress {
            calls,
            rows: calls * 1000,
            rows_expected: 200_000,
        }
    }

    #[test]
    fn a_long_walk_reports_progress_at_most_once_per_interval() {
        let store = Store::temporary().unwrap();
        let index = Index::new(&store).unwrap();
        let mut writer = index.begin(jiff::Timestamp::now()).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut sink = Reporting {
            inner: &mut writer,
            tx,
            last: Instant::now(),
        };
        // Inside the first interval: nothing is sent, however many pages go by.
        for calls in 1..=50 {
            sink.progress(&progress(calls));
        }
        assert!(rx.try_recv().is_err(), "no progress before the interval");
        // The interval has passed: the next page reports where the walk is, once.
        sink.last = Instant::now()
            .checked_sub(PROGRESS_EVERY + Duration::from_secs(1))
            .unwrap();
        sink.progress(&progress(51));
        sink.progress(&progress(52));
        let sent = rx
            .try_recv()
            .expect("a progress message after the interval");
        assert_eq!((sent.calls, sent.rows), (51, 51_000));
        assert!(rx.try_recv().is_err(), "one message per interval");
        let view = progress_view(&sent);
        let zh = text::sync_progress(crate::domain::command::Lang::ZhCn, &view);
        assert!(
            zh.contains("51000 / 200000") && zh.contains("51 次"),
            "{zh}"
        );
    }
}
