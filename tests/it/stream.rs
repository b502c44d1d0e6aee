//! Stream mode over real loopback sockets: the listener (`listen::stream`) against the
//! simulated gateway (`sandbox::dingtalk::stream`), with a recording dispatcher behind the shared
//! ingress. Frames come from tests/fixtures/dingtalk_stream_frames.json (official SDK).
use accessbot::clock::{ManualClock, SystemClock};
use accessbot::dingtalk::stream_frame::AckFrame;
use accessbot::dingtalk::DingTalkConfig;
use accessbot::dispatch::{Dispatch, DispatchError, DispatchReply};
use accessbot::inbound::{ApprovalOutcome, Inbound};
use accessbot::ingress::Ingress;
use accessbot::listen::stream::{StreamError, StreamListener, StreamTiming};
use accessbot::sandbox::dingtalk::stream::{self as sim, SimStreamGateway};
use accessbot::secret::Secret;
use accessbot::store::dedupe::Dedupe;
use accessbot::store::Store;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const APP_KEY: &str = "dingstreamappkey01";
const APP_SECRET: &str = "stream-app-secret-Zq81xK";

fn vectors() -> Value {
    let path = format!(
        "{}/tests/fixtures/dingtalk_stream_frames.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("stream frame vectors");
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn vector_frame(id: &str) -> Value {
    let v = vectors();
    let frames = v["frames"].as_array().expect("frames").clone();
    frames
        .into_iter()
        .find(|f| f["id"] == id)
        .map(|f| f["inbound_frame"].clone())
        .expect("frame id present")
}

/// Records what reaches dispatch; can be told to fail (retry) the next N events.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Inbound>>,
    fail_next: AtomicUsize,
}

impl Recorder {
    fn events(&self) -> Vec<Inbound> {
        self.events.lock().unwrap().clone()
    }
}

fn card_update() -> Value {
    json!({
        "cardUpdateOptions": {"updateCardDataByKey": true},
        "cardData": {"cardParamMap": {"status": "approved"}},
    })
}

impl Dispatch for Recorder {
    fn handle(&self, event: Inbound) -> BoxFuture<'_, Result<DispatchReply, DispatchError>> {
        Box::pin(async move {
            if self
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(DispatchError::Retry("store busy (test)".into()));
            }
            let reply = match &event {
                Inbound::CardAction(_) => DispatchReply::CardUpdate(card_update()),
                _ => DispatchReply::None,
            };
            self.events.lock().unwrap().push(event);
            Ok(reply)
        })
    }
}

fn ingress(recorder: Arc<Recorder>) -> Arc<Ingress> {
    let store = Store::temporary().expect("temp store");
    Arc::new(Ingress {
        metrics: Default::default(),
        // Stream mode uses no callback crypto.
        crypto: None,
        robot_secret: Secret::new(APP_SECRET),
        card_secret: Secret::default(),
        dedupe: Dedupe::new(&store).expect("dedupe"),
        dedupe_ttl_ms: 24 * 3_600_000,
        clock: Arc::new(SystemClock),
        dispatcher: recorder,
    })
}

fn fast() -> StreamTiming {
    StreamTiming {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..StreamTiming::default()
    }
}

fn config(gw: &SimStreamGateway, secret: &str) -> DingTalkConfig {
    DingTalkConfig {
        app_key: APP_KEY.into(),
        app_secret: Secret::new(secret),
        api_base: gw.api_base().to_owned(),
        ..DingTalkConfig::default()
    }
}

struct Rig {
    gw: SimStreamGateway,
    recorder: Arc<Recorder>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), StreamError>>,
}

async fn rig_with(timing: StreamTiming) -> Rig {
    let gw = SimStreamGateway::start(APP_KEY, APP_SECRET)
        .await
        .expect("gateway");
    let recorder = Arc::new(Recorder::default());
    let listener = StreamListener::new(&config(&gw, APP_SECRET)).with_timing(timing);
    let (stop, rx) = watch::channel(false);
    let e = ingress(recorder.clone());
    let task = tokio::spawn(async move { listener.serve(e, rx).await });
    gw.wait_for_connections(1).await.expect("listener connects");
    Rig {
        gw,
        recorder,
        stop,
        task,
    }
}

