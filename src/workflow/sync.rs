//! `/sync` and `/who-has` over the local JumpServer index: the command side (enqueue the one
//! sync job; answer from the index, falling back to a live query before the first sync) and
//! the job that walks JumpServer and swaps in a new index generation.
use super::ports::{BastionError, OutMessage, OutboxJob};
use super::{retry, Workflow};
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::audit::Actor;
use crate::domain::ids::DingUserId;
use crate::domain::inventory::{IndexStats, IndexedHost};
use crate::domain::order::State;
use crate::domain::target::{self, Target};
use crate::worker::outbox::JobError;
use std::collections::BTreeSet;

/// Transient JumpServer failures are retried this many times before the admin is told the sync
/// failed (the previous index stays in use either way).
const SYNC_ATTEMPTS: u32 = 3;

/// Hosts named per grant in `/who-has <user>`.
const HOSTS_PER_GRANT: usize = 10;

fn sync_error(e: &BastionError, attempts: u32) -> Option<JobError> {
    (e.is_transient() && attempts + 1 < SYNC_ATTEMPTS).then(|| JobError::transient(e.to_string()))
}

impl Workflow {
    // ------------------------------------------------------------------ commands ----------

    /// `/sync` (admin): queues the one sync job; a second `/sync` before it finished joins it.
    pub(super) fn sync_cmd(&self, sender: &DingUserId) -> Result<String, DispatchError> {
        let job = OutboxJob::sync(sender.clone(), self.now());
        if self.orders.enqueue(&job).map_err(retry)? {
            Ok(text::sync_started(self.lang()))
        } else {
            Ok(text::sync_already_running(self.lang()))
        }
    }

    /// `/who-has` (admin) from the index; `None` when the index was never built (the caller
    /// asks JumpServer live instead).
    /// `/who-has` from the index. Only users who can connect now (active, not expired) are
    /// listed unless `all`, which marks the others: JumpServer keeps a disabled user's grants
    /// "valid" (transcript 168), so validity alone would list people who cannot log in.
    pub(super) fn who_has_indexed(
        &self,
        subject: &str,
        all: bool,
    ) -> Result<Option<String>, DispatchError> {
        let Some(stats) = self.index.stats().map_err(retry)? else {
            return Ok(None);
        };
        let subject = subject.trim();
        let (lang, tz, now) = (self.lang(), &self.settings.tz, self.now());
        let is_address = target::classify(subject).is_ok_and(|t| t.is_address());
        if !is_address {
            if let Some(access) = self.index.user_access(subject, now).map_err(retry)? {
                if !access.user.is_active && !all {
                    return Ok(Some(text::who_has_user_disabled(
                        lang,
                        &access.user.username,
                    )));
                }
                // One line per grant: a node grant can cover hundreds of hosts.
                let whats: Vec<(String, _)> = access
                    .grants
                    .iter()
                    .map(|g| {
                        let shown: Vec<String> = g
                            .hosts
                            .iter()
                            .take(HOSTS_PER_GRANT)
                            .map(|h| format!("{} ({})", h.name, h.address))
                            .collect();
                        (text::hosts_summary(lang, &shown, g.hosts.len()), g)
                    })
                    .collect();
                let rows: Vec<text::LiveAccess<'_>> = whats
                    .iter()
                    .map(|(what, g)| text::LiveAccess {
                        who: &g.permission_name,
                        what,
                        accounts: self.text().logins(&g.accounts),
                        until: g.date_expired,
                    })
                    .collect();
                return Ok(Some(text::who_has_indexed(
                    lang,
                    subject,
                    &rows,
                    stats.synced_at,
                    tz,
                )));
            }
        }
        let hosts = self.index.hosts_matching(subject).map_err(retry)?;
        if hosts.is_empty() && !is_address {
            let unknown = text::who_has_unknown(lang, subject, stats.synced_at, tz);
            return Ok(Some(
                match self.bot_orders_text(subject, &hosts, false)? {
                    Some(orders) => format!("{unknown}\n\n{orders}"),
                    None => unknown,
                },
            ));
        }
        let orders = self
            .bot_orders_text(subject, &hosts, true)?
            .unwrap_or_default();
        let ids: BTreeSet<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
        let addresses: BTreeSet<&str> = if hosts.is_empty() {
            BTreeSet::from([subject])
        } else {
            hosts.iter().map(|h| h.address.as_str()).collect()
        };
        let mut reach = Vec::new();
        for a in addresses {
            reach.extend(
                self.index
                    .who_can_reach(a, now)
                    .map_err(retry)?
                    .into_iter()
                    .filter(|r| ids.is_empty() || ids.contains(r.host.id.as_str())),
            );
        }
        let total = reach.len();
        reach.retain(|r| all || r.user.is_active);
        let hidden = total - reach.len();
        let whos: Vec<String> = reach
            .iter()
            .map(|r| text::user_marked(lang, &r.user.display(), r.user.is_active))
            .collect();
        let rows: Vec<text::LiveAccess<'_>> = reach
            .iter()
            .zip(&whos)
            .map(|(r, who)| text::LiveAccess {
                who,
                what: &r.permission_name,
                accounts: self.text().logins(&r.accounts),
                until: r.date_expired,
            })
            .collect();
        let mut answer = text::who_has_indexed(lang, subject, &rows, stats.synced_at, tz);
        if hidden > 0 {
            answer.push('\n');
            answer.push_str(&text::who_has_hidden(lang, hidden));
        }
        Ok(Some(format!("{answer}\n\n{orders}")))
    }

