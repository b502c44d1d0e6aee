//! The workflow over real HTTP: the bot (`Bot::start`) between the simulated DingTalk and the
//! simulated JumpServer, driven the way DingTalk drives it (signed robot pushes, signed card
//! callbacks, encrypted event pushes). Outbox and deadlines are driven step by step
//! (`workflow.run_workers = false`), so every assertion is about state, never about timing.
use crate::support::{bot_env_newtype, ding_user, BotEnv};
use accessbot::clock::Clock;
use accessbot::config::Config;
use accessbot::dispatch::Dispatch;
use accessbot::domain::ids::{DingUserId, OrderId};
use accessbot::domain::order::State;
use accessbot::inbound::{ApprovalEvent, ApprovalEventKind, ApprovalOutcome, Inbound};
use accessbot::sandbox::dingtalk::driver::{card_callback_body, card_signature_headers};
use accessbot::store::Store;
use accessbot::worker::outbox::JobRunner;
use accessbot::workflow::dispatcher::WorkflowDispatcher;
use jiff::SignedDuration;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

const ALICE: &str = "alice01";
const BOSS1: &str = "boss01";
const BOSS2: &str = "boss02";
const ADMIN: &str = "admin01";
const MALLORY: &str = "mallory01";

struct Env(BotEnv);
bot_env_newtype!(Env);

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Card mode with an approval card template.
    Cards,
    /// Card mode without a template: action-card messages with dtmd:// buttons.
    Text,
    Oa,
}

/// The mode-specific part of the config.
fn configure(cfg: &mut Config, mode: Mode) {
    cfg.approval.default_approvers = vec![BOSS1.into(), BOSS2.into()];
    cfg.policy.admins = vec![ADMIN.into()];
    match mode {
        Mode::Cards => {
            cfg.cards.approval_template_id = "tpl-approval".into();
            cfg.cards.callback_route_key = "accessbot".into();
        }
        Mode::Text => {}
        Mode::Oa => {
            cfg.approval.mode = accessbot::domain::policy::ApprovalMode::Oa;
            cfg.approval.process_code = Some("PROC-ACCESS".into());
        }
    }
}

impl Env {
    async fn new(mode: Mode) -> Env {
        let users = [
            (ALICE, "张三", "fx-alice@example.com"),
            (BOSS1, "李四", "boss01@example.com"),
            (BOSS2, "王五", "boss02@example.com"),
            (ADMIN, "管理员", "admin01@example.com"),
            (MALLORY, "路人", "mallory@example.com"),
        ]
        .map(|(id, name, mail)| ding_user(id, name, mail));
        Env(BotEnv::new(users, |_, _| {}, |cfg| configure(cfg, mode)).await)
    }

    /// A user's 1:1 message to the robot; returns the session id its replies go to.
    async fn say(&self, user: &str, text: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let msg_id = format!("msg{n}x{}", user.len());
        self.push_robot_text(user, &msg_id, text).await;
        msg_id
    }

    async fn ask(&self, user: &str, text: &str) -> String {
        let s = self.say(user, text).await;
        self.reply(&s).await
    }

    /// A signed tap whose action id is the button's `action` param (one id per button).
    async fn tap(&self, track: &str, user: &str, params: Value) -> (u16, Value) {
        let action = params
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("approve")
            .to_string();
        self.tap_ids(track, user, &[action.as_str()], params).await
    }

