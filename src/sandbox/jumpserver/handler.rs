//! Request handling of the simulated JumpServer: one fallback handler that does what the real
//! middleware stack does in order (APPEND_SLASH redirect, auth, throttling, org), then routes.
use super::model::*;
use super::util::{self, fmt_dt, paginate, parse_dt, qget, Query};
use super::{Pending, Shared, State};
use crate::jumpserver::httpsig::{self, HttpSigError};
use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use jiff::Timestamp;
use serde_json::{json, Value};
use std::sync::Arc;

const WWW_AUTH: &str = "Signature realm=\"api\",headers=\"(request-target) date\"";
const PREFIX_COOKIE: &str = "SESSION_COOKIE_NAME_PREFIX=jms_; Path=/";
const HTML_404: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n    <meta charset=\"UTF-8\">\n    <title>Not found</title>\n</head>\n<body>\n<h1>Not found</h1>\n</body>\n</html>";
const HTML_500: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n    <meta charset=\"UTF-8\">\n    <title>Server error</title>\n</head>\n<body>\n<h1>Server error occur, contact administrator</h1>\n</body>\n</html>";

/// A response under construction: status, JSON or HTML body, extra headers.
struct Out {
    status: u16,
    body: Option<Value>,
    html: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
}

fn out(status: u16, body: Value) -> Out {
    Out {
        status,
        body: Some(body),
        html: None,
        headers: Vec::new(),
    }
}
fn empty(status: u16) -> Out {
    Out {
        status,
        body: None,
        html: None,
        headers: Vec::new(),
    }
}
fn html(status: u16, page: &'static str) -> Out {
    Out {
        status,
        body: None,
        html: Some(page),
        headers: Vec::new(),
    }
}
fn detail(status: u16, msg: &str, code: &str) -> Out {
    out(status, json!({"detail": msg, "code": code}))
}
fn not_authenticated() -> Out {
    let mut o = detail(
        401,
        "Authentication credentials were not provided.",
        "not_authenticated",
    );
    o.headers.push(("www-authenticate", WWW_AUTH.to_owned()));
    o
}
fn auth_failed(msg: &str) -> Out {
    let mut o = detail(401, msg, "authentication_failed");
    o.headers.push(("www-authenticate", WWW_AUTH.to_owned()));
    o
}
fn internal() -> Out {
    out(500, json!({"error": "Server internal error"}))
}
fn not_found_obj(kind: &str) -> Out {
    detail(
        404,
        &format!("{kind} object does not exist."),
        "object_does_not_exist",
    )
}
fn field_err(field: &str, msg: &str) -> Out {
    out(400, json!({ field: [msg] }))
}

