//! What the workflow reads from the configuration, resolved once at start.
use crate::chat::text::Lang;
use crate::config::{CardsConfig, Config, MissingLogin, RevokeModeConfig, WorkflowConfig};
use crate::domain::policy::Policy;
use crate::workflow::ports::RevokeMode;
use jiff::tz::TimeZone;
use jiff::SignedDuration;

/// What the workflow reads from the configuration, resolved once.
#[derive(Clone, Debug)]
pub struct Settings {
    pub lang: Lang,
    pub tz: TimeZone,
    pub cards: CardsConfig,
    pub default_node: String,
    /// Shown in "access granted" messages.
    pub jms_web_url: Option<String>,
    /// Transient failures of a grant are retried until this long after the job was created.
    pub retry: SignedDuration,
    /// Platform of hosts the grant creates.
    pub platform: String,
    /// What a host without the role's login does to a request (`[workflow] missing_login`).
    pub missing_login: MissingLogin,
    /// How revoke, give-back and expiry end the permission.
    pub revoke_mode: RevokeMode,
    /// End the holder's live sessions on revoke and at expiry.
    pub end_sessions: bool,
    /// At most this many new orders per requester within the window; `None` = no limit.
    pub order_limit: Option<(u32, SignedDuration)>,
}

impl Settings {
    pub fn from_config(config: &Config, policy: &Policy) -> Self {
        let w: &WorkflowConfig = &config.workflow;
        let web = if w.jms_web_url.trim().is_empty() {
            config.jumpserver.url.trim().to_string()
        } else {
            w.jms_web_url.trim().to_string()
        };
        Self {
            lang: policy.lang,
            tz: policy.timezone.clone(),
            cards: config.cards.clone(),
            default_node: w.default_node.clone(),
            jms_web_url: (!web.is_empty()).then_some(web),
            retry: SignedDuration::from_hours(i64::try_from(w.retry_hours.max(1)).unwrap_or(24)),
            platform: config.jumpserver.default_platform.clone(),
            missing_login: w.missing_login,
            revoke_mode: match w.revoke_mode {
                RevokeModeConfig::Deactivate => RevokeMode::Deactivate,
                RevokeModeConfig::Delete => RevokeMode::Delete,
            },
            end_sessions: w.end_sessions,
            order_limit: (w.max_new_orders_per_user > 0 && w.rate_window_minutes > 0).then(|| {
                let mins = i64::try_from(w.rate_window_minutes).unwrap_or(i64::MAX / 60);
                (
                    w.max_new_orders_per_user,
                    SignedDuration::from_mins(mins.min(i64::MAX / 60)),
                )
            }),
        }
    }

    pub fn approval_template(&self) -> Option<&str> {
        Some(self.cards.approval_template_id.trim()).filter(|s| !s.is_empty())
    }

    pub fn request_template(&self) -> Option<&str> {
        Some(self.cards.request_template_id.trim()).filter(|s| !s.is_empty())
    }

    pub fn route_key(&self) -> Option<String> {
        Some(self.cards.callback_route_key.trim().to_string()).filter(|s| !s.is_empty())
    }
}
