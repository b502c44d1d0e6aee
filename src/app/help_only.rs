//! `HelpOnly`: the dispatcher of the bare DingTalk edge, for checking a new DingTalk app's
//! wiring end to end without the workflow.
use crate::dingtalk::client::DingTalkClient;
use crate::dispatch::{Dispatch, DispatchError, DispatchReply};
use crate::domain::command::Lang;
use crate::inbound::Inbound;
use futures::future::BoxFuture;

/// The dispatcher of the bare DingTalk edge: answers every chat message with the help text (a
/// non-text message with a polite "text only"), and logs every other event. The workflow's
/// dispatcher replaces it; it stays useful to check a new DingTalk app's wiring end to end.
pub struct HelpOnly {
    dingtalk: DingTalkClient,
    lang: Lang,
}

impl HelpOnly {
    pub fn new(dingtalk: DingTalkClient, lang: Lang) -> Self {
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
