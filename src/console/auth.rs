//! Login and logout. Desktop: `/console/login` renders the login page (or, with `via=qr`,
//! goes straight) to DingTalk's authorize page with a fresh `state` kept in an HttpOnly cookie
//! scoped to `/console/auth`; DingTalk redirects to `/console/auth/callback` with a one-time
//! code, exchanged with the app's credentials for the userid. Inside DingTalk: the same page's
//! script asks the JSAPI for an auth code (no prompt) and opens `/console/auth/inapp`. Both
//! exchanges are rate limited (they cost DingTalk calls) and need the `state` of the page that
//! started them, so a link crafted elsewhere cannot log someone in as someone else.
use super::session::{key_of, random_token, same_token, Session};
use super::web::{
    self, cookie_value, lang_of, login_csp, render, safe_next, session_cookie_name, set_cookie,
    LOGIN_COOKIE,
};
use super::Console;
use crate::console::data::LoginIdentity;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The login state lives ten minutes: time to scan a QR code, not to keep a link around.
const LOGIN_STATE_SECS: i64 = 600;

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    via: Option<String>,
    lang: Option<String>,
}

#[derive(Serialize)]
struct LoginPage {
    qr_url: String,
    inapp: bool,
    corp_id: String,
    state: String,
    next: String,
    jsapi_url: String,
    lang_switch: String,
    error: Option<&'static str>,
}

fn authorize_url(c: &Console, state: &str) -> String {
    let redirect = format!("{}/console/auth/callback", c.public_url);
    let mut u = match url::Url::parse(&c.cfg.authorize_url) {
        Ok(u) => u,
        Err(_) => return String::new(),
    };
    u.query_pairs_mut()
        .append_pair("redirect_uri", &redirect)
        .append_pair("response_type", "code")
        .append_pair("client_id", &c.app_key)
        .append_pair("scope", "openid")
        .append_pair("state", state)
        .append_pair("prompt", "consent");
    u.into()
}

