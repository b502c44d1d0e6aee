//! `/revoke <order>` (admins): ends a grant early; the revoke job deactivates the permission and
//! the requester is told who revoked it.
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::audit::Actor;
use crate::domain::change::Change;
use crate::domain::ids::OrderId;
use crate::domain::jobs::JobKind;
use crate::domain::notice::Notice;
use crate::workflow::commands::{refusal_or, Answer, Ctx, Refusal};
use crate::workflow::ports::OrderStoreExt;

pub(super) fn run(cx: &Ctx<'_>, id: &OrderId) -> Result<Answer, DispatchError> {
    let (wf, sender, nick) = (cx.wf, cx.sender, cx.nick);
    let lang = cx.lang;
    let res = wf.orders.update(id, |o| {
        let t = o
            .revoke(
                Some(sender),
                Some("revoked by an administrator".into()),
                wf.now(),
            )
            .map_err(|_| {
                Refusal::Text(text::not_active(lang, id, wf.text_in(lang).status_label(o)))
            })?;
        let jobs = vec![
            JobKind::Revoke,
            JobKind::tell_requester(Notice::Revoked {
                by_name: nick.to_string(),
            }),
        ];
        Ok(Change::from_transition(
            t,
            Actor::User(sender.clone()),
            "revoked by an administrator",
            jobs,
        ))
    });
    refusal_or(wf, res, id, |_| Answer::Say(text::revoke_done(lang, id)))
}
