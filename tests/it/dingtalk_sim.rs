//! The DingTalk simulator spoken to with plain HTTP (no client code): it must answer with the
//! real error shapes (reference §0, §1, §9 and the SDK vectors) and enforce the real limits.
use accessbot::clock::ManualClock;
use accessbot::dingtalk::client::DingUser;
use accessbot::domain::ids::DingUserId;
use accessbot::sandbox::dingtalk::{FaultKind, SimDingTalk, SimDingTalkOptions};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

const VECTORS: &str = include_str!("../fixtures/dingtalk_openapi_wire.json");

fn vector(id: &str) -> Value {
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    all["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap()
}

async fn sim(qps: Option<u32>) -> (SimDingTalk, ManualClock, reqwest::Client) {
    let clock = ManualClock::new(Timestamp::from_second(1_763_800_000).unwrap());
    let sim = SimDingTalk::start(SimDingTalkOptions {
        clock: Some(clock.clone()),
        qps_limit: qps,
        ..SimDingTalkOptions::default()
    })
    .await
    .unwrap();
    sim.add_user(DingUser {
        userid: DingUserId::new("u1"),
        name: "张三".into(),
        email: None,
        org_email: Some("zhangsan@corp.example".into()),
        mobile: None,
        job_number: None,
        dept_ids: vec![1],
        active: true,
    });
    (sim, clock, reqwest::Client::new())
}

async fn token(sim: &SimDingTalk, http: &reqwest::Client) -> String {
    let o = sim.options();
    let v: Value = http
        .post(format!("{}/v1.0/oauth2/accessToken", sim.base_url()))
        .json(&json!({"appKey": o.app_key, "appSecret": o.app_secret}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["expireIn"], 7200);
    v["accessToken"].as_str().unwrap().to_owned()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn token_endpoints_reuse_then_rotate_and_refuse_bad_credentials() {
    let (sim, clock, http) = sim(None).await;
    let t1 = token(&sim, &http).await;
    let (st, v) = send(http.get(format!(
        "{}/gettoken?appkey={}&appsecret={}",
        sim.base_url(),
        sim.options().app_key,
        sim.options().app_secret
    )))
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["access_token"], t1.as_str(), "same token while valid");
    clock.advance(SignedDuration::from_secs(7201));
    assert_ne!(token(&sim, &http).await, t1, "a new token after expiry");

    let (st, v) = send(
        http.post(format!("{}/v1.0/oauth2/accessToken", sim.base_url()))
            .json(&json!({"appKey": sim.options().app_key, "appSecret": "nope"})),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(v["code"], "invalidClientIdOrSecret");
    assert!(v["requestid"].is_string());
    let (_, v) = send(http.get(format!("{}/gettoken?appkey=x&appsecret=y", sim.base_url()))).await;
    assert_eq!(v["errcode"], 40096);
    let (_, v) = send(http.get(format!("{}/gettoken", sim.base_url()))).await;
    assert_eq!(v["errcode"], 40035);
}

#[tokio::test]
async fn auth_errors_have_the_real_shapes() {
    let (sim, _clock, http) = sim(None).await;
    let url = format!(
        "{}/v1.0/workflow/processInstances?processInstanceId=x",
        sim.base_url()
    );
    let (st, v) = send(http.get(&url)).await;
    assert_eq!(st, 400);
    assert_eq!(v["code"], "AuthenticationFailed.MissingParameter");
    // ?access_token= is ignored by the new API
    let (st, v) = send(http.get(format!("{url}&access_token=whatever"))).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("AuthenticationFailed.MissingParameter"))
    );

    // matches the SDK vector's error data
    let want = &vector("error_invalid_token")["sdk_result"]["data"];
    let (st, v) = send(
        http.get(&url)
            .header("x-acs-dingtalk-access-token", "bad-token"),
    )
    .await;
    assert_eq!(st as i64, want["statusCode"].as_i64().unwrap());
    assert_eq!(v["code"], want["code"]);
    assert_eq!(v["message"], want["message"]);
    assert!(v["requestid"].is_string());

    let legacy = format!("{}/topapi/v2/user/get", sim.base_url());
    let (st, v) = send(http.post(&legacy).json(&json!({"userid":"u1"}))).await;
    assert_eq!(st, 200);
    assert_eq!(
        (v["errcode"].as_i64(), v["sub_code"].as_str()),
        (Some(88), Some("40000"))
    );
    // the legacy API ignores the header
    let t = token(&sim, &http).await;
    let (_, v) = send(
        http.post(&legacy)
            .header("x-acs-dingtalk-access-token", &t)
            .json(&json!({"userid":"u1"})),
    )
    .await;
    assert_eq!(v["errcode"], 88);
    let (_, v) = send(
        http.post(format!("{legacy}?access_token=bad"))
            .json(&json!({"userid":"u1"})),
    )
    .await;
    assert_eq!(
        (v["errcode"].as_i64(), v["sub_code"].as_str()),
        (Some(88), Some("40014"))
    );
    let (_, v) = send(
        http.post(format!("{legacy}?access_token={t}"))
            .json(&json!({"userid":"u1"})),
    )
    .await;
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["result"]["org_email"], "zhangsan@corp.example");
    assert_eq!(v["result"]["dept_id_list"], json!([1]));
    assert!(
        v["result"].get("email").is_none(),
        "absent fields stay absent"
    );
}

