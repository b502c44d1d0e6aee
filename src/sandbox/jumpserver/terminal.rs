//! Terminal sessions and kill-session tasks of the simulated JumpServer.
use super::handler::*;
use super::model::*;
use super::response::*;
use super::util;
use super::State;
use serde_json::{json, Value};

pub(super) fn session_create(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    let Some(obj) = b.and_then(Value::as_object) else {
        return detail(400, "Invalid data. Expected a dictionary.", "invalid");
    };
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    for f in ["user", "asset", "account", "protocol"] {
        if s(f).is_empty() {
            return field_err(f, "This field is required.");
        }
    }
    let sess = Session {
        id: util::new_id(),
        user: s("user"),
        user_id: s("user_id"),
        asset: s("asset"),
        asset_id: s("asset_id"),
        account: s("account"),
        account_id: s("account_id"),
        protocol: s("protocol"),
        login_from: if s("login_from").is_empty() {
            "ST".into()
        } else {
            s("login_from")
        },
        remote_addr: s("remote_addr"),
        is_finished: false,
        date_start: c.now,
        date_end: None,
    };
    let v = session_json(&sess, false);
    st.sessions.push(sess);
    out(201, v)
}

pub(super) fn kill_sessions(st: &mut State, c: &Ctx, b: Option<&Value>) -> Out {
    // An object body makes the real view crash (surprise 6).
    let Some(ids) = b.and_then(Value::as_array) else {
        return internal();
    };
    let (name, display) = st
        .users
        .iter()
        .find(|u| u.id == c.caller.user_id)
        .map(|u| (u.name.clone(), u.display()))
        .unwrap_or_default();
    let mut ok = Vec::new();
    for id in ids.iter().filter_map(Value::as_str) {
        let live = st.sessions.iter().any(|s| s.id == id && !s.is_finished);
        if !live {
            continue;
        }
        st.tasks.push(Task {
            id: util::new_id(),
            name: "kill_session".into(),
            args: id.to_owned(),
            is_finished: false,
            date_created: c.now,
            created_by_name: name.clone(),
            created_by_display: display.clone(),
        });
        ok.push(json!(id));
    }
    out(200, json!({ "ok": ok }))
}
