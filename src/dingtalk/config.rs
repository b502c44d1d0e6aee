//! `[dingtalk]` config section. Key names are fixed: operators' deployment files use them.
use crate::secret::Secret;
use serde::Deserialize;

/// How DingTalk delivers events, robot messages and card callbacks to the bot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerMode {
    /// DingTalk calls our HTTPS endpoints (event push, robot HTTP mode, card HTTP callbacks).
    #[default]
    Http,
    /// The bot keeps an outbound WebSocket to DingTalk's Stream gateway: no public URL needed.
    Stream,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct DingTalkConfig {
    /// `http` (DingTalk calls us) or `stream` (we connect out); reference §2 vs §3.
    pub mode: ListenerMode,
    /// Client ID of the enterprise-internal app; also the robot code and Stream clientId.
    pub app_key: String,
    pub app_secret: Secret,
    /// Organisation id (`ding…`), the owner key for callbacks registered through the legacy API.
    pub corp_id: String,
    /// Numeric AgentId, needed for work notifications and `microappAgentId`.
    pub agent_id: Option<i64>,
    /// Robot code; an internal app's robot code equals its AppKey, so empty means app_key.
    pub robot_code: String,
    /// Event subscription `token` (signature over token, timestamp, nonce, encrypt).
    pub callback_token: Secret,
    /// Event subscription `aes_key`: 43 characters of base64 without the trailing `=`.
    pub callback_aes_key: Secret,
    /// Owner key appended inside every ciphertext: the AppKey for console subscriptions,
    /// the CorpId for the legacy registration API (reference §2.1). Empty means app_key.
    pub callback_owner_key: String,
    /// `apiSecret` registered for HTTP card callbacks (`x-ddpaas-signature`).
    pub card_callback_secret: Secret,
    /// Base of the new OpenAPI; configurable so the bot can be pointed at a proxy or simulator.
    pub api_base: String,
    /// Base of the legacy oapi host.
    pub oapi_base: String,
    /// Stream mode's open-connection URL; empty means `{api_base}/v1.0/gateway/connections/open`.
    /// Separate from `api_base` so a deployment can route only the Stream handshake via a proxy.
    pub stream_open_url: String,
}

impl Default for DingTalkConfig {
    fn default() -> Self {
        Self {
            mode: ListenerMode::Http,
            app_key: String::new(),
            app_secret: Secret::default(),
            corp_id: String::new(),
            agent_id: None,
            robot_code: String::new(),
            callback_token: Secret::default(),
            callback_aes_key: Secret::default(),
            callback_owner_key: String::new(),
            card_callback_secret: Secret::default(),
            api_base: "https://api.dingtalk.com".into(),
            oapi_base: "https://oapi.dingtalk.com".into(),
            stream_open_url: String::new(),
        }
    }
}

impl DingTalkConfig {
    /// The event-push crypto of this subscription: its token, AES key and owner key.
    pub fn callback_crypto(
        &self,
    ) -> Result<super::crypto::CallbackCrypto, super::crypto::CryptoError> {
        super::crypto::CallbackCrypto::new(
            self.callback_token.expose(),
            self.callback_aes_key.expose(),
            self.owner_key(),
        )
    }

    pub fn robot_code(&self) -> &str {
        if self.robot_code.is_empty() {
            &self.app_key
        } else {
            &self.robot_code
        }
    }
    /// Where Stream mode registers its connection (reference §3.1).
    pub fn stream_open_url(&self) -> String {
        if self.stream_open_url.is_empty() {
            format!(
                "{}/v1.0/gateway/connections/open",
                self.api_base.trim_end_matches('/')
            )
        } else {
            self.stream_open_url.clone()
        }
    }
    pub fn owner_key(&self) -> &str {
        if self.callback_owner_key.is_empty() {
            &self.app_key
        } else {
            &self.callback_owner_key
        }
    }
}
