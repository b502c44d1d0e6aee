//! The simulator's front: one handler for every path that records the call, applies armed
//! faults, checks the token and the QPS limit, and routes to the API family's handler; plus the
//! error shapes of the new API and the legacy oapi (reference §0, §1, §9).
use super::cards::{card_create, card_create_undelivered, card_register, card_update};
use super::contacts::user_get;
use super::oa::{
    approval_get, approval_ids, approval_start, approval_terminate, form_schema, process_code,
};
use super::response::{legacy_err, new_err, ok, request_id, str_of};
use super::robot::{batch_send, group_send, webhook};
use super::work_notice::work_notice;
use super::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    New,
    Legacy,
    Webhook,
}

fn fault_response(s: &mut Sim, fam: Family, kind: FaultKind) -> Response {
    match (fam, kind) {
        (Family::New, FaultKind::Throttle) => new_err(
            s,
            403,
            "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
            "qps limited",
        ),
        (Family::New, FaultKind::ServerError) => new_err(s, 500, "systemError", "系统错误"),
        (Family::New, FaultKind::PermissionDenied) => new_err(
            s,
            403,
            "Forbidden.AccessDenied.AccessTokenPermissionDenied",
            "没有调用该接口的权限，接口权限申请参考：qyapi_robot_sendmsg",
        ),
        (Family::New, FaultKind::InvalidToken) => {
            new_err(s, 400, "InvalidAuthentication", "不合法的access_token")
        }
        (_, FaultKind::Throttle) => legacy_err(s, 90018, "当前企业调用该接口超过了限制"),
        (_, FaultKind::ServerError) => legacy_err(s, -1, "系统繁忙"),
        (_, FaultKind::PermissionDenied) => legacy_err(s, 60011, "没有调用该接口的权限"),
        (_, FaultKind::InvalidToken) => {
            let rid = request_id(s);
            ok(
                json!({"errcode": 88, "sub_code": "40014", "sub_msg": "不合法的access_token",
                      "errmsg": "不合法的access_token", "request_id": rid}),
            )
        }
    }
}

pub(super) async fn handle(
    State(sh): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body_parsed: Option<Value> = if raw.iter().all(u8::is_ascii_whitespace) {
        Some(Value::Null)
    } else {
        serde_json::from_slice(&raw).ok()
    };
    let fam = if path.starts_with("/v1.0/") {
        Family::New
    } else if path == "/robot/sendBySession" {
        Family::Webhook
    } else {
        Family::Legacy
    };
    let token = match fam {
        Family::New => headers
            .get("x-acs-dingtalk-access-token")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned),
        Family::Legacy => query.get("access_token").cloned(),
        Family::Webhook => None,
    };
    let now = sh.now_ms();
    let mut s = sh.lock();
    s.calls.push(RecordedCall {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body_parsed
            .clone()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&raw).into_owned())),
        token: token.clone(),
        at_ms: now,
    });

    let mut lost_answer = None;
    if let Some(f) = s
        .faults
        .iter_mut()
        .find(|f| f.remaining > 0 && path.starts_with(&f.prefix))
    {
        f.remaining -= 1;
        let (kind, after) = (f.kind, f.after_effect);
        s.faults.retain(|f| f.remaining > 0);
        if !after {
            return fault_response(&mut s, fam, kind);
        }
        lost_answer = Some(kind);
    }
    let answer = route(
        &sh,
        s,
        &method,
        &path,
        &query,
        body_parsed,
        &token,
        fam,
        now,
    );
    match lost_answer {
        Some(kind) => fault_response(&mut sh.lock(), fam, kind),
        None => answer,
    }
}

