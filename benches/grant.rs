//! Wall time and HTTP calls of `JmsClient::grant` against the simulated JumpServer on loopback,
//! for 1, 10 and 50 hosts that are all new or all existing. Call counts are printed once per
//! case (they are deterministic); criterion measures the time. New hosts go to their own node,
//! so the existing hosts' node (whose accounts each grant checks) keeps its size.
use accessbot::clock::{ManualClock, SharedClock};
use accessbot::domain::ids::OrderId;
use accessbot::domain::ownership::Marker;
use accessbot::jumpserver::{GrantPlan, JmsClient, JumpServerConfig};
use accessbot::sandbox::jumpserver::{
    SeedHost, SimJmsOptions, SimJumpServer, VECTOR_KEY_ID, VECTOR_KEY_SECRET,
};
use accessbot::secret::Secret;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use jiff::{SignedDuration, Timestamp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn plan(name: String, node: &str, addresses: Vec<String>, t0: Timestamp) -> GrantPlan {
    GrantPlan {
        username: "alice".into(),
        email: None,
        new_user: None,
        node_name: node.into(),
        addresses,
        platform: "Linux".into(),
        accounts: vec!["readonly".into()],
        actions: vec!["connect".into()],
        protocols: vec![("ssh".into(), 22)],
        date_start: t0,
        date_expired: t0 + SignedDuration::from_hours(72),
        owner: Marker {
            installation: "benchinst1".into(),
            order: OrderId::new(name.clone()),
        },
        permission_name: name,
        comment: "bench".into(),
    }
}

fn bench_grant(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let t0: Timestamp = "2026-11-22T08:00:00Z".parse().expect("timestamp");
    let clock: SharedClock = Arc::new(ManualClock::new(t0));
    let sim = rt
        .block_on(SimJumpServer::start(SimJmsOptions::new(clock.clone())))
        .expect("simulator");
    sim.add_user("alice", "Alice", "alice@example.com")
        .expect("user");
    let node = sim.add_node_path("BenchSystem");
    sim.add_node_path("BenchNew");
    let cfg = JumpServerConfig {
        url: sim.url(),
        access_key_id: VECTOR_KEY_ID.into(),
        access_key_secret: Secret::new(VECTOR_KEY_SECRET),
        ..Default::default()
    };
    let client = JmsClient::new(cfg, clock).expect("client");
    rt.block_on(client.start()).expect("start");
    let seq = AtomicU64::new(0);

    let mut group = c.benchmark_group("jumpserver_grant");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.warm_up_time(Duration::from_millis(500));
    for n in [1usize, 10, 50] {
        // Existing: hosts seeded once; each iteration grants them under a fresh permission name.
        let existing: Vec<String> = (0..n).map(|i| format!("10.100.{n}.{i}")).collect();
        for a in &existing {
            sim.add_host(SeedHost {
                name: a.clone(),
                address: a.clone(),
                platform_id: 1,
                node_ids: vec![node.clone()],
                accounts: vec![("readonly".into(), "readonly".into(), false)],
            })
            .expect("seed host");
        }
        let before = client.calls_made();
        let p = plan(
            format!("bench-probe-existing-{n}"),
            "BenchSystem",
            existing.clone(),
            t0,
        );
        rt.block_on(client.grant(&p)).expect("grant");
        eprintln!(
            "calls: existing hosts n={n}: {}",
            client.calls_made() - before
        );
        group.bench_with_input(BenchmarkId::new("existing", n), &n, |b, _| {
            b.iter(|| {
                let k = seq.fetch_add(1, Ordering::Relaxed);
                let p = plan(
                    format!("bench-e-{n}-{k}"),
                    "BenchSystem",
                    existing.clone(),
                    t0,
                );
                rt.block_on(client.grant(&p)).expect("grant")
            })
        });

        // New: every iteration grants n addresses nobody has created yet.
        let fresh = |k: u64| -> Vec<String> {
            (0..n)
                .map(|i| format!("10.{}.{}.{}", 110 + (k / 250) % 100, k % 250, i))
                .collect()
        };
        let k = seq.fetch_add(1, Ordering::Relaxed);
        let before = client.calls_made();
        let p = plan(format!("bench-probe-new-{n}"), "BenchNew", fresh(k), t0);
        rt.block_on(client.grant(&p)).expect("grant");
        eprintln!("calls: new hosts n={n}: {}", client.calls_made() - before);
        group.bench_with_input(BenchmarkId::new("new", n), &n, |b, _| {
            b.iter(|| {
                let k = seq.fetch_add(1, Ordering::Relaxed);
                let p = plan(format!("bench-n-{n}-{k}"), "BenchNew", fresh(k), t0);
                rt.block_on(client.grant(&p)).expect("grant")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_grant);
criterion_main!(benches);