async fn rig() -> Rig {
    rig_with(fast()).await
}

impl Rig {
    async fn stop(self) -> Result<(), StreamError> {
        let _ = self.stop.send(true);
        self.task.await.expect("listener task")
    }
}

fn ack_data(ack: &AckFrame) -> Value {
    serde_json::from_str(&ack.data).expect("ack data is a JSON string")
}

#[tokio::test]
async fn registers_with_credentials_subscriptions_and_ua() {
    let r = rig().await;
    let reqs = r.gw.open_requests();
    assert_eq!(reqs.len(), 1);
    let body = &reqs[0];
    assert_eq!(body["clientId"], APP_KEY);
    assert_eq!(body["clientSecret"], "<redacted>", "the sim saw a secret");
    let subs = body["subscriptions"].as_array().expect("subscriptions");
    let pairs: Vec<(String, String)> = subs
        .iter()
        .map(|s| {
            (
                s["type"].as_str().unwrap_or("").to_owned(),
                s["topic"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("EVENT".into(), "*".into()),
            ("CALLBACK".into(), "/v1.0/im/bot/messages/get".into()),
            ("CALLBACK".into(), "/v1.0/card/instances/callback".into()),
        ]
    );
    assert!(body["ua"].as_str().unwrap_or("").starts_with("accessbot/"));
    let conns = r.gw.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].ticket, r.gw.issued_tickets()[0]);
    assert_eq!(r.stop().await.ok(), Some(()));
}

#[tokio::test]
async fn robot_message_reaches_dispatcher_and_is_acked_with_its_message_id() {
    let r = rig().await;
    let frame = vector_frame("callback_bot_message");
    let ack = r.gw.push(frame.clone()).await.expect("ack");
    assert_eq!(ack.code, 200);
    assert_eq!(ack.headers.message_id, "212ca9d7_974_1898c159aa6_1783b");
    assert_eq!(ack.headers.content_type, "application/json");
    assert_eq!(ack_data(&ack), json!({"response": null}));
    let events = r.recorder.events();
    assert_eq!(events.len(), 1);
    let Inbound::Chat(msg) = &events[0] else {
        panic!("expected a chat message, got {:?}", events[0]);
    };
    assert_eq!(msg.msg_id, "msgLICYeHgY4JtMQw==");
    assert_eq!(msg.text.as_deref(), Some("申请 jumpserver 10.0.0.5 7d"));
    assert_eq!(
        msg.sender_staff_id.as_ref().map(|u| u.as_str()),
        Some("manager7675")
    );
    r.stop().await.expect("clean stop");
}

#[tokio::test]
async fn approval_event_is_acked_success_and_dispatched_once_when_pushed_twice() {
    let r = rig().await;
    let mut frame = vector_frame("event_bpms_instance_change");
    let first = r.gw.push(frame.clone()).await.expect("first ack");
    assert_eq!(first.code, 200);
    assert_eq!(first.headers.message_id, "msg_evt_1");
    assert_eq!(
        ack_data(&first),
        json!({"status": "SUCCESS", "message": "success"})
    );
    // A redelivery: same event, new messageId.
    frame["headers"]["messageId"] = json!("msg_evt_1_redelivered");
    let second = r.gw.push(frame).await.expect("second ack");
    assert_eq!(second.code, 200);
    assert_eq!(second.headers.message_id, "msg_evt_1_redelivered");
    assert_eq!(ack_data(&second)["status"], "SUCCESS");
    let events = r.recorder.events();
    assert_eq!(events.len(), 1, "dispatched once: {events:?}");
    let Inbound::Approval(a) = &events[0] else {
        panic!("expected an approval, got {:?}", events[0]);
    };
    assert_eq!(a.process_instance_id, "9Qgx5QqjR7axMwAAAA");
    assert_eq!(a.result, Some(ApprovalOutcome::Agree));
    assert_eq!(
        a.event_id.as_deref(),
        Some("c7c7120f2c07419aaaaebdba0318c8")
    );
    r.stop().await.expect("clean stop");
}

