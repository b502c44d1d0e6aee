//! Chat commands: ONE table ([`COMMANDS`]) declares every command's words (zh-CN and en), argument
//! syntax, description and example; [`parse`] matches against it and [`help_text`] is generated
//! from it, so help can never drift from what the parser accepts.
//!
//! Longer than 600 lines on purpose: the table, the parser and the help generated from it must
//! agree word for word, so they are kept in one file; its unit tests are at the end.
use crate::domain::duration::{self, AccessDuration, DurationError};
use crate::domain::ids::OrderId;
use crate::domain::target::{self, Target, TargetError, PARSE_MAX_TARGETS};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest message we try to read; a chat command is a line or two, anything longer is a paste.
pub const MAX_INPUT_CHARS: usize = 4000;

/// The language a reply is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lang {
    #[default]
    #[serde(rename = "zh-CN", alias = "zh", alias = "zh-cn")]
    ZhCn,
    #[serde(rename = "en", alias = "en-US")]
    En,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read-write login (the `ops` account), full actions.
    Ops,
    /// Read-only login, terminal only.
    Readonly,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Ops, Role::Readonly];

    /// Reads a role word in either language.
    pub fn from_word(word: &str) -> Option<Role> {
        match word.to_ascii_lowercase().as_str() {
            "ops" | "op" | "operator" | "rw" | "read-write" | "readwrite" | "运维" | "读写" => {
                Some(Role::Ops)
            }
            "readonly" | "read-only" | "read_only" | "ro" | "read" | "只读" | "查看" => {
                Some(Role::Readonly)
            }
            _ => None,
        }
    }
    /// Key used in config (`[roles.ops]`) and stored orders.
    pub fn key(self) -> &'static str {
        match self {
            Role::Ops => "ops",
            Role::Readonly => "readonly",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    Help,
    ApplyAccount,
    ApplyHost,
    My,
    Status,
    Cancel,
    Approve,
    Reject,
    Sync,
    WhoHas,
    Revoke,
    Renew,
    History,
}

