//! Response building of the simulated JumpServer: DRF-style JSON errors, Django HTML pages,
//! and the cookie every v4.10.16 response sets.
use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

pub(super) const WWW_AUTH: &str = "Signature realm=\"api\",headers=\"(request-target) date\"";
pub(super) const PREFIX_COOKIE: &str = "SESSION_COOKIE_NAME_PREFIX=jms_; Path=/";
pub(super) const HTML_404: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n    <meta charset=\"UTF-8\">\n    <title>Not found</title>\n</head>\n<body>\n<h1>Not found</h1>\n</body>\n</html>";
pub(super) const HTML_500: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n    <meta charset=\"UTF-8\">\n    <title>Server error</title>\n</head>\n<body>\n<h1>Server error occur, contact administrator</h1>\n</body>\n</html>";

/// A response under construction: status, JSON or HTML body, extra headers.
pub(super) struct Out {
    pub(super) status: u16,
    pub(super) body: Option<Value>,
    pub(super) html: Option<&'static str>,
    pub(super) headers: Vec<(&'static str, String)>,
}

pub(super) fn out(status: u16, body: Value) -> Out {
    Out {
        status,
        body: Some(body),
        html: None,
        headers: Vec::new(),
    }
}
pub(super) fn empty(status: u16) -> Out {
    Out {
        status,
        body: None,
        html: None,
        headers: Vec::new(),
    }
}
pub(super) fn html(status: u16, page: &'static str) -> Out {
    Out {
        status,
        body: None,
        html: Some(page),
        headers: Vec::new(),
    }
}
pub(super) fn detail(status: u16, msg: &str, code: &str) -> Out {
    out(status, json!({"detail": msg, "code": code}))
}
pub(super) fn not_authenticated() -> Out {
    let mut o = detail(
        401,
        "Authentication credentials were not provided.",
        "not_authenticated",
    );
    o.headers.push(("www-authenticate", WWW_AUTH.to_owned()));
    o
}
pub(super) fn auth_failed(msg: &str) -> Out {
    let mut o = detail(401, msg, "authentication_failed");
    o.headers.push(("www-authenticate", WWW_AUTH.to_owned()));
    o
}
pub(super) fn internal() -> Out {
    out(500, json!({"error": "Server internal error"}))
}
pub(super) fn not_found_obj(kind: &str) -> Out {
    detail(
        404,
        &format!("{kind} object does not exist."),
        "object_does_not_exist",
    )
}
pub(super) fn field_err(field: &str, msg: &str) -> Out {
    out(400, json!({ field: [msg] }))
}

pub(super) fn render(o: Out) -> Response {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(o.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let body = if let Some(page) = o.html {
        b = b.header(header::CONTENT_TYPE, "text/html; charset=utf-8");
        Body::from(page)
    } else if let Some(v) = o.body {
        b = b.header(header::CONTENT_TYPE, "application/json");
        Body::from(serde_json::to_vec(&v).unwrap_or_default())
    } else {
        b = b.header(header::CONTENT_TYPE, "text/html; charset=utf-8");
        Body::empty()
    };
    b = b.header(header::SET_COOKIE, PREFIX_COOKIE);
    for (k, v) in o.headers {
        b = b.header(k, v);
    }
    b.body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
