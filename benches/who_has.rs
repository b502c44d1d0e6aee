//! `/who-has` over the local index at the issue-11 scale: 10k users, 50k hosts, 10k
//! permissions, 200k relation rows. The index is built the way `/sync` builds it — the
//! simulated JumpServer seeded by `seed_scale`, walked by the bastion adapter page by page into
//! an `IndexWriter` — then criterion times the in-process queries (no chat, no HTTP):
//! `who_can_reach` of one address (groups and nodes expanded), `reach_of` (the preview's
//! "already has access" for 1 and 10 hosts), `user_access_summary` of one user (what
//! `/who-has <user>` shows: per grant the first hosts and the exact count) and `user_access`
//! (every host of every grant, as the console lists them).
use accessbot::clock::{SharedClock, SystemClock};
use accessbot::domain::audit::Actor;
use accessbot::jumpserver::{JmsClient, JumpServerConfig};
use accessbot::sandbox::jumpserver::scale::ScaleSpec;
use accessbot::sandbox::jumpserver::{
    SimJmsOptions, SimJumpServer, VECTOR_KEY_ID, VECTOR_KEY_SECRET,
};
use accessbot::secret::Secret;
use accessbot::store::index::Index;
use accessbot::store::Store;
use accessbot::workflow::ports::Bastion;
use criterion::{criterion_group, criterion_main, Criterion};
use jiff::Timestamp;
use std::sync::Arc;

/// The bot's allocator (src/main.rs), so the queries allocate as they do in the bot: with
/// glibc malloc, after building the index in this process, a third of a query's time was
/// `_int_malloc` walking the fragmented heap.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn who_has(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let (ix, seeded, now, _dir) = rt.block_on(async {
        let sim = SimJumpServer::start(SimJmsOptions::new(clock.clone()))
            .await
            .unwrap();
        let seeded = sim.seed_scale(ScaleSpec::LARGE);
        let cfg = JumpServerConfig {
            url: sim.url(),
            access_key_id: VECTOR_KEY_ID.into(),
            access_key_secret: Secret::new(VECTOR_KEY_SECRET),
            sync_requests_per_minute: 0,
            ..Default::default()
        };
        let jms = JmsClient::new(cfg, clock.clone()).unwrap();
        // `WHO_HAS_CACHE_MB`: sled's page cache for the bench's store (default: the bot's).
        let dir = tempfile::tempdir().unwrap();
        let cache_mb: u64 = std::env::var("WHO_HAS_CACHE_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(accessbot::store::DEFAULT_CACHE_BYTES >> 20);
        let store = Store::open_with_cache(dir.path(), cache_mb << 20).unwrap();
        let ix = Index::new(&store).unwrap();
        let now = Timestamp::now();
        let mut w = ix.begin(now).unwrap();
        let walked = Bastion::inventory(&jms, &mut w).await.unwrap();
        let t = std::time::Instant::now();
        let stats = w.commit(now, 0, walked.calls, Actor::System).await.unwrap();
        println!(
            "commit (views, counts, swap): {:.1} s",
            t.elapsed().as_secs_f64()
        );
        println!(
            "index: {} users, {} hosts, {} permissions, {} relations, {} JumpServer calls",
            stats.users, stats.hosts, stats.permissions, stats.relations, stats.calls
        );
        (ix, seeded, now, dir)
    });
    let addr = seeded.addresses[seeded.addresses.len() / 2].clone();
    let rows = ix.who_can_reach(&addr, now).unwrap().len();
    println!("who_can_reach({addr}): {rows} rows");
    let user = ix.user_by_username(&seeded.usernames[7]).unwrap().unwrap();
    let ten: Vec<String> = seeded.addresses[1000..1010].to_vec();
    let mut g = c.benchmark_group("who_has");
    g.bench_function("who_can_reach/1 address", |b| {
        b.iter(|| ix.who_can_reach(&addr, now).unwrap())
    });
    g.bench_function("reach_of/1 address", |b| {
        b.iter(|| {
            ix.reach_of(&user.id, std::slice::from_ref(&addr), now)
                .unwrap()
        })
    });
    g.bench_function("reach_of/10 addresses", |b| {
        b.iter(|| ix.reach_of(&user.id, &ten, now).unwrap())
    });
    g.bench_function("user_access_summary/1 user", |b| {
        b.iter(|| ix.user_access_summary(&user.username, now).unwrap())
    });
    g.bench_function("user_access/1 user", |b| {
        b.iter(|| ix.user_access(&user.username, now).unwrap())
    });
    g.finish();
}

criterion_group!(benches, who_has);
criterion_main!(benches);
