//! The operator endpoints over HTTP: `/metrics` after a scripted request → approve → grant (names
//! and values), `/metrics` on its own listener, `/readyz` failing while the simulated JumpServer
//! fails or refuses the key and while the Stream gateway is unreachable, and recovering after;
//! `accessbot healthcheck` exit codes against both answers.
use crate::support::{bot_env_newtype, ding_user, filled_example, BotEnv};
use accessbot::config::Config;
use accessbot::dingtalk::ListenerMode;
use accessbot::domain::order::State;
use accessbot::readiness::CACHE_MS;
use accessbot::sandbox::dingtalk::stream::SimStreamGateway;
use accessbot::sandbox::dingtalk::SimDingTalkOptions;
use accessbot::secret::Secret;
use jiff::SignedDuration;
use serde_json::Value;

const ALICE: &str = "alice01";
const BOSS: &str = "boss01";
const ADMIN: &str = "admin01";

struct Env(BotEnv);
bot_env_newtype!(Env);

impl Env {
    async fn new(configure: impl FnOnce(&mut Config)) -> Env {
        let users = [
            (ALICE, "张三", "fx-alice@example.com"),
            (BOSS, "李四", "boss01@example.com"),
            (ADMIN, "管理员", "admin01@example.com"),
        ]
        .map(|(id, name, mail)| ding_user(id, name, mail));
        Env(BotEnv::new(
            users,
            |_, _| {},
            |cfg| {
                cfg.approval.default_approvers = vec![BOSS.into()];
                cfg.policy.admins = vec![ADMIN.into()];
                configure(cfg);
            },
        )
        .await)
    }

    async fn say(&self, user: &str, msg_id: &str, text: &str) -> String {
        self.push_robot_text(user, msg_id, text).await;
        self.reply(msg_id).await
    }

    async fn metrics(&self) -> String {
        let res = reqwest::get(self.bot().metrics_url()).await.unwrap();
        assert_eq!(res.status(), 200);
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        res.text().await.unwrap()
    }

    /// `/readyz` after the cached answer has gone stale.
    async fn readyz_fresh(&self) -> (u16, Value) {
        self.clock
            .advance(SignedDuration::from_millis(CACHE_MS + 1000));
        readyz(&self.bot().url()).await
    }
}

async fn readyz(base: &str) -> (u16, Value) {
    let res = reqwest::get(format!("{base}/readyz")).await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// The value of the sample `series` (name with labels, exactly as exposed).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn delivery(channel: &str, outcome: &str, reason: &str) -> String {
    format!(
        "accessbot_inbound_deliveries_total{{channel=\"{channel}\",outcome=\"{outcome}\",reason=\"{reason}\"}}"
    )
}

#[tokio::test]
async fn metrics_after_request_approve_grant() {
    let env = Env::new(|_| {}).await;
    let r = env
        .say(
            ALICE,
            "m1",
            "申请主机 10.10.1.11 只读 4h 原因：排查线上问题",
        )
        .await;
    let id = env.orders_of(ALICE)[0].id.clone();
    assert!(r.contains(id.as_str()), "{r}");
    env.drain().await;
    // DingTalk redelivers the same message: acknowledged, counted as a duplicate.
    env.push_robot_text(
        ALICE,
        "m1",
        "申请主机 10.10.1.11 只读 4h 原因：排查线上问题",
    )
    .await;
    // A forged push (bad signature) is refused.
    let res = reqwest::Client::new()
        .post(format!("{}/dingtalk/robot", env.bot().url()))
        .header("timestamp", env.now_ms().to_string())
        .header("sign", "forged")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // The decision comes 90 s after the request, the grant right after it.
    env.clock.advance(SignedDuration::from_secs(90));
    let r = env.say(BOSS, "m2", &format!("同意 {id}")).await;
    assert!(r.contains("已同意"), "{r}");
    env.drain().await;
    assert_eq!(env.order(&id).state, State::Active);

    let m = env.metrics().await;
    assert_eq!(sample(&m, &delivery("robot", "accepted", "")), 2.0);
    assert_eq!(sample(&m, &delivery("robot", "duplicate", "")), 1.0);
    assert_eq!(
        sample(&m, &delivery("robot", "refused", "unauthenticated")),
        1.0
    );
    // Every HTTP delivery above, whatever its outcome, is timed once (the buckets' bounds are
    // not asserted: how long a delivery takes is for benchmarks, not tests).
    assert_eq!(sample(&m, "accessbot_inbound_delivery_seconds_count"), 4.0);
    assert_eq!(
        sample(&m, "accessbot_inbound_delivery_seconds_bucket{le=\"+Inf\"}"),
        4.0
    );
    assert_eq!(sample(&m, "accessbot_orders{state=\"active\"}"), 1.0);
    assert_eq!(
        sample(&m, "accessbot_orders{state=\"pending_approval\"}"),
        0.0
    );
    // Request → decision: one observation of 90 s (bucket 60 < 90 ≤ 300).
    assert_eq!(
        sample(&m, "accessbot_request_to_decision_seconds_count"),
        1.0
    );
    assert_eq!(
        sample(&m, "accessbot_request_to_decision_seconds_sum"),
        90.0
    );
    assert_eq!(
        sample(
            &m,
            "accessbot_request_to_decision_seconds_bucket{le=\"60.0\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &m,
            "accessbot_request_to_decision_seconds_bucket{le=\"300.0\"}"
        ),
        1.0
    );
    assert_eq!(sample(&m, "accessbot_approval_to_grant_seconds_count"), 1.0);
    // JumpServer calls by endpoint family, never by id; DingTalk's token and robot sends.
    assert!(
        sample(
            &m,
            "accessbot_api_calls_total{service=\"jumpserver\",endpoint=\"permissions\",status=\"201\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &m,
            "accessbot_api_call_seconds_count{service=\"jumpserver\",endpoint=\"granted\"}"
        ) >= 1.0
    );
    assert_eq!(
        sample(
            &m,
            "accessbot_api_calls_total{service=\"dingtalk\",endpoint=\"token\",status=\"200\"}"
        ),
        1.0
    );
    assert!(!m.contains(id.as_str()), "an order id in a label");
    assert_eq!(sample(&m, "accessbot_outbox_jobs"), 0.0);
    assert_eq!(sample(&m, "accessbot_outbox_oldest_job_age_seconds"), 0.0);
    assert_eq!(sample(&m, "accessbot_jobs_given_up_total"), 0.0);
    assert_eq!(sample(&m, "accessbot_stream_connected"), 0.0);
    assert_eq!(sample(&m, "accessbot_last_sync_age_seconds"), -1.0);

    // An admin's /sync, then two minutes: the last sync is 120 s old.
    let r = env.say(ADMIN, "m3", "/sync").await;
    assert!(r.contains("已开始"), "{r}");
    env.drain().await;
    env.clock.advance(SignedDuration::from_secs(120));
    let m = env.metrics().await;
    assert_eq!(sample(&m, "accessbot_last_sync_age_seconds"), 120.0);
}

