//! `Inbound`: the one typed event that every DingTalk listener (HTTP event push, robot HTTP,
//! card callback, later Stream mode) produces after verification. Nothing downstream knows
//! which listener delivered it.
use crate::domain::ids::DingUserId;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Inbound {
    Chat(ChatMessage),
    CardAction(CardAction),
    Approval(ApprovalEvent),
    Org(OrgEvent),
    /// A verified event we do not act on (e.g. `bpms_task_change`); acknowledged and logged.
    Other {
        event_type: String,
        event_id: Option<String>,
    },
}

impl Inbound {
    /// The key under which a delivery is remembered, so a redelivery is acknowledged but not
    /// handled again (reference §2.6, §3). `None` when the payload carries no stable id.
    pub fn dedupe_key(&self) -> Option<String> {
        match self {
            Inbound::Chat(m) => Some(format!("msg:{}", m.msg_id)),
            // A card callback has no delivery id; the same user tapping the same action on the
            // same card is the same intent, whatever the timestamp.
            Inbound::CardAction(c) => Some(format!(
                "card:{}:{}:{}",
                c.out_track_id,
                c.user_id,
                c.action_ids.join(",")
            )),
            // Instance id + type identify an approval transition even when eventId differs
            // between a push and a redelivery of the same change.
            Inbound::Approval(a) => Some(format!(
                "bpms:{}:{}",
                a.process_instance_id,
                a.kind.as_str()
            )),
            Inbound::Org(o) => o.event_id.as_ref().map(|id| format!("evt:{id}")),
            Inbound::Other { event_id, .. } => event_id.as_ref().map(|id| format!("evt:{id}")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationKind {
    /// `conversationType == "1"`: a 1:1 chat with the robot.
    OneToOne,
    /// `conversationType == "2"`: a group chat where the robot was @-mentioned.
    Group,
}

/// A robot chat message (reference §4.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub msg_id: String,
    /// The sender's userid; `None` for external users or an unpublished robot.
    pub sender_staff_id: Option<DingUserId>,
    pub sender_nick: String,
    pub conversation: ConversationKind,
    pub conversation_id: String,
    pub session_webhook: Option<String>,
    pub session_webhook_expires_ms: Option<i64>,
    /// `msgtype` as sent (`text`, `picture`, …).
    pub msg_type: String,
    /// Trimmed text for `text` messages; `None` for every other type.
    pub text: Option<String>,
    pub robot_code: Option<String>,
    pub create_at_ms: Option<i64>,
}

/// A button tap or form submit on an interactive card (reference §5.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardAction {
    pub out_track_id: String,
    pub user_id: DingUserId,
    pub corp_id: Option<String>,
    pub action_ids: Vec<String>,
    /// `cardPrivateData.params`: button params and form inputs.
    pub params: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalEventKind {
    Start,
    Finish,
    Terminate,
    Delete,
    Other(String),
}

impl ApprovalEventKind {
    pub fn parse(s: &str) -> Self {
        match s {
            "start" => Self::Start,
            "finish" => Self::Finish,
            "terminate" => Self::Terminate,
            "delete" => Self::Delete,
            other => Self::Other(other.to_owned()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Self::Start => "start",
            Self::Finish => "finish",
            Self::Terminate => "terminate",
            Self::Delete => "delete",
            Self::Other(s) => s,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalOutcome {
    Agree,
    Refuse,
}

/// `bpms_instance_change` (reference §2.7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalEvent {
    pub event_id: Option<String>,
    pub process_instance_id: String,
    pub process_code: Option<String>,
    pub kind: ApprovalEventKind,
    /// Absent for `terminate` and `start`.
    pub result: Option<ApprovalOutcome>,
    /// The originator.
    pub staff_id: Option<DingUserId>,
    pub finish_time_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrgEventKind {
    /// `user_leave_org`: revoke everything the user holds.
    UserLeft,
    UserAdded,
    UserModified,
    Other(String),
}

/// Contacts events (reference §2.7), both the current and the legacy casing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrgEvent {
    pub event_id: Option<String>,
    pub kind: OrgEventKind,
    pub user_ids: Vec<DingUserId>,
}
