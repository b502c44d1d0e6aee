//! The one front door of both listeners: verify → parse → dedupe → dispatch. The HTTP listener
//! (`listen::http`) hands it a route's query, signature headers and body; the Stream listener
//! (`listen::stream`) hands it a frame from its authenticated socket. Each gets back what to
//! answer DingTalk; nothing after the ingress knows which listener delivered an event.
//!
//! Order of work on every delivery, and why:
//! 1. verify the signature (and freshness) before looking inside the payload — a forged request
//!    never reaches a parser (a Stream frame is authenticated by the socket it came on);
//! 2. decrypt / parse into `Inbound`; robot and card signatures cover only their timestamp, so
//!    the headers are then bound to this body and refused with any other (`claim_signature`);
//! 3. remember the delivery key (dedupe) — only now, so a refused request stores nothing;
//! 4. dispatch (records state + outbox), then acknowledge. If dispatch cannot record, or does not
//!    finish before the request deadline (408), the key is forgotten, so DingTalk's redelivery is
//!    handled instead of dropped as a duplicate. A copy arriving while the first is still being
//!    dispatched gets 409 (come back later), not an acknowledgement that might turn out false.
//!
//! Every refusal is a [`Refusal`]: a 4xx/5xx status with a short reason that never contains a
//! secret or the payload. The HTTP listener answers it as JSON; Stream turns it into an ACK.
use crate::clock::SharedClock;
use crate::dingtalk::crypto::{CallbackCrypto, CryptoError, PushQuery, SuccessReply};
use crate::dingtalk::parse::{self, DecryptedEvent};
use crate::dingtalk::sign;
use crate::dingtalk::stream_frame::{self as frame, AckFrame, EventAck, FrameKind, StreamFrame};
use crate::dispatch::{Dispatch, DispatchReply};
use crate::inbound::Inbound;
use crate::secret::Secret;
use crate::store::dedupe::{Dedupe, Delivery, SignatureUse};
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Event pushes older or newer than this are refused as replays. DingTalk signs each push with a
/// fresh timestamp, so a captured request stops working after the window; inside it, the
/// dedupe key catches the copy.
pub const EVENT_FRESHNESS_MS: i64 = 60 * 60 * 1000;

/// A Stream ACK's message is capped so a long refusal reason cannot flood the gateway's log.
const MAX_ACK_TEXT: usize = 200;

pub struct Ingress {
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
    /// Deliveries by channel and outcome are counted here (`crate::metrics`).
    pub metrics: crate::metrics::Metrics,
}

/// Milliseconds after which an in-flight dedupe key counts as abandoned: a copy arriving
/// before then is asked to come back (409); after it, the first attempt is taken as cut off
/// without cleanup (the process died mid-dispatch) and the copy is handled.
#[derive(Clone, Copy, Debug)]
pub struct InFlightWindow(i64);

impl InFlightWindow {
    /// For a listener without its own request deadline (Stream mode).
    pub const DEFAULT: InFlightWindow = InFlightWindow(30_000);

    /// For a listener whose requests are cut off after `timeout`: twice that (at least a
    /// second), since the deadline cancels everything else sooner.
    pub fn after_timeout(timeout: Duration) -> Self {
        Self(
            i64::try_from(timeout.as_millis().saturating_mul(2))
                .unwrap_or(i64::MAX)
                .max(1000),
        )
    }
}

/// A refusal: status plus a short reason DingTalk's console (or an attacker) can read.
/// The reason never contains a secret or the payload.
#[derive(Debug)]
pub struct Refusal(pub StatusCode, pub String);

impl Refusal {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, reason.into())
    }
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self(StatusCode::UNAUTHORIZED, reason.into())
    }
}

impl Ingress {
    /// An encrypted event push (`/dingtalk/events`, reference §2): `query` carries signature,
    /// timestamp and nonce; the answer is the encrypted `success` DingTalk requires. A bot
    /// without HTTP push configured answers 404 before reading the request.
    pub async fn event_push(
        &self,
        window: InFlightWindow,
        query: &str,
        body: &[u8],
    ) -> Result<SuccessReply, Refusal> {
        let crypto = self.crypto.as_ref().ok_or_else(|| {
            Refusal(
                StatusCode::NOT_FOUND,
                "HTTP event push is not configured (dingtalk.mode = \"stream\")".into(),
            )
        })?;
        let now = self.clock.now_ms();
        if let Some(ev) = open_event_push(crypto, now, query, body)? {
            accept_within(self, window, ev).await?;
        }
        Ok(success_reply(crypto, self.clock.now_ms()))
    }

