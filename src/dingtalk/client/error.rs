//! DingTalk's errors, typed: how a response of the new API or of the legacy oapi maps to a
//! `DingTalkError` and to the retry decision of reference §9.
use super::transport::str_field;
use crate::dingtalk::message::MessageError;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum DingTalkError {
    #[error("DingTalk authentication failed ({code}): {message}")]
    Auth { code: String, message: String },
    #[error("DingTalk rate limit hit ({code})")]
    Throttled { code: String },
    #[error("DingTalk permission denied ({code}): {message}")]
    PermissionDenied { code: String, message: String },
    #[error("DingTalk API error HTTP {status} ({code}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("DingTalk legacy API error {errcode}: {errmsg}")]
    Legacy { errcode: i64, errmsg: String },
    #[error("card not delivered to {space_id}: {message}")]
    CardNotDelivered { space_id: String, message: String },
    #[error("bad outbound message: {0}")]
    Message(#[from] MessageError),
    #[error("DingTalk client misconfigured: {0}")]
    Config(String),
    #[error("HTTP transport error: {0}")]
    Http(String),
    #[error("unexpected DingTalk response: {0}")]
    Decode(String),
}

impl DingTalkError {
    /// Whether trying the same call again later may succeed (for the outbox's retry
    /// decision). Auth, permission, validation and message errors need a human.
    pub fn is_transient(&self) -> bool {
        match self {
            DingTalkError::Throttled { code } => {
                // The monthly quota does not recover within minutes.
                !code.starts_with("Forbidden.AccessDenied.ApiCount") && code != "90020"
            }
            DingTalkError::Http(_) => true,
            DingTalkError::Api { status, .. } => *status >= 500,
            DingTalkError::Legacy { errcode, .. } => *errcode == -1,
            _ => false,
        }
    }
}

pub type Result<T, E = DingTalkError> = std::result::Result<T, E>;

/// What one attempt ended in, before the retry decision.
pub(super) enum Outcome {
    Done(Value),
    AuthFailed(DingTalkError),
    Throttled(DingTalkError),
    ServerError(DingTalkError),
    Fatal(DingTalkError),
}

pub(super) fn is_throttle_code(code: &str) -> bool {
    code.starts_with("Forbidden.AccessDenied.QpsLimit")
}

pub(super) fn new_api_error(v: &Value) -> (String, String) {
    (str_field(v, "code"), str_field(v, "message"))
}

pub(super) fn classify_new(status: u16, v: Value) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Done(v);
    }
    let (code, message) = new_api_error(&v);
    if code == "InvalidAuthentication" || code.starts_with("AuthenticationFailed") || status == 401
    {
        return Outcome::AuthFailed(DingTalkError::Auth { code, message });
    }
    if is_throttle_code(&code) {
        return Outcome::Throttled(DingTalkError::Throttled { code });
    }
    if status == 403 && code.starts_with("Forbidden.AccessDenied.ApiCountLimit") {
        // The monthly quota will not recover within a retry window.
        return Outcome::Fatal(DingTalkError::Throttled { code });
    }
    if status == 403 {
        return Outcome::Fatal(DingTalkError::PermissionDenied { code, message });
    }
    let err = DingTalkError::Api {
        status,
        code,
        message,
    };
    if status >= 500 {
        Outcome::ServerError(err)
    } else {
        Outcome::Fatal(err)
    }
}

