//! The simulated DingTalk acting towards the bot, as the real platform does: directory users send
//! signed robot messages (with a session webhook the sim serves), tap cards (signed callbacks,
//! the response applied to the card), and the platform pushes encrypted, signed events
//! (`bpms_instance_change` when an OA approval starts, is decided or is terminated). Every
//! exchange lands in one ordered conversation log so a test or `accessbot demo` can read what
//! each user saw. `forged_*` / raw helpers send what an attacker or a broken proxy would.
//!
//! Longer than 600 lines on purpose: every way the platform acts towards the bot (messages, taps,
//! pushes) shares the signing and the recorded answers (simulator only, feature `sandbox`).
use super::{Shared, Sim, SimCard, SimDingTalk};
use crate::dingtalk::crypto::CallbackCrypto;
use crate::dingtalk::sign::{
    card_sign, robot_sign, CARD_SIGN_HEADER, CARD_TIMESTAMP_HEADER, ROBOT_SIGN_HEADER,
    ROBOT_TIMESTAMP_HEADER,
};
use crate::domain::ids::DingUserId;
use crate::sandbox::dingtalk::driver::{card_callback_body, robot_text_message, RobotSender};
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// A request older than this is what `Forgery::StaleTimestamp` sends: two hours, past every
/// window the bot accepts (robot 1 h, events 1 h, cards 5 min).
pub const STALE_BY_MS: i64 = 2 * 60 * 60 * 1000;

#[derive(Debug, Error)]
pub enum DriveError {
    #[error("no bot URL set: call set_bot_base_url first")]
    NoBot,
    #[error("`{0}` is not a user in the simulated directory")]
    UnknownUser(String),
    #[error("card `{card}` calls back through route key `{route_key}`, which nobody registered")]
    NoCallbackRoute { card: String, route_key: String },
    #[error("not a dtmd://dingtalkclient/sendMessage link: {0}")]
    NotADtmdLink(String),
    #[error("request to the bot failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("callback crypto is misconfigured: {0}")]
    Crypto(String),
    #[error("the bot acknowledged the push but not with a valid encrypted `success`: {0}")]
    BadAck(String),
}

/// The bot's HTTP answer to something the sim sent.
#[derive(Clone, Debug, Serialize)]
pub struct BotReply {
    pub status: u16,
    /// JSON body; a body that is not JSON is kept as a string.
    pub body: Value,
}

/// The bot's answer to an event push. `acknowledged` is true only for HTTP 200 with a correctly
/// signed encrypted `success` (reference §2.4), which is what stops DingTalk redelivering.
#[derive(Clone, Debug, Serialize)]
pub struct EventAck {
    pub status: u16,
    pub body: Value,
    pub acknowledged: bool,
}

