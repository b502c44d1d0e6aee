//! Turns verified DingTalk payloads into [`Inbound`] values: decrypted event-push plaintext
//! (reference §2.5, §2.7), robot messages (§4.1) and card callbacks (§5.4). Unknown keys are
//! ignored; a missing or ill-typed required field is a [`ParseError`] that names it.
use crate::domain::ids::DingUserId;
use crate::inbound::{
    ApprovalEvent, ApprovalEventKind, ApprovalOutcome, CardAction, ChatMessage, ConversationKind,
    Inbound, OrgEvent, OrgEventKind,
};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("body is not a JSON object")]
    NotObject,
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },
}

/// What a decrypted event push means for the HTTP handler.
// Returned once per request and matched immediately; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum DecryptedEvent {
    /// URL validation (`check_url` and the ISV suite variants): answer with the success reply only.
    CheckUrl,
    Event(Inbound),
}

type Obj = Map<String, Value>;

fn object_from_slice(body: &[u8]) -> Result<Obj, ParseError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ParseError::NotObject),
        Err(e) => Err(ParseError::Json(e.to_string())),
    }
}

fn object_from_str(s: &str) -> Result<Obj, ParseError> {
    object_from_slice(s.as_bytes())
}

/// First key present (and not null) among `keys`.
fn get<'a>(o: &'a Obj, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().filter_map(|k| o.get(*k)).find(|v| !v.is_null())
}

fn opt_str(o: &Obj, keys: &[&str], field: &'static str) -> Result<Option<String>, ParseError> {
    match get(o, keys) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ParseError::InvalidField {
            field,
            reason: "is not a string",
        }),
    }
}

fn req_str(o: &Obj, keys: &[&str], field: &'static str) -> Result<String, ParseError> {
    opt_str(o, keys, field)?.ok_or(ParseError::MissingField(field))
}

/// A non-empty string, else `None`: DingTalk sends `""` for "no such user".
fn opt_nonempty(o: &Obj, keys: &[&str], field: &'static str) -> Result<Option<String>, ParseError> {
    Ok(opt_str(o, keys, field)?.filter(|s| !s.trim().is_empty()))
}

/// Millisecond timestamps arrive as numbers in samples and as strings in some doc tables.
fn opt_millis(o: &Obj, keys: &[&str], field: &'static str) -> Result<Option<i64>, ParseError> {
    let bad = ParseError::InvalidField {
        field,
        reason: "is not a millisecond timestamp",
    };
    match get(o, keys) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(bad),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad),
        Some(_) => Err(bad),
    }
}

/// Extracts `encrypt` from an event-push body `{"encrypt":"..."}` (reference §2.2).
pub fn parse_push_body(body: &[u8]) -> Result<String, ParseError> {
    /// Every event push goes through here: the well-formed body is read straight into its one
    /// field, without building a map (a JSON map per push showed in the event path's profile).
    #[derive(serde::Deserialize)]
    struct PushBody<'a> {
        #[serde(borrow)]
        encrypt: std::borrow::Cow<'a, str>,
    }
    match serde_json::from_slice::<PushBody>(body) {
        Ok(b) => Ok(b.encrypt.into_owned()),
        // Anything else is read the general way, which says precisely what is wrong.
        Err(_) => {
            let o = object_from_slice(body)?;
            req_str(&o, &["encrypt"], "encrypt")
        }
    }
}

/// Parses the plaintext of a decrypted HTTP event push.
pub fn parse_event(plaintext_json: &str) -> Result<DecryptedEvent, ParseError> {
    let o = object_from_str(plaintext_json)?;
    let event_type = req_str(&o, &["EventType", "eventType"], "EventType")?;
    let event_id = opt_nonempty(&o, &["eventId", "EventId"], "eventId")?;
    event_from_fields(&event_type, event_id, &o)
}

/// Parses the `data` of a Stream EVENT frame, whose envelope (`eventType`, `eventId`) travels in
/// the frame headers instead of the payload (reference §2.7).
pub fn parse_event_data(
    event_type: &str,
    event_id: Option<&str>,
    data_json: &str,
) -> Result<DecryptedEvent, ParseError> {
    let o = object_from_str(data_json)?;
    let event_id = event_id.filter(|s| !s.is_empty()).map(str::to_owned);
    event_from_fields(event_type, event_id, &o)
}

fn event_from_fields(
    event_type: &str,
    event_id: Option<String>,
    o: &Obj,
) -> Result<DecryptedEvent, ParseError> {
    let inbound = match event_type {
        "check_url" | "check_create_suite_url" | "check_update_suite_url" => {
            return Ok(DecryptedEvent::CheckUrl)
        }
        "bpms_instance_change" => Inbound::Approval(approval(event_id, o)?),
        "user_leave_org" => Inbound::Org(org(event_id, OrgEventKind::UserLeft, o)?),
        "user_add_org" => Inbound::Org(org(event_id, OrgEventKind::UserAdded, o)?),
        "user_modify_org" => Inbound::Org(org(event_id, OrgEventKind::UserModified, o)?),
        other => Inbound::Other {
            event_type: other.to_owned(),
            event_id,
        },
    };
    Ok(DecryptedEvent::Event(inbound))
}

