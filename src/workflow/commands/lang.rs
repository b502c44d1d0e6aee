//! `/lang en|zh` · `语言 中文|英文`: the language the bot answers the sender in, kept per person
//! (and used for the notices they get). A language chosen here stays when they later write in
//! the other one; without a choice, each person is answered in the language they last wrote in.
use crate::chat::text::{self, Lang};
use crate::dispatch::DispatchError;
use crate::workflow::commands::{Answer, Ctx};
use crate::workflow::ports::UserPrefs;
use crate::workflow::retry;

pub(super) fn run(cx: &Ctx<'_>, choice: Option<Lang>) -> Result<Answer, DispatchError> {
    let Some(lang) = choice else {
        return Ok(Answer::Say(text::lang_which(cx.lang)));
    };
    let prefs = UserPrefs {
        lang: Some(lang),
        chosen: true,
    };
    cx.wf.dialogs.set_prefs(cx.sender, &prefs).map_err(retry)?;
    Ok(Answer::Say(text::lang_set(lang)))
}
