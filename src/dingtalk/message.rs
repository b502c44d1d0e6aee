//! Outbound robot messages: one `OutMessage` rendered into each wire shape DingTalk accepts —
//! the session-webhook body (reference §4.2b), the `msgKey`/`msgParam` pair of the robot
//! OpenAPI (§4.2c), the work-notification `msg` object (§8) — plus `dtmd://` links (§4.3).
//! Limits are checked here so a message that DingTalk would reject never leaves the process.
use crate::domain::ids::DingUserId;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

/// Most buttons an action card can carry (`sampleActionCard5` is the largest template).
pub const MAX_BUTTONS: usize = 5;
/// Button titles longer than this are cut (doc recommendation: ≤ 20 characters).
pub const MAX_BUTTON_TITLE_CHARS: usize = 20;
/// A button URL longer than this is refused: a cut URL would be a broken link.
pub const MAX_BUTTON_URL_CHARS: usize = 500;
/// `groupMessages/send` refuses a `msgParam` above this many bytes.
pub const MAX_GROUP_MSG_PARAM_BYTES: usize = 15_000;
/// Work notifications refuse a `msg` above this many bytes.
pub const MAX_WORK_NOTICE_BYTES: usize = 2_048;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardButton {
    pub title: String,
    pub url: String,
}

impl CardButton {
    pub fn new(title: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            url: url.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutMessage {
    Text {
        content: String,
        at_user_ids: Vec<DingUserId>,
    },
    Markdown {
        title: String,
        text: String,
    },
    /// With no buttons it is sent as markdown, since every action-card shape needs one.
    ActionCard {
        title: String,
        text: String,
        buttons: Vec<CardButton>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("an action card holds at most {max} buttons, got {got}")]
    TooManyButtons { got: usize, max: usize },
    #[error("button URL is {got} characters long; the limit is {max}")]
    ButtonUrlTooLong { got: usize, max: usize },
    #[error("message is {got} bytes; this channel accepts at most {max}")]
    TooLarge { got: usize, max: usize },
}

/// The `msgKey` / `msgParam` pair for `oToMessages/batchSend` and `groupMessages/send`.
/// `msg_param` is already the JSON *string* the API wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RobotPayload {
    pub msg_key: &'static str,
    pub msg_param: String,
}

/// RFC 3986 unreserved characters stay; everything else (including space → `%20`) is encoded,
/// which is what the DingTalk client decodes in `dtmd://` links.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A link that makes the clicking user's client send `text` into the conversation (§4.3).
pub fn dtmd_send_link(text: &str) -> String {
    format!(
        "dtmd://dingtalkclient/sendMessage?content={}",
        utf8_percent_encode(text, COMPONENT)
    )
}

fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        // Keep room for the ellipsis so the reader sees the title was cut.
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

impl OutMessage {
    pub fn text(content: impl Into<String>) -> Self {
        OutMessage::Text {
            content: content.into(),
            at_user_ids: Vec::new(),
        }
    }
    pub fn markdown(title: impl Into<String>, text: impl Into<String>) -> Self {
        OutMessage::Markdown {
            title: title.into(),
            text: text.into(),
        }
    }

    /// Checks the limits and returns the buttons with over-long titles cut.
    fn checked_buttons(buttons: &[CardButton]) -> Result<Vec<CardButton>, MessageError> {
        if buttons.len() > MAX_BUTTONS {
            return Err(MessageError::TooManyButtons {
                got: buttons.len(),
                max: MAX_BUTTONS,
            });
        }
        buttons
            .iter()
            .map(|b| {
                let n = b.url.chars().count();
                if n > MAX_BUTTON_URL_CHARS {
                    return Err(MessageError::ButtonUrlTooLong {
                        got: n,
                        max: MAX_BUTTON_URL_CHARS,
                    });
                }
                Ok(CardButton {
                    title: cut_chars(&b.title, MAX_BUTTON_TITLE_CHARS),
                    url: b.url.clone(),
                })
            })
            .collect()
    }

