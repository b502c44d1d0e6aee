//! The outbox runner: takes due jobs, runs them through a `JobRunner`, and marks them done or
//! reschedules them with jittered exponential backoff until their deadline, after which the job
//! is parked, audited and handed to `JobRunner::gave_up`.
//!
//! Guarantees: a job is removed only after its runner returned `Ok`, so every job runs at least
//! once, and again after a crash between its effect and its removal; runners make that safe by
//! being idempotent (stable identities, look before create). Jobs of one order run one at a time
//! in creation order (only an order's head job is ever taken); different orders run
//! concurrently, up to `max_concurrency`.
use crate::clock::SharedClock;
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::ids::OrderId;
use crate::store::audit::Audit;
use crate::store::outbox::{Outbox, OutboxJob, ParkReason};
use crate::store::StoreError;
use futures::future::BoxFuture;
use futures::FutureExt;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use thiserror::Error;
use tokio::task::JoinSet;

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum JobError {
    /// Worth retrying: network trouble, 5xx, rate limit, token expired.
    #[error("temporary failure: {reason}")]
    Transient { reason: String },
    /// Retrying cannot help: 4xx that is not about limits, missing user, bad config.
    #[error("permanent failure: {reason}")]
    Permanent { reason: String },
}

impl JobError {
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient {
            reason: reason.into(),
        }
    }
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
        }
    }
}

/// Does the work of a job. Must be idempotent: the same job can run more than once.
pub trait JobRunner: Send + Sync + 'static {
    fn run(&self, job: &OutboxJob) -> impl Future<Output = Result<(), JobError>> + Send;

    /// Called once when a job stops retrying (permanent error or deadline passed); the workflow
    /// marks the order failed (`Order::provisioning_failed` with no retry deadline) and queues
    /// `NotifyAdmins`. The job is already parked and audited when this runs.
    fn gave_up(&self, job: &OutboxJob, reason: &str) -> impl Future<Output = ()> + Send {
        let _ = (job, reason);
        async {}
    }
}

#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Jobs (hence orders) in flight at once; JumpServer and DingTalk both rate-limit, so small.
    pub max_concurrency: usize,
    /// First retry delay; doubles per failed attempt.
    pub backoff_base: SignedDuration,
    /// Cap on one retry delay.
    pub backoff_max: SignedDuration,
    /// A job still failing this long after it was created gives up.
    pub give_up_after: SignedDuration,
    /// Longest sleep without a wake-up: a safety net, and what lets a ManualClock-driven
    /// runner notice time moved.
    pub idle_poll: std::time::Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 8,
            backoff_base: SignedDuration::from_secs(2),
            backoff_max: SignedDuration::from_mins(10),
            give_up_after: SignedDuration::from_hours(24),
            idle_poll: std::time::Duration::from_secs(30),
        }
    }
}

/// Delay before the next attempt after `failures` failed attempts (1 = first failure):
/// `d = min(max, base·2^(failures-1))`, then "equal jitter": `d/2 + jitter·d/2` with `jitter`
/// in [0, 1), so retries of many jobs failing together spread out but never come sooner than
/// half the nominal delay.
pub fn backoff_delay(cfg: &RunnerConfig, failures: u32, jitter: f64) -> SignedDuration {
    let base = cfg.backoff_base.as_millis().max(1);
    let max = cfg.backoff_max.as_millis().max(base);
    let shift = failures.saturating_sub(1).min(40);
    let nominal = base.saturating_mul(1i128 << shift).min(max);
    let half = nominal / 2;
    let jitter = jitter.clamp(0.0, 1.0);
    let extra = (half as f64 * jitter) as i128;
    let ms = i64::try_from(half + extra).unwrap_or(i64::MAX);
    SignedDuration::from_millis(ms)
}

/// What one tick did (for tests, metrics, logs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    pub ran: usize,
    pub completed: usize,
    pub retried: usize,
    pub gave_up: usize,
}

