//! Pure types and rules, no IO: ids, commands, durations, policy, the order state machine.
pub mod ids;
pub mod order;
