//! `accessbot loadgen` (hidden, feature sandbox): what scripts/load.sh needs to drive the HTTP
//! edge — validly signed DingTalk deliveries written ahead of a run (so the load generator only
//! replays bytes), the simulators the bot under load talks to, and the bare axum "ceiling"
//! server the bot is compared against. Nothing here is used by `serve`.
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
            let crypto = CallbackCrypto::new(
                d.callback_token.expose(),
                d.callback_aes_key.expose(),
                d.owner_key(),
            )?;
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
    for (id, name, email) in crate::demo::DIRECTORY {
        dt.add_user(crate::dingtalk::client::DingUser {
            userid: crate::domain::ids::DingUserId::new(*id),
            name: (*name).to_owned(),
            email: Some((*email).to_owned()),
            org_email: None,
            mobile: None,
            job_number: None,
            dept_ids: vec![1],
            active: true,
        });
    }
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
