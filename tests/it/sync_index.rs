//! `/sync` and `/who-has` over real HTTP: the bot between the simulated DingTalk and the
//! simulated JumpServer (seeded with more hosts than one page holds and with valid, expired,
//! future and inactive permissions). The outbox is driven step by step, and the crash tests
//! stop the sync job at a known point of its walk (after JumpServer saw the permission list
//! request), so nothing depends on timing.
use crate::support::{bot_env_newtype, example_user, BotEnv};
use accessbot::clock::Clock;
use accessbot::domain::ids::DingUserId;
use accessbot::jumpserver::api::NewPermissionSpec;
use accessbot::sandbox::dingtalk::SimDingTalk;
use accessbot::sandbox::jumpserver::{SeedHost, SimJumpServer};
use accessbot::store::audit::Audit;
use accessbot::store::outbox::{OutboxJob, SYNC_KEY};
use accessbot::store::Store;
use accessbot::worker::outbox::{JobError, JobRunner};
use jiff::{SignedDuration, Timestamp};
use std::sync::atomic::Ordering;
use std::task::Poll;

const ADMIN: &str = "admin01";
const ALICE: &str = "alice01";
const PERMS_PATH: &str = "/api/v1/perms/asset-permissions";
/// More than two pages of 100: the host walk must follow `next` twice.
const BULK_HOSTS: usize = 230;

struct Env(BotEnv);
bot_env_newtype!(Env);

fn bulk_address(i: usize) -> String {
    format!("10.20.{}.{}", i / 200, i % 200 + 1)
}

impl Env {
    async fn new() -> Env {
        let users = [example_user(ADMIN, "管理员"), example_user(ALICE, "张三")];
        let seed = |_: &SimDingTalk, jms: &SimJumpServer| {
            let bulk = jms.add_node_path("Bulk/web");
            for i in 0..BULK_HOSTS {
                jms.add_host(SeedHost {
                    name: format!("bulk-{i:03}"),
                    address: bulk_address(i),
                    platform_id: 1,
                    node_ids: vec![bulk.clone()],
                    accounts: vec![("readonly".into(), "readonly".into(), false)],
                })
                .unwrap();
            }
            for u in ["fx-carol", "fx-dave", "fx-erin"] {
                jms.add_user(u, &u.to_uppercase(), &format!("{u}@example.com"))
                    .unwrap();
            }
        };
        Env(BotEnv::new(users, seed, |cfg| {
            cfg.approval.default_approvers = vec!["boss01".into()];
            cfg.policy.admins = vec![ADMIN.into()];
        })
        .await)
    }

    async fn ask(&self, user: &str, text: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let msg_id = format!("sync-msg{n}");
        self.push_robot_text(user, &msg_id, text).await;
        self.reply(&msg_id).await
    }

    fn generation(&self) -> Option<u64> {
        self.bot()
            .index()
            .unwrap()
            .stats()
            .unwrap()
            .map(|s| s.generation)
    }

    fn sync_jobs(&self) -> Vec<OutboxJob> {
        self.bot()
            .outbox()
            .unwrap()
            .heads()
            .unwrap()
            .into_iter()
            .filter(|j| j.order_id.as_str() == SYNC_KEY)
            .collect()
    }

