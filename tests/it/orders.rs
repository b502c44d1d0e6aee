//! Orders, outbox, audit, dialogs and the two workers: the exactly-once backbone.
use accessbot::clock::{Clock, ManualClock, SharedClock};
use accessbot::domain::audit::{Actor, AuditEvent, AuditRecord};
use accessbot::domain::change::Change;
use accessbot::domain::command::Role;
use accessbot::domain::duration::AccessDuration;
use accessbot::domain::ids::{DingUserId, OrderId};
use accessbot::domain::jobs::JobKind;
use accessbot::domain::notice::Notice;
use accessbot::domain::order::{
    Action, ApprovalMode, DeadlineKind, DeadlinePolicy, GrantResult, NewOrder, Order, Request,
    State, TransitionError,
};
use accessbot::domain::target::Target;
use accessbot::store::audit::Audit;
use accessbot::store::dialogs::Dialogs;
use accessbot::store::orders::{CasError, Orders};
use accessbot::store::outbox::{Outbox, OutboxJob, ParkReason};
use accessbot::store::Store;
use accessbot::worker::outbox::{backoff_delay, JobError, JobRunner, OutboxRunner, RunnerConfig};
use accessbot::worker::scheduler::{Deadline, DeadlineHandler, Scheduler, SchedulerConfig};
use jiff::{SignedDuration, Timestamp};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn t0() -> Timestamp {
    "2026-11-22T02:00:00Z".parse().unwrap()
}

fn u(s: &str) -> DingUserId {
    DingUserId::new(s)
}

fn new_host_order(id: &str, at: Timestamp) -> Order {
    Order::new(
        NewOrder {
            id: OrderId::new(id),
            requester: u("alice"),
            requester_name: "张三".into(),
            jms_username: "alice".into(),
            request: Request::Host {
                targets: vec![
                    Target::Hostname("web-01".into()),
                    Target::Address("10.0.0.5".parse().unwrap()),
                ],
                system: Some("root".into()),
                role: Role::Ops,
                duration: AccessDuration::from_minutes(4 * 60).unwrap(),
                ends_at: None,
                reason: "排查线上问题".into(),
            },
            approval_mode: ApprovalMode::Card,
            approvers: vec![u("bob"), u("carol")],
        },
        at,
    )
}

/// An order brought into `state` through the state machine itself (so fixtures cannot be
/// states the machine could never produce).
fn order_in(state: State) -> Order {
    let t = t0();
    let m = |mins: i64| t + SignedDuration::from_mins(mins);
    let draft = new_host_order("R261122-001", t);
    let pending = draft.submit(m(1)).unwrap().order;
    let approved = pending.approve(&u("bob"), m(2)).unwrap().order;
    let provisioning = approved.start_provisioning(m(3)).unwrap().order;
    let active = provisioning.provisioned(grant(), m(4)).unwrap().order;
    match state {
        State::Draft => draft,
        State::PendingApproval => pending,
        State::Approved => approved,
        State::Provisioning => provisioning,
        State::Active => active,
        State::Expired => active.expire(m(2 + 240)).unwrap().order,
        State::Revoked => active.revoke(Some(&u("admin")), None, m(10)).unwrap().order,
        State::Rejected => pending.reject(&u("bob"), m(2), None).unwrap().order,
        State::Cancelled => pending.cancel(&u("alice"), m(2)).unwrap().order,
        State::FailedRetrying => {
            provisioning
                .provisioning_failed("502", Some(m(60)), m(4))
                .unwrap()
                .order
        }
        State::Failed => {
            provisioning
                .provisioning_failed("403", None, m(4))
                .unwrap()
                .order
        }
    }
}

fn grant() -> GrantResult {
    GrantResult {
        permission_name: Some("accessbot-R261122-001".into()),
        permission_id: Some("4d3c".into()),
        hosts: vec!["web-01".into()],
        account: Some("root".into()),
        ..GrantResult::default()
    }
}

/// Applies `a` with arguments that are valid whenever the state allows the action.
fn apply(o: &Order, a: Action) -> Result<State, TransitionError> {
    let late = t0() + SignedDuration::from_hours(10);
    let r = match a {
        Action::Submit => o.submit(late),
        Action::Approve => o.approve(&u("carol"), late),
        Action::Reject => o.reject(&u("carol"), late, Some("no".into())),
        Action::Cancel => o.cancel(&u("alice"), late),
        Action::TimeOut => o.time_out(late),
        Action::StartProvisioning => o.start_provisioning(late),
        Action::Provisioned => o.provisioned(grant(), late),
        Action::ProvisioningFailed => {
            o.provisioning_failed("x", Some(late + SignedDuration::from_hours(1)), late)
        }
        Action::Expire => o.expire(late),
        Action::Revoke => o.revoke(None, None, late),
        Action::Renew => o.renew(late + SignedDuration::from_hours(2), late),
        Action::ApprovalFailed => o.approval_failed("no approver reachable", late),
    }?;
    assert_eq!(r.from, o.state);
    assert_eq!(r.action, a);
    assert_eq!(r.to, r.order.state);
    assert_eq!(r.order.updated_at, late);
    Ok(r.to)
}

#[test]
fn every_action_from_every_state_follows_the_table() {
    // The machine as the design states it, written out independently of `allowed_from`.
    use State::*;
    let expected: HashMap<(Action, State), State> = [
        ((Action::Submit, Draft), PendingApproval),
        ((Action::Approve, PendingApproval), Approved),
        ((Action::Reject, PendingApproval), Rejected),
        ((Action::Cancel, Draft), Cancelled),
        ((Action::Cancel, PendingApproval), Cancelled),
        ((Action::TimeOut, PendingApproval), Cancelled),
        ((Action::StartProvisioning, Approved), Provisioning),
        ((Action::StartProvisioning, FailedRetrying), Provisioning),
        ((Action::Provisioned, Provisioning), Active),
        ((Action::ProvisioningFailed, Provisioning), FailedRetrying),
        ((Action::Expire, Active), Expired),
        ((Action::Revoke, Approved), Revoked),
        ((Action::Revoke, Provisioning), Revoked),
        ((Action::Revoke, Active), Revoked),
        ((Action::Revoke, FailedRetrying), Revoked),
        ((Action::Renew, Active), Active),
        ((Action::ApprovalFailed, PendingApproval), Failed),
    ]
    .into_iter()
    .collect();
    let mut ok = 0;
    for s in State::ALL {
        let o = order_in(s);
        assert_eq!(o.state, s);
        for a in Action::ALL {
            match (apply(&o, a), expected.get(&(a, s))) {
                (Ok(to), Some(want)) => {
                    assert_eq!(to, *want, "{a} from {s}");
                    ok += 1;
                }
                (Err(e), None) => assert_eq!(
                    e,
                    TransitionError::NotAllowed { from: s, action: a },
                    "{a} from {s}"
                ),
                (got, want) => panic!("{a} from {s}: got {got:?}, table says {want:?}"),
            }
        }
    }
    assert_eq!(ok, expected.len());
}

