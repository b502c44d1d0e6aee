//! Replaying recorded JumpServer transcripts against the simulator, shared by the replay of
//! files 001-156 (`jms_transcripts`) and of 160-172 (`jms_transcripts_fx2`): the recorded
//! options, the recorded->simulated id map, the key-shape comparison and the replayer.
//!
//! Ids and placeholders ({{BEARER_TOKEN_…}}, {{SESSIONID_n}}) are mapped from recorded to
//! simulated values as responses come in; requests whose path or query changed are re-signed
//! with the vector key, all others are sent with the recorded `Authorization` verbatim.
use accessbot::clock::{ManualClock, SharedClock};
use accessbot::jumpserver::httpsig;
use accessbot::sandbox::jumpserver::{
    SimJmsOptions, SimJumpServer, SimLoginUser, VECTOR_KEY_ID, VECTOR_KEY_SECRET,
};
use accessbot::secret::Secret;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub(crate) const PRIVATE_TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

pub(crate) fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jumpserver-v4.10.16")
}

/// The recording's access key and private token, and its two login users (README).
pub(crate) fn options(clock: &ManualClock) -> SimJmsOptions {
    let shared: SharedClock = Arc::new(clock.clone());
    let mut o = SimJmsOptions::new(shared);
    o.private_token = Some(Secret::new(PRIVATE_TOKEN));
    o.login_users = vec![
        SimLoginUser {
            username: "fx-bot-pw".into(),
            name: "Fx Bot-Pw".into(),
            email: "fx-bot-pw@example.com".into(),
            password: Secret::new("Fx-Bot-Pass-2026!a"),
            otp_seed: None,
        },
        SimLoginUser {
            username: "fx-bot-mfa".into(),
            name: "Fx Bot-Mfa".into(),
            email: "fx-bot-mfa@example.com".into(),
            password: Secret::new("Fx-Mfa-Pass-2026!b"),
            otp_seed: Some(Secret::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")),
        },
    ];
    o
}

pub(crate) fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

/// Recorded value -> simulated value, learnt from responses.
#[derive(Default)]
pub(crate) struct Map(pub(crate) HashMap<String, String>);

impl Map {
    pub(crate) fn apply(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for (k, v) in &self.0 {
            out = out.replace(k.as_str(), v);
        }
        out
    }
    /// Learns from objects and single-item lists (positions are unambiguous there).
    pub(crate) fn learn(&mut self, rec: &Value, act: &Value) {
        match (rec, act) {
            (Value::String(r), Value::String(a)) => {
                let placeholder = r.starts_with("{{") && r.ends_with("}}");
                if (placeholder || (is_uuid(r) && is_uuid(a))) && r != a {
                    self.0.entry(r.clone()).or_insert_with(|| a.clone());
                }
            }
            (Value::Object(r), Value::Object(a)) => {
                for (k, rv) in r {
                    if let Some(av) = a.get(k) {
                        self.learn(rv, av);
                    }
                }
            }
            (Value::Array(r), Value::Array(a)) if r.len() == 1 && a.len() == 1 => {
                self.learn(&r[0], &a[0]);
            }
            _ => {}
        }
    }
}

/// Keys whose values carry behaviour (not ids, names or times), compared exactly.
pub(crate) const VALUE_KEYS: &[&str] = &[
    "count",
    "is_valid",
    "is_expired",
    "is_active",
    "is_finished",
    "code",
    "error",
    "detail",
    "key",
    "full_value",
    "keyword",
    "ok",
    "accounts_amount",
    "users_amount",
    "assets_amount",
    "nodes_amount",
    "user_groups_amount",
    "protocols",
    "accounts",
    "mfa_level",
    "msg",
];

/// Key-shape differences between a recorded and an actual body (empty = same shape), plus
/// value differences under `VALUE_KEYS`.
pub(crate) fn shape_diff(rec: &Value, act: &Value, at: &str, out: &mut Vec<String>) {
    match (rec, act) {
        (Value::Object(r), Value::Object(a)) => {
            for k in VALUE_KEYS {
                if let (Some(rv), Some(av)) = (r.get(*k), a.get(*k)) {
                    let comparable = !rv.is_array() || !rv.to_string().contains("\"id\"");
                    if comparable && rv != av && av.is_array() == rv.is_array() {
                        out.push(format!("{at}.{k}: recorded {rv}, got {av}"));
                    }
                }
            }
            for k in r.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{at}.{k} missing"));
            }
            for k in a.keys().filter(|k| !r.contains_key(*k)) {
                out.push(format!("{at}.{k} unexpected"));
            }
            for (k, rv) in r {
                if let Some(av) = a.get(k) {
                    shape_diff(rv, av, &format!("{at}.{k}"), out);
                }
            }
        }
        (Value::Array(r), Value::Array(a)) => {
            if r.is_empty() != a.is_empty() {
                out.push(format!("{at}: recorded {} items, got {}", r.len(), a.len()));
                return;
            }
            // Order-insensitive: every recorded item needs an actual item of the same shape.
            for (i, ri) in r.iter().enumerate() {
                let found = a.iter().any(|ai| {
                    let mut d = Vec::new();
                    shape_diff(ri, ai, "", &mut d);
                    d.is_empty()
                });
                if !found {
                    let mut d = Vec::new();
                    if let Some(first) = a.first() {
                        shape_diff(ri, first, &format!("{at}[{i}]"), &mut d);
                    }
                    out.push(format!(
                        "{at}[{i}]: no item of the same shape; vs first: {d:?}"
                    ));
                }
            }
        }
        (Value::Object(_), _) | (Value::Array(_), _) => {
            out.push(format!("{at}: recorded {rec}, got {act}"));
        }
        (_, Value::Object(_)) | (_, Value::Array(_)) if !rec.is_null() => {
            out.push(format!("{at}: recorded scalar, got {act}"));
        }
        _ => {}
    }
}

