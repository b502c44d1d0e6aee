//! Simulated DingTalk OpenAPI: a real axum server on 127.0.0.1 answering the token, user,
//! robot-message, session-webhook, card, approval and work-notification endpoints the bot uses,
//! with the real auth checks, limits and error shapes (reference §0, §1, §4.2, §5, §6, §7, §8, §9).
//! Everything it receives is recorded so tests can assert on the wire. Where the reference does
//! not pin an error code down, the code chosen here is marked "sim-chosen".
use crate::clock::{ManualClock, SharedClock, SystemClock};
use crate::dingtalk::client::DingUser;
use crate::dingtalk::config::DingTalkConfig;
use crate::domain::ids::DingUserId;
use crate::secret::Secret;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use jiff::SignedDuration;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub mod actor;
pub mod driver;
pub mod login;
pub mod stream;
pub use actor::{BotReply, ConvEntry, ConvKind, DriveError, EventAck, Forgery, Speaker};

/// Lifetime of a session webhook opened with `session_webhook` (sim-chosen: 90 minutes).
pub const SESSION_WEBHOOK_TTL_MS: i64 = 90 * 60 * 1000;

#[derive(Clone, Debug)]
pub struct SimDingTalkOptions {
    pub app_key: String,
    pub app_secret: String,
    pub agent_id: i64,
    pub token_ttl_secs: i64,
    /// Calls per second per API before `QpsLimitForAppkeyAndApi`; `None` disables the limit.
    pub qps_limit: Option<u32>,
    /// Base time; `None` uses the system clock. Either way `advance()` moves the sim's time.
    pub clock: Option<ManualClock>,
    /// Seconds after start before an approval may be terminated (reference §6.3: 15 s).
    pub min_terminate_after_secs: i64,
    /// Organisation id (`ding…`), sent in events and card callbacks.
    pub corp_id: String,
    /// Event subscription `token` the sim signs pushes with (the console's value).
    pub callback_token: String,
    /// Event subscription `aes_key` (43 characters) the sim encrypts pushes with.
    pub callback_aes_key: String,
    /// Owner key inside every ciphertext; empty means `app_key` (console subscriptions).
    pub callback_owner_key: String,
    /// `apiSecret` the sim signs card callbacks with when no registration names one.
    pub card_api_secret: String,
}

impl Default for SimDingTalkOptions {
    fn default() -> Self {
        Self {
            app_key: "dingsimappkey0001".into(),
            app_secret: "sim-app-secret-0001".into(),
            agent_id: 41605932,
            token_ttl_secs: 7200,
            qps_limit: Some(20),
            clock: None,
            min_terminate_after_secs: 15,
            corp_id: "dingsandboxcorp".into(),
            callback_token: "sim-callback-token".into(),
            callback_aes_key: "c2ltQWVzS2V5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI".into(),
            callback_owner_key: String::new(),
            card_api_secret: "sim-card-api-secret".into(),
        }
    }
}

