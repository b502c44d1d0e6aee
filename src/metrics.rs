//! The Prometheus registry: every metric the bot exposes on `/metrics`, with typed, fixed label
//! sets, and the one-line hooks call sites use. Counters and histograms are bumped where things
//! happen; what the store already knows (orders by state, outbox depth, last sync) is read at
//! scrape time (`Metrics::encode` with a [`StoreView`]) instead of being mirrored in memory.
//!
//! One `Metrics` per running bot (not a process global): tests run many bots in one process and
//! assert exact values. Labels never carry ids or raw URLs: endpoints are reduced to a family
//! (`jms_family`, `dingtalk_family`), refusals to a reason from a short list.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Which listener a delivery came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Events,
    Robot,
    Cards,
    Stream,
}

/// How many `Channel`s there are (`Metrics::delivery` indexes by `channel as usize`).
const CHANNELS: usize = 4;
const _: () = assert!(Channel::Stream as usize + 1 == CHANNELS);

impl Channel {
    fn label(self) -> &'static str {
        match self {
            Channel::Events => "events",
            Channel::Robot => "robot",
            Channel::Cards => "cards",
            Channel::Stream => "stream",
        }
    }

    /// The HTTP route's channel; `None` for routes that are not DingTalk deliveries.
    pub fn of_path(path: &str) -> Option<Channel> {
        match path {
            "/dingtalk/events" => Some(Channel::Events),
            "/dingtalk/robot" => Some(Channel::Robot),
            "/dingtalk/cards" => Some(Channel::Cards),
            _ => None,
        }
    }
}

/// What became of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Refused(Refused),
}

/// Why a delivery was refused, from the HTTP status the refusal carries (every refusal has one,
/// and each status means one thing on these routes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// 401: bad signature, stale timestamp, replayed headers, wrong owner key.
    Unauthenticated,
    /// 400: not a body or query we can read.
    Malformed,
    /// 413.
    TooLarge,
    /// 408: not handled within `server.request_timeout_ms`.
    Timeout,
    /// 409: a copy of a delivery still being handled.
    InFlight,
    /// 403 / 404: the route is switched off by configuration.
    Disabled,
    /// 5xx: storage or dispatch failed (DingTalk redelivers).
    Internal,
    Other,
}

impl Refused {
    pub fn from_status(status: u16) -> Refused {
        match status {
            401 => Refused::Unauthenticated,
            400 => Refused::Malformed,
            413 => Refused::TooLarge,
            408 => Refused::Timeout,
            409 => Refused::InFlight,
            403 | 404 => Refused::Disabled,
            500..=599 => Refused::Internal,
            _ => Refused::Other,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Refused::Unauthenticated => "unauthenticated",
            Refused::Malformed => "malformed",
            Refused::TooLarge => "too_large",
            Refused::Timeout => "timeout",
            Refused::InFlight => "in_flight",
            Refused::Disabled => "disabled",
            Refused::Internal => "internal",
            Refused::Other => "other",
        }
    }
}

/// The external service an API call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    JumpServer,
    DingTalk,
}

impl Service {
    fn label(self) -> &'static str {
        match self {
            Service::JumpServer => "jumpserver",
            Service::DingTalk => "dingtalk",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: &'static str,
    outcome: &'static str,
    /// Empty unless refused.
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: &'static str,
    endpoint: &'static str,
    /// The HTTP status code, or `error` when no answer came (connect failure, timeout).
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    service: &'static str,
    endpoint: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn call_latency_histogram() -> Histogram {
    // 5 ms … ~20 s: a JumpServer call is tens of ms, a slow one with retries seconds.
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    ])
}

/// A delivery is handled in a millisecond or two; DingTalk gives up after a few seconds.
fn delivery_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

/// Request → decision and approval → grant are human-scale: seconds to a day.
fn human_histogram() -> Histogram {
    Histogram::new([
        1.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14_400.0, 43_200.0, 86_400.0,
    ])
}

