//! The transport half of the JumpServer client: one place that builds every request (org header,
//! Date from the injected clock, the configured credentials), retries what is safe to retry,
//! logs in with password + TOTP when configured, walks `next` links, and detects the server line.
use super::config::{AuthMode, JumpServerConfig};
use super::error::{JmsError, Words};
use super::httpsig;
use super::totp;
use crate::clock::SharedClock;
use crate::secret::Secret;
use jiff::{SignedDuration, Timestamp};
use rand::Rng as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Response bodies past this size are parsed off the runtime's worker (`crate::offload`).
const LARGE_BODY: usize = 64 * 1024;

/// The JumpServer release line, which decides the API shape (§0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerLine {
    V2,
    V3,
    V4,
}

impl std::fmt::Display for ServerLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerLine::V2 => "v2",
            ServerLine::V3 => "v3",
            ServerLine::V4 => "v4",
        })
    }
}

/// Which failures a call may be repeated after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// GET/PATCH/DELETE/PUT and creates whose duplicate answer we resolve by looking up.
    Idempotent,
    /// Only when the server certainly did not act: 429, or the connection never opened.
    NotExecuted,
}

struct Bearer {
    token: Secret,
    renew_at: Timestamp,
}

enum Auth {
    AccessKey {
        id: String,
        secret: Secret,
    },
    Token(Secret),
    Password {
        username: String,
        password: Secret,
        otp_seed: Secret,
        bearer: tokio::sync::Mutex<Option<Bearer>>,
    },
}

pub(crate) struct Inner {
    pub(crate) cfg: JumpServerConfig,
    base: url::Url,
    http: reqwest::Client,
    pub(crate) clock: SharedClock,
    auth: Auth,
    calls: AtomicU64,
    pub(crate) version: Mutex<Option<ServerLine>>,
    pub(crate) platforms: Mutex<HashMap<String, i64>>,
    pub(crate) root_node: Mutex<Option<super::api::Node>>,
    /// Direct children of the root by value (the systems grants name). Positive entries only:
    /// a miss is looked up, and an entry the server no longer knows is dropped on first use.
    pub(crate) child_nodes: Mutex<HashMap<String, super::api::Node>>,
    /// Calls by endpoint family, status and latency (attached by `Bot::start`).
    metrics: crate::metrics::MetricsSlot,
}

/// Typed async client; cheap to clone (shared connection pool, caches and login).
#[derive(Clone)]
pub struct JmsClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for JmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JmsClient")
            .field("url", &self.inner.cfg.url)
            .field("org", &self.inner.cfg.org)
            .finish_non_exhaustive()
    }
}

/// One request, before auth.
pub(crate) struct Req<'a> {
    pub method: Method,
    /// Path plus optional `?query`, already encoded exactly as it will be sent.
    pub target: String,
    pub body: Option<&'a Value>,
    pub retry: Retry,
    /// Overrides the configured org (looking a user up under the root org).
    pub org: Option<&'a str>,
    pub anonymous: bool,
}

impl<'a> Req<'a> {
    pub fn get(path: &str, query: &[(&str, &str)]) -> Self {
        Self::new(Method::GET, target(path, query), None, Retry::Idempotent)
    }
    pub fn new(method: Method, target: String, body: Option<&'a Value>, retry: Retry) -> Self {
        Self {
            method,
            target,
            body,
            retry,
            org: None,
            anonymous: false,
        }
    }
}

/// `path?k=v&…` with `application/x-www-form-urlencoded` keys and values: the only query form
/// whose bytes Django hands to the signature check unchanged (§2.1).
pub fn target(path: &str, query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        ser.append_pair(k, v);
    }
    format!("{path}?{}", ser.finish())
}

