//! Decisions: approve / reject by text or card tap, OA results, leavers. Each decision is one
//! compare-and-swap on the order: of two approvers tapping at once exactly one commits, the
//! other is told who decided; a redelivered event finds the order decided and changes nothing.
use super::chat::Refusal;
use super::ports::{CasError, Committed, OrderStoreExt, OutboxJob};
use super::{retry, Workflow, OA_DECIDER};
use crate::chat::card::{self, ApprovalAction, CardVars};
use crate::chat::text;
use crate::dispatch::{DispatchError, DispatchReply};
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::change::Change;
use crate::domain::ids::{DingUserId, OrderId};
use crate::domain::jobs::JobKind;
use crate::domain::notice::Notice;
use crate::domain::order::{ApprovalMode, Order, State};
use crate::domain::policy::{DecisionSubject, Denied};
use crate::inbound::{
    ApprovalEvent, ApprovalEventKind, ApprovalOutcome, CardAction, OrgEvent, OrgEventKind,
};
use serde_json::json;
use std::collections::BTreeMap;

/// What a decision did.
pub(super) enum Decided {
    /// The order is approved (or rejected) now.
    Final(Order),
    /// One more approval recorded; `remaining` still needed.
    Partial { order: Order, remaining: u32 },
}

pub(super) enum DecideRefused {
    Denied(Denied),
    /// Not pending any more (decided, cancelled, timed out): the current order.
    NotPending(Box<Order>),
    OaMode,
    Invalid(String),
}

impl Workflow {
    /// The one place an approver's decision is recorded. `reason: None` approves.
    pub(super) fn decide(
        &self,
        by: &DingUserId,
        id: &OrderId,
        reason: Option<String>,
    ) -> Result<Decided, CasError<DecideRefused>> {
        let now = self.now();
        let has_cards = self.settings.approval_template().is_some();
        let mut partial_remaining = 0u32;
        let res = self.orders.update(id, |o| {
            if o.state != State::PendingApproval {
                return Err(DecideRefused::NotPending(Box::new(o.clone())));
            }
            if o.approval_mode == ApprovalMode::Oa {
                return Err(DecideRefused::OaMode);
            }
            let subject = DecisionSubject {
                requester: o.requester.clone(),
                approvers: o.approvers.clone(),
                decided_by: o.approvals.clone(),
            };
            self.policy
                .can_decide(by, &subject)
                .map_err(DecideRefused::Denied)?;
            let actor = Actor::User(by.clone());
            let mut jobs = Vec::new();
            if has_cards {
                jobs.push(JobKind::UpdateCards);
            }
            match &reason {
                None => {
                    let mut after = subject.clone();
                    after.decided_by.push(by.clone());
                    let recorded = o.with_approval(by, now);
                    if self.policy.approvals_complete(&after) {
                        let t = recorded
                            .approve(by, now)
                            .map_err(|e| DecideRefused::Invalid(e.to_string()))?;
                        jobs.insert(0, JobKind::Grant);
                        if !has_cards && o.approvers.len() > 1 {
                            jobs.push(JobKind::tell_approvers(Notice::Decided { approved: true }));
                        }
                        Ok(Change::from_transition(t, actor, "approved", jobs))
                    } else {
                        let done = after.decided_by.len() as u32;
                        partial_remaining = self.policy.approvals_required.saturating_sub(done);
                        let remaining = partial_remaining;
                        jobs.push(JobKind::tell_requester(Notice::ApprovedWaiting {
                            by: by.clone(),
                            remaining,
                        }));
                        let rec = AuditRecord::new(
                            now,
                            Some(o.id.clone()),
                            actor,
                            AuditEvent::Approved,
                            format!("approval recorded; {remaining} more needed"),
                        );
                        let mut c = Change::new(recorded).audit(rec);
                        c.jobs = jobs;
                        Ok(c)
                    }
                }
                Some(r) => {
                    let t = o
                        .reject(by, now, Some(r.clone()))
                        .map_err(|e| DecideRefused::Invalid(e.to_string()))?;
                    jobs.push(JobKind::tell_requester(Notice::Rejected));
                    if !has_cards && o.approvers.len() > 1 {
                        jobs.push(JobKind::tell_approvers(Notice::Decided { approved: false }));
                    }
                    Ok(Change::from_transition(t, actor, r.clone(), jobs))
                }
            }
        });
        res.map(|c: Committed| {
            if c.order.state == State::PendingApproval {
                Decided::Partial {
                    order: c.order,
                    remaining: partial_remaining,
                }
            } else {
                Decided::Final(c.order)
            }
        })
    }

    /// Display name of whoever decided or closed `o`, looked up in the directory.
    pub(super) async fn decider_display_name(&self, o: &Order) -> String {
        match o
            .decided_by
            .as_ref()
            .or(o.closure.as_ref().and_then(|c| c.by.as_ref()))
        {
            Some(user) => self.name_of(user).await,
            None => text::system_actor(self.lang()).to_string(),
        }
    }

