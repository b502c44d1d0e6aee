//! The inbound events, one file each: a chat message, a card tap, a request form, an OA result,
//! an org event. Each records its decision in one order transaction and returns quickly; the
//! work it causes runs in the outbox (`jobs`).
pub(super) mod card;
pub(super) mod form;
pub(super) mod message;
pub(super) mod oa;
pub(super) mod org;
