//! The outbox side: every job of the workflow. Each one re-reads its order and acts on the
//! state it finds (a job can run again after a crash, or after the order moved on), and every
//! external effect has a stable identity: the permission name, the card outTrackIds, the OA
//! instance recorded on the order before anything else happens.
use super::ports::{
    dtmd_send_link, ApprovalDetail, ApprovalInstanceQuery, ApprovalResult, ApprovalStart,
    ApprovalState, ApprovalStatus, BastionError, CardButton, CardDelivery, CardTarget, CasError,
    ChatError, GrantPlan, NewUser, NewUserSpec, OrderStoreExt, OutMessage, OutboxJob, UserMatch,
};
use super::Workflow;
use crate::chat::message::Message;
use crate::chat::notice::{self as notices, NoticeContext};
use crate::chat::order::OrderText;
use crate::chat::{failures, text};
use crate::config::MissingLogin;
use crate::domain::access::RevokedHow;
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::change::Change;
use crate::domain::command::Lang;
use crate::domain::identity::{self, DirectoryEntry};
use crate::domain::ids::{DingUserId, JmsUserId};
use crate::domain::jobs::JobKind;
use crate::domain::notice::{Audience, FailureKind, Notice};
use crate::domain::order::{ApprovalMode, ChangePreview, GrantResult, Order, Request, State};
use crate::domain::target::Target;
use crate::inbound::{ApprovalEvent, ApprovalEventKind, ApprovalOutcome};
use crate::worker::outbox::{JobError, JobRunner};
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;

/// Most hosts whose current access is looked up for the approval (one call each).
const ALREADY_LOOKUPS: usize = 10;
/// After this many failed previews the approval goes out without one (saying so), so a
/// JumpServer outage does not hold approvals back.
const PREVIEW_ATTEMPTS: u32 = 2;

/// Slack around the recorded attempt when searching DingTalk for an instance it may have
/// created: its clock is not ours, and a wider window costs nothing since the match is on the
/// order id.
const OA_SEARCH_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// Whether an OA instance is this order's: started by its requester and carrying its id in the
/// order-id field (under either language's label, in case the language changed in between).
fn is_order_instance(d: &ApprovalDetail, o: &Order) -> bool {
    if d.originator.as_ref().is_some_and(|u| *u != o.requester) {
        return false;
    }
    let labels = [Lang::ZhCn, Lang::En].map(|l| text::oa_label(l, text::OaField::Order));
    d.form
        .iter()
        .any(|(name, value)| labels.contains(&name.as_str()) && value.trim() == o.id.as_str())
}

fn dt_err(e: ChatError) -> JobError {
    if e.is_transient() {
        JobError::transient(e.to_string())
    } else {
        JobError::permanent(e.to_string())
    }
}

fn jms_err(e: &BastionError) -> JobError {
    if e.is_transient() {
        JobError::transient(e.to_string())
    } else {
        JobError::permanent(e.to_string())
    }
}

fn store_err<E: std::fmt::Display>(e: E) -> JobError {
    JobError::transient(format!("storage: {e}"))
}

/// DingTalk markdown needs two trailing spaces for a line break.
fn md(s: &str) -> String {
    s.replace('\n', "  \n")
}

/// A rendered message as DingTalk sends it: a prompt becomes an action card whose buttons send
/// their command back through `dtmd://` links.
fn out_message(m: Message) -> OutMessage {
    match m {
        Message::Text(t) => OutMessage::text(t),
        Message::Prompt {
            title,
            text,
            buttons,
        } => OutMessage::ActionCard {
            title,
            text: md(&text),
            buttons: buttons
                .into_iter()
                .map(|b| CardButton::new(b.label, dtmd_send_link(&b.sends)))
                .collect(),
        },
    }
}

impl JobRunner for Workflow {
    fn run(&self, job: &OutboxJob) -> impl Future<Output = Result<(), JobError>> + Send {
        self.run_job(job)
    }

    fn gave_up(&self, job: &OutboxJob, reason: &str) -> impl Future<Output = ()> + Send {
        self.job_gave_up(job, reason.to_string())
    }
}

impl Workflow {
    async fn run_job(&self, job: &OutboxJob) -> Result<(), JobError> {
        if let JobKind::DisableJmsUser { username } = &job.kind {
            return self.disable_user(username).await;
        }
        if let JobKind::Sync { requested_by } = &job.kind {
            return self.run_sync(job, requested_by).await;
        }
        let Some(o) = self.orders.get(&job.order_id).map_err(store_err)? else {
            tracing::warn!(job = %job.id, "job for a missing order; dropped");
            return Ok(());
        };
        match &job.kind {
            JobKind::Prepare => self.prepare(job, &o).await,
            JobKind::SendApprovalRequest { approver } => self.send_approval(&o, approver).await,
            JobKind::StartOaApproval => self.start_oa(&o).await,
            JobKind::TerminateOaApproval => self.terminate_oa(&o).await,
            JobKind::Notify { to, notice } => self.notify(&o, to, notice).await,
            JobKind::UpdateCards => self.update_cards(&o).await,
            JobKind::Grant => self.grant(job, &o).await,
            JobKind::Revoke => self.revoke(&o).await,
            JobKind::Renew => self.renew(&o).await,
            JobKind::DisableJmsUser { .. } | JobKind::Sync { .. } => Ok(()),
        }
    }

