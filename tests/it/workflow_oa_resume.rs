//! Exactly-once OA start over real HTTP (bot between SimDingTalk and SimJumpServer): DingTalk's
//! start has no idempotency key, so when its answer is lost (or the process dies before the
//! instance id is recorded) the retried job must find the instance it created instead of
//! opening a second approval. Outbox steps are driven by hand (`run_workers = false`).
use crate::support::{bot_env_newtype, example_user, BotEnv};
use accessbot::clock::{Clock, SharedClock};
use accessbot::dingtalk::client::{ApprovalInstanceQuery, DingTalkClient};
use accessbot::domain::ids::{DingUserId, OrderId};
use accessbot::domain::jobs::JobKind;
use accessbot::domain::order::State;
use accessbot::sandbox::dingtalk::{FaultKind, SimDingTalk};
use accessbot::sandbox::jumpserver::SimJumpServer;
use accessbot::store::outbox::OutboxJob;
use accessbot::worker::outbox::JobRunner;
use jiff::SignedDuration;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

const ALICE: &str = "alice01";
const BOSS1: &str = "boss01";
const BOSS2: &str = "boss02";
const START: &str = "/v1.0/workflow/processInstances";
const QUERY: &str = "/v1.0/workflow/processes/instanceIds/query";
const GRANTED: &str = "权限已开通";
const PROCESS: &str = "PROC-ACCESS";

struct Env(BotEnv);
bot_env_newtype!(Env);

impl Env {
    async fn new() -> Env {
        let users = [(ALICE, "张三"), (BOSS1, "李四"), (BOSS2, "王五")]
            .map(|(id, name)| example_user(id, name));
        let seed = |dt: &SimDingTalk, _: &SimJumpServer| {
            dt.add_process("JumpServer 访问申请", PROCESS);
        };
        Env(BotEnv::new(users, seed, |cfg| {
            cfg.approval.default_approvers = vec![BOSS1.into(), BOSS2.into()];
            cfg.approval.mode = accessbot::domain::policy::ApprovalMode::Oa;
            cfg.approval.process_code = Some(PROCESS.into());
        })
        .await)
    }

    /// Alice asks for access; returns the new order (its jobs not run yet).
    async fn alice_asks(&self) -> OrderId {
        self.alice_asks_for("申请主机 10.10.1.11 只读 4h 原因：排查线上问题")
            .await
    }

    /// Alice asks in her own words (a second open request must differ from the first: an
    /// identical one is answered with the open order instead).
    async fn alice_asks_for(&self, text: &str) -> OrderId {
        let before = self.orders_of(ALICE).len();
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let msg_id = format!("msg-oa-{n}");
        self.push_robot_text(ALICE, &msg_id, text).await;
        // The order is created while the push is answered; the reply itself is not needed.
        let orders = self.orders_of(ALICE);
        assert_eq!(orders.len(), before + 1, "no order created");
        orders[0].id.clone()
    }

    /// Past any retry back-off, then run what is due.
    async fn later_drain(&self) -> usize {
        self.clock.advance(SignedDuration::from_mins(30));
        self.drain().await
    }

    fn start_calls(&self) -> usize {
        self.dt
            .calls_to(START)
            .iter()
            .filter(|c| c.method == "POST")
            .count()
    }

    fn query_calls(&self) -> usize {
        self.dt.calls_to(QUERY).len()
    }

    /// The sim's instances whose order-id field holds `id`.
    fn instances_for(&self, id: &OrderId) -> Vec<String> {
        self.dt
            .approvals()
            .into_iter()
            .filter(|a| {
                a.form
                    .iter()
                    .any(|(n, v)| n == "申请单号" && v == id.as_str())
            })
            .map(|a| a.instance_id)
            .collect()
    }

    fn granted_count(&self) -> usize {
        self.dt
            .messages_to(&DingUserId::new(ALICE))
            .iter()
            .filter(|m| m.param.to_string().contains(GRANTED))
            .count()
    }

    /// The approver agrees in DingTalk and the finish event reaches the bot (pushed here too,
    /// so the test does not wait for the sim's own background push; duplicates are harmless).
    async fn approve_in_oa(&self, inst: &str) {
        assert!(self.dt.decide_approval(inst, true), "instance not running");
        let ev = json!({
            "EventType": "bpms_instance_change",
            "processInstanceId": inst,
            "processCode": PROCESS,
            "type": "finish",
            "result": "agree",
            "staffId": ALICE,
            "eventId": format!("ev-{inst}-finish"),
        });
        assert_eq!(self.push_event(ev).await, 200);
    }
}