    /// A signed tap with the given `actionIds` (a template may give every button one id).
    async fn tap_ids(
        &self,
        track: &str,
        user: &str,
        action_ids: &[&str],
        params: Value,
    ) -> (u16, Value) {
        let Value::Object(p) = params else {
            panic!("params must be an object")
        };
        let body = card_callback_body(track, user, action_ids, p);
        let mut req = reqwest::Client::new()
            .post(format!("{}/dingtalk/cards", self.bot().url()))
            .json(&body);
        for (k, v) in card_signature_headers(
            self.cfg.dingtalk.card_callback_secret.expose(),
            self.dt.stamp(),
        ) {
            req = req.header(k, v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    fn count_to(&self, user: &str, needle: &str) -> usize {
        self.texts_to(user)
            .iter()
            .filter(|t| t.contains(needle))
            .count()
    }

    /// `count_to` once `n` such messages arrived (they are sent after the acknowledgement);
    /// bounded, generous for a loaded CI machine.
    async fn count_to_reaching(&self, user: &str, needle: &str, n: usize) -> usize {
        for _ in 0..1000 {
            if self.count_to(user, needle) >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.count_to(user, needle)
    }

    /// Alice asks for read-only access to an existing host; returns the order, submitted and
    /// with its approval requests sent.
    async fn alice_requests(&self) -> OrderId {
        let before = self.orders_of(ALICE).len();
        let r = self
            .ask(ALICE, "申请主机 10.10.1.11 只读 4h 原因：排查线上问题")
            .await;
        let orders = self.orders_of(ALICE);
        assert_eq!(orders.len(), before + 1, "no order created; reply: {r}");
        let id = orders[0].id.clone();
        assert!(r.contains(id.as_str()), "{r}");
        self.drain().await;
        assert_eq!(self.order(&id).state, State::PendingApproval);
        id
    }
}

fn approve_params(id: &OrderId) -> Value {
    json!({"action": "approve", "order_id": id.as_str()})
}

const GRANTED: &str = "权限已开通";

#[tokio::test]
async fn card_approval_grants_once_despite_duplicate_and_concurrent_taps() {
    let env = Env::new(Mode::Cards).await;
    let id = env.alice_requests().await;
    let o = env.order(&id);
    assert_eq!(o.jms_username, "fx-alice");
    let preview = o.preview.clone().unwrap();
    assert!(preview.user_exists);
    assert_eq!(preview.hosts_existing, vec!["10.10.1.11".to_string()]);
    assert!(
        env.count_to(ALICE, "申请已提交") == 1,
        "{:?}",
        env.texts_to(ALICE)
    );

    // Each approver has a card keyed by the order; it shows the JumpServer change.
    let t1 = o.card_track_id(&DingUserId::new(BOSS1));
    let t2 = o.card_track_id(&DingUserId::new(BOSS2));
    let card = env.dt.card(&t1).expect("approval card delivered");
    assert_eq!(
        card.params.get("order_id").map(String::as_str),
        Some(id.as_str())
    );
    assert_eq!(
        card.params.get("status").map(String::as_str),
        Some("pending")
    );
    assert!(card
        .params
        .get("change")
        .is_some_and(|c| c.contains("10.10.1.11")));
    assert!(env.dt.card(&o.requester_card_track_id()).is_some());

    // Someone who is not an approver taps: refused, nothing changes.
    let (st, _) = env.tap(&t1, MALLORY, approve_params(&id)).await;
    assert_eq!(st, 200);
    assert_eq!(env.order(&id).state, State::PendingApproval);
    // The requester cannot approve their own request either.
    let (_, _) = env
        .tap(&o.requester_card_track_id(), ALICE, approve_params(&id))
        .await;
    assert_eq!(env.order(&id).state, State::PendingApproval);

    // Both approvers tap at the same moment: exactly one decision is recorded.
    let (a, b) = tokio::join!(
        env.tap(&t1, BOSS1, approve_params(&id)),
        env.tap(&t2, BOSS2, approve_params(&id))
    );
    assert_eq!((a.0, b.0), (200, 200));
    let decided = env.order(&id);
    assert_eq!(decided.state, State::Approved);
    let winner = decided.decided_by.clone().unwrap();
    assert!(winner.as_str() == BOSS1 || winner.as_str() == BOSS2);
    // The tapper's own card is updated by the callback response.
    let update = if winner.as_str() == BOSS1 { &a.1 } else { &b.1 };
    assert_eq!(update["cardData"]["cardParamMap"]["status"], "approved");
    let version = decided.version;

    // A redelivered tap changes nothing.
    let (st, _) = env.tap(&t1, BOSS1, approve_params(&id)).await;
    assert_eq!(st, 200);
    assert_eq!(env.order(&id).version, version);

    env.drain().await;
    let done = env.order(&id);
    assert_eq!(done.state, State::Active, "{:?}", done.failure);
    assert_eq!(env.permissions_named(&done.permission_name()), 1);
    assert_eq!(env.count_to(ALICE, GRANTED), 1, "{:?}", env.texts_to(ALICE));
    // Every approver's card and the requester's card now show the decision.
    for t in [&t1, &t2, &o.requester_card_track_id()] {
        let c = env.dt.card(t).unwrap();
        assert_eq!(
            c.params.get("status").map(String::as_str),
            Some("approved"),
            "{t}"
        );
        assert_eq!(
            c.params.get("buttons_visible").map(String::as_str),
            Some("false")
        );
        assert!(c.params.get("decided_by").is_some_and(|d| !d.is_empty()));
    }
    // The window starts at approval and the grant says until when.
    let w = done.window.unwrap();
    assert_eq!(w.end.duration_since(w.start), SignedDuration::from_hours(4));
    let my = env.ask(ALICE, "我的权限").await;
    assert!(my.contains(id.as_str()) && my.contains("生效中"), "{my}");

    // Running the outbox again re-runs nothing that could grant twice.
    env.drain().await;
    assert_eq!(env.permissions_named(&done.permission_name()), 1);
    assert_eq!(env.count_to(ALICE, GRANTED), 1);
}

const NEED_REASON: &str = "拒绝时请填写原因";

fn reject_params(id: &OrderId, reason: &str) -> Value {
    json!({"action": "reject", "order_id": id.as_str(), "reject_reason": reason})
}

#[tokio::test]
async fn a_refused_reject_does_not_swallow_the_corrected_reject() {
    let env = Env::new(Mode::Cards).await;
    let id = env.alice_requests().await;
    let t1 = env.order(&id).card_track_id(&DingUserId::new(BOSS1));
    // Reject without a reason, twice: refused each time (the second is judged again, not
    // acknowledged silently as a repeat), and nothing changes.
    for n in 1..=2 {
        let (st, body) = env.tap(&t1, BOSS1, reject_params(&id, "")).await;
        assert_eq!((st, &body), (200, &json!({})));
        assert_eq!(env.count_to_reaching(BOSS1, NEED_REASON, n).await, n);
        assert_eq!(env.order(&id).state, State::PendingApproval);
    }
    // The corrected tap is a different input: it decides.
    let (st, body) = env.tap(&t1, BOSS1, reject_params(&id, "不需要")).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["cardData"]["cardParamMap"]["status"], "rejected",
        "{body}"
    );
    let o = env.order(&id);
    assert_eq!(o.state, State::Rejected);
    assert_eq!(o.decision_reason.as_deref(), Some("不需要"));
    assert_eq!(o.decided_by, Some(DingUserId::new(BOSS1)));
}

#[tokio::test]
async fn with_one_action_id_for_both_buttons_a_refused_reject_does_not_swallow_approve() {
    let env = Env::new(Mode::Cards).await;
    let id = env.alice_requests().await;
    let t1 = env.order(&id).card_track_id(&DingUserId::new(BOSS1));
    let (st, _) = env
        .tap_ids(&t1, BOSS1, &["decide"], reject_params(&id, ""))
        .await;
    assert_eq!(st, 200);
    assert_eq!(env.count_to_reaching(BOSS1, NEED_REASON, 1).await, 1);
    assert_eq!(env.order(&id).state, State::PendingApproval);
    let (st, body) = env
        .tap_ids(&t1, BOSS1, &["decide"], approve_params(&id))
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["cardData"]["cardParamMap"]["status"], "approved",
        "{body}"
    );
    assert_eq!(env.order(&id).state, State::Approved);
    // The approve tap itself is still de-duplicated: its redelivery changes nothing.
    let version = env.order(&id).version;
    let (st, _) = env
        .tap_ids(&t1, BOSS1, &["decide"], approve_params(&id))
        .await;
    assert_eq!(st, 200);
    assert_eq!(env.order(&id).version, version);
}

/// The edge's done marks are read back after a crash: a tap DingTalk redelivers to the new
/// process is acknowledged as a duplicate by the edge itself, before the workflow sees it.
#[tokio::test]
async fn a_delivery_redelivered_after_a_crash_is_a_duplicate_at_the_edge() {
    let mut env = Env::new(Mode::Cards).await;
    let id = env.alice_requests().await;
    let t1 = env.order(&id).card_track_id(&DingUserId::new(BOSS1));
    env.tap(&t1, BOSS1, approve_params(&id)).await;
    assert_eq!(env.order(&id).state, State::Approved);
    let version = env.order(&id).version;
    env.crash_and_restart().await;
    let (st, _) = env.tap(&t1, BOSS1, approve_params(&id)).await;
    assert_eq!(st, 200);
    let stats = env.bot().ingress().dedupe.stats();
    assert_eq!(
        stats.duplicates.load(Ordering::Relaxed),
        1,
        "the mark came back"
    );
    assert_eq!(env.order(&id).version, version);
}

#[tokio::test]
async fn crash_after_approval_before_grant_loses_nothing() {
    let mut env = Env::new(Mode::Cards).await;
    let id = env.alice_requests().await;
    let t1 = env.order(&id).card_track_id(&DingUserId::new(BOSS1));
    env.tap(&t1, BOSS1, approve_params(&id)).await;
    assert_eq!(env.order(&id).state, State::Approved);
    // Killed before the Grant job ran.
    env.crash_and_restart().await;
    assert_eq!(
        env.order(&id).state,
        State::Approved,
        "approval survived the crash"
    );
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Active);
    assert_eq!(env.permissions_named(&o.permission_name()), 1);
    assert_eq!(env.count_to(ALICE, GRANTED), 1);
}

#[tokio::test]
async fn crash_after_grant_before_its_job_completed_grants_and_tells_once() {
    let mut env = Env::new(Mode::Cards).await;
    let id = env.alice_requests().await;
    let t1 = env.order(&id).card_track_id(&DingUserId::new(BOSS1));
    env.tap(&t1, BOSS1, approve_params(&id)).await;
    // The Grant job runs (its effects happen) but the process dies before the outbox marks
    // it done.
    let outbox = env.bot().outbox().unwrap().clone();
    let job = outbox
        .pending_for_order(&id)
        .unwrap()
        .into_iter()
        .find(|j| j.kind == accessbot::domain::jobs::JobKind::Grant)
        .expect("grant job queued");
    let wf = env.bot().workflow().unwrap().clone();
    wf.run(&job).await.unwrap();
    assert_eq!(env.order(&id).state, State::Active);
    drop(wf);
    drop(outbox);
    env.crash_and_restart().await;
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Active);
    assert_eq!(env.permissions_named(&o.permission_name()), 1);
    assert_eq!(env.count_to(ALICE, GRANTED), 1, "{:?}", env.texts_to(ALICE));
    assert!(env
        .bot()
        .outbox()
        .unwrap()
        .pending_for_order(&id)
        .unwrap()
        .is_empty());
}

