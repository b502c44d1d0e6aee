//! Chat messages: identity check, dialog, command table. Read-only answers go back on the
//! session webhook; every state change is one order transaction whose messages are outbox jobs.
use super::ports::{
    Bastion, CardDelivery, CardTarget, CasError, OrderStoreExt, OutMessage, Reacher, StoredDialog,
};
use super::{order_mode, retry, Workflow};
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::change::Change;
use crate::domain::command::{self, Command};
use crate::domain::dialog::{self, Reply};
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::jobs::JobKind;
use crate::domain::notice::{Audience, Notice};
use crate::domain::order::{NewOrder, Order, Request, State};
use crate::domain::policy::AccessRequest;
use crate::inbound::ChatMessage;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};

/// Why a state-changing command did nothing (told to the sender).
pub(super) enum Refusal {
    Text(String),
}

impl Workflow {
    pub(super) fn on_chat(&self, msg: ChatMessage) -> Result<(), DispatchError> {
        let lang = self.lang();
        let webhook = msg.session_webhook.clone();
        let Some(sender) = msg
            .sender_staff_id
            .clone()
            .filter(|s| !s.as_str().is_empty())
        else {
            self.reply_later(webhook, text::cannot_identify(lang));
            return Ok(());
        };
        let Some(input) = msg.text.clone() else {
            self.reply_later(webhook, text::text_only(lang));
            return Ok(());
        };
        let now = self.now();
        let now_ms = now.as_millisecond();
        let (state, unreadable) = match self.dialogs.load(&sender).map_err(retry)? {
            None => (None, false),
            Some(StoredDialog::Open(s)) => (Some(s), false),
            Some(StoredDialog::Unreadable(why)) => {
                // Said to the user with the answer below; the message is handled afresh.
                tracing::warn!(user = %sender, %why, "stored dialog unreadable; starting over");
                (None, true)
            }
        };
        let had_dialog = state.is_some() || unreadable;
        let step = dialog::step(state, &input, &self.policy, now_ms);
        match &step.new_state {
            Some(s) => {
                self.dialogs.save(&sender, s, now).map_err(retry)?;
            }
            None if had_dialog => {
                self.dialogs.delete(&sender).map_err(retry)?;
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
        if wants_form && self.settings.request_template().is_some() {
            self.send_form_later(&sender, &msg.msg_id);
        }
        let answer = match step.reply {
            Reply::Complete => match step.done {
                Some(req) => self.submit_host(&sender, &msg.sender_nick, req)?,
                None => text::help(lang, self.policy.is_admin(&sender)),
            },
            // `None`: the command answers on its own (live queries).
            Reply::Command(cmd) => self
                .command(&sender, &msg.sender_nick, cmd, &webhook)?
                .unwrap_or_default(),
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
            self.reply_later(webhook, reply);
        }
        Ok(())
    }

    /// Runs one command; `None` when the command answers on its own (live queries).
    fn command(
        &self,
        sender: &DingUserId,
        nick: &str,
        cmd: Command,
        webhook: &Option<String>,
    ) -> Result<Option<String>, DispatchError> {
        let lang = self.lang();
        let admin = self.policy.is_admin(sender);
        // Renewal is also open to the requester of the order (the expiry reminder's button).
        if cmd.is_admin_only() && !admin && !matches!(cmd, Command::Renew { .. }) {
            return Ok(Some(text::admin_only(lang)));
        }
        let answer = match cmd {
            Command::Help => text::help(lang, admin),
            Command::ApplyAccount => self.submit_account(sender, nick)?,
            Command::ApplyHost(draft) => {
                // Normally handled by the dialog; a draft arriving here starts it the same way.
                let step = dialog::from_draft(draft, &self.policy, self.now().as_millisecond());
                match (step.reply, step.done) {
                    (Reply::Complete, Some(req)) => self.submit_host(sender, nick, req)?,
                    (other, _) => {
                        if let Some(s) = step.new_state {
                            self.dialogs.save(sender, &s, self.now()).map_err(retry)?;
                        }
                        text::dialog_reply(lang, &other, false).unwrap_or_default()
                    }
                }
            }
            Command::My => self.my(sender)?,
            Command::Status(id) => self.status(sender, &id)?,
            Command::Cancel(None) => {
                text::dialog_reply(lang, &Reply::NothingToCancel, false).unwrap_or_default()
            }
            Command::Cancel(Some(id)) => self.cancel(sender, &id)?,
            Command::Approve(id) => self.decide_text(sender, nick, &id, None)?,
            Command::Reject { order, reason } => {
                self.decide_text(sender, nick, &order, Some(reason))?
            }
            Command::Sync => self.sync_cmd(sender)?,
            Command::WhoHas { subject, all } => match self.who_has_indexed(&subject, all)? {
                Some(answer) => answer,
                None => {
                    // Not synced yet: ask JumpServer live (with the bot's own orders).
                    let is_address = crate::domain::target::classify(subject.trim())
                        .is_ok_and(|t| t.is_address());
                    let orders = self.bot_orders_text(subject.trim(), &[], is_address)?;
                    self.who_has_later(subject, all, orders, webhook.clone());
                    return Ok(None);
                }
            },
            Command::Revoke(id) => self.revoke_cmd(sender, nick, &id)?,
            Command::Renew { order, duration } => {
                self.renew_cmd(sender, admin, &order, duration)?
            }
        };
        Ok(Some(answer))
    }

    fn create_order(
        &self,
        sender: &DingUserId,
        nick: &str,
        request: Request,
        approvers: Vec<DingUserId>,
    ) -> Result<OrderId, DispatchError> {
        let now = self.now();
        let id = self.orders.next_id(now, &self.settings.tz).map_err(retry)?;
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
                approval_mode: order_mode(&self.policy),
                approvers,
            },
            now,
        );
        order.installation = self.installation.to_string();
        let rec = AuditRecord::new(
            now,
            Some(id.clone()),
            Actor::User(sender.clone()),
            AuditEvent::Requested,
            "request received",
        );
        self.orders
            .create(order, vec![JobKind::Prepare], vec![rec])
            .map_err(|e| DispatchError::Retry(e.to_string()))?;
        Ok(id)
    }

