//! The access console's pages over a store that has been in use for a while: `CONSOLE_ORDERS`
//! orders (default 10,000) from 500 requesters, each taken through the state machine the way the
//! bot takes it (request, approval or rejection, grant, expiry or revocation), so the audit trail
//! holds every step (about 5 records per order). Criterion times whole requests through the
//! console's router in process — session lookup, the store reads, filtering, the template — as an
//! admin (sees everything) and as an employee (sees their own), with no HTTP socket in between.
use accessbot::app::ConsoleAudit;
use accessbot::clock::{ManualClock, SharedClock};
use accessbot::console::config::ConsoleConfig;
use accessbot::console::data::{DingLogin, LoginIdentity};
use accessbot::console::session::{key_of, Session, SessionStore};
use accessbot::console::{self, Console, ConsolePorts, ConsoleSettings};
use accessbot::domain::audit::Actor;
use accessbot::domain::change::Change;
use accessbot::domain::command::Role;
use accessbot::domain::duration::AccessDuration;
use accessbot::domain::ids::{DingUserId, OrderId};
use accessbot::domain::order::{ApprovalMode, GrantResult, NewOrder, Order};
use accessbot::domain::request::Request;
use accessbot::domain::target::Target;
use accessbot::store::audit::Audit;
use accessbot::store::index::Index;
use accessbot::store::orders::Orders;
use accessbot::store::outbox::Outbox;
use accessbot::store::sessions::Sessions;
use accessbot::store::Store;
use axum::body::Body;
use axum::http::{header, Request as HttpRequest, StatusCode};
use criterion::{criterion_group, criterion_main, Criterion};
use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// The bot's allocator (src/main.rs), so the pages allocate as they do in the bot.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const ADMIN: &str = "admin01";
const APPROVERS: [&str; 4] = ["boss01", "boss02", "boss03", "boss04"];

/// Never called: the bench logs in by writing its sessions.
struct NoLogin;
impl DingLogin for NoLogin {
    fn web<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<LoginIdentity, String>> {
        Box::pin(async { Err("no login in the bench".to_owned()) })
    }
    fn in_app<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<LoginIdentity, String>> {
        Box::pin(async { Err("no login in the bench".to_owned()) })
    }
}

fn requester(n: usize) -> DingUserId {
    DingUserId::new(format!("user{:03}", n % 500))
}

/// Order `n` created at `at` and taken to one of the states a real trail is made of.
fn seed_one(orders: &Orders, n: usize, at: Timestamp) {
    let who = requester(n);
    let boss = DingUserId::new(APPROVERS[n % APPROVERS.len()]);
    let id = OrderId::new(format!("R{:06}", n));
    let m = |mins: i64| at + SignedDuration::from_mins(mins);
    let order = Order::new(
        NewOrder {
            id: id.clone(),
            requester: who.clone(),
            requester_name: format!("员工{}", n % 500),
            jms_username: format!("emp{:03}", n % 500),
            request: Request::Host {
                targets: vec![Target::Address(
                    format!("10.{}.{}.{}", n % 7, (n / 7) % 250, n % 250)
                        .parse()
                        .expect("address"),
                )],
                system: None,
                role: Role::Ops,
                duration: AccessDuration::from_minutes(4 * 60).expect("duration"),
                ends_at: None,
                reason: "排查线上问题".into(),
            },
            approval_mode: ApprovalMode::Card,
            approvers: vec![boss.clone()],
        },
        at,
    );
    let created = orders.create(order, vec![], vec![]).expect("create").order;
    let step = |o: &Order, t: accessbot::domain::order::Transition, actor: Actor| -> Order {
        orders
            .commit(
                o.version,
                Change::from_transition(t, actor, "bench".to_owned(), vec![]),
            )
            .expect("commit")
            .order
    };
    let pending = step(
        &created,
        created.submit(m(1)).expect("submit"),
        Actor::User(who.clone()),
    );
    // One in twenty is still waiting, one in ten is rejected.
    if n.is_multiple_of(20) {
        return;
    }
    if n % 10 == 1 {
        step(
            &pending,
            pending
                .reject(&boss, m(5), Some("not now".into()))
                .expect("reject"),
            Actor::User(boss.clone()),
        );
        return;
    }
    let approved = step(
        &pending,
        pending.approve(&boss, m(5)).expect("approve"),
        Actor::User(boss.clone()),
    );
    let provisioning = step(
        &approved,
        approved.start_provisioning(m(6)).expect("provision"),
        Actor::System,
    );
    let grant = GrantResult {
        permission_name: Some(format!("accessbot-{id}")),
        permission_id: Some(format!("perm-{n}")),
        hosts: vec![format!("10.{}.{}.{}", n % 7, (n / 7) % 250, n % 250)],
        account: Some("ops".into()),
        ..GrantResult::default()
    };
    let active = step(
        &provisioning,
        provisioning.provisioned(grant, m(7)).expect("provisioned"),
        Actor::System,
    );
    // One in ten is still in force; the rest ended (one in ten of those revoked early).
    if n % 10 == 2 {
        return;
    }
    if n % 10 == 3 {
        step(
            &active,
            active.revoke(None, None, m(60)).expect("revoke"),
            Actor::User(DingUserId::new(ADMIN)),
        );
        return;
    }
    step(
        &active,
        active.expire(m(4 * 60 + 10)).expect("expire"),
        Actor::System,
    );
}