    /// A permission created over JumpServer's API, window relative to now (hours).
    async fn permit(
        &self,
        name: &str,
        username: &str,
        assets: &[&str],
        nodes: &[String],
        from_h: i64,
        to_h: i64,
    ) -> String {
        let jms = self.bot().jms().unwrap();
        let user = jms.find_user_by_username(username).await.unwrap().unwrap();
        let host_ids: Vec<String> = jms
            .find_hosts(&assets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(host_ids.len(), assets.len(), "unknown host in {assets:?}");
        let now = self.clock.now();
        let p = jms
            .create_permission(&NewPermissionSpec {
                name: name.into(),
                user_ids: vec![user.id.as_str().to_string()],
                asset_ids: host_ids,
                node_ids: nodes.to_vec(),
                accounts: vec!["@ALL".into()],
                protocols: Vec::new(),
                actions: vec!["connect".into()],
                date_start: now + SignedDuration::from_hours(from_h),
                date_expired: now + SignedDuration::from_hours(to_h),
                comment: "sync test".into(),
            })
            .await
            .unwrap();
        p.id
    }

    /// The permissions of the main test: one of each validity case on 10.20.0.6, plus a node
    /// grant that covers every bulk host.
    async fn seed_permissions(&self) {
        let target = bulk_address(5);
        self.permit("p-valid-alice", "fx-alice", &[&target], &[], -1, 10)
            .await;
        self.permit("p-expired-bob", "fx-bob", &[&target], &[], -240, -24)
            .await;
        self.permit("p-future-dave", "fx-dave", &[&target], &[], 24, 48)
            .await;
        let off = self
            .permit("p-inactive-erin", "fx-erin", &[&target], &[], -1, 10)
            .await;
        self.bot()
            .jms()
            .unwrap()
            .deactivate_permission(&off)
            .await
            .unwrap();
        let bulk = self
            .jms
            .nodes()
            .into_iter()
            .find(|n| n.value == "Bulk")
            .unwrap()
            .id;
        self.permit("p-node-carol", "fx-carol", &[], &[bulk], -1, 100)
            .await;
    }
}

fn count(texts: &[String], needle: &str) -> usize {
    texts.iter().filter(|t| t.contains(needle)).count()
}

// On the multi-threaded runtime, as the bot serves: the walk's pages and the commit then leave
// the runtime's workers (`offload`, the commit's blocking thread) — those paths run here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_builds_the_index_and_who_has_answers_valid_grants_from_it() {
    let env = Env::new().await;
    env.seed_permissions().await;
    let target = bulk_address(5);

    // Not an admin: refused, nothing queued.
    let r = env.ask(ALICE, "/sync").await;
    assert!(r.contains("仅限管理员"), "{r}");
    assert!(env.sync_jobs().is_empty());
    let r = env.ask(ALICE, &format!("/who-has {target}")).await;
    assert!(r.contains("仅限管理员"), "{r}");

    // Before any sync /who-has asks JumpServer live.
    let r = env.ask(ADMIN, &format!("/who-has {target}")).await;
    assert!(
        r.contains("JumpServer 中") && r.contains("p-valid-alice"),
        "{r}"
    );
    assert!(!r.contains("截至"), "{r}");

    // Two /sync before it ran are one job.
    let r = env.ask(ADMIN, "/sync").await;
    assert!(r.contains("已开始"), "{r}");
    let r = env.ask(ADMIN, "同步").await;
    assert!(r.contains("已在进行"), "{r}");
    assert_eq!(env.sync_jobs().len(), 1);

    env.jms.reset_counts();
    env.drain().await;
    assert!(env.sync_jobs().is_empty());
    // One page per list (pages of 1000 hold every list here): users, groups, nodes, hosts,
    // permissions and the four relation tables, walked in id order; no call per permission.
    assert_eq!(env.jms.calls_to("GET", "/api/v1/assets/hosts"), 1);
    assert_eq!(env.jms.calls_to("GET", PERMS_PATH), 1 + 4);
    for table in ["users", "user-groups", "assets", "nodes"] {
        assert_eq!(
            env.jms.calls_to(
                "GET",
                &format!("/api/v1/perms/asset-permissions-{table}-relations/")
            ),
            1,
            "{table}"
        );
    }
    assert_eq!(env.jms.total_calls(), 9);
    let stats = env.bot().index().unwrap().stats().unwrap().unwrap();
    assert_eq!(stats.hosts, env.jms.hosts().len());
    assert_eq!(stats.hosts, BULK_HOSTS + 3);
    assert_eq!(stats.users, env.jms.users().len());
    assert_eq!(stats.nodes, env.jms.nodes().len());
    assert_eq!(stats.permissions, 5);
    assert_eq!(stats.valid_permissions, 2);
    let admin = env.texts_to(ADMIN);
    let done = format!("主机 {} 台，授权 5 条（当前有效 2 条）", BULK_HOSTS + 3);
    assert_eq!(count(&admin, "调用 JumpServer 9 次"), 1, "{admin:?}");
    assert_eq!(count(&admin, &done), 1, "{admin:?}");

    // A host: the valid direct grant and the node grant; not the expired, future or inactive.
    let r = env.ask(ADMIN, &format!("/who-has {target}")).await;
    assert!(r.contains("截至") && r.contains("上次同步"), "{r}");
    assert!(r.contains("p-valid-alice") && r.contains("fx-alice"), "{r}");
    assert!(r.contains("p-node-carol") && r.contains("fx-carol"), "{r}");
    for absent in ["p-expired-bob", "p-future-dave", "p-inactive-erin"] {
        assert!(!r.contains(absent), "{absent} in {r}");
    }
    assert!(r.contains("本机器人没有"), "{r}");
    // By host name too.
    let r = env.ask(ADMIN, "/who-has bulk-005").await;
    assert!(r.contains("p-valid-alice"), "{r}");

