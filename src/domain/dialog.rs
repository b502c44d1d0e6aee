//! The multi-turn "apply for host access" dialog as a pure state machine. The caller keeps the
//! serialisable [`DialogState`] (in sled) between messages and calls [`step`] with each new
//! message and the current time; the dialog asks for ONE missing thing at a time
//! (targets → role → duration → reason when required), re-asks with the reason when an answer is
//! not usable, ends on `取消`/`cancel`, and is forgotten after the configured idle time.
use crate::domain::command::{self, ApplyDraft, Command, CommandError, CommandKind};
use crate::domain::duration::{self, AccessDuration, DurationError};
use crate::domain::policy::{AccessRequest, Policy, PolicyViolation};
use crate::domain::target::{self, TargetError};
use serde::{Deserialize, Serialize};

/// Longest reason we keep; it is shown on approval cards (DingTalk card values are ≤ 1 KB).
pub const MAX_REASON_CHARS: usize = 300;

/// The complete request the dialog hands over when nothing is missing.
pub type CompleteRequest = AccessRequest;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Targets,
    Role,
    Duration,
    Reason,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialogState {
    pub draft: ApplyDraft,
    pub asking: Field,
    pub started_ms: i64,
    /// Last message in this dialog; idle expiry counts from here.
    pub last_activity_ms: i64,
}

