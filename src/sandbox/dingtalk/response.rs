//! The simulator's answer shapes, shared by the router and every API family: DingTalk's new-style
//! error `{code, message, requestid}`, the legacy `{errcode, errmsg}`, and the request ids they carry.
use super::*;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub(super) fn request_id(s: &mut Sim) -> String {
    s.seq += 1;
    format!("SIM-{:08X}", s.seq)
}

pub(super) fn new_err(s: &mut Sim, status: u16, code: &str, message: &str) -> Response {
    let rid = request_id(s);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({"code": code, "message": message, "requestid": rid})),
    )
        .into_response()
}

pub(super) fn legacy_err(s: &mut Sim, errcode: i64, errmsg: &str) -> Response {
    let rid = request_id(s);
    Json(json!({"errcode": errcode, "errmsg": errmsg, "request_id": rid})).into_response()
}

pub(super) fn ok(v: Value) -> Response {
    Json(v).into_response()
}

pub(super) fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}