/// One row of the command table.
#[derive(Debug)]
pub struct CommandSpec {
    pub kind: CommandKind,
    /// English words, canonical first; a space matches any run of spaces.
    pub en: &'static [&'static str],
    /// Chinese words, canonical first.
    pub zh: &'static [&'static str],
    pub args_en: &'static str,
    pub args_zh: &'static str,
    pub about_en: &'static str,
    pub about_zh: &'static str,
    pub example_en: &'static str,
    pub example_zh: &'static str,
    pub admin: bool,
}

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        kind: CommandKind::Help,
        en: &["help", "h", "?"],
        zh: &["帮助", "菜单"],
        args_en: "",
        args_zh: "",
        about_en: "show this help",
        about_zh: "显示本帮助",
        example_en: "/help",
        example_zh: "帮助",
        admin: false,
    },
    CommandSpec {
        kind: CommandKind::ApplyAccount,
        en: &["apply account", "apply-account"],
        zh: &["申请账号", "申请 账号", "申请帐号", "申请 帐号", "申请账户"],
        args_en: "",
        args_zh: "",
        about_en: "get a JumpServer account for me",
        about_zh: "为我开通 JumpServer 账号",
        example_en: "/apply account",
        example_zh: "申请账号",
        admin: false,
    },
    CommandSpec {
        kind: CommandKind::ApplyHost,
        en: &["apply host", "apply hosts", "apply-host", "apply server"],
        zh: &["申请主机", "申请 主机", "申请服务器", "申请 服务器"],
        args_en:
            "<addresses | hostnames | system> [ops|readonly] [duration, e.g. 4h, 3d] [reason: …]",
        args_zh: "<IP | 主机名 | 系统> [运维|只读] [时长，如 4小时、3天] [原因：…]",
        about_en: "ask for access to hosts; I ask for whatever is missing",
        about_zh: "申请主机权限；缺少的信息我会逐项询问",
        example_en: "/apply host 10.1.2.3 ops 3d reason: hotfix",
        example_zh: "申请主机 10.1.2.3 运维 3天 原因：修复线上问题",
        admin: false,
    },
    CommandSpec {
        kind: CommandKind::My,
        en: &["my", "mine", "my access"],
        zh: &["我的权限", "我的"],
        args_en: "",
        args_zh: "",
        about_en: "list my requests and active access",
        about_zh: "查看我的申请和有效权限",
        example_en: "/my",
        example_zh: "我的权限",
        admin: false,
    },
    CommandSpec {
        kind: CommandKind::Status,
        en: &["status"],
        zh: &["状态", "查询"],
        args_en: "<order>",
        args_zh: "<单号>",
        about_en: "show one request",
        about_zh: "查看某个申请的进度",
        example_en: "/status R261122-007",
        example_zh: "状态 R261122-007",
        admin: false,
    },
    CommandSpec {
        kind: CommandKind::Cancel,
        en: &["cancel"],
        zh: &["取消"],
        args_en: "[order]",
        args_zh: "[单号]",
        about_en: "withdraw a pending request; alone, stop the current dialog",
        about_zh: "撤回待审批的申请；不带单号则结束当前对话",
        example_en: "/cancel R261122-007",
        example_zh: "取消 R261122-007",
        admin: false,
    },
    CommandSpec {
        kind: CommandKind::Approve,
        en: &["approve", "agree"],
        zh: &["同意", "批准"],
        args_en: "<order>",
        args_zh: "<单号>",
        about_en: "approve a request you are asked to decide",
        about_zh: "同意一个待你审批的申请",
        example_en: "/approve R261122-007",
        example_zh: "同意 R261122-007",
        admin: false,
    },
    CommandSpec {
        kind: CommandKind::Reject,
        en: &["reject", "refuse", "deny"],
        zh: &["拒绝", "驳回"],
        args_en: "<order> <reason>",
        args_zh: "<单号> <原因>",
        about_en: "reject a request, saying why",
        about_zh: "拒绝一个申请并说明原因",
        example_en: "/reject R261122-007 use the staging host",
        example_zh: "拒绝 R261122-007 请使用测试环境",
        admin: false,
    },
    CommandSpec {
        kind: CommandKind::Sync,
        en: &["sync"],
        zh: &["同步"],
        args_en: "",
        args_zh: "",
        about_en: "refresh the local index of JumpServer users, hosts and permissions",
        about_zh: "从 JumpServer 同步用户、主机和授权到本地索引",
        example_en: "/sync",
        example_zh: "同步",
        admin: true,
    },
    CommandSpec {
        kind: CommandKind::WhoHas,
        en: &["who-has", "whohas", "who has", "who_has"],
        zh: &["谁有权限", "谁有"],
        args_en: "<host | user> [all]",
        args_zh: "<主机 | 用户> [全部]",
        about_en: "list who has access to a host, or what a user can reach",
        about_zh: "查看某主机的授权人，或某用户的权限",
        example_en: "/who-has 10.1.2.3",
        example_zh: "谁有权限 10.1.2.3",
        admin: true,
    },
    CommandSpec {
        kind: CommandKind::Revoke,
        en: &["revoke"],
        zh: &["撤销", "回收"],
        args_en: "<order>",
        args_zh: "<单号>",
        about_en: "end an active grant now",
        about_zh: "立即收回一个生效中的授权",
        example_en: "/revoke R261122-007",
        example_zh: "撤销 R261122-007",
        admin: true,
    },
    CommandSpec {
        kind: CommandKind::Renew,
        en: &["renew", "extend"],
        zh: &["续期", "延期"],
        args_en: "<order> [duration]",
        args_zh: "<单号> [时长]",
        about_en: "extend an active grant",
        about_zh: "延长一个生效中的授权",
        example_en: "/renew R261122-007 1d",
        example_zh: "续期 R261122-007 1天",
        admin: true,
    },
    CommandSpec {
        kind: CommandKind::History,
        en: &["history", "audit"],
        zh: &["历史", "操作记录", "审计记录", "审计"],
        args_en: "<host | user | order> [page]",
        args_zh: "<主机 | 用户 | 单号> [页码]",
        about_en: "the audit trail of a host, a user or an order, newest first",
        about_zh: "查看某主机、用户或申请单的操作记录（最新在前）",
        example_en: "/history 10.1.2.3",
        example_zh: "历史 10.1.2.3",
        admin: true,
    },
];

