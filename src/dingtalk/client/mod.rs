//! Outbound DingTalk OpenAPI client (reference §0–§9): the client and its wiring here; the
//! transport (token cache, the §9.3 retry rules, request styles) in `transport`, the error
//! mapping in `error`, and one file per API family — `contacts` (user lookup, §7), `robot`
//! (replies and robot sends, §4.2), `cards` (interactive cards, §5.1–5.3), `oa` (approvals,
//! §6) and `work_notice` (work notifications, §8). The token and the app secret never reach a
//! log line or an error text.
mod cards;
mod contacts;
mod error;
// DingTalk login for the access console (OAuth2 web login and the in-app auth code).
mod login;
mod oa;
mod robot;
mod transport;
mod work_notice;

pub use cards::{CardDelivery, CardTarget, PrivateCardData};
pub use contacts::DingUser;
pub use error::{DingTalkError, Result};
pub use oa::{
    ApprovalDetail, ApprovalInstanceQuery, ApprovalRecord, ApprovalResult, ApprovalStart,
    ApprovalState, ApprovalStatus,
};
pub use robot::{SendReport, BATCH_SEND_CHUNK};
pub use transport::RetryPolicy;
pub use work_notice::WORK_NOTICE_CHUNK;

use crate::clock::SharedClock;
use crate::dingtalk::config::DingTalkConfig;
use crate::secret::Secret;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use transport::CachedToken;

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
    /// Calls by endpoint family, status and latency (attached by `Bot::start`).
    metrics: crate::metrics::MetricsSlot,
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
                metrics: Default::default(),
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
                metrics: Default::default(),
            }),
        }
    }

    /// Counts this client's calls in `m` from now on.
    pub fn attach_metrics(&self, m: &crate::metrics::Metrics) {
        self.inner.metrics.attach(m);
    }

    /// How many times a token was fetched from DingTalk (for metrics and tests).
    pub fn token_fetch_count(&self) -> u64 {
        self.inner.token_fetches.load(Ordering::Relaxed)
    }

    fn api(&self, path: &str) -> String {
        format!("{}{}", self.inner.api_base, path)
    }
    fn oapi(&self, path: &str) -> String {
        format!("{}{}", self.inner.oapi_base, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dingtalk::client::ApprovalStart;
    use crate::dingtalk::message::OutMessage;
    use crate::domain::ids::DingUserId;

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
}
