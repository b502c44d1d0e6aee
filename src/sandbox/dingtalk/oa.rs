//! OA approvals: template lookup, start, instance id search, read, terminate, and the decision
//! a test makes in the approver's place (reference §6).
use super::response::{new_err, ok, str_of};
use super::*;
use axum::response::Response;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

impl Shared {
    /// Completes a running instance and returns the finish event DingTalk would push. `by`:
    /// the approver who decides (default the first one), recorded in `operationRecords` with
    /// `remark`.
    pub(super) fn record_decision(
        &self,
        instance_id: &str,
        agree: bool,
        by: Option<&str>,
        remark: Option<&str>,
    ) -> Option<Value> {
        let now = self.now_ms();
        let mut s = self.lock();
        let a = s.approvals.get_mut(instance_id)?;
        if a.status != "RUNNING" {
            return None;
        }
        let result = if agree { "agree" } else { "refuse" };
        a.status = "COMPLETED".into();
        a.result = Some(result.into());
        a.finish_ms = Some(now);
        let decider = by
            .map(str::to_owned)
            .or_else(|| a.approvers.first().cloned())
            .unwrap_or_default();
        a.records.push(SimOpRecord {
            user_id: decider.clone(),
            date_ms: now,
            kind: "EXECUTE_TASK_NORMAL".into(),
            result: result.to_ascii_uppercase(),
            remark: remark.map(str::to_owned),
        });
        let a = a.clone();
        let event = actor::approval_event(&self.opts.corp_id, &a, "finish", Some(result), now);
        let approver = decider;
        let approver = s
            .users
            .get(&approver)
            .map(|u| u.name.clone())
            .unwrap_or(approver);
        let text = match agree {
            true => format!("{approver} 在 OA 审批中同意了"),
            false => format!("{approver} 在 OA 审批中拒绝了"),
        };
        s.log_entry(
            &a.originator,
            actor::Speaker::DingTalk,
            actor::ConvKind::OaDecided {
                instance_id: a.instance_id.clone(),
            },
            text,
            now,
        );
        Some(event)
    }
}

pub(super) fn process_code(s: &mut Sim, query: &BTreeMap<String, String>) -> Response {
    let name = query.get("name").map(String::as_str).unwrap_or("");
    match s.processes.get(name).cloned() {
        Some(code) => {
            ok(json!({"result": {"processCode": code, "gmtModified": "2026-01-01T00:00Z"}}))
        }
        // sim-chosen code.
        None => new_err(s, 400, "processCodeNotFound", "未找到该名称的审批模板"),
    }
}

