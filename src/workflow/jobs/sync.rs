//! The index sync: walks JumpServer through the bastion port, writes a new index generation and
//! swaps it in, then tells the admin who asked. Nothing is swapped unless the whole walk
//! succeeded, so a failure or crash leaves the previous generation in use.
use crate::chat::text;
use crate::domain::audit::Actor;
use crate::domain::ids::DingUserId;
use crate::domain::inventory::IndexStats;
use crate::worker::outbox::JobError;
use crate::workflow::ports::{BastionError, OutMessage, OutboxJob};
use crate::workflow::Workflow;

/// Transient JumpServer failures are retried this many times before the admin is told the sync
/// failed (the previous index stays in use either way).
const SYNC_ATTEMPTS: u32 = 3;

/// Walks JumpServer (users, nodes, hosts, permissions with their relations), writes a new
/// index generation and swaps it in, then tells the admin. Nothing is swapped unless the
/// whole walk succeeded, so a failure or crash leaves the previous generation in use.
pub(in crate::workflow) async fn run(
    wf: &Workflow,
    job: &OutboxJob,
    requested_by: &DingUserId,
) -> Result<(), JobError> {
    let started = wf.now();
    let snap = match wf.bastion.inventory().await {
        Ok(s) => s,
        Err(e) => {
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
    let stats = wf
        .index
        .replace(&snap, done, ms, Actor::User(requested_by.clone()))
        .await
        .map_err(|e| JobError::transient(format!("storage: {e}")))?;
    tracing::info!(
        generation = stats.generation,
        users = stats.users,
        hosts = stats.hosts,
        permissions = stats.permissions,
        "JumpServer index synced"
    );
    let m = text::sync_done(wf.lang(), &sync_view(&stats), &wf.settings.tz);
    tell_admin(wf, requested_by, m).await;
    Ok(())
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
    }
}