/// Where the runner takes its jobs from and records their outcomes: the store's outbox. sled's
/// `Outbox` implements it (below); another store implements it beside the workflow's ports.
pub trait JobQueue: Send + Sync + 'static {
    /// The head job of each order, due by `now`, oldest first, at most `limit`.
    fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxJob>, StoreError>;
    /// The head job of every order, due or not.
    fn heads(&self) -> Result<Vec<OutboxJob>, StoreError>;
    /// Resolves when work was added.
    fn notified(&self) -> BoxFuture<'_, ()>;
    fn complete(&self, job_id: &str) -> Result<bool, StoreError>;
    fn reschedule(
        &self,
        job_id: &str,
        not_before: Timestamp,
        error: &str,
    ) -> Result<(), StoreError>;
    fn park(&self, job_id: &str, reason: ParkReason, error: &str) -> Result<(), StoreError>;
    /// Resolves once everything written so far is on disk (see `repeat_is_visible`).
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// Where a job that gave up is recorded (the store's audit trail).
pub trait AuditLog: Send + Sync + 'static {
    fn append(&self, rec: &AuditRecord) -> Result<(), StoreError>;
}

impl JobQueue for Outbox {
    fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxJob>, StoreError> {
        Outbox::due(self, now, limit)
    }
    fn heads(&self) -> Result<Vec<OutboxJob>, StoreError> {
        Outbox::heads(self)
    }
    fn notified(&self) -> BoxFuture<'_, ()> {
        Box::pin(Outbox::notified(self))
    }
    fn complete(&self, job_id: &str) -> Result<bool, StoreError> {
        Outbox::complete(self, job_id)
    }
    fn reschedule(
        &self,
        job_id: &str,
        not_before: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        Outbox::reschedule(self, job_id, not_before, error)
    }
    fn park(&self, job_id: &str, reason: ParkReason, error: &str) -> Result<(), StoreError> {
        Outbox::park(self, job_id, reason, error)
    }
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Outbox::flush(self))
    }
}

impl AuditLog for Audit {
    fn append(&self, rec: &AuditRecord) -> Result<(), StoreError> {
        Audit::append(self, rec)
    }
}

pub struct OutboxRunner<R: JobRunner> {
    outbox: Arc<dyn JobQueue>,
    audit: Arc<dyn AuditLog>,
    runner: Arc<R>,
    clock: SharedClock,
    cfg: RunnerConfig,
}

enum Applied {
    Completed,
    Retried,
    GaveUp,
}

impl<R: JobRunner> OutboxRunner<R> {
    pub fn new(
        outbox: impl JobQueue,
        audit: impl AuditLog,
        runner: Arc<R>,
        clock: SharedClock,
        cfg: RunnerConfig,
    ) -> Self {
        Self {
            outbox: Arc::new(outbox),
            audit: Arc::new(audit),
            runner,
            clock,
            cfg,
        }
    }

    /// Runs every due head job once (concurrently across orders) and records the outcomes.
    /// Tests drive the runner with this instead of sleeping.
    pub async fn run_once(&self) -> Result<TickReport, StoreError> {
        let now = self.clock.now();
        let jobs = self.outbox.due(now, self.cfg.max_concurrency.max(1))?;
        let mut set = JoinSet::new();
        for job in jobs {
            self.spawn(&mut set, job);
        }
        let mut report = TickReport::default();
        while let Some(joined) = set.join_next().await {
            let Some((job, result)) = flatten(joined) else {
                continue;
            };
            report.ran += 1;
            match self.apply(&job, result).await? {
                Applied::Completed => report.completed += 1,
                Applied::Retried => report.retried += 1,
                Applied::GaveUp => report.gave_up += 1,
            }
        }
        Ok(report)
    }