/// The spec row for a kind (every kind has exactly one row).
pub fn spec(kind: CommandKind) -> &'static CommandSpec {
    COMMANDS
        .iter()
        .find(|s| s.kind == kind)
        .unwrap_or(&COMMANDS[0])
}

/// What `/apply host` collected; missing parts are asked for by the dialog.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyDraft {
    pub targets: Vec<Target>,
    pub role: Option<Role>,
    pub duration: Option<AccessDuration>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    ApplyAccount,
    ApplyHost(ApplyDraft),
    My,
    Status(OrderId),
    /// `None`: end the open dialog.
    Cancel(Option<OrderId>),
    Approve(OrderId),
    Reject {
        order: OrderId,
        reason: String,
    },
    Sync,
    /// `all`: also list users who cannot connect now (disabled in JumpServer), marked.
    WhoHas {
        subject: String,
        all: bool,
    },
    Revoke(OrderId),
    Renew {
        order: OrderId,
        duration: Option<AccessDuration>,
    },
    /// `page` counts from 1.
    History {
        subject: String,
        page: usize,
    },
}

impl Command {
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Help => CommandKind::Help,
            Command::ApplyAccount => CommandKind::ApplyAccount,
            Command::ApplyHost(_) => CommandKind::ApplyHost,
            Command::My => CommandKind::My,
            Command::Status(_) => CommandKind::Status,
            Command::Cancel(_) => CommandKind::Cancel,
            Command::Approve(_) => CommandKind::Approve,
            Command::Reject { .. } => CommandKind::Reject,
            Command::Sync => CommandKind::Sync,
            Command::WhoHas { .. } => CommandKind::WhoHas,
            Command::Revoke(_) => CommandKind::Revoke,
            Command::Renew { .. } => CommandKind::Renew,
            Command::History { .. } => CommandKind::History,
        }
    }
    /// Admin-only commands; the caller checks `Policy::is_admin` before running them.
    pub fn is_admin_only(&self) -> bool {
        spec(self.kind()).admin
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CommandError {
    #[error("empty message")]
    Empty,
    #[error("message longer than {max} characters")]
    TooLong { max: usize },
    #[error("unknown command `{word}`")]
    Unknown {
        word: String,
        suggestion: Option<CommandKind>,
    },
    #[error("apply for what: account or host?")]
    ApplyWhat,
    #[error("{kind:?} needs an order id")]
    MissingOrderId { kind: CommandKind },
    #[error("`{given}` is not an order id")]
    BadOrderId { kind: CommandKind, given: String },
    #[error("{kind:?} needs a reason")]
    MissingReason { kind: CommandKind },
    #[error("{kind:?} needs a host or user")]
    MissingSubject { kind: CommandKind },
    #[error("`{given}` is not a page number")]
    BadPage { kind: CommandKind, given: String },
    #[error("two different roles given")]
    TwoRoles,
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Duration(#[from] DurationError),
}

impl CommandError {
    /// The command the error is about, so the reply can show that command's example.
    pub fn kind(&self) -> Option<CommandKind> {
        match self {
            CommandError::MissingOrderId { kind }
            | CommandError::BadOrderId { kind, .. }
            | CommandError::MissingReason { kind }
            | CommandError::MissingSubject { kind }
            | CommandError::BadPage { kind, .. } => Some(*kind),
            CommandError::Unknown { suggestion, .. } => *suggestion,
            CommandError::ApplyWhat
            | CommandError::TwoRoles
            | CommandError::Target(_)
            | CommandError::Duration(_) => Some(CommandKind::ApplyHost),
            CommandError::Empty | CommandError::TooLong { .. } => None,
        }
    }
}

/// Folds full-width ASCII (`／ａｐｐｌｙ`, `：`, `，`) and the ideographic space to plain ASCII, drops
/// zero-width characters, trims, and removes a leading `@mention` left by group chats.
pub fn normalize(text: &str) -> String {
    let folded: String = text
        .chars()
        .filter(|c| !matches!(c, '\u{200B}'..='\u{200D}' | '\u{FEFF}' | '\u{2060}'))
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' | '\u{00A0}' => ' ',
            _ => c,
        })
        .collect();
    let mut s = folded.trim();
    while let Some(rest) = s.strip_prefix('@') {
        s = rest
            .split_once(char::is_whitespace)
            .map_or("", |(_, r)| r)
            .trim_start();
    }
    s.to_string()
}