fn approval(event_id: Option<String>, o: &Obj) -> Result<ApprovalEvent, ParseError> {
    let process_instance_id = req_str(o, &["processInstanceId"], "processInstanceId")?;
    if process_instance_id.is_empty() {
        return Err(ParseError::InvalidField {
            field: "processInstanceId",
            reason: "is empty",
        });
    }
    let kind = ApprovalEventKind::parse(&req_str(o, &["type"], "type")?);
    // Only agree/refuse are outcomes of an instance; anything else is left for the
    // workflow to resolve by querying the instance (reference §6.2) rather than guessed.
    let result = match opt_str(o, &["result"], "result")?.as_deref() {
        Some("agree") => Some(ApprovalOutcome::Agree),
        Some("refuse") => Some(ApprovalOutcome::Refuse),
        _ => None,
    };
    Ok(ApprovalEvent {
        event_id,
        process_instance_id,
        process_code: opt_nonempty(o, &["processCode"], "processCode")?,
        kind,
        result,
        staff_id: opt_nonempty(o, &["staffId"], "staffId")?.map(DingUserId::from),
        finish_time_ms: opt_millis(o, &["finishTime"], "finishTime")?,
    })
}

fn org(event_id: Option<String>, kind: OrgEventKind, o: &Obj) -> Result<OrgEvent, ParseError> {
    let bad = ParseError::InvalidField {
        field: "userId",
        reason: "is not a string or an array of strings",
    };
    let user_ids = match get(o, &["userId", "UserId"]) {
        None => return Err(ParseError::MissingField("userId")),
        Some(Value::String(s)) => vec![DingUserId::from(s.as_str())],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(DingUserId::from).ok_or(bad.clone()))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad),
    };
    Ok(OrgEvent {
        event_id,
        kind,
        user_ids: user_ids
            .into_iter()
            .filter(|u| !u.as_str().is_empty())
            .collect(),
    })
}

/// Parses a robot message body (HTTP mode POST body, or Stream `data` of
/// `/v1.0/im/bot/messages/get`).
pub fn parse_robot_message(body: &[u8]) -> Result<ChatMessage, ParseError> {
    let o = object_from_slice(body)?;
    let msg_id = req_str(&o, &["msgId"], "msgId")?;
    let conversation = match get(&o, &["conversationType"]) {
        None => return Err(ParseError::MissingField("conversationType")),
        Some(Value::String(s)) if s == "1" => ConversationKind::OneToOne,
        Some(Value::String(s)) if s == "2" => ConversationKind::Group,
        Some(Value::Number(n)) if n.as_u64() == Some(1) => ConversationKind::OneToOne,
        Some(Value::Number(n)) if n.as_u64() == Some(2) => ConversationKind::Group,
        Some(_) => {
            return Err(ParseError::InvalidField {
                field: "conversationType",
                reason: "is not \"1\" or \"2\"",
            })
        }
    };
    let msg_type = req_str(&o, &["msgtype"], "msgtype")?;
    // Over-quota messages arrive as `text` without content (reference §3.4): text stays None.
    let text = if msg_type == "text" {
        match o.get("text") {
            Some(Value::Object(t)) => {
                opt_str(t, &["content"], "text.content")?.map(|s| s.trim().to_owned())
            }
            None | Some(Value::Null) => None,
            Some(_) => {
                return Err(ParseError::InvalidField {
                    field: "text",
                    reason: "is not an object",
                })
            }
        }
    } else {
        None
    };
    Ok(ChatMessage {
        msg_id,
        sender_staff_id: opt_nonempty(&o, &["senderStaffId"], "senderStaffId")?
            .map(DingUserId::from),
        sender_nick: opt_str(&o, &["senderNick"], "senderNick")?.unwrap_or_default(),
        conversation,
        conversation_id: req_str(&o, &["conversationId"], "conversationId")?,
        session_webhook: opt_nonempty(&o, &["sessionWebhook"], "sessionWebhook")?,
        session_webhook_expires_ms: opt_millis(
            &o,
            &["sessionWebhookExpiredTime"],
            "sessionWebhookExpiredTime",
        )?,
        msg_type,
        text,
        robot_code: opt_nonempty(&o, &["robotCode"], "robotCode")?,
        create_at_ms: opt_millis(&o, &["createAt"], "createAt")?,
    })
}

