//! The simulated DingTalk's login endpoints, for the access console's tests and the demo:
//!
//! - `GET /oauth2/auth` — the authorize page (the QR-code page of `login.dingtalk.com`). The
//!   person "scanning" is chosen by `login_as=<userid>`, else by the `simdt_login_as` cookie
//!   `/sandbox/login-as` sets (as a browser logged in to DingTalk would be), else the page lists
//!   the directory to pick from. It then redirects to `redirect_uri?authCode=…&state=…`.
//! - `POST /v1.0/oauth2/userAccessToken` — code + app credentials → a user access token.
//! - `GET /v1.0/contact/users/me` — the user token → `nick`, `unionId`, `openId`.
//! - `POST /topapi/user/getbyunionid` (app token) — unionid → userid.
//! - `POST /topapi/v2/user/getuserinfo` (app token) — an in-app (JSAPI) auth code → userid.
//! - `GET /sandbox/login-as?user=&then=` — sandbox only: "log in to DingTalk" as `user`, then go
//!   to `then` (the demo's one-click login link).
//!
//! Codes and user tokens carry their user, kind and expiry under an HMAC keyed with the app
//! secret, so the helpers below can mint them without the router's state; each code is accepted
//! once (the router remembers spent ones), five minutes at most, as DingTalk's are. Error codes
//! the reference does not pin down are sim-chosen.
use super::{Shared, SimDingTalk};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// Auth codes live five minutes (DingTalk's documented lifetime for both kinds).
const CODE_TTL_MS: i64 = 5 * 60 * 1000;
/// User access tokens: two hours, like app tokens.
const USER_TOKEN_TTL_MS: i64 = 2 * 60 * 60 * 1000;
/// The cookie `/sandbox/login-as` sets on the simulator's origin.
pub const LOGIN_AS_COOKIE: &str = "simdt_login_as";

struct LoginSim {
    sh: Arc<Shared>,
    /// Codes already exchanged: a second use is refused.
    spent: Mutex<HashSet<String>>,
}

/// The login routes, with their own state; registered by the simulator's router.
pub(super) fn routes<S: Clone + Send + Sync + 'static>(sh: &Arc<Shared>) -> Router<S> {
    let st = Arc::new(LoginSim {
        sh: sh.clone(),
        spent: Mutex::new(HashSet::new()),
    });
    Router::new()
        .route("/oauth2/auth", get(authorize))
        .route("/v1.0/oauth2/userAccessToken", post(user_access_token))
        .route("/v1.0/contact/users/me", get(users_me))
        .route("/topapi/user/getbyunionid", post(get_by_unionid))
        .route("/topapi/v2/user/getuserinfo", post(get_user_info))
        .route("/sandbox/login-as", get(login_as))
        .with_state(st)
}

fn mac(secret: &str, text: &str) -> String {
    let mut m = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    m.update(text.as_bytes());
    hex::encode(&m.finalize().into_bytes()[..16])
}

/// `<kind>.<hex userid>.<expiry ms>.<nonce>.<mac>`.
fn mint(sh: &Shared, kind: &str, user: &str, ttl_ms: i64) -> String {
    let nonce: u64 = rand::random();
    let body = format!(
        "{kind}.{}.{}.{nonce:016x}",
        hex::encode(user),
        sh.now_ms() + ttl_ms
    );
    let m = mac(&sh.opts.app_secret, &body);
    format!("{body}.{m}")
}

/// The user a minted value names, if it is genuine, of `kind` and not expired.
fn check(sh: &Shared, kind: &str, value: &str) -> Option<String> {
    let (body, m) = value.rsplit_once('.')?;
    if m.is_empty() || mac(&sh.opts.app_secret, body) != m {
        return None;
    }
    let mut parts = body.split('.');
    let (k, user, exp) = (parts.next()?, parts.next()?, parts.next()?);
    let exp: i64 = exp.parse().ok()?;
    if k != kind || sh.now_ms() >= exp {
        return None;
    }
    String::from_utf8(hex::decode(user).ok()?).ok()
}