#[test]
fn window_starts_at_approval_and_double_approval_reports_the_first_decider() {
    let pending = order_in(State::PendingApproval);
    let at = t0() + SignedDuration::from_hours(3);
    let approved = pending.approve(&u("bob"), at).unwrap().order;
    let w = approved.window.unwrap();
    assert_eq!(w.start, at);
    assert_eq!(w.end, at + SignedDuration::from_hours(4));
    let second = approved.approve(&u("carol"), at + SignedDuration::from_secs(1));
    assert_eq!(
        second,
        Err(TransitionError::NotAllowed {
            from: State::Approved,
            action: Action::Approve
        })
    );
    // what the double tap is answered with
    assert_eq!(approved.decided_by, Some(u("bob")));
    assert_eq!(approved.decided_at, Some(at));
}

#[test]
fn expiry_is_refused_before_the_end_and_follows_a_renewal() {
    let active = order_in(State::Active);
    let end = active.window.unwrap().end;
    assert_eq!(
        active.expire(end - SignedDuration::from_secs(1)),
        Err(TransitionError::TooEarly { end })
    );
    let renewed = active
        .renew(
            end + SignedDuration::from_hours(2),
            end - SignedDuration::from_mins(5),
        )
        .unwrap()
        .order;
    assert!(matches!(
        renewed.expire(end),
        Err(TransitionError::TooEarly { .. })
    ));
    assert_eq!(
        renewed
            .expire(end + SignedDuration::from_hours(2))
            .unwrap()
            .to,
        State::Expired
    );
    assert!(matches!(
        active.renew(
            end - SignedDuration::from_hours(9),
            end - SignedDuration::from_hours(1)
        ),
        Err(TransitionError::InvalidRenewal(_))
    ));
    // an account order has no window to renew
    let mut acct = order_in(State::Active);
    acct.request = Request::Account {
        reason: "入职".into(),
    };
    acct.window = None;
    assert!(matches!(
        acct.renew(end, t0()),
        Err(TransitionError::InvalidRenewal(_))
    ));
}

#[test]
fn provisioning_failures_count_attempts_and_become_final_after_the_deadline() {
    let p = order_in(State::Provisioning);
    let at = t0() + SignedDuration::from_hours(1);
    let until = at + SignedDuration::from_hours(1);
    let f1 = p.provisioning_failed("502", Some(until), at).unwrap().order;
    assert_eq!(f1.state, State::FailedRetrying);
    let p2 = f1.start_provisioning(at).unwrap().order;
    let f2 = p2
        .provisioning_failed("timeout", Some(until), until)
        .unwrap()
        .order;
    assert_eq!(f2.state, State::Failed, "retry deadline reached");
    let failure = f2.failure.unwrap();
    assert_eq!(failure.attempts, 2);
    assert_eq!(failure.reason, "timeout");
    assert_eq!(failure.retry_until, None);
}