/// What `fail_next` makes the matching calls answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// 403 `Forbidden.AccessDenied.QpsLimitForAppkeyAndApi` / errcode 90018.
    Throttle,
    /// 500 `systemError` / errcode -1.
    ServerError,
    /// 403 `Forbidden.AccessDenied.AccessTokenPermissionDenied` / errcode 60011.
    PermissionDenied,
    /// 400 `InvalidAuthentication` / errcode 88 sub_code 40014.
    InvalidToken,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecordedCall {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// The JSON body; a body that is not JSON is kept as a string.
    pub body: Value,
    /// The token as presented (header for `/v1.0`, `access_token` query for oapi).
    pub token: Option<String>,
    pub at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SimChannel {
    RobotOneToOne,
    Group,
    WorkNotice,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimMessage {
    pub channel: SimChannel,
    /// `msgKey` for robot sends, `msgtype` for work notices.
    pub msg_key: String,
    /// The decoded `msgParam` (robot) or `msg` (work notice).
    pub param: Value,
    pub at_ms: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimCard {
    pub template_id: String,
    pub open_space_id: String,
    pub params: BTreeMap<String, String>,
    /// `privateData`: per-userid variables.
    pub private: BTreeMap<String, BTreeMap<String, String>>,
    pub callback_type: Option<String>,
    pub callback_route_key: Option<String>,
    pub update_count: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimApproval {
    pub instance_id: String,
    pub process_code: String,
    pub originator: String,
    pub dept_id: Option<i64>,
    pub approvers: Vec<String>,
    pub form: Vec<(String, String)>,
    /// `RUNNING`, `COMPLETED` or `TERMINATED`.
    pub status: String,
    /// `agree` / `refuse` once completed.
    pub result: Option<String>,
    pub create_ms: i64,
    pub finish_ms: Option<i64>,
    pub remark: Option<String>,
}

struct Fault {
    prefix: String,
    remaining: u32,
    kind: FaultKind,
    /// The call takes effect first and only its answer is replaced (a response lost on the
    /// way back: DingTalk did the work, the caller cannot know).
    after_effect: bool,
}

#[derive(Default)]
struct Sim {
    tokens: HashMap<String, i64>,
    current_token: Option<String>,
    users: BTreeMap<String, DingUser>,
    groups: HashSet<String>,
    sessions: HashMap<String, Vec<Value>>,
    session_expiry: HashMap<String, i64>,
    robot_msgs: BTreeMap<String, Vec<SimMessage>>,
    group_msgs: BTreeMap<String, Vec<SimMessage>>,
    cards: BTreeMap<String, SimCard>,
    approvals: BTreeMap<String, SimApproval>,
    calls: Vec<RecordedCall>,
    faults: Vec<Fault>,
    qps: HashMap<String, (i64, u32)>,
    flow_controlled: HashSet<String>,
    /// route key → (callback URL, apiSecret)
    card_callbacks: BTreeMap<String, (String, Option<String>)>,
    /// template name → processCode; when non-empty, only these codes can be started.
    processes: BTreeMap<String, String>,
    /// Card template ids the org has; when non-empty, others are `param.templateNotExist`.
    card_templates: BTreeSet<String>,
    /// processCode → the labels of its form components (`forms/schemas/processCodes`).
    process_forms: BTreeMap<String, Vec<String>>,
    seq: u64,
    /// session id → the user whose message opened it, so webhook replies land in their chat.
    session_owner: HashMap<String, String>,
    /// Everything said in every chat, in order (see `actor`).
    log: Vec<actor::ConvEntry>,
    /// The instance `approval_start` just created, for the start event.
    last_started: Option<String>,
    /// Pushes the sim made on its own (approval start / finish / terminate) and their outcome.
    pushes: Vec<actor::PushRecord>,
}

struct Shared {
    opts: SimDingTalkOptions,
    base_clock: SharedClock,
    offset_ms: AtomicI64,
    sim: Mutex<Sim>,
    bot_base_url: Mutex<Option<String>>,
    /// Client for what the sim sends to the bot (events, robot messages, card callbacks).
    http: reqwest::Client,
    /// Timestamps of signed pushes: distinct even when the test clock stands still.
    stamps: crate::sandbox::dingtalk::driver::Stamps,
}

impl Shared {
    fn now_ms(&self) -> i64 {
        self.base_clock.now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }
    fn lock(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(|e| e.into_inner())
    }
}

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
        match self.shared.record_decision(instance_id, agree) {
            Some(event) => {
                actor::spawn_push(&self.shared, event);
                true
            }
            None => false,
        }
    }
}

impl Shared {
    /// Completes a running instance and returns the finish event DingTalk would push.
    fn record_decision(&self, instance_id: &str, agree: bool) -> Option<Value> {
        let now = self.now_ms();
        let mut s = self.lock();
        let a = s.approvals.get_mut(instance_id)?;
        if a.status != "RUNNING" {
            return None;
        }
        let result = if agree { "agree" } else { "refuse" };
        a.status = "COMPLETED".into();
        a.result = Some(result.into());
        a.finish_ms = Some(now);
        let a = a.clone();
        let event = actor::approval_event(&self.opts.corp_id, &a, "finish", Some(result), now);
        let approver = a.approvers.first().cloned().unwrap_or_default();
        let approver = s
            .users
            .get(&approver)
            .map(|u| u.name.clone())
            .unwrap_or(approver);
        let text = match agree {
            true => format!("{approver} 在 OA 审批中同意了"),
            false => format!("{approver} 在 OA 审批中拒绝了"),
        };
        s.log_entry(
            &a.originator,
            actor::Speaker::DingTalk,
            actor::ConvKind::OaDecided {
                instance_id: a.instance_id.clone(),
            },
            text,
            now,
        );
        Some(event)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    New,
    Legacy,
    Webhook,
}

fn request_id(s: &mut Sim) -> String {
    s.seq += 1;
    format!("SIM-{:08X}", s.seq)
}

fn new_err(s: &mut Sim, status: u16, code: &str, message: &str) -> Response {
    let rid = request_id(s);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({"code": code, "message": message, "requestid": rid})),
    )
        .into_response()
}

fn legacy_err(s: &mut Sim, errcode: i64, errmsg: &str) -> Response {
    let rid = request_id(s);
    Json(json!({"errcode": errcode, "errmsg": errmsg, "request_id": rid})).into_response()
}

fn ok(v: Value) -> Response {
    Json(v).into_response()
}

fn fault_response(s: &mut Sim, fam: Family, kind: FaultKind) -> Response {
    match (fam, kind) {
        (Family::New, FaultKind::Throttle) => new_err(
            s,
            403,
            "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
            "qps limited",
        ),
        (Family::New, FaultKind::ServerError) => new_err(s, 500, "systemError", "系统错误"),
        (Family::New, FaultKind::PermissionDenied) => new_err(
            s,
            403,
            "Forbidden.AccessDenied.AccessTokenPermissionDenied",
            "没有调用该接口的权限，接口权限申请参考：qyapi_robot_sendmsg",
        ),
        (Family::New, FaultKind::InvalidToken) => {
            new_err(s, 400, "InvalidAuthentication", "不合法的access_token")
        }
        (_, FaultKind::Throttle) => legacy_err(s, 90018, "当前企业调用该接口超过了限制"),
        (_, FaultKind::ServerError) => legacy_err(s, -1, "系统繁忙"),
        (_, FaultKind::PermissionDenied) => legacy_err(s, 60011, "没有调用该接口的权限"),
        (_, FaultKind::InvalidToken) => {
            let rid = request_id(s);
            ok(
                json!({"errcode": 88, "sub_code": "40014", "sub_msg": "不合法的access_token",
                      "errmsg": "不合法的access_token", "request_id": rid}),
            )
        }
    }
}

async fn handle(
    State(sh): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body_parsed: Option<Value> = if raw.iter().all(u8::is_ascii_whitespace) {
        Some(Value::Null)
    } else {
        serde_json::from_slice(&raw).ok()
    };
    let fam = if path.starts_with("/v1.0/") {
        Family::New
    } else if path == "/robot/sendBySession" {
        Family::Webhook
    } else {
        Family::Legacy
    };
    let token = match fam {
        Family::New => headers
            .get("x-acs-dingtalk-access-token")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned),
        Family::Legacy => query.get("access_token").cloned(),
        Family::Webhook => None,
    };
    let now = sh.now_ms();
    let mut s = sh.lock();
    s.calls.push(RecordedCall {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body_parsed
            .clone()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&raw).into_owned())),
        token: token.clone(),
        at_ms: now,
    });

    let mut lost_answer = None;
    if let Some(f) = s
        .faults
        .iter_mut()
        .find(|f| f.remaining > 0 && path.starts_with(&f.prefix))
    {
        f.remaining -= 1;
        let (kind, after) = (f.kind, f.after_effect);
        s.faults.retain(|f| f.remaining > 0);
        if !after {
            return fault_response(&mut s, fam, kind);
        }
        lost_answer = Some(kind);
    }
    let answer = route(
        &sh,
        s,
        &method,
        &path,
        &query,
        body_parsed,
        &token,
        fam,
        now,
    );
    match lost_answer {
        Some(kind) => fault_response(&mut sh.lock(), fam, kind),
        None => answer,
    }
}

