//! `accessbot loadgen` (hidden, feature sandbox): what scripts/load.sh needs to drive the HTTP
//! edge — validly signed DingTalk deliveries written ahead of a run (so the load generator only
//! replays bytes), the simulators the bot under load talks to, and the bare axum "ceiling"
//! server the bot is compared against, and the open-loop driver (`loadgen open`) that replays a
//! payload file at a fixed rate where wrk2 is not installed. Nothing here is used by `serve`.
//!
//! Payload file format (read by scripts/load/replay.lua): one request per line, tab-separated:
//! `path-and-query`, `body`, then header name/value pairs. Bodies are compact JSON, so they hold
//! no tab or newline.
use crate::dingtalk::config::DingTalkConfig;
use crate::dingtalk::crypto::{CallbackCrypto, CryptoError};
use crate::sandbox::dingtalk::driver::{
    encrypted_event_request, robot_text_message, signed_robot_headers, RobotSender,
};
use serde_json::json;
use std::io::Write;

/// Which set of deliveries to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Distinct `user_leave_org` event pushes: every one new to the bot.
    Events,
    /// Distinct robot text messages, each with its own timestamp (a robot signature is bound to
    /// the first body it authenticated, so two messages cannot share one).
    Robot,
    /// Mostly repeated event pushes: one in [`REPEAT_EVERY`] is new, the others redeliver an
    /// event sent about [`REPEAT_LAG`] requests earlier (re-signed with a fresh nonce, as a
    /// redelivery is), so the copy finds its first delivery already handled.
    Repeat,
}

/// In the `Repeat` set, one request in this many is a new event.
pub const REPEAT_EVERY: usize = 10;
/// How many requests back a repeat's first delivery was: far enough to be handled by then at
/// any rate this machine reaches, so copies are acknowledged duplicates, not 409 in flight.
pub const REPEAT_LAG: usize = 1000;

/// One pre-built HTTP request.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadRequest {
    pub path: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

/// Builds `count` deliveries of `kind`, signed with `d`'s keys and stamped near `now_ms`.
/// `run` makes ids unique across runs on one data directory. Event timestamps are `now_ms`
/// (the bot refuses pushes outside an hour of its clock); robot timestamps count down from
/// `now_ms`, one millisecond apart, so each is distinct and all stay inside the robot window.
pub fn generate(
    d: &DingTalkConfig,
    kind: Kind,
    count: usize,
    now_ms: i64,
    run: &str,
) -> Result<Vec<LoadRequest>, CryptoError> {
    match kind {
        Kind::Events | Kind::Repeat => {
            let crypto = d.callback_crypto()?;
            let ts = now_ms.to_string();
            Ok((0..count)
                .map(|i| {
                    let n = match kind {
                        Kind::Repeat if i % REPEAT_EVERY != 0 => {
                            (i / REPEAT_EVERY).saturating_sub(REPEAT_LAG / REPEAT_EVERY)
                        }
                        Kind::Repeat => i / REPEAT_EVERY,
                        _ => i,
                    };
                    leaver_push(&crypto, d, run, n, &ts, &format!("n{i}"))
                })
                .collect())
        }
        Kind::Robot => {
            let webhook = format!("{}/robot/sendBySession", d.oapi_base.trim_end_matches('/'));
            Ok((0..count)
                .map(|i| {
                    // A thousand senders: the dispatcher serialises one user's messages, and a
                    // real org's traffic comes from many people.
                    let user = format!("load-user-{}", i % 1000);
                    let sender = RobotSender {
                        staff_id: Some(&user),
                        nick: &user,
                        group: false,
                        conversation_id: &format!("cid-{user}"),
                        session_webhook: &webhook,
                        robot_code: &d.app_key,
                    };
                    let ts = now_ms.saturating_sub(i64::try_from(i).unwrap_or(i64::MAX));
                    let msg_id = format!("load-{run}-{i}");
                    let body = robot_text_message(&sender, &msg_id, "帮助", ts);
                    LoadRequest {
                        path: "/dingtalk/robot".into(),
                        body: body.to_string(),
                        headers: signed_robot_headers(d.app_secret.expose(), ts)
                            .into_iter()
                            .chain([("content-type".into(), "application/json".into())])
                            .collect(),
                    }
                })
                .collect())
        }
    }
}