#[test]
fn order_round_trips_through_json_and_derives_stable_identities() {
    let o = order_in(State::Active);
    let json = serde_json::to_string(&o).unwrap();
    let back: Order = serde_json::from_str(&json).unwrap();
    assert_eq!(back, o);
    assert_eq!(o.permission_name(), "accessbot-R261122-001");
    assert_eq!(o.card_track_id(&u("bob")), o.card_track_id(&u("bob")));
    assert_ne!(o.card_track_id(&u("bob")), o.card_track_id(&u("carol")));
    assert!(o
        .card_track_id(&u("用户/1"))
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
}

#[test]
fn deadlines_depend_on_state_and_skip_reminders_already_sent() {
    let p = DeadlinePolicy {
        approval_timeout: SignedDuration::from_hours(24),
        approval_reminder_after: Some(SignedDuration::from_hours(2)),
        expiry_reminder_before: Some(SignedDuration::from_hours(1)),
    };
    let pending = order_in(State::PendingApproval);
    assert_eq!(
        pending.deadlines(&p),
        vec![
            (
                t0() + SignedDuration::from_hours(2),
                DeadlineKind::ApprovalReminder
            ),
            (
                t0() + SignedDuration::from_hours(24),
                DeadlineKind::ApprovalTimeout
            ),
        ]
    );
    let reminded = pending.mark_approval_reminded(t0() + SignedDuration::from_hours(2));
    assert_eq!(reminded.deadlines(&p).len(), 1);

    let active = order_in(State::Active);
    let end = active.window.unwrap().end;
    assert_eq!(
        active.deadlines(&p),
        vec![
            (
                end - SignedDuration::from_hours(1),
                DeadlineKind::ExpiryReminder
            ),
            (end, DeadlineKind::Expiry),
        ]
    );
    let told = active.mark_expiry_reminded(end - SignedDuration::from_hours(1));
    assert_eq!(told.deadlines(&p), vec![(end, DeadlineKind::Expiry)]);
    // a renewal makes the reminder due again, for the new end
    let renewed = told
        .renew(
            end + SignedDuration::from_hours(3),
            end - SignedDuration::from_mins(30),
        )
        .unwrap()
        .order;
    assert_eq!(
        renewed.deadlines(&p).first().map(|d| d.1),
        Some(DeadlineKind::ExpiryReminder)
    );
    for s in [
        State::Expired,
        State::Revoked,
        State::Rejected,
        State::Failed,
    ] {
        assert!(order_in(s).deadlines(&p).is_empty(), "{s}");
    }
}

// ---------------------------------------------------------------- store

struct Db {
    store: Store,
    orders: Orders,
    outbox: Outbox,
    audit: Audit,
}

fn db_at(store: Store) -> Db {
    let outbox = Outbox::new(&store).unwrap();
    let orders = Orders::new(&store, &outbox).unwrap();
    let audit = Audit::new(&store).unwrap();
    Db {
        store,
        orders,
        outbox,
        audit,
    }
}

/// Opens the sled directory a previous (dropped) `Store` used. sled releases its file lock from
/// a background flusher thread shortly after the last handle drops, so an in-process reopen
/// can briefly see `Locked`; a restarted process never does. Bounded retry, not a timing check.
fn reopen(path: &std::path::Path) -> Db {
    for _ in 0..500 {
        match Store::open(path) {
            Ok(s) => return db_at(s),
            Err(accessbot::store::StoreError::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("reopen failed: {e}"),
        }
    }
    panic!("the store stayed locked after the previous handle was dropped")
}

fn db() -> Db {
    db_at(Store::temporary().unwrap())
}

fn requested(o: &Order) -> AuditRecord {
    AuditRecord::new(
        o.created_at,
        Some(o.id.clone()),
        Actor::User(o.requester.clone()),
        AuditEvent::Requested,
        "host web-01 4h",
    )
}

/// Creates a pending order in the store the way the workflow will.
fn create_pending(db: &Db, id: &str) -> Order {
    let o = new_host_order(id, t0());
    let o = o.submit(t0()).unwrap().order;
    let rec = requested(&o);
    db.orders
        .create(
            o,
            vec![
                JobKind::SendApprovalRequest { approver: u("bob") },
                JobKind::SendApprovalRequest {
                    approver: u("carol"),
                },
            ],
            vec![rec],
        )
        .unwrap()
        .order
}

fn approve(
    db: &Db,
    id: &OrderId,
    version: u64,
    by: &str,
    at: Timestamp,
) -> Result<Order, CasError<TransitionError>> {
    db.orders
        .transition(id, version, |o| {
            let t = o.approve(&u(by), at)?;
            Ok(Change::from_transition(
                t,
                Actor::User(u(by)),
                "",
                vec![
                    JobKind::Grant,
                    JobKind::UpdateCards,
                    JobKind::tell_requester(Notice::Granted),
                ],
            ))
        })
        .map(|c| c.order)
}

#[test]
fn repository_indexes_lookups_and_order_ids() {
    let db = db();
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    // 2026-11-22T17:00Z is already the 23rd in Shanghai
    let late = "2026-11-22T17:00:00Z".parse::<Timestamp>().unwrap();
    let ids: Vec<String> = (0..3)
        .map(|_| db.orders.next_id(late, &tz).unwrap().0)
        .collect();
    assert_eq!(ids, ["R261123-001", "R261123-002", "R261123-003"]);
    assert_eq!(db.orders.next_id(t0(), &tz).unwrap().0, "R261122-001");

    let a = create_pending(&db, "R261122-001");
    assert_eq!(a.version, 1);
    let mut b = new_host_order("R261122-002", t0() + SignedDuration::from_mins(1));
    b.requester = u("dave");
    db.orders.create(b.clone(), vec![], vec![]).unwrap();
    assert!(matches!(
        db.orders.create(b, vec![], vec![]),
        Err(accessbot::store::orders::CreateError::Exists(_))
    ));

    // record where the approval lives, then find the order by it
    let c = db
        .orders
        .transition(&a.id, 1, |o| {
            let n = o
                .with_card_track_id(o.card_track_id(&u("bob")), t0())
                .with_card_track_id(o.card_track_id(&u("bob")), t0())
                .with_oa_instance("proc-inst-77", t0());
            assert_eq!(n.approval_refs.card_track_ids.len(), 1);
            Ok::<_, TransitionError>(Change::new(n))
        })
        .unwrap();
    assert_eq!(c.order.version, 2);
    assert_eq!(
        db.orders
            .find_by_oa_instance("proc-inst-77")
            .unwrap()
            .map(|o| o.id),
        Some(a.id.clone())
    );
    assert_eq!(
        db.orders
            .find_by_card_track_id(&a.card_track_id(&u("bob")))
            .unwrap()
            .map(|o| o.id),
        Some(a.id.clone())
    );
    assert_eq!(db.orders.find_by_oa_instance("nope").unwrap(), None);

    assert_eq!(db.orders.list_by_requester(&u("alice")).unwrap().len(), 1);
    assert_eq!(db.orders.list_by_requester(&u("dave")).unwrap().len(), 1);
    assert_eq!(
        db.orders
            .list_by_state(State::PendingApproval)
            .unwrap()
            .iter()
            .map(|o| o.id.as_str())
            .collect::<Vec<_>>(),
        ["R261122-001"]
    );
    assert_eq!(db.orders.list_by_state(State::Draft).unwrap().len(), 1);
    assert_eq!(
        db.orders
            .list_pending_for_approver(&u("carol"))
            .unwrap()
            .len(),
        1
    );
    assert!(db
        .orders
        .list_pending_for_approver(&u("alice"))
        .unwrap()
        .is_empty());
    approve(&db, &a.id, 2, "bob", t0()).unwrap();
    assert!(db
        .orders
        .list_by_state(State::PendingApproval)
        .unwrap()
        .is_empty());
    assert_eq!(db.orders.list_by_state(State::Approved).unwrap().len(), 1);
}

#[test]
fn a_stale_version_is_refused_with_the_current_order_and_writes_nothing() {
    let db = db();
    let o = create_pending(&db, "R261122-001");
    let jobs_before = db.outbox.len();
    approve(&db, &o.id, 1, "bob", t0()).unwrap();
    let jobs_after_win = db.outbox.len();
    assert_eq!(jobs_after_win, jobs_before + 3);
    match approve(&db, &o.id, 1, "carol", t0()) {
        Err(CasError::Stale { current }) => {
            assert_eq!(current.state, State::Approved);
            assert_eq!(current.decided_by, Some(u("bob")));
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    match approve(&db, &o.id, 2, "carol", t0()) {
        Err(CasError::Refused(TransitionError::NotAllowed { from, action })) => {
            assert_eq!((from, action), (State::Approved, Action::Approve));
        }
        other => panic!("expected NotAllowed, got {other:?}"),
    }
    assert_eq!(db.outbox.len(), jobs_after_win);
    assert!(matches!(
        approve(&db, &OrderId::new("R000000-404"), 1, "bob", t0()),
        Err(CasError::NotFound(_))
    ));
}

#[test]
fn of_many_concurrent_approvers_exactly_one_wins_and_one_grant_is_queued() {
    let db = db();
    let o = create_pending(&db, "R261122-001");
    let n = 16;
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let orders = db.orders.clone();
            let barrier = barrier.clone();
            let id = o.id.clone();
            std::thread::spawn(move || {
                let by = format!("approver{i}");
                let current = orders.get(&id).unwrap().unwrap();
                let r = orders.transition(&id, current.version, |o| {
                    // every thread has passed the version pre-check and decided before any
                    // commits: only the check inside the transaction can stop the losers
                    barrier.wait();
                    let t = o.approve(&u(&by), t0())?;
                    Ok::<_, TransitionError>(Change::from_transition(
                        t,
                        Actor::User(u(&by)),
                        "",
                        vec![JobKind::Grant],
                    ))
                });
                (by, r.map(|c| c.order))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(by, _)| by)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (_, r) in &results {
        match r {
            Ok(o) => assert_eq!(o.version, 2),
            Err(CasError::Stale { current }) => assert_eq!(current.state, State::Approved),
            Err(CasError::Refused(TransitionError::NotAllowed { from, .. })) => {
                assert_eq!(*from, State::Approved)
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    let stored = db.orders.get(&o.id).unwrap().unwrap();
    assert_eq!(stored.decided_by.as_ref().map(|d| &d.0), Some(winners[0]));
    let grants = db
        .outbox
        .pending_for_order(&o.id)
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == JobKind::Grant)
        .count();
    assert_eq!(grants, 1);
    let approvals = db
        .audit
        .list_for_order(&o.id)
        .unwrap()
        .into_iter()
        .filter(|r| r.event == AuditEvent::Approved)
        .count();
    assert_eq!(approvals, 1);
}

#[test]
fn audit_trail_tells_the_whole_story_in_order() {
    let db = db();
    let o = create_pending(&db, "R261122-001");
    let m = |mins: i64| t0() + SignedDuration::from_mins(mins);
    approve(&db, &o.id, 1, "bob", m(1)).unwrap();
    let step =
        |f: &dyn Fn(&Order) -> Result<accessbot::domain::order::Transition, TransitionError>| {
            db.orders
                .update(&o.id, |cur| {
                    Ok::<_, TransitionError>(Change::from_transition(
                        f(cur)?,
                        Actor::System,
                        "",
                        vec![],
                    ))
                })
                .unwrap()
        };
    step(&|o| o.start_provisioning(m(2)));
    step(&|o| o.provisioned(grant(), m(3)));
    let end = db.orders.get(&o.id).unwrap().unwrap().window.unwrap().end;
    step(&|o| o.expire(end));
    let trail = db.audit.list_for_order(&o.id).unwrap();
    let events: Vec<_> = trail.iter().map(|r| (r.event, r.from, r.to)).collect();
    use State::*;
    assert_eq!(
        events,
        vec![
            (AuditEvent::Requested, None, None),
            (AuditEvent::Approved, Some(PendingApproval), Some(Approved)),
            (
                AuditEvent::ProvisioningStarted,
                Some(Approved),
                Some(Provisioning)
            ),
            (AuditEvent::Granted, Some(Provisioning), Some(Active)),
            (AuditEvent::Expired, Some(Active), Some(Expired)),
        ]
    );
    assert_eq!(trail[1].actor, Actor::User(u("bob")));
    assert_eq!(trail[4].at, end);
    // another order's records stay out of this trail but show up in the global feed
    create_pending(&db, "R261122-002");
    assert_eq!(db.audit.list_for_order(&o.id).unwrap().len(), 5);
    let since = db.audit.list_since(m(2), 100).unwrap();
    assert_eq!(
        since.iter().map(|r| r.event).collect::<Vec<_>>(),
        vec![
            AuditEvent::ProvisioningStarted,
            AuditEvent::Granted,
            AuditEvent::Expired
        ],
        "records are time-ordered; the second order was requested at t0"
    );
}

#[test]
fn dialogs_are_stored_per_user_and_swept_when_idle() {
    let store = Store::temporary().unwrap();
    let d = Dialogs::new(&store).unwrap();
    d.put(&u("alice"), serde_json::json!({"step": "pick_host"}), t0())
        .unwrap();
    d.put(
        &u("bob"),
        serde_json::json!({"step": "reason"}),
        t0() + SignedDuration::from_mins(20),
    )
    .unwrap();
    assert_eq!(
        d.get(&u("alice")).unwrap().unwrap().state["step"],
        "pick_host"
    );
    let swept = d
        .sweep_idle(
            t0() + SignedDuration::from_mins(30),
            SignedDuration::from_mins(15),
        )
        .unwrap();
    assert_eq!(swept, vec![u("alice")]);
    assert!(d.get(&u("alice")).unwrap().is_none());
    assert!(d.delete(&u("bob")).unwrap());
    assert!(!d.delete(&u("bob")).unwrap());
    assert!(d.is_empty());
}

// ---------------------------------------------------------------- outbox runner

/// A fake JumpServer that outlives the store (like the real one outlives our process): it holds
/// permissions by name. The runner looks before it creates, as the real grant code must.
#[derive(Default)]
struct FakeJms {
    permissions: Mutex<HashMap<String, u32>>,
    creates: AtomicUsize,
    runs: AtomicUsize,
    messages: Mutex<Vec<String>>,
    /// Fail the next N runs transiently.
    fail_next: AtomicUsize,
    permanent: Mutex<HashSet<String>>,
    gave_up: Mutex<Vec<(String, String)>>,
}

impl JobRunner for FakeJms {
    async fn run(&self, job: &OutboxJob) -> Result<(), JobError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if self.permanent.lock().unwrap().contains(&job.kind.key()) {
            return Err(JobError::permanent("user not found in JumpServer"));
        }
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(JobError::transient("502 Bad Gateway"));
        }
        match &job.kind {
            JobKind::Grant => {
                let name = format!("accessbot-{}", job.order_id);
                let mut p = self.permissions.lock().unwrap();
                // look before create: an existing permission means an earlier run did it
                if let std::collections::hash_map::Entry::Vacant(e) = p.entry(name) {
                    e.insert(1);
                    self.creates.fetch_add(1, Ordering::SeqCst);
                }
            }
            other => {
                self.messages
                    .lock()
                    .unwrap()
                    .push(format!("{}:{}", job.order_id, other.key()))
            }
        }
        Ok(())
    }

    async fn gave_up(&self, job: &OutboxJob, reason: &str) {
        self.gave_up
            .lock()
            .unwrap()
            .push((job.id.clone(), reason.to_owned()));
    }
}

fn cfg() -> RunnerConfig {
    RunnerConfig {
        max_concurrency: 4,
        backoff_base: SignedDuration::from_secs(2),
        backoff_max: SignedDuration::from_mins(10),
        give_up_after: SignedDuration::from_hours(1),
        idle_poll: std::time::Duration::from_secs(3600),
    }
}

fn runner<R: JobRunner>(db: &Db, r: Arc<R>, clock: &ManualClock) -> OutboxRunner<R> {
    let clock: SharedClock = Arc::new(clock.clone());
    OutboxRunner::new(db.outbox.clone(), db.audit.clone(), r, clock, cfg())
}

#[test]
fn backoff_doubles_with_jitter_within_bounds_and_is_capped() {
    let c = cfg();
    assert_eq!(backoff_delay(&c, 1, 0.0), SignedDuration::from_secs(1));
    assert_eq!(backoff_delay(&c, 1, 1.0), SignedDuration::from_secs(2));
    assert_eq!(backoff_delay(&c, 3, 0.0), SignedDuration::from_secs(4));
    assert_eq!(backoff_delay(&c, 3, 0.5), SignedDuration::from_secs(6));
    assert_eq!(backoff_delay(&c, 30, 1.0), SignedDuration::from_mins(10));
    assert_eq!(
        backoff_delay(&c, u32::MAX, 0.0),
        SignedDuration::from_mins(5)
    );
    assert_eq!(backoff_delay(&c, 0, 0.0), SignedDuration::from_secs(1));
}

#[tokio::test]
async fn crash_after_commit_the_reopened_store_runs_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let jms = Arc::new(FakeJms::default());
    let id;
    {
        let db = db_at(Store::open(dir.path()).unwrap());
        id = create_pending(&db, "R261122-001").id;
        approve(&db, &id, 1, "bob", t0()).unwrap();
        // process dies here: nothing ran
    }
    let db = reopen(dir.path());
    assert_eq!(db.orders.get(&id).unwrap().unwrap().state, State::Approved);
    let clock = ManualClock::new(t0());
    let r = runner(&db, jms.clone(), &clock);
    // one job per order per tick: 2 approval requests, then grant, cards, notify
    let mut total = 0;
    for _ in 0..10 {
        total += r.run_once().await.unwrap().completed;
    }
    assert_eq!(total, 5);
    assert!(db.outbox.is_empty());
    assert_eq!(jms.creates.load(Ordering::SeqCst), 1);
    assert_eq!(
        *jms.messages.lock().unwrap(),
        [
            "R261122-001:send-approval.bob",
            "R261122-001:send-approval.carol",
            "R261122-001:update-cards",
            "R261122-001:notify-requester.granted"
        ],
        "jobs of one order run in creation order"
    );
}

#[tokio::test]
async fn a_job_that_ran_but_was_not_marked_done_runs_again_with_one_effect() {
    let dir = tempfile::tempdir().unwrap();
    let jms = Arc::new(FakeJms::default());
    let id;
    {
        let db = db_at(Store::open(dir.path()).unwrap());
        let o = new_host_order("R261122-001", t0());
        let o = o.submit(t0()).unwrap().order;
        id = db.orders.create(o, vec![], vec![]).unwrap().order.id;
        approve(&db, &id, 1, "bob", t0()).unwrap();
        let grant = db
            .outbox
            .pending_for_order(&id)
            .unwrap()
            .into_iter()
            .find(|j| j.kind == JobKind::Grant)
            .unwrap();
        // the effect happens, then the process dies before `complete`
        jms.run(&grant).await.unwrap();
        db.store.flush().await.unwrap();
    }
    let db = reopen(dir.path());
    let clock = ManualClock::new(t0());
    let r = runner(&db, jms.clone(), &clock);
    let report = r.run_once().await.unwrap();
    assert_eq!(report.completed, 1);
    assert_eq!(jms.runs.load(Ordering::SeqCst), 2, "the grant ran twice");
    assert_eq!(
        jms.creates.load(Ordering::SeqCst),
        1,
        "but took effect once"
    );
    assert_eq!(jms.permissions.lock().unwrap().len(), 1);
    // re-enqueueing the very same job is a no-op
    let again = OutboxJob::new(&id, 2, 0, JobKind::Grant, t0());
    assert!(
        db.outbox.enqueue(&again).unwrap(),
        "it was completed, so it is new again"
    );
    assert!(
        !db.outbox.enqueue(&again).unwrap(),
        "second enqueue is a no-op"
    );
}

#[tokio::test]
async fn transient_failures_back_off_then_give_up_at_the_deadline() {
    let db = db();
    let clock = ManualClock::new(t0());
    let jms = Arc::new(FakeJms::default());
    jms.fail_next.store(usize::MAX, Ordering::SeqCst);
    let job = OutboxJob::new(&OrderId::new("R261122-009"), 1, 0, JobKind::Grant, t0());
    db.outbox.enqueue(&job).unwrap();
    let r = runner(&db, jms.clone(), &clock);

    let rep = r.run_once().await.unwrap();
    assert_eq!((rep.ran, rep.retried), (1, 1));
    let stored = db.outbox.get(&job.id).unwrap().unwrap();
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.last_error.as_deref(), Some("502 Bad Gateway"));
    let wait = stored.not_before.duration_since(t0());
    assert!(
        wait >= SignedDuration::from_secs(1) && wait <= SignedDuration::from_secs(2),
        "{wait:?}"
    );
    // not due yet: nothing runs
    clock.advance(SignedDuration::from_millis(999));
    assert_eq!(r.run_once().await.unwrap().ran, 0);
    clock.set(stored.not_before);
    assert_eq!(r.run_once().await.unwrap().retried, 1);
    let second = db.outbox.get(&job.id).unwrap().unwrap();
    let wait2 = second.not_before.duration_since(stored.not_before);
    assert!(
        wait2 >= SignedDuration::from_secs(2) && wait2 <= SignedDuration::from_secs(4),
        "{wait2:?}"
    );

    // keep failing until the give-up deadline (1 h after the job was created)
    let mut gave_up = 0;
    for _ in 0..100 {
        let next = match db.outbox.get(&job.id).unwrap() {
            Some(j) if db.outbox.parked().unwrap().is_empty() => j.not_before,
            _ => break,
        };
        clock.set(next);
        gave_up += r.run_once().await.unwrap().gave_up;
    }
    assert_eq!(gave_up, 1);
    assert!(clock.now() >= t0() + SignedDuration::from_hours(1));
    assert!(
        clock.now() <= t0() + SignedDuration::from_hours(1),
        "retries are clamped to the deadline"
    );
    let parked = db.outbox.parked().unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].reason, ParkReason::GaveUp);
    assert!(db.outbox.due(Timestamp::MAX, 10).unwrap().is_empty());
    assert_eq!(jms.gave_up.lock().unwrap().len(), 1);
    let trail = db.audit.list_for_order(&job.order_id).unwrap();
    assert_eq!(trail.last().map(|r| r.event), Some(AuditEvent::JobGaveUp));
    assert!(trail[0].detail.contains("502"), "{}", trail[0].detail);
}

#[tokio::test]
async fn a_permanent_error_gives_up_at_once_and_later_jobs_of_the_order_still_run() {
    let db = db();
    let clock = ManualClock::new(t0());
    let jms = Arc::new(FakeJms::default());
    jms.permanent.lock().unwrap().insert("grant".into());
    let id = create_pending(&db, "R261122-001").id;
    approve(&db, &id, 1, "bob", t0()).unwrap();
    let r = runner(&db, jms.clone(), &clock);
    let mut reports = Vec::new();
    for _ in 0..6 {
        reports.push(r.run_once().await.unwrap());
    }
    assert_eq!(reports.iter().map(|r| r.gave_up).sum::<usize>(), 1);
    assert_eq!(reports.iter().map(|r| r.completed).sum::<usize>(), 4);
    let (job_id, reason) = jms.gave_up.lock().unwrap()[0].clone();
    assert!(job_id.ends_with("/grant"));
    assert_eq!(reason, "user not found in JumpServer");
    assert_eq!(db.outbox.len(), 1, "the failed grant stays, parked");
}

#[tokio::test]
async fn a_failing_head_blocks_its_own_order_only() {
    let db = db();
    let clock = ManualClock::new(t0());
    let jms = Arc::new(FakeJms::default());
    let a = OrderId::new("R261122-001");
    let b = OrderId::new("R261122-002");
    let notify = JobKind::tell_requester;
    db.outbox
        .enqueue(&OutboxJob::new(&a, 2, 0, JobKind::Grant, t0()))
        .unwrap();
    db.outbox
        .enqueue(&OutboxJob::new(&a, 2, 1, notify(Notice::Granted), t0()))
        .unwrap();
    db.outbox
        .enqueue(&OutboxJob::new(
            &b,
            2,
            0,
            notify(Notice::ApprovedWaiting {
                by: u("bob"),
                remaining: 1,
            }),
            t0(),
        ))
        .unwrap();
    jms.fail_next.store(1, Ordering::SeqCst);
    let r = runner(&db, jms.clone(), &clock);
    // tick 1: heads of A (grant) and B run; which one hits the single failure depends on
    // scheduling, so drive until the order of effects can be checked
    for _ in 0..4 {
        r.run_once().await.unwrap();
        clock.advance(SignedDuration::from_secs(5));
    }
    assert!(db.outbox.is_empty());
    let msgs = jms.messages.lock().unwrap().clone();
    assert!(msgs.contains(&"R261122-002:notify-requester.approved_waiting".to_string()));
    assert!(msgs.contains(&"R261122-001:notify-requester.granted".to_string()));
    assert_eq!(jms.creates.load(Ordering::SeqCst), 1);
    // A's notify can only have run after A's grant succeeded: the permission exists
    assert!(jms
        .permissions
        .lock()
        .unwrap()
        .contains_key("accessbot-R261122-001"));
}

#[tokio::test]
async fn the_grant_failing_keeps_the_notification_waiting() {
    let db = db();
    let clock = ManualClock::new(t0());
    let jms = Arc::new(FakeJms::default());
    let a = OrderId::new("R261122-001");
    db.outbox
        .enqueue(&OutboxJob::new(&a, 2, 0, JobKind::Grant, t0()))
        .unwrap();
    db.outbox
        .enqueue(&OutboxJob::new(
            &a,
            2,
            1,
            JobKind::tell_requester(Notice::Granted),
            t0(),
        ))
        .unwrap();
    jms.fail_next.store(1, Ordering::SeqCst);
    let r = runner(&db, jms.clone(), &clock);
    assert_eq!(r.run_once().await.unwrap().retried, 1);
    // the notification is due but waits behind the grant
    assert_eq!(r.run_once().await.unwrap().ran, 0);
    assert!(jms.messages.lock().unwrap().is_empty());
    clock.advance(SignedDuration::from_secs(2));
    assert_eq!(r.run_once().await.unwrap().completed, 1);
    assert_eq!(r.run_once().await.unwrap().completed, 1);
    assert_eq!(
        *jms.messages.lock().unwrap(),
        ["R261122-001:notify-requester.granted"]
    );
}

/// Blocks inside `run` until two jobs are in flight at once; proves different orders run
/// concurrently (a serial runner would never release the barrier).
struct NeedsTwo(tokio::sync::Barrier);

impl JobRunner for NeedsTwo {
    async fn run(&self, _job: &OutboxJob) -> Result<(), JobError> {
        self.0.wait().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_orders_run_concurrently() {
    let db = db();
    let clock = ManualClock::new(t0());
    for id in ["R261122-001", "R261122-002"] {
        db.outbox
            .enqueue(&OutboxJob::new(
                &OrderId::new(id),
                2,
                0,
                JobKind::Grant,
                t0(),
            ))
            .unwrap();
    }
    let r = runner(
        &db,
        Arc::new(NeedsTwo(tokio::sync::Barrier::new(2))),
        &clock,
    );
    // the timeout only turns a would-be hang into a failure; it asserts nothing about speed
    let rep = tokio::time::timeout(std::time::Duration::from_secs(60), r.run_once())
        .await
        .expect("jobs of different orders did not run concurrently")
        .unwrap();
    assert_eq!(rep.completed, 2);
}

/// Signals when it starts and waits for permission to finish: lets a test shut the runner
/// down while a job is in flight.
struct Gate {
    started: tokio::sync::mpsc::UnboundedSender<String>,
    release: tokio::sync::Semaphore,
}

impl JobRunner for Gate {
    async fn run(&self, job: &OutboxJob) -> Result<(), JobError> {
        let _ = self.started.send(job.id.clone());
        let _permit = self
            .release
            .acquire()
            .await
            .map_err(|e| JobError::transient(e.to_string()))?;
        Ok(())
    }
}

#[tokio::test]
async fn the_loop_wakes_on_commit_and_finishes_in_flight_work_on_shutdown() {
    let db = db();
    let clock = ManualClock::new(t0());
    let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let gate = Arc::new(Gate {
        started: tx,
        release: tokio::sync::Semaphore::new(0),
    });
    let r = Arc::new(runner(&db, gate.clone(), &clock));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let r = r.clone();
        async move {
            r.run(async {
                let _ = stop_rx.await;
            })
            .await
        }
    });
    // idle_poll is an hour: only the commit's notification can wake the loop
    let o = new_host_order("R261122-001", t0())
        .submit(t0())
        .unwrap()
        .order;
    db.orders
        .create(o, vec![JobKind::StartOaApproval], vec![])
        .unwrap();
    let first = started.recv().await.unwrap();
    assert!(first.ends_with("/start-oa"));
    stop_tx.send(()).unwrap();
    gate.release.add_permits(1);
    task.await.unwrap();
    assert!(
        db.outbox.is_empty(),
        "the in-flight job was recorded as done before exit"
    );
}

#[tokio::test]
async fn a_job_kind_from_a_newer_version_is_parked_not_lost() {
    let db = db();
    let clock = ManualClock::new(t0());
    let a = OrderId::new("R261122-001");
    db.outbox
        .insert_raw(
            "R261122-001/0000000002-00/x",
            &a,
            serde_json::json!({"kind": "teleport"}),
            t0(),
        )
        .unwrap();
    db.outbox
        .enqueue(&OutboxJob::new(&a, 2, 1, JobKind::Revoke, t0()))
        .unwrap();
    let jms = Arc::new(FakeJms::default());
    let r = runner(&db, jms.clone(), &clock);
    assert_eq!(r.run_once().await.unwrap().completed, 1);
    let parked = db.outbox.parked().unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].reason, ParkReason::UnknownKind);
    assert_eq!(parked[0].kind["kind"], "teleport");
    assert!(parked[0]
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("teleport"));
    // still unknown to this version: reviving leaves it parked
    assert_eq!(db.outbox.revive_unknown_kinds(t0()).unwrap(), 0);
    // a job an older version parked but this one understands runs again after revival
    let known = OutboxJob::new(&a, 3, 0, JobKind::UpdateCards, t0());
    db.outbox.enqueue(&known).unwrap();
    db.outbox
        .park(&known.id, ParkReason::UnknownKind, "unknown variant")
        .unwrap();
    assert_eq!(db.outbox.revive_unknown_kinds(t0()).unwrap(), 1);
    assert_eq!(r.run_once().await.unwrap().completed, 1);
    assert_eq!(
        *jms.messages.lock().unwrap(),
        ["R261122-001:revoke", "R261122-001:update-cards"]
    );
}