/// Drops a mismatch the caller explains (file, step index, mismatch text without the tag).
pub(crate) type Relax = fn(&str, usize, &str) -> bool;
/// Evens out what the caller explains before a comparison: (file, step, recorded, actual).
pub(crate) type Normalize = fn(&str, usize, &mut Value, &mut Value);

pub(crate) struct Replayer {
    pub(crate) sim: SimJumpServer,
    pub(crate) http: reqwest::Client,
    pub(crate) map: Map,
    /// Mismatches to drop, with the reason at the caller.
    pub(crate) relax: Relax,
    /// Applied to the (id-mapped) recorded and the actual JSON body of every exchange before
    /// they are compared: (file, step index, recorded, actual).
    pub(crate) normalize: Normalize,
    /// Status and JSON body (`Null` if none) of the last exchange, for extra checks.
    pub(crate) last_status: u16,
    pub(crate) last_body: Value,
}

impl Replayer {
    pub(crate) fn new(sim: SimJumpServer) -> Self {
        Self {
            sim,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            map: Map::default(),
            relax: |_, _, _| false,
            normalize: |_, _, _, _| {},
            last_status: 0,
            last_body: Value::Null,
        }
    }

    /// Sends one recorded request (ids and placeholders mapped, re-signed when its target
    /// changed) and compares status, headers and JSON key shape; returns the mismatches.
    pub(crate) async fn exchange(&mut self, file: &str, step: usize, ex: &Value) -> Vec<String> {
        let req = &ex["request"];
        let res = &ex["response"];
        let method = req["method"].as_str().unwrap_or("GET");
        let rec_path = req["path"].as_str().unwrap_or("/");
        let rec_query = req["query"].as_str().unwrap_or("");
        let path = self.map.apply(rec_path);
        let query = self.map.apply(rec_query);
        let target = if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query}")
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for (k, v) in req["headers"].as_object().into_iter().flatten() {
            if k == "Host" {
                continue;
            }
            let v = v.as_str().unwrap_or("");
            let v = self
                .map
                .apply(&v.replace("{{ADMIN_PRIVATE_TOKEN}}", PRIVATE_TOKEN));
            headers.push((k.clone(), v));
        }
        let changed = path != rec_path || query != rec_query;
        if changed && req["auth"]["scheme"] == "access_key" {
            let signed: Vec<&str> = req["auth"]["signed_headers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let lower: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            let refs: Vec<(&str, &str)> = lower
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let ss = httpsig::signing_string(method, &target, &refs, &signed)
                .expect("recorded headers are signable");
            let auth = httpsig::authorization_header(
                VECTOR_KEY_ID,
                &signed,
                &httpsig::sign(VECTOR_KEY_SECRET, &ss),
            );
            headers.retain(|(k, _)| k != "Authorization");
            headers.push(("Authorization".into(), auth));
        }
        let url = format!("{}{}", self.sim.url(), target);
        let mut rb = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("recorded method"),
            &url,
        );
        for (k, v) in &headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(j) = req.get("json") {
            let body = self.map.apply(&j.to_string());
            rb = rb.body(body);
        }
        let resp = rb.send().await.expect("simulator answers");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let www = resp.headers().contains_key("www-authenticate");
        let text = resp.text().await.unwrap_or_default();
        self.last_status = status;
        self.last_body = serde_json::from_str(&text).unwrap_or(Value::Null);
        let mut errs = Vec::new();
        let tag = format!("{file}#{step} {method} {target}");
        let want = res["status"].as_u64().unwrap_or(0) as u16;
        if status != want {
            errs.push(format!(
                "{tag}: status {status}, recorded {want}: {text:.300}"
            ));
            return errs;
        }
        let rh = &res["headers"];
        if let Some(ct) = rh["content-type"].as_str() {
            if !ctype.starts_with(ct.split(';').next().unwrap_or(ct)) {
                errs.push(format!("{tag}: content-type {ctype}, recorded {ct}"));
            }
        }
        if rh.get("www-authenticate").is_some() != www {
            errs.push(format!("{tag}: www-authenticate presence differs"));
        }
        if let Some(loc) = rh["location"].as_str() {
            if location.as_deref() != Some(self.map.apply(loc).as_str()) {
                errs.push(format!("{tag}: location {location:?}, recorded {loc}"));
            }
        }
        // Learn {{SESSIONID_n}} from the Set-Cookie pairing.
        for rc in rh["set-cookie"].as_array().into_iter().flatten() {
            let rc = rc.as_str().unwrap_or("");
            if let Some(ph) = rc
                .strip_prefix("jms_sessionid=")
                .and_then(|r| r.split(';').next())
            {
                let actual = cookies.iter().find_map(|c| {
                    c.strip_prefix("jms_sessionid=")
                        .and_then(|r| r.split(';').next())
                });
                match actual {
                    Some(a) => {
                        self.map
                            .0
                            .entry(ph.to_owned())
                            .or_insert_with(|| a.to_owned());
                    }
                    None => errs.push(format!("{tag}: no jms_sessionid cookie set")),
                }
            }
        }
        if res.get("body_text").is_some() || res["body_empty"] == true {
            if res["body_empty"] == true && !text.is_empty() {
                errs.push(format!("{tag}: body should be empty"));
            }
            return errs;
        }
        let rec_body = &res["body"];
        let mut act: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => {
                errs.push(format!("{tag}: body is not JSON: {text:.200}"));
                return errs;
            }
        };
        if res.get("trimmed_keys_from").is_some() {
            if !act.is_object() {
                errs.push(format!("{tag}: expected an object"));
            }
            return errs;
        }
        self.map.learn(rec_body, &act);
        // Recorded ids inside compared values are translated to the simulator's.
        let mut rec_mapped: Value =
            serde_json::from_str(&self.map.apply(&rec_body.to_string())).unwrap_or(Value::Null);
        (self.normalize)(file, step, &mut rec_mapped, &mut act);
        let mut d = Vec::new();
        shape_diff(&rec_mapped, &act, "body", &mut d);
        // Row counts of the top-level list: the original length when the recording trimmed it.
        let (rec_rows, act_rows) = match (&rec_mapped, &act) {
            (Value::Array(r), Value::Array(a)) => (Some(r.len()), Some(a.len())),
            (Value::Object(r), Value::Object(a)) => (
                r.get("results").and_then(Value::as_array).map(Vec::len),
                a.get("results").and_then(Value::as_array).map(Vec::len),
            ),
            _ => (None, None),
        };
        let want_rows = res["trimmed_from"]
            .as_u64()
            .map(|n| n as usize)
            .or(rec_rows);
        if want_rows != act_rows {
            d.push(format!("rows: recorded {want_rows:?}, got {act_rows:?}"));
        }
        d.retain(|x| !(self.relax)(file, step, x));
        errs.extend(d.into_iter().map(|x| format!("{tag}: {x}")));
        errs
    }
}

