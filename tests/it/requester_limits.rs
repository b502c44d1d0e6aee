//! One requester cannot flood approvers (seen: 22 orders in 50 s, 14 of them identical): an
//! identical open request is answered with the existing order, and new orders per requester are
//! limited per window, counted from sled so a restart does not reset the count. Driven over the
//! signed robot HTTP path; time moves only by the manual clock.
use crate::support::{bot_env_newtype, ding_user, BotEnv};
use accessbot::chat::text::Lang;
use accessbot::config::Config;
use accessbot::domain::ids::OrderId;
use accessbot::domain::order::State;
use jiff::SignedDuration;
use std::sync::atomic::Ordering;

const ALICE: &str = "alice01";
const BOSS: &str = "boss01";
const MALLORY: &str = "mallory01";

struct Env(BotEnv);
bot_env_newtype!(Env);

impl Env {
    async fn new(configure: impl FnOnce(&mut Config)) -> Env {
        let users = [
            (ALICE, "张三", "fx-alice@example.com"),
            (BOSS, "李四", "boss01@example.com"),
            (MALLORY, "路人", "mallory@example.com"),
        ]
        .map(|(id, name, mail)| ding_user(id, name, mail));
        Env(BotEnv::new(
            users,
            |_, _| {},
            |cfg| {
                cfg.approval.default_approvers = vec![BOSS.into()];
                configure(cfg);
            },
        )
        .await)
    }

    /// `user` says `text` to the robot (the order changes before the push is answered).
    async fn say(&self, user: &str, text: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let msg_id = format!("msg-limit-{n}");
        self.push_robot_text(user, &msg_id, text).await;
        msg_id
    }

    /// `user` says `text`; the bot's answer on the session webhook.
    async fn ask(&self, user: &str, text: &str) -> String {
        let msg_id = self.say(user, text).await;
        self.reply(&msg_id).await
    }

    /// `user` asks and a new order must result; returns it.
    async fn new_order(&self, user: &str, text: &str) -> OrderId {
        let before = self.orders_of(user).len();
        let reply = self.ask(user, text).await;
        let orders = self.orders_of(user);
        assert_eq!(
            orders.len(),
            before + 1,
            "no new order for {text:?}: {reply}"
        );
        let id = orders[0].id.clone();
        assert!(reply.contains(id.as_str()), "{reply}");
        id
    }

    /// `user` asks and no order may result; returns the answer.
    async fn no_new_order(&self, user: &str, text: &str) -> String {
        let before = self.orders_of(user).len();
        let reply = self.ask(user, text).await;
        assert_eq!(
            self.orders_of(user).len(),
            before,
            "{text:?} made an order: {reply}"
        );
        reply
    }
}

#[tokio::test]
async fn an_identical_open_request_is_answered_with_the_existing_order() {
    // No per-user limit here (0 = off): this test is about coalescing alone.
    let env = Env::new(|cfg| cfg.workflow.max_new_orders_per_user = 0).await;
    let first = env
        .new_order(ALICE, "申请主机 10.10.1.11 只读 4h 原因：排查线上问题")
        .await;

    // Asked again before the approval request went out: the same order, nothing new.
    let r = env
        .no_new_order(ALICE, "申请主机 10.10.1.11 只读 4h 原因：排查线上问题")
        .await;
    assert!(r.contains(&format!("你已有相同的申请 {first}")), "{r}");

    // Pending approval, asked in English with another duration and reason: still the same
    // request; the answer (in English, the language it was asked in) names who it waits for
    // and how to change it instead.
    env.drain().await;
    assert_eq!(env.order(&first).state, State::PendingApproval);
    let r = env
        .no_new_order(ALICE, "/apply host 10.10.1.11 readonly 3d reason: deploy")
        .await;
    assert!(
        r.contains(&format!("You already have the same request open: {first}")),
        "{r}"
    );
    assert!(r.contains("waiting for 李四 to approve"), "{r}");
    assert!(r.contains(&format!("/cancel {first}")), "{r}");

    // The same hosts in another order and spelling are the same targets.
    let pair = env
        .new_order(ALICE, "申请主机 10.10.1.11，10.10.1.12 只读 4h 原因：对账")
        .await;
    let r = env
        .no_new_order(
            ALICE,
            "申请主机 10.10.1.12 10.10.1.11 10.10.1.12 只读 1h 原因：再看看",
        )
        .await;
    assert!(r.contains(&format!("你已有相同的申请 {pair}")), "{r}");

    // Another role, or another requester, is another request.
    let ops = env
        .new_order(ALICE, "申请主机 10.10.1.11 运维 4h 原因：重启服务")
        .await;
    assert_ne!(ops, first);
    env.new_order(MALLORY, "申请主机 10.10.1.11 只读 4h 原因：排查线上问题")
        .await;

    // An account request is coalesced the same way.
    let account = env.new_order(ALICE, "申请账号").await;
    let r = env.no_new_order(ALICE, "/apply account").await;
    assert!(r.contains(account.as_str()), "{r}");

    // Approved and being granted is still open: answered with the order and its status.
    env.drain().await;
    env.say(BOSS, &format!("同意 {ops}")).await;
    assert_eq!(env.order(&ops).state, State::Approved);
    let r = env
        .no_new_order(ALICE, "申请主机 10.10.1.11 运维 8h 原因：重启服务")
        .await;
    assert!(r.contains(&format!("你已有相同的申请 {ops}（")), "{r}");
    assert!(!r.contains("等待"), "{r}");

    // Once it is closed (withdrawn here) the same request makes a new order.
    env.say(ALICE, &format!("取消 {first}")).await;
    assert_eq!(env.order(&first).state, State::Cancelled);
    let again = env
        .new_order(ALICE, "申请主机 10.10.1.11 只读 4h 原因：排查线上问题")
        .await;
    assert_ne!(again, first);
}