// ---------------------------------------------------------------- scheduler

/// Records what fired and acts like the workflow will: times out, reminds, expires.
struct Recorder {
    orders: Orders,
    clock: ManualClock,
    fired: Mutex<Vec<(String, DeadlineKind)>>,
    fail_once: Mutex<HashSet<DeadlineKind>>,
    tx: Option<tokio::sync::mpsc::UnboundedSender<DeadlineKind>>,
}

impl DeadlineHandler for Recorder {
    async fn on_deadline(&self, d: &Deadline) -> Result<(), String> {
        if self.fail_once.lock().unwrap().remove(&d.kind) {
            return Err("DingTalk 503".into());
        }
        self.fired.lock().unwrap().push((d.order.0.clone(), d.kind));
        if let Some(tx) = &self.tx {
            let _ = tx.send(d.kind);
        }
        let now = self.clock.now();
        let r = self.orders.update(&d.order, |o| {
            let change = match d.kind {
                DeadlineKind::ApprovalTimeout => {
                    Change::from_transition(o.time_out(now)?, Actor::System, "", vec![])
                }
                DeadlineKind::Expiry => Change::from_transition(
                    o.expire(now)?,
                    Actor::System,
                    "",
                    vec![JobKind::Revoke],
                ),
                DeadlineKind::ApprovalReminder => Change::new(o.mark_approval_reminded(now)),
                DeadlineKind::ExpiryReminder => Change::new(o.mark_expiry_reminded(now)),
            };
            Ok::<_, TransitionError>(change)
        });
        match r {
            Ok(_) | Err(CasError::Refused(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn policy() -> DeadlinePolicy {
    DeadlinePolicy {
        approval_timeout: SignedDuration::from_hours(8),
        approval_reminder_after: Some(SignedDuration::from_hours(1)),
        expiry_reminder_before: Some(SignedDuration::from_mins(30)),
    }
}

fn scheduler(
    db: &Db,
    clock: &ManualClock,
    tx: Option<tokio::sync::mpsc::UnboundedSender<DeadlineKind>>,
) -> Arc<Scheduler<Recorder>> {
    let handler = Arc::new(Recorder {
        orders: db.orders.clone(),
        clock: clock.clone(),
        fired: Mutex::default(),
        fail_once: Mutex::default(),
        tx,
    });
    let shared: SharedClock = Arc::new(clock.clone());
    let s = Arc::new(Scheduler::new(
        shared,
        handler,
        SchedulerConfig {
            policy: policy(),
            retry_after: SignedDuration::from_mins(1),
            idle_poll: std::time::Duration::from_secs(3600),
        },
    ));
    db.orders.observe(s.clone());
    s
}

#[tokio::test]
async fn deadlines_are_rebuilt_from_the_store_and_fire_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = db_at(Store::open(dir.path()).unwrap());
        create_pending(&db, "R261122-001"); // pending since t0
        let b = create_pending(&db, "R261122-002");
        // B approved at t0+10min, active 4 h → ends t0+4h10
        approve(&db, &b.id, 1, "bob", t0() + SignedDuration::from_mins(10)).unwrap();
        db.orders
            .update(&b.id, |o| {
                let t = o
                    .start_provisioning(t0())?
                    .order
                    .provisioned(grant(), t0())?;
                Ok::<_, TransitionError>(Change::from_transition(t, Actor::System, "", vec![]))
            })
            .unwrap();
    }
    let db = reopen(dir.path());
    let clock = ManualClock::new(t0());
    let s = scheduler(&db, &clock, None);
    assert_eq!(s.rebuild(&db.orders).unwrap(), 4);
    let h = |x: i64| t0() + SignedDuration::from_mins(x);
    assert_eq!(
        s.pending()
            .iter()
            .map(|d| (d.at, d.kind))
            .collect::<Vec<_>>(),
        vec![
            (h(60), DeadlineKind::ApprovalReminder),
            (h(220), DeadlineKind::ExpiryReminder),
            (h(250), DeadlineKind::Expiry),
            (h(480), DeadlineKind::ApprovalTimeout),
        ]
    );
    assert!(s.fire_due().await.is_empty());
    clock.set(h(230));
    let fired: Vec<_> = s
        .fire_due()
        .await
        .into_iter()
        .map(|f| f.deadline.kind)
        .collect();
    assert_eq!(
        fired,
        [DeadlineKind::ApprovalReminder, DeadlineKind::ExpiryReminder]
    );
    // reminders recorded on the orders: they would not be rebuilt after a restart
    assert_eq!(s.rebuild(&db.orders).unwrap(), 2);
    clock.set(h(1000));
    let fired: Vec<_> = s
        .fire_due()
        .await
        .into_iter()
        .map(|f| (f.deadline.order.0, f.deadline.kind))
        .collect();
    assert_eq!(
        fired,
        [
            ("R261122-002".to_string(), DeadlineKind::Expiry),
            ("R261122-001".to_string(), DeadlineKind::ApprovalTimeout),
        ]
    );
    assert_eq!(
        db.orders
            .get(&OrderId::new("R261122-001"))
            .unwrap()
            .unwrap()
            .state,
        State::Cancelled
    );
    assert_eq!(
        db.orders
            .get(&OrderId::new("R261122-002"))
            .unwrap()
            .unwrap()
            .state,
        State::Expired
    );
    assert!(
        s.pending().is_empty(),
        "finished orders have no deadlines left"
    );
    // the expiry queued the revoke in the same transaction
    assert!(db
        .outbox
        .pending_for_order(&OrderId::new("R261122-002"))
        .unwrap()
        .iter()
        .any(|j| j.kind == JobKind::Revoke));
}

#[tokio::test]
async fn a_renewal_moves_the_expiry() {
    let db = db();
    let clock = ManualClock::new(t0());
    let s = scheduler(&db, &clock, None);
    let o = create_pending(&db, "R261122-001");
    approve(&db, &o.id, 1, "bob", t0()).unwrap();
    let active = db
        .orders
        .update(&o.id, |o| {
            let t = o
                .start_provisioning(t0())?
                .order
                .provisioned(grant(), t0())?;
            Ok::<_, TransitionError>(Change::from_transition(t, Actor::System, "", vec![]))
        })
        .unwrap()
        .order;
    let end = active.window.unwrap().end;
    assert_eq!(
        s.next_deadline().map(|d| d.kind),
        Some(DeadlineKind::ExpiryReminder)
    );
    let new_end = end + SignedDuration::from_hours(2);
    db.orders
        .update(&o.id, |o| {
            Ok::<_, TransitionError>(Change::from_transition(
                o.renew(new_end, t0())?,
                Actor::User(u("alice")),
                "",
                vec![JobKind::Renew],
            ))
        })
        .unwrap();
    assert_eq!(
        s.pending().iter().map(|d| d.at).collect::<Vec<_>>(),
        [new_end - SignedDuration::from_mins(30), new_end]
    );
    clock.set(end);
    assert!(s.fire_due().await.is_empty(), "the old end no longer fires");

    clock.set(new_end);
    let fired: Vec<_> = s
        .fire_due()
        .await
        .into_iter()
        .map(|f| (f.deadline.at, f.deadline.kind))
        .collect();
    assert_eq!(
        fired,
        [
            (
                new_end - SignedDuration::from_mins(30),
                DeadlineKind::ExpiryReminder
            ),
            (new_end, DeadlineKind::Expiry)
        ]
    );
    assert_eq!(db.orders.get(&o.id).unwrap().unwrap().state, State::Expired);
}

#[tokio::test]
async fn failed_deadline_handler_is_retried_later() {
    let db = db();
    let clock = ManualClock::new(t0());
    let handler = Arc::new(Recorder {
        orders: db.orders.clone(),
        clock: clock.clone(),
        fired: Mutex::default(),
        fail_once: Mutex::new([DeadlineKind::ApprovalReminder].into_iter().collect()),
        tx: None,
    });
    let shared: SharedClock = Arc::new(clock.clone());
    let s = Arc::new(Scheduler::new(
        shared,
        handler.clone(),
        SchedulerConfig {
            policy: policy(),
            retry_after: SignedDuration::from_mins(1),
            idle_poll: std::time::Duration::from_secs(3600),
        },
    ));
    db.orders.observe(s.clone());
    create_pending(&db, "R261122-001");
    clock.set(t0() + SignedDuration::from_hours(1));
    let fired = s.fire_due().await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].result, Err("DingTalk 503".into()));
    assert!(handler.fired.lock().unwrap().is_empty());
    assert!(
        s.fire_due().await.is_empty(),
        "not again before retry_after"
    );
    clock.advance(SignedDuration::from_mins(1));
    let fired = s.fire_due().await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].result, Ok(()));
    assert_eq!(
        *handler.fired.lock().unwrap(),
        [("R261122-001".to_string(), DeadlineKind::ApprovalReminder)]
    );
    assert!(db
        .orders
        .get(&OrderId::new("R261122-001"))
        .unwrap()
        .unwrap()
        .reminders
        .approval_reminded_at
        .is_some());
}

