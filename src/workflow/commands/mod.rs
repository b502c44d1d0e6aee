//! The chat commands, one file each (mini-redis `cmd/` style): `run` here takes the parsed
//! `Command` and its sender (`Ctx`), checks who may run it, and hands it to its file. Each
//! command reads the store and commits at most one order change, and returns a typed `Answer`;
//! the messages a change causes are outbox jobs.
pub(super) mod apply;
mod cancel;
mod decide;
mod help;
mod history;
mod my;
mod renew;
mod revoke;
mod status;
mod sync;
mod who_has;

use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::command::Command;
use crate::domain::dialog::Reply;
use crate::domain::ids::{DingUserId, OrderId};
use crate::workflow::ports::CasError;
use crate::workflow::{retry, Workflow};

/// Who runs a command, and where its answer goes.
pub(in crate::workflow) struct Ctx<'a> {
    pub wf: &'a Workflow,
    pub sender: &'a DingUserId,
    /// The sender's display name as DingTalk gave it with the message.
    pub nick: &'a str,
    pub admin: bool,
    /// The message's session webhook (for answers that come later).
    pub webhook: &'a Option<String>,
}

/// What a command says back to its sender.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::workflow) enum Answer {
    /// Said on the message's session webhook.
    Say(String),
    /// Nothing to add: the outbox notice the command queued is the answer.
    Quiet,
    /// The command answers on its own when its live query is done.
    Later,
}

/// Why a state-changing command did nothing (told to the sender).
pub(in crate::workflow) enum Refusal {
    Text(String),
}

/// Runs one command for `cx.sender`.
pub(in crate::workflow) fn run(cx: &Ctx<'_>, cmd: Command) -> Result<Answer, DispatchError> {
    let lang = cx.wf.lang();
    // Renewal is also open to the requester of the order (the expiry reminder's button).
    if cmd.is_admin_only() && !cx.admin && !matches!(cmd, Command::Renew { .. }) {
        return Ok(Answer::Say(text::admin_only(lang)));
    }
    match cmd {
        Command::Help => Ok(help::run(cx)),
        Command::ApplyAccount => apply::account(cx),
        Command::ApplyHost(draft) => apply::host(cx, draft),
        Command::My => my::run(cx),
        Command::Status(id) => status::run(cx, &id),
        Command::Cancel(None) => Ok(Answer::Say(
            text::dialog_reply(lang, &Reply::NothingToCancel, false).unwrap_or_default(),
        )),
        Command::Cancel(Some(id)) => cancel::run(cx, &id),
        Command::Approve(id) => decide::run(cx, &id, None),
        Command::Reject { order, reason } => decide::run(cx, &order, Some(reason)),
        Command::Sync => sync::run(cx),
        Command::WhoHas { subject, all } => who_has::run(cx, subject, all),
        Command::Revoke(id) => revoke::run(cx, &id),
        Command::Renew { order, duration } => renew::run(cx, &order, duration),
        Command::History { subject, page } => history::run(cx, &subject, page),
    }
}

/// Maps an order update's result to the sender's answer; `ok` says what success answers.
pub(in crate::workflow) fn refusal_or<T>(
    wf: &Workflow,
    res: Result<T, CasError<Refusal>>,
    id: &OrderId,
    ok: impl FnOnce(T) -> Answer,
) -> Result<Answer, DispatchError> {
    match res {
        Ok(v) => Ok(ok(v)),
        Err(CasError::Refused(Refusal::Text(t))) => Ok(Answer::Say(t)),
        Err(CasError::NotFound(_)) => Ok(Answer::Say(text::order_not_found(wf.lang(), id))),
        Err(CasError::Stale { .. }) => Err(DispatchError::Retry(
            "order kept changing; try again".into(),
        )),
        Err(CasError::Store(e)) => Err(retry(e)),
    }
}
