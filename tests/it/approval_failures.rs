//! Jobs that give up are never silent (issue 8.3), over real HTTP. An approval that cannot
//! start (a card template DingTalk does not know, a wrong OA process code, an OA start whose
//! answer was lost and whose resume then failed for good) leaves the order failed with
//! `/status` saying so, tells the requester and the admins what failed and what to fix, and
//! cleans up what it started. A leaver whose JumpServer user cannot be disabled reaches the
//! admins directly.
use crate::support::{bot_env_newtype, example_user, BotEnv};
use accessbot::domain::ids::OrderId;
use accessbot::domain::order::State;
use accessbot::domain::policy::ApprovalMode;
use accessbot::sandbox::dingtalk::{FaultKind, SimDingTalk};
use accessbot::sandbox::jumpserver::SimJumpServer;
use jiff::SignedDuration;
use std::sync::atomic::Ordering;

const ALICE: &str = "alice01";
const BOSS1: &str = "boss01";
const BOSS2: &str = "boss02";
const ADMIN: &str = "admin01";
const START: &str = "/v1.0/workflow/processInstances";
const QUERY: &str = "/v1.0/workflow/processes/instanceIds/query";

struct Env(BotEnv);
bot_env_newtype!(Env);

#[derive(Clone, Copy)]
enum Setup {
    /// Cards with a template id DingTalk does not have.
    UnknownCardTemplate,
    /// OA with a process code DingTalk does not have.
    WrongProcessCode,
    /// OA, correctly configured.
    Oa,
}

impl Env {
    async fn new(setup: Setup) -> Env {
        let users = [
            (ALICE, "张三"),
            (BOSS1, "李四"),
            (BOSS2, "王五"),
            (ADMIN, "管理员"),
        ]
        .map(|(id, name)| example_user(id, name));
        let seed = |dt: &SimDingTalk, _: &SimJumpServer| {
            dt.add_card_template("tpl-real");
            dt.add_process("JumpServer 访问申请", "PROC-ACCESS");
        };
        Env(BotEnv::new(users, seed, |cfg| {
            cfg.approval.default_approvers = vec![BOSS1.into(), BOSS2.into()];
            cfg.policy.admins = vec![ADMIN.into()];
            match setup {
                Setup::UnknownCardTemplate => {
                    cfg.cards.approval_template_id = "tpl-typo".into();
                    cfg.cards.callback_route_key = "accessbot".into();
                }
                Setup::WrongProcessCode => {
                    cfg.approval.mode = ApprovalMode::Oa;
                    cfg.approval.process_code = Some("PROC-TYPO".into());
                }
                Setup::Oa => {
                    cfg.approval.mode = ApprovalMode::Oa;
                    cfg.approval.process_code = Some("PROC-ACCESS".into());
                }
            }
        })
        .await)
    }

    async fn say(&self, user: &str, text: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let msg_id = format!("af{n}x{}", user.len());
        self.push_robot_text(user, &msg_id, text).await;
        msg_id
    }

    async fn alice_asks(&self) -> OrderId {
        self.say(ALICE, "申请主机 10.10.1.11 只读 4h 原因：排查")
            .await;
        self.orders_of(ALICE)[0].id.clone()
    }

    fn said_to(&self, user: &str) -> String {
        self.texts_to(user).join("\n---\n")
    }

    /// Runs what is due, past every retry back-off, until nothing is left.
    async fn settle(&self) {
        for _ in 0..6 {
            self.clock.advance(SignedDuration::from_mins(30));
            self.drain().await;
        }
    }

    async fn status(&self, id: &OrderId) -> String {
        let s = self.say(ALICE, &format!("状态 {id}")).await;
        self.reply(&s).await
    }
}

#[tokio::test]
async fn an_unknown_card_template_fails_the_order_and_says_what_to_fix() {
    let env = Env::new(Setup::UnknownCardTemplate).await;
    let id = env.alice_asks().await;
    env.settle().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Failed);
    assert_eq!(o.approval_refs.undelivered.len(), 2);
    let alice = env.said_to(ALICE);
    assert!(alice.contains("审批未能发起"), "{alice}");
    assert!(!alice.contains("等待"), "never told to wait: {alice}");
    let admin = env.said_to(ADMIN);
    assert!(admin.contains("templateNotExist"), "{admin}");
    assert!(admin.contains("[cards] approval_template_id"), "{admin}");
    assert!(env.status(&id).await.contains("审批发起失败"));
    assert!(env
        .jms
        .permissions()
        .iter()
        .all(|p| !p.name.contains(id.as_str())));
}

#[tokio::test]
async fn a_wrong_process_code_fails_the_order_and_says_what_to_fix() {
    let env = Env::new(Setup::WrongProcessCode).await;
    let id = env.alice_asks().await;
    env.settle().await;
    assert_eq!(env.order(&id).state, State::Failed);
    assert!(env.said_to(ALICE).contains("审批未能发起"));
    let admin = env.said_to(ADMIN);
    assert!(admin.contains("processCodeError"), "{admin}");
    assert!(admin.contains("[approval] process_code"), "{admin}");
    assert!(env.status(&id).await.contains("审批发起失败"));
}

#[tokio::test]
async fn a_resume_that_fails_for_good_terminates_the_orphaned_instance() {
    let env = Env::new(Setup::Oa).await;
    // DingTalk creates the instance but the answer is lost; the search that would find it on
    // the retry is then refused for good (the app lost the permission in between).
    env.dt.lose_next_response(START, 1, FaultKind::ServerError);
    let id = env.alice_asks().await;
    env.drain().await;
    assert_eq!(env.dt.approvals().len(), 1);
    assert_eq!(env.order(&id).approval_refs.oa_instance_id, None);
    env.dt.fail_next(QUERY, 1, FaultKind::PermissionDenied);
    env.settle().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Failed);
    // Clean-up found the instance and terminated it: it cannot be approved into nothing.
    let inst = &env.dt.approvals()[0];
    assert_eq!(inst.status, "TERMINATED");
    assert_eq!(
        o.approval_refs.oa_instance_id.as_deref(),
        Some(inst.instance_id.as_str())
    );
    let admin = env.said_to(ADMIN);
    assert!(admin.contains("已撤销钉钉中为此发起的审批实例"), "{admin}");
    assert!(env.said_to(ALICE).contains("审批未能发起"));
    // A late "agree" for it changes nothing.
    assert!(!env.dt.decide_approval(&inst.instance_id, true));
    env.settle().await;
    assert_eq!(env.order(&id).state, State::Failed);
    assert!(env.jms.permissions().is_empty());
}

#[tokio::test]
async fn a_leaver_whose_jumpserver_user_cannot_be_disabled_is_reported_to_the_admins() {
    let env = Env::new(Setup::Oa).await;
    // Alice is known to map to a JumpServer user once a request of hers was prepared.
    env.alice_asks().await;
    env.drain().await;
    // The bot account lost its right to change users: the next call is refused for good.
    env.jms.fail_next(1, 403);
    let ev = serde_json::json!({"EventType": "user_leave_org", "UserId": [ALICE], "eventId": "leave-af"});
    assert_eq!(env.push_event(ev).await, 200);
    env.settle().await;
    let admin = env.said_to(ADMIN);
    assert!(
        admin.contains("未能禁用") && admin.contains("手工禁用"),
        "{admin}"
    );
}
