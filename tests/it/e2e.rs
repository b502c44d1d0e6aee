//! End to end over HTTP: the bot (`Bot::start`, the product's dispatcher and workers) driven by
//! the simulated DingTalk exactly as the real platform would (signed robot messages, signed card
//! taps, encrypted event pushes), granting in the simulated JumpServer. Every assertion reads
//! what the simulators recorded (messages, cards, approvals, permissions) or the bot's own
//! orders; nothing is stubbed. Waits are bounded polls for work the bot does after it has
//! acknowledged (its outbox), never assertions about how long something took.
use accessbot::demo::{
    self, bot_says, mark, permission_for, user, World, WorldOptions, LISI, STEP_LIMIT, WANGWU,
    ZHANGSAN, ZHAOLIU,
};
use accessbot::domain::ids::OrderId;
use accessbot::domain::order::{Order, State};
use accessbot::domain::policy::ApprovalMode;
use accessbot::sandbox::dingtalk::{BotReply, ConvEntry, ConvKind, Forgery, SimCard};
use accessbot::store::dedupe::Dedupe;
use accessbot::store::outbox::Outbox;
use base64::Engine as _;
use jiff::SignedDuration;
use serde_json::{json, Map, Value};

const HOST_REQ_ZH: &str = "申请主机 10.1.2.3 运维 3天 原因：排查线上问题";
const HOST_REQ_EN: &str = "/apply host 10.1.2.4 readonly 1d reason: check the logs";

async fn world(mode: ApprovalMode, card_template: bool) -> World {
    World::start(WorldOptions {
        mode,
        card_template,
    })
    .await
    .expect("world starts")
}

fn ok(r: &BotReply) {
    assert_eq!(r.status, 200, "bot answered {}: {}", r.status, r.body);
}

fn orders_of(w: &World, who: &str) -> Vec<Order> {
    w.orders()
        .expect("bot running")
        .list_by_requester(&user(who))
        .expect("orders readable")
}

fn order(w: &World, id: &OrderId) -> Order {
    w.orders()
        .expect("bot running")
        .get(id)
        .expect("orders readable")
        .expect("order exists")
}

/// Waits for `who`'s newest order to exist and returns it.
async fn newest_order(w: &World, who: &str, count: usize) -> Order {
    w.dingtalk
        .wait_for(STEP_LIMIT, |_| {
            let mut v = orders_of(w, who);
            (v.len() >= count).then(|| {
                // Same-instant orders (the clock is manual) sort by their sequential id.
                v.sort_by_key(|o| (o.created_at, o.id.0.clone()));
                v.pop()
            })?
        })
        .await
        .unwrap_or_else(|| panic!("{who} has no order #{count}"))
}

async fn wait_state(w: &World, id: &OrderId, want: State) -> Order {
    w.dingtalk
        .wait_for(STEP_LIMIT, |_| {
            Some(order(w, id)).filter(|o| o.state == want)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "order {id} never reached {want:?}: {:?}",
                order(w, id).state
            )
        })
}

/// The approval card delivered to `approver` for `order`.
async fn card_for(w: &World, approver: &str, order: &OrderId) -> (String, SimCard) {
    w.dingtalk
        .wait_for(STEP_LIMIT, |d| {
            // The approval card, not the requester's status card for the same order: the
            // one that has (or had) buttons — approval cards are delivered first.
            let mine: Vec<(String, SimCard)> = d
                .cards_for(&user(approver))
                .into_iter()
                .filter(|(_, c)| c.params.get("order_id") == Some(&order.0))
                .collect();
            mine.iter()
                .find(|(_, c)| c.params.get("buttons_visible").map(String::as_str) == Some("true"))
                .or(mine.first())
                .cloned()
        })
        .await
        .unwrap_or_else(|| panic!("{approver} got no card for {order}"))
}

fn approve_params(order: &OrderId) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("action".into(), json!("approve"));
    m.insert("order_id".into(), json!(order.0));
    m
}

fn reject_params(order: &OrderId, reason: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("action".into(), json!("reject"));
    m.insert("order_id".into(), json!(order.0));
    m.insert("reject_reason".into(), json!(reason));
    m
}

/// Waits until the bot's outbox is drained: everything an event caused has been done.
async fn settle(w: &World) {
    let store = w.bot.as_ref().expect("bot running").store.clone();
    let outbox = Outbox::new(&store).expect("outbox");
    w.dingtalk
        .wait_for(STEP_LIMIT, |_| outbox.is_empty().then_some(()))
        .await
        .expect("outbox drains");
}

/// Tree name → entry count of the bot's whole sled store.
fn store_shape(w: &World) -> Vec<(String, usize)> {
    let store = &w.bot.as_ref().expect("bot running").store;
    let mut v: Vec<(String, usize)> = store
        .db()
        .tree_names()
        .into_iter()
        .map(|n| {
            let name = String::from_utf8_lossy(&n).into_owned();
            let len = store.db().open_tree(&n).map(|t| t.len()).unwrap_or(0);
            (name, len)
        })
        .collect();
    v.sort();
    v
}