    pub(super) fn submit_host(
        &self,
        sender: &DingUserId,
        nick: &str,
        req: AccessRequest,
    ) -> Result<String, DispatchError> {
        let lang = self.lang();
        if let Err(v) = self.policy.check_request(sender, &req) {
            return Ok(text::policy_violation(lang, &v));
        }
        if let Err(why) = self.single_scope(&req.targets) {
            return Ok(why);
        }
        let approvers = self.policy.approvers_for(sender, &req.targets);
        if approvers.is_empty() {
            return Ok(text::no_approvers(lang));
        }
        // Same targets (as a set, canonical spellings) and role: the same ask. Duration and
        // reason do not make a new one; the reply says how to change them (withdraw first).
        let want: BTreeSet<String> = req.targets.iter().map(ToString::to_string).collect();
        let same = |o: &Order| match &o.request {
            Request::Host { role, .. } if *role == req.role => {
                self.targets_of(o)
                    .iter()
                    .map(ToString::to_string)
                    .collect::<BTreeSet<_>>()
                    == want
            }
            _ => false,
        };
        if let Some(answer) = self.existing_or_limited(sender, same)? {
            return Ok(answer);
        }
        let request = Request::Host {
            targets: req.targets.clone(),
            system: None,
            role: req.role,
            duration: req.duration,
            reason: req.reason.unwrap_or_default(),
        };
        let id = self.create_order(sender, nick, request, approvers)?;
        Ok(text::request_received(lang, &id))
    }

