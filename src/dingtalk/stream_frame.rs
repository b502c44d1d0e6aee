//! Stream-mode frames (reference §3.3–3.4): parsing what the gateway sends over the WebSocket
//! and building the ACK frames the bot writes back. Frames only; no socket handling here.
//!
//! Where the official Python SDK and the protocol document differ (EVENT ack data), this follows
//! the protocol document: `{"status":"SUCCESS","message":"success"}`.
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub const TOPIC_BOT_MESSAGE: &str = "/v1.0/im/bot/messages/get";
pub const TOPIC_CARD_CALLBACK: &str = "/v1.0/card/instances/callback";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not valid JSON: {0}")]
    Json(String),
    #[error("frame is not a JSON object")]
    NotObject,
    #[error("frame field `{0}` missing")]
    MissingField(&'static str),
    #[error("frame field `{0}` has the wrong type")]
    InvalidField(&'static str),
    #[error("frame data is not a JSON string holding JSON: {0}")]
    Data(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameType {
    System,
    Event,
    Callback,
    /// A type this code does not know; kept so the caller can log it and ACK with 404.
    Unknown(String),
}

impl FrameType {
    fn parse(s: &str) -> Self {
        match s {
            "SYSTEM" => Self::System,
            "EVENT" => Self::Event,
            "CALLBACK" => Self::Callback,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

/// One server → client frame. `data` is kept as the raw JSON string it arrives as.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamFrame {
    pub spec_version: Option<String>,
    pub frame_type: FrameType,
    /// Every header, unknown ones included (reference §3.3: keep them).
    pub headers: BTreeMap<String, String>,
    pub data: String,
}

/// What a frame asks of the bot, decided from `type` and `topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    /// SYSTEM `ping`: echo `data` back with code 200.
    Ping,
    /// SYSTEM `disconnect`: the server will close soon; open a new connection.
    Disconnect {
        reason: Option<String>,
    },
    /// EVENT frames are routed by type alone; the envelope is in the headers.
    Event {
        event_type: String,
        event_id: Option<String>,
    },
    BotMessage,
    CardCallback,
    /// CALLBACK on a topic we did not subscribe to, or an unknown SYSTEM topic / frame type.
    Unhandled,
}

impl StreamFrame {
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let v: Value = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
        let Value::Object(o) = v else {
            return Err(FrameError::NotObject);
        };
        let spec_version = match o.get("specVersion") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(FrameError::InvalidField("specVersion")),
        };
        let frame_type = match o.get("type") {
            Some(Value::String(s)) => FrameType::parse(s),
            None | Some(Value::Null) => return Err(FrameError::MissingField("type")),
            Some(_) => return Err(FrameError::InvalidField("type")),
        };
        // One protocol-doc example spells the key `header`.
        let headers = match o.get("headers").or_else(|| o.get("header")) {
            Some(Value::Object(h)) => headers_to_strings(h),
            None | Some(Value::Null) => return Err(FrameError::MissingField("headers")),
            Some(_) => return Err(FrameError::InvalidField("headers")),
        };
        let data = match o.get("data") {
            Some(Value::String(s)) => s.clone(),
            // Tolerate an un-encoded object: the content is the same.
            Some(d @ Value::Object(_)) => d.to_string(),
            None | Some(Value::Null) => String::new(),
            Some(_) => return Err(FrameError::InvalidField("data")),
        };
        let frame = Self {
            spec_version,
            frame_type,
            headers,
            data,
        };
        if frame.message_id().is_empty() {
            // Without it no ACK can be addressed.
            return Err(FrameError::MissingField("headers.messageId"));
        }
        Ok(frame)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn message_id(&self) -> &str {
        self.header("messageId").unwrap_or("")
    }

    pub fn topic(&self) -> &str {
        self.header("topic").unwrap_or("")
    }

    /// The second decoding of `data`.
    pub fn data_json(&self) -> Result<Value, FrameError> {
        serde_json::from_str(&self.data).map_err(|e| FrameError::Data(e.to_string()))
    }

    pub fn kind(&self) -> FrameKind {
        match &self.frame_type {
            FrameType::System => match self.topic() {
                "ping" => FrameKind::Ping,
                "disconnect" => FrameKind::Disconnect {
                    reason: self
                        .data_json()
                        .ok()
                        .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned)),
                },
                _ => FrameKind::Unhandled,
            },
            FrameType::Event => FrameKind::Event {
                event_type: self.header("eventType").unwrap_or("").to_owned(),
                event_id: self
                    .header("eventId")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            },
            FrameType::Callback => match self.topic() {
                TOPIC_BOT_MESSAGE => FrameKind::BotMessage,
                TOPIC_CARD_CALLBACK => FrameKind::CardCallback,
                _ => FrameKind::Unhandled,
            },
            FrameType::Unknown(_) => FrameKind::Unhandled,
        }
    }
}

fn headers_to_strings(h: &Map<String, Value>) -> BTreeMap<String, String> {
    h.iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckHeaders {
    #[serde(rename = "contentType")]
    pub content_type: String,
    #[serde(rename = "messageId")]
    pub message_id: String,
}

/// A client → server ACK frame; `data` is a JSON string, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckFrame {
    pub code: u16,
    pub headers: AckHeaders,
    pub message: String,
    pub data: String,
}

impl AckFrame {
    fn new(code: u16, message_id: &str, message: &str, data: String) -> Self {
        Self {
            code,
            headers: AckHeaders {
                content_type: "application/json".into(),
                message_id: message_id.to_owned(),
            },
            message: message.to_owned(),
            data,
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising plain strings and a u16 cannot fail; fall back to a minimal frame anyway.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// How an EVENT frame was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAck {
    /// Stored for processing; do not redeliver.
    Success,
    /// Could not take it now; ask the server to redeliver (the Go SDK also uses code 500).
    Later,
}

/// ACK for an EVENT frame per the protocol document.
pub fn event_ack(message_id: &str, status: EventAck) -> AckFrame {
    let (code, status, message) = match status {
        EventAck::Success => (200, "SUCCESS", "success"),
        EventAck::Later => (500, "LATER", "later"),
    };
    let data = json!({"status": status, "message": message}).to_string();
    AckFrame::new(code, message_id, "OK", data)
}

/// ACK for a CALLBACK frame: `data = {"response": response}`. For a robot message pass
/// `Value::Null`; for a card action pass the card update of reference §5.5 (or `{}`).
pub fn callback_ack(message_id: &str, response: Value) -> AckFrame {
    let data = json!({ "response": response }).to_string();
    AckFrame::new(200, message_id, "OK", data)
}

/// ACK for SYSTEM frames (`ping`, and `disconnect` where the SDKs answer too): code 200 with the
/// frame's own `data` echoed back.
pub fn system_echo_ack(frame: &StreamFrame) -> AckFrame {
    AckFrame::new(200, frame.message_id(), "OK", frame.data.clone())
}

/// ACK for a frame nobody handles (reference §3.4: 404 = no handler for topic).
pub fn not_found_ack(message_id: &str) -> AckFrame {
    AckFrame::new(404, message_id, "no handler", "{}".into())
}

/// The ACK a frame gets when it was handled successfully and the card (if any) needs no change.
pub fn default_ack(frame: &StreamFrame) -> AckFrame {
    match frame.kind() {
        FrameKind::Ping | FrameKind::Disconnect { .. } => system_echo_ack(frame),
        FrameKind::Event { .. } => event_ack(frame.message_id(), EventAck::Success),
        FrameKind::BotMessage => callback_ack(frame.message_id(), Value::Null),
        FrameKind::CardCallback => callback_ack(frame.message_id(), json!({})),
        FrameKind::Unhandled => not_found_ack(frame.message_id()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_header_key_and_missing_message_id() {
        let f = StreamFrame::parse(
            r#"{"specVersion":"1.0","type":"EVENT","header":{"messageId":"m","eventType":"x"},"data":"{}"}"#,
        );
        assert_eq!(
            f.map(|f| f.kind()),
            Ok(FrameKind::Event {
                event_type: "x".into(),
                event_id: None
            })
        );
        assert_eq!(
            StreamFrame::parse(r#"{"type":"EVENT","headers":{},"data":"{}"}"#),
            Err(FrameError::MissingField("headers.messageId"))
        );
    }

    #[test]
    fn unknown_type_gets_404() {
        let f = StreamFrame::parse(r#"{"type":"NEW","headers":{"messageId":"m9"},"data":"{}"}"#);
        let Ok(f) = f else { panic!("{f:?}") };
        let ack = default_ack(&f);
        assert_eq!((ack.code, ack.headers.message_id.as_str()), (404, "m9"));
    }
}