#[tokio::test]
async fn a_normal_start_costs_one_call_and_no_search() {
    let env = Env::new().await;
    let id = env.alice_asks().await;
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::PendingApproval);
    let inst = o.approval_refs.oa_instance_id.clone().expect("recorded");
    assert!(
        o.approval_refs.oa_start_attempted_at.is_some(),
        "the attempt is marked before the call"
    );
    assert_eq!(env.start_calls(), 1);
    assert_eq!(env.query_calls(), 0);
    assert_eq!(env.instances_for(&id), vec![inst.clone()]);
    // A re-run of the job (a crash after it worked, before the outbox marked it done) does
    // nothing at all.
    let wf = env.bot().workflow().unwrap().clone();
    let job = OutboxJob::new(&id, 0, 0, JobKind::StartOaApproval, env.clock.now());
    wf.run(&job).await.unwrap();
    assert_eq!(env.start_calls(), 1);
    assert_eq!(env.query_calls(), 0);
}

#[tokio::test]
async fn a_lost_start_answer_and_a_restart_leave_one_instance_that_grants_once() {
    let mut env = Env::new().await;
    // DingTalk creates the instance, but its answer never arrives.
    env.dt.lose_next_response(START, 1, FaultKind::ServerError);
    let id = env.alice_asks().await;
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::PendingApproval);
    assert_eq!(o.approval_refs.oa_instance_id, None, "the answer was lost");
    assert!(o.approval_refs.oa_start_attempted_at.is_some());
    let created = env.instances_for(&id);
    assert_eq!(created.len(), 1, "DingTalk did create it");

    // The process dies before the retry.
    env.crash_and_restart().await;
    env.later_drain().await;

    assert_eq!(env.start_calls(), 1, "no second start");
    assert_eq!(env.query_calls(), 1);
    assert_eq!(
        env.dt.approvals().len(),
        1,
        "exactly one OA instance exists"
    );
    let o = env.order(&id);
    assert_eq!(
        o.approval_refs.oa_instance_id.as_deref(),
        Some(created[0].as_str())
    );
    assert_eq!(o.state, State::PendingApproval);
    let search = &env.dt.calls_to(QUERY)[0].body;
    assert_eq!(search["processCode"], PROCESS);
    assert_eq!(search["userIds"], json!([ALICE]));
    assert_eq!(search["nextToken"], 0);
    let attempted = o
        .approval_refs
        .oa_start_attempted_at
        .unwrap()
        .as_millisecond();
    assert!(search["startTime"].as_i64().unwrap() < attempted);
    assert!(search["endTime"].as_i64().unwrap() > env.now_ms() - 1);

    env.approve_in_oa(&created[0]).await;
    env.drain().await;
    let o = env.order(&id);
    assert_eq!(o.state, State::Active);
    assert_eq!(env.permissions_named(&o.permission_name()), 1);
    assert_eq!(env.granted_count(), 1);
    // Another run of the start job after all this changes nothing.
    let wf = env.bot().workflow().unwrap().clone();
    wf.run(&OutboxJob::new(
        &id,
        0,
        0,
        JobKind::StartOaApproval,
        env.clock.now(),
    ))
    .await
    .unwrap();
    assert_eq!((env.start_calls(), env.dt.approvals().len()), (1, 1));
}

#[tokio::test]
async fn a_start_that_never_reached_dingtalk_is_made_on_the_retry() {
    let mut env = Env::new().await;
    // Refused before DingTalk acted: the mark is there, no instance is.
    env.dt.fail_next(START, 1, FaultKind::ServerError);
    let id = env.alice_asks().await;
    env.drain().await;
    assert!(env.order(&id).approval_refs.oa_start_attempted_at.is_some());
    assert!(env.dt.approvals().is_empty());

    env.crash_and_restart().await;
    env.later_drain().await;
    assert_eq!(env.query_calls(), 1, "looked first");
    assert_eq!(
        env.start_calls(),
        2,
        "then started, since nothing was found"
    );
    let created = env.instances_for(&id);
    assert_eq!(created.len(), 1);
    let o = env.order(&id);
    assert_eq!(
        o.approval_refs.oa_instance_id.as_deref(),
        Some(created[0].as_str())
    );

    env.approve_in_oa(&created[0]).await;
    env.drain().await;
    assert_eq!(env.order(&id).state, State::Active);
    assert_eq!(env.granted_count(), 1);
}

#[tokio::test]
async fn the_search_picks_this_orders_instance_among_the_requesters_others() {
    let env = Env::new().await;
    // An earlier request of the same person, same template, inside the search window.
    let first = env.alice_asks().await;
    env.drain().await;
    let first_inst = env
        .order(&first)
        .approval_refs
        .oa_instance_id
        .clone()
        .unwrap();

    env.dt.lose_next_response(START, 1, FaultKind::ServerError);
    let second = env
        .alice_asks_for("申请主机 10.10.1.12 只读 4h 原因：另一台机器")
        .await;
    env.drain().await;
    assert_eq!(env.order(&second).approval_refs.oa_instance_id, None);
    env.later_drain().await;

    let second_inst = env
        .order(&second)
        .approval_refs
        .oa_instance_id
        .clone()
        .unwrap();
    assert_ne!(first_inst, second_inst);
    assert_eq!(env.instances_for(&second), vec![second_inst]);
    assert_eq!(env.dt.approvals().len(), 2);
    assert_eq!(env.start_calls(), 2);
}

