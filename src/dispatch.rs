//! The seam between the DingTalk listeners and the product: every verified, de-duplicated
//! `Inbound` event goes through a `Dispatch`. `handle` must only record the decision (one sled
//! transaction: state + outbox) and return quickly; slow work happens in the outbox workers, so
//! DingTalk gets its acknowledgement within its deadline.
use crate::inbound::Inbound;
use futures::future::BoxFuture;

/// What the listener sends back to DingTalk besides the plain acknowledgement.
#[derive(Debug, Default, PartialEq)]
pub enum DispatchReply {
    #[default]
    None,
    /// Body of a card-callback response (reference §5.5): updates the tapped card at once.
    CardUpdate(serde_json::Value),
    /// The input was refused and nothing was recorded (a reject without a reason, a tap by
    /// someone who may not decide, …); the user has been told why. It is acknowledged like any
    /// other delivery, but its dedupe key is forgotten: a refusal judges the input against the
    /// state of the moment, so the same input sent again is judged again instead of being
    /// swallowed as a repeat for `server.dedupe_ttl_hours`.
    Refused,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Nothing was recorded; DingTalk should deliver the event again.
    #[error("could not record the event, please redeliver: {0}")]
    Retry(String),
}

pub trait Dispatch: Send + Sync {
    fn handle(&self, event: Inbound) -> BoxFuture<'_, Result<DispatchReply, DispatchError>>;
}