fn bpms(instance: &str, kind: &str, result: Option<&str>) -> Value {
    let mut v = json!({
        "EventType": "bpms_instance_change",
        "processInstanceId": instance,
        "processCode": "PROC-ACCESS",
        "type": kind,
        "staffId": ALICE,
        "eventId": format!("ev-{instance}-{kind}"),
    });
    if let Some(r) = result {
        v["result"] = json!(r);
    }
    v
}

#[tokio::test]
async fn oa_approval_agree_is_applied_once_and_refuse_rejects() {
    let env = Env::new(Mode::Oa).await;
    let id = env.alice_requests().await;
    let o = env.order(&id);
    let inst = o
        .approval_refs
        .oa_instance_id
        .clone()
        .expect("instance recorded");
    let sim = env.dt.approval(&inst).expect("OA instance started");
    assert_eq!(sim.process_code, "PROC-ACCESS");
    assert!(
        sim.form.iter().any(|(_, v)| v.contains("10.10.1.11")),
        "{:?}",
        sim.form
    );

    // An event for an instance we never started is acknowledged and ignored.
    assert_eq!(
        env.push_event(bpms("proc-unknown", "finish", Some("agree")))
            .await,
        200
    );
    assert_eq!(env.order(&id).state, State::PendingApproval);

    assert!(env.dt.decide_approval(&inst, true));
    assert_eq!(
        env.push_event(bpms(&inst, "finish", Some("agree"))).await,
        200
    );
    // DingTalk redelivers the same change.
    assert_eq!(
        env.push_event(bpms(&inst, "finish", Some("agree"))).await,
        200
    );
    // Even past the edge's dedupe, the workflow applies it once.
    let wf = env.bot().workflow().unwrap().clone();
    let d = WorkflowDispatcher::new(wf);
    let again = Inbound::Approval(ApprovalEvent {
        event_id: Some("other-id".into()),
        process_instance_id: inst.clone(),
        process_code: None,
        kind: ApprovalEventKind::Finish,
        result: Some(ApprovalOutcome::Agree),
        staff_id: None,
        finish_time_ms: None,
    });
    let v = env.order(&id).version;
    d.handle(again).await.unwrap();
    assert_eq!(env.order(&id).version, v);

    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Active);
    assert_eq!(env.permissions_named(&o.permission_name()), 1);
    assert_eq!(env.count_to(ALICE, GRANTED), 1);

    // A second request is refused in OA.
    let id2 = env.alice_requests().await;
    let inst2 = env
        .order(&id2)
        .approval_refs
        .oa_instance_id
        .clone()
        .unwrap();
    assert_ne!(inst, inst2);
    assert!(env.dt.decide_approval(&inst2, false));
    // The sim pushes the result too; while that delivery (which reads the instance's records)
    // is in flight, this one is answered 409 and redelivered, as DingTalk does.
    let mut code = 0;
    for _ in 0..100 {
        code = env.push_event(bpms(&inst2, "finish", Some("refuse"))).await;
        if code != 409 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(code, 200);
    assert_eq!(env.order(&id2).state, State::Rejected);
    env.drain().await;
    assert_eq!(env.permissions_named(&env.order(&id2).permission_name()), 0);
    assert_eq!(env.count_to(ALICE, "拒绝了申请"), 1);
    // Approving by text is refused for an OA order.
    let r = env.ask(BOSS1, &format!("同意 {}", id2)).await;
    assert!(r.contains("已由"), "{r}");
}