    // A user: the node grant is one line naming the first hosts and the total; the index
    // has every host of it, the last page's included.
    let r = env.ask(ADMIN, "/who-has fx-carol").await;
    assert!(r.contains("p-node-carol") && r.contains("截至"), "{r}");
    assert!(r.contains(&format!("共 {BULK_HOSTS} 台")), "{r}");
    assert!(
        r.contains("bulk-000 (10.20.0.1)、bulk-001 (10.20.0.2)"),
        "{r}"
    );
    let carol = env
        .bot()
        .index()
        .unwrap()
        .user_access("fx-carol", env.clock.now())
        .unwrap()
        .unwrap();
    let hosts = &carol.grants[0].hosts;
    assert_eq!(hosts.len(), BULK_HOSTS);
    assert_eq!(hosts.last().unwrap().address, bulk_address(BULK_HOSTS - 1));
    let r = env.ask(ADMIN, "/who-has fx-bob").await;
    assert!(r.contains("没有有效的授权"), "{r}");
    let r = env.ask(ADMIN, "/who-has nobody-here").await;
    assert!(r.contains("没有名为"), "{r}");

    // Validity is judged when asked: a day later the future grant counts, the 10 h one not.
    env.clock.advance(SignedDuration::from_hours(25));
    let r = env.ask(ADMIN, &format!("/who-has {target}")).await;
    assert!(r.contains("p-future-dave"), "{r}");
    assert!(!r.contains("p-valid-alice"), "{r}");
    let r = env.ask(ADMIN, "/who-has fx-dave").await;
    assert!(r.contains(&target), "{r}");

    // The sync is in the audit trail, attributed to the admin.
    let mut env = env;
    let bot = env.bot.take().unwrap();
    bot.shutdown().await;
    let store = Store::open(env.db_path()).unwrap();
    let trail = Audit::new(&store)
        .unwrap()
        .list_since(Timestamp::UNIX_EPOCH, 1000)
        .unwrap();
    let rec = trail
        .iter()
        .find(|r| r.detail.contains("index synced"))
        .expect("sync audited");
    assert!(rec.detail.contains(&format!("{} hosts", BULK_HOSTS + 3)));
    assert_eq!(
        rec.actor,
        accessbot::domain::audit::Actor::User(DingUserId::new(ADMIN))
    );
}