fn render(o: Out) -> Response {
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

/// The routes the simulator knows, as path segment patterns after `/api/`. `*` = one id segment.
const ROUTES: &[&str] = &[
    "health",
    "v1/settings/i18n/koko",
    "v1/settings/public/open",
    "v1/authentication/auth",
    "v1/authentication/tokens",
    "v1/authentication/mfa/challenge",
    "v1/users/profile",
    "v1/orgs/orgs",
    "v1/orgs/orgs/current",
    "v1/users/users",
    "v1/users/users/*",
    "v1/users/users/*/remove",
    "v1/assets/platforms",
    "v1/assets/nodes",
    "v1/assets/nodes/children",
    "v1/assets/nodes/*/children",
    "v1/assets/nodes/*/assets/add",
    "v1/assets/nodes/*/assets/remove",
    "v1/assets/hosts",
    "v1/assets/hosts/*",
    "v1/assets/assets/*/perm-users",
    "v1/assets/assets/*/perm-users/*/permissions",
    "v1/accounts/accounts",
    "v1/perms/asset-permissions",
    "v1/perms/asset-permissions/*",
    "v1/perms/asset-permissions/*/users/all",
    "v1/perms/asset-permissions/*/assets/all",
    "v1/perms/users/*/assets",
    "v1/perms/users/*/assets/*",
    "v1/terminal/sessions",
    "v1/terminal/sessions/*",
    "v1/terminal/tasks",
    "v1/terminal/tasks/kill-session",
];

/// Matches a path without its trailing slash; returns the pattern and the `*` captures.
/// Literal routes win over `*` (so `/nodes/children/` is not a node id).
fn match_route(path: &str) -> Option<(&'static str, Vec<String>)> {
    let rest = path.strip_prefix("/api/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    let mut best: Option<(&'static str, Vec<String>, usize)> = None;
    for r in ROUTES {
        let pat: Vec<&str> = r.split('/').collect();
        if pat.len() != segs.len() {
            continue;
        }
        let mut caps = Vec::new();
        let mut literal = 0;
        let ok = pat.iter().zip(&segs).all(|(p, s)| {
            if *p == "*" {
                caps.push((*s).to_owned());
                !s.is_empty()
            } else {
                literal += 1;
                p == s
            }
        });
        if ok && best.as_ref().is_none_or(|b| literal > b.2) {
            best = Some((r, caps, literal));
        }
    }
    best.map(|(r, c, _)| (r, c))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Org {
    Default,
    Root,
}

/// Who is calling, after authentication.
struct Caller {
    user_id: String,
}

pub(crate) async fn handle(AxState(sh): AxState<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 4 << 20)
        .await
        .unwrap_or_default();
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let o = dispatch(&sh, &method, &path, &raw_query, &parts.headers, &body);
    render(o)
}

fn dispatch(
    sh: &Shared,
    method: &Method,
    path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Out {
    let now = sh.now();
    {
        let mut st = sh.lock();
        *st.calls
            .entry((method.as_str().to_owned(), path.to_owned()))
            .or_insert(0) += 1;
        if let Some((n, status)) = st.fail {
            st.fail = if n > 1 { Some((n - 1, status)) } else { None };
            if n > 0 {
                return injected(status);
            }
        }
    }
    // Django CommonMiddleware: a known route without its slash is redirected, never executed.
    let Some(trimmed) = path.strip_suffix('/') else {
        if match_route(path).is_some() {
            let mut o = empty(301);
            let loc = if raw_query.is_empty() {
                format!("{path}/")
            } else {
                format!("{path}/?{raw_query}")
            };
            o.headers.push(("location", loc));
            return o;
        }
        return html(404, HTML_404);
    };
    let Some((route, caps)) = match_route(trimmed) else {
        return html(404, HTML_404);
    };
    let q = util::parse_query(raw_query);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let base = format!("http://{host}{path}");
    let json_body: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => Some(v),
            Err(_) => {
                return detail(400, "JSON parse error", "parse_error");
            }
        }
    };

    // Anonymous endpoints.
    match route {
        "health" => {
            return out(
                200,
                json!({"status": true, "db_status": true, "db_time": 0.004, "redis_status": true,
                    "redis_time": 0.0002, "time": now.as_second()}),
            )
        }
        "v1/settings/i18n/koko" => {
            return out(
                200,
                json!({"%s approved": "", "%s rejected": "", "%s node has no assets": ""}),
            )
        }
        "v1/settings/public/open" => {
            return out(
                200,
                json!({"XPACK_ENABLED": false,
                    "INTERFACE": {"logo_logout": "/static/img/logo.png", "logo_index": "/static/img/logo_text_white.png",
                        "login_image": "/static/img/login_image.png", "favicon": "/static/img/facio.ico",
                        "login_title": "JumpServer - An open-source PAM", "theme": "classic_green", "theme_info": {},
                        "footer_content": "", "vendor": "jumpserver"},
                    "LANGUAGES": [{"name": "English", "code": "en", "other_codes": ["en"]},
                        {"name": "中文(简体)", "code": "zh-hans", "other_codes": ["zh-hans", "zh", "zh-cn"]},
                        {"name": "中文(繁體)", "code": "zh-hant", "other_codes": ["zh-hant", "zh-tw", "zh-hk"]},
                        {"name": "日本語", "code": "ja", "other_codes": ["ja"]},
                        {"name": "Português (Brasil)", "code": "pt-br", "other_codes": ["pt-br"]},
                        {"name": "Español", "code": "es", "other_codes": ["es"]},
                        {"name": "Русский", "code": "ru", "other_codes": ["ru"]},
                        {"name": "한국어", "code": "ko", "other_codes": ["ko"]},
                        {"name": "Tiếng Việt", "code": "vi", "other_codes": ["vi"]}]}),
            )
        }
        "v1/authentication/auth" | "v1/authentication/tokens" => {
            if let Some(o) = throttle(sh, ANON, sh.opts.anon_rate_limit_per_minute, now) {
                return o;
            }
            return login(sh, method, headers, json_body.as_ref(), now);
        }
        "v1/authentication/mfa/challenge" => {
            if let Some(o) = throttle(sh, ANON, sh.opts.anon_rate_limit_per_minute, now) {
                return o;
            }
            return mfa_challenge(sh, method, headers, json_body.as_ref(), now);
        }
        _ => {}
    }

    let caller = match authenticate(sh, method, path, raw_query, headers, now) {
        Ok(c) => c,
        Err(o) => return o,
    };
    if let Some(o) = throttle(sh, &caller.user_id, sh.opts.rate_limit_per_minute, now) {
        return o;
    }
    let org = match headers.get("x-jms-org").and_then(|v| v.to_str().ok()) {
        Some(ROOT_ORG_ID) => Org::Root,
        _ => Org::Default,
    };
    let mut st = sh.lock();
    let ctx = Ctx {
        now,
        org,
        q: &q,
        base: &base,
        caller: &caller,
    };
    let b = json_body.as_ref();
    let m = method.clone();
    let id = caps.first().map(String::as_str).unwrap_or("");
    let id2 = caps.get(1).map(String::as_str).unwrap_or("");
    match (route, m) {
        ("v1/users/profile", Method::GET) => profile(&st, &caller, now),
        ("v1/orgs/orgs/current", Method::GET) => out(200, org_json(org)),
        ("v1/orgs/orgs", Method::GET) => {
            let rows = vec![
                org_list_json(&st, Org::Default),
                org_list_json(&st, Org::Root),
            ];
            out(200, paginate(rows, &q, &base, true))
        }
        ("v1/users/users", Method::GET) => users_list(&st, &ctx),
        ("v1/users/users", Method::POST) => users_create(&mut st, &ctx, b),
        ("v1/users/users/*", Method::GET) => users_get(&st, &ctx, id),
        ("v1/users/users/*", Method::PATCH) => users_patch(&mut st, &ctx, id, b),
        ("v1/users/users/*/remove", Method::POST) => {
            match st.users.iter_mut().find(|u| u.id == id) {
                Some(u) => {
                    u.in_default_org = false;
                    empty(204)
                }
                None => not_found_obj("User"),
            }
        }
        ("v1/assets/platforms", Method::GET) => {
            let rows: Vec<Value> = st
                .platforms
                .iter()
                .filter(|p| qget(&q, "name").is_none_or(|n| n == p.name))
                .map(|p| {
                    let n = st.hosts.iter().filter(|h| h.platform_id == p.id).count();
                    platform_json(p, n)
                })
                .collect();
            // Platforms are exempt from the 200-row cap.
            out(200, paginate(rows, &q, &base, false))
        }
        ("v1/assets/nodes", Method::GET) => nodes_list(&st, &ctx),
        ("v1/assets/nodes", Method::POST) => nodes_create(&mut st, &ctx, b),
        ("v1/assets/nodes/children", Method::GET) => {
            let root = ensure_root(&mut st);
            let rows: Vec<Value> = st
                .nodes
                .iter()
                .filter(|n| n.id == root)
                .map(|n| node_json(&st, n))
                .collect();
            out(200, Value::Array(rows))
        }
        ("v1/assets/nodes/*/children", Method::POST) => node_child_create(&mut st, &ctx, id, b),
        ("v1/assets/nodes/*/assets/add", Method::PUT | Method::PATCH) => {
            node_assets(&mut st, id, b, true)
        }
        ("v1/assets/nodes/*/assets/remove", Method::PUT | Method::PATCH) => {
            node_assets(&mut st, id, b, false)
        }
        ("v1/assets/hosts", Method::GET) => hosts_list(&st, &ctx),
        ("v1/assets/hosts", Method::POST) => hosts_create(&mut st, &ctx, b),
        ("v1/assets/hosts/*", Method::GET) => match st.hosts.iter().find(|h| h.id == id) {
            Some(h) => {
                let mut v = host_out(&st, h);
                let accs: Vec<&Account> =
                    st.accounts.iter().filter(|a| a.asset_id == h.id).collect();
                if let Value::Object(m) = &mut v {
                    m.insert("accounts".into(), host_accounts_json(&accs));
                }
                out(200, v)
            }
            None => not_found_obj("Host"),
        },
        ("v1/accounts/accounts", Method::GET) => {
            let rows: Vec<Value> = st
                .accounts
                .iter()
                .filter(|a| qget(&q, "asset_id").is_none_or(|x| x == a.asset_id))
                .filter(|a| qget(&q, "username").is_none_or(|x| x == a.username))
                .filter_map(|a| {
                    let h = st.hosts.iter().find(|h| h.id == a.asset_id)?;
                    let p = st.platforms.iter().find(|p| p.id == h.platform_id)?;
                    Some((a.name.clone(), account_json(a, h, p)))
                })
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_values()
                .collect();
            out(200, paginate(rows, &q, &base, true))
        }
        ("v1/perms/asset-permissions", Method::GET) => perms_list(&st, &ctx),
        ("v1/perms/asset-permissions", Method::POST) => perms_create(&mut st, &ctx, b),
        ("v1/perms/asset-permissions/*", Method::GET) => {
            match st.perms.iter().find(|p| p.id == id) {
                Some(p) => out(200, perm_detail(&st, p, now)),
                None => not_found_obj("AssetPermission"),
            }
        }
        ("v1/perms/asset-permissions/*", Method::PATCH) => perms_patch(&mut st, &ctx, id, b),
        ("v1/perms/asset-permissions/*", Method::DELETE) => {
            let before = st.perms.len();
            st.perms.retain(|p| p.id != id);
            if st.perms.len() < before {
                empty(204)
            } else {
                not_found_obj("AssetPermission")
            }
        }
        ("v1/perms/asset-permissions/*/users/all", Method::GET) => {
            match st.perms.iter().find(|p| p.id == id) {
                Some(p) => {
                    let rows: Vec<Value> = p
                        .user_ids
                        .iter()
                        .filter_map(|uid| st.users.iter().find(|u| &u.id == uid))
                        .map(|u| json!({"user": u.id, "user_display": u.display()}))
                        .collect();
                    out(200, paginate(rows, &q, &base, true))
                }
                None => not_found_obj("AssetPermission"),
            }
        }
        ("v1/perms/asset-permissions/*/assets/all", Method::GET) => {
            match st.perms.iter().find(|p| p.id == id) {
                Some(p) => {
                    let rows: Vec<Value> = perm_assets(&st, p)
                        .into_iter()
                        .map(|h| json!({"asset": h.id, "asset_display": h.display()}))
                        .collect();
                    out(200, paginate(rows, &q, &base, true))
                }
                None => not_found_obj("AssetPermission"),
            }
        }
        ("v1/perms/users/*/assets", Method::GET) => {
            let grants = valid_grants(&st, id, now);
            let mut hosts: Vec<&Host> = Vec::new();
            for p in &grants {
                for h in perm_assets(&st, p) {
                    if !hosts.iter().any(|x| x.id == h.id) {
                        hosts.push(h);
                    }
                }
            }
            hosts.sort_by(|a, b| a.name.cmp(&b.name));
            let rows: Vec<Value> = hosts
                .iter()
                .filter(|h| qget(&q, "address").is_none_or(|a| a == h.address))
                .filter_map(|h| granted_asset(&st, h).map(Value::Object))
                .collect();
            out(200, paginate(rows, &q, &base, true))
        }
        ("v1/perms/users/*/assets/*", Method::GET) => granted_asset_detail(&st, id, id2, now),
        ("v1/assets/assets/*/perm-users", Method::GET) => {
            let Some(h) = st.hosts.iter().find(|h| h.id == id) else {
                return not_found_obj("Asset");
            };
            let mut uids: Vec<&String> = Vec::new();
            for p in st.perms.iter().filter(|p| perm_covers(&st, p, h)) {
                for u in &p.user_ids {
                    if !uids.contains(&u) {
                        uids.push(u);
                    }
                }
            }
            let mut users: Vec<&User> = st.users.iter().filter(|u| uids.contains(&&u.id)).collect();
            users.sort_by(|a, b| a.username.cmp(&b.username));
            let rows = users
                .iter()
                .map(|u| user_json(u, UserShape::List, now))
                .collect();
            out(200, paginate(rows, &q, &base, true))
        }
        ("v1/assets/assets/*/perm-users/*/permissions", Method::GET) => {
            let Some(h) = st.hosts.iter().find(|h| h.id == id) else {
                return not_found_obj("Asset");
            };
            let rows: Vec<Value> = st
                .perms
                .iter()
                .filter(|p| p.user_ids.iter().any(|u| u == id2) && perm_covers(&st, p, h))
                .filter(|p| valid_filter(&q, p, now))
                .map(|p| perm_detail(&st, p, now))
                .collect();
            out(200, paginate(rows, &q, &base, true))
        }
        ("v1/terminal/sessions", Method::GET) => {
            let rows: Vec<Value> = st
                .sessions
                .iter()
                .filter(|s| qget(&q, "user_id").is_none_or(|x| x == s.user_id))
                .filter(|s| qget(&q, "asset_id").is_none_or(|x| x == s.asset_id))
                .filter(|s| bool_filter(&q, "is_finished").is_none_or(|x| x == s.is_finished))
                .map(|s| session_json(s, true))
                .collect();
            out(200, paginate(rows, &q, &base, true))
        }
        ("v1/terminal/sessions", Method::POST) => session_create(&mut st, &ctx, b),
        ("v1/terminal/sessions/*", Method::GET) => match st.sessions.iter().find(|s| s.id == id) {
            Some(s) => out(200, session_json(s, true)),
            None => not_found_obj("Session"),
        },
        ("v1/terminal/tasks", Method::GET) => {
            let rows: Vec<Value> = st
                .tasks
                .iter()
                .filter(|t| bool_filter(&q, "is_finished").is_none_or(|x| x == t.is_finished))
                .map(task_json)
                .collect();
            out(200, paginate(rows, &q, &base, true))
        }
        ("v1/terminal/tasks/kill-session", Method::POST) => kill_sessions(&mut st, &ctx, b),
        (_, m) => detail(
            405,
            &format!("Method \"{}\" not allowed.", m.as_str()),
            "method_not_allowed",
        ),
    }
}

struct Ctx<'a> {
    now: Timestamp,
    org: Org,
    q: &'a Query,
    base: &'a str,
    caller: &'a Caller,
}