#[tokio::test]
async fn text_mode_approval_with_dtmd_buttons_and_refusals() {
    let env = Env::new(Mode::Text).await;
    let id = env.alice_requests().await;
    // Each approver got an action card whose buttons send the approve / reject commands.
    let msgs = env.dt.messages_to(&DingUserId::new(BOSS1));
    let card = msgs
        .iter()
        .find(|m| m.msg_key.starts_with("sampleActionCard"))
        .expect("action card to the approver");
    let s = card.param.to_string();
    assert!(
        s.contains("dtmd://dingtalkclient/sendMessage?content="),
        "{s}"
    );
    assert!(s.contains(id.as_str()) && s.contains("10.10.1.11"), "{s}");

    // The requester may not approve their own request (policy routes it away from them).
    let r = env.ask(ALICE, &format!("同意 {id}")).await;
    assert!(r.contains("审批人") || r.contains("不能审批自己"), "{r}");
    // Someone who is not an approver is refused.
    let r = env.ask(MALLORY, &format!("同意 {id}")).await;
    assert!(r.contains("不是申请"), "{r}");
    assert_eq!(env.order(&id).state, State::PendingApproval);
    // The requester and approvers can see the status; others cannot.
    let r = env.ask(BOSS2, &format!("状态 {id}")).await;
    assert!(r.contains("待审批"), "{r}");
    let r = env.ask(MALLORY, &format!("状态 {id}")).await;
    assert!(r.contains("无权"), "{r}");

    let r = env.ask(BOSS1, &format!("同意 {id}")).await;
    assert!(r.contains("已同意"), "{r}");
    let r = env.ask(BOSS2, &format!("拒绝 {id} 太晚了")).await;
    assert!(r.contains("已由"), "{r}");
    env.drain().await;
    assert_eq!(env.order(&id).state, State::Active);
    assert_eq!(env.count_to(ALICE, GRANTED), 1);
    // The other approver is told who decided.
    assert_eq!(env.count_to(BOSS2, "已由"), 1, "{:?}", env.texts_to(BOSS2));

    // Admin commands are refused to others; /sync queues the index rebuild.
    let r = env.ask(ALICE, &format!("/revoke {id}")).await;
    assert!(r.contains("仅限管理员"), "{r}");
    let r = env.ask(ADMIN, "/sync").await;
    assert!(r.contains("已开始"), "{r}");
    // Unknown command: what was wrong and an example.
    let r = env.ask(ALICE, "/frobnicate").await;
    assert!(!r.is_empty());

    // Admin revokes: the permission disappears, the requester is told.
    let r = env.ask(ADMIN, &format!("/revoke {id}")).await;
    assert!(r.contains(id.as_str()), "{r}");
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Revoked);
    // Deactivated (kept in JumpServer for its records), no longer valid.
    assert_eq!(env.permissions_named(&o.permission_name()), 1);
    assert_eq!(env.active_permissions_named(&o.permission_name()), 0);
    assert_eq!(env.count_to(ALICE, "提前收回"), 1);
    assert_eq!(env.count_to(ALICE, "授权已停用"), 1);
}

