//! Every [`Notice`] in words, in one exhaustive `match`: a notice without a text does not
//! compile. A notice is rendered when it is sent, from the order as it is then (what JumpServer
//! read back, who decided, the window as renewed). Display names are looked up by the caller
//! beforehand ([`mentions`] says whose), so rendering does no IO.
use crate::chat::failures;
use crate::chat::message::{Button, Message};
use crate::chat::order::OrderText;
use crate::chat::readback;
use crate::chat::text;
use crate::domain::command::{display_word, CommandKind};
use crate::domain::duration::AccessDuration;
use crate::domain::ids::DingUserId;
use crate::domain::notice::Notice;
use crate::domain::order::{ApprovalMode, Order, Request, State};
use jiff::Timestamp;

/// What rendering needs besides the order.
pub struct NoticeContext<'a> {
    pub text: OrderText<'a>,
    /// Shown in "access granted" messages.
    pub jms_web_url: Option<&'a str>,
    pub now: Timestamp,
    /// Display name of a DingTalk user (the names [`mentions`] lists were looked up).
    pub name_of: &'a dyn Fn(&DingUserId) -> String,
}

/// The users whose display names the text of `n` about `o` shows.
pub fn mentions(o: &Order, n: &Notice) -> Vec<DingUserId> {
    match n {
        Notice::Submitted => o.approvers.clone(),
        Notice::Granted | Notice::Rejected | Notice::Decided { .. } => {
            o.decided_by.iter().cloned().collect()
        }
        Notice::ApprovedWaiting { by, .. } => vec![by.clone()],
        Notice::Revoked { by_name } if by_name.is_empty() => o
            .closure
            .as_ref()
            .and_then(|c| c.by.clone())
            .into_iter()
            .collect(),
        Notice::ApproverUnreachable { approver, .. } => vec![approver.clone()],
        _ => Vec::new(),
    }
}

/// Minutes between two times as a duration to show, at least one minute.
fn minutes_between(from: Timestamp, to: Timestamp) -> Option<AccessDuration> {
    let m = to.duration_since(from).as_mins().max(1);
    AccessDuration::from_minutes(u64::try_from(m).unwrap_or(1)).ok()
}