/// How a forged request is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forgery {
    /// Signed with the wrong secret.
    BadSignature,
    /// Correctly signed, but with a timestamp `STALE_BY_MS` in the past (a replay).
    StaleTimestamp,
    /// No signature at all.
    Unsigned,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Speaker {
    /// A directory user (userid).
    User(String),
    Bot,
    /// The platform itself (OA approval notices).
    DingTalk,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ConvKind {
    /// A user typed a message to the robot.
    UserText,
    /// A user tapped a card button.
    CardTap {
        out_track_id: String,
    },
    /// The bot answered through the session webhook.
    Reply,
    /// The bot sent a 1:1 robot message (`oToMessages/batchSend`).
    Message,
    GroupMessage,
    WorkNotice,
    CardCreated {
        out_track_id: String,
    },
    CardUpdated {
        out_track_id: String,
    },
    OaStarted {
        instance_id: String,
    },
    OaDecided {
        instance_id: String,
    },
    OaTerminated {
        instance_id: String,
    },
}

/// One line of the conversation log.
#[derive(Clone, Debug, Serialize)]
pub struct ConvEntry {
    /// Position in the whole log (starts at 1).
    pub seq: u64,
    pub at_ms: i64,
    /// Whose chat it happened in: a userid (1:1 chat, OA notices) or a group conversation id.
    pub chat: String,
    pub speaker: Speaker,
    pub kind: ConvKind,
    /// What the reader sees, rendered to plain text.
    pub text: String,
}

impl ConvEntry {
    pub fn from_bot(&self) -> bool {
        self.speaker == Speaker::Bot
    }
}

/// A robot message prepared once and deliverable several times (a redelivery carries the same
/// `msgId`, with a fresh signature).
#[derive(Clone, Debug)]
pub struct RobotDelivery {
    pub msg_id: String,
    pub body: Value,
}

/// One event push the sim made on its own (approval start / finish / terminate).
#[derive(Clone, Debug, Serialize)]
pub struct PushRecord {
    pub event: Value,
    /// `Ok(acknowledged)` of the last attempt, or its error.
    pub outcome: Result<bool, String>,
    /// Deliveries made: DingTalk pushes again while the bot does not acknowledge.
    pub attempts: u32,
}

/// Deliveries of one event before the sim gives up (DingTalk keeps failed pushes for days;
/// a test needs only to see that a refusal leads to a redelivery).
pub const PUSH_ATTEMPTS: u32 = 3;
/// Pause between redeliveries (DingTalk's interval is undocumented).
pub const REDELIVERY_PAUSE: Duration = Duration::from_millis(50);

impl Sim {
    pub(super) fn log_entry(
        &mut self,
        chat: &str,
        speaker: Speaker,
        kind: ConvKind,
        text: String,
        now: i64,
    ) {
        let seq = self.log.len() as u64 + 1;
        self.log.push(ConvEntry {
            seq,
            at_ms: now,
            chat: chat.to_owned(),
            speaker,
            kind,
            text,
        });
    }

    /// Logs a card's creation or update in the chat of every target it was delivered to.
    pub(super) fn log_card(&mut self, track: &str, created: bool, now: i64) {
        let Some(card) = self.cards.get(track).cloned() else {
            return;
        };
        for chat in card_targets(&card) {
            let kind = if created {
                ConvKind::CardCreated {
                    out_track_id: track.to_owned(),
                }
            } else {
                ConvKind::CardUpdated {
                    out_track_id: track.to_owned(),
                }
            };
            let text = if created {
                render_card(&card, &chat)
            } else {
                render_card_update(&card, &chat)
            };
            self.log_entry(&chat, Speaker::Bot, kind, text, now);
        }
    }
}

/// The user or group ids in a card's `openSpaceId` (`dtv1.card//IM_ROBOT.u1;IM_GROUP.cid`).
fn card_targets(card: &SimCard) -> Vec<String> {
    card.open_space_id
        .trim_start_matches("dtv1.card//")
        .split(';')
        .filter_map(|p| p.split_once('.').map(|(_, id)| id.to_owned()))
        .filter(|id| !id.is_empty())
        .collect()
}

/// Renders a card as its reader sees it: heading, the request's facts, the status.
pub fn render_card(card: &SimCard, reader: &str) -> String {
    let mut vars = card.params.clone();
    if let Some(p) = card.private.get(reader) {
        vars.extend(p.clone());
    }
    let get = |k: &str| vars.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mut out = format!(
        "[卡片] {}",
        get("title").unwrap_or(card.template_id.as_str())
    );
    for (key, label) in [
        ("order_id", "单号"),
        ("jms_username", "JumpServer 账号"),
        ("targets", "主机"),
        ("role_label", "角色"),
        ("duration_text", "时长"),
        ("reason", "原因"),
        ("status_text", "状态"),
        ("decided_by", "处理人"),
        ("reject_reason", "拒绝原因"),
    ] {
        if let Some(v) = get(key) {
            out.push_str(&format!("\n  {label}：{v}"));
        }
    }
    if get("buttons_visible") == Some("true") {
        out.push_str("\n  [同意] [拒绝]");
    }
    out
}

/// An updated card in one line: heading, status and who decided.
pub fn render_card_update(card: &SimCard, reader: &str) -> String {
    let mut vars = card.params.clone();
    if let Some(p) = card.private.get(reader) {
        vars.extend(p.clone());
    }
    let get = |k: &str| vars.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mut out = format!(
        "[卡片] {}",
        get("title").unwrap_or(card.template_id.as_str())
    );
    for (key, label) in [
        ("order_id", "单号"),
        ("status_text", "状态"),
        ("decided_by", "处理人"),
        ("reject_reason", "拒绝原因"),
    ] {
        if let Some(v) = get(key) {
            out.push_str(&format!(" · {label}：{v}"));
        }
    }
    out
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// A session-webhook reply body as plain text.
pub fn render_webhook(body: &Value) -> String {
    match str_at(body, "/msgtype") {
        "text" => str_at(body, "/text/content").to_owned(),
        "markdown" => str_at(body, "/markdown/text").to_owned(),
        "actionCard" => {
            let mut out = str_at(body, "/actionCard/text").to_owned();
            let single = str_at(body, "/actionCard/singleTitle");
            if !single.is_empty() {
                out.push_str(&format!("\n  [{single}]"));
            }
            if let Some(btns) = body.pointer("/actionCard/btns").and_then(Value::as_array) {
                let titles: Vec<String> = btns
                    .iter()
                    .map(|b| format!("[{}]", str_at(b, "/title")))
                    .collect();
                out.push_str(&format!("\n  {}", titles.join(" ")));
            }
            out
        }
        other => format!("({other})"),
    }
}

/// A robot API message (`msgKey` + decoded `msgParam`) as plain text.
pub fn render_robot_msg(key: &str, param: &Value) -> String {
    match key {
        "sampleText" => str_at(param, "/content").to_owned(),
        "sampleMarkdown" => str_at(param, "/text").to_owned(),
        "sampleActionCard" => format!(
            "{}\n  [{}]",
            str_at(param, "/text"),
            str_at(param, "/singleTitle")
        ),
        k if k.starts_with("sampleActionCard") => {
            let mut out = str_at(param, "/text").to_owned();
            let titles: Vec<String> = (1..=5)
                .map(|i| str_at(param, &format!("/actionTitle{i}")))
                .filter(|t| !t.is_empty())
                .map(|t| format!("[{t}]"))
                .collect();
            out.push_str(&format!("\n  {}", titles.join(" ")));
            out
        }
        other => format!("({other})"),
    }
}

/// A work notification's `msg` as plain text.
pub fn render_work_notice(kind: &str, msg: &Value) -> String {
    match kind {
        "text" => str_at(msg, "/content").to_owned(),
        "markdown" => str_at(msg, "/text").to_owned(),
        "action_card" => str_at(msg, "/markdown").to_owned(),
        other => format!("({other})"),
    }
}

/// The decrypted `bpms_instance_change` event DingTalk pushes for an instance (reference §2.7).
pub fn approval_event(
    corp_id: &str,
    a: &super::SimApproval,
    kind: &str,
    result: Option<&str>,
    now: i64,
) -> Value {
    let mut e = json!({
        "EventType": "bpms_instance_change",
        "EventTime": now,
        "CorpId": corp_id,
        "BizId": format!("{now}"),
        "eventId": random_hex(),
        "processInstanceId": a.instance_id,
        "processCode": a.process_code,
        "type": kind,
        "title": format!("{} 提交的审批", a.originator),
        "staffId": a.originator,
        "createTime": a.create_ms,
        "url": format!("https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm#approval?procInsId={}", a.instance_id),
    });
    if let Some(r) = result {
        e["result"] = json!(r);
    }
    if kind != "start" {
        e["finishTime"] = json!(now);
    }
    e
}

fn random_hex() -> String {
    let n: u128 = rand::Rng::random(&mut rand::rng());
    format!("{n:032x}")
}

fn nonce() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 8)
}