/// GET /console/login: the login page (or, `via=qr`, straight to DingTalk).
pub async fn login(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let next = safe_next(q.next.as_deref());
    if web::session_of(&c, &headers).is_some() {
        return Redirect::to(&next).into_response();
    }
    if c.public_url.is_empty() {
        // `validate` refuses this configuration; a running console says it plainly too.
        return web::bad_request(&c, lang, "bad_request");
    }
    let state = random_token();
    let value = format!("{state}~{}", hex::encode(&next));
    let cookie = set_cookie(
        LOGIN_COOKIE,
        &value,
        "/console/auth",
        LOGIN_STATE_SECS,
        c.secure,
    );
    let qr_url = authorize_url(&c, &state);
    if q.via.as_deref() == Some("qr") {
        return ([cookie], Redirect::to(&qr_url)).into_response();
    }
    let page = LoginPage {
        qr_url,
        inapp: !c.cfg.jsapi_url.is_empty(),
        corp_id: c.corp_id.clone(),
        state,
        next: next.clone(),
        jsapi_url: c.cfg.jsapi_url.clone(),
        lang_switch: lang_switch("/console/login", &[("next", &next)], lang),
        error: None,
    };
    let mut r = render(&c, "login.html", lang, page);
    r.headers_mut().append(cookie.0, header_value(&cookie.1));
    if let Ok(v) = HeaderValue::from_str(&login_csp(&c.cfg.jsapi_url)) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// The same page in the other language.
pub fn lang_switch(path: &str, keep: &[(&str, &str)], lang: crate::chat::text::Lang) -> String {
    let other = match lang {
        crate::chat::text::Lang::ZhCn => "en",
        crate::chat::text::Lang::En => "zh",
    };
    let mut pairs: Vec<(&str, &str)> = keep
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .copied()
        .collect();
    pairs.push(("lang", other));
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The login cookie's `(state, next)`.
fn login_state(headers: &HeaderMap) -> Option<(String, String)> {
    let v = cookie_value(headers, LOGIN_COOKIE)?;
    let (state, next) = v.split_once('~')?;
    let next = String::from_utf8(hex::decode(next).ok()?).ok()?;
    Some((state.to_owned(), safe_next(Some(&next))))
}

/// The failure page: the same words whatever failed (details go to the log only).
fn failed(c: &Console, headers: &HeaderMap, status: StatusCode, why: &'static str) -> Response {
    let lang = lang_of(headers, None);
    let state = random_token();
    let page = LoginPage {
        qr_url: String::new(),
        inapp: false,
        corp_id: String::new(),
        state,
        next: "/console/now".into(),
        jsapi_url: String::new(),
        lang_switch: lang_switch("/console/login", &[], lang),
        error: Some(why),
    };
    let mut r = render(c, "login.html", lang, page);
    *r.status_mut() = status;
    r
}

/// The exchange both logins share: rate limit, state, code → identity → session.
async fn finish(
    c: &Console,
    headers: &HeaderMap,
    q: &BTreeMap<String, String>,
    in_app: bool,
) -> Response {
    if c.login_limit.check().is_err() {
        tracing::warn!("console login rate limit reached");
        return failed(c, headers, StatusCode::TOO_MANY_REQUESTS, "too_many");
    }
    let Some((state, next)) = login_state(headers) else {
        return failed(c, headers, StatusCode::BAD_REQUEST, "login_failed");
    };
    let given = q.get("state").map(String::as_str).unwrap_or_default();
    if !same_token(&state, given) {
        tracing::info!("console login with a state that is not this browser's; refused");
        return failed(c, headers, StatusCode::BAD_REQUEST, "login_failed");
    }
    // DingTalk names the code `authCode` (and `code` in older pages).
    let code = q
        .get("authCode")
        .or_else(|| q.get("code"))
        .map(String::as_str)
        .unwrap_or_default();
    if code.is_empty() || code.len() > 512 {
        return failed(c, headers, StatusCode::BAD_REQUEST, "login_failed");
    }
    let who = if in_app {
        c.ports.login.in_app(code).await
    } else {
        c.ports.login.web(code).await
    };
    let LoginIdentity { user, name } = match who {
        Ok(w) => w,
        Err(e) => {
            tracing::info!(error = %e, in_app, "console login refused by DingTalk");
            return failed(c, headers, StatusCode::UNAUTHORIZED, "login_failed");
        }
    };
    let now = c.clock.now();
    let hours = i64::try_from(c.cfg.session_hours.max(1)).unwrap_or(8);
    let expires_at = now
        .checked_add(jiff::SignedDuration::from_hours(hours))
        .unwrap_or(now);
    let id = random_token();
    let session = Session {
        user: user.clone(),
        name,
        csrf: random_token(),
        created_at: now,
        expires_at,
    };
    if let Err(e) = c.ports.sessions.purge_expired(now) {
        tracing::warn!(error = %e, "could not purge expired console sessions");
    }
    if let Err(e) = c.ports.sessions.put(&key_of(&id), &session) {
        tracing::error!(error = %e, "could not store a console session");
        return failed(
            c,
            headers,
            StatusCode::INTERNAL_SERVER_ERROR,
            "login_failed",
        );
    }
    tracing::info!(user = %user, in_app, "console login");
    let session_cookie = set_cookie(
        session_cookie_name(c.secure),
        &id,
        "/",
        hours.saturating_mul(3600),
        c.secure,
    );
    let clear = set_cookie(LOGIN_COOKIE, "", "/console/auth", 0, c.secure);
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut()
        .append(session_cookie.0, header_value(&session_cookie.1));
    r.headers_mut().append(clear.0, header_value(&clear.1));
    r
}

/// GET /console/auth/callback?authCode=&state=: DingTalk's redirect after the QR login.
pub async fn callback(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    finish(&c, &headers, &q, false).await
}

/// GET /console/auth/inapp?authCode=&state=: the in-app login, opened by console.js.
pub async fn in_app(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    finish(&c, &headers, &q, true).await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// POST /console/logout (form with the CSRF token).
pub async fn logout(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let Some((id, s)) = web::session_of(&c, &headers) else {
        return web::to_login("/console/now");
    };
    if !same_token(&s.csrf, &f.csrf) {
        return web::bad_request(&c, lang_of(&headers, None), "bad_request");
    }
    if let Err(e) = c.ports.sessions.delete(&key_of(&id)) {
        tracing::error!(error = %e, "could not delete a console session");
    }
    let clear = set_cookie(session_cookie_name(c.secure), "", "/", 0, c.secure);
    ([clear], Redirect::to("/console/login")).into_response()
}