/// A `user_leave_org` push for leaver `n` of `run`: the org-change event every real org sends
/// when someone leaves, and the one the bot must record before acknowledging (its handling
/// closes the leaver's orders and queues the disabling of their JumpServer user).
fn leaver_push(
    crypto: &CallbackCrypto,
    d: &DingTalkConfig,
    run: &str,
    n: usize,
    ts: &str,
    nonce: &str,
) -> LoadRequest {
    let event = json!({
        "EventType": "user_leave_org",
        "TimeStamp": ts,
        "CorpId": d.corp_id,
        "UserId": [format!("leaver-{run}-{n}")],
        "eventId": format!("load-{run}-{n}"),
    });
    let (query, body) = encrypted_event_request(crypto, &event.to_string(), ts, nonce);
    LoadRequest {
        path: format!("/dingtalk/events?{query}"),
        body,
        headers: vec![("content-type".into(), "application/json".into())],
    }
}

/// Writes `reqs` in the payload file format (module header).
pub fn write(reqs: &[LoadRequest], out: &mut impl Write) -> std::io::Result<()> {
    for r in reqs {
        write!(out, "{}\t{}", r.path, r.body)?;
        for (k, v) in &r.headers {
            write!(out, "\t{k}\t{v}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Reads a payload file (module header) back. A line that does not have the format is an error
/// naming the line; empty lines are skipped.
pub fn read(text: &str) -> Result<Vec<LoadRequest>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 2 || !f.len().is_multiple_of(2) || !f[0].starts_with('/') {
            return Err(format!(
                "line {}: expected path, body and header name/value pairs, tab-separated",
                n + 1
            ));
        }
        out.push(LoadRequest {
            path: f[0].to_owned(),
            body: f[1].to_owned(),
            headers: f[2..]
                .chunks(2)
                .map(|h| (h[0].to_owned(), h[1].to_owned()))
                .collect(),
        });
    }
    if out.is_empty() {
        return Err("no requests in the payload file".into());
    }
    Ok(out)
}

/// What `loadgen open` sends, and how.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Where to send: scheme, host and port are taken from it; each request's path and query
    /// come from the payload file (as wrk does with replay.lua).
    pub url: String,
    /// Requests per second, each sent at `start + i / rate`.
    pub rate: u32,
    pub duration: std::time::Duration,
    /// Keep-alive connections opened before the clock starts and kept open between requests.
    pub connections: usize,
    /// At most this many requests in flight: past it, a scheduled request waits for a slot (and
    /// the wait counts in its latency). Keep it near `connections`: every request in flight
    /// beyond the idle connections opens a new one, and the pool closes it again once it is
    /// idle, so a server that stalls for a moment would otherwise face a storm of connects
    /// (measured: past the bot's `server.max_connections`, 503s and a collapse to ~800 req/s at
    /// a rate wrk2 with 64 connections sustains).
    pub max_in_flight: usize,
    /// A request unanswered this long after its scheduled time is counted as a timeout.
    pub timeout: std::time::Duration,
}

/// What an open-loop run measured. Latencies are in microseconds, from each request's
/// *scheduled* send time to the end of its response body.
#[derive(Debug)]
pub struct OpenReport {
    pub scheduled: u64,
    /// Responses received (any status).
    pub completed: u64,
    pub non_2xx: u64,
    /// Connection or protocol errors (no response).
    pub errors: u64,
    pub timeouts: u64,
    /// Responses whose latency exceeded 10 ms.
    pub over_10ms: u64,
    /// Times the payload file was started again because the run needed more requests than it
    /// holds (new events turn into repeats: the figure is no longer "new events only").
    pub restarts: u64,
    pub bytes_read: u64,
    /// From the first scheduled send to the last response.
    pub elapsed: std::time::Duration,
    pub latency_us: hdrhistogram::Histogram<u64>,
}

enum Sent {
    Answered {
        status: u16,
        latency_us: u64,
        bytes: u64,
    },
    Failed,
    TimedOut,
}

/// Sends `reqs` open loop: request `i` at `start + i / rate`, never waiting for an answer before
/// sending the next one. A request whose connection is busy goes out on another pooled
/// connection or a new one (reqwest's pool), and its latency is counted from its scheduled time,
/// not from when it actually left, so a server that stalls is charged for every request it held
/// up (no coordinated omission, as wrk2 -R).
pub async fn open_loop(reqs: &[LoadRequest], o: &OpenOptions) -> Result<OpenReport, String> {
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::time::Instant;
    if o.rate == 0 || o.duration.is_zero() || o.connections == 0 || o.max_in_flight == 0 {
        return Err("rate, duration, connections and max in flight must be positive".into());
    }
    if reqs.is_empty() {
        return Err("no requests to send".into());
    }
    let base = url::Url::parse(&o.url).map_err(|e| format!("url {}: {e}", o.url))?;
    if base.scheme() != "http" || base.host_str().is_none() {
        return Err(format!("url {}: expected http://host:port/…", o.url));
    }
    // Everything per request is built before the clock starts (replay.lua formats once, too).
    let mut prepared = Vec::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        let url = base
            .join(&r.path)
            .map_err(|e| format!("request {}: path {}: {e}", i + 1, r.path))?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &r.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("request {}: bad header name {k:?}", i + 1))?;
            let value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|_| format!("request {}: bad value for header {k}", i + 1))?;
            headers.append(name, value);
        }
        prepared.push((url, headers, bytes_of(&r.body)));
    }
    let client = reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(o.connections)
        .pool_idle_timeout(None)
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    // Open the pool first (as wrk2 connects before it starts the clock): `connections` requests
    // at once, each on its own new connection; a HEAD on `/`, whatever its answer (not on the
    // url itself: a bot would count it as a refused delivery).
    let root = base.join("/").map_err(|e| format!("url {}: {e}", o.url))?;
    let warm = (0..o.connections).map(|_| {
        let (c, u) = (client.clone(), root.clone());
        async move {
            if let Ok(res) = c.head(u).send().await {
                let _ = res.bytes().await;
            }
        }
    });
    futures::future::join_all(warm).await;

    let total = u64::from(o.rate)
        .saturating_mul(o.duration.as_secs())
        .saturating_add(u64::from(o.rate) * u64::from(o.duration.subsec_millis()) / 1000)
        .max(1);
    let prepared = Arc::new(prepared);
    let slots = Arc::new(tokio::sync::Semaphore::new(o.max_in_flight));
    let timeout = o.timeout;
    let per_nanos = 1e9 / f64::from(o.rate);
    let start = Instant::now() + Duration::from_millis(10);
    let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for i in 0..total {
        // Rounded from the exact i / rate, so no drift accumulates at rates that do not divide
        // a second evenly.
        let at = start + Duration::from_nanos((i as f64 * per_nanos) as u64);
        // A deadline already passed goes out now, without a trip through the timer (the
        // timer's 1 ms tick would otherwise add up to a millisecond per late request).
        if Instant::now() < at {
            tokio::time::sleep_until(at).await;
        }
        let k = usize::try_from(i % prepared.len() as u64).unwrap_or(0);
        let (client, prepared, slots) = (client.clone(), prepared.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            let (url, headers, body) = &prepared[k];
            let send = async {
                let _slot = slots.acquire().await.ok()?;
                let res = client
                    .post(url.clone())
                    .headers(headers.clone())
                    .body(body.clone())
                    .send()
                    .await
                    .ok()?;
                let status = res.status().as_u16();
                let body = res.bytes().await.ok()?;
                Some((status, body.len() as u64))
            };
            match tokio::time::timeout_at(at + timeout, send).await {
                Err(_) => (Sent::TimedOut, at),
                Ok(None) => (Sent::Failed, at),
                Ok(Some((status, bytes))) => {
                    let latency_us = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
                    (
                        Sent::Answered {
                            status,
                            latency_us,
                            bytes,
                        },
                        at,
                    )
                }
            }
        }));
    }
    let mut report = OpenReport {
        scheduled: total,
        completed: 0,
        non_2xx: 0,
        errors: 0,
        timeouts: 0,
        over_10ms: 0,
        restarts: (total - 1) / prepared.len() as u64,
        bytes_read: 0,
        elapsed: Duration::ZERO,
        latency_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .map_err(|e| format!("histogram: {e}"))?,
    };
    let mut last = start;
    for t in tasks {
        let (sent, at) = t.await.map_err(|e| format!("request task: {e}"))?;
        match sent {
            Sent::Answered {
                status,
                latency_us,
                bytes,
            } => {
                report.completed += 1;
                report.bytes_read += bytes;
                if !(200..400).contains(&status) {
                    report.non_2xx += 1;
                }
                if latency_us > 10_000 {
                    report.over_10ms += 1;
                }
                report.latency_us.saturating_record(latency_us.max(1));
                last = last.max(at + Duration::from_micros(latency_us));
            }
            Sent::Failed => report.errors += 1,
            Sent::TimedOut => report.timeouts += 1,
        }
    }
    report.elapsed = last
        .duration_since(start)
        .max(o.duration)
        .max(Duration::from_millis(1));
    Ok(report)
}

