//! What users read: reply texts, help, notices, cards, rendered in zh-CN / en; no IO.
pub mod card;
pub mod failures;
pub mod message;
pub mod notice;
pub mod order;
pub mod readback;
pub mod text;
