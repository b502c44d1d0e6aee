//! `/done [order]` · `归还`: the holder gives their own grant back now, through the same revoke
//! as `/revoke` (the Revoke job: deactivated or deleted per `workflow.revoke_mode`, live
//! sessions ended when `workflow.end_sessions`, what remains read back for the holder's
//! message); the approver who granted it is told. Only the holder may: anyone else is refused
//! and nothing changes (admins end other people's grants with `/revoke`).
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::audit::Actor;
use crate::domain::change::Change;
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::jobs::JobKind;
use crate::domain::notice::{Audience, Notice};
use crate::domain::order::{Request, State};
use crate::workflow::commands::{refusal_or, Answer, Ctx, Refusal};
use crate::workflow::ports::OrderStoreExt;
use crate::workflow::{retry, OA_DECIDER};

pub(super) fn run(cx: &Ctx<'_>, id: Option<OrderId>) -> Result<Answer, DispatchError> {
    let (wf, sender, nick) = (cx.wf, cx.sender, cx.nick);
    let lang = cx.lang;
    let id = match id {
        Some(id) => id,
        // Alone: the sender's only active host grant; several are listed to pick from.
        None => {
            let active: Vec<_> = wf
                .orders
                .list_by_requester(sender)
                .map_err(retry)?
                .into_iter()
                .filter(|o| o.state == State::Active && matches!(o.request, Request::Host { .. }))
                .collect();
            match active.as_slice() {
                [one] => one.id.clone(),
                [] => return Ok(Answer::Say(text::nothing_to_give_back(lang))),
                many => {
                    let lines: Vec<String> = many
                        .iter()
                        .map(|o| wf.text_in(lang).status_line(o))
                        .collect();
                    return Ok(Answer::Say(text::which_to_give_back(lang, &lines)));
                }
            }
        }
    };
    let res = wf.orders.update(&id, |o| {
        if o.requester != *sender {
            return Err(Refusal::Text(text::give_back_not_yours(lang, &id)));
        }
        if o.state != State::Active {
            return Err(Refusal::Text(text::not_active(
                lang,
                &id,
                wf.text_in(lang).status_label(o),
            )));
        }
        let t = o
            .revoke(
                Some(sender),
                Some("given back by the holder".into()),
                wf.now(),
            )
            .map_err(|_| {
                Refusal::Text(text::not_active(
                    lang,
                    &id,
                    wf.text_in(lang).status_label(o),
                ))
            })?;
        let mut jobs = vec![
            JobKind::Revoke,
            // The holder reads what JumpServer shows once it is done.
            JobKind::tell_requester(Notice::Revoked {
                by_name: nick.to_string(),
            }),
        ];
        // The approver who granted it (for OA orders, which name no single decider here,
        // every approver of the order).
        let who: Vec<DingUserId> = match &o.decided_by {
            Some(d) if d.as_str() != OA_DECIDER => vec![d.clone()],
            _ => o.approvers.clone(),
        };
        for user in who.into_iter().filter(|u| u != sender) {
            jobs.push(JobKind::Notify {
                to: Audience::User(user),
                notice: Notice::GivenBack,
            });
        }
        Ok(Change::from_transition(
            t,
            Actor::User(sender.clone()),
            "given back by the holder",
            jobs,
        ))
    });
    refusal_or(wf, res, &id, |_| {
        Answer::Say(text::give_back_done(lang, &id))
    })
}
