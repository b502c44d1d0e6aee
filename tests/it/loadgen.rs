//! `accessbot loadgen payloads`: what scripts/load.sh replays must pass the real ingress —
//! every event push verified, decrypted and answered with the encrypted `success`; the
//! "mostly repeated" set acknowledged as duplicates; every robot message accepted once, its
//! copy a duplicate (not a replayed signature); the open-loop driver (`loadgen open`) sends
//! every scheduled request through it; and the protocol floor (`loadgen floor`) answers and
//! refuses like the bot.
use crate::support::{example_user, BotEnv};
use accessbot::dingtalk::crypto::CallbackCrypto;
use accessbot::loadgen::{generate, open_loop, Kind, LoadRequest, OpenOptions, REPEAT_EVERY};
use std::sync::atomic::Ordering;
use std::time::Duration;

async fn send(env: &BotEnv, r: &LoadRequest) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{}", env.bot().url(), r.path))
        .body(r.body.clone());
    for (k, v) in &r.headers {
        req = req.header(k, v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

/// The answer to a push is the encrypted `success`, signed over what is sent (reference §2.4).
fn assert_signed_success(crypto: &CallbackCrypto, reply: &serde_json::Value) {
    let (ts, nonce, enc) = (
        reply["timeStamp"].as_str().unwrap(),
        reply["nonce"].as_str().unwrap(),
        reply["encrypt"].as_str().unwrap(),
    );
    crypto
        .verify_signature(reply["msg_signature"].as_str().unwrap(), ts, nonce, enc)
        .unwrap();
    assert_eq!(crypto.decrypt(enc).unwrap(), "success");
}

#[tokio::test]
async fn generated_payloads_pass_the_real_ingress() {
    let env = BotEnv::new(
        [
            example_user("zhangsan", "张三"),
            example_user("boss", "老板"),
        ],
        |_, _| {},
        |cfg| cfg.approval.default_approvers = vec!["boss".into()],
    )
    .await;
    let d = &env.cfg.dingtalk;
    let crypto = d.callback_crypto().unwrap();
    let stats = || env.bot().ingress().dedupe.stats();

    let events = generate(d, Kind::Events, 20, env.now_ms(), "t1").unwrap();
    let mut paths: Vec<&str> = events.iter().map(|r| r.path.as_str()).collect();
    paths.dedup();
    assert_eq!(paths.len(), 20, "every push is signed on its own");
    for r in &events {
        let (status, reply) = send(&env, r).await;
        assert_eq!(status, 200, "{reply}");
        assert_signed_success(&crypto, &reply);
    }
    assert_eq!(stats().duplicates.load(Ordering::Relaxed), 0, "all new");

    // 200 requests: 20 new events, 180 redeliveries (within the first REPEAT_LAG requests
    // they all redeliver the set's first event).
    let repeat = generate(d, Kind::Repeat, 200, env.now_ms(), "t2").unwrap();
    for r in &repeat {
        assert_eq!(send(&env, r).await.0, 200);
    }
    let dups = stats().duplicates.load(Ordering::Relaxed);
    assert!(
        dups >= 200 - 200 / REPEAT_EVERY as u64,
        "mostly repeats: {dups} duplicates"
    );

    let robot = generate(d, Kind::Robot, 5, env.now_ms(), "t3").unwrap();
    for r in &robot {
        let (status, reply) = send(&env, r).await;
        assert_eq!((status, reply["msgtype"].as_str()), (200, Some("empty")));
    }
    // A robot message sent twice is a duplicate, not a replayed signature.
    let before = stats().duplicates.load(Ordering::Relaxed);
    assert_eq!(send(&env, &robot[0]).await.0, 200);
    assert_eq!(stats().duplicates.load(Ordering::Relaxed), before + 1);
    assert_eq!(stats().replayed_signatures.load(Ordering::Relaxed), 0);
}

/// `accessbot loadgen open` against the bot: at 200/s for 1 s it sends 200 requests, each a new
/// event push that the real ingress verifies, records and acknowledges (no timing asserted:
/// the figures are for scripts/load.sh on a quiet machine, not for a test).
#[tokio::test]
async fn open_loop_driver_sends_every_scheduled_request_through_the_ingress() {
    let env = BotEnv::new(
        [
            example_user("zhangsan", "张三"),
            example_user("boss", "老板"),
        ],
        |_, _| {},
        |cfg| cfg.approval.default_approvers = vec!["boss".into()],
    )
    .await;
    let d = &env.cfg.dingtalk;
    let reqs = generate(d, Kind::Events, 250, env.now_ms(), "open").unwrap();
    // Through the file format scripts/load.sh hands the driver.
    let mut file = Vec::new();
    accessbot::loadgen::write(&reqs, &mut file).unwrap();
    let reqs = accessbot::loadgen::read(std::str::from_utf8(&file).unwrap()).unwrap();
    let o = OpenOptions {
        url: format!("{}/dingtalk/events", env.bot().url()),
        rate: 200,
        duration: Duration::from_secs(1),
        connections: 4,
        max_in_flight: 4,
        timeout: Duration::from_secs(10),
    };
    let report = open_loop(&reqs, &o).await.unwrap();
    assert_eq!(report.scheduled, 200);
    assert_eq!(
        (
            report.completed,
            report.non_2xx,
            report.errors,
            report.timeouts
        ),
        (200, 0, 0, 0)
    );
    assert_eq!(report.restarts, 0, "250 distinct requests cover 200");
    assert_eq!(report.latency_us.len(), 200);

    // The bot counted 200 accepted event pushes, none a duplicate: all new, all handled.
    let metrics = reqwest::get(env.bot().metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let accepted =
        "accessbot_inbound_deliveries_total{channel=\"events\",outcome=\"accepted\",reason=\"\"} ";
    let n: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(accepted))
        .unwrap_or_else(|| panic!("no accepted events in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(n, 200.0);
    assert_eq!(
        env.bot()
            .ingress()
            .dedupe
            .stats()
            .duplicates
            .load(Ordering::Relaxed),
        0
    );

    // The report reads like wrk2's, so scripts/load.sh's parser takes either.
    let mut text = Vec::new();
    report.write_wrk2(&o, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    for line in [
        "Requests/sec:",
        " 50.000%",
        " 99.000%",
        " 99.900%",
        "100.000%",
        "  Non-2xx or 3xx responses: 0",
        "  Responses over 10 ms:",
        "replay: slice restarts 0",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{line:?} missing from:\n{text}"
        );
    }
}

/// `accessbot loadgen floor`: the bot's own protocol work and nothing else. A push is answered
/// with the encrypted, signed `success`, and what the bot refuses the floor refuses too (same
/// functions): a floor that skipped the signature check would time less than the bot does.
#[tokio::test]
async fn the_floor_answers_and_refuses_like_the_bot() {
    use accessbot::dingtalk::config::DingTalkConfig;
    use accessbot::secret::Secret;
    let d = DingTalkConfig {
        app_key: "dingfloorapp".into(),
        callback_token: Secret::new("floorToken1"),
        callback_aes_key: Secret::new("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"),
        ..DingTalkConfig::default()
    };
    let crypto = d.callback_crypto().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let limits = accessbot::listen::server::ConnLimits::from_config(
        &accessbot::config::Config::default().server,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(accessbot::loadgen::serve_floor(
        listener,
        limits,
        crypto.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let post = |r: &LoadRequest, path: String| {
        reqwest::Client::new()
            .post(format!("{url}{path}"))
            .header("content-type", "application/json")
            .body(r.body.clone())
            .send()
    };

    let now = jiff::Timestamp::now().as_millisecond();
    let pushes = generate(&d, Kind::Events, 3, now, "floor").unwrap();
    for r in &pushes {
        let res = post(r, r.path.clone()).await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert_signed_success(&crypto, &res.json().await.unwrap());
    }

    // A forged signature: 401, as from the bot.
    let forged = pushes[0].path.replacen("signature=", "signature=0", 1);
    let res = post(&pushes[0], forged).await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // A push signed two hours ago: stale, 401.
    let stale = generate(&d, Kind::Events, 1, now - 2 * 3_600_000, "floor-old").unwrap();
    let res = post(&stale[0], stale[0].path.clone()).await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // Broken JSON: 400.
    let broken = LoadRequest {
        body: "{\"encrypt\":".into(),
        ..pushes[1].clone()
    };
    let res = post(&broken, broken.path.clone()).await.unwrap();
    assert_eq!(res.status().as_u16(), 400);

    let _ = stop.send(());
    server.await.unwrap();
}