fn console_pages(c: &mut Criterion) {
    let n_orders: usize = std::env::var("CONSOLE_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let outbox = Outbox::new(&store).expect("outbox");
    let orders = Orders::new(&store, &outbox)
        .expect("orders")
        .with_durability(false);
    // Orders spread over the last 60 days, one every few minutes.
    let now: Timestamp = "2026-12-01T08:00:00Z".parse().expect("now");
    let start = now - SignedDuration::from_hours(24 * 60);
    let t = std::time::Instant::now();
    for n in 0..n_orders {
        let at =
            start + SignedDuration::from_secs((n as i64) * 60 * 24 * 60 * 60 / n_orders as i64);
        seed_one(&orders, n, at);
    }
    let audit = Audit::new(&store).expect("audit");
    println!(
        "seeded {n_orders} orders, {} audit records in {:.1} s",
        audit.verify().expect("verify").count,
        t.elapsed().as_secs_f64()
    );
    // The two walks of the whole trail a History page made (chain check, records).
    let t = std::time::Instant::now();
    audit.verify().expect("verify");
    let verify = t.elapsed();
    let t = std::time::Instant::now();
    let records = audit.list_since(Timestamp::MIN, 200_000).expect("records");
    println!(
        "whole trail: verify {:.1} ms, read {} records {:.1} ms",
        verify.as_secs_f64() * 1e3,
        records.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let clock: SharedClock = Arc::new(ManualClock::new(now));
    let sessions = Sessions::new(&store).expect("sessions");
    let login = |user: &str, token: String| -> String {
        sessions
            .put(
                &key_of(&token),
                &Session {
                    user: DingUserId::new(user),
                    name: user.to_owned(),
                    csrf: "x".repeat(64),
                    created_at: now,
                    expires_at: now + SignedDuration::from_hours(8),
                },
            )
            .expect("session");
        token
    };
    let admin = login(ADMIN, "a".repeat(64));
    let employee = login("user007", "e".repeat(64));
    let console = Console::new(
        ConsoleSettings {
            console: ConsoleConfig {
                secure_cookies: false,
                ..ConsoleConfig::default()
            },
            public_url: "http://127.0.0.1:8080".into(),
            app_key: "bench".into(),
            corp_id: "bench".into(),
            tz: jiff::tz::TimeZone::UTC,
            overseers: [DingUserId::new(ADMIN)].into_iter().collect(),
            approvers: APPROVERS.iter().map(|a| DingUserId::new(*a)).collect(),
        },
        ConsolePorts {
            orders: Arc::new(orders),
            index: Arc::new(Index::new(&store).expect("index")),
            audit: Arc::new(ConsoleAudit::new(audit)),
            sessions: Arc::new(sessions),
            login: Arc::new(NoLogin),
        },
        clock,
    );
    let router = console::router(Arc::new(console));
    let pages = [
        ("now", "/console/now"),
        ("pending", "/console/pending"),
        ("history", "/console/history"),
        ("history, one user", "/console/history?person=user007"),
        ("history, last 7 days", "/console/history?from=2026-11-24"),
        ("order", "/console/orders/R000507"),
    ];
    let before = rss_kb();
    rt.block_on(get(&router, &admin, "/console/orders/R000507"));
    println!(
        "first page (every order decoded and kept): RSS {} -> {} kB",
        before,
        rss_kb()
    );
    for (who, token) in [("admin", &admin), ("employee", &employee)] {
        for (name, path) in pages {
            let bytes = rt.block_on(get(&router, token, path));
            println!("{who} {name}: {bytes} bytes");
        }
    }
    let mut group = c.benchmark_group(format!("console ({n_orders} orders)"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));
    for (who, token) in [("admin", &admin), ("employee", &employee)] {
        for (name, path) in pages {
            group.bench_function(format!("{who}: {name}"), |b| {
                b.iter(|| rt.block_on(get(&router, token, path)))
            });
        }
    }
    group.finish();
}

/// This process's resident set, in kB (0 where /proc is not there).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One page as `token`'s session sees it; its size in bytes (the status must be 200).
async fn get(router: &axum::Router, token: &str, path: &str) -> usize {
    let req = HttpRequest::get(path)
        .header(header::COOKIE, format!("ab_session={token}"))
        .body(Body::empty())
        .expect("request");
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    assert_eq!(status, StatusCode::OK, "{path}");
    body.len()
}

criterion_group!(benches, console_pages);
criterion_main!(benches);
