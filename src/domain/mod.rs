//! Pure types and rules, no IO: ids, commands, durations, policy, the order state machine.
pub mod access;
pub mod command;
pub mod dialog;
pub mod duration;
pub mod identity;
pub mod ids;
pub mod order;
pub mod ownership;
pub mod policy;
pub mod target;
pub mod until;