impl OpenReport {
    /// Prints the report the way `wrk2 --latency` does, so scripts/load.sh's `parse` reads either:
    /// the `Latency` line (avg, stdev, max), the percentile lines, `Non-2xx or 3xx responses:`
    /// and `Requests/sec:`; plus the responses over 10 ms and replay.lua's restart line.
    pub fn write_wrk2(&self, o: &OpenOptions, out: &mut impl Write) -> std::io::Result<()> {
        let h = &self.latency_us;
        let ms = |us: f64| format!("{:.3}ms", us / 1000.0);
        writeln!(
            out,
            "Running {}s test @ {}",
            o.duration.as_secs_f64(),
            o.url
        )?;
        writeln!(
            out,
            "  accessbot loadgen open: {} requests/sec, {} keep-alive connections, at most {} in flight",
            o.rate, o.connections, o.max_in_flight
        )?;
        writeln!(out, "  Thread Stats   Avg      Stdev     Max")?;
        writeln!(
            out,
            "    Latency   {:>9} {:>9} {:>9}",
            ms(h.mean()),
            ms(h.stdev()),
            ms(h.max() as f64)
        )?;
        writeln!(
            out,
            "  Latency Distribution (HdrHistogram - Recorded Latency)"
        )?;
        for q in [50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0] {
            writeln!(
                out,
                "{:7.3}%  {:>10}",
                q,
                ms(h.value_at_quantile(q / 100.0) as f64)
            )?;
        }
        writeln!(out, "  Responses over 10 ms: {}", self.over_10ms)?;
        writeln!(
            out,
            "  {} requests in {:.2}s, {:.2}MB read",
            self.completed,
            self.elapsed.as_secs_f64(),
            self.bytes_read as f64 / 1e6
        )?;
        writeln!(out, "  Non-2xx or 3xx responses: {}", self.non_2xx)?;
        writeln!(
            out,
            "  Scheduled {}, errors {}, timeouts {}",
            self.scheduled, self.errors, self.timeouts
        )?;
        writeln!(
            out,
            "Requests/sec: {:>10.2}",
            self.completed as f64 / self.elapsed.as_secs_f64()
        )?;
        writeln!(out, "replay: slice restarts {}", self.restarts)
    }
}