/// Everything after the recording and the fault check: auth, limits, then the API itself.
#[allow(clippy::too_many_arguments)]
fn route(
    sh: &Arc<Shared>,
    mut s: MutexGuard<'_, Sim>,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body_parsed: Option<Value>,
    token: &Option<String>,
    fam: Family,
    now: i64,
) -> Response {
    let Some(body) = body_parsed else {
        return match fam {
            Family::New => new_err(&mut s, 400, "InvalidParameter", "请求体不是合法的JSON"),
            _ => legacy_err(&mut s, 40035, "缺少参数 json"),
        };
    };

    // Token endpoints: no token needed and exempt from the QPS limit.
    if method == Method::POST && path == "/v1.0/oauth2/accessToken" {
        let good = body.get("appKey").and_then(Value::as_str) == Some(sh.opts.app_key.as_str())
            && body.get("appSecret").and_then(Value::as_str) == Some(sh.opts.app_secret.as_str());
        if !good {
            return new_err(
                &mut s,
                400,
                "invalidClientIdOrSecret",
                "无效的clientId或者clientSecret",
            );
        }
        let (tok, ttl) = issue_token(sh, &mut s, now);
        return ok(json!({"accessToken": tok, "expireIn": ttl}));
    }
    if method == Method::GET && path == "/gettoken" {
        let (Some(k), Some(sec)) = (query.get("appkey"), query.get("appsecret")) else {
            return legacy_err(&mut s, 40035, "缺少参数 corpid or appkey");
        };
        if *k != sh.opts.app_key || *sec != sh.opts.app_secret {
            return legacy_err(&mut s, 40096, "不合法的appKey或appSecret");
        }
        let (tok, ttl) = issue_token(sh, &mut s, now);
        return ok(json!({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": ttl}));
    }

    if fam == Family::Webhook {
        return webhook(&mut s, query, &body, now);
    }

    // Auth, as the gateway does it, before anything else is looked at.
    let valid = token
        .as_deref()
        .and_then(|t| s.tokens.get(t))
        .is_some_and(|exp| now < *exp);
    if !valid {
        return match (fam, token.as_deref()) {
            (Family::New, None) => new_err(
                &mut s,
                400,
                "AuthenticationFailed.MissingParameter",
                "缺少参数：x-acs-dingtalk-access-token",
            ),
            (Family::New, Some(_)) => {
                new_err(&mut s, 400, "InvalidAuthentication", "不合法的access_token")
            }
            (_, None) => {
                let rid = request_id(&mut s);
                ok(
                    json!({"errcode": 88, "sub_code": "40000", "sub_msg": "access_token is blank",
                          "errmsg": "不合法的access_token", "request_id": rid}),
                )
            }
            (_, Some(_)) => fault_response(&mut s, fam, FaultKind::InvalidToken),
        };
    }

    if let Some(limit) = sh.opts.qps_limit {
        let second = now.div_euclid(1000);
        // One budget per API, and GET and POST on one path are different APIs.
        let entry = s
            .qps
            .entry(format!("{method} {path}"))
            .or_insert((second, 0));
        if entry.0 != second {
            *entry = (second, 0);
        }
        if entry.1 >= limit {
            return fault_response(&mut s, fam, FaultKind::Throttle);
        }
        entry.1 += 1;
    }

    match (method.as_str(), path) {
        ("POST", "/topapi/v2/user/get") => user_get(&mut s, &body),
        ("POST", "/v1.0/robot/oToMessages/batchSend") => batch_send(sh, &mut s, &body, now),
        ("POST", "/v1.0/robot/groupMessages/send") => group_send(sh, &mut s, &body, now),
        ("POST", "/v1.0/card/instances/createAndDeliver") => card_create(sh, &mut s, &body, now),
        ("POST", "/v1.0/card/instances") => card_create_undelivered(&mut s, &body, now),
        ("PUT", "/v1.0/card/instances") => card_update(&mut s, &body, now),
        ("POST", "/v1.0/card/callbacks/register") => card_register(&mut s, &body),
        ("GET", "/v1.0/workflow/processCentres/schemaNames/processCodes") => {
            process_code(&mut s, query)
        }
        ("GET", "/v1.0/workflow/forms/schemas/processCodes") => form_schema(&mut s, query),
        ("POST", "/v1.0/workflow/processInstances") => {
            let r = approval_start(sh, &mut s, &body, now);
            let started = s
                .last_started
                .take()
                .and_then(|id| s.approvals.get(&id).cloned());
            drop(s);
            if let Some(a) = started {
                actor::spawn_push(
                    sh,
                    actor::approval_event(&sh.opts.corp_id, &a, "start", None, now),
                );
            }
            r
        }
        ("GET", "/v1.0/workflow/processInstances") => approval_get(&mut s, query),
        ("POST", "/v1.0/workflow/processes/instanceIds/query") => approval_ids(&mut s, &body),
        ("POST", "/v1.0/workflow/processInstances/terminate") => {
            let r = approval_terminate(sh, &mut s, &body, now);
            if r.status().is_success() {
                let event = str_of(&body, "processInstanceId")
                    .and_then(|id| s.approvals.get(id).cloned())
                    .map(|a| actor::approval_event(&sh.opts.corp_id, &a, "terminate", None, now));
                drop(s);
                if let Some(e) = event {
                    actor::spawn_push(sh, e);
                }
            }
            r
        }
        ("POST", "/topapi/message/corpconversation/asyncsend_v2") => {
            work_notice(sh, &mut s, &body, now)
        }
        // sim-chosen shapes for routes the sim does not know.
        _ if fam == Family::New => new_err(&mut s, 404, "InvalidAction.NotFound", "api不存在"),
        _ => legacy_err(&mut s, 404, "请求的URI地址不存在"),
    }
}

/// Same token while valid (and its life extended), a new one after expiry (reference §1.3).
fn issue_token(sh: &Shared, s: &mut Sim, now: i64) -> (String, i64) {
    let ttl = sh.opts.token_ttl_secs;
    let current = s
        .current_token
        .clone()
        .filter(|t| s.tokens.get(t).is_some_and(|exp| now < *exp));
    let tok = current.unwrap_or_else(|| {
        let n: u64 = rand::rng().random();
        format!("simtok{n:016x}")
    });
    s.tokens.insert(tok.clone(), now + ttl * 1000);
    s.current_token = Some(tok.clone());
    (tok, ttl)
}
