//! Outbound DingTalk OpenAPI client: one cached, single-flight access token (reference §1) and
//! the calls the bot makes — user lookup (§7), robot replies and sends (§4.2), interactive cards
//! (§5.1–5.2), approvals (§6.1–6.3) and work notifications (§8) — with the error mapping and
//! retry rules of §9. The token and the app secret never reach a log line or an error text.
use crate::clock::SharedClock;
use crate::dingtalk::config::DingTalkConfig;
use crate::dingtalk::message::{MessageError, OutMessage};
use crate::domain::ids::DingUserId;
use crate::secret::Secret;
use rand::Rng;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Refresh this long before the announced expiry, like the official Stream SDK.
const REFRESH_MARGIN_MS: i64 = 300_000;
/// Most recipients `oToMessages/batchSend` accepts in one call.
pub const BATCH_SEND_CHUNK: usize = 20;
/// Most recipients of one work notification call we send (the API takes 100 userids).
pub const WORK_NOTICE_CHUNK: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum DingTalkError {
    #[error("DingTalk authentication failed ({code}): {message}")]
    Auth { code: String, message: String },
    #[error("DingTalk rate limit hit ({code})")]
    Throttled { code: String },
    #[error("DingTalk permission denied ({code}): {message}")]
    PermissionDenied { code: String, message: String },
    #[error("DingTalk API error HTTP {status} ({code}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("DingTalk legacy API error {errcode}: {errmsg}")]
    Legacy { errcode: i64, errmsg: String },
    #[error("card not delivered to {space_id}: {message}")]
    CardNotDelivered { space_id: String, message: String },
    #[error("bad outbound message: {0}")]
    Message(#[from] MessageError),
    #[error("DingTalk client misconfigured: {0}")]
    Config(String),
    #[error("HTTP transport error: {0}")]
    Http(String),
    #[error("unexpected DingTalk response: {0}")]
    Decode(String),
}

impl DingTalkError {
    /// Whether trying the same call again later may succeed (for the outbox's retry
    /// decision). Auth, permission, validation and message errors need a human.
    pub fn is_transient(&self) -> bool {
        match self {
            DingTalkError::Throttled { code } => {
                // The monthly quota does not recover within minutes.
                !code.starts_with("Forbidden.AccessDenied.ApiCount") && code != "90020"
            }
            DingTalkError::Http(_) => true,
            DingTalkError::Api { status, .. } => *status >= 500,
            DingTalkError::Legacy { errcode, .. } => *errcode == -1,
            _ => false,
        }
    }
}

pub type Result<T, E = DingTalkError> = std::result::Result<T, E>;

/// Retry knobs; the base delay is configurable so tests do not sleep a second per retry.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Delay before a retry after a QPS rejection; jitter of up to half of it is added.
    pub throttle_base: Duration,
    pub max_throttle_retries: u32,
    /// Base of the exponential back-off for 5xx / errcode -1 / transport errors (idempotent calls).
    pub server_error_base: Duration,
    pub max_server_error_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            throttle_base: Duration::from_secs(1),
            max_throttle_retries: 3,
            server_error_base: Duration::from_millis(500),
            max_server_error_retries: 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DingUser {
    pub userid: DingUserId,
    pub name: String,
    pub email: Option<String>,
    pub org_email: Option<String>,
    pub mobile: Option<String>,
    pub job_number: Option<String>,
    pub dept_ids: Vec<i64>,
    /// Whether the person has activated DingTalk.
    pub active: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    pub process_query_keys: Vec<String>,
    pub invalid_user_ids: Vec<DingUserId>,
    /// Throttled recipients: the message did not reach them; send again later.
    pub flow_controlled_user_ids: Vec<DingUserId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardTarget {
    /// The 1:1 chat between the robot and this user.
    User(DingUserId),
    /// A group chat; non-empty `recipients` limits who sees the card.
    Group {
        open_conversation_id: String,
        recipients: Vec<DingUserId>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardDelivery {
    pub template_id: String,
    /// Our id for the card; DingTalk refuses a second card with the same id, which makes
    /// delivery idempotent.
    pub out_track_id: String,
    pub params: BTreeMap<String, String>,
    pub to: CardTarget,
    /// Set for HTTP callbacks (the key registered with `card/callbacks/register`); `None`
    /// means callbacks come over Stream mode.
    pub callback_route_key: Option<String>,
}

/// Per-user card variables: `privateData` keyed by userid (with `userIdType` 1).
pub type PrivateCardData = BTreeMap<DingUserId, BTreeMap<String, String>>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalStart {
    pub process_code: String,
    pub originator: DingUserId,
    /// Originator's department, `-1` = root.
    pub dept_id: i64,
    /// Empty: the template's own flow. One: that person. Several: any one of them may decide.
    pub approvers: Vec<DingUserId>,
    /// `(label, value)` pairs; labels must equal the template's component labels.
    pub form: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalStatus {
    New,
    Running,
    Completed,
    Terminated,
    Canceled,
    Other(String),
}

impl ApprovalStatus {
    fn parse(s: &str) -> Self {
        match s {
            "NEW" => Self::New,
            "RUNNING" => Self::Running,
            "COMPLETED" => Self::Completed,
            "TERMINATED" => Self::Terminated,
            "CANCELED" => Self::Canceled,
            other => Self::Other(other.to_owned()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalResult {
    Agree,
    Refuse,
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalState {
    pub status: ApprovalStatus,
    /// Meaningful only once `status` is `Completed`.
    pub result: Option<ApprovalResult>,
}

impl ApprovalState {
    /// The only state that grants access (reference §6.2).
    pub fn is_approved(&self) -> bool {
        self.status == ApprovalStatus::Completed && self.result == Some(ApprovalResult::Agree)
    }
}

/// An instance as `GET processInstances` shows it: enough to tell whose it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalDetail {
    pub state: ApprovalState,
    pub originator: Option<DingUserId>,
    /// `(name, value)` of every form component with a string value.
    pub form: Vec<(String, String)>,
}

/// A search for instance ids (§6.4); times are epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalInstanceQuery {
    pub process_code: String,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// Only instances these users started; empty: anyone's.
    pub originators: Vec<DingUserId>,
}

/// `maxResults` per page of the instance id query (the API's maximum).
const INSTANCE_IDS_PAGE: i64 = 20;
/// Pages followed before giving up on a query that never ends (a server fault).
const MAX_INSTANCE_ID_PAGES: usize = 50;

#[derive(Clone)]
struct CachedToken {
    value: Secret,
    refresh_at_ms: i64,
}

struct Inner {
    http: reqwest::Client,
    app_key: String,
    app_secret: Secret,
    api_base: String,
    oapi_base: String,
    robot_code: String,
    agent_id: Option<i64>,
    clock: SharedClock,
    retry: RetryPolicy,
    // A tokio mutex held across the fetch: concurrent callers wait for the one refresh.
    token: tokio::sync::Mutex<Option<CachedToken>>,
    token_fetches: AtomicU64,
}

/// Cheap to clone; clones share the token cache.
#[derive(Clone)]
pub struct DingTalkClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DingTalkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingTalkClient")
            .field("app_key", &self.inner.app_key)
            .field("api_base", &self.inner.api_base)
            .finish_non_exhaustive()
    }
}

/// Which side of §0 a call is on: it decides where the token goes and how errors look.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    New,
    Legacy,
    /// Session webhook: no token, legacy-style errcode body.
    Webhook,
}

/// What one attempt ended in, before the retry decision.
enum Outcome {
    Done(Value),
    AuthFailed(DingTalkError),
    Throttled(DingTalkError),
    ServerError(DingTalkError),
    Fatal(DingTalkError),
}

fn is_throttle_code(code: &str) -> bool {
    code.starts_with("Forbidden.AccessDenied.QpsLimit")
}

fn trim_base(s: &str) -> String {
    s.trim_end_matches('/').to_owned()
}

impl DingTalkClient {
    pub fn new(cfg: &DingTalkConfig, clock: SharedClock) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            // Building only fails if the TLS backend cannot initialise; fall back to defaults.
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            inner: Arc::new(Inner {
                http,
                app_key: cfg.app_key.clone(),
                app_secret: cfg.app_secret.clone(),
                api_base: trim_base(&cfg.api_base),
                oapi_base: trim_base(&cfg.oapi_base),
                robot_code: cfg.robot_code().to_owned(),
                agent_id: cfg.agent_id,
                clock,
                retry: RetryPolicy::default(),
                token: tokio::sync::Mutex::new(None),
                token_fetches: AtomicU64::new(0),
            }),
        }
    }

    /// The same client with another retry policy (tests use millisecond delays). The result
    /// starts with an empty token cache and does not share it with `self`.
    pub fn with_retry_policy(self, retry: RetryPolicy) -> Self {
        let i = &self.inner;
        Self {
            inner: Arc::new(Inner {
                http: i.http.clone(),
                app_key: i.app_key.clone(),
                app_secret: i.app_secret.clone(),
                api_base: i.api_base.clone(),
                oapi_base: i.oapi_base.clone(),
                robot_code: i.robot_code.clone(),
                agent_id: i.agent_id,
                clock: i.clock.clone(),
                retry,
                token: tokio::sync::Mutex::new(None),
                token_fetches: AtomicU64::new(0),
            }),
        }
    }

    /// How many times a token was fetched from DingTalk (for metrics and tests).
    pub fn token_fetch_count(&self) -> u64 {
        self.inner.token_fetches.load(Ordering::Relaxed)
    }

    /// A valid access token, fetched at most once at a time.
    async fn token(&self) -> Result<Secret> {
        let mut guard = self.inner.token.lock().await;
        let now = self.inner.clock.now_ms();
        if let Some(t) = guard.as_ref() {
            if now < t.refresh_at_ms {
                return Ok(t.value.clone());
            }
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *guard = Some(fresh);
        Ok(value)
    }

    /// Drops the cached token if it is still the one that failed, so a token another task
    /// already refreshed is not thrown away.
    async fn invalidate(&self, failed: &Secret) {
        let mut guard = self.inner.token.lock().await;
        if guard.as_ref().is_some_and(|t| &t.value == failed) {
            *guard = None;
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken> {
        self.inner.token_fetches.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/v1.0/oauth2/accessToken", self.inner.api_base);
        let body =
            json!({"appKey": self.inner.app_key, "appSecret": self.inner.app_secret.expose()});
        let mut throttled = 0;
        loop {
            let started = self.inner.clock.now_ms();
            let resp = self
                .inner
                .http
                .post(&url)
                .header("accept", "application/json")
                .json(&body)
                .send()
                .await
                .map_err(|e| DingTalkError::Http(e.without_url().to_string()))?;
            let status = resp.status().as_u16();
            let v = read_json(resp).await?;
            if (200..300).contains(&status) {
                let token = v
                    .get("accessToken")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        DingTalkError::Decode("token response without accessToken".into())
                    })?;
                let ttl_s = v.get("expireIn").and_then(Value::as_i64).unwrap_or(7200);
                return Ok(CachedToken {
                    value: Secret::new(token),
                    refresh_at_ms: started + ttl_s * 1000 - REFRESH_MARGIN_MS,
                });
            }
            let (code, message) = new_api_error(&v);
            if is_throttle_code(&code) && throttled < self.inner.retry.max_throttle_retries {
                throttled += 1;
                self.sleep_throttle().await;
                continue;
            }
            tracing::warn!(status, code = %code, "DingTalk access token request refused");
            return Err(match status {
                400 | 401 => DingTalkError::Auth { code, message },
                403 if is_throttle_code(&code) => DingTalkError::Throttled { code },
                403 => DingTalkError::PermissionDenied { code, message },
                _ => DingTalkError::Api {
                    status,
                    code,
                    message,
                },
            });
        }
    }

    async fn sleep_throttle(&self) {
        let base = self.inner.retry.throttle_base;
        let jitter_max = (base.as_millis() / 2) as u64;
        let jitter = if jitter_max == 0 {
            0
        } else {
            rand::rng().random_range(0..=jitter_max)
        };
        tokio::time::sleep(base + Duration::from_millis(jitter)).await;
    }

    /// One API call with the §9.3 policy: auth failure → refetch token once and retry once;
    /// QPS rejection → back off and retry; 5xx / -1 / transport errors → retry only when
    /// `idempotent`.
    async fn call(
        &self,
        style: Style,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Value> {
        let retry = &self.inner.retry;
        let (mut auth_retried, mut throttled, mut server) = (false, 0u32, 0u32);
        loop {
            let token = match style {
                Style::Webhook => None,
                _ => match self.token().await {
                    Ok(t) => Some(t),
                    // Nothing was sent yet, so retrying the token fetch is safe for every call.
                    Err(e) if e.is_transient() && server < retry.max_server_error_retries => {
                        let delay = retry.server_error_base * 2u32.saturating_pow(server);
                        server += 1;
                        tracing::info!(attempt = server, "DingTalk token fetch failed; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            let outcome = self
                .attempt(style, method.clone(), url, query, body, token.as_ref())
                .await;
            match outcome {
                Outcome::Done(v) => return Ok(v),
                Outcome::AuthFailed(e) => {
                    if auth_retried {
                        return Err(e);
                    }
                    auth_retried = true;
                    if let Some(t) = &token {
                        self.invalidate(t).await;
                    }
                    tracing::info!(path = %path_of(url), "DingTalk rejected the token; refreshing once");
                }
                Outcome::Throttled(e) => {
                    if throttled >= retry.max_throttle_retries {
                        return Err(e);
                    }
                    throttled += 1;
                    tracing::info!(path = %path_of(url), attempt = throttled, "DingTalk QPS limit; backing off");
                    self.sleep_throttle().await;
                }
                Outcome::ServerError(e) => {
                    if !idempotent || server >= retry.max_server_error_retries {
                        return Err(e);
                    }
                    let delay = retry.server_error_base * 2u32.saturating_pow(server);
                    server += 1;
                    tracing::info!(path = %path_of(url), attempt = server, "DingTalk server error; retrying");
                    tokio::time::sleep(delay).await;
                }
                Outcome::Fatal(e) => return Err(e),
            }
        }
    }

    async fn attempt(
        &self,
        style: Style,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: Option<&Secret>,
    ) -> Outcome {
        let mut req = self
            .inner
            .http
            .request(method, url)
            .header("accept", "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        match (style, token) {
            (Style::New, Some(t)) => req = req.header("x-acs-dingtalk-access-token", t.expose()),
            (Style::Legacy, Some(t)) => req = req.query(&[("access_token", t.expose())]),
            _ => {}
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            // `without_url`: the legacy URL carries the token in its query.
            Err(e) => {
                return Outcome::ServerError(DingTalkError::Http(e.without_url().to_string()))
            }
        };
        let status = resp.status().as_u16();
        let v = match read_json(resp).await {
            Ok(v) => v,
            Err(e) if status >= 500 => return Outcome::ServerError(e),
            Err(e) => return Outcome::Fatal(e),
        };
        match style {
            Style::New => classify_new(status, v),
            Style::Legacy | Style::Webhook => classify_legacy(status, v),
        }
    }

    fn check_webhook_origin(&self, webhook_url: &str) -> Result<()> {
        let url = url::Url::parse(webhook_url)
            .map_err(|_| DingTalkError::Config("session webhook is not a valid URL".into()))?;
        let official = url.scheme() == "https" && url.host_str() == Some("oapi.dingtalk.com");
        let configured =
            url::Url::parse(&self.inner.oapi_base).is_ok_and(|base| base.origin() == url.origin());
        if official || configured {
            Ok(())
        } else {
            Err(DingTalkError::Config(format!(
                "session webhook host {:?} is neither oapi.dingtalk.com nor the configured oapi_base",
                url.host_str().unwrap_or("")
            )))
        }
    }

    fn api(&self, path: &str) -> String {
        format!("{}{}", self.inner.api_base, path)
    }
    fn oapi(&self, path: &str) -> String {
        format!("{}{}", self.inner.oapi_base, path)
    }

    /// Looks a user up by userid (§7).
    pub async fn get_user(&self, user: &DingUserId) -> Result<DingUser> {
        let body = json!({"userid": user.as_str(), "language": "zh_CN"});
        let v = self
            .call(
                Style::Legacy,
                Method::POST,
                &self.oapi("/topapi/v2/user/get"),
                &[],
                Some(&body),
                true,
            )
            .await?;
        let r = v
            .get("result")
            .ok_or_else(|| DingTalkError::Decode("user/get without result".into()))?;
        let s = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(DingUser {
            userid: DingUserId::new(s("userid").unwrap_or_else(|| user.as_str().to_owned())),
            name: s("name").unwrap_or_default(),
            email: s("email"),
            org_email: s("org_email"),
            mobile: s("mobile"),
            job_number: s("job_number"),
            dept_ids: r
                .get("dept_id_list")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default(),
            active: r.get("active").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// Replies through an inbound message's session webhook (§4.2b). Not retried on server
    /// errors: a retry could post the reply twice.
    ///
    /// The URL must point at DingTalk's oapi host (or the configured `oapi_base`): it arrives
    /// inside an inbound message, and the bot must not be made to POST anywhere else.
    pub async fn reply_webhook(&self, webhook_url: &str, msg: &OutMessage) -> Result<()> {
        self.check_webhook_origin(webhook_url)?;
        let body = msg.to_webhook_body()?;
        self.call(
            Style::Webhook,
            Method::POST,
            webhook_url,
            &[],
            Some(&body),
            false,
        )
        .await
        .map(|_| ())
    }

    /// 1:1 robot messages (§4.2c), 20 recipients per call. Stops at the first failing chunk;
    /// earlier chunks have been sent by then.
    pub async fn send_to_users(
        &self,
        user_ids: &[DingUserId],
        msg: &OutMessage,
    ) -> Result<SendReport> {
        let payload = msg.to_robot_payload()?;
        let mut report = SendReport::default();
        for chunk in user_ids.chunks(BATCH_SEND_CHUNK) {
            let body = json!({
                "robotCode": self.inner.robot_code,
                "userIds": chunk,
                "msgKey": payload.msg_key,
                "msgParam": payload.msg_param,
            });
            let v = self
                .call(
                    Style::New,
                    Method::POST,
                    &self.api("/v1.0/robot/oToMessages/batchSend"),
                    &[],
                    Some(&body),
                    false,
                )
                .await?;
            if let Some(k) = v.get("processQueryKey").and_then(Value::as_str) {
                report.process_query_keys.push(k.to_owned());
            }
            report
                .invalid_user_ids
                .extend(ids_of(&v, "invalidStaffIdList"));
            report
                .flow_controlled_user_ids
                .extend(ids_of(&v, "flowControlledStaffIdList"));
        }
        Ok(report)
    }

    /// A robot message into a group the robot is in; returns the `processQueryKey`.
    pub async fn send_to_group(
        &self,
        open_conversation_id: &str,
        msg: &OutMessage,
    ) -> Result<String> {
        let payload = msg.to_group_payload()?;
        let body = json!({
            "robotCode": self.inner.robot_code,
            "openConversationId": open_conversation_id,
            "msgKey": payload.msg_key,
            "msgParam": payload.msg_param,
        });
        let v = self
            .call(
                Style::New,
                Method::POST,
                &self.api("/v1.0/robot/groupMessages/send"),
                &[],
                Some(&body),
                false,
            )
            .await?;
        v.get("processQueryKey")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                DingTalkError::Decode("groupMessages/send without processQueryKey".into())
            })
    }

    /// The JSON body of `card/instances/createAndDeliver` (§5.1).
    pub fn card_delivery_body(&self, req: &CardDelivery, private: &PrivateCardData) -> Value {
        let mut body = json!({
            "cardTemplateId": req.template_id,
            "outTrackId": req.out_track_id,
            "cardData": {"cardParamMap": req.params},
        });
        if !private.is_empty() {
            body["privateData"] = private_json(private);
        }
        match &req.callback_route_key {
            Some(key) => {
                body["callbackType"] = json!("HTTP");
                body["callbackRouteKey"] = json!(key);
            }
            None => body["callbackType"] = json!("STREAM"),
        }
        match &req.to {
            CardTarget::User(u) => {
                body["openSpaceId"] = json!(format!("dtv1.card//IM_ROBOT.{}", u.as_str()));
                body["userIdType"] = json!(1);
                body["imRobotOpenSpaceModel"] = json!({"supportForward": false});
                body["imRobotOpenDeliverModel"] =
                    json!({"spaceType": "IM_ROBOT", "robotCode": self.inner.robot_code});
            }
            CardTarget::Group {
                open_conversation_id,
                recipients,
            } => {
                body["openSpaceId"] = json!(format!("dtv1.card//IM_GROUP.{open_conversation_id}"));
                body["imGroupOpenSpaceModel"] = json!({"supportForward": false});
                let mut deliver = json!({"robotCode": self.inner.robot_code});
                if !recipients.is_empty() {
                    deliver["recipients"] = json!(recipients);
                }
                body["imGroupOpenDeliverModel"] = deliver;
            }
        }
        body
    }

    /// Creates and delivers an interactive card. Delivering an `out_track_id` that already
    /// exists counts as success, so the outbox can retry freely.
    pub async fn create_and_deliver_card(&self, req: CardDelivery) -> Result<()> {
        self.create_and_deliver_card_with_private(req, &PrivateCardData::new())
            .await
    }

    /// As `create_and_deliver_card`, with per-user overrides of the card variables (e.g.
    /// `canApprove` only for the approvers).
    pub async fn create_and_deliver_card_with_private(
        &self,
        req: CardDelivery,
        private: &PrivateCardData,
    ) -> Result<()> {
        let body = self.card_delivery_body(&req, private);
        let res = self
            .call(
                Style::New,
                Method::POST,
                &self.api("/v1.0/card/instances/createAndDeliver"),
                &[],
                Some(&body),
                true,
            )
            .await;
        let v = match res {
            Ok(v) => v,
            Err(DingTalkError::Api { code, .. }) if code == "param.cardAlreadyExist" => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        let results = v
            .pointer("/result/deliverResults")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                DingTalkError::Decode("createAndDeliver without deliverResults".into())
            })?;
        for r in results {
            if r.get("success").and_then(Value::as_bool) != Some(true) {
                return Err(DingTalkError::CardNotDelivered {
                    space_id: str_field(r, "spaceId"),
                    message: str_field(r, "errorMsg"),
                });
            }
        }
        Ok(())
    }

    /// Merges `params` into a card's public data (§5.2).
    pub async fn update_card(
        &self,
        out_track_id: &str,
        params: BTreeMap<String, String>,
    ) -> Result<()> {
        self.update_card_with_private(out_track_id, params, &PrivateCardData::new())
            .await
    }

    /// Merges `params` into the public data and each user's entry of `private` into that
    /// user's private data.
    pub async fn update_card_with_private(
        &self,
        out_track_id: &str,
        params: BTreeMap<String, String>,
        private: &PrivateCardData,
    ) -> Result<()> {
        let mut body = json!({
            "outTrackId": out_track_id,
            "cardData": {"cardParamMap": params},
            "cardUpdateOptions": {
                "updateCardDataByKey": true,
                "updatePrivateDataByKey": !private.is_empty(),
            },
            "userIdType": 1,
        });
        if !private.is_empty() {
            body["privateData"] = private_json(private);
        }
        self.call(
            Style::New,
            Method::PUT,
            &self.api("/v1.0/card/instances"),
            &[],
            Some(&body),
            true,
        )
        .await
        .map(|_| ())
    }

    /// Registers (or with `force_update`, replaces) the HTTP callback URL of a card route key
    /// (§5.3). `api_secret` is what DingTalk signs callbacks with.
    pub async fn register_card_callback(
        &self,
        route_key: &str,
        callback_url: &str,
        api_secret: &Secret,
        force_update: bool,
    ) -> Result<()> {
        let body = json!({
            "callbackRouteKey": route_key,
            "callbackUrl": callback_url,
            "apiSecret": api_secret.expose(),
            "forceUpdate": force_update,
        });
        self.call(
            Style::New,
            Method::POST,
            &self.api("/v1.0/card/callbacks/register"),
            &[],
            Some(&body),
            true,
        )
        .await
        .map(|_| ())
    }

    /// The `processCode` of an approval template, looked up by its name (§6.4).
    pub async fn process_code_by_name(&self, name: &str) -> Result<String> {
        let v = self
            .call(
                Style::New,
                Method::GET,
                &self.api("/v1.0/workflow/processCentres/schemaNames/processCodes"),
                &[("name", name)],
                None,
                true,
            )
            .await?;
        v.pointer("/result/processCode")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| DingTalkError::Decode("processCodes lookup without processCode".into()))
    }

    /// The JSON body of `workflow/processInstances` (§6.1).
    pub fn approval_start_body(&self, req: &ApprovalStart) -> Value {
        let mut body = json!({
            "originatorUserId": req.originator,
            "processCode": req.process_code,
            "deptId": req.dept_id,
            "formComponentValues": req.form.iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect::<Vec<_>>(),
        });
        if let Some(agent) = self.inner.agent_id {
            body["microappAgentId"] = json!(agent);
        }
        match req.approvers.len() {
            0 => {}
            1 => body["approvers"] = json!([{"actionType": "NONE", "userIds": req.approvers}]),
            _ => body["approvers"] = json!([{"actionType": "OR", "userIds": req.approvers}]),
        }
        body
    }

    /// Starts an approval and returns its instance id. Never retried on server errors: the
    /// API has no idempotency key, so a blind retry could open a second approval.
    pub async fn start_approval(&self, req: ApprovalStart) -> Result<String> {
        let body = self.approval_start_body(&req);
        let v = self
            .call(
                Style::New,
                Method::POST,
                &self.api("/v1.0/workflow/processInstances"),
                &[],
                Some(&body),
                false,
            )
            .await?;
        v.get("instanceId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| DingTalkError::Decode("processInstances without instanceId".into()))
    }

    pub async fn get_approval(&self, instance_id: &str) -> Result<ApprovalState> {
        self.get_approval_detail(instance_id).await.map(|d| d.state)
    }

    /// One instance with who started it and its form values (§6.2).
    pub async fn get_approval_detail(&self, instance_id: &str) -> Result<ApprovalDetail> {
        let v = self
            .call(
                Style::New,
                Method::GET,
                &self.api("/v1.0/workflow/processInstances"),
                &[("processInstanceId", instance_id)],
                None,
                true,
            )
            .await?;
        let r = v
            .get("result")
            .ok_or_else(|| DingTalkError::Decode("processInstances GET without result".into()))?;
        let status = r
            .get("status")
            .and_then(Value::as_str)
            .map(ApprovalStatus::parse)
            .ok_or_else(|| DingTalkError::Decode("approval without status".into()))?;
        let result = r
            .get("result")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| match s.to_ascii_lowercase().as_str() {
                "agree" => ApprovalResult::Agree,
                "refuse" => ApprovalResult::Refuse,
                _ => ApprovalResult::Other(s.to_owned()),
            });
        let originator = r
            .get("originatorUserId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(DingUserId::new);
        // Components without a string name or value (tables, notes) cannot carry our fields.
        let form = r
            .get("formComponentValues")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|c| {
                        let name = c.get("name").and_then(Value::as_str)?;
                        let value = c.get("value").and_then(Value::as_str)?;
                        Some((name.to_owned(), value.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ApprovalDetail {
            state: ApprovalState { status, result },
            originator,
            form,
        })
    }

    /// Ids of the instances of one template started in a time window, optionally only by some
    /// originators (§6.4 `processes/instanceIds/query`), following `nextToken` to the end. A
    /// read, so it is retried like one even though it is a POST.
    pub async fn list_approval_instance_ids(
        &self,
        q: &ApprovalInstanceQuery,
    ) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut next: i64 = 0;
        for _ in 0..MAX_INSTANCE_ID_PAGES {
            let mut body = json!({
                "processCode": q.process_code,
                "startTime": q.start_ms,
                "nextToken": next,
                "maxResults": INSTANCE_IDS_PAGE,
            });
            if let Some(end) = q.end_ms {
                body["endTime"] = json!(end);
            }
            if !q.originators.is_empty() {
                body["userIds"] = json!(q.originators);
            }
            let v = self
                .call(
                    Style::New,
                    Method::POST,
                    &self.api("/v1.0/workflow/processes/instanceIds/query"),
                    &[],
                    Some(&body),
                    true,
                )
                .await?;
            let r = v
                .get("result")
                .ok_or_else(|| DingTalkError::Decode("instanceIds query without result".into()))?;
            let list = r
                .get("list")
                .and_then(Value::as_array)
                .ok_or_else(|| DingTalkError::Decode("instanceIds query without list".into()))?;
            ids.extend(
                list.iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            // The token comes as a number or a numeric string; absent, or not past this page,
            // means the last page.
            let token = match r.get("nextToken") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            };
            match token {
                Some(t) if t > next && !list.is_empty() => next = t,
                _ => return Ok(ids),
            }
        }
        Err(DingTalkError::Decode(format!(
            "instanceIds query still paging after {MAX_INSTANCE_ID_PAGES} pages"
        )))
    }

    /// Revokes a running approval. `operator: None` terminates as the system (`isSystem`);
    /// otherwise the operator must be the originator.
    pub async fn terminate_approval(
        &self,
        instance_id: &str,
        operator: Option<&DingUserId>,
        remark: &str,
    ) -> Result<()> {
        let mut body = json!({
            "processInstanceId": instance_id,
            "isSystem": operator.is_none(),
            "remark": remark,
        });
        if let Some(op) = operator {
            body["operatingUserId"] = json!(op);
        }
        let v = self
            .call(
                Style::New,
                Method::POST,
                &self.api("/v1.0/workflow/processInstances/terminate"),
                &[],
                Some(&body),
                false,
            )
            .await?;
        if v.get("result").and_then(Value::as_bool) == Some(false) {
            return Err(DingTalkError::Api {
                status: 200,
                code: "terminateRefused".into(),
                message: "terminate returned result=false".into(),
            });
        }
        Ok(())
    }

    /// Work notification (§8); returns one `task_id` per call (100 recipients each).
    pub async fn send_work_notice(
        &self,
        user_ids: &[DingUserId],
        msg: &OutMessage,
    ) -> Result<Vec<i64>> {
        let agent_id = self.inner.agent_id.ok_or_else(|| {
            DingTalkError::Config("dingtalk.agent_id is required for work notifications".into())
        })?;
        let msg = msg.to_work_notice_msg()?;
        let mut tasks = Vec::new();
        for chunk in user_ids.chunks(WORK_NOTICE_CHUNK) {
            let list = chunk
                .iter()
                .map(DingUserId::as_str)
                .collect::<Vec<_>>()
                .join(",");
            let body = json!({"agent_id": agent_id, "userid_list": list, "msg": msg});
            let v = self
                .call(
                    Style::Legacy,
                    Method::POST,
                    &self.oapi("/topapi/message/corpconversation/asyncsend_v2"),
                    &[],
                    Some(&body),
                    false,
                )
                .await?;
            tasks.push(v.get("task_id").and_then(Value::as_i64).unwrap_or_default());
        }
        Ok(tasks)
    }
}

fn private_json(private: &PrivateCardData) -> Value {
    Value::Object(
        private
            .iter()
            .map(|(u, m)| (u.as_str().to_owned(), json!({"cardParamMap": m})))
            .collect(),
    )
}

fn path_of(url: &str) -> String {
    // Only the path goes to logs: a webhook URL's query is a credential.
    url::Url::parse(url)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| "<unparsable url>".into())
}

fn str_field(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn ids_of(v: &Value, k: &str) -> Vec<DingUserId> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(DingUserId::from)
                .collect()
        })
        .unwrap_or_default()
}

async fn read_json(resp: reqwest::Response) -> Result<Value> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| DingTalkError::Http(e.without_url().to_string()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| DingTalkError::Decode(format!("body is not JSON: {e}")))
}

fn new_api_error(v: &Value) -> (String, String) {
    (str_field(v, "code"), str_field(v, "message"))
}

fn classify_new(status: u16, v: Value) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Done(v);
    }
    let (code, message) = new_api_error(&v);
    if code == "InvalidAuthentication" || code.starts_with("AuthenticationFailed") || status == 401
    {
        return Outcome::AuthFailed(DingTalkError::Auth { code, message });
    }
    if is_throttle_code(&code) {
        return Outcome::Throttled(DingTalkError::Throttled { code });
    }
    if status == 403 && code.starts_with("Forbidden.AccessDenied.ApiCountLimit") {
        // The monthly quota will not recover within a retry window.
        return Outcome::Fatal(DingTalkError::Throttled { code });
    }
    if status == 403 {
        return Outcome::Fatal(DingTalkError::PermissionDenied { code, message });
    }
    let err = DingTalkError::Api {
        status,
        code,
        message,
    };
    if status >= 500 {
        Outcome::ServerError(err)
    } else {
        Outcome::Fatal(err)
    }
}

fn classify_legacy(status: u16, v: Value) -> Outcome {
    if status >= 500 {
        return Outcome::ServerError(DingTalkError::Api {
            status,
            code: String::new(),
            message: str_field(&v, "errmsg"),
        });
    }
    let Some(errcode) = v.get("errcode").and_then(Value::as_i64) else {
        return Outcome::Fatal(DingTalkError::Decode(format!(
            "legacy response (HTTP {status}) without errcode"
        )));
    };
    if errcode == 0 {
        return Outcome::Done(v);
    }
    let errmsg = str_field(&v, "errmsg");
    let sub_code = match v.get("sub_code") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    match errcode {
        88 | 40014 | 42001 | 40001 => Outcome::AuthFailed(DingTalkError::Auth {
            code: if sub_code.is_empty() {
                errcode.to_string()
            } else {
                format!("{errcode}/{sub_code}")
            },
            message: errmsg,
        }),
        90018 | 90002 => Outcome::Throttled(DingTalkError::Throttled {
            code: errcode.to_string(),
        }),
        90020 => Outcome::Fatal(DingTalkError::Throttled {
            code: errcode.to_string(),
        }),
        -1 => Outcome::ServerError(DingTalkError::Legacy { errcode, errmsg }),
        60011 => Outcome::Fatal(DingTalkError::PermissionDenied {
            code: errcode.to_string(),
            message: errmsg,
        }),
        _ if sub_code == "60011" => Outcome::Fatal(DingTalkError::PermissionDenied {
            code: format!("{errcode}/{sub_code}"),
            message: errmsg,
        }),
        _ => Outcome::Fatal(DingTalkError::Legacy { errcode, errmsg }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_api_errors_are_typed() {
        let auth = classify_new(
            400,
            json!({"code":"InvalidAuthentication","message":"不合法的access_token"}),
        );
        assert!(matches!(
            auth,
            Outcome::AuthFailed(DingTalkError::Auth { .. })
        ));
        let qps = classify_new(
            403,
            json!({"code":"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"}),
        );
        assert!(matches!(
            qps,
            Outcome::Throttled(DingTalkError::Throttled { .. })
        ));
        let perm = classify_new(
            403,
            json!({"code":"Forbidden.AccessDenied.AccessTokenPermissionDenied","message":"x"}),
        );
        assert!(matches!(
            perm,
            Outcome::Fatal(DingTalkError::PermissionDenied { .. })
        ));
        assert!(matches!(
            classify_new(500, json!({"code":"systemError"})),
            Outcome::ServerError(_)
        ));
        assert!(matches!(
            classify_new(400, json!({"code":"invalidParameter"})),
            Outcome::Fatal(DingTalkError::Api { status: 400, .. })
        ));
    }

    #[test]
    fn legacy_errors_are_typed() {
        assert!(matches!(
            classify_legacy(200, json!({"errcode":0})),
            Outcome::Done(_)
        ));
        assert!(matches!(
            classify_legacy(200, json!({"errcode":88,"sub_code":"40014"})),
            Outcome::AuthFailed(_)
        ));
        assert!(matches!(
            classify_legacy(200, json!({"errcode":90018})),
            Outcome::Throttled(_)
        ));
        assert!(matches!(
            classify_legacy(200, json!({"errcode":-1})),
            Outcome::ServerError(_)
        ));
        assert!(matches!(
            classify_legacy(200, json!({"errcode":60011})),
            Outcome::Fatal(DingTalkError::PermissionDenied { .. })
        ));
        assert!(matches!(
            classify_legacy(200, json!({"errcode":60121,"errmsg":"找不到该用户"})),
            Outcome::Fatal(DingTalkError::Legacy { errcode: 60121, .. })
        ));
        assert!(matches!(
            classify_legacy(200, json!({"ok":true})),
            Outcome::Fatal(DingTalkError::Decode(_))
        ));
    }

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn client_futures_are_send() {
        let cfg = DingTalkConfig::default();
        let c = DingTalkClient::new(&cfg, Arc::new(crate::clock::SystemClock));
        let u = DingUserId::new("u");
        assert_send(&c.get_user(&u));
        assert_send(&c.send_to_users(&[], &OutMessage::text("x")));
        assert_send(&c.start_approval(ApprovalStart {
            process_code: String::new(),
            originator: u.clone(),
            dept_id: -1,
            approvers: vec![],
            form: vec![],
        }));
    }

    #[test]
    fn webhook_urls_must_point_at_dingtalk() {
        let cfg = DingTalkConfig {
            oapi_base: "http://127.0.0.1:4000".into(),
            ..DingTalkConfig::default()
        };
        let c = DingTalkClient::new(&cfg, Arc::new(crate::clock::SystemClock));
        assert!(c
            .check_webhook_origin("https://oapi.dingtalk.com/robot/sendBySession?session=x")
            .is_ok());
        assert!(c
            .check_webhook_origin("http://127.0.0.1:4000/robot/sendBySession?session=x")
            .is_ok());
        for bad in [
            "http://oapi.dingtalk.com/robot/sendBySession",
            "https://evil.example/robot/sendBySession",
            "http://127.0.0.1:4001/robot/sendBySession",
            "not a url",
        ] {
            assert!(
                matches!(c.check_webhook_origin(bad), Err(DingTalkError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        let api = |status| DingTalkError::Api {
            status,
            code: String::new(),
            message: String::new(),
        };
        assert!(api(503).is_transient());
        assert!(!api(400).is_transient());
        assert!(DingTalkError::Http("reset".into()).is_transient());
        assert!(DingTalkError::Throttled {
            code: "Forbidden.AccessDenied.QpsLimitForApi".into()
        }
        .is_transient());
        assert!(!DingTalkError::Throttled {
            code: "Forbidden.AccessDenied.ApiCountLimitForOrg".into()
        }
        .is_transient());
        assert!(DingTalkError::Legacy {
            errcode: -1,
            errmsg: String::new()
        }
        .is_transient());
        assert!(!DingTalkError::Legacy {
            errcode: 60121,
            errmsg: String::new()
        }
        .is_transient());
        assert!(!DingTalkError::Auth {
            code: String::new(),
            message: String::new()
        }
        .is_transient());
    }

    #[test]
    fn approval_state_is_approved_only_when_completed_and_agreed() {
        let s = |st, r| ApprovalState {
            status: st,
            result: r,
        };
        assert!(s(ApprovalStatus::Completed, Some(ApprovalResult::Agree)).is_approved());
        assert!(!s(ApprovalStatus::Completed, Some(ApprovalResult::Refuse)).is_approved());
        assert!(!s(ApprovalStatus::Running, Some(ApprovalResult::Agree)).is_approved());
        assert!(!s(ApprovalStatus::Terminated, None).is_approved());
    }
}

// DingTalk login for the access console (OAuth2 web login and the in-app auth code).
mod login;