#[tokio::test]
async fn dialog_asks_one_thing_at_a_time_and_cancel_withdraws() {
    let env = Env::new(Mode::Text).await;
    let r = env.ask(ALICE, "申请主机 10.10.1.12").await;
    assert!(!r.is_empty());
    assert!(env.orders_of(ALICE).is_empty());
    env.ask(ALICE, "只读").await;
    env.ask(ALICE, "2h").await;
    let r = env.ask(ALICE, "查看日志").await;
    let orders = env.orders_of(ALICE);
    assert_eq!(orders.len(), 1, "{r}");
    let id = orders[0].id.clone();
    env.drain().await;
    // Only the requester can withdraw, and only while pending.
    let r = env.ask(BOSS1, &format!("取消 {id}")).await;
    assert!(r.contains("无权"), "{r}");
    env.say(ALICE, &format!("取消 {id}")).await;
    assert_eq!(env.order(&id).state, State::Cancelled);
    env.drain().await;
    assert_eq!(env.count_to(ALICE, "已撤回"), 1);
    // A policy violation is explained before anything is recorded.
    let r = env
        .ask(ALICE, "申请主机 10.10.1.12 运维 30d 原因：太久")
        .await;
    assert!(!r.is_empty());
    assert_eq!(env.orders_of(ALICE).len(), 1);
}

#[tokio::test]
async fn expiry_reminds_then_revokes_and_leaver_is_disabled() {
    let env = Env::new(Mode::Text).await;
    let id = env.alice_requests().await;
    env.ask(BOSS1, &format!("同意 {id}")).await;
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Active);
    // 3h30 later: one reminder with a one-tap renewal.
    env.clock.advance(SignedDuration::from_mins(210));
    env.bot().fire_deadlines().await;
    env.drain().await;
    let reminders: Vec<String> = env
        .texts_to(ALICE)
        .into_iter()
        .filter(|t| t.contains("即将到期") || t.contains("到期（"))
        .collect();
    assert_eq!(reminders.len(), 1, "{:?}", env.texts_to(ALICE));
    assert!(reminders[0].contains("dtmd://"), "{}", reminders[0]);
    // Past the end: expired and removed from JumpServer.
    env.clock.advance(SignedDuration::from_mins(31));
    env.bot().fire_deadlines().await;
    env.drain().await;
    assert_eq!(env.order(&id).state, State::Expired);
    assert_eq!(env.active_permissions_named(&o.permission_name()), 0);
    assert_eq!(env.count_to(ALICE, "已到期。"), 1);
    assert_eq!(env.count_to(ALICE, "授权已停用"), 1);

    // A new grant, then alice leaves: revoked and her JumpServer user disabled.
    let id2 = env.alice_requests().await;
    env.ask(BOSS1, &format!("同意 {id2}")).await;
    env.drain().await;
    assert_eq!(env.order(&id2).state, State::Active);
    let ev = json!({"EventType": "user_leave_org", "UserId": [ALICE], "eventId": "leave-1"});
    assert_eq!(env.push_event(ev).await, 200);
    env.drain().await;
    assert_eq!(env.order(&id2).state, State::Revoked);
    assert_eq!(
        env.active_permissions_named(&env.order(&id2).permission_name()),
        0
    );
    let alice = env
        .jms
        .users()
        .into_iter()
        .find(|u| u.username == "fx-alice")
        .unwrap();
    assert!(!alice.is_active);
}

