//! Robot messages: replies through a session webhook, 1:1 sends and group sends (reference
//! §4.2).
use super::transport::Style;
use super::{DingTalkClient, DingTalkError, Result};
use crate::dingtalk::message::OutMessage;
use crate::domain::ids::DingUserId;
use reqwest::Method;
use serde_json::{json, Value};

/// Most recipients `oToMessages/batchSend` accepts in one call.
pub const BATCH_SEND_CHUNK: usize = 20;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    pub process_query_keys: Vec<String>,
    pub invalid_user_ids: Vec<DingUserId>,
    /// Throttled recipients: the message did not reach them; send again later.
    pub flow_controlled_user_ids: Vec<DingUserId>,
}

impl DingTalkClient {
    fn check_webhook_origin(&self, webhook_url: &str) -> Result<()> {
        let url = url::Url::parse(webhook_url)
            .map_err(|_| DingTalkError::Config("session webhook is not a valid URL".into()))?;
        let official = url.scheme() == "https" && url.host_str() == Some("oapi.dingtalk.com");
        let configured =
            url::Url::parse(&self.inner.oapi_base).is_ok_and(|base| base.origin() == url.origin());
        if official || configured {
            Ok(())
        } else {
            Err(DingTalkError::Config(format!(
                "session webhook host {:?} is neither oapi.dingtalk.com nor the configured oapi_base",
                url.host_str().unwrap_or("")
            )))
        }
    }

    /// Replies through an inbound message's session webhook (§4.2b). Not retried on server
    /// errors: a retry could post the reply twice.
    ///
    /// The URL must point at DingTalk's oapi host (or the configured `oapi_base`): it arrives
    /// inside an inbound message, and the bot must not be made to POST anywhere else.
    pub async fn reply_webhook(&self, webhook_url: &str, msg: &OutMessage) -> Result<()> {
        self.check_webhook_origin(webhook_url)?;
        let body = msg.to_webhook_body()?;
        self.call(
            Style::Webhook,
            Method::POST,
            webhook_url,
            &[],
            Some(&body),
            false,
        )
        .await
        .map(|_| ())
    }

    /// 1:1 robot messages (§4.2c), 20 recipients per call. Stops at the first failing chunk;
    /// earlier chunks have been sent by then.
    pub async fn send_to_users(
        &self,
        user_ids: &[DingUserId],
        msg: &OutMessage,
    ) -> Result<SendReport> {
        let payload = msg.to_robot_payload()?;
        let mut report = SendReport::default();
        for chunk in user_ids.chunks(BATCH_SEND_CHUNK) {
            let body = json!({
                "robotCode": self.inner.robot_code,
                "userIds": chunk,
                "msgKey": payload.msg_key,
                "msgParam": payload.msg_param,
            });
            let v = self
                .call(
                    Style::New,
                    Method::POST,
                    &self.api("/v1.0/robot/oToMessages/batchSend"),
                    &[],
                    Some(&body),
                    false,
                )
                .await?;
            if let Some(k) = v.get("processQueryKey").and_then(Value::as_str) {
                report.process_query_keys.push(k.to_owned());
            }
            report
                .invalid_user_ids
                .extend(ids_of(&v, "invalidStaffIdList"));
            report
                .flow_controlled_user_ids
                .extend(ids_of(&v, "flowControlledStaffIdList"));
        }
        Ok(report)
    }

    /// A robot message into a group the robot is in; returns the `processQueryKey`.
    pub async fn send_to_group(
        &self,
        open_conversation_id: &str,
        msg: &OutMessage,
    ) -> Result<String> {
        let payload = msg.to_group_payload()?;
        let body = json!({
            "robotCode": self.inner.robot_code,
            "openConversationId": open_conversation_id,
            "msgKey": payload.msg_key,
            "msgParam": payload.msg_param,
        });
        let v = self
            .call(
                Style::New,
                Method::POST,
                &self.api("/v1.0/robot/groupMessages/send"),
                &[],
                Some(&body),
                false,
            )
            .await?;
        v.get("processQueryKey")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                DingTalkError::Decode("groupMessages/send without processQueryKey".into())
            })
    }
}

fn ids_of(v: &Value, k: &str) -> Vec<DingUserId> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(DingUserId::from)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dingtalk::DingTalkConfig;
    use std::sync::Arc;

    #[test]
    fn webhook_urls_must_point_at_dingtalk() {
        let cfg = DingTalkConfig {
            oapi_base: "http://127.0.0.1:4000".into(),
            ..DingTalkConfig::default()
        };
        let c = DingTalkClient::new(&cfg, Arc::new(crate::clock::SystemClock));
        assert!(c
            .check_webhook_origin("https://oapi.dingtalk.com/robot/sendBySession?session=x")
            .is_ok());
        assert!(c
            .check_webhook_origin("http://127.0.0.1:4000/robot/sendBySession?session=x")
            .is_ok());
        for bad in [
            "http://oapi.dingtalk.com/robot/sendBySession",
            "https://evil.example/robot/sendBySession",
            "http://127.0.0.1:4001/robot/sendBySession",
            "not a url",
        ] {
            assert!(
                matches!(c.check_webhook_origin(bad), Err(DingTalkError::Config(_))),
                "{bad}"
            );
        }
    }
}
