//! Pure types and rules, no IO: ids, commands, durations, policy, the order state machine, and
//! the application's vocabulary (jobs, notices, audit events, changes, the JumpServer inventory) that the
//! store persists and the workflow speaks.
pub mod access;
pub mod audit;
pub mod change;
pub mod command;
pub mod dialog;
pub mod duration;
pub mod identity;
pub mod ids;
pub mod inventory;
pub mod jobs;
pub mod notice;
pub mod order;
pub mod ownership;
pub mod policy;
pub mod request;
pub mod target;
pub mod until;