impl Shared {
    fn crypto(&self) -> Result<CallbackCrypto, DriveError> {
        let o = &self.opts;
        let owner = if o.callback_owner_key.is_empty() {
            o.app_key.as_str()
        } else {
            o.callback_owner_key.as_str()
        };
        CallbackCrypto::new(&o.callback_token, &o.callback_aes_key, owner)
            .map_err(|e| DriveError::Crypto(e.to_string()))
    }

    fn bot(&self) -> Result<String, DriveError> {
        self.bot_base_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(DriveError::NoBot)
    }

    /// The timestamp a request carries: now (distinct from every earlier stamp), or the past
    /// for a replay.
    fn stamp(&self, forgery: Option<Forgery>) -> i64 {
        match forgery {
            Some(Forgery::StaleTimestamp) => self.now_ms() - STALE_BY_MS,
            _ => self.stamps.next(self.now_ms()),
        }
    }

    async fn post(
        &self,
        path_and_query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<BotReply, DriveError> {
        let url = format!("{}{path_and_query}", self.bot()?);
        self.post_url(&url, headers, body).await
    }

    async fn post_url(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<BotReply, DriveError> {
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.body(body).send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(BotReply { status, body })
    }

    /// Encrypts and signs `event` and pushes it; checks the reply is the encrypted `success`.
    pub(super) async fn push_event(
        &self,
        event: &Value,
        forgery: Option<Forgery>,
    ) -> Result<EventAck, DriveError> {
        let crypto = self.crypto()?;
        let encrypt = crypto.encrypt(&event.to_string());
        let r = self.push_encrypt(&crypto, &encrypt, forgery).await?;
        check_ack(&crypto, r)
    }

    async fn push_encrypt(
        &self,
        crypto: &CallbackCrypto,
        encrypt: &str,
        forgery: Option<Forgery>,
    ) -> Result<BotReply, DriveError> {
        let ts = self.stamp(forgery).to_string();
        let nonce = nonce();
        let sig = match forgery {
            Some(Forgery::BadSignature) => {
                let wrong = CallbackCrypto::new(
                    "not-the-token",
                    &self.opts.callback_aes_key,
                    crypto.owner_key(),
                )
                .map_err(|e| DriveError::Crypto(e.to_string()))?;
                wrong.signature(&ts, &nonce, encrypt)
            }
            _ => crypto.signature(&ts, &nonce, encrypt),
        };
        let query = {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            if forgery != Some(Forgery::Unsigned) {
                q.append_pair("msg_signature", &sig);
            }
            q.append_pair("timestamp", &ts)
                .append_pair("nonce", &nonce)
                .finish()
        };
        let body = json!({ "encrypt": encrypt }).to_string().into_bytes();
        self.post(&format!("/dingtalk/events?{query}"), &[], body)
            .await
    }
}

fn check_ack(crypto: &CallbackCrypto, r: BotReply) -> Result<EventAck, DriveError> {
    if r.status != 200 {
        return Ok(EventAck {
            status: r.status,
            body: r.body,
            acknowledged: false,
        });
    }
    let field = |k: &str| r.body.get(k).and_then(Value::as_str).unwrap_or("");
    let (sig, ts, nonce, enc) = (
        field("msg_signature"),
        field("timeStamp"),
        field("nonce"),
        field("encrypt"),
    );
    crypto
        .verify_signature(sig, ts, nonce, enc)
        .map_err(|e| DriveError::BadAck(format!("signature: {e}")))?;
    let plain = crypto
        .decrypt(enc)
        .map_err(|e| DriveError::BadAck(format!("decrypt: {e}")))?;
    if plain != "success" {
        return Err(DriveError::BadAck(format!(
            "decrypted to {} bytes, not `success`",
            plain.len()
        )));
    }
    Ok(EventAck {
        status: r.status,
        body: r.body,
        acknowledged: true,
    })
}

/// Pushes an event in the background (the platform's own pushes), when a bot is known.
pub(super) fn spawn_push(shared: &Arc<Shared>, event: Value) {
    if shared.bot().is_err() {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let sh = shared.clone();
    handle.spawn(async move {
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            let outcome = sh
                .push_event(&event, None)
                .await
                .map(|a| a.acknowledged)
                .map_err(|e| e.to_string());
            if outcome == Ok(true) || attempts >= PUSH_ATTEMPTS {
                break outcome;
            }
            tokio::time::sleep(REDELIVERY_PAUSE).await;
        };
        sh.lock().pushes.push(PushRecord {
            event,
            outcome,
            attempts,
        });
    });
}

fn headers_for(
    names: (&str, &str),
    ts: i64,
    forgery: Option<Forgery>,
    sign: impl Fn(&str, &str) -> String,
    secret: &str,
) -> Vec<(String, String)> {
    let ts = ts.to_string();
    let mut h = vec![(names.0.to_owned(), ts.clone())];
    match forgery {
        Some(Forgery::Unsigned) => {}
        Some(Forgery::BadSignature) => h.push((names.1.to_owned(), sign(&ts, "wrong-secret"))),
        _ => h.push((names.1.to_owned(), sign(&ts, secret))),
    }
    h
}

impl SimDingTalk {
    fn user_name(&self, user: &DingUserId) -> Result<String, DriveError> {
        self.shared
            .lock()
            .users
            .get(user.as_str())
            .map(|u| u.name.clone())
            .ok_or_else(|| DriveError::UnknownUser(user.as_str().to_owned()))
    }

    /// Builds what DingTalk posts when `user` writes `text` to the robot (1:1, or in `group`),
    /// opening the session webhook the reply will use and logging the user's line.
    pub fn prepare_message(
        &self,
        user: &DingUserId,
        group: Option<&str>,
        text: &str,
    ) -> Result<RobotDelivery, DriveError> {
        let nick = self.user_name(user)?;
        let now = self.now_ms();
        let msg_id = format!("msg{}", random_hex());
        let (_, expires) = self.session_webhook(&msg_id);
        let chat = group
            .map(str::to_owned)
            .unwrap_or_else(|| user.as_str().to_owned());
        let conversation_id = match group {
            Some(g) => g.to_owned(),
            None => format!("cidp2p-{}", user.as_str()),
        };
        let webhook_base = format!("{}/robot/sendBySession", self.base_url);
        let sender = RobotSender {
            staff_id: Some(user.as_str()),
            nick: &nick,
            group: group.is_some(),
            conversation_id: &conversation_id,
            session_webhook: &webhook_base,
            robot_code: &self.shared.opts.app_key,
        };
        let mut body = robot_text_message(&sender, &msg_id, text, now);
        body["sessionWebhookExpiredTime"] = json!(expires);
        {
            let mut s = self.shared.lock();
            s.session_owner.insert(msg_id.clone(), chat.clone());
            s.log_entry(
                &chat,
                Speaker::User(user.as_str().to_owned()),
                ConvKind::UserText,
                text.to_owned(),
                now,
            );
        }
        Ok(RobotDelivery { msg_id, body })
    }

    /// Posts a prepared message to the bot's robot route, freshly signed.
    pub async fn deliver(&self, m: &RobotDelivery) -> Result<BotReply, DriveError> {
        self.deliver_as(m, None).await
    }

    /// Posts a prepared message signed wrongly (or stale, or unsigned).
    pub async fn deliver_forged(
        &self,
        m: &RobotDelivery,
        forgery: Forgery,
    ) -> Result<BotReply, DriveError> {
        self.deliver_as(m, Some(forgery)).await
    }

    async fn deliver_as(
        &self,
        m: &RobotDelivery,
        forgery: Option<Forgery>,
    ) -> Result<BotReply, DriveError> {
        let h = headers_for(
            (ROBOT_TIMESTAMP_HEADER, ROBOT_SIGN_HEADER),
            self.shared.stamp(forgery),
            forgery,
            robot_sign,
            &self.shared.opts.app_secret,
        );
        self.shared
            .post("/dingtalk/robot", &h, m.body.to_string().into_bytes())
            .await
    }

    /// `user` writes `text` to the robot in their 1:1 chat.
    pub async fn user_says(&self, user: &DingUserId, text: &str) -> Result<BotReply, DriveError> {
        let m = self.prepare_message(user, None, text)?;
        self.deliver(&m).await
    }

    /// `user` @-mentions the robot in group `open_conversation_id`.
    pub async fn user_says_in_group(
        &self,
        user: &DingUserId,
        open_conversation_id: &str,
        text: &str,
    ) -> Result<BotReply, DriveError> {
        let m = self.prepare_message(user, Some(open_conversation_id), text)?;
        self.deliver(&m).await
    }

    /// `user` taps a `dtmd://dingtalkclient/sendMessage?content=…` link (reference §4.3): the
    /// client sends the decoded content as that user's message in their 1:1 chat.
    pub async fn tap_dtmd_link(
        &self,
        user: &DingUserId,
        link: &str,
    ) -> Result<BotReply, DriveError> {
        let bad = || DriveError::NotADtmdLink(link.chars().take(120).collect());
        let query = link
            .strip_prefix("dtmd://dingtalkclient/sendMessage?")
            .ok_or_else(bad)?;
        let content = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "content")
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(bad)?;
        self.user_says(user, &content).await
    }

    /// A correctly signed robot POST with an arbitrary body (malformed JSON, oversized, …).
    pub async fn post_robot_raw(&self, body: Vec<u8>) -> Result<BotReply, DriveError> {
        let h = headers_for(
            (ROBOT_TIMESTAMP_HEADER, ROBOT_SIGN_HEADER),
            self.shared.stamp(None),
            None,
            robot_sign,
            &self.shared.opts.app_secret,
        );
        self.shared.post("/dingtalk/robot", &h, body).await
    }

    /// `user` taps a card button: a signed callback to the URL registered for the card's route
    /// key (else the bot's `/dingtalk/cards`). A card update in the answer (reference §5.5) is
    /// applied to the card, as DingTalk would.
    pub async fn tap_card(
        &self,
        user: &DingUserId,
        out_track_id: &str,
        action_ids: &[&str],
        params: Map<String, Value>,
    ) -> Result<BotReply, DriveError> {
        self.tap_card_as(user, out_track_id, action_ids, params, None)
            .await
    }

    /// Like `tap_card`, with a forged signature or a stale timestamp.
    pub async fn tap_card_forged(
        &self,
        user: &DingUserId,
        out_track_id: &str,
        action_ids: &[&str],
        params: Map<String, Value>,
        forgery: Forgery,
    ) -> Result<BotReply, DriveError> {
        self.tap_card_as(user, out_track_id, action_ids, params, Some(forgery))
            .await
    }

    async fn tap_card_as(
        &self,
        user: &DingUserId,
        out_track_id: &str,
        action_ids: &[&str],
        params: Map<String, Value>,
        forgery: Option<Forgery>,
    ) -> Result<BotReply, DriveError> {
        let now = self.now_ms();
        let (url, secret) = {
            let mut s = self.shared.lock();
            // An HTTP-callback card calls the URL registered for its route key, signed with
            // that registration's apiSecret; unregistered, DingTalk has nowhere to send the tap.
            // A Stream-mode card (or an unknown one, for forged taps) goes to the bot's
            // `/dingtalk/cards`, since the bot under test listens over HTTP.
            let route = s
                .cards
                .get(out_track_id)
                .filter(|c| c.callback_type.as_deref() == Some("HTTP"))
                .and_then(|c| c.callback_route_key.clone());
            let registered = match route {
                Some(k) => match s.card_callbacks.get(&k).cloned() {
                    Some(r) => Some(r),
                    None => {
                        return Err(DriveError::NoCallbackRoute {
                            card: out_track_id.to_owned(),
                            route_key: k,
                        })
                    }
                },
                None => None,
            };
            let what = params
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_owned)))
                .collect::<Vec<_>>()
                .join(", ");
            // A forged tap is not something the user did; only genuine taps join their chat.
            if forgery.is_none() {
                s.log_entry(
                    user.as_str(),
                    Speaker::User(user.as_str().to_owned()),
                    ConvKind::CardTap {
                        out_track_id: out_track_id.to_owned(),
                    },
                    format!("（点击卡片按钮：{what}）"),
                    now,
                );
            }
            match registered {
                Some((url, secret)) => (Some(url), secret),
                None => (None, None),
            }
        };
        let secret = secret.unwrap_or_else(|| self.shared.opts.card_api_secret.clone());
        let url = match url {
            Some(u) => u,
            None => format!("{}/dingtalk/cards", self.shared.bot()?),
        };
        let h = headers_for(
            (CARD_TIMESTAMP_HEADER, CARD_SIGN_HEADER),
            self.shared.stamp(forgery),
            forgery,
            card_sign,
            &secret,
        );
        let mut body = card_callback_body(out_track_id, user.as_str(), action_ids, params);
        body["corpId"] = json!(self.shared.opts.corp_id);
        let r = self
            .shared
            .post_url(&url, &h, body.to_string().into_bytes())
            .await?;
        if r.status == 200 {
            self.apply_callback_update(user, out_track_id, &r.body);
        }
        Ok(r)
    }

    /// The operator's one-time `card/callbacks/register` (with `forceUpdate`): taps on cards
    /// created with `route_key` go to `url`, signed with `api_secret`.
    pub fn register_card_callback(&self, route_key: &str, url: &str, api_secret: &str) {
        self.shared.lock().card_callbacks.insert(
            route_key.to_owned(),
            (url.to_owned(), Some(api_secret.to_owned())),
        );
    }

    /// A correctly signed card callback with an arbitrary body.
    pub async fn post_card_raw(&self, body: Vec<u8>) -> Result<BotReply, DriveError> {
        let h = headers_for(
            (CARD_TIMESTAMP_HEADER, CARD_SIGN_HEADER),
            self.now_ms(),
            None,
            card_sign,
            &self.shared.opts.card_api_secret,
        );
        self.shared.post("/dingtalk/cards", &h, body).await
    }

    fn apply_callback_update(&self, user: &DingUserId, track: &str, body: &Value) {
        let public = super::string_map(body.pointer("/cardData/cardParamMap"));
        let private = super::string_map(body.pointer("/userPrivateData/cardParamMap"));
        if public.as_ref().is_none_or(|m| m.is_empty())
            && private.as_ref().is_none_or(|m| m.is_empty())
        {
            return;
        }
        let flag = |k: &str| {
            body.pointer(&format!("/cardUpdateOptions/{k}"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let now = self.now_ms();
        let mut s = self.shared.lock();
        let Some(card) = s.cards.get_mut(track) else {
            return;
        };
        if let Some(p) = public.filter(|m| !m.is_empty()) {
            if flag("updateCardDataByKey") {
                card.params.extend(p);
            } else {
                card.params = p;
            }
        }
        if let Some(p) = private.filter(|m| !m.is_empty()) {
            let slot = card.private.entry(user.as_str().to_owned()).or_default();
            if flag("updatePrivateDataByKey") {
                slot.extend(p);
            } else {
                *slot = p;
            }
        }
        card.update_count += 1;
        s.log_card(track, false, now);
    }

    /// Pushes a decrypted event JSON to the bot, encrypted and signed with a fresh timestamp
    /// and nonce. A 200 that is not the valid encrypted `success` is an error.
    pub async fn push_event(&self, event: &Value) -> Result<EventAck, DriveError> {
        self.shared.push_event(event, None).await
    }

    /// Pushes an event with a forged signature, a stale timestamp or none.
    pub async fn push_event_forged(
        &self,
        event: &Value,
        forgery: Forgery,
    ) -> Result<EventAck, DriveError> {
        self.shared.push_event(event, Some(forgery)).await
    }

    /// A correctly signed push whose `encrypt` is `encrypt` verbatim (bad padding, bad base64…).
    pub async fn push_raw_encrypt(&self, encrypt: &str) -> Result<BotReply, DriveError> {
        let crypto = self.shared.crypto()?;
        self.shared.push_encrypt(&crypto, encrypt, None).await
    }

    /// A POST to any bot path with exactly these headers and body.
    pub async fn post_to_bot(
        &self,
        path_and_query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<BotReply, DriveError> {
        self.shared.post(path_and_query, headers, body).await
    }

    /// The callback crypto the sim signs and encrypts pushes with.
    pub fn callback_crypto(&self) -> Result<CallbackCrypto, DriveError> {
        self.shared.crypto()
    }

    /// Decides a running OA instance and awaits the finish push to the bot. `Ok(None)` when the
    /// instance was not running (nothing pushed).
    pub async fn decide_approval_and_push(
        &self,
        instance_id: &str,
        agree: bool,
    ) -> Result<Option<EventAck>, DriveError> {
        self.decide_approval_as_and_push(instance_id, agree, None, None)
            .await
    }

    /// [`Self::decide_approval_and_push`] by approver `by` (default the first) with a comment,
    /// both recorded in the instance's `operationRecords`.
    pub async fn decide_approval_as_and_push(
        &self,
        instance_id: &str,
        agree: bool,
        by: Option<&str>,
        remark: Option<&str>,
    ) -> Result<Option<EventAck>, DriveError> {
        match self.shared.record_decision(instance_id, agree, by, remark) {
            Some(event) => self.push_event(&event).await.map(Some),
            None => Ok(None),
        }
    }

    /// The originator withdraws a running instance in DingTalk; awaits the terminate push.
    pub async fn terminate_approval_and_push(
        &self,
        instance_id: &str,
    ) -> Result<Option<EventAck>, DriveError> {
        let now = self.now_ms();
        let event = {
            let mut s = self.shared.lock();
            let Some(a) = s
                .approvals
                .get_mut(instance_id)
                .filter(|a| a.status == "RUNNING")
            else {
                return Ok(None);
            };
            a.status = "TERMINATED".into();
            a.finish_ms = Some(now);
            let a = a.clone();
            s.log_entry(
                &a.originator,
                Speaker::DingTalk,
                ConvKind::OaTerminated {
                    instance_id: a.instance_id.clone(),
                },
                "OA 审批已撤销".into(),
                now,
            );
            approval_event(&self.shared.opts.corp_id, &a, "terminate", None, now)
        };
        self.push_event(&event).await.map(Some)
    }

    /// What the console does when the callback URL is saved: pushes `check_url` and expects
    /// the encrypted `success`.
    pub async fn verify_callback_url(&self) -> Result<EventAck, DriveError> {
        self.push_event(&json!({"EventType": "check_url"})).await
    }

    /// Background pushes the sim made on its own, with their outcome.
    pub fn pushes(&self) -> Vec<PushRecord> {
        self.shared.lock().pushes.clone()
    }

    /// The whole conversation log, in order.
    pub fn conversation(&self) -> Vec<ConvEntry> {
        self.shared.lock().log.clone()
    }

    /// Entries after `seq` (0 = all).
    pub fn conversation_since(&self, seq: u64) -> Vec<ConvEntry> {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|e| e.seq > seq)
            .cloned()
            .collect()
    }

    /// Everything in `chat` (a userid or a group id), in order.
    pub fn chat(&self, chat: &str) -> Vec<ConvEntry> {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|e| e.chat == chat)
            .cloned()
            .collect()
    }

    /// What the bot said in `chat`: replies, messages, cards created and updated.
    pub fn bot_said(&self, chat: &str) -> Vec<ConvEntry> {
        self.chat(chat)
            .into_iter()
            .filter(|e| e.from_bot())
            .collect()
    }

    /// Cards delivered to `user`'s 1:1 chat, oldest first: (outTrackId, card).
    pub fn cards_for(&self, user: &DingUserId) -> Vec<(String, SimCard)> {
        let s = self.shared.lock();
        let mut created: Vec<(u64, String)> = s
            .log
            .iter()
            .filter(|e| e.chat == user.as_str())
            .filter_map(|e| match &e.kind {
                ConvKind::CardCreated { out_track_id } => Some((e.seq, out_track_id.clone())),
                _ => None,
            })
            .collect();
        created.sort();
        created
            .into_iter()
            .filter_map(|(_, t)| s.cards.get(&t).cloned().map(|c| (t, c)))
            .collect()
    }

    /// Polls `check` until it yields a value or `limit` passes. The bot works after it has
    /// acknowledged (outbox), so what it says arrives a little later than its HTTP answer.
    pub async fn wait_for<T>(
        &self,
        limit: Duration,
        mut check: impl FnMut(&SimDingTalk) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(v) = check(self) {
                return Some(v);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::dingtalk::SimDingTalkOptions;

    #[test]
    fn default_callback_keys_are_usable_and_the_ack_check_accepts_only_success() {
        let o = SimDingTalkOptions::default();
        let c = CallbackCrypto::new(&o.callback_token, &o.callback_aes_key, &o.app_key);
        let Ok(c) = c else { panic!("{c:?}") };
        let good = serde_json::to_value(c.success_reply("1700000000000", "n1")).unwrap_or_default();
        let r = check_ack(
            &c,
            BotReply {
                status: 200,
                body: good,
            },
        );
        assert!(
            matches!(
                r,
                Ok(EventAck {
                    acknowledged: true,
                    ..
                })
            ),
            "{r:?}"
        );
        let mut bad =
            serde_json::to_value(c.success_reply("1700000000000", "n1")).unwrap_or_default();
        bad["encrypt"] = json!(c.encrypt("failure"));
        assert!(matches!(
            check_ack(
                &c,
                BotReply {
                    status: 200,
                    body: bad
                }
            ),
            Err(DriveError::BadAck(_))
        ));
        let refused = check_ack(
            &c,
            BotReply {
                status: 401,
                body: json!({}),
            },
        );
        assert!(matches!(
            refused,
            Ok(EventAck {
                acknowledged: false,
                status: 401,
                ..
            })
        ));
    }

    #[test]
    fn cards_render_the_reader_view() {
        let mut params = std::collections::BTreeMap::new();
        params.insert("title".to_owned(), "张三 申请主机权限".to_owned());
        params.insert("status_text".to_owned(), "待审批".to_owned());
        params.insert("buttons_visible".to_owned(), "true".to_owned());
        let card = SimCard {
            template_id: "tpl".into(),
            open_space_id: "dtv1.card//IM_ROBOT.lisi;IM_GROUP.cid1".into(),
            params,
            private: Default::default(),
            callback_type: None,
            callback_route_key: None,
            update_count: 0,
        };
        assert_eq!(
            card_targets(&card),
            vec!["lisi".to_owned(), "cid1".to_owned()]
        );
        let text = render_card(&card, "lisi");
        assert!(
            text.contains("张三 申请主机权限")
                && text.contains("状态：待审批")
                && text.contains("[同意]"),
            "{text}"
        );
    }
}
