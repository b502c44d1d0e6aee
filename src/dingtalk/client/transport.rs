//! The transport under every DingTalk call: the cached, single-flight access token (reference
//! §1), the request styles of §0 (new API, legacy oapi, session webhook) and the retry rules of
//! §9.3. API families call `DingTalkClient::call` and never see a token.
use super::error::{classify_legacy, classify_new, is_throttle_code, new_api_error, Outcome};
use super::{DingTalkClient, DingTalkError, Result};
use crate::secret::Secret;
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

const DINGTALK: crate::metrics::Service = crate::metrics::Service::DingTalk;

/// Refresh this long before the announced expiry, like the official Stream SDK.
const REFRESH_MARGIN_MS: i64 = 300_000;

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

#[derive(Clone)]
pub(super) struct CachedToken {
    value: Secret,
    refresh_at_ms: i64,
}

/// Which side of §0 a call is on: it decides where the token goes and how errors look.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    New,
    Legacy,
    /// Session webhook: no token, legacy-style errcode body.
    Webhook,
}

impl DingTalkClient {
    /// Whether an access token can be had now (the cached one, else a fresh fetch): the
    /// readiness probe's DingTalk check.
    pub async fn check_token(&self) -> Result<()> {
        self.token().await.map(|_| ())
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
            let sent_at = std::time::Instant::now();
            let resp = self
                .inner
                .http
                .post(&url)
                .header("accept", "application/json")
                .json(&body)
                .send()
                .await;
            let code = resp.as_ref().ok().map(|r| r.status().as_u16());
            (self.inner.metrics).api_call(DINGTALK, &url, code, sent_at);
            let resp = resp.map_err(|e| DingTalkError::Http(e.without_url().to_string()))?;
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
    pub(super) async fn call(
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
        let sent_at = std::time::Instant::now();
        let resp = req.send().await;
        let code = resp.as_ref().ok().map(|r| r.status().as_u16());
        (self.inner.metrics).api_call(DINGTALK, url, code, sent_at);
        let resp = match resp {
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
}

fn path_of(url: &str) -> String {
    // Only the path goes to logs: a webhook URL's query is a credential.
    url::Url::parse(url)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| "<unparsable url>".into())
}

pub(super) fn str_field(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
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
