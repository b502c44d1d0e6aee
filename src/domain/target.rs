//! What a request is for: each token a user types is an IP address, a host name (RFC 1123) or the
//! name of a configured system. Classification here is syntactic; whether a name is a configured
//! system is decided by [`resolve`] against a [`SystemLookup`] (the policy).
//!
//! Every token is brought to ONE canonical form before anything decides on it, because policy
//! (`[[systems]]` ranges and host names) compares values: a second spelling of the same host
//! must not be a second host. What is folded, and why:
//! - full-width digits and punctuation from Chinese input methods (`１０．９．９６．７`, `：`, `。`)
//!   → ASCII; zero-width characters dropped;
//! - IPv6 forms that embed an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
//!   translated `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) → that IPv4 address;
//! - IPv4 parts with leading zeros (`010.9.96.7`) → read as DECIMAL (10.9.96.7), never octal: the
//!   canonical form is what the approver sees and what is granted, so nothing downstream ever
//!   reads the typed string the way `inet_aton` would;
//! - other numeric forms that `inet_aton` / URL parsers accept (`0x0a.9.96.7`, `10.9.24583`,
//!   `167337991`) → refused, as they are unreadable to a person approving them;
//! - one trailing dot (a DNS root, or a sentence's full stop) → dropped;
//! - host names → compared in ASCII lower case ([`HostName`] keeps the spelling too);
//! - `[…]` around an IPv6 address → dropped; a zone id (`fe80::1%eth0`) → refused (it names an
//!   interface of the machine that connects, not a host);
//! - address ranges and CIDR blocks → refused (the parser never accepted them).
//!
//! Longer than 600 lines on purpose: the canonical form is one set of folding rules applied in
//! order; splitting them would hide which rule sees a token first. Its unit tests are at the end.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use thiserror::Error;

/// Ceiling used by the command parser, before any policy is known, so a pasted inventory cannot
/// make one message cost unbounded work. The configured `[policy] max_addresses` is usually lower.
pub const PARSE_MAX_TARGETS: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// Always canonical (see [`canonical_ip`]): never an IPv4 address spelled as IPv6.
    Address(IpAddr),
    /// A host name; may still turn out to be a system name (see [`resolve`]).
    Hostname(HostName),
    /// A configured system (canonical name once resolved).
    System(String),
}

impl Target {
    /// The target for an address from elsewhere (e.g. one a host name resolves to in
    /// JumpServer), in the same canonical form as a typed one, so it routes through
    /// `[[systems]]` ranges the same way.
    pub fn address(ip: IpAddr) -> Target {
        Target::Address(canonical_ip(ip))
    }

    pub fn is_address(&self) -> bool {
        matches!(self, Target::Address(_))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Address(ip) => write!(f, "{ip}"),
            Target::Hostname(h) => f.write_str(h.as_typed()),
            Target::System(s) => f.write_str(s),
        }
    }
}

/// A host name as the user spelled it (ASCII, without a trailing dot) and its comparison key
/// (ASCII lower case). DNS names are case-insensitive, so everything that decides (policy,
/// de-duplication) looks at [`HostName::key`] only: equality, order and hash use the key. The
/// spelling is kept because JumpServer asset names are case-sensitive (unique per org), so a
/// lookup by name and what people read should use what was typed.
#[derive(Clone, Debug)]
pub struct HostName {
    typed: String,
    key: String,
}

impl HostName {
    /// Wraps an already-classified name (use [`classify`] on user input).
    pub fn new(typed: impl Into<String>) -> Self {
        let typed = typed.into();
        let key = typed.to_ascii_lowercase();
        Self { typed, key }
    }
    /// The lower-case form policy compares.
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The spelling the user typed (after width folding and without a trailing dot).
    pub fn as_typed(&self) -> &str {
        &self.typed
    }
}

impl From<&str> for HostName {
    fn from(s: &str) -> Self {
        HostName::new(s)
    }
}

impl From<String> for HostName {
    fn from(s: String) -> Self {
        HostName::new(s)
    }
}

