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

/// The dispatcher of the bare DingTalk edge: answers every chat message with the help text (a
/// non-text message with a polite "text only"), and logs every other event. The workflow's
/// dispatcher replaces it; it stays useful to check a new DingTalk app's wiring end to end.
pub struct HelpOnly {
    dingtalk: crate::dingtalk::client::DingTalkClient,
    lang: crate::domain::command::Lang,
}

impl HelpOnly {
    pub fn new(
        dingtalk: crate::dingtalk::client::DingTalkClient,
        lang: crate::domain::command::Lang,
    ) -> Self {
        Self { dingtalk, lang }
    }
}

impl Dispatch for HelpOnly {
    fn handle(&self, event: Inbound) -> BoxFuture<'_, Result<DispatchReply, DispatchError>> {
        Box::pin(async move {
            match event {
                Inbound::Chat(msg) => {
                    // A `text` message can arrive without content (over quota, reference
                    // §3.4); it is still text, so it gets help rather than "text only".
                    let text = if msg.msg_type == "text" {
                        crate::chat::text::help(self.lang, false)
                    } else {
                        crate::chat::text::text_only(self.lang)
                    };
                    let Some(webhook) = msg.session_webhook.clone() else {
                        tracing::info!(msg_id = %msg.msg_id, "message without a session webhook; no reply possible");
                        return Ok(DispatchReply::None);
                    };
                    // The reply is sent after DingTalk has its acknowledgement; a lost reply to
                    // a help request is harmless, a late acknowledgement is a redelivery.
                    let client = self.dingtalk.clone();
                    tokio::spawn(async move {
                        let reply = crate::dingtalk::message::OutMessage::Markdown {
                            title: "accessbot".into(),
                            text,
                        };
                        if let Err(e) = client.reply_webhook(&webhook, &reply).await {
                            tracing::warn!(error = %e, "help reply failed");
                        }
                    });
                }
                other => tracing::info!(event = ?other, "event received; no workflow is wired"),
            }
            Ok(DispatchReply::None)
        })
    }
}