/// Parses one chat message into a command.
pub fn parse(text: &str) -> Result<Command, CommandError> {
    if text.chars().count() > MAX_INPUT_CHARS {
        return Err(CommandError::TooLong {
            max: MAX_INPUT_CHARS,
        });
    }
    let norm = normalize(text);
    let body = norm.trim_start_matches('/').trim_start();
    if body.is_empty() {
        return Err(CommandError::Empty);
    }
    if let Some((kind, args)) = match_command(body) {
        return parse_args(kind, args.trim());
    }
    // Bare `apply` / `申请`: host if an address follows, else ask which.
    for word in ["apply", "申请"] {
        if let Some(rest) = strip_word(body, word) {
            let first = rest.split_whitespace().next().unwrap_or("");
            return match target::classify(first.split(',').next().unwrap_or("")) {
                Ok(Target::Address(_)) => parse_args(CommandKind::ApplyHost, rest.trim()),
                _ => Err(CommandError::ApplyWhat),
            };
        }
    }
    let word: String = body
        .split_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .take(32)
        .collect();
    Err(CommandError::Unknown {
        suggestion: suggest(body),
        word,
    })
}

/// True when the whole message is just one of `kind`'s words (`取消`, `/cancel`, `帮助`): how an
/// open dialog tells "leave" or "help" apart from an answer that merely starts with such a word.
pub fn is_bare_word(text: &str, kind: CommandKind) -> bool {
    let norm = normalize(text);
    let body = norm.trim_start_matches('/').trim();
    let s = spec(kind);
    s.en.iter()
        .chain(s.zh.iter())
        .any(|w| strip_word(body, w).is_some_and(|rest| rest.trim().is_empty()))
}

/// All (pattern, kind) pairs, longest pattern first so `申请主机` wins over `申请`.
fn patterns() -> &'static [(&'static str, CommandKind)] {
    static PATTERNS: std::sync::OnceLock<Vec<(&'static str, CommandKind)>> =
        std::sync::OnceLock::new();
    PATTERNS.get_or_init(|| {
        let mut v: Vec<_> = COMMANDS
            .iter()
            .flat_map(|s| s.en.iter().chain(s.zh.iter()).map(move |w| (*w, s.kind)))
            .collect();
        v.sort_by_key(|(w, _)| std::cmp::Reverse(w.chars().count()));
        v
    })
}

fn match_command(body: &str) -> Option<(CommandKind, &str)> {
    patterns()
        .iter()
        .find_map(|(p, kind)| strip_word(body, p).map(|rest| (*kind, rest)))
}

/// Strips `pattern` from the start of `text` (ASCII case-insensitive; a space in the pattern
/// matches one or more spaces). An ASCII pattern must end at a word boundary (`/my` is not
/// `/mystery`); a Chinese one need not (`取消A2026…`).
fn strip_word<'a>(text: &'a str, pattern: &str) -> Option<&'a str> {
    let mut rest = text;
    for pc in pattern.chars() {
        if pc == ' ' {
            let trimmed = rest.trim_start();
            if trimmed.len() == rest.len() {
                return None;
            }
            rest = trimmed;
            continue;
        }
        let mut it = rest.chars();
        let tc = it.next()?;
        if !tc.eq_ignore_ascii_case(&pc) {
            return None;
        }
        rest = it.as_str();
    }
    let last_ascii = pattern.chars().last().is_some_and(|c| c.is_ascii());
    if last_ascii {
        if let Some(next) = rest.chars().next() {
            if next.is_alphanumeric() || next == '-' || next == '_' {
                return None;
            }
        }
    }
    Some(rest)
}

