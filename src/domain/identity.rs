//! Who a DingTalk user is in JumpServer: the directory entry we get from DingTalk and the configured
//! rule (`[identity]`) that turns it into a JumpServer username. Explicit `[identity.map]` entries
//! win over the rule, so odd cases can be fixed without changing the rule for everyone.
use crate::domain::ids::DingUserId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// JumpServer limits usernames to 128 characters (users model `max_length`).
pub const MAX_USERNAME_LEN: usize = 128;

/// The fields of a DingTalk user (`/topapi/v2/user/get`) that matter for the mapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    pub userid: DingUserId,
    pub name: String,
    pub email: Option<String>,
    pub org_email: Option<String>,
    pub job_number: Option<String>,
    pub mobile: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityRule {
    #[default]
    EmailLocalPart,
    OrgEmailLocalPart,
    JobNumber,
    Mobile,
    /// Only `[identity.map]`; unmapped users are refused.
    Map,
}

impl IdentityRule {
    /// The DingTalk field the rule reads, as named in the directory API.
    pub fn field(self) -> &'static str {
        match self {
            IdentityRule::EmailLocalPart => "email",
            IdentityRule::OrgEmailLocalPart => "org_email",
            IdentityRule::JobNumber => "job_number",
            IdentityRule::Mobile => "mobile",
            IdentityRule::Map => "identity.map",
        }
    }
}

/// `[identity]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct IdentityConfig {
    pub rule: IdentityRule,
    /// DingTalk userid → JumpServer username, applied before the rule.
    pub map: BTreeMap<String, String>,
}

impl IdentityConfig {
    /// Problems, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (uid, name) in &self.map {
            match sanitize(name) {
                Some(s) if s == *name => {}
                _ => out.push(format!(
                    "identity.map.{uid}: `{name}` is not a valid JumpServer username \
                     (use lower-case letters, digits, `.`, `_`, `-`; at most {MAX_USERNAME_LEN})"
                )),
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum IdentityError {
    #[error("DingTalk user {userid} has no {field}, which the identity rule needs")]
    MissingField {
        userid: DingUserId,
        field: &'static str,
    },
    #[error("DingTalk user {userid} is not listed in identity.map")]
    NotMapped { userid: DingUserId },
    #[error("`{raw}` (from {field}) has no usable username characters")]
    Unusable { raw: String, field: &'static str },
}

/// The JumpServer username for a DingTalk user.
pub fn jms_username(cfg: &IdentityConfig, entry: &DirectoryEntry) -> Result<String, IdentityError> {
    if let Some(name) = cfg.map.get(entry.userid.as_str()) {
        return sanitize(name).ok_or(IdentityError::Unusable {
            raw: name.clone(),
            field: "identity.map",
        });
    }
    let field = cfg.rule.field();
    let missing = || IdentityError::MissingField {
        userid: entry.userid.clone(),
        field,
    };
    let present = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let raw = match cfg.rule {
        IdentityRule::Map => {
            return Err(IdentityError::NotMapped {
                userid: entry.userid.clone(),
            })
        }
        IdentityRule::EmailLocalPart => local_part(&present(&entry.email).ok_or_else(missing)?),
        IdentityRule::OrgEmailLocalPart => {
            local_part(&present(&entry.org_email).ok_or_else(missing)?)
        }
        IdentityRule::JobNumber => present(&entry.job_number).ok_or_else(missing)?,
        IdentityRule::Mobile => {
            // DingTalk may return `+86-13800000000`: drop the country code, keep the digits.
            let m = present(&entry.mobile).ok_or_else(missing)?;
            let national = match m.strip_prefix('+') {
                Some(rest) => rest.split_once('-').map_or(rest, |(_, n)| n),
                None => m.as_str(),
            };
            national.chars().filter(char::is_ascii_digit).collect()
        }
    };
    sanitize(&raw).ok_or(IdentityError::Unusable { raw, field })
}

/// The part before `@`, without a `+tag` (mail sub-addressing is not part of the person).
fn local_part(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    local.split('+').next().unwrap_or(local).to_string()
}

/// Lower-cases and keeps the characters safe in a JumpServer username and in the permission
/// names built from it: ASCII letters, digits, `.`, `_`, `-`. Anything else becomes `_`; runs of
/// separators collapse and none lead or trail. `None` when nothing usable remains.
pub fn sanitize(raw: &str) -> Option<String> {
    let mut out = String::new();
    for c in raw.trim().chars() {
        let c = c.to_ascii_lowercase();
        let keep = if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
            c
        } else {
            '_'
        };
        let sep = |c: char| matches!(c, '.' | '_' | '-');
        if sep(keep) && out.chars().last().is_none_or(sep) {
            continue;
        }
        out.push(keep);
    }
    let out: String = out
        .trim_matches(|c| matches!(c, '.' | '_' | '-'))
        .chars()
        .take(MAX_USERNAME_LEN)
        .collect();
    let out = out.trim_end_matches(['.', '_', '-']).to_string();
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_numbers_lose_country_code_and_separators() {
        let cfg = IdentityConfig {
            rule: IdentityRule::Mobile,
            ..Default::default()
        };
        let e = |m: &str| DirectoryEntry {
            userid: DingUserId::new("u"),
            name: String::new(),
            email: None,
            org_email: None,
            job_number: None,
            mobile: Some(m.into()),
        };
        assert_eq!(
            jms_username(&cfg, &e("+86-13800000000")),
            Ok("13800000000".into())
        );
        assert_eq!(
            jms_username(&cfg, &e("138-0000-1111")),
            Ok("13800001111".into())
        );
    }

    #[test]
    fn sanitize_rules() {
        assert_eq!(sanitize("Alice.Zhang"), Some("alice.zhang".into()));
        assert_eq!(sanitize("a  b"), Some("a_b".into()));
        assert_eq!(sanitize("__x__"), Some("x".into()));
        assert_eq!(sanitize("张三"), None);
        assert_eq!(sanitize("a@b"), Some("a_b".into()));
        assert_eq!(sanitize(&"a".repeat(300)).map(|s| s.len()), Some(128));
    }
}
