//! The outbox side: every job of the workflow. Each one re-reads its order and acts on the
//! state it finds (a job can run again after a crash, or after the order moved on), and every
//! external effect has a stable identity: the permission name, the card outTrackIds, the OA
//! instance recorded on the order before anything else happens.
use super::chat::{notify, params};
use super::Workflow;
use crate::chat::{failures, readback, text};
use crate::config::MissingLogin;
use crate::dingtalk::client::{
    ApprovalDetail, ApprovalInstanceQuery, ApprovalResult, ApprovalStart, ApprovalState,
    ApprovalStatus, CardDelivery, CardTarget, DingTalkError,
};
use crate::dingtalk::message::{dtmd_send_link, CardButton, OutMessage};
use crate::domain::access::RevokedHow;
use crate::domain::audit::{Actor, AuditEvent, AuditRecord};
use crate::domain::change::Change;
use crate::domain::command::{display_word, CommandKind, Lang, Role};
use crate::domain::identity::{self, DirectoryEntry};
use crate::domain::ids::{DingUserId, JmsUserId};
use crate::domain::jobs::JobKind;
use crate::domain::order::{ApprovalMode, ChangePreview, GrantResult, Order, Request, State};
use crate::domain::target::Target;
use crate::inbound::{ApprovalEvent, ApprovalEventKind, ApprovalOutcome};
use crate::jumpserver::api::NewUserSpec;
use crate::jumpserver::error::{JmsError, Problem};
use crate::jumpserver::grant::{GrantPlan, NewUser, UserMatch};
use crate::store::orders::CasError;
use crate::store::outbox::OutboxJob;
use crate::worker::outbox::{JobError, JobRunner};
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
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

fn dt_err(e: DingTalkError) -> JobError {
    if e.is_transient() {
        JobError::transient(e.to_string())
    } else {
        JobError::permanent(e.to_string())
    }
}

fn jms_err(e: &JmsError) -> JobError {
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

/// Which plain-words failure a JumpServer error is.
fn failure_kind(e: &JmsError) -> &'static str {
    match e {
        JmsError::NotFound(m) if m.en.contains("user") => "user_missing",
        JmsError::Rejected {
            kind: Problem::UsernameTaken | Problem::EmailTaken | Problem::InvalidEmail,
            ..
        } => "user_create",
        JmsError::NotFound(_) => "host",
        _ => "grant",
    }
}