fn parse_args(kind: CommandKind, args: &str) -> Result<Command, CommandError> {
    let (first, rest) = split_first(args);
    match kind {
        CommandKind::Help => Ok(Command::Help),
        CommandKind::ApplyAccount => Ok(Command::ApplyAccount),
        CommandKind::My => Ok(Command::My),
        CommandKind::Sync => Ok(Command::Sync),
        CommandKind::ApplyHost => parse_apply_host(args).map(Command::ApplyHost),
        CommandKind::Status => order_id(kind, first).map(Command::Status),
        CommandKind::Approve => order_id(kind, first).map(Command::Approve),
        CommandKind::Revoke => order_id(kind, first).map(Command::Revoke),
        CommandKind::Cancel => {
            if first.is_empty() {
                Ok(Command::Cancel(None))
            } else {
                order_id(kind, first).map(|o| Command::Cancel(Some(o)))
            }
        }
        CommandKind::Reject => {
            let order = order_id(kind, first)?;
            let reason = strip_reason_prefix(rest).unwrap_or(rest).trim();
            if reason.is_empty() {
                return Err(CommandError::MissingReason { kind });
            }
            Ok(Command::Reject {
                order,
                reason: reason.to_string(),
            })
        }
        CommandKind::Renew => {
            let order = order_id(kind, first)?;
            let duration = if rest.trim().is_empty() {
                None
            } else {
                Some(duration::parse(rest)?)
            };
            Ok(Command::Renew { order, duration })
        }
        CommandKind::WhoHas => {
            if args.is_empty() {
                Err(CommandError::MissingSubject { kind })
            } else {
                // `全部` / `all` after the subject also lists who cannot connect now.
                let all = rest.split_whitespace().any(|w| {
                    matches!(w.to_lowercase().as_str(), "all" | "--all" | "全部" | "所有")
                });
                // An address is asked about in its canonical form, the one orders record
                // (`::ffff:10.1.2.3` is 10.1.2.3); anything else is a user or host name as typed.
                let subject = match target::classify(first) {
                    Ok(t @ Target::Address(_)) => t.to_string(),
                    _ => first.to_string(),
                };
                Ok(Command::WhoHas { subject, all })
            }
        }
        CommandKind::History => {
            if args.is_empty() {
                return Err(CommandError::MissingSubject { kind });
            }
            let subject = match target::classify(first) {
                Ok(t @ Target::Address(_)) => t.to_string(),
                _ => first.to_string(),
            };
            let page = history_page(rest).ok_or_else(|| CommandError::BadPage {
                kind,
                given: rest.chars().take(32).collect(),
            })?;
            Ok(Command::History { subject, page })
        }
    }
}

/// The page of `/history`: nothing (1), `2`, `p2`, `page 2`, `第2页`, `第 2 页`; never 0.
fn history_page(rest: &str) -> Option<usize> {
    let t: String = rest.split_whitespace().collect::<Vec<_>>().join("");
    if t.is_empty() {
        return Some(1);
    }
    let lower = t.to_lowercase();
    let digits = lower
        .strip_prefix("page")
        .or_else(|| lower.strip_prefix('p'))
        .or_else(|| lower.strip_prefix('第').and_then(|x| x.strip_suffix('页')))
        .unwrap_or(&lower);
    digits
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=100_000).contains(n))
}

fn split_first(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.split_once(char::is_whitespace) {
        Some((a, b)) => (a, b.trim_start()),
        None => (s, ""),
    }
}

/// Order ids are short ASCII tokens (`R261122-007`); typed in any case, stored upper-case.
fn order_id(kind: CommandKind, token: &str) -> Result<OrderId, CommandError> {
    let token = token
        .trim_matches(|c: char| matches!(c, '#' | '<' | '>' | '[' | ']' | '"' | '\'' | '。' | '.'));
    if token.is_empty() {
        return Err(CommandError::MissingOrderId { kind });
    }
    let ok = token.len() <= 64
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && token.bytes().any(|b| b.is_ascii_digit());
    if !ok {
        return Err(CommandError::BadOrderId {
            kind,
            given: token.chars().take(64).collect(),
        });
    }
    Ok(OrderId::new(token.to_ascii_uppercase()))
}

