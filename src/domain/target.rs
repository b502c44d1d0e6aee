//! What a request is for: each token a user types is an IP address, a host name (RFC 1123) or the
//! name of a configured system. Classification here is syntactic; whether a name is a configured
//! system is decided by [`resolve`] against a [`SystemLookup`] (the policy).
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use thiserror::Error;

/// Ceiling used by the command parser, before any policy is known, so a pasted inventory cannot
/// make one message cost unbounded work. The configured `[policy] max_addresses` is usually lower.
pub const PARSE_MAX_TARGETS: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    Address(IpAddr),
    /// Lower-cased host name; may still turn out to be a system name (see [`resolve`]).
    Hostname(String),
    /// A configured system (canonical name once resolved).
    System(String),
}

impl Target {
    pub fn is_address(&self) -> bool {
        matches!(self, Target::Address(_))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Address(ip) => write!(f, "{ip}"),
            Target::Hostname(h) => f.write_str(h),
            Target::System(s) => f.write_str(s),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TargetError {
    #[error("no host given")]
    Empty,
    #[error("`{0}` is not a valid IP address")]
    BadAddress(String),
    #[error("`{0}` is an address range; list the hosts one by one or ask for their system")]
    Range(String),
    #[error("`{0}` is not a valid host name")]
    BadHostname(String),
    #[error("`{0}` is not a configured system")]
    UnknownSystem(String),
    #[error("{count} hosts in one request; at most {max} are allowed")]
    TooMany { count: usize, max: usize },
}

/// Looks up configured system names and aliases; the policy implements it.
pub trait SystemLookup {
    /// The canonical system name for a name or alias (case-insensitive), if configured.
    fn system_named(&self, name: &str) -> Option<String>;
}

/// No systems configured: every name stays a host name.
impl SystemLookup for () {
    fn system_named(&self, _: &str) -> Option<String> {
        None
    }
}

/// Echoing user input back in an error is useful up to a point; a pasted page is not.
fn echo(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Classifies one token (already split on spaces and commas).
pub fn classify(token: &str) -> Result<Target, TargetError> {
    let t = token.trim().trim_matches(|c| c == '[' || c == ']');
    if t.is_empty() {
        return Err(TargetError::Empty);
    }
    if t.contains('/') || looks_like_v4_range(t) {
        return Err(TargetError::Range(echo(token.trim())));
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(Target::Address(ip));
    }
    if looks_numeric_v4(t)
        || (t.contains(':')
            && t.chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.'))
    {
        return Err(TargetError::BadAddress(echo(t)));
    }
    if t.is_ascii() {
        let lower = t.to_ascii_lowercase();
        return if is_hostname(&lower) {
            Ok(Target::Hostname(lower))
        } else {
            Err(TargetError::BadHostname(echo(t)))
        };
    }
    // Non-ASCII text (e.g. 支付系统) can only be a system name.
    if t.chars().any(|c| c.is_control() || c.is_whitespace()) || t.chars().count() > 64 {
        return Err(TargetError::BadHostname(echo(t)));
    }
    Ok(Target::System(t.to_string()))
}

/// Digits and dots only: meant as an IPv4 address even when invalid (`10.1.2.300`).
fn looks_numeric_v4(t: &str) -> bool {
    t.contains('.') && t.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// `10.0.0.1-20` or `10.0.0.1-10.0.0.20`.
fn looks_like_v4_range(t: &str) -> bool {
    match t.split_once('-') {
        Some((a, b)) => {
            a.parse::<Ipv4Addr>().is_ok()
                && !b.is_empty()
                && b.chars().all(|c| c.is_ascii_digit() || c == '.')
        }
        None => false,
    }
}

/// RFC 1123 host name: dot-separated labels of 1–63 letters, digits and hyphens, not starting or
/// ending with a hyphen, at most 253 characters, and not all-numeric in the last label (that
/// would be a mistyped IPv4 address). Underscores are accepted because internal DNS uses them.
pub fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels_ok = s.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let last_numeric = s
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    labels_ok && !last_numeric
}

/// Splits a free-form list (`a, b，c、d e`) into tokens.
pub fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| {
        c == ',' || c == '，' || c == '、' || c == ';' || c == '；' || c.is_whitespace()
    })
    .filter(|t| !t.is_empty())
}

/// Classifies every token, drops duplicates (keeping first-seen order) and refuses more than `max`.
pub fn parse_list<'a>(
    tokens: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Result<Vec<Target>, TargetError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut count = 0usize;
    for token in tokens {
        let t = classify(token)?;
        if seen.insert(t.clone()) {
            count += 1;
            if count > max {
                // Keep counting cheaply so the message says how many were sent, up to a bound.
                continue;
            }
            out.push(t);
        }
    }
    if count > max {
        return Err(TargetError::TooMany { count, max });
    }
    if out.is_empty() {
        return Err(TargetError::Empty);
    }
    Ok(out)
}

/// Turns names that match a configured system into `System`, checks `System` names (non-ASCII
/// ones) exist, and dedupes again since two aliases may name the same system.
pub fn resolve(targets: &[Target], systems: &dyn SystemLookup) -> Result<Vec<Target>, TargetError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for t in targets {
        let r = match t {
            Target::Address(_) => t.clone(),
            Target::Hostname(h) => match systems.system_named(h) {
                Some(s) => Target::System(s),
                None => t.clone(),
            },
            Target::System(s) => match systems.system_named(s) {
                Some(s) => Target::System(s),
                None => return Err(TargetError::UnknownSystem(echo(s))),
            },
        };
        if seen.insert(r.clone()) {
            out.push(r);
        }
    }
    Ok(out)
}

