//! The DingTalk OpenAPI client against the simulated DingTalk over real loopback HTTP: token
//! caching and refresh, retries, typed errors, and request bodies compared with the requests
//! the official SDK sends (tests/fixtures/dingtalk_openapi_wire.json).
use accessbot::clock::{ManualClock, SharedClock};
use accessbot::dingtalk::client::{
    ApprovalResult, ApprovalStart, ApprovalStatus, CardDelivery, CardTarget, DingTalkClient,
    DingTalkError, DingUser, PrivateCardData, RetryPolicy,
};
use accessbot::dingtalk::message::{dtmd_send_link, CardButton, OutMessage};
use accessbot::domain::ids::DingUserId;
use accessbot::sandbox::dingtalk::{FaultKind, SimChannel, SimDingTalk, SimDingTalkOptions};
use accessbot::secret::Secret;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const VECTORS: &str = include_str!("../fixtures/dingtalk_openapi_wire.json");

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        throttle_base: Duration::from_millis(5),
        max_throttle_retries: 3,
        server_error_base: Duration::from_millis(5),
        max_server_error_retries: 2,
    }
}

fn user(id: &str) -> DingUser {
    DingUser {
        userid: DingUserId::new(id),
        name: format!("名字{id}"),
        email: Some(format!("{id}@example.com")),
        org_email: None,
        mobile: None,
        job_number: Some(format!("J{id}")),
        dept_ids: vec![1, 42],
        active: true,
    }
}

struct Env {
    sim: SimDingTalk,
    client: DingTalkClient,
    clock: ManualClock,
}

async fn env_with(opts: SimDingTalkOptions) -> Env {
    let clock = ManualClock::new(Timestamp::from_second(1_763_800_000).unwrap());
    let sim = SimDingTalk::start(SimDingTalkOptions {
        clock: Some(clock.clone()),
        ..opts
    })
    .await
    .unwrap();
    for u in ["manager7675", "boss01", "secops01"] {
        sim.add_user(user(u));
    }
    let shared: SharedClock = Arc::new(clock.clone());
    let client =
        DingTalkClient::new(&sim.dingtalk_config(), shared).with_retry_policy(fast_retries());
    Env { sim, client, clock }
}

async fn env() -> Env {
    env_with(SimDingTalkOptions::default()).await
}