/// Everything after the recording and the fault check: auth, limits, then the API itself.
#[allow(clippy::too_many_arguments)]
fn route(
    sh: &Arc<Shared>,
    mut s: MutexGuard<'_, Sim>,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body_parsed: Option<Value>,
    token: &Option<String>,
    fam: Family,
    now: i64,
) -> Response {
    let Some(body) = body_parsed else {
        return match fam {
            Family::New => new_err(&mut s, 400, "InvalidParameter", "请求体不是合法的JSON"),
            _ => legacy_err(&mut s, 40035, "缺少参数 json"),
        };
    };

    // Token endpoints: no token needed and exempt from the QPS limit.
    if method == Method::POST && path == "/v1.0/oauth2/accessToken" {
        let good = body.get("appKey").and_then(Value::as_str) == Some(sh.opts.app_key.as_str())
            && body.get("appSecret").and_then(Value::as_str) == Some(sh.opts.app_secret.as_str());
        if !good {
            return new_err(
                &mut s,
                400,
                "invalidClientIdOrSecret",
                "无效的clientId或者clientSecret",
            );
        }
        let (tok, ttl) = issue_token(sh, &mut s, now);
        return ok(json!({"accessToken": tok, "expireIn": ttl}));
    }
    if method == Method::GET && path == "/gettoken" {
        let (Some(k), Some(sec)) = (query.get("appkey"), query.get("appsecret")) else {
            return legacy_err(&mut s, 40035, "缺少参数 corpid or appkey");
        };
        if *k != sh.opts.app_key || *sec != sh.opts.app_secret {
            return legacy_err(&mut s, 40096, "不合法的appKey或appSecret");
        }
        let (tok, ttl) = issue_token(sh, &mut s, now);
        return ok(json!({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": ttl}));
    }

    if fam == Family::Webhook {
        return webhook(&mut s, query, &body, now);
    }

    // Auth, as the gateway does it, before anything else is looked at.
    let valid = token
        .as_deref()
        .and_then(|t| s.tokens.get(t))
        .is_some_and(|exp| now < *exp);
    if !valid {
        return match (fam, token.as_deref()) {
            (Family::New, None) => new_err(
                &mut s,
                400,
                "AuthenticationFailed.MissingParameter",
                "缺少参数：x-acs-dingtalk-access-token",
            ),
            (Family::New, Some(_)) => {
                new_err(&mut s, 400, "InvalidAuthentication", "不合法的access_token")
            }
            (_, None) => {
                let rid = request_id(&mut s);
                ok(
                    json!({"errcode": 88, "sub_code": "40000", "sub_msg": "access_token is blank",
                          "errmsg": "不合法的access_token", "request_id": rid}),
                )
            }
            (_, Some(_)) => fault_response(&mut s, fam, FaultKind::InvalidToken),
        };
    }

    if let Some(limit) = sh.opts.qps_limit {
        let second = now.div_euclid(1000);
        // One budget per API, and GET and POST on one path are different APIs.
        let entry = s
            .qps
            .entry(format!("{method} {path}"))
            .or_insert((second, 0));
        if entry.0 != second {
            *entry = (second, 0);
        }
        if entry.1 >= limit {
            return fault_response(&mut s, fam, FaultKind::Throttle);
        }
        entry.1 += 1;
    }

    match (method.as_str(), path) {
        ("POST", "/topapi/v2/user/get") => user_get(&mut s, &body),
        ("POST", "/v1.0/robot/oToMessages/batchSend") => batch_send(sh, &mut s, &body, now),
        ("POST", "/v1.0/robot/groupMessages/send") => group_send(sh, &mut s, &body, now),
        ("POST", "/v1.0/card/instances/createAndDeliver") => card_create(sh, &mut s, &body, now),
        ("POST", "/v1.0/card/instances") => card_create_undelivered(&mut s, &body, now),
        ("PUT", "/v1.0/card/instances") => card_update(&mut s, &body, now),
        ("POST", "/v1.0/card/callbacks/register") => card_register(&mut s, &body),
        ("GET", "/v1.0/workflow/processCentres/schemaNames/processCodes") => {
            process_code(&mut s, query)
        }
        ("GET", "/v1.0/workflow/forms/schemas/processCodes") => form_schema(&mut s, query),
        ("POST", "/v1.0/workflow/processInstances") => {
            let r = approval_start(sh, &mut s, &body, now);
            let started = s
                .last_started
                .take()
                .and_then(|id| s.approvals.get(&id).cloned());
            drop(s);
            if let Some(a) = started {
                actor::spawn_push(
                    sh,
                    actor::approval_event(&sh.opts.corp_id, &a, "start", None, now),
                );
            }
            r
        }
        ("GET", "/v1.0/workflow/processInstances") => approval_get(&mut s, query),
        ("POST", "/v1.0/workflow/processes/instanceIds/query") => approval_ids(&mut s, &body),
        ("POST", "/v1.0/workflow/processInstances/terminate") => {
            let r = approval_terminate(sh, &mut s, &body, now);
            if r.status().is_success() {
                let event = str_of(&body, "processInstanceId")
                    .and_then(|id| s.approvals.get(id).cloned())
                    .map(|a| actor::approval_event(&sh.opts.corp_id, &a, "terminate", None, now));
                drop(s);
                if let Some(e) = event {
                    actor::spawn_push(sh, e);
                }
            }
            r
        }
        ("POST", "/topapi/message/corpconversation/asyncsend_v2") => {
            work_notice(sh, &mut s, &body, now)
        }
        // sim-chosen shapes for routes the sim does not know.
        _ if fam == Family::New => new_err(&mut s, 404, "InvalidAction.NotFound", "api不存在"),
        _ => legacy_err(&mut s, 404, "请求的URI地址不存在"),
    }
}

/// Same token while valid (and its life extended), a new one after expiry (reference §1.3).
fn issue_token(sh: &Shared, s: &mut Sim, now: i64) -> (String, i64) {
    let ttl = sh.opts.token_ttl_secs;
    let current = s
        .current_token
        .clone()
        .filter(|t| s.tokens.get(t).is_some_and(|exp| now < *exp));
    let tok = current.unwrap_or_else(|| {
        let n: u64 = rand::rng().random();
        format!("simtok{n:016x}")
    });
    s.tokens.insert(tok.clone(), now + ttl * 1000);
    s.current_token = Some(tok.clone());
    (tok, ttl)
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn user_get(s: &mut Sim, body: &Value) -> Response {
    let Some(uid) = str_of(body, "userid").filter(|u| !u.is_empty()) else {
        return legacy_err(s, 40035, "缺少参数 userid");
    };
    let Some(u) = s.users.get(uid).cloned() else {
        // sim-chosen: the reference leaves the exact code open; 60121 is the commonly seen one.
        return legacy_err(s, 60121, "找不到该用户");
    };
    let rid = request_id(s);
    let mut r = json!({
        "userid": u.userid, "unionid": format!("union-{}", u.userid), "name": u.name,
        "dept_id_list": u.dept_ids, "active": u.active, "admin": false, "boss": false,
    });
    for (k, v) in [
        ("email", &u.email),
        ("org_email", &u.org_email),
        ("mobile", &u.mobile),
        ("job_number", &u.job_number),
    ] {
        if let Some(v) = v {
            r[k] = json!(v);
        }
    }
    ok(json!({"errcode": 0, "errmsg": "ok", "result": r, "request_id": rid}))
}

fn webhook(s: &mut Sim, query: &BTreeMap<String, String>, body: &Value, now: i64) -> Response {
    let live = |x: &String| {
        s.sessions.contains_key(x) && s.session_expiry.get(x).is_none_or(|exp| now < *exp)
    };
    let Some(session) = query.get("session").filter(|x| live(x)) else {
        // sim-chosen code for an unknown or expired session.
        return legacy_err(s, 300001, "session不存在或已过期");
    };
    let session = session.clone();
    let valid = match str_of(body, "msgtype") {
        Some("text") => body.pointer("/text/content").is_some_and(Value::is_string),
        Some("markdown") => {
            body.pointer("/markdown/title")
                .is_some_and(Value::is_string)
                && body.pointer("/markdown/text").is_some_and(Value::is_string)
        }
        Some("actionCard") => {
            let c = &body["actionCard"];
            let single = c.get("singleTitle").is_some_and(Value::is_string)
                && c.get("singleURL").is_some_and(Value::is_string);
            let multi = c.get("btns").and_then(Value::as_array).is_some_and(|b| {
                !b.is_empty()
                    && b.iter().all(|x| {
                        x.get("title").is_some_and(Value::is_string)
                            && x.get("actionURL").is_some_and(Value::is_string)
                    })
            });
            c.get("title").is_some_and(Value::is_string)
                && c.get("text").is_some_and(Value::is_string)
                && (single || multi)
        }
        Some("link") | Some("feedCard") | Some("empty") => true,
        _ => false,
    };
    if !valid {
        return legacy_err(s, 40035, "缺少参数 msgtype 或消息内容");
    }
    s.sessions
        .entry(session.clone())
        .or_default()
        .push(body.clone());
    if let Some(owner) = s.session_owner.get(&session).cloned() {
        s.log_entry(
            &owner,
            actor::Speaker::Bot,
            actor::ConvKind::Reply,
            actor::render_webhook(body),
            now,
        );
    }
    ok(json!({"errcode": 0, "errmsg": "ok"}))
}

/// Checks `msgKey` / `msgParam` as the robot API does; returns the decoded parameter object.
fn check_msg(body: &Value) -> Result<(String, Value), &'static str> {
    let key = str_of(body, "msgKey").ok_or("msgKey 不能为空")?;
    // msgParam must be a JSON *string*; an object is refused (checklist §11.6).
    let raw = body
        .get("msgParam")
        .and_then(Value::as_str)
        .ok_or("msgParam 必须是JSON字符串")?;
    let param: Value = serde_json::from_str(raw).map_err(|_| "msgParam 不是合法的JSON")?;
    if !param.is_object() {
        return Err("msgParam 必须是JSON对象");
    }
    let mut required: Vec<String> = match key {
        "sampleText" => vec!["content".into()],
        "sampleMarkdown" => vec!["title".into(), "text".into()],
        "sampleActionCard" => ["title", "text", "singleTitle", "singleURL"]
            .map(String::from)
            .to_vec(),
        "sampleLink" => ["title", "text", "picUrl", "messageUrl"]
            .map(String::from)
            .to_vec(),
        "sampleImageMsg" => vec!["photoURL".into()],
        _ => Vec::new(),
    };
    if let Some(n) = key
        .strip_prefix("sampleActionCard")
        .and_then(|d| d.parse::<usize>().ok())
    {
        if !(2..=5).contains(&n) {
            return Err("不支持的 msgKey");
        }
        required = vec!["title".into(), "text".into()];
        for i in 1..=n {
            required.push(format!("actionTitle{i}"));
            required.push(format!("actionURL{i}"));
        }
    } else if required.is_empty() {
        return Err("不支持的 msgKey");
    }
    if required
        .iter()
        .any(|f| !param.get(f).is_some_and(Value::is_string))
    {
        return Err("msgParam 缺少必填字段");
    }
    Ok((key.to_owned(), param))
}

fn check_robot_code(sh: &Shared, body: &Value) -> bool {
    str_of(body, "robotCode") == Some(sh.opts.app_key.as_str())
}

fn batch_send(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    if !check_robot_code(sh, body) {
        // sim-chosen code.
        return new_err(s, 400, "invalidParameter.robotCode", "robotCode 不存在");
    }
    let Some(ids) = body.get("userIds").and_then(Value::as_array) else {
        return new_err(s, 400, "invalidParameter", "userIds 不能为空");
    };
    let ids: Vec<String> = ids
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return new_err(s, 400, "invalidParameter", "userIds 不能为空");
    }
    if ids.len() > 20 {
        return new_err(s, 400, "invalidParameter", "userIds 最多20个");
    }
    let (key, param) = match check_msg(body) {
        Ok(x) => x,
        Err(m) => return new_err(s, 400, "invalidParameter", m),
    };
    let (mut invalid, mut flow) = (Vec::new(), Vec::new());
    for id in ids {
        if !s.users.contains_key(&id) {
            invalid.push(id);
        } else if s.flow_controlled.contains(&id) {
            flow.push(id);
        } else {
            s.log_entry(
                &id,
                actor::Speaker::Bot,
                actor::ConvKind::Message,
                actor::render_robot_msg(&key, &param),
                now,
            );
            s.robot_msgs.entry(id).or_default().push(SimMessage {
                channel: SimChannel::RobotOneToOne,
                msg_key: key.clone(),
                param: param.clone(),
                at_ms: now,
            });
        }
    }
    let pqk = format!("pqk-{}", request_id(s));
    ok(
        json!({"processQueryKey": pqk, "invalidStaffIdList": invalid, "flowControlledStaffIdList": flow}),
    )
}

fn group_send(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    if !check_robot_code(sh, body) {
        return new_err(s, 400, "invalidParameter.robotCode", "robotCode 不存在");
    }
    let Some(cid) = str_of(body, "openConversationId").filter(|c| !c.is_empty()) else {
        return new_err(s, 400, "invalidParameter", "openConversationId 不能为空");
    };
    if !s.groups.contains(cid) {
        // sim-chosen: the robot is not in that group.
        return new_err(s, 400, "resource.not.found", "机器人不在该群中");
    }
    if str_of(body, "msgParam").is_some_and(|p| p.len() > 15_000) {
        return new_err(s, 400, "invalidParameter", "msgParam 超过15000字节");
    }
    let (key, param) = match check_msg(body) {
        Ok(x) => x,
        Err(m) => return new_err(s, 400, "invalidParameter", m),
    };
    let cid = cid.to_owned();
    s.log_entry(
        &cid,
        actor::Speaker::Bot,
        actor::ConvKind::GroupMessage,
        actor::render_robot_msg(&key, &param),
        now,
    );
    s.group_msgs.entry(cid).or_default().push(SimMessage {
        channel: SimChannel::Group,
        msg_key: key,
        param,
        at_ms: now,
    });
    let pqk = format!("pqk-{}", request_id(s));
    ok(json!({"processQueryKey": pqk}))
}

fn string_map(v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    let obj = v?.as_object()?;
    obj.iter()
        .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
        .collect()
}

/// `privateData` as `{userId: {cardParamMap: {k: "v"}}}`; absent is empty, wrong types are `None`.
fn private_map(v: Option<&Value>) -> Option<BTreeMap<String, BTreeMap<String, String>>> {
    match v {
        None | Some(Value::Null) => Some(BTreeMap::new()),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(u, d)| string_map(d.get("cardParamMap")).map(|m| (u.clone(), m)))
            .collect(),
        Some(_) => None,
    }
}

fn card_create(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    let Some(tpl) = str_of(body, "cardTemplateId").filter(|t| !t.is_empty()) else {
        return new_err(s, 400, "param.templateNotExist", "param.templateNotExist");
    };
    if !s.card_templates.is_empty() && !s.card_templates.contains(tpl) {
        return new_err(s, 400, "param.templateNotExist", "param.templateNotExist");
    }
    let Some(track) = str_of(body, "outTrackId").filter(|t| !t.is_empty()) else {
        return new_err(s, 400, "param.outTrackIdEmpty", "param.outTrackIdEmpty");
    };
    // Values must be strings (reference §5.1); sim-chosen code for the refusal.
    let Some(params) = string_map(body.pointer("/cardData/cardParamMap")) else {
        return new_err(
            s,
            400,
            "param.cardDataInvalid",
            "cardParamMap 的值必须是字符串",
        );
    };
    let Some(space) = str_of(body, "openSpaceId")
        .and_then(|o| o.strip_prefix("dtv1.card//"))
        .map(str::to_owned)
    else {
        return new_err(
            s,
            400,
            "param.openSpaceIdInvalid",
            "param.openSpaceIdInvalid",
        );
    };
    let mut targets = Vec::new();
    for part in space.split(';').filter(|p| !p.is_empty()) {
        let Some((kind, id)) = part.split_once('.') else {
            return new_err(
                s,
                400,
                "param.openSpaceIdInvalid",
                "param.openSpaceIdInvalid",
            );
        };
        let kind = kind.to_ascii_uppercase();
        let model = match kind.as_str() {
            "IM_ROBOT" => "imRobotOpenDeliverModel",
            "IM_GROUP" => "imGroupOpenDeliverModel",
            _ => {
                return new_err(
                    s,
                    400,
                    "param.openSpaceIdInvalid",
                    "param.openSpaceIdInvalid",
                )
            }
        };
        let Some(m) = body.get(model).filter(|m| m.is_object()) else {
            return new_err(
                s,
                400,
                "param.openDeliverModelEmpty",
                "param.openDeliverModelEmpty",
            );
        };
        if kind == "IM_GROUP" && str_of(m, "robotCode") != Some(sh.opts.app_key.as_str()) {
            return new_err(s, 400, "param.robotCodeInvalid", "robotCode 不合法");
        }
        targets.push((kind, id.to_owned()));
    }
    if targets.is_empty() {
        return new_err(
            s,
            400,
            "param.openSpaceIdInvalid",
            "param.openSpaceIdInvalid",
        );
    }
    let callback_type = str_of(body, "callbackType").map(str::to_owned);
    let route_key = str_of(body, "callbackRouteKey").map(str::to_owned);
    if callback_type.as_deref() == Some("HTTP") && route_key.is_none() {
        return new_err(
            s,
            400,
            "param.callbackRouteKeyEmpty",
            "callbackRouteKey 不能为空",
        );
    }
    if s.cards.contains_key(track) {
        return new_err(s, 400, "param.cardAlreadyExist", "param.cardAlreadyExist");
    }
    let results: Vec<Value> = targets
        .iter()
        .map(|(kind, id)| {
            let reachable = match kind.as_str() {
                "IM_ROBOT" => s.users.contains_key(id),
                _ => s.groups.contains(id),
            };
            let mut r = json!({"spaceType": kind, "spaceId": id, "success": reachable});
            if reachable {
                r["carrierId"] = json!(format!("carrier-{id}"));
            } else {
                r["errorMsg"] = json!("投放目标不存在");
            }
            r
        })
        .collect();
    let Some(private) = private_map(body.get("privateData")) else {
        return new_err(
            s,
            400,
            "param.cardDataInvalid",
            "privateData 的值必须是字符串",
        );
    };
    s.cards.insert(
        track.to_owned(),
        SimCard {
            template_id: tpl.to_owned(),
            open_space_id: format!("dtv1.card//{space}"),
            params,
            private,
            callback_type,
            callback_route_key: route_key,
            update_count: 0,
        },
    );
    s.log_card(track, true, now);
    ok(json!({"success": true, "result": {"outTrackId": track, "deliverResults": results}}))
}

/// `POST /v1.0/card/instances` (reference §5.1, the create half of the two-step alternative):
/// the card exists, delivered nowhere. Same template and id checks as `createAndDeliver`.
fn card_create_undelivered(s: &mut Sim, body: &Value, now: i64) -> Response {
    let Some(tpl) = str_of(body, "cardTemplateId").filter(|t| !t.is_empty()) else {
        return new_err(s, 400, "param.templateNotExist", "param.templateNotExist");
    };
    if !s.card_templates.is_empty() && !s.card_templates.contains(tpl) {
        return new_err(s, 400, "param.templateNotExist", "param.templateNotExist");
    }
    let Some(track) = str_of(body, "outTrackId").filter(|t| !t.is_empty()) else {
        return new_err(s, 400, "param.outTrackIdEmpty", "param.outTrackIdEmpty");
    };
    let Some(params) = string_map(body.pointer("/cardData/cardParamMap")) else {
        return new_err(
            s,
            400,
            "param.cardDataInvalid",
            "cardParamMap 的值必须是字符串",
        );
    };
    if s.cards.contains_key(track) {
        return new_err(s, 400, "param.cardAlreadyExist", "param.cardAlreadyExist");
    }
    s.cards.insert(
        track.to_owned(),
        SimCard {
            template_id: tpl.to_owned(),
            open_space_id: String::new(),
            params,
            private: BTreeMap::new(),
            callback_type: str_of(body, "callbackType").map(str::to_owned),
            callback_route_key: str_of(body, "callbackRouteKey").map(str::to_owned),
            update_count: 0,
        },
    );
    s.log_card(track, true, now);
    ok(json!({"success": true, "result": {"outTrackId": track}}))
}

/// `GET forms/schemas/processCodes` (reference §6.4): the form's components with their labels.
fn form_schema(s: &mut Sim, query: &BTreeMap<String, String>) -> Response {
    let code = query.get("processCode").map(String::as_str).unwrap_or("");
    if code.is_empty() || (!s.processes.is_empty() && !s.processes.values().any(|c| c == code)) {
        // sim-chosen code, as for starting an unknown template.
        return new_err(s, 400, "processCodeError", "processCode 不存在");
    }
    let items: Vec<Value> = s
        .process_forms
        .get(code)
        .map(|labels| {
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    json!({"componentName": "TextField",
                        "props": {"id": format!("TextField-{i}"), "label": l, "required": false}})
                })
                .collect()
        })
        .unwrap_or_default();
    ok(json!({"result": {"processCode": code, "schemaContent": {"title": code, "items": items}}}))
}

