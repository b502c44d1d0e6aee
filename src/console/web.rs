//! The console's HTTP plumbing: security headers on every answer, cookies (session, login state,
//! language), the language of a request, rendering a template, and the answers every route
//! shares (404 that looks the same for "absent" and "not yours", the login redirect, CSV).
use super::session::{key_of, Session};
use super::Console;
use crate::chat::text::console::console_words;
use crate::chat::text::Lang;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::Serialize;

/// The policy every console page gets: only our own origin, no inline script or style, no
/// framing, forms post only to us. The login page widens `script-src` by the DingTalk JSAPI
/// origin (see `login_csp`).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The CSP of the login page: [`CSP`] plus the origin the JSAPI script is loaded from.
pub fn login_csp(jsapi_url: &str) -> String {
    match url::Url::parse(jsapi_url) {
        Ok(u) if u.scheme() == "https" => CSP.replacen(
            "script-src 'self'",
            &format!("script-src 'self' {}", u.origin().ascii_serialization()),
            1,
        ),
        _ => CSP.to_owned(),
    }
}

/// Security headers on every console answer; a route may set its own CSP first.
pub async fn security_headers(secure: bool, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The callback URL carries a one-time code; no page leaks its URL to another site.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show who may reach what: no shared cache, no back-button copy after logout.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if secure {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

/// A cookie's value from the request.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The session cookie's name: `__Host-` when Secure, so no subdomain or http page can set it.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-ab_session"
    } else {
        "ab_session"
    }
}

/// The login-state cookie (OAuth2 `state` and where to go after login), only for /console/auth.
pub const LOGIN_COOKIE: &str = "ab_login";
/// The chosen language (`?lang=`), remembered.
pub const LANG_COOKIE: &str = "ab_lang";

pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: i64,
    secure: bool,
) -> (header::HeaderName, String) {
    let c = Cookie::build((name.to_owned(), value.to_owned()))
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    (header::SET_COOKIE, c.to_string())
}

/// `?lang=` first (and then remembered), the cookie, then the browser's first choice.
pub fn lang_of(headers: &HeaderMap, query_lang: Option<&str>) -> Lang {
    let parse = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        if s.starts_with("en") {
            Some(Lang::En)
        } else if s.starts_with("zh") {
            Some(Lang::ZhCn)
        } else {
            None
        }
    };
    if let Some(l) = query_lang.and_then(parse) {
        return l;
    }
    if let Some(l) = cookie_value(headers, LANG_COOKIE)
        .as_deref()
        .and_then(parse)
    {
        return l;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(parse)
        .unwrap_or(Lang::ZhCn)
}

pub fn lang_key(l: Lang) -> &'static str {
    match l {
        Lang::ZhCn => "zh",
        Lang::En => "en",
    }
}

/// The logged-in session of a request, if its cookie names a live one.
pub fn session_of(c: &Console, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = cookie_value(headers, session_cookie_name(c.secure))?;
    if id.len() != 64 {
        return None;
    }
    match c.ports.sessions.get(&key_of(&id)) {
        Ok(Some(s)) if s.expires_at > c.clock.now() => Some((id, s)),
        Ok(_) => None,
        Err(e) => {
            tracing::error!(error = %e, "console session store unreadable");
            None
        }
    }
}

/// Renders `template` with `ctx` plus the words of `lang`.
pub fn render<T: Serialize>(c: &Console, template: &str, lang: Lang, ctx: T) -> Response {
    let words = console_words(lang);
    let result = c.templates.get_template(template).and_then(|t| {
        t.render(minijinja::context! {
            t => words,
            lang => lang_key(lang),
            ..minijinja::Value::from_serialize(&ctx)
        })
    });
    match result {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// The one "not here" answer: absent and not-yours look the same.
pub fn not_found(c: &Console, lang: Lang) -> Response {
    let mut r = render(c, "error.html", lang, ErrorPage::new("not_found"));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

pub fn bad_request(c: &Console, lang: Lang, key: &'static str) -> Response {
    let mut r = render(c, "error.html", lang, ErrorPage::new(key));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

#[derive(Serialize)]
pub struct ErrorPage {
    pub message_key: &'static str,
}

impl ErrorPage {
    pub fn new(message_key: &'static str) -> Self {
        Self { message_key }
    }
}

/// To the login page, coming back to `next` afterwards.
pub fn to_login(next: &str) -> Response {
    let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    Redirect::to(&format!("/console/login?{q}")).into_response()
}

/// Where to go after login: a console path, nothing else (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console")
                && !n.starts_with("/console/auth")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/console/now".to_owned(),
    }
}

/// A CSV download.
pub fn csv_response(name: &str, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_login() {
        assert_eq!(
            safe_next(Some("/console/history?x=1")),
            "/console/history?x=1"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/console//evil",
            "/console/auth/callback",
            "/consolex\\y",
            "/other",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/now", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/now");
    }

    #[test]
    fn the_login_page_may_load_only_the_jsapi_origin() {
        let csp = login_csp("https://g.alicdn.com/dingding/x.js");
        assert!(
            csp.contains("script-src 'self' https://g.alicdn.com;"),
            "{csp}"
        );
        assert_eq!(login_csp(""), CSP);
        assert_eq!(login_csp("http://plain.example/x.js"), CSP);
    }
}
