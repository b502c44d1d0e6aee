//! OA approvals: template lookup, start, read, search and terminate an approval instance
//! (reference §6).
use super::transport::Style;
use super::{DingTalkClient, DingTalkError, Result};
use crate::domain::ids::DingUserId;
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalStart {
    pub process_code: String,
    pub originator: DingUserId,
    /// Originator's department, `-1` = root.
    pub dept_id: i64,
    /// Empty: the template's own flow. One: that person. Several: any one of them may decide.
    pub approvers: Vec<DingUserId>,
    /// `(label, value)` pairs; labels must equal the template's component labels.
    pub form: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalStatus {
    New,
    Running,
    Completed,
    Terminated,
    Canceled,
    Other(String),
}

impl ApprovalStatus {
    fn parse(s: &str) -> Self {
        match s {
            "NEW" => Self::New,
            "RUNNING" => Self::Running,
            "COMPLETED" => Self::Completed,
            "TERMINATED" => Self::Terminated,
            "CANCELED" => Self::Canceled,
            other => Self::Other(other.to_owned()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalResult {
    Agree,
    Refuse,
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalState {
    pub status: ApprovalStatus,
    /// Meaningful only once `status` is `Completed`.
    pub result: Option<ApprovalResult>,
}

impl ApprovalState {
    /// The only state that grants access (reference §6.2).
    pub fn is_approved(&self) -> bool {
        self.status == ApprovalStatus::Completed && self.result == Some(ApprovalResult::Agree)
    }
}

/// An instance as `GET processInstances` shows it: enough to tell whose it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalDetail {
    pub state: ApprovalState,
    pub originator: Option<DingUserId>,
    /// `(name, value)` of every form component with a string value.
    pub form: Vec<(String, String)>,
    /// `operationRecords`, oldest first: who did what to the instance.
    pub records: Vec<ApprovalRecord>,
}

/// One entry of an instance's `operationRecords` (§6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub user: Option<DingUserId>,
    /// `type`, e.g. `EXECUTE_TASK_NORMAL`.
    pub kind: String,
    /// `result`; `None` for `NONE` or absent.
    pub result: Option<ApprovalResult>,
    /// The comment the person left, if any.
    pub remark: Option<String>,
}

impl ApprovalDetail {
    /// The last record that refused the instance, if DingTalk lists one.
    pub fn refusal(&self) -> Option<&ApprovalRecord> {
        self.records
            .iter()
            .rev()
            .find(|r| r.result == Some(ApprovalResult::Refuse))
    }
}

fn parse_result(s: &str) -> Option<ApprovalResult> {
    match s.to_ascii_lowercase().as_str() {
        "" | "none" => None,
        "agree" => Some(ApprovalResult::Agree),
        "refuse" => Some(ApprovalResult::Refuse),
        _ => Some(ApprovalResult::Other(s.to_owned())),
    }
}

fn parse_records(r: &Value) -> Vec<ApprovalRecord> {
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    r.get("operationRecords")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|rec| ApprovalRecord {
                    user: text(rec, "userId").map(DingUserId::new),
                    kind: text(rec, "type").unwrap_or_default(),
                    result: rec
                        .get("result")
                        .and_then(Value::as_str)
                        .and_then(parse_result),
                    remark: text(rec, "remark"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A search for instance ids (§6.4); times are epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalInstanceQuery {
    pub process_code: String,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// Only instances these users started; empty: anyone's.
    pub originators: Vec<DingUserId>,
}

/// `maxResults` per page of the instance id query (the API's maximum).
const INSTANCE_IDS_PAGE: i64 = 20;
/// Pages followed before giving up on a query that never ends (a server fault).
const MAX_INSTANCE_ID_PAGES: usize = 50;

impl DingTalkClient {
    /// The `processCode` of an approval template, looked up by its name (§6.4).
    pub async fn process_code_by_name(&self, name: &str) -> Result<String> {
        let v = self
            .call(
                Style::New,
                Method::GET,
                &self.api("/v1.0/workflow/processCentres/schemaNames/processCodes"),
                &[("name", name)],
                None,
                true,
            )
            .await?;
        v.pointer("/result/processCode")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| DingTalkError::Decode("processCodes lookup without processCode".into()))
    }

    /// The labels of an approval template's form components (§6.4
    /// `forms/schemas/processCodes`), children included: what `formComponentValues[].name`
    /// must equal. Read-only; `accessbot doctor` compares them with the labels the bot fills.
    pub async fn form_labels(&self, process_code: &str) -> Result<Vec<String>> {
        let v = self
            .call(
                Style::New,
                Method::GET,
                &self.api("/v1.0/workflow/forms/schemas/processCodes"),
                &[("processCode", process_code)],
                None,
                true,
            )
            .await?;
        fn walk(items: &[Value], out: &mut Vec<String>) {
            for it in items {
                if let Some(l) = it.pointer("/props/label").and_then(Value::as_str) {
                    out.push(l.to_owned());
                }
                if let Some(c) = it.get("children").and_then(Value::as_array) {
                    walk(c, out);
                }
            }
        }
        let items = v
            .pointer("/result/schemaContent/items")
            .and_then(Value::as_array)
            .ok_or_else(|| DingTalkError::Decode("form schema without items".into()))?;
        let mut out = Vec::new();
        walk(items, &mut out);
        Ok(out)
    }

    /// The JSON body of `workflow/processInstances` (§6.1).
    pub fn approval_start_body(&self, req: &ApprovalStart) -> Value {
        let mut body = json!({
            "originatorUserId": req.originator,
            "processCode": req.process_code,
            "deptId": req.dept_id,
            "formComponentValues": req.form.iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect::<Vec<_>>(),
        });
        if let Some(agent) = self.inner.agent_id {
            body["microappAgentId"] = json!(agent);
        }
        match req.approvers.len() {
            0 => {}
            1 => body["approvers"] = json!([{"actionType": "NONE", "userIds": req.approvers}]),
            _ => body["approvers"] = json!([{"actionType": "OR", "userIds": req.approvers}]),
        }
        body
    }

    /// Starts an approval and returns its instance id. Never retried on server errors: the
    /// API has no idempotency key, so a blind retry could open a second approval.
    pub async fn start_approval(&self, req: ApprovalStart) -> Result<String> {
        let body = self.approval_start_body(&req);
        let v = self
            .call(
                Style::New,
                Method::POST,
                &self.api("/v1.0/workflow/processInstances"),
                &[],
                Some(&body),
                false,
            )
            .await?;
        v.get("instanceId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| DingTalkError::Decode("processInstances without instanceId".into()))
    }

    pub async fn get_approval(&self, instance_id: &str) -> Result<ApprovalState> {
        self.get_approval_detail(instance_id).await.map(|d| d.state)
    }

    /// One instance with who started it and its form values (§6.2).
    pub async fn get_approval_detail(&self, instance_id: &str) -> Result<ApprovalDetail> {
        let v = self
            .call(
                Style::New,
                Method::GET,
                &self.api("/v1.0/workflow/processInstances"),
                &[("processInstanceId", instance_id)],
                None,
                true,
            )
            .await?;
        let r = v
            .get("result")
            .ok_or_else(|| DingTalkError::Decode("processInstances GET without result".into()))?;
        let status = r
            .get("status")
            .and_then(Value::as_str)
            .map(ApprovalStatus::parse)
            .ok_or_else(|| DingTalkError::Decode("approval without status".into()))?;
        let result = r
            .get("result")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| parse_result(s).unwrap_or_else(|| ApprovalResult::Other(s.to_owned())));
        let originator = r
            .get("originatorUserId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(DingUserId::new);
        // Components without a string name or value (tables, notes) cannot carry our fields.
        let form = r
            .get("formComponentValues")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|c| {
                        let name = c.get("name").and_then(Value::as_str)?;
                        let value = c.get("value").and_then(Value::as_str)?;
                        Some((name.to_owned(), value.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ApprovalDetail {
            state: ApprovalState { status, result },
            originator,
            form,
            records: parse_records(r),
        })
    }

    /// Ids of the instances of one template started in a time window, optionally only by some
    /// originators (§6.4 `processes/instanceIds/query`), following `nextToken` to the end. A
    /// read, so it is retried like one even though it is a POST.
    pub async fn list_approval_instance_ids(
        &self,
        q: &ApprovalInstanceQuery,
    ) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut next: i64 = 0;
        for _ in 0..MAX_INSTANCE_ID_PAGES {
            let mut body = json!({
                "processCode": q.process_code,
                "startTime": q.start_ms,
                "nextToken": next,
                "maxResults": INSTANCE_IDS_PAGE,
            });
            if let Some(end) = q.end_ms {
                body["endTime"] = json!(end);
            }
            if !q.originators.is_empty() {
                body["userIds"] = json!(q.originators);
            }
            let v = self
                .call(
                    Style::New,
                    Method::POST,
                    &self.api("/v1.0/workflow/processes/instanceIds/query"),
                    &[],
                    Some(&body),
                    true,
                )
                .await?;
            let r = v
                .get("result")
                .ok_or_else(|| DingTalkError::Decode("instanceIds query without result".into()))?;
            let list = r
                .get("list")
                .and_then(Value::as_array)
                .ok_or_else(|| DingTalkError::Decode("instanceIds query without list".into()))?;
            ids.extend(
                list.iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            // The token comes as a number or a numeric string; absent, or not past this page,
            // means the last page.
            let token = match r.get("nextToken") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            };
            match token {
                Some(t) if t > next && !list.is_empty() => next = t,
                _ => return Ok(ids),
            }
        }
        Err(DingTalkError::Decode(format!(
            "instanceIds query still paging after {MAX_INSTANCE_ID_PAGES} pages"
        )))
    }

    /// Revokes a running approval. `operator: None` terminates as the system (`isSystem`);
    /// otherwise the operator must be the originator.
    pub async fn terminate_approval(
        &self,
        instance_id: &str,
        operator: Option<&DingUserId>,
        remark: &str,
    ) -> Result<()> {
        let mut body = json!({
            "processInstanceId": instance_id,
            "isSystem": operator.is_none(),
            "remark": remark,
        });
        if let Some(op) = operator {
            body["operatingUserId"] = json!(op);
        }
        let v = self
            .call(
                Style::New,
                Method::POST,
                &self.api("/v1.0/workflow/processInstances/terminate"),
                &[],
                Some(&body),
                false,
            )
            .await?;
        if v.get("result").and_then(Value::as_bool) == Some(false) {
            return Err(DingTalkError::Api {
                status: 200,
                code: "terminateRefused".into(),
                message: "terminate returned result=false".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_state_is_approved_only_when_completed_and_agreed() {
        let s = |st, r| ApprovalState {
            status: st,
            result: r,
        };
        assert!(s(ApprovalStatus::Completed, Some(ApprovalResult::Agree)).is_approved());
        assert!(!s(ApprovalStatus::Completed, Some(ApprovalResult::Refuse)).is_approved());
        assert!(!s(ApprovalStatus::Running, Some(ApprovalResult::Agree)).is_approved());
        assert!(!s(ApprovalStatus::Terminated, None).is_approved());
    }
}