fn card_update(s: &mut Sim, body: &Value, now: i64) -> Response {
    let Some(track) = str_of(body, "outTrackId").filter(|t| !t.is_empty()) else {
        return new_err(s, 400, "param.outTrackIdEmpty", "param.outTrackIdEmpty");
    };
    let Some(params) = string_map(body.pointer("/cardData/cardParamMap")) else {
        return new_err(
            s,
            400,
            "param.cardDataInvalid",
            "cardParamMap 的值必须是字符串",
        );
    };
    let Some(private) = private_map(body.get("privateData")) else {
        return new_err(
            s,
            400,
            "param.cardDataInvalid",
            "privateData 的值必须是字符串",
        );
    };
    let flag = |k: &str| {
        body.pointer(&format!("/cardUpdateOptions/{k}"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let (by_key, private_by_key) = (flag("updateCardDataByKey"), flag("updatePrivateDataByKey"));
    let Some(card) = s.cards.get_mut(track) else {
        // sim-chosen code.
        return new_err(s, 400, "param.cardNotExist", "param.cardNotExist");
    };
    if by_key {
        card.params.extend(params);
    } else {
        // Without updateCardDataByKey the public data is replaced (reference §5.2).
        card.params = params;
    }
    for (user, m) in private {
        let slot = card.private.entry(user).or_default();
        if private_by_key {
            slot.extend(m);
        } else {
            *slot = m;
        }
    }
    card.update_count += 1;
    s.log_card(track, false, now);
    ok(json!({"success": true, "result": true}))
}

fn card_register(s: &mut Sim, body: &Value) -> Response {
    let (Some(key), Some(url)) = (
        str_of(body, "callbackRouteKey").filter(|k| !k.is_empty()),
        str_of(body, "callbackUrl").filter(|u| !u.is_empty()),
    ) else {
        return new_err(
            s,
            400,
            "invalidParameter",
            "callbackRouteKey 和 callbackUrl 必填",
        );
    };
    let secret = str_of(body, "apiSecret").map(str::to_owned);
    let force = body
        .get("forceUpdate")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // Without forceUpdate an existing registration wins (reference §5.3).
    if force || !s.card_callbacks.contains_key(key) {
        s.card_callbacks
            .insert(key.to_owned(), (url.to_owned(), secret));
    }
    let (url, secret) = s.card_callbacks.get(key).cloned().unwrap_or_default();
    let mut result = json!({"callbackUrl": url});
    if let Some(sec) = secret {
        result["apiSecret"] = json!(sec);
    }
    ok(json!({"success": true, "result": result}))
}

fn process_code(s: &mut Sim, query: &BTreeMap<String, String>) -> Response {
    let name = query.get("name").map(String::as_str).unwrap_or("");
    match s.processes.get(name).cloned() {
        Some(code) => {
            ok(json!({"result": {"processCode": code, "gmtModified": "2026-01-01T00:00Z"}}))
        }
        // sim-chosen code.
        None => new_err(s, 400, "processCodeNotFound", "未找到该名称的审批模板"),
    }
}

fn approval_start(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    let Some(code) = str_of(body, "processCode").filter(|c| !c.is_empty()) else {
        return new_err(s, 400, "processCodeError", "processCode 不能为空");
    };
    if !s.processes.is_empty() && !s.processes.values().any(|c| c == code) {
        return new_err(s, 400, "processCodeError", "processCode 不存在");
    }
    let Some(orig) = str_of(body, "originatorUserId").filter(|u| s.users.contains_key(*u)) else {
        return new_err(
            s,
            400,
            "processInstanceInvalidParameter",
            "发起人不存在或不在企业内",
        );
    };
    if let Some(agent) = body.get("microappAgentId") {
        if agent.as_i64() != Some(sh.opts.agent_id) {
            return new_err(s, 400, "invalidAgentId", "agentId 不合法");
        }
    }
    let mut approvers = Vec::new();
    match body.get("approvers") {
        None | Some(Value::Null) => {
            if !body.get("deptId").is_some_and(Value::is_i64) {
                return new_err(
                    s,
                    400,
                    "processInstanceInvalidParameter",
                    "未指定审批人时 deptId 必填",
                );
            }
        }
        Some(Value::Array(nodes)) if !nodes.is_empty() && nodes.len() <= 20 => {
            for n in nodes {
                let action = str_of(n, "actionType").unwrap_or("");
                let ids: Vec<String> = n
                    .get("userIds")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let shape_ok = match action {
                    "NONE" => ids.len() == 1,
                    "AND" | "OR" => !ids.is_empty(),
                    _ => false,
                };
                if !shape_ok || ids.iter().any(|u| !s.users.contains_key(u)) {
                    return new_err(
                        s,
                        400,
                        "processInstanceInvalidParameter",
                        "审批人参数不合法",
                    );
                }
                approvers.extend(ids);
            }
        }
        Some(_) => {
            return new_err(
                s,
                400,
                "processInstanceInvalidParameter",
                "approvers 不合法",
            );
        }
    }
    let Some(values) = body
        .get("formComponentValues")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty() && a.len() <= 150)
    else {
        return new_err(s, 400, "formConverterError", "表单不能为空");
    };
    let mut form = Vec::new();
    for c in values {
        match (str_of(c, "name"), str_of(c, "value")) {
            (Some(n), Some(v)) if !n.is_empty() => form.push((n.to_owned(), v.to_owned())),
            _ => {
                return new_err(
                    s,
                    400,
                    "formConverterError",
                    "表单控件的 name 和 value 必须是字符串",
                )
            }
        }
    }
    let a: u128 = rand::rng().random();
    let h = format!("{a:032x}");
    let summary: Vec<String> = form.iter().map(|(n, v)| format!("{n}：{v}")).collect();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    s.approvals.insert(
        id.clone(),
        SimApproval {
            instance_id: id.clone(),
            process_code: code.to_owned(),
            originator: orig.to_owned(),
            dept_id: body.get("deptId").and_then(Value::as_i64),
            approvers,
            form,
            status: "RUNNING".into(),
            result: None,
            create_ms: now,
            finish_ms: None,
            remark: None,
        },
    );
    let text = format!("OA 审批已发起（{id}）\n{}", summary.join("\n"));
    let mut people = vec![orig.to_owned()];
    people.extend(
        s.approvals
            .get(&id)
            .map(|a| a.approvers.clone())
            .unwrap_or_default(),
    );
    people.dedup();
    for p in people {
        s.log_entry(
            &p,
            actor::Speaker::DingTalk,
            actor::ConvKind::OaStarted {
                instance_id: id.clone(),
            },
            text.clone(),
            now,
        );
    }
    s.last_started = Some(id.clone());
    ok(json!({"instanceId": id}))
}

/// Most ids one page of `instanceIds/query` returns (the API's documented maximum).
pub const INSTANCE_IDS_MAX_RESULTS: i64 = 20;

/// `POST processes/instanceIds/query` (reference §6.4): ids of one template's instances
/// created in `[startTime, endTime]`, oldest first, paged by an offset `nextToken` that is
/// present only while more remain.
fn approval_ids(s: &mut Sim, body: &Value) -> Response {
    let Some(code) = str_of(body, "processCode").filter(|c| !c.is_empty()) else {
        return new_err(s, 400, "processCodeError", "processCode 不能为空");
    };
    let Some(start) = body.get("startTime").and_then(Value::as_i64) else {
        return new_err(s, 400, "invalidParameter", "startTime 不能为空");
    };
    let end = match body.get("endTime") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(e) if e >= start => Some(e),
            _ => return new_err(s, 400, "invalidParameter", "endTime 不合法"),
        },
    };
    let max = match body.get("maxResults").and_then(Value::as_i64) {
        Some(m) if (1..=INSTANCE_IDS_MAX_RESULTS).contains(&m) => m,
        _ => return new_err(s, 400, "invalidParameter", "maxResults 取值范围为 1-20"),
    };
    let next = match body.get("nextToken") {
        None | Some(Value::Null) => Some(0),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(t)) => t.parse().ok(),
        Some(_) => None,
    };
    let Some(next) = next.filter(|n| *n >= 0) else {
        return new_err(s, 400, "invalidParameter", "nextToken 不合法");
    };
    let strings = |k: &str| -> Option<Vec<String>> {
        body.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    };
    let users = strings("userIds");
    let statuses = strings("statuses");
    let mut found: Vec<&SimApproval> = s
        .approvals
        .values()
        .filter(|a| a.process_code == code)
        .filter(|a| a.create_ms >= start && end.is_none_or(|e| a.create_ms <= e))
        .filter(|a| users.as_ref().is_none_or(|u| u.contains(&a.originator)))
        .filter(|a| statuses.as_ref().is_none_or(|st| st.contains(&a.status)))
        .collect();
    found.sort_by(|a, b| (a.create_ms, &a.instance_id).cmp(&(b.create_ms, &b.instance_id)));
    let total = i64::try_from(found.len()).unwrap_or(i64::MAX);
    let page: Vec<String> = found
        .into_iter()
        .skip(usize::try_from(next).unwrap_or(usize::MAX))
        .take(usize::try_from(max).unwrap_or(0))
        .map(|a| a.instance_id.clone())
        .collect();
    let after = next.saturating_add(i64::try_from(page.len()).unwrap_or(0));
    let mut r = json!({"list": page});
    if after < total {
        r["nextToken"] = json!(after);
    }
    ok(json!({"result": r}))
}

