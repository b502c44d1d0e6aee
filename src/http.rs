//! The axum router DingTalk talks to: `/dingtalk/events` (encrypted event push), `/dingtalk/robot`
//! (robot messages, HTTP mode), `/dingtalk/cards` (card callbacks) and `/healthz`; the access
//! console's routes (`console::router`) are merged in under the same limits.
//!
//! Order of work on every inbound route, and why:
//! 1. verify the signature (and freshness) before looking inside the payload — a forged request
//!    never reaches a parser;
//! 2. decrypt / parse into `Inbound`; robot and card signatures cover only their timestamp, so
//!    the headers are then bound to this body and refused with any other (`claim_signature`);
//! 3. remember the delivery key (dedupe) — only now, so a refused request stores nothing;
//! 4. dispatch (records state + outbox), then acknowledge. If dispatch cannot record, or does not
//!    finish before the request deadline (408), the key is forgotten, so DingTalk's redelivery is
//!    handled instead of dropped as a duplicate. A copy arriving while the first is still being
//!    dispatched gets 409 (come back later), not an acknowledgement that might turn out false.
//!
//! Every refusal is a 4xx with a short JSON reason `{"error": "..."}`, including 413 (body over
//! `server.max_body_bytes`; the rest of the body is drained up to a bound first, so a client
//! that writes before it reads still gets the answer) and 408 (over `server.request_timeout_ms`).
use crate::clock::SharedClock;
use crate::dingtalk::crypto::{CallbackCrypto, CryptoError, PushQuery};
use crate::dingtalk::parse::{self, DecryptedEvent};
use crate::dingtalk::sign;
use crate::dispatch::{Dispatch, DispatchReply};
use crate::inbound::Inbound;
use crate::secret::Secret;
use crate::store::dedupe::{Dedupe, Delivery, SignatureUse};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Event pushes older or newer than this are refused as replays. DingTalk signs each push with a
/// fresh timestamp, so a captured request stops working after the window; inside it, the
/// dedupe key catches the copy.
pub const EVENT_FRESHNESS_MS: i64 = 60 * 60 * 1000;

pub struct EdgeState {
    /// Event-push crypto; `None` when events arrive over Stream mode and HTTP push is off.
    pub crypto: Option<CallbackCrypto>,
    /// Robot HTTP-mode `sign` key: the app secret.
    pub robot_secret: Secret,
    /// `apiSecret` registered for card callbacks; empty disables the card route.
    pub card_secret: Secret,
    pub dedupe: Dedupe,
    pub dedupe_ttl_ms: i64,
    pub clock: SharedClock,
    pub dispatcher: Arc<dyn Dispatch>,
}

/// `extra`: routes served beside DingTalk's (the access console), under the same body limit and
/// request deadline.
pub fn router(
    state: Arc<EdgeState>,
    extra: Router,
    max_body_bytes: usize,
    timeout: Duration,
) -> Router {
    // A delivery still marked in flight this long after it began was cut off without cleanup
    // (the process died mid-dispatch); the request deadline cancels everything else sooner.
    let abandon_after_ms = i64::try_from(timeout.as_millis().saturating_mul(2))
        .unwrap_or(i64::MAX)
        .max(1000);
    Router::new()
        .route("/dingtalk/events", post(events))
        .route("/dingtalk/robot", post(robot))
        .route("/dingtalk/cards", post(cards))
        .route("/healthz", get(healthz))
        .with_state(state)
        .merge(extra)
        .layer(Extension(InFlightWindow(abandon_after_ms)))
        // The body is read (and an over-size one drained) by `bounded` before any handler
        // runs; this limit only guards a future route that would read its own.
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| async move {
                bounded(req, next, max_body_bytes, timeout).await
            },
        ))
}

/// How much of an over-size body is read and thrown away so the client sees its 413: four
/// times the limit, and at least 1 MiB. A client that writes its whole request before reading
/// (most do) is otherwise cut off mid-write by the close and never reads the answer. Beyond the
/// bound (or the request deadline) the connection is closed after the 413 instead: reading
/// without end is what an attacker would want.
fn drain_bound(max_body_bytes: usize) -> usize {
    max_body_bytes.saturating_mul(4).max(1 << 20)
}

/// Why a request body was not handed to the route.
enum BodyError {
    /// Over `max_body_bytes`; `drained` when the rest was read, so the connection stays usable.
    TooLarge {
        drained: bool,
    },
    TimedOut,
    Unreadable,
}

