//! The request → approval → grant workflow (application service over domain + store + adapters).
//!
//! `Workflow` owns the wiring every step needs (policy, orders, outbox, dialogs, DingTalk and
//! JumpServer clients, clock). It plays three roles, one file each:
//! - `chat` / `decide`: the `Dispatch` side. Handling an event only reads sled and commits ONE
//!   order transaction (state + outbox jobs + audit); read-only answers go back through the
//!   message's session webhook after the acknowledgement. No JumpServer call happens here.
//! - `jobs`: the `JobRunner` side. Every job is idempotent by the order's stable identities
//!   (permission name, card outTrackIds, the recorded OA instance), so a re-run after a crash
//!   changes nothing twice.
//! - `deadlines`: the `DeadlineHandler` side (reminders, approval timeouts, expiry).
mod chat;
mod deadlines;
mod decide;
mod jobs;
pub mod ports;
mod sync;

use crate::chat::order::OrderText;
use crate::chat::text::{self, Lang};
use crate::clock::SharedClock;
use crate::config::{CardsConfig, Config, MissingLogin, RevokeModeConfig, WorkflowConfig};
use crate::dispatch::{Dispatch, DispatchError, DispatchReply};
use crate::domain::ids::DingUserId;
use crate::domain::order::{ApprovalMode, Order};
use crate::domain::ownership::InstallationId;
use crate::domain::policy::{self, Policy};
use crate::domain::target::Target;
use crate::inbound::Inbound;
use futures::future::BoxFuture;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use ports::{
    Bastion, ChatPlatform, DialogStore, IndexStore, OrderStore, OutMessage, RevokeMode, StoreError,
};
use std::sync::Arc;

/// The DingTalk "user" recorded as the decider when an OA approval decided (the event does not
/// name the approver).
pub const OA_DECIDER: &str = "dingtalk-oa";

/// What the workflow reads from the configuration, resolved once.
#[derive(Clone, Debug)]
pub struct Settings {
    pub lang: Lang,
    pub tz: TimeZone,
    pub cards: CardsConfig,
    pub default_node: String,
    /// Shown in "access granted" messages.
    pub jms_web_url: Option<String>,
    /// Transient failures of a grant are retried until this long after the job was created.
    pub retry: SignedDuration,
    /// Platform of hosts the grant creates.
    pub platform: String,
    /// What a host without the role's login does to a request (`[workflow] missing_login`).
    pub missing_login: MissingLogin,
    /// How revoke, give-back and expiry end the permission.
    pub revoke_mode: RevokeMode,
    /// End the holder's live sessions on revoke and at expiry.
    pub end_sessions: bool,
    /// At most this many new orders per requester within the window; `None` = no limit.
    pub order_limit: Option<(u32, SignedDuration)>,
}

impl Settings {
    pub fn from_config(config: &Config, policy: &Policy) -> Self {
        let w: &WorkflowConfig = &config.workflow;
        let web = if w.jms_web_url.trim().is_empty() {
            config.jumpserver.url.trim().to_string()
        } else {
            w.jms_web_url.trim().to_string()
        };
        Self {
            lang: policy.lang,
            tz: policy.timezone.clone(),
            cards: config.cards.clone(),
            default_node: w.default_node.clone(),
            jms_web_url: (!web.is_empty()).then_some(web),
            retry: SignedDuration::from_hours(i64::try_from(w.retry_hours.max(1)).unwrap_or(24)),
            platform: config.jumpserver.default_platform.clone(),
            missing_login: w.missing_login,
            revoke_mode: match w.revoke_mode {
                RevokeModeConfig::Deactivate => RevokeMode::Deactivate,
                RevokeModeConfig::Delete => RevokeMode::Delete,
            },
            end_sessions: w.end_sessions,
            order_limit: (w.max_new_orders_per_user > 0 && w.rate_window_minutes > 0).then(|| {
                let mins = i64::try_from(w.rate_window_minutes).unwrap_or(i64::MAX / 60);
                (
                    w.max_new_orders_per_user,
                    SignedDuration::from_mins(mins.min(i64::MAX / 60)),
                )
            }),
        }
    }

    pub fn approval_template(&self) -> Option<&str> {
        Some(self.cards.approval_template_id.trim()).filter(|s| !s.is_empty())
    }

    pub fn request_template(&self) -> Option<&str> {
        Some(self.cards.request_template_id.trim()).filter(|s| !s.is_empty())
    }

    pub fn route_key(&self) -> Option<String> {
        Some(self.cards.callback_route_key.trim().to_string()).filter(|s| !s.is_empty())
    }
}

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
    pub chat: Arc<dyn ChatPlatform>,
    pub bastion: Arc<dyn Bastion>,
}

