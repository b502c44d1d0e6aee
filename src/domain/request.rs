//! What a requester asks for: a JumpServer account, or time-bound access to hosts with the
//! targets, role and duration kept typed, and the stored forms older orders still read from.
use crate::domain::command::Role;
use crate::domain::duration::AccessDuration;
use crate::domain::target::{self, Target};
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

/// What the requester asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// A JumpServer account for the requester (no time window: the account outlives the order).
    Account { reason: String },
    /// Time-bound access to hosts: becomes one JumpServer asset permission.
    Host {
        /// Host names, addresses or systems in canonical form (`target::classify`, systems
        /// resolved by policy): an address as policy judged it, never another spelling of it.
        /// Orders stored before targets were typed hold plain words; see [`stored::targets`].
        #[serde(deserialize_with = "stored::targets")]
        targets: Vec<Target>,
        /// The system account (JumpServer "account" on the asset), if the requester named one.
        system: Option<String>,
        /// Policy role; maps to JumpServer accounts and actions. Stored as its key (`ops`).
        role: Role,
        /// Length of the window; it starts at approval, not at request. Stored in seconds
        /// under its old name.
        #[serde(rename = "duration_secs", with = "stored::duration_secs")]
        duration: AccessDuration,
        /// The end the requester named (`到周五`, `until Friday 6pm`), if they named one: the
        /// window then ends there rather than `duration` after approval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ends_at: Option<jiff::Timestamp>,
        reason: String,
    },
}

impl Request {
    pub fn duration(&self) -> Option<SignedDuration> {
        self.access_duration()
            .map(|d| SignedDuration::from_mins(i64::try_from(d.minutes()).unwrap_or(i64::MAX / 60)))
    }
    pub fn access_duration(&self) -> Option<AccessDuration> {
        match self {
            Request::Account { .. } => None,
            Request::Host { duration, .. } => Some(*duration),
        }
    }
    /// The end the requester named, if any.
    pub fn ends_at(&self) -> Option<jiff::Timestamp> {
        match self {
            Request::Account { .. } => None,
            Request::Host { ends_at, .. } => *ends_at,
        }
    }
    pub fn role(&self) -> Option<Role> {
        match self {
            Request::Account { .. } => None,
            Request::Host { role, .. } => Some(*role),
        }
    }
    /// The targets as recorded (see `Policy::known_targets` for orders stored before targets
    /// were typed).
    pub fn targets(&self) -> &[Target] {
        match self {
            Request::Account { .. } => &[],
            Request::Host { targets, .. } => targets,
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            Request::Account { reason } | Request::Host { reason, .. } => reason,
        }
    }
}

/// Reading the stored forms of a host request's fields.
mod stored {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// A target as stored: the typed form, or (orders stored before targets were typed) the
    /// word the order recorded, classified again. Such a word cannot say whether it named a
    /// configured system (`payments`) or a host: it reads back as a host name, and
    /// `Policy::known_targets` turns a host name that names a system into that system.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StoredTarget {
        Typed(Target),
        Word(String),
    }

    pub fn targets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Target>, D::Error> {
        let stored = Vec::<StoredTarget>::deserialize(d)?;
        Ok(stored
            .into_iter()
            .map(|t| match t {
                StoredTarget::Typed(t) => t,
                StoredTarget::Word(w) => {
                    target::classify(&w).unwrap_or_else(|_| Target::Hostname(w.as_str().into()))
                }
            })
            .collect())
    }

    pub mod duration_secs {
        use super::*;

        pub fn serialize<S: Serializer>(d: &AccessDuration, s: S) -> Result<S::Ok, S::Error> {
            let secs = i64::try_from(d.minutes())
                .unwrap_or(i64::MAX / 60)
                .saturating_mul(60);
            s.serialize_i64(secs)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AccessDuration, D::Error> {
            let secs = i64::deserialize(d)?;
            let minutes = u64::try_from(secs / 60).map_err(serde::de::Error::custom)?;
            AccessDuration::from_minutes(minutes).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_requests_stored_with_words_still_load_and_store_typed() {
        let old = r#"{"type":"host","targets":["web-01","010.9.96.7","支付系统"],
            "system":null,"role":"ops","duration_secs":14400,"reason":"fix"}"#;
        let r: Request = serde_json::from_str(old).expect("a request stored as words");
        assert_eq!(
            r.targets(),
            [
                Target::Hostname("web-01".into()),
                Target::Address("10.9.96.7".parse().expect("ip")),
                Target::System("支付系统".into()),
            ]
        );
        assert_eq!(r.role(), Some(Role::Ops));
        assert_eq!(r.access_duration().map(|d| d.minutes()), Some(240));
        assert_eq!(r.duration(), Some(SignedDuration::from_hours(4)));
        let json = serde_json::to_value(&r).expect("ser");
        assert_eq!(json["duration_secs"], 14400);
        assert_eq!(json["role"], "ops");
        let back: Request = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, r);
    }
}