#[tokio::test]
async fn metrics_listen_serves_metrics_there_only() {
    let env = Env::new(|cfg| cfg.server.metrics_listen = Some("127.0.0.1:0".into())).await;
    assert_ne!(
        env.bot().metrics_url(),
        format!("{}/metrics", env.bot().url())
    );
    let m = env.metrics().await;
    assert_eq!(sample(&m, "accessbot_outbox_jobs"), 0.0);
    let main = reqwest::get(format!("{}/metrics", env.bot().url()))
        .await
        .unwrap();
    assert_eq!(
        main.status(),
        404,
        "/metrics must not be on the main listener"
    );
    // /readyz stays on the main listener.
    assert_eq!(readyz(&env.bot().url()).await.0, 200);
}

#[tokio::test]
async fn readyz_follows_jumpserver_outage_and_recovery() {
    let env = Env::new(|_| {}).await;
    let (status, body) = readyz(&env.bot().url()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    for check in ["store", "dingtalk", "jumpserver"] {
        assert_eq!(body["checks"][check], "ok", "{body}");
    }
    assert!(body["checks"].get("stream").is_none(), "{body}");

    env.jms.fail_next(1000, 502);
    // Inside the cache window the earlier answer stands: /readyz does not reach JumpServer.
    let profile_reads = || env.jms.calls_to("GET", "/api/v1/users/profile");
    let before = profile_reads();
    for _ in 0..5 {
        assert_eq!(readyz(&env.bot().url()).await.0, 200);
    }
    assert_eq!(profile_reads(), before);
    let (status, body) = env.readyz_fresh().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    let why = body["checks"]["jumpserver"].as_str().unwrap();
    assert!(why.contains("502"), "{why}");
    assert_eq!(body["checks"]["dingtalk"], "ok", "{body}");

    env.jms.fail_next(0, 502);
    let (status, body) = env.readyz_fresh().await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn readyz_names_a_refused_jumpserver_key_and_recovers_with_the_right_one() {
    let mut env = Env::new(|cfg| {
        cfg.jumpserver.access_key_secret = Secret::new("not-the-key-jumpserver-has");
    })
    .await;
    let (status, body) = readyz(&env.bot().url()).await;
    assert_eq!(status, 503, "{body}");
    let why = body["checks"]["jumpserver"].as_str().unwrap();
    assert!(why.starts_with("authentication refused (401)"), "{why}");
    assert!(!why.contains("not-the-key"), "a secret in /readyz: {why}");

    // The operator fixes the key and restarts.
    env.cfg.jumpserver.access_key_secret =
        Secret::new(accessbot::sandbox::jumpserver::VECTOR_KEY_SECRET);
    env.crash_and_restart().await;
    let (status, body) = readyz(&env.bot().url()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn readyz_names_a_wrong_dingtalk_secret() {
    let env = Env::new(|cfg| cfg.dingtalk.app_secret = Secret::new("wrong-app-secret")).await;
    let (status, body) = readyz(&env.bot().url()).await;
    assert_eq!(status, 503, "{body}");
    let why = body["checks"]["dingtalk"].as_str().unwrap();
    assert!(why.starts_with("no access token"), "{why}");
    assert_eq!(body["checks"]["jumpserver"], "ok", "{body}");
}

/// Polls `/readyz` (moving the clock past the cache each time) until it answers `want`.
async fn readyz_until(env: &Env, want: u16) -> Value {
    let mut last = Value::Null;
    // Bounded: the listener reconnects after a back-off of about a second or two.
    for _ in 0..300 {
        let (status, body) = env.readyz_fresh().await;
        if status == want {
            return body;
        }
        last = body;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("/readyz never answered {want}; last: {last}");
}

#[tokio::test]
async fn readyz_follows_the_stream_connection() {
    // The gateway knows the app's key and secret: the DingTalk simulator's defaults.
    let app = SimDingTalkOptions::default();
    let gw = SimStreamGateway::start(&app.app_key, &app.app_secret)
        .await
        .unwrap();
    let open_url = gw.open_url();
    let env = Env(BotEnv::new(
        [ding_user(ALICE, "张三", "fx-alice@example.com")],
        |_, _| {},
        |cfg| {
            cfg.approval.default_approvers = vec![BOSS.into()];
            cfg.dingtalk.mode = ListenerMode::Stream;
            cfg.dingtalk.stream_open_url = open_url;
        },
    )
    .await);
    gw.wait_for_connections(1).await.unwrap();
    let body = readyz_until(&env, 200).await;
    assert_eq!(body["checks"]["stream"], "ok", "{body}");
    let m = env.metrics().await;
    assert_eq!(sample(&m, "accessbot_stream_connected"), 1.0);

    // The gateway goes away and refuses new connections for a while.
    gw.fail_next_opens(2);
    gw.drop_current().unwrap();
    let body = readyz_until(&env, 503).await;
    let why = body["checks"]["stream"].as_str().unwrap();
    assert!(why.contains("not connected"), "{why}");
    assert_eq!(body["checks"]["jumpserver"], "ok", "{body}");

    // It comes back: the listener reconnects and the bot is ready again.
    gw.wait_for_connections(2).await.unwrap();
    readyz_until(&env, 200).await;
}

#[tokio::test]
async fn healthcheck_exits_by_readyz() {
    let env = Env::new(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accessbot.toml");
    let text = filled_example().replace(
        "listen = \"127.0.0.1:8080\"",
        &format!("listen = \"{}\"", env.bot().addr()),
    );
    std::fs::write(&path, text).unwrap();
    let run = || {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_accessbot"))
                .args(["healthcheck", "--config"])
                .arg(&path)
                .env_remove("ACCESSBOT_SERVER__LISTEN")
                .output()
                .unwrap()
        })
    };
    let out = run().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("ok: "), "{stdout}");

    env.jms.fail_next(1000, 502);
    env.clock
        .advance(SignedDuration::from_millis(CACHE_MS + 1000));
    let out = run().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("503") && stdout.contains("jumpserver"),
        "{stdout}"
    );
}

/// A log sink for a captured subscriber: JSON lines in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The business-event lines (`event` field), parsed.
    fn events(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("event").is_some() && v.get("order_id").is_some())
            .collect()
    }
}