/// `reason: …`, `原因: …`, `理由 …`: returns the text after the introducer.
fn strip_reason_prefix(s: &str) -> Option<&str> {
    let s = s.trim_start();
    for word in ["reason", "原因", "理由", "说明", "备注"] {
        let Some(rest) = strip_ci(s, word) else {
            continue;
        };
        let after = rest.trim_start();
        if let Some(r) = after.strip_prefix(':').or_else(|| after.strip_prefix('=')) {
            return Some(r.trim_start());
        }
        if rest.is_empty() || rest.starts_with(char::is_whitespace) {
            return Some(after);
        }
    }
    None
}

fn strip_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// Reads `/apply host` arguments: targets first, then role and duration in any order, then the
/// reason (introduced by `reason:`/`原因：`, or simply whatever text follows role/duration).
pub fn parse_apply_host(args: &str) -> Result<ApplyDraft, CommandError> {
    let mut draft = ApplyDraft::default();
    let mut target_tokens: Vec<&str> = Vec::new();
    let mut rest = args.trim();
    let mut past_targets = false;
    while !rest.is_empty() {
        if let Some(reason) = strip_reason_prefix(rest) {
            set_reason(&mut draft, reason);
            break;
        }
        let (token, after) = split_first(rest);
        if let Some(role) = Role::from_word(token) {
            if draft.role.is_some_and(|r| r != role) {
                return Err(CommandError::TwoRoles);
            }
            draft.role = Some(role);
            past_targets = true;
        } else if let Some(d) = duration_token(token)? {
            draft.duration = Some(d);
            past_targets = true;
        } else if past_targets {
            set_reason(&mut draft, rest);
            break;
        } else {
            target_tokens.extend(target::split_list(token));
        }
        rest = after;
    }
    if !target_tokens.is_empty() {
        draft.targets = target::parse_list(target_tokens, PARSE_MAX_TARGETS)?;
    }
    Ok(draft)
}

fn set_reason(draft: &mut ApplyDraft, text: &str) {
    let t = text.trim();
    if !t.is_empty() {
        draft.reason = Some(t.to_string());
    }
}

/// `Ok(Some)` for a duration, `Ok(None)` for a token that is not meant as one, `Err` for a token
/// that clearly is a duration but a wrong one (`0h`, `400d`, a bare `3`).
fn duration_token(token: &str) -> Result<Option<AccessDuration>, DurationError> {
    match duration::parse(token) {
        Ok(d) => Ok(Some(d)),
        Err(
            e @ (DurationError::Zero | DurationError::Negative | DurationError::TooLong { .. }),
        ) => Err(e),
        Err(e @ DurationError::MissingUnit { .. }) if token.bytes().all(|b| b.is_ascii_digit()) => {
            Err(e)
        }
        Err(_) => Ok(None),
    }
}

