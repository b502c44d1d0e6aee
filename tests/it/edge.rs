//! The DingTalk edge end to end (issue 2): a real `Bot` on 127.0.0.1:0 with a real sled
//! directory, driven over HTTP exactly as DingTalk would drive it (signed, encrypted requests
//! built by `sandbox::dingtalk::driver`), with the simulated DingTalk OpenAPI behind it.
//! Every refusal is checked for "nothing changed": the whole sled database, the dispatcher and
//! the simulator's call log are compared before and after.
use accessbot::app::HelpOnly;
use accessbot::app::{Bot, BotOptions};
use accessbot::clock::{Clock, ManualClock, SharedClock};
use accessbot::config::Config;
use accessbot::dingtalk::client::{DingTalkClient, DingUser};
use accessbot::dingtalk::crypto::CallbackCrypto;
use accessbot::dispatch::{Dispatch, DispatchError, DispatchReply};
use accessbot::domain::command::Lang;
use accessbot::domain::ids::DingUserId;
use accessbot::inbound::{ApprovalEventKind, Inbound};
use accessbot::sandbox::dingtalk::driver::{
    card_callback_body, card_signature_headers, encrypted_event_request, robot_text_message,
    signed_robot_headers, RobotSender,
};
use accessbot::sandbox::dingtalk::{SimDingTalk, SimDingTalkOptions};
use accessbot::secret::Secret;
use accessbot::store::Store;
use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const TOKEN: &str = "edgeToken123";
/// A 43-character console aes_key whose discarded bits are non-zero (the lenient-decode case).
const AES_KEY: &str = "o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus";
const CARD_SECRET: &str = "card-api-secret-for-edge";
const MAX_BODY: usize = 4096;

/// What the dispatcher under test does besides recording each event it is handed.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Record only.
    Record,
    /// Then answer like the bare edge does (`HelpOnly`), through the bot's own client.
    Help,
    /// Then look the sender up through the bot's client (a call that needs an access token).
    LookupSender,
}

/// A dispatcher that counts what it got. The first `hang_first` calls wait until `release`
/// gets a permit (never, in the request-timeout test).
struct Recorder {
    seen: Mutex<Vec<Inbound>>,
    behaviour: Behaviour,
    hang_first: AtomicUsize,
    release: tokio::sync::Semaphore,
    /// Returned for card actions: the card update of reference §5.5.
    card_update: Mutex<Option<Value>>,
    client: OnceLock<DingTalkClient>,
    lookups_ok: AtomicUsize,
}

impl Recorder {
    fn new(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::new(Vec::new()),
            behaviour,
            hang_first: AtomicUsize::new(0),
            release: tokio::sync::Semaphore::new(0),
            card_update: Mutex::new(None),
            client: OnceLock::new(),
            lookups_ok: AtomicUsize::new(0),
        })
    }
    fn seen(&self) -> Vec<Inbound> {
        self.seen.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Dispatch for Recorder {
    fn handle(&self, event: Inbound) -> BoxFuture<'_, Result<DispatchReply, DispatchError>> {
        Box::pin(async move {
            self.seen.lock().unwrap().push(event.clone());
            let hang = self
                .hang_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if hang {
                let _ = self.release.acquire().await.map(|p| p.forget());
            }
            let client = self.client.get().cloned();
            match (self.behaviour, client) {
                (Behaviour::Help, Some(c)) => HelpOnly::new(c, Lang::ZhCn).handle(event).await,
                (Behaviour::LookupSender, Some(c)) => {
                    if let Inbound::Chat(m) = &event {
                        let Some(uid) = &m.sender_staff_id else {
                            return Err(DispatchError::Retry("no sender".into()));
                        };
                        c.get_user(uid)
                            .await
                            .map_err(|e| DispatchError::Retry(e.to_string()))?;
                        self.lookups_ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(DispatchReply::None)
                }
                _ => match (&event, self.card_update.lock().unwrap().clone()) {
                    (Inbound::CardAction(_), Some(v)) => Ok(DispatchReply::CardUpdate(v)),
                    _ => Ok(DispatchReply::None),
                },
            }
        })
    }
}

struct Edge {
    bot: Bot,
    sim: SimDingTalk,
    clock: ManualClock,
    /// The subscription crypto as DingTalk holds it (same token, key and owner key as the bot).
    crypto: CallbackCrypto,
    app_secret: String,
    rec: Arc<Recorder>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

struct Setup {
    behaviour: Behaviour,
    card_secret: Option<&'static str>,
    request_timeout_ms: u64,
    hang_first: usize,
    header_read_timeout_ms: u64,
    max_connections: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            behaviour: Behaviour::Record,
            card_secret: Some(CARD_SECRET),
            request_timeout_ms: 1500,
            hang_first: 0,
            header_read_timeout_ms: 10_000,
            max_connections: 512,
        }
    }
}

