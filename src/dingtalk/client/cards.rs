//! Interactive cards: create and deliver, update public and private data, register the HTTP
//! callback route (reference §5.1–5.3).
use super::transport::{str_field, Style};
use super::{DingTalkClient, DingTalkError, Result};
use crate::domain::ids::DingUserId;
use crate::secret::Secret;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardTarget {
    /// The 1:1 chat between the robot and this user.
    User(DingUserId),
    /// A group chat; non-empty `recipients` limits who sees the card.
    Group {
        open_conversation_id: String,
        recipients: Vec<DingUserId>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardDelivery {
    pub template_id: String,
    /// Our id for the card; DingTalk refuses a second card with the same id, which makes
    /// delivery idempotent.
    pub out_track_id: String,
    pub params: BTreeMap<String, String>,
    pub to: CardTarget,
    /// Set for HTTP callbacks (the key registered with `card/callbacks/register`); `None`
    /// means callbacks come over Stream mode.
    pub callback_route_key: Option<String>,
}

/// Per-user card variables: `privateData` keyed by userid (with `userIdType` 1).
pub type PrivateCardData = BTreeMap<DingUserId, BTreeMap<String, String>>;

impl DingTalkClient {
    /// Creates a card instance from `template_id` without delivering it anywhere (the create
    /// half of §5.1's two-step alternative, `POST /v1.0/card/instances`): nobody sees it, and a
    /// wrong or unpublished template is refused (`param.templateNotExist` /
    /// `param.templateUnpublished`). `accessbot doctor`'s template check.
    pub async fn create_undelivered_card(
        &self,
        template_id: &str,
        out_track_id: &str,
        route_key: Option<&str>,
    ) -> Result<()> {
        let mut body = json!({
            "cardTemplateId": template_id,
            "outTrackId": out_track_id,
            "cardData": {"cardParamMap": {}},
            "callbackType": if route_key.is_some() { "HTTP" } else { "STREAM" },
        });
        if let Some(k) = route_key {
            body["callbackRouteKey"] = json!(k);
        }
        self.call(
            Style::New,
            Method::POST,
            &self.api("/v1.0/card/instances"),
            &[],
            Some(&body),
            false,
        )
        .await
        .map(|_| ())
    }

    /// The JSON body of `card/instances/createAndDeliver` (§5.1).
    pub fn card_delivery_body(&self, req: &CardDelivery, private: &PrivateCardData) -> Value {
        let mut body = json!({
            "cardTemplateId": req.template_id,
            "outTrackId": req.out_track_id,
            "cardData": {"cardParamMap": req.params},
        });
        if !private.is_empty() {
            body["privateData"] = private_json(private);
        }
        match &req.callback_route_key {
            Some(key) => {
                body["callbackType"] = json!("HTTP");
                body["callbackRouteKey"] = json!(key);
            }
            None => body["callbackType"] = json!("STREAM"),
        }
        match &req.to {
            CardTarget::User(u) => {
                body["openSpaceId"] = json!(format!("dtv1.card//IM_ROBOT.{}", u.as_str()));
                body["userIdType"] = json!(1);
                body["imRobotOpenSpaceModel"] = json!({"supportForward": false});
                body["imRobotOpenDeliverModel"] =
                    json!({"spaceType": "IM_ROBOT", "robotCode": self.inner.robot_code});
            }
            CardTarget::Group {
                open_conversation_id,
                recipients,
            } => {
                body["openSpaceId"] = json!(format!("dtv1.card//IM_GROUP.{open_conversation_id}"));
                body["imGroupOpenSpaceModel"] = json!({"supportForward": false});
                let mut deliver = json!({"robotCode": self.inner.robot_code});
                if !recipients.is_empty() {
                    deliver["recipients"] = json!(recipients);
                }
                body["imGroupOpenDeliverModel"] = deliver;
            }
        }
        body
    }

    /// Creates and delivers an interactive card. Delivering an `out_track_id` that already
    /// exists counts as success, so the outbox can retry freely.
    pub async fn create_and_deliver_card(&self, req: CardDelivery) -> Result<()> {
        self.create_and_deliver_card_with_private(req, &PrivateCardData::new())
            .await
    }

    /// As `create_and_deliver_card`, with per-user overrides of the card variables (e.g.
    /// `canApprove` only for the approvers).
    pub async fn create_and_deliver_card_with_private(
        &self,
        req: CardDelivery,
        private: &PrivateCardData,
    ) -> Result<()> {
        let body = self.card_delivery_body(&req, private);
        let res = self
            .call(
                Style::New,
                Method::POST,
                &self.api("/v1.0/card/instances/createAndDeliver"),
                &[],
                Some(&body),
                true,
            )
            .await;
        let v = match res {
            Ok(v) => v,
            Err(DingTalkError::Api { code, .. }) if code == "param.cardAlreadyExist" => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        let results = v
            .pointer("/result/deliverResults")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                DingTalkError::Decode("createAndDeliver without deliverResults".into())
            })?;
        for r in results {
            if r.get("success").and_then(Value::as_bool) != Some(true) {
                return Err(DingTalkError::CardNotDelivered {
                    space_id: str_field(r, "spaceId"),
                    message: str_field(r, "errorMsg"),
                });
            }
        }
        Ok(())
    }

    /// Merges `params` into a card's public data (§5.2).
    pub async fn update_card(
        &self,
        out_track_id: &str,
        params: BTreeMap<String, String>,
    ) -> Result<()> {
        self.update_card_with_private(out_track_id, params, &PrivateCardData::new())
            .await
    }

    /// Merges `params` into the public data and each user's entry of `private` into that
    /// user's private data.
    pub async fn update_card_with_private(
        &self,
        out_track_id: &str,
        params: BTreeMap<String, String>,
        private: &PrivateCardData,
    ) -> Result<()> {
        let mut body = json!({
            "outTrackId": out_track_id,
            "cardData": {"cardParamMap": params},
            "cardUpdateOptions": {
                "updateCardDataByKey": true,
                "updatePrivateDataByKey": !private.is_empty(),
            },
            "userIdType": 1,
        });
        if !private.is_empty() {
            body["privateData"] = private_json(private);
        }
        self.call(
            Style::New,
            Method::PUT,
            &self.api("/v1.0/card/instances"),
            &[],
            Some(&body),
            true,
        )
        .await
        .map(|_| ())
    }

    /// Registers (or with `force_update`, replaces) the HTTP callback URL of a card route key
    /// (§5.3). `api_secret` is what DingTalk signs callbacks with.
    pub async fn register_card_callback(
        &self,
        route_key: &str,
        callback_url: &str,
        api_secret: &Secret,
        force_update: bool,
    ) -> Result<()> {
        let body = json!({
            "callbackRouteKey": route_key,
            "callbackUrl": callback_url,
            "apiSecret": api_secret.expose(),
            "forceUpdate": force_update,
        });
        self.call(
            Style::New,
            Method::POST,
            &self.api("/v1.0/card/callbacks/register"),
            &[],
            Some(&body),
            true,
        )
        .await
        .map(|_| ())
    }
}

fn private_json(private: &PrivateCardData) -> Value {
    Value::Object(
        private
            .iter()
            .map(|(u, m)| (u.as_str().to_owned(), json!({"cardParamMap": m})))
            .collect(),
    )
}