    /// The bot's own active orders touching `subject` (or the hosts it names), in words;
    /// `None` when there are none and `always` is off (the subject may not be a host at all).
    pub(super) fn bot_orders_text(
        &self,
        subject: &str,
        hosts: &[IndexedHost],
        always: bool,
    ) -> Result<Option<String>, DispatchError> {
        let mut names: BTreeSet<String> = BTreeSet::from([subject.to_lowercase()]);
        for h in hosts {
            names.insert(h.address.to_lowercase());
            names.insert(h.name.to_lowercase());
        }
        let touches = |t: &Target| match t {
            Target::System(s) => self
                .policy
                .systems
                .iter()
                .filter(|x| &x.name == s)
                .any(|x| {
                    names.contains(&x.name.to_lowercase())
                        || x.hostnames
                            .iter()
                            .any(|h| names.contains(&h.to_lowercase()))
                }),
            other => names.contains(&other.to_string().to_lowercase()),
        };
        let active = self.orders.list_by_state(State::Active).map_err(retry)?;
        let matching: Vec<_> = active
            .iter()
            .map(|o| (o, self.targets_of(o)))
            .filter(|(_, ts)| ts.iter().any(touches))
            .collect();
        let words = self.text();
        let views: Vec<text::StatusView<'_>> = matching
            .iter()
            .map(|(o, ts)| words.status_view(o, ts))
            .collect();
        if views.is_empty() && !always {
            return Ok(None);
        }
        Ok(Some(text::who_has_bot_orders(
            self.lang(),
            &views,
            &self.settings.tz,
        )))
    }

    // ------------------------------------------------------------------ the job ----------

    /// Walks JumpServer (users, nodes, hosts, permissions with their relations), writes a new
    /// index generation and swaps it in, then tells the admin. Nothing is swapped unless the
    /// whole walk succeeded, so a failure or crash leaves the previous generation in use.
    pub(super) async fn run_sync(
        &self,
        job: &OutboxJob,
        requested_by: &DingUserId,
    ) -> Result<(), JobError> {
        let started = self.now();
        let snap = match self.bastion.inventory().await {
            Ok(s) => s,
            Err(e) => {
                if let Some(err) = sync_error(&e, job.attempts) {
                    return Err(err);
                }
                tracing::warn!(error = %e, "sync failed; previous index kept");
                let actor = Actor::User(requested_by.clone());
                if let Err(se) = self.index.record_failure(self.now(), actor, &e.to_string()) {
                    tracing::error!(error = %se, "could not audit the failed sync");
                }
                let m = text::sync_failed(self.lang(), &e.user_message(self.en()));
                self.tell_admin(requested_by, m).await;
                return Ok(());
            }
        };
        let done = self.now();
        let ms = u64::try_from(done.duration_since(started).as_millis()).unwrap_or(0);
        let stats = self
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
        let m = text::sync_done(self.lang(), &sync_view(&stats), &self.settings.tz);
        self.tell_admin(requested_by, m).await;
        Ok(())
    }

    /// A failed report is logged, not retried: re-running the job would walk JumpServer again
    /// for a message, and the index itself is already in place.
    async fn tell_admin(&self, admin: &DingUserId, m: String) {
        if let Err(e) = self
            .chat
            .send_to_users(std::slice::from_ref(admin), &OutMessage::text(m))
            .await
        {
            tracing::warn!(error = %e, "sync report not delivered");
        }
    }
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
