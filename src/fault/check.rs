//! The end check of a fault run, against what the simulators recorded (they outlived every
//! kill) and what the bot's store says once the bot is stopped:
//! - every planned request is exactly one order, in its final state (active when approved,
//!   rejected when rejected): none lost, none doubled;
//! - an approved order has exactly one JumpServer permission carrying its marker, named
//!   `accessbot-<installation>-<order>`, active, for exactly the requester's user, the one host
//!   asked for, the role's logins and actions, and a window of exactly the requested length
//!   starting when the approver decided; a rejected order has none;
//! - one host per address, one JumpServer user per person, no permission without our marker;
//! - one approval card per order and approver (card mode) or one OA instance per order (OA mode),
//!   ending in the decided state;
//! - the requester was told the outcome. Extra copies of a chat message are counted, not failed:
//!   DingTalk's robot send has no idempotency key, so a kill after DingTalk accepted a send and
//!   before the bot marked it done sends it again (README, "one thing a crash can still double").
use super::plan::{Decision, PlannedOrder};
use super::{Approval, Trace};
use crate::domain::command::Role;
use crate::domain::ids::DingUserId;
use crate::domain::order::{Order, Request, State};
use crate::domain::ownership::{permission_name, Marker};
use crate::domain::policy::Policy;
use crate::sandbox::dingtalk::{ConvEntry, ConvKind, SimApproval, SimDingTalk};
use crate::sandbox::jumpserver::model::{Host, Permission, User};
use crate::sandbox::jumpserver::SimJumpServer;
use crate::store::orders::Orders;
use crate::store::outbox::{Outbox, ParkedJob};
use crate::store::{Store, StoreError};
use jiff::SignedDuration;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What the bot's sled store holds after the run.
#[derive(Debug)]
pub struct StoreView {
    pub installation: String,
    /// The orders of the run's requesters.
    pub orders: Vec<Order>,
    /// Every order in the store (more than `orders` means someone unplanned asked).
    pub total_orders: usize,
    /// Runnable jobs still queued after the bot was stopped.
    pub outbox_left: usize,
    /// Jobs that gave up.
    pub parked: Vec<ParkedJob>,
}

/// Opens the stopped bot's store and reads the run's orders and the outbox.
pub fn read_store(path: &Path, requesters: &[(String, String)]) -> Result<StoreView, StoreError> {
    let store = Store::open(path)?;
    let outbox = Outbox::new(&store)?;
    let orders = Orders::new(&store, &outbox)?;
    let mut mine = Vec::new();
    for (id, _) in requesters {
        mine.extend(orders.list_by_requester(&DingUserId::new(id.as_str()))?);
    }
    let parked = outbox.parked()?;
    Ok(StoreView {
        installation: store.installation_id().as_str().to_owned(),
        total_orders: orders.len(),
        orders: mine,
        outbox_left: outbox.len().saturating_sub(parked.len()),
        parked,
    })
}

/// What the check found.
#[derive(Debug, Default)]
pub struct Findings {
    pub violations: Vec<String>,
    /// Extra copies of identical bot messages in one chat, by kind (`granted`, `rejected`,
    /// `other`).
    pub duplicates: BTreeMap<&'static str, usize>,
    pub approved: usize,
    pub rejected: usize,
}

/// Whether `text` names order `id` (and not a longer id that starts with it).
pub fn mentions(text: &str, id: &str) -> bool {
    !id.is_empty()
        && text.match_indices(id).any(|(i, _)| {
            !text
                .get(i + id.len()..)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_alphanumeric()))
        })
}

/// The requester's "granted" notice (usable, or written but without a usable login), in
/// either language: people who write English are answered in English.
fn is_granted(text: &str) -> bool {
    text.contains("权限已开通")
        || text.contains("授权已写入")
        || text.contains("access is ready")
        || text.contains("the grant is in JumpServer")
}

fn is_rejected(text: &str) -> bool {
    text.contains("拒绝了申请") || (text.contains("❌") && text.contains(" rejected "))
}

fn kind_of(text: &str) -> &'static str {
    if is_granted(text) {
        "granted"
    } else if is_rejected(text) {
        "rejected"
    } else {
        "other"
    }
}

