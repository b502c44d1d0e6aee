//! `/renew <order> [duration]` (admins, or the order's requester from the expiry reminder):
//! extends an active grant from its current end, capped by the role's longest window counted
//! from now; the requester and the approver who granted it see the old and the new end.
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::audit::Actor;
use crate::domain::change::Change;
use crate::domain::duration::AccessDuration;
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::jobs::JobKind;
use crate::domain::notice::{Audience, Notice};
use crate::domain::order::State;
use crate::workflow::commands::{refusal_or, Answer, Ctx, Refusal};
use crate::workflow::ports::OrderStoreExt;
use crate::workflow::OA_DECIDER;

pub(super) fn run(
    cx: &Ctx<'_>,
    id: &OrderId,
    duration: Option<AccessDuration>,
) -> Result<Answer, DispatchError> {
    let (wf, sender, admin) = (cx.wf, cx.sender, cx.admin);
    let lang = cx.lang;
    let now = wf.now();
    let res = wf.orders.update(id, |o| {
        if !admin && o.requester != *sender {
            return Err(Refusal::Text(text::not_your_order(lang, id)));
        }
        if o.state != State::Active {
            return Err(Refusal::Text(text::not_active(
                lang,
                id,
                wf.text_in(lang).status_label(o),
            )));
        }
        let (Some(role), Some(orig)) = (o.request.role(), o.request.access_duration()) else {
            return Err(Refusal::Text(text::renew_refused(
                lang,
                id,
                &text::no_window(lang),
            )));
        };
        let d = duration.unwrap_or(orig);
        let targets = wf.targets_of(o);
        if let Err(v) = wf.policy.check_duration(role, &targets, d) {
            return Err(Refusal::Text(text::renew_refused(
                lang,
                id,
                &text::policy_violation(lang, &v),
            )));
        }
        // From the current end, so a renewal never shortens a grant; capped by the role's
        // (and systems') longest window counted from now, so renewing early cannot stack.
        let old_end = o.window.map(|w| w.end);
        let secs = |m: u64| {
            jiff::SignedDuration::from_secs(i64::try_from(m).unwrap_or(0).saturating_mul(60))
        };
        let from = old_end.filter(|e| *e > now).unwrap_or(now);
        let wanted = from
            .checked_add(secs(d.minutes()))
            .map_err(|e| Refusal::Text(e.to_string()))?;
        let (max, _) = wf.policy.max_duration(role, &targets);
        let cap = now
            .checked_add(secs(max.minutes()))
            .map_err(|e| Refusal::Text(e.to_string()))?;
        let end = wanted.min(cap);
        if old_end.is_some_and(|e| end <= e) {
            return Err(Refusal::Text(text::renew_refused(
                lang,
                id,
                &text::renew_at_limit(lang, max),
            )));
        }
        let t = o
            .renew(end, now)
            .map_err(|e| Refusal::Text(text::renew_refused(lang, id, &e.to_string())))?;
        let mut jobs = vec![
            JobKind::Renew,
            JobKind::tell_requester(Notice::Renewed {
                old_end,
                capped: end < wanted,
            }),
        ];
        // The approver who granted it sees the new end (for OA orders, which name no
        // single decider here, every approver of the order).
        let who: Vec<DingUserId> = match &o.decided_by {
            Some(d) if d.as_str() != OA_DECIDER => vec![d.clone()],
            _ => o.approvers.clone(),
        };
        for user in who.into_iter().filter(|u| u != sender) {
            jobs.push(JobKind::Notify {
                to: Audience::User(user),
                notice: Notice::RenewedForApprover { old_end },
            });
        }
        Ok(Change::from_transition(
            t,
            Actor::User(sender.clone()),
            format!("renewed for {}", d.short()),
            jobs,
        ))
    });
    refusal_or(wf, res, id, |c| {
        if c.order.requester == *sender {
            // The requester reads the outbox's "renewed" message; no second one here.
            Answer::Quiet
        } else {
            match c.order.window {
                Some(w) => Answer::Say(text::renewed(lang, id, w.end, &wf.settings.tz)),
                None => Answer::Quiet,
            }
        }
    })
}
