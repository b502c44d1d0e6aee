//! Newtypes for the identifiers that cross module boundaries, so a DingTalk userid can never be
//! passed where a JumpServer user id or an order id is expected.
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);
        impl $name {
            pub fn new(s: impl Into<String>) -> Self { Self(s.into()) }
            pub fn as_str(&self) -> &str { &self.0 }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) }
        }
        impl From<&str> for $name { fn from(s: &str) -> Self { Self(s.to_owned()) } }
        impl From<String> for $name { fn from(s: String) -> Self { Self(s) } }
    };
}

id_newtype!(
    /// A DingTalk `userid` (= `senderStaffId`, `staffId`, `originatorUserId`, card `userId`).
    DingUserId
);
id_newtype!(
    /// A JumpServer user's UUID.
    JmsUserId
);
id_newtype!(
    /// Our order id, e.g. `R261122-007` (see `domain::order::format_order_id`). Every side effect's identity derives from it.
    OrderId
);