/// What the store knows, read at scrape time.
#[derive(Clone, Debug, Default)]
pub struct StoreView {
    /// Orders per state (every state, zeros included).
    pub orders_by_state: Vec<(&'static str, i64)>,
    pub outbox_depth: i64,
    /// Age of the oldest queued job; 0 when the queue is empty.
    pub outbox_oldest_seconds: f64,
    /// Seconds since the last completed `/sync`; `None` before the first.
    pub last_sync_age_seconds: Option<f64>,
}

struct Inner {
    registry: Registry,
    deliveries: Family<DeliveryLabels, Counter>,
    /// Handles on `deliveries`' accepted and duplicate series, per channel (`Metrics::delivery`).
    common_deliveries: [OnceLock<Counter>; CHANNELS * 2],
    delivery_seconds: Histogram,
    orders: Family<StateLabels, Gauge>,
    decision_seconds: Histogram,
    grant_seconds: Histogram,
    calls: Family<CallLabels, Counter>,
    call_seconds: HistogramFamily<EndpointLabels>,
    outbox_depth: Gauge,
    outbox_oldest: Gauge<f64, AtomicU64>,
    jobs_given_up: Counter,
    stream_connected: Gauge,
    last_sync_age: Gauge<f64, AtomicU64>,
}

/// The bot's metrics; cheap to clone (one registry shared by the clones).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("accessbot");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "inbound_deliveries",
            "DingTalk deliveries by channel and outcome (refused: by reason)",
            deliveries.clone(),
        );
        let delivery_seconds = delivery_histogram();
        registry.register(
            "inbound_delivery_seconds",
            "Time from a DingTalk HTTP delivery reaching the bot's routes to its answer (the \
             time in the kernel and in the connection's queue before is not in it)",
            delivery_seconds.clone(),
        );
        let orders = Family::<StateLabels, Gauge>::default();
        registry.register(
            "orders",
            "Orders by state, read from the store",
            orders.clone(),
        );
        let decision_seconds = human_histogram();
        registry.register(
            "request_to_decision_seconds",
            "Time from a request to its approval or rejection",
            decision_seconds.clone(),
        );
        let grant_seconds = human_histogram();
        registry.register(
            "approval_to_grant_seconds",
            "Time from approval to a grant verified by read-back",
            grant_seconds.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "api_calls",
            "Calls to JumpServer and DingTalk by endpoint family and HTTP status",
            calls.clone(),
        );
        let call_seconds: HistogramFamily<EndpointLabels> =
            Family::new_with_constructor(call_latency_histogram);
        registry.register(
            "api_call_seconds",
            "Latency of calls to JumpServer and DingTalk by endpoint family",
            call_seconds.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_jobs",
            "Jobs queued in the outbox",
            outbox_depth.clone(),
        );
        let outbox_oldest = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "outbox_oldest_job_age_seconds",
            "Age of the oldest queued outbox job (0 when empty)",
            outbox_oldest.clone(),
        );
        let jobs_given_up = Counter::default();
        registry.register(
            "jobs_given_up",
            "Outbox jobs that stopped retrying (permanent error or past their deadline)",
            jobs_given_up.clone(),
        );
        let stream_connected = Gauge::default();
        registry.register(
            "stream_connected",
            "1 while the DingTalk Stream connection is open (Stream mode)",
            stream_connected.clone(),
        );
        let last_sync_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_sync_age_seconds",
            "Seconds since the last completed JumpServer index sync (-1 before the first)",
            last_sync_age.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                deliveries,
                common_deliveries: Default::default(),
                delivery_seconds,
                orders,
                decision_seconds,
                grant_seconds,
                calls,
                call_seconds,
                outbox_depth,
                outbox_oldest,
                jobs_given_up,
                stream_connected,
                last_sync_age,
            }),
        }
    }

    /// One delivery and what became of it.
    pub fn delivery(&self, channel: Channel, outcome: Outcome) {
        // The two outcomes of every normal delivery keep a handle on their series: the family's
        // lookup (a lock and a hash of three labels) came on every request.
        let fast = match outcome {
            Outcome::Accepted => Some(0),
            Outcome::Duplicate => Some(1),
            Outcome::Refused(_) => None,
        };
        if let Some(slot) =
            fast.and_then(|o| self.inner.common_deliveries.get(channel as usize * 2 + o))
        {
            slot.get_or_init(|| self.delivery_counter(channel, outcome))
                .inc();
            return;
        }
        self.delivery_counter(channel, outcome).inc();
    }

    /// Runs one HTTP delivery on `channel` (`fut`: everything the route does, body-limit and
    /// deadline refusals included), then times and counts it.
    pub async fn count_delivery(
        &self,
        channel: Channel,
        fut: impl Future<Output = axum::response::Response>,
    ) -> axum::response::Response {
        let started = Instant::now();
        let (resp, duplicate) = track_duplicate(fut).await;
        self.inner
            .delivery_seconds
            .observe(started.elapsed().as_secs_f64());
        self.delivery(channel, Outcome::of(resp.status().as_u16(), duplicate));
        resp
    }

    /// The series of `channel` and `outcome` (created at its first use, as a family does).
    fn delivery_counter(&self, channel: Channel, outcome: Outcome) -> Counter {
        let (outcome, reason) = match outcome {
            Outcome::Accepted => ("accepted", ""),
            Outcome::Duplicate => ("duplicate", ""),
            Outcome::Refused(r) => ("refused", r.label()),
        };
        self.inner
            .deliveries
            .get_or_create(&DeliveryLabels {
                channel: channel.label(),
                outcome,
                reason,
            })
            .clone()
    }

    /// One HTTP call to an external service: `status` is `None` when no answer came.
    pub fn api_call(&self, service: Service, url: &str, status: Option<u16>, started: Instant) {
        let endpoint = match service {
            Service::JumpServer => jms_family(url),
            Service::DingTalk => dingtalk_family(url),
        };
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.inner
            .calls
            .get_or_create(&CallLabels {
                service: service.label(),
                endpoint,
                status,
            })
            .inc();
        self.inner
            .call_seconds
            .get_or_create(&EndpointLabels {
                service: service.label(),
                endpoint,
            })
            .observe(started.elapsed().as_secs_f64());
    }

    pub fn request_decided(&self, seconds: f64) {
        self.inner.decision_seconds.observe(seconds.max(0.0));
    }

    pub fn grant_verified(&self, seconds: f64) {
        self.inner.grant_seconds.observe(seconds.max(0.0));
    }

    pub fn job_gave_up(&self) {
        self.inner.jobs_given_up.inc();
    }

    /// Marks the Stream connection open until the guard is dropped.
    pub fn stream_connected(&self) -> StreamConnected {
        self.inner.stream_connected.set(1);
        StreamConnected(self.clone())
    }

    pub fn is_stream_connected(&self) -> bool {
        self.inner.stream_connected.get() > 0
    }

    /// The exposition (OpenMetrics text, which Prometheus scrapes), after setting the gauges
    /// the store knows.
    pub fn encode(&self, view: &StoreView) -> String {
        let i = &self.inner;
        for (state, n) in &view.orders_by_state {
            i.orders.get_or_create(&StateLabels { state }).set(*n);
        }
        i.outbox_depth.set(view.outbox_depth);
        i.outbox_oldest.set(view.outbox_oldest_seconds);
        i.last_sync_age
            .set(view.last_sync_age_seconds.unwrap_or(-1.0));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &i.registry);
        out
    }
}