fn bytes_of(s: &str) -> axum::body::Bytes {
    axum::body::Bytes::copy_from_slice(s.as_bytes())
}

/// The ceiling: a bare axum server on the bot's connection layer and limits that reads the body
/// and answers `200` with a fixed small JSON, doing nothing else. What the HTTP stack alone
/// costs on this machine.
pub async fn serve_ceiling(
    listener: tokio::net::TcpListener,
    limits: crate::listen::server::ConnLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use axum::body::Bytes;
    use axum::routing::post;
    async fn read(body: Bytes) -> axum::Json<serde_json::Value> {
        axum::Json(json!({ "ok": body.len() }))
    }
    let router = axum::Router::new().fallback(post(read));
    crate::listen::server::serve(listener, router, limits, Default::default(), shutdown).await;
}

/// The protocol floor: the ceiling plus the protocol work of an event push — the bot's own
/// signature check, decryption, parsing and encrypted `success` reply
/// ([`crate::ingress::open_event_push`], [`crate::ingress::success_reply`]) — and nothing
/// after it: no dedupe, no dispatch, no storage, none of the router's middleware. Between the
/// ceiling and the bot, it says how much of the bot's cost per request the protocol itself
/// takes on this machine, and how much is the bot's own state.
pub async fn serve_floor(
    listener: tokio::net::TcpListener,
    limits: crate::listen::server::ConnLimits,
    crypto: CallbackCrypto,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use axum::body::Bytes;
    use axum::extract::{RawQuery, State};
    use axum::routing::post;
    use std::sync::Arc;
    async fn push(
        State(crypto): State<Arc<CallbackCrypto>>,
        RawQuery(query): RawQuery,
        body: Bytes,
    ) -> Result<axum::Json<crate::dingtalk::crypto::SuccessReply>, crate::ingress::Refusal> {
        let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        crate::ingress::open_event_push(&crypto, now, query.as_deref().unwrap_or(""), &body)?;
        Ok(axum::Json(crate::ingress::success_reply(&crypto, now)))
    }
    let router = axum::Router::new()
        .route("/dingtalk/events", post(push))
        .with_state(Arc::new(crypto));
    crate::listen::server::serve(listener, router, limits, Default::default(), shutdown).await;
}

