//! The first job of an order: the requester's JumpServer identity from the directory, the change
//! the grant would make (previewed in JumpServer, so approvers see it), what would stop the
//! request before approval, and the approvers routed by the resolved addresses; then submit.
use crate::chat::text;
use crate::config::MissingLogin;
use crate::domain::audit::Actor;
use crate::domain::change::Change;
use crate::domain::identity::{self, DirectoryEntry};
use crate::domain::ids::JmsUserId;
use crate::domain::jobs::JobKind;
use crate::domain::notice::Notice;
use crate::domain::order::{ApprovalMode, ChangePreview, Order, Request, State};
use crate::domain::target::Target;
use crate::worker::outbox::JobError;
use crate::workflow::jobs::plan;
use crate::workflow::jobs::{cas_done, jms_err};
use crate::workflow::ports::{BastionError, GrantPlan, OrderStoreExt, OutboxJob, UserMatch};
use crate::workflow::Workflow;
use jiff::{SignedDuration, Timestamp};

/// Most hosts whose current access is looked up for the approval (one call each).
const ALREADY_LOOKUPS: usize = 10;

/// After this many failed previews the approval goes out without one (saying so), so a
/// JumpServer outage does not hold approvals back.
const PREVIEW_ATTEMPTS: u32 = 2;

