//! The HTTP listener: the axum router DingTalk talks to — `/dingtalk/events` (encrypted event
//! push), `/dingtalk/robot` (robot messages, HTTP mode), `/dingtalk/cards` (card callbacks) —
//! and `/healthz`. It owns what is HTTP about a delivery: the body limit, the request deadline
//! and the JSON shape of a refusal; verifying, parsing, dedupe and dispatch are the ingress's.
//!
//! Every refusal is a 4xx with a short JSON reason `{"error": "..."}`, including 413 (body over
//! `server.max_body_bytes`; the rest of the body is drained up to a bound first, so a client
//! that writes before it reads still gets the answer) and 408 (over `server.request_timeout_ms`).
use crate::dingtalk::sign;
use crate::ingress::{InFlightWindow, Ingress, Refusal};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub fn router(ingress: Arc<Ingress>, max_body_bytes: usize, timeout: Duration) -> Router {
    let edge = Arc::new(Edge {
        window: InFlightWindow::after_timeout(timeout),
        max_body_bytes,
        timeout,
        ingress,
    });
    Router::new()
        .route("/dingtalk/events", post(events))
        .route("/dingtalk/robot", post(robot))
        .route("/dingtalk/cards", post(cards))
        .route("/healthz", get(healthz))
        // The body is read (and an over-size one drained) by `bounded` before any handler
        // runs; this limit only guards a future route that would read its own.
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // One layer for all that wraps a delivery (each layer is a boxed future and a service
        // clone per request): count it, bound it.
        .layer(axum::middleware::from_fn_with_state(edge.clone(), wrap))
        .with_state(edge)
}

/// What the routes share: the ingress, and the limits this listener applies.
struct Edge {
    ingress: Arc<Ingress>,
    window: InFlightWindow,
    max_body_bytes: usize,
    timeout: Duration,
}

/// Every request: the body limit and deadline (`bounded`); deliveries on the DingTalk routes are
/// also timed and counted, refusals by those limits included.
async fn wrap(State(edge): State<Arc<Edge>>, req: Request, next: Next) -> Response {
    let channel = crate::metrics::Channel::of_path(req.uri().path());
    let run = bounded(req, next, edge.max_body_bytes, edge.timeout);
    match channel {
        Some(channel) => edge.ingress.metrics.count_delivery(channel, run).await,
        None => run.await,
    }
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
    // Copied out even when the body is one chunk: a chunk is a slice of hyper's read buffer, and
    // while a request holds it hyper cannot reuse that buffer for the next request on the
    // connection. Keeping the chunk was tried: no gain the load script could resolve.
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
    State(edge): State<Arc<Edge>>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let body = body_or_refusal(body)?;
    let reply = edge
        .ingress
        .event_push(edge.window, query.as_deref().unwrap_or(""), &body)
        .await?;
    Ok(Json(reply).into_response())
}

async fn robot(
    State(edge): State<Arc<Edge>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let body = body_or_refusal(body)?;
    let (ts, sig) = (
        header(&headers, sign::ROBOT_TIMESTAMP_HEADER),
        header(&headers, sign::ROBOT_SIGN_HEADER),
    );
    let reply = edge
        .ingress
        .robot_message(edge.window, ts, sig, &body)
        .await?;
    Ok(Json(reply).into_response())
}

async fn cards(
    State(edge): State<Arc<Edge>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let body = body_or_refusal(body)?;
    let (ts, sig) = (
        header(&headers, sign::CARD_TIMESTAMP_HEADER),
        header(&headers, sign::CARD_SIGN_HEADER),
    );
    let reply = edge
        .ingress
        .card_callback(edge.window, ts, sig, &body)
        .await?;
    Ok(Json(reply).into_response())
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
