//! The apply dialog: the question for the next missing field, and why an answer was refused.
use crate::chat::text::errors::{command_error, duration_error, policy_violation, target_error};
use crate::chat::text::words::{duration, pick, Lang};
use crate::domain::dialog::{Field, Problem, Reply};
use crate::domain::duration::AccessDuration;

fn problem(lang: Lang, p: &Problem) -> String {
    match p {
        Problem::Target(e) => target_error(lang, e),
        Problem::Duration(e) => duration_error(lang, e),
        Problem::NotARole(w) => pick(
            lang,
            format!("“{w}”不是权限类型。"),
            format!("`{w}` is not an access type."),
        ),
        Problem::ReasonEmpty => pick(
            lang,
            "原因不能为空。".into(),
            "The reason cannot be empty.".into(),
        ),
        Problem::ReasonTooLong { max } => pick(
            lang,
            format!("原因太长，请控制在 {max} 字以内。"),
            format!("The reason is too long; keep it under {max} characters."),
        ),
        Problem::Policy(v) => policy_violation(lang, v),
        Problem::Input(e) => command_error(lang, e),
    }
}

/// The question for one missing field.
pub fn ask(lang: Lang, field: Field, max_duration: Option<AccessDuration>) -> String {
    let q = match field {
        Field::Targets => pick(
            lang,
            "要访问哪些主机？请发送 IP、主机名或系统名，多个用逗号或空格分隔。".into(),
            "Which hosts? Send IP addresses, host names or a system name, separated by commas or spaces."
                .into(),
        ),
        Field::Role => pick(
            lang,
            "需要什么权限？回复“运维”（可上传下载）或“只读”（仅终端）。".into(),
            "What access? Reply `ops` (file transfer allowed) or `readonly` (terminal only).".into(),
        ),
        Field::Duration => {
            let max_zh = max_duration
                .map(|m| format!("，最长 {}", duration(lang, m)))
                .unwrap_or_default();
            let max_en = max_duration
                .map(|m| format!("; at most {}", duration(lang, m)))
                .unwrap_or_default();
            pick(
                lang,
                format!("需要多长时间？例如 4小时、3天{max_zh}。"),
                format!("For how long? e.g. 4h, 3d{max_en}."),
            )
        }
        Field::Reason => pick(
            lang,
            "请说明申请原因（审批人会看到）。".into(),
            "Why do you need it? (the approver will see this)".into(),
        ),
    };
    let tail = pick(
        lang,
        "（发送“取消”结束）".into(),
        " (send `cancel` to stop)".into(),
    );
    format!("{q}{tail}")
}

/// The text for a dialog reply; `None` for replies the caller renders itself (`Complete` → the
/// submitted message with the order id; `Command` → that command's own answer).
pub fn dialog_reply(lang: Lang, reply: &Reply, dropped_idle: bool) -> Option<String> {
    let body = match reply {
        Reply::Ask {
            field,
            problem: p,
            max_duration,
        } => {
            let q = ask(lang, *field, *max_duration);
            match p {
                Some(p) => format!("{}\n{q}", problem(lang, p)),
                None => q,
            }
        }
        Reply::Cancelled => pick(
            lang,
            "好的，已取消本次申请。".into(),
            "OK, request cancelled.".into(),
        ),
        Reply::NothingToCancel => pick(
            lang,
            "当前没有进行中的申请。要撤回已提交的申请，请发送“取消 <单号>”。".into(),
            "Nothing in progress. To withdraw a submitted request, send /cancel <order>.".into(),
        ),
        Reply::Error(e) => command_error(lang, e),
        Reply::Complete | Reply::Command(_) => return None,
    };
    if dropped_idle {
        Some(format!("{}\n{body}", dialog_expired(lang)))
    } else {
        Some(body)
    }
}

pub fn dialog_expired(lang: Lang) -> String {
    pick(
        lang,
        "（上一次未完成的申请已超时，需要重新开始。）".into(),
        "(Your unfinished request timed out; starting over.)".into(),
    )
}

/// The stored dialog could not be read (written by another version, or damaged).
pub fn dialog_unreadable(lang: Lang) -> String {
    pick(
        lang,
        "（上一次未完成的申请无法读取，需要重新开始。）".into(),
        "(Your unfinished request could not be read; starting over.)".into(),
    )
}