#[tokio::test]
async fn bare_apply_sends_the_request_form_card_and_its_submit_becomes_an_order() {
    let mut env = Env::new(Mode::Cards).await;
    env.cfg.cards.request_template_id = "tpl-request".into();
    env.crash_and_restart().await;
    let r = env.ask(ALICE, "申请主机").await;
    assert!(!r.is_empty());
    let mut track = None;
    for _ in 0..500 {
        track = env
            .dt
            .calls_to("/v1.0/card/instances/createAndDeliver")
            .iter()
            .find(|c| c.body["cardTemplateId"] == "tpl-request")
            .and_then(|c| c.body["outTrackId"].as_str().map(str::to_string));
        if track.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let track = track.expect("request form card delivered");
    let form = env.dt.card(&track).unwrap();
    assert_eq!(
        form.params.get("submitted").map(String::as_str),
        Some("false")
    );
    // Someone else cannot submit alice's form.
    let submit = json!({"action": "submit", "targets": "10.10.1.12", "role": "readonly",
        "duration": "2h", "reason": "检查日志"});
    env.tap(&track, MALLORY, submit.clone()).await;
    assert!(env.orders_of(MALLORY).is_empty() && env.orders_of(ALICE).is_empty());
    let (st, body) = env.tap(&track, ALICE, submit).await;
    assert_eq!(st, 200);
    let orders = env.orders_of(ALICE);
    assert_eq!(orders.len(), 1);
    assert_eq!(body["cardData"]["cardParamMap"]["submitted"], "true");
    assert_eq!(
        body["cardData"]["cardParamMap"]["order_id"],
        orders[0].id.as_str()
    );
    env.drain().await;
    assert_eq!(env.order(&orders[0].id).state, State::PendingApproval);
}

#[tokio::test]
async fn jumpserver_outage_is_retried_with_backoff_and_survives_a_restart() {
    let mut env = Env::new(Mode::Text).await;
    let id = env.alice_requests().await;
    env.ask(BOSS1, &format!("同意 {id}")).await;
    // JumpServer answers 502 to everything for a while.
    env.jms.fail_next(1000, 502);
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::FailedRetrying, "{:?}", o.failure);
    assert_eq!(env.count_to(ALICE, "暂时连不上 JumpServer"), 1);
    env.jms.fail_next(0, 502);
    env.crash_and_restart().await;
    // Nothing runs before the backoff elapses; then the grant goes through.
    assert_eq!(env.bot().run_outbox_once().await.unwrap().ran, 0);
    env.clock.advance(SignedDuration::from_mins(30));
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Active, "{:?}", o.failure);
    assert_eq!(env.permissions_named(&o.permission_name()), 1);
    assert_eq!(env.count_to(ALICE, GRANTED), 1);
}

#[tokio::test]
async fn two_approvals_required_each_approver_once() {
    let mut env = Env::new(Mode::Text).await;
    env.cfg.policy.approvals_required = 2;
    env.crash_and_restart().await;
    let id = env.alice_requests().await;
    let r = env.ask(BOSS1, &format!("同意 {id}")).await;
    assert!(r.contains("还需要 1 位"), "{r}");
    assert_eq!(env.order(&id).state, State::PendingApproval);
    let r = env.ask(BOSS1, &format!("/approve {id}")).await;
    assert!(r.contains("已经同意过"), "{r}");
    assert_eq!(env.order(&id).approvals.len(), 1);
    env.ask(BOSS2, &format!("同意 {id}")).await;
    assert_eq!(env.order(&id).state, State::Approved);
    env.drain().await;
    assert_eq!(env.order(&id).state, State::Active);
    assert_eq!(env.count_to(ALICE, "还需要 1 位审批人"), 1);
    assert_eq!(env.count_to(ALICE, GRANTED), 1);
}

