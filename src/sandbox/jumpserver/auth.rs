//! Authentication of the simulated JumpServer: access-key HTTP Signatures (verified with the
//! client's own primitives), private token, Bearer tokens, password + TOTP login, throttling.
use super::model::*;
use super::response::*;
use super::util::{self, fmt_dt};
use super::{Pending, Shared, State};
use crate::jumpserver::httpsig::{self, HttpSigError};
// The sim checks codes with the client's TOTP: one implementation, pinned by the RFC 6238
// vector and transcript 019 in `jumpserver::totp`.
use crate::jumpserver::totp;
use axum::http::{HeaderMap, Method};
use jiff::Timestamp;
use serde_json::{json, Value};

/// Who is calling, after authentication.
pub(super) struct Caller {
    pub(super) user_id: String,
}

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn authenticate(
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
pub(super) const ANON: &str = "anon";

/// DRF-style fixed one-minute window per bucket; answers 429 with `Retry-After`.
pub(super) fn throttle(
    sh: &Shared,
    bucket: &str,
    limit: Option<u32>,
    now: Timestamp,
) -> Option<Out> {
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

pub(super) fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

pub(super) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    let c = header_str(headers, "cookie")?;
    c.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "jms_sessionid")
        .map(|(_, v)| v.to_owned())
}

pub(super) fn session_set_cookie(id: &str, now: Timestamp) -> String {
    let exp = now
        .checked_add(jiff::SignedDuration::from_secs(600))
        .unwrap_or(now);
    let exp = exp
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    format!("jms_sessionid={id}; expires={exp}; HttpOnly; Max-Age=600; Path=/; SameSite=Lax")
}

pub(super) fn issue_token(sh: &Shared, st: &mut State, uid: &str, now: Timestamp) -> Value {
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
        st.remember_issued(&t);
        (t, exp)
    });
    if let Some(u) = st.users.iter_mut().find(|u| u.id == uid) {
        u.last_login = Some(now);
    }
    let user_v = match st.users.iter().find(|u| u.id == uid) {
        Some(u) => super::groups::user_out(st, u, UserShape::Login, now),
        None => Value::Null,
    };
    json!({"token": token, "keyword": "Bearer", "date_expired": fmt_dt(exp), "user": user_v})
}

pub(super) fn login(
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
    st.remember_issued(&sid);
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

pub(super) fn mfa_challenge(
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
            .any(|tt| totp::totp(&s, *tt).as_deref() == code && code.is_some())
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