fn texts(v: &[ConvEntry]) -> String {
    v.iter()
        .map(|e| e.text.clone())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Asks for host access and returns the pending order.
async fn request(w: &World, who: &str, text: &str, nth: usize) -> Order {
    ok(&w
        .dingtalk
        .user_says(&user(who), text)
        .await
        .expect("delivered"));
    let o = newest_order(w, who, nth).await;
    wait_state(w, &o.id, State::PendingApproval).await
}

// ---------------------------------------------------------------- the demo itself ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_scenario_runs_and_every_step_is_checked() {
    let mut out = Vec::new();
    let report = demo::run(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let report = report.unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(report.steps.len(), 7, "{:?}", report.steps);
    for must in ["张三 → 机器人", "10.1.2.3", "李四", "HTTP 401", "拒绝"] {
        assert!(text.contains(must), "transcript lacks {must}:\n{text}");
    }
    // After its checks the demo says what to run to try it for real, last.
    let next = text
        .rfind("Next, try it for real")
        .expect("next steps printed");
    for must in [
        "accessbot config example",
        "accessbot check-config",
        "accessbot doctor",
        "accessbot serve",
        "docs/setup-dingtalk.md",
    ] {
        assert!(
            text[next..].contains(must),
            "next steps lack {must}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_fails_naming_the_step_when_jumpserver_is_down() {
    let mut w = world(ApprovalMode::Card, true).await;
    w.step_limit = std::time::Duration::from_millis(1500);
    // JumpServer answers 503 to everything: the bot keeps retrying the JumpServer look-up it
    // shows approvers, so no approval card goes out, and the demo must say so, not pass.
    w.jms.fail_next(usize::MAX, 503);
    let mut out = Vec::new();
    let err = demo::play(&mut w, &mut out)
        .await
        .expect_err("the demo noticed the missing step");
    assert_eq!(err.step, "审批卡片发给李四", "{err}");
    assert!(err.to_string().contains("李四没有收到审批卡片"), "{err}");
    assert!(w.jms.permissions().is_empty());
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("张三 → 机器人：申请主机 10.1.2.3"), "{text}");
    assert!(!text.contains("✓"), "no step reported done: {text}");
}

// ---------------------------------------------------------------- card mode ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_approval_grants_exactly_what_was_asked_from_the_approval_time() {
    let w = world(ApprovalMode::Card, true).await;
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let (track, card) = card_for(&w, LISI, &o.id).await;
    assert_eq!(
        card.params.get("status").map(String::as_str),
        Some("pending")
    );
    assert_eq!(
        card.params.get("jms_username").map(String::as_str),
        Some("zhangsan")
    );
    // Taps come back over HTTP, through the route key the operator registered.
    assert_eq!(card.callback_type.as_deref(), Some("HTTP"));
    assert_eq!(
        card.callback_route_key.as_deref(),
        Some(demo::CARD_ROUTE_KEY)
    );
    assert!(card
        .params
        .get("targets")
        .is_some_and(|t| t.contains("10.1.2.3")));
    // The window starts at approval, not at the request.
    w.advance(SignedDuration::from_mins(30));
    let approved_at = w.now();
    ok(&w
        .dingtalk
        .tap_card(&user(LISI), &track, &["approve"], approve_params(&o.id))
        .await
        .unwrap());
    let done = wait_state(&w, &o.id, State::Active).await;
    let perm = permission_for(&w.jms, "zhangsan", "10.1.2.3").expect("permission");
    assert_eq!(
        perm.date_expired,
        approved_at + SignedDuration::from_hours(72)
    );
    assert!(
        perm.accounts.iter().any(|a| a == "ops"),
        "{:?}",
        perm.accounts
    );
    assert!(perm.actions.iter().any(|a| a == "connect"));
    assert_eq!(done.window.map(|x| x.end), Some(perm.date_expired));
    settle(&w).await;
    let card = w.dingtalk.card(&track).expect("card");
    assert_eq!(
        card.params.get("status").map(String::as_str),
        Some("approved")
    );
    let told: Vec<ConvEntry> = w
        .dingtalk
        .bot_said(ZHANGSAN)
        .into_iter()
        .filter(|e| e.kind == ConvKind::Message && e.text.contains("已开通"))
        .collect();
    assert_eq!(told.len(), 1, "one grant message: {}", texts(&told));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_in_both_languages() {
    let w = world(ApprovalMode::Card, true).await;
    let dt = &w.dingtalk;
    // help
    for (word, expect) in [("/help", "/apply"), ("帮助", "申请主机")] {
        let m = mark(dt);
        ok(&dt.user_says(&user(WANGWU), word).await.unwrap());
        let r = bot_says(dt, WANGWU, m, |_| true)
            .await
            .expect("help answered");
        assert!(r.text.contains(expect), "{word}: {}", r.text);
    }
    // unknown command: a short answer with an example
    let m = mark(dt);
    ok(&dt.user_says(&user(WANGWU), "/frobnicate").await.unwrap());
    let r = bot_says(dt, WANGWU, m, |_| true).await.expect("answered");
    assert!(
        r.text.contains("帮助") || r.text.contains("/help"),
        "{}",
        r.text
    );
    // apply host in both languages
    let zh = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let en = request(&w, ZHANGSAN, HOST_REQ_EN, 2).await;
    assert_ne!(zh.id, en.id);
    card_for(&w, LISI, &zh.id).await;
    card_for(&w, LISI, &en.id).await;
    // apply account in both languages (two requesters: one open account request each)
    let acc1 = {
        ok(&dt.user_says(&user(WANGWU), "申请账号").await.unwrap());
        newest_order(&w, WANGWU, 1).await
    };
    let acc2 = {
        ok(&dt
            .user_says(&user(ZHAOLIU), "/apply account")
            .await
            .unwrap());
        newest_order(&w, ZHAOLIU, 1).await
    };
    for o in [&acc1, &acc2] {
        assert!(
            matches!(o.request, accessbot::domain::order::Request::Account { .. }),
            "{:?}",
            o.request
        );
    }
    // my, in both languages, lists both open requests
    for word in ["/my", "我的权限"] {
        let m = mark(dt);
        ok(&dt.user_says(&user(ZHANGSAN), word).await.unwrap());
        let r = bot_says(dt, ZHANGSAN, m, |e| e.kind == ConvKind::Reply)
            .await
            .expect("my answered");
        assert!(
            r.text.contains(&zh.id.0) && r.text.contains(&en.id.0),
            "{word}: {}",
            r.text
        );
    }
    // status in both languages
    for word in ["/status", "状态"] {
        let m = mark(dt);
        ok(&dt
            .user_says(&user(ZHANGSAN), &format!("{word} {}", zh.id))
            .await
            .unwrap());
        let r = bot_says(dt, ZHANGSAN, m, |e| e.kind == ConvKind::Reply)
            .await
            .expect("status answered");
        assert!(r.text.contains(&zh.id.0), "{word}: {}", r.text);
    }
    // cancel (English) withdraws a pending request and updates the approver's card
    ok(&dt
        .user_says(&user(ZHANGSAN), &format!("/cancel {}", en.id))
        .await
        .unwrap());
    wait_state(&w, &en.id, State::Cancelled).await;
    let (en_track, _) = card_for(&w, LISI, &en.id).await;
    dt.wait_for(STEP_LIMIT, |d| {
        d.card(&en_track)
            .filter(|c| c.params.get("status").map(String::as_str) == Some("cancelled"))
    })
    .await
    .expect("approver card shows the withdrawal");
    // approve by text (Chinese) and reject by text (English) as the approver
    ok(&dt
        .user_says(&user(LISI), &format!("同意 {}", zh.id))
        .await
        .unwrap());
    wait_state(&w, &zh.id, State::Active).await;
    assert!(permission_for(&w.jms, "zhangsan", "10.1.2.3").is_some());
    ok(&dt
        .user_says(
            &user(LISI),
            &format!("/reject {} use the staging host", acc1.id),
        )
        .await
        .unwrap());
    wait_state(&w, &acc1.id, State::Rejected).await;
    let told = bot_says(dt, WANGWU, 0, |e| e.text.contains("use the staging host"))
        .await
        .expect("requester told why");
    assert!(
        told.text.contains(&acc1.id.0) || told.text.contains("拒绝"),
        "{}",
        told.text
    );
    // cancel (Chinese) the other account request
    ok(&dt
        .user_says(&user(ZHAOLIU), &format!("取消 {}", acc2.id))
        .await
        .unwrap());
    wait_state(&w, &acc2.id, State::Cancelled).await;
    // the other halves: approve in English, reject in Chinese
    let third = request(&w, ZHANGSAN, "申请主机 10.1.2.5 只读 2天 原因：巡检", 3).await;
    let fourth = request(&w, ZHANGSAN, "申请主机 10.1.2.6 只读 2天 原因：巡检", 4).await;
    ok(&dt
        .user_says(&user(LISI), &format!("/approve {}", third.id))
        .await
        .unwrap());
    wait_state(&w, &third.id, State::Active).await;
    assert!(permission_for(&w.jms, "zhangsan", "10.1.2.5").is_some());
    ok(&dt
        .user_says(&user(LISI), &format!("拒绝 {} 请使用测试环境", fourth.id))
        .await
        .unwrap());
    wait_state(&w, &fourth.id, State::Rejected).await;
    bot_says(dt, ZHANGSAN, 0, |e| e.text.contains("请使用测试环境"))
        .await
        .expect("requester told why");
    assert!(permission_for(&w.jms, "zhangsan", "10.1.2.6").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_chat_requests_are_answered_in_the_group() {
    let w = world(ApprovalMode::Card, true).await;
    let dt = &w.dingtalk;
    let group = "cidGroupOps001";
    dt.add_group(group);
    let m = mark(dt);
    ok(&dt
        .user_says_in_group(&user(WANGWU), group, "帮助")
        .await
        .unwrap());
    let r = bot_says(dt, group, m, |_| true)
        .await
        .expect("answered in the group");
    assert!(r.text.contains("申请主机"), "{}", r.text);
    assert!(dt.bot_said(WANGWU).is_empty(), "nothing in the 1:1 chat");
    ok(&dt
        .user_says_in_group(&user(ZHANGSAN), group, HOST_REQ_ZH)
        .await
        .unwrap());
    let o = newest_order(&w, ZHANGSAN, 1).await;
    assert_eq!(o.requester, user(ZHANGSAN));
    card_for(&w, LISI, &o.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialog_asks_for_what_is_missing_reasks_a_bad_answer_and_cancels() {
    let w = world(ApprovalMode::Card, true).await;
    let dt = &w.dingtalk;
    let me = user(ZHANGSAN);
    // Missing duration: asked for.
    let m = mark(dt);
    ok(&dt
        .user_says(&me, "申请主机 10.1.2.3 运维 原因：排查线上问题")
        .await
        .unwrap());
    let ask = bot_says(dt, ZHANGSAN, m, |_| true).await.expect("asked");
    assert!(ask.text.contains("多长时间"), "{}", ask.text);
    assert!(orders_of(&w, ZHANGSAN).is_empty());
    // A bad answer is re-asked, saying what was wrong.
    let m = mark(dt);
    ok(&dt.user_says(&me, "很久很久").await.unwrap());
    let again = bot_says(dt, ZHANGSAN, m, |_| true).await.expect("re-asked");
    assert!(
        again.text.contains("时长") || again.text.contains("例如"),
        "{}",
        again.text
    );
    assert!(orders_of(&w, ZHANGSAN).is_empty());
    // A good answer completes the request.
    ok(&dt.user_says(&me, "2天").await.unwrap());
    let o = newest_order(&w, ZHANGSAN, 1).await;
    match &o.request {
        accessbot::domain::order::Request::Host {
            duration, targets, ..
        } => {
            assert_eq!(duration.minutes() * 60, 2 * 86_400);
            let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
            assert_eq!(targets, vec!["10.1.2.3".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    // A new dialog, ended with 取消: no order.
    let m = mark(dt);
    ok(&dt.user_says(&me, "申请主机").await.unwrap());
    bot_says(dt, ZHANGSAN, m, |_| true)
        .await
        .expect("asked for hosts");
    let m = mark(dt);
    ok(&dt.user_says(&me, "取消").await.unwrap());
    bot_says(dt, ZHANGSAN, m, |_| true)
        .await
        .expect("cancel acknowledged");
    ok(&dt.user_says(&me, "10.1.2.9").await.unwrap());
    settle(&w).await;
    assert_eq!(
        orders_of(&w, ZHANGSAN).len(),
        1,
        "the cancelled dialog made no order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_approver_tap_is_refused_with_a_reply_and_changes_nothing() {
    let w = world(ApprovalMode::Card, true).await;
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let (track, _) = card_for(&w, LISI, &o.id).await;
    let m = mark(&w.dingtalk);
    let r = w
        .dingtalk
        .tap_card(&user(WANGWU), &track, &["approve"], approve_params(&o.id))
        .await
        .unwrap();
    assert!(r.status < 500, "{r:?}");
    bot_says(&w.dingtalk, WANGWU, m, |_| true)
        .await
        .expect("the tapper is told they may not decide");
    settle(&w).await;
    assert_eq!(order(&w, &o.id).state, State::PendingApproval);
    assert!(w.jms.permissions().is_empty());
    let card = w.dingtalk.card(&track).expect("card");
    assert_eq!(
        card.params.get("status").map(String::as_str),
        Some("pending")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_approval_is_refused() {
    let w = world(ApprovalMode::Card, true).await;
    // lisi is the default approver; their own request goes to someone else (the admin).
    let o = request(&w, LISI, HOST_REQ_ZH, 1).await;
    let (track, _) = card_for(&w, ZHAOLIU, &o.id).await;
    assert!(
        w.dingtalk
            .cards_for(&user(LISI))
            .iter()
            .all(|(_, c)| c.params.get("order_id") != Some(&o.id.0)
                || c.params.get("buttons_visible").map(String::as_str) != Some("true")),
        "the requester got no approval buttons for their own request"
    );
    let m = mark(&w.dingtalk);
    ok(&w
        .dingtalk
        .user_says(&user(LISI), &format!("/approve {}", o.id))
        .await
        .unwrap());
    bot_says(&w.dingtalk, LISI, m, |_| true)
        .await
        .expect("refusal explained");
    // A tap on the admin's card (forwarded, say) by the requester is refused the same way.
    let m = mark(&w.dingtalk);
    let r = w
        .dingtalk
        .tap_card(&user(LISI), &track, &["approve"], approve_params(&o.id))
        .await
        .unwrap();
    assert!(r.status < 500, "{r:?}");
    bot_says(&w.dingtalk, LISI, m, |e| e.text.contains(&o.id.0))
        .await
        .expect("tap refusal explained");
    settle(&w).await;
    assert_eq!(order(&w, &o.id).state, State::PendingApproval);
    assert!(permission_for(&w.jms, "lisi", "10.1.2.3").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_approval_works_when_policy_allows_it() {
    let mut w = world(ApprovalMode::Card, true).await;
    w.config.policy.self_approval = true;
    w.start_bot().await.unwrap();
    let o = request(&w, LISI, HOST_REQ_ZH, 1).await;
    let (track, card) = card_for(&w, LISI, &o.id).await;
    assert_eq!(
        card.params.get("buttons_visible").map(String::as_str),
        Some("true")
    );
    ok(&w
        .dingtalk
        .tap_card(&user(LISI), &track, &["approve"], approve_params(&o.id))
        .await
        .unwrap());
    wait_state(&w, &o.id, State::Active).await;
    assert!(permission_for(&w.jms, "lisi", "10.1.2.3").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_on_the_card_tells_the_requester_why_and_grants_nothing() {
    let w = world(ApprovalMode::Card, true).await;
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let (track, _) = card_for(&w, LISI, &o.id).await;
    ok(&w
        .dingtalk
        .tap_card(
            &user(LISI),
            &track,
            &["reject"],
            reject_params(&o.id, "请使用测试环境"),
        )
        .await
        .unwrap());
    wait_state(&w, &o.id, State::Rejected).await;
    bot_says(&w.dingtalk, ZHANGSAN, 0, |e| {
        e.text.contains("请使用测试环境")
    })
    .await
    .expect("requester told the reason");
    settle(&w).await;
    assert!(w
        .jms
        .permissions()
        .iter()
        .all(|p| !p.name.contains(&o.id.0)));
    let card = w.dingtalk.card(&track).expect("card");
    assert_eq!(
        card.params.get("reject_reason").map(String::as_str),
        Some("请使用测试环境")
    );
    assert_eq!(
        card.params.get("status").map(String::as_str),
        Some("rejected")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_are_handled_once() {
    let w = world(ApprovalMode::Card, true).await;
    let dt = &w.dingtalk;
    // The same robot message delivered twice: one order.
    let msg = dt
        .prepare_message(&user(ZHANGSAN), None, HOST_REQ_ZH)
        .unwrap();
    ok(&dt.deliver(&msg).await.unwrap());
    ok(&dt.deliver(&msg).await.unwrap());
    let o = newest_order(&w, ZHANGSAN, 1).await;
    settle(&w).await;
    assert_eq!(orders_of(&w, ZHANGSAN).len(), 1);
    assert_eq!(dt.cards_for(&user(LISI)).len(), 1, "one approval card");
    // The same tap delivered twice: one grant, one message.
    let (track, _) = card_for(&w, LISI, &o.id).await;
    for _ in 0..2 {
        ok(&dt
            .tap_card(&user(LISI), &track, &["approve"], approve_params(&o.id))
            .await
            .unwrap());
    }
    wait_state(&w, &o.id, State::Active).await;
    settle(&w).await;
    assert_eq!(w.jms.permissions().len(), 1);
    let grants = dt
        .bot_said(ZHANGSAN)
        .into_iter()
        .filter(|e| e.kind == ConvKind::Message && e.text.contains("已开通"))
        .count();
    assert_eq!(grants, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvers_tapping_at_once_grant_once() {
    let mut w = world(ApprovalMode::Card, true).await;
    w.config.approval.default_approvers = vec![LISI.into(), ZHAOLIU.into()];
    w.start_bot().await.unwrap();
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let (t1, _) = card_for(&w, LISI, &o.id).await;
    let (t2, _) = card_for(&w, ZHAOLIU, &o.id).await;
    let (lisi, zhaoliu) = (user(LISI), user(ZHAOLIU));
    let (a, b) = tokio::join!(
        w.dingtalk
            .tap_card(&lisi, &t1, &["approve"], approve_params(&o.id)),
        w.dingtalk
            .tap_card(&zhaoliu, &t2, &["approve"], approve_params(&o.id)),
    );
    assert!(a.unwrap().status < 500 && b.unwrap().status < 500);
    wait_state(&w, &o.id, State::Active).await;
    settle(&w).await;
    assert_eq!(w.jms.permissions().len(), 1);
    // Every approver's card and the requester's own card say who decided and when.
    let requester_card = w
        .dingtalk
        .cards_for(&user(ZHANGSAN))
        .into_iter()
        .find(|(_, c)| c.params.get("order_id") == Some(&o.id.0))
        .map(|(t, _)| t)
        .expect("requester card");
    for t in [&t1, &t2, &requester_card] {
        let c = w.dingtalk.card(t).expect("card");
        let by = c.params.get("decided_by").cloned().unwrap_or_default();
        assert!(by.contains("2026-11-23"), "{t}: decided_by {by:?}");
        assert_eq!(
            c.params.get("status").map(String::as_str),
            Some("approved"),
            "{t}"
        );
    }
    let grants = w
        .dingtalk
        .bot_said(ZHANGSAN)
        .into_iter()
        .filter(|e| e.kind == ConvKind::Message && e.text.contains("已开通"))
        .count();
    assert_eq!(grants, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_card_template_approvals_are_action_cards_with_dtmd_links() {
    let w = world(ApprovalMode::Card, false).await;
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let msg = w
        .dingtalk
        .wait_for(STEP_LIMIT, |d| {
            d.messages_to(&user(LISI))
                .into_iter()
                .find(|m| m.param.to_string().contains(&o.id.0))
        })
        .await
        .expect("approver got an action card");
    let raw = msg.param.to_string();
    assert!(raw.contains("dtmd://"), "{raw}");
    assert!(w.dingtalk.cards_for(&user(LISI)).is_empty());
    // The approver taps the approve button: the DingTalk client sends its text as lisi.
    let links: Vec<String> = (1..=5)
        .filter_map(|i| msg.param.get(format!("actionURL{i}")))
        .chain(msg.param.get("singleURL"))
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let approve = links
        .iter()
        .find(|l| {
            let decoded: String = url::form_urlencoded::parse(l.as_bytes())
                .map(|(_, v)| v.into_owned())
                .collect();
            decoded.contains("approve") || decoded.contains("同意")
        })
        .unwrap_or_else(|| panic!("no approve link in {raw}"));
    let m = mark(&w.dingtalk);
    ok(&w
        .dingtalk
        .tap_dtmd_link(&user(LISI), approve)
        .await
        .unwrap());
    wait_state(&w, &o.id, State::Active).await;
    assert!(permission_for(&w.jms, "zhangsan", "10.1.2.3").is_some());
    // Without cards the decision is reported by message.
    bot_says(&w.dingtalk, LISI, m, |e| e.text.contains(&o.id.0))
        .await
        .expect("approver told the outcome");
}

// ---------------------------------------------------------------- OA mode ----------

async fn oa_instance(w: &World, o: &OrderId) -> String {
    w.dingtalk
        .wait_for(STEP_LIMIT, |_| {
            order(w, o).approval_refs.oa_instance_id.clone()
        })
        .await
        .expect("OA instance recorded on the order")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oa_agree_grants_once_even_when_the_event_is_redelivered() {
    let w = world(ApprovalMode::Oa, false).await;
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let id = oa_instance(&w, &o.id).await;
    let inst = w.dingtalk.approval(&id).expect("instance");
    assert_eq!(inst.process_code, demo::PROCESS_CODE);
    assert!(
        inst.form.iter().any(|(_, v)| v.contains("10.1.2.3")),
        "{:?}",
        inst.form
    );
    w.advance(SignedDuration::from_mins(10));
    let approved_at = w.now();
    let ack = w
        .dingtalk
        .decide_approval_and_push(&id, true)
        .await
        .unwrap()
        .expect("pushed");
    assert!(ack.acknowledged, "{ack:?}");
    wait_state(&w, &o.id, State::Active).await;
    // Redelivery with a new eventId, as DingTalk does after a missed acknowledgement.
    let a = w.dingtalk.approval(&id).unwrap();
    let again = json!({
        "EventType": "bpms_instance_change", "eventId": "redelivered-1",
        "processInstanceId": id, "processCode": a.process_code, "type": "finish",
        "result": "agree", "staffId": ZHANGSAN, "EventTime": w.dingtalk.now_ms(),
    });
    assert!(w.dingtalk.push_event(&again).await.unwrap().acknowledged);
    settle(&w).await;
    // DingTalk's own `start` push (sent when the instance was created) was acknowledged too.
    let start = w
        .dingtalk
        .wait_for(STEP_LIMIT, |d| {
            d.pushes().into_iter().find(|p| p.event["type"] == "start")
        })
        .await
        .expect("start pushed");
    assert_eq!(
        (start.outcome.clone(), start.attempts),
        (Ok(true), 1),
        "{start:?}"
    );
    let perm = permission_for(&w.jms, "zhangsan", "10.1.2.3").expect("granted");
    assert_eq!(
        perm.date_expired,
        approved_at + SignedDuration::from_hours(72)
    );
    assert_eq!(w.jms.permissions().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oa_refusal_names_the_refuser_and_their_comment() {
    let w = world(ApprovalMode::Oa, false).await;
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let id = oa_instance(&w, &o.id).await;
    let ack = w
        .dingtalk
        .decide_approval_as_and_push(&id, false, Some(LISI), Some("请走测试环境"))
        .await
        .unwrap()
        .expect("pushed");
    assert!(ack.acknowledged, "{ack:?}");
    wait_state(&w, &o.id, State::Rejected).await;
    let said = bot_says(&w.dingtalk, ZHANGSAN, 0, |e| e.text.contains("拒绝了申请"))
        .await
        .expect("requester told");
    assert!(said.text.contains("李四"), "{}", said.text);
    assert!(said.text.contains("原因：请走测试环境"), "{}", said.text);
    assert!(!said.text.contains("钉钉审批"), "{}", said.text);
    let rec = order(&w, &o.id);
    assert_eq!(rec.decided_by.as_ref().map(|u| u.as_str()), Some(LISI));
    assert_eq!(rec.decision_reason.as_deref(), Some("请走测试环境"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oa_refuse_and_withdraw_and_unknown_instances() {
    let w = world(ApprovalMode::Oa, false).await;
    // refuse
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let id = oa_instance(&w, &o.id).await;
    // The approver decides in DingTalk; DingTalk pushes the result on its own.
    assert!(w.dingtalk.decide_approval(&id, false));
    let pushed = w
        .dingtalk
        .wait_for(STEP_LIMIT, |d| {
            d.pushes().into_iter().find(|p| p.event["type"] == "finish")
        })
        .await
        .expect("finish pushed");
    assert_eq!(
        (pushed.outcome.clone(), pushed.attempts),
        (Ok(true), 1),
        "{pushed:?}"
    );
    assert_eq!(pushed.event["result"], "refuse");
    wait_state(&w, &o.id, State::Rejected).await;
    bot_says(&w.dingtalk, ZHANGSAN, 0, |e| e.text.contains("拒绝"))
        .await
        .expect("requester told");
    // the originator withdraws in DingTalk
    let o2 = request(&w, ZHANGSAN, HOST_REQ_EN, 2).await;
    let id2 = oa_instance(&w, &o2.id).await;
    let ack = w
        .dingtalk
        .terminate_approval_and_push(&id2)
        .await
        .unwrap()
        .unwrap();
    assert!(ack.acknowledged);
    wait_state(&w, &o2.id, State::Cancelled).await;
    // an event for an instance the bot never started: acknowledged and ignored
    let before = store_shape(&w);
    let stranger = json!({
        "EventType": "bpms_instance_change", "eventId": "stranger-1",
        "processInstanceId": "not-ours-0000", "processCode": "PROC-OTHER",
        "type": "finish", "result": "agree", "staffId": WANGWU, "EventTime": w.dingtalk.now_ms(),
    });
    assert!(w.dingtalk.push_event(&stranger).await.unwrap().acknowledged);
    settle(&w).await;
    assert!(w.jms.permissions().is_empty());
    let after = store_shape(&w);
    let orders_tree = |v: &[(String, usize)]| {
        v.iter()
            .filter(|(n, _)| n.contains("order"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(orders_tree(&before), orders_tree(&after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_in_oa_mode_terminates_the_instance() {
    let w = world(ApprovalMode::Oa, false).await;
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let id = oa_instance(&w, &o.id).await;
    // DingTalk refuses a terminate in the first 15 s; a person cancels later than that.
    w.advance(SignedDuration::from_mins(1));
    ok(&w
        .dingtalk
        .user_says(&user(ZHANGSAN), &format!("取消 {}", o.id))
        .await
        .unwrap());
    wait_state(&w, &o.id, State::Cancelled).await;
    w.dingtalk
        .wait_for(STEP_LIMIT, |d| {
            d.approval(&id).filter(|a| a.status == "TERMINATED")
        })
        .await
        .expect("instance terminated in DingTalk");
    // DingTalk then pushes `terminate`; the bot acknowledges it and changes nothing.
    w.dingtalk
        .wait_for(STEP_LIMIT, |d| {
            d.pushes().into_iter().find(|p| {
                p.event["type"] == "terminate" && p.event["processInstanceId"] == id.as_str()
            })
        })
        .await
        .map(|p| assert_eq!(p.outcome, Ok(true), "{p:?}"))
        .expect("terminate pushed");
    settle(&w).await;
    assert_eq!(order(&w, &o.id).state, State::Cancelled);
}

// ---------------------------------------------------------------- refusals ----------

/// Flips the last plaintext byte (the PKCS#7 pad length) to 0 by flipping the matching byte of
/// the previous ciphertext block (CBC), keeping a valid base64 the signature covers.
fn wrong_padding(w: &World) -> String {
    let crypto = w.dingtalk.callback_crypto().unwrap();
    let msg = r#"{"EventType":"check_url"}"#;
    let owner = crypto.owner_key().len();
    let plain_len = 20 + msg.len() + owner;
    let pad = 32 - plain_len % 32;
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(crypto.encrypt(msg))
        .unwrap();
    let n = raw.len();
    raw[n - 17] ^= pad as u8;
    base64::engine::general_purpose::STANDARD.encode(raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_path_answers_4xx_and_records_nothing() {
    let w = world(ApprovalMode::Card, true).await;
    let dt = &w.dingtalk;
    let before = store_shape(&w);
    let dedupe = Dedupe::new(&w.bot.as_ref().unwrap().store).unwrap();
    let big = vec![b'x'; 70 * 1024];
    let mut seen = Vec::new();

    // robot route
    let msg = dt
        .prepare_message(&user(ZHANGSAN), None, HOST_REQ_ZH)
        .unwrap();
    for f in [
        Forgery::BadSignature,
        Forgery::StaleTimestamp,
        Forgery::Unsigned,
    ] {
        let r = dt.deliver_forged(&msg, f).await.unwrap();
        assert_eq!(r.status, 401, "robot {f:?}: {r:?}");
        seen.push(r.status);
    }
    let r = dt
        .post_robot_raw(b"{\"msgId\": oops".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status, 400, "robot malformed: {r:?}");
    let r = dt.post_robot_raw(big.clone()).await.unwrap();
    assert_eq!(r.status, 413, "robot oversized: {r:?}");

    // event route
    let event = json!({"EventType": "bpms_instance_change", "eventId": "e-forged",
        "processInstanceId": "i-1", "type": "finish", "result": "agree", "staffId": ZHANGSAN});
    for f in [
        Forgery::BadSignature,
        Forgery::StaleTimestamp,
        Forgery::Unsigned,
    ] {
        let a = dt.push_event_forged(&event, f).await.unwrap();
        assert!(!a.acknowledged);
        let want = if f == Forgery::Unsigned { 400 } else { 401 };
        assert_eq!(a.status, want, "event {f:?}: {a:?}");
    }
    let r = dt.push_raw_encrypt(&wrong_padding(&w)).await.unwrap();
    assert_eq!(r.status, 400, "event wrong padding: {r:?}");
    let r = dt.push_raw_encrypt("not base64 at all!").await.unwrap();
    assert_eq!(r.status, 400, "event bad base64: {r:?}");
    let r = dt
        .post_to_bot(
            "/dingtalk/events?msg_signature=a&timestamp=1&nonce=n",
            &[],
            b"{oops".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "event malformed body: {r:?}");
    let r = dt
        .post_to_bot(
            "/dingtalk/events?msg_signature=a&timestamp=1&nonce=n",
            &[],
            big.clone(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 413, "event oversized: {r:?}");

    // card route
    for f in [
        Forgery::BadSignature,
        Forgery::StaleTimestamp,
        Forgery::Unsigned,
    ] {
        let r = dt
            .tap_card_forged(
                &user(LISI),
                "t-1",
                &["approve"],
                approve_params(&OrderId::new("A20261123-AAAA")),
                f,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 401, "card {f:?}: {r:?}");
    }
    let r = dt.post_card_raw(b"[1,2".to_vec()).await.unwrap();
    assert_eq!(r.status, 400, "card malformed: {r:?}");
    let r = dt.post_card_raw(big).await.unwrap();
    assert_eq!(r.status, 413, "card oversized: {r:?}");

    assert_eq!(dedupe.len(), 0, "no delivery key remembered");
    assert_eq!(store_shape(&w), before, "nothing stored");
    assert!(dt.bot_said(ZHANGSAN).is_empty() && dt.bot_said(LISI).is_empty());
    assert!(w.jms.permissions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_dialog_is_forgotten() {
    let w = world(ApprovalMode::Card, true).await;
    let dt = &w.dingtalk;
    let me = user(ZHANGSAN);
    let m = mark(dt);
    ok(&dt
        .user_says(&me, "申请主机 10.1.2.3 运维 原因：排查线上问题")
        .await
        .unwrap());
    bot_says(dt, ZHANGSAN, m, |_| true).await.expect("asked");
    // Longer than [chat] dialog_idle_minutes (default 10) without an answer.
    w.advance(SignedDuration::from_mins(11));
    let m = mark(dt);
    ok(&dt.user_says(&me, "3天").await.unwrap());
    bot_says(dt, ZHANGSAN, m, |_| true)
        .await
        .expect("the late answer gets a reply");
    settle(&w).await;
    assert!(
        orders_of(&w, ZHANGSAN).is_empty(),
        "a late answer does not complete a forgotten dialog"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn english_replies_when_configured() {
    let mut w = world(ApprovalMode::Card, true).await;
    w.config.chat.language = accessbot::domain::command::Lang::En;
    w.start_bot().await.unwrap();
    let dt = &w.dingtalk;
    let m = mark(dt);
    ok(&dt.user_says(&user(WANGWU), "帮助").await.unwrap());
    let r = bot_says(dt, WANGWU, m, |_| true).await.expect("help");
    assert!(r.text.contains("/apply host"), "{}", r.text);
    let o = request(&w, ZHANGSAN, HOST_REQ_EN, 1).await;
    let (_, card) = card_for(&w, LISI, &o.id).await;
    assert_eq!(card.params.get("lang").map(String::as_str), Some("en"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oa_result_pushed_twice_at_once_grants_once() {
    let w = world(ApprovalMode::Oa, false).await;
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let id = oa_instance(&w, &o.id).await;
    let a = w.dingtalk.approval(&id).unwrap();
    let event = |eid: &str| {
        json!({
            "EventType": "bpms_instance_change", "eventId": eid,
            "processInstanceId": id, "processCode": a.process_code, "type": "finish",
            "result": "agree", "staffId": ZHANGSAN, "EventTime": w.dingtalk.now_ms(),
        })
    };
    let (e1, e2) = (event("dup-a"), event("dup-b"));
    let (x, y) = tokio::join!(w.dingtalk.push_event(&e1), w.dingtalk.push_event(&e2));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert!(x.status < 500 && y.status < 500, "{x:?} {y:?}");
    assert!(x.acknowledged || y.acknowledged);
    wait_state(&w, &o.id, State::Active).await;
    settle(&w).await;
    assert_eq!(w.jms.permissions().len(), 1);
    let grants = w
        .dingtalk
        .bot_said(ZHANGSAN)
        .into_iter()
        .filter(|e| e.kind == ConvKind::Message && e.text.contains("已开通"))
        .count();
    assert_eq!(grants, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_url_check_is_answered_with_the_encrypted_success() {
    let w = world(ApprovalMode::Oa, false).await;
    let before = store_shape(&w);
    let ack = w.dingtalk.verify_callback_url().await.unwrap();
    assert!(ack.acknowledged, "{ack:?}");
    assert_eq!(store_shape(&w), before, "a URL check stores nothing");
}

fn payments_system() -> accessbot::domain::policy::SystemConfig {
    accessbot::domain::policy::SystemConfig {
        name: "支付系统".into(),
        aliases: vec!["payments".into()],
        node: Some("/Default/PaymentSystem".into()),
        addresses: vec!["10.10.1.0/24".into()],
        approvers: vec![ZHAOLIU.into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_inside_a_system_goes_to_the_system_approvers() {
    let mut w = world(ApprovalMode::Card, true).await;
    w.config.systems = vec![payments_system()];
    w.start_bot().await.unwrap();
    let o = request(&w, ZHANGSAN, "申请主机 10.10.1.11 只读 1天 原因：对账", 1).await;
    assert_eq!(
        o.approvers,
        vec![user(ZHAOLIU)],
        "the system's approver decides"
    );
    assert!(
        w.dingtalk
            .cards_for(&user(LISI))
            .iter()
            .all(|(_, c)| c.params.get("order_id") != Some(&o.id.0)),
        "the default approver is not asked"
    );
    let (track, _) = card_for(&w, ZHAOLIU, &o.id).await;
    ok(&w
        .dingtalk
        .tap_card(&user(ZHAOLIU), &track, &["approve"], approve_params(&o.id))
        .await
        .unwrap());
    wait_state(&w, &o.id, State::Active).await;
    let p = permission_for(&w.jms, "zhangsan", "10.10.1.11").expect("granted");
    assert!(
        p.accounts.iter().any(|a| a == "readonly"),
        "{:?}",
        p.accounts
    );
    assert_eq!(p.actions, vec!["connect".to_string()]);
    assert!(
        permission_for(&w.jms, "zhangsan", "10.10.1.12").is_none(),
        "only the host asked for"
    );
    let jms_user = w.jms.users().into_iter().find(|u| u.username == "zhangsan");
    assert_eq!(
        jms_user.map(|u| u.email),
        Some("zhangsan@example.com".to_string()),
        "the requester's JumpServer user was created from the directory"
    );
}

// Known failure, left for the workflow to fix: for a whole-system request the workflow hands
// `GrantPlan` no addresses (meaning "grant the node"), which `jumpserver::grant` refuses with
// "no host address given"; the preview says JumpServer cannot be queried and the order fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_request_goes_to_its_approvers_and_grants_its_node() {
    let mut w = world(ApprovalMode::Card, true).await;
    w.config.systems = vec![payments_system()];
    w.start_bot().await.unwrap();
    let o = request(&w, ZHANGSAN, "申请主机 支付系统 只读 1天 原因：对账", 1).await;
    assert_eq!(
        o.approvers,
        vec![user(ZHAOLIU)],
        "the system's approver decides"
    );
    assert!(
        w.dingtalk
            .cards_for(&user(LISI))
            .iter()
            .all(|(_, c)| c.params.get("order_id") != Some(&o.id.0)),
        "the default approver is not asked"
    );
    let (track, _) = card_for(&w, ZHAOLIU, &o.id).await;
    ok(&w
        .dingtalk
        .tap_card(&user(ZHAOLIU), &track, &["approve"], approve_params(&o.id))
        .await
        .unwrap());
    wait_state(&w, &o.id, State::Active).await;
    // Both hosts of the node are reachable through the one permission.
    for host in ["10.10.1.11", "10.10.1.12"] {
        let p = permission_for(&w.jms, "zhangsan", host).unwrap_or_else(|| panic!("{host}"));
        assert!(
            p.accounts.iter().any(|a| a == "readonly"),
            "{:?}",
            p.accounts
        );
        assert_eq!(p.actions, vec!["connect".to_string()]);
    }
    assert_eq!(w.jms.permissions().len(), 1);
    let jms_user = w.jms.users().into_iter().find(|u| u.username == "zhangsan");
    assert_eq!(
        jms_user.map(|u| u.email),
        Some("zhangsan@example.com".to_string()),
        "the requester's JumpServer user was created from the directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvals_required_means_two_distinct_approvers() {
    let mut w = world(ApprovalMode::Card, true).await;
    w.config.approval.default_approvers = vec![LISI.into(), ZHAOLIU.into()];
    w.config.policy.approvals_required = 2;
    w.start_bot().await.unwrap();
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let (t1, _) = card_for(&w, LISI, &o.id).await;
    let (t2, _) = card_for(&w, ZHAOLIU, &o.id).await;
    ok(&w
        .dingtalk
        .tap_card(&user(LISI), &t1, &["approve"], approve_params(&o.id))
        .await
        .unwrap());
    w.dingtalk
        .wait_for(STEP_LIMIT, |_| {
            Some(order(&w, &o.id)).filter(|x| x.approvals == vec![user(LISI)])
        })
        .await
        .expect("first approval recorded");
    settle(&w).await;
    assert_eq!(order(&w, &o.id).state, State::PendingApproval, "one of two");
    assert!(w.jms.permissions().is_empty());
    // The same approver again does not count twice.
    ok(&w
        .dingtalk
        .user_says(&user(LISI), &format!("/approve {}", o.id))
        .await
        .unwrap());
    settle(&w).await;
    assert_eq!(order(&w, &o.id).state, State::PendingApproval);
    ok(&w
        .dingtalk
        .tap_card(&user(ZHAOLIU), &t2, &["approve"], approve_params(&o.id))
        .await
        .unwrap());
    wait_state(&w, &o.id, State::Active).await;
    assert_eq!(w.jms.permissions().len(), 1);
}

/// A robot message body from `sender` as DingTalk posts it, edited by `edit`.
fn robot_body(w: &World, who: &str, text: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let m = w
        .dingtalk
        .prepare_message(&user(who), None, text)
        .expect("directory user");
    let mut body = m.body;
    edit(&mut body);
    body.to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_and_external_senders_get_a_polite_answer_and_no_order() {
    let w = world(ApprovalMode::Card, true).await;
    let dt = &w.dingtalk;
    // A picture: DingTalk posts msgtype "picture" with no text.
    let m = mark(dt);
    let body = robot_body(&w, ZHANGSAN, "(图片)", |b| {
        b["msgtype"] = json!("picture");
        b["content"] = json!({"downloadCode": "dc-1", "pictureDownloadCode": "pdc-1"});
        if let Some(o) = b.as_object_mut() {
            o.remove("text");
        }
    });
    ok(&dt.post_robot_raw(body).await.unwrap());
    let r = bot_says(dt, ZHANGSAN, m, |e| e.kind == ConvKind::Reply)
        .await
        .expect("answered");
    assert!(
        r.text.contains("文字") || r.text.contains("文本"),
        "{}",
        r.text
    );
    // Someone outside the organisation (no senderStaffId) asking for access.
    let m = mark(dt);
    let body = robot_body(&w, WANGWU, HOST_REQ_ZH, |b| {
        b["senderStaffId"] = json!("");
    });
    ok(&dt.post_robot_raw(body).await.unwrap());
    bot_says(dt, WANGWU, m, |e| e.kind == ConvKind::Reply)
        .await
        .expect("answered");
    settle(&w).await;
    assert!(orders_of(&w, ZHANGSAN).is_empty() && orders_of(&w, WANGWU).is_empty());
    assert!(w.orders().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_taps_and_late_cancels_change_nothing() {
    let mut w = world(ApprovalMode::Card, true).await;
    w.config.approval.default_approvers = vec![LISI.into(), ZHAOLIU.into()];
    w.start_bot().await.unwrap();
    let o = request(&w, ZHANGSAN, HOST_REQ_ZH, 1).await;
    let (t1, _) = card_for(&w, LISI, &o.id).await;
    let (t2, _) = card_for(&w, ZHAOLIU, &o.id).await;
    ok(&w
        .dingtalk
        .tap_card(&user(LISI), &t1, &["approve"], approve_params(&o.id))
        .await
        .unwrap());
    wait_state(&w, &o.id, State::Active).await;
    settle(&w).await;
    // zhaoliu's card was stale on his phone: his reject arrives after lisi's approval.
    let m = mark(&w.dingtalk);
    let r = w
        .dingtalk
        .tap_card(
            &user(ZHAOLIU),
            &t2,
            &["reject"],
            reject_params(&o.id, "太晚了"),
        )
        .await
        .unwrap();
    assert!(r.status < 500, "{r:?}");
    bot_says(&w.dingtalk, ZHAOLIU, m, |e| e.text.contains(&o.id.0))
        .await
        .expect("told it was already decided");
    // The requester tries to withdraw a request that is already granted.
    let m = mark(&w.dingtalk);
    ok(&w
        .dingtalk
        .user_says(&user(ZHANGSAN), &format!("/cancel {}", o.id))
        .await
        .unwrap());
    bot_says(&w.dingtalk, ZHANGSAN, m, |e| e.kind == ConvKind::Reply)
        .await
        .expect("told why not");
    settle(&w).await;
    let now = order(&w, &o.id);
    assert_eq!(now.state, State::Active);
    assert_eq!(now.decided_by, Some(user(LISI)));
    assert_eq!(w.jms.permissions().len(), 1);
    assert!(permission_for(&w.jms, "zhangsan", "10.1.2.3").is_some_and(|p| p.is_active));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oa_instances_name_the_routed_approvers_and_show_the_change() {
    let mut w = world(ApprovalMode::Oa, false).await;
    w.config.systems = vec![payments_system()];
    w.start_bot().await.unwrap();
    let o = request(&w, ZHANGSAN, "申请主机 10.10.1.11 只读 1天 原因：对账", 1).await;
    let id = oa_instance(&w, &o.id).await;
    let inst = w.dingtalk.approval(&id).expect("instance");
    assert_eq!(inst.originator, ZHANGSAN);
    assert_eq!(inst.approvers, vec![ZHAOLIU.to_string()]);
    let form: String = inst
        .form
        .iter()
        .map(|(n, v)| format!("{n}={v}\n"))
        .collect();
    for must in [o.id.0.as_str(), "10.10.1.11", "zhangsan", "对账"] {
        assert!(form.contains(must), "form lacks {must}:\n{form}");
    }
    let ack = w
        .dingtalk
        .decide_approval_and_push(&id, true)
        .await
        .unwrap()
        .unwrap();
    assert!(ack.acknowledged);
    wait_state(&w, &o.id, State::Active).await;
    assert!(permission_for(&w.jms, "zhangsan", "10.10.1.11").is_some());
}