async fn start(setup: Setup) -> Edge {
    let clock = ManualClock::new(Timestamp::from_second(1_763_800_000).unwrap());
    let sim = SimDingTalk::start(SimDingTalkOptions {
        clock: Some(clock.clone()),
        qps_limit: None,
        ..SimDingTalkOptions::default()
    })
    .await
    .unwrap();
    sim.add_user(DingUser {
        userid: DingUserId::new("u1"),
        name: "张三".into(),
        email: Some("zhangsan@corp.example".into()),
        org_email: None,
        mobile: None,
        job_number: None,
        dept_ids: vec![1],
        active: true,
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.max_body_bytes = MAX_BODY;
    cfg.server.request_timeout_ms = setup.request_timeout_ms;
    cfg.server.header_read_timeout_ms = setup.header_read_timeout_ms;
    cfg.server.max_connections = setup.max_connections;
    cfg.storage.path = dir.path().join("db");
    cfg.dingtalk = sim.dingtalk_config();
    cfg.dingtalk.callback_token = Secret::new(TOKEN);
    cfg.dingtalk.callback_aes_key = Secret::new(AES_KEY);
    cfg.dingtalk.card_callback_secret = Secret::new(setup.card_secret.unwrap_or(""));
    let crypto = CallbackCrypto::new(TOKEN, AES_KEY, cfg.dingtalk.owner_key()).unwrap();
    let rec = Recorder::new(setup.behaviour);
    rec.hang_first.store(setup.hang_first, Ordering::SeqCst);
    let shared: SharedClock = Arc::new(clock.clone());
    let bot = Bot::start(
        &cfg,
        BotOptions {
            clock: shared,
            store: Store::open(&cfg.storage.path).unwrap(),
            dispatcher: Some(rec.clone()),
        },
    )
    .await
    .unwrap();
    let _ = rec.client.set(bot.dingtalk.clone());
    sim.set_bot_base_url(bot.url());
    Edge {
        bot,
        app_secret: sim.options().app_secret.clone(),
        sim,
        clock,
        crypto,
        rec,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

type KeyValue = (Vec<u8>, Vec<u8>);

/// Everything that could change: every sled tree's contents, the dispatcher's log and the
/// simulator's call log.
#[derive(Debug, PartialEq)]
struct Snapshot {
    trees: Vec<(Vec<u8>, Vec<KeyValue>)>,
    dispatched: usize,
    outbound: usize,
}

impl Edge {
    fn now(&self) -> i64 {
        self.clock.now().as_millisecond()
    }

    fn snapshot(&self) -> Snapshot {
        let db = self.bot.store.db();
        let mut trees = Vec::new();
        for name in db.tree_names() {
            let tree = db.open_tree(&name).unwrap();
            let items = tree
                .iter()
                .map(|kv| {
                    let (k, v) = kv.unwrap();
                    (k.to_vec(), v.to_vec())
                })
                .collect();
            trees.push((name.to_vec(), items));
        }
        Snapshot {
            trees,
            dispatched: self.rec.count(),
            outbound: self.sim.calls().len(),
        }
    }

    fn dedupe_len(&self) -> usize {
        self.bot.store.db().open_tree("dedupe_log").unwrap().len()
    }

    async fn post_event(&self, query: &str, body: String) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/dingtalk/events?{query}", self.bot.url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        read(r).await
    }

    /// An event push signed and encrypted like DingTalk's, with the given plaintext.
    async fn push(&self, plaintext: &str, nonce: &str) -> (u16, Value) {
        let ts = self.now().to_string();
        let (q, body) = encrypted_event_request(&self.crypto, plaintext, &ts, nonce);
        self.post_event(&q, body).await
    }

    async fn post_robot(&self, headers: &[(String, String)], body: String) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/dingtalk/robot", self.bot.url()))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        read(req.send().await.unwrap()).await
    }

    /// A robot message whose `sessionWebhook` is a live session on the simulator named after
    /// the message id.
    fn robot_body(&self, msg_id: &str, text: &str) -> Value {
        let sender = RobotSender {
            staff_id: Some("u1"),
            nick: "张三",
            group: false,
            conversation_id: "cid-edge",
            session_webhook: "unused",
            robot_code: &self.sim.options().app_key,
        };
        let mut body = robot_text_message(&sender, msg_id, text, self.now());
        let (url, expires) = self.sim.session_webhook(msg_id);
        body["sessionWebhook"] = json!(url);
        body["sessionWebhookExpiredTime"] = json!(expires);
        body
    }

    /// `body` with fresh robot signature headers (DingTalk's stamp, distinct per push).
    async fn send_robot(&self, body: &Value) -> (u16, Value) {
        let h = signed_robot_headers(&self.app_secret, self.sim.stamp());
        self.post_robot(&h, body.to_string()).await
    }

    async fn post_card(&self, headers: &[(String, String)], body: String) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/dingtalk/cards", self.bot.url()))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        read(req.send().await.unwrap()).await
    }

    /// Waits until the simulator has recorded `n` replies on `session` (the help reply is sent
    /// after the acknowledgement), then returns them.
    async fn webhook_replies(&self, session: &str, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            let got = self.sim.webhook_messages(session);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.sim.webhook_messages(session)
    }
}

async fn read(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// A refusal: a 4xx whose JSON body carries a short, non-empty reason.
fn assert_refused(status: u16, body: &Value, expected: u16, what: &str) {
    assert_eq!(status, expected, "{what}: {body}");
    let reason = body["error"].as_str().unwrap_or("");
    assert!(
        !reason.is_empty() && reason.len() < 120,
        "{what}: reason should be short and present: {body}"
    );
}

/// Checks the encrypted `success` reply of §2.4: signature over what was sent, and the
/// ciphertext decrypts (with our owner key) to `success`.
fn assert_success_reply(crypto: &CallbackCrypto, status: u16, body: &Value) {
    assert_eq!(status, 200, "{body}");
    let field = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    let (sig, ts, nonce, enc) = (
        field("msg_signature"),
        field("timeStamp"),
        field("nonce"),
        field("encrypt"),
    );
    assert!(!ts.is_empty() && !nonce.is_empty(), "{body}");
    assert_eq!(crypto.verify_signature(&sig, &ts, &nonce, &enc), Ok(()));
    assert_eq!(crypto.decrypt(&enc).as_deref(), Ok("success"));
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

#[tokio::test]
async fn check_url_handshake_answers_with_encrypted_success_in_both_query_spellings() {
    let e = start(Setup::default()).await;
    let plain = r#"{"EventType":"check_url"}"#;
    let ts = e.now().to_string();
    let enc = e.crypto.encrypt(plain);
    let sig = e.crypto.signature(&ts, "n1", &enc);
    let body = json!({ "encrypt": enc }).to_string();
    for (sig_name, ts_name) in [
        ("msg_signature", "timestamp"),
        ("msg_signature", "timeStamp"),
        ("signature", "timestamp"),
        ("signature", "timeStamp"),
    ] {
        let q = query(&[(sig_name, &sig), (ts_name, &ts), ("nonce", "n1")]);
        let (status, reply) = e.post_event(&q, body.clone()).await;
        assert_success_reply(&e.crypto, status, &reply);
    }
    // Ten-digit (seconds) timestamps occur in DingTalk's own vectors.
    let secs = (e.now() / 1000).to_string();
    let (q, body) = encrypted_event_request(&e.crypto, plain, &secs, "n2");
    let (status, reply) = e.post_event(&q, body).await;
    assert_success_reply(&e.crypto, status, &reply);
    // The handshake is not an event: nothing dispatched, nothing remembered.
    assert_eq!(e.rec.count(), 0);
    assert_eq!(e.dedupe_len(), 0);
}

#[tokio::test]
async fn signed_text_message_is_answered_with_help_through_the_session_webhook() {
    let e = start(Setup {
        behaviour: Behaviour::Help,
        ..Setup::default()
    })
    .await;
    let body = e.robot_body("msgHelp1", "帮助");
    let (status, ack) = e.send_robot(&body).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack, json!({"msgtype": "empty"}));
    let replies = e.webhook_replies("msgHelp1", 1).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    let expected = accessbot::chat::text::help(Lang::ZhCn, false);
    assert_eq!(replies[0]["msgtype"], "markdown");
    assert_eq!(replies[0]["markdown"]["text"], json!(expected));
    let seen = e.rec.seen();
    let Some(Inbound::Chat(m)) = seen.first() else {
        panic!("{seen:?}")
    };
    assert_eq!(m.text.as_deref(), Some("帮助"));
    assert_eq!(m.sender_staff_id, Some(DingUserId::new("u1")));
}

#[tokio::test]
async fn non_text_message_gets_the_polite_text_only_reply() {
    let e = start(Setup {
        behaviour: Behaviour::Help,
        ..Setup::default()
    })
    .await;
    let mut body = e.robot_body("msgPic1", "");
    body["msgtype"] = json!("picture");
    body.as_object_mut().unwrap().remove("text");
    body["content"] = json!({"downloadCode": "dc1", "pictureDownloadCode": "pdc1"});
    let (status, ack) = e.send_robot(&body).await;
    assert_eq!(status, 200, "{ack}");
    let replies = e.webhook_replies("msgPic1", 1).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(
        replies[0]["markdown"]["text"],
        json!(accessbot::chat::text::text_only(Lang::ZhCn))
    );
    // A text message whose content DingTalk withheld (over quota, §3.4) is still text: help.
    let mut body = e.robot_body("msgNoContent", "");
    body.as_object_mut().unwrap().remove("text");
    let (status, ack) = e.send_robot(&body).await;
    assert_eq!(status, 200, "{ack}");
    let replies = e.webhook_replies("msgNoContent", 1).await;
    assert_eq!(
        replies.first().map(|r| r["markdown"]["text"].clone()),
        Some(json!(accessbot::chat::text::help(Lang::ZhCn, false)))
    );
}

#[tokio::test]
async fn redelivered_events_and_messages_are_acknowledged_and_dispatched_once() {
    let e = start(Setup::default()).await;
    // Same eventId, pushed twice (fresh nonce and timestamp, as a redelivery would be).
    let other = r#"{"EventType":"bpms_task_change","eventId":"evt-1","processInstanceId":"p0","type":"start"}"#;
    for nonce in ["a1", "a2"] {
        let (s, r) = e.push(other, nonce).await;
        assert_success_reply(&e.crypto, s, &r);
        e.clock.advance(SignedDuration::from_secs(30));
    }
    assert_eq!(e.rec.count(), 1);

    // Approval: different eventIds, same instance and type → one transition.
    let finish = |id: &str| {
        format!(
            r#"{{"EventType":"bpms_instance_change","eventId":"{id}","processInstanceId":"inst-9","processCode":"PROC-1","type":"finish","result":"agree","staffId":"u1"}}"#
        )
    };
    for (id, nonce) in [("evt-2", "b1"), ("evt-3", "b2")] {
        let (s, r) = e.push(&finish(id), nonce).await;
        assert_success_reply(&e.crypto, s, &r);
    }
    assert_eq!(e.rec.count(), 2);
    // The same instance's next transition is a new event.
    let terminate = r#"{"EventType":"bpms_instance_change","eventId":"evt-4","processInstanceId":"inst-9","type":"terminate"}"#;
    let (s, r) = e.push(terminate, "c1").await;
    assert_success_reply(&e.crypto, s, &r);
    let kinds: Vec<ApprovalEventKind> = e
        .rec
        .seen()
        .into_iter()
        .filter_map(|ev| match ev {
            Inbound::Approval(a) => Some(a.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        vec![ApprovalEventKind::Finish, ApprovalEventKind::Terminate]
    );

    // Robot message with the same msgId, delivered twice with fresh signatures.
    let body = e.robot_body("msgDup1", "状态");
    for _ in 0..2 {
        let (s, ack) = e.send_robot(&body).await;
        assert_eq!(s, 200, "{ack}");
        e.clock.advance(SignedDuration::from_secs(5));
    }
    assert_eq!(e.rec.count(), 4);
    assert_eq!(e.dedupe_len(), 4);
}

#[tokio::test]
async fn repeats_are_counted_for_operators() {
    let e = start(Setup::default()).await;
    let stats = || {
        let s = e.bot.ingress().dedupe.stats();
        (
            s.duplicates.load(Ordering::Relaxed),
            s.in_flight.load(Ordering::Relaxed),
        )
    };
    assert_eq!(stats(), (0, 0));
    let body = e.robot_body("msgCount1", "帮助");
    let (s, r) = e.send_robot(&body).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(stats(), (0, 0), "a first delivery is not a repeat");
    // DingTalk redelivers the message (fresh signature) twice.
    for _ in 0..2 {
        e.clock.advance(SignedDuration::from_secs(5));
        let (s, r) = e.send_robot(&body).await;
        assert_eq!(s, 200, "{r}");
    }
    assert_eq!(stats(), (2, 0));
    assert_eq!(e.rec.count(), 1);
}

/// One refused request: `status` with a short reason, and nothing changed anywhere.
async fn refused(e: &Edge, before: &Snapshot, what: &str, status: u16, res: (u16, Value)) {
    assert_refused(res.0, &res.1, status, what);
    assert_eq!(&e.snapshot(), before, "{what} changed state");
}

#[tokio::test]
async fn event_push_refusals_change_nothing() {
    let e = start(Setup::default()).await;
    let before = e.snapshot();
    let plain = r#"{"EventType":"user_leave_org","eventId":"evt-x","userId":["u1"]}"#;
    let now = e.now().to_string();
    let (good_q, good_body) = encrypted_event_request(&e.crypto, plain, &now, "nn");
    let enc = e.crypto.encrypt(plain);

    // Forged: signature of another token.
    let forger = CallbackCrypto::new("otherToken", AES_KEY, "dingsimappkey0001").unwrap();
    let (q, body) = encrypted_event_request(&forger, plain, &now, "nn");
    refused(&e, &before, "forged", 401, e.post_event(&q, body).await).await;
    // Forged: body swapped under a valid signature.
    let swapped = json!({ "encrypt": e.crypto.encrypt(r#"{"EventType":"user_leave_org","userId":["boss"]}"#) });
    refused(
        &e,
        &before,
        "swapped body",
        401,
        e.post_event(&good_q, swapped.to_string()).await,
    )
    .await;
    // Stale: correctly signed, two hours old.
    let old = (e.now() - 2 * 3_600_000).to_string();
    let (q, body) = encrypted_event_request(&e.crypto, plain, &old, "nn");
    refused(&e, &before, "stale", 401, e.post_event(&q, body).await).await;
    // Signed, but with a timestamp no clock can be near.
    for (absurd, status) in [
        ("-9223372036854775808", 401),
        ("9223372036854775807", 401),
        ("99999999999999999999", 400),
    ] {
        let (q, body) = encrypted_event_request(&e.crypto, plain, absurd, "nn");
        refused(&e, &before, absurd, status, e.post_event(&q, body).await).await;
    }
    // Malformed: broken JSON, no query, missing nonce.
    refused(
        &e,
        &before,
        "broken json",
        400,
        e.post_event(&good_q, "{\"encrypt\": ".into()).await,
    )
    .await;
    refused(
        &e,
        &before,
        "no query",
        400,
        e.post_event("", good_body.clone()).await,
    )
    .await;
    let sig = e.crypto.signature(&now, "nn", &enc);
    let q = query(&[("msg_signature", &sig), ("timestamp", &now)]);
    refused(
        &e,
        &before,
        "no nonce",
        400,
        e.post_event(&q, good_body.clone()).await,
    )
    .await;
    // Malformed ciphertexts, each correctly signed so only decryption can refuse them.
    let signed = |encrypt: &str| {
        let sig = e.crypto.signature(&now, "nn", encrypt);
        (
            query(&[
                ("msg_signature", &sig),
                ("timestamp", &now),
                ("nonce", "nn"),
            ]),
            json!({ "encrypt": encrypt }).to_string(),
        )
    };
    let (q, body) = signed("%%%not base64%%%");
    refused(&e, &before, "bad base64", 400, e.post_event(&q, body).await).await;
    let (q, body) = signed("QUJD"); // 3 bytes: not whole AES blocks
    refused(
        &e,
        &before,
        "short ciphertext",
        400,
        e.post_event(&q, body).await,
    )
    .await;
    let (q, body) = signed(&bad_padding_ciphertext(plain));
    refused(
        &e,
        &before,
        "bad padding",
        400,
        e.post_event(&q, body).await,
    )
    .await;
    // Encrypted for another app (owner key mismatch), signed with the right token.
    let other_owner = CallbackCrypto::new(TOKEN, AES_KEY, "dingOtherCorp").unwrap();
    let (q, body) = encrypted_event_request(&other_owner, plain, &now, "nn");
    refused(&e, &before, "owner key", 401, e.post_event(&q, body).await).await;
    // Oversized.
    let big = json!({ "encrypt": "A".repeat(MAX_BODY + 1) }).to_string();
    refused(
        &e,
        &before,
        "oversized",
        413,
        e.post_event(&good_q, big).await,
    )
    .await;

    assert_eq!(e.snapshot(), before);
    // The genuine request still goes through afterwards, so the refusals above were not luck.
    let (s, r) = e.post_event(&good_q, good_body).await;
    assert_success_reply(&e.crypto, s, &r);
    assert_eq!(e.rec.count(), 1);
}

/// A correctly encrypted payload whose last byte claims 0 bytes of padding (DingTalk's pad is
/// 1..=32), built with the raw cipher so only the padding is wrong.
fn bad_padding_ciphertext(msg: &str) -> String {
    use aes::cipher::{BlockEncryptMut, KeyIvInit};
    use base64::Engine as _;
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let key = lenient.decode(AES_KEY).unwrap();
    let mut p = b"0123456789abcdef".to_vec();
    p.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    p.extend_from_slice(msg.as_bytes());
    p.extend_from_slice(b"dingsimappkey0001");
    while p.len() % 32 != 31 {
        p.push(7);
    }
    p.push(0);
    let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &key[..16])
        .unwrap()
        .encrypt_padded_vec_mut::<aes::cipher::block_padding::NoPadding>(&p);
    base64::engine::general_purpose::STANDARD.encode(enc)
}

#[tokio::test]
async fn robot_refusals_change_nothing() {
    let e = start(Setup::default()).await;
    let before = e.snapshot();
    let body = e.robot_body("msgRef1", "帮助").to_string();
    let now = e.now();
    let forged = signed_robot_headers("not-the-app-secret", now);
    refused(
        &e,
        &before,
        "forged",
        401,
        e.post_robot(&forged, body.clone()).await,
    )
    .await;
    let stale = signed_robot_headers(&e.app_secret, now - 3_600_001);
    refused(
        &e,
        &before,
        "stale",
        401,
        e.post_robot(&stale, body.clone()).await,
    )
    .await;
    let future = signed_robot_headers(&e.app_secret, now + 3_600_001);
    refused(
        &e,
        &before,
        "future",
        401,
        e.post_robot(&future, body.clone()).await,
    )
    .await;
    refused(
        &e,
        &before,
        "no headers",
        401,
        e.post_robot(&[], body.clone()).await,
    )
    .await;
    let good = signed_robot_headers(&e.app_secret, now);
    refused(
        &e,
        &before,
        "sign only",
        401,
        e.post_robot(&good[1..], body.clone()).await,
    )
    .await;
    let mut bad_ts = good.clone();
    bad_ts[0].1 = "yesterday".into();
    refused(
        &e,
        &before,
        "bad ts",
        401,
        e.post_robot(&bad_ts, body.clone()).await,
    )
    .await;
    refused(
        &e,
        &before,
        "broken json",
        400,
        e.post_robot(&good, "{\"msgId\":".into()).await,
    )
    .await;
    let no_id = json!({"msgtype": "text", "conversationType": "1", "conversationId": "c"});
    refused(
        &e,
        &before,
        "missing msgId",
        400,
        e.post_robot(&good, no_id.to_string()).await,
    )
    .await;
    let mut big = e.robot_body("msgBig", "x");
    big["text"]["content"] = json!("x".repeat(MAX_BODY));
    refused(
        &e,
        &before,
        "oversized",
        413,
        e.post_robot(&good, big.to_string()).await,
    )
    .await;
    assert_eq!(e.snapshot(), before);
    let (s, ack) = e.post_robot(&good, body).await;
    assert_eq!(s, 200, "{ack}");
    assert_eq!(e.rec.count(), 1);
}

fn tap(user: &str) -> Value {
    let mut params = Map::new();
    params.insert("requestId".into(), json!("REQ-42"));
    params.insert("action".into(), json!("approve"));
    card_callback_body("REQ-42", user, &["approve"], params)
}

#[tokio::test]
async fn card_refusals_change_nothing_and_a_signed_tap_is_dispatched_once() {
    let e = start(Setup::default()).await;
    let before = e.snapshot();
    let body = tap("boss01").to_string();
    let now = e.now();
    let forged = card_signature_headers("guessed-secret", now);
    refused(
        &e,
        &before,
        "forged",
        401,
        e.post_card(&forged, body.clone()).await,
    )
    .await;
    let stale = card_signature_headers(CARD_SECRET, now - 10 * 60_000);
    refused(
        &e,
        &before,
        "stale",
        401,
        e.post_card(&stale, body.clone()).await,
    )
    .await;
    refused(
        &e,
        &before,
        "unsigned",
        401,
        e.post_card(&[], body.clone()).await,
    )
    .await;
    let good = card_signature_headers(CARD_SECRET, now);
    refused(
        &e,
        &before,
        "broken json",
        400,
        e.post_card(&good, "{\"outTrackId\"".into()).await,
    )
    .await;
    let no_private =
        json!({"type": "actionCallback", "outTrackId": "o", "userId": "u", "content": "{}"});
    refused(
        &e,
        &before,
        "no cardPrivateData",
        400,
        e.post_card(&good, no_private.to_string()).await,
    )
    .await;
    let mut params = Map::new();
    params.insert("remark".into(), json!("x".repeat(MAX_BODY)));
    let big = card_callback_body("REQ-42", "boss01", &["approve"], params);
    refused(
        &e,
        &before,
        "oversized",
        413,
        e.post_card(&good, big.to_string()).await,
    )
    .await;
    assert_eq!(e.snapshot(), before);

    let update = json!({
        "cardUpdateOptions": {"updateCardDataByKey": true},
        "cardData": {"cardParamMap": {"status": "approved"}},
    });
    *e.rec.card_update.lock().unwrap() = Some(update.clone());
    // The first tap answers with the dispatcher's card update; the double tap changes nothing.
    for expected in [update, json!({})] {
        let h = card_signature_headers(CARD_SECRET, e.now());
        let (s, r) = e.post_card(&h, body.clone()).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r, expected);
        e.clock.advance(SignedDuration::from_secs(1));
    }
    let seen = e.rec.seen();
    assert_eq!(seen.len(), 1, "a double tap is one intent: {seen:?}");
    let Inbound::CardAction(a) = &seen[0] else {
        panic!("{seen:?}")
    };
    assert_eq!(a.out_track_id, "REQ-42");
    assert_eq!(a.user_id, DingUserId::new("boss01"));
    assert_eq!(a.action_ids, vec!["approve".to_owned()]);
    assert_eq!(a.params["requestId"], json!("REQ-42"));
}

#[tokio::test]
async fn captured_signature_headers_with_another_body_are_refused() {
    let e = start(Setup::default()).await;
    // A genuine robot message; its headers are captured on the way.
    let robot_headers = signed_robot_headers(&e.app_secret, e.sim.stamp());
    let genuine = e.robot_body("msgGenuine", "帮助");
    let (s, r) = e.post_robot(&robot_headers, genuine.to_string()).await;
    assert_eq!(s, 200, "{r}");
    // The same for a card tap.
    let card_headers = card_signature_headers(CARD_SECRET, e.sim.stamp());
    let (s, r) = e.post_card(&card_headers, tap("boss01").to_string()).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(e.rec.count(), 2);
    // The headers are still fresh a minute later; bodies of the attacker's choosing are not
    // let through with them, and nothing is recorded.
    e.clock.advance(SignedDuration::from_secs(60));
    let before = e.snapshot();
    let forged = e.robot_body("msgForged", "申请主机 10.9.0.1 运维 7天 原因：x");
    refused(
        &e,
        &before,
        "robot headers, other message",
        401,
        e.post_robot(&robot_headers, forged.to_string()).await,
    )
    .await;
    let mut same_id = genuine.clone();
    same_id["text"]["content"] = json!("/approve R1");
    refused(
        &e,
        &before,
        "robot headers, same msgId, other text",
        401,
        e.post_robot(&robot_headers, same_id.to_string()).await,
    )
    .await;
    let mut params = Map::new();
    params.insert("requestId".into(), json!("REQ-42"));
    params.insert("action".into(), json!("reject"));
    let other_tap = card_callback_body("REQ-42", "boss01", &["reject"], params);
    refused(
        &e,
        &before,
        "card headers, other tap",
        401,
        e.post_card(&card_headers, other_tap.to_string()).await,
    )
    .await;
    assert_eq!(
        e.bot
            .ingress()
            .dedupe
            .stats()
            .replayed_signatures
            .load(Ordering::Relaxed),
        3
    );
    // A retransmission of the very same request is no forgery: acknowledged as a duplicate.
    let (s, r) = e.post_robot(&robot_headers, genuine.to_string()).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(e.rec.count(), 2);
    // Once the timestamp is stale the headers are refused for that reason, and the stored
    // signatures go with the next sweep.
    e.clock.advance(SignedDuration::from_hours(2));
    let (s, r) = e.post_robot(&robot_headers, forged.to_string()).await;
    assert_refused(s, &r, 401, "stale");
    assert!(r["error"].as_str().unwrap_or("").contains("window"), "{r}");
    let now = e.now();
    e.bot.ingress().dedupe.sweep(now).unwrap();
    assert!(e.bot.store.db().open_tree("signatures").unwrap().is_empty());
}

#[tokio::test]
async fn without_a_card_secret_card_callbacks_are_refused_signed_or_not() {
    let e = start(Setup {
        card_secret: None,
        ..Setup::default()
    })
    .await;
    let before = e.snapshot();
    let body = tap("boss01").to_string();
    // DingTalk sends no signature headers when no apiSecret was registered (§5.3); an unsigned
    // tap cannot be told from a forged one, so the route stays closed until a secret is set.
    refused(
        &e,
        &before,
        "unsigned",
        403,
        e.post_card(&[], body.clone()).await,
    )
    .await;
    let h = card_signature_headers("anything", e.now());
    refused(&e, &before, "signed", 403, e.post_card(&h, body).await).await;
    assert_eq!(e.snapshot(), before);
}

#[tokio::test]
async fn expired_token_is_refreshed_exactly_once_mid_run() {
    let e = start(Setup {
        behaviour: Behaviour::LookupSender,
        ..Setup::default()
    })
    .await;
    let (s, ack) = e.send_robot(&e.robot_body("msgTok1", "帮助")).await;
    assert_eq!(s, 200, "{ack}");
    assert_eq!(e.sim.token_requests(), 1);
    let ttl = e.sim.options().token_ttl_secs;
    e.clock.advance(SignedDuration::from_secs(ttl + 60));
    // Several messages at once after expiry: one refresh between them.
    let bodies: Vec<Value> = (2..6)
        .map(|i| e.robot_body(&format!("msgTok{i}"), "帮助"))
        .collect();
    let results = futures::future::join_all(bodies.iter().map(|b| e.send_robot(b))).await;
    for (s, ack) in results {
        assert_eq!(s, 200, "{ack}");
    }
    assert_eq!(e.sim.token_requests(), 2);
    assert_eq!(e.rec.lookups_ok.load(Ordering::SeqCst), 5);
    // Every lookup presented a token the simulator had issued and accepted.
    let lookups = e.sim.calls_to("/topapi/v2/user/get");
    assert_eq!(lookups.len(), 5);
    let tokens: std::collections::BTreeSet<_> = lookups.iter().map(|c| c.token.clone()).collect();
    assert_eq!(tokens.len(), 2, "one token before expiry, one after");
}

#[tokio::test]
async fn slow_dispatch_times_out_with_408_and_the_redelivery_is_handled() {
    let e = start(Setup {
        request_timeout_ms: 200,
        hang_first: 1,
        ..Setup::default()
    })
    .await;
    let body = e.robot_body("msgSlow1", "帮助");
    let (s, r) = e.send_robot(&body).await;
    assert_refused(s, &r, 408, "timeout");
    // The timed-out delivery left no key behind: DingTalk's retry is dispatched, not dropped.
    assert_eq!(e.dedupe_len(), 0);
    let (s, r) = e.send_robot(&body).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(e.rec.count(), 2);
    assert_eq!(e.dedupe_len(), 1);
}

#[tokio::test]
async fn a_copy_arriving_while_the_first_is_handled_is_asked_to_retry() {
    let e = Arc::new(
        start(Setup {
            hang_first: 1,
            ..Setup::default()
        })
        .await,
    );
    let plain = r#"{"EventType":"user_leave_org","eventId":"evt-slow","userId":["u1"]}"#;
    let first = tokio::spawn({
        let e = e.clone();
        async move { e.push(plain, "f1").await }
    });
    // The first delivery is inside the dispatcher now.
    for _ in 0..1000 {
        if e.rec.count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(e.rec.count(), 1);
    // DingTalk, tired of waiting, sends it again: not acknowledged (the first may still fail),
    // not handled twice.
    let (s, r) = e.push(plain, "f2").await;
    assert_refused(s, &r, 409, "in flight");
    assert_eq!(e.rec.count(), 1);
    e.rec.release.add_permits(1);
    let (s, r) = first.await.unwrap();
    assert_success_reply(&e.crypto, s, &r);
    // Once handled, a further copy is an ordinary duplicate.
    let (s, r) = e.push(plain, "f3").await;
    assert_success_reply(&e.crypto, s, &r);
    assert_eq!(e.rec.count(), 1);
}

#[tokio::test]
async fn concurrent_copies_of_one_message_are_dispatched_once() {
    let e = start(Setup::default()).await;
    let body = e.robot_body("msgRace", "帮助");
    let results = futures::future::join_all((0..8).map(|_| e.send_robot(&body))).await;
    for (s, r) in &results {
        assert!(*s == 200 || *s == 409, "{s} {r}");
    }
    assert!(results.iter().any(|(s, _)| *s == 200));
    assert_eq!(e.rec.count(), 1);
    assert_eq!(e.dedupe_len(), 1);
}

/// Writes `request` on a fresh connection to the bot, then reads until the server closes it
/// (bounded generously for a loaded CI machine). Returns whether the whole request could be
/// written, and what was read (even if the read then failed).
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> (std::io::Result<()>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small send buffer, as over a real network: a request the server stops reading cannot
    // hide in loopback's megabytes of kernel buffers.
    socket.set_send_buffer_size(8 * 1024).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let written = tokio::time::timeout(Duration::from_secs(30), s.write_all(request))
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    (written, String::from_utf8_lossy(&buf).into_owned())
}

#[tokio::test]
async fn an_oversized_body_written_in_full_before_reading_still_gets_413() {
    let e = start(Setup::default()).await;
    let before = e.snapshot();
    // A client that writes its whole request before reading anything (as many HTTP clients
    // do) must be able to finish writing and then read the 413, not be cut off mid-write.
    let body = "x".repeat(256 * 1024);
    let h = signed_robot_headers(&e.app_secret, e.sim.stamp());
    let mut request = format!(
        "POST /dingtalk/robot HTTP/1.1\r\nhost: bot\r\ncontent-type: application/json\r\n\
         {}: {}\r\n{}: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        h[0].0,
        h[0].1,
        h[1].0,
        h[1].1,
        body.len()
    );
    request.push_str(&body);
    let (written, response) = raw_exchange(e.bot.addr(), request.as_bytes()).await;
    assert!(written.is_ok(), "cut off mid-write: {written:?}");
    assert!(response.starts_with("HTTP/1.1 413"), "{response:?}");
    assert!(response.contains("max_body_bytes"), "{response}");
    // The same without a length (chunked), where the size shows only while reading.
    let chunk = "y".repeat(1000);
    let mut request = "POST /dingtalk/cards HTTP/1.1\r\nhost: bot\r\n\
                       transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        .to_string();
    for _ in 0..256 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    let (written, response) = raw_exchange(e.bot.addr(), request.as_bytes()).await;
    assert!(written.is_ok(), "cut off mid-write: {written:?}");
    assert!(response.starts_with("HTTP/1.1 413"), "{response:?}");
    // Announcing far more than is worth draining: 413 at once, and the connection is closed.
    let request = "POST /dingtalk/robot HTTP/1.1\r\nhost: bot\r\ncontent-length: 100000000\r\n\r\n";
    let (_, response) = raw_exchange(e.bot.addr(), request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response:?}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert_eq!(e.snapshot(), before);
}

/// Reads until the server closes `s`; `None` if it is still open after a bound that is
/// generous for a loaded CI machine (the server's timeouts in these tests are far shorter).
async fn read_until_closed(s: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    match tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn silent_half_sent_and_idle_keep_alive_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let e = start(Setup {
        header_read_timeout_ms: 300,
        ..Setup::default()
    })
    .await;
    let connect = || tokio::net::TcpStream::connect(e.bot.addr());
    // Connects and sends nothing.
    let mut silent = connect().await.unwrap();
    // Sends half a header block and stops.
    let mut half = connect().await.unwrap();
    half.write_all(b"POST /dingtalk/robot HTTP/1.1\r\nhost: bot\r\ncontent-")
        .await
        .unwrap();
    // Asks one thing, then keeps the connection open without a next request.
    let mut kept = connect().await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: bot\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_until_closed(&mut silent).await.as_deref(), Some(""));
    assert_eq!(read_until_closed(&mut half).await.as_deref(), Some(""));
    let answered = read_until_closed(&mut kept).await.expect("kept open");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(answered.ends_with(r#"{"status":"ok"}"#), "{answered}");
    // The bot itself carries on.
    let (s, r) = read(
        e.http
            .get(format!("{}/healthz", e.bot.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, r), (200, json!({"status": "ok"})));
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_service_resumes_when_they_close() {
    use tokio::io::AsyncWriteExt;
    let e = start(Setup {
        max_connections: 2,
        ..Setup::default()
    })
    .await;
    let connect = || tokio::net::TcpStream::connect(e.bot.addr());
    // Two idle connections take both places (the listener accepts in arrival order).
    let hog1 = connect().await.unwrap();
    let hog2 = connect().await.unwrap();
    let mut third = connect().await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: bot\r\n\r\n")
        .await
        .unwrap();
    let refused = read_until_closed(&mut third)
        .await
        .expect("refused at once");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 1"), "{refused}");
    assert!(refused.ends_with(r#"{"error":"too many connections; retry later"}"#));
    drop(third);
    assert_eq!(e.bot.conn_stats().shed.load(Ordering::Relaxed), 1);
    // Once they go, their places are free again (the server notices the close on its own
    // time, so ask until it answers; bounded).
    drop((hog1, hog2));
    let mut status = 0;
    for _ in 0..500 {
        let r = e
            .http
            .get(format!("{}/healthz", e.bot.url()))
            .send()
            .await
            .unwrap();
        status = r.status().as_u16();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
    // Graceful shutdown does not wait for a connection that is only open: it is closed.
    let mut idle = connect().await.unwrap();
    let bot = e.bot;
    let stopped = tokio::time::timeout(Duration::from_secs(30), bot.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown waited on an idle connection");
    assert_eq!(read_until_closed(&mut idle).await.as_deref(), Some(""));
}

#[tokio::test]
async fn healthz_answers_ok() {
    let e = start(Setup::default()).await;
    let r = e
        .http
        .get(format!("{}/healthz", e.bot.url()))
        .send()
        .await
        .unwrap();
    let (s, v) = read(r).await;
    assert_eq!((s, v), (200, json!({"status": "ok"})));
}

#[test]
fn serve_on_a_data_dir_held_by_another_process_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("accessbot.toml");
    std::fs::write(&cfg, crate::support::filled_example()).unwrap();
    let spawn = |format: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_accessbot"))
            .args(["--log-format", format, "serve", "--config"])
            .arg(&cfg)
            .env("ACCESSBOT_STORAGE__PATH", &data)
            .env("ACCESSBOT_SERVER__LISTEN", "127.0.0.1:0")
            .env("ACCESSBOT_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The first server holds the directory once it says it is listening.
    let mut first = spawn("human");
    let stderr = first.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("accessbot listening"));
    assert!(listening, "first serve did not start");
    let human = spawn("human").wait_with_output().unwrap();
    let json = spawn("json").wait_with_output().unwrap();
    let _ = first.kill();
    let _ = first.wait();
    let err = String::from_utf8_lossy(&human.stderr);
    assert!(!human.status.success(), "{err}");
    assert!(
        err.contains("accessbot: while serving: the data directory")
            && err.contains("is in use by another accessbot process"),
        "{err}"
    );
    // In JSON mode the same error is one JSON log line, and nothing else is printed raw.
    assert!(!json.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&json.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{lines:?}");
    let message = errors[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("is in use by another accessbot process")
            && message.contains(&data.display().to_string()),
        "{message}"
    );
}
