//! Stream-mode listener (reference §3): registers a connection, holds the WebSocket open, hands
//! every data frame to the ingress (which turns it into the same `Inbound` the HTTP listener's
//! deliveries become, then dedupes and dispatches it) and writes the ACK it answers. Owns reconnection
//! (new ticket each time, jittered exponential back-off), keep-alive pings and clean shutdown.
//!
//! Per connection there are three tasks, so a slow dispatch never delays a keep-alive answer:
//! the reader (this module's loop: SYSTEM frames, pings, routing), one handler that takes data
//! frames in arrival order (a user's "apply" is dispatched before their "yes"), and one writer
//! that owns the socket's send half.
//!
//! Neither the app secret nor a ticket is ever logged: the ticket is kept as a [`Secret`] and
//! WebSocket errors are described without the URL that carries it.
use crate::dingtalk::config::DingTalkConfig;
use crate::dingtalk::stream_frame::{self as frame, AckFrame, FrameKind, StreamFrame};
use crate::ingress::Ingress;
use crate::secret::Secret;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

/// Sent as `ua` when registering; shows up in DingTalk's connection diagnostics.
pub const USER_AGENT: &str = concat!("accessbot/", env!("CARGO_PKG_VERSION"), " (rust)");

/// Error messages from the gateway are echoed into our error text; cap them so a hostile or
/// broken proxy cannot flood the log.
const MAX_ERROR_TEXT: usize = 200;

/// Frames waiting for the handler. Bounded so a stalled dispatcher pushes back on the socket
/// (DingTalk redelivers un-ACKed events) instead of growing memory.
const QUEUE_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The gateway refused the registration for a reason retrying cannot fix (wrong clientId or
    /// clientSecret, app without Stream permission). The listener stops.
    #[error(
        "DingTalk refused to open a Stream connection (HTTP {status}, code {code}): {message}"
    )]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// Network trouble, throttling or a 5xx while registering; retried with back-off.
    #[error("Stream registration failed: {0}")]
    Open(String),
    /// A 200 answer without a usable endpoint/ticket; retried with back-off.
    #[error("Stream registration answered something unusable: {0}")]
    BadResponse(String),
    /// The WebSocket handshake failed (ticket refused, TLS, network); retried with a new ticket.
    #[error("Stream WebSocket connect failed: {0}")]
    Connect(String),
}

impl StreamError {
    /// Whether the listener gives up instead of retrying.
    pub fn is_permanent(&self) -> bool {
        matches!(self, StreamError::Rejected { .. })
    }
}

/// Timers of the listener. Defaults follow the official SDKs (reference §3.1, §3.4).
#[derive(Clone, Debug)]
pub struct StreamTiming {
    /// First retry delay after a failure (Go SDK: 3 s; we start lower because a lost socket is
    /// usually just a load-balancer restart).
    pub backoff_initial: Duration,
    /// Ceiling of the exponential back-off (Go SDK: 60 s).
    pub backoff_max: Duration,
    /// WebSocket ping interval (Python SDK: 60 s). A connection that stays silent for two
    /// intervals — not even a pong — is treated as dead and replaced.
    pub keepalive: Duration,
    /// Limit for the registration request and the WebSocket handshake each.
    pub request_timeout: Duration,
    /// How long a closing connection may keep finishing queued frames and sending their ACKs
    /// (the gateway closes ~10 s after `disconnect`).
    pub drain_grace: Duration,
}

impl Default for StreamTiming {
    fn default() -> Self {
        Self {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            keepalive: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            drain_grace: Duration::from_secs(10),
        }
    }
}

/// Delay before reconnect attempt number `failures` (1-based): doubling from `initial`, capped
/// at `max`, then scaled into [50 %, 100 %] by `unit` ∈ [0, 1) so many bots restarting together
/// do not reconnect in lock-step.
pub fn backoff_delay(failures: u32, initial: Duration, max: Duration, unit: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let exp = initial.saturating_mul(1u32 << doublings).min(max);
    exp.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A registered connection: where to connect and the single-use ticket (valid 90 s).
pub struct Ticket {
    pub endpoint: String,
    ticket: Secret,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("endpoint", &self.endpoint)
            .field("ticket", &self.ticket)
            .finish()
    }
}

