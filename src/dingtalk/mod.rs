//! DingTalk adapter: everything that knows DingTalk's wire formats. Nothing here knows about orders.
pub mod config;
pub use config::{DingTalkConfig, ListenerMode};
pub mod client;
pub mod crypto;
pub mod message;
pub mod parse;
pub mod sign;
pub mod stream_frame;