fn unionid_of(user: &str) -> String {
    format!("union-{user}")
}

fn known(sh: &Shared, user: &str) -> bool {
    sh.lock().users.contains_key(user)
}

fn app_token_valid(sh: &Shared, q: &BTreeMap<String, String>) -> bool {
    let now = sh.now_ms();
    q.get("access_token")
        .and_then(|t| sh.lock().tokens.get(t).copied())
        .is_some_and(|exp| now < exp)
}

fn legacy(errcode: i64, errmsg: &str) -> Response {
    Json(json!({"errcode": errcode, "errmsg": errmsg})).into_response()
}

fn new_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

fn cookie_user(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == LOGIN_AS_COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

async fn authorize(
    State(st): State<Arc<LoginSim>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let sh = &st.sh;
    if q.get("client_id") != Some(&sh.opts.app_key) {
        return (StatusCode::BAD_REQUEST, Html("应用不存在 (client_id)")).into_response();
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return (StatusCode::BAD_REQUEST, Html("response_type 必须是 code")).into_response();
    }
    let Some(mut redirect) = q
        .get("redirect_uri")
        .and_then(|r| url::Url::parse(r).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
    else {
        return (StatusCode::BAD_REQUEST, Html("redirect_uri 无效")).into_response();
    };
    let chosen = q
        .get("login_as")
        .cloned()
        .or_else(|| cookie_user(&headers))
        .filter(|u| known(sh, u));
    let Some(user) = chosen else {
        // The picker: one link per directory user, this same request plus `login_as`.
        let users: Vec<(String, String)> = sh
            .lock()
            .users
            .values()
            .map(|u| (u.userid.as_str().to_owned(), u.name.clone()))
            .collect();
        let mut items = String::new();
        for (id, name) in users {
            let mut link = q.clone();
            link.insert("login_as".into(), id.clone());
            let query = serde_urlencoded::to_string(&link).unwrap_or_default();
            items.push_str(&format!(
                "<li><a href=\"/oauth2/auth?{}\">{} ({})</a></li>",
                escape(&query),
                escape(&name),
                escape(&id)
            ));
        }
        return Html(format!(
            "<!doctype html><meta charset=utf-8><title>钉钉登录 (sandbox)</title>\
             <h1>钉钉登录 (sandbox)</h1><p>扫码的人 / who scans:</p><ul>{items}</ul>"
        ))
        .into_response();
    };
    let code = mint(sh, "web", &user, CODE_TTL_MS);
    redirect.query_pairs_mut().append_pair("authCode", &code);
    if let Some(state) = q.get("state") {
        redirect.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(redirect.as_str()).into_response()
}

async fn user_access_token(State(st): State<Arc<LoginSim>>, body: Json<Value>) -> Response {
    let sh = &st.sh;
    let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    if s("clientId") != sh.opts.app_key || s("clientSecret") != sh.opts.app_secret {
        return new_error(
            StatusCode::BAD_REQUEST,
            "invalidClientIdOrSecret",
            "无效的clientId或者clientSecret",
        );
    }
    if s("grantType") != "authorization_code" {
        return new_error(
            StatusCode::BAD_REQUEST,
            "invalidParameter",
            "grantType 无效",
        );
    }
    let code = s("code");
    let user = check(sh, "web", code);
    let fresh = st
        .spent
        .lock()
        .map(|mut spent| spent.insert(code.to_owned()))
        .unwrap_or(false);
    match user {
        Some(user) if fresh => {
            let token = mint(sh, "utok", &user, USER_TOKEN_TTL_MS);
            Json(json!({
                "accessToken": token,
                "refreshToken": mint(sh, "rtok", &user, USER_TOKEN_TTL_MS),
                "expireIn": USER_TOKEN_TTL_MS / 1000,
                "corpId": sh.opts.corp_id,
            }))
            .into_response()
        }
        // sim-chosen code for an unknown, expired or spent authCode.
        _ => new_error(
            StatusCode::BAD_REQUEST,
            "invalidAuthCode",
            "不合法的临时授权码",
        ),
    }
}

async fn users_me(State(st): State<Arc<LoginSim>>, headers: HeaderMap) -> Response {
    let sh = &st.sh;
    let token = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(user) = check(sh, "utok", token) else {
        return new_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthentication",
            "不合法的access_token",
        );
    };
    let Some(u) = sh.lock().users.get(&user).cloned() else {
        return new_error(StatusCode::NOT_FOUND, "userNotExist", "用户不存在");
    };
    Json(json!({
        "nick": u.name,
        "unionId": unionid_of(&user),
        "openId": format!("open-{user}"),
        "email": u.email.unwrap_or_default(),
        "stateCode": "86",
    }))
    .into_response()
}

async fn get_by_unionid(
    State(st): State<Arc<LoginSim>>,
    Query(q): Query<BTreeMap<String, String>>,
    body: Json<Value>,
) -> Response {
    let sh = &st.sh;
    if !app_token_valid(sh, &q) {
        return legacy(88, "不合法的access_token");
    }
    let unionid = body
        .get("unionid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match unionid.strip_prefix("union-").filter(|u| known(sh, u)) {
        Some(user) => Json(json!({
            "errcode": 0, "errmsg": "ok",
            "result": {"contact_type": 0, "userid": user},
        }))
        .into_response(),
        None => legacy(60121, "找不到该用户"),
    }
}

async fn get_user_info(
    State(st): State<Arc<LoginSim>>,
    Query(q): Query<BTreeMap<String, String>>,
    body: Json<Value>,
) -> Response {
    let sh = &st.sh;
    if !app_token_valid(sh, &q) {
        return legacy(88, "不合法的access_token");
    }
    let code = body.get("code").and_then(Value::as_str).unwrap_or_default();
    let user = check(sh, "inapp", code);
    let fresh = st
        .spent
        .lock()
        .map(|mut spent| spent.insert(code.to_owned()))
        .unwrap_or(false);
    let name = user
        .as_ref()
        .and_then(|u| sh.lock().users.get(u).map(|u| u.name.clone()));
    match (user, name) {
        (Some(user), Some(name)) if fresh => Json(json!({
            "errcode": 0, "errmsg": "ok",
            "result": {
                "userid": user, "unionid": unionid_of(&user), "name": name,
                "device_id": "sim-device", "sys": false, "sys_level": 0,
            },
        }))
        .into_response(),
        // sim-chosen: DingTalk answers a bad code with a non-zero errcode.
        _ => legacy(40078, "不存在的临时授权码"),
    }
}

async fn login_as(
    State(st): State<Arc<LoginSim>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(user) = q.get("user").filter(|u| known(&st.sh, u)) else {
        return (
            StatusCode::NOT_FOUND,
            Html("no such user in the simulated directory"),
        )
            .into_response();
    };
    let then = q
        .get("then")
        .filter(|t| url::Url::parse(t).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
        .cloned()
        .unwrap_or_else(|| "/".into());
    let cookie = format!("{LOGIN_AS_COOKIE}={user}; Path=/; HttpOnly; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&then)).into_response()
}

impl SimDingTalk {
    /// An in-app auth code for `user`, as `dd.runtime.permission.requestAuthCode` would hand
    /// the page inside the DingTalk client.
    pub fn inapp_auth_code(&self, user: &str) -> String {
        mint(&self.shared, "inapp", user, CODE_TTL_MS)
    }

    /// A web-login auth code for `user`, as the authorize page would put in its redirect.
    pub fn web_auth_code(&self, user: &str) -> String {
        mint(&self.shared, "web", user, CODE_TTL_MS)
    }

    /// A link that logs in to the simulated DingTalk as `user`, then opens `then`.
    pub fn login_as_url(&self, user: &str, then: &str) -> String {
        let q = serde_urlencoded::to_string([("user", user), ("then", then)]).unwrap_or_default();
        format!("{}/sandbox/login-as?{q}", self.base_url)
    }
}