#[tokio::test]
async fn the_scheduler_loop_wakes_for_an_earlier_deadline() {
    let db = db();
    let clock = ManualClock::new(t0() + SignedDuration::from_hours(100));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let s = scheduler(&db, &clock, Some(tx));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let s = s.clone();
        async move {
            s.run(async {
                let _ = stop_rx.await;
            })
            .await
        }
    });
    // idle_poll is an hour of real time: only the wake-up from the new deadline can fire it
    create_pending(&db, "R261122-001");
    assert_eq!(rx.recv().await, Some(DeadlineKind::ApprovalReminder));
    assert_eq!(rx.recv().await, Some(DeadlineKind::ApprovalTimeout));
    stop_tx.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(
        db.orders
            .get(&OrderId::new("R261122-001"))
            .unwrap()
            .unwrap()
            .state,
        State::Cancelled
    );
}

// ---------------------------------------------------------------- properties

mod props {
    use super::*;
    use proptest::prelude::*;

    fn action() -> impl Strategy<Value = Action> {
        proptest::sample::select(Action::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any sequence of actions through the store keeps the bookkeeping consistent: one audit
        /// record per applied transition, the state index lists the order under its state only,
        /// the version counts the commits, and nothing leaves a terminal state.
        #[test]
        fn random_action_sequences_keep_store_and_state_consistent(actions in proptest::collection::vec(action(), 1..24)) {
            let db = db();
            let o = create_pending(&db, "R261122-001");
            let mut applied = 0u64;
            let mut state = o.state;
            for (i, a) in actions.into_iter().enumerate() {
                let before = db.orders.get(&o.id).unwrap().unwrap();
                let now = t0() + SignedDuration::from_hours(i as i64 * 3);
                let r = db.orders.update(&o.id, |cur| {
                    let t = match a {
                        Action::Submit => cur.submit(now),
                        Action::Approve => cur.approve(&u("bob"), now),
                        Action::Reject => cur.reject(&u("bob"), now, None),
                        Action::Cancel => cur.cancel(&u("alice"), now),
                        Action::TimeOut => cur.time_out(now),
                        Action::StartProvisioning => cur.start_provisioning(now),
                        Action::Provisioned => cur.provisioned(grant(), now),
                        Action::ProvisioningFailed => cur.provisioning_failed("x", Some(now + SignedDuration::from_hours(1)), now),
                        Action::Expire => cur.expire(now),
                        Action::Revoke => cur.revoke(None, None, now),
                        Action::Renew => cur.renew(now + SignedDuration::from_hours(1), now),
                        Action::ApprovalFailed => cur.approval_failed("x", now),
                    }?;
                    Ok::<_, TransitionError>(Change::from_transition(t, Actor::System, "", vec![]))
                });
                match r {
                    Ok(c) => {
                        applied += 1;
                        prop_assert!(!before.state.is_terminal());
                        prop_assert!(a.allowed_from().contains(&before.state));
                        state = c.order.state;
                    }
                    Err(CasError::Refused(_)) => {
                        prop_assert_eq!(db.orders.get(&o.id).unwrap().unwrap(), before);
                    }
                    Err(e) => prop_assert!(false, "unexpected {}", e),
                }
            }
            let stored = db.orders.get(&o.id).unwrap().unwrap();
            prop_assert_eq!(stored.state, state);
            prop_assert_eq!(stored.version, 1 + applied);
            prop_assert_eq!(db.audit.list_for_order(&o.id).unwrap().len() as u64, 1 + applied);
            for s in State::ALL {
                let listed = db.orders.list_by_state(s).unwrap().len();
                prop_assert_eq!(listed, usize::from(s == state), "index for {}", s);
            }
        }
    }
}
