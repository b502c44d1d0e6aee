//! `/apply host …` and `/apply account`: checks a complete request against policy, answers an
//! identical open request with that order (or refuses past the per-requester limit), and
//! creates the order in `Draft` with its `Prepare` job. The dialog that collects a request
//! lives in `domain::dialog`; this file takes it once nothing is missing.
use crate::chat::text::{self, Lang};
use crate::dispatch::DispatchError;
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::command::ApplyDraft;
use crate::domain::dialog::{self, Reply};
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::jobs::JobKind;
use crate::domain::order::{NewOrder, Order, Request, State};
use crate::domain::policy::{AccessRequest, PolicyViolation};
use crate::domain::target::Target;
use crate::workflow::commands::{Answer, Ctx};
use crate::workflow::order_mode;
use crate::workflow::{retry, Workflow};
use std::collections::BTreeSet;

/// `/apply host …` typed in one message: normally the dialog takes it (`events::message`); a
/// draft arriving as a command starts the dialog the same way.
pub(super) fn host(cx: &Ctx<'_>, draft: ApplyDraft) -> Result<Answer, DispatchError> {
    let wf = cx.wf;
    let step = dialog::from_draft(draft, &wf.policy, wf.now().as_millisecond());
    match (step.reply, step.done) {
        (Reply::Complete, Some(req)) => {
            submit_host(wf, cx.sender, cx.nick, req, cx.lang).map(Answer::Say)
        }
        (other, _) => {
            if let Some(s) = step.new_state {
                wf.dialogs.save(cx.sender, &s, wf.now()).map_err(retry)?;
            }
            Ok(Answer::Say(
                text::dialog_reply(cx.lang, &other, false).unwrap_or_default(),
            ))
        }
    }
}

/// `/apply account`: a JumpServer account for the sender.
pub(super) fn account(cx: &Ctx<'_>) -> Result<Answer, DispatchError> {
    submit_account(cx.wf, cx.sender, cx.nick, cx.lang).map(Answer::Say)
}

pub(in crate::workflow) fn create_order(
    wf: &Workflow,
    sender: &DingUserId,
    nick: &str,
    request: Request,
    approvers: Vec<DingUserId>,
    filed_by: Option<DingUserId>,
) -> Result<OrderId, DispatchError> {
    let now = wf.now();
    let id = wf.orders.next_id(now, &wf.settings.tz).map_err(retry)?;
    let mut order = Order::new(
        NewOrder {
            id: id.clone(),
            requester: sender.clone(),
            requester_name: if nick.trim().is_empty() {
                sender.as_str().to_string()
            } else {
                nick.trim().to_string()
            },
            jms_username: String::new(),
            request,
            approval_mode: order_mode(&wf.policy),
            approvers,
        },
        now,
    );
    order.installation = wf.installation.to_string();
    order.filed_by = filed_by;
    let rec = AuditRecord::new(
        now,
        Some(id.clone()),
        Actor::User(sender.clone()),
        AuditEvent::Requested,
        "request received",
    );
    wf.orders
        .create(order, vec![JobKind::Prepare], vec![rec])
        .map_err(|e| DispatchError::Retry(e.to_string()))?;
    Ok(id)
}

pub(in crate::workflow) fn submit_host(
    wf: &Workflow,
    sender: &DingUserId,
    nick: &str,
    req: AccessRequest,
    lang: Lang,
) -> Result<String, DispatchError> {
    // On someone's behalf: the order is theirs (their policy, approvers, JumpServer user and
    // messages); the sender is recorded and told too. Only admins and team leads may.
    let filer = sender;
    let (sender, nick) = match &req.on_behalf_of {
        Some(target) if target == sender => (sender, nick.to_string()),
        Some(target) => {
            if !wf.policy.may_file_for_others(sender) {
                return Ok(text::may_not_file_for_others(lang));
            }
            let name = wf.names.get(target).unwrap_or_else(|| target.to_string());
            (target, name)
        }
        None => (sender, nick.to_string()),
    };
    let nick = nick.as_str();
    if let Err(v) = wf.policy.check_request(sender, &req) {
        return Ok(text::policy_violation(lang, &v));
    }
    if let Err(why) = single_scope(wf, &req.targets, lang) {
        return Ok(why);
    }
    let approvers = wf.policy.approvers_for(sender, &req.targets);
    if approvers.is_empty() {
        return Ok(text::no_approvers(lang));
    }
    // Same targets (as a set, canonical spellings) and role: the same ask. Duration and
    // reason do not make a new one; the reply says how to change them (withdraw first).
    let want: BTreeSet<String> = req.targets.iter().map(ToString::to_string).collect();
    let same = |o: &Order| match &o.request {
        Request::Host { role, .. } if *role == req.role => {
            wf.targets_of(o)
                .iter()
                .map(ToString::to_string)
                .collect::<BTreeSet<_>>()
                == want
        }
        _ => false,
    };
    if let Some(answer) = existing_or_limited(wf, sender, same, lang)? {
        return Ok(answer);
    }
    let request = Request::Host {
        targets: req.targets.clone(),
        system: None,
        role: req.role,
        duration: req.duration,
        ends_at: req.ends_at,
        reason: req.reason.unwrap_or_default(),
    };
    let filed_by = (filer != sender).then(|| filer.clone());
    let id = create_order(wf, sender, nick, request, approvers, filed_by.clone())?;
    Ok(match filed_by {
        Some(_) => text::request_received_for(lang, &id, nick),
        None => text::request_received(lang, &id),
    })
}

