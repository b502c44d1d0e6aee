//! `[jumpserver]` config section: where the server is, how the bot authenticates (exactly one of
//! access key, private token, username+password(+TOTP seed)), timeouts, retries and the defaults
//! used when the bot creates users and hosts. Key names are fixed: deployment files use them.
use crate::secret::Secret;
use serde::Deserialize;

/// The Default org of every JumpServer install (§2.4).
pub const DEFAULT_ORG: &str = "00000000-0000-0000-0000-000000000002";
/// The root ("GLOBAL") org: read-only view across orgs; writes there fail.
pub const ROOT_ORG: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct JumpServerConfig {
    /// Base URL, e.g. `https://jms.example.com` (no `/api` suffix).
    pub url: String,
    /// Org id sent as `X-JMS-ORG` on every call.
    pub org: String,
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub private_token: Secret,
    pub username: String,
    pub password: Secret,
    /// Base32 TOTP seed of the bot account, when its login requires MFA.
    pub otp_seed: Secret,
    pub connect_timeout_secs: u64,
    pub request_timeout_secs: u64,
    /// Attempts per call, first one included.
    pub retry_max_attempts: u32,
    /// First backoff step; doubles per attempt, with jitter.
    pub retry_base_delay_ms: u64,
    /// Upper bound on how long a `Retry-After` (429) is honoured.
    pub retry_after_cap_ms: u64,
    /// Requests a minute a `/sync` may make (0 = unpaced). JumpServer v4.10.16 throttles a user
    /// at 180 a minute and the bot is one user: the rest is left for grants made meanwhile.
    pub sync_requests_per_minute: u32,
    /// `source` of users the bot creates (`local`, `ldap`, …).
    pub user_source: String,
    /// Role ids given to users the bot creates; empty = server default (SystemUser).
    pub user_system_roles: Vec<String>,
    /// 0 disabled, 1 enabled, 2 forced.
    pub user_mfa_level: u8,
    /// Platform used when a request does not name one.
    pub default_platform: String,
    /// Protocols of hosts the bot creates, e.g. `["ssh/22"]`; empty = the platform's defaults.
    pub default_protocols: Vec<String>,
    /// Create the granted account usernames inline on hosts the bot creates (without a secret),
    /// so an `@SPEC` grant names something that exists.
    pub create_host_accounts: bool,
}

impl Default for JumpServerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            org: DEFAULT_ORG.into(),
            access_key_id: String::new(),
            access_key_secret: Secret::default(),
            private_token: Secret::default(),
            username: String::new(),
            password: Secret::default(),
            otp_seed: Secret::default(),
            connect_timeout_secs: 5,
            request_timeout_secs: 20,
            retry_max_attempts: 4,
            retry_base_delay_ms: 200,
            retry_after_cap_ms: 60_000,
            sync_requests_per_minute: 120,
            user_source: "local".into(),
            user_system_roles: Vec::new(),
            user_mfa_level: 0,
            default_platform: "Linux".into(),
            default_protocols: Vec::new(),
            create_host_accounts: true,
        }
    }
}

/// Which credentials the bot uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    AccessKey,
    PrivateToken,
    /// Username + password, with TOTP when `otp_seed` is set.
    Password,
}