#[tokio::test]
async fn account_request_creates_the_user_and_identity_failures_are_explained() {
    let env = Env::new(Mode::Text).await;
    env.dt
        .add_user(ding_user("newbie01", "新人", "newbie@example.com"));
    let mut nomail = ding_user("nomail01", "无邮箱", "x@example.com");
    nomail.email = None;
    env.dt.add_user(nomail);

    // Alice already has fx-alice: nothing to approve.
    env.ask(ALICE, "申请账号").await;
    env.drain().await;
    assert_eq!(env.count_to(ALICE, "你已经有 JumpServer 账号：fx-alice"), 1);
    assert_eq!(env.orders_of(ALICE)[0].state, State::Cancelled);

    env.ask("newbie01", "申请账号").await;
    env.drain().await;
    let id = env.orders_of("newbie01")[0].id.clone();
    assert_eq!(env.order(&id).state, State::PendingApproval);
    env.ask(BOSS1, &format!("同意 {id}")).await;
    env.drain().await;
    assert_eq!(env.order(&id).state, State::Active);
    assert!(env.jms.users().iter().any(|u| u.username == "newbie"));
    assert_eq!(env.count_to("newbie01", "JumpServer 账号已就绪：newbie"), 1);

    // No e-mail: the identity rule cannot map the person; they are told in plain words.
    env.ask("nomail01", "申请主机 10.10.1.11 只读 1h 原因：看看")
        .await;
    env.drain().await;
    let o = &env.orders_of("nomail01")[0];
    assert_eq!(o.state, State::Cancelled);
    assert_eq!(
        env.count_to("nomail01", "无法办理"),
        1,
        "{:?}",
        env.texts_to("nomail01")
    );
}

#[tokio::test]
async fn permanent_grant_failure_tells_requester_and_admins() {
    let mut env = Env::new(Mode::Text).await;
    env.cfg.policy.auto_create_user = false;
    env.crash_and_restart().await;
    env.dt
        .add_user(ding_user("newbie01", "新人", "newbie@example.com"));
    env.ask("newbie01", "申请主机 10.10.1.11 只读 1h 原因：看看")
        .await;
    env.drain().await;
    let id = env.orders_of("newbie01")[0].id.clone();
    let preview = env.order(&id).preview.unwrap();
    assert!(!preview.user_exists);
    env.ask(BOSS1, &format!("同意 {id}")).await;
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Failed);
    assert_eq!(env.permissions_named(&o.permission_name()), 0);
    assert_eq!(env.count_to("newbie01", "你还没有 JumpServer 账号"), 1);
    assert_eq!(env.count_to(ADMIN, "开通失败"), 1);
    let r = env.ask("newbie01", &format!("状态 {id}")).await;
    assert!(r.contains("开通失败"), "{r}");
}

#[tokio::test]
async fn approval_timeout_closes_and_renew_and_who_has_work() {
    let env = Env::new(Mode::Text).await;
    let stale = env.alice_requests().await;
    env.clock.advance(SignedDuration::from_hours(25));
    env.bot().fire_deadlines().await;
    env.drain().await;
    assert_eq!(env.order(&stale).state, State::Cancelled);
    assert_eq!(env.count_to(ALICE, "长时间无人审批"), 1);

    let id = env.alice_requests().await;
    env.ask(BOSS1, &format!("同意 {id}")).await;
    env.drain().await;
    // Renewal beyond the role's maximum is refused; within it, JumpServer follows.
    let r = env.ask(ALICE, &format!("/renew {id} 60d")).await;
    assert!(r.contains("不能续期"), "{r}");
    let old_end = env.order(&id).window.unwrap().end;
    env.say(ALICE, &format!("/renew {id} 8h")).await;
    env.drain().await;
    let o = env.order(&id);
    let end = o.window.unwrap().end;
    // From the current end: a renewal never shortens what is left.
    assert_eq!(end, old_end + SignedDuration::from_hours(8));
    let perm = env
        .jms
        .permissions()
        .into_iter()
        .find(|p| p.name == o.permission_name())
        .unwrap();
    assert_eq!(perm.date_expired.as_second(), end.as_second());
    assert_eq!(env.count_to(ALICE, "已续期"), 1);

    let r = env.ask(ADMIN, "/who-has 10.10.1.11").await;
    assert!(r.contains(&o.permission_name()), "{r}");
    let r = env.ask(ADMIN, "/who-has fx-alice").await;
    assert!(r.contains("10.10.1.11"), "{r}");
}

#[tokio::test]
async fn unidentified_sender_and_oa_withdrawal() {
    let env = Env::new(Mode::Oa).await;
    let r = env.ask("", "帮助").await;
    assert!(r.contains("无法识别"), "{r}");
    let id = env.alice_requests().await;
    let inst = env.order(&id).approval_refs.oa_instance_id.clone().unwrap();
    env.say(ALICE, &format!("取消 {id}")).await;
    assert_eq!(env.order(&id).state, State::Cancelled);
    // The sim refuses a terminate within 15 s of the start: move past it.
    env.clock.advance(SignedDuration::from_secs(20));
    env.drain().await;
    assert_eq!(
        env.dt.approval(&inst).map(|a| a.status),
        Some("TERMINATED".to_string())
    );
}

#[tokio::test]
async fn a_lost_oa_event_is_found_by_polling_at_the_reminder() {
    let env = Env::new(Mode::Oa).await;
    let id = env.alice_requests().await;
    let inst = env.order(&id).approval_refs.oa_instance_id.clone().unwrap();
    // Decided in DingTalk, but the push never reaches the bot.
    assert!(env.dt.decide_approval(&inst, true));
    env.clock.advance(SignedDuration::from_hours(3));
    env.bot().fire_deadlines().await;
    assert_eq!(env.order(&id).state, State::Approved);
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Active);
    assert_eq!(env.permissions_named(&o.permission_name()), 1);
    // The late push changes nothing.
    assert_eq!(
        env.push_event(bpms(&inst, "finish", Some("agree"))).await,
        200
    );
    env.drain().await;
    assert_eq!(env.count_to(ALICE, GRANTED), 1);
}

