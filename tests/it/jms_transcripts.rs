//! Replays the recorded JumpServer v4.10.16 transcripts against the simulator, in recorded order
//! on one instance (so each file's preconditions are built by the files before it, plus the
//! seeds the README lists as made outside the transcripts), and checks status + JSON key shape.
//!
//! Covered: files 001-156 of tests/fixtures/jumpserver-v4.10.16/ except `156-throttled-429.json`,
//! which needs a rate-limited instance and has its own test below (`throttling_like_156`).
//! Files 160-172 come from a second recording run with its own setup; `jms_transcripts_fx2`
//! replays them. The replay machinery (id map, re-signing, shape comparison) is `jms_replay`.
use crate::jms_replay::{
    fixture_dir, load_transcripts, options, shape_diff, steps_of, Client, Map, Replayer,
};
use accessbot::clock::ManualClock;
use accessbot::jumpserver::httpsig;
use accessbot::sandbox::jumpserver::{SeedHost, SimJumpServer, VECTOR_KEY_SECRET};
use serde_json::Value;

fn recording_time() -> jiff::Timestamp {
    "2026-11-22T11:42:41Z".parse().expect("valid literal")
}

/// Seeds the README lists as made outside the transcripts, at the point the recording had them.
fn seed_before(r: &mut Replayer, order: u64) {
    let known = |m: &mut Map, rec: &str, act: String| {
        m.0.insert(rec.to_owned(), act);
    };
    match order {
        1 => {
            for (user, name, rec) in [
                ("fx-bob", "Bob FX", "9742d815-7053-494a-b03c-e13adbdb8899"),
                ("fx-dave", "Dave FX", "83264fa6-f912-4075-85a3-a42c4d133ebb"),
                ("fx-erin", "Erin FX", "28923cf7-7de6-443e-afca-9287af4fba6c"),
            ] {
                let id = r
                    .sim
                    .add_user(user, name, &format!("{user}@example.com"))
                    .expect("fresh user");
                known(&mut r.map, rec, id);
            }
        }
        62 => {
            let node = r
                .sim
                .nodes()
                .into_iter()
                .find(|n| n.value == "PaymentSystem")
                .expect("PaymentSystem made by 074");
            let id = r
                .sim
                .add_host(SeedHost {
                    name: "10.10.1.12".into(),
                    address: "10.10.1.12".into(),
                    platform_id: 1,
                    node_ids: vec![node.id],
                    accounts: vec![("readonly".into(), "readonly".into(), false)],
                })
                .expect("seed host");
            known(&mut r.map, "dd85551b-6fe4-44f3-91d5-2066de7b45e8", id);
        }
        103 => {
            // 150 created bulk-10.20.0.1 through the API; the other 229 as the recording did.
            for i in 2..=230u32 {
                let addr = format!("10.20.{}.{}", i / 256, i % 256);
                r.sim
                    .add_host(SeedHost {
                        name: format!("bulk-{addr}"),
                        address: addr,
                        platform_id: 1,
                        node_ids: vec![],
                        accounts: vec![],
                    })
                    .expect("bulk host");
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn replay_all_transcripts_in_recorded_order() {
    let clock = ManualClock::new(recording_time());
    let sim = SimJumpServer::start(options(&clock))
        .await
        .expect("sim starts");
    let mut r = Replayer::new(sim);
    // The recorded Default org held users made by other scripts of the recording run (only
    // their key shapes matter here), so user totals differ by design.
    r.relax = |file, _, x| {
        ["035-", "040-", "041-"].iter().any(|p| file.starts_with(p))
            && (x.contains("users_amount") || x.contains("body.count") || x.starts_with("rows"))
    };
    let files = load_transcripts(|n| n < 156);
    assert_eq!(
        files.len(),
        106,
        "all transcripts of the first run but 156 are replayed"
    );
    let mut errors = Vec::new();
    let mut exchanges = 0;
    for (order, name, v) in &files {
        seed_before(&mut r, *order);
        for (i, ex) in steps_of(v).iter().enumerate() {
            if name.starts_with("022-") && i == 1 {
                // The recording shortened the token's cache TTL server-side.
                r.sim.expire_bearer_tokens();
            }
            errors.extend(r.exchange(name, i, ex).await);
            exchanges += 1;
        }
    }
    assert!(exchanges > 120, "replayed {exchanges} exchanges");
    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

// ---- Behaviour beyond a single recording: clock, throttling, faults, hooks. ----

async fn fresh(clock: &ManualClock, rate: Option<u32>) -> SimJumpServer {
    let mut o = options(clock);
    o.rate_limit_per_minute = rate;
    SimJumpServer::start(o).await.expect("sim starts")
}

#[tokio::test]
async fn throttling_like_156() {
    let rec: Value = serde_json::from_slice(
        &std::fs::read(fixture_dir().join("156-throttled-429.json")).expect("fixture"),
    )
    .expect("json");
    let clock = ManualClock::new(recording_time());
    let sim = fresh(&clock, Some(3)).await;
    let c = Client::new(&sim);
    for _ in 0..3 {
        assert_eq!(c.call("GET", "/api/v1/assets/hosts/", None).await.0, 200);
    }
    let (s, h, t) = c
        .signed(
            "GET",
            "/api/v1/assets/hosts/",
            None,
            VECTOR_KEY_SECRET,
            &["(request-target)", "date"],
        )
        .await;
    assert_eq!(s, 429);
    let wait: i64 = h
        .get("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&wait));
    let body: Value = serde_json::from_str(&t).expect("json");
    let mut d = Vec::new();
    shape_diff(&rec["response"]["body"], &body, "body", &mut d);
    // The wait differs from the recording's 32 s; it is checked against Retry-After below.
    d.retain(|x| !x.starts_with("body.detail"));
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(
        body["detail"],
        format!("Request was throttled. Expected available in {wait} seconds.")
    );
    clock.advance(jiff::SignedDuration::from_secs(wait));
    assert_eq!(c.call("GET", "/api/v1/assets/hosts/", None).await.0, 200);
}

#[tokio::test]
async fn fault_injection_and_call_counters() {
    let clock = ManualClock::new(recording_time());
    let sim = fresh(&clock, None).await;
    let c = Client::new(&sim);
    sim.fail_next(2, 502);
    assert_eq!(c.call("GET", "/api/v1/users/users/", None).await.0, 502);
    assert_eq!(c.call("GET", "/api/v1/users/users/", None).await.0, 502);
    assert_eq!(c.call("GET", "/api/v1/users/users/", None).await.0, 200);
    assert_eq!(sim.calls_to("GET", "/api/v1/users/users/"), 3);
    assert_eq!(sim.calls_to("POST", "/api/v1/users/"), 0);
    sim.fail_next(1, 429);
    assert_eq!(c.call("GET", "/api/v1/assets/hosts/", None).await.0, 429);
    assert_eq!(sim.total_calls(), 4);
    sim.reset_counts();
    assert_eq!(sim.total_calls(), 0);
}

#[tokio::test]
async fn signature_edge_cases() {
    let clock = ManualClock::new(recording_time());
    let sim = fresh(&clock, None).await;
    let c = Client::new(&sim);
    let all = &httpsig::CLIENT_SIGNED_HEADERS;
    assert_eq!(
        c.signed(
            "GET",
            "/api/v1/users/profile/",
            None,
            VECTOR_KEY_SECRET,
            all
        )
        .await
        .0,
        200
    );
    let (s, _, t) = c
        .signed("GET", "/api/v1/users/profile/", None, "wrong", all)
        .await;
    assert_eq!((s, t.contains("Invalid signature.")), (401, true));
    // `date` missing from the signed list: the real verifier raises -> HTML 500.
    let (s, h, _) = c
        .signed(
            "GET",
            "/api/v1/users/profile/",
            None,
            VECTOR_KEY_SECRET,
            &["(request-target)", "accept"],
        )
        .await;
    assert_eq!(s, 500);
    assert!(h
        .get("content-type")
        .is_some_and(|v| v.starts_with("text/html")));
    // A percent-encoded `|` is kept as sent by the server's path rebuild, so it verifies.
    let (s, _, _) = c
        .signed(
            "GET",
            "/api/v1/users/users/?username=a%7Cb",
            None,
            VECTOR_KEY_SECRET,
            all,
        )
        .await;
    assert_eq!(s, 200, "pre-encoded query survives Django's rebuild");
    // A keyId that is not a UUID breaks the server's key lookup: 500, not 401.
    let raw = httpsig::authorization_header("not-a-uuid", all, "AAAA");
    let r = c
        .http
        .get(format!("{}/api/v1/users/profile/", c.base))
        .header("Authorization", raw)
        .header("Date", "Sun, 22 Nov 2026 11:42:41 GMT")
        .send()
        .await
        .expect("sim answers");
    assert_eq!(r.status().as_u16(), 500);
}

#[tokio::test]
async fn demo_seed_is_queryable() {
    let clock = ManualClock::new(recording_time());
    let sim = fresh(&clock, None).await;
    let ids = sim.seed_demo().expect("seed");
    assert_eq!(ids.len(), 3);
    let c = Client::new(&sim);
    let (s, v) = c
        .call(
            "GET",
            "/api/v1/assets/hosts/?ips=10.10.1.11%2C10.10.1.21&limit=10",
            None,
        )
        .await;
    assert_eq!((s, v["count"].as_u64()), (200, Some(2)));
    let (_, v) = c
        .call("GET", "/api/v1/assets/nodes/?value=prod", None)
        .await;
    assert_eq!(v[0]["full_value"], "/DEFAULT/PaymentSystem/prod");
    assert_eq!(sim.accounts().len(), 4);
}

#[tokio::test]
async fn bearer_tokens_expire_on_the_sim_clock() {
    let clock = ManualClock::new(recording_time());
    let sim = fresh(&clock, None).await;
    let c = Client::new(&sim);
    let (s, v) = c.login("fx-bot-pw", "Fx-Bot-Pass-2026!a").await;
    assert_eq!(s, 201);
    assert_eq!(v["date_expired"], "2026/11/23 19:42:41 +0800");
    let token = v["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 36);
    assert_eq!(c.bearer_profile(&token).await, 200);
    clock.advance(jiff::SignedDuration::from_hours(24));
    assert_eq!(c.bearer_profile(&token).await, 401);
    // A new login after expiry gets a new token.
    let (_, v2) = c.login("fx-bot-pw", "Fx-Bot-Pass-2026!a").await;
    assert_ne!(v2["token"].as_str(), Some(token.as_str()));
    assert_eq!(c.login("fx-bot-pw", "nope").await.0, 400);
}

#[tokio::test]
async fn permission_validity_follows_the_clock() {
    let clock = ManualClock::new(recording_time());
    let sim = fresh(&clock, None).await;
    let c = Client::new(&sim);
    let uid = sim
        .add_user("fx-zoe", "Zoe FX", "fx-zoe@example.com")
        .expect("user");
    let node = sim.add_node_path("PaymentSystem/prod");
    let host = sim
        .add_host(SeedHost {
            name: "10.9.9.9".into(),
            address: "10.9.9.9".into(),
            platform_id: 1,
            node_ids: vec![],
            accounts: vec![("root".into(), "root".into(), true)],
        })
        .expect("host");
    let (s, p) = c
        .call(
            "POST",
            "/api/v1/perms/asset-permissions/",
            Some(
                serde_json::json!({"name": "dt-approval-9", "users": [uid], "assets": [host],
                "nodes": [node], "accounts": ["@ALL"], "actions": ["all"],
                "date_start": "2026-11-23T00:00:00+08:00", "date_expired": "2026-11-24T00:00:00Z"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(
        (p["is_valid"].as_bool(), p["is_expired"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(p["actions"].as_array().map(Vec::len), Some(7));
    let granted = format!("/api/v1/perms/users/{uid}/assets/?limit=10");
    assert_eq!(c.call("GET", &granted, None).await.1["count"], 0);
    clock.advance(jiff::SignedDuration::from_hours(13));
    assert_eq!(c.call("GET", &granted, None).await.1["count"], 1);
    let valid = "/api/v1/perms/asset-permissions/?address=10.9.9.9&is_valid=1&limit=10";
    assert_eq!(c.call("GET", valid, None).await.1["count"], 1);
    clock.advance(jiff::SignedDuration::from_hours(48));
    assert_eq!(c.call("GET", valid, None).await.1["count"], 0);
    let perms = sim.permissions();
    assert_eq!(perms.len(), 1);
    assert_eq!(perms[0].node_ids, vec![node]);
}

#[tokio::test]
async fn redirects_do_not_execute_and_kill_queues_a_task() {
    let clock = ManualClock::new(recording_time());
    let sim = fresh(&clock, None).await;
    let c = Client::new(&sim);
    let before = sim.users().len();
    let (s, _) = c
        .call(
            "POST",
            "/api/v1/users/users",
            Some(serde_json::json!({"username": "x"})),
        )
        .await;
    assert_eq!(s, 301);
    assert_eq!(sim.users().len(), before);
    let uid = sim
        .add_user("fx-kim", "Kim FX", "fx-kim@example.com")
        .expect("user");
    let host = sim
        .add_host(SeedHost {
            name: "h1".into(),
            address: "10.1.1.1".into(),
            platform_id: 1,
            node_ids: vec![],
            accounts: vec![("root".into(), "root".into(), true)],
        })
        .expect("host");
    let sid = sim
        .add_session(accessbot::sandbox::jumpserver::SeedSession {
            user_id: uid.clone(),
            asset_id: host.clone(),
            account_username: "root".into(),
            protocol: "ssh".into(),
        })
        .expect("session");
    let list =
        format!("/api/v1/terminal/sessions/?user_id={uid}&asset_id={host}&is_finished=0&limit=10");
    assert_eq!(c.call("GET", &list, None).await.1["count"], 1);
    let (s, v) = c
        .call(
            "POST",
            "/api/v1/terminal/tasks/kill-session/",
            Some(serde_json::json!([sid])),
        )
        .await;
    assert_eq!((s, v["ok"][0].as_str()), (200, Some(sid.as_str())));
    assert_eq!(sim.tasks().len(), 1);
    // The session only ends when a terminal acts on the task.
    assert_eq!(c.call("GET", &list, None).await.1["count"], 1);
    assert!(sim.finish_session(&sid));
    assert_eq!(c.call("GET", &list, None).await.1["count"], 0);
}

#[tokio::test]
async fn anonymous_login_calls_are_throttled_separately() {
    let clock = ManualClock::new(recording_time());
    let mut o = options(&clock);
    o.anon_rate_limit_per_minute = Some(2);
    let sim = SimJumpServer::start(o).await.expect("sim starts");
    let c = Client::new(&sim);
    assert_eq!(c.login("fx-bot-pw", "Fx-Bot-Pass-2026!a").await.0, 201);
    assert_eq!(c.login("fx-bot-pw", "Fx-Bot-Pass-2026!a").await.0, 201);
    let (s, v) = c.login("fx-bot-pw", "Fx-Bot-Pass-2026!a").await;
    assert_eq!((s, v["code"].as_str()), (429, Some("throttled")));
    // Signed calls use the per-user bucket, which is off here.
    assert_eq!(c.call("GET", "/api/v1/users/profile/", None).await.0, 200);
    assert_eq!(sim.calls_to("POST", "/api/v1/authentication/"), 3);
}

#[tokio::test]
async fn node_assets_add_and_remove() {
    let clock = ManualClock::new(recording_time());
    let sim = fresh(&clock, None).await;
    let c = Client::new(&sim);
    let node = sim.add_node_path("HRSystem/web");
    let host = sim
        .add_host(SeedHost {
            name: "h2".into(),
            address: "10.1.1.2".into(),
            platform_id: 1,
            node_ids: vec![],
            accounts: vec![],
        })
        .expect("host");
    let path = format!("/api/v1/assets/nodes/{node}/assets/add/");
    let (s, v) = c
        .call("PUT", &path, Some(serde_json::json!({"assets": [host]})))
        .await;
    assert_eq!((s, v["assets"][0].as_str()), (200, Some(host.as_str())));
    let h = sim
        .hosts()
        .into_iter()
        .find(|h| h.id == host)
        .expect("host");
    assert!(h.node_ids.contains(&node) && h.node_ids.len() == 2);
    let (s, _) = c
        .call("PUT", &path, Some(serde_json::json!({"assets": ["nope"]})))
        .await;
    assert_eq!(s, 400);
    let path = format!("/api/v1/assets/nodes/{node}/assets/remove/");
    assert_eq!(
        c.call("PUT", &path, Some(serde_json::json!({"assets": [host]})))
            .await
            .0,
        200
    );
    let h = sim
        .hosts()
        .into_iter()
        .find(|h| h.id == host)
        .expect("host");
    assert!(!h.node_ids.contains(&node));
}

#[tokio::test]
async fn accounts_list_is_one_row_per_account_per_host() {
    let rec: Value = serde_json::from_slice(
        &std::fs::read(fixture_dir().join("098-accounts-of-host.json")).expect("fixture"),
    )
    .expect("json");
    let clock = ManualClock::new(recording_time());
    let sim = fresh(&clock, None).await;
    let c = Client::new(&sim);
    let seed = |name: &str, accounts: &[&str]| {
        sim.add_host(SeedHost {
            name: name.into(),
            address: name.into(),
            platform_id: 1,
            node_ids: vec![],
            accounts: accounts
                .iter()
                .map(|a| ((*a).to_owned(), (*a).to_owned(), *a == "root"))
                .collect(),
        })
        .expect("host")
    };
    let h1 = seed("10.10.1.11", &["root", "readonly"]);
    let h2 = seed("10.10.1.12", &["readonly"]);
    let h3 = seed("10.10.1.13", &["ops"]);
    let rows = |v: &Value| -> Vec<(String, String)> {
        v["results"]
            .as_array()
            .expect("paginated")
            .iter()
            .map(|r| {
                (
                    r["asset"]["id"].as_str().unwrap_or("").to_owned(),
                    r["username"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    // No asset filter: every account on every host, the shared username twice.
    let (s, all) = c
        .call("GET", "/api/v1/accounts/accounts/?limit=100", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(all["count"], 4);
    assert_eq!(
        rows(&all),
        vec![
            (h1.clone(), "readonly".to_owned()),
            (h1.clone(), "root".to_owned()),
            (h2.clone(), "readonly".to_owned()),
            (h3.clone(), "ops".to_owned()),
        ]
    );
    // Every row has the recorded shape of 098.
    let rec_row = &rec["response"]["body"]["results"][0];
    for row in all["results"].as_array().expect("rows") {
        let mut d = Vec::new();
        shape_diff(rec_row, row, "row", &mut d);
        assert!(d.is_empty(), "{d:?}");
    }
    let (_, by_user) = c
        .call(
            "GET",
            "/api/v1/accounts/accounts/?username=readonly&limit=100",
            None,
        )
        .await;
    assert_eq!(
        rows(&by_user),
        vec![
            (h1.clone(), "readonly".to_owned()),
            (h2.clone(), "readonly".to_owned())
        ]
    );
    for key in ["asset_id", "asset"] {
        let (_, v) = c
            .call(
                "GET",
                &format!("/api/v1/accounts/accounts/?{key}={h1}&limit=100"),
                None,
            )
            .await;
        assert_eq!(v["count"], 2, "{key}");
    }
    let (_, v) = c
        .call(
            "GET",
            &format!("/api/v1/accounts/accounts/?asset_id={h2}&name=readonly&limit=100"),
            None,
        )
        .await;
    assert_eq!(rows(&v), vec![(h2.clone(), "readonly".to_owned())]);
    let (_, v) = c
        .call(
            "GET",
            "/api/v1/accounts/accounts/?address=10.10.1.13&limit=100",
            None,
        )
        .await;
    assert_eq!(rows(&v), vec![(h3, "ops".to_owned())]);
    // By node: hosts in the node or below it.
    let pay = sim.add_node_path("PaymentSystem");
    let prod = sim.add_node_path("PaymentSystem/prod");
    let h4 = sim
        .add_host(SeedHost {
            name: "10.10.1.14".into(),
            address: "10.10.1.14".into(),
            platform_id: 1,
            node_ids: vec![prod],
            accounts: vec![("readonly".into(), "readonly".into(), false)],
        })
        .expect("host");
    let (_, v) = c
        .call(
            "GET",
            &format!("/api/v1/accounts/accounts/?username=readonly&node_id={pay}&limit=100"),
            None,
        )
        .await;
    assert_eq!(rows(&v), vec![(h4, "readonly".to_owned())]);
    let (_, v) = c
        .call(
            "GET",
            "/api/v1/accounts/accounts/?node_id=00000000-0000-0000-0000-00000000dead&limit=100",
            None,
        )
        .await;
    assert_eq!(v["count"], 0);
    // Case-sensitive exact filter; no rows is an empty page, not an error.
    let (s, v) = c
        .call(
            "GET",
            "/api/v1/accounts/accounts/?username=READONLY&limit=100",
            None,
        )
        .await;
    assert_eq!((s, v["count"].as_u64()), (200, Some(0)));
    // Without limit: a plain list, like every capped list view.
    let (_, plain) = c.call("GET", "/api/v1/accounts/accounts/", None).await;
    assert_eq!(plain.as_array().map(Vec::len), Some(5));
}
