//! The access console: server-rendered pages (no frontend build) of who can reach what now,
//! who opened what when, each order's timeline and what waits for approval, with CSV export,
//! behind DingTalk login (QR code on a desktop, the in-app auth code inside DingTalk).
//!
//! - `access`: who sees what (pure rules); `session`: logins and CSRF tokens;
//! - `auth`: login, callback, in-app login, logout; `pages`: the read-only pages and CSV;
//! - `data`: the ports it reads through; `view`: filters, rows and formatting (no IO);
//! - `web`: security headers, cookies, language, rendering; `config`: `[console]`.
//!
//! Every route checks the viewer on the server (`access`); templates autoescape everything.
pub mod access;
mod auth;
pub mod config;
pub mod data;
mod pages;
pub mod session;
mod view;
mod web;

use crate::clock::SharedClock;
use crate::domain::ids::DingUserId;
use crate::workflow::ports::{IndexStore, OrderStore};
use access::Overseers;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use config::ConsoleConfig;
use data::{AuditTrail, DingLogin};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use jiff::tz::TimeZone;
use session::SessionStore;
use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::Arc;

/// What the console reads and writes through.
pub struct ConsolePorts {
    pub orders: Arc<dyn OrderStore>,
    pub index: Arc<dyn IndexStore>,
    pub audit: Arc<dyn AuditTrail>,
    pub sessions: Arc<dyn SessionStore>,
    pub login: Arc<dyn DingLogin>,
}

/// The settings the console takes from the rest of the configuration.
pub struct ConsoleSettings {
    pub console: ConsoleConfig,
    /// `console.public_url`, or `http://<bound address>` on loopback.
    pub public_url: String,
    /// The DingTalk app key (OAuth2 `client_id`) and the org's corpId (JSAPI).
    pub app_key: String,
    pub corp_id: String,
    pub tz: TimeZone,
    /// `[policy] admins` and `[console] auditors`.
    pub overseers: BTreeSet<DingUserId>,
    /// Approvers named in the configuration (default and per system).
    pub approvers: BTreeSet<DingUserId>,
}

pub struct Console {
    cfg: ConsoleConfig,
    public_url: String,
    app_key: String,
    corp_id: String,
    tz: TimeZone,
    overseers: Overseers,
    approvers: BTreeSet<DingUserId>,
    secure: bool,
    ports: ConsolePorts,
    clock: SharedClock,
    login_limit: DefaultDirectRateLimiter,
    templates: minijinja::Environment<'static>,
    /// Every order, kept decoded between pages (`data::OrderBook`).
    book: data::OrderBook,
}

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // Autoescaping follows the name: every template is `.html`, so every value is escaped.
    for (name, src) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("error.html", include_str!("templates/error.html")),
        ("now.html", include_str!("templates/now.html")),
        ("history.html", include_str!("templates/history.html")),
        ("pending.html", include_str!("templates/pending.html")),
        ("order.html", include_str!("templates/order.html")),
    ] {
        if let Err(e) = env.add_template(name, src) {
            // Templates are compiled in; a broken one is a build mistake a unit test catches.
            tracing::error!(error = %e, name, "console template does not parse");
        }
    }
    env
}

impl Console {
    pub fn new(settings: ConsoleSettings, ports: ConsolePorts, clock: SharedClock) -> Self {
        let per_minute = NonZeroU32::new(settings.console.login_attempts_per_minute.max(1))
            .unwrap_or(NonZeroU32::MIN);
        let secure = settings.console.secure_cookies;
        Self {
            public_url: settings.public_url.trim_end_matches('/').to_owned(),
            app_key: settings.app_key,
            corp_id: settings.corp_id,
            tz: settings.tz,
            overseers: Overseers(settings.overseers),
            approvers: settings.approvers,
            secure,
            cfg: settings.console,
            ports,
            clock,
            login_limit: RateLimiter::direct(Quota::per_minute(per_minute)),
            templates: templates(),
            book: data::OrderBook::new(),
        }
    }
}

/// The console's routes, all under `/console`, with their security headers.
pub fn router(console: Arc<Console>) -> Router {
    let secure = console.secure;
    Router::new()
        .route(
            "/console",
            get(|| async { axum::response::Redirect::to("/console/now") }),
        )
        .route(
            "/console/",
            get(|| async { axum::response::Redirect::to("/console/now") }),
        )
        .route("/console/login", get(auth::login))
        .route("/console/auth/callback", get(auth::callback))
        .route("/console/auth/inapp", get(auth::in_app))
        .route("/console/logout", post(auth::logout))
        .route("/console/now", get(pages::now))
        .route("/console/now.csv", get(pages::now_csv))
        .route("/console/history", get(pages::history))
        .route("/console/history.csv", get(pages::history_csv))
        .route("/console/pending", get(pages::pending))
        .route("/console/pending.csv", get(pages::pending_csv))
        .route("/console/orders/{id}", get(pages::order))
        .route(
            "/console/static/console.css",
            get(|| async { static_file(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/console/static/console.js",
            get(|| async { static_file(JS, "text/javascript; charset=utf-8") }),
        )
        // The console's only bodies are small forms (logout); it joins the router after the
        // DingTalk routes' own limits, so it carries its own.
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| web::security_headers(secure, req, next),
        ))
        .with_state(console)
}

fn static_file(body: &'static str, kind: &'static str) -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        let env = super::templates();
        for name in [
            "base.html",
            "login.html",
            "error.html",
            "now.html",
            "history.html",
            "pending.html",
            "order.html",
        ] {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }
}

#[cfg(test)]
mod render_tests {
    use crate::chat::text::console::console_words;
    use crate::chat::text::Lang;

    #[test]
    fn now_renders_rows() {
        let env = super::templates();
        let row = minijinja::context! { user => "u", host => "h", accounts => "", until => "", permission => "", order => "R1", requested_by => "", approved_by => "", reason => "" };
        let r = env.get_template("now.html").and_then(|t| {
            t.render(minijinja::context! {
                t => console_words(Lang::ZhCn), lang => "zh", user_name => "x", role => "r", csrf => "c",
                nav => "now", lang_switch => "/", zone => "UTC", as_of => "t", admin => true,
                host => "", user => "", rows => vec![row.clone()], active => vec![row], csv => "",
            })
        });
        assert!(r.is_ok(), "{r:?}");
    }
}