#[tokio::test]
async fn one_info_line_per_business_event_with_fields() {
    let sink = Captured::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so the bot's tasks log through this default too.
    let _guard = tracing::subscriber::set_default(subscriber);
    let env = Env::new(|_| {}).await;
    env.say(
        ALICE,
        "m1",
        "申请主机 10.10.1.11 只读 4h 原因：排查线上问题",
    )
    .await;
    let id = env.orders_of(ALICE)[0].id.clone();
    env.drain().await;
    env.say(BOSS, "m2", &format!("同意 {id}")).await;
    env.drain().await;
    env.say(ADMIN, "m3", &format!("/revoke {id}")).await;
    env.drain().await;
    assert_eq!(env.order(&id).state, State::Revoked);

    let events = sink.events();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for want in ["requested", "approved", "granted", "revoked"] {
        assert_eq!(
            names.iter().filter(|n| **n == want).count(),
            1,
            "one `{want}` line: {names:?}"
        );
    }
    let by = |name: &str| events.iter().find(|e| e["event"] == name).unwrap().clone();
    let requested = by("requested");
    assert_eq!(requested["level"], "INFO");
    assert_eq!(requested["order_id"], id.as_str());
    assert_eq!(requested["requester"], ALICE);
    assert_eq!(requested["hosts"], "10.10.1.11");
    let approved = by("approved");
    assert_eq!(approved["approver"], BOSS);
    assert_eq!(approved["to"], "approved");
    // The grant line says what JumpServer was read back to grant: host, login, end.
    let granted = by("granted");
    assert_eq!(granted["order_id"], id.as_str());
    assert_eq!(granted["approver"], BOSS);
    let what = granted["granted"].as_str().unwrap();
    assert!(
        what.contains("10.10.1.11") && what.contains('['),
        "{granted}"
    );
    assert!(granted["until"].as_str().is_some(), "{granted}");
    assert_eq!(granted["usable"], true, "{granted}");
    let revoked = by("revoked");
    assert_eq!(revoked["actor"], ADMIN);
}
