//! Contacts: `topapi/v2/user/get` (reference §7).
use super::response::{legacy_err, ok, request_id, str_of};
use super::*;
use axum::response::Response;
use serde_json::{json, Value};

pub(super) fn user_get(s: &mut Sim, body: &Value) -> Response {
    let Some(uid) = str_of(body, "userid").filter(|u| !u.is_empty()) else {
        return legacy_err(s, 40035, "缺少参数 userid");
    };
    let Some(u) = s.users.get(uid).cloned() else {
        // sim-chosen: the reference leaves the exact code open; 60121 is the commonly seen one.
        return legacy_err(s, 60121, "找不到该用户");
    };
    let rid = request_id(s);
    let mut r = json!({
        "userid": u.userid, "unionid": format!("union-{}", u.userid), "name": u.name,
        "dept_id_list": u.dept_ids, "active": u.active, "admin": false, "boss": false,
    });
    for (k, v) in [
        ("email", &u.email),
        ("org_email", &u.org_email),
        ("mobile", &u.mobile),
        ("job_number", &u.job_number),
    ] {
        if let Some(v) = v {
            r[k] = json!(v);
        }
    }
    ok(json!({"errcode": 0, "errmsg": "ok", "result": r, "request_id": rid}))
}
