//! Simulated DingTalk OpenAPI: a real axum server on 127.0.0.1 answering the token, user,
//! robot-message, session-webhook, card, approval and work-notification endpoints the bot uses,
//! with the real auth checks, limits and error shapes (reference §0, §1, §4.2, §5, §6, §7, §8, §9).
//! Everything it receives is recorded so tests can assert on the wire. Where the reference does
//! not pin an error code down, the code chosen here is marked "sim-chosen".
use crate::clock::{SharedClock, SystemClock};
use crate::dingtalk::client::DingUser;
use crate::dingtalk::config::DingTalkConfig;
use crate::domain::ids::DingUserId;
use crate::secret::Secret;
use axum::Router;
use jiff::SignedDuration;
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

mod cards;
mod contacts;
mod oa;
mod response;
mod robot;
mod router;
mod state;
mod work_notice;

pub mod actor;
pub mod driver;
pub mod login;
pub mod stream;
pub use actor::{BotReply, ConvEntry, ConvKind, DriveError, EventAck, Forgery, Speaker};

pub use state::{
    FaultKind, RecordedCall, SimApproval, SimCard, SimChannel, SimDingTalkOptions, SimMessage,
    SimOpRecord, SESSION_WEBHOOK_TTL_MS,
};

use cards::string_map;
use router::handle;
use state::{Fault, Shared, Sim};