    /// Text content with an `@userid` for every mentioned user: DingTalk only highlights a
    /// mention when the text contains it as well as the `at` list.
    fn text_with_mentions(content: &str, at: &[DingUserId]) -> String {
        let mut out = content.to_owned();
        for u in at {
            let tag = format!("@{}", u.as_str());
            if !out.contains(&tag) {
                out.push(' ');
                out.push_str(&tag);
            }
        }
        out
    }

    /// Body for `POST <sessionWebhook>` (§4.2b).
    pub fn to_webhook_body(&self) -> Result<Value, MessageError> {
        Ok(match self {
            OutMessage::Text {
                content,
                at_user_ids,
            } => {
                let mut body = json!({
                    "msgtype": "text",
                    "text": {"content": Self::text_with_mentions(content, at_user_ids)},
                });
                if !at_user_ids.is_empty() {
                    body["at"] = json!({"atUserIds": at_user_ids, "isAtAll": false});
                }
                body
            }
            OutMessage::Markdown { title, text } => {
                json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
            }
            OutMessage::ActionCard {
                title,
                text,
                buttons,
            } => {
                let buttons = Self::checked_buttons(buttons)?;
                match buttons.as_slice() {
                    [] => {
                        json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
                    }
                    [one] => json!({"msgtype": "actionCard", "actionCard": {
                        "title": title, "text": text,
                        "singleTitle": one.title, "singleURL": one.url,
                    }}),
                    many => {
                        let btns: Vec<Value> = many
                            .iter()
                            .map(|b| json!({"title": b.title, "actionURL": b.url}))
                            .collect();
                        // Two buttons fit side by side; more read better stacked.
                        let orientation = if many.len() == 2 { "1" } else { "0" };
                        json!({"msgtype": "actionCard", "actionCard": {
                            "title": title, "text": text,
                            "btnOrientation": orientation, "btns": btns,
                        }})
                    }
                }
            }
        })
    }

    /// `msgKey` + `msgParam` for the robot OpenAPI (§4.2c).
    pub fn to_robot_payload(&self) -> Result<RobotPayload, MessageError> {
        let (msg_key, param): (&'static str, Value) = match self {
            OutMessage::Text {
                content,
                at_user_ids,
            } => (
                "sampleText",
                json!({"content": Self::text_with_mentions(content, at_user_ids)}),
            ),
            OutMessage::Markdown { title, text } => {
                ("sampleMarkdown", json!({"title": title, "text": text}))
            }
            OutMessage::ActionCard {
                title,
                text,
                buttons,
            } => {
                let buttons = Self::checked_buttons(buttons)?;
                match buttons.as_slice() {
                    [] => ("sampleMarkdown", json!({"title": title, "text": text})),
                    [one] => (
                        "sampleActionCard",
                        json!({"title": title, "text": text,
                               "singleTitle": one.title, "singleURL": one.url}),
                    ),
                    many => {
                        let mut m = Map::new();
                        m.insert("title".into(), json!(title));
                        m.insert("text".into(), json!(text));
                        for (i, b) in many.iter().enumerate() {
                            m.insert(format!("actionTitle{}", i + 1), json!(b.title));
                            m.insert(format!("actionURL{}", i + 1), json!(b.url));
                        }
                        let key = match many.len() {
                            2 => "sampleActionCard2",
                            3 => "sampleActionCard3",
                            4 => "sampleActionCard4",
                            _ => "sampleActionCard5",
                        };
                        (key, Value::Object(m))
                    }
                }
            }
        };
        Ok(RobotPayload {
            msg_key,
            msg_param: param.to_string(),
        })
    }

    /// Payload for `groupMessages/send`, which also caps the `msgParam` size.
    pub fn to_group_payload(&self) -> Result<RobotPayload, MessageError> {
        let p = self.to_robot_payload()?;
        if p.msg_param.len() > MAX_GROUP_MSG_PARAM_BYTES {
            return Err(MessageError::TooLarge {
                got: p.msg_param.len(),
                max: MAX_GROUP_MSG_PARAM_BYTES,
            });
        }
        Ok(p)
    }