/// Reads the body within `max` bytes before `deadline`; an over-size body is drained up to
/// `drain_bound` (and the same deadline).
async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    max: usize,
    deadline: tokio::time::Instant,
) -> Result<Bytes, BodyError> {
    use futures::StreamExt;
    let bound = drain_bound(max);
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > bound as u64) {
        // Draining would stop at the bound anyway; do not start.
        return Err(BodyError::TooLarge { drained: false });
    }
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut total: usize = 0;
    let mut over = announced.is_some_and(|n| n > max as u64);
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) if over => return Err(BodyError::TooLarge { drained: false }),
            Err(_) => return Err(BodyError::TimedOut),
            Ok(None) if over => return Err(BodyError::TooLarge { drained: true }),
            Ok(None) => return Ok(Bytes::from(buf)),
            Ok(Some(Err(_))) if over => return Err(BodyError::TooLarge { drained: false }),
            Ok(Some(Err(_))) => return Err(BodyError::Unreadable),
            Ok(Some(Ok(chunk))) => chunk,
        };
        total = total.saturating_add(chunk.len());
        if total > bound {
            return Err(BodyError::TooLarge { drained: false });
        }
        if total > max {
            over = true;
            buf = Vec::new();
        } else {
            buf.extend_from_slice(&chunk);
        }
    }
}

/// The request deadline and the body limit, for every route: the body is read first (an
/// over-size one drained, then 413), then the handler runs in the time left (else 408).
async fn bounded(req: Request, next: Next, max_body_bytes: usize, timeout: Duration) -> Response {
    let deadline = tokio::time::Instant::now() + timeout;
    let (parts, body) = req.into_parts();
    let timed_out = || {
        Refusal(
            StatusCode::REQUEST_TIMEOUT,
            "request took longer than server.request_timeout_ms".into(),
        )
        .into_response()
    };
    let bytes = match read_body(&parts.headers, body, max_body_bytes, deadline).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { drained }) => {
            let mut r = Refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body larger than server.max_body_bytes".into(),
            )
            .into_response();
            if !drained {
                // Part of the body is still unread: say so, and hyper closes after answering.
                r.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            return r;
        }
        Err(BodyError::TimedOut) => return timed_out(),
        Err(BodyError::Unreadable) => {
            return Refusal(
                StatusCode::BAD_REQUEST,
                "could not read the request body".into(),
            )
            .into_response()
        }
    };
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    match tokio::time::timeout_at(deadline, next.run(req)).await {
        Ok(response) => response,
        Err(_) => timed_out(),
    }
}

/// Milliseconds after which an in-flight dedupe key counts as abandoned.
#[derive(Clone, Copy)]
struct InFlightWindow(i64);

/// A refusal: status plus a short reason DingTalk's console (or an attacker) can read.
/// The reason never contains a secret or the payload.
#[derive(Debug)]
pub struct Refusal(pub StatusCode, pub String);

