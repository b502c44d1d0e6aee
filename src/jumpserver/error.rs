//! `JmsError`: every way a JumpServer call can fail, typed, plus the sentence a chat user reads
//! (zh-CN by default, English available). 400 bodies are turned into field problems keyed on
//! field names and error codes, never on localized text alone (§1.3, pitfall 11).
use serde_json::Value;
use std::time::Duration;

/// One validation complaint from a 400 body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    /// Field name, `non_field_errors`, or `detail` for JMSException bodies.
    pub field: String,
    pub message: String,
}

/// A sentence in both languages the bot speaks; `Display` gives the English one (logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Words {
    pub en: String,
    pub zh: String,
}

impl Words {
    pub fn new(en: impl Into<String>, zh: impl Into<String>) -> Self {
        Self {
            en: en.into(),
            zh: zh.into(),
        }
    }

    pub fn get(&self, english: bool) -> &str {
        if english {
            &self.en
        } else {
            &self.zh
        }
    }
}

impl std::fmt::Display for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.en)
    }
}

/// What a rejected write means, when we can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    UsernameTaken,
    EmailTaken,
    /// A `name` that must be unique per org (host, permission).
    NameTaken,
    /// Sibling node with the same value.
    NodeExists,
    /// Writing while the root org is selected.
    WrongOrg,
    InvalidEmail,
    /// Anything else: shown as the server's field messages.
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum JmsError {
    #[error("JumpServer rejected the request: {}", render_problems(.problems))]
    Rejected {
        status: u16,
        kind: Problem,
        problems: Vec<FieldProblem>,
    },
    #[error("JumpServer refused our credentials: {0}")]
    Unauthorized(String),
    #[error("JumpServer login failed: {0}")]
    Login(String),
    #[error("the bot account lacks permission: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(Words),
    #[error("JumpServer is throttling us (retry after {retry_after:?})")]
    Throttled { retry_after: Option<Duration> },
    #[error("JumpServer server error (HTTP {status})")]
    Server { status: u16 },
    #[error("cannot reach JumpServer: {0}")]
    Transport(String),
    #[error("unexpected JumpServer answer: {0}")]
    Decode(String),
    #[error("{feature} needs JumpServer v3 or later; this server is {version}")]
    Unsupported {
        feature: &'static str,
        version: String,
    },
    #[error("invalid request: {0}")]
    Invalid(Words),
    /// An object the bot would have to modify does not carry its ownership marker (or a name
    /// it needs is held by one): left untouched, an administrator must look.
    #[error("not ours to change: {0}")]
    Conflict(Words),
    #[error("JumpServer config: {0}")]
    Config(String),
}

fn render_problems(p: &[FieldProblem]) -> String {
    p.iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl JmsError {
    /// Builds the error for a non-2xx answer.
    pub(crate) fn from_status(status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let v: Option<Value> = serde_json::from_slice(body).ok();
        let detail = v
            .as_ref()
            .and_then(|v| {
                v.get("detail")
                    .or_else(|| v.get("msg"))
                    .or_else(|| v.get("error"))
            })
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match status {
            400 | 409 | 422 => {
                let problems = v.as_ref().map(field_problems).unwrap_or_default();
                let kind = classify(&problems);
                JmsError::Rejected {
                    status,
                    kind,
                    problems,
                }
            }
            401 => JmsError::Unauthorized(detail),
            403 => JmsError::Forbidden(detail),
            404 => JmsError::NotFound(Words::new(
                if detail.is_empty() {
                    "object does not exist".to_owned()
                } else {
                    detail
                },
                "JumpServer 中找不到该对象",
            )),
            429 => JmsError::Throttled { retry_after },
            s => JmsError::Server { status: s },
        }
    }

    /// Whether retrying the same call may succeed: throttling, transport failures and every
    /// 5xx (a worker timeout or a lost database connection answers 500 too; the deterministic
    /// 500s of §2.1/§4.4 come from requests this client never builds). Only idempotent calls
    /// are retried, so a repeated 500 costs a few calls, never a duplicate.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            JmsError::Throttled { .. }
                | JmsError::Transport(_)
                | JmsError::Server { status: 500..=599 }
        )
    }

    /// A sentence for the chat user; `english = false` gives zh-CN.
    pub fn user_message(&self, english: bool) -> String {
        let t = |zh: &str, en: &str| {
            if english {
                en.to_owned()
            } else {
                zh.to_owned()
            }
        };
        match self {
            JmsError::Rejected { kind, problems, .. } => match kind {
                Problem::UsernameTaken => t("用户名已存在", "username already exists"),
                Problem::EmailTaken => t(
                    "邮箱已被其他用户使用",
                    "e-mail already used by another user",
                ),
                Problem::NameTaken => t("名称已存在", "name already exists"),
                Problem::NodeExists => t(
                    "同级节点名称已存在",
                    "a node with that name already exists at that level",
                ),
                Problem::WrongOrg => t(
                    "不能在全局组织中创建对象，请配置具体组织",
                    "cannot create objects in the root org; configure a real org",
                ),
                Problem::InvalidEmail => t("邮箱格式不正确", "invalid e-mail address"),
                Problem::Other => {
                    let d = render_problems(problems);
                    if english {
                        format!("JumpServer rejected the request: {d}")
                    } else {
                        format!("JumpServer 拒绝了请求：{d}")
                    }
                }
            },
            JmsError::Unauthorized(_) => t(
                "机器人的 JumpServer 凭据无效",
                "the bot's JumpServer credentials are not accepted",
            ),
            JmsError::Login(m) => {
                if english {
                    format!("JumpServer login failed: {m}")
                } else {
                    format!("JumpServer 登录失败：{m}")
                }
            }
            JmsError::Forbidden(_) => t(
                "机器人账号在 JumpServer 中没有该权限",
                "the bot account lacks that permission in JumpServer",
            ),
            JmsError::NotFound(w) | JmsError::Invalid(w) | JmsError::Conflict(w) => {
                w.get(english).to_owned()
            }
            JmsError::Throttled { .. } => t(
                "JumpServer 请求过于频繁，请稍后再试",
                "JumpServer is busy (rate limited); try again shortly",
            ),
            JmsError::Server { status } => {
                if english {
                    format!("JumpServer internal error (HTTP {status})")
                } else {
                    format!("JumpServer 内部错误（HTTP {status}）")
                }
            }
            JmsError::Transport(_) => t("无法连接 JumpServer", "cannot reach JumpServer"),
            JmsError::Decode(_) => t(
                "JumpServer 返回了无法识别的数据",
                "JumpServer answered something unexpected",
            ),
            JmsError::Unsupported { feature, version } => {
                if english {
                    format!("{feature} is not supported by JumpServer {version}")
                } else {
                    let zh = match *feature {
                        "grant" => "授权",
                        "listing hosts" => "列出主机",
                        "creating hosts" => "创建主机",
                        "accounts" => "账号",
                        "account-based permissions" => "基于账号的授权",
                        other => other,
                    };
                    format!("JumpServer {version} 不支持{zh}（需要 v3 或更高版本）")
                }
            }
            JmsError::Config(m) => m.clone(),
        }
    }
}

