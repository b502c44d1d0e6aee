//! A tap on an approval card: the card's own order only, decided through `decision`; the
//! response updates the tapped card at once (DingTalk wants it within 2 s, so no IO but the
//! store). Taps on request form cards go to `events::form`.
use crate::chat::card::{self, ApprovalAction, CardVars};
use crate::chat::text;
use crate::dispatch::{DispatchError, DispatchReply};
use crate::inbound::CardAction;
use crate::workflow::decision::{self, DecideRefused, Decided};
use crate::workflow::events::form;
use crate::workflow::ports::CasError;
use crate::workflow::{retry, Workflow};
use serde_json::json;
use std::collections::BTreeMap;

pub(in crate::workflow) fn on_card(
    wf: &Workflow,
    a: CardAction,
) -> Result<DispatchReply, DispatchError> {
    let lang = wf.lang();
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
    if let Some(rest) = a.out_track_id.strip_prefix(form::FORM_PREFIX) {
        // A form card belongs to the user it was sent to; nobody else submits it.
        let owner = format!("{}-", hex::encode(tapper.as_str().as_bytes()));
        if !rest.starts_with(&owner) {
            wf.tell_later(tapper, text::card_unknown(lang));
            return Ok(DispatchReply::Refused);
        }
        return form::on_form(wf, &tapper, &params);
    }
    let Some(order) = wf
        .orders
        .find_by_card_track_id(&a.out_track_id)
        .map_err(retry)?
    else {
        wf.tell_later(tapper, text::card_unknown(lang));
        return Ok(DispatchReply::Refused);
    };
    let action = match card::read_approval(&params) {
        Ok(x) => x,
        Err(e) => {
            wf.tell_later(tapper, text::card_input_error(lang, &e));
            return Ok(DispatchReply::Refused);
        }
    };
    let (id, reason) = match action {
        ApprovalAction::Approve(id) => (id, None),
        ApprovalAction::Reject { order, reason } => (order, Some(reason)),
    };
    if id != order.id {
        // A card's buttons only act on the card's own order.
        wf.tell_later(tapper, text::card_unknown(lang));
        return Ok(DispatchReply::Refused);
    }
    match decision::decide(wf, &tapper, &id, reason) {
        Ok(Decided::Final(o)) | Ok(Decided::Partial { order: o, .. }) => {
            Ok(card_update(wf.approval_card_vars(&o, None)))
        }
        Err(CasError::Refused(DecideRefused::NotPending(o))) => {
            wf.tell_later(
                tapper,
                decision::refused_text(wf, &id, &DecideRefused::NotPending(o.clone())),
            );
            // The tapper's card catches up with the decision it missed.
            Ok(card_update(wf.approval_card_vars(&o, None)))
        }
        // Refused before anything was recorded (not an approver, OA mode, invalid): the
        // next tap is judged afresh (`DispatchReply::Refused`).
        Err(CasError::Refused(r)) => {
            wf.tell_later(tapper, decision::refused_text(wf, &id, &r));
            Ok(DispatchReply::Refused)
        }
        Err(CasError::NotFound(_)) => {
            wf.tell_later(tapper, text::card_unknown(lang));
            Ok(DispatchReply::Refused)
        }
        Err(CasError::Stale { .. }) => Err(DispatchError::Retry("order busy".into())),
        Err(CasError::Store(e)) => Err(retry(e)),
    }
}

fn card_update(vars: CardVars) -> DispatchReply {
    DispatchReply::CardUpdate(json!({
        "cardUpdateOptions": {"updateCardDataByKey": true, "updatePrivateDataByKey": false},
        "cardData": {"cardParamMap": vars},
    }))
}