/// A running simulator; dropping it stops the server.
pub struct SimDingTalk {
    shared: Arc<Shared>,
    base_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimDingTalk {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

impl SimDingTalk {
    pub async fn start(opts: SimDingTalkOptions) -> std::io::Result<Self> {
        let base_clock: SharedClock = match &opts.clock {
            Some(c) => Arc::new(c.clone()),
            None => Arc::new(SystemClock),
        };
        let shared = Arc::new(Shared {
            opts,
            base_clock,
            offset_ms: AtomicI64::new(0),
            sim: Mutex::new(Sim::default()),
            bot_base_url: Mutex::new(None),
            http: reqwest::Client::new(),
            stamps: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .merge(login::routes(&shared))
            .fallback(handle)
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            shared,
            base_url: format!("http://{addr}"),
            shutdown: Some(tx),
            task,
        })
    }

    /// The timestamp DingTalk puts on its next signed push (robot message, card callback): the
    /// clock's reading, made distinct from every earlier stamp (see `Stamps`). Tests that sign
    /// their own pushes take it from here, so theirs and the simulator's never collide.
    pub fn stamp(&self) -> i64 {
        self.shared.stamps.next(self.shared.now_ms())
    }

    /// Serves both the new API and oapi paths, so it is both `api_base` and `oapi_base`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A `[dingtalk]` config pointing the bot at this simulator with matching credentials.
    pub fn dingtalk_config(&self) -> DingTalkConfig {
        DingTalkConfig {
            app_key: self.shared.opts.app_key.clone(),
            app_secret: Secret::new(self.shared.opts.app_secret.clone()),
            agent_id: Some(self.shared.opts.agent_id),
            api_base: self.base_url.clone(),
            oapi_base: self.base_url.clone(),
            corp_id: self.shared.opts.corp_id.clone(),
            callback_token: Secret::new(self.shared.opts.callback_token.clone()),
            callback_aes_key: Secret::new(self.shared.opts.callback_aes_key.clone()),
            callback_owner_key: self.shared.opts.callback_owner_key.clone(),
            card_callback_secret: Secret::new(self.shared.opts.card_api_secret.clone()),
            ..DingTalkConfig::default()
        }
    }

    pub fn options(&self) -> &SimDingTalkOptions {
        &self.shared.opts
    }

    /// Where the bot under test listens; used by helpers that push events to it.
    pub fn set_bot_base_url(&self, url: impl Into<String>) {
        *self
            .shared
            .bot_base_url
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(url.into());
    }
    pub fn bot_base_url(&self) -> Option<String> {
        self.shared
            .bot_base_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The sim's notion of now (base clock plus everything `advance` added).
    pub fn now_ms(&self) -> i64 {
        self.shared.now_ms()
    }
    pub fn advance(&self, by: SignedDuration) {
        self.shared
            .offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
    /// Invalidates every issued token, as if they had all expired.
    pub fn expire_tokens(&self) {
        let mut s = self.shared.lock();
        s.tokens.clear();
        s.current_token = None;
    }

    pub fn add_user(&self, user: DingUser) {
        self.shared
            .lock()
            .users
            .insert(user.userid.as_str().to_owned(), user);
    }
    /// A group chat the robot is a member of.
    pub fn add_group(&self, open_conversation_id: &str) {
        self.shared
            .lock()
            .groups
            .insert(open_conversation_id.to_owned());
    }
    /// Makes batchSend report this user in `flowControlledStaffIdList`.
    pub fn set_flow_controlled(&self, user: &DingUserId, on: bool) {
        let mut s = self.shared.lock();
        if on {
            s.flow_controlled.insert(user.as_str().to_owned());
        } else {
            s.flow_controlled.remove(user.as_str());
        }
    }
    /// Opens a session that never expires and returns its `sessionWebhook` URL.
    pub fn webhook_url_for(&self, session: &str) -> String {
        self.open_session(session, None)
    }

    /// Opens a session valid for `SESSION_WEBHOOK_TTL_MS` and returns the `sessionWebhook` URL
    /// and the `sessionWebhookExpiredTime` (ms) an inbound message would carry.
    pub fn session_webhook(&self, session: &str) -> (String, i64) {
        let expires = self.now_ms() + SESSION_WEBHOOK_TTL_MS;
        (self.open_session(session, Some(expires)), expires)
    }

    fn open_session(&self, session: &str, expires_ms: Option<i64>) -> String {
        {
            let mut s = self.shared.lock();
            s.sessions.entry(session.to_owned()).or_default();
            match expires_ms {
                Some(e) => s.session_expiry.insert(session.to_owned(), e),
                None => s.session_expiry.remove(session),
            };
        }
        let mut url = format!("{}/robot/sendBySession", self.base_url);
        url.push_str("?session=");
        url.push_str(
            &percent_encoding::utf8_percent_encode(session, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
        url
    }
    /// The next `n` calls whose path starts with `path_prefix` fail with `kind`.
    pub fn fail_next(&self, path_prefix: &str, n: u32, kind: FaultKind) {
        self.shared.lock().faults.push(Fault {
            prefix: path_prefix.to_owned(),
            remaining: n,
            kind,
            after_effect: false,
        });
    }

    /// The next `n` calls whose path starts with `path_prefix` are carried out as usual, but
    /// answer `kind` instead of their result: the answer lost after DingTalk acted (a start
    /// that created its instance, yet the caller saw a 500 or a reset).
    pub fn lose_next_response(&self, path_prefix: &str, n: u32, kind: FaultKind) {
        self.shared.lock().faults.push(Fault {
            prefix: path_prefix.to_owned(),
            remaining: n,
            kind,
            after_effect: true,
        });
    }

    /// An approval template the org has; once any is added, unknown codes are refused.
    pub fn add_process(&self, name: &str, process_code: &str) {
        self.shared
            .lock()
            .processes
            .insert(name.to_owned(), process_code.to_owned());
    }
    /// The form of a template added with `add_process`: the labels of its text components, as
    /// `forms/schemas/processCodes` returns them (reference §6.4). Without it the form is empty.
    pub fn set_process_form(&self, process_code: &str, labels: &[&str]) {
        self.shared.lock().process_forms.insert(
            process_code.to_owned(),
            labels.iter().map(|l| (*l).to_owned()).collect(),
        );
    }

    /// A card template the org has; once any is added, unknown template ids are refused with
    /// `param.templateNotExist` (the error DingTalk gives a wrong `cardTemplateId`).
    pub fn add_card_template(&self, template_id: &str) {
        self.shared
            .lock()
            .card_templates
            .insert(template_id.to_owned());
    }

    /// The URL and apiSecret registered for a card callback route key.
    pub fn card_callback(&self, route_key: &str) -> Option<(String, Option<String>)> {
        self.shared.lock().card_callbacks.get(route_key).cloned()
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.lock().calls.clone()
    }
    pub fn calls_to(&self, path: &str) -> Vec<RecordedCall> {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }
    /// Token requests on either endpoint.
    pub fn token_requests(&self) -> usize {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| c.path == "/v1.0/oauth2/accessToken" || c.path == "/gettoken")
            .count()
    }
    pub fn messages_to(&self, user: &DingUserId) -> Vec<SimMessage> {
        self.shared
            .lock()
            .robot_msgs
            .get(user.as_str())
            .cloned()
            .unwrap_or_default()
    }
    pub fn group_messages(&self, open_conversation_id: &str) -> Vec<SimMessage> {
        self.shared
            .lock()
            .group_msgs
            .get(open_conversation_id)
            .cloned()
            .unwrap_or_default()
    }
    pub fn webhook_messages(&self, session: &str) -> Vec<Value> {
        self.shared
            .lock()
            .sessions
            .get(session)
            .cloned()
            .unwrap_or_default()
    }
    pub fn card(&self, out_track_id: &str) -> Option<SimCard> {
        self.shared.lock().cards.get(out_track_id).cloned()
    }
    pub fn approval(&self, instance_id: &str) -> Option<SimApproval> {
        self.shared.lock().approvals.get(instance_id).cloned()
    }
    pub fn approvals(&self) -> Vec<SimApproval> {
        self.shared.lock().approvals.values().cloned().collect()
    }
    /// An approver decides a running instance; returns false if it was not running. When a
    /// bot URL is set, the `bpms_instance_change` finish event is pushed to it in the
    /// background, as DingTalk does; `decide_approval_and_push` awaits that push instead.
    pub fn decide_approval(&self, instance_id: &str, agree: bool) -> bool {
        self.decide_approval_as(instance_id, agree, None, None)
    }

    /// [`Self::decide_approval`] by approver `by` (default the first) with a comment, both
    /// recorded in the instance's `operationRecords`.
    pub fn decide_approval_as(
        &self,
        instance_id: &str,
        agree: bool,
        by: Option<&str>,
        remark: Option<&str>,
    ) -> bool {
        match self.shared.record_decision(instance_id, agree, by, remark) {
            Some(event) => {
                actor::spawn_push(&self.shared, event);
                true
            }
            None => false,
        }
    }
}