    /// Sends `notice` about `o` to `to`, rendered from the order as it is now.
    async fn notify(&self, o: &Order, to: &Audience, notice: &Notice) -> Result<(), JobError> {
        if to == &Audience::Requester && notice == &Notice::Submitted {
            self.deliver_requester_card(o).await?;
        }
        let recipients: Vec<DingUserId> = match to {
            Audience::Requester => vec![o.requester.clone()],
            Audience::User(u) => vec![u.clone()],
            Audience::Approvers => o
                .approvers
                .iter()
                .filter(|a| Some(*a) != o.decided_by.as_ref())
                .cloned()
                .collect(),
            Audience::Admins => self.policy.admins.iter().cloned().collect(),
        };
        if recipients.is_empty() {
            return Ok(());
        }
        match self.render(o, notice).await {
            Some(m) => self.send(&recipients, &m).await,
            None => Ok(()),
        }
    }

    /// Renders a notice at send time from the order as it is now, after looking up the names
    /// it shows.
    async fn render(&self, o: &Order, notice: &Notice) -> Option<OutMessage> {
        let mut names: HashMap<DingUserId, String> = HashMap::new();
        for u in notices::mentions(o, notice) {
            let name = self.name_of(&u).await;
            names.insert(u, name);
        }
        let name_of = |u: &DingUserId| names.get(u).cloned().unwrap_or_else(|| u.to_string());
        let cx = NoticeContext {
            text: self.text(),
            jms_web_url: self.settings.jms_web_url.as_deref(),
            now: self.now(),
            name_of: &name_of,
        };
        notices::render(&cx, o, notice).map(out_message)
    }

