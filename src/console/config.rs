//! `[console]`: the access console's settings — where it is reached, who sees everything, how
//! long a login lasts, and how DingTalk's login is reached.
use serde::Deserialize;

/// DingTalk's web login (OAuth2 authorize page with the QR code).
pub const DINGTALK_AUTHORIZE_URL: &str = "https://login.dingtalk.com/oauth2/auth";
/// DingTalk's JSAPI, loaded by the login page only, so that inside the DingTalk client the page
/// can ask for an in-app auth code (免登) without a second prompt.
pub const DINGTALK_JSAPI_URL: &str =
    "https://g.alicdn.com/dingding/dingtalk-jsapi/3.0.25/dingtalk.open.js";

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ConsoleConfig {
    /// Serve the console under `/console`.
    pub enabled: bool,
    /// The console's public base URL as the browser sees it (`https://bot.example.com`): the
    /// OAuth2 `redirect_uri` is built from it and must be registered in the DingTalk app. Empty
    /// on a loopback listener means `http://<listen address>` (tests, the demo).
    pub public_url: String,
    /// DingTalk's authorize page; the sandbox points it at the simulated DingTalk.
    pub authorize_url: String,
    /// DingTalk JSAPI script for the in-app login; empty turns the in-app login off.
    pub jsapi_url: String,
    /// DingTalk userids who see everything (besides `[policy] admins`): auditors.
    pub auditors: Vec<String>,
    /// A login lasts this long, then the user logs in again.
    pub session_hours: u64,
    /// Mark cookies `Secure`. May be off only when `public_url` is plain http on loopback.
    pub secure_cookies: bool,
    /// Login code exchanges accepted per minute (all users together): each costs DingTalk API
    /// calls, and a flood of forged codes must not exhaust the app's quota.
    pub login_attempts_per_minute: u32,
    /// Rows per page in History.
    pub page_size: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            public_url: String::new(),
            authorize_url: DINGTALK_AUTHORIZE_URL.into(),
            jsapi_url: DINGTALK_JSAPI_URL.into(),
            auditors: Vec::new(),
            session_hours: 8,
            secure_cookies: true,
            login_attempts_per_minute: 30,
            page_size: 50,
        }
    }
}

/// Is `url` plain http to a loopback host (where cookies cannot be `Secure`)?
pub fn is_loopback_http(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    u.scheme() == "http"
        && match u.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        }
}

impl ConsoleConfig {
    /// Problems as `(key, message)`; `listen` is `[server] listen`.
    pub fn problems(&self, listen: &str) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if !self.enabled {
            return p;
        }
        if self.public_url.is_empty() {
            let loopback = listen
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback());
            if !loopback {
                p.push((
                    "console.public_url",
                    "must be set (the https URL people open, e.g. https://bot.example.com) when the server listens beyond loopback: DingTalk's login redirects back to it".to_owned(),
                ));
            }
        } else if url::Url::parse(&self.public_url)
            .map(|u| !matches!(u.scheme(), "http" | "https"))
            .unwrap_or(true)
        {
            p.push((
                "console.public_url",
                format!("`{}` is not an http(s) URL", self.public_url),
            ));
        }
        if !self.secure_cookies
            && !self.public_url.is_empty()
            && !is_loopback_http(&self.public_url)
        {
            p.push((
                "console.secure_cookies",
                "may be false only when console.public_url is http on loopback (127.0.0.1, localhost): a login cookie sent over the network in clear can be stolen".to_owned(),
            ));
        }
        if self.session_hours == 0 {
            p.push(("console.session_hours", "must be above 0".to_owned()));
        }
        if self.login_attempts_per_minute == 0 {
            p.push((
                "console.login_attempts_per_minute",
                "must be above 0, or nobody can log in".to_owned(),
            ));
        }
        if self.page_size == 0 || self.page_size > 1000 {
            p.push(("console.page_size", "must be between 1 and 1000".to_owned()));
        }
        if url::Url::parse(&self.authorize_url).is_err() {
            p.push((
                "console.authorize_url",
                format!("`{}` is not a URL", self.authorize_url),
            ));
        }
        p
    }
}
