//! JumpServer adapter: signed REST client and the composite `grant`. Nothing here knows about DingTalk.
pub mod httpsig;
