//! Grant truth over real HTTP, as a new admin meets it against a JumpServer that already holds
//! things: a permission by our name that is not ours, hosts asked for by name, a user whose
//! e-mail is taken, hosts without the role's login, and revoke / renew / who-has read back from
//! JumpServer. Every case checks both what JumpServer holds afterwards and what people were told.
use crate::support::{bot_env_newtype, ding_user, BotEnv};
use accessbot::config::{Config, MissingLogin};
use accessbot::domain::ids::{JmsUserId, OrderId};
use accessbot::domain::order::State;
use accessbot::domain::ownership::Marker;
use accessbot::domain::policy::SystemConfig;
use accessbot::jumpserver::NewPermissionSpec;
use accessbot::sandbox::jumpserver::{SeedHost, SeedSession};
use jiff::SignedDuration;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

const ALICE: &str = "alice01";
const BOSS1: &str = "boss01";
const BOSS2: &str = "boss02";
const ADMIN: &str = "admin01";
const ZS: &str = "zs01";

struct Env(BotEnv);
bot_env_newtype!(Env);

impl Env {
    async fn new(
        seed: impl FnOnce(&accessbot::sandbox::jumpserver::SimJumpServer),
        configure: impl FnOnce(&mut Config),
    ) -> Env {
        let users = [
            (ALICE, "张三", "fx-alice@example.com"),
            (BOSS1, "李四", "boss01@example.com"),
            (BOSS2, "王五", "boss02@example.com"),
            (ADMIN, "管理员", "admin01@example.com"),
            (ZS, "张山", "zhangsan@example.com"),
        ]
        .map(|(id, name, mail)| ding_user(id, name, mail));
        Env(BotEnv::new(
            users,
            |_, jms| seed(jms),
            |cfg| {
                cfg.approval.default_approvers = vec![BOSS1.into()];
                cfg.policy.admins = vec![ADMIN.into()];
                configure(cfg);
            },
        )
        .await)
    }

    async fn say(&self, user: &str, text: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let msg_id = format!("gt{n}x{}", user.len());
        self.push_robot_text(user, &msg_id, text).await;
        msg_id
    }

    async fn ask(&self, user: &str, text: &str) -> String {
        let s = self.say(user, text).await;
        self.reply(&s).await
    }

    /// Sends a request and returns its order (created, not yet prepared).
    async fn request(&self, user: &str, text: &str) -> OrderId {
        let before = self.orders_of(user).len();
        let r = self.ask(user, text).await;
        let orders = self.orders_of(user);
        assert_eq!(orders.len(), before + 1, "no order; reply: {r}");
        orders[0].id.clone()
    }

    fn all_texts_to(&self, user: &str) -> String {
        self.texts_to(user).join("\n---\n")
    }

    fn count_to(&self, user: &str, needle: &str) -> usize {
        self.texts_to(user)
            .iter()
            .filter(|t| t.contains(needle))
            .count()
    }

    fn perm(&self, name: &str) -> accessbot::sandbox::jumpserver::model::Permission {
        self.jms
            .permissions()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no permission {name}"))
    }

    fn user_id(&self, username: &str) -> String {
        self.jms
            .users()
            .into_iter()
            .find(|u| u.username == username)
            .unwrap()
            .id
    }

    fn host_id(&self, name: &str) -> String {
        self.jms
            .hosts()
            .into_iter()
            .find(|h| h.name == name)
            .unwrap()
            .id
    }

    /// A permission made by someone else (no marker), through the signed API.
    async fn foreign_permission(&self, name: &str, user: &str, host: &str) {
        let jms = self.bot().jms().unwrap();
        let now = self.clock.now();
        jms.create_permission(&NewPermissionSpec {
            name: name.into(),
            user_ids: vec![self.user_id(user)],
            asset_ids: vec![self.host_id(host)],
            node_ids: vec![],
            accounts: vec!["@ALL".into()],
            protocols: vec![],
            actions: vec!["connect".into()],
            date_start: now,
            date_expired: now + SignedDuration::from_hours(72),
            comment: "granted by hand for the audit".into(),
        })
        .await
        .unwrap();
    }
}

use accessbot::clock::Clock;

fn no_markers(text: &str) {
    assert!(
        !text.contains("@SPEC"),
        "raw marker shown to a person: {text}"
    );
}

