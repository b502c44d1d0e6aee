//! The log filter: the operator's `ACCESSBOT_LOG` on top of quiet defaults for chatty
//! dependencies. The docs tell operators to investigate with `ACCESSBOT_LOG=debug` and promise
//! that no secret is logged; some dependencies log secrets below `warn` (cookie_store logs every
//! `Set-Cookie` it stores at debug — the JumpServer session cookie in password and MFA modes), so
//! a user filter must not lift them unless the operator names such a crate on purpose.
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

/// The environment variable holding the operator's tracing filter. Not a configuration key:
/// `config` skips it when it scans `ACCESSBOT_*` overrides.
pub const LOG_ENV: &str = "ACCESSBOT_LOG";

/// Crates kept at `warn` whatever the global level, and why each is here. Targets match by
/// prefix (`hyper` also covers `hyper_util` and `hyper_rustls`).
pub const QUIET: &[(&str, &str)] = &[
    // Logs every stored Set-Cookie, value included, at debug: the JumpServer session cookie.
    ("cookie_store", "warn"),
    // reqwest's verbose connector logs raw request bytes at trace (Authorization headers
    // included); the HTTP stack below it logs per connection, pool event and frame.
    ("reqwest", "warn"),
    ("hyper", "warn"),
    ("h2", "warn"),
    ("want", "warn"),
    ("rustls", "warn"),
    ("tokio_rustls", "warn"),
    // Stream mode's WebSocket: frame-level trace lines carry the frames (DingTalk payloads).
    ("tungstenite", "warn"),
    ("tokio_tungstenite", "warn"),
    // Storage internals: page-cache and flush chatter, no operator value.
    ("sled", "warn"),
    ("tower", "warn"),
    ("mio", "warn"),
];

/// The directives in force: `user` (the `ACCESSBOT_LOG` value, when set and not blank) or
/// `default_level`, followed by the quiet crates the user did not name. A directive for a crate
/// (`cookie_store=debug`, `hyper::proto=trace`) is the operator asking for that crate on
/// purpose, so its quiet default is left out; a bare level (`debug`, `trace`) names no crate.
pub fn directives(user: Option<&str>, default_level: &str) -> String {
    let user = user.map(str::trim).filter(|u| !u.is_empty());
    let named: Vec<String> = user.map(named_targets).unwrap_or_default();
    let mut out = vec![user.unwrap_or(default_level).to_owned()];
    for (krate, level) in QUIET {
        let asked = named
            .iter()
            .any(|t| t == krate || t.starts_with(&format!("{krate}::")));
        if !asked {
            out.push(format!("{krate}={level}"));
        }
    }
    out.join(",")
}

/// The targets a filter string names (`a=debug,b::c[span]=trace,info` → `a`, `b::c`).
fn named_targets(filter: &str) -> Vec<String> {
    filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| {
            let end = d.find(['[', '=']).unwrap_or(d.len());
            let target = d[..end].trim();
            // A lone `debug` is a level, not a crate called "debug".
            let bare_level = end == d.len() && target.parse::<LevelFilter>().is_ok();
            (!target.is_empty() && !bare_level).then(|| target.to_owned())
        })
        .collect()
}

/// The filter for `user` (see [`directives`]). A `user` filter that does not parse falls back
/// to `default_level`, and the second value says why, for the caller to log once logging works.
pub fn filter(user: Option<&str>, default_level: &str) -> (EnvFilter, Option<String>) {
    let built = |user: Option<&str>| EnvFilter::builder().parse(directives(user, default_level));
    match built(user) {
        Ok(f) => (f, None),
        Err(e) => {
            let fallback = built(None).unwrap_or_else(|_| EnvFilter::new("info"));
            let why =
                format!("{LOG_ENV} is not a valid tracing filter ({e}); using `{default_level}`");
            (fallback, Some(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(d: &str, directive: &str) -> bool {
        d.split(',').any(|x| x == directive)
    }

    #[test]
    fn a_bare_level_keeps_every_quiet_crate() {
        for user in [
            Some("debug"),
            Some(" trace "),
            Some("info,accessbot=trace"),
            None,
        ] {
            let d = directives(user, "info");
            for (krate, level) in QUIET {
                assert!(has(&d, &format!("{krate}={level}")), "{user:?}: {d}");
            }
        }
        assert!(directives(None, "warn").starts_with("warn,"));
        assert!(directives(Some(""), "warn").starts_with("warn,"));
    }

    #[test]
    fn naming_a_crate_lifts_only_that_crate() {
        let d = directives(Some("trace,cookie_store=debug"), "info");
        assert!(!d.contains("cookie_store=warn"), "{d}");
        assert!(has(&d, "hyper=warn") && has(&d, "reqwest=warn"), "{d}");
        let d = directives(Some("hyper::proto[conn]=trace"), "info");
        assert!(!d.contains("hyper=warn"), "{d}");
        // A longer crate name that merely starts like a quiet one names nothing quiet.
        let d = directives(Some("sledge=debug"), "info");
        assert!(has(&d, "sled=warn"), "{d}");
    }

    #[test]
    fn a_malformed_filter_falls_back_and_says_so() {
        let (_, why) = filter(Some("accessbot=loud"), "info");
        assert!(why.is_some_and(|w| w.contains(LOG_ENV)));
        let (_, why) = filter(Some("debug"), "info");
        assert_eq!(why, None);
    }
}