pub(super) fn approval_start(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    let Some(code) = str_of(body, "processCode").filter(|c| !c.is_empty()) else {
        return new_err(s, 400, "processCodeError", "processCode 不能为空");
    };
    if !s.processes.is_empty() && !s.processes.values().any(|c| c == code) {
        return new_err(s, 400, "processCodeError", "processCode 不存在");
    }
    let Some(orig) = str_of(body, "originatorUserId").filter(|u| s.users.contains_key(*u)) else {
        return new_err(
            s,
            400,
            "processInstanceInvalidParameter",
            "发起人不存在或不在企业内",
        );
    };
    if let Some(agent) = body.get("microappAgentId") {
        if agent.as_i64() != Some(sh.opts.agent_id) {
            return new_err(s, 400, "invalidAgentId", "agentId 不合法");
        }
    }
    let mut approvers = Vec::new();
    match body.get("approvers") {
        None | Some(Value::Null) => {
            if !body.get("deptId").is_some_and(Value::is_i64) {
                return new_err(
                    s,
                    400,
                    "processInstanceInvalidParameter",
                    "未指定审批人时 deptId 必填",
                );
            }
        }
        Some(Value::Array(nodes)) if !nodes.is_empty() && nodes.len() <= 20 => {
            for n in nodes {
                let action = str_of(n, "actionType").unwrap_or("");
                let ids: Vec<String> = n
                    .get("userIds")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let shape_ok = match action {
                    "NONE" => ids.len() == 1,
                    "AND" | "OR" => !ids.is_empty(),
                    _ => false,
                };
                if !shape_ok || ids.iter().any(|u| !s.users.contains_key(u)) {
                    return new_err(
                        s,
                        400,
                        "processInstanceInvalidParameter",
                        "审批人参数不合法",
                    );
                }
                approvers.extend(ids);
            }
        }
        Some(_) => {
            return new_err(
                s,
                400,
                "processInstanceInvalidParameter",
                "approvers 不合法",
            );
        }
    }
    let Some(values) = body
        .get("formComponentValues")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty() && a.len() <= 150)
    else {
        return new_err(s, 400, "formConverterError", "表单不能为空");
    };
    let mut form = Vec::new();
    for c in values {
        match (str_of(c, "name"), str_of(c, "value")) {
            (Some(n), Some(v)) if !n.is_empty() => form.push((n.to_owned(), v.to_owned())),
            _ => {
                return new_err(
                    s,
                    400,
                    "formConverterError",
                    "表单控件的 name 和 value 必须是字符串",
                )
            }
        }
    }
    let a: u128 = rand::rng().random();
    let h = format!("{a:032x}");
    let summary: Vec<String> = form.iter().map(|(n, v)| format!("{n}：{v}")).collect();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    s.approvals.insert(
        id.clone(),
        SimApproval {
            instance_id: id.clone(),
            process_code: code.to_owned(),
            originator: orig.to_owned(),
            dept_id: body.get("deptId").and_then(Value::as_i64),
            approvers,
            form,
            status: "RUNNING".into(),
            result: None,
            create_ms: now,
            finish_ms: None,
            remark: None,
            records: vec![SimOpRecord {
                user_id: orig.to_owned(),
                date_ms: now,
                kind: "START_PROCESS_INSTANCE".into(),
                result: "NONE".into(),
                remark: None,
            }],
        },
    );
    let text = format!("OA 审批已发起（{id}）\n{}", summary.join("\n"));
    let mut people = vec![orig.to_owned()];
    people.extend(
        s.approvals
            .get(&id)
            .map(|a| a.approvers.clone())
            .unwrap_or_default(),
    );
    people.dedup();
    for p in people {
        s.log_entry(
            &p,
            actor::Speaker::DingTalk,
            actor::ConvKind::OaStarted {
                instance_id: id.clone(),
            },
            text.clone(),
            now,
        );
    }
    s.last_started = Some(id.clone());
    ok(json!({"instanceId": id}))
}

/// Most ids one page of `instanceIds/query` returns (the API's documented maximum).
pub const INSTANCE_IDS_MAX_RESULTS: i64 = 20;

/// `POST processes/instanceIds/query` (reference §6.4): ids of one template's instances
/// created in `[startTime, endTime]`, oldest first, paged by an offset `nextToken` that is
/// present only while more remain.
pub(super) fn approval_ids(s: &mut Sim, body: &Value) -> Response {
    let Some(code) = str_of(body, "processCode").filter(|c| !c.is_empty()) else {
        return new_err(s, 400, "processCodeError", "processCode 不能为空");
    };
    let Some(start) = body.get("startTime").and_then(Value::as_i64) else {
        return new_err(s, 400, "invalidParameter", "startTime 不能为空");
    };
    let end = match body.get("endTime") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(e) if e >= start => Some(e),
            _ => return new_err(s, 400, "invalidParameter", "endTime 不合法"),
        },
    };
    let max = match body.get("maxResults").and_then(Value::as_i64) {
        Some(m) if (1..=INSTANCE_IDS_MAX_RESULTS).contains(&m) => m,
        _ => return new_err(s, 400, "invalidParameter", "maxResults 取值范围为 1-20"),
    };
    let next = match body.get("nextToken") {
        None | Some(Value::Null) => Some(0),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(t)) => t.parse().ok(),
        Some(_) => None,
    };
    let Some(next) = next.filter(|n| *n >= 0) else {
        return new_err(s, 400, "invalidParameter", "nextToken 不合法");
    };
    let strings = |k: &str| -> Option<Vec<String>> {
        body.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    };
    let users = strings("userIds");
    let statuses = strings("statuses");
    let mut found: Vec<&SimApproval> = s
        .approvals
        .values()
        .filter(|a| a.process_code == code)
        .filter(|a| a.create_ms >= start && end.is_none_or(|e| a.create_ms <= e))
        .filter(|a| users.as_ref().is_none_or(|u| u.contains(&a.originator)))
        .filter(|a| statuses.as_ref().is_none_or(|st| st.contains(&a.status)))
        .collect();
    found.sort_by(|a, b| (a.create_ms, &a.instance_id).cmp(&(b.create_ms, &b.instance_id)));
    let total = i64::try_from(found.len()).unwrap_or(i64::MAX);
    let page: Vec<String> = found
        .into_iter()
        .skip(usize::try_from(next).unwrap_or(usize::MAX))
        .take(usize::try_from(max).unwrap_or(0))
        .map(|a| a.instance_id.clone())
        .collect();
    let after = next.saturating_add(i64::try_from(page.len()).unwrap_or(0));
    let mut r = json!({"list": page});
    if after < total {
        r["nextToken"] = json!(after);
    }
    ok(json!({"result": r}))
}