    async fn send(&self, to: &[DingUserId], m: &OutMessage) -> Result<(), JobError> {
        let sent = self.chat.send_to_users(to, m).await.map_err(dt_err)?;
        // Re-sending to everyone would duplicate the message for those who got it; only a
        // single throttled recipient is worth a retry.
        if to.len() == 1 && !sent.throttled.is_empty() {
            return Err(JobError::transient("recipient is flow-controlled"));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ prepare ----------

    async fn prepare(&self, job: &OutboxJob, o: &Order) -> Result<(), JobError> {
        if o.state != State::Draft {
            return Ok(());
        }
        let user = match self.chat.look_up_user(&o.requester).await {
            Ok(u) => u,
            Err(e) if e.is_transient() => return Err(JobError::transient(e.to_string())),
            Err(e) => {
                let detail = text::not_in_directory(self.lang(), &e.to_string());
                return self.fail_prepare(o, &detail).await;
            }
        };
        let entry = DirectoryEntry {
            userid: user.userid.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            org_email: user.org_email.clone(),
            job_number: user.job_number.clone(),
            mobile: user.mobile.clone(),
        };
        let username = match identity::jms_username(&self.policy.identity, &entry) {
            Ok(u) => u,
            Err(e) => {
                return self
                    .fail_prepare(o, &text::identity_error(self.lang(), &e))
                    .await
            }
        };
        let name = if user.name.trim().is_empty() {
            o.requester_name.clone()
        } else {
            user.name.clone()
        };
        let email = user.email.clone().or(user.org_email.clone());
        let now = self.now();
        let preview = match &o.request {
            Request::Account { .. } => match self.bastion.find_user(&username).await {
                Ok(Some(_)) => {
                    // Nothing to approve: say so and close the request.
                    let res = self.orders.update(&o.id, |cur| {
                        if cur.state != State::Draft {
                            return Err("moved on");
                        }
                        let mut t = cur.cancel(&cur.requester, now).map_err(|_| "moved on")?;
                        t.order.jms_username = username.clone();
                        if let Some(c) = t.order.closure.as_mut() {
                            c.reason = Some("account exists".into());
                        }
                        Ok(Change::from_transition(
                            t,
                            Actor::System,
                            "the JumpServer account exists already",
                            vec![JobKind::tell_requester(Notice::AccountExists)],
                        ))
                    });
                    return cas_done(res);
                }
                Ok(None) => ChangePreview {
                    user_exists: false,
                    ..ChangePreview::default()
                },
                Err(e) if e.is_transient() && job.attempts < PREVIEW_ATTEMPTS => {
                    return Err(jms_err(&e))
                }
                Err(e) => ChangePreview {
                    unavailable: Some(e.user_message(self.en())),
                    ..ChangePreview::default()
                },
            },
            Request::Host { .. } => {
                let end = now
                    .checked_add(
                        o.request
                            .duration()
                            .unwrap_or(SignedDuration::from_hours(1)),
                    )
                    .unwrap_or(now);
                let plan = self.plan_for(o, &username, &name, email.clone(), now, end);
                match self.preview(&plan).await {
                    Ok(p) => p,
                    Err(e) if e.is_transient() && job.attempts < PREVIEW_ATTEMPTS => {
                        return Err(jms_err(&e))
                    }
                    Err(e) => {
                        let (node, addresses, whole) = self.grant_scope(&self.targets_of(o));
                        ChangePreview {
                            node,
                            whole_node: whole,
                            hosts_to_create: addresses,
                            accounts: plan.accounts.clone(),
                            actions: plan.actions.clone(),
                            unavailable: Some(e.user_message(self.en())),
                            ..ChangePreview::default()
                        }
                    }
                }
            }
        };
        if preview.unavailable.is_none() {
            if let Some((detail, admins)) = self.refusal_after_preview(o, &preview) {
                let notice = JobKind::tell_requester(Notice::NotTaken {
                    detail: detail.clone(),
                });
                return self.close_draft(o, &detail, notice, admins);
            }
        }
        // Routed again with the addresses host names resolved to: a name inside a system's
        // range goes to that system's approvers.
        let approvers = match &o.request {
            Request::Host { .. } if !preview.resolved.is_empty() => {
                let routed = self
                    .policy
                    .approvers_for(&o.requester, &self.routing_targets(o, &preview));
                if routed.is_empty() {
                    o.approvers.clone()
                } else {
                    routed
                }
            }
            _ => o.approvers.clone(),
        };
        let with_cards =
            o.approval_mode == ApprovalMode::Card && self.settings.approval_template().is_some();
        let res = self.orders.update(&o.id, |cur| {
            if cur.state != State::Draft {
                return Err("moved on");
            }
            let mut t = cur.submit(now).map_err(|_| "moved on")?;
            t.order.approvers = approvers.clone();
            t.order.jms_username = username.clone();
            t.order.requester_name = name.clone();
            t.order.requester_email = email.clone();
            t.order.preview = Some(preview.clone());
            if with_cards {
                // Recorded before any card exists, so a tap always finds its order.
                let mut ord = t.order.clone();
                for a in &approvers {
                    ord = ord.with_card_track_id(cur.card_track_id(a), now);
                }
                ord = ord.with_card_track_id(cur.requester_card_track_id(), now);
                t.order = ord;
            }
            let mut jobs = Vec::new();
            match cur.approval_mode {
                ApprovalMode::Oa => jobs.push(JobKind::StartOaApproval),
                ApprovalMode::Card => {
                    for a in &approvers {
                        jobs.push(JobKind::SendApprovalRequest {
                            approver: a.clone(),
                        });
                    }
                }
            }
            jobs.push(JobKind::tell_requester(Notice::Submitted));
            Ok(Change::from_transition(
                t,
                Actor::System,
                format!("identity {username}; approval requested"),
                jobs,
            ))
        });
        cas_done(res)
    }

    /// Closes a draft whose requester cannot be mapped to JumpServer, telling them why.
    async fn fail_prepare(&self, o: &Order, detail: &str) -> Result<(), JobError> {
        self.close_draft(
            o,
            detail,
            JobKind::tell_requester(Notice::IdentityFailed {
                detail: detail.to_string(),
            }),
            None,
        )
    }

    /// Closes a draft before approval (`cancel` by the system), with the requester's notice and,
    /// when something needs a person, one for the admins.
    fn close_draft(
        &self,
        o: &Order,
        detail: &str,
        notice: JobKind,
        admins: Option<JobKind>,
    ) -> Result<(), JobError> {
        let now = self.now();
        let res = self.orders.update(&o.id, |cur| {
            if cur.state != State::Draft {
                return Err("moved on");
            }
            let mut t = cur.cancel(&cur.requester, now).map_err(|_| "moved on")?;
            if let Some(c) = t.order.closure.as_mut() {
                c.reason = Some(detail.to_string());
            }
            let mut jobs = vec![notice.clone()];
            jobs.extend(admins.clone());
            Ok(Change::from_transition(
                t,
                Actor::System,
                format!("cannot proceed: {detail}"),
                jobs,
            ))
        });
        cas_done(res)
    }

    /// What the preview found that stops a request before approval: a name that matches several
    /// hosts, a system limit the resolved addresses fall under, or (when so configured) a host
    /// without the role's login. `Some((requester's detail, admins' notice))`.
    fn refusal_after_preview(
        &self,
        o: &Order,
        p: &ChangePreview,
    ) -> Option<(String, Option<JobKind>)> {
        let lang = self.lang();
        if let Some((name, candidates)) = p.ambiguous.first() {
            return Some((text::ambiguous_host(lang, name, candidates), None));
        }
        if let (Some(role), Some(d)) = (o.request.role(), o.request.access_duration()) {
            let routed = self.routing_targets(o, p);
            if let Err(v) = self.policy.check_duration(role, &routed, d) {
                return Some((text::policy_violation(lang, &v), None));
            }
        }
        if self.settings.missing_login == MissingLogin::Refuse && !p.missing_logins.is_empty() {
            let admins = JobKind::tell_admins(Notice::MissingLogins { refused: true });
            return Some((
                text::missing_logins_refused(lang, &p.missing_logins),
                Some(admins),
            ));
        }
        None
    }

    /// The order's targets with each host name that JumpServer resolved replaced by its
    /// address, so a name is routed by the `[[systems]]` range of its address and cannot dodge
    /// it. A name a system lists by name keeps routing there too.
    fn routing_targets(&self, o: &Order, p: &ChangePreview) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        let mut push = |t: Target| {
            if !out.contains(&t) {
                out.push(t);
            }
        };
        for t in self.targets_of(o) {
            let Target::Hostname(name) = &t else {
                push(t);
                continue;
            };
            let address = p
                .resolved
                .iter()
                .find(|(asked, _)| asked.eq_ignore_ascii_case(name.key()))
                .and_then(|(_, a)| a.parse::<std::net::IpAddr>().ok());
            match address {
                Some(ip) => {
                    if !self.policy.systems_for(std::slice::from_ref(&t)).is_empty() {
                        push(t.clone());
                    }
                    // JumpServer's address, in the one form policy judges.
                    push(Target::address(ip));
                }
                None => push(t),
            }
        }
        out
    }

    pub(super) fn plan_for(
        &self,
        o: &Order,
        username: &str,
        name: &str,
        email: Option<String>,
        start: Timestamp,
        end: Timestamp,
    ) -> GrantPlan {
        let (node, addresses, _) = self.grant_scope(&self.targets_of(o));
        let rp = self.policy.role(OrderText::role(o));
        let reason = o.request.reason();
        let mut comment = format!("{} {} ({})", o.id, o.requester_name, o.requester);
        if !reason.is_empty() {
            comment.push_str(&format!("\nreason: {reason}"));
        }
        GrantPlan {
            username: username.to_string(),
            email: email.clone(),
            new_user: if self.policy.auto_create_user {
                email.map(|email| NewUser {
                    name: name.to_string(),
                    email,
                })
            } else {
                None
            },
            node_name: node,
            addresses,
            platform: self.settings.platform.clone(),
            accounts: rp.accounts.clone(),
            actions: rp.actions.clone(),
            protocols: Vec::new(),
            date_start: start,
            date_expired: end,
            permission_name: o.permission_name(),
            comment,
            owner: o.marker(),
        }
    }

    async fn preview(&self, plan: &GrantPlan) -> Result<ChangePreview, BastionError> {
        let p = self.bastion.preview(plan).await?;
        let mut already = Vec::new();
        if let Some(uid) = &p.user_id {
            let hosts = p.hosts_existing_labels.iter().zip(&p.addresses);
            for (label, address) in hosts.take(ALREADY_LOOKUPS) {
                match self.bastion.who_can_reach(address).await {
                    Ok(rows) => {
                        let mine: Vec<Option<Timestamp>> = rows
                            .iter()
                            .filter(|r| &r.user_id == uid)
                            .map(|r| r.date_expired)
                            .collect();
                        if !mine.is_empty() {
                            // No end on any permission beats every end.
                            let until = if mine.iter().any(Option::is_none) {
                                None
                            } else {
                                mine.into_iter().flatten().max()
                            };
                            already.push((label.clone(), until));
                        }
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "current access lookup failed; preview without it")
                    }
                }
            }
        }
        let user_matched = match (p.user_match, &p.username) {
            (Some(UserMatch::Email), Some(u)) => Some((u.clone(), true)),
            (Some(UserMatch::UsernameOtherCase), Some(u)) => Some((u.clone(), false)),
            _ => None,
        };
        Ok(ChangePreview {
            user_exists: p.user_exists,
            user_active: p.user_active,
            node: plan.node_name.clone(),
            whole_node: plan.addresses.is_empty(),
            hosts_existing: p.hosts_existing_labels.clone(),
            hosts_to_create: p.hosts_to_create.clone(),
            accounts: plan.accounts.clone(),
            actions: plan.actions.clone(),
            already,
            unavailable: None,
            user_matched,
            missing_logins: p
                .accounts_missing
                .iter()
                .map(|m| (m.address.clone(), m.username.clone()))
                .collect(),
            permission_name: p.permission_name.clone(),
            permission_repair: p.permission_exists,
            name_conflicts: p.name_conflicts.clone(),
            hosts_renamed: p.hosts_renamed.clone(),
            ambiguous: p.ambiguous.clone(),
            resolved: p
                .hosts_existing
                .iter()
                .map(|h| h.address.clone())
                .zip(p.addresses.iter().cloned())
                .collect(),
        })
    }

