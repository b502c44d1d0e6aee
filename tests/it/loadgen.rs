//! `accessbot loadgen payloads`: what scripts/load.sh replays must pass the real ingress —
//! every event push verified, decrypted and answered with the encrypted `success`; the
//! "mostly repeated" set acknowledged as duplicates; every robot message accepted once, its
//! copy a duplicate (not a replayed signature).
use crate::support::{example_user, BotEnv};
use accessbot::dingtalk::crypto::CallbackCrypto;
use accessbot::loadgen::{generate, Kind, LoadRequest, REPEAT_EVERY};
use std::sync::atomic::Ordering;

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