impl JumpServerConfig {
    /// The configured auth mode, when exactly one is complete.
    pub fn auth_mode(&self) -> Option<AuthMode> {
        let modes = self.complete_modes();
        match modes.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    fn complete_modes(&self) -> Vec<AuthMode> {
        let mut v = Vec::new();
        if !self.access_key_id.is_empty() && !self.access_key_secret.is_empty() {
            v.push(AuthMode::AccessKey);
        }
        if !self.private_token.is_empty() {
            v.push(AuthMode::PrivateToken);
        }
        if !self.username.is_empty() && !self.password.is_empty() {
            v.push(AuthMode::Password);
        }
        v
    }

    /// Every problem, each naming its key; empty means usable.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            p.push("jumpserver.url: must start with http:// or https://".to_owned());
        } else if url::Url::parse(&self.url).is_err() {
            p.push("jumpserver.url: not a valid URL".to_owned());
        }
        if !is_uuid(&self.org) {
            p.push("jumpserver.org: must be an org UUID".to_owned());
        } else if self.org == ROOT_ORG {
            p.push("jumpserver.org: the root org cannot hold assets or permissions".to_owned());
        }
        let half_ak = self.access_key_id.is_empty() != self.access_key_secret.is_empty();
        if half_ak {
            p.push("jumpserver.access_key_id / access_key_secret: set both or neither".to_owned());
        }
        if !self.access_key_id.is_empty() && !is_uuid(&self.access_key_id) {
            p.push("jumpserver.access_key_id: must be a UUID".to_owned());
        }
        let half_pw = self.username.is_empty() != self.password.is_empty();
        if half_pw {
            p.push("jumpserver.username / password: set both or neither".to_owned());
        }
        if !self.otp_seed.is_empty() {
            if self.username.is_empty() {
                p.push("jumpserver.otp_seed: only used with username + password".to_owned());
            }
            if super::totp::decode_base32(self.otp_seed.expose()).is_none() {
                p.push("jumpserver.otp_seed: not valid base32".to_owned());
            }
        }
        match self.complete_modes().len() {
            0 if !half_ak && !half_pw => p.push(
                "jumpserver: configure exactly one auth mode (access_key_id + access_key_secret, private_token, or username + password)"
                    .to_owned(),
            ),
            n if n > 1 => p.push(
                "jumpserver: more than one auth mode is configured; keep exactly one".to_owned(),
            ),
            _ => {}
        }
        if self.connect_timeout_secs == 0 {
            p.push("jumpserver.connect_timeout_secs: must be at least 1".to_owned());
        }
        if self.request_timeout_secs == 0 {
            p.push("jumpserver.request_timeout_secs: must be at least 1".to_owned());
        }
        if self.retry_max_attempts == 0 {
            p.push("jumpserver.retry_max_attempts: must be at least 1".to_owned());
        }
        if self.user_mfa_level > 2 {
            p.push("jumpserver.user_mfa_level: must be 0, 1 or 2".to_owned());
        }
        if self.default_platform.trim().is_empty() {
            p.push("jumpserver.default_platform: must not be empty".to_owned());
        }
        for proto in &self.default_protocols {
            if parse_protocol(proto).is_none() {
                p.push(format!(
                    "jumpserver.default_protocols: {proto:?} is not name/port (e.g. ssh/22)"
                ));
            }
        }
        p
    }

    /// `default_protocols` as (name, port) pairs; invalid entries are skipped (validate reports them).
    pub fn default_protocol_pairs(&self) -> Vec<(String, u16)> {
        self.default_protocols
            .iter()
            .filter_map(|s| parse_protocol(s))
            .collect()
    }
}

/// `ssh/22` → ("ssh", 22).
pub fn parse_protocol(s: &str) -> Option<(String, u16)> {
    let (name, port) = s.split_once('/')?;
    let port: u16 = port.trim().parse().ok()?;
    let name = name.trim();
    if name.is_empty() || port == 0 || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((name.to_ascii_lowercase(), port))
}

pub(crate) fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ak() -> JumpServerConfig {
        JumpServerConfig {
            url: "https://jms.example.com".into(),
            access_key_id: "5d0b6f9e-1c2a-4e3b-9f47-8a6c2d1e0b93".into(),
            access_key_secret: Secret::new("q8ZfW2nLr5Tx0Hb7Kc3Vy9Jm4Pd6Sg1AeUoR"),
            ..Default::default()
        }
    }

    #[test]
    fn access_key_config_is_valid() {
        let c = ak();
        assert_eq!(c.validate(), Vec::<String>::new());
        assert_eq!(c.auth_mode(), Some(AuthMode::AccessKey));
    }

    #[test]
    fn problems_name_their_keys() {
        let mut c = ak();
        c.url = "jms.example.com".into();
        c.private_token = Secret::new("abc");
        c.default_protocols = vec!["ssh".into()];
        let p = c.validate();
        assert!(p.iter().any(|s| s.starts_with("jumpserver.url:")), "{p:?}");
        assert!(
            p.iter().any(|s| s.contains("more than one auth mode")),
            "{p:?}"
        );
        assert!(p
            .iter()
            .any(|s| s.starts_with("jumpserver.default_protocols")));
        assert_eq!(c.auth_mode(), None);
        let none = JumpServerConfig {
            url: "http://x".into(),
            ..Default::default()
        };
        assert!(none
            .validate()
            .iter()
            .any(|s| s.contains("exactly one auth mode")));
    }

    #[test]
    fn password_mode_and_default_org() {
        // Unknown keys are reported by `config::load` (as warnings naming the key), not here.
        let c: JumpServerConfig =
            toml::from_str("url = \"http://x\"\nusername = \"bot\"\npassword = \"pw\"\n").unwrap();
        assert_eq!(c.auth_mode(), Some(AuthMode::Password));
        assert_eq!(c.org, DEFAULT_ORG);
    }
}