impl Ticket {
    /// `endpoint?ticket=<urlencoded>` (reference §3.2); appended with `&` if the endpoint
    /// already has a query. Only `ws`/`wss` endpoints are accepted.
    pub fn ws_url(&self) -> Result<url::Url, StreamError> {
        let mut u = url::Url::parse(&self.endpoint)
            .map_err(|e| StreamError::BadResponse(format!("endpoint is not a URL: {e}")))?;
        if !matches!(u.scheme(), "ws" | "wss") {
            return Err(StreamError::BadResponse(format!(
                "endpoint scheme `{}` is not ws/wss",
                u.scheme()
            )));
        }
        u.query_pairs_mut()
            .append_pair("ticket", self.ticket.expose());
        Ok(u)
    }
}

#[derive(Deserialize)]
struct OpenResponse {
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    ticket: String,
}

#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Why one connection ended.
#[derive(Debug, PartialEq, Eq)]
enum SessionEnd {
    Shutdown,
    /// The gateway said `disconnect`: reconnect at once, no back-off.
    Reconnect,
    /// Closed, errored or went silent. `healthy` if it had carried traffic, which resets the
    /// back-off (a gateway that accepts then drops at once must not be hammered).
    Lost {
        healthy: bool,
    },
}

pub struct StreamListener {
    http: reqwest::Client,
    open_url: String,
    client_id: String,
    client_secret: Secret,
    timing: StreamTiming,
}

impl StreamListener {
    pub fn new(cfg: &DingTalkConfig) -> Self {
        Self {
            // The client is only used for one small POST per connection; a build failure
            // (no TLS backend) falls back to the default client, which reports it per request.
            http: reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .build()
                .unwrap_or_default(),
            open_url: cfg.stream_open_url(),
            client_id: cfg.app_key.clone(),
            client_secret: cfg.app_secret.clone(),
            timing: StreamTiming::default(),
        }
    }

    pub fn with_timing(mut self, timing: StreamTiming) -> Self {
        self.timing = timing;
        self
    }

    /// Builds a listener from the config and runs it until `shutdown` turns true (`Ok`) or the
    /// gateway refuses the credentials (`Err(Rejected)`). Every other failure is retried.
    pub async fn run(
        cfg: &DingTalkConfig,
        ingress: Arc<Ingress>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), StreamError> {
        Self::new(cfg).serve(ingress, shutdown).await
    }

    /// `run` on its own task, logging a fatal refusal; what `Bot::start` keeps among its tasks.
    pub fn spawn(
        cfg: &DingTalkConfig,
        ingress: Arc<Ingress>,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let listener = Self::new(cfg);
        tokio::spawn(async move {
            if let Err(e) = listener.serve(ingress, shutdown).await {
                tracing::error!(error = %e, "Stream listener stopped; no DingTalk events will arrive");
            }
        })
    }

