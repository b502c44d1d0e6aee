//! The client side of DingTalk's callbacks: what a simulated DingTalk sends to the bot, built
//! with the same signatures and encryption the real platform uses (reference §2.2, §4.1, §5.4).
//! Tests and `accessbot demo` use it to talk to the bot's HTTP routes.
use crate::dingtalk::crypto::CallbackCrypto;
use crate::dingtalk::sign::{
    card_sign, robot_sign, CARD_SIGN_HEADER, CARD_TIMESTAMP_HEADER, ROBOT_SIGN_HEADER,
    ROBOT_TIMESTAMP_HEADER,
};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicI64, Ordering};

/// Timestamps for signed pushes. DingTalk stamps each robot message and card callback with its
/// own millisecond clock, and those signatures cover only the timestamp, so the bot refuses a
/// (timestamp, sign) pair that comes back with a different body. A simulated DingTalk on a
/// frozen test clock would stamp several pushes with the same millisecond; `next` hands out
/// strictly increasing stamps from the clock's reading instead, as the real clock would have
/// moved on between two pushes.
#[derive(Debug, Default)]
pub struct Stamps(AtomicI64);

impl Stamps {
    /// `now_ms`, or one past the previous stamp if that is not later.
    pub fn next(&self, now_ms: i64) -> i64 {
        let prev = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |prev| {
                Some(now_ms.max(prev.saturating_add(1)))
            })
            .unwrap_or_else(|prev| prev);
        now_ms.max(prev.saturating_add(1))
    }
}

/// `timestamp` and `sign` headers of a robot HTTP-mode push.
pub fn signed_robot_headers(app_secret: &str, now_ms: i64) -> [(String, String); 2] {
    let ts = now_ms.to_string();
    let sign = robot_sign(&ts, app_secret);
    [
        (ROBOT_TIMESTAMP_HEADER.to_owned(), ts),
        (ROBOT_SIGN_HEADER.to_owned(), sign),
    ]
}

/// Who sends a robot message and where.
#[derive(Clone, Debug)]
pub struct RobotSender<'a> {
    /// `senderStaffId`; `None` models an external user (sent as `""`).
    pub staff_id: Option<&'a str>,
    pub nick: &'a str,
    /// `true` for a group chat (`conversationType` `"2"`), else 1:1.
    pub group: bool,
    pub conversation_id: &'a str,
    /// Base URL of the simulator's session webhook; the session id is appended.
    pub session_webhook: &'a str,
    pub robot_code: &'a str,
}

/// A robot `text` message body as DingTalk posts it (reference §4.1 example shape). In groups
/// the text is prefixed with a space where the @mention was, as the real client does.
pub fn robot_text_message(
    sender: &RobotSender<'_>,
    msg_id: &str,
    text: &str,
    now_ms: i64,
) -> Value {
    let content = if sender.group {
        format!(" {text}")
    } else {
        text.to_owned()
    };
    json!({
        "msgId": msg_id,
        "msgtype": "text",
        "text": {"content": content},
        "createAt": now_ms,
        "conversationType": if sender.group { "2" } else { "1" },
        "conversationId": sender.conversation_id,
        "senderId": format!("$:LWCP_v1:${}", sender.nick),
        "senderNick": sender.nick,
        "senderStaffId": sender.staff_id.unwrap_or(""),
        "chatbotUserId": "$:LWCP_v1:$robot",
        "robotCode": sender.robot_code,
        "isAdmin": false,
        "isInAtList": true,
        "sessionWebhook": format!("{}?session={}", sender.session_webhook, msg_id),
        // The official example shows the webhook living ~90 minutes past createAt.
        "sessionWebhookExpiredTime": now_ms.saturating_add(90 * 60 * 1000),
    })
}