impl Refusal {
    fn bad_request(reason: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, reason.into())
    }
    fn unauthorized(reason: impl Into<String>) -> Self {
        Self(StatusCode::UNAUTHORIZED, reason.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        tracing::info!(status = self.0.as_u16(), reason = %self.1, "refused inbound request");
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn events(
    State(st): State<Arc<EdgeState>>,
    Extension(window): Extension<InFlightWindow>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let body = body_or_refusal(body)?;
    let q = PushQuery::parse(query.as_deref().unwrap_or("")).ok_or_else(|| {
        Refusal::bad_request("missing query parameter: signature, timestamp and nonce are required")
    })?;
    let encrypt = parse::parse_push_body(&body)
        .map_err(|_| Refusal::bad_request("body must be JSON {\"encrypt\": \"...\"}"))?;
    let crypto = st.crypto.as_ref().ok_or_else(|| {
        Refusal(
            StatusCode::NOT_FOUND,
            "HTTP event push is not configured (dingtalk.mode = \"stream\")".into(),
        )
    })?;
    crypto
        .verify_signature(&q.signature, &q.timestamp, &q.nonce, &encrypt)
        .map_err(|e| Refusal::unauthorized(e.to_string()))?;
    check_fresh(&q.timestamp, st.clock.now_ms(), EVENT_FRESHNESS_MS)?;
    let plaintext = crypto.decrypt(&encrypt).map_err(|e| match e {
        CryptoError::OwnerKeyMismatch => Refusal::unauthorized(e.to_string()),
        other => Refusal::bad_request(other.to_string()),
    })?;
    match parse::parse_event(&plaintext) {
        Ok(DecryptedEvent::CheckUrl) => tracing::info!("answered check_url"),
        Ok(DecryptedEvent::Event(ev)) => {
            accept_within(&st, window, ev).await?;
        }
        // Authentic (signed and encrypted with our key) but not a shape we understand: refusing
        // would make DingTalk redeliver it forever, so acknowledge, record nothing, and log.
        Err(e) => tracing::warn!(error = %e, "authentic event we cannot parse; acknowledged"),
    }
    Ok(success(&st, crypto))
}

/// The encrypted `success` DingTalk requires (reference §2.4), with a fresh timestamp and nonce.
fn success(st: &EdgeState, crypto: &CallbackCrypto) -> Response {
    let nonce: String = {
        use rand::distr::{Alphanumeric, SampleString};
        Alphanumeric.sample_string(&mut rand::rng(), 16)
    };
    let reply = crypto.success_reply(&st.clock.now_ms().to_string(), &nonce);
    Json(reply).into_response()
}

/// Parses the opaque DingTalk timestamp (10-digit seconds or 13-digit milliseconds) only to
/// judge freshness; the signature is always computed over the exact string received.
fn check_fresh(ts: &str, now_ms: i64, window_ms: i64) -> Result<(), Refusal> {
    let n: i64 = ts
        .parse()
        .map_err(|_| Refusal::bad_request("timestamp is not a number"))?;
    let ms = if ts.len() <= 10 {
        n.saturating_mul(1000)
    } else {
        n
    };
    // i128: a signed but absurd timestamp (i64::MIN) must be refused, not overflow.
    if (i128::from(now_ms) - i128::from(ms)).abs() > i128::from(window_ms) {
        return Err(Refusal::unauthorized(
            "timestamp outside the accepted window (stale or replayed request)",
        ));
    }
    Ok(())
}

async fn robot(
    State(st): State<Arc<EdgeState>>,
    Extension(window): Extension<InFlightWindow>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let body = body_or_refusal(body)?;
    let (ts, sig) = (
        header(&headers, sign::ROBOT_TIMESTAMP_HEADER),
        header(&headers, sign::ROBOT_SIGN_HEADER),
    );
    sign::verify_robot_request(ts, sig, st.robot_secret.expose(), st.clock.now_ms())
        .map_err(|e| Refusal::unauthorized(e.to_string()))?;
    let msg = parse::parse_robot_message(&body).map_err(|e| Refusal::bad_request(e.to_string()))?;
    claim_signature(&st, "robot", ts, sig, sign::ROBOT_WINDOW_MS, &body)?;
    accept_within(&st, window, Inbound::Chat(msg)).await?;
    // Replies go through the session webhook after the decision is recorded; an empty
    // synchronous answer keeps DingTalk from waiting on us.
    Ok(Json(json!({ "msgtype": "empty" })).into_response())
}

async fn cards(
    State(st): State<Arc<EdgeState>>,
    Extension(window): Extension<InFlightWindow>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let body = body_or_refusal(body)?;
    if st.card_secret.is_empty() {
        // Without an apiSecret DingTalk sends unsigned callbacks, and an unsigned approve tap
        // cannot be told from a forged one.
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "card callbacks are disabled: set dingtalk.card_callback_secret".into(),
        ));
    }
    let (ts, sig) = (
        header(&headers, sign::CARD_TIMESTAMP_HEADER),
        header(&headers, sign::CARD_SIGN_HEADER),
    );
    sign::verify_card_request(
        ts,
        sig,
        st.card_secret.expose(),
        st.clock.now_ms(),
        // The platform documents no window (reference §5.4): five minutes of skew.
        sign::CARD_WINDOW_MS,
    )
    .map_err(|e| Refusal::unauthorized(e.to_string()))?;
    let action =
        parse::parse_card_callback(&body).map_err(|e| Refusal::bad_request(e.to_string()))?;
    claim_signature(&st, "card", ts, sig, sign::CARD_WINDOW_MS, &body)?;
    match accept_within(&st, window, Inbound::CardAction(action)).await? {
        DispatchReply::CardUpdate(v) => Ok(Json(v).into_response()),
        DispatchReply::None | DispatchReply::Refused => Ok(Json(json!({})).into_response()),
    }
}

/// Refuses verified signature headers that already authenticated a different body.
///
/// The robot `sign` and the card `x-ddpaas-signature` are HMACs of the timestamp alone
/// (reference §4.1, §5.4): nothing in the body is covered, so headers captured from one request
/// would otherwise carry any other body until the timestamp goes stale (an hour for the robot).
/// Each (timestamp, sign) pair is therefore bound, in the dedupe store, to the SHA-256 of the
/// first body it came with, for as long as the timestamp is fresh. The same pair with the same
/// body is a retransmission and goes on to dedupe; with another body it is refused (401) and
/// nothing is stored. Called after parsing, so a request refused for its body claims nothing.
///
/// Binding to the session webhook was considered: it is just another unsigned body field, so it
/// proves nothing about the sender. What keeps a re-bodied request from redirecting the bot's
/// replies is that `DingTalkClient::reply_webhook` only posts to DingTalk's own oapi host.
///
/// Cost: two genuine deliveries stamped in the same millisecond carry identical headers, and the
/// second is refused like a replay. DingTalk offers nothing to tell them apart; at a bot's
/// message rates this is rare, and the sender sees no reply and can send again.
fn claim_signature(
    st: &EdgeState,
    route: &str,
    ts: Option<&str>,
    sig: Option<&str>,
    window_ms: i64,
    body: &[u8],
) -> Result<(), Refusal> {
    use sha2::{Digest, Sha256};
    // Both headers were verified present before this point.
    let (ts, sig) = (ts.unwrap_or_default(), sig.unwrap_or_default());
    let now = st.clock.now_ms();
    // Verified fresh, so the number parses and `ts + window` cannot overflow in practice; the
    // fallbacks only keep this total.
    let expires = ts
        .trim()
        .parse::<i64>()
        .unwrap_or(now)
        .saturating_add(window_ms)
        .saturating_add(1);
    let digest: [u8; 32] = Sha256::digest(body).into();
    let pair = format!("{route}:{ts}:{sig}");
    match st
        .dedupe
        .claim_signature(&pair, &digest, now, expires)
        .map_err(storage_failed)?
    {
        SignatureUse::First | SignatureUse::SameBody => Ok(()),
        SignatureUse::OtherBody => Err(Refusal::unauthorized(
            "signature already used with another body (replayed headers)",
        )),
    }
}