/// Robot messages the bot sent to `chat`.
fn messages_to<'a>(conv: &'a [ConvEntry], chat: &'a str) -> impl Iterator<Item = &'a ConvEntry> {
    conv.iter()
        .filter(move |e| e.chat == chat && e.from_bot() && e.kind == ConvKind::Message)
}

/// OA instances whose form carries order `id` (the bot's order-id field).
fn instances_of<'a>(approvals: &'a [SimApproval], id: &str) -> Vec<&'a SimApproval> {
    approvals
        .iter()
        .filter(|a| a.form.iter().any(|(_, v)| v.trim() == id))
        .collect()
}

/// The simulators' state at one moment, read once per settle poll.
pub struct Snapshot {
    conv: Vec<ConvEntry>,
    /// Order id → permissions carrying its marker.
    perms: BTreeMap<String, usize>,
}

impl Snapshot {
    pub fn take(dt: &SimDingTalk, jms: &SimJumpServer) -> Snapshot {
        let mut perms = BTreeMap::new();
        for p in jms.permissions() {
            if let Some(m) = Marker::parse(&p.comment) {
                *perms.entry(m.order.as_str().to_owned()).or_default() += 1;
            }
        }
        Snapshot {
            conv: dt.conversation(),
            perms,
        }
    }

    /// Whether the outcome of `t` is visible: the permission and the "granted" notice, or the
    /// rejection notice. A trace that never got an order id has nothing to wait for (its
    /// problem is reported by the check).
    pub fn ended(&self, t: &Trace) -> bool {
        let Some(id) = &t.order_id else {
            return true;
        };
        let told = |f: fn(&str) -> bool| {
            messages_to(&self.conv, &t.plan.requester).any(|e| mentions(&e.text, id) && f(&e.text))
        };
        if t.plan.decision.approves() {
            self.perms.get(id).is_some_and(|n| *n > 0) && told(is_granted)
        } else {
            told(is_rejected)
        }
    }
}

/// Logins and actions a role grants (from the bot's own policy, so the check follows config).
fn role_grants(policy: &Policy, role: &str) -> (Vec<String>, Vec<String>) {
    let role = Role::from_word(role).unwrap_or(Role::Readonly);
    let rp = policy.role(role);
    let mut accounts = rp.accounts.clone();
    let mut actions = rp.actions.clone();
    accounts.sort();
    actions.sort();
    (accounts, actions)
}

struct World<'a> {
    conv: Vec<ConvEntry>,
    approvals: Vec<SimApproval>,
    users: Vec<User>,
    hosts: Vec<Host>,
    dt: &'a SimDingTalk,
    policy: &'a Policy,
    approval: Approval,
    approver: &'a str,
    installation: &'a str,
}

/// Checks the run. `approver` is the one approver every order goes to.
pub fn check(
    traces: &[Trace],
    dt: &SimDingTalk,
    jms: &SimJumpServer,
    store: &StoreView,
    policy: &Policy,
    approval: Approval,
    approver: &str,
) -> Findings {
    let mut f = Findings::default();
    let w = World {
        conv: dt.conversation(),
        approvals: dt.approvals(),
        users: jms.users(),
        hosts: jms.hosts(),
        dt,
        policy,
        approval,
        approver,
        installation: &store.installation,
    };
    let perms = jms.permissions();
    let mut by_order: BTreeMap<String, Vec<&Permission>> = BTreeMap::new();
    for p in &perms {
        match Marker::parse(&p.comment) {
            Some(m) if m.installation == store.installation => {
                by_order
                    .entry(m.order.as_str().to_owned())
                    .or_default()
                    .push(p);
            }
            Some(m) => f.violations.push(format!(
                "permission {} carries the marker of installation {}, not this bot's {}",
                p.name, m.installation, store.installation
            )),
            // The simulated JumpServer starts without permissions: whatever exists, the bot made.
            None => f.violations.push(format!(
                "permission {} has no accessbot marker in its comment",
                p.name
            )),
        }
    }
    let mut matched = BTreeSet::new();
    for t in traces {
        if let Some(id) = check_order(t, &w, store, &by_order, &mut f) {
            matched.insert(id);
        }
    }
    for o in &store.orders {
        if !matched.contains(o.id.as_str()) {
            f.violations.push(format!(
                "order {} of {} ({:?}) matches no request of the run",
                o.id, o.requester, o.state
            ));
        }
    }
    if store.total_orders != store.orders.len() {
        f.violations.push(format!(
            "the store holds {} orders, {} of them from the run's requesters",
            store.total_orders,
            store.orders.len()
        ));
    }
    if approval == Approval::Oa {
        for a in &w.approvals {
            let ours = store
                .orders
                .iter()
                .any(|o| a.form.iter().any(|(_, v)| v.trim() == o.id.as_str()));
            if !ours {
                f.violations.push(format!(
                    "OA instance {} ({}) belongs to no order",
                    a.instance_id, a.status
                ));
            }
        }
    }
    check_people(traces, &w, &mut f);
    for j in &store.parked {
        f.violations.push(format!(
            "job {} gave up: {}",
            j.id,
            j.last_error.as_deref().unwrap_or("?")
        ));
    }
    // Extra copies: the same text to the same chat more than once.
    let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for e in w
        .conv
        .iter()
        .filter(|e| e.from_bot() && e.kind == ConvKind::Message)
    {
        *seen.entry((e.chat.as_str(), e.text.as_str())).or_default() += 1;
    }
    for ((_, text), n) in seen {
        if n > 1 {
            *f.duplicates.entry(kind_of(text)).or_default() += n - 1;
        }
    }
    f
}

