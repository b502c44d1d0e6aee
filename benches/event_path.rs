//! Criterion benches for the DingTalk edge: what one inbound push costs before it is queued.
//! `event_push`: verify signature + decrypt + parse a `bpms_instance_change` + build the
//! encrypted success reply. `robot_verify`: robot HTTP-mode header check. `dedupe`: what the
//! dedupe store costs a delivery, on a sled tree already holding 100,000 handled keys.
use accessbot::dingtalk::crypto::CallbackCrypto;
use accessbot::dingtalk::parse::{parse_event, parse_robot_message};
use accessbot::dingtalk::sign::{robot_sign, verify_robot_request};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

const BPMS: &str = r#"{"EventType":"bpms_instance_change","EventTime":1700000000123,"CorpId":"ding8f1e0c2a9b7d6e5f","BizId":"1700000000123","eventId":"c7c7120f2c07419aaaaebdba0318c8","processInstanceId":"9Qgx5QqjR7axMwAAAA","processCode":"PROC-JMS-ACCESS-01","bizCategoryId":"","businessId":"202311150001","type":"finish","result":"agree","title":"张三提交的JumpServer主机访问申请","createTime":1699990000000,"finishTime":1700000000000,"staffId":"manager7675","url":"https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm"}"#;

const ROBOT: &str = r#"{"conversationId":"cidAsXSBLnA==","chatbotCorpId":"ding9f50b15bxxxx16741","msgId":"msgLICYeHgY4JtMQw==","senderNick":"张三","isAdmin":false,"senderStaffId":"manager7675","sessionWebhookExpiredTime":1690367502152,"createAt":1690362101894,"conversationType":"1","isInAtList":true,"sessionWebhook":"https://oapi.dingtalk.com/robot/sendBySession?session=76da36b48f59e8","text":{"content":" 申请 jumpserver 10.0.0.5 7d"},"robotCode":"dingclientid","msgtype":"text"}"#;

fn event_push(c: &mut Criterion) {
    let crypto = match CallbackCrypto::new(
        "jmsbotToken1",
        "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",
        "dingjmsbotappkey01",
    ) {
        Ok(c) => c,
        Err(e) => panic!("bench key: {e}"),
    };
    let (ts, nonce) = ("1700000000789", "xyzNONCE");
    let encrypt = crypto.encrypt(BPMS);
    let sig = crypto.signature(ts, nonce, &encrypt);

    c.bench_function("event_push/verify+decrypt+parse+reply", |b| {
        b.iter(|| {
            let ok = crypto
                .verify_signature(black_box(&sig), ts, nonce, black_box(&encrypt))
                .and_then(|()| crypto.decrypt(black_box(&encrypt)));
            let plain = match ok {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            let ev = parse_event(&plain);
            let reply = crypto.success_reply(ts, nonce);
            black_box((ev, reply))
        })
    });
    c.bench_function("event_push/decrypt_only", |b| {
        b.iter(|| black_box(crypto.decrypt(black_box(&encrypt))))
    });
    c.bench_function("event_push/success_reply_only", |b| {
        b.iter(|| black_box(crypto.success_reply(ts, nonce)))
    });
}

fn robot(c: &mut Criterion) {
    let secret = "q3Yv_kZ-4pW8sN0xLm2R7tB9cD1eF6gH5iJ3kA8oP0uQ2wE4rT6yU9iO1pA3sD5f";
    let ts = "1712345678901";
    let sign = robot_sign(ts, secret);
    let now = 1_712_345_679_000;
    c.bench_function("robot/verify_sign", |b| {
        b.iter(|| {
            black_box(verify_robot_request(
                Some(ts),
                Some(black_box(&sign)),
                secret,
                now,
            ))
        })
    });
    c.bench_function("robot/verify_sign+parse_message", |b| {
        b.iter(|| {
            let v = verify_robot_request(Some(ts), Some(black_box(&sign)), secret, now);
            black_box((v, parse_robot_message(black_box(ROBOT.as_bytes()))))
        })
    });
}

fn dedupe(c: &mut Criterion) {
    use accessbot::store::dedupe::{Dedupe, Delivery};
    use accessbot::store::Store;
    const STORED: u64 = 100_000;
    let (now, ttl, window) = (1_700_000_000_000_i64, 7 * 24 * 3_600_000_i64, 60_000_i64);
    let d = match Store::temporary().and_then(|s| Dedupe::new(&s)) {
        Ok(d) => d,
        Err(e) => panic!("temporary store: {e}"),
    };
    // A current-thread runtime, as the server's `finish` runs under one (its group commit;
    // one delivery at a time here, so every record carries one mark).
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let handle = |key: &str| match d.begin(key, now, now + ttl, window) {
        Ok(Delivery::First) => rt.block_on(d.finish(key)).map(|()| Delivery::First),
        other => other,
    };
    for i in 0..STORED {
        if let Err(e) = handle(&format!("evt:stored-{i}")) {
            panic!("seeding: {e}");
        }
    }
    let mut n = 0u64;
    c.bench_function("dedupe/new key: begin+finish", |b| {
        b.iter(|| {
            n += 1;
            black_box(handle(&format!("evt:new-{n}")))
        })
    });
    // As in the loaded server: deliveries finishing together share one record.
    let mut m = 0u64;
    c.bench_function("dedupe/64 new keys finishing together", |b| {
        b.iter(|| {
            m += 1;
            let keys: Vec<String> = (0..64).map(|j| format!("evt:batch-{m}-{j}")).collect();
            let d = &d;
            let all = keys.iter().map(|key| async move {
                match d.begin(key, now, now + ttl, window) {
                    Ok(Delivery::First) => d.finish(key).await.map(|()| Delivery::First),
                    other => other,
                }
            });
            black_box(rt.block_on(futures::future::join_all(all)))
        })
    });
    let mut i = 0u64;
    c.bench_function("dedupe/repeat: begin", |b| {
        b.iter(|| {
            i = (i + 7919) % STORED;
            black_box(d.begin(&format!("evt:stored-{i}"), now, now + ttl, window))
        })
    });
}

criterion_group!(benches, event_push, robot, dedupe);
criterion_main!(benches);
