//! Work notifications (reference §8).
use super::response::{legacy_err, ok, request_id, str_of};
use super::*;
use axum::response::Response;
use serde_json::{json, Value};

pub(super) fn work_notice(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    if body.get("agent_id").and_then(Value::as_i64) != Some(sh.opts.agent_id) {
        return legacy_err(s, 40056, "不合法的agentid");
    }
    let ids: Vec<String> = str_of(body, "userid_list")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect();
    if ids.is_empty() {
        return legacy_err(s, 40035, "缺少参数 userid_list");
    }
    if ids.len() > 100 {
        return legacy_err(s, 40035, "userid_list 最多100个");
    }
    let Some(msg) = body.get("msg").filter(|m| m.is_object()) else {
        return legacy_err(s, 40035, "缺少参数 msg");
    };
    if msg.to_string().len() > 2048 {
        return legacy_err(s, 40035, "msg 超过2048字节");
    }
    let Some(kind) = str_of(msg, "msgtype").filter(|k| msg.get(*k).is_some_and(Value::is_object))
    else {
        return legacy_err(s, 40035, "缺少参数 msgtype");
    };
    let kind = kind.to_owned();
    let known: Vec<String> = ids
        .into_iter()
        .filter(|id| s.users.contains_key(id))
        .collect();
    for id in known {
        s.log_entry(
            &id,
            actor::Speaker::Bot,
            actor::ConvKind::WorkNotice,
            actor::render_work_notice(&kind, &msg[kind.as_str()]),
            now,
        );
        s.robot_msgs.entry(id).or_default().push(SimMessage {
            channel: SimChannel::WorkNotice,
            msg_key: kind.clone(),
            param: msg[kind.as_str()].clone(),
            at_ms: now,
        });
    }
    s.seq += 1;
    let task = s.seq as i64;
    let rid = request_id(s);
    ok(json!({"errcode": 0, "errmsg": "ok", "task_id": task, "request_id": rid}))
}