#[tokio::test]
async fn a_foreign_permission_holding_our_name_is_never_touched() {
    let env = Env::new(|_| {}, |_| {}).await;
    let id = env
        .request(ALICE, "申请主机 10.10.1.11 只读 4h 原因：排查")
        .await;
    let o = env.order(&id);
    assert!(!o.installation.is_empty());
    // Another installation (or a person) holds the name this order will try first, and an
    // older installation's legacy name for the same order id.
    let ours = o.permission_name();
    env.foreign_permission(&ours, "fx-bob", "10.10.1.12").await;
    env.foreign_permission(&format!("accessbot-{id}"), "fx-bob", "10.10.1.12")
        .await;
    let before = env.perm(&ours);
    let legacy_before = env.perm(&format!("accessbot-{id}"));
    env.drain().await;
    // The approver sees the clash before deciding.
    let card = env.all_texts_to(BOSS1);
    assert!(card.contains("不会修改"), "{card}");
    assert!(card.contains(&format!("{ours}-2")), "{card}");
    no_markers(&card);

    env.ask(BOSS1, &format!("同意 {id}")).await;
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Active);
    // Nothing foreign changed: same users, hosts, dates, comment.
    assert_eq!(env.perm(&ours), before);
    assert_eq!(env.perm(&format!("accessbot-{id}")), legacy_before);
    // Ours carries the marker and exactly the request.
    let mine = env.perm(&format!("{ours}-2"));
    assert_eq!(mine.user_ids, vec![env.user_id("fx-alice")]);
    assert_eq!(mine.asset_ids, vec![env.host_id("10.10.1.11")]);
    let marker = Marker::parse(&mine.comment).expect("marker");
    assert_eq!(marker.order, id);
    assert_eq!(marker.installation, o.installation);
    assert_eq!(o.granted_permission_name(), format!("{ours}-2"));
    // The requester is told what JumpServer grants; the admins about the clash.
    let told = env.all_texts_to(ALICE);
    assert_eq!(env.count_to(ALICE, "权限已开通"), 1, "{told}");
    assert!(told.contains("10.10.1.11：只读账号 readonly"), "{told}");
    no_markers(&told);
    assert_eq!(env.count_to(ADMIN, "不带本机器人的标记"), 1);

    // Revoke: ours deactivated, the foreign one still exactly as it was.
    env.ask(ADMIN, &format!("/revoke {id}")).await;
    env.drain().await;
    assert!(!env.perm(&format!("{ours}-2")).is_active);
    assert_eq!(env.perm(&ours), before);
}

#[tokio::test]
async fn a_host_without_the_login_is_named_before_and_after_and_admins_are_told() {
    let env = Env::new(
        |jms| {
            let node = jms.add_node_path("accessbot");
            jms.add_host(SeedHost {
                name: "db-01".into(),
                address: "10.10.3.1".into(),
                platform_id: 1,
                node_ids: vec![node],
                accounts: vec![("root".into(), "root".into(), true)],
            })
            .unwrap();
        },
        |_| {},
    )
    .await;
    let id = env
        .request(ALICE, "申请主机 10.10.3.1 运维 4h 原因：修复")
        .await;
    env.drain().await;
    let card = env.all_texts_to(BOSS1);
    assert!(card.contains("db-01 (10.10.3.1) 上没有 ops 账号"), "{card}");
    env.ask(BOSS1, &format!("同意 {id}")).await;
    env.drain().await;
    assert_eq!(env.order(&id).state, State::Active);
    let told = env.all_texts_to(ALICE);
    // Granted but not usable: never "ready".
    assert_eq!(env.count_to(ALICE, "权限已开通"), 0, "{told}");
    assert_eq!(env.count_to(ALICE, "目前没有可用的登录"), 1, "{told}");
    assert!(told.contains("主机上没有账号 ops"), "{told}");
    no_markers(&told);
    let admins = env.all_texts_to(ADMIN);
    assert!(
        admins.contains("db-01 (10.10.3.1) 上的账号 ops"),
        "{admins}"
    );
}

#[tokio::test]
async fn missing_login_refuse_closes_the_request_before_approval() {
    let env = Env::new(
        |jms| {
            jms.add_host(SeedHost {
                name: "db-02".into(),
                address: "10.10.3.2".into(),
                platform_id: 1,
                node_ids: vec![],
                accounts: vec![],
            })
            .unwrap();
        },
        |cfg| cfg.workflow.missing_login = MissingLogin::Refuse,
    )
    .await;
    let id = env
        .request(ALICE, "申请主机 10.10.3.2 只读 4h 原因：看日志")
        .await;
    env.drain().await;
    assert_eq!(env.order(&id).state, State::Cancelled);
    assert!(env.texts_to(BOSS1).is_empty(), "no approval asked");
    assert_eq!(
        env.count_to(ALICE, "无法办理"),
        1,
        "{}",
        env.all_texts_to(ALICE)
    );
    assert_eq!(env.count_to(ADMIN, "已被拒绝受理"), 1);
    assert!(env.jms.permissions().is_empty());
}