    /// The reconnect loop.
    pub async fn serve(
        &self,
        ingress: Arc<Ingress>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), StreamError> {
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            match self.session(&ingress, &mut shutdown).await {
                Ok(SessionEnd::Shutdown) => return Ok(()),
                Ok(SessionEnd::Reconnect) => {
                    failures = 0;
                    continue;
                }
                Ok(SessionEnd::Lost { healthy }) => {
                    if healthy {
                        failures = 0;
                    }
                    failures = failures.saturating_add(1);
                }
                Err(e) if e.is_permanent() => {
                    tracing::error!(error = %e, "Stream registration refused");
                    return Err(e);
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, attempt = failures, "Stream connection failed");
                }
            }
            let delay = backoff_delay(
                failures,
                self.timing.backoff_initial,
                self.timing.backoff_max,
                rand::random::<f64>(),
            );
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "reconnecting Stream after back-off"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped(&mut shutdown) => return Ok(()),
            }
        }
    }

    /// Registers a connection (reference §3.1). Public so an operator tool can check the
    /// credentials without opening a socket.
    pub async fn open_connection(&self) -> Result<Ticket, StreamError> {
        let body = json!({
            "clientId": self.client_id,
            "clientSecret": self.client_secret.expose(),
            "subscriptions": [
                {"type": "EVENT", "topic": "*"},
                {"type": "CALLBACK", "topic": frame::TOPIC_BOT_MESSAGE},
                {"type": "CALLBACK", "topic": frame::TOPIC_CARD_CALLBACK},
            ],
            "ua": USER_AGENT,
        });
        let resp = self
            .http
            .post(&self.open_url)
            .header("Accept", "application/json")
            .json(&body)
            .timeout(self.timing.request_timeout)
            .send()
            .await
            .map_err(|e| StreamError::Open(e.without_url().to_string()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| StreamError::Open(e.without_url().to_string()))?;
        if status.is_success() {
            let r: OpenResponse = serde_json::from_slice(&bytes)
                .map_err(|e| StreamError::BadResponse(format!("not JSON: {e}")))?;
            if r.endpoint.is_empty() || r.ticket.is_empty() {
                return Err(StreamError::BadResponse(
                    "endpoint or ticket missing".into(),
                ));
            }
            return Ok(Ticket {
                endpoint: r.endpoint,
                ticket: Secret::new(r.ticket),
            });
        }
        let err: ApiError = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = cap(&err.code);
        let message = cap(&err.message);
        let throttled = status.as_u16() == 429 || code.contains("QpsLimit");
        if status.is_client_error() && !throttled {
            Err(StreamError::Rejected {
                status: status.as_u16(),
                code,
                message,
            })
        } else {
            Err(StreamError::Open(format!(
                "HTTP {} {code} {message}",
                status.as_u16()
            )))
        }
    }

    async fn session(
        &self,
        ingress: &Arc<Ingress>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, StreamError> {
        let ticket = tokio::select! {
            t = self.open_connection() => t?,
            _ = stopped(shutdown) => return Ok(SessionEnd::Shutdown),
        };
        let url = ticket.ws_url()?;
        let connect = tokio::time::timeout(
            self.timing.request_timeout,
            tokio_tungstenite::connect_async(url.as_str()),
        );
        let ws = tokio::select! {
            r = connect => match r {
                Ok(Ok((ws, _))) => ws,
                Ok(Err(e)) => return Err(StreamError::Connect(describe_ws_error(&e))),
                Err(_) => return Err(StreamError::Connect("handshake timed out".into())),
            },
            _ = stopped(shutdown) => return Ok(SessionEnd::Shutdown),
        };
        tracing::info!(
            host = url.host_str().unwrap_or(""),
            "Stream connection open"
        );
        // `stream_connected` is 1 (readiness, /metrics) until this session ends, however.
        let _connected = ingress.metrics.stream_connected();
        let (sink, mut source) = ws.split();
        let (out_tx, out_rx) = mpsc::channel::<Message>(QUEUE_DEPTH);
        let writer = tokio::spawn(write_loop(sink, out_rx));
        let (work_tx, work_rx) = mpsc::channel::<StreamFrame>(QUEUE_DEPTH);
        let handler = tokio::spawn(handle_loop(ingress.clone(), work_rx, out_tx.clone()));

        let keepalive = self.timing.keepalive;
        let mut ticker = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
        let mut last_heard = Instant::now();
        let mut frames: u64 = 0;
        let end = loop {
            // Biased: frames already received are read before the silence check runs, so a
            // late timer on a busy machine cannot mistake a pending pong for silence.
            tokio::select! {
                biased;
                _ = stopped(shutdown) => break SessionEnd::Shutdown,
                msg = source.next() => {
                    last_heard = Instant::now();
                    match msg {
                        None => break SessionEnd::Lost { healthy: frames > 0 },
                        Some(Err(e)) => {
                            tracing::warn!(error = %describe_ws_error(&e), "Stream connection failed");
                            break SessionEnd::Lost { healthy: frames > 0 };
                        }
                        Some(Ok(Message::Text(text))) => {
                            frames += 1;
                            if let Some(end) = route(text.as_str(), &out_tx, &work_tx).await {
                                break end;
                            }
                        }
                        Some(Ok(Message::Close(_))) => {
                            tracing::info!("Stream connection closed by the gateway");
                            break SessionEnd::Lost { healthy: frames > 0 };
                        }
                        // Pongs only prove liveness; tungstenite answers pings itself.
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Ok(Message::Binary(b))) => {
                            tracing::debug!(len = b.len(), "binary Stream frame ignored (only text frames carry messages)");
                        }
                    }
                }
                _ = ticker.tick() => {
                    if last_heard.elapsed() > keepalive.saturating_mul(2) {
                        tracing::warn!("Stream connection silent for two keep-alive intervals; replacing it");
                        break SessionEnd::Lost { healthy: frames > 0 };
                    }
                    if out_tx.send(Message::Ping(Default::default())).await.is_err() {
                        break SessionEnd::Lost { healthy: frames > 0 };
                    }
                }
            }
        };
        // Closing the queue lets the handler finish what it has and ACK it; the writer then
        // closes the socket once the handler drops its sender.
        drop(work_tx);
        drop(out_tx);
        let grace = self.timing.drain_grace;
        let drain = async move {
            if tokio::time::timeout(grace, handler).await.is_err() {
                tracing::warn!("Stream handler still busy after the drain grace; its ACKs are lost and DingTalk will redeliver");
            }
            let _ = tokio::time::timeout(grace, writer).await;
        };
        if end == SessionEnd::Shutdown {
            drain.await;
        } else {
            // The new connection should not wait for the old one to finish.
            tokio::spawn(drain);
        }
        Ok(end)
    }
}

