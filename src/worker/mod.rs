//! Background jobs: the outbox runner and the deadline scheduler.
pub mod outbox;
pub mod scheduler;
