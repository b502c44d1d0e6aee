//! Simulated DingTalk and JumpServer: real axum servers on 127.0.0.1, used by tests and `accessbot demo`.
pub mod dingtalk;
pub mod jumpserver;
