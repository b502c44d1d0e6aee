//! The request → approval → grant workflow: the application layer between the domain (pure rules
//! and vocabulary) and the adapters, which it reaches only through `ports`.
//!
//! `Workflow` is the context every handler takes: settings, policy, the ports, the clock, the
//! name cache. The handlers are free functions, one file each:
//! - `events/`: the `Dispatch` side (`dispatcher`): a chat message, a card tap, a request form, an
//!   OA result, an org event. Handling one only reads the store and commits ONE order
//!   transaction (state + outbox jobs + audit); read-only answers go back on the message's
//!   session webhook after the acknowledgement. No JumpServer call happens here.
//! - `commands/`: one file per chat command, reached from `events::message`; each returns a typed
//!   `Answer`.
//! - `decision`: the one compare-and-swap an approver's decision is, by text or by card.
//! - `jobs/`: the `JobRunner` side, one file per job. Every job is idempotent by the order's
//!   stable identities (permission name, card outTrackIds, the recorded OA instance), so a
//!   re-run after a crash changes nothing twice.
//! - `deadlines`: the `DeadlineHandler` side (reminders, approval timeouts, expiry).
//!
//! Dependencies run one way: `dispatcher` → `events` → `commands` → `decision`; `jobs` and
//! `deadlines` → `events::oa` (an OA state found by polling is applied like a pushed result).
mod commands;
mod deadlines;
mod decision;
pub mod dispatcher;
mod events;
mod jobs;
pub mod journal;
pub mod ports;
mod settings;

pub use settings::Settings;

use crate::chat::card::CardVars;
use crate::chat::order::OrderText;
use crate::chat::text::{self, Lang};
use crate::clock::SharedClock;
use crate::dispatch::DispatchError;
use crate::domain::ids::DingUserId;
use crate::domain::jobs::JobKind;
use crate::domain::order::{ApprovalMode, Order};
use crate::domain::ownership::InstallationId;
use crate::domain::policy::{self, Policy};
use crate::domain::target::Target;
use jiff::Timestamp;
use ports::{
    AuditTrail, Bastion, ChatPlatform, DialogStore, IndexStore, OrderStore, OutMessage, StoreError,
};
use std::sync::Arc;

/// The DingTalk "user" recorded as the decider when an OA approval decided (the event does not
/// name the approver).
pub const OA_DECIDER: &str = "dingtalk-oa";

/// The workflow service. Shared (`Arc`) by the dispatcher, the outbox runner and the scheduler.
/// Its dependencies are ports (see `ports`); nothing here names an adapter.
pub struct Workflow {
    settings: Settings,
    policy: Arc<Policy>,
    /// Orders with their outbox jobs and audit, one transaction per change.
    orders: Arc<dyn OrderStore>,
    /// Per-user multi-turn dialogs.
    dialogs: Arc<dyn DialogStore>,
    /// The local JumpServer index `/sync` builds and `/who-has` reads.
    index: Arc<dyn IndexStore>,
    /// The audit trail, read by `/history`.
    audit: Arc<dyn AuditTrail>,
    /// Messages, cards, OA approvals, the directory.
    chat: Arc<dyn ChatPlatform>,
    /// JumpServer: grants, read-back, revocation, users, inventory.
    bastion: Arc<dyn Bastion>,
    clock: SharedClock,
    /// Display names seen in directory lookups, so paths that must not do IO (the card-tap
    /// response, due within DingTalk's 2 s) can still show 李四 rather than `lisi`.
    names: NameCache,
    /// This installation's id: new orders carry it, and with it the names and ownership
    /// markers of what they create in JumpServer.
    installation: InstallationId,
}

/// The ports a workflow runs on (`app` plugs the adapters in).
pub struct Ports {
    pub orders: Arc<dyn OrderStore>,
    pub dialogs: Arc<dyn DialogStore>,
    pub index: Arc<dyn IndexStore>,
    pub audit: Arc<dyn AuditTrail>,
    pub chat: Arc<dyn ChatPlatform>,
    pub bastion: Arc<dyn Bastion>,
}

/// userid → display name, filled by `Workflow::name_of`. In memory only: after a restart it
/// refills on the next lookup, and until then the userid is shown.
#[derive(Debug, Default)]
struct NameCache(std::sync::Mutex<std::collections::HashMap<DingUserId, String>>);

impl NameCache {
    /// An org's directory is small, but a bound keeps a long-running process honest.
    const MAX: usize = 10_000;

    pub fn get(&self, user: &DingUserId) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
    }

    fn put(&self, user: &DingUserId, name: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= Self::MAX {
            m.clear();
        }
        m.insert(user.clone(), name.to_owned());
    }
}

impl Workflow {
    pub fn new(
        settings: Settings,
        policy: Arc<Policy>,
        ports: Ports,
        clock: SharedClock,
        installation: InstallationId,
    ) -> Self {
        Self {
            settings,
            policy,
            orders: ports.orders,
            dialogs: ports.dialogs,
            index: ports.index,
            audit: ports.audit,
            chat: ports.chat,
            bastion: ports.bastion,
            clock,
            names: NameCache::default(),
            installation,
        }
    }