impl PartialEq for HostName {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for HostName {}
impl PartialOrd for HostName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HostName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}
impl Hash for HostName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

/// Stored as the typed string (dialog states in sled kept the plain string before the key
/// existed, so old states still read).
impl Serialize for HostName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.typed)
    }
}
impl<'de> Deserialize<'de> for HostName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(HostName::new)
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
    #[error("`{0}` carries a zone id (`%…`); give the address without it")]
    ZoneId(String),
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

/// What Chinese input methods type instead of ASCII: full-width forms U+FF01..U+FF5E map to
/// U+0021..U+007E (`１` → `1`, `．` → `.`, `：` → `:`), the ideographic and half-width ideographic
/// full stops (`。`, `｡`) are dots, the ideographic space is a space, and zero-width characters
/// (pasted from rich text) are dropped. The ASCII range is all a target can use, so this small
/// table is enough (a full NFKC would only add characters that are refused anyway).
pub fn fold_width(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\u{200B}'..='\u{200D}' | '\u{FEFF}' | '\u{2060}'))
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3002}' | '\u{FF61}' => '.',
            '\u{3000}' | '\u{00A0}' => ' ',
            _ => c,
        })
        .collect()
}

/// The one form of an address that policy and JumpServer see: an IPv4 address spelled as IPv6
/// becomes that IPv4 address. Embedded forms folded: IPv4-mapped `::ffff:0:0/96` (RFC 4291),
/// IPv4-compatible `::/96` except `::` and `::1`, which are IPv6's own (deprecated, RFC 4291
/// §2.5.5.1, still parsed by most stacks), IPv4-translated `::ffff:0:0:0/96` (RFC 2765) and the
/// NAT64 well-known prefix `64:ff9b::/96` (RFC 6052), all of which reach the IPv4 host.
/// 6to4 and Teredo addresses also carry IPv4 bits, but name a relay, not that host: left as is.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => embedded_v4(&v6).map_or(ip, IpAddr::V4),
    }
}

fn embedded_v4(v6: &Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s[..6] {
        [0, 0, 0, 0, 0, 0xffff] => Some(tail),
        [0, 0, 0, 0, 0, 0] if !(v6.is_unspecified() || v6.is_loopback()) => Some(tail),
        [0, 0, 0, 0, 0xffff, 0] => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0] => Some(tail),
        _ => None,
    }
}

/// The IPv6 spellings [`canonical_ip`] folds into `v4`, so an IPv6 block that contains any of
/// them claims `v4` too.
fn v6_spellings(v4: Ipv4Addr) -> [Ipv6Addr; 4] {
    let [a, b, c, d] = v4.octets();
    let low = [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])];
    [
        v4.to_ipv6_mapped(),
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, low[0], low[1]),
        Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, low[0], low[1]),
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, low[0], low[1]),
    ]
}

/// Four dot-separated DECIMAL parts, each 0–255; leading zeros allowed and ignored (`010` is
/// ten, never octal eight, see the module header).
fn parse_v4_decimal(t: &str) -> Option<Ipv4Addr> {
    let mut parts = [0u8; 4];
    let mut n = 0usize;
    for p in t.split('.') {
        if n == 4 || p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = p.trim_start_matches('0');
        if digits.len() > 3 {
            return None;
        }
        parts[n] = if digits.is_empty() {
            0
        } else {
            digits.parse::<u8>().ok()?
        };
        n += 1;
    }
    (n == 4).then(|| Ipv4Addr::from(parts))
}