/// Flattens DRF error bodies: `{"f": ["m"]}`, `{"f": {"f": "m"}}`, `{"detail": "m"}`, `["m"]`,
/// and bulk lists of those.
pub(crate) fn field_problems(v: &Value) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    collect(v, None, &mut out);
    out
}

fn collect(v: &Value, field: Option<&str>, out: &mut Vec<FieldProblem>) {
    match v {
        Value::String(s) => out.push(FieldProblem {
            field: field.unwrap_or("non_field_errors").to_owned(),
            message: s.clone(),
        }),
        Value::Array(items) => items.iter().for_each(|i| collect(i, field, out)),
        Value::Object(map) => {
            if let Some(Value::String(d)) = map.get("detail") {
                out.push(FieldProblem {
                    field: field.unwrap_or("detail").to_owned(),
                    message: d.clone(),
                });
                return;
            }
            for (k, val) in map {
                if k == "code" {
                    continue;
                }
                // Nested `{"platform": {"platform": "…"}}` keeps the outer name.
                collect(val, Some(field.unwrap_or(k)), out);
            }
        }
        _ => {}
    }
}

fn classify(problems: &[FieldProblem]) -> Problem {
    let has = |field: &str, words: &[&str]| {
        problems.iter().any(|p| {
            p.field == field && {
                let m = p.message.to_ascii_lowercase();
                words.iter().any(|w| m.contains(w))
            }
        })
    };
    if has("username", &["exist", "unique"]) {
        Problem::UsernameTaken
    } else if has("email", &["exist", "unique"]) {
        Problem::EmailTaken
    } else if has("email", &["valid"]) {
        Problem::InvalidEmail
    } else if has("name", &["exist", "unique"]) {
        Problem::NameTaken
    } else if has("detail", &["same level"]) || has("value", &["same level"]) {
        Problem::NodeExists
    } else if has("non_field_errors", &["save in a org"]) {
        Problem::WrongOrg
    } else {
        Problem::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_live_bodies() {
        let e = JmsError::from_status(
            400,
            br#"{"username": ["User with this Username already exists."]}"#,
            None,
        );
        assert_eq!(e.user_message(true), "username already exists");
        let e = JmsError::from_status(
            400,
            br#"{"detail": "The same level node name cannot be the same", "code": "error"}"#,
            None,
        );
        assert!(matches!(
            e,
            JmsError::Rejected {
                kind: Problem::NodeExists,
                ..
            }
        ));
        let e = JmsError::from_status(400, br#"["Please save in a org"]"#, None);
        assert!(matches!(
            e,
            JmsError::Rejected {
                kind: Problem::WrongOrg,
                ..
            }
        ));
        let e = JmsError::from_status(400, br#"{"actions": ["Invalid choice: read"]}"#, None);
        assert!(e
            .user_message(true)
            .contains("actions: Invalid choice: read"));
        let e = JmsError::from_status(403, br#"{"detail": "You do not have permission to perform this action.", "code": "permission_denied"}"#, None);
        assert!(matches!(e, JmsError::Forbidden(_)));
        let e = JmsError::from_status(
            404,
            br#"{"detail": "User object does not exist.", "code": "object_does_not_exist"}"#,
            None,
        );
        assert!(matches!(e, JmsError::NotFound(_)));
        let e = JmsError::from_status(429, b"{}", Some(Duration::from_secs(32)));
        assert!(e.is_transient());
        let e = JmsError::from_status(503, b"", None);
        assert!(e.is_transient());
        let e = JmsError::from_status(500, b"<html>", None);
        assert!(matches!(e, JmsError::Server { status: 500 }));
        assert!(e.is_transient());
        assert!(!JmsError::from_status(404, b"", None).is_transient());
    }
}
