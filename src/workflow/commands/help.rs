//! `/help`: the commands the sender may use (admins see theirs too), from the command table.
use crate::chat::text;
use crate::workflow::commands::{Answer, Ctx};

pub(super) fn run(cx: &Ctx<'_>) -> Answer {
    Answer::Say(text::help(cx.lang, cx.admin))
}