pub(super) fn classify_legacy(status: u16, v: Value) -> Outcome {
    if status >= 500 {
        return Outcome::ServerError(DingTalkError::Api {
            status,
            code: String::new(),
            message: str_field(&v, "errmsg"),
        });
    }
    let Some(errcode) = v.get("errcode").and_then(Value::as_i64) else {
        return Outcome::Fatal(DingTalkError::Decode(format!(
            "legacy response (HTTP {status}) without errcode"
        )));
    };
    if errcode == 0 {
        return Outcome::Done(v);
    }
    let errmsg = str_field(&v, "errmsg");
    let sub_code = match v.get("sub_code") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    match errcode {
        88 | 40014 | 42001 | 40001 => Outcome::AuthFailed(DingTalkError::Auth {
            code: if sub_code.is_empty() {
                errcode.to_string()
            } else {
                format!("{errcode}/{sub_code}")
            },
            message: errmsg,
        }),
        90018 | 90002 => Outcome::Throttled(DingTalkError::Throttled {
            code: errcode.to_string(),
        }),
        90020 => Outcome::Fatal(DingTalkError::Throttled {
            code: errcode.to_string(),
        }),
        -1 => Outcome::ServerError(DingTalkError::Legacy { errcode, errmsg }),
        60011 => Outcome::Fatal(DingTalkError::PermissionDenied {
            code: errcode.to_string(),
            message: errmsg,
        }),
        _ if sub_code == "60011" => Outcome::Fatal(DingTalkError::PermissionDenied {
            code: format!("{errcode}/{sub_code}"),
            message: errmsg,
        }),
        _ => Outcome::Fatal(DingTalkError::Legacy { errcode, errmsg }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_api_errors_are_typed() {
        let auth = classify_new(
            400,
            json!({"code":"InvalidAuthentication","message":"不合法的access_token"}),
        );
        assert!(matches!(
            auth,
            Outcome::AuthFailed(DingTalkError::Auth { .. })
        ));
        let qps = classify_new(
            403,
            json!({"code":"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"}),
        );
        assert!(matches!(
            qps,
            Outcome::Throttled(DingTalkError::Throttled { .. })
        ));
        let perm = classify_new(
            403,
            json!({"code":"Forbidden.AccessDenied.AccessTokenPermissionDenied","message":"x"}),
        );
        assert!(matches!(
            perm,
            Outcome::Fatal(DingTalkError::PermissionDenied { .. })
        ));
        assert!(matches!(
            classify_new(500, json!({"code":"systemError"})),
            Outcome::ServerError(_)
        ));
        assert!(matches!(
            classify_new(400, json!({"code":"invalidParameter"})),
            Outcome::Fatal(DingTalkError::Api { status: 400, .. })
        ));
    }

    #[test]
    fn legacy_errors_are_typed() {
        assert!(matches!(
            classify_legacy(200, json!({"errcode":0})),
            Outcome::Done(_)
        ));
        assert!(matches!(
            classify_legacy(200, json!({"errcode":88,"sub_code":"40014"})),
            Outcome::AuthFailed(_)
        ));
        assert!(matches!(
            classify_legacy(200, json!({"errcode":90018})),
            Outcome::Throttled(_)
        ));
        assert!(matches!(
            classify_legacy(200, json!({"errcode":-1})),
            Outcome::ServerError(_)
        ));
        assert!(matches!(
            classify_legacy(200, json!({"errcode":60011})),
            Outcome::Fatal(DingTalkError::PermissionDenied { .. })
        ));
        assert!(matches!(
            classify_legacy(200, json!({"errcode":60121,"errmsg":"找不到该用户"})),
            Outcome::Fatal(DingTalkError::Legacy { errcode: 60121, .. })
        ));
        assert!(matches!(
            classify_legacy(200, json!({"ok":true})),
            Outcome::Fatal(DingTalkError::Decode(_))
        ));
    }

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        let api = |status| DingTalkError::Api {
            status,
            code: String::new(),
            message: String::new(),
        };
        assert!(api(503).is_transient());
        assert!(!api(400).is_transient());
        assert!(DingTalkError::Http("reset".into()).is_transient());
        assert!(DingTalkError::Throttled {
            code: "Forbidden.AccessDenied.QpsLimitForApi".into()
        }
        .is_transient());
        assert!(!DingTalkError::Throttled {
            code: "Forbidden.AccessDenied.ApiCountLimitForOrg".into()
        }
        .is_transient());
        assert!(DingTalkError::Legacy {
            errcode: -1,
            errmsg: String::new()
        }
        .is_transient());
        assert!(!DingTalkError::Legacy {
            errcode: 60121,
            errmsg: String::new()
        }
        .is_transient());
        assert!(!DingTalkError::Auth {
            code: String::new(),
            message: String::new()
        }
        .is_transient());
    }
}