/// The body, or the refusal that says why it could not be read: over `server.max_body_bytes`
/// is 413 with the same JSON shape and log line as every other refusal.
fn body_or_refusal(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Refusal> {
    body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal(status, "body larger than server.max_body_bytes".into())
        } else {
            Refusal(status, "could not read the request body".into())
        }
    })
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// How long an in-flight delivery of a listener without its own request deadline (Stream mode)
/// blocks its copies before it counts as abandoned.
const DEFAULT_ABANDON_MS: i64 = 30_000;

/// Dedupe, then dispatch: the step shared by every listener (HTTP here, Stream mode in
/// `dingtalk::stream`), so both behave alike.
pub async fn accept(st: &EdgeState, event: Inbound) -> Result<DispatchReply, Refusal> {
    accept_within(st, InFlightWindow(DEFAULT_ABANDON_MS), event).await
}

/// Dedupe, then dispatch. A duplicate is acknowledged without being handled again; a copy
/// that arrives while the first is still being handled is asked to come back (409), because
/// the first attempt may yet fail and its key be forgotten.
async fn accept_within(
    st: &EdgeState,
    window: InFlightWindow,
    event: Inbound,
) -> Result<DispatchReply, Refusal> {
    let key = event.dedupe_key();
    if let Some(key) = &key {
        let now = st.clock.now_ms();
        let seen = st
            .dedupe
            .begin(key, now, now.saturating_add(st.dedupe_ttl_ms), window.0)
            .map_err(storage_failed)?;
        match seen {
            Delivery::First => {}
            // Repeats are normal (DingTalk redelivers, people double-tap) and can come by the
            // million under a redelivery storm: debug only, counted in `Dedupe::stats`.
            Delivery::Duplicate => {
                tracing::debug!(key = %key, "duplicate delivery acknowledged, not handled again");
                return Ok(DispatchReply::None);
            }
            Delivery::InFlight => {
                tracing::debug!(key = %key, "copy of a delivery still being handled; asked to retry");
                return Err(Refusal(
                    StatusCode::CONFLICT,
                    "the same delivery is being handled; retry later".into(),
                ));
            }
        }
    }
    // The request timeout drops this future mid-dispatch; the guard then forgets the key, so
    // the timed-out delivery is not mistaken for a duplicate when DingTalk sends it again.
    let mut guard = ForgetOnDrop {
        dedupe: &st.dedupe,
        key: key.as_deref(),
    };
    match st.dispatcher.handle(event).await {
        // Nothing was recorded: the guard forgets the key (see `DispatchReply::Refused`).
        Ok(DispatchReply::Refused) => Ok(DispatchReply::Refused),
        Ok(reply) => {
            if let Some(key) = guard.key.take() {
                // The event is handled; failing to mark it only risks handling a redelivery
                // again, which the workflow's own state tolerates better than a lost reply.
                if let Err(e) = st.dedupe.finish(key) {
                    tracing::error!(error = %e, key, "could not mark a delivery handled");
                }
            }
            Ok(reply)
        }
        Err(e) => {
            drop(guard);
            tracing::warn!(error = %e, "dispatch failed; asking DingTalk to redeliver");
            Err(Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
    }
}

fn storage_failed(e: crate::store::StoreError) -> Refusal {
    tracing::error!(error = %e, "dedupe store failed");
    Refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage unavailable".into(),
    )
}

/// Forgets a delivery key unless disarmed (`key = None`) after a completed dispatch.
struct ForgetOnDrop<'a> {
    dedupe: &'a Dedupe,
    key: Option<&'a str>,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            if let Err(e) = self.dedupe.forget(key) {
                tracing::error!(error = %e, key, "could not forget the key of an unfinished delivery");
            }
        }
    }
}
