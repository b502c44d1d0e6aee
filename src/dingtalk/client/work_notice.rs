//! Work notifications sent as the app's agent (reference §8).
use super::transport::Style;
use super::{DingTalkClient, DingTalkError, Result};
use crate::dingtalk::message::OutMessage;
use crate::domain::ids::DingUserId;
use reqwest::Method;
use serde_json::{json, Value};

/// Most recipients of one work notification call we send (the API takes 100 userids).
pub const WORK_NOTICE_CHUNK: usize = 100;

impl DingTalkClient {
    /// Work notification (§8); returns one `task_id` per call (100 recipients each).
    pub async fn send_work_notice(
        &self,
        user_ids: &[DingUserId],
        msg: &OutMessage,
    ) -> Result<Vec<i64>> {
        let agent_id = self.inner.agent_id.ok_or_else(|| {
            DingTalkError::Config("dingtalk.agent_id is required for work notifications".into())
        })?;
        let msg = msg.to_work_notice_msg()?;
        let mut tasks = Vec::new();
        for chunk in user_ids.chunks(WORK_NOTICE_CHUNK) {
            let list = chunk
                .iter()
                .map(DingUserId::as_str)
                .collect::<Vec<_>>()
                .join(",");
            let body = json!({"agent_id": agent_id, "userid_list": list, "msg": msg});
            let v = self
                .call(
                    Style::Legacy,
                    Method::POST,
                    &self.oapi("/topapi/message/corpconversation/asyncsend_v2"),
                    &[],
                    Some(&body),
                    false,
                )
                .await?;
            tasks.push(v.get("task_id").and_then(Value::as_i64).unwrap_or_default());
        }
        Ok(tasks)
    }
}