    /// The answer that replaces a new order, if any: the requester's open order that `same`
    /// recognises (asked again: one order, not two for approvers to wade through), else the
    /// refusal when they reached `workflow.max_new_orders_per_user`. `None`: go ahead.
    ///
    /// Both read the requester's stored orders, so the limit holds across restarts; the caller
    /// holds the requester's lock, so two messages cannot both pass the check.
    fn existing_or_limited(
        &self,
        sender: &DingUserId,
        same: impl Fn(&Order) -> bool,
    ) -> Result<Option<String>, DispatchError> {
        let lang = self.lang();
        let orders = self.orders.list_by_requester(sender).map_err(retry)?;
        if let Some(o) = orders.iter().find(|o| is_open(o.state) && same(o)) {
            let waiting_for: Option<Vec<String>> =
                matches!(o.state, State::Draft | State::PendingApproval).then(|| {
                    // No directory call here (this runs under the requester's lock): names
                    // seen before, else the userid.
                    o.approvers
                        .iter()
                        .map(|a| self.names.get(a).unwrap_or_else(|| a.to_string()))
                        .collect()
                });
            return Ok(Some(text::same_request_open(
                lang,
                &o.id,
                self.text().status_label(o),
                waiting_for.as_deref(),
            )));
        }
        let Some((max, window)) = self.settings.order_limit else {
            return Ok(None);
        };
        let now = self.now();
        // Newest first, so the max-th newest is the one whose leaving makes room.
        let recent: Vec<&Order> = match now.checked_sub(window) {
            Ok(since) => orders.iter().filter(|o| o.created_at > since).collect(),
            Err(_) => orders.iter().collect(),
        };
        let Some(nth) = recent.get(usize::try_from(max).unwrap_or(usize::MAX).saturating_sub(1))
        else {
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
            &self.settings.tz,
        )))
    }

    /// One order is one JumpServer permission: either a whole system's node, or hosts.
    fn single_scope(&self, targets: &[crate::domain::target::Target]) -> Result<(), String> {
        use crate::domain::target::Target;
        let with_node: Vec<&str> = targets
            .iter()
            .filter_map(|t| match t {
                Target::System(name) => self
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
            return Err(text::one_scope_per_request(self.lang()));
        }
        Ok(())
    }

    fn submit_account(&self, sender: &DingUserId, nick: &str) -> Result<String, DispatchError> {
        let lang = self.lang();
        if !self.policy.requesters.is_empty() && !self.policy.requesters.contains(sender) {
            return Ok(text::policy_violation(
                lang,
                &crate::domain::policy::PolicyViolation::NotAllowedToRequest,
            ));
        }
        let approvers = self.policy.approvers_for(sender, &[]);
        if approvers.is_empty() {
            return Ok(text::no_approvers(lang));
        }
        let same = |o: &Order| matches!(o.request, Request::Account { .. });
        if let Some(answer) = self.existing_or_limited(sender, same)? {
            return Ok(answer);
        }
        let id = self.create_order(
            sender,
            nick,
            Request::Account {
                reason: String::new(),
            },
            approvers,
        )?;
        Ok(text::account_request_done(lang, &id))
    }

    fn my(&self, sender: &DingUserId) -> Result<String, DispatchError> {
        let orders = self.orders.list_by_requester(sender).map_err(retry)?;
        let lines: Vec<String> = orders
            .iter()
            .filter(|o| !o.state.is_terminal())
            .map(|o| self.text().status_line(o))
            .collect();
        Ok(text::my_lines(self.lang(), &lines))
    }

    fn status(&self, sender: &DingUserId, id: &OrderId) -> Result<String, DispatchError> {
        let lang = self.lang();
        let Some(o) = self.orders.get(id).map_err(retry)? else {
            return Ok(text::order_not_found(lang, id));
        };
        if o.requester != *sender && !o.is_approver(sender) && !self.policy.is_admin(sender) {
            // Same answer as a missing order would leak nothing; but the user typed an id
            // they know exists, so say plainly that it is not theirs.
            return Ok(text::not_your_order(lang, id));
        }
        let approvers: Vec<String> = o.approvers.iter().map(|a| a.to_string()).collect();
        let decided = o.decided_by.as_ref().map(|d| {
            if d.as_str() == super::OA_DECIDER {
                text::oa_decider(lang).to_string()
            } else {
                d.to_string()
            }
        });
        let note = o
            .failure
            .as_ref()
            .map(|f| f.reason.clone())
            .or_else(|| o.closure.as_ref().and_then(|c| c.reason.clone()))
            .or_else(|| o.decision_reason.clone());
        Ok(text::status_detail(
            lang,
            &self.text().status_line(&o),
            &format!("{} ({})", o.requester_name, o.requester),
            &approvers,
            decided.as_deref(),
            note.as_deref(),
        ))
    }

    fn cancel(&self, sender: &DingUserId, id: &OrderId) -> Result<String, DispatchError> {
        let lang = self.lang();
        let has_cards = self.settings.approval_template().is_some();
        let res = self.orders.update(id, |o| {
            if o.requester != *sender {
                return Err(Refusal::Text(text::not_your_order(lang, id)));
            }
            if !matches!(o.state, State::Draft | State::PendingApproval) {
                return Err(Refusal::Text(text::not_pending(
                    lang,
                    id,
                    self.text().status_label(o),
                )));
            }
            let t = o
                .cancel(sender, self.now())
                .map_err(|e| Refusal::Text(e.to_string()))?;
            let mut jobs = Vec::new();
            if o.approval_mode == crate::domain::order::ApprovalMode::Oa {
                jobs.push(JobKind::TerminateOaApproval);
            }
            if has_cards {
                jobs.push(JobKind::UpdateCards);
            }
            jobs.push(JobKind::tell_requester(Notice::Cancelled));
            Ok(Change::from_transition(
                t,
                Actor::User(sender.clone()),
                "cancelled by the requester",
                jobs,
            ))
        });
        self.refusal_or(res, id, |_| String::new())
    }

    /// Maps an `Orders::update` result to the sender's answer; `ok` renders success ("" = the
    /// outbox message is the answer, nothing to add).
    pub(super) fn refusal_or<T>(
        &self,
        res: Result<T, CasError<Refusal>>,
        id: &OrderId,
        ok: impl FnOnce(T) -> String,
    ) -> Result<String, DispatchError> {
        match res {
            Ok(v) => Ok(ok(v)),
            Err(CasError::Refused(Refusal::Text(t))) => Ok(t),
            Err(CasError::NotFound(_)) => Ok(text::order_not_found(self.lang(), id)),
            Err(CasError::Stale { .. }) => Err(DispatchError::Retry(
                "order kept changing; try again".into(),
            )),
            Err(CasError::Store(e)) => Err(retry(e)),
        }
    }

    fn revoke_cmd(
        &self,
        sender: &DingUserId,
        nick: &str,
        id: &OrderId,
    ) -> Result<String, DispatchError> {
        let lang = self.lang();
        let res = self.orders.update(id, |o| {
            let t = o
                .revoke(
                    Some(sender),
                    Some("revoked by an administrator".into()),
                    self.now(),
                )
                .map_err(|_| {
                    Refusal::Text(text::not_active(lang, id, self.text().status_label(o)))
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
        self.refusal_or(res, id, |_| text::revoke_done(lang, id))
    }

    fn renew_cmd(
        &self,
        sender: &DingUserId,
        admin: bool,
        id: &OrderId,
        duration: Option<crate::domain::duration::AccessDuration>,
    ) -> Result<String, DispatchError> {
        let lang = self.lang();
        let now = self.now();
        let res = self.orders.update(id, |o| {
            if !admin && o.requester != *sender {
                return Err(Refusal::Text(text::admin_only(lang)));
            }
            if o.state != State::Active {
                return Err(Refusal::Text(text::not_active(
                    lang,
                    id,
                    self.text().status_label(o),
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
            let targets = self.targets_of(o);
            if let Err(v) = self.policy.check_duration(role, &targets, d) {
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
            let (max, _) = self.policy.max_duration(role, &targets);
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
                Some(d) if d.as_str() != super::OA_DECIDER => vec![d.clone()],
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
        self.refusal_or(res, id, |c| {
            if c.order.requester == *sender {
                // The requester reads the outbox's "renewed" message; no second one here.
                String::new()
            } else {
                match c.order.window {
                    Some(w) => text::renewed(lang, id, w.end, &self.settings.tz),
                    None => String::new(),
                }
            }
        })
    }

    /// Delivers the request form card (an artifact of a read-only answer: nothing recorded).
    fn send_form_later(&self, user: &DingUserId, msg_id: &str) {
        let Some(tpl) = self.settings.request_template() else {
            return;
        };
        let req = CardDelivery {
            template_id: tpl.to_string(),
            out_track_id: form_track_id(user, msg_id),
            params: crate::chat::card::request_form_vars(
                self.lang(),
                &command::ApplyDraft::default(),
                &self.policy,
            ),
            to: CardTarget::User(user.clone()),
            callback_route_key: self.settings.route_key(),
        };
        let chat = self.chat.clone();
        tokio::spawn(async move {
            if let Err(e) = chat.deliver_card(req).await {
                tracing::warn!(error = %e, "request form card not delivered");
            }
        });
    }

    /// A tap on a request form card: the same parsers and checks as a typed request.
    pub(super) fn on_form(
        &self,
        tapper: &DingUserId,
        params: &BTreeMap<String, String>,
    ) -> Result<crate::dispatch::DispatchReply, DispatchError> {
        use crate::chat::card::{read_form, request_form_submitted_vars, FormAction};
        let lang = self.lang();
        let now = self.now();
        let draft = match read_form(params) {
            Ok(FormAction::Submit(d)) => d,
            Ok(FormAction::Cancel) => {
                self.dialogs.delete(tapper).map_err(retry)?;
                self.tell_later(
                    tapper.clone(),
                    text::dialog_reply(lang, &Reply::Cancelled, false).unwrap_or_default(),
                );
                return Ok(crate::dispatch::DispatchReply::None);
            }
            Err(e) => {
                self.tell_later(tapper.clone(), text::card_input_error(lang, &e));
                return Ok(crate::dispatch::DispatchReply::None);
            }
        };
        let step = dialog::from_draft(draft, &self.policy, now.as_millisecond());
        match (step.reply, step.done) {
            (Reply::Complete, Some(req)) => {
                self.dialogs.delete(tapper).map_err(retry)?;
                let before = self.orders.list_by_requester(tapper).map_err(retry)?.len();
                let answer = self.submit_host(tapper, "", req)?;
                let orders = self.orders.list_by_requester(tapper).map_err(retry)?;
                self.tell_later(tapper.clone(), answer);
                if orders.len() > before {
                    if let Some(o) = orders.first() {
                        let vars = request_form_submitted_vars(lang, &o.id);
                        return Ok(crate::dispatch::DispatchReply::CardUpdate(
                            serde_json::json!({
                                "cardUpdateOptions": {"updateCardDataByKey": true},
                                "cardData": {"cardParamMap": vars},
                            }),
                        ));
                    }
                }
                Ok(crate::dispatch::DispatchReply::None)
            }
            (other, _) => {
                if let Some(s) = step.new_state {
                    self.dialogs.save(tapper, &s, now).map_err(retry)?;
                }
                self.tell_later(
                    tapper.clone(),
                    text::dialog_reply(lang, &other, false).unwrap_or_default(),
                );
                Ok(crate::dispatch::DispatchReply::None)
            }
        }
    }

    /// `/who-has` before the first `/sync`: asks JumpServer live, answers on the webhook when
    /// done; `orders` (the bot's own orders for the subject) is appended.
    fn who_has_later(
        &self,
        subject: String,
        all: bool,
        orders: Option<String>,
        webhook: Option<String>,
    ) {
        let bastion = self.bastion.clone();
        let policy = self.policy.clone();
        let tz = self.settings.tz.clone();
        let chat = self.chat.clone();
        tokio::spawn(async move {
            let live = who_has(bastion.as_ref(), &policy, &subject, all, &tz).await;
            let answer = match orders {
                Some(o) => format!("{live}\n\n{o}"),
                None => live,
            };
            if let Some(w) = webhook {
                let msg = OutMessage::text(answer);
                if let Err(e) = chat.reply_on_session(&w, &msg).await {
                    tracing::warn!(error = %e, "who-has reply failed");
                }
            }
        });
    }
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

/// outTrackId of a request form card: per user and message, so each `/apply` has its own.
pub(super) fn form_track_id(user: &DingUserId, msg_id: &str) -> String {
    let digest = hex::encode(sha2::Sha256::digest(msg_id.as_bytes()));
    format!(
        "{FORM_PREFIX}{}-{}",
        hex::encode(user.as_str().as_bytes()),
        digest.get(..16).unwrap_or(&digest)
    )
}

pub(super) const FORM_PREFIX: &str = "ab-form-";

/// `/who-has` before the first `/sync`, asked of JumpServer directly. Only users who can
/// connect now are listed unless `all`: a disabled user's permissions stay "valid" in
/// `asset-permissions/?is_valid=1` and `users/all/` (transcript 168), so each user is looked up.
async fn who_has(
    jms: &dyn Bastion,
    policy: &crate::domain::policy::Policy,
    subject: &str,
    all: bool,
    tz: &jiff::tz::TimeZone,
) -> String {
    let lang = policy.lang;
    let en = lang == text::Lang::En;
    let subject = subject.trim();
    // An address is a host; any other word is first a JumpServer username, else a host name.
    let is_address = crate::domain::target::classify(subject).is_ok_and(|t| t.is_address());
    if !is_address {
        match jms.find_user(subject).await {
            Ok(Some(user)) => {
                if !user.is_active && !all {
                    return text::who_has_user_disabled(lang, &user.username);
                }
                return match jms.granted_assets(&user.id).await {
                    Ok(assets) => {
                        let whats: Vec<String> = assets
                            .iter()
                            .map(|a| format!("{} ({})", a.name, a.address))
                            .collect();
                        let who = text::user_marked(lang, &user.username, user.is_active);
                        let live: Vec<text::LiveAccess<'_>> = whats
                            .iter()
                            .map(|w| text::LiveAccess {
                                who: &who,
                                what: w,
                                accounts: String::new(),
                                until: None,
                            })
                            .collect();
                        text::who_has_live(lang, subject, &live, tz)
                    }
                    Err(e) => text::who_has_failed(lang, &e.user_message(en)),
                };
            }
            Ok(None) => {}
            Err(e) => return text::who_has_failed(lang, &e.user_message(en)),
        }
    }
    let rows = match jms.who_can_reach(subject).await {
        Ok(rows) => rows,
        Err(e) => return text::who_has_failed(lang, &e.user_message(en)),
    };
    let words = crate::chat::order::OrderText { lang, tz, policy };
    let mut active: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    for r in &rows {
        if !active.contains_key(r.user_id.as_str()) {
            let ok = match jms.user(&r.user_id).await {
                Ok(Some(u)) => u.is_active,
                // Unknown here (another org): shown, since nothing says it cannot connect.
                Ok(None) => true,
                Err(e) => return text::who_has_failed(lang, &e.user_message(en)),
            };
            active.insert(r.user_id.as_str().to_owned(), ok);
        }
    }
    let is_active = |r: &Reacher| active.get(r.user_id.as_str()).copied().unwrap_or(true);
    let shown: Vec<&Reacher> = rows.iter().filter(|r| all || is_active(r)).collect();
    let hidden = rows.len() - shown.len();
    let whos: Vec<String> = shown
        .iter()
        .map(|r| text::user_marked(lang, &r.user_display, is_active(r)))
        .collect();
    let live: Vec<text::LiveAccess<'_>> = shown
        .iter()
        .zip(&whos)
        .map(|(r, who)| text::LiveAccess {
            who,
            what: &r.permission_name,
            accounts: words.logins(&r.accounts),
            until: r.date_expired,
        })
        .collect();
    let mut out = text::who_has_live(lang, subject, &live, tz);
    if hidden > 0 {
        out.push_str(&format!("\n{}", text::who_has_hidden(lang, hidden)));
    }
    out
}