tokio::task_local! {
    /// Set by the ingress when the delivery being handled turned out to be a duplicate: the
    /// acknowledgement looks the same as for a new one, so the response cannot tell.
    static DUPLICATE: Cell<bool>;
}

/// The ingress calls this when it acknowledges a duplicate without handling it.
pub fn note_duplicate() {
    let _ = DUPLICATE.try_with(|d| d.set(true));
}

/// Runs `fut` (one delivery) and says whether it was a duplicate.
pub async fn track_duplicate<F: Future>(fut: F) -> (F::Output, bool) {
    DUPLICATE
        .scope(Cell::new(false), async move {
            let out = fut.await;
            (out, DUPLICATE.with(Cell::get))
        })
        .await
}

impl Outcome {
    /// What a delivery ended in, from the HTTP status it was answered with.
    pub fn of(status: u16, duplicate: bool) -> Outcome {
        match status {
            200..=299 if duplicate => Outcome::Duplicate,
            200..=299 => Outcome::Accepted,
            s => Outcome::Refused(Refused::from_status(s)),
        }
    }
}

/// Holds `stream_connected` at 1; back to 0 when dropped (the session ended, however).
pub struct StreamConnected(Metrics);

impl Drop for StreamConnected {
    fn drop(&mut self) {
        self.0.inner.stream_connected.set(0);
    }
}

/// A place for the bot's metrics in a client built before the bot (the DingTalk and JumpServer
/// clients): empty until attached, and calls made before are not counted.
#[derive(Default)]
pub struct MetricsSlot(OnceLock<Metrics>);

impl MetricsSlot {
    /// Attaches `m`; a second attach is ignored (a client belongs to one bot).
    pub fn attach(&self, m: &Metrics) {
        let _ = self.0.set(m.clone());
    }

    pub fn api_call(&self, service: Service, url: &str, status: Option<u16>, started: Instant) {
        if let Some(m) = self.0.get() {
            m.api_call(service, url, status, started);
        }
    }
}