fn vector(id: &str) -> Value {
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    all["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("vector {id} missing"))
}

/// The vector's options with the SDK's app key and agent id, so bodies compare field by field.
fn sdk_opts() -> SimDingTalkOptions {
    let tok = vector("get_access_token");
    SimDingTalkOptions {
        app_key: tok["request"]["body"]["appKey"].as_str().unwrap().into(),
        app_secret: tok["request"]["body"]["appSecret"].as_str().unwrap().into(),
        agent_id: 41605932,
        ..SimDingTalkOptions::default()
    }
}

/// `msgParam` compared as JSON: the SDK vectors were produced with Python's spaced separators.
fn normalise_msg_param(mut body: Value) -> Value {
    if let Some(p) = body.get("msgParam").and_then(Value::as_str) {
        body["msgParam"] = serde_json::from_str(p).unwrap();
    }
    body
}

#[tokio::test]
async fn one_token_serves_many_calls_on_both_hosts() {
    let e = env().await;
    let u = e.client.get_user(&DingUserId::new("boss01")).await.unwrap();
    assert_eq!(u, user("boss01"));
    e.client
        .send_to_users(&[DingUserId::new("boss01")], &OutMessage::text("hi"))
        .await
        .unwrap();
    e.client
        .get_user(&DingUserId::new("secops01"))
        .await
        .unwrap();
    assert_eq!(e.sim.token_requests(), 1);
    assert_eq!(e.client.token_fetch_count(), 1);
    let legacy = e.sim.calls_to("/topapi/v2/user/get");
    let new = e.sim.calls_to("/v1.0/robot/oToMessages/batchSend");
    assert_eq!(legacy.len(), 2);
    // Legacy host: token in the query; new host: token in the header, never in the query.
    assert!(legacy[0].query.contains_key("access_token"));
    assert!(!new[0].query.contains_key("access_token"));
    assert_eq!(legacy[0].token, new[0].token);
    assert_eq!(
        legacy[0].body,
        json!({"userid": "boss01", "language": "zh_CN"})
    );
}

#[tokio::test]
async fn concurrent_first_calls_fetch_exactly_one_token() {
    let e = env().await;
    let calls = (0..10).map(|_| {
        let c = e.client.clone();
        async move { c.get_user(&DingUserId::new("manager7675")).await }
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(e.sim.token_requests(), 1);
    assert_eq!(e.sim.calls_to("/topapi/v2/user/get").len(), 10);
}

#[tokio::test]
async fn token_refreshed_before_expiry_by_clock() {
    let e = env().await;
    e.client.get_user(&DingUserId::new("boss01")).await.unwrap();
    // Inside the 300 s margin: the client asks again, the sim hands back the same token.
    e.clock.advance(SignedDuration::from_secs(7200 - 299));
    e.client.get_user(&DingUserId::new("boss01")).await.unwrap();
    assert_eq!(e.sim.token_requests(), 2);
    // Well past expiry: a new token, and no call was ever rejected.
    e.clock.advance(SignedDuration::from_secs(7200 * 2));
    e.client.get_user(&DingUserId::new("boss01")).await.unwrap();
    assert_eq!(e.sim.token_requests(), 3);
    let toks: Vec<_> = e
        .sim
        .calls_to("/topapi/v2/user/get")
        .into_iter()
        .map(|c| c.token.unwrap())
        .collect();
    assert_eq!(toks[0], toks[1]);
    assert_ne!(toks[1], toks[2]);
}

#[tokio::test]
async fn token_revoked_mid_run_is_refetched_once_and_call_retried() {
    let e = env().await;
    let id = e
        .client
        .start_approval(ApprovalStart {
            process_code: "PROC-1".into(),
            originator: DingUserId::new("manager7675"),
            dept_id: -1,
            approvers: vec![],
            form: vec![("目标主机".into(), "10.0.0.5".into())],
        })
        .await
        .unwrap();
    e.sim.expire_tokens();
    let st = e.client.get_approval(&id).await.unwrap();
    assert_eq!(st.status, ApprovalStatus::Running);
    assert_eq!(e.sim.token_requests(), 2);
    let gets = e.sim.calls_to("/v1.0/workflow/processInstances");
    // start, rejected get, retried get
    assert_eq!(gets.len(), 3);
    assert_ne!(gets[1].token, gets[2].token);

    // A token that keeps failing: one refetch, one retry, then a typed error.
    e.sim.fail_next(
        "/v1.0/workflow/processInstances",
        2,
        FaultKind::InvalidToken,
    );
    let err = e.client.get_approval(&id).await.unwrap_err();
    assert!(matches!(err, DingTalkError::Auth { ref code, .. } if code == "InvalidAuthentication"));
    assert_eq!(e.sim.token_requests(), 3);

    // Same rule on the legacy host (errcode 88).
    e.sim
        .fail_next("/topapi/v2/user/get", 1, FaultKind::InvalidToken);
    e.client.get_user(&DingUserId::new("boss01")).await.unwrap();
    assert_eq!(e.sim.token_requests(), 4);
}

#[tokio::test]
async fn wrong_credentials_give_typed_auth_error() {
    let e = env().await;
    let mut cfg = e.sim.dingtalk_config();
    cfg.app_secret = "wrong".into();
    let shared: SharedClock = Arc::new(e.clock.clone());
    let bad = DingTalkClient::new(&cfg, shared);
    let err = bad.get_user(&DingUserId::new("boss01")).await.unwrap_err();
    match &err {
        DingTalkError::Auth { code, message } => {
            assert_eq!(code, "invalidClientIdOrSecret");
            assert_eq!(message, "无效的clientId或者clientSecret");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    // Neither the secret nor any token shows up in the error text.
    assert!(!format!("{err} {err:?}").contains("wrong"));
    assert!(e.sim.calls_to("/topapi/v2/user/get").is_empty());
}

#[tokio::test]
async fn throttled_calls_are_retried_then_give_up() {
    let e = env().await;
    let to = [DingUserId::new("boss01")];
    e.sim
        .fail_next("/v1.0/robot/oToMessages/batchSend", 2, FaultKind::Throttle);
    let r = e
        .client
        .send_to_users(&to, &OutMessage::text("x"))
        .await
        .unwrap();
    assert_eq!(r.process_query_keys.len(), 1);
    assert_eq!(e.sim.calls_to("/v1.0/robot/oToMessages/batchSend").len(), 3);
    assert_eq!(e.sim.messages_to(&to[0]).len(), 1);

    e.sim
        .fail_next("/v1.0/robot/oToMessages/batchSend", 10, FaultKind::Throttle);
    let err = e
        .client
        .send_to_users(&to, &OutMessage::text("y"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DingTalkError::Throttled { ref code } if code == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi")
    );
    // 1 try + 3 retries
    assert_eq!(
        e.sim.calls_to("/v1.0/robot/oToMessages/batchSend").len(),
        3 + 4
    );

    // Legacy throttle (errcode 90018) follows the same rule.
    e.sim
        .fail_next("/topapi/v2/user/get", 1, FaultKind::Throttle);
    e.client.get_user(&DingUserId::new("boss01")).await.unwrap();
}

#[tokio::test]
async fn permission_denied_is_typed_and_not_retried() {
    let e = env().await;
    e.sim.fail_next(
        "/v1.0/robot/groupMessages/send",
        1,
        FaultKind::PermissionDenied,
    );
    e.sim.add_group("cid1==");
    let err = e
        .client
        .send_to_group("cid1==", &OutMessage::text("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DingTalkError::PermissionDenied { ref code, .. } if code == "Forbidden.AccessDenied.AccessTokenPermissionDenied")
    );
    assert_eq!(e.sim.calls_to("/v1.0/robot/groupMessages/send").len(), 1);
    e.sim
        .fail_next("/topapi/v2/user/get", 1, FaultKind::PermissionDenied);
    let err = e
        .client
        .get_user(&DingUserId::new("boss01"))
        .await
        .unwrap_err();
    assert!(matches!(err, DingTalkError::PermissionDenied { .. }));
}

#[tokio::test]
async fn server_errors_retried_only_for_idempotent_calls() {
    let e = env().await;
    let req = ApprovalStart {
        process_code: "PROC-1".into(),
        originator: DingUserId::new("manager7675"),
        dept_id: -1,
        approvers: vec![DingUserId::new("boss01")],
        form: vec![("申请理由".into(), "排查".into())],
    };
    e.sim
        .fail_next("/v1.0/workflow/processInstances", 1, FaultKind::ServerError);
    let err = e.client.start_approval(req.clone()).await.unwrap_err();
    assert!(matches!(err, DingTalkError::Api { status: 500, .. }));
    assert!(
        e.sim.approvals().is_empty(),
        "start must not be retried blindly"
    );
    let id = e.client.start_approval(req).await.unwrap();
    e.sim
        .fail_next("/v1.0/workflow/processInstances", 2, FaultKind::ServerError);
    assert_eq!(
        e.client.get_approval(&id).await.unwrap().status,
        ApprovalStatus::Running
    );
    // a failed token fetch is retried even for a create: nothing was sent yet
    e.sim.expire_tokens();
    e.sim
        .fail_next("/v1.0/oauth2/accessToken", 1, FaultKind::ServerError);
    let before = e.sim.approvals().len();
    let again = ApprovalStart {
        process_code: "PROC-1".into(),
        originator: DingUserId::new("manager7675"),
        dept_id: -1,
        approvers: vec![],
        form: vec![("申请理由".into(), "再次".into())],
    };
    e.client.start_approval(again).await.unwrap();
    assert_eq!(e.sim.approvals().len(), before + 1);
    // legacy -1 (system busy) on an idempotent read is retried too
    e.sim
        .fail_next("/topapi/v2/user/get", 1, FaultKind::ServerError);
    e.client.get_user(&DingUserId::new("boss01")).await.unwrap();
}

#[tokio::test]
async fn request_bodies_match_the_official_sdk() {
    let e = env_with(sdk_opts()).await;
    // token
    e.client.get_user(&DingUserId::new("boss01")).await.unwrap();
    let tok = e.sim.calls_to("/v1.0/oauth2/accessToken");
    assert_eq!(tok[0].body, vector("get_access_token")["request"]["body"]);
    assert_eq!(tok[0].method, "POST");

    // batchSend
    let v = vector("robot_batch_send_oto");
    e.client
        .send_to_users(
            &[DingUserId::new("manager7675")],
            &OutMessage::markdown("申请已通过", "### 已开通\n- 主机: 10.0.0.5"),
        )
        .await
        .unwrap();
    let got = &e.sim.calls_to("/v1.0/robot/oToMessages/batchSend")[0];
    assert_eq!(
        normalise_msg_param(got.body.clone()),
        normalise_msg_param(v["request"]["body"].clone())
    );
    assert!(got.body["msgParam"].is_string());

    // group send with a single dtmd:// button
    let v = vector("robot_group_send");
    e.sim.add_group("cidp4GhxxxxVCQ==");
    let pqk = e
        .client
        .send_to_group(
            "cidp4GhxxxxVCQ==",
            &OutMessage::ActionCard {
                title: "审批".into(),
                text: "点我".into(),
                buttons: vec![CardButton::new("查看", dtmd_send_link("查看"))],
            },
        )
        .await
        .unwrap();
    assert!(!pqk.is_empty());
    let got = &e.sim.calls_to("/v1.0/robot/groupMessages/send")[0];
    assert_eq!(
        normalise_msg_param(got.body.clone()),
        normalise_msg_param(v["request"]["body"].clone())
    );

    // card, 1:1 robot chat, HTTP callbacks, approver-only private data
    let want = vector("card_create_and_deliver_robot_1to1")["request"]["body"].clone();
    let params: BTreeMap<String, String> =
        serde_json::from_value(want["cardData"]["cardParamMap"].clone()).unwrap();
    let private: PrivateCardData = BTreeMap::from([(
        DingUserId::new("boss01"),
        BTreeMap::from([("canApprove".to_string(), "true".to_string())]),
    )]);
    e.client
        .create_and_deliver_card_with_private(
            CardDelivery {
                template_id: "2c278d79-fc0b-41b4-b14e-8b8089dc08e8.schema".into(),
                out_track_id: "req-20231115-0001".into(),
                params,
                to: CardTarget::User(DingUserId::new("manager7675")),
                callback_route_key: Some("jmsbot_card".into()),
            },
            &private,
        )
        .await
        .unwrap();
    let got = &e.sim.calls_to("/v1.0/card/instances/createAndDeliver")[0];
    assert_eq!(got.body, want);
    assert_eq!(
        e.sim.card("req-20231115-0001").unwrap().private["boss01"]["canApprove"],
        "true"
    );

    // card, group, Stream callbacks (atUserIds is not produced by this client)
    let mut want = vector("card_create_and_deliver_group")["request"]["body"].clone();
    want["imGroupOpenDeliverModel"]
        .as_object_mut()
        .unwrap()
        .remove("atUserIds");
    e.client
        .create_and_deliver_card(CardDelivery {
            template_id: "2c278d79-fc0b-41b4-b14e-8b8089dc08e8.schema".into(),
            out_track_id: "req-20231115-0002".into(),
            params: BTreeMap::from([("title".to_string(), "t".to_string())]),
            to: CardTarget::Group {
                open_conversation_id: "cidp4GhxxxxVCQ==".into(),
                recipients: vec![],
            },
            callback_route_key: None,
        })
        .await
        .unwrap();
    let got = &e.sim.calls_to("/v1.0/card/instances/createAndDeliver")[1];
    assert_eq!(got.body, want);

    // card update
    e.client
        .update_card(
            "req-20231115-0001",
            BTreeMap::from([("status".to_string(), "approved".to_string())]),
        )
        .await
        .unwrap();
    let got = &e.sim.calls_to("/v1.0/card/instances")[0];
    assert_eq!(got.method, "PUT");
    assert_eq!(got.body, vector("card_update")["request"]["body"]);

    // approval start (ccList/ccPosition and componentType/details are not produced)
    let mut want = vector("start_process_instance")["request"]["body"].clone();
    let obj = want.as_object_mut().unwrap();
    obj.remove("ccList");
    obj.remove("ccPosition");
    let mut form = Vec::new();
    for c in want["formComponentValues"].as_array_mut().unwrap() {
        let c = c.as_object_mut().unwrap();
        c.remove("componentType");
        c.remove("details");
        form.push((
            c["name"].as_str().unwrap().to_owned(),
            c["value"].as_str().unwrap().to_owned(),
        ));
    }
    let id = e
        .client
        .start_approval(ApprovalStart {
            process_code: "PROC-JMS-ACCESS-01".into(),
            originator: DingUserId::new("manager7675"),
            dept_id: -1,
            approvers: vec![DingUserId::new("boss01")],
            form,
        })
        .await
        .unwrap();
    let got = &e.sim.calls_to("/v1.0/workflow/processInstances")[0];
    assert_eq!(got.body, want);

    // approval get: method, path and query as the SDK sends them
    e.client.get_approval(&id).await.unwrap();
    let got = &e.sim.calls_to("/v1.0/workflow/processInstances")[1];
    assert_eq!(got.method, "GET");
    assert_eq!(got.body, Value::Null);
    assert_eq!(got.query.get("processInstanceId"), Some(&id));
    let sdk_path = vector("get_process_instance")["request"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(sdk_path.starts_with(&format!("{}?processInstanceId=", got.path)));

    // terminate as the system
    e.clock.advance(SignedDuration::from_secs(16));
    e.client
        .terminate_approval(&id, None, "revoked by bot")
        .await
        .unwrap();
    let got = &e.sim.calls_to("/v1.0/workflow/processInstances/terminate")[0];
    let mut want = vector("terminate_process_instance")["request"]["body"].clone();
    want["processInstanceId"] = json!(id);
    assert_eq!(got.body, want);

    // card callback registration
    let want = vector("card_register_callback")["request"]["body"].clone();
    e.client
        .register_card_callback(
            "jmsbot_card",
            "https://bot.example.com/dingtalk/card",
            &Secret::new("s3cr3t"),
            true,
        )
        .await
        .unwrap();
    let got = &e.sim.calls_to("/v1.0/card/callbacks/register")[0];
    assert_eq!(got.body, want);
    assert_eq!(
        e.sim.card_callback("jmsbot_card"),
        Some((
            "https://bot.example.com/dingtalk/card".into(),
            Some("s3cr3t".into())
        ))
    );

    // process code lookup: same path and (percent-encoded) query as the SDK
    e.sim
        .add_process("JumpServer访问申请", "PROC-JMS-ACCESS-01");
    let code = e
        .client
        .process_code_by_name("JumpServer访问申请")
        .await
        .unwrap();
    assert_eq!(code, "PROC-JMS-ACCESS-01");
    let got = e
        .sim
        .calls_to("/v1.0/workflow/processCentres/schemaNames/processCodes")
        .remove(0);
    assert_eq!(got.method, "GET");
    let sdk = vector("get_process_code_by_name")["request"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let sdk_url = url::Url::parse(&format!("http://x{sdk}")).unwrap();
    let sdk_query: BTreeMap<String, String> = sdk_url.query_pairs().into_owned().collect();
    assert_eq!(sdk_url.path(), got.path);
    assert_eq!(sdk_query, got.query);

    // every new-API call carried the token in the SDK's header
    for c in e.sim.calls() {
        if c.path.starts_with("/v1.0/") && c.path != "/v1.0/oauth2/accessToken" {
            assert!(c.token.is_some(), "{} without token", c.path);
        }
    }
}

#[tokio::test]
async fn batch_send_is_chunked_by_twenty() {
    let e = env().await;
    let users: Vec<DingUserId> = (0..45)
        .map(|i| DingUserId::new(format!("u{i:02}")))
        .collect();
    for u in &users[..44] {
        e.sim.add_user(user(u.as_str()));
    }
    // u44 is unknown to the directory; u03 is throttled by DingTalk
    e.sim.set_flow_controlled(&users[3], true);
    let report = e
        .client
        .send_to_users(&users, &OutMessage::markdown("标题", "正文"))
        .await
        .unwrap();
    let calls = e.sim.calls_to("/v1.0/robot/oToMessages/batchSend");
    let sizes: Vec<usize> = calls
        .iter()
        .map(|c| c.body["userIds"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![20, 20, 5]);
    assert_eq!(report.process_query_keys.len(), 3);
    assert_eq!(report.invalid_user_ids, vec![users[44].clone()]);
    assert_eq!(report.flow_controlled_user_ids, vec![users[3].clone()]);
    assert_eq!(e.sim.messages_to(&users[0]).len(), 1);
    assert!(e.sim.messages_to(&users[3]).is_empty());
    let m = &e.sim.messages_to(&users[40])[0];
    assert_eq!(m.msg_key, "sampleMarkdown");
    assert_eq!(m.param, json!({"title": "标题", "text": "正文"}));
}

#[tokio::test]
async fn every_message_type_reaches_the_sim_as_sent() {
    let e = env().await;
    let to = [DingUserId::new("boss01")];
    let msgs = [
        OutMessage::Text {
            content: "你好".into(),
            at_user_ids: vec![DingUserId::new("boss01")],
        },
        OutMessage::markdown("t", "**b**"),
        OutMessage::ActionCard {
            title: "确认".into(),
            text: "请选择".into(),
            buttons: vec![
                CardButton::new("确认提交", dtmd_send_link("确认 REQ-42")),
                CardButton::new("取消", dtmd_send_link("取消 REQ-42")),
            ],
        },
    ];
    let url = e.sim.webhook_url_for("sess-1");
    for m in &msgs {
        e.client.send_to_users(&to, m).await.unwrap();
        e.client.reply_webhook(&url, m).await.unwrap();
    }
    let got = e.sim.messages_to(&to[0]);
    let keys: Vec<_> = got.iter().map(|m| m.msg_key.as_str()).collect();
    assert_eq!(keys, ["sampleText", "sampleMarkdown", "sampleActionCard2"]);
    assert_eq!(
        got[2].param["actionURL1"],
        "dtmd://dingtalkclient/sendMessage?content=%E7%A1%AE%E8%AE%A4%20REQ-42"
    );
    let hooks = e.sim.webhook_messages("sess-1");
    assert_eq!(hooks.len(), 3);
    assert_eq!(hooks[0]["at"]["atUserIds"], json!(["boss01"]));
    assert_eq!(
        hooks[2],
        json!({"msgtype":"actionCard","actionCard":{"title":"确认","text":"请选择","btnOrientation":"1",
          "btns":[{"title":"确认提交","actionURL":"dtmd://dingtalkclient/sendMessage?content=%E7%A1%AE%E8%AE%A4%20REQ-42"},
                  {"title":"取消","actionURL":"dtmd://dingtalkclient/sendMessage?content=%E5%8F%96%E6%B6%88%20REQ-42"}]}})
    );
    // the webhook needs no token
    assert!(e
        .sim
        .calls_to("/robot/sendBySession")
        .iter()
        .all(|c| c.token.is_none()));
    // an unknown session is a typed legacy error
    let bad = format!("{}/robot/sendBySession?session=nope", e.sim.base_url());
    let err = e.client.reply_webhook(&bad, &msgs[0]).await.unwrap_err();
    assert!(matches!(err, DingTalkError::Legacy { errcode, .. } if errcode != 0));
    // a message over the limits never leaves the process
    let six = OutMessage::ActionCard {
        title: "t".into(),
        text: "x".into(),
        buttons: (0..6)
            .map(|i| CardButton::new(format!("{i}"), "u"))
            .collect(),
    };
    assert!(matches!(
        e.client.send_to_users(&to, &six).await,
        Err(DingTalkError::Message(_))
    ));
}

#[tokio::test]
async fn cards_are_idempotent_by_out_track_id() {
    let e = env().await;
    let req = CardDelivery {
        template_id: "tpl.schema".into(),
        out_track_id: "R261122-007".into(),
        params: BTreeMap::from([
            ("status".into(), "pending".into()),
            ("host".into(), "h1".into()),
        ]),
        to: CardTarget::User(DingUserId::new("boss01")),
        callback_route_key: None,
    };
    e.client.create_and_deliver_card(req.clone()).await.unwrap();
    e.client.create_and_deliver_card(req.clone()).await.unwrap();
    assert_eq!(
        e.sim
            .calls_to("/v1.0/card/instances/createAndDeliver")
            .len(),
        2
    );
    e.client
        .update_card(
            "R261122-007",
            BTreeMap::from([("status".into(), "approved".into())]),
        )
        .await
        .unwrap();
    let card = e.sim.card("R261122-007").unwrap();
    assert_eq!(card.params["status"], "approved");
    assert_eq!(card.params["host"], "h1", "update merges by key");
    assert_eq!(card.open_space_id, "dtv1.card//IM_ROBOT.boss01");
    assert_eq!(card.callback_type.as_deref(), Some("STREAM"));

    // private data: merged per user by key, other users untouched
    let private = |u: &str, k: &str, v: &str| -> PrivateCardData {
        BTreeMap::from([(
            DingUserId::new(u),
            BTreeMap::from([(k.to_string(), v.to_string())]),
        )])
    };
    e.client
        .update_card_with_private(
            "R261122-007",
            BTreeMap::new(),
            &private("boss01", "canApprove", "true"),
        )
        .await
        .unwrap();
    e.client
        .update_card_with_private(
            "R261122-007",
            BTreeMap::new(),
            &private("boss01", "decided", "true"),
        )
        .await
        .unwrap();
    let card = e.sim.card("R261122-007").unwrap();
    assert_eq!(card.private["boss01"].len(), 2);
    assert_eq!(
        card.params["status"], "approved",
        "empty public update keeps data"
    );

    // a recipient DingTalk cannot reach → deliverResults[0].success=false → typed error
    let err = e
        .client
        .create_and_deliver_card(CardDelivery {
            out_track_id: "other".into(),
            to: CardTarget::User(DingUserId::new("ghost")),
            ..req
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, DingTalkError::CardNotDelivered { ref space_id, .. } if space_id == "ghost")
    );
    // updating a card that was never created is an API error
    let err = e
        .client
        .update_card("nope", BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, DingTalkError::Api { status: 400, .. }));
}

#[tokio::test]
async fn approval_lifecycle_start_get_decide_terminate() {
    let e = env().await;
    let start = ApprovalStart {
        process_code: "PROC-JMS-ACCESS-01".into(),
        originator: DingUserId::new("manager7675"),
        dept_id: -1,
        approvers: vec![DingUserId::new("boss01"), DingUserId::new("secops01")],
        form: vec![("目标主机".into(), "10.0.0.5".into())],
    };
    let id = e.client.start_approval(start.clone()).await.unwrap();
    let body = &e.sim.calls_to("/v1.0/workflow/processInstances")[0].body;
    assert_eq!(
        body["approvers"],
        json!([{"actionType":"OR","userIds":["boss01","secops01"]}])
    );
    assert_eq!(body["microappAgentId"], json!(e.sim.options().agent_id));
    let st = e.client.get_approval(&id).await.unwrap();
    assert_eq!((st.status, st.result), (ApprovalStatus::Running, None));
    assert!(e.sim.decide_approval(&id, true));
    let st = e.client.get_approval(&id).await.unwrap();
    assert!(st.is_approved());
    assert_eq!(st.result, Some(ApprovalResult::Agree));
    // completed instances cannot be revoked
    e.clock.advance(SignedDuration::from_secs(20));
    assert!(e.client.terminate_approval(&id, None, "x").await.is_err());

    let id2 = e.client.start_approval(start.clone()).await.unwrap();
    assert!(e.sim.decide_approval(&id2, false));
    let st = e.client.get_approval(&id2).await.unwrap();
    assert_eq!(st.result, Some(ApprovalResult::Refuse));
    assert!(!st.is_approved());

    // terminate: refused within 15 s of start, accepted after; the originator may revoke
    let id3 = e.client.start_approval(start).await.unwrap();
    let err = e
        .client
        .terminate_approval(&id3, None, "too early")
        .await
        .unwrap_err();
    assert!(matches!(err, DingTalkError::Api { status: 400, .. }));
    e.clock.advance(SignedDuration::from_secs(16));
    let stranger = DingUserId::new("boss01");
    assert!(e
        .client
        .terminate_approval(&id3, Some(&stranger), "r")
        .await
        .is_err());
    let originator = DingUserId::new("manager7675");
    e.client
        .terminate_approval(&id3, Some(&originator), "申请人撤销")
        .await
        .unwrap();
    let st = e.client.get_approval(&id3).await.unwrap();
    assert_eq!(st.status, ApprovalStatus::Terminated);
    assert_eq!(
        e.sim.approval(&id3).unwrap().remark.as_deref(),
        Some("申请人撤销")
    );

    // an unknown instance is a typed API error
    let err = e.client.get_approval("no-such").await.unwrap_err();
    assert!(
        matches!(err, DingTalkError::Api { ref code, .. } if code == "processInstanceNotExist")
    );
}

#[tokio::test]
async fn users_and_work_notices() {
    let e = env().await;
    let err = e
        .client
        .get_user(&DingUserId::new("nobody"))
        .await
        .unwrap_err();
    assert!(matches!(err, DingTalkError::Legacy { errcode, .. } if errcode != 0));

    let to = [DingUserId::new("boss01"), DingUserId::new("secops01")];
    let tasks = e
        .client
        .send_work_notice(&to, &OutMessage::markdown("已开通", "主机 10.0.0.5"))
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    let call = &e
        .sim
        .calls_to("/topapi/message/corpconversation/asyncsend_v2")[0];
    assert_eq!(call.body["userid_list"], "boss01,secops01");
    assert_eq!(call.body["agent_id"], json!(e.sim.options().agent_id));
    let got = e.sim.messages_to(&to[1]);
    assert_eq!(got[0].channel, SimChannel::WorkNotice);
    assert_eq!(
        got[0].param,
        json!({"title":"已开通","text":"主机 10.0.0.5"})
    );

    let mut cfg = e.sim.dingtalk_config();
    cfg.agent_id = None;
    let shared: SharedClock = Arc::new(e.clock.clone());
    let no_agent = DingTalkClient::new(&cfg, shared);
    assert!(matches!(
        no_agent.send_work_notice(&to, &OutMessage::text("x")).await,
        Err(DingTalkError::Config(_))
    ));
}