fn injected(status: u16) -> Out {
    match status {
        429 => {
            let mut o = detail(
                429,
                "Request was throttled. Expected available in 1 seconds.",
                "throttled",
            );
            o.headers.push(("retry-after", "1".into()));
            o
        }
        s if s >= 500 => out(s, json!({"error": "Server internal error"})),
        s => detail(s, "Injected failure.", "error"),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn authenticate(
    sh: &Shared,
    method: &Method,
    path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<Caller, Out> {
    let Some(auth) = header_str(headers, "authorization") else {
        return Err(not_authenticated());
    };
    let (scheme, cred) = auth.trim().split_once(' ').unwrap_or((auth, ""));
    if scheme.eq_ignore_ascii_case("signature") {
        let parsed =
            httpsig::parse_authorization(auth).map_err(|_| auth_failed("Invalid signature."))?;
        // The key lookup is a UUID primary-key query: anything else raises -> HTML 500.
        if !is_uuid(&parsed.key_id) {
            return Err(html(500, HTML_500));
        }
        if parsed.key_id != sh.opts.access_key_id {
            return Err(auth_failed("Invalid signature."));
        }
        let target = if raw_query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{raw_query}")
        };
        let full = httpsig::django_full_path(&target);
        let hv: Vec<(String, String)> = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let hrefs: Vec<(&str, &str)> = hv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        return match httpsig::verify_request(
            sh.opts.access_key_secret.expose(),
            method.as_str(),
            &full,
            &hrefs,
            &parsed,
        ) {
            Ok(()) => Ok(Caller {
                user_id: ADMIN_ID.to_owned(),
            }),
            Err(HttpSigError::BadSignature) | Err(HttpSigError::Malformed(_)) => {
                Err(auth_failed("Invalid signature."))
            }
            // The real verifier raises a plain exception here: Django's HTML error page.
            Err(_) => Err(html(500, HTML_500)),
        };
    }
    if scheme.eq_ignore_ascii_case("token") {
        let ok = sh
            .opts
            .private_token
            .as_ref()
            .is_some_and(|t| !cred.is_empty() && t.expose() == cred.trim());
        return if ok {
            Ok(Caller {
                user_id: ADMIN_ID.to_owned(),
            })
        } else {
            Err(auth_failed("Invalid token."))
        };
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let mut st = sh.lock();
        let hit = st.bearer.get(cred.trim()).cloned();
        return match hit {
            Some((uid, exp)) if now < exp => Ok(Caller { user_id: uid }),
            Some(_) => {
                st.bearer.remove(cred.trim());
                Err(not_authenticated())
            }
            None => Err(not_authenticated()),
        };
    }
    Err(not_authenticated())
}

/// Throttle bucket of unauthenticated calls (every client of the sim shares loopback).
const ANON: &str = "anon";

/// DRF-style fixed one-minute window per bucket; answers 429 with `Retry-After`.
fn throttle(sh: &Shared, bucket: &str, limit: Option<u32>, now: Timestamp) -> Option<Out> {
    let limit = limit?;
    let mut st = sh.lock();
    let window = now.as_second().div_euclid(60) * 60;
    let entry = st.throttle.entry(bucket.to_owned()).or_insert((window, 0));
    if entry.0 != window {
        *entry = (window, 0);
    }
    if entry.1 >= limit {
        let wait = (window + 60 - now.as_second()).max(1);
        let mut o = detail(
            429,
            &format!("Request was throttled. Expected available in {wait} seconds."),
            "throttled",
        );
        o.headers.push(("retry-after", wait.to_string()));
        return Some(o);
    }
    entry.1 += 1;
    None
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    let c = header_str(headers, "cookie")?;
    c.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "jms_sessionid")
        .map(|(_, v)| v.to_owned())
}

fn session_set_cookie(id: &str, now: Timestamp) -> String {
    let exp = now
        .checked_add(jiff::SignedDuration::from_secs(600))
        .unwrap_or(now);
    let exp = exp
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    format!("jms_sessionid={id}; expires={exp}; HttpOnly; Max-Age=600; Path=/; SameSite=Lax")
}

fn issue_token(sh: &Shared, st: &mut State, uid: &str, now: Timestamp) -> Value {
    // Logging in again while a token is alive returns the same token.
    let existing = st
        .bearer
        .iter()
        .find(|(_, (u, exp))| u == uid && now < *exp)
        .map(|(t, (_, exp))| (t.clone(), *exp));
    let (token, exp) = existing.unwrap_or_else(|| {
        let t = util::new_token(36);
        let exp = now.checked_add(sh.opts.bearer_ttl).unwrap_or(now);
        st.bearer.insert(t.clone(), (uid.to_owned(), exp));
        (t, exp)
    });
    let user = st.users.iter_mut().find(|u| u.id == uid);
    let user_v = match user {
        Some(u) => {
            u.last_login = Some(now);
            user_json(u, UserShape::Login, now)
        }
        None => Value::Null,
    };
    json!({"token": token, "keyword": "Bearer", "date_expired": fmt_dt(exp), "user": user_v})
}

fn login(
    sh: &Shared,
    method: &Method,
    headers: &HeaderMap,
    b: Option<&Value>,
    now: Timestamp,
) -> Out {
    if method != Method::POST {
        return detail(
            405,
            &format!("Method \"{method}\" not allowed."),
            "method_not_allowed",
        );
    }
    let mut st = sh.lock();
    let cookie = session_cookie(headers);
    let username = b.and_then(|v| v.get("username")).and_then(Value::as_str);
    // Step 3 of MFA: no credentials, the session cookie carries the passed challenge.
    if username.is_none() {
        if let Some(sid) = cookie.as_ref() {
            if let Some(p) = st.pending.get(sid) {
                if p.mfa_ok {
                    let uid = p.user_id.clone();
                    st.pending.remove(sid);
                    let body = issue_token(sh, &mut st, &uid, now);
                    let mut o = out(201, body);
                    o.headers.push(("set-cookie", session_set_cookie(sid, now)));
                    return o;
                }
            }
        }
        return out(
            400,
            json!({"error": "password_failed", "msg": "The username or password you entered is incorrect, please enter it again."}),
        );
    }
    let sid = cookie.unwrap_or_else(|| util::new_token(32).to_ascii_lowercase());
    let password = b.and_then(|v| v.get("password")).and_then(Value::as_str);
    let user = st
        .users
        .iter()
        .find(|u| Some(u.username.as_str()) == username)
        .cloned();
    let ok_user = user.filter(|u| {
        u.is_active
            && u.date_expired > now
            && u.password.is_some()
            && u.password.as_deref() == password
    });
    let mut o = match ok_user {
        None => out(
            400,
            json!({"error": "password_failed", "msg": "The username or password you entered is incorrect, please enter it again. You can also try 7 times (The account will be temporarily locked for 30 minutes)"}),
        ),
        // v4.10.16 cannot render "must change password" for the token API: HTTP 500.
        Some(u) if u.need_update_password => internal(),
        Some(u) if u.otp_seed.is_some() => {
            st.pending.insert(
                sid.clone(),
                Pending {
                    user_id: u.id.clone(),
                    mfa_ok: false,
                },
            );
            out(
                200,
                json!({"error": "mfa_required", "msg": "MFA required",
                "data": {"choices": ["otp"], "url": "/api/v1/authentication/mfa/challenge/"}}),
            )
        }
        Some(u) => out(201, issue_token(sh, &mut st, &u.id, now)),
    };
    o.headers
        .push(("set-cookie", session_set_cookie(&sid, now)));
    o
}

fn mfa_challenge(
    sh: &Shared,
    method: &Method,
    headers: &HeaderMap,
    b: Option<&Value>,
    now: Timestamp,
) -> Out {
    if method != Method::POST {
        return detail(
            405,
            &format!("Method \"{method}\" not allowed."),
            "method_not_allowed",
        );
    }
    let Some(sid) = session_cookie(headers) else {
        return not_authenticated();
    };
    let mut st = sh.lock();
    let Some(uid) = st.pending.get(&sid).map(|p| p.user_id.clone()) else {
        return not_authenticated();
    };
    let seed = st
        .users
        .iter()
        .find(|u| u.id == uid)
        .and_then(|u| u.otp_seed.clone());
    let code = b.and_then(|v| v.get("code")).and_then(Value::as_str);
    let t = now.as_second();
    // One step either side, as pyotp's valid_window=1 allows.
    let ok = seed.is_some_and(|s| {
        [t - 30, t, t + 30]
            .iter()
            .any(|tt| util::totp(&s, *tt).as_deref() == code && code.is_some())
    });
    let mut o = if ok {
        if let Some(p) = st.pending.get_mut(&sid) {
            p.mfa_ok = true;
        }
        out(200, json!({"msg": "ok"}))
    } else {
        out(
            401,
            json!({"error": "mfa_failed", "msg": "OTP code invalid, or server time error, You can also try 6 times (The account will be temporarily locked for 30 minutes)"}),
        )
    };
    o.headers
        .push(("set-cookie", session_set_cookie(&sid, now)));
    o
}

fn profile(st: &State, caller: &Caller, now: Timestamp) -> Out {
    match st.users.iter().find(|u| u.id == caller.user_id) {
        Some(u) => out(200, user_json(u, UserShape::Profile, now)),
        None => not_authenticated(),
    }
}

fn org_json(org: Org) -> Value {
    match org {
        Org::Default => json!({"id": DEFAULT_ORG_ID, "name": DEFAULT_ORG_NAME, "is_default": true,
            "is_root": false, "is_system": false, "comment": ""}),
        Org::Root => json!({"id": ROOT_ORG_ID, "name": "GLOBAL", "is_default": false,
            "is_root": true, "is_system": false, "comment": ""}),
    }
}

fn org_list_json(st: &State, org: Org) -> Value {
    let (id, name, def, root) = match org {
        Org::Default => (DEFAULT_ORG_ID, DEFAULT_ORG_NAME, true, false),
        Org::Root => (ROOT_ORG_ID, "GLOBAL", false, true),
    };
    // The root org owns no resources of its own; everything lives in Default.
    let n = |x: usize| if root { 0 } else { x };
    json!({"id": id, "name": name,
        "resource_statistics": {"users_amount": n(st.users.iter().filter(|u| u.in_default_org).count()),
            "groups_amount": 0, "assets_amount": n(st.hosts.len()), "nodes_amount": n(st.nodes.len()),
            "zones_amount": 0, "asset_perms_amount": n(st.perms.len())},
        "is_default": def, "is_root": root, "internal": true, "date_created": "2026/11/22 19:19:53 +0800",
        "created_by": "System", "comment": ""})
}

fn visible(u: &User, org: Org) -> bool {
    org == Org::Root || u.in_default_org
}

fn users_list(st: &State, c: &Ctx) -> Out {
    let search = qget(c.q, "search")
        .or_else(|| qget(c.q, "q"))
        .map(str::to_lowercase);
    let mut rows: Vec<&User> = st
        .users
        .iter()
        .filter(|u| visible(u, c.org))
        .filter(|u| qget(c.q, "username").is_none_or(|x| x == u.username))
        .filter(|u| qget(c.q, "email").is_none_or(|x| x == u.email))
        .filter(|u| qget(c.q, "id").is_none_or(|x| x == u.id))
        .filter(|u| {
            search.as_ref().is_none_or(|s| {
                u.username.to_lowercase().contains(s)
                    || u.name.to_lowercase().contains(s)
                    || u.email.to_lowercase().contains(s)
            })
        })
        .collect();
    rows.sort_by(|a, b| a.username.cmp(&b.username));
    let rows = rows
        .iter()
        .map(|u| user_json(u, UserShape::List, c.now))
        .collect();
    out(200, paginate(rows, c.q, c.base, true))
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(char::is_whitespace)
}

fn str_field<'a>(b: Option<&'a Value>, k: &str) -> Option<&'a str> {
    b.and_then(|v| v.get(k)).and_then(Value::as_str)
}