#[tokio::test]
async fn english_chat_runs_the_same_flow() {
    let mut env = Env::new(Mode::Text).await;
    env.cfg.chat.language = accessbot::chat::text::Lang::En;
    env.crash_and_restart().await;
    let help = env.ask(ADMIN, "/help").await;
    assert!(help.contains("/who-has"), "{help}");
    let help = env.ask(ALICE, "/help").await;
    assert!(
        !help.contains("/who-has"),
        "admin commands only for admins: {help}"
    );
    let r = env
        .ask(
            ALICE,
            "/apply host 10.10.1.11 readonly 4h reason: debugging",
        )
        .await;
    let id = env.orders_of(ALICE)[0].id.clone();
    assert!(r.contains(id.as_str()), "{r}");
    env.drain().await;
    let r = env.ask(BOSS2, &format!("/approve {id}")).await;
    assert!(r.contains("Approved"), "{r}");
    env.drain().await;
    assert_eq!(
        env.count_to(ALICE, "access is ready"),
        1,
        "{:?}",
        env.texts_to(ALICE)
    );
    let r = env.ask(ALICE, "/my").await;
    assert!(r.contains("active"), "{r}");
}

#[tokio::test]
async fn a_system_request_routes_to_its_approvers_and_grants_its_node() {
    let mut env = Env::new(Mode::Text).await;
    env.cfg.systems = vec![accessbot::domain::policy::SystemConfig {
        name: "支付系统".into(),
        aliases: vec!["payments".into()],
        node: Some("/Default/PaymentSystem".into()),
        approvers: vec![BOSS2.into()],
        ..Default::default()
    }];
    env.crash_and_restart().await;
    // A system and a single host in one request would be two permissions: refused.
    let r = env
        .ask(ALICE, "申请主机 支付系统 10.10.1.21 只读 1h 原因：对账")
        .await;
    assert!(r.contains("分开申请"), "{r}");
    assert!(env.orders_of(ALICE).is_empty());
    env.ask(ALICE, "申请主机 payments 只读 1h 原因：对账").await;
    env.drain().await;
    let o = env.orders_of(ALICE).remove(0);
    assert_eq!(o.approvers, vec![DingUserId::new(BOSS2)]);
    let p = o.preview.clone().unwrap();
    assert_eq!(p.node, "PaymentSystem");
    assert!(p.whole_node);
    // Only the system's approver was asked.
    assert!(env.dt.messages_to(&DingUserId::new(BOSS1)).is_empty());
    assert_eq!(env.dt.messages_to(&DingUserId::new(BOSS2)).len(), 1);
}

/// Waits (bounded) until the order reaches `state`; background workers do the work.
async fn until_state(env: &Env, id: &OrderId, state: State) {
    for _ in 0..1000 {
        if env.order(id).state == state {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("order {id} never reached {state}: {:?}", env.order(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_workers_run_the_flow_and_stop_on_shutdown() {
    let mut env = Env::new(Mode::Text).await;
    env.cfg.workflow.run_workers = true;
    env.crash_and_restart().await;
    env.ask(ALICE, "申请主机 10.10.1.12 只读 2h 原因：巡检")
        .await;
    let id = env.orders_of(ALICE)[0].id.clone();
    until_state(&env, &id, State::PendingApproval).await;
    env.ask(BOSS1, &format!("同意 {id}")).await;
    until_state(&env, &id, State::Active).await;
    let o = env.order(&id);
    assert_eq!(env.permissions_named(&o.permission_name()), 1);
    let bot = env.bot.take().unwrap();
    bot.shutdown().await;
    // Shut down cleanly: the workers stopped and the directory opens again.
    let store = Store::open(env.db_path()).unwrap();
    drop(store);
}

#[tokio::test]
async fn an_unreadable_dialog_is_said_and_the_message_is_handled_afresh() {
    let env = Env::new(Mode::Cards).await;
    // A dialog this version cannot read (another version's shape, or damage).
    accessbot::store::dialogs::Dialogs::new(&env.bot().store)
        .unwrap()
        .put(
            &DingUserId::new(ALICE),
            json!({"step": "pick_host"}),
            env.clock.now(),
        )
        .unwrap();
    let r = env.ask(ALICE, "/my").await;
    assert!(r.contains("无法读取"), "{r}");
    assert!(r.contains("你目前没有申请"), "the command still ran: {r}");
    // Said once: the unreadable dialog is gone.
    let r = env.ask(ALICE, "/my").await;
    assert!(!r.contains("无法读取"), "{r}");
}