#[tokio::test]
async fn a_host_asked_for_by_name_is_found_and_routed_by_its_address() {
    let env = Env::new(
        |jms| {
            let node = jms.add_node_path("Payments");
            jms.add_host(SeedHost {
                name: "WEB-01".into(),
                address: "10.9.96.7".into(),
                platform_id: 1,
                node_ids: vec![node],
                accounts: vec![("readonly".into(), "readonly".into(), false)],
            })
            .unwrap();
        },
        |cfg| {
            cfg.systems = vec![SystemConfig {
                name: "payments".into(),
                addresses: vec!["10.9.96.0/24".into()],
                approvers: vec![BOSS2.into()],
                max_duration: BTreeMap::from([("readonly".into(), "1d".into())]),
                ..SystemConfig::default()
            }];
        },
    )
    .await;
    let hosts_before = env.jms.hosts().len();
    // Over the system's limit: refused once the name is known to stand for 10.9.96.7.
    let long = env
        .request(ALICE, "申请主机 web-01 只读 3d 原因：对账")
        .await;
    env.drain().await;
    assert_eq!(env.order(&long).state, State::Cancelled);
    assert!(
        env.all_texts_to(ALICE).contains("1天"),
        "{}",
        env.all_texts_to(ALICE)
    );
    // Within it: the system's approver decides, the existing host is granted, none is made.
    let id = env
        .request(ALICE, "申请主机 web-01 只读 4h 原因：对账")
        .await;
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(
        o.approvers,
        vec![accessbot::domain::ids::DingUserId::new(BOSS2)]
    );
    assert!(env.texts_to(BOSS1).is_empty());
    let card = env.all_texts_to(BOSS2);
    assert!(card.contains("WEB-01 (10.9.96.7)"), "{card}");
    env.ask(BOSS2, &format!("同意 {id}")).await;
    env.drain().await;
    assert_eq!(env.order(&id).state, State::Active);
    assert_eq!(env.jms.hosts().len(), hosts_before, "no host created");
    let perm = env.perm(&env.order(&id).granted_permission_name());
    assert_eq!(perm.asset_ids, vec![env.host_id("WEB-01")]);
    let told = env.all_texts_to(ALICE);
    assert!(
        told.contains("WEB-01 (10.9.96.7)：只读账号 readonly"),
        "{told}"
    );
}

#[tokio::test]
async fn a_user_whose_email_is_taken_is_granted_on_that_existing_account() {
    let env = Env::new(
        |jms| {
            jms.add_user("zhang.san", "张山", "zhangsan@example.com")
                .unwrap();
        },
        |_| {},
    )
    .await;
    let users_before = env.jms.users().len();
    // The identity rule maps zs01 to `zhangsan`, which is free; its e-mail is not.
    let id = env
        .request(ZS, "申请主机 10.10.1.12 只读 4h 原因：对账")
        .await;
    env.drain().await;
    let card = env.all_texts_to(BOSS1);
    assert!(
        card.contains("zhang.san（已存在；邮箱与申请人相同"),
        "{card}"
    );
    env.ask(BOSS1, &format!("同意 {id}")).await;
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Active, "{}", env.all_texts_to(ZS));
    assert_eq!(env.jms.users().len(), users_before, "no user created");
    assert_eq!(
        env.perm(&o.granted_permission_name()).user_ids,
        vec![env.user_id("zhang.san")]
    );
    assert_eq!(o.jms_username, "zhang.san");
    assert!(env.all_texts_to(ZS).contains("用户 zhang.san"));
}

#[tokio::test]
async fn revoke_deactivates_ends_live_sessions_and_says_what_is_left() {
    let env = Env::new(|_| {}, |_| {}).await;
    let id = env
        .request(ALICE, "申请主机 10.10.1.11 只读 4h 原因：排查")
        .await;
    env.drain().await;
    env.ask(BOSS1, &format!("同意 {id}")).await;
    env.drain().await;
    let host = env.host_id("10.10.1.11");
    env.jms
        .add_session(SeedSession {
            user_id: env.user_id("fx-alice"),
            asset_id: host,
            account_username: "readonly".into(),
            protocol: "ssh".into(),
        })
        .unwrap();
    env.ask(ADMIN, &format!("/revoke {id}")).await;
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Revoked);
    let p = env.perm(&o.granted_permission_name());
    assert!(!p.is_active, "deactivated, kept");
    assert_eq!(env.jms.tasks().len(), 1, "one kill-session task");
    let told = env.all_texts_to(ALICE);
    assert!(told.contains("授权已停用"), "{told}");
    assert!(told.contains("已要求结束 1 个在线会话"), "{told}");
    // JumpServer confirms: nothing reachable through it any more.
    let jms = env.bot().jms().unwrap();
    let left = jms
        .user_asset_access(
            &JmsUserId::new(env.user_id("fx-alice")),
            &env.host_id("10.10.1.11"),
        )
        .await
        .unwrap();
    assert!(left.is_none());
}