    pub fn lang(&self) -> Lang {
        self.settings.lang
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn en(&self) -> bool {
        self.lang() == Lang::En
    }

    /// How this workflow describes orders (language, time zone, policy).
    fn text(&self) -> OrderText<'_> {
        OrderText {
            lang: self.lang(),
            tz: &self.settings.tz,
            policy: &self.policy,
        }
    }

    /// The targets of an order (systems recognised in orders stored before targets were typed).
    fn targets_of(&self, o: &Order) -> Vec<Target> {
        self.text().targets(o)
    }

    /// The JumpServer accounts the order's role grants.
    fn role_accounts(&self, o: &Order) -> Vec<String> {
        self.policy.role(OrderText::role(o)).accounts.clone()
    }

    /// The clean-up an order needs when it closes before a decision (withdrawn, timed out, its
    /// requester gone): its OA instance withdrawn, its cards brought to the new state.
    fn closing_jobs(&self, o: &Order) -> Vec<JobKind> {
        let mut jobs = Vec::new();
        if o.approval_mode == ApprovalMode::Oa {
            jobs.push(JobKind::TerminateOaApproval);
        }
        if self.settings.approval_template().is_some() {
            jobs.push(JobKind::UpdateCards);
        }
        jobs
    }

    /// Display name of a DingTalk user for messages; falls back to the userid.
    async fn name_of(&self, user: &DingUserId) -> String {
        if user.as_str() == OA_DECIDER {
            return text::oa_decider(self.lang()).to_string();
        }
        match self.chat.look_up_user(user).await {
            Ok(u) if !u.name.is_empty() => {
                self.names.put(user, &u.name);
                u.name
            }
            _ => self
                .names
                .get(user)
                .unwrap_or_else(|| user.as_str().to_string()),
        }
    }

    /// Display name of whoever decided or closed `o`, looked up in the directory.
    async fn decider_display_name(&self, o: &Order) -> String {
        match o
            .decided_by
            .as_ref()
            .or(o.closure.as_ref().and_then(|c| c.by.as_ref()))
        {
            Some(user) => self.name_of(user).await,
            None => text::system_actor(self.lang()).to_string(),
        }
    }

    fn decider_name(&self, o: &Order) -> String {
        match &o.decided_by {
            Some(d) if d.as_str() == OA_DECIDER => text::oa_decider(self.lang()).to_string(),
            Some(d) => self.names.get(d).unwrap_or_else(|| d.to_string()),
            None => match &o.closure {
                Some(c) => {
                    c.by.as_ref()
                        .map(|u| self.names.get(u).unwrap_or_else(|| u.to_string()))
                        .unwrap_or_else(|| text::system_actor(self.lang()).to_string())
                }
                None => text::system_actor(self.lang()).to_string(),
            },
        }
    }

    /// The approval card variables of `o` as it stands now. `decider` is the decider's display
    /// name when the caller could look it up (jobs); the tap response, which must answer within
    /// DingTalk's 2 s, shows a name seen before (else the userid) and the UpdateCards job
    /// replaces it with the looked-up name.
    fn approval_card_vars(&self, o: &Order, decider: Option<&str>) -> CardVars {
        let who = decider
            .map(str::to_owned)
            .unwrap_or_else(|| self.decider_name(o));
        self.text().card_vars(o, &who)
    }

    /// Replies on the message's session webhook, after the acknowledgement (a lost reply to a
    /// read-only question is harmless; a late acknowledgement is a redelivery).
    fn reply_later(&self, webhook: Option<String>, text: String) {
        let Some(webhook) = webhook else {
            tracing::info!("message without a session webhook; reply dropped");
            return;
        };
        let chat = self.chat.clone();
        tokio::spawn(async move {
            if let Err(e) = chat
                .reply_on_session(&webhook, &OutMessage::text(text))
                .await
            {
                tracing::warn!(error = %e, "webhook reply failed");
            }
        });
    }

    /// A direct 1:1 message that records nothing (e.g. "you may not approve this" to a tapper).
    fn tell_later(&self, user: DingUserId, text: String) {
        let chat = self.chat.clone();
        tokio::spawn(async move {
            if let Err(e) = chat.send_to_users(&[user], &OutMessage::text(text)).await {
                tracing::warn!(error = %e, "direct message failed");
            }
        });
    }
}

fn retry(e: StoreError) -> DispatchError {
    DispatchError::Retry(e.to_string())
}

/// Approval mode of the domain from the policy's.
fn order_mode(p: &Policy) -> ApprovalMode {
    match p.approval_mode {
        policy::ApprovalMode::Card => ApprovalMode::Card,
        policy::ApprovalMode::Oa => ApprovalMode::Oa,
    }
}
