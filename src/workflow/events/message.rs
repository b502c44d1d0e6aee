//! A chat message: who sent it, the dialog it continues, the command it is. Read-only answers go
//! back on the message's session webhook after the acknowledgement; a state change is one order
//! transaction whose messages are outbox jobs.
use crate::chat::message::{Button, Message};
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::command;
use crate::domain::dialog::{self, Reply};
use crate::domain::ids::DingUserId;
use crate::inbound::ChatMessage;
use crate::workflow::commands::apply;
use crate::workflow::commands::{self, Answer, Ctx};
use crate::workflow::events::form;
use crate::workflow::jobs;
use crate::workflow::ports::{OutMessage, StoredDialog, UserPrefs};
use crate::workflow::{retry, Workflow};

/// The language to answer `sender` in: the one they chose with `/lang`, else the one this
/// message is written in (remembered for the notices they get later), else the one they last
/// wrote in, else the configured one.
fn reader_lang(wf: &Workflow, sender: &DingUserId, input: &str) -> crate::chat::text::Lang {
    let stored = match wf.dialogs.prefs(sender) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(user = %sender, error = %e, "user preferences unreadable");
            UserPrefs::default()
        }
    };
    if stored.chosen {
        return stored.lang.unwrap_or(wf.lang());
    }
    match command::written_in(input) {
        Some(l) => {
            if stored.lang != Some(l) {
                let p = UserPrefs {
                    lang: Some(l),
                    chosen: false,
                };
                // Losing this only means the next notice is in the configured language.
                if let Err(e) = wf.dialogs.set_prefs(sender, &p) {
                    tracing::warn!(user = %sender, error = %e, "could not remember the language");
                }
            }
            l
        }
        None => stored.lang.unwrap_or(wf.lang()),
    }
}

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
    let lang = reader_lang(wf, &sender, &input);
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
    // A misspelt command with arguments: the corrected command as a one-tap button. A robot
    // message cannot carry a button that sends text by itself except through a `dtmd://` link
    // in an action card (reference/dingtalk.md §4.3), which sends it as if the person typed
    // it, so it is authorised like any message of theirs.
    let corrected = match &step.reply {
        Reply::Error(command::CommandError::Unknown {
            suggestion: Some(k),
            args,
            ..
        }) if !args.is_empty() => Some(text::corrected_command(lang, *k, args)),
        _ => None,
    };
    let mut rich: Option<OutMessage> = None;
    let answer = match step.reply {
        Reply::Complete => match step.done {
            Some(req) => apply::submit_host(wf, &sender, &msg.sender_nick, req, lang)?,
            None => text::help(lang, wf.policy.is_admin(&sender)),
        },
        Reply::Command(cmd) => {
            let cx = Ctx {
                wf,
                sender: &sender,
                nick: &msg.sender_nick,
                admin: wf.policy.is_admin(&sender),
                webhook: &webhook,
                lang,
            };
            match commands::run(&cx, cmd)? {
                Answer::Say(text) => text,
                Answer::Markdown { title, text } => {
                    rich = Some(OutMessage::Markdown { title, text });
                    String::new()
                }
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
    if let Some(m) = rich {
        wf.reply_message_later(webhook, m);
        return Ok(());
    }
    match corrected {
        Some(cmd) => wf.reply_message_later(
            webhook,
            jobs::out_message(Message::Prompt {
                title: text::send_corrected_button(lang).to_string(),
                text: reply,
                buttons: vec![Button::new(text::send_corrected_button(lang), cmd)],
            }),
        ),
        None if !reply.is_empty() => wf.reply_later(webhook, reply),
        None => {}
    }
    Ok(())
}
