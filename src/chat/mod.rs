//! What users read: reply texts, help, card variables; zh-CN by default, English available.
pub mod card;
pub mod failures;
pub mod readback;
pub mod text;