fn minute_str(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_default()
}

fn approval_get(s: &mut Sim, query: &BTreeMap<String, String>) -> Response {
    let Some(id) = query.get("processInstanceId").filter(|i| !i.is_empty()) else {
        return new_err(
            s,
            400,
            "processInstanceIdError",
            "processInstanceId 不能为空",
        );
    };
    let Some(a) = s.approvals.get(id.as_str()).cloned() else {
        return new_err(s, 400, "processInstanceNotExist", "审批实例不存在");
    };
    let mut r = Map::new();
    r.insert(
        "title".into(),
        json!(format!("{} 提交的审批", a.originator)),
    );
    r.insert("status".into(), json!(a.status));
    if let Some(res) = &a.result {
        r.insert("result".into(), json!(res));
    }
    r.insert("originatorUserId".into(), json!(a.originator));
    r.insert(
        "originatorDeptId".into(),
        json!(a.dept_id.unwrap_or(-1).to_string()),
    );
    r.insert("createTime".into(), json!(minute_str(a.create_ms)));
    if let Some(f) = a.finish_ms {
        r.insert("finishTime".into(), json!(minute_str(f)));
    }
    r.insert("approverUserIds".into(), json!(a.approvers));
    r.insert(
        "formComponentValues".into(),
        json!(a
            .form
            .iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect::<Vec<_>>()),
    );
    r.insert("tasks".into(), json!([]));
    r.insert("operationRecords".into(), json!([]));
    ok(json!({"success": "true", "result": Value::Object(r)}))
}

