//! Contacts: looking a user up by userid (reference §7).
use super::transport::Style;
use super::{DingTalkClient, DingTalkError, Result};
use crate::domain::ids::DingUserId;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DingUser {
    pub userid: DingUserId,
    pub name: String,
    pub email: Option<String>,
    pub org_email: Option<String>,
    pub mobile: Option<String>,
    pub job_number: Option<String>,
    pub dept_ids: Vec<i64>,
    /// Whether the person has activated DingTalk.
    pub active: bool,
}

impl DingTalkClient {
    /// Looks a user up by userid (§7).
    pub async fn get_user(&self, user: &DingUserId) -> Result<DingUser> {
        let body = json!({"userid": user.as_str(), "language": "zh_CN"});
        let v = self
            .call(
                Style::Legacy,
                Method::POST,
                &self.oapi("/topapi/v2/user/get"),
                &[],
                Some(&body),
                true,
            )
            .await?;
        let r = v
            .get("result")
            .ok_or_else(|| DingTalkError::Decode("user/get without result".into()))?;
        let s = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(DingUser {
            userid: DingUserId::new(s("userid").unwrap_or_else(|| user.as_str().to_owned())),
            name: s("name").unwrap_or_default(),
            email: s("email"),
            org_email: s("org_email"),
            mobile: s("mobile"),
            job_number: s("job_number"),
            dept_ids: r
                .get("dept_id_list")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default(),
            active: r.get("active").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}