/// Parses an interactive-card callback (HTTP body, or Stream `data` of
/// `/v1.0/card/instances/callback`); `content` is a JSON string holding `cardPrivateData`.
pub fn parse_card_callback(body: &[u8]) -> Result<CardAction, ParseError> {
    let o = object_from_slice(body)?;
    let out_track_id = req_str(&o, &["outTrackId"], "outTrackId")?;
    let user_id = req_str(&o, &["userId"], "userId")?;
    if user_id.is_empty() {
        return Err(ParseError::InvalidField {
            field: "userId",
            reason: "is empty",
        });
    }
    // Documented as a string; an already-decoded object is accepted too.
    let content = match get(&o, &["content"]) {
        None => return Err(ParseError::MissingField("content")),
        Some(Value::String(s)) => object_from_str(s).map_err(|_| ParseError::InvalidField {
            field: "content",
            reason: "is not a JSON object string",
        })?,
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ParseError::InvalidField {
                field: "content",
                reason: "is not a JSON object string",
            })
        }
    };
    let private = match get(&content, &["cardPrivateData"]) {
        None => return Err(ParseError::MissingField("content.cardPrivateData")),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ParseError::InvalidField {
                field: "content.cardPrivateData",
                reason: "is not an object",
            })
        }
    };
    let bad_ids = ParseError::InvalidField {
        field: "cardPrivateData.actionIds",
        reason: "is not an array of strings",
    };
    let action_ids = match get(private, &["actionIds"]) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(bad_ids.clone()))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad_ids),
    };
    let params = match get(private, &["params"]) {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ParseError::InvalidField {
                field: "cardPrivateData.params",
                reason: "is not an object",
            })
        }
    };
    Ok(CardAction {
        out_track_id,
        user_id: DingUserId::from(user_id),
        corp_id: opt_nonempty(&o, &["corpId"], "corpId")?,
        action_ids,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_terminate_has_no_result() {
        let ev = parse_event(
            r#"{"EventType":"bpms_instance_change","processInstanceId":"p1","type":"terminate","staffId":"u1","finishTime":"1700000000000"}"#,
        );
        let Ok(DecryptedEvent::Event(Inbound::Approval(a))) = ev else {
            panic!("unexpected {ev:?}")
        };
        assert_eq!(a.kind, ApprovalEventKind::Terminate);
        assert_eq!(a.result, None);
        assert_eq!(a.finish_time_ms, Some(1_700_000_000_000));
        assert_eq!(a.staff_id, Some(DingUserId::from("u1")));
    }

    #[test]
    fn org_event_current_casing_and_scalar() {
        let ev = parse_event(r#"{"EventType":"user_leave_org","userId":"u9","eventId":"e1"}"#);
        assert_eq!(
            ev,
            Ok(DecryptedEvent::Event(Inbound::Org(OrgEvent {
                event_id: Some("e1".into()),
                kind: OrgEventKind::UserLeft,
                user_ids: vec![DingUserId::from("u9")],
            })))
        );
        assert_eq!(
            parse_event(r#"{"EventType":"user_modify_org"}"#),
            Err(ParseError::MissingField("userId"))
        );
    }

    #[test]
    fn suite_check_is_check_url_and_unknown_is_other() {
        assert_eq!(
            parse_event(r#"{"EventType":"check_update_suite_url","Random":"x"}"#),
            Ok(DecryptedEvent::CheckUrl)
        );
        assert_eq!(
            parse_event(r#"{"EventType":"bpms_task_change","eventId":"e2"}"#),
            Ok(DecryptedEvent::Event(Inbound::Other {
                event_type: "bpms_task_change".into(),
                event_id: Some("e2".into())
            }))
        );
        assert_eq!(
            parse_event("{}"),
            Err(ParseError::MissingField("EventType"))
        );
        assert_eq!(parse_event("[]"), Err(ParseError::NotObject));
    }

    #[test]
    fn robot_message_non_text_and_string_create_at() {
        let m = parse_robot_message(
            br#"{"msgId":"m1","conversationType":"2","conversationId":"c","msgtype":"picture","content":{"downloadCode":"d"},"createAt":"1690362101894","senderStaffId":""}"#,
        );
        let Ok(m) = m else { panic!("{m:?}") };
        assert_eq!(m.text, None);
        assert_eq!(m.conversation, ConversationKind::Group);
        assert_eq!(m.create_at_ms, Some(1_690_362_101_894));
        assert_eq!(m.sender_staff_id, None);
        assert_eq!(
            parse_robot_message(
                br#"{"msgId":"m","conversationType":"3","conversationId":"c","msgtype":"text"}"#
            )
            .err()
            .map(|e| e.to_string()),
            Some("field `conversationType` is not \"1\" or \"2\"".to_owned())
        );
    }

    #[test]
    fn card_callback_missing_private_data_is_named() {
        assert_eq!(
            parse_card_callback(br#"{"outTrackId":"o","userId":"u","content":"{}"}"#),
            Err(ParseError::MissingField("content.cardPrivateData"))
        );
        assert_eq!(
            parse_card_callback(br#"{"userId":"u","content":"{}"}"#),
            Err(ParseError::MissingField("outTrackId"))
        );
    }
}