/// The simulators a bot under load talks to (DingTalk with the demo directory and no QPS limit,
/// JumpServer with its demo seed), and the bot's config for `port` and `data` written to
/// `config`. Returns them so the caller keeps them running.
pub async fn start_sims(
    port: u16,
    data: &std::path::Path,
    config: &std::path::Path,
) -> Result<
    (
        crate::sandbox::dingtalk::SimDingTalk,
        crate::sandbox::jumpserver::SimJumpServer,
    ),
    String,
> {
    use crate::sandbox::dingtalk::{SimDingTalk, SimDingTalkOptions};
    use crate::sandbox::jumpserver::{SimJmsOptions, SimJumpServer};
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let dt = SimDingTalk::start(SimDingTalkOptions {
        qps_limit: None,
        ..SimDingTalkOptions::default()
    })
    .await
    .map_err(|e| err(&e))?;
    crate::demo::add_directory(&dt);
    let jms = SimJumpServer::start(SimJmsOptions::new(std::sync::Arc::new(
        crate::clock::SystemClock,
    )))
    .await
    .map_err(|e| err(&e))?;
    jms.seed_demo().map_err(|e| err(&e))?;
    dt.set_bot_base_url(format!("http://127.0.0.1:{port}"));
    let doc = crate::fault::bot_config_doc(&dt, &jms, port, data, crate::fault::Approval::Card);
    let text = toml::to_string(&doc).map_err(|e| err(&e))?;
    std::fs::write(config, text).map_err(|e| err(&e))?;
    Ok((dt, jms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_file_reads_back_what_write_wrote() {
        let reqs = vec![
            LoadRequest {
                path: "/dingtalk/events?signature=a&nonce=n0".into(),
                body: r#"{"encrypt":"x"}"#.into(),
                headers: vec![("content-type".into(), "application/json".into())],
            },
            LoadRequest {
                path: "/dingtalk/robot".into(),
                body: "{}".into(),
                headers: vec![
                    ("timestamp".into(), "1".into()),
                    ("sign".into(), "s".into()),
                ],
            },
        ];
        let mut out = Vec::new();
        write(&reqs, &mut out).unwrap();
        assert_eq!(read(&String::from_utf8(out).unwrap()).unwrap(), reqs);
    }

    #[test]
    fn malformed_payload_lines_are_refused_by_line() {
        let err = read("/a\t{}\n/b\t{}\tcontent-type\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(read("no-path\t{}\n").unwrap_err().starts_with("line 1:"));
        assert!(read("\n").is_err(), "an empty file has nothing to send");
    }
}
