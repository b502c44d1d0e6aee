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
            // A card callback carries no delivery id (reference §5.4: type, outTrackId, corpId,
            // userId, content), so a delivery is identified by everything the user chose: the
            // card, the user, the action ids AND the params — the button's values and the form
            // inputs. Without the params, "reject" with an empty reason and the corrected
            // "reject, reason: …" (or, with one actionId shared by both buttons, reject and
            // approve) were the same key, and the second was swallowed as a repeat.
            Inbound::CardAction(c) => Some(format!(
                "card:{}:{}:{}",
                c.out_track_id,
                c.user_id,
                c.input_digest()
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

impl CardAction {
    /// SHA-256 (hex) of the action ids and params. Hashed because form inputs can be long and
    /// the digest becomes part of a sled key. `serde_json::Map` is sorted by key (the
    /// `preserve_order` feature is off), so the same input always gives the same digest.
    pub fn input_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let input = serde_json::json!({ "actionIds": self.action_ids, "params": self.params });
        hex::encode(Sha256::digest(input.to_string().as_bytes()))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tap(action_ids: &[&str], params: serde_json::Value) -> Inbound {
        Inbound::CardAction(CardAction {
            out_track_id: "card-1".into(),
            user_id: DingUserId::new("boss01"),
            corp_id: None,
            action_ids: action_ids.iter().map(|s| s.to_string()).collect(),
            params: params.as_object().cloned().unwrap_or_default(),
        })
    }

    #[test]
    fn card_taps_differing_only_in_params_are_different_deliveries() {
        let empty = tap(
            &["decide"],
            json!({"action": "reject", "reject_reason": ""}),
        );
        let reason = tap(
            &["decide"],
            json!({"action": "reject", "reject_reason": "no"}),
        );
        let approve = tap(&["decide"], json!({"action": "approve"}));
        let keys = [&empty, &reason, &approve].map(|t| t.dedupe_key().unwrap_or_default());
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[2]);
        // A redelivery (same input, keys in another order) is the same delivery.
        let again = tap(
            &["decide"],
            json!({"reject_reason": "", "action": "reject"}),
        );
        assert_eq!(again.dedupe_key(), empty.dedupe_key());
        assert!(keys[0].starts_with("card:card-1:boss01:"), "{}", keys[0]);
    }
}
