//! Background jobs: the outbox runner and the deadline scheduler.