fn users_create(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    if c.org == Org::Root {
        return out(400, json!(["Please save in a org"]));
    }
    for f in ["name", "username", "email"] {
        if str_field(b, f).is_none_or(str::is_empty) {
            return field_err(f, "This field is required.");
        }
    }
    let name = str_field(b, "name").unwrap_or_default();
    let username = str_field(b, "username").unwrap_or_default();
    let email = str_field(b, "email").unwrap_or_default();
    if st.users.iter().any(|u| u.username == username) {
        return field_err("username", "User with this Username already exists.");
    }
    if !valid_email(email) {
        return field_err("email", "Enter a valid email address.");
    }
    if st.users.iter().any(|u| u.email == email) {
        return field_err("email", "User with this Email already exists.");
    }
    let date_expired = match str_field(b, "date_expired") {
        Some(s) => match parse_dt(s) {
            Some(t) => t,
            None => return field_err("date_expired", util::DT_FORMAT_ERROR),
        },
        None => util::far_future(c.now),
    };
    let u = User {
        id: util::new_id(),
        name: name.into(),
        username: username.into(),
        email: email.into(),
        password: str_field(b, "password").map(str::to_owned),
        otp_seed: None,
        is_active: b
            .and_then(|v| v.get("is_active"))
            .and_then(Value::as_bool)
            .unwrap_or(true),
        is_superuser: false,
        need_update_password: b
            .and_then(|v| v.get("need_update_password"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        in_default_org: true,
        date_expired,
        date_joined: c.now,
        last_login: None,
        comment: str_field(b, "comment").map(str::to_owned),
        created_by: caller_name(st, c),
    };
    let v = user_json(&u, UserShape::Write, c.now);
    st.users.push(u);
    out(201, v)
}

fn caller_name(st: &State, c: &Ctx) -> String {
    st.users
        .iter()
        .find(|u| u.id == c.caller.user_id)
        .map(|u| u.name.clone())
        .unwrap_or_default()
}

fn users_get(st: &State, c: &Ctx, id: &str) -> Out {
    match st
        .users
        .iter()
        .find(|u| (u.id == id || u.username == id) && visible(u, c.org))
    {
        Some(u) => out(200, user_json(u, UserShape::Detail, c.now)),
        None => not_found_obj("User"),
    }
}

fn users_patch(st: &mut State, c: &Ctx, id: &str, b: Option<&Value>) -> Out {
    let Some(obj) = b.and_then(Value::as_object) else {
        return detail(400, "Invalid data. Expected a dictionary.", "invalid");
    };
    let taken_email = |e: &str| st.users.iter().any(|u| u.email == e && u.id != id);
    if let Some(e) = obj.get("email").and_then(Value::as_str) {
        if !valid_email(e) {
            return field_err("email", "Enter a valid email address.");
        }
        if taken_email(e) {
            return field_err("email", "User with this Email already exists.");
        }
    }
    let date_expired = match obj.get("date_expired").and_then(Value::as_str) {
        Some(s) => match parse_dt(s) {
            Some(t) => Some(t),
            None => return field_err("date_expired", util::DT_FORMAT_ERROR),
        },
        None => None,
    };
    let Some(u) = st
        .users
        .iter_mut()
        .find(|u| u.id == id && visible(u, c.org))
    else {
        return not_found_obj("User");
    };
    if let Some(a) = obj.get("is_active").and_then(Value::as_bool) {
        u.is_active = a;
    }
    if let Some(t) = date_expired {
        u.date_expired = t;
    }
    if let Some(n) = obj.get("name").and_then(Value::as_str) {
        u.name = n.into();
    }
    if let Some(e) = obj.get("email").and_then(Value::as_str) {
        u.email = e.into();
    }
    if let Some(cm) = obj.get("comment").and_then(Value::as_str) {
        u.comment = Some(cm.into());
    }
    out(200, user_json(u, UserShape::WritePatch, c.now))
}

/// The org's root node (key "1"), created on first need like `/nodes/children/` does.
pub(crate) fn ensure_root(st: &mut State) -> String {
    if let Some(n) = st.nodes.iter().find(|n| n.key == "1") {
        return n.id.clone();
    }
    let id = util::new_id();
    st.nodes.push(Node {
        id: id.clone(),
        key: "1".into(),
        value: DEFAULT_ORG_NAME.into(),
        child_mark: 0,
    });
    id
}

fn parent_key(key: &str) -> Option<&str> {
    key.rsplit_once(':').map(|(p, _)| p)
}

fn full_value(st: &State, n: &Node) -> String {
    let mut parts = vec![n.value.clone()];
    let mut k = n.key.as_str();
    while let Some(pk) = parent_key(k) {
        match st.nodes.iter().find(|x| x.key == pk) {
            Some(p) => parts.push(p.value.clone()),
            None => break,
        }
        k = pk;
    }
    parts.reverse();
    format!("/{}", parts.join("/"))
}

fn node_json(st: &State, n: &Node) -> Value {
    json!({"id": n.id, "key": n.key, "value": n.value, "org_id": DEFAULT_ORG_ID, "name": n.value,
        "full_value": full_value(st, n), "org_name": DEFAULT_ORG_NAME})
}

fn nodes_list(st: &State, c: &Ctx) -> Out {
    let search = qget(c.q, "search").map(str::to_lowercase);
    let mut rows: Vec<&Node> = st
        .nodes
        .iter()
        .filter(|n| qget(c.q, "key").is_none_or(|x| x == n.key))
        .filter(|n| qget(c.q, "value").is_none_or(|x| x == n.value))
        .filter(|n| qget(c.q, "id").is_none_or(|x| x == n.id))
        // Node search matches the whole path, so children of a hit are hits too [082].
        .filter(|n| {
            search
                .as_ref()
                .is_none_or(|s| full_value(st, n).to_lowercase().contains(s))
        })
        .collect();
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    let rows = rows.iter().map(|n| node_json(st, n)).collect();
    out(200, paginate(rows, c.q, c.base, true))
}

/// Creates `value` under the node with `parent_key`; `None` when a sibling has that value.
fn create_child(st: &mut State, parent_key: &str, value: &str) -> Option<String> {
    let prefix = format!("{parent_key}:");
    let dup = st.nodes.iter().any(|n| {
        n.value == value
            && n.key
                .strip_prefix(&prefix)
                .is_some_and(|rest| !rest.contains(':'))
    });
    if dup {
        return None;
    }
    let parent = st.nodes.iter_mut().find(|n| n.key == parent_key)?;
    let mark = parent.child_mark;
    parent.child_mark += 1;
    let id = util::new_id();
    st.nodes.push(Node {
        id: id.clone(),
        key: format!("{parent_key}:{mark}"),
        value: value.into(),
        child_mark: 0,
    });
    Some(id)
}

/// Create-or-get along a `/`-separated path; a leading root segment is skipped.
pub(crate) fn node_by_full_value(st: &mut State, full: &str) -> String {
    let root = ensure_root(st);
    let mut cur_key = "1".to_owned();
    let mut cur_id = root;
    let segs: Vec<&str> = full.split('/').filter(|s| !s.is_empty()).collect();
    let skip = usize::from(segs.first() == Some(&DEFAULT_ORG_NAME));
    for seg in segs.into_iter().skip(skip) {
        let prefix = format!("{cur_key}:");
        let existing = st
            .nodes
            .iter()
            .find(|n| {
                n.value == seg
                    && n.key
                        .strip_prefix(&prefix)
                        .is_some_and(|r| !r.contains(':'))
            })
            .map(|n| (n.id.clone(), n.key.clone()));
        let (id, key) = match existing {
            Some(x) => x,
            None => {
                let id = create_child(st, &cur_key, seg).unwrap_or_default();
                let key = st
                    .nodes
                    .iter()
                    .find(|n| n.id == id)
                    .map(|n| n.key.clone())
                    .unwrap_or_default();
                (id, key)
            }
        };
        cur_id = id;
        cur_key = key;
    }
    cur_id
}

fn nodes_create(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    if c.org == Org::Root {
        return out(400, json!(["Please save in a org"]));
    }
    if let Some(fv) = str_field(b, "full_value") {
        let id = node_by_full_value(st, fv);
        return match st.nodes.iter().find(|n| n.id == id) {
            Some(n) => out(201, node_json(st, n)),
            None => internal(),
        };
    }
    let Some(value) = str_field(b, "value").filter(|v| !v.is_empty()) else {
        return field_err("value", "This field is required.");
    };
    ensure_root(st);
    match create_child(st, "1", value) {
        Some(id) => match st.nodes.iter().find(|n| n.id == id) {
            Some(n) => out(201, node_json(st, n)),
            None => internal(),
        },
        None => field_err("value", "The same level node name cannot be the same"),
    }
}

fn node_child_create(st: &mut State, c: &Ctx, parent_id: &str, b: Option<&Value>) -> Out {
    if c.org == Org::Root {
        return out(400, json!(["Please save in a org"]));
    }
    let Some(pkey) = st
        .nodes
        .iter()
        .find(|n| n.id == parent_id)
        .map(|n| n.key.clone())
    else {
        return not_found_obj("Node");
    };
    let value = str_field(b, "value").unwrap_or("New node").to_owned();
    match create_child(st, &pkey, &value) {
        Some(id) => match st.nodes.iter().find(|n| n.id == id) {
            Some(n) => out(201, node_json(st, n)),
            None => internal(),
        },
        None => detail(400, "The same level node name cannot be the same", "error"),
    }
}

/// `PUT /nodes/{id}/assets/add|remove/ {"assets": [...]}`: not in the recording; answers the
/// serializer echo the update view returns. A host never loses its last node (it falls back to root).
fn node_assets(st: &mut State, node_id: &str, b: Option<&Value>, add: bool) -> Out {
    if !st.nodes.iter().any(|n| n.id == node_id) {
        return not_found_obj("Node");
    }
    let Some(list) = b.and_then(|v| v.get("assets")).and_then(Value::as_array) else {
        return field_err("assets", "This field is required.");
    };
    let mut ids = Vec::new();
    for x in list {
        let id = x.as_str().unwrap_or("");
        if !st.hosts.iter().any(|h| h.id == id) {
            return field_err(
                "assets",
                &format!("Invalid pk \"{id}\" - object does not exist."),
            );
        }
        ids.push(id.to_owned());
    }
    let root = if add { None } else { Some(ensure_root(st)) };
    for h in st.hosts.iter_mut().filter(|h| ids.contains(&h.id)) {
        if add {
            if !h.node_ids.iter().any(|n| n == node_id) {
                h.node_ids.push(node_id.to_owned());
            }
        } else {
            h.node_ids.retain(|n| n != node_id);
            if h.node_ids.is_empty() {
                h.node_ids.extend(root.clone());
            }
        }
    }
    out(200, json!({ "assets": ids }))
}

fn node_refs(st: &State, ids: &[String]) -> NodeRefs {
    let nodes: Vec<&Node> = ids
        .iter()
        .filter_map(|id| st.nodes.iter().find(|n| &n.id == id))
        .collect();
    NodeRefs {
        refs: nodes
            .iter()
            .map(|n| json!({"id": n.id, "name": n.value}))
            .collect(),
        full_values: nodes.iter().map(|n| full_value(st, n)).collect(),
    }
}

fn host_out(st: &State, h: &Host) -> Value {
    let Some(p) = st.platforms.iter().find(|p| p.id == h.platform_id) else {
        return Value::Null;
    };
    let n = st.accounts.iter().filter(|a| a.asset_id == h.id).count();
    host_json(h, p, &node_refs(st, &h.node_ids), n)
}

fn hosts_list(st: &State, c: &Ctx) -> Out {
    let ips: Option<Vec<&str>> = qget(c.q, "ips").map(|s| s.split(',').map(str::trim).collect());
    let search = qget(c.q, "search").map(str::to_lowercase);
    let mut rows: Vec<&Host> = st
        .hosts
        .iter()
        .filter(|h| qget(c.q, "address").is_none_or(|x| x == h.address))
        .filter(|h| qget(c.q, "name").is_none_or(|x| x == h.name))
        .filter(|h| qget(c.q, "id").is_none_or(|x| x == h.id))
        .filter(|h| ips.as_ref().is_none_or(|l| l.contains(&h.address.as_str())))
        .filter(|h| {
            search.as_ref().is_none_or(|s| {
                h.name.to_lowercase().contains(s) || h.address.to_lowercase().contains(s)
            })
        })
        .collect();
    // Ordered by name, which keeps a limit/offset walk stable.
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = rows.iter().map(|h| host_out(st, h)).collect();
    out(200, paginate(rows, c.q, c.base, true))
}

fn hosts_create(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    if c.org == Org::Root {
        return out(400, json!(["Please save in a org"]));
    }
    let Some(obj) = b.and_then(Value::as_object) else {
        return detail(400, "Invalid data. Expected a dictionary.", "invalid");
    };
    let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
    let address = obj.get("address").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        return field_err("name", "This field is required.");
    }
    if address.is_empty() {
        return field_err("address", "This field is required.");
    }
    let pid = match obj.get("platform") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_u64),
        // A name makes the v4.10.16 serializer crash (surprise 10).
        Some(Value::String(_)) => return internal(),
        _ => return field_err("platform", "This field is required."),
    };
    let Some(platform) = pid.and_then(|id| st.platforms.iter().find(|p| p.id == id).cloned())
    else {
        return field_err(
            "platform",
            &format!(
                "Invalid pk \"{}\" - object does not exist.",
                pid.unwrap_or(0)
            ),
        );
    };
    if st.hosts.iter().any(|h| h.name == name) {
        return field_err("name", "This field must be unique.");
    }
    let mut node_ids = Vec::new();
    for n in obj
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = n
            .as_str()
            .or_else(|| n.get("id").and_then(Value::as_str))
            .unwrap_or("");
        if !st.nodes.iter().any(|x| x.id == id) {
            return field_err(
                "nodes",
                &format!("Invalid pk \"{id}\" - object does not exist."),
            );
        }
        node_ids.push(id.to_owned());
    }
    if node_ids.is_empty() {
        node_ids.push(ensure_root(st));
    }
    let mut protocols = Vec::new();
    for p in obj
        .get("protocols")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pname = p.get("name").and_then(Value::as_str).unwrap_or("");
        let Some(pp) = platform.protocols.iter().find(|x| x.name == pname) else {
            return field_err("protocols", &format!("Protocol not found: {pname}"));
        };
        let port = p
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|x| u16::try_from(x).ok())
            .unwrap_or(pp.port);
        protocols.push((pname.to_owned(), port));
    }
    if protocols.is_empty() {
        protocols.extend(
            platform
                .protocols
                .iter()
                .filter(|p| p.primary)
                .map(|p| (p.name.to_owned(), p.port)),
        );
    }
    let id = util::new_id();
    let created_by = caller_name(st, c);
    for a in obj
        .get("accounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let username = a.get("username").and_then(Value::as_str).unwrap_or("");
        if username.is_empty() {
            return out(
                400,
                json!({"accounts": [{"username": ["This field is required."]}]}),
            );
        }
        st.accounts.push(Account {
            id: util::new_id(),
            asset_id: id.clone(),
            name: a
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(username)
                .to_owned(),
            username: username.to_owned(),
            secret_type: a
                .get("secret_type")
                .and_then(Value::as_str)
                .unwrap_or("password")
                .to_owned(),
            privileged: a
                .get("privileged")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            date_created: c.now,
            created_by: created_by.clone(),
        });
    }
    let h = Host {
        id,
        name: name.into(),
        address: address.into(),
        platform_id: platform.id,
        node_ids,
        protocols,
        comment: obj
            .get("comment")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        is_active: obj
            .get("is_active")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        date_created: c.now,
        created_by,
    };
    st.hosts.push(h.clone());
    out(201, host_out(st, &h))
}