fn approval_terminate(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    let Some(id) = str_of(body, "processInstanceId").filter(|i| !i.is_empty()) else {
        return new_err(
            s,
            400,
            "processInstanceIdError",
            "processInstanceId 不能为空",
        );
    };
    let is_system = body
        .get("isSystem")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let operator = str_of(body, "operatingUserId").map(str::to_owned);
    let remark = str_of(body, "remark").map(str::to_owned);
    let min_age = sh.opts.min_terminate_after_secs * 1000;
    let Some(a) = s.approvals.get(id).cloned() else {
        return new_err(s, 400, "processInstanceNotExist", "审批实例不存在");
    };
    // sim-chosen codes for the documented refusals.
    if a.status != "RUNNING" {
        return new_err(s, 400, "invalidParameter", "只能撤销审批中的实例");
    }
    if now - a.create_ms < min_age {
        return new_err(s, 400, "invalidParameter", "发起后15秒内不能撤销");
    }
    if !is_system && operator.as_deref() != Some(a.originator.as_str()) {
        return new_err(s, 400, "820008", "您没有任务处理的权限");
    }
    if let Some(a) = s.approvals.get_mut(id) {
        a.status = "TERMINATED".into();
        a.finish_ms = Some(now);
        a.remark = remark;
    }
    ok(json!({"success": true, "result": true}))
}

