//! `accessbot loadgen payloads`: what scripts/load.sh replays must pass the real ingress —
//! every event push verified, decrypted and answered with the encrypted `success`; the
//! "mostly repeated" set acknowledged as duplicates; every robot message accepted once, its
//! copy a duplicate (not a replayed signature); and the open-loop driver (`loadgen open`) sends
//! every scheduled request through it.
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
    let crypto = CallbackCrypto::new(
        d.callback_token.expose(),
        d.callback_aes_key.expose(),
        d.owner_key(),
    )
    .unwrap();
    let stats = || env.bot().ingress().dedupe.stats();

    let events = generate(d, Kind::Events, 20, env.now_ms(), "t1").unwrap();
    let mut paths: Vec<&str> = events.iter().map(|r| r.path.as_str()).collect();
    paths.dedup();
    assert_eq!(paths.len(), 20, "every push is signed on its own");
    for r in &events {
        let (status, reply) = send(&env, r).await;
        assert_eq!(status, 200, "{reply}");
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
