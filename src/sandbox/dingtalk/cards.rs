//! Interactive cards: create and deliver, update, register the callback route (reference §5).
use super::response::{new_err, ok, str_of};
use super::*;
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub(super) fn string_map(v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    let obj = v?.as_object()?;
    obj.iter()
        .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
        .collect()
}

/// `privateData` as `{userId: {cardParamMap: {k: "v"}}}`; absent is empty, wrong types are `None`.
fn private_map(v: Option<&Value>) -> Option<BTreeMap<String, BTreeMap<String, String>>> {
    match v {
        None | Some(Value::Null) => Some(BTreeMap::new()),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(u, d)| string_map(d.get("cardParamMap")).map(|m| (u.clone(), m)))
            .collect(),
        Some(_) => None,
    }
}

pub(super) fn card_create(sh: &Shared, s: &mut Sim, body: &Value, now: i64) -> Response {
    let Some(tpl) = str_of(body, "cardTemplateId").filter(|t| !t.is_empty()) else {
        return new_err(s, 400, "param.templateNotExist", "param.templateNotExist");
    };
    if !s.card_templates.is_empty() && !s.card_templates.contains(tpl) {
        return new_err(s, 400, "param.templateNotExist", "param.templateNotExist");
    }
    let Some(track) = str_of(body, "outTrackId").filter(|t| !t.is_empty()) else {
        return new_err(s, 400, "param.outTrackIdEmpty", "param.outTrackIdEmpty");
    };
    // Values must be strings (reference §5.1); sim-chosen code for the refusal.
    let Some(params) = string_map(body.pointer("/cardData/cardParamMap")) else {
        return new_err(
            s,
            400,
            "param.cardDataInvalid",
            "cardParamMap 的值必须是字符串",
        );
    };
    let Some(space) = str_of(body, "openSpaceId")
        .and_then(|o| o.strip_prefix("dtv1.card//"))
        .map(str::to_owned)
    else {
        return new_err(
            s,
            400,
            "param.openSpaceIdInvalid",
            "param.openSpaceIdInvalid",
        );
    };
    let mut targets = Vec::new();
    for part in space.split(';').filter(|p| !p.is_empty()) {
        let Some((kind, id)) = part.split_once('.') else {
            return new_err(
                s,
                400,
                "param.openSpaceIdInvalid",
                "param.openSpaceIdInvalid",
            );
        };
        let kind = kind.to_ascii_uppercase();
        let model = match kind.as_str() {
            "IM_ROBOT" => "imRobotOpenDeliverModel",
            "IM_GROUP" => "imGroupOpenDeliverModel",
            _ => {
                return new_err(
                    s,
                    400,
                    "param.openSpaceIdInvalid",
                    "param.openSpaceIdInvalid",
                )
            }
        };
        let Some(m) = body.get(model).filter(|m| m.is_object()) else {
            return new_err(
                s,
                400,
                "param.openDeliverModelEmpty",
                "param.openDeliverModelEmpty",
            );
        };
        if kind == "IM_GROUP" && str_of(m, "robotCode") != Some(sh.opts.app_key.as_str()) {
            return new_err(s, 400, "param.robotCodeInvalid", "robotCode 不合法");
        }
        targets.push((kind, id.to_owned()));
    }
    if targets.is_empty() {
        return new_err(
            s,
            400,
            "param.openSpaceIdInvalid",
            "param.openSpaceIdInvalid",
        );
    }
    let callback_type = str_of(body, "callbackType").map(str::to_owned);
    let route_key = str_of(body, "callbackRouteKey").map(str::to_owned);
    if callback_type.as_deref() == Some("HTTP") && route_key.is_none() {
        return new_err(
            s,
            400,
            "param.callbackRouteKeyEmpty",
            "callbackRouteKey 不能为空",
        );
    }
    if s.cards.contains_key(track) {
        return new_err(s, 400, "param.cardAlreadyExist", "param.cardAlreadyExist");
    }
    let results: Vec<Value> = targets
        .iter()
        .map(|(kind, id)| {
            let reachable = match kind.as_str() {
                "IM_ROBOT" => s.users.contains_key(id),
                _ => s.groups.contains(id),
            };
            let mut r = json!({"spaceType": kind, "spaceId": id, "success": reachable});
            if reachable {
                r["carrierId"] = json!(format!("carrier-{id}"));
            } else {
                r["errorMsg"] = json!("投放目标不存在");
            }
            r
        })
        .collect();
    let Some(private) = private_map(body.get("privateData")) else {
        return new_err(
            s,
            400,
            "param.cardDataInvalid",
            "privateData 的值必须是字符串",
        );
    };
    s.cards.insert(
        track.to_owned(),
        SimCard {
            template_id: tpl.to_owned(),
            open_space_id: format!("dtv1.card//{space}"),
            params,
            private,
            callback_type,
            callback_route_key: route_key,
            update_count: 0,
        },
    );
    s.log_card(track, true, now);
    ok(json!({"success": true, "result": {"outTrackId": track, "deliverResults": results}}))
}