/// Why an answer was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Target(TargetError),
    Duration(DurationError),
    NotARole(String),
    ReasonEmpty,
    ReasonTooLong {
        max: usize,
    },
    Policy(PolicyViolation),
    /// Any other unreadable answer (e.g. two roles at once).
    Input(CommandError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Ask for `field`; `problem` says why the previous answer was refused. `max_duration` is
    /// the applicable ceiling when asking for a duration, so the question can mention it.
    Ask {
        field: Field,
        problem: Option<Problem>,
        max_duration: Option<AccessDuration>,
    },
    /// The dialog was ended by the user.
    Cancelled,
    /// `取消` with no dialog open.
    NothingToCancel,
    /// Everything collected; `DialogStep::done` carries the request.
    Complete,
    /// Not a dialog matter: the caller runs this command (any open dialog is kept).
    Command(Command),
    /// The message could not be read as a command.
    Error(CommandError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialogStep {
    pub new_state: Option<DialogState>,
    pub reply: Reply,
    pub done: Option<CompleteRequest>,
    /// A previous dialog was dropped for idleness before this message was handled.
    pub dropped_idle: bool,
}

/// Has this dialog been idle for longer than the policy allows?
pub fn is_idle(state: &DialogState, policy: &Policy, now_ms: i64) -> bool {
    now_ms.saturating_sub(state.last_activity_ms) >= policy.dialog_idle_ms
}

/// Handles one message.
pub fn step(state: Option<DialogState>, input: &str, policy: &Policy, now_ms: i64) -> DialogStep {
    let mut dropped_idle = false;
    let state = match state {
        Some(s) if is_idle(&s, policy, now_ms) => {
            dropped_idle = true;
            None
        }
        s => s,
    };
    let mut out = match state {
        None => start(input, policy, now_ms),
        Some(s) => resume(s, input, policy, now_ms),
    };
    out.dropped_idle = dropped_idle;
    out
}

/// Starts (or restarts) the dialog from an already-filled draft, e.g. a submitted request form
/// card: the same checks and the same "ask for what is missing" as a typed `/apply host`.
pub fn from_draft(draft: ApplyDraft, policy: &Policy, now_ms: i64) -> DialogStep {
    advance(draft, now_ms, now_ms, policy)
}

fn plain(reply: Reply, new_state: Option<DialogState>) -> DialogStep {
    DialogStep {
        new_state,
        reply,
        done: None,
        dropped_idle: false,
    }
}

fn start(input: &str, policy: &Policy, now_ms: i64) -> DialogStep {
    match command::parse(input) {
        Ok(Command::ApplyHost(draft)) => advance(draft, now_ms, now_ms, policy),
        Ok(Command::Cancel(None)) => plain(Reply::NothingToCancel, None),
        Ok(cmd) => plain(Reply::Command(cmd), None),
        Err(e) => plain(Reply::Error(e), None),
    }
}

fn resume(mut st: DialogState, input: &str, policy: &Policy, now_ms: i64) -> DialogStep {
    if command::is_bare_word(input, CommandKind::Cancel) {
        return plain(Reply::Cancelled, None);
    }
    let text = command::normalize(input);
    // Inside a dialog only slash commands, a bare user command word (`帮助`, `我的权限`) and
    // commands about an order are commands; anything else is the answer, so a reason like
    // "同步数据库" is not taken for the admin command `同步`.
    if text.starts_with('/') || is_bare_user_command(&text) || refers_to_an_order(&text) {
        st.last_activity_ms = now_ms;
        return match command::parse(&text) {
            Ok(Command::ApplyHost(draft)) => advance(draft, now_ms, now_ms, policy),
            Ok(cmd) => plain(Reply::Command(cmd), Some(st)),
            Err(e) => plain(Reply::Error(e), Some(st)),
        };
    }
    let mut draft = st.draft.clone();
    let parsed = command::parse_apply_host(&text);
    let problem = match (st.asking, parsed) {
        (Field::Targets, Ok(d)) if d.targets.is_empty() => {
            Some(Problem::Target(TargetError::Empty))
        }
        (Field::Targets, Ok(d)) => {
            draft.targets = d.targets.clone();
            merge_later_fields(&mut draft, d);
            None
        }
        // Role and duration answers may carry the later fields too (`运维 3天 原因：…`).
        (Field::Role, Ok(d)) if d.role.is_some() => {
            merge_later_fields(&mut draft, d);
            None
        }
        (Field::Role, _) => Some(Problem::NotARole(text.chars().take(40).collect())),
        (Field::Duration, Ok(d)) if d.duration.is_some() || d.until.is_some() => {
            merge_later_fields(&mut draft, d);
            None
        }
        (Field::Duration, Err(CommandError::Duration(e))) => Some(Problem::Duration(e)),
        (Field::Duration, _) => Some(Problem::Duration(duration::parse(&text).err().unwrap_or(
            DurationError::Garbage {
                text: text.chars().take(40).collect(),
            },
        ))),
        (Field::Reason, _) => {
            // The reason is free text: take it whole, whatever it looks like.
            if text.trim().is_empty() {
                Some(Problem::ReasonEmpty)
            } else {
                draft.reason = Some(text.trim().to_string());
                None
            }
        }
        (Field::Targets, Err(CommandError::Target(e))) => Some(Problem::Target(e)),
        (Field::Targets, Err(CommandError::Duration(e))) => Some(Problem::Duration(e)),
        (Field::Targets, Err(e)) => Some(Problem::Input(e)),
    };
    match problem {
        Some(p) => {
            let asking = st.asking;
            st.last_activity_ms = now_ms;
            ask(st, asking, Some(p), policy)
        }
        None => advance(draft, st.started_ms, now_ms, policy),
    }
}

/// Copies role, duration and reason from an answer; targets are only taken when asked for.
fn merge_later_fields(draft: &mut ApplyDraft, answer: ApplyDraft) {
    draft.role = answer.role.or(draft.role);
    // A length and an end replace each other: the newest answer is what the person means.
    if answer.duration.is_some() || answer.until.is_some() {
        draft.duration = answer.duration;
        draft.until = answer.until;
    }
    draft.reason = answer.reason.or(draft.reason.take());
}

fn is_bare_user_command(text: &str) -> bool {
    [
        CommandKind::Help,
        CommandKind::My,
        CommandKind::ApplyAccount,
        CommandKind::ApplyHost,
    ]
    .into_iter()
    .any(|k| command::is_bare_word(text, k))
}

/// `同意 A2026…`, `状态 A2026…`: commands about an order are never answers (an approver may be
/// in the middle of their own request when a decision is due). Order ids need a digit, so
/// ordinary answers do not match.
fn refers_to_an_order(text: &str) -> bool {
    matches!(
        command::parse(text),
        Ok(Command::Status(_)
            | Command::Cancel(Some(_))
            | Command::Approve(_)
            | Command::Reject { .. }
            | Command::Revoke(_)
            | Command::Renew { .. })
    )
}

fn ask(st: DialogState, field: Field, problem: Option<Problem>, policy: &Policy) -> DialogStep {
    let max_duration = match (field, st.draft.role) {
        (Field::Duration, Some(role)) => Some(policy.max_duration(role, &st.draft.targets).0),
        _ => None,
    };
    plain(
        Reply::Ask {
            field,
            problem,
            max_duration,
        },
        Some(DialogState {
            asking: field,
            ..st
        }),
    )
}

/// Checks what the draft has, in asking order, and asks for the first thing missing or refused.
fn advance(mut draft: ApplyDraft, started_ms: i64, now_ms: i64, policy: &Policy) -> DialogStep {
    let state = |draft: ApplyDraft| DialogState {
        draft,
        asking: Field::Targets,
        started_ms,
        last_activity_ms: now_ms,
    };
    if draft.targets.is_empty() {
        return ask(state(draft), Field::Targets, None, policy);
    }
    let checked = if draft.targets.len() > policy.max_addresses {
        Err(Problem::Target(TargetError::TooMany {
            count: draft.targets.len(),
            max: policy.max_addresses,
        }))
    } else {
        target::resolve(&draft.targets, policy)
            .map_err(Problem::Target)
            .and_then(|t| policy.check_targets(&t).map(|_| t).map_err(Problem::Policy))
    };
    match checked {
        Ok(t) => draft.targets = t,
        Err(p) => {
            draft.targets.clear();
            return ask(state(draft), Field::Targets, Some(p), policy);
        }
    }
    let Some(role) = draft.role else {
        return ask(state(draft), Field::Role, None, policy);
    };
    // "Until Friday" becomes a length now, with the clock and zone of this message; the end
    // itself travels with the request so the grant ends when the person said.
    let mut ends_at = None;
    if let Some(u) = draft.until {
        let now = jiff::Timestamp::from_millisecond(now_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        match (
            u.resolve(now, &policy.timezone, policy.workday_end),
            u.length(now, &policy.timezone, policy.workday_end),
        ) {
            (Ok(end), Ok(len)) => {
                draft.duration = Some(len);
                ends_at = Some(end);
            }
            (Err(e), _) | (_, Err(e)) => {
                draft.until = None;
                return ask(
                    state(draft),
                    Field::Duration,
                    Some(Problem::Duration(e)),
                    policy,
                );
            }
        }
    }
    let Some(d) = draft.duration else {
        return ask(state(draft), Field::Duration, None, policy);
    };
    if let Err(v) = policy.check_duration(role, &draft.targets, d) {
        draft.duration = None;
        draft.until = None;
        return ask(
            state(draft),
            Field::Duration,
            Some(Problem::Policy(v)),
            policy,
        );
    }
    if let Some(r) = &draft.reason {
        if r.chars().count() > MAX_REASON_CHARS {
            draft.reason = None;
            let p = Problem::ReasonTooLong {
                max: MAX_REASON_CHARS,
            };
            return ask(state(draft), Field::Reason, Some(p), policy);
        }
    }
    if policy.check_reason(draft.reason.as_deref()).is_err() {
        return ask(state(draft), Field::Reason, None, policy);
    }
    let req = AccessRequest {
        targets: draft.targets,
        role,
        duration: d,
        ends_at,
        on_behalf_of: draft.on_behalf_of,
        reason: draft.reason,
    };
    DialogStep {
        new_state: None,
        reply: Reply::Complete,
        done: Some(req),
        dropped_idle: false,
    }
}