/// IMF-fixdate for the `Date` header.
pub fn http_date(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// JumpServer datetimes: `2026/11/30 18:00:00 +0800`, or ISO-8601 with an offset.
pub fn parse_jms_time(s: &str) -> Option<Timestamp> {
    Timestamp::strptime("%Y/%m/%d %H:%M:%S %z", s)
        .ok()
        .or_else(|| s.parse::<Timestamp>().ok())
        .or_else(|| Timestamp::strptime("%Y-%m-%d %H:%M:%S %z", s).ok())
}

/// How we send datetimes: always with an explicit offset (pitfall 10).
pub fn fmt_jms_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

struct Sent {
    status: StatusCode,
    retry_after: Option<Duration>,
    /// As reqwest gathered it, not copied: a sync's list pages run to megabytes.
    body: bytes::Bytes,
}

impl JmsClient {
    /// Builds a client; refuses a config that `validate` complains about.
    pub fn new(cfg: JumpServerConfig, clock: SharedClock) -> Result<Self, JmsError> {
        let problems = cfg.validate();
        if !problems.is_empty() {
            return Err(JmsError::Config(problems.join("; ")));
        }
        let base = url::Url::parse(cfg.url.trim_end_matches('/'))
            .map_err(|e| JmsError::Config(format!("jumpserver.url: {e}")))?;
        let mode = cfg
            .auth_mode()
            .ok_or_else(|| JmsError::Config("jumpserver: no auth mode".into()))?;
        let auth = match mode {
            AuthMode::AccessKey => Auth::AccessKey {
                id: cfg.access_key_id.clone(),
                secret: cfg.access_key_secret.clone(),
            },
            AuthMode::PrivateToken => Auth::Token(cfg.private_token.clone()),
            AuthMode::Password => Auth::Password {
                username: cfg.username.clone(),
                password: cfg.password.clone(),
                otp_seed: cfg.otp_seed.clone(),
                bearer: tokio::sync::Mutex::new(None),
            },
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .timeout(Duration::from_secs(cfg.request_timeout_secs))
            // A 301 means a missing trailing slash; following it would turn a POST into a GET.
            .redirect(reqwest::redirect::Policy::none())
            // The MFA login's three steps are tied together only by the session cookie.
            .cookie_store(mode == AuthMode::Password)
            .build()
            .map_err(|e| JmsError::Config(format!("http client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                base,
                http,
                clock,
                auth,
                calls: AtomicU64::new(0),
                version: Mutex::new(None),
                platforms: Mutex::new(HashMap::new()),
                root_node: Mutex::new(None),
                child_nodes: Mutex::new(HashMap::new()),
                metrics: Default::default(),
            }),
        })
    }

    pub fn config(&self) -> &JumpServerConfig {
        &self.inner.cfg
    }

    /// Counts this client's calls in `m` from now on.
    pub fn attach_metrics(&self, m: &crate::metrics::Metrics) {
        self.inner.metrics.attach(m);
    }

    /// HTTP requests sent so far (every attempt, logins included).
    pub fn calls_made(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    fn url_for(&self, target: &str) -> Result<url::Url, JmsError> {
        let mut s = self.inner.base.as_str().trim_end_matches('/').to_owned();
        s.push_str(target);
        url::Url::parse(&s).map_err(|e| {
            JmsError::Invalid(Words::new(
                format!("bad request target: {e}"),
                format!("请求地址无效：{e}"),
            ))
        })
    }

    /// Sends once; `Err((e, executed))` says whether the server may have acted.
    async fn send_once(
        &self,
        req: &Req<'_>,
        auth_header: Option<String>,
    ) -> Result<Sent, (JmsError, bool)> {
        let url = self.url_for(&req.target).map_err(|e| (e, false))?;
        // Sign the request-target exactly as the HTTP client will put it on the wire.
        let wire_target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let date = http_date(self.inner.clock.now());
        let org = req.org.unwrap_or(&self.inner.cfg.org).to_owned();
        let mut rb = self
            .inner
            .http
            .request(req.method.clone(), url)
            .header("Accept", "application/json")
            .header("Accept-Language", "en")
            .header("Date", &date)
            .header("X-JMS-ORG", &org);
        if let Some(b) = req.body {
            rb = rb.json(b);
        }
        if !req.anonymous {
            let value = match (&self.inner.auth, auth_header) {
                (_, Some(h)) => h,
                (Auth::AccessKey { id, secret }, None) => {
                    let headers = [
                        ("date", date.as_str()),
                        ("accept", "application/json"),
                        ("x-jms-org", org.as_str()),
                    ];
                    let ss = httpsig::signing_string(
                        req.method.as_str(),
                        &wire_target,
                        &headers,
                        &httpsig::CLIENT_SIGNED_HEADERS,
                    )
                    .map_err(|e| {
                        let w = Words::new(
                            format!("cannot sign the request: {e}"),
                            format!("无法为请求签名：{e}"),
                        );
                        (JmsError::Invalid(w), false)
                    })?;
                    let sig = httpsig::sign(secret.expose(), &ss);
                    httpsig::authorization_header(id, &httpsig::CLIENT_SIGNED_HEADERS, &sig)
                }
                (Auth::Token(t), None) => format!("Token {}", t.expose()),
                (Auth::Password { .. }, None) => String::new(),
            };
            if !value.is_empty() {
                rb = rb.header("Authorization", value);
            }
        }
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let sent_at = std::time::Instant::now();
        let resp = rb.send().await;
        let code = resp.as_ref().ok().map(|r| r.status().as_u16());
        let service = crate::metrics::Service::JumpServer;
        (self.inner.metrics).api_call(service, &wire_target, code, sent_at);
        let resp = resp.map_err(|e| {
            let executed = !e.is_connect();
            (JmsError::Transport(transport_text(&e)), executed)
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp
            .bytes()
            .await
            .map_err(|e| (JmsError::Transport(transport_text(&e)), true))?;
        Ok(Sent {
            status,
            retry_after,
            body,
        })
    }

    fn backoff(&self, attempt: u32, err: &JmsError) -> Duration {
        let cfg = &self.inner.cfg;
        if let JmsError::Throttled {
            retry_after: Some(ra),
        } = err
        {
            return (*ra).min(Duration::from_millis(cfg.retry_after_cap_ms));
        }
        let base = cfg.retry_base_delay_ms.max(1);
        let exp = base.saturating_mul(1u64 << attempt.min(10));
        // Full jitter in [exp/2, exp] keeps retries from several workers apart.
        let ms = rand::rng().random_range(exp / 2..=exp);
        let d = Duration::from_millis(ms);
        if matches!(err, JmsError::Throttled { .. }) {
            d.min(Duration::from_millis(cfg.retry_after_cap_ms))
        } else {
            d
        }
    }

    /// Sends with auth, retries and one re-login on 401 for bearer auth; returns parsed JSON
    /// (`Null` for an empty body).
    pub(crate) async fn call(&self, req: Req<'_>) -> Result<Value, JmsError> {
        let max = self.inner.cfg.retry_max_attempts.max(1);
        let mut relogged = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let auth_header = if req.anonymous {
                None
            } else {
                self.bearer_header(false).await?
            };
            let outcome = match self.send_once(&req, auth_header).await {
                Ok(sent) if sent.status.is_success() => {
                    let parse = || {
                        serde_json::from_slice(&sent.body)
                            .map_err(|e| JmsError::Decode(format!("{}: {e}", req.target)))
                    };
                    return if sent.body.iter().all(u8::is_ascii_whitespace) {
                        Ok(Value::Null)
                    } else if sent.body.len() > LARGE_BODY {
                        // A page of a thousand rows parses in milliseconds: off the worker.
                        crate::offload::off_worker(parse)
                    } else {
                        parse()
                    };
                }
                Ok(sent) if sent.status.is_redirection() => {
                    return Err(JmsError::Decode(format!(
                        "{} answered a redirect (HTTP {}); the path needs its trailing slash",
                        req.target,
                        sent.status.as_u16()
                    )));
                }
                Ok(sent) => {
                    let e =
                        JmsError::from_status(sent.status.as_u16(), &sent.body, sent.retry_after);
                    // A 429 means DRF refused before running the view.
                    let executed = !matches!(e, JmsError::Throttled { .. });
                    (e, executed)
                }
                Err(pair) => pair,
            };
            let (err, executed) = outcome;
            // Anonymous probes (version detection) expect 401 and never carry the token.
            if matches!(err, JmsError::Unauthorized(_))
                && !relogged
                && !req.anonymous
                && matches!(self.inner.auth, Auth::Password { .. })
            {
                // Tokens die early when the server's cache is flushed: log in once more.
                relogged = true;
                self.bearer_header(true).await?;
                attempt -= 1;
                continue;
            }
            let may_retry = err.is_transient()
                && match req.retry {
                    Retry::Idempotent => true,
                    Retry::NotExecuted => !executed,
                };
            if !may_retry || attempt >= max {
                return Err(err);
            }
            tracing::debug!(target = %req.target, attempt, error = %err, "retrying JumpServer call");
            tokio::time::sleep(self.backoff(attempt, &err)).await;
        }
    }

    /// GET a list with `limit=100`, following `next` (path and query only, re-signed) to the end.
    /// Plain-array answers (v2 views, unpaginated views) are returned as they are.
    pub(crate) async fn list_all(
        &self,
        path: &str,
        query: &[(&str, &str)],
        org: Option<&str>,
    ) -> Result<Vec<Value>, JmsError> {
        self.list_all_by(path, query, org, "100").await
    }

    /// `list_all` with another page size. Servers clamp a larger `limit` to their cap silently
    /// (100 before v3.10, 1000 on v4.10.8+, §1.1) and the walk follows `next` either way, so a
    /// large page is safe where a list may be long and calls are counted.
    pub(crate) async fn list_all_by(
        &self,
        path: &str,
        query: &[(&str, &str)],
        org: Option<&str>,
        limit: &str,
    ) -> Result<Vec<Value>, JmsError> {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("limit", limit));
        let mut next_target = Some(target(path, &q));
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(t) = next_target.take() {
            if !seen.insert(t.clone()) || seen.len() > 10_000 {
                return Err(JmsError::Decode(format!("pagination loops at {t}")));
            }
            let mut req = Req::new(Method::GET, t, None, Retry::Idempotent);
            req.org = org;
            let v = self.call(req).await?;
            match v {
                Value::Array(items) => {
                    out.extend(items);
                }
                Value::Object(mut m) => {
                    match m.remove("results") {
                        Some(Value::Array(items)) => out.extend(items),
                        _ => return Err(JmsError::Decode(format!("{path}: no results list"))),
                    }
                    if let Some(Value::String(n)) = m.get("next") {
                        next_target = Some(next_path(n)?);
                    }
                }
                _ => return Err(JmsError::Decode(format!("{path}: not a list"))),
            }
        }
        Ok(out)
    }

    /// Current `Authorization` for bearer auth (logging in when needed); `None` for other modes.
    async fn bearer_header(&self, force: bool) -> Result<Option<String>, JmsError> {
        let Auth::Password {
            username,
            password,
            otp_seed,
            bearer,
        } = &self.inner.auth
        else {
            return Ok(None);
        };
        let mut guard = bearer.lock().await;
        let now = self.inner.clock.now();
        let fresh = guard.as_ref().is_some_and(|b| now < b.renew_at);
        if force || !fresh {
            *guard = Some(self.login(username, password, otp_seed).await?);
        }
        Ok(guard
            .as_ref()
            .map(|b| format!("Bearer {}", b.token.expose())))
    }

    async fn login(
        &self,
        username: &str,
        password: &Secret,
        otp_seed: &Secret,
    ) -> Result<Bearer, JmsError> {
        const AUTH: &str = "/api/v1/authentication/auth/";
        let creds = json!({"username": username, "password": password.expose()});
        let first = self.login_post(AUTH, &creds).await?;
        let v = match first.get("error").and_then(Value::as_str) {
            None => first,
            Some("mfa_required") => {
                if otp_seed.is_empty() {
                    return Err(JmsError::Login(
                        "the bot account needs MFA but jumpserver.otp_seed is not set".into(),
                    ));
                }
                let choices: Vec<&str> = first
                    .pointer("/data/choices")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if !choices.is_empty() && !choices.contains(&"otp") {
                    return Err(JmsError::Login(format!(
                        "the bot account's MFA types {choices:?} do not include otp"
                    )));
                }
                let code = totp::totp(otp_seed.expose(), self.inner.clock.now().as_second())
                    .ok_or_else(|| JmsError::Config("jumpserver.otp_seed: not base32".into()))?;
                let challenge = json!({"type": "otp", "code": code});
                self.login_post("/api/v1/authentication/mfa/challenge/", &challenge)
                    .await?;
                let done = self.login_post(AUTH, &json!({})).await?;
                if let Some(e) = done.get("error").and_then(Value::as_str) {
                    return Err(JmsError::Login(format!("after MFA: {e}")));
                }
                done
            }
            Some(other) => {
                let msg = first.get("msg").and_then(Value::as_str).unwrap_or(other);
                return Err(JmsError::Login(msg.to_owned()));
            }
        };
        let token = v
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| JmsError::Decode("login answer without token".into()))?;
        let now = self.inner.clock.now();
        let expires = v
            .get("date_expired")
            .and_then(Value::as_str)
            .and_then(parse_jms_time)
            .unwrap_or_else(|| now + SignedDuration::from_hours(24));
        // Renew a little before the end so no call races the expiry.
        let margin = SignedDuration::from_mins(10);
        let renew_at = (expires - margin).max(now + SignedDuration::from_secs(30));
        Ok(Bearer {
            token: Secret::new(token),
            renew_at,
        })
    }

    /// Login-step POST: anonymous, never retried after the server may have acted (each failed
    /// attempt counts toward the account lock), errors in the login shape mapped to `Login`.
    async fn login_post(&self, path: &str, body: &Value) -> Result<Value, JmsError> {
        let mut req = Req::new(
            Method::POST,
            path.to_owned(),
            Some(body),
            Retry::NotExecuted,
        );
        req.anonymous = true;
        let max = self.inner.cfg.retry_max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (err, executed) = match self.send_once(&req, None).await {
                Ok(s) if s.status.is_success() => {
                    return serde_json::from_slice(&s.body)
                        .map_err(|e| JmsError::Decode(format!("{path}: {e}")));
                }
                Ok(s) if s.status == StatusCode::TOO_MANY_REQUESTS => (
                    JmsError::Throttled {
                        retry_after: s.retry_after,
                    },
                    false,
                ),
                Ok(s) => {
                    let v: Value = serde_json::from_slice(&s.body).unwrap_or(Value::Null);
                    let msg = v
                        .get("msg")
                        .or_else(|| v.get("error"))
                        .or_else(|| v.get("detail"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("HTTP {}", s.status.as_u16()));
                    let code = v.get("error").and_then(Value::as_str).unwrap_or("");
                    return Err(JmsError::Login(match code {
                        "mfa_failed" => {
                            format!("MFA code rejected (check the clock and otp_seed): {msg}")
                        }
                        _ => msg,
                    }));
                }
                Err(pair) => pair,
            };
            if executed || attempt >= max {
                return Err(err);
            }
            tokio::time::sleep(self.backoff(attempt, &err)).await;
        }
    }

    /// Probes the release line anonymously (§4.9) and caches it.
    pub async fn detect_version(&self) -> Result<ServerLine, JmsError> {
        if let Some(v) = *lock(&self.inner.version) {
            return Ok(v);
        }
        let mut koko = Req::get("/api/v1/settings/i18n/koko/", &[("lang", "en")]);
        koko.anonymous = true;
        let line = match self.call(koko).await {
            Ok(_) => ServerLine::V4,
            Err(JmsError::NotFound(_)) => {
                let mut hosts = Req::get("/api/v1/assets/hosts/", &[]);
                hosts.anonymous = true;
                match self.call(hosts).await {
                    Err(JmsError::NotFound(_)) => ServerLine::V2,
                    Err(JmsError::Unauthorized(_)) | Err(JmsError::Forbidden(_)) | Ok(_) => {
                        ServerLine::V3
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        *lock(&self.inner.version) = Some(line);
        Ok(line)
    }

    /// Errors with `Unsupported` when the server is older than v3.
    pub(crate) async fn require_v3(&self, feature: &'static str) -> Result<ServerLine, JmsError> {
        let line = self.detect_version().await?;
        if line < ServerLine::V3 {
            return Err(JmsError::Unsupported {
                feature,
                version: line.to_string(),
            });
        }
        Ok(line)
    }
}

/// Path and query of a `next` link; the scheme and host may be internal ones behind a proxy.
pub(crate) fn next_path(next: &str) -> Result<String, JmsError> {
    if next.starts_with('/') {
        return Ok(next.to_owned());
    }
    let u = url::Url::parse(next).map_err(|e| JmsError::Decode(format!("next link: {e}")))?;
    Ok(match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    })
}

fn transport_text(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        // reqwest's Display carries the URL, never headers, so no secret can leak here.
        e.to_string()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding_matches_vectors() {
        assert_eq!(
            target(
                "/api/v1/assets/hosts/",
                &[("search", "10.0.0.1|10.0.0.2"), ("limit", "10")]
            ),
            "/api/v1/assets/hosts/?search=10.0.0.1%7C10.0.0.2&limit=10"
        );
        assert_eq!(
            target(
                "/api/v1/assets/nodes/",
                &[("value", "系统甲"), ("limit", "10")]
            ),
            "/api/v1/assets/nodes/?value=%E7%B3%BB%E7%BB%9F%E7%94%B2&limit=10"
        );
        assert_eq!(
            target("/x/", &[("ips", "10.10.1.11,10.10.1.12")]),
            "/x/?ips=10.10.1.11%2C10.10.1.12"
        );
    }

    #[test]
    fn times() {
        let t: Timestamp = "2026-11-22T08:00:00Z".parse().unwrap();
        assert_eq!(http_date(t), "Sun, 22 Nov 2026 08:00:00 GMT");
        assert_eq!(fmt_jms_time(t), "2026-11-22T08:00:00+00:00");
        assert_eq!(parse_jms_time("2026/11/22 16:00:00 +0800"), Some(t));
        assert_eq!(parse_jms_time("2026-11-22T08:00:00Z"), Some(t));
        assert_eq!(parse_jms_time("garbage"), None);
    }

    #[test]
    fn next_link_keeps_path_and_query_only() {
        assert_eq!(
            next_path("http://10.0.0.5:8080/api/v1/assets/hosts/?limit=100&offset=100").unwrap(),
            "/api/v1/assets/hosts/?limit=100&offset=100"
        );
    }
}
