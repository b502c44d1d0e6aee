//! The grant: the order moves to provisioning, JumpServer is made to match the plan (look before
//! create; repair what is ours), what it then grants is read back and recorded, and the requester
//! is told from that read; transient failures retry until the order's deadline, others fail it.
use crate::chat::text;
use crate::domain::audit::Actor;
use crate::domain::change::Change;
use crate::domain::command::Lang;
use crate::domain::jobs::JobKind;
use crate::domain::notice::{FailureKind, Notice};
use crate::domain::order::{GrantResult, Order, Request, State};
use crate::worker::outbox::JobError;
use crate::workflow::jobs::{cas_done, store_err};
use crate::workflow::jobs::{notify, plan};
use crate::workflow::ports::{BastionError, CasError, NewUserSpec, OrderStoreExt, OutboxJob};
use crate::workflow::Workflow;

pub(in crate::workflow) async fn run(
    wf: &Workflow,
    job: &OutboxJob,
    o: &Order,
) -> Result<(), JobError> {
    let now = wf.now();
    let o = match o.state {
        State::Provisioning => o.clone(),
        State::Approved | State::FailedRetrying => {
            let res = wf.orders.update(&o.id, |cur| {
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
        Request::Account { .. } => create_account(wf, &o).await,
        Request::Host { .. } => {
            let Some(w) = o.window else {
                return grant_failed(
                    wf,
                    &o,
                    FailureKind::Internal,
                    "approved order without a window",
                )
                .await;
            };
            let plan = plan::plan_for(
                wf,
                &o,
                &o.jms_username,
                &o.requester_name,
                o.requester_email.clone(),
                w.start,
                w.end,
            );
            wf.bastion.grant(&plan).await.map(|out| GrantResult {
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
            let res = wf.orders.update(&o.id, |cur| {
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
            let until = job.created_at.checked_add(wf.settings.retry).ok();
            let first = o.failure.is_none();
            let reason = e.to_string();
            let detail = e.user_message(wf.en());
            let res = wf.orders.update(&o.id, |cur| {
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
                if let Some(m) = notify::render(wf, &o, &notice).await {
                    if let Err(e) = notify::send(wf, std::slice::from_ref(&o.requester), &m).await {
                        tracing::warn!(order = %o.id, error = %e, "retry notice not sent");
                    }
                }
            }
            Err(JobError::transient(e.to_string()))
        }
        Err(e) => {
            let detail = e.user_message(wf.en());
            grant_failed(wf, &o, e.kind, &detail).await
        }
    }
}

pub(in crate::workflow) async fn create_account(
    wf: &Workflow,
    o: &Order,
) -> Result<GrantResult, BastionError> {
    let username = o.jms_username.clone();
    if wf.bastion.find_user(&username).await?.is_none() {
        let Some(email) = o.requester_email.clone() else {
            return Err(BastionError::invalid(
                text::no_email_for_user(Lang::En),
                text::no_email_for_user(Lang::ZhCn),
            ));
        };
        wf.bastion
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
pub(in crate::workflow) async fn grant_failed(
    wf: &Workflow,
    o: &Order,
    kind: FailureKind,
    detail: &str,
) -> Result<(), JobError> {
    let now = wf.now();
    let res = wf.orders.update(&o.id, |cur| {
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