/// `POST /v1.0/card/instances` (reference §5.1, the create half of the two-step alternative):
/// the card exists, delivered nowhere. Same template and id checks as `createAndDeliver`.
pub(super) fn card_create_undelivered(s: &mut Sim, body: &Value, now: i64) -> Response {
    let Some(tpl) = str_of(body, "cardTemplateId").filter(|t| !t.is_empty()) else {
        return new_err(s, 400, "param.templateNotExist", "param.templateNotExist");
    };
    if !s.card_templates.is_empty() && !s.card_templates.contains(tpl) {
        return new_err(s, 400, "param.templateNotExist", "param.templateNotExist");
    }
    let Some(track) = str_of(body, "outTrackId").filter(|t| !t.is_empty()) else {
        return new_err(s, 400, "param.outTrackIdEmpty", "param.outTrackIdEmpty");
    };
    let Some(params) = string_map(body.pointer("/cardData/cardParamMap")) else {
        return new_err(
            s,
            400,
            "param.cardDataInvalid",
            "cardParamMap 的值必须是字符串",
        );
    };
    if s.cards.contains_key(track) {
        return new_err(s, 400, "param.cardAlreadyExist", "param.cardAlreadyExist");
    }
    s.cards.insert(
        track.to_owned(),
        SimCard {
            template_id: tpl.to_owned(),
            open_space_id: String::new(),
            params,
            private: BTreeMap::new(),
            callback_type: str_of(body, "callbackType").map(str::to_owned),
            callback_route_key: str_of(body, "callbackRouteKey").map(str::to_owned),
            update_count: 0,
        },
    );
    s.log_card(track, true, now);
    ok(json!({"success": true, "result": {"outTrackId": track}}))
}

pub(super) fn card_update(s: &mut Sim, body: &Value, now: i64) -> Response {
    let Some(track) = str_of(body, "outTrackId").filter(|t| !t.is_empty()) else {
        return new_err(s, 400, "param.outTrackIdEmpty", "param.outTrackIdEmpty");
    };
    let Some(params) = string_map(body.pointer("/cardData/cardParamMap")) else {
        return new_err(
            s,
            400,
            "param.cardDataInvalid",
            "cardParamMap 的值必须是字符串",
        );
    };
    let Some(private) = private_map(body.get("privateData")) else {
        return new_err(
            s,
            400,
            "param.cardDataInvalid",
            "privateData 的值必须是字符串",
        );
    };
    let flag = |k: &str| {
        body.pointer(&format!("/cardUpdateOptions/{k}"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let (by_key, private_by_key) = (flag("updateCardDataByKey"), flag("updatePrivateDataByKey"));
    let Some(card) = s.cards.get_mut(track) else {
        // sim-chosen code.
        return new_err(s, 400, "param.cardNotExist", "param.cardNotExist");
    };
    if by_key {
        card.params.extend(params);
    } else {
        // Without updateCardDataByKey the public data is replaced (reference §5.2).
        card.params = params;
    }
    for (user, m) in private {
        let slot = card.private.entry(user).or_default();
        if private_by_key {
            slot.extend(m);
        } else {
            *slot = m;
        }
    }
    card.update_count += 1;
    s.log_card(track, false, now);
    ok(json!({"success": true, "result": true}))
}

pub(super) fn card_register(s: &mut Sim, body: &Value) -> Response {
    let (Some(key), Some(url)) = (
        str_of(body, "callbackRouteKey").filter(|k| !k.is_empty()),
        str_of(body, "callbackUrl").filter(|u| !u.is_empty()),
    ) else {
        return new_err(
            s,
            400,
            "invalidParameter",
            "callbackRouteKey 和 callbackUrl 必填",
        );
    };
    let secret = str_of(body, "apiSecret").map(str::to_owned);
    let force = body
        .get("forceUpdate")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // Without forceUpdate an existing registration wins (reference §5.3).
    if force || !s.card_callbacks.contains_key(key) {
        s.card_callbacks
            .insert(key.to_owned(), (url.to_owned(), secret));
    }
    let (url, secret) = s.card_callbacks.get(key).cloned().unwrap_or_default();
    let mut result = json!({"callbackUrl": url});
    if let Some(sec) = secret {
        result["apiSecret"] = json!(sec);
    }
    ok(json!({"success": true, "result": result}))
}
