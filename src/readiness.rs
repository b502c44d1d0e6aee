//! `/readyz`: whether the bot can do its work now, check by check — the store answers, a DingTalk
//! access token can be had, the Stream connection is open (Stream mode), JumpServer is reachable
//! *and* accepts the bot's credentials (a signed `GET /api/v1/users/profile/`).
//!
//! Probe results are kept for [`CACHE_MS`] (by the bot's clock) and one probe runs at a time, so a
//! monitor polling every second, or someone hammering `/readyz`, costs JumpServer and DingTalk at
//! most one call each per window. `/healthz` stays the liveness answer (the process serves).
use crate::clock::SharedClock;
use crate::dingtalk::client::DingTalkClient;
use crate::jumpserver::client::JmsClient;
use crate::jumpserver::error::JmsError;
use crate::metrics::Metrics;
use crate::store::Store;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a probe result is reused: short enough that a recovery shows within a monitor's
/// next poll, long enough that `/readyz` cannot be turned into a flood of signed requests.
pub const CACHE_MS: i64 = 5_000;

/// Each remote check gives up after this (a container HEALTHCHECK waits a few seconds at most).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What `/readyz` answers: `ready` and, per check, `"ok"` or what is wrong.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    pub ready: bool,
    pub checks: BTreeMap<&'static str, String>,
}

pub const OK: &str = "ok";

pub struct Readiness {
    store: Store,
    dingtalk: DingTalkClient,
    /// `None` when the bot runs a test dispatcher (no workflow, no JumpServer).
    jms: Option<JmsClient>,
    /// Stream mode: the open connection is a check.
    stream: bool,
    metrics: Metrics,
    clock: SharedClock,
    /// The last report and when (clock ms) it was made; the lock also serialises probes.
    last: tokio::sync::Mutex<Option<(i64, Report)>>,
}

impl Readiness {
    pub fn new(
        store: Store,
        dingtalk: DingTalkClient,
        jms: Option<JmsClient>,
        stream: bool,
        metrics: Metrics,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            dingtalk,
            jms,
            stream,
            metrics,
            clock,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The current report: the cached one while fresh, else a new probe.
    pub async fn report(&self) -> Report {
        let mut last = self.last.lock().await;
        let now = self.clock.now_ms();
        if let Some((at, r)) = last.as_ref() {
            if (0..CACHE_MS).contains(&(now - at)) {
                return r.clone();
            }
        }
        let r = self.probe().await;
        if !r.ready {
            let failing: Vec<String> = r
                .checks
                .iter()
                .filter(|(_, v)| v.as_str() != OK)
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            tracing::warn!(failing = %failing.join("; "), "not ready");
        }
        *last = Some((now, r.clone()));
        r
    }

    async fn probe(&self) -> Report {
        let mut checks = BTreeMap::new();
        checks.insert("store", self.store_check());
        let (dingtalk, jumpserver) = tokio::join!(self.dingtalk_check(), self.jms_check());
        checks.insert("dingtalk", dingtalk);
        if let Some(j) = jumpserver {
            checks.insert("jumpserver", j);
        }
        if self.stream {
            checks.insert(
                "stream",
                if self.metrics.is_stream_connected() {
                    OK.into()
                } else {
                    "not connected to the DingTalk Stream gateway (see the log for why)".into()
                },
            );
        }
        Report {
            ready: checks.values().all(|v| v == OK),
            checks,
        }
    }

    fn store_check(&self) -> String {
        // A read goes through sled's page cache and, on a miss, the disk: an I/O error shows.
        match self.store.db().get(b"readyz") {
            Ok(_) => OK.into(),
            Err(e) => format!("store unreadable: {e}"),
        }
    }

    async fn dingtalk_check(&self) -> String {
        match tokio::time::timeout(PROBE_TIMEOUT, self.dingtalk.check_token()).await {
            Ok(Ok(())) => OK.into(),
            Ok(Err(e)) => format!("no access token: {e}"),
            Err(_) => format!(
                "no access token: no answer within {}s",
                PROBE_TIMEOUT.as_secs()
            ),
        }
    }

    async fn jms_check(&self) -> Option<String> {
        let jms = self.jms.as_ref()?;
        Some(
            match tokio::time::timeout(PROBE_TIMEOUT, jms.profile()).await {
                Ok(Ok(_)) => OK.into(),
                Ok(Err(e)) => jms_words(&e),
                Err(_) => format!("unreachable: no answer within {}s", PROBE_TIMEOUT.as_secs()),
            },
        )
    }
}

/// What a failed profile read means for readiness.
fn jms_words(e: &JmsError) -> String {
    match e {
        JmsError::Unauthorized(d) => format!(
            "authentication refused (401): {d}; check jumpserver.access_key_id / access_key_secret"
        ),
        JmsError::Forbidden(d) => format!("authenticated but forbidden (403): {d}"),
        JmsError::Login(d) => format!("login refused: {d}"),
        JmsError::Transport(d) => format!("unreachable: {d}"),
        JmsError::Server { status } => format!("server error (HTTP {status})"),
        other => other.to_string(),
    }
}