fn failure_from(kind: &str) -> text::Failure {
    match kind {
        "user_missing" => text::Failure::UserMissing,
        "user_create" => text::Failure::UserCreateFailed,
        "host" => text::Failure::HostNotFound,
        "unavailable" => text::Failure::JumpServerUnavailable,
        "approval_start" => text::Failure::ApprovalStartFailed,
        "internal" => text::Failure::Internal,
        _ => text::Failure::GrantFailed,
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
            JobKind::NotifyRequester { template, params } => {
                if template == "submitted" {
                    self.deliver_requester_card(&o).await?;
                }
                match self.render(&o, template, params).await {
                    Some(m) => self.send(std::slice::from_ref(&o.requester), &m).await,
                    None => Ok(()),
                }
            }
            JobKind::NotifyUser {
                user,
                template,
                params,
            } => match self.render(&o, template, params).await {
                Some(m) => self.send(std::slice::from_ref(user), &m).await,
                None => Ok(()),
            },
            JobKind::NotifyApprovers { template, params } => {
                let to: Vec<DingUserId> = o
                    .approvers
                    .iter()
                    .filter(|a| Some(*a) != o.decided_by.as_ref())
                    .cloned()
                    .collect();
                match self.render(&o, template, params).await {
                    Some(m) if !to.is_empty() => self.send(&to, &m).await,
                    _ => Ok(()),
                }
            }
            JobKind::NotifyAdmins { template, params } => {
                let to: Vec<DingUserId> = self.policy.admins.iter().cloned().collect();
                match self.render(&o, template, params).await {
                    Some(m) if !to.is_empty() => self.send(&to, &m).await,
                    _ => Ok(()),
                }
            }
            JobKind::UpdateCards => self.update_cards(&o).await,
            JobKind::Grant => self.grant(job, &o).await,
            JobKind::Revoke => self.revoke(&o).await,
            JobKind::Renew => self.renew(&o).await,
            JobKind::DisableJmsUser { .. } | JobKind::Sync { .. } => Ok(()),
        }
    }

    async fn send(&self, to: &[DingUserId], m: &OutMessage) -> Result<(), JobError> {
        let report = self.dingtalk.send_to_users(to, m).await.map_err(dt_err)?;
        // Re-sending to everyone would duplicate the message for those who got it; only a
        // single throttled recipient is worth a retry.
        if to.len() == 1 && !report.flow_controlled_user_ids.is_empty() {
            return Err(JobError::transient("recipient is flow-controlled"));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ prepare ----------

    async fn prepare(&self, job: &OutboxJob, o: &Order) -> Result<(), JobError> {
        if o.state != State::Draft {
            return Ok(());
        }
        let user = match self.dingtalk.get_user(&o.requester).await {
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
            Request::Account { .. } => match self.jms.find_user_by_username(&username).await {
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
                            vec![notify("account_exists", &[])],
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
                let notice = notify("not_taken", &[("detail", &detail)]);
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
            jobs.push(notify("submitted", &[]));
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
            notify("identity_failed", &[("detail", detail)]),
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
        if let (Some(role), Some(d)) = (Self::role_of(o), Self::duration_of(o)) {
            let routed = self.routing_targets(o, p);
            if let Err(v) = self.policy.check_duration(role, &routed, d) {
                return Some((text::policy_violation(lang, &v), None));
            }
        }
        if self.settings.missing_login == MissingLogin::Refuse && !p.missing_logins.is_empty() {
            let admins = JobKind::NotifyAdmins {
                template: "missing_logins".into(),
                params: params(&[("refused", "true")]),
            };
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
        let role = Self::role_of(o).unwrap_or(Role::Readonly);
        let rp = self.policy.role(role);
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

    async fn preview(&self, plan: &GrantPlan) -> Result<ChangePreview, JmsError> {
        let p = self.jms.preview(plan).await?;
        let mut already = Vec::new();
        if let Some(uid) = &p.user_id {
            let hosts = p.hosts_existing_labels.iter().zip(&p.addresses);
            for (label, address) in hosts.take(ALREADY_LOOKUPS) {
                match self.jms.who_can_reach(address).await {
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

    /// The JumpServer change of an order in words (from the stored preview).
    pub(super) fn change_text(&self, o: &Order) -> Option<String> {
        let p = o.preview.as_ref()?;
        if let Request::Account { .. } = o.request {
            return None;
        }
        Some(text::change_preview(
            self.lang(),
            &text::ChangeView {
                username: &o.jms_username,
                user_exists: p.user_exists,
                user_active: p.user_active,
                will_create_user: self.policy.auto_create_user && o.requester_email.is_some(),
                node: &p.node,
                whole_node: p.whole_node,
                hosts_existing: &p.hosts_existing,
                hosts_to_create: &p.hosts_to_create,
                accounts: &p.accounts,
                actions: &p.actions,
                duration: Self::duration_of(o),
                already: &p.already,
                unavailable: p.unavailable.as_deref(),
                role_label: self.role_label(o),
                user_matched: p.user_matched.as_ref().map(|(u, e)| (u.as_str(), *e)),
                missing_logins: &p.missing_logins,
                permission_name: &p.permission_name,
                permission_repair: p.permission_repair,
                name_conflicts: &p.name_conflicts,
                hosts_renamed: &p.hosts_renamed,
                ambiguous: &p.ambiguous,
            },
            &self.settings.tz,
        ))
    }

    // ------------------------------------------------------------------ approval ----------

    fn request_text(&self, o: &Order) -> String {
        let lang = self.lang();
        if let Request::Account { .. } = o.request {
            return text::account_request_view(lang, &o.id, &o.requester_name, &o.jms_username);
        }
        let targets = self.targets_of(o);
        let reason = o.request.reason();
        let base = match Self::duration_of(o) {
            Some(d) => text::approval_request(
                lang,
                &text::RequestView {
                    order: &o.id,
                    requester_name: &o.requester_name,
                    username: &o.jms_username,
                    targets: &targets,
                    role: Self::role_of(o).unwrap_or(Role::Readonly),
                    duration: d,
                    reason: (!reason.is_empty()).then_some(reason),
                },
            ),
            None => String::new(),
        };
        match self.change_text(o) {
            Some(c) => format!("{base}\n{c}"),
            None => base,
        }
    }

    async fn send_approval(&self, o: &Order, approver: &DingUserId) -> Result<(), JobError> {
        if o.state != State::PendingApproval {
            return Ok(());
        }
        let lang = self.lang();
        if let Some(tpl) = self.settings.approval_template() {
            let req = CardDelivery {
                template_id: tpl.to_string(),
                out_track_id: o.card_track_id(approver),
                params: self.approval_card_vars(o, None),
                to: CardTarget::User(approver.clone()),
                callback_route_key: self.settings.route_key(),
            };
            return self
                .dingtalk
                .create_and_deliver_card(req)
                .await
                .map_err(dt_err);
        }
        let approve = format!("{} {}", display_word(CommandKind::Approve, lang), o.id);
        // The reason is typed after the prefilled text, so the link ends with a space.
        let reject = format!("{} {} ", display_word(CommandKind::Reject, lang), o.id);
        let title = text::approval_title(lang, &o.requester_name, &o.id);
        let msg = OutMessage::ActionCard {
            title,
            text: md(&self.request_text(o)),
            buttons: vec![
                CardButton::new(text::approve_button(lang), dtmd_send_link(&approve)),
                CardButton::new(text::reject_button(lang), dtmd_send_link(&reject)),
            ],
        };
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
        self.dingtalk
            .create_and_deliver_card(req)
            .await
            .map_err(dt_err)
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
            match self.dingtalk.update_card(&track, vars).await {
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
            .dingtalk
            .start_approval(ApprovalStart {
                process_code: code,
                originator: o.requester.clone(),
                dept_id: -1,
                approvers: o.approvers.clone(),
                form: self.oa_form(o),
            })
            .await
            .map_err(dt_err)?;
        // Recorded at once: the result event is matched to the order through it.
        self.record_oa_instance(o, &instance, "started")
    }

    /// The OA form: `(label, value)` pairs; the order-id field is what a later search matches.
    fn oa_form(&self, o: &Order) -> Vec<(String, String)> {
        let lang = self.lang();
        let targets = self.targets_of(o);
        let label = |f: text::OaField| text::oa_label(lang, f).to_string();
        let mut form = vec![
            (label(text::OaField::Order), o.id.to_string()),
            (label(text::OaField::Requester), o.requester_name.clone()),
            (label(text::OaField::JmsUser), o.jms_username.clone()),
        ];
        if let (Some(role), Some(d)) = (Self::role_of(o), Self::duration_of(o)) {
            form.push((label(text::OaField::Hosts), text::targets(lang, &targets)));
            form.push((
                label(text::OaField::Access),
                text::role(lang, role).to_string(),
            ));
            form.push((label(text::OaField::Duration), text::duration(lang, d)));
        }
        form.push((label(text::OaField::Reason), o.request.reason().to_string()));
        if let Some(c) = self.change_text(o) {
            // The form field already carries the "JumpServer 变更" label; drop the heading line.
            let body = c.split_once('\n').map_or(c.as_str(), |(_, rest)| rest);
            form.push((label(text::OaField::Change), body.to_owned()));
        }
        form
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
        let ids = self
            .dingtalk
            .list_approval_instance_ids(&q)
            .await
            .map_err(dt_err)?;
        for id in ids {
            match self.dingtalk.get_approval_detail(&id).await {
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
            .dingtalk
            .terminate_approval(&inst, None, "accessbot: request closed")
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
                        .grant_failed(&o, "internal", "approved order without a window")
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
                self.jms.grant(&plan).await.map(|out| GrantResult {
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
                    let mut jobs = vec![notify("granted", &[])];
                    if !g.name_conflicts.is_empty() {
                        jobs.push(JobKind::NotifyAdmins {
                            template: "name_conflicts".into(),
                            params: params(&[]),
                        });
                    }
                    if g.readback
                        .as_ref()
                        .is_some_and(|rb| !rb.missing_logins().is_empty())
                    {
                        jobs.push(JobKind::NotifyAdmins {
                            template: "missing_logins".into(),
                            params: params(&[]),
                        });
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
                    let p = params(&[("kind", "unavailable"), ("detail", detail.as_str())]);
                    if let Some(m) = self.render(&o, "failed", &p).await {
                        if let Err(e) = self.send(std::slice::from_ref(&o.requester), &m).await {
                            tracing::warn!(order = %o.id, error = %e, "retry notice not sent");
                        }
                    }
                }
                Err(JobError::transient(e.to_string()))
            }
            Err(e) => {
                let detail = e.user_message(self.en());
                self.grant_failed(&o, failure_kind(&e), &detail).await
            }
        }
    }

    async fn create_account(&self, o: &Order) -> Result<GrantResult, JmsError> {
        let username = o.jms_username.clone();
        if self.jms.find_user_by_username(&username).await?.is_none() {
            let Some(email) = o.requester_email.clone() else {
                return Err(JmsError::Invalid(crate::jumpserver::error::Words::new(
                    text::no_email_for_user(crate::domain::command::Lang::En),
                    text::no_email_for_user(crate::domain::command::Lang::ZhCn),
                )));
            };
            self.jms
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
    async fn grant_failed(&self, o: &Order, kind: &str, detail: &str) -> Result<(), JobError> {
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
                notify("failed", &[("kind", kind), ("detail", detail)]),
                JobKind::NotifyAdmins {
                    template: "admin_failed".into(),
                    params: params(&[("detail", detail)]),
                },
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
            .jms
            .revoke(&name, &o.marker(), self.settings.revoke_mode, sessions)
            .await
            .map_err(|e| jms_err(&e))?;
        let after = match (&user, &before) {
            (Some(u), Some(rb)) => {
                let accounts = self.role_accounts(o);
                match self
                    .jms
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
                c = c.job(JobKind::NotifyAdmins {
                    template: "revoke_not_ours".into(),
                    params: params(&[("name", name.as_str())]),
                });
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
        let p = self
            .jms
            .renew(&name, &o.marker(), w.end)
            .await
            .map_err(|e| jms_err(&e))?;
        let before = o.grant.as_ref().and_then(|g| g.readback.clone());
        let after = match &before {
            Some(rb) if !rb.user_id.is_empty() => {
                let accounts = self.role_accounts(o);
                self.jms
                    .read_back(
                        &JmsUserId::new(rb.user_id.clone()),
                        &p.name,
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
        match self.jms.find_user_by_username(username).await {
            Ok(Some(u)) if u.is_active => self
                .jms
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
            JobKind::Grant => self.grant_failed(&o, "unavailable", &detail).await,
            JobKind::Prepare => self.fail_prepare(&o, &detail).await,
            // The order says the access ended; JumpServer may still grant it. A person must
            // end it by hand, and needs to hear so.
            JobKind::Revoke => self.tell_admins(&o, "revoke_failed", &detail),
            JobKind::Renew => self.tell_admins(&o, "renew_failed", &detail),
            JobKind::SendApprovalRequest { approver } => {
                self.approval_undelivered(&o, approver, &reason)
            }
            JobKind::StartOaApproval => self.fail_approval(&o, &reason),
            // A person did not get a message about their order: the admins hear which one.
            JobKind::NotifyRequester { template, .. }
            | JobKind::NotifyUser { template, .. }
            | JobKind::NotifyApprovers { template, .. } => {
                self.tell_admins(&o, "notice_undelivered", &format!("{template}: {reason}"))
            }
            // Cards left showing an old state, or an OA instance not withdrawn: said to the
            // admins, since the people concerned may act on what they still see.
            JobKind::UpdateCards | JobKind::TerminateOaApproval => {
                self.tell_admins(&o, "cleanup_failed", &reason)
            }
            // Telling the admins failed: nothing left to tell; the log line below is it.
            JobKind::NotifyAdmins { .. } => {
                tracing::error!(order = %o.id, %reason, "admin notice not delivered");
                Ok(())
            }
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
            Ok(Change::new(marked).job(JobKind::NotifyAdmins {
                template: "approver_unreachable".into(),
                params: params(&[("approver", approver.as_str()), ("reason", reason)]),
            }))
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
        jobs.push(notify("approval_failed", &[]));
        jobs.push(JobKind::NotifyAdmins {
            template: "approval_failed_admin".into(),
            params: params(&[("reason", reason)]),
        });
        Ok(Change::from_transition(
            t,
            Actor::System,
            reason.to_string(),
            jobs,
        ))
    }

    /// Queues a notice to the admins about this order (and, for a failed renewal, the
    /// requester, whose access ends earlier than the bot said).
    fn tell_admins(&self, o: &Order, template: &str, detail: &str) -> Result<(), JobError> {
        let now = self.now();
        let res = self.orders.update(&o.id, |cur| {
            let rec = AuditRecord::new(
                now,
                Some(cur.id.clone()),
                Actor::System,
                AuditEvent::Note,
                format!("{template}: {detail}"),
            );
            let mut c = Change::new(cur.touched(now))
                .audit(rec)
                .job(JobKind::NotifyAdmins {
                    template: template.into(),
                    params: params(&[("detail", detail)]),
                });
            if template == "renew_failed" {
                c = c.job(notify("renew_failed", &[("detail", detail)]));
            }
            Ok::<_, &str>(c)
        });
        cas_done(res)
    }

    // ------------------------------------------------------------------ messages ----------

    /// Renders a notice at send time from the order as it is now.
    async fn render(
        &self,
        o: &Order,
        template: &str,
        p: &BTreeMap<String, String>,
    ) -> Option<OutMessage> {
        let lang = self.lang();
        let tz = &self.settings.tz;
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
        let targets = self.targets_of(o);
        let role = Self::role_of(o).unwrap_or(Role::Readonly);
        let body = match template {
            // Said only while it is true: an approval that could not start fails the order
            // before this notice's turn comes.
            "submitted" if o.state != State::PendingApproval => return None,
            "submitted" => {
                let mut names = Vec::new();
                for a in &o.approvers {
                    names.push(self.name_of(a).await);
                }
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let reason = o.request.reason();
                let base = match Self::duration_of(o) {
                    Some(d) => text::request_submitted(
                        lang,
                        &text::RequestView {
                            order: &o.id,
                            requester_name: &o.requester_name,
                            username: &o.jms_username,
                            targets: &targets,
                            role,
                            duration: d,
                            reason: (!reason.is_empty()).then_some(reason),
                        },
                        &refs,
                    ),
                    None => text::account_submitted(lang, &o.id, &o.jms_username, &refs),
                };
                match self.change_text(o) {
                    Some(c) => format!("{base}\n{c}"),
                    None => base,
                }
            }
            "granted" => {
                let by = match &o.decided_by {
                    Some(d) => self.name_of(d).await,
                    None => text::system_actor(lang).to_string(),
                };
                let rb = o.grant.as_ref().and_then(|g| g.readback.as_ref());
                match (&o.request, o.window, rb) {
                    (Request::Account { .. }, _, _) => text::account_ready(
                        lang,
                        &o.jms_username,
                        self.settings.jms_web_url.as_deref(),
                    ),
                    (_, _, Some(rb)) => readback::granted(
                        lang,
                        &readback::GrantedView {
                            order: &o.id,
                            approver_name: &by,
                            role_label: self.role_label(o),
                            readback: rb,
                            jms_url: self.settings.jms_web_url.as_deref(),
                        },
                        tz,
                    ),
                    (_, Some(w), None) => text::granted(
                        lang,
                        &text::GrantView {
                            order: &o.id,
                            targets: &targets,
                            username: &o.jms_username,
                            role,
                            expires_at: w.end,
                            jms_url: self.settings.jms_web_url.as_deref(),
                        },
                        &by,
                        tz,
                    ),
                    _ => return None,
                }
            }
            "approved_waiting" => {
                let by = self.name_of(&DingUserId::new(get("by"))).await;
                let remaining = get("remaining").parse().unwrap_or(1);
                text::approved_waiting_more(lang, &o.id, &by, remaining)
            }
            "rejected" => {
                let by = match &o.decided_by {
                    Some(d) => self.name_of(d).await,
                    None => text::system_actor(lang).to_string(),
                };
                text::rejected(
                    lang,
                    &o.id,
                    &by,
                    o.decision_reason.as_deref().unwrap_or("-"),
                )
            }
            "decided" => {
                let by = match &o.decided_by {
                    Some(d) => self.name_of(d).await,
                    None => text::system_actor(lang).to_string(),
                };
                text::decided_notice(
                    lang,
                    &o.id,
                    &by,
                    get("approved") == "true",
                    o.decision_reason.as_deref().unwrap_or("-"),
                )
            }
            "reminder" => {
                let waited = self.now().duration_since(o.created_at).as_mins().max(1);
                let waited = crate::domain::duration::AccessDuration::from_minutes(
                    u64::try_from(waited).unwrap_or(1),
                )
                .ok()?;
                let body = text::approval_reminder(lang, &o.id, &o.requester_name, waited);
                format!("{body}\n{}", self.request_text(o))
            }
            "cancelled" => text::cancelled(lang, &o.id),
            "withdrawn_oa" => text::withdrawn_in_oa(lang, &o.id),
            "timed_out" => text::approval_timed_out(lang, &o.id),
            "expired" => {
                let g = o.grant.as_ref();
                readback::expired(
                    lang,
                    &o.id,
                    self.role_label(o),
                    g.and_then(|g| g.revocation.as_ref()),
                    g.and_then(|g| g.readback.as_ref()),
                    tz,
                )
            }
            "revoked" => {
                let by = match get("by_name") {
                    "" => match o.closure.as_ref().and_then(|c| c.by.clone()) {
                        Some(u) => self.name_of(&u).await,
                        None => text::system_actor(lang).to_string(),
                    },
                    n => n.to_string(),
                };
                let g = o.grant.as_ref();
                readback::revoked(
                    lang,
                    &o.id,
                    &by,
                    self.role_label(o),
                    g.and_then(|g| g.revocation.as_ref()),
                    g.and_then(|g| g.readback.as_ref()),
                    tz,
                )
            }
            "renewed" => readback::renewed(
                lang,
                &readback::RenewedView {
                    order: &o.id,
                    old_end: get("old_end").parse().ok(),
                    new_end: o.window?.end,
                    capped: get("capped") == "true",
                    role_label: self.role_label(o),
                    readback: o.grant.as_ref().and_then(|g| g.readback.as_ref()),
                },
                tz,
            ),
            "renewed_approver" => readback::renewed_for_approver(
                lang,
                &o.id,
                &o.requester_name,
                get("old_end").parse().ok(),
                o.window?.end,
                tz,
            ),
            "name_conflicts" => {
                let g = o.grant.as_ref()?;
                readback::admin_name_conflicts(
                    lang,
                    &o.id,
                    &g.name_conflicts,
                    g.permission_name.as_deref().unwrap_or("-"),
                )
            }
            "missing_logins" => {
                let pairs = match o.grant.as_ref().and_then(|g| g.readback.as_ref()) {
                    Some(rb) => rb.missing_logins(),
                    None => o
                        .preview
                        .as_ref()
                        .map(|p| p.missing_logins.clone())
                        .unwrap_or_default(),
                };
                readback::admin_missing_logins(
                    lang,
                    &o.id,
                    &o.requester_name,
                    &pairs,
                    get("refused") == "true",
                )
            }
            "revoke_not_ours" => readback::admin_revoke_not_ours(lang, &o.id, get("name")),
            "approval_failed" => failures::approval_failed(lang, &o.id),
            "notice_undelivered" => {
                failures::admin_notice_undelivered(lang, &o.id, &o.requester_name, get("detail"))
            }
            "cleanup_failed" => failures::admin_cleanup_failed(lang, &o.id, get("detail")),
            "approval_failed_admin" => {
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
                    get("reason"),
                    cleanup.as_deref(),
                )
            }
            "approver_unreachable" => {
                let who = self.name_of(&DingUserId::new(get("approver"))).await;
                failures::admin_approver_unreachable(lang, &o.id, &who, get("reason"))
            }
            "renew_failed" => readback::renew_failed(
                lang,
                &o.id,
                o.grant
                    .as_ref()
                    .and_then(|g| g.readback.as_ref())
                    .and_then(|rb| rb.permission.as_ref())
                    .and_then(|p| p.until),
                get("detail"),
                tz,
            ),
            "revoke_failed" => readback::admin_revoke_failed(
                lang,
                &o.id,
                &o.granted_permission_name(),
                o.window.map(|w| w.end),
                get("detail"),
                tz,
            ),
            "expiry_reminder" => {
                let w = o.window?;
                let left = w.end.duration_since(self.now()).as_mins().max(1);
                let left = crate::domain::duration::AccessDuration::from_minutes(
                    u64::try_from(left).unwrap_or(1),
                )
                .ok()?;
                let body = text::expiry_reminder(lang, &o.id, &targets, w.end, left, tz);
                let renew = format!("{} {}", display_word(CommandKind::Renew, lang), o.id);
                return Some(OutMessage::ActionCard {
                    title: text::expiry_title(lang, &o.id),
                    text: md(&body),
                    buttons: vec![CardButton::new(
                        text::renew_button(lang),
                        dtmd_send_link(&renew),
                    )],
                });
            }
            "failed" => text::failure(lang, &o.id, failure_from(get("kind")), Some(get("detail"))),
            "admin_failed" => text::admin_failure(lang, &o.id, &o.requester_name, get("detail")),
            "identity_failed" => text::identity_failed(lang, &o.id, get("detail")),
            "not_taken" => text::request_not_taken(lang, &o.id, get("detail")),
            "account_exists" => text::account_exists(lang, &o.jms_username),
            "left_org" => text::left_org_closed(lang, &o.id),
            "text" => get("text").to_string(),
            other => {
                tracing::warn!(template = other, "unknown notice template; not sent");
                return None;
            }
        };
        Some(OutMessage::text(body))
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