/// One planned request against the store and the simulators; returns its order id.
fn check_order(
    t: &Trace,
    w: &World<'_>,
    store: &StoreView,
    by_order: &BTreeMap<String, Vec<&Permission>>,
    f: &mut Findings,
) -> Option<String> {
    let p = &t.plan;
    let what = match p.decision {
        Decision::ApproveCard => "approve by card",
        Decision::ApproveText => "approve by text",
        Decision::Reject => "reject",
    };
    let label = format!(
        "request #{} ({} → {}, {what})",
        p.index, p.requester, p.address
    );
    if let Some(why) = &t.problem {
        f.violations.push(format!("{label}: {why}"));
    }
    let found: Vec<&Order> = store
        .orders
        .iter()
        .filter(|o| o.requester.as_str() == p.requester && o.request.reason() == p.reason)
        .collect();
    let o = match found.as_slice() {
        [] => {
            f.violations
                .push(format!("{label}: lost, no order in the bot's store"));
            return None;
        }
        [o] => *o,
        many => {
            let ids: Vec<&str> = many.iter().map(|o| o.id.as_str()).collect();
            f.violations.push(format!(
                "{label}: {} orders for one request: {}",
                many.len(),
                ids.join(", ")
            ));
            many[0]
        }
    };
    let id = o.id.as_str();
    let label = format!("{label} {id}");
    if let Some(seen) = t.order_id.as_deref().filter(|s| *s != id) {
        f.violations.push(format!(
            "{label}: the approver was shown order {seen}, the store has {id}"
        ));
    }
    let approves = p.decision.approves();
    let want = if approves {
        State::Active
    } else {
        State::Rejected
    };
    if o.state != want {
        let why = o
            .failure
            .as_ref()
            .map(|x| format!(" ({x:?})"))
            .unwrap_or_default();
        f.violations.push(format!(
            "{label}: ended {:?}, expected {want:?}{why}",
            o.state
        ));
    } else if approves {
        f.approved += 1;
    } else {
        f.rejected += 1;
    }
    match &o.request {
        Request::Host {
            targets,
            role,
            duration,
            ..
        } if targets.len() == 1
            && targets[0].to_string() == p.address
            && role.key() == p.role.key()
            && i64::try_from(duration.minutes()).unwrap_or(0) * 60 == p.duration_secs => {}
        other => f.violations.push(format!(
            "{label}: stored request {other:?} is not what was asked"
        )),
    }
    let perms = by_order.get(id).map(Vec::as_slice).unwrap_or_default();
    match (approves, perms) {
        (true, []) => f
            .violations
            .push(format!("{label}: approved, but no JumpServer permission")),
        (true, [perm]) => check_permission(&label, t, o, perm, w, f),
        (true, many) | (false, many) if !many.is_empty() => {
            let names: Vec<&str> = many.iter().map(|p| p.name.as_str()).collect();
            f.violations.push(format!(
                "{label}: {} JumpServer permission(s): {}",
                many.len(),
                names.join(", ")
            ));
        }
        _ => {}
    }
    let said: Vec<&ConvEntry> = messages_to(&w.conv, &p.requester)
        .filter(|e| mentions(&e.text, id))
        .collect();
    let granted = said.iter().filter(|e| is_granted(&e.text)).count();
    let rejected = said.iter().filter(|e| is_rejected(&e.text)).count();
    match (approves, granted, rejected) {
        (true, 0, _) => f.violations.push(format!(
            "{label}: the requester was never told it was granted"
        )),
        (false, _, 0) => f.violations.push(format!(
            "{label}: the requester was never told it was rejected"
        )),
        _ => {}
    }
    if (approves && rejected > 0) || (!approves && granted > 0) {
        f.violations.push(format!(
            "{label}: the requester was told the opposite outcome"
        ));
    }
    match w.approval {
        Approval::Card => check_cards(&label, o, approves, w, f),
        Approval::Oa => check_oa(&label, o, approves, w, f),
    }
    Some(id.to_owned())
}