/// Resolves when shutdown is requested or its sender is gone (the bot is being dropped).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn cap(s: &str) -> String {
    s.chars().take(MAX_ERROR_TEXT).collect()
}

/// Error text without the request URL: tungstenite's URL errors quote the URL, which carries
/// the ticket.
fn describe_ws_error(e: &tungstenite::Error) -> String {
    use tungstenite::Error as E;
    match e {
        E::Http(resp) => format!("handshake refused with HTTP {}", resp.status().as_u16()),
        E::Url(_) => "endpoint URL unusable or unreachable".into(),
        E::Io(io) => format!("I/O: {io}"),
        E::Tls(t) => format!("TLS: {t}"),
        E::Protocol(p) => format!("protocol: {p}"),
        E::Capacity(c) => format!("capacity: {c}"),
        E::ConnectionClosed | E::AlreadyClosed => "connection closed".into(),
        other => format!("{other}"),
    }
}

/// Handles what the reader can answer by itself; queues data frames for the handler.
/// Returns how the session ends, if this frame ends it.
async fn route(
    text: &str,
    out: &mpsc::Sender<Message>,
    work: &mpsc::Sender<StreamFrame>,
) -> Option<SessionEnd> {
    let f = match StreamFrame::parse(text) {
        Ok(f) => f,
        Err(e) => {
            // The frame itself is not logged: it may hold a user's message.
            tracing::warn!(error = %e, len = text.len(), "malformed Stream frame ignored");
            if let Some(id) = salvage_message_id(text) {
                send_ack(out, &frame::not_found_ack(&id)).await;
            }
            return None;
        }
    };
    match f.kind() {
        FrameKind::Ping => send_ack(out, &frame::system_echo_ack(&f)).await,
        FrameKind::Disconnect { reason } => {
            tracing::info!(
                reason = reason.as_deref().unwrap_or(""),
                "gateway asked to reconnect"
            );
            send_ack(out, &frame::system_echo_ack(&f)).await;
            return Some(SessionEnd::Reconnect);
        }
        FrameKind::Unhandled => {
            tracing::info!(topic = f.topic(), frame_type = ?f.frame_type, "Stream frame without a handler; answered 404");
            send_ack(out, &frame::not_found_ack(f.message_id())).await;
        }
        FrameKind::Event { .. } | FrameKind::BotMessage | FrameKind::CardCallback => {
            if work.send(f).await.is_err() {
                return Some(SessionEnd::Lost { healthy: true });
            }
        }
    }
    None
}

/// The messageId of a frame that failed to parse, so it can still get a 404 ACK.
fn salvage_message_id(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let headers = v.get("headers").or_else(|| v.get("header"))?;
    let id = headers.get("messageId")?.as_str()?;
    (!id.is_empty()).then(|| id.to_owned())
}