/// Polls the queued sync job until JumpServer has seen the permission list request, i.e. the
/// walk is past users, nodes and hosts and before the permission details. `then_fail` makes the
/// next JumpServer request fail and runs the job to its end; otherwise the job is dropped there
/// (the process dies mid-walk). Returns the job's result when it ran to the end. A `/sync`
/// sent while the job is in the middle of its walk must not start a second one.
async fn interrupt_sync(env: &Env, then_fail: bool) -> Option<Result<(), JobError>> {
    let job = env.sync_jobs().into_iter().next().expect("sync queued");
    let wf = env.bot().workflow().unwrap().clone();
    env.jms.reset_counts();
    let mut fut = std::pin::pin!(wf.run(&job));
    let mut reached = false;
    // Bounded: each round polls once; the walk needs far fewer rounds than this.
    for _ in 0..100_000 {
        if let Poll::Ready(r) = futures::poll!(fut.as_mut()) {
            assert!(
                reached,
                "the sync finished before the interruption point: {r:?}"
            );
            return Some(r);
        }
        if !reached && env.jms.calls_to("GET", PERMS_PATH) >= 1 {
            reached = true;
            if !then_fail {
                return None;
            }
            // Another /sync while this one runs joins it.
            let r = env.ask(ADMIN, "/sync").await;
            assert!(r.contains("已在进行"), "{r}");
            env.jms.fail_next(1, 500);
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("the sync job never got to the permissions");
}

#[tokio::test]
async fn a_sync_that_fails_or_crashes_mid_walk_keeps_the_previous_index() {
    let mut env = Env::new().await;
    env.seed_permissions().await;
    env.ask(ADMIN, "/sync").await;
    env.drain().await;
    assert_eq!(env.generation(), Some(1));

    // JumpServer changes: a new grant on 10.10.1.12.
    env.permit("p-new-bob", "fx-bob", &["10.10.1.12"], &[], -1, 10)
        .await;
    let r = env.ask(ADMIN, "/who-has 10.10.1.12").await;
    assert!(r.contains("没有有效的授权"), "{r}");

    // 1. A JumpServer failure after the permission list: the job fails, nothing is swapped.
    env.ask(ADMIN, "/sync").await;
    let r = interrupt_sync(&env, true).await.expect("ran to the end");
    assert!(matches!(r, Err(JobError::Transient { .. })), "{r:?}");
    assert_eq!(env.generation(), Some(1));
    let r = env.ask(ADMIN, "/who-has 10.10.1.12").await;
    assert!(!r.contains("p-new-bob"), "{r}");

    // 2. The process dies mid-walk: after a restart the previous generation is still in use,
    //    the job is still queued, and the rerun completes.
    assert!(interrupt_sync(&env, false).await.is_none());
    env.crash_and_restart().await;
    assert_eq!(env.generation(), Some(1));
    let r = env.ask(ADMIN, "/who-has 10.20.0.6").await;
    assert!(r.contains("p-valid-alice") && r.contains("截至"), "{r}");
    assert_eq!(env.sync_jobs().len(), 1);
    env.drain().await;
    // A new generation (its number also counts the two attempts that never became current).
    assert!(env.generation() > Some(1), "{:?}", env.generation());
    assert!(env.sync_jobs().is_empty());
    let r = env.ask(ADMIN, "/who-has 10.10.1.12").await;
    assert!(r.contains("p-new-bob") && r.contains("fx-bob"), "{r}");
    assert_eq!(count(&env.texts_to(ADMIN), "同步完成"), 2);
    assert_eq!(env.bot().index().unwrap().stray_generations().unwrap(), 0);
}

#[tokio::test]
async fn a_sync_that_keeps_failing_tells_the_admin_and_keeps_the_index() {
    let env = Env::new().await;
    env.seed_permissions().await;
    env.ask(ADMIN, "/sync").await;
    env.drain().await;
    assert_eq!(env.generation(), Some(1));
    env.ask(ADMIN, "/sync").await;
    // Every attempt's first request fails; the runner backs off between attempts.
    env.jms.fail_next(10, 503);
    for _ in 0..20 {
        env.drain().await;
        if env.sync_jobs().is_empty() {
            break;
        }
        env.clock.advance(SignedDuration::from_mins(30));
    }
    assert!(env.sync_jobs().is_empty(), "the sync never gave up");
    let admin = env.texts_to(ADMIN);
    assert_eq!(count(&admin, "同步失败"), 1, "{admin:?}");
    assert_eq!(env.generation(), Some(1));
    let mut env = env;
    env.bot.take().unwrap().shutdown().await;
    let store = Store::open(env.db_path()).unwrap();
    let trail = Audit::new(&store)
        .unwrap()
        .list_since(Timestamp::UNIX_EPOCH, 1000)
        .unwrap();
    assert_eq!(
        trail
            .iter()
            .filter(|r| r.detail.contains("sync failed, previous index kept"))
            .count(),
        1
    );
}

/// Issue 12: a long `/who-has` stays within one DingTalk message, says how many rows were left
/// out and the command that lists them, and that command lists the rest.
#[tokio::test]
async fn a_long_who_has_answer_says_how_to_see_the_rest() {
    let env = Env::new().await;
    let target = bulk_address(7);
    for i in 0..25 {
        let u = format!("fx-many{i:02}");
        env.jms
            .add_user(&u, &u.to_uppercase(), &format!("{u}@example.com"))
            .unwrap();
        env.permit(&format!("p-many-{i:02}"), &u, &[&target], &[], -1, 10)
            .await;
    }
    env.ask(ADMIN, "/sync").await;
    env.drain().await;
    assert!(env.generation().is_some());
    // (asked, rows shown, the footer)
    let rows: &[(String, usize, Option<String>)] = &[
        (
            format!("谁有权限 {target}"),
            20,
            Some(format!("另有 5 条未显示，发送“谁有权限 {target} 21”查看")),
        ),
        (format!("谁有权限 {target} 21"), 5, None),
        (format!("/who-has {target} from 11"), 15, None),
    ];
    for (asked, shown, footer) in rows {
        let r = env.ask(ADMIN, asked).await;
        assert_eq!(r.matches("p-many-").count(), *shown, "{asked}: {r}");
        match footer {
            Some(f) => assert!(r.contains(f.as_str()), "{asked}: {r}"),
            None => assert!(!r.contains("未显示"), "{asked}: {r}"),
        }
        assert!(
            r.len() < accessbot::chat::text::lists::MAX_LIST_BYTES,
            "{}",
            r.len()
        );
    }
}
