//! Robot messages: session-webhook replies, 1:1 batch sends and group sends (reference §4.2).
use super::response::{legacy_err, new_err, ok, request_id, str_of};
use super::*;
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub(super) fn webhook(
    s: &mut Sim,
    query: &BTreeMap<String, String>,
    body: &Value,
    now: i64,
) -> Response {
    let live = |x: &String| {
        s.sessions.contains_key(x) && s.session_expiry.get(x).is_none_or(|exp| now < *exp)
    };
    let Some(session) = query.get("session").filter(|x| live(x)) else {
        // sim-chosen code for an unknown or expired session.
        return legacy_err(s, 300001, "session不存在或已过期");
    };
    let session = session.clone();
    let valid = match str_of(body, "msgtype") {
        Some("text") => body.pointer("/text/content").is_some_and(Value::is_string),
        Some("markdown") => {
            body.pointer("/markdown/title")
                .is_some_and(Value::is_string)
                && body.pointer("/markdown/text").is_some_and(Value::is_string)
        }
        Some("actionCard") => {
            let c = &body["actionCard"];
            let single = c.get("singleTitle").is_some_and(Value::is_string)
                && c.get("singleURL").is_some_and(Value::is_string);
            let multi = c.get("btns").and_then(Value::as_array).is_some_and(|b| {
                !b.is_empty()
                    && b.iter().all(|x| {
                        x.get("title").is_some_and(Value::is_string)
                            && x.get("actionURL").is_some_and(Value::is_string)
                    })
            });
            c.get("title").is_some_and(Value::is_string)
                && c.get("text").is_some_and(Value::is_string)
                && (single || multi)
        }
        Some("link") | Some("feedCard") | Some("empty") => true,
        _ => false,
    };
    if !valid {
        return legacy_err(s, 40035, "缺少参数 msgtype 或消息内容");
    }
    s.sessions
        .entry(session.clone())
        .or_default()
        .push(body.clone());
    if let Some(owner) = s.session_owner.get(&session).cloned() {
        s.log_entry(
            &owner,
            actor::Speaker::Bot,
            actor::ConvKind::Reply,
            actor::render_webhook(body),
            now,
        );
    }
    ok(json!({"errcode": 0, "errmsg": "ok"}))
}

/// Checks `msgKey` / `msgParam` as the robot API does; returns the decoded parameter object.
fn check_msg(body: &Value) -> Result<(String, Value), &'static str> {
    let key = str_of(body, "msgKey").ok_or("msgKey 不能为空")?;
    // msgParam must be a JSON *string*; an object is refused (checklist §11.6).
    let raw = body
        .get("msgParam")
        .and_then(Value::as_str)
        .ok_or("msgParam 必须是JSON字符串")?;
    let param: Value = serde_json::from_str(raw).map_err(|_| "msgParam 不是合法的JSON")?;
    if !param.is_object() {
        return Err("msgParam 必须是JSON对象");
    }
    let mut required: Vec<String> = match key {
        "sampleText" => vec!["content".into()],
        "sampleMarkdown" => vec!["title".into(), "text".into()],
        "sampleActionCard" => ["title", "text", "singleTitle", "singleURL"]
            .map(String::from)
            .to_vec(),
        "sampleLink" => ["title", "text", "picUrl", "messageUrl"]
            .map(String::from)
            .to_vec(),
        "sampleImageMsg" => vec!["photoURL".into()],
        _ => Vec::new(),
    };
    if let Some(n) = key
        .strip_prefix("sampleActionCard")
        .and_then(|d| d.parse::<usize>().ok())
    {
        if !(2..=5).contains(&n) {
            return Err("不支持的 msgKey");
        }
        required = vec!["title".into(), "text".into()];
        for i in 1..=n {
            required.push(format!("actionTitle{i}"));
            required.push(format!("actionURL{i}"));
        }
    } else if required.is_empty() {
        return Err("不支持的 msgKey");
    }
    if required
        .iter()
        .any(|f| !param.get(f).is_some_and(Value::is_string))
    {
        return Err("msgParam 缺少必填字段");
    }
    Ok((key.to_owned(), param))
}

fn check_robot_code(sh: &Shared, body: &Value) -> bool {
    str_of(body, "robotCode") == Some(sh.opts.app_key.as_str())
}

pub(super) fn batch_send(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    if !check_robot_code(sh, body) {
        // sim-chosen code.
        return new_err(s, 400, "invalidParameter.robotCode", "robotCode 不存在");
    }
    let Some(ids) = body.get("userIds").and_then(Value::as_array) else {
        return new_err(s, 400, "invalidParameter", "userIds 不能为空");
    };
    let ids: Vec<String> = ids
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return new_err(s, 400, "invalidParameter", "userIds 不能为空");
    }
    if ids.len() > 20 {
        return new_err(s, 400, "invalidParameter", "userIds 最多20个");
    }
    let (key, param) = match check_msg(body) {
        Ok(x) => x,
        Err(m) => return new_err(s, 400, "invalidParameter", m),
    };
    let (mut invalid, mut flow) = (Vec::new(), Vec::new());
    for id in ids {
        if !s.users.contains_key(&id) {
            invalid.push(id);
        } else if s.flow_controlled.contains(&id) {
            flow.push(id);
        } else {
            s.log_entry(
                &id,
                actor::Speaker::Bot,
                actor::ConvKind::Message,
                actor::render_robot_msg(&key, &param),
                now,
            );
            s.robot_msgs.entry(id).or_default().push(SimMessage {
                channel: SimChannel::RobotOneToOne,
                msg_key: key.clone(),
                param: param.clone(),
                at_ms: now,
            });
        }
    }
    let pqk = format!("pqk-{}", request_id(s));
    ok(
        json!({"processQueryKey": pqk, "invalidStaffIdList": invalid, "flowControlledStaffIdList": flow}),
    )
}

pub(super) fn group_send(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    if !check_robot_code(sh, body) {
        return new_err(s, 400, "invalidParameter.robotCode", "robotCode 不存在");
    }
    let Some(cid) = str_of(body, "openConversationId").filter(|c| !c.is_empty()) else {
        return new_err(s, 400, "invalidParameter", "openConversationId 不能为空");
    };
    if !s.groups.contains(cid) {
        // sim-chosen: the robot is not in that group.
        return new_err(s, 400, "resource.not.found", "机器人不在该群中");
    }
    if str_of(body, "msgParam").is_some_and(|p| p.len() > 15_000) {
        return new_err(s, 400, "invalidParameter", "msgParam 超过15000字节");
    }
    let (key, param) = match check_msg(body) {
        Ok(x) => x,
        Err(m) => return new_err(s, 400, "invalidParameter", m),
    };
    let cid = cid.to_owned();
    s.log_entry(
        &cid,
        actor::Speaker::Bot,
        actor::ConvKind::GroupMessage,
        actor::render_robot_msg(&key, &param),
        now,
    );
    s.group_msgs.entry(cid).or_default().push(SimMessage {
        channel: SimChannel::Group,
        msg_key: key,
        param,
        at_ms: now,
    });
    let pqk = format!("pqk-{}", request_id(s));
    ok(json!({"processQueryKey": pqk}))
}