/// An address block from configuration (`10.1.2.0/24` or a single address), used to say which
/// system a requested address belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrBlock {
    base: IpAddr,
    prefix: u8,
}

impl AddrBlock {
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s.trim(), None),
        };
        let base: IpAddr = addr.parse().ok()?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { base, prefix })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.base, ip) {
            (IpAddr::V4(b), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(b) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(b), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(b) & mask == u128::from(*a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_tokens() {
        assert_eq!(
            classify("10.1.2.3"),
            Ok(Target::Address(
                "10.1.2.3"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            ))
        );
        assert!(matches!(
            classify("fe80::1"),
            Ok(Target::Address(IpAddr::V6(_)))
        ));
        assert!(matches!(
            classify("[::1]"),
            Ok(Target::Address(IpAddr::V6(_)))
        ));
        assert_eq!(
            classify("Web-01.Prod"),
            Ok(Target::Hostname("web-01.prod".into()))
        );
        assert_eq!(classify("支付系统"), Ok(Target::System("支付系统".into())));
        assert_eq!(
            classify("10.1.2.300"),
            Err(TargetError::BadAddress("10.1.2.300".into()))
        );
        assert_eq!(
            classify("10.1.2"),
            Err(TargetError::BadAddress("10.1.2".into()))
        );
        assert_eq!(
            classify("10.0.0.0/24"),
            Err(TargetError::Range("10.0.0.0/24".into()))
        );
        assert_eq!(
            classify("10.0.0.1-20"),
            Err(TargetError::Range("10.0.0.1-20".into()))
        );
        assert_eq!(
            classify("-bad-"),
            Err(TargetError::BadHostname("-bad-".into()))
        );
        assert_eq!(classify("a b"), Err(TargetError::BadHostname("a b".into())));
        assert_eq!(
            classify("gg::zz"),
            Err(TargetError::BadHostname("gg::zz".into()))
        );
    }

    #[test]
    fn long_input_is_not_echoed_whole() {
        let long = "x!".repeat(500);
        match classify(&long) {
            Err(TargetError::BadHostname(e)) => assert_eq!(e.chars().count(), 65),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_dedupes_and_caps() {
        let got = parse_list(split_list("10.0.0.1, 10.0.0.1，web1、WEB1 10.0.0.2"), 5);
        assert_eq!(got.map(|v| v.len()), Ok(3));
        let many: Vec<String> = (1..=8).map(|i| format!("10.0.0.{i}")).collect();
        assert_eq!(
            parse_list(many.iter().map(String::as_str), 5),
            Err(TargetError::TooMany { count: 8, max: 5 })
        );
        assert_eq!(parse_list(split_list(" , "), 5), Err(TargetError::Empty));
    }

    #[test]
    fn blocks_contain() {
        let b = AddrBlock::parse("10.1.2.0/24");
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(b.zip(ip("10.1.2.77")).is_some_and(|(b, a)| b.contains(&a)));
        assert!(b.zip(ip("10.1.3.1")).is_some_and(|(b, a)| !b.contains(&a)));
        assert!(AddrBlock::parse("0.0.0.0/0")
            .zip(ip("8.8.8.8"))
            .is_some_and(|(b, a)| b.contains(&a)));
        assert!(AddrBlock::parse("10.0.0.0/33").is_none());
        assert!(AddrBlock::parse("fd00::/8")
            .zip(ip("fd12::1"))
            .is_some_and(|(b, a)| b.contains(&a)));
    }
}