#[tokio::test]
async fn qps_limit_per_api_per_second() {
    let (sim, clock, http) = sim(Some(3)).await;
    let t = token(&sim, &http).await;
    let url = format!("{}/v1.0/robot/oToMessages/batchSend", sim.base_url());
    let body = json!({"robotCode": sim.options().app_key, "userIds": ["u1"],
                      "msgKey": "sampleText", "msgParam": "{\"content\":\"x\"}"});
    for _ in 0..3 {
        let (st, _) = send(
            http.post(&url)
                .header("x-acs-dingtalk-access-token", &t)
                .json(&body),
        )
        .await;
        assert_eq!(st, 200);
    }
    let want = &vector("error_qps_limit")["sdk_result"]["data"];
    let (st, v) = send(
        http.post(&url)
            .header("x-acs-dingtalk-access-token", &t)
            .json(&body),
    )
    .await;
    assert_eq!(st as i64, want["statusCode"].as_i64().unwrap());
    assert_eq!(v["code"], want["code"]);
    // another API has its own budget
    let (st, _) = send(
        http.get(format!(
            "{}/v1.0/workflow/processInstances?processInstanceId=x",
            sim.base_url()
        ))
        .header("x-acs-dingtalk-access-token", &t),
    )
    .await;
    assert_eq!(st, 400, "not throttled, just an unknown instance");
    clock.advance(SignedDuration::from_secs(1));
    let (st, _) = send(
        http.post(&url)
            .header("x-acs-dingtalk-access-token", &t)
            .json(&body),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(sim.messages_to(&DingUserId::new("u1")).len(), 4);
}

#[tokio::test]
async fn robot_send_limits_are_enforced() {
    let (sim, _clock, http) = sim(None).await;
    let t = token(&sim, &http).await;
    let url = format!("{}/v1.0/robot/oToMessages/batchSend", sim.base_url());
    let post = |b: Value| {
        http.post(&url)
            .header("x-acs-dingtalk-access-token", &t)
            .json(&b)
    };
    let app = sim.options().app_key.clone();
    // msgParam as an object instead of a JSON string
    let (st, v) = send(post(
        json!({"robotCode": app, "userIds": ["u1"], "msgKey": "sampleText",
                                    "msgParam": {"content": "x"}}),
    ))
    .await;
    assert_eq!(st, 400);
    assert!(v["code"].is_string() && v["message"].is_string());
    // 21 recipients
    let many: Vec<String> = (0..21).map(|i| format!("u{i}")).collect();
    let (st, _) = send(post(
        json!({"robotCode": app, "userIds": many, "msgKey": "sampleText",
                                    "msgParam": "{\"content\":\"x\"}"}),
    ))
    .await;
    assert_eq!(st, 400);
    // missing template field
    let (st, _) = send(post(json!({"robotCode": app, "userIds": ["u1"], "msgKey": "sampleActionCard2",
                                    "msgParam": "{\"title\":\"t\",\"text\":\"x\",\"actionTitle1\":\"a\"}"}))).await;
    assert_eq!(st, 400);
    // no sampleActionCard1
    let (st, _) = send(post(
        json!({"robotCode": app, "userIds": ["u1"], "msgKey": "sampleActionCard1",
                                    "msgParam": "{\"title\":\"t\",\"text\":\"x\"}"}),
    ))
    .await;
    assert_eq!(st, 400);
    // wrong robot
    let (st, _) = send(post(
        json!({"robotCode": "other", "userIds": ["u1"], "msgKey": "sampleText",
                                    "msgParam": "{\"content\":\"x\"}"}),
    ))
    .await;
    assert_eq!(st, 400);
    assert!(sim.messages_to(&DingUserId::new("u1")).is_empty());
    // a robot not in the group
    let (st, _) = send(
        http.post(format!("{}/v1.0/robot/groupMessages/send", sim.base_url()))
            .header("x-acs-dingtalk-access-token", &t)
            .json(
                &json!({"robotCode": app, "openConversationId": "cidX", "msgKey": "sampleText",
                          "msgParam": "{\"content\":\"x\"}"}),
            ),
    )
    .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn card_and_webhook_validation() {
    let (sim, clock, http) = sim(None).await;
    let t = token(&sim, &http).await;
    let url = format!("{}/v1.0/card/instances/createAndDeliver", sim.base_url());
    let base = json!({"cardTemplateId": "x.schema", "outTrackId": "c1", "callbackType": "STREAM",
        "cardData": {"cardParamMap": {"n": 1}}, "openSpaceId": "dtv1.card//IM_ROBOT.u1",
        "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"}});
    let (st, v) = send(
        http.post(&url)
            .header("x-acs-dingtalk-access-token", &t)
            .json(&base),
    )
    .await;
    assert_eq!(st, 400, "non-string card values are refused: {v}");
    let mut b = base.clone();
    b["cardData"]["cardParamMap"] = json!({"n": "1"});
    b.as_object_mut().unwrap().remove("imRobotOpenDeliverModel");
    let (_, v) = send(
        http.post(&url)
            .header("x-acs-dingtalk-access-token", &t)
            .json(&b),
    )
    .await;
    assert_eq!(v["code"], "param.openDeliverModelEmpty");
    b["imRobotOpenDeliverModel"] = json!({"spaceType": "IM_ROBOT"});
    let (st, v) = send(
        http.post(&url)
            .header("x-acs-dingtalk-access-token", &t)
            .json(&b),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["result"]["deliverResults"][0]["success"], true);
    let (_, v) = send(
        http.post(&url)
            .header("x-acs-dingtalk-access-token", &t)
            .json(&b),
    )
    .await;
    assert_eq!(v["code"], "param.cardAlreadyExist");
    // update without updateCardDataByKey replaces the public data
    let (st, _) = send(
        http.put(format!("{}/v1.0/card/instances", sim.base_url()))
            .header("x-acs-dingtalk-access-token", &t)
            .json(&json!({"outTrackId": "c1", "cardData": {"cardParamMap": {"m": "2"}}})),
    )
    .await;
    assert_eq!(st, 200);
    let card = sim.card("c1").unwrap();
    assert_eq!(card.params.len(), 1);
    assert_eq!(card.params["m"], "2");

    let hook = sim.webhook_url_for("s1");
    let (_, v) = send(http.post(&hook).json(&json!({"msgtype": "text"}))).await;
    assert_ne!(v["errcode"], 0);
    let (_, v) = send(
        http.post(&hook)
            .json(&json!({"msgtype": "text", "text": {"content": "hi"}})),
    )
    .await;
    assert_eq!(v, json!({"errcode": 0, "errmsg": "ok"}));
    assert_eq!(sim.webhook_messages("s1").len(), 1);

    // a session webhook stops working at its expiry time
    let (hook, expires) = sim.session_webhook("s2");
    assert!(expires > sim.now_ms());
    let msg = json!({"msgtype": "text", "text": {"content": "hi"}});
    let (_, v) = send(http.post(&hook).json(&msg)).await;
    assert_eq!(v["errcode"], 0);
    clock.advance(SignedDuration::from_millis(expires - sim.now_ms()));
    let (_, v) = send(http.post(&hook).json(&msg)).await;
    assert_ne!(v["errcode"], 0);
    assert_eq!(sim.webhook_messages("s2").len(), 1);
}

#[tokio::test]
async fn fault_injection_and_recording() {
    let (sim, clock, http) = sim(None).await;
    let t = token(&sim, &http).await;
    sim.fail_next("/v1.0/workflow", 1, FaultKind::ServerError);
    sim.fail_next("/topapi/", 1, FaultKind::Throttle);
    let get = format!(
        "{}/v1.0/workflow/processInstances?processInstanceId=q",
        sim.base_url()
    );
    let (st, v) = send(http.get(&get).header("x-acs-dingtalk-access-token", &t)).await;
    assert_eq!((st, v["code"].as_str()), (500, Some("systemError")));
    let (st, v) = send(http.get(&get).header("x-acs-dingtalk-access-token", &t)).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("processInstanceNotExist"))
    );
    let legacy = format!("{}/topapi/v2/user/get?access_token={t}", sim.base_url());
    let (_, v) = send(http.post(&legacy).json(&json!({"userid": "u1"}))).await;
    assert_eq!(v["errcode"], 90018);
    let (_, v) = send(http.post(&legacy).json(&json!({"userid": "ghost"}))).await;
    assert_ne!(v["errcode"], 0);

    clock.advance(SignedDuration::from_secs(3));
    let (_, v) = send(http.post(&legacy).json(&json!({"userid": "u1"}))).await;
    assert_eq!(v["errcode"], 0);
    let calls = sim.calls();
    assert_eq!(calls.len(), 6);
    let last = calls.last().unwrap();
    assert_eq!(last.method, "POST");
    assert_eq!(last.path, "/topapi/v2/user/get");
    assert_eq!(last.body, json!({"userid": "u1"}));
    assert_eq!(last.token.as_deref(), Some(t.as_str()));
    assert_eq!(last.at_ms - calls[0].at_ms, 3000);
    assert_eq!(
        calls[1].query.get("processInstanceId").map(String::as_str),
        Some("q")
    );

    sim.set_bot_base_url("http://127.0.0.1:9");
    assert_eq!(sim.bot_base_url().as_deref(), Some("http://127.0.0.1:9"));
}