fn work_notice(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    if body.get("agent_id").and_then(Value::as_i64) != Some(sh.opts.agent_id) {
        return legacy_err(s, 40056, "不合法的agentid");
    }
    let ids: Vec<String> = str_of(body, "userid_list")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect();
    if ids.is_empty() {
        return legacy_err(s, 40035, "缺少参数 userid_list");
    }
    if ids.len() > 100 {
        return legacy_err(s, 40035, "userid_list 最多100个");
    }
    let Some(msg) = body.get("msg").filter(|m| m.is_object()) else {
        return legacy_err(s, 40035, "缺少参数 msg");
    };
    if msg.to_string().len() > 2048 {
        return legacy_err(s, 40035, "msg 超过2048字节");
    }
    let Some(kind) = str_of(msg, "msgtype").filter(|k| msg.get(*k).is_some_and(Value::is_object))
    else {
        return legacy_err(s, 40035, "缺少参数 msgtype");
    };
    let kind = kind.to_owned();
    let known: Vec<String> = ids
        .into_iter()
        .filter(|id| s.users.contains_key(id))
        .collect();
    for id in known {
        s.log_entry(
            &id,
            actor::Speaker::Bot,
            actor::ConvKind::WorkNotice,
            actor::render_work_notice(&kind, &msg[kind.as_str()]),
            now,
        );
        s.robot_msgs.entry(id).or_default().push(SimMessage {
            channel: SimChannel::WorkNotice,
            msg_key: kind.clone(),
            param: msg[kind.as_str()].clone(),
            at_ms: now,
        });
    }
    s.seq += 1;
    let task = s.seq as i64;
    let rid = request_id(s);
    ok(json!({"errcode": 0, "errmsg": "ok", "task_id": task, "request_id": rid}))
}
