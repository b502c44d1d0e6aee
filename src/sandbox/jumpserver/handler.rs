//! Request handling of the simulated JumpServer: one fallback handler that does what the real
//! middleware stack does in order (APPEND_SLASH redirect, auth, throttling, org), then routes.
use super::assets::*;
use super::auth::*;
use super::grants::*;
use super::groups::*;
use super::model::*;
use super::perms::*;
use super::relations::{self, Kind};
use super::response::*;
use super::terminal::*;
use super::users::*;
use super::util::{self, paginate, qget, Query};
use super::Shared;
use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderMap, Method};
use axum::response::Response;
use jiff::Timestamp;
use serde_json::{json, Value};
use std::sync::Arc;

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
    "v1/users/groups",
    "v1/users/groups/*",
    "v1/assets/platforms",
    "v1/assets/nodes",
    "v1/assets/nodes/children",
    "v1/assets/nodes/*/children",
    "v1/assets/nodes/*/assets/add",
    "v1/assets/nodes/*/assets/remove",
    "v1/assets/hosts",
    "v1/assets/hosts/*",
    "v1/assets/assets",
    "v1/assets/assets/*/perm-users",
    "v1/assets/assets/*/perm-users/*/permissions",
    "v1/accounts/accounts",
    "v1/perms/asset-permissions",
    "v1/perms/asset-permissions/*",
    "v1/perms/asset-permissions/*/users/all",
    "v1/perms/asset-permissions/*/assets/all",
    "v1/perms/asset-permissions-users-relations",
    "v1/perms/asset-permissions-user-groups-relations",
    "v1/perms/asset-permissions-assets-relations",
    "v1/perms/asset-permissions-nodes-relations",
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
pub(super) enum Org {
    Default,
    Root,
    /// Reported by `orgs/current/` (170); reads and writes act on Default's data.
    System,
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
        Some(SYSTEM_ORG_ID) => Org::System,
        // CE: any other id, existing org or not, resolves to Default (032, 170).
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
        ("v1/orgs/orgs", Method::GET) => orgs_list(&st, &ctx),
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
        ("v1/users/groups", Method::GET) => groups_list(&st, &ctx),
        ("v1/users/groups", Method::POST) => groups_create(&mut st, &ctx, b),
        ("v1/users/groups/*", Method::GET) => groups_get(&st, id),
        ("v1/users/groups/*", Method::PATCH) => groups_patch(&mut st, id, b),
        ("v1/users/groups/*", Method::DELETE) => groups_delete(&mut st, id),
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
            // The root first, then its direct children by value: 172 step 1 listed the root
            // and four children (`Payments` before `accessbot`); a fresh org only the root (071).
            let root = ensure_root(&mut st);
            let mut kids: Vec<&Node> = st
                .nodes
                .iter()
                .filter(|n| parent_key(&n.key) == Some("1"))
                .collect();
            kids.sort_by(|a, b| a.value.cmp(&b.value));
            let rows: Vec<Value> = st
                .nodes
                .iter()
                .filter(|n| n.id == root)
                .chain(kids)
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
        ("v1/assets/hosts", Method::GET) => hosts_list(&st, &ctx, HostRows::Host),
        ("v1/assets/assets", Method::GET) => hosts_list(&st, &ctx, HostRows::Asset),
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
        ("v1/accounts/accounts", Method::GET) => accounts_list(&st, &ctx),
        ("v1/perms/asset-permissions", Method::GET) => perms_list(&st, &ctx),
        ("v1/perms/asset-permissions", Method::POST) => perms_create(&mut st, &ctx, b),
        ("v1/perms/asset-permissions/*", Method::GET) => {
            match st.perms.iter().find(|p| p.id == id) {
                Some(p) => out(200, perm_detail(&st, p, now)),
                None => not_found_obj("AssetPermission"),
            }
        }
        ("v1/perms/asset-permissions/*", Method::PATCH) => perms_patch(&mut st, &ctx, id, b),
        ("v1/perms/asset-permissions/*", Method::DELETE) => perms_delete(&mut st, id),
        ("v1/perms/asset-permissions/*/users/all", Method::GET) => users_all(&st, &ctx, id),
        ("v1/perms/asset-permissions/*/assets/all", Method::GET) => assets_all(&st, &ctx, id),
        (r, m) if r.ends_with("-relations") => match (Kind::from_route(r), m) {
            (Some(k), Method::GET) => relations::list(&mut st, &ctx, k),
            (Some(k), Method::POST) => relations::create(&mut st, &ctx, k, b),
            (Some(k), Method::DELETE) => relations::delete(&mut st, &ctx, k),
            (_, m) => not_allowed(&m),
        },
        ("v1/perms/users/*/assets", Method::GET) => user_assets(&st, &ctx, id),
        ("v1/perms/users/*/assets/*", Method::GET) => granted_asset_detail(&st, id, id2, now),
        ("v1/assets/assets/*/perm-users", Method::GET) => asset_perm_users(&st, &ctx, id),
        ("v1/assets/assets/*/perm-users/*/permissions", Method::GET) => {
            asset_user_permissions(&st, &ctx, id, id2)
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
        (_, m) => not_allowed(&m),
    }
}

fn not_allowed(m: &Method) -> Out {
    detail(
        405,
        &format!("Method \"{}\" not allowed.", m.as_str()),
        "method_not_allowed",
    )
}

pub(super) struct Ctx<'a> {
    pub(super) now: Timestamp,
    pub(super) org: Org,
    pub(super) q: &'a Query,
    pub(super) base: &'a str,
    pub(super) caller: &'a Caller,
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