/// The answer that replaces a new order, if any: the requester's open order that `same`
/// recognises (asked again: one order, not two for approvers to wade through), else the
/// refusal when they reached `workflow.max_new_orders_per_user`. `None`: go ahead.
///
/// Both read the requester's stored orders, so the limit holds across restarts; the caller
/// holds the requester's lock, so two messages cannot both pass the check.
pub(in crate::workflow) fn existing_or_limited(
    wf: &Workflow,
    sender: &DingUserId,
    same: impl Fn(&Order) -> bool,
    lang: Lang,
) -> Result<Option<String>, DispatchError> {
    let orders = wf.orders.list_by_requester(sender).map_err(retry)?;
    if let Some(o) = orders.iter().find(|o| is_open(o.state) && same(o)) {
        let waiting_for: Option<Vec<String>> =
            matches!(o.state, State::Draft | State::PendingApproval).then(|| {
                // No directory call here (this runs under the requester's lock): names
                // seen before, else the userid.
                o.approvers
                    .iter()
                    .map(|a| wf.names.get(a).unwrap_or_else(|| a.to_string()))
                    .collect()
            });
        return Ok(Some(text::same_request_open(
            lang,
            &o.id,
            wf.text_in(lang).status_label(o),
            waiting_for.as_deref(),
        )));
    }
    let Some((max, window)) = wf.settings.order_limit else {
        return Ok(None);
    };
    let now = wf.now();
    // Newest first, so the max-th newest is the one whose leaving makes room.
    let recent: Vec<&Order> = match now.checked_sub(window) {
        Ok(since) => orders.iter().filter(|o| o.created_at > since).collect(),
        Err(_) => orders.iter().collect(),
    };
    let Some(nth) = recent.get(usize::try_from(max).unwrap_or(usize::MAX).saturating_sub(1)) else {
        return Ok(None);
    };
    let retry_at = ceil_minute(nth.created_at.checked_add(window).unwrap_or(now));
    tracing::info!(
        requester = %sender,
        recent = recent.len(),
        max,
        "new request refused: per-requester limit reached"
    );
    Ok(Some(text::too_many_requests(
        lang,
        max,
        u64::try_from(window.as_mins()).unwrap_or(0),
        retry_at,
        &wf.settings.tz,
    )))
}

/// One order is one JumpServer permission: either a whole system's node, or hosts.
pub(in crate::workflow) fn single_scope(
    wf: &Workflow,
    targets: &[Target],
    lang: Lang,
) -> Result<(), String> {
    let with_node: Vec<&str> = targets
        .iter()
        .filter_map(|t| match t {
            Target::System(name) => wf
                .policy
                .systems
                .iter()
                .find(|s| &s.name == name && s.node.is_some())
                .map(|s| s.name.as_str()),
            _ => None,
        })
        .collect();
    let others = targets.len() - with_node.len();
    if with_node.len() > 1 || (!with_node.is_empty() && others > 0) {
        return Err(text::one_scope_per_request(lang));
    }
    Ok(())
}

pub(in crate::workflow) fn submit_account(
    wf: &Workflow,
    sender: &DingUserId,
    nick: &str,
    lang: Lang,
) -> Result<String, DispatchError> {
    if !wf.policy.requesters.is_empty() && !wf.policy.requesters.contains(sender) {
        return Ok(text::policy_violation(
            lang,
            &PolicyViolation::NotAllowedToRequest,
        ));
    }
    let approvers = wf.policy.approvers_for(sender, &[]);
    if approvers.is_empty() {
        return Ok(text::no_approvers(lang));
    }
    let same = |o: &Order| matches!(o.request, Request::Account { .. });
    if let Some(answer) = existing_or_limited(wf, sender, same, lang)? {
        return Ok(answer);
    }
    let id = create_order(
        wf,
        sender,
        nick,
        Request::Account {
            reason: String::new(),
        },
        approvers,
        None,
    )?;
    Ok(text::account_request_done(lang, &id))
}

/// Still asking for something: an identical ask is answered with this order. Active grants
/// are not included: more time is `/renew`, and approvers of a new ask see the access the
/// requester already holds.
fn is_open(s: State) -> bool {
    matches!(
        s,
        State::Draft
            | State::PendingApproval
            | State::Approved
            | State::Provisioning
            | State::FailedRetrying
    )
}

/// Rounds up to a whole minute: "try again after 10:42" must not name a moment that is still
/// inside the limit (times are shown to the minute).
fn ceil_minute(t: jiff::Timestamp) -> jiff::Timestamp {
    let s = t.as_second();
    if s.rem_euclid(60) == 0 && t.subsec_nanosecond() == 0 {
        return t;
    }
    jiff::Timestamp::from_second(s - s.rem_euclid(60) + 60).unwrap_or(t)
}
