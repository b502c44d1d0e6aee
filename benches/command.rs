//! Criterion bench of the chat command parser: what one message costs to understand before any
//! policy or storage runs. A mix of what people type (Chinese and English words, full-width
//! input, long host lists) and what they get wrong (unknown words, bad addresses).
use accessbot::domain::command::parse;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

const MESSAGES: &[(&str, &str)] = &[
    (
        "apply_en",
        "/apply host 10.1.2.3 ops 3d reason: hotfix for the payment outage",
    ),
    ("apply_zh", "申请主机 10.1.2.3 运维 3天 原因：排查线上问题"),
    (
        "apply_fullwidth",
        "申请主机　１０．９．９６．７，web-01。 只读 2h30m 原因：核对账单",
    ),
    ("status", "状态 R261202-017"),
    (
        "reject",
        "/reject R261202-017 reason: not during the freeze",
    ),
    ("who_has", "谁有权限 10.1.2.3 全部"),
    ("unknown", "/frobnicate the widgets"),
    ("bad_address", "/apply host 10.1.2.300 readonly 4h"),
];

fn parser(c: &mut Criterion) {
    let mut group = c.benchmark_group("command_parse");
    for (name, text) in MESSAGES {
        group.bench_function(*name, |b| b.iter(|| black_box(parse(black_box(text)))));
    }
    // A pasted inventory: 50 addresses in one request (the parser's ceiling is 200).
    let many = format!(
        "/apply host {} readonly 1d reason: audit",
        (1..=50)
            .map(|i| format!("10.20.{}.{}", i / 250, i % 250))
            .collect::<Vec<_>>()
            .join(",")
    );
    group.bench_function("apply_50_hosts", |b| {
        b.iter(|| black_box(parse(black_box(&many))))
    });
    group.finish();
}

criterion_group!(benches, parser);
criterion_main!(benches);