#[tokio::test]
async fn event_the_dispatcher_cannot_record_is_acked_later_then_handled_on_redelivery() {
    let r = rig().await;
    r.recorder.fail_next.store(1, Ordering::SeqCst);
    let data = json!({"processInstanceId": "PI-later", "type": "finish", "result": "refuse"});
    let later =
        r.gw.push_event("bpms_instance_change", "evt-later", &data)
            .await
            .expect("ack");
    assert_eq!(later.code, 500);
    assert_eq!(
        ack_data(&later),
        json!({"status": "LATER", "message": "later"})
    );
    assert!(r.recorder.events().is_empty());
    let again =
        r.gw.push_event("bpms_instance_change", "evt-later", &data)
            .await
            .expect("ack");
    assert_eq!(
        (again.code, ack_data(&again)["status"].clone()),
        (200, json!("SUCCESS"))
    );
    assert_eq!(
        r.recorder.events().len(),
        1,
        "the redelivery was not deduped away"
    );
    r.stop().await.expect("clean stop");
}

#[tokio::test]
async fn card_callback_ack_carries_the_dispatchers_card_update() {
    let r = rig().await;
    let ack =
        r.gw.push(vector_frame("callback_card_action"))
            .await
            .expect("ack");
    assert_eq!(ack.code, 200);
    assert_eq!(ack.headers.message_id, "card_msg_1");
    assert_eq!(ack_data(&ack), json!({ "response": card_update() }));
    let events = r.recorder.events();
    let Some(Inbound::CardAction(c)) = events.first() else {
        panic!("expected a card action, got {events:?}");
    };
    assert_eq!(c.out_track_id, "req-20231115-0001");
    assert_eq!(c.action_ids, vec!["approve".to_owned()]);
    // A double tap is acknowledged with an empty response and not handled again.
    let again =
        r.gw.push(sim::card_callback_frame(
            "card_msg_2",
            &serde_json::from_str::<Value>(
                vector_frame("callback_card_action")["data"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap(),
        ))
        .await
        .expect("ack");
    assert_eq!(ack_data(&again), json!({"response": {}}));
    assert_eq!(r.recorder.events().len(), 1);
    r.stop().await.expect("clean stop");
}

#[tokio::test]
async fn system_ping_is_echoed_and_unknown_topics_get_404() {
    let r = rig().await;
    let ack = r.gw.push(vector_frame("system_ping")).await.expect("ack");
    assert_eq!(ack.code, 200);
    assert_eq!(ack.headers.message_id, "213d841d_972_1898bb26334_70a7");
    assert_eq!(ack_data(&ack), json!({"opaque": "123-dsfs"}));
    let ack = r.gw.ping("opaque-2").await.expect("ack");
    assert_eq!(ack_data(&ack), json!({"opaque": "opaque-2"}));

    let unknown = sim::callback_frame("m404", "/v1.0/graph/api/invoke", &json!({}));
    let ack = r.gw.push(unknown).await.expect("ack");
    assert_eq!((ack.code, ack.headers.message_id.as_str()), (404, "m404"));
    assert!(r.recorder.events().is_empty());
    r.stop().await.expect("clean stop");
}

#[tokio::test]
async fn disconnect_leads_to_a_new_connection_with_a_fresh_ticket() {
    let r = rig().await;
    let ack =
        r.gw.push(vector_frame("system_disconnect"))
            .await
            .expect("disconnect ack");
    assert_eq!(ack.headers.message_id, "disc_1");
    assert_eq!(ack_data(&ack), json!({"reason": "connection is expired"}));
    r.gw.wait_for_connections(2).await.expect("reconnected");
    let conns = r.gw.connections();
    assert_ne!(conns[0].ticket, conns[1].ticket);
    assert_eq!(r.gw.issued_tickets().len(), 2);
    // The old socket is closed by the client once its queue is drained.
    r.gw.wait_until_closed(conns[0].id)
        .await
        .expect("old closed");

    // The old ticket cannot be reused.
    let url = format!("{}?ticket={}", r.gw.ws_endpoint(), conns[0].ticket);
    let refused = tokio_tungstenite::connect_async(url).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401)
        }
        other => panic!("reused ticket accepted: {:?}", other.map(|_| ())),
    }
    assert_eq!(r.gw.refused_handshakes(), 1);

    // Work flows over the new connection.
    let ack =
        r.gw.push(vector_frame("callback_bot_message"))
            .await
            .expect("ack on new connection");
    assert_eq!(ack.code, 200);
    assert_eq!(r.recorder.events().len(), 1);
    r.stop().await.expect("clean stop");
}