/// The path of a URL or request target without query (a legacy DingTalk query holds the token).
fn path_only(url: &str) -> &str {
    let s = url.split(['?', '#']).next().unwrap_or("");
    match s.find("://") {
        Some(i) => {
            let rest = &s[i + 3..];
            rest.find('/').map_or("/", |j| &rest[j..])
        }
        None => s,
    }
}

/// The JumpServer endpoint family of a path: a fixed word, never an id.
pub fn jms_family(url: &str) -> &'static str {
    let p = path_only(url);
    const FAMILIES: &[(&str, &str)] = &[
        ("/api/v1/users/profile", "profile"),
        ("/api/v1/users/", "users"),
        ("/api/v1/orgs/", "orgs"),
        ("/api/v1/assets/nodes", "nodes"),
        ("/api/v1/assets/platforms", "platforms"),
        ("/api/v1/assets/", "hosts"),
        ("/api/v1/accounts/", "accounts"),
        ("/api/v1/perms/asset-permissions", "permissions"),
        ("/api/v1/perms/users/", "granted"),
        ("/api/v1/terminal/", "sessions"),
        ("/api/v1/authentication/", "auth"),
        ("/api/health", "health"),
        ("/api/v1/settings/", "settings"),
    ];
    FAMILIES
        .iter()
        .find(|(prefix, _)| p.starts_with(prefix))
        .map_or("other", |(_, f)| f)
}

/// The DingTalk endpoint family of a URL: a fixed word, never an id.
pub fn dingtalk_family(url: &str) -> &'static str {
    let p = path_only(url);
    const FAMILIES: &[(&str, &str)] = &[
        ("/v1.0/oauth2/", "token"),
        ("/gettoken", "token"),
        ("/v1.0/robot/", "robot"),
        ("/robot/", "webhook"),
        ("/v1.0/card/", "cards"),
        ("/v1.0/im/", "cards"),
        ("/v1.0/workflow/", "approvals"),
        ("/topapi/processinstance", "approvals"),
        ("/topapi/process", "approvals"),
        ("/topapi/v2/user/", "users"),
        ("/topapi/user/", "users"),
        ("/v1.0/contact/", "users"),
        ("/topapi/message/", "work_notice"),
        ("/v1.0/gateway/", "stream"),
    ];
    FAMILIES
        .iter()
        .find(|(prefix, _)| p.starts_with(prefix))
        .map_or("other", |(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_carry_no_ids() {
        assert_eq!(
            jms_family("http://h:1/api/v1/users/users/abc-123/"),
            "users"
        );
        assert_eq!(
            jms_family("/api/v1/perms/users/u1/assets/?limit=5"),
            "granted"
        );
        assert_eq!(
            jms_family("/api/v1/perms/asset-permissions/x/"),
            "permissions"
        );
        assert_eq!(jms_family("/api/v1/assets/hosts/?address=1"), "hosts");
        assert_eq!(jms_family("/api/v1/nothing/"), "other");
        assert_eq!(
            dingtalk_family("https://oapi.dingtalk.com/topapi/v2/user/get?access_token=SECRET"),
            "users"
        );
        assert_eq!(
            dingtalk_family("http://127.0.0.1:9/v1.0/oauth2/accessToken"),
            "token"
        );
    }

    #[test]
    fn exposition_has_names_labels_and_values() {
        let m = Metrics::new();
        m.delivery(Channel::Robot, Outcome::Accepted);
        m.delivery(Channel::Cards, Outcome::Refused(Refused::from_status(401)));
        m.api_call(
            Service::JumpServer,
            "/api/v1/users/users/1/",
            Some(200),
            Instant::now(),
        );
        let text = m.encode(&StoreView {
            orders_by_state: vec![("active", 2)],
            outbox_depth: 3,
            ..StoreView::default()
        });
        assert!(text.contains(
            "accessbot_inbound_deliveries_total{channel=\"robot\",outcome=\"accepted\",reason=\"\"} 1"
        ), "{text}");
        assert!(text.contains("reason=\"unauthenticated\"} 1"), "{text}");
        assert!(
            text.contains("accessbot_orders{state=\"active\"} 2"),
            "{text}"
        );
        assert!(text.contains("accessbot_outbox_jobs 3"), "{text}");
        assert!(text.contains(
            "accessbot_api_calls_total{service=\"jumpserver\",endpoint=\"users\",status=\"200\"} 1"
        ), "{text}");
        assert!(
            text.contains("accessbot_last_sync_age_seconds -1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
