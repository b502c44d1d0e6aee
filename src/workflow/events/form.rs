//! The request form card: sent for a bare `/apply` when a template is configured, and its
//! submit read with the same parsers and checks as a typed request (`commands::apply`).
use crate::chat::text;
use crate::dispatch::DispatchError;
use crate::domain::command;
use crate::domain::dialog::{self, Reply};
use crate::domain::ids::DingUserId;
use crate::workflow::commands::apply;
use crate::workflow::ports::{CardDelivery, CardTarget};
use crate::workflow::{retry, Workflow};
use sha2::Digest;
use std::collections::BTreeMap;

/// Delivers the request form card (an artifact of a read-only answer: nothing recorded).
pub(in crate::workflow) fn send_form_later(wf: &Workflow, user: &DingUserId, msg_id: &str) {
    let Some(tpl) = wf.settings.request_template() else {
        return;
    };
    let req = CardDelivery {
        template_id: tpl.to_string(),
        out_track_id: form_track_id(user, msg_id),
        params: crate::chat::card::request_form_vars(
            wf.lang(),
            &command::ApplyDraft::default(),
            &wf.policy,
        ),
        to: CardTarget::User(user.clone()),
        callback_route_key: wf.settings.route_key(),
    };
    let chat = wf.chat.clone();
    tokio::spawn(async move {
        if let Err(e) = chat.deliver_card(req).await {
            tracing::warn!(error = %e, "request form card not delivered");
        }
    });
}

/// A tap on a request form card: the same parsers and checks as a typed request.
pub(in crate::workflow) fn on_form(
    wf: &Workflow,
    tapper: &DingUserId,
    params: &BTreeMap<String, String>,
) -> Result<crate::dispatch::DispatchReply, DispatchError> {
    use crate::chat::card::{read_form, request_form_submitted_vars, FormAction};
    let lang = wf.lang();
    let now = wf.now();
    let draft = match read_form(params) {
        Ok(FormAction::Submit(d)) => d,
        Ok(FormAction::Cancel) => {
            wf.dialogs.delete(tapper).map_err(retry)?;
            wf.tell_later(
                tapper.clone(),
                text::dialog_reply(lang, &Reply::Cancelled, false).unwrap_or_default(),
            );
            return Ok(crate::dispatch::DispatchReply::None);
        }
        Err(e) => {
            wf.tell_later(tapper.clone(), text::card_input_error(lang, &e));
            return Ok(crate::dispatch::DispatchReply::Refused);
        }
    };
    let step = dialog::from_draft(draft, &wf.policy, now.as_millisecond());
    match (step.reply, step.done) {
        (Reply::Complete, Some(req)) => {
            wf.dialogs.delete(tapper).map_err(retry)?;
            let before = wf.orders.list_by_requester(tapper).map_err(retry)?.len();
            let answer = apply::submit_host(wf, tapper, "", req, wf.lang_of(tapper))?;
            let orders = wf.orders.list_by_requester(tapper).map_err(retry)?;
            wf.tell_later(tapper.clone(), answer);
            if orders.len() > before {
                if let Some(o) = orders.first() {
                    let vars = request_form_submitted_vars(lang, &o.id);
                    return Ok(crate::dispatch::DispatchReply::CardUpdate(
                        serde_json::json!({
                            "cardUpdateOptions": {"updateCardDataByKey": true},
                            "cardData": {"cardParamMap": vars},
                        }),
                    ));
                }
            }
            Ok(crate::dispatch::DispatchReply::None)
        }
        (other, _) => {
            if let Some(s) = step.new_state {
                wf.dialogs.save(tapper, &s, now).map_err(retry)?;
            }
            wf.tell_later(
                tapper.clone(),
                text::dialog_reply(lang, &other, false).unwrap_or_default(),
            );
            Ok(crate::dispatch::DispatchReply::None)
        }
    }
}

/// outTrackId of a request form card: per user and message, so each `/apply` has its own.
pub(in crate::workflow) fn form_track_id(user: &DingUserId, msg_id: &str) -> String {
    let digest = hex::encode(sha2::Sha256::digest(msg_id.as_bytes()));
    format!(
        "{FORM_PREFIX}{}-{}",
        hex::encode(user.as_str().as_bytes()),
        digest.get(..16).unwrap_or(&digest)
    )
}

pub(in crate::workflow) const FORM_PREFIX: &str = "ab-form-";