/// True when node `inner` is `outer` or below it.
fn key_under(inner: &str, outer: &str) -> bool {
    inner == outer || inner.starts_with(&format!("{outer}:"))
}

fn perm_covers(st: &State, p: &Permission, h: &Host) -> bool {
    if p.asset_ids.contains(&h.id) {
        return true;
    }
    let pkeys: Vec<&str> = p
        .node_ids
        .iter()
        .filter_map(|id| st.nodes.iter().find(|n| &n.id == id))
        .map(|n| n.key.as_str())
        .collect();
    h.node_ids
        .iter()
        .filter_map(|id| st.nodes.iter().find(|n| &n.id == id))
        .any(|n| pkeys.iter().any(|pk| key_under(&n.key, pk)))
}

fn perm_assets<'a>(st: &'a State, p: &Permission) -> Vec<&'a Host> {
    let mut v: Vec<&Host> = st.hosts.iter().filter(|h| perm_covers(st, p, h)).collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

fn valid_grants(st: &State, uid: &str, now: Timestamp) -> Vec<Permission> {
    st.perms
        .iter()
        .filter(|p| p.user_ids.iter().any(|u| u == uid) && p.is_valid(now))
        .cloned()
        .collect()
}

fn bool_filter(q: &Query, key: &str) -> Option<bool> {
    match qget(q, key)? {
        "1" | "true" | "True" => Some(true),
        "0" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn valid_filter(q: &Query, p: &Permission, now: Timestamp) -> bool {
    bool_filter(q, "is_valid").is_none_or(|v| v == p.is_valid(now))
}

fn perm_detail(st: &State, p: &Permission, now: Timestamp) -> Value {
    let users = p
        .user_ids
        .iter()
        .filter_map(|id| st.users.iter().find(|u| &u.id == id))
        .map(|u| json!({"id": u.id, "name": u.name}))
        .collect();
    let assets = p
        .asset_ids
        .iter()
        .filter_map(|id| st.hosts.iter().find(|h| &h.id == id))
        .map(|h| json!({"id": h.id, "name": h.name}))
        .collect();
    let nodes = p
        .node_ids
        .iter()
        .filter_map(|id| st.nodes.iter().find(|n| &n.id == id))
        .map(|n| json!({"id": n.id, "name": n.value}))
        .collect();
    perm_json(p, now, Some((users, assets, nodes)))
}

fn perms_list(st: &State, c: &Ctx) -> Out {
    let addr_hosts: Option<Vec<&Host>> =
        qget(c.q, "address").map(|a| st.hosts.iter().filter(|h| h.address == a).collect());
    let asset: Option<Option<&Host>> =
        qget(c.q, "asset_id").map(|id| st.hosts.iter().find(|h| h.id == id));
    let mut rows: Vec<&Permission> = st
        .perms
        .iter()
        .filter(|p| qget(c.q, "name").is_none_or(|x| x == p.name))
        .filter(|p| qget(c.q, "user_id").is_none_or(|x| p.user_ids.iter().any(|u| u == x)))
        .filter(|p| {
            asset
                .as_ref()
                .is_none_or(|h| h.is_some_and(|h| perm_covers(st, p, h)))
        })
        .filter(|p| {
            addr_hosts
                .as_ref()
                .is_none_or(|hs| hs.iter().any(|h| perm_covers(st, p, h)))
        })
        .filter(|p| valid_filter(c.q, p, c.now))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = rows.iter().map(|p| perm_json(p, c.now, None)).collect();
    out(200, paginate(rows, c.q, c.base, true))
}

/// Validates the writable permission fields present in `obj` into `p`.
fn apply_perm_fields(
    st: &State,
    p: &mut Permission,
    obj: &serde_json::Map<String, Value>,
) -> Result<(), Out> {
    let id_list = |field: &str| -> Result<Option<Vec<String>>, Out> {
        let Some(v) = obj.get(field) else {
            return Ok(None);
        };
        let Some(arr) = v.as_array() else {
            return Err(field_err(field, "Expected a list of items."));
        };
        let mut ids = Vec::new();
        for x in arr {
            let id = x
                .as_str()
                .or_else(|| x.get("id").and_then(Value::as_str))
                .unwrap_or("");
            let exists = match field {
                "users" => st.users.iter().any(|u| u.id == id),
                "assets" => st.hosts.iter().any(|h| h.id == id),
                "nodes" => st.nodes.iter().any(|n| n.id == id),
                _ => false,
            };
            if !exists {
                return Err(field_err(
                    field,
                    &format!("Invalid pk \"{id}\" - object does not exist."),
                ));
            }
            ids.push(id.to_owned());
        }
        Ok(Some(ids))
    };
    if let Some(v) = id_list("users")? {
        p.user_ids = v;
    }
    if let Some(v) = id_list("assets")? {
        p.asset_ids = v;
    }
    if let Some(v) = id_list("nodes")? {
        p.node_ids = v;
    }
    let strings = |field: &str| -> Option<Vec<String>> {
        obj.get(field).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    };
    if let Some(a) = strings("accounts") {
        p.accounts = a;
    }
    if let Some(a) = strings("protocols") {
        p.protocols = a;
    }
    if let Some(acts) = strings("actions") {
        let mut out_acts = Vec::new();
        for a in &acts {
            if a == "all" {
                out_acts = ACTIONS.iter().map(|(v, _)| (*v).to_owned()).collect();
            } else if ACTIONS.iter().any(|(v, _)| v == a) {
                if !out_acts.contains(a) {
                    out_acts.push(a.clone());
                }
            } else {
                return Err(field_err("actions", &format!("Invalid choice: {a}")));
            }
        }
        p.actions = out_acts;
    }
    for (field, slot) in [("date_start", 0), ("date_expired", 1)] {
        if let Some(v) = obj.get(field) {
            let t = v.as_str().and_then(parse_dt);
            let Some(t) = t else {
                return Err(field_err(field, util::DT_FORMAT_ERROR));
            };
            if slot == 0 {
                p.date_start = t;
            } else {
                p.date_expired = t;
            }
        }
    }
    if let Some(a) = obj.get("is_active").and_then(Value::as_bool) {
        p.is_active = a;
    }
    if let Some(cm) = obj.get("comment").and_then(Value::as_str) {
        p.comment = cm.into();
    }
    if let Some(n) = obj.get("name").and_then(Value::as_str) {
        p.name = n.into();
    }
    Ok(())
}

fn perms_create(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    if c.org == Org::Root {
        return out(400, json!(["Please save in a org"]));
    }
    let Some(obj) = b.and_then(Value::as_object) else {
        return detail(400, "Invalid data. Expected a dictionary.", "invalid");
    };
    let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        return field_err("name", "This field is required.");
    }
    if st.perms.iter().any(|p| p.name == name) {
        return field_err("name", "This field must be unique.");
    }
    let mut p = Permission {
        id: util::new_id(),
        name: name.into(),
        user_ids: vec![],
        asset_ids: vec![],
        node_ids: vec![],
        accounts: vec!["@ALL".into()],
        protocols: vec!["all".into()],
        actions: ACTIONS.iter().map(|(v, _)| (*v).to_owned()).collect(),
        is_active: true,
        date_start: c.now,
        date_expired: util::far_future(c.now),
        date_created: c.now,
        created_by: caller_name(st, c),
        comment: String::new(),
    };
    if let Err(o) = apply_perm_fields(st, &mut p, obj) {
        return o;
    }
    let v = perm_detail(st, &p, c.now);
    st.perms.push(p);
    out(201, v)
}

fn perms_patch(st: &mut State, c: &Ctx, id: &str, b: Option<&Value>) -> Out {
    let Some(obj) = b.and_then(Value::as_object) else {
        return detail(400, "Invalid data. Expected a dictionary.", "invalid");
    };
    let Some(idx) = st.perms.iter().position(|p| p.id == id) else {
        return not_found_obj("AssetPermission");
    };
    let Some(mut p) = st.perms.get(idx).cloned() else {
        return not_found_obj("AssetPermission");
    };
    if let Some(n) = obj.get("name").and_then(Value::as_str) {
        if st.perms.iter().any(|x| x.name == n && x.id != id) {
            return field_err("name", "This field must be unique.");
        }
    }
    if let Err(o) = apply_perm_fields(st, &mut p, obj) {
        return o;
    }
    let v = perm_detail(st, &p, c.now);
    if let Some(slot) = st.perms.get_mut(idx) {
        *slot = p;
    }
    out(200, v)
}

fn granted_asset(st: &State, h: &Host) -> Option<serde_json::Map<String, Value>> {
    let p = st.platforms.iter().find(|p| p.id == h.platform_id)?;
    Some(granted_asset_json(h, p, &node_refs(st, &h.node_ids)))
}

fn granted_asset_detail(st: &State, uid: &str, aid: &str, now: Timestamp) -> Out {
    let Some(h) = st.hosts.iter().find(|h| h.id == aid) else {
        return not_found_obj("Asset");
    };
    let grants: Vec<Permission> = valid_grants(st, uid, now)
        .into_iter()
        .filter(|p| perm_covers(st, p, h))
        .collect();
    if grants.is_empty() {
        return not_found_obj("Asset");
    }
    let Some(mut m) = granted_asset(st, h) else {
        return internal();
    };
    let mut accounts: Vec<&Account> = st.accounts.iter().filter(|a| a.asset_id == h.id).collect();
    accounts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut permed = Vec::new();
    for a in accounts {
        let matching: Vec<&Permission> = grants
            .iter()
            .filter(|p| {
                p.accounts.iter().any(|x| x == "@ALL")
                    || p.accounts.iter().any(|x| x == &a.name || x == &a.username)
            })
            .collect();
        if matching.is_empty() {
            continue;
        }
        let mut acts: Vec<String> = Vec::new();
        for p in &matching {
            for x in &p.actions {
                if !acts.contains(x) {
                    acts.push(x.clone());
                }
            }
        }
        let exp = matching.iter().map(|p| p.date_expired).max().unwrap_or(now);
        permed.push(
            json!({"id": a.id, "alias": a.id, "name": a.name, "username": a.username,
            "has_username": true, "has_secret": true, "secret_type": a.secret_type,
            "actions": actions_json(&acts), "date_expired": fmt_dt(exp)}),
        );
    }
    let all_protocols = grants
        .iter()
        .any(|p| p.protocols.iter().any(|x| x == "all"));
    let protocols: Vec<Value> = h
        .protocols
        .iter()
        .filter(|(n, _)| all_protocols || grants.iter().any(|p| p.protocols.contains(n)))
        .map(|(n, port)| json!({"name": n, "port": port, "public": true, "setting": protocol_setting_for(n)}))
        .collect();
    // Keep the server's key order: permed_* sit after spec_info.
    let tail: Vec<(String, Value)> = [
        "is_active",
        "date_verified",
        "date_created",
        "comment",
        "created_by",
    ]
    .iter()
    .filter_map(|k| m.remove(*k).map(|v| ((*k).to_owned(), v)))
    .collect();
    m.insert("spec_info".into(), json!({}));
    m.insert("permed_protocols".into(), Value::Array(protocols));
    m.insert("permed_accounts".into(), Value::Array(permed));
    m.extend(tail);
    out(200, Value::Object(m))
}

fn session_create(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    let Some(obj) = b.and_then(Value::as_object) else {
        return detail(400, "Invalid data. Expected a dictionary.", "invalid");
    };
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    for f in ["user", "asset", "account", "protocol"] {
        if s(f).is_empty() {
            return field_err(f, "This field is required.");
        }
    }
    let sess = Session {
        id: util::new_id(),
        user: s("user"),
        user_id: s("user_id"),
        asset: s("asset"),
        asset_id: s("asset_id"),
        account: s("account"),
        account_id: s("account_id"),
        protocol: s("protocol"),
        login_from: if s("login_from").is_empty() {
            "ST".into()
        } else {
            s("login_from")
        },
        remote_addr: s("remote_addr"),
        is_finished: false,
        date_start: c.now,
        date_end: None,
    };
    let v = session_json(&sess, false);
    st.sessions.push(sess);
    out(201, v)
}

fn kill_sessions(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    // An object body makes the real view crash (surprise 6).
    let Some(ids) = b.and_then(Value::as_array) else {
        return internal();
    };
    let (name, display) = st
        .users
        .iter()
        .find(|u| u.id == c.caller.user_id)
        .map(|u| (u.name.clone(), u.display()))
        .unwrap_or_default();
    let mut ok = Vec::new();
    for id in ids.iter().filter_map(Value::as_str) {
        let live = st.sessions.iter().any(|s| s.id == id && !s.is_finished);
        if !live {
            continue;
        }
        st.tasks.push(Task {
            id: util::new_id(),
            name: "kill_session".into(),
            args: id.to_owned(),
            is_finished: false,
            date_created: c.now,
            created_by_name: name.clone(),
            created_by_display: display.clone(),
        });
        ok.push(json!(id));
    }
    out(200, json!({ "ok": ok }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_routes_beat_id_segments() {
        assert_eq!(
            match_route("/api/v1/assets/nodes/children").map(|r| r.0),
            Some("v1/assets/nodes/children")
        );
        assert_eq!(
            match_route("/api/v1/assets/nodes/abc/children").map(|r| r.1),
            Some(vec!["abc".to_owned()])
        );
        assert!(match_route("/api/v1/assets/no-such-thing").is_none());
    }
}