#[tokio::test]
async fn an_instance_decided_while_unrecorded_is_applied_when_found() {
    let env = Env::new().await;
    env.dt.lose_next_response(START, 1, FaultKind::ServerError);
    let id = env.alice_asks().await;
    env.drain().await;
    let created = env.instances_for(&id);
    assert_eq!(created.len(), 1);
    // Approved in DingTalk before the bot knows the instance: its event finds no order.
    env.approve_in_oa(&created[0]).await;
    assert_eq!(env.order(&id).state, State::PendingApproval);

    env.later_drain().await;
    let o = env.order(&id);
    assert_eq!(
        o.approval_refs.oa_instance_id.as_deref(),
        Some(created[0].as_str())
    );
    assert_eq!(o.state, State::Active, "the found decision was applied");
    assert_eq!(env.permissions_named(&o.permission_name()), 1);
    assert_eq!(env.granted_count(), 1);
    assert_eq!(env.start_calls(), 1);
}

#[tokio::test]
async fn instance_id_search_pages_through_the_sim_and_filters() {
    let env = Env::new().await;
    let shared: SharedClock = Arc::new(env.clock.clone());
    let client = DingTalkClient::new(&env.dt.dingtalk_config(), shared);
    let t0 = env.now_ms();
    let mut alice = Vec::new();
    for n in 0..45 {
        let who = if n % 3 == 0 { BOSS1 } else { ALICE };
        let req = accessbot::dingtalk::client::ApprovalStart {
            process_code: PROCESS.into(),
            originator: DingUserId::new(who),
            dept_id: -1,
            approvers: vec![DingUserId::new(BOSS2)],
            form: vec![("申请单号".into(), format!("R261122-{n:03}"))],
        };
        let inst = client.start_approval(req).await.unwrap();
        if who == ALICE {
            alice.push(inst);
        }
        env.clock.advance(SignedDuration::from_secs(1));
    }
    let q = ApprovalInstanceQuery {
        process_code: PROCESS.into(),
        start_ms: t0,
        end_ms: None,
        originators: vec![DingUserId::new(ALICE)],
    };
    let before = env.query_calls();
    let got = client.list_approval_instance_ids(&q).await.unwrap();
    assert_eq!(got, alice, "all 30 of hers, oldest first, none of his");
    assert_eq!(env.query_calls() - before, 2, "two pages of at most 20");
    // A window after all of them finds nothing.
    let late = ApprovalInstanceQuery {
        start_ms: env.now_ms() + 1,
        ..q.clone()
    };
    assert!(client
        .list_approval_instance_ids(&late)
        .await
        .unwrap()
        .is_empty());
    // The detail shows whose it is and the order-id field the workflow matches on.
    let d = client.get_approval_detail(&alice[0]).await.unwrap();
    assert_eq!(d.originator, Some(DingUserId::new(ALICE)));
    assert_eq!(
        d.form,
        vec![("申请单号".to_string(), "R261122-001".to_string())]
    );
    // The sim refuses what the real API refuses: no token, then a page larger than 20.
    let http = reqwest::Client::new();
    let url = format!("{}{QUERY}", env.dt.base_url());
    let body = json!({"processCode": PROCESS, "startTime": t0, "maxResults": 50});
    let raw = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(raw.status(), 400, "no token");
    let tok: Value = http
        .post(format!("{}/v1.0/oauth2/accessToken", env.dt.base_url()))
        .json(&json!({"appKey": env.cfg.dingtalk.app_key, "appSecret": env.cfg.dingtalk.app_secret.expose()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok = tok["accessToken"].as_str().unwrap().to_string();
    let raw = http
        .post(&url)
        .header("x-acs-dingtalk-access-token", &tok)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let err: Value = raw.json().await.unwrap();
    assert_eq!(err["code"], "invalidParameter");
    // The answer's shape: `result.list` and, while more remain, `result.nextToken`.
    let page: Value = http
        .post(&url)
        .header("x-acs-dingtalk-access-token", &tok)
        .json(&json!({"processCode": PROCESS, "startTime": t0, "maxResults": 20, "nextToken": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["result"]["list"].as_array().map(Vec::len), Some(20));
    assert_eq!(page["result"]["nextToken"], 20);
}