    async fn send_approval(&self, o: &Order, approver: &DingUserId) -> Result<(), JobError> {
        if o.state != State::PendingApproval {
            return Ok(());
        }
        if let Some(tpl) = self.settings.approval_template() {
            let req = CardDelivery {
                template_id: tpl.to_string(),
                out_track_id: o.card_track_id(approver),
                params: self.approval_card_vars(o, None),
                to: CardTarget::User(approver.clone()),
                callback_route_key: self.settings.route_key(),
            };
            return self.chat.deliver_card(req).await.map_err(dt_err);
        }
        let msg = out_message(self.text().approval_prompt(o));
        self.send(std::slice::from_ref(approver), &msg).await
    }

    /// The requester's status card (approval template, no buttons), when cards are configured.
    async fn deliver_requester_card(&self, o: &Order) -> Result<(), JobError> {
        let Some(tpl) = self.settings.approval_template() else {
            return Ok(());
        };
        if o.approval_mode != ApprovalMode::Card {
            return Ok(());
        }
        let mut vars = self.approval_card_vars(o, None);
        vars.insert("buttons_visible".into(), "false".into());
        let req = CardDelivery {
            template_id: tpl.to_string(),
            out_track_id: o.requester_card_track_id(),
            params: vars,
            to: CardTarget::User(o.requester.clone()),
            callback_route_key: self.settings.route_key(),
        };
        self.chat.deliver_card(req).await.map_err(dt_err)
    }