fn check_permission(
    label: &str,
    t: &Trace,
    o: &Order,
    perm: &Permission,
    w: &World<'_>,
    f: &mut Findings,
) {
    let p: &PlannedOrder = &t.plan;
    let mut wrong = Vec::new();
    let name = permission_name(w.installation, &o.id, 1);
    if perm.name != name {
        wrong.push(format!("named {} instead of {name}", perm.name));
    }
    if !perm.is_active {
        wrong.push("not active".to_owned());
    }
    let users: Vec<&User> = w
        .users
        .iter()
        .filter(|u| u.username == p.requester)
        .collect();
    match users.as_slice() {
        [u] if perm.user_ids == [u.id.clone()] => {}
        _ => wrong.push(format!(
            "users {:?} instead of exactly {}",
            perm.user_ids, p.requester
        )),
    }
    let hosts: Vec<&Host> = w.hosts.iter().filter(|h| h.address == p.address).collect();
    match hosts.as_slice() {
        [h] if perm.asset_ids == [h.id.clone()] && perm.node_ids.is_empty() => {}
        _ => wrong.push(format!(
            "assets {:?} / nodes {:?} instead of exactly host {}",
            perm.asset_ids, perm.node_ids, p.address
        )),
    }
    let (accounts, actions) = role_grants(w.policy, p.role.key());
    let mut got_accounts = perm.accounts.clone();
    let mut got_actions = perm.actions.clone();
    got_accounts.sort();
    got_actions.sort();
    if got_accounts != accounts || got_actions != actions {
        wrong.push(format!(
            "logins {got_accounts:?} actions {got_actions:?} instead of {accounts:?} {actions:?}"
        ));
    }
    let length = perm.date_expired.duration_since(perm.date_start);
    if length != SignedDuration::from_secs(p.duration_secs) {
        wrong.push(format!(
            "window {} → {} is {length:#}, asked {}",
            perm.date_start, perm.date_expired, p.duration_text
        ));
    }
    // The window starts when the approver's decision was recorded: after the approver first
    // decided and before the bot acknowledged it (JumpServer keeps whole seconds).
    let second = SignedDuration::from_secs(1);
    match o.window {
        Some(win) if (perm.date_start.duration_since(win.start)).abs() < second => {}
        other => wrong.push(format!(
            "starts {} but the order's window is {other:?}",
            perm.date_start
        )),
    }
    if let (Some(win), Some((from, to))) = (o.window, t.decided) {
        let early = from.checked_sub(second).unwrap_or(from);
        let late = to.checked_add(second).unwrap_or(to);
        if win.start < early || win.start > late {
            wrong.push(format!(
                "approved at {} but the approver decided between {from} and {to}",
                win.start
            ));
        }
    }
    if !wrong.is_empty() {
        f.violations.push(format!(
            "{label}: permission {}: {}",
            perm.name,
            wrong.join("; ")
        ));
    }
}