    fn decider_name(&self, o: &Order) -> String {
        match &o.decided_by {
            Some(d) if d.as_str() == OA_DECIDER => text::oa_decider(self.lang()).to_string(),
            Some(d) => self.names.get(d).unwrap_or_else(|| d.to_string()),
            None => match &o.closure {
                Some(c) => {
                    c.by.as_ref()
                        .map(|u| self.names.get(u).unwrap_or_else(|| u.to_string()))
                        .unwrap_or_else(|| text::system_actor(self.lang()).to_string())
                }
                None => text::system_actor(self.lang()).to_string(),
            },
        }
    }

    fn refused_text(&self, id: &OrderId, r: &DecideRefused) -> String {
        let lang = self.lang();
        match r {
            DecideRefused::Denied(d) => text::denied(lang, d, id),
            DecideRefused::NotPending(o) => text::already_decided_by(
                lang,
                id,
                self.text().status_label(o),
                &self.decider_name(o),
                o.decided_at.or(o.closure.as_ref().map(|c| c.at)),
                &self.settings.tz,
            ),
            DecideRefused::OaMode => text::decide_in_oa(lang, id),
            DecideRefused::Invalid(e) => e.clone(),
        }
    }

    /// `/approve` and `/reject` typed (or sent by a dtmd button).
    pub(super) fn decide_text(
        &self,
        sender: &DingUserId,
        _nick: &str,
        id: &OrderId,
        reason: Option<String>,
    ) -> Result<String, DispatchError> {
        let lang = self.lang();
        let approved = reason.is_none();
        match self.decide(sender, id, reason) {
            Ok(Decided::Final(_)) => Ok(text::decision_recorded(lang, id, approved)),
            Ok(Decided::Partial { remaining, .. }) => {
                Ok(text::approval_recorded_waiting(lang, id, remaining))
            }
            Err(CasError::Refused(r)) => Ok(self.refused_text(id, &r)),
            Err(CasError::NotFound(_)) => Ok(text::order_not_found(lang, id)),
            Err(CasError::Stale { .. }) => Err(DispatchError::Retry("order busy".into())),
            Err(CasError::Store(e)) => Err(retry(e)),
        }
    }

    /// The approval card variables of `o` as it stands now. `decider` is the decider's display
    /// name when the caller could look it up (jobs); the tap response, which must answer within
    /// DingTalk's 2 s, shows a name seen before (else the userid) and the UpdateCards job
    /// replaces it with the looked-up name.
    pub(super) fn approval_card_vars(&self, o: &Order, decider: Option<&str>) -> CardVars {
        let who = decider
            .map(str::to_owned)
            .unwrap_or_else(|| self.decider_name(o));
        self.text().card_vars(o, &who)
    }

    pub(super) fn on_card(&self, a: CardAction) -> Result<DispatchReply, DispatchError> {
        let lang = self.lang();
        let tapper = a.user_id.clone();
        let params: BTreeMap<String, String> = a
            .params
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect();
        if let Some(rest) = a.out_track_id.strip_prefix(super::chat::FORM_PREFIX) {
            // A form card belongs to the user it was sent to; nobody else submits it.
            let owner = format!("{}-", hex::encode(tapper.as_str().as_bytes()));
            if !rest.starts_with(&owner) {
                self.tell_later(tapper, text::card_unknown(lang));
                return Ok(DispatchReply::None);
            }
            return self.on_form(&tapper, &params);
        }
        let Some(order) = self
            .orders
            .find_by_card_track_id(&a.out_track_id)
            .map_err(retry)?
        else {
            self.tell_later(tapper, text::card_unknown(lang));
            return Ok(DispatchReply::None);
        };
        let action = match card::read_approval(&params) {
            Ok(x) => x,
            Err(e) => {
                self.tell_later(tapper, text::card_input_error(lang, &e));
                return Ok(DispatchReply::None);
            }
        };
        let (id, reason) = match action {
            ApprovalAction::Approve(id) => (id, None),
            ApprovalAction::Reject { order, reason } => (order, Some(reason)),
        };
        if id != order.id {
            // A card's buttons only act on the card's own order.
            self.tell_later(tapper, text::card_unknown(lang));
            return Ok(DispatchReply::None);
        }
        match self.decide(&tapper, &id, reason) {
            Ok(Decided::Final(o)) | Ok(Decided::Partial { order: o, .. }) => {
                Ok(card_update(self.approval_card_vars(&o, None)))
            }
            Err(CasError::Refused(DecideRefused::NotPending(o))) => {
                self.tell_later(
                    tapper,
                    self.refused_text(&id, &DecideRefused::NotPending(o.clone())),
                );
                // The tapper's card catches up with the decision it missed.
                Ok(card_update(self.approval_card_vars(&o, None)))
            }
            Err(CasError::Refused(r)) => {
                self.tell_later(tapper, self.refused_text(&id, &r));
                Ok(DispatchReply::None)
            }
            Err(CasError::NotFound(_)) => {
                self.tell_later(tapper, text::card_unknown(lang));
                Ok(DispatchReply::None)
            }
            Err(CasError::Stale { .. }) => Err(DispatchError::Retry("order busy".into())),
            Err(CasError::Store(e)) => Err(retry(e)),
        }
    }