#[tokio::test]
async fn the_per_requester_limit_holds_across_a_restart_and_says_when_to_try_again() {
    // The defaults: 5 new orders per 10 minutes.
    let mut env = Env::new(|_| {}).await;
    let asks = [
        "申请主机 10.10.1.11 只读 4h 原因：一",
        "申请主机 10.10.1.11 运维 4h 原因：二",
        "申请主机 10.10.1.12 只读 4h 原因：三",
        "申请主机 10.10.1.12 运维 4h 原因：四",
        "申请账号",
    ];
    let mut made = Vec::new();
    for text in asks {
        made.push(env.new_order(ALICE, text).await);
        env.clock.advance(SignedDuration::from_mins(1));
    }

    // The sixth within ten minutes is refused, saying when one more fits: ten minutes after
    // the first (02:00 UTC = 10:00 in Asia/Shanghai).
    let sixth = "申请主机 10.10.1.21 只读 4h 原因：六";
    let r = env.no_new_order(ALICE, sixth).await;
    assert!(r.contains("你在 10分钟内已提交 5 个申请"), "{r}");
    assert!(
        r.contains("请在 2026-11-22 10:10 (Asia/Shanghai) 之后再试"),
        "{r}"
    );
    // Asking again for an open one is still answered with it (and costs nothing).
    let r = env
        .no_new_order(ALICE, "申请主机 10.10.1.11 只读 4h 原因：一")
        .await;
    assert!(r.contains(&format!("你已有相同的申请 {}", made[0])), "{r}");
    // Someone else is not held back by Alice's count.
    env.new_order(MALLORY, sixth).await;

    // A restart (a crash, even) does not reset the count; the answer follows the language
    // (Alice chooses English; her choice is stored, so it outlives the restart).
    env.no_new_order(ALICE, "/lang en").await;
    env.cfg.chat.language = Lang::En;
    env.crash_and_restart().await;
    let r = env.no_new_order(ALICE, sixth).await;
    assert!(
        r.contains("You have made 5 requests within 10 minutes"),
        "{r}"
    );
    assert!(
        r.contains("Try again after 2026-11-22 10:10 (Asia/Shanghai)"),
        "{r}"
    );

    // Withdrawn orders still count (withdraw-and-ask-again is the same load on approvers).
    env.say(ALICE, &format!("/cancel {}", made[1])).await;
    assert_eq!(env.order(&made[1]).state, State::Cancelled);
    env.no_new_order(ALICE, sixth).await;

    // At the time it named, the first order has left the window: exactly one more fits.
    env.clock
        .advance(SignedDuration::from_mins(10) - SignedDuration::from_mins(5));
    env.new_order(ALICE, sixth).await;
    let r = env
        .no_new_order(ALICE, "申请主机 10.10.1.21 运维 4h 原因：七")
        .await;
    assert!(r.contains("Try again after 2026-11-22 10:11"), "{r}");
}