pub(in crate::workflow) async fn run(
    wf: &Workflow,
    job: &OutboxJob,
    o: &Order,
) -> Result<(), JobError> {
    if o.state != State::Draft {
        return Ok(());
    }
    let user = match wf.chat.look_up_user(&o.requester).await {
        Ok(u) => u,
        Err(e) if e.is_transient() => return Err(JobError::transient(e.to_string())),
        Err(e) => {
            let detail = text::not_in_directory(wf.lang(), &e.to_string());
            return fail_prepare(wf, o, &detail).await;
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
    let username = match identity::jms_username(&wf.policy.identity, &entry) {
        Ok(u) => u,
        Err(e) => return fail_prepare(wf, o, &text::identity_error(wf.lang(), &e)).await,
    };
    let name = if user.name.trim().is_empty() {
        o.requester_name.clone()
    } else {
        user.name.clone()
    };
    let email = user.email.clone().or(user.org_email.clone());
    let now = wf.now();
    let preview = match &o.request {
        Request::Account { .. } => match wf.bastion.find_user(&username).await {
            Ok(Some(_)) => {
                // Nothing to approve: say so and close the request.
                let res = wf.orders.update(&o.id, |cur| {
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
                unavailable: Some(e.user_message(wf.en())),
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
            let plan = plan::plan_for(wf, o, &username, &name, email.clone(), now, end);
            match preview(wf, &plan).await {
                Ok(p) => p,
                Err(e) if e.is_transient() && job.attempts < PREVIEW_ATTEMPTS => {
                    return Err(jms_err(&e))
                }
                Err(e) => {
                    let (node, addresses, whole) = plan::grant_scope(wf, &wf.targets_of(o));
                    ChangePreview {
                        node,
                        whole_node: whole,
                        hosts_to_create: addresses,
                        accounts: plan.accounts.clone(),
                        actions: plan.actions.clone(),
                        unavailable: Some(e.user_message(wf.en())),
                        ..ChangePreview::default()
                    }
                }
            }
        }
    };
    if preview.unavailable.is_none() {
        if let Some((detail, admins)) = refusal_after_preview(wf, o, &preview) {
            let notice = JobKind::tell_requester(Notice::NotTaken {
                detail: detail.clone(),
            });
            return close_draft(wf, o, &detail, notice, admins);
        }
    }
    // Routed again with the addresses host names resolved to: a name inside a system's
    // range goes to that system's approvers.
    let approvers = match &o.request {
        Request::Host { .. } if !preview.resolved.is_empty() => {
            let routed = wf
                .policy
                .approvers_for(&o.requester, &routing_targets(wf, o, &preview));
            if routed.is_empty() {
                o.approvers.clone()
            } else {
                routed
            }
        }
        _ => o.approvers.clone(),
    };
    let with_cards =
        o.approval_mode == ApprovalMode::Card && wf.settings.approval_template().is_some();
    let res = wf.orders.update(&o.id, |cur| {
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
pub(in crate::workflow) async fn fail_prepare(
    wf: &Workflow,
    o: &Order,
    detail: &str,
) -> Result<(), JobError> {
    close_draft(
        wf,
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
pub(in crate::workflow) fn close_draft(
    wf: &Workflow,
    o: &Order,
    detail: &str,
    notice: JobKind,
    admins: Option<JobKind>,
) -> Result<(), JobError> {
    let now = wf.now();
    let res = wf.orders.update(&o.id, |cur| {
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
pub(in crate::workflow) fn refusal_after_preview(
    wf: &Workflow,
    o: &Order,
    p: &ChangePreview,
) -> Option<(String, Option<JobKind>)> {
    let lang = wf.lang();
    if let Some((name, candidates)) = p.ambiguous.first() {
        return Some((text::ambiguous_host(lang, name, candidates), None));
    }
    if let (Some(role), Some(d)) = (o.request.role(), o.request.access_duration()) {
        let routed = routing_targets(wf, o, p);
        if let Err(v) = wf.policy.check_duration(role, &routed, d) {
            return Some((text::policy_violation(lang, &v), None));
        }
    }
    if wf.settings.missing_login == MissingLogin::Refuse && !p.missing_logins.is_empty() {
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
pub(in crate::workflow) fn routing_targets(
    wf: &Workflow,
    o: &Order,
    p: &ChangePreview,
) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    let mut push = |t: Target| {
        if !out.contains(&t) {
            out.push(t);
        }
    };
    for t in wf.targets_of(o) {
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
                if !wf.policy.systems_for(std::slice::from_ref(&t)).is_empty() {
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

/// How old an index may be to answer the preview's "already has access": a recent `/sync` saw
/// what JumpServer held minutes ago, which is what an approver needs to judge a request; an
/// older one asks JumpServer instead.
const INDEX_FRESH_FOR: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);

/// Whether `uid` already reaches each of `addresses`, with the latest end: from the local
/// index when it is fresh (no JumpServer call), else one JumpServer query per address.
async fn already_reached(
    wf: &Workflow,
    uid: &JmsUserId,
    addresses: &[String],
) -> Result<Vec<Option<Option<Timestamp>>>, String> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let now = wf.now();
    let fresh = matches!(wf.index.stats(), Ok(Some(s)) if now.duration_since(s.synced_at) <= INDEX_FRESH_FOR);
    if fresh {
        match wf.index.reach_of(uid.as_str(), addresses, now) {
            Ok(r) => return Ok(r),
            Err(e) => tracing::info!(error = %e, "index lookup failed; asking JumpServer"),
        }
    }
    wf.bastion
        .user_reach(uid, addresses)
        .await
        .map_err(|e| e.to_string())
}

pub(in crate::workflow) async fn preview(
    wf: &Workflow,
    plan: &GrantPlan,
) -> Result<ChangePreview, BastionError> {
    let p = wf.bastion.preview(plan).await?;
    let mut already = Vec::new();
    if let Some(uid) = &p.user_id {
        let n = p.addresses.len().min(ALREADY_LOOKUPS);
        let (labels, addresses) = (&p.hosts_existing_labels[..n], &p.addresses[..n]);
        match already_reached(wf, uid, addresses).await {
            Ok(reach) => {
                for (label, r) in labels.iter().zip(reach) {
                    if let Some(until) = r {
                        already.push((label.clone(), until));
                    }
                }
            }
            Err(e) => {
                tracing::info!(error = %e, "current access lookup failed; preview without it")
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