    /// The `msg` object of a work notification (§8, snake_case keys).
    pub fn to_work_notice_msg(&self) -> Result<Value, MessageError> {
        let msg = match self {
            OutMessage::Text { content, .. } => {
                json!({"msgtype": "text", "text": {"content": content}})
            }
            OutMessage::Markdown { title, text } => {
                json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
            }
            OutMessage::ActionCard {
                title,
                text,
                buttons,
            } => {
                let buttons = Self::checked_buttons(buttons)?;
                match buttons.as_slice() {
                    [] => {
                        json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
                    }
                    [one] => json!({"msgtype": "action_card", "action_card": {
                        "title": title, "markdown": text,
                        "single_title": one.title, "single_url": one.url,
                    }}),
                    many => {
                        let list: Vec<Value> = many
                            .iter()
                            .map(|b| json!({"title": b.title, "action_url": b.url}))
                            .collect();
                        let orientation = if many.len() == 2 { "1" } else { "0" };
                        json!({"msgtype": "action_card", "action_card": {
                            "title": title, "markdown": text,
                            "btn_orientation": orientation, "btn_json_list": list,
                        }})
                    }
                }
            }
        };
        let size = msg.to_string().len();
        if size > MAX_WORK_NOTICE_BYTES {
            return Err(MessageError::TooLarge {
                got: size,
                max: MAX_WORK_NOTICE_BYTES,
            });
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(n: usize) -> OutMessage {
        OutMessage::ActionCard {
            title: "确认".into(),
            text: "请选择".into(),
            buttons: (1..=n)
                .map(|i| CardButton::new(format!("b{i}"), format!("https://x/{i}")))
                .collect(),
        }
    }

    #[test]
    fn dtmd_link_matches_reference_example() {
        assert_eq!(
            dtmd_send_link("确认 REQ-42"),
            "dtmd://dingtalkclient/sendMessage?content=%E7%A1%AE%E8%AE%A4%20REQ-42"
        );
        assert_eq!(
            dtmd_send_link("查看"),
            "dtmd://dingtalkclient/sendMessage?content=%E6%9F%A5%E7%9C%8B"
        );
        assert_eq!(
            dtmd_send_link("a&b=c?d/e"),
            "dtmd://dingtalkclient/sendMessage?content=a%26b%3Dc%3Fd%2Fe"
        );
    }

    #[test]
    fn text_webhook_body_carries_at_list_and_mention() {
        let m = OutMessage::Text {
            content: "已收到".into(),
            at_user_ids: vec![DingUserId::new("u1")],
        };
        assert_eq!(
            m.to_webhook_body().unwrap(),
            json!({"msgtype":"text","text":{"content":"已收到 @u1"},
                   "at":{"atUserIds":["u1"],"isAtAll":false}})
        );
        let p = m.to_robot_payload().unwrap();
        assert_eq!(p.msg_key, "sampleText");
        let v: Value = serde_json::from_str(&p.msg_param).unwrap();
        assert_eq!(v, json!({"content":"已收到 @u1"}));
    }

    #[test]
    fn single_button_uses_single_fields() {
        let body = card(1).to_webhook_body().unwrap();
        assert_eq!(body["actionCard"]["singleTitle"], "b1");
        assert_eq!(body["actionCard"]["singleURL"], "https://x/1");
        assert!(body["actionCard"].get("btns").is_none());
        assert_eq!(
            card(1).to_robot_payload().unwrap().msg_key,
            "sampleActionCard"
        );
    }

    #[test]
    fn several_buttons_map_to_numbered_templates() {
        for n in 2..=5 {
            let p = card(n).to_robot_payload().unwrap();
            assert_eq!(p.msg_key, format!("sampleActionCard{n}"));
            let v: Value = serde_json::from_str(&p.msg_param).unwrap();
            assert_eq!(v[format!("actionTitle{n}")], format!("b{n}"));
            assert_eq!(v[format!("actionURL{n}")], format!("https://x/{n}"));
            assert!(v.get(format!("actionTitle{}", n + 1)).is_none());
            let w = card(n).to_webhook_body().unwrap();
            assert_eq!(w["actionCard"]["btns"].as_array().map(Vec::len), Some(n));
        }
    }

    #[test]
    fn limits_are_enforced() {
        assert_eq!(
            card(6).to_robot_payload(),
            Err(MessageError::TooManyButtons { got: 6, max: 5 })
        );
        assert!(card(6).to_webhook_body().is_err());
        let long = OutMessage::ActionCard {
            title: "t".into(),
            text: "x".into(),
            buttons: vec![CardButton::new(
                "一二三四五六七八九十一二三四五六七八九十多",
                "u",
            )],
        };
        let v = long.to_webhook_body().unwrap();
        let title = v["actionCard"]["singleTitle"].as_str().unwrap();
        assert_eq!(title.chars().count(), MAX_BUTTON_TITLE_CHARS);
        assert!(title.ends_with('…'));
        let bad_url = OutMessage::ActionCard {
            title: "t".into(),
            text: "x".into(),
            buttons: vec![CardButton::new("b", "u".repeat(501))],
        };
        assert!(matches!(
            bad_url.to_robot_payload(),
            Err(MessageError::ButtonUrlTooLong { .. })
        ));
        let huge = OutMessage::markdown("t", "字".repeat(6000));
        assert!(matches!(
            huge.to_group_payload(),
            Err(MessageError::TooLarge { .. })
        ));
        assert!(huge.to_work_notice_msg().is_err());
    }

    #[test]
    fn buttonless_card_falls_back_to_markdown() {
        assert_eq!(
            card(0).to_robot_payload().unwrap().msg_key,
            "sampleMarkdown"
        );
        assert_eq!(card(0).to_webhook_body().unwrap()["msgtype"], "markdown");
    }

    proptest::proptest! {
        #[test]
        fn dtmd_link_round_trips(text in "\\PC{0,60}") {
            let link = dtmd_send_link(&text);
            let enc = link.strip_prefix("dtmd://dingtalkclient/sendMessage?content=").unwrap();
            proptest::prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"%-_.~".contains(&b)));
            let back = percent_encoding::percent_decode_str(enc).decode_utf8().unwrap();
            proptest::prop_assert_eq!(back, text);
        }

        #[test]
        fn any_card_renders_or_refuses_without_panic(
            title in "\\PC{0,40}", text in "\\PC{0,80}",
            buttons in proptest::collection::vec(("\\PC{0,30}", "\\PC{0,40}"), 0..8),
        ) {
            let n = buttons.len();
            let m = OutMessage::ActionCard {
                title: title.clone(), text,
                buttons: buttons.into_iter().map(|(t, u)| CardButton::new(t, u)).collect(),
            };
            match m.to_robot_payload() {
                Ok(p) => {
                    proptest::prop_assert!(n <= MAX_BUTTONS);
                    let v: Value = serde_json::from_str(&p.msg_param).unwrap();
                    proptest::prop_assert_eq!(v["title"].as_str(), Some(title.as_str()));
                }
                Err(e) => proptest::prop_assert_eq!(e, MessageError::TooManyButtons { got: n, max: MAX_BUTTONS }),
            }
            proptest::prop_assert_eq!(m.to_webhook_body().is_ok(), n <= MAX_BUTTONS);
        }
    }

    #[test]
    fn work_notice_uses_snake_case_action_card() {
        let v = card(2).to_work_notice_msg().unwrap();
        assert_eq!(v["msgtype"], "action_card");
        assert_eq!(
            v["action_card"]["btn_json_list"][1]["action_url"],
            "https://x/2"
        );
        assert_eq!(v["action_card"]["markdown"], "请选择");
    }
}