#[tokio::test]
async fn lost_connection_and_failing_registrations_are_retried() {
    let r = rig().await;
    r.gw.fail_next_opens(2);
    r.gw.drop_current().expect("drop");
    r.gw.wait_for_connections(2)
        .await
        .expect("back after failures");
    // One registration for the first connection, two refused with 500, one that worked.
    assert_eq!(r.gw.open_requests().len(), 4);
    assert_eq!(r.gw.issued_tickets().len(), 2);
    let ack = r.gw.ping("after-retry").await.expect("ack");
    assert_eq!(ack.code, 200);
    r.stop().await.expect("clean stop");
}

#[tokio::test]
async fn wrong_credentials_are_a_typed_error_and_no_connection() {
    let gw = SimStreamGateway::start(APP_KEY, APP_SECRET)
        .await
        .expect("gateway");
    let listener = StreamListener::new(&config(&gw, "not-the-secret")).with_timing(fast());
    let (_stop, rx) = watch::channel(false);
    let err = listener
        .serve(ingress(Arc::new(Recorder::default())), rx)
        .await
        .expect_err("refused");
    match &err {
        StreamError::Rejected { status, code, .. } => {
            assert_eq!(*status, 401);
            assert_eq!(code, "InvalidAuthentication");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(err.is_permanent());
    assert!(!err.to_string().contains("not-the-secret"));
    assert!(gw.connections().is_empty());
    assert!(gw.issued_tickets().is_empty());
    assert_eq!(gw.open_requests().len(), 1, "a refusal is not retried");
}

#[tokio::test]
async fn ticket_expires_after_90_seconds() {
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let gw = SimStreamGateway::start_with_clock(APP_KEY, APP_SECRET, Arc::new(clock.clone()))
        .await
        .expect("gateway");
    let http = reqwest::Client::new();
    let body = json!({"clientId": APP_KEY, "clientSecret": APP_SECRET,
        "subscriptions": [{"type": "EVENT", "topic": "*"}]});
    let resp: Value = http
        .post(gw.open_url())
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = resp["ticket"].as_str().expect("ticket").to_owned();
    assert_eq!(resp["endpoint"], gw.ws_endpoint());
    clock.advance(jiff::SignedDuration::from_secs(91));
    let url = format!("{}?ticket={ticket}", gw.ws_endpoint());
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    assert_eq!(gw.refused_handshakes(), 1);

    // Bad subscriptions are refused with the API error shape.
    let resp = http
        .post(gw.open_url())
        .json(&json!({"clientId": APP_KEY, "clientSecret": APP_SECRET, "subscriptions": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "InvalidParameter");
    assert!(v["requestid"].is_string());
}

/// A `MakeWriter` collecting every log line, to check what the listener logs.
#[derive(Clone, Default)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogSink;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// current_thread runtime: every task runs on this thread, so the scoped subscriber sees them all.
#[tokio::test]
async fn malformed_frames_are_logged_and_the_loop_continues_without_leaking_secrets() {
    let logs = LogSink::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let r = rig().await;
    r.gw.send_raw("this is not json").expect("sent");
    r.gw.send_raw("[1,2,3]").expect("sent");
    r.gw.send_raw(r#"{"type":"EVENT","headers":{},"data":"{}"}"#)
        .expect("sent");
    // Parseable frame whose data is not what its topic promises.
    let bad_robot = json!({"specVersion":"1.0","type":"CALLBACK",
        "headers":{"topic":"/v1.0/im/bot/messages/get","messageId":"bad_robot"},
        "data":"{\"msgId\": 5}"});
    let ack = r.gw.push(bad_robot).await.expect("ack for bad robot data");
    assert_eq!(ack.code, 500);
    // Broken envelope but a salvageable messageId: answered 404.
    let no_type = json!({"headers": {"messageId": "no_type"}, "data": "{}"});
    let ack = r.gw.push(no_type).await.expect("ack for no type");
    assert_eq!(ack.code, 404);
    // An event whose data cannot be parsed: acknowledged (redelivery would loop), not dispatched.
    let ack =
        r.gw.push_event(
            "bpms_instance_change",
            "evt-bad",
            &json!({"type": "finish"}),
        )
        .await
        .expect("ack");
    assert_eq!(ack_data(&ack)["status"], "SUCCESS");

    let ack =
        r.gw.push(vector_frame("callback_bot_message"))
            .await
            .expect("still serving");
    assert_eq!(ack.code, 200);
    assert_eq!(r.recorder.events().len(), 1);
    assert_eq!(r.gw.connections().len(), 1, "no reconnect was needed");
    let tickets = r.gw.issued_tickets();
    r.stop().await.expect("clean stop");

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.matches("malformed Stream frame ignored").count() >= 3,
        "{text}"
    );
    assert!(!text.contains(APP_SECRET), "secret logged");
    for t in tickets {
        assert!(!text.contains(&t), "ticket logged");
    }
}

#[tokio::test]
async fn keepalive_pings_are_sent_and_shutdown_closes_the_socket() {
    let r = rig_with(StreamTiming {
        keepalive: Duration::from_millis(100),
        ..fast()
    })
    .await;
    r.gw.wait_for_ws_pings(3).await.expect("keep-alive pings");
    // Pongs came back, so the connection was never judged dead.
    assert_eq!(r.gw.connections().len(), 1);
    let gw_conns = r.gw.connections();
    let id = gw_conns[0].id;
    let Rig { gw, stop, task, .. } = r;
    let _ = stop.send(true);
    assert_eq!(task.await.expect("task").ok(), Some(()));
    gw.wait_until_closed(id)
        .await
        .expect("client closed the socket");
}

/// `[dingtalk] mode = "stream"` wires the listener into `Bot::start`: the bot connects out,
/// needs no callback token or AES key, answers 404 on the HTTP event route, and a frame pushed
/// by the gateway reaches the bot's dispatcher.
#[tokio::test]
async fn bot_in_stream_mode_connects_out_and_dispatches_frames() {
    use accessbot::app::{Bot, BotOptions};
    use accessbot::config::Config;
    use accessbot::dingtalk::ListenerMode;

    let gw = SimStreamGateway::start(APP_KEY, APP_SECRET)
        .await
        .expect("gateway");
    let recorder = Arc::new(Recorder::default());
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.dingtalk = DingTalkConfig {
        mode: ListenerMode::Stream,
        ..config(&gw, APP_SECRET)
    };
    assert!(
        !cfg.validate()
            .iter()
            .any(|p| p.key.starts_with("dingtalk.callback")),
        "stream mode must not require the HTTP push token/key"
    );
    let bot = Bot::start(
        &cfg,
        BotOptions {
            clock: Arc::new(SystemClock),
            store: Store::temporary().expect("store"),
            dispatcher: Some(recorder.clone()),
        },
    )
    .await
    .expect("bot starts without callback crypto");
    gw.wait_for_connections(1).await.expect("bot connects out");

    let ack = gw
        .push(vector_frame("callback_bot_message"))
        .await
        .expect("ack");
    assert_eq!(ack.code, 200);
    assert_eq!(recorder.events().len(), 1);

    let status = reqwest::Client::new()
        .post(format!(
            "{}/dingtalk/events?signature=a&timestamp=1&nonce=n",
            bot.url()
        ))
        .body(r#"{"encrypt":"AAAA"}"#)
        .send()
        .await
        .expect("http")
        .status();
    assert_eq!(
        status.as_u16(),
        404,
        "HTTP event push is off in stream mode"
    );
    bot.shutdown().await;
    gw.wait_for_all_closed()
        .await
        .expect("socket closed on shutdown");
}
