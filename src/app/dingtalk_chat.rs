//! DingTalk as the workflow's chat platform: `DingTalkClient` behind `ports::ChatPlatform`.
//! Errors keep DingTalk's own words (the admins' notices read its error codes from them).
use crate::dingtalk::client::{DingTalkClient, DingTalkError};
use crate::domain::ids::DingUserId;
use crate::workflow::ports::{
    ApprovalDetail, ApprovalInstanceQuery, ApprovalStart, ApprovalState, CardDelivery, ChatError,
    ChatPlatform, DingUser, OutMessage, Sent,
};
use futures::future::BoxFuture;
use std::collections::BTreeMap;

fn chat_err(e: DingTalkError) -> ChatError {
    ChatError {
        transient: e.is_transient(),
        message: e.to_string(),
    }
}

impl ChatPlatform for DingTalkClient {
    fn send_to_users<'a>(
        &'a self,
        to: &'a [DingUserId],
        msg: &'a OutMessage,
    ) -> BoxFuture<'a, Result<Sent, ChatError>> {
        Box::pin(async move {
            let report = DingTalkClient::send_to_users(self, to, msg)
                .await
                .map_err(chat_err)?;
            Ok(Sent {
                throttled: report.flow_controlled_user_ids,
                undeliverable: report.invalid_user_ids,
            })
        })
    }

    fn reply_on_session<'a>(
        &'a self,
        webhook: &'a str,
        msg: &'a OutMessage,
    ) -> BoxFuture<'a, Result<(), ChatError>> {
        Box::pin(async move { self.reply_webhook(webhook, msg).await.map_err(chat_err) })
    }

    fn deliver_card(&self, card: CardDelivery) -> BoxFuture<'_, Result<(), ChatError>> {
        Box::pin(async move { self.create_and_deliver_card(card).await.map_err(chat_err) })
    }

    fn update_card<'a>(
        &'a self,
        out_track_id: &'a str,
        vars: BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), ChatError>> {
        Box::pin(async move {
            DingTalkClient::update_card(self, out_track_id, vars)
                .await
                .map_err(chat_err)
        })
    }

    fn start_approval(&self, start: ApprovalStart) -> BoxFuture<'_, Result<String, ChatError>> {
        Box::pin(async move {
            DingTalkClient::start_approval(self, start)
                .await
                .map_err(chat_err)
        })
    }

    fn terminate_approval<'a>(
        &'a self,
        instance: &'a str,
        remark: &'a str,
    ) -> BoxFuture<'a, Result<(), ChatError>> {
        // As the system (`isSystem`): the bot is not the originator.
        Box::pin(async move {
            DingTalkClient::terminate_approval(self, instance, None, remark)
                .await
                .map_err(chat_err)
        })
    }

    fn find_approvals<'a>(
        &'a self,
        query: &'a ApprovalInstanceQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, ChatError>> {
        Box::pin(async move {
            self.list_approval_instance_ids(query)
                .await
                .map_err(chat_err)
        })
    }

    fn approval_detail<'a>(
        &'a self,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<ApprovalDetail, ChatError>> {
        Box::pin(async move { self.get_approval_detail(instance).await.map_err(chat_err) })
    }

    fn approval_state<'a>(
        &'a self,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<ApprovalState, ChatError>> {
        Box::pin(async move { self.get_approval(instance).await.map_err(chat_err) })
    }

    fn look_up_user<'a>(
        &'a self,
        user: &'a DingUserId,
    ) -> BoxFuture<'a, Result<DingUser, ChatError>> {
        Box::pin(async move { self.get_user(user).await.map_err(chat_err) })
    }
}
