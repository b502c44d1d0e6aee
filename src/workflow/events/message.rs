//! A chat message: who sent it, the dialog it continues, the command it is. Read-only answers go
//! back on the message's session webhook after the acknowledgement; a state change is one order
//! transaction whose messages are outbox jobs.
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::command;
use crate::domain::dialog::{self, Reply};
use crate::inbound::ChatMessage;
use crate::workflow::commands::apply;
use crate::workflow::commands::{self, Answer, Ctx};
use crate::workflow::events::form;
use crate::workflow::ports::StoredDialog;
use crate::workflow::{retry, Workflow};

pub(in crate::workflow) fn on_chat(wf: &Workflow, msg: ChatMessage) -> Result<(), DispatchError> {
    let lang = wf.lang();
    let webhook = msg.session_webhook.clone();
    let Some(sender) = msg
        .sender_staff_id
        .clone()
        .filter(|s| !s.as_str().is_empty())
    else {
        wf.reply_later(webhook, text::cannot_identify(lang));
        return Ok(());
    };
    let Some(input) = msg.text.clone() else {
        wf.reply_later(webhook, text::text_only(lang));
        return Ok(());
    };
    let now = wf.now();
    let now_ms = now.as_millisecond();
    let (state, unreadable) = match wf.dialogs.load(&sender).map_err(retry)? {
        None => (None, false),
        Some(StoredDialog::Open(s)) => (Some(s), false),
        Some(StoredDialog::Unreadable(why)) => {
            // Said to the user with the answer below; the message is handled afresh.
            tracing::warn!(user = %sender, %why, "stored dialog unreadable; starting over");
            (None, true)
        }
    };
    let had_dialog = state.is_some() || unreadable;
    let step = dialog::step(state, &input, &wf.policy, now_ms);
    match &step.new_state {
        Some(s) => {
            wf.dialogs.save(&sender, s, now).map_err(retry)?;
        }
        None if had_dialog => {
            wf.dialogs.delete(&sender).map_err(retry)?;
        }
        None => {}
    }
    // A bare `/apply` (or `/apply host` with nothing yet) gets the request form card when
    // a template is configured; typed answers keep working alongside it.
    let wants_form = match &step.reply {
        Reply::Error(command::CommandError::ApplyWhat) => true,
        Reply::Ask {
            field: dialog::Field::Targets,
            problem: None,
            ..
        } => step
            .new_state
            .as_ref()
            .is_some_and(|s| s.draft == command::ApplyDraft::default()),
        _ => false,
    };
    if wants_form && wf.settings.request_template().is_some() {
        form::send_form_later(wf, &sender, &msg.msg_id);
    }
    let answer = match step.reply {
        Reply::Complete => match step.done {
            Some(req) => apply::submit_host(wf, &sender, &msg.sender_nick, req)?,
            None => text::help(lang, wf.policy.is_admin(&sender)),
        },
        Reply::Command(cmd) => {
            let cx = Ctx {
                wf,
                sender: &sender,
                nick: &msg.sender_nick,
                admin: wf.policy.is_admin(&sender),
                webhook: &webhook,
            };
            match commands::run(&cx, cmd)? {
                Answer::Say(text) => text,
                // The outbox notice is the answer, or the command answers on its own later.
                Answer::Quiet | Answer::Later => String::new(),
            }
        }
        other => text::dialog_reply(lang, &other, step.dropped_idle)
            .unwrap_or_else(|| text::help(lang, false)),
    };
    let note = unreadable.then(|| text::dialog_unreadable(lang));
    // An empty answer means the outbox message is the answer (state changes).
    let reply = match (note, answer.is_empty()) {
        (Some(note), true) => note,
        (Some(note), false) => format!("{note}\n{answer}"),
        (None, _) => answer,
    };
    if !reply.is_empty() {
        wf.reply_later(webhook, reply);
    }
    Ok(())
}