/// "Did you mean": the closest command word within a small edit distance of how the text starts.
pub fn suggest(body: &str) -> Option<CommandKind> {
    let lower = body.to_lowercase();
    let first_word: Vec<char> = lower
        .split_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .take(32)
        .collect();
    let mut best: Option<(usize, CommandKind)> = None;
    for &(p, kind) in patterns() {
        let pat: Vec<char> = p.chars().filter(|c| *c != ' ').collect();
        let (cand, limit) = if p.is_ascii() {
            let l = if pat.len() <= 4 { 1 } else { 2 };
            (first_word.clone(), l)
        } else {
            let c: Vec<char> = lower
                .chars()
                .filter(|c| !c.is_whitespace())
                .take(pat.len())
                .collect();
            (c, 1)
        };
        if pat.len() < 2 || cand.is_empty() {
            continue;
        }
        let d = osa_distance(&cand, &pat);
        if d > 0 && d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, kind));
        }
    }
    best.map(|(_, k)| k)
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions: `hepl` → `help`).
fn osa_distance(a: &[char], b: &[char]) -> usize {
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The words a user types for a command in `lang`, e.g. `申请主机` or `/apply host`.
pub fn display_word(kind: CommandKind, lang: Lang) -> String {
    let s = spec(kind);
    match lang {
        Lang::ZhCn => s.zh.first().map(|w| w.to_string()).unwrap_or_default(),
        Lang::En => format!("/{}", s.en.first().copied().unwrap_or_default()),
    }
}

/// Help generated from [`COMMANDS`]; admin commands only for admins.
pub fn help_text(lang: Lang, is_admin: bool) -> String {
    let mut out = String::new();
    let line = |s: &CommandSpec| -> String {
        let (word, alias, args, about) = match lang {
            Lang::ZhCn => (
                s.zh.first().copied().unwrap_or_default().to_string(),
                format!("/{}", s.en.first().copied().unwrap_or_default()),
                s.args_zh,
                s.about_zh,
            ),
            Lang::En => (
                format!("/{}", s.en.first().copied().unwrap_or_default()),
                s.zh.first().copied().unwrap_or_default().to_string(),
                s.args_en,
                s.about_en,
            ),
        };
        match lang {
            // The full-width bracket already separates the arguments visually.
            Lang::ZhCn => format!("• {word}（{alias}）{args} — {about}\n"),
            Lang::En if args.is_empty() => format!("• {word} ({alias}) — {about}\n"),
            Lang::En => format!("• {word} ({alias}) {args} — {about}\n"),
        }
    };
    out.push_str(match lang {
        Lang::ZhCn => "可用命令（斜杠可省略，中英文均可）：\n",
        Lang::En => "Commands (the slash is optional; Chinese words work too):\n",
    });
    for s in COMMANDS.iter().filter(|s| !s.admin) {
        out.push_str(&line(s));
    }
    if is_admin {
        out.push_str(match lang {
            Lang::ZhCn => "管理员命令：\n",
            Lang::En => "Admin commands:\n",
        });
        for s in COMMANDS.iter().filter(|s| s.admin) {
            out.push_str(&line(s));
        }
    }
    let ex = spec(CommandKind::ApplyHost);
    out.push_str(&match lang {
        Lang::ZhCn => format!("示例：{}", ex.example_zh),
        Lang::En => format!("Example: {}", ex.example_en),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_words_are_unique() {
        let mut words = std::collections::BTreeSet::new();
        for s in COMMANDS {
            assert_eq!(COMMANDS.iter().filter(|o| o.kind == s.kind).count(), 1);
            for w in s.en.iter().chain(s.zh.iter()) {
                assert!(words.insert(w.to_lowercase()), "duplicate word {w}");
            }
        }
    }

    #[test]
    fn every_canonical_word_parses_back_to_its_kind() {
        for s in COMMANDS {
            for w in s.en.iter().chain(s.zh.iter()) {
                // `/history` takes a page number after its subject, not a duration.
                let args = match s.kind {
                    CommandKind::History => "A1-2 2",
                    _ => "A1-2 1d",
                };
                let got = parse(&format!("{w} {args}")).map(|c| c.kind());
                assert_eq!(got.ok(), Some(s.kind), "{w}");
            }
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("hepl"), Some(CommandKind::Help));
        assert_eq!(suggest("stauts X"), Some(CommandKind::Status));
        assert_eq!(suggest("申清主机 10.1.2.3"), Some(CommandKind::ApplyHost));
        assert_eq!(suggest("hello there"), None);
    }

    #[test]
    fn word_boundaries() {
        assert!(matches!(
            parse("mystery"),
            Err(CommandError::Unknown { .. })
        ));
        assert_eq!(parse("取消"), Ok(Command::Cancel(None)));
        assert_eq!(
            parse("取消A1"),
            Ok(Command::Cancel(Some(OrderId::new("A1"))))
        );
    }
    #[test]
    fn who_has_asks_about_an_address_in_its_canonical_form() {
        for t in [
            "/who-has ::ffff:10.1.2.3",
            "谁有权限 010.1.2.3。",
            "谁有权限 １０．１．２．３",
        ] {
            assert_eq!(
                parse(t),
                Ok(Command::WhoHas {
                    subject: "10.1.2.3".into(),
                    all: false
                }),
                "{t}"
            );
        }
        // A user or host name is looked up as typed (JumpServer names are case-sensitive).
        assert_eq!(
            parse("/who-has Zhang.San"),
            Ok(Command::WhoHas {
                subject: "Zhang.San".into(),
                all: false
            })
        );
    }
}