    /// `bpms_instance_change`: the OA instance decides its order.
    pub(super) fn on_approval(&self, ev: ApprovalEvent) -> Result<(), DispatchError> {
        let Some(order) = self
            .orders
            .find_by_oa_instance(&ev.process_instance_id)
            .map_err(retry)?
        else {
            tracing::info!(instance = %ev.process_instance_id, "approval event for an unknown instance; ignored");
            return Ok(());
        };
        let now = self.now();
        let oa = DingUserId::new(OA_DECIDER);
        let lang = self.lang();
        let res = self.orders.update(&order.id, |o| {
            if o.state != State::PendingApproval {
                return Err(Refusal::Text("not pending".into()));
            }
            let refuse = |e: crate::domain::order::TransitionError| Refusal::Text(e.to_string());
            match (&ev.kind, ev.result) {
                (ApprovalEventKind::Finish, Some(ApprovalOutcome::Agree)) => {
                    let t = o.approve(&oa, now).map_err(refuse)?;
                    Ok(Change::from_transition(
                        t,
                        Actor::System,
                        format!("OA instance {} agreed", ev.process_instance_id),
                        vec![JobKind::Grant],
                    ))
                }
                (ApprovalEventKind::Finish, Some(ApprovalOutcome::Refuse)) => {
                    let t = o
                        .reject(&oa, now, Some(text::oa_refused_reason(lang)))
                        .map_err(refuse)?;
                    Ok(Change::from_transition(
                        t,
                        Actor::System,
                        format!("OA instance {} refused", ev.process_instance_id),
                        vec![JobKind::tell_requester(Notice::Rejected)],
                    ))
                }
                (ApprovalEventKind::Terminate | ApprovalEventKind::Delete, _) => {
                    let t = o.cancel(&o.requester, now).map_err(refuse)?;
                    Ok(Change::from_transition(
                        t,
                        Actor::System,
                        format!("OA instance {} withdrawn", ev.process_instance_id),
                        vec![JobKind::tell_requester(Notice::WithdrawnOa)],
                    ))
                }
                _ => Err(Refusal::Text("no decision in this event".into())),
            }
        });
        match res {
            Ok(_) | Err(CasError::Refused(_)) | Err(CasError::NotFound(_)) => Ok(()),
            Err(CasError::Stale { .. }) => Err(DispatchError::Retry("order busy".into())),
            Err(CasError::Store(e)) => Err(retry(e)),
        }
    }

    /// `user_leave_org`: close everything the leaver has, disable their JumpServer user.
    pub(super) fn on_org(&self, ev: OrgEvent) -> Result<(), DispatchError> {
        if ev.kind != OrgEventKind::UserLeft {
            return Ok(());
        }
        let now = self.now();
        let has_cards = self.settings.approval_template().is_some();
        for user in &ev.user_ids {
            let orders = self.orders.list_by_requester(user).map_err(retry)?;
            let username = orders
                .iter()
                .find(|o| !o.jms_username.is_empty())
                .map(|o| o.jms_username.clone());
            for o in orders.iter().filter(|o| !o.state.is_terminal()) {
                let res = self.orders.update(&o.id, |cur| -> Result<Change, Refusal> {
                    let reason = "requester left the organisation".to_string();
                    match cur.state {
                        State::Draft | State::PendingApproval => {
                            let t = cur
                                .cancel(user, now)
                                .map_err(|e| Refusal::Text(e.to_string()))?;
                            let mut jobs = Vec::new();
                            if cur.approval_mode == ApprovalMode::Oa {
                                jobs.push(JobKind::TerminateOaApproval);
                            }
                            if has_cards {
                                jobs.push(JobKind::UpdateCards);
                            }
                            Ok(Change::from_transition(t, Actor::System, reason, jobs))
                        }
                        _ => {
                            let t = cur
                                .revoke(None, Some(reason.clone()), now)
                                .map_err(|e| Refusal::Text(e.to_string()))?;
                            let jobs = vec![JobKind::Revoke, JobKind::tell_admins(Notice::LeftOrg)];
                            Ok(Change::from_transition(t, Actor::System, reason, jobs))
                        }
                    }
                });
                match res {
                    Ok(_) | Err(CasError::Refused(_)) | Err(CasError::NotFound(_)) => {}
                    Err(CasError::Stale { .. }) => {
                        return Err(DispatchError::Retry("order busy".into()))
                    }
                    Err(CasError::Store(e)) => return Err(retry(e)),
                }
            }
            if let Some(username) = username {
                // Not tied to one order: a pseudo order key keeps the job unique per leaver.
                let key = OrderId::new(format!("leaver-{}", hex::encode(user.as_str())));
                let job = OutboxJob::new(&key, 0, 0, JobKind::DisableJmsUser { username }, now);
                self.orders.enqueue(&job).map_err(retry)?;
            }
        }
        Ok(())
    }
}

fn card_update(vars: CardVars) -> DispatchReply {
    DispatchReply::CardUpdate(json!({
        "cardUpdateOptions": {"updateCardDataByKey": true, "updatePrivateDataByKey": false},
        "cardData": {"cardParamMap": vars},
    }))
}