/// One approval card per order for the approver and one status card for the requester, in
/// the decided state.
fn check_cards(label: &str, o: &Order, approves: bool, w: &World<'_>, f: &mut Findings) {
    let prefix = format!("ab-{}-", o.id);
    let created = |chat: &str| -> BTreeSet<String> {
        w.conv
            .iter()
            .filter(|e| e.chat == chat)
            .filter_map(|e| match &e.kind {
                ConvKind::CardCreated { out_track_id } if out_track_id.starts_with(&prefix) => {
                    Some(out_track_id.clone())
                }
                _ => None,
            })
            .collect()
    };
    for (chat, who) in [
        (w.approver, "approver"),
        (o.requester.as_str(), "requester"),
    ] {
        let cards = created(chat);
        if cards.len() != 1 {
            f.violations.push(format!(
                "{label}: {} cards for the {who}: {cards:?}",
                cards.len()
            ));
        }
    }
    let want = if approves { "approved" } else { "rejected" };
    let track = o.card_track_id(&DingUserId::new(w.approver));
    let status =
        w.dt.card(&track)
            .and_then(|c| c.params.get("status").cloned());
    if status.as_deref() != Some(want) {
        f.violations.push(format!(
            "{label}: the approver's card shows {status:?}, expected {want}"
        ));
    }
}

/// One OA instance per order, completed with the decision, recorded on the order.
fn check_oa(label: &str, o: &Order, approves: bool, w: &World<'_>, f: &mut Findings) {
    let found = instances_of(&w.approvals, o.id.as_str());
    let [a] = found.as_slice() else {
        let ids: Vec<&str> = found.iter().map(|a| a.instance_id.as_str()).collect();
        f.violations
            .push(format!("{label}: {} OA instances: {ids:?}", found.len()));
        return;
    };
    let want = if approves { "agree" } else { "refuse" };
    if a.status != "COMPLETED" || a.result.as_deref() != Some(want) {
        f.violations.push(format!(
            "{label}: OA instance {} is {} {:?}, expected COMPLETED {want}",
            a.instance_id, a.status, a.result
        ));
    }
    if o.approval_refs.oa_instance_id.as_deref() != Some(a.instance_id.as_str()) {
        f.violations.push(format!(
            "{label}: the order records OA instance {:?}, DingTalk has {}",
            o.approval_refs.oa_instance_id, a.instance_id
        ));
    }
}

/// One host per asked address (none for rejected requests), one JumpServer user per person.
fn check_people(traces: &[Trace], w: &World<'_>, f: &mut Findings) {
    for t in traces {
        let p = &t.plan;
        let n = w.hosts.iter().filter(|h| h.address == p.address).count();
        let want = usize::from(p.decision.approves());
        if n != want {
            f.violations.push(format!(
                "request #{}: {n} JumpServer hosts with address {}, expected {want}",
                p.index, p.address
            ));
        }
    }
    let granted_to: BTreeSet<&str> = traces
        .iter()
        .filter(|t| t.plan.decision.approves())
        .map(|t| t.plan.requester.as_str())
        .collect();
    for person in granted_to {
        let email = format!("{person}@example.com");
        let n = w
            .users
            .iter()
            .filter(|u| u.username.eq_ignore_ascii_case(person) || u.email == email)
            .count();
        if n != 1 {
            f.violations.push(format!(
                "{n} JumpServer users for {person}, expected exactly one"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_id_is_mentioned_only_as_a_whole() {
        assert!(mentions("申请 R261123-001，权限已开通。", "R261123-001"));
        assert!(mentions("R261123-001", "R261123-001"));
        assert!(!mentions("申请 R261123-0012 已通过", "R261123-001"));
        assert!(mentions("R261123-0012 and R261123-001.", "R261123-001"));
        assert!(!mentions("anything", ""));
    }

    #[test]
    fn notices_are_told_apart() {
        assert_eq!(
            kind_of("✅ 李四 已同意申请 R1-001，权限已开通。JumpServer 现在为用户 a 授予："),
            "granted"
        );
        assert_eq!(kind_of("❌ 李四 拒绝了申请 R1-001。\n原因：x"), "rejected");
        assert_eq!(kind_of("已收到申请 R1-001"), "other");
    }
}