fn minute_str(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_default()
}

pub(super) fn approval_get(s: &mut Sim, query: &BTreeMap<String, String>) -> Response {
    let Some(id) = query.get("processInstanceId").filter(|i| !i.is_empty()) else {
        return new_err(
            s,
            400,
            "processInstanceIdError",
            "processInstanceId 不能为空",
        );
    };
    let Some(a) = s.approvals.get(id.as_str()).cloned() else {
        return new_err(s, 400, "processInstanceNotExist", "审批实例不存在");
    };
    let mut r = Map::new();
    r.insert(
        "title".into(),
        json!(format!("{} 提交的审批", a.originator)),
    );
    r.insert("status".into(), json!(a.status));
    if let Some(res) = &a.result {
        r.insert("result".into(), json!(res));
    }
    r.insert("originatorUserId".into(), json!(a.originator));
    r.insert(
        "originatorDeptId".into(),
        json!(a.dept_id.unwrap_or(-1).to_string()),
    );
    r.insert("createTime".into(), json!(minute_str(a.create_ms)));
    if let Some(f) = a.finish_ms {
        r.insert("finishTime".into(), json!(minute_str(f)));
    }
    r.insert("approverUserIds".into(), json!(a.approvers));
    r.insert(
        "formComponentValues".into(),
        json!(a
            .form
            .iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect::<Vec<_>>()),
    );
    r.insert("tasks".into(), json!([]));
    r.insert(
        "operationRecords".into(),
        json!(a
            .records
            .iter()
            .map(|o| {
                let mut rec = json!({"userId": o.user_id, "date": minute_str(o.date_ms),
                    "type": o.kind, "result": o.result, "showName": o.kind});
                if let Some(m) = &o.remark {
                    rec["remark"] = json!(m);
                }
                rec
            })
            .collect::<Vec<_>>()),
    );
    ok(json!({"success": "true", "result": Value::Object(r)}))
}

pub(super) fn approval_terminate(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    let Some(id) = str_of(body, "processInstanceId").filter(|i| !i.is_empty()) else {
        return new_err(
            s,
            400,
            "processInstanceIdError",
            "processInstanceId 不能为空",
        );
    };
    let is_system = body
        .get("isSystem")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let operator = str_of(body, "operatingUserId").map(str::to_owned);
    let remark = str_of(body, "remark").map(str::to_owned);
    let min_age = sh.opts.min_terminate_after_secs * 1000;
    let Some(a) = s.approvals.get(id).cloned() else {
        return new_err(s, 400, "processInstanceNotExist", "审批实例不存在");
    };
    // sim-chosen codes for the documented refusals.
    if a.status != "RUNNING" {
        return new_err(s, 400, "invalidParameter", "只能撤销审批中的实例");
    }
    if now - a.create_ms < min_age {
        return new_err(s, 400, "invalidParameter", "发起后15秒内不能撤销");
    }
    if !is_system && operator.as_deref() != Some(a.originator.as_str()) {
        return new_err(s, 400, "820008", "您没有任务处理的权限");
    }
    if let Some(a) = s.approvals.get_mut(id) {
        a.status = "TERMINATED".into();
        a.finish_ms = Some(now);
        a.remark = remark;
    }
    ok(json!({"success": true, "result": true}))
}

/// `GET forms/schemas/processCodes` (reference §6.4): the form's components with their labels.
pub(super) fn form_schema(s: &mut Sim, query: &BTreeMap<String, String>) -> Response {
    let code = query.get("processCode").map(String::as_str).unwrap_or("");
    if code.is_empty() || (!s.processes.is_empty() && !s.processes.values().any(|c| c == code)) {
        // sim-chosen code, as for starting an unknown template.
        return new_err(s, 400, "processCodeError", "processCode 不存在");
    }
    let items: Vec<Value> = s
        .process_forms
        .get(code)
        .map(|labels| {
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    json!({"componentName": "TextField",
                        "props": {"id": format!("TextField-{i}"), "label": l, "required": false}})
                })
                .collect()
        })
        .unwrap_or_default();
    ok(json!({"result": {"processCode": code, "schemaContent": {"title": code, "items": items}}}))
}