async fn send_ack(out: &mpsc::Sender<Message>, ack: &AckFrame) {
    // A closed writer means the socket is gone; the gateway redelivers what was not ACKed.
    let _ = out.send(Message::text(ack.to_json())).await;
}

async fn write_loop(
    mut sink: futures::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        Message,
    >,
    mut rx: mpsc::Receiver<Message>,
) {
    while let Some(m) = rx.recv().await {
        if let Err(e) = sink.send(m).await {
            tracing::debug!(error = %describe_ws_error(&e), "Stream write failed");
            return;
        }
    }
    let _ = sink.close().await;
}

async fn handle_loop(
    ingress: Arc<Ingress>,
    mut rx: mpsc::Receiver<StreamFrame>,
    out: mpsc::Sender<Message>,
) {
    while let Some(f) = rx.recv().await {
        let ack = ingress.stream_frame(&f).await;
        send_ack(&out, &ack).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_within_half() {
        let (i, m) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff_delay(1, i, m, 0.999_999).as_millis(), 999);
        assert_eq!(backoff_delay(1, i, m, 0.0), Duration::from_millis(500));
        assert_eq!(backoff_delay(3, i, m, 0.0), Duration::from_secs(2));
        assert_eq!(backoff_delay(7, i, m, 0.0), Duration::from_secs(30));
        assert_eq!(backoff_delay(8, i, m, 0.0), Duration::from_secs(30));
        assert_eq!(backoff_delay(u32::MAX, i, m, 1.0), m);
        assert_eq!(backoff_delay(0, i, m, 1.0), i);
    }

    #[test]
    fn ws_url_encodes_ticket_and_keeps_existing_query() {
        let t = Ticket {
            endpoint: "wss://wss-open-connection.dingtalk.com:443/connect".into(),
            ticket: Secret::new("a b+c/=="),
        };
        assert_eq!(
            t.ws_url().map(|u| u.to_string()).ok().as_deref(),
            Some("wss://wss-open-connection.dingtalk.com/connect?ticket=a+b%2Bc%2F%3D%3D")
        );
        let t = Ticket {
            endpoint: "ws://127.0.0.1:9/connect?region=x".into(),
            ticket: Secret::new("7724109a-ea43"),
        };
        assert_eq!(
            t.ws_url().map(|u| u.to_string()).ok().as_deref(),
            Some("ws://127.0.0.1:9/connect?region=x&ticket=7724109a-ea43")
        );
        let t = Ticket {
            endpoint: "https://x/connect".into(),
            ticket: Secret::new("t"),
        };
        assert!(matches!(t.ws_url(), Err(StreamError::BadResponse(_))));
        assert!(!format!("{t:?}").contains("\"t\""));
    }

    #[test]
    fn salvages_message_id_of_unparseable_frames() {
        assert_eq!(
            salvage_message_id(r#"{"headers":{"messageId":"m1"}}"#).as_deref(),
            Some("m1")
        );
        assert_eq!(salvage_message_id("not json"), None);
        assert_eq!(salvage_message_id(r#"{"headers":{"messageId":""}}"#), None);
    }

    /// `wss` endpoints need the rustls connector compiled in and a crypto provider that
    /// rustls can pick on its own; a missing one panics inside tungstenite. A peer that drops
    /// the TCP connection must give a plain error.
    #[tokio::test]
    async fn wss_endpoint_uses_tls_and_fails_cleanly() {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((s, _)) = tcp.accept().await {
                drop(s);
            }
        });
        let t = Ticket {
            endpoint: format!("wss://localhost:{port}/connect"),
            ticket: Secret::new("7724109a-ea43-4aa2-b803-87d82c5aaee6"),
        };
        let url = t.ws_url().unwrap();
        let err = tokio_tungstenite::connect_async(url.as_str())
            .await
            .err()
            .map(|e| describe_ws_error(&e))
            .unwrap_or_default();
        assert!(err.starts_with("I/O") || err.starts_with("TLS"), "{err}");
        assert!(!err.contains("7724109a"));
    }
}