/// The text of `n` about `o`; `None` when it is no longer true or has nothing to say (e.g.
/// "submitted" for an order whose approval failed before the notice's turn came).
pub fn render(cx: &NoticeContext<'_>, o: &Order, n: &Notice) -> Option<Message> {
    let t = &cx.text;
    let (lang, tz) = (t.lang, t.tz);
    let decider = || match &o.decided_by {
        Some(d) => (cx.name_of)(d),
        None => text::system_actor(lang).to_string(),
    };
    let readback = o.grant.as_ref().and_then(|g| g.readback.as_ref());
    let revocation = o.grant.as_ref().and_then(|g| g.revocation.as_ref());
    let body = match n {
        // Said only while it is true: an approval that could not start fails the order
        // before this notice's turn comes.
        Notice::Submitted if o.state != State::PendingApproval => return None,
        Notice::Submitted => {
            let names: Vec<String> = o.approvers.iter().map(|a| (cx.name_of)(a)).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            t.submitted(o, &refs)
        }
        Notice::Granted => match (&o.request, o.window, readback) {
            (Request::Account { .. }, _, _) => {
                text::account_ready(lang, &o.jms_username, cx.jms_web_url)
            }
            (_, _, Some(rb)) => readback::granted(
                lang,
                &readback::GrantedView {
                    order: &o.id,
                    approver_name: &decider(),
                    role_label: t.role_label(o),
                    readback: rb,
                    jms_url: cx.jms_web_url,
                    ends: o
                        .window
                        .map(|w| text::words::until(lang, w.end, tz, cx.now)),
                },
                tz,
            ),
            (_, Some(w), None) => {
                let targets = t.targets(o);
                text::granted(
                    lang,
                    &text::GrantView {
                        order: &o.id,
                        targets: &targets,
                        username: &o.jms_username,
                        role: OrderText::role(o),
                        expires_at: w.end,
                        jms_url: cx.jms_web_url,
                    },
                    &decider(),
                    tz,
                )
            }
            _ => return None,
        },
        Notice::ApprovedWaiting { by, remaining } => {
            text::approved_waiting_more(lang, &o.id, &(cx.name_of)(by), *remaining)
        }
        Notice::Rejected => text::rejected(
            lang,
            &o.id,
            &decider(),
            o.decision_reason.as_deref().unwrap_or("-"),
        ),
        Notice::Decided { approved } => text::decided_notice(
            lang,
            &o.id,
            &decider(),
            *approved,
            o.decision_reason.as_deref().unwrap_or("-"),
        ),
        Notice::Reminder => {
            let waited = minutes_between(o.created_at, cx.now)?;
            let body = text::approval_reminder(lang, &o.id, &o.requester_name, waited);
            format!("{body}\n{}", t.request(o))
        }
        Notice::Cancelled => text::cancelled(lang, &o.id),
        Notice::WithdrawnOa => text::withdrawn_in_oa(lang, &o.id),
        Notice::TimedOut => text::approval_timed_out(lang, &o.id),
        Notice::Expired => {
            readback::expired(lang, &o.id, t.role_label(o), revocation, readback, tz)
        }
        Notice::Revoked { by_name } => {
            let by = match by_name.as_str() {
                "" => match o.closure.as_ref().and_then(|c| c.by.as_ref()) {
                    Some(u) => (cx.name_of)(u),
                    None => text::system_actor(lang).to_string(),
                },
                n => n.to_string(),
            };
            readback::revoked(lang, &o.id, &by, t.role_label(o), revocation, readback, tz)
        }
        Notice::Renewed { old_end, capped } => readback::renewed(
            lang,
            &readback::RenewedView {
                order: &o.id,
                old_end: *old_end,
                new_end: o.window?.end,
                capped: *capped,
                role_label: t.role_label(o),
                readback,
            },
            tz,
        ),
        Notice::GivenBack => text::given_back_to_approver(
            lang,
            &o.id,
            &o.requester_name,
            &text::targets(lang, &t.targets(o)),
        ),
        Notice::RenewedForApprover { old_end } => readback::renewed_for_approver(
            lang,
            &o.id,
            &o.requester_name,
            *old_end,
            o.window?.end,
            tz,
        ),
        Notice::ExpiryReminder => {
            let w = o.window?;
            let left = minutes_between(cx.now, w.end)?;
            let targets = t.targets(o);
            let body = text::expiry_reminder(lang, &o.id, &targets, w.end, left, tz);
            let renew = format!("{} {}", display_word(CommandKind::Renew, lang), o.id);
            return Some(Message::Prompt {
                title: text::expiry_title(lang, &o.id),
                text: body,
                buttons: vec![Button::new(text::renew_button(lang), renew)],
            });
        }
        Notice::Failed { kind, detail } => text::failure(lang, &o.id, *kind, Some(detail)),
        Notice::AdminFailed { detail } => {
            text::admin_failure(lang, &o.id, &o.requester_name, detail)
        }
        Notice::IdentityFailed { detail } => text::identity_failed(lang, &o.id, detail),
        Notice::NotTaken { detail } => text::request_not_taken(lang, &o.id, detail),
        Notice::AccountExists => text::account_exists(lang, &o.jms_username),
        Notice::LeftOrg => text::left_org_closed(lang, &o.id),
        Notice::NameConflicts => {
            let g = o.grant.as_ref()?;
            readback::admin_name_conflicts(
                lang,
                &o.id,
                &g.name_conflicts,
                g.permission_name.as_deref().unwrap_or("-"),
            )
        }
        Notice::MissingLogins { refused } => {
            let pairs = match readback {
                Some(rb) => rb.missing_logins(),
                None => o
                    .preview
                    .as_ref()
                    .map(|p| p.missing_logins.clone())
                    .unwrap_or_default(),
            };
            readback::admin_missing_logins(lang, &o.id, &o.requester_name, &pairs, *refused)
        }
        Notice::RevokeNotOurs { name } => readback::admin_revoke_not_ours(lang, &o.id, name),
        Notice::RevokeFailed { detail } => readback::admin_revoke_failed(
            lang,
            &o.id,
            &o.granted_permission_name(),
            o.window.map(|w| w.end),
            detail,
            tz,
        ),
        Notice::RenewFailed { detail } => readback::renew_failed(
            lang,
            &o.id,
            readback
                .and_then(|rb| rb.permission.as_ref())
                .and_then(|p| p.until),
            detail,
            tz,
        ),
        Notice::ApprovalFailed => failures::approval_failed(lang, &o.id),
        Notice::ApprovalFailedAdmin { reason } => {
            let cleanup = match o.approval_mode {
                ApprovalMode::Oa if o.approval_refs.oa_start_attempted_at.is_some() => Some(
                    failures::oa_cleanup(lang, o.approval_refs.oa_instance_id.as_deref()),
                ),
                _ => None,
            };
            failures::admin_approval_failed(
                lang,
                &o.id,
                &o.requester_name,
                reason,
                cleanup.as_deref(),
            )
        }
        Notice::ApproverUnreachable { approver, reason } => {
            failures::admin_approver_unreachable(lang, &o.id, &(cx.name_of)(approver), reason)
        }
        Notice::NoticeUndelivered { detail } => {
            failures::admin_notice_undelivered(lang, &o.id, &o.requester_name, detail)
        }
        Notice::CleanupFailed { detail } => failures::admin_cleanup_failed(lang, &o.id, detail),
    };
    Some(Message::Text(body))
}