    /// A robot message in HTTP mode (`/dingtalk/robot`, reference §4): `ts` and `sig` are the
    /// `timestamp` and `sign` headers.
    pub async fn robot_message(
        &self,
        window: InFlightWindow,
        ts: Option<&str>,
        sig: Option<&str>,
        body: &[u8],
    ) -> Result<Value, Refusal> {
        sign::verify_robot_request(ts, sig, self.robot_secret.expose(), self.clock.now_ms())
            .map_err(|e| Refusal::unauthorized(e.to_string()))?;
        let msg =
            parse::parse_robot_message(body).map_err(|e| Refusal::bad_request(e.to_string()))?;
        claim_signature(self, "robot", ts, sig, sign::ROBOT_WINDOW_MS, body)?;
        accept_within(self, window, Inbound::Chat(msg)).await?;
        // Replies go through the session webhook after the decision is recorded; an empty
        // synchronous answer keeps DingTalk from waiting on us.
        Ok(json!({ "msgtype": "empty" }))
    }

    /// A card callback (`/dingtalk/cards`, reference §5.4): `ts` and `sig` are the
    /// `x-ddpaas-signature-*` headers. The answer may update the tapped card at once (§5.5).
    pub async fn card_callback(
        &self,
        window: InFlightWindow,
        ts: Option<&str>,
        sig: Option<&str>,
        body: &[u8],
    ) -> Result<Value, Refusal> {
        if self.card_secret.is_empty() {
            // Without an apiSecret DingTalk sends unsigned callbacks, and an unsigned approve
            // tap cannot be told from a forged one.
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                "card callbacks are disabled: set dingtalk.card_callback_secret".into(),
            ));
        }
        sign::verify_card_request(
            ts,
            sig,
            self.card_secret.expose(),
            self.clock.now_ms(),
            // The platform documents no window (reference §5.4): five minutes of skew.
            sign::CARD_WINDOW_MS,
        )
        .map_err(|e| Refusal::unauthorized(e.to_string()))?;
        let action =
            parse::parse_card_callback(body).map_err(|e| Refusal::bad_request(e.to_string()))?;
        claim_signature(self, "card", ts, sig, sign::CARD_WINDOW_MS, body)?;
        match accept_within(self, window, Inbound::CardAction(action)).await? {
            DispatchReply::CardUpdate(v) => Ok(v),
            DispatchReply::None | DispatchReply::Refused => Ok(json!({})),
        }
    }

    /// One data frame from the Stream socket (reference §3.4), already authenticated by the
    /// connection it came on: parsed into an `Inbound`, de-duplicated and dispatched like an
    /// HTTP delivery. Never fails: every outcome is the ACK to send.
    pub async fn stream_frame(&self, f: &StreamFrame) -> AckFrame {
        let id = f.message_id();
        match f.kind() {
            FrameKind::Event {
                event_type,
                event_id,
            } => match parse::parse_event_data(&event_type, event_id.as_deref(), &f.data) {
                Ok(DecryptedEvent::CheckUrl) => frame::event_ack(id, EventAck::Success),
                Ok(DecryptedEvent::Event(ev)) => match self.accept(ev).await {
                    Ok(_) => frame::event_ack(id, EventAck::Success),
                    Err(r) => {
                        tracing::warn!(reason = %r.1, event_type = %event_type, "Stream event not recorded; asking for redelivery");
                        frame::event_ack(id, EventAck::Later)
                    }
                },
                // Delivered over our authenticated socket but not a shape we understand: asking
                // for redelivery would loop forever, so acknowledge and log (as for HTTP).
                Err(e) => {
                    tracing::warn!(error = %e, event_type = %event_type, "Stream event we cannot parse; acknowledged");
                    frame::event_ack(id, EventAck::Success)
                }
            },
            FrameKind::BotMessage => match parse::parse_robot_message(f.data.as_bytes()) {
                Ok(msg) => match self.accept(Inbound::Chat(msg)).await {
                    Ok(_) => frame::callback_ack(id, Value::Null),
                    Err(r) => failed_ack(id, &r.1),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "Stream robot message we cannot parse");
                    failed_ack(id, "malformed robot message")
                }
            },
            FrameKind::CardCallback => match parse::parse_card_callback(f.data.as_bytes()) {
                Ok(action) => match self.accept(Inbound::CardAction(action)).await {
                    Ok(DispatchReply::CardUpdate(v)) => frame::callback_ack(id, v),
                    Ok(DispatchReply::None | DispatchReply::Refused) => {
                        frame::callback_ack(id, json!({}))
                    }
                    Err(r) => failed_ack(id, &r.1),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "Stream card callback we cannot parse");
                    failed_ack(id, "malformed card callback")
                }
            },
            FrameKind::Ping | FrameKind::Disconnect { .. } => frame::system_echo_ack(f),
            FrameKind::Unhandled => frame::not_found_ack(id),
        }
    }

    /// Dedupe, then dispatch, for a listener without its own request deadline: the step every
    /// delivery goes through, so both listeners behave alike.
    pub async fn accept(&self, event: Inbound) -> Result<DispatchReply, Refusal> {
        // Only Stream comes this way; HTTP deliveries are counted by the router's layer.
        let (r, dup) =
            crate::metrics::track_duplicate(accept_within(self, InFlightWindow::DEFAULT, event))
                .await;
        let status = r.as_ref().map_or_else(|e| e.0.as_u16(), |_| 200);
        self.metrics.delivery(
            crate::metrics::Channel::Stream,
            crate::metrics::Outcome::of(status, dup),
        );
        r
    }
}

