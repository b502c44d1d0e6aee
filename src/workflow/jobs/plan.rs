//! The grant plan of an order: which node, which hosts, which logins and actions, the window, the
//! permission name and its ownership marker. Built the same way for the preview and the grant.
use crate::chat::order::OrderText;
use crate::domain::order::Order;
use crate::domain::target::Target;
use crate::workflow::ports::{GrantPlan, NewUser};
use crate::workflow::Workflow;
use jiff::Timestamp;

pub(in crate::workflow) fn plan_for(
    wf: &Workflow,
    o: &Order,
    username: &str,
    name: &str,
    email: Option<String>,
    start: Timestamp,
    end: Timestamp,
) -> GrantPlan {
    let (node, addresses, _) = grant_scope(wf, &wf.targets_of(o));
    let rp = wf.policy.role(OrderText::role(o));
    let reason = o.request.reason();
    let mut comment = format!("{} {} ({})", o.id, o.requester_name, o.requester);
    if !reason.is_empty() {
        comment.push_str(&format!("\nreason: {reason}"));
    }
    GrantPlan {
        username: username.to_string(),
        email: email.clone(),
        new_user: if wf.policy.auto_create_user {
            email.map(|email| NewUser {
                name: name.to_string(),
                email,
            })
        } else {
            None
        },
        node_name: node,
        addresses,
        platform: wf.settings.platform.clone(),
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

/// The node a host order is granted in, and whether the whole node is the grant.
pub(in crate::workflow) fn grant_scope(
    wf: &Workflow,
    targets: &[Target],
) -> (String, Vec<String>, bool) {
    let leaf = |node: &str| {
        node.trim_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let mut node: Option<String> = None;
    let mut addresses: Vec<String> = Vec::new();
    let mut systems_with_node = 0usize;
    for t in targets {
        match t {
            Target::System(name) => {
                if let Some(s) = wf.policy.systems.iter().find(|s| &s.name == name) {
                    match &s.node {
                        Some(n) => {
                            systems_with_node += 1;
                            node.get_or_insert_with(|| leaf(n));
                        }
                        // A system without a node is granted host by host.
                        None => addresses.extend(s.hostnames.iter().cloned()),
                    }
                }
            }
            other => {
                addresses.push(other.to_string());
                if node.is_none() {
                    if let Some(n) = wf
                        .policy
                        .systems_for(std::slice::from_ref(other))
                        .iter()
                        .find_map(|s| s.node.clone())
                    {
                        node = Some(leaf(&n));
                    }
                }
            }
        }
    }
    let node = node
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| wf.settings.default_node.clone());
    // GrantPlan: empty addresses mean "grant the node itself".
    let whole = addresses.is_empty() && systems_with_node > 0;
    (node, addresses, whole)
}