    async fn update_cards(&self, o: &Order) -> Result<(), JobError> {
        if self.settings.approval_template().is_none() || o.approval_mode != ApprovalMode::Card {
            return Ok(());
        }
        let who = self.decider_display_name(o).await;
        let vars = self.approval_card_vars(o, Some(&who));
        let mut targets: Vec<(String, BTreeMap<String, String>)> = o
            .approvers
            .iter()
            .map(|a| (o.card_track_id(a), vars.clone()))
            .collect();
        let mut mine = vars.clone();
        mine.insert("buttons_visible".into(), "false".into());
        targets.push((o.requester_card_track_id(), mine));
        for (track, vars) in targets {
            match self.chat.update_card(&track, vars).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => return Err(JobError::transient(e.to_string())),
                // A card that was never delivered cannot be updated; the others still are.
                Err(e) => tracing::warn!(card = %track, error = %e, "card update refused"),
            }
        }
        Ok(())
    }

    /// Starts the order's OA approval exactly once. DingTalk's start has no idempotency key, so
    /// the attempt is recorded on the order before the call; a run that finds that mark
    /// without an instance id (the answer was lost, or the process died before recording it)
    /// first looks in DingTalk for the instance carrying this order's id, and starts a new one
    /// only when there is none.
    async fn start_oa(&self, o: &Order) -> Result<(), JobError> {
        if o.approval_refs.oa_instance_id.is_some() || o.state != State::PendingApproval {
            return Ok(());
        }
        let Some(code) = self.policy.process_code.clone() else {
            return Err(JobError::permanent("approval.process_code is not set"));
        };
        if let Some(at) = o.approval_refs.oa_start_attempted_at {
            if let Some((instance, detail)) = self.find_started_oa(o, &code, at).await? {
                tracing::info!(order = %o.id, instance = %instance, "OA instance from an unconfirmed start found; not starting another");
                self.record_oa_instance(o, &instance, "found after an unconfirmed start")?;
                return self.apply_found_oa(&instance, &detail.state);
            }
        }
        let now = self.now();
        let marked = self.orders.update(&o.id, |cur| {
            if cur.approval_refs.oa_instance_id.is_some() || cur.state != State::PendingApproval {
                return Err("moved on");
            }
            Ok(Change::new(cur.with_oa_start_attempt(now)))
        });
        match marked {
            Ok(_) => {}
            Err(CasError::Refused(_)) | Err(CasError::NotFound(_)) => return Ok(()),
            Err(CasError::Stale { .. }) => return Err(JobError::transient("order kept changing")),
            Err(CasError::Store(e)) => return Err(store_err(e)),
        }
        let instance = self
            .chat
            .start_approval(ApprovalStart {
                process_code: code,
                originator: o.requester.clone(),
                dept_id: -1,
                approvers: o.approvers.clone(),
                form: self.text().oa_form(o),
            })
            .await
            .map_err(dt_err)?;
        // Recorded at once: the result event is matched to the order through it.
        self.record_oa_instance(o, &instance, "started")
    }

    /// The instance an earlier, unconfirmed start of this order created, if DingTalk has one:
    /// the requester's instances of the template since the first attempt, matched on the
    /// order-id form field.
    async fn find_started_oa(
        &self,
        o: &Order,
        code: &str,
        attempted_at: Timestamp,
    ) -> Result<Option<(String, ApprovalDetail)>, JobError> {
        let now = self.now();
        let from = attempted_at
            .checked_sub(OA_SEARCH_SKEW)
            .unwrap_or(attempted_at);
        let to = now.checked_add(OA_SEARCH_SKEW).unwrap_or(now);
        let q = ApprovalInstanceQuery {
            process_code: code.to_string(),
            start_ms: from.as_millisecond(),
            end_ms: Some(to.as_millisecond()),
            originators: vec![o.requester.clone()],
        };
        let ids = self.chat.find_approvals(&q).await.map_err(dt_err)?;
        for id in ids {
            match self.chat.approval_detail(&id).await {
                Ok(d) if is_order_instance(&d, o) => return Ok(Some((id, d))),
                Ok(_) => {}
                Err(e) if e.is_transient() => return Err(dt_err(e)),
                // Gone since it was listed (deleted): it cannot be ours to follow.
                Err(e) => {
                    tracing::info!(instance = %id, error = %e, "listed OA instance unreadable; skipped")
                }
            }
        }
        Ok(None)
    }

    fn record_oa_instance(&self, o: &Order, instance: &str, how: &str) -> Result<(), JobError> {
        let now = self.now();
        let res = self.orders.update(&o.id, |cur| {
            if cur.approval_refs.oa_instance_id.is_some() {
                return Err("already recorded");
            }
            let rec = AuditRecord::new(
                now,
                Some(cur.id.clone()),
                Actor::System,
                AuditEvent::Note,
                format!("OA approval instance {instance} ({how})"),
            );
            Ok(Change::new(cur.with_oa_instance(instance, now)).audit(rec))
        });
        cas_done(res)
    }

    /// A recovered instance may have been decided while it was unknown here, and its result
    /// event was then ignored; its state is applied as that event would have been.
    fn apply_found_oa(&self, instance: &str, st: &ApprovalState) -> Result<(), JobError> {
        let (kind, result) = match (&st.status, &st.result) {
            (ApprovalStatus::Completed, Some(ApprovalResult::Agree)) => {
                (ApprovalEventKind::Finish, Some(ApprovalOutcome::Agree))
            }
            (ApprovalStatus::Completed, Some(ApprovalResult::Refuse)) => {
                (ApprovalEventKind::Finish, Some(ApprovalOutcome::Refuse))
            }
            (ApprovalStatus::Terminated | ApprovalStatus::Canceled, _) => {
                (ApprovalEventKind::Terminate, None)
            }
            _ => return Ok(()),
        };
        let ev = ApprovalEvent {
            event_id: None,
            process_instance_id: instance.to_string(),
            process_code: None,
            kind,
            result,
            staff_id: None,
            finish_time_ms: None,
        };
        self.on_approval(ev)
            .map_err(|e| JobError::transient(e.to_string()))
    }

    async fn terminate_oa(&self, o: &Order) -> Result<(), JobError> {
        let inst = match (
            &o.approval_refs.oa_instance_id,
            o.approval_refs.oa_start_attempted_at,
        ) {
            (Some(i), _) => i.clone(),
            // A start whose answer was lost may still have made an instance: find it, so it is
            // not left to be approved in DingTalk for an order that no longer waits for it.
            (None, Some(at)) => {
                let Some(code) = self.policy.process_code.clone() else {
                    return Ok(());
                };
                match self.find_started_oa(o, &code, at).await {
                    Ok(Some((i, _))) => {
                        self.record_oa_instance(o, &i, "found to terminate")?;
                        i
                    }
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            (None, None) => return Ok(()),
        };
        match self
            .chat
            .terminate_approval(&inst, "accessbot: request closed")
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is_transient() => Err(JobError::transient(e.to_string())),
            Err(e) => {
                // Already finished or withdrawn: nothing left to stop.
                tracing::info!(instance = %inst, error = %e, "OA instance not terminated");
                Ok(())
            }
        }
    }

    // ------------------------------------------------------------------ grant ----------

    async fn grant(&self, job: &OutboxJob, o: &Order) -> Result<(), JobError> {
        let now = self.now();
        let o = match o.state {
            State::Provisioning => o.clone(),
            State::Approved | State::FailedRetrying => {
                let res = self.orders.update(&o.id, |cur| {
                    if !matches!(cur.state, State::Approved | State::FailedRetrying) {
                        return Err("moved on");
                    }
                    let t = cur.start_provisioning(now).map_err(|_| "moved on")?;
                    Ok(Change::from_transition(
                        t,
                        Actor::System,
                        "granting",
                        vec![],
                    ))
                });
                match res {
                    Ok(c) => c.order,
                    Err(CasError::Refused(_)) | Err(CasError::NotFound(_)) => return Ok(()),
                    Err(e) => return Err(store_err(e)),
                }
            }
            // Active: done before (a re-run after a crash); anything else: nothing to grant.
            _ => return Ok(()),
        };
        let result = match &o.request {
            Request::Account { .. } => self.create_account(&o).await,
            Request::Host { .. } => {
                let Some(w) = o.window else {
                    return self
                        .grant_failed(&o, FailureKind::Internal, "approved order without a window")
                        .await;
                };
                let plan = self.plan_for(
                    &o,
                    &o.jms_username,
                    &o.requester_name,
                    o.requester_email.clone(),
                    w.start,
                    w.end,
                );
                self.bastion.grant(&plan).await.map(|out| GrantResult {
                    permission_name: Some(out.permission_name.clone()),
                    permission_id: Some(out.permission_id.clone()),
                    hosts: out
                        .readback
                        .hosts
                        .iter()
                        .map(|h| h.label())
                        .chain(out.readback.unreachable.iter().cloned())
                        .collect(),
                    account: Some(
                        plan.accounts
                            .iter()
                            .filter(|a| a.as_str() != "@SPEC")
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    readback: Some(out.readback),
                    name_conflicts: out.name_conflicts,
                    revocation: None,
                })
            }
        };
        match result {
            Ok(g) => {
                // No card update here: an active grant shows the same card as the approval,
                // which the decision already queued.
                let res = self.orders.update(&o.id, |cur| {
                    if cur.state != State::Provisioning {
                        return Err("moved on");
                    }
                    let mut t = cur.provisioned(g.clone(), now).map_err(|_| "moved on")?;
                    if let Some(rb) = &g.readback {
                        // The user the grant went to (found by e-mail, or in another case).
                        if !rb.username.is_empty() {
                            t.order.jms_username = rb.username.clone();
                        }
                    }
                    let mut jobs = vec![JobKind::tell_requester(Notice::Granted)];
                    if !g.name_conflicts.is_empty() {
                        jobs.push(JobKind::tell_admins(Notice::NameConflicts));
                    }
                    if g.readback
                        .as_ref()
                        .is_some_and(|rb| !rb.missing_logins().is_empty())
                    {
                        jobs.push(JobKind::tell_admins(Notice::MissingLogins {
                            refused: false,
                        }));
                    }
                    let detail = g.permission_name.clone().unwrap_or_default();
                    Ok(Change::from_transition(t, Actor::System, detail, jobs))
                });
                cas_done(res)
            }
            Err(e) if e.is_transient() => {
                let until = job.created_at.checked_add(self.settings.retry).ok();
                let first = o.failure.is_none();
                let reason = e.to_string();
                let detail = e.user_message(self.en());
                let res = self.orders.update(&o.id, |cur| {
                    if cur.state != State::Provisioning {
                        return Err("moved on");
                    }
                    let t = cur
                        .provisioning_failed(reason.clone(), until, now)
                        .map_err(|_| "moved on")?;
                    Ok(Change::from_transition(
                        t,
                        Actor::System,
                        reason.clone(),
                        vec![],
                    ))
                });
                cas_done(res)?;
                if first {
                    // This order's queued jobs wait behind the retrying grant, so the "we keep
                    // trying" notice goes out directly, once: only the first recorded failure
                    // sends it (at most once; a crash right here loses it, never doubles it).
                    let notice = Notice::Failed {
                        kind: FailureKind::JumpServerUnavailable,
                        detail,
                    };
                    if let Some(m) = self.render(&o, &notice).await {
                        if let Err(e) = self.send(std::slice::from_ref(&o.requester), &m).await {
                            tracing::warn!(order = %o.id, error = %e, "retry notice not sent");
                        }
                    }
                }
                Err(JobError::transient(e.to_string()))
            }
            Err(e) => {
                let detail = e.user_message(self.en());
                self.grant_failed(&o, e.kind, &detail).await
            }
        }
    }

    async fn create_account(&self, o: &Order) -> Result<GrantResult, BastionError> {
        let username = o.jms_username.clone();
        if self.bastion.find_user(&username).await?.is_none() {
            let Some(email) = o.requester_email.clone() else {
                return Err(BastionError::invalid(
                    text::no_email_for_user(Lang::En),
                    text::no_email_for_user(Lang::ZhCn),
                ));
            };
            self.bastion
                .create_user(&NewUserSpec {
                    name: o.requester_name.clone(),
                    username: username.clone(),
                    email,
                    comment: o.marker().comment(&[]),
                })
                .await?;
        }
        Ok(GrantResult {
            account: Some(username),
            ..GrantResult::default()
        })
    }

    /// Final failure: the order is `Failed`, requester and admins are told why.
    async fn grant_failed(
        &self,
        o: &Order,
        kind: FailureKind,
        detail: &str,
    ) -> Result<(), JobError> {
        let now = self.now();
        let res = self.orders.update(&o.id, |cur| {
            let cur_p = match cur.state {
                State::Provisioning => cur.clone(),
                State::FailedRetrying | State::Approved => {
                    cur.start_provisioning(now).map_err(|_| "moved on")?.order
                }
                _ => return Err("moved on"),
            };
            let t = cur_p
                .provisioning_failed(detail.to_string(), None, now)
                .map_err(|_| "moved on")?;
            let mut t = t;
            t.from = cur.state;
            let jobs = vec![
                JobKind::tell_requester(Notice::Failed {
                    kind,
                    detail: detail.to_string(),
                }),
                JobKind::tell_admins(Notice::AdminFailed {
                    detail: detail.to_string(),
                }),
            ];
            Ok(Change::from_transition(
                t,
                Actor::System,
                detail.to_string(),
                jobs,
            ))
        });
        cas_done(res)
    }

    /// Ends the order's permission in JumpServer (only when it carries our marker), ends live
    /// sessions when configured, reads back what the user still reaches there, and records
    /// both on the order for the message that follows.
    async fn revoke(&self, o: &Order) -> Result<(), JobError> {
        if let Request::Account { .. } = o.request {
            return Ok(());
        }
        if o.grant.as_ref().is_some_and(|g| g.revocation.is_some()) {
            return Ok(());
        }
        let name = o.granted_permission_name();
        let before = o.grant.as_ref().and_then(|g| g.readback.clone());
        let user = before
            .as_ref()
            .filter(|rb| !rb.user_id.is_empty())
            .map(|rb| JmsUserId::new(rb.user_id.clone()));
        let host_ids: Vec<String> = before
            .iter()
            .flat_map(|rb| rb.hosts.iter().map(|h| h.id.clone()))
            .collect();
        let sessions = match &user {
            Some(u) if self.settings.end_sessions => Some((u, host_ids.as_slice())),
            _ => None,
        };
        let out = self
            .bastion
            .revoke(&name, &o.marker(), self.settings.revoke_mode, sessions)
            .await
            .map_err(|e| jms_err(&e))?;
        let after = match (&user, &before) {
            (Some(u), Some(rb)) => {
                let accounts = self.role_accounts(o);
                match self
                    .bastion
                    .read_back(u, &name, &rb.hosts, rb.node.as_ref(), &accounts)
                    .await
                {
                    Ok(a) => Some(a),
                    // The revoke itself is done; a failed look afterwards only loses detail.
                    Err(e) => {
                        tracing::warn!(order = %o.id, error = %e, "read-back after revoke failed");
                        None
                    }
                }
            }
            _ => None,
        };
        tracing::info!(order = %o.id, how = ?out.revocation.how, sessions = out.revocation.sessions_ended, "permission revoked");
        let now = self.now();
        let not_ours = out.revocation.how == RevokedHow::NotOurs;
        let res = self.orders.update(&o.id, |cur| {
            let mut g = cur.grant.clone().unwrap_or_default();
            if g.revocation.is_some() {
                return Err("recorded");
            }
            g.revocation = Some(out.revocation.clone());
            if let Some(a) = &after {
                g.readback = Some(a.clone());
            }
            let mut c = Change::new(cur.with_grant(g, now));
            if not_ours {
                c = c.job(JobKind::tell_admins(Notice::RevokeNotOurs {
                    name: name.clone(),
                }));
            }
            Ok(c)
        });
        cas_done(res)
    }

    /// Moves the end of the order's permission to its (renewed) window and records what
    /// JumpServer then grants, for the "renewed" message that follows.
    async fn renew(&self, o: &Order) -> Result<(), JobError> {
        let (State::Active, Some(w)) = (o.state, o.window) else {
            return Ok(());
        };
        let name = o.granted_permission_name();
        let renewed = self
            .bastion
            .renew(&name, &o.marker(), w.end)
            .await
            .map_err(|e| jms_err(&e))?;
        let before = o.grant.as_ref().and_then(|g| g.readback.clone());
        let after = match &before {
            Some(rb) if !rb.user_id.is_empty() => {
                let accounts = self.role_accounts(o);
                self.bastion
                    .read_back(
                        &JmsUserId::new(rb.user_id.clone()),
                        &renewed,
                        &rb.hosts,
                        rb.node.as_ref(),
                        &accounts,
                    )
                    .await
                    .map_err(|e| jms_err(&e))?
            }
            _ => return Ok(()),
        };
        let now = self.now();
        let res = self.orders.update(&o.id, |cur| {
            let mut g = cur.grant.clone().unwrap_or_default();
            g.readback = Some(after.clone());
            Ok::<_, &str>(Change::new(cur.with_grant(g, now)))
        });
        cas_done(res)
    }

    async fn disable_user(&self, username: &str) -> Result<(), JobError> {
        match self.bastion.find_user(username).await {
            Ok(Some(u)) if u.is_active => self
                .bastion
                .set_user_active(&u.id, false)
                .await
                .map_err(|e| jms_err(&e)),
            Ok(_) => Ok(()),
            Err(e) => Err(jms_err(&e)),
        }
    }

    async fn job_gave_up(&self, job: &OutboxJob, reason: String) {
        if let JobKind::DisableJmsUser { username } = &job.kind {
            // A leaver who keeps a working JumpServer login is a security matter: the admins
            // must hear it, directly (there is no order to hang an outbox notice on).
            tracing::error!(username = %username, %reason, "leaver's JumpServer user not disabled");
            let m = OutMessage::text(failures::admin_leaver_not_disabled(
                self.lang(),
                username,
                &reason,
            ));
            let admins: Vec<DingUserId> = self.policy.admins.iter().cloned().collect();
            if let Err(e) = self.send(&admins, &m).await {
                tracing::error!(error = %e, "could not tell the admins about the leaver");
            }
            return;
        }
        let Ok(Some(o)) = self.orders.get(&job.order_id) else {
            return;
        };
        let detail = text::gave_up(self.lang(), &reason);
        let r = match &job.kind {
            JobKind::Grant => {
                self.grant_failed(&o, FailureKind::JumpServerUnavailable, &detail)
                    .await
            }
            JobKind::Prepare => self.fail_prepare(&o, &detail).await,
            // The order says the access ended; JumpServer may still grant it. A person must
            // end it by hand, and needs to hear so.
            JobKind::Revoke => self.tell_admins(&o, Notice::RevokeFailed { detail }),
            JobKind::Renew => self.tell_admins(&o, Notice::RenewFailed { detail }),
            JobKind::SendApprovalRequest { approver } => {
                self.approval_undelivered(&o, approver, &reason)
            }
            JobKind::StartOaApproval => self.fail_approval(&o, &reason),
            // Telling the admins failed: nothing left to tell; the log line below is it.
            JobKind::Notify {
                to: Audience::Admins,
                ..
            } => {
                tracing::error!(order = %o.id, %reason, "admin notice not delivered");
                Ok(())
            }
            // A person did not get a message about their order: the admins hear which one.
            JobKind::Notify { notice, .. } => self.tell_admins(
                &o,
                Notice::NoticeUndelivered {
                    detail: format!("{}: {reason}", notice.name()),
                },
            ),
            // Cards left showing an old state, or an OA instance not withdrawn: said to the
            // admins, since the people concerned may act on what they still see.
            JobKind::UpdateCards | JobKind::TerminateOaApproval => self.tell_admins(
                &o,
                Notice::CleanupFailed {
                    detail: reason.clone(),
                },
            ),
            _ => Ok(()),
        };
        if let Err(e) = r {
            tracing::error!(order = %o.id, error = %e, "could not record the failure");
        }
    }

    /// One approver's approval request could not be delivered for good. While another approver
    /// got theirs the order waits for them (the admins hear which approver and why); when
    /// nobody can decide, the approval failed.
    fn approval_undelivered(
        &self,
        o: &Order,
        approver: &DingUserId,
        reason: &str,
    ) -> Result<(), JobError> {
        let now = self.now();
        let res = self.orders.update(&o.id, |cur| {
            if cur.state != State::PendingApproval {
                return Err("moved on");
            }
            let marked = cur.with_undelivered(approver, now);
            if marked.nobody_can_decide() {
                return self.approval_failed_change(&marked, reason, now);
            }
            Ok(
                Change::new(marked).job(JobKind::tell_admins(Notice::ApproverUnreachable {
                    approver: approver.clone(),
                    reason: reason.to_string(),
                })),
            )
        });
        cas_done(res)
    }

    /// The approval could not be started: the order fails, the requester and the admins are
    /// told what failed and what to fix, and what was started is cleaned up (cards updated, an
    /// OA instance terminated, found by search when its start's answer was lost).
    fn fail_approval(&self, o: &Order, reason: &str) -> Result<(), JobError> {
        let now = self.now();
        let res = self.orders.update(&o.id, |cur| {
            if cur.state != State::PendingApproval {
                return Err("moved on");
            }
            self.approval_failed_change(cur, reason, now)
        });
        cas_done(res)
    }

    fn approval_failed_change(
        &self,
        cur: &Order,
        reason: &str,
        now: Timestamp,
    ) -> Result<Change, &'static str> {
        let t = cur.approval_failed(reason, now).map_err(|_| "moved on")?;
        let mut jobs = Vec::new();
        match cur.approval_mode {
            ApprovalMode::Oa => jobs.push(JobKind::TerminateOaApproval),
            ApprovalMode::Card if self.settings.approval_template().is_some() => {
                jobs.push(JobKind::UpdateCards)
            }
            ApprovalMode::Card => {}
        }
        jobs.push(JobKind::tell_requester(Notice::ApprovalFailed));
        jobs.push(JobKind::tell_admins(Notice::ApprovalFailedAdmin {
            reason: reason.to_string(),
        }));
        Ok(Change::from_transition(
            t,
            Actor::System,
            reason.to_string(),
            jobs,
        ))
    }

    /// Queues a notice to the admins about this order (and, for a failed renewal, the
    /// requester, whose access ends earlier than the bot said).
    fn tell_admins(&self, o: &Order, notice: Notice) -> Result<(), JobError> {
        let now = self.now();
        let detail = match &notice {
            Notice::RevokeFailed { detail }
            | Notice::RenewFailed { detail }
            | Notice::NoticeUndelivered { detail }
            | Notice::CleanupFailed { detail } => detail.clone(),
            _ => String::new(),
        };
        let res = self.orders.update(&o.id, |cur| {
            let rec = AuditRecord::new(
                now,
                Some(cur.id.clone()),
                Actor::System,
                AuditEvent::Note,
                format!("{}: {detail}", notice.name()),
            );
            let mut c = Change::new(cur.touched(now))
                .audit(rec)
                .job(JobKind::tell_admins(notice.clone()));
            if let Notice::RenewFailed { .. } = notice {
                c = c.job(JobKind::tell_requester(notice.clone()));
            }
            Ok::<_, &str>(c)
        });
        cas_done(res)
    }
}

/// An order update that found the order moved on is done, not failed.
fn cas_done<T, E>(res: Result<T, CasError<E>>) -> Result<(), JobError> {
    match res {
        Ok(_) | Err(CasError::Refused(_)) | Err(CasError::NotFound(_)) => Ok(()),
        Err(CasError::Stale { .. }) => Err(JobError::transient("order kept changing")),
        Err(CasError::Store(e)) => Err(store_err(e)),
    }
}