/// The WHATWG URL rule for "this host is meant as an IPv4 address": its last label is a number,
/// decimal or `0x` hex. Such a token is never taken as a host name (a resolver would turn
/// `0x0a090607` into 10.9.6.7 behind the policy's back).
fn ends_in_number(t: &str) -> bool {
    let last = t.rsplit('.').next().unwrap_or(t);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    last.strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An IPv6 address (with or without a zone id) or a dotted-decimal IPv4 address.
fn is_address_literal(s: &str) -> bool {
    let addr = s.split_once('%').map_or(s, |(a, _)| a);
    addr.parse::<Ipv6Addr>().is_ok() || parse_v4_decimal(addr).is_some()
}

/// Classifies one token (already split on spaces and commas) into its canonical target. The
/// result's text form (`to_string`, what an order records) classifies to the same target again.
pub fn classify(token: &str) -> Result<Target, TargetError> {
    let folded = fold_width(token);
    let trimmed = folded.trim();
    // One pair of brackets around an address literal, as in URLs. Only there: brackets around
    // anything else stay (and fail), or `[[x]]` would become `[x]` and then `x`, and the form an
    // order records would classify to something else the next time it is read.
    let t = match trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        Some(inner) if is_address_literal(inner) => inner,
        _ => trimmed,
    };
    if t.is_empty() {
        return Err(TargetError::Empty);
    }
    if t.contains('/') || looks_like_v4_range(t) {
        return Err(TargetError::Range(echo(trimmed)));
    }
    if let Some((addr, _zone)) = t.split_once('%') {
        return Err(if addr.parse::<Ipv6Addr>().is_ok() {
            TargetError::ZoneId(echo(t))
        } else {
            TargetError::BadAddress(echo(t))
        });
    }
    // A fully qualified name's root dot, or the full stop ending a sentence: one, not two.
    let t = t.strip_suffix('.').unwrap_or(t);
    if t.is_empty() {
        return Err(TargetError::Empty);
    }
    if t.ends_with('.') {
        return Err(if looks_numeric_v4(t) {
            TargetError::BadAddress(echo(trimmed))
        } else {
            TargetError::BadHostname(echo(trimmed))
        });
    }
    if let Some(v4) = parse_v4_decimal(t) {
        return Ok(Target::Address(IpAddr::V4(v4)));
    }
    if let Ok(v6) = t.parse::<Ipv6Addr>() {
        return Ok(Target::Address(canonical_ip(IpAddr::V6(v6))));
    }
    if t.is_ascii()
        && (looks_numeric_v4(t)
            || ends_in_number(t)
            || (t.contains(':')
                && t.chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')))
    {
        return Err(TargetError::BadAddress(echo(t)));
    }
    if t.is_ascii() {
        return if is_hostname(t) {
            Ok(Target::Hostname(HostName::new(t)))
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
            parse_v4_decimal(a).is_some()
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
            Target::Hostname(h) => match systems.system_named(h.key()) {
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
/// system a requested address belongs to. Both sides are compared in canonical form: a block
/// written inside an embedded-IPv4 range (`::ffff:10.9.0.0/112`) is stored as the IPv4 block it
/// stands for, and an IPv6 block that spans such a range (`::/0`) also claims the IPv4 addresses
/// spelled inside it, so no spelling of an address falls outside a block meant to hold it.
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
        if prefix > max {
            return None;
        }
        if let (IpAddr::V6(_), IpAddr::V4(v4)) = (base, canonical_ip(base)) {
            if prefix >= 96 {
                let block = Self {
                    base: IpAddr::V4(v4),
                    prefix: prefix - 96,
                };
                return Some(block);
            }
        }
        Some(Self { base, prefix })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.base, canonical_ip(*ip)) {
            (IpAddr::V4(b), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(b) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(b), IpAddr::V6(a)) => self.contains_v6(b, a),
            (IpAddr::V6(b), IpAddr::V4(a)) => {
                v6_spellings(a).into_iter().any(|s| self.contains_v6(b, s))
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }

    fn contains_v6(&self, b: Ipv6Addr, a: Ipv6Addr) -> bool {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix))
            .unwrap_or(0);
        u128::from(b) & mask == u128::from(a) & mask
    }
}

/// Every way a person (or a Chinese input method, or someone probing the policy) may write
/// 10.9.96.7: each must classify to the one IPv4 target and get the same policy decision
/// (tests here and in `policy`).
#[cfg(test)]
pub(crate) const SPELLINGS_OF_10_9_96_7: &[&str] = &[
    "10.9.96.7",
    "10.9.96.7.",
    "010.9.96.7",
    "010.009.096.007",
    "0010.9.96.7",
    "::ffff:10.9.96.7",
    "::FFFF:10.9.96.7",
    "::ffff:a09:6007",
    "0:0:0:0:0:ffff:0a09:6007",
    "0000:0000:0000:0000:0000:FFFF:0A09:6007",
    "[::ffff:10.9.96.7]",
    "::10.9.96.7",
    "::a09:6007",
    "::ffff:0:10.9.96.7",
    "64:ff9b::10.9.96.7",
    "１０．９．９６．７",
    "１０。９。９６。７",
    "10。9。96。7",
    "10.9.96.7。",
    "：：ｆｆｆｆ：１０．９．９６．７",
    "［::ffff:10.9.96.7］",
    "\u{3000}10.9.96.7\u{3000}",
    "10.9.96.7\u{200B}",
    " 10.9.96.7 ",
];

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
    #[test]
    fn every_spelling_of_one_address_is_one_target() {
        let want = Target::Address(IpAddr::V4(Ipv4Addr::new(10, 9, 96, 7)));
        for s in SPELLINGS_OF_10_9_96_7 {
            let got = classify(s);
            assert_eq!(got.as_ref(), Ok(&want), "{s:?}");
            // What an order records and JumpServer is asked for.
            assert_eq!(got.map(|t| t.to_string()).as_deref(), Ok("10.9.96.7"));
        }
        let all: Vec<&str> = SPELLINGS_OF_10_9_96_7.to_vec();
        assert_eq!(parse_list(all, 50), Ok(vec![want]));
    }

    #[test]
    fn ipv6_stays_ipv6_unless_it_embeds_ipv4() {
        let v6 = |s: &str| classify(s).map(|t| t.to_string());
        assert_eq!(v6("::1").as_deref(), Ok("::1"));
        assert_eq!(v6("[::1]").as_deref(), Ok("::1"));
        assert_eq!(v6("FE80::0001").as_deref(), Ok("fe80::1"));
        assert_eq!(
            v6("2001:DB8::A09:6007").as_deref(),
            Ok("2001:db8::a09:6007")
        );
        // 6to4 carries IPv4 bits but names a relay, not that host.
        assert_eq!(v6("2002:a09:6007::1").as_deref(), Ok("2002:a09:6007::1"));
        assert!(matches!(
            classify("::"),
            Ok(Target::Address(IpAddr::V6(a))) if a.is_unspecified()
        ));
    }

    #[test]
    fn unreadable_numeric_forms_zone_ids_and_ranges_are_refused() {
        for s in [
            "0x0a.9.96.7",
            "0x0a090607",
            "0X0A090607",
            "10.9.24583",
            "167337991",
            "10.9.96.7..",
            "10.9.96.256",
            "10.9.96.7:22",
            "[10.9.96.7",
            "web.0x1f",
            "1000.9.96.7",
        ] {
            assert!(
                matches!(
                    classify(s),
                    Err(TargetError::BadAddress(_) | TargetError::BadHostname(_))
                ),
                "{s:?}: {:?}",
                classify(s)
            );
        }
        assert_eq!(
            classify("fe80::1%eth0"),
            Err(TargetError::ZoneId("fe80::1%eth0".into()))
        );
        assert_eq!(
            classify("[fe80::1%25eth0]"),
            Err(TargetError::ZoneId("fe80::1%25eth0".into()))
        );
        assert!(matches!(
            classify("10.9.96.7%eth0"),
            Err(TargetError::BadAddress(_))
        ));
        for s in [
            "::ffff:10.9.96.0/120",
            "010.9.96.1-20",
            "１０．９．０．０／１６",
        ] {
            assert!(matches!(classify(s), Err(TargetError::Range(_))), "{s:?}");
        }
    }

    #[test]
    fn host_names_compare_in_lower_case_and_keep_their_spelling() {
        let spellings = [
            "Pay-DB-01",
            "pay-db-01",
            "pay-db-01.",
            "PAY-DB-01.",
            "ＰＡＹ－ＤＢ－０１",
            "pay-db-01。",
        ];
        let targets: Vec<Target> = spellings.iter().filter_map(|s| classify(s).ok()).collect();
        assert_eq!(targets.len(), spellings.len());
        for t in &targets {
            assert_eq!(t, &Target::Hostname("pay-db-01".into()));
            match t {
                Target::Hostname(h) => assert_eq!(h.key(), "pay-db-01"),
                other => panic!("{other:?}"),
            }
        }
        // The spelling survives for display and JumpServer's case-sensitive names.
        assert_eq!(targets[0].to_string(), "Pay-DB-01");
        assert_eq!(targets[2].to_string(), "pay-db-01");
        // One host, however many spellings: the first one typed is kept.
        assert_eq!(
            parse_list(spellings, 50).map(|v| v.iter().map(|t| t.to_string()).collect::<Vec<_>>()),
            Ok(vec!["Pay-DB-01".to_string()])
        );
        // Stored as the plain spelling; old states (lower case) read back equal.
        let json = serde_json::to_string(&targets[0]).unwrap_or_default();
        assert_eq!(json, r#"{"kind":"hostname","value":"Pay-DB-01"}"#);
        let back: Option<Target> = serde_json::from_str(&json).ok();
        assert_eq!(back.map(|t| t.to_string()).as_deref(), Some("Pay-DB-01"));
        assert!(matches!(
            classify("web.."),
            Err(TargetError::BadHostname(_))
        ));
    }

    #[test]
    fn brackets_are_only_taken_off_an_address() {
        assert_eq!(
            classify("[10.9.96.7]").map(|t| t.to_string()).as_deref(),
            Ok("10.9.96.7")
        );
        assert!(matches!(
            classify("[web1]"),
            Err(TargetError::BadHostname(_))
        ));
        // Found by the `target` fuzzer: `[[…]…].` lost one pair of brackets per reading, so
        // what an order recorded was not what policy had judged.
        for s in ["[[支付]系统].", "[[支付]]", "[支付]"] {
            let t = classify(s);
            let again = t.as_ref().map(|t| classify(&t.to_string()));
            assert_eq!(again.as_ref().ok(), Some(&t), "{s}");
        }
    }

    #[test]
    fn blocks_compare_within_one_family_after_canonicalisation() {
        let ip = |s: &str| {
            s.parse::<IpAddr>()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        };
        let v4 = AddrBlock::parse("10.9.0.0/16");
        // A configured block spelled in IPv6 is the IPv4 block it stands for.
        assert_eq!(AddrBlock::parse("::ffff:10.9.0.0/112"), v4);
        assert_eq!(
            AddrBlock::parse("::ffff:10.9.96.7"),
            AddrBlock::parse("10.9.96.7")
        );
        for a in [
            "10.9.96.7",
            "::ffff:10.9.96.7",
            "::10.9.96.7",
            "64:ff9b::a09:6007",
        ] {
            assert!(v4.is_some_and(|b| b.contains(&ip(a))), "{a}");
        }
        assert!(v4.is_some_and(|b| !b.contains(&ip("::ffff:10.8.96.7"))));
        // An IPv6 block that spans the embedded ranges claims the IPv4 addresses inside them.
        assert!(AddrBlock::parse("::/0").is_some_and(|b| b.contains(&ip("10.9.96.7"))));
        assert!(AddrBlock::parse("::ffff:0:0/96").is_some_and(|b| b.contains(&ip("1.2.3.4"))));
        assert!(AddrBlock::parse("fd00::/8").is_some_and(|b| !b.contains(&ip("10.9.96.7"))));
        assert!(AddrBlock::parse("10.0.0.0/8").is_some_and(|b| !b.contains(&ip("fd00::1"))));
        assert!(AddrBlock::parse("::1").is_some_and(|b| b.contains(&ip("::1"))));
        assert_eq!(
            Target::address(ip("::ffff:10.9.96.7")).to_string(),
            "10.9.96.7"
        );
    }
}