/// Code 500 for a callback we could not take (reference §3.4); robot messages are not re-pushed,
/// so this only tells DingTalk (and the tapping user's card) that it failed.
fn failed_ack(id: &str, reason: &str) -> AckFrame {
    tracing::warn!(reason, "Stream callback not handled; answered 500");
    let mut ack = frame::callback_ack(id, Value::Null);
    ack.code = 500;
    ack.message = reason.chars().take(MAX_ACK_TEXT).collect();
    ack
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

/// Steps 1–2 of an event push (module header): the query's signature checked over the body's
/// `encrypt`, the timestamp's freshness, then decryption and parsing. `None` for what is
/// acknowledged without being handled (DingTalk's `check_url`, and an authentic event of a shape
/// we cannot parse: refusing it would make DingTalk redeliver it forever). No state is read or
/// written here, so `loadgen floor` can time this step alone.
pub fn open_event_push(
    crypto: &CallbackCrypto,
    now_ms: i64,
    query: &str,
    body: &[u8],
) -> Result<Option<Inbound>, Refusal> {
    let q = PushQuery::parse(query).ok_or_else(|| {
        Refusal::bad_request("missing query parameter: signature, timestamp and nonce are required")
    })?;
    let encrypt = parse::parse_push_body(body)
        .map_err(|_| Refusal::bad_request("body must be JSON {\"encrypt\": \"...\"}"))?;
    crypto
        .verify_signature(&q.signature, &q.timestamp, &q.nonce, &encrypt)
        .map_err(|e| Refusal::unauthorized(e.to_string()))?;
    check_fresh(&q.timestamp, now_ms, EVENT_FRESHNESS_MS)?;
    let plaintext = crypto.decrypt(&encrypt).map_err(|e| match e {
        CryptoError::OwnerKeyMismatch => Refusal::unauthorized(e.to_string()),
        other => Refusal::bad_request(other.to_string()),
    })?;
    Ok(match parse::parse_event(&plaintext) {
        Ok(DecryptedEvent::CheckUrl) => {
            tracing::info!("answered check_url");
            None
        }
        Ok(DecryptedEvent::Event(ev)) => Some(ev),
        Err(e) => {
            tracing::warn!(error = %e, "authentic event we cannot parse; acknowledged");
            None
        }
    })
}

/// The encrypted `success` DingTalk requires in answer to a push (reference §2.4), with a fresh
/// timestamp and nonce.
pub fn success_reply(crypto: &CallbackCrypto, now_ms: i64) -> SuccessReply {
    let nonce: String = {
        use rand::distr::{Alphanumeric, SampleString};
        Alphanumeric.sample_string(&mut rand::rng(), 16)
    };
    crypto.success_reply(&now_ms.to_string(), &nonce)
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
    st: &Ingress,
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

/// How long a copy that finds its first delivery still being handled waits for it to end
/// (`Dedupe::begin_or_wait`) before it is asked to come back: long enough for an event whose
/// handling is only local work, far below DingTalk's patience for an answer.
const COPY_SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// Dedupe, then dispatch. A duplicate is acknowledged without being handled again; a copy
/// that arrives while the first is still being handled waits for it briefly and is otherwise
/// asked to come back (409), because the first attempt may yet fail and its key be forgotten.
async fn accept_within(
    st: &Ingress,
    window: InFlightWindow,
    event: Inbound,
) -> Result<DispatchReply, Refusal> {
    let key = event.dedupe_key();
    if let Some(key) = &key {
        let now = st.clock.now_ms();
        let seen = st
            .dedupe
            .begin_or_wait(
                key,
                now,
                now.saturating_add(st.dedupe_ttl_ms),
                window.0,
                COPY_SETTLE,
            )
            .await
            .map_err(storage_failed)?;
        match seen {
            Delivery::First => {}
            // Repeats are normal (DingTalk redelivers, people double-tap) and can come by the
            // million under a redelivery storm: debug only, counted in `Dedupe::stats`.
            Delivery::Duplicate => {
                crate::metrics::note_duplicate();
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
                if let Err(e) = st.dedupe.finish(key).await {
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