/// userid → display name, filled by `Workflow::name_of`. In memory only: after a restart it
/// refills on the next lookup, and until then the userid is shown.
#[derive(Debug, Default)]
pub struct NameCache(std::sync::Mutex<std::collections::HashMap<DingUserId, String>>);

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

    /// The node a host order is granted in, and whether the whole node is the grant.
    fn grant_scope(&self, targets: &[Target]) -> (String, Vec<String>, bool) {
        let leaf = |node: &str| {
            node.trim_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let mut node: Option<String> = None;
        let mut addresses: Vec<String> = Vec::new();
        let mut systems_with_node = 0usize;
        for t in targets {
            match t {
                Target::System(name) => {
                    if let Some(s) = self.policy.systems.iter().find(|s| &s.name == name) {
                        match &s.node {
                            Some(n) => {
                                systems_with_node += 1;
                                node.get_or_insert_with(|| leaf(n));
                            }
                            // A system without a node is granted host by host.
                            None => addresses.extend(s.hostnames.iter().cloned()),
                        }
                    }
                }
                other => {
                    addresses.push(other.to_string());
                    if node.is_none() {
                        if let Some(n) = self
                            .policy
                            .systems_for(std::slice::from_ref(other))
                            .iter()
                            .find_map(|s| s.node.clone())
                        {
                            node = Some(leaf(&n));
                        }
                    }
                }
            }
        }
        let node = node
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.settings.default_node.clone());
        // GrantPlan: empty addresses mean "grant the node itself".
        let whole = addresses.is_empty() && systems_with_node > 0;
        (node, addresses, whole)
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

/// Stripes of the per-user chat lock: enough that unrelated users rarely share one.
const USER_STRIPES: usize = 64;

/// The product's dispatcher: chat messages, card taps, OA results and org events.
pub struct WorkflowDispatcher {
    wf: Arc<Workflow>,
    /// One user's messages are handled one at a time (their dialog is read, advanced and
    /// written back); different users proceed in parallel. Decisions need no lock: they are
    /// compare-and-swap on the order.
    user_locks: Vec<std::sync::Mutex<()>>,
}

impl WorkflowDispatcher {
    pub fn new(wf: Arc<Workflow>) -> Self {
        Self {
            wf,
            user_locks: (0..USER_STRIPES)
                .map(|_| std::sync::Mutex::new(()))
                .collect(),
        }
    }

    fn user_lock(&self, user: Option<&DingUserId>) -> Option<std::sync::MutexGuard<'_, ()>> {
        use std::hash::{Hash, Hasher};
        let user = user?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        user.as_str().hash(&mut h);
        let i = usize::try_from(h.finish() % USER_STRIPES as u64).unwrap_or(0);
        self.user_locks
            .get(i)
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn retry(e: StoreError) -> DispatchError {
    DispatchError::Retry(e.to_string())
}

impl Dispatch for WorkflowDispatcher {
    fn handle(&self, event: Inbound) -> BoxFuture<'_, Result<DispatchReply, DispatchError>> {
        Box::pin(async move {
            let wf = &self.wf;
            match event {
                Inbound::Chat(msg) => {
                    // Held across synchronous work only (no await inside on_chat).
                    let _guard = self.user_lock(msg.sender_staff_id.as_ref());
                    wf.on_chat(msg).map(|_| DispatchReply::None)
                }
                Inbound::CardAction(a) => {
                    // A request form submit creates an order like a chat message does, so it
                    // takes the same per-user lock: the "identical open request" and rate-limit
                    // checks must not race the same user's message. Approval taps need none.
                    let form = a.out_track_id.starts_with(chat::FORM_PREFIX);
                    let _guard = form.then(|| self.user_lock(Some(&a.user_id))).flatten();
                    wf.on_card(a)
                }
                Inbound::Approval(a) => wf.on_approval(a).map(|_| DispatchReply::None),
                Inbound::Org(o) => wf.on_org(o).map(|_| DispatchReply::None),
                Inbound::Other { event_type, .. } => {
                    tracing::debug!(%event_type, "event ignored");
                    Ok(DispatchReply::None)
                }
            }
        })
    }
}

/// Approval mode of the domain from the policy's.
fn order_mode(p: &Policy) -> ApprovalMode {
    match p.approval_mode {
        policy::ApprovalMode::Card => ApprovalMode::Card,
        policy::ApprovalMode::Oa => ApprovalMode::Oa,
    }
}