/// The transcripts whose file number satisfies `keep`, as (recorded_order, file name, JSON),
/// in recorded order.
pub(crate) fn load_transcripts(keep: impl Fn(u32) -> bool) -> Vec<(u64, String, Value)> {
    let mut files: Vec<(u64, String, Value)> = Vec::new();
    for e in std::fs::read_dir(fixture_dir()).expect("fixtures dir") {
        let p = e.expect("dir entry").path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let name = p
            .file_name()
            .and_then(|x| x.to_str())
            .unwrap_or("")
            .to_owned();
        let number: u32 = name.get(..3).and_then(|n| n.parse().ok()).unwrap_or(0);
        if !keep(number) {
            continue;
        }
        let v: Value = serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json");
        files.push((v["recorded_order"].as_u64().unwrap_or(999), name, v));
    }
    files.sort_by_key(|f| f.0);
    files
}

/// A transcript's exchanges: its `steps`, or the file itself when it holds one exchange.
pub(crate) fn steps_of(v: &Value) -> Vec<Value> {
    match v.get("steps").and_then(Value::as_array) {
        Some(s) => s.clone(),
        None => vec![v.clone()],
    }
}

/// A signed JSON client for one simulator (the bot's header set, the vector key).
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

impl Client {
    pub(crate) fn new(sim: &SimJumpServer) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: sim.url(),
        }
    }

    /// Signs like the bot does (the client's header set) with the vector key.
    pub(crate) async fn signed(
        &self,
        method: &str,
        target: &str,
        body: Option<Value>,
        secret: &str,
        signed: &[&str],
    ) -> (u16, HeaderMapLite, String) {
        let date = "Sun, 22 Nov 2026 11:42:41 GMT";
        let headers = [
            ("accept", "application/json"),
            ("date", date),
            ("x-jms-org", "00000000-0000-0000-0000-000000000002"),
        ];
        let ss = httpsig::signing_string(method, target, &headers, signed).expect("signable");
        let auth =
            httpsig::authorization_header(VECTOR_KEY_ID, signed, &httpsig::sign(secret, &ss));
        let mut rb = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                format!("{}{}", self.base, target),
            )
            .header("Authorization", auth);
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.expect("sim answers");
        let status = r.status().as_u16();
        let h = HeaderMapLite(
            r.headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
        );
        (status, h, r.text().await.unwrap_or_default())
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        target: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (s, _, t) = self
            .signed(
                method,
                target,
                body,
                VECTOR_KEY_SECRET,
                &httpsig::CLIENT_SIGNED_HEADERS,
            )
            .await;
        (s, serde_json::from_str(&t).unwrap_or(Value::Null))
    }

    pub(crate) async fn login(&self, username: &str, password: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/authentication/auth/", self.base))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .expect("sim answers");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn bearer_profile(&self, token: &str) -> u16 {
        self.http
            .get(format!("{}/api/v1/users/profile/", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .expect("sim answers")
            .status()
            .as_u16()
    }
}

pub(crate) struct HeaderMapLite(Vec<(String, String)>);

impl HeaderMapLite {
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}
