//! The order's cards: the requester's status card, and every card brought to the order's current
//! state (buttons off once decided), by their outTrackIds.
use crate::domain::order::{ApprovalMode, Order};
use crate::worker::outbox::JobError;
use crate::workflow::jobs::dt_err;
use crate::workflow::ports::{CardDelivery, CardTarget};
use crate::workflow::Workflow;
use std::collections::BTreeMap;

/// The requester's status card (approval template, no buttons), when cards are configured.
pub(in crate::workflow) async fn deliver_requester_card(
    wf: &Workflow,
    o: &Order,
) -> Result<(), JobError> {
    let Some(tpl) = wf.settings.approval_template() else {
        return Ok(());
    };
    if o.approval_mode != ApprovalMode::Card {
        return Ok(());
    }
    let mut vars = wf.approval_card_vars(o, None);
    vars.insert("buttons_visible".into(), "false".into());
    let req = CardDelivery {
        template_id: tpl.to_string(),
        out_track_id: o.requester_card_track_id(),
        params: vars,
        to: CardTarget::User(o.requester.clone()),
        callback_route_key: wf.settings.route_key(),
    };
    wf.chat.deliver_card(req).await.map_err(dt_err)
}

pub(in crate::workflow) async fn run(wf: &Workflow, o: &Order) -> Result<(), JobError> {
    if wf.settings.approval_template().is_none() || o.approval_mode != ApprovalMode::Card {
        return Ok(());
    }
    let who = wf.decider_display_name(o).await;
    let vars = wf.approval_card_vars(o, Some(&who));
    let mut targets: Vec<(String, BTreeMap<String, String>)> = o
        .approvers
        .iter()
        .map(|a| (o.card_track_id(a), vars.clone()))
        .collect();
    let mut mine = vars.clone();
    mine.insert("buttons_visible".into(), "false".into());
    targets.push((o.requester_card_track_id(), mine));
    for (track, vars) in targets {
        match wf.chat.update_card(&track, vars).await {
            Ok(()) => {}
            Err(e) if e.is_transient() => return Err(JobError::transient(e.to_string())),
            // A card that was never delivered cannot be updated; the others still are.
            Err(e) => tracing::warn!(card = %track, error = %e, "card update refused"),
        }
    }
    Ok(())
}