#[tokio::test]
async fn renew_extends_from_the_current_end_and_the_approver_sees_both_ends() {
    let env = Env::new(|_| {}, |_| {}).await;
    let id = env
        .request(ALICE, "申请主机 10.10.1.11 只读 4h 原因：排查")
        .await;
    env.drain().await;
    env.ask(BOSS1, &format!("同意 {id}")).await;
    env.drain().await;
    let old_end = env.order(&id).window.unwrap().end;
    env.clock.advance(SignedDuration::from_hours(1));
    // The requester's renewal answers through the outbox, not on the message.
    env.say(ALICE, &format!("/renew {id} 8h")).await;
    env.drain().await;
    let o = env.order(&id);
    let new_end = o.window.unwrap().end;
    assert_eq!(new_end, old_end + SignedDuration::from_hours(8));
    assert_eq!(
        env.perm(&o.granted_permission_name())
            .date_expired
            .as_second(),
        new_end.as_second()
    );
    let told = env.all_texts_to(ALICE);
    assert!(told.contains("已续期") && told.contains("→"), "{told}");
    assert!(told.contains("JumpServer 现在显示"), "{told}");
    let boss = env.all_texts_to(BOSS1);
    assert!(
        boss.contains("续期了你批准的申请") && boss.contains("→"),
        "{boss}"
    );
    // A renewal capped at the role's maximum (30 days for read-only) says so; asking again at
    // the cap is refused without shortening anything.
    env.say(ALICE, &format!("/renew {id} 30d")).await;
    env.drain().await;
    let capped = env.order(&id).window.unwrap().end;
    assert_eq!(
        capped,
        env.clock.now() + SignedDuration::from_hours(30 * 24)
    );
    assert!(env.all_texts_to(ALICE).contains("最长时限截止"));
    let r = env.ask(ALICE, &format!("/renew {id} 1d")).await;
    assert!(r.contains("已达到该角色的最长时限"), "{r}");
    assert_eq!(env.order(&id).window.unwrap().end, capped);
}

#[tokio::test]
async fn who_has_lists_only_users_who_can_connect() {
    let env = Env::new(|_| {}, |_| {}).await;
    let id = env
        .request(ALICE, "申请主机 10.10.1.11 只读 4h 原因：排查")
        .await;
    env.drain().await;
    env.ask(BOSS1, &format!("同意 {id}")).await;
    env.drain().await;
    let jms = env.bot().jms().unwrap();
    let alice = JmsUserId::new(env.user_id("fx-alice"));
    // Live (before any /sync), then from the index: the same answer.
    for synced in [false, true] {
        if synced {
            env.ask(ADMIN, "/sync").await;
            env.drain().await;
        }
        jms.set_user_active(&alice, true).await.unwrap();
        if synced {
            env.ask(ADMIN, "/sync").await;
            env.drain().await;
        }
        let r = env.ask(ADMIN, "/who-has 10.10.1.11").await;
        assert!(r.contains("fx-alice"), "{r}");
        no_markers(&r);
        jms.set_user_active(&alice, false).await.unwrap();
        if synced {
            env.ask(ADMIN, "/sync").await;
            env.drain().await;
        }
        let r = env.ask(ADMIN, "/who-has 10.10.1.11").await;
        assert!(!r.contains("Alice FX"), "disabled user listed: {r}");
        assert!(r.contains("另有 1 条属于已禁用的用户"), "{r}");
        let r = env.ask(ADMIN, "/who-has 10.10.1.11 全部").await;
        assert!(r.contains("（已禁用）"), "{r}");
        let r = env.ask(ADMIN, "/who-has fx-alice").await;
        assert!(r.contains("已被禁用"), "{r}");
    }
}

#[tokio::test]
async fn renew_keeps_a_deactivation_made_by_hand_and_says_so() {
    let env = Env::new(|_| {}, |_| {}).await;
    let id = env
        .request(ALICE, "申请主机 10.10.1.11 只读 4h 原因：排查")
        .await;
    env.drain().await;
    env.ask(BOSS1, &format!("同意 {id}")).await;
    env.drain().await;
    let name = env.order(&id).granted_permission_name();
    // An administrator switches it off in JumpServer.
    let jms = env.bot().jms().unwrap();
    jms.deactivate_permission(&env.perm(&name).id)
        .await
        .unwrap();
    env.say(ALICE, &format!("/renew {id} 2h")).await;
    env.drain().await;
    let p = env.perm(&name);
    assert!(!p.is_active, "the administrator's choice stands");
    let told = env.all_texts_to(ALICE);
    assert!(told.contains("已被停用（管理员操作）"), "{told}");
}