/// Query string and JSON body of an encrypted event push (reference §2.2). The query uses the
/// `msg_signature` spelling; `timestamp` is passed through unchanged.
pub fn encrypted_event_request(
    crypto: &CallbackCrypto,
    plaintext_json: &str,
    timestamp: &str,
    nonce: &str,
) -> (String, String) {
    let encrypt = crypto.encrypt(plaintext_json);
    let sig = crypto.signature(timestamp, nonce, &encrypt);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("msg_signature", &sig)
        .append_pair("timestamp", timestamp)
        .append_pair("nonce", nonce)
        .finish();
    let body = json!({ "encrypt": encrypt }).to_string();
    (query, body)
}

/// A card `actionCallback` body (reference §5.4), `content` double-encoded as DingTalk does.
pub fn card_callback_body(
    out_track_id: &str,
    user_id: &str,
    action_ids: &[&str],
    params: Map<String, Value>,
) -> Value {
    let content = json!({
        "cardPrivateData": {"actionIds": action_ids, "params": params}
    })
    .to_string();
    json!({
        "type": "actionCallback",
        "outTrackId": out_track_id,
        "corpId": "dingsandboxcorp",
        "userId": user_id,
        "content": content,
    })
}

/// `x-ddpaas-signature-timestamp` and `x-ddpaas-signature` headers of a card callback.
pub fn card_signature_headers(api_secret: &str, now_ms: i64) -> [(String, String); 2] {
    let ts = now_ms.to_string();
    let sig = card_sign(&ts, api_secret);
    [
        (CARD_TIMESTAMP_HEADER.to_owned(), ts),
        (CARD_SIGN_HEADER.to_owned(), sig),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_follow_the_clock_and_never_repeat() {
        let s = Stamps::default();
        assert_eq!(s.next(1_000), 1_000);
        assert_eq!(s.next(1_000), 1_001);
        assert_eq!(s.next(1_000), 1_002);
        assert_eq!(s.next(5_000), 5_000);
        assert_eq!(s.next(4_000), 5_001);
    }
    use crate::dingtalk::parse::{parse_card_callback, parse_robot_message};
    use crate::dingtalk::sign::{verify_card_request, verify_robot_request, CARD_WINDOW_MS};
    use crate::inbound::ConversationKind;

    #[test]
    fn robot_message_round_trips_through_parser_and_verifier() {
        let now = 1_700_000_000_000;
        let [(_, ts), (_, sign)] = signed_robot_headers("sec", now);
        assert_eq!(
            verify_robot_request(Some(&ts), Some(&sign), "sec", now),
            Ok(())
        );
        let sender = RobotSender {
            staff_id: Some("u1"),
            nick: "张三",
            group: true,
            conversation_id: "cid1",
            session_webhook: "http://127.0.0.1:1/robot/sendBySession",
            robot_code: "dingbot",
        };
        let body = robot_text_message(&sender, "m1", "申请 10.0.0.5 7d", now).to_string();
        let m = parse_robot_message(body.as_bytes());
        let Ok(m) = m else { panic!("{m:?}") };
        assert_eq!(m.text.as_deref(), Some("申请 10.0.0.5 7d"));
        assert_eq!(m.conversation, ConversationKind::Group);
        assert_eq!(m.sender_staff_id.map(|u| u.0), Some("u1".to_owned()));
    }

    #[test]
    fn card_callback_round_trips() {
        let now = 1_700_000_000_000;
        let [(_, ts), (_, sig)] = card_signature_headers("api", now);
        assert_eq!(
            verify_card_request(Some(&ts), Some(&sig), "api", now, CARD_WINDOW_MS),
            Ok(())
        );
        let mut params = Map::new();
        params.insert("requestId".into(), Value::from("r1"));
        let body = card_callback_body("o1", "boss", &["approve"], params.clone()).to_string();
        let c = parse_card_callback(body.as_bytes());
        let Ok(c) = c else { panic!("{c:?}") };
        assert_eq!(c.action_ids, vec!["approve".to_owned()]);
        assert_eq!(c.params, params);
        assert_eq!(c.out_track_id, "o1");
    }
}