    /// Runs until `shutdown` resolves, then stops taking jobs, lets the ones in flight finish
    /// and records their outcomes (nothing is lost if the process dies instead: unfinished jobs
    /// are still in the outbox).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut set: JoinSet<JobDone> = JoinSet::new();
        let mut in_flight: HashSet<OrderId> = HashSet::new();
        loop {
            let now = self.clock.now();
            let mut wake_in = self.cfg.idle_poll;
            match self.outbox.heads() {
                Ok(heads) => {
                    let free = self.cfg.max_concurrency.max(1).saturating_sub(set.len());
                    let mut started = 0;
                    for job in heads {
                        if in_flight.contains(&job.order_id) {
                            continue;
                        }
                        if job.not_before <= now {
                            if started < free {
                                in_flight.insert(job.order_id.clone());
                                self.spawn(&mut set, job);
                                started += 1;
                            }
                        } else {
                            let d = job.not_before.duration_since(now);
                            let d = std::time::Duration::try_from(d).unwrap_or_default();
                            wake_in = wake_in.min(d);
                            // heads are sorted by not_before: the first future one is the earliest
                            break;
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "outbox: cannot read jobs; retrying later"),
            }
            tokio::select! {
                _ = &mut shutdown => break,
                Some(joined) = set.join_next(), if !set.is_empty() => {
                    if let Some((job, result)) = flatten(joined) {
                        in_flight.remove(&job.order_id);
                        if let Err(e) = self.apply(&job, result).await {
                            tracing::error!(job = %job.id, error = %e, "outbox: cannot record job outcome; it will run again");
                        }
                    }
                }
                _ = self.outbox.notified() => {}
                _ = tokio::time::sleep(wake_in) => {}
            }
        }
        while let Some(joined) = set.join_next().await {
            let Some((job, result)) = flatten(joined) else {
                continue;
            };
            if let Err(e) = self.apply(&job, result).await {
                tracing::error!(job = %job.id, error = %e, "outbox: cannot record job outcome at shutdown; it will run again");
            }
        }
    }

    fn spawn(&self, set: &mut JoinSet<JobDone>, job: OutboxJob) {
        let runner = self.runner.clone();
        set.spawn(async move {
            // A panicking runner must not lose track of its job: it counts as a transient
            // failure, so the job is retried with backoff and eventually gives up visibly.
            let result = AssertUnwindSafe(runner.run(&job))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(JobError::transient("job runner panicked")));
            JobDone { job, result }
        });
    }

    async fn apply(
        &self,
        job: &OutboxJob,
        result: Result<(), JobError>,
    ) -> Result<Applied, StoreError> {
        let now = self.clock.now();
        let reason = match result {
            Ok(()) => {
                self.outbox.complete(&job.id)?;
                if job.kind.repeat_is_visible() {
                    // The message is out; a crash before this mark reaches the disk would send
                    // it again. Left to sled's own write-back, that took up to half a second.
                    self.outbox.flush().await?;
                }
                tracing::debug!(job = %job.id, "outbox job done");
                return Ok(Applied::Completed);
            }
            Err(JobError::Transient { reason }) => {
                let deadline = job
                    .created_at
                    .checked_add(self.cfg.give_up_after)
                    .unwrap_or(Timestamp::MAX);
                if now < deadline {
                    let failures = job.attempts.saturating_add(1);
                    let delay = backoff_delay(&self.cfg, failures, rand::random::<f64>());
                    let next = now.checked_add(delay).unwrap_or(deadline).min(deadline);
                    tracing::warn!(job = %job.id, attempt = failures, retry_at = %next, %reason, "outbox job failed; will retry");
                    self.outbox.reschedule(&job.id, next, &reason)?;
                    return Ok(Applied::Retried);
                }
                format!(
                    "gave up after {} attempts: {reason}",
                    job.attempts.saturating_add(1)
                )
            }
            Err(JobError::Permanent { reason }) => reason,
        };
        tracing::error!(job = %job.id, %reason, "outbox job gave up");
        self.outbox.park(&job.id, ParkReason::GaveUp, &reason)?;
        self.audit.append(&AuditRecord::new(
            now,
            Some(job.order_id.clone()),
            Actor::System,
            AuditEvent::JobGaveUp,
            format!("{}: {reason}", job.kind.key()),
        ))?;
        self.runner.gave_up(job, &reason).await;
        Ok(Applied::GaveUp)
    }
}

struct JobDone {
    job: OutboxJob,
    result: Result<(), JobError>,
}

/// `None` only if the task was cancelled (runtime shutting down): the job stays in the outbox
/// and runs again on the next start.
fn flatten(
    joined: Result<JobDone, tokio::task::JoinError>,
) -> Option<(OutboxJob, Result<(), JobError>)> {
    match joined {
        Ok(d) => Some((d.job, d.result)),
        Err(e) => {
            tracing::warn!(error = %e, "outbox job task did not finish; it will run again");
            None
        }
    }
}
