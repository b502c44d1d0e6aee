//! JumpServer client against the signature vectors, RFC 6238, and the simulated JumpServer
//! (a real loopback HTTP server that checks signatures): auth modes, operations, error mapping,
//! retries, and the grant's idempotence and call budget.
use accessbot::clock::{ManualClock, SharedClock};
use accessbot::domain::access::RevokedHow;
use accessbot::domain::ids::{JmsUserId, OrderId};
use accessbot::domain::ownership::Marker;
use accessbot::jumpserver::httpsig::{self, HttpSigError};
use accessbot::jumpserver::totp::{self, TotpDigest};
use accessbot::jumpserver::*;
use accessbot::sandbox::jumpserver::{
    SeedHost, SeedSession, SimJmsOptions, SimJumpServer, SimLoginUser, VECTOR_KEY_ID,
    VECTOR_KEY_SECRET,
};
use accessbot::secret::Secret;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn st(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_signature_vector() {
    let doc = fixture("jumpserver_httpsig.json");
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 13);
    for c in cases {
        let name = st(c, "name");
        let signed = strs(&c["signed_headers"]);
        let signed_refs: Vec<&str> = signed.iter().map(String::as_str).collect();
        let hdrs: Vec<(String, String)> = c["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let hdr_refs: Vec<(&str, &str)> =
            hdrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let ss = httpsig::signing_string(
            &st(c, "method"),
            &st(c, "path_and_query"),
            &hdr_refs,
            &signed_refs,
        )
        .unwrap();
        assert_eq!(ss, st(c, "signing_string"), "{name}");
        let sig = httpsig::sign(&st(c, "secret"), &ss);
        assert_eq!(sig, st(c, "signature"), "{name}");
        let auth = httpsig::authorization_header(&st(c, "key_id"), &signed_refs, &sig);
        assert_eq!(auth, st(c, "authorization"), "{name}");
        let parsed = httpsig::parse_authorization(&auth).unwrap();
        assert_eq!(parsed.key_id, st(c, "key_id"));
        assert_eq!(parsed.headers, signed);
        // What the server does: rebuild the path as Django would, then verify.
        let server_path = httpsig::django_full_path(&st(c, "path_and_query"));
        assert_eq!(server_path, st(c, "server_full_path"), "{name}");
        let verdict = httpsig::verify_request(
            &st(c, "secret"),
            &st(c, "method"),
            &server_path,
            &hdr_refs,
            &parsed,
        );
        match st(c, "expect").as_str() {
            "accept" => assert_eq!(verdict, Ok(()), "{name}"),
            "reject" => assert_eq!(verdict, Err(HttpSigError::BadSignature), "{name}"),
            other => {
                assert!(other.starts_with("error"), "{name}");
                assert!(
                    matches!(
                        verdict,
                        Err(HttpSigError::UnsignableHeader(_))
                            | Err(HttpSigError::RequiredHeaderNotSigned(_))
                    ),
                    "{name}: {verdict:?}"
                );
            }
        }
    }
}

#[test]
fn signing_refuses_missing_headers_and_non_ascii() {
    let e = httpsig::signing_string(
        "GET",
        "/a/",
        &[("Accept", "x")],
        &["(request-target)", "date"],
    );
    assert_eq!(e, Err(HttpSigError::MissingHeader("date".into())));
    let e = httpsig::signing_string("GET", "/a/?v=系统", &[], &["(request-target)"]);
    assert_eq!(e, Err(HttpSigError::NonAscii));
    let ok = httpsig::signing_string("GET", "/a/", &[("X-JMS-ORG", "o")], &["x-jms-org"]);
    assert_eq!(ok.unwrap(), "x-jms-org: o");
}

#[test]
fn totp_matches_rfc6238_and_the_reference_table() {
    let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let key = totp::decode_base32(seed).unwrap();
    for (t, sha1, sha256) in [
        (59, "287082", "247374"),
        (1111111109, "081804", "756375"),
        (1234567890, "005924", "829826"),
        (2000000000, "279037", "428693"),
    ] {
        assert_eq!(totp::totp(seed, t).unwrap(), sha1);
        assert_eq!(totp::totp_raw(&key, t, 30, 6, TotpDigest::Sha256), sha256);
    }
    // RFC 6238 appendix B, 8 digits, SHA-1.
    assert_eq!(
        totp::totp_raw(&key, 59, 30, 8, TotpDigest::Sha1),
        "94287082"
    );
    assert_eq!(
        totp::totp_raw(&key, 20000000000, 30, 8, TotpDigest::Sha1),
        "65353130"
    );
    // Transcript 019: the code the real server accepted.
    let t = fixture("jumpserver-v4.10.16/019-auth-mfa-totp-flow.json");
    let u = &t["fixture_user"];
    assert_eq!(
        totp::totp(
            &st(u, "totp_seed_base32"),
            u["unix_time_used"].as_i64().unwrap()
        )
        .unwrap(),
        st(u, "code_sent")
    );
    assert!(totp::totp("!!!", 0).is_none());
}

#[test]
fn transcript_093_signature_is_what_our_query_builder_signs() {
    let t = fixture("jumpserver-v4.10.16/093-hosts-filter-ips-batch.json");
    let r = &t["request"];
    let built = accessbot::jumpserver::client::target(
        "/api/v1/assets/hosts/",
        &[
            ("ips", "10.10.1.11,10.10.1.12,10.10.1.99"),
            ("limit", "100"),
        ],
    );
    assert_eq!(built, format!("{}?{}", st(r, "path"), st(r, "query")));
    let date = st(&r["headers"], "Date");
    let ss = httpsig::signing_string(
        "GET",
        &built,
        &[("Date", date.as_str())],
        &["(request-target)", "date"],
    )
    .unwrap();
    assert_eq!(ss, st(&r["auth"], "signing_string"));
    let auth = httpsig::authorization_header(
        VECTOR_KEY_ID,
        &["(request-target)", "date"],
        &httpsig::sign(VECTOR_KEY_SECRET, &ss),
    );
    assert_eq!(auth, st(&r["headers"], "Authorization"));
}

// ---------- against the simulator ----------

fn t0() -> Timestamp {
    "2026-11-22T08:00:00Z".parse().unwrap()
}

struct Env {
    sim: SimJumpServer,
    clock: ManualClock,
}

async fn sim_with(f: impl FnOnce(&mut SimJmsOptions)) -> Env {
    let clock = ManualClock::new(t0());
    let shared: SharedClock = Arc::new(clock.clone());
    let mut o = SimJmsOptions::new(shared);
    f(&mut o);
    let sim = SimJumpServer::start(o).await.unwrap();
    Env { sim, clock }
}

fn base_cfg(url: &str) -> JumpServerConfig {
    JumpServerConfig {
        url: url.to_owned(),
        retry_base_delay_ms: 1,
        retry_after_cap_ms: 5,
        ..Default::default()
    }
}

fn ak_cfg(url: &str) -> JumpServerConfig {
    JumpServerConfig {
        access_key_id: VECTOR_KEY_ID.into(),
        access_key_secret: Secret::new(VECTOR_KEY_SECRET),
        ..base_cfg(url)
    }
}

fn client(env: &Env, cfg: JumpServerConfig) -> JmsClient {
    JmsClient::new(cfg, Arc::new(env.clock.clone())).unwrap()
}

fn plan(addresses: &[&str]) -> GrantPlan {
    GrantPlan {
        username: "alice".into(),
        email: None,
        new_user: None,
        node_name: "PaymentSystem".into(),
        addresses: addresses.iter().map(|s| s.to_string()).collect(),
        platform: "Linux".into(),
        accounts: vec!["readonly".into()],
        actions: vec!["connect".into()],
        protocols: vec![("ssh".into(), 22)],
        date_start: t0(),
        date_expired: t0() + SignedDuration::from_hours(72),
        permission_name: "dt-A20261122-0001".into(),
        comment: "approved in DingTalk by bob".into(),
        owner: Marker {
            installation: "testinst01".into(),
            order: OrderId::new("A20261122-0001"),
        },
    }
}

#[tokio::test]
async fn access_key_start_detects_v4_and_finds_users() {
    let env = sim_with(|_| {}).await;
    let alice = env
        .sim
        .add_user("alice", "Alice", "alice@example.com")
        .unwrap();
    env.sim
        .add_user("Alice2", "Other", "alice2@example.com")
        .unwrap();
    let c = client(&env, ak_cfg(&env.sim.url()));
    assert_eq!(c.start().await.unwrap(), ServerLine::V4);
    let u = c.find_user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(u.id.as_str(), alice);
    assert_eq!(u.email, "alice@example.com");
    assert!(c.find_user_by_username("ALICE").await.unwrap().is_none());
    let by_mail = c
        .find_user_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_mail.id.as_str(), alice);
    assert!(c.list_users().await.unwrap().len() >= 3);
    assert!(c.platform_id("Linux").await.is_ok());
    match c.platform_id("Nope").await {
        Err(e @ JmsError::NotFound(_)) => {
            assert_eq!(e.user_message(true), "no platform named Nope")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wrong_secret_is_unauthorized() {
    let env = sim_with(|_| {}).await;
    let mut cfg = ak_cfg(&env.sim.url());
    cfg.access_key_secret = Secret::new("wrong-secret-wrong-secret-wrong-secr");
    let c = client(&env, cfg);
    let e = c.find_user_by_username("admin").await.unwrap_err();
    assert!(matches!(e, JmsError::Unauthorized(_)), "{e:?}");
    // 401 is not transient: exactly one request went out.
    assert_eq!(env.sim.calls_to("GET", "/api/v1/users/"), 1);
}

#[tokio::test]
async fn private_token_mode() {
    let env = sim_with(|o| o.private_token = Some(Secret::new("a".repeat(40)))).await;
    let mut cfg = base_cfg(&env.sim.url());
    cfg.private_token = Secret::new("a".repeat(40));
    let c = client(&env, cfg);
    assert!(c.find_user_by_username("admin").await.unwrap().is_some());
    let mut bad = base_cfg(&env.sim.url());
    bad.private_token = Secret::new("b".repeat(40));
    let e = client(&env, bad)
        .find_user_by_username("admin")
        .await
        .unwrap_err();
    assert!(matches!(e, JmsError::Unauthorized(_)));
}

fn login_user(mfa: bool) -> SimLoginUser {
    SimLoginUser {
        username: "fx-bot".into(),
        name: "Fx Bot".into(),
        email: "fx-bot@example.com".into(),
        password: Secret::new("Fx-Bot-Pass-2026!a"),
        otp_seed: mfa.then(|| Secret::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")),
    }
}

fn pw_cfg(url: &str, mfa: bool) -> JumpServerConfig {
    let mut c = base_cfg(url);
    c.username = "fx-bot".into();
    c.password = Secret::new("Fx-Bot-Pass-2026!a");
    if mfa {
        c.otp_seed = Secret::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }
    c
}

#[tokio::test]
async fn password_login_renews_before_expiry_and_after_401() {
    let env = sim_with(|o| o.login_users = vec![login_user(false)]).await;
    let c = client(&env, pw_cfg(&env.sim.url(), false));
    c.find_user_by_username("fx-bot").await.unwrap();
    c.find_user_by_username("fx-bot").await.unwrap();
    let auth = "/api/v1/authentication/auth/";
    assert_eq!(env.sim.calls_to("POST", auth), 1, "token reused");
    // Near the end of the 24 h token the client logs in again before calling.
    env.clock
        .advance(SignedDuration::from_hours(23) + SignedDuration::from_mins(55));
    c.find_user_by_username("fx-bot").await.unwrap();
    assert_eq!(env.sim.calls_to("POST", auth), 2);
    // Server forgets the token: one 401, one re-login, the call succeeds.
    env.sim.expire_bearer_tokens();
    c.find_user_by_username("fx-bot").await.unwrap();
    assert_eq!(env.sim.calls_to("POST", auth), 3);
}

#[tokio::test]
async fn password_plus_totp_three_step_login() {
    let env = sim_with(|o| o.login_users = vec![login_user(true)]).await;
    let c = client(&env, pw_cfg(&env.sim.url(), true));
    assert!(c.find_user_by_username("fx-bot").await.unwrap().is_some());
    assert_eq!(env.sim.calls_to("POST", "/api/v1/authentication/auth/"), 2);
    assert_eq!(env.sim.calls_to("POST", "/api/v1/authentication/mfa/"), 1);
    // Without the seed the client says what is missing instead of guessing.
    let no_seed = client(&env, pw_cfg(&env.sim.url(), false));
    let e = no_seed.find_user_by_username("fx-bot").await.unwrap_err();
    assert!(
        matches!(&e, JmsError::Login(m) if m.contains("otp_seed")),
        "{e:?}"
    );
    // A wrong seed gives a wrong code: a login error, not a panic or a retry storm.
    let mut wrong = pw_cfg(&env.sim.url(), true);
    wrong.otp_seed = Secret::new("JBSWY3DPEHPK3PXP");
    let e = client(&env, wrong)
        .find_user_by_username("fx-bot")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, JmsError::Login(m) if m.contains("MFA")),
        "{e:?}"
    );
    let mut badpw = pw_cfg(&env.sim.url(), false);
    badpw.password = Secret::new("nope");
    let e = client(&env, badpw)
        .find_user_by_username("x")
        .await
        .unwrap_err();
    assert!(matches!(e, JmsError::Login(_)), "{e:?}");
}

#[tokio::test]
async fn users_create_is_idempotent_and_errors_read_well() {
    let env = sim_with(|_| {}).await;
    let c = client(&env, ak_cfg(&env.sim.url()));
    let spec = NewUserSpec {
        name: "Bob".into(),
        username: "bob".into(),
        email: "bob@example.com".into(),
        comment: String::new(),
    };
    let (u, created) = c.create_user(&spec).await.unwrap();
    assert!(created);
    let (again, created2) = c.create_user(&spec).await.unwrap();
    assert!(!created2);
    assert_eq!(again.id, u.id);
    // Same e-mail, other username: a field error in words.
    let dup_mail = NewUserSpec {
        username: "bob2".into(),
        ..spec.clone()
    };
    let e = c.create_user(&dup_mail).await.unwrap_err();
    assert_eq!(e.user_message(true), "e-mail already used by another user");
    assert_eq!(e.user_message(false), "邮箱已被其他用户使用");
    c.set_user_active(&u.id, false).await.unwrap();
    assert!(!env
        .sim
        .users()
        .iter()
        .any(|x| x.username == "bob" && x.is_active));
    c.set_user_active(&u.id, true).await.unwrap();
    let e = c
        .set_user_active(
            &JmsUserId::new("00000000-0000-0000-0000-0000000000ff"),
            true,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, JmsError::NotFound(_)), "{e:?}");
}

#[tokio::test]
async fn nodes_hosts_and_pagination() {
    let env = sim_with(|_| {}).await;
    let c = client(&env, ak_cfg(&env.sim.url()));
    let root = c.root_node().await.unwrap();
    assert_eq!(root.key, "1");
    let (n, created) = c.ensure_child_node("HRSystem").await.unwrap();
    assert!(created);
    let (n2, created2) = c.ensure_child_node("HRSystem").await.unwrap();
    assert!(!created2);
    assert_eq!(n.id, n2.id);
    assert!(c.ensure_child_node("a/b").await.is_err());
    // 230 hosts: walking `next` with limit=100 takes three signed pages.
    for i in 0..230 {
        env.sim
            .add_host(SeedHost {
                name: format!("bulk-10.20.{}.{}", i / 200, i % 200),
                address: format!("10.20.{}.{}", i / 200, i % 200),
                platform_id: 1,
                node_ids: vec![],
                accounts: vec![],
            })
            .unwrap();
    }
    env.sim.reset_counts();
    let all = c.list_hosts().await.unwrap();
    assert_eq!(all.len(), 230);
    assert_eq!(env.sim.calls_to("GET", "/api/v1/assets/hosts/"), 3);
    let found = c
        .find_hosts(&["10.20.0.5".into(), "10.20.1.3".into(), "10.99.0.1".into()])
        .await
        .unwrap();
    let mut addrs: Vec<_> = found.iter().map(|h| h.address.clone()).collect();
    addrs.sort();
    assert_eq!(addrs, vec!["10.20.0.5", "10.20.1.3"]);
    let pid = c.platform_id("Linux").await.unwrap();
    let h = c
        .create_host(&NewHostSpec {
            name: "10.30.0.1".into(),
            address: "10.30.0.1".into(),
            platform_id: pid,
            node_id: Some(n.id.clone()),
            protocols: vec![("ssh".into(), 22)],
            account_usernames: vec!["readonly".into()],
            comment: "t".into(),
        })
        .await
        .unwrap();
    assert_eq!(h.node_ids, vec![n.id.clone()]);
    assert!(c.list_nodes().await.unwrap().len() >= 2);
    let moved = found[0].id.clone();
    c.add_hosts_to_node(&n.id, std::slice::from_ref(&moved))
        .await
        .unwrap();
    let sim_host = env.sim.hosts().into_iter().find(|x| x.id == moved).unwrap();
    assert!(sim_host.node_ids.contains(&n.id));
}

#[tokio::test]
async fn grant_budget_and_idempotence_one_existing_host() {
    let env = sim_with(|_| {}).await;
    env.sim
        .add_user("alice", "Alice", "alice@example.com")
        .unwrap();
    let node = env.sim.add_node_path("PaymentSystem");
    let host = env
        .sim
        .add_host(SeedHost {
            name: "10.10.1.11".into(),
            address: "10.10.1.11".into(),
            platform_id: 1,
            node_ids: vec![node],
            accounts: vec![("readonly".into(), "readonly".into(), false)],
        })
        .unwrap();
    let c = client(&env, ak_cfg(&env.sim.url()));
    c.start().await.unwrap();
    env.sim.reset_counts();
    let mut p = plan(&["10.10.1.11"]);
    // Sub-second precision is lost on the server; a re-run must still see "the same" expiry.
    p.date_expired += SignedDuration::from_millis(250);
    let out = c.grant(&p).await.unwrap();
    // User, hosts, permission, and the read-back of the host (which also shows the login).
    assert_eq!(env.sim.total_calls(), 4);
    assert_eq!(env.sim.calls_to("GET", "/api/v1/perms/users/"), 1);
    assert_eq!(env.sim.calls_to("GET", "/api/v1/accounts/accounts/"), 0);
    assert!(out.accounts_missing.is_empty() && out.notices(true).is_empty());
    assert!(out.readback.usable());
    assert_eq!(out.readback.hosts[0].logins[0].username, "readonly");
    assert_eq!(out.permission, PermissionResult::Created);
    assert!(out.user_active);
    assert_eq!(
        out.hosts_found,
        vec![HostRef {
            address: "10.10.1.11".into(),
            id: host.clone()
        }]
    );
    assert!(out.hosts_created.is_empty() && out.hosts_outside_node.is_empty());
    let perm = env
        .sim
        .permissions()
        .into_iter()
        .find(|x| x.name == p.permission_name)
        .unwrap();
    assert_eq!(perm.asset_ids, vec![host]);
    assert_eq!(perm.accounts, vec!["@SPEC", "readonly"]);
    assert_eq!(perm.date_expired.as_second(), p.date_expired.as_second());
    env.sim.reset_counts();
    let again = c.grant(&p).await.unwrap();
    assert_eq!(again.creates(), 0);
    assert_eq!(again.permission, PermissionResult::Repaired);
    assert_eq!(again.permission_id, out.permission_id);
    // Re-run: user, hosts, permission create (name taken), the lookup by name that finds our
    // marker, the repairing PATCH, and the read-back.
    assert_eq!(env.sim.total_calls(), 6, "re-run");
    assert_eq!(
        env.sim.calls_to("GET", "/api/v1/perms/asset-permissions/"),
        1
    );
    assert_eq!(env.sim.calls_to("PATCH", "/api/v1/perms/"), 1);
    assert_eq!(env.sim.calls_to("POST", "/api/v1/assets/"), 0);
}

/// Issue 11's preview budget: 1 existing host that the user already reaches through 7
/// permissions costs 4 calls (user, hosts, accounts, the permission name; the node comes from
/// the cache `start` filled), and "already has access" 1 more — one query for the host, not one
/// per permission that touches it.
#[tokio::test]
async fn preview_budget_one_existing_host_with_existing_permissions() {
    let env = sim_with(|_| {}).await;
    let alice = env
        .sim
        .add_user("alice", "Alice", "alice@example.com")
        .unwrap();
    let bob = env.sim.add_user("bob", "Bob", "bob@example.com").unwrap();
    let node = env.sim.add_node_path("PaymentSystem");
    let host = env
        .sim
        .add_host(SeedHost {
            name: "10.10.1.11".into(),
            address: "10.10.1.11".into(),
            platform_id: 1,
            node_ids: vec![node],
            accounts: vec![("readonly".into(), "readonly".into(), false)],
        })
        .unwrap();
    let c = client(&env, ak_cfg(&env.sim.url()));
    c.start().await.unwrap();
    let now = accessbot::clock::Clock::now(&env.clock);
    for i in 0..7 {
        let who = if i % 2 == 0 { &alice } else { &bob };
        c.create_permission(&NewPermissionSpec {
            name: format!("existing-{i}"),
            user_ids: vec![who.clone()],
            asset_ids: vec![host.clone()],
            node_ids: Vec::new(),
            accounts: vec!["@ALL".into()],
            protocols: Vec::new(),
            actions: vec!["connect".into()],
            date_start: now - SignedDuration::from_hours(1),
            date_expired: now + SignedDuration::from_hours(10 + i),
            comment: "not ours".into(),
        })
        .await
        .unwrap();
    }
    env.sim.reset_counts();
    let pv = c.preview(&plan(&["10.10.1.11"])).await.unwrap();
    assert_eq!(pv.hosts_existing.len(), 1);
    assert_eq!(env.sim.total_calls(), 4, "preview");
    env.sim.reset_counts();
    let uid = pv.user_id.clone().unwrap();
    let reach = c.user_reach(&uid, &pv.addresses).await.unwrap();
    assert_eq!(env.sim.total_calls(), 1, "already has access");
    // Alice's latest end among her permissions 0, 2, 4, 6 (10 h + i).
    let want = now + SignedDuration::from_hours(16);
    assert_eq!(reach, vec![Some(Some(want))]);
    let nobody = c
        .user_reach(&uid, &["10.99.9.9".to_string()])
        .await
        .unwrap();
    assert_eq!(nobody, vec![None]);
}

#[tokio::test]
async fn grant_creates_three_hosts_user_and_node_then_nothing() {
    let env = sim_with(|_| {}).await;
    let c = client(&env, ak_cfg(&env.sim.url()));
    c.start().await.unwrap();
    let mut p = plan(&["10.40.0.1", "10.40.0.2", "10.40.0.3", "10.40.0.2"]);
    p.new_user = Some(NewUser {
        name: "Alice".into(),
        email: "alice@example.com".into(),
    });
    let pv = c.preview(&p).await.unwrap();
    assert!(!pv.user_exists && !pv.node_exists && !pv.permission_exists);
    assert_eq!(pv.hosts_to_create.len(), 3);
    assert!(env.sim.hosts().is_empty(), "preview is read-only");
    env.sim.reset_counts();
    let out = c.grant(&p).await.unwrap();
    let n = 3;
    // A new user is looked for three ways (username, other letter case, e-mail) and created;
    // the node is looked up and created; then hosts, n creates, the permission and n
    // read-backs.
    assert_eq!(env.sim.total_calls(), 4 + 2 + 1 + n + 1 + n, "calls");
    assert!(out.user_created && out.node_created);
    assert_eq!(out.hosts_created.len(), 3);
    assert_eq!(out.creates(), 6);
    let hosts = env.sim.hosts();
    assert_eq!(hosts.len(), 3);
    let node_id = out.node.as_ref().unwrap().id.clone();
    assert!(hosts.iter().all(|h| h.node_ids == vec![node_id.clone()]));
    assert!(hosts
        .iter()
        .all(|h| h.protocols == vec![("ssh".to_owned(), 22)]));
    // Same plan again: nothing created, within the existing-host budget.
    env.sim.reset_counts();
    let again = c.grant(&p).await.unwrap();
    assert_eq!(again.creates(), 0);
    assert_eq!(again.hosts_found.len(), 3);
    // Re-run: user, hosts, permission POST (name taken), the GET that finds our marker, the
    // repairing PATCH, and one read-back per host.
    assert_eq!(env.sim.total_calls(), 5 + 3, "re-run");
    assert!(again.accounts_missing.is_empty(), "made inline on creation");
    assert_eq!(env.sim.hosts().len(), 3);
    assert_eq!(env.sim.permissions().len(), 1);
    // A later end date on the same order repairs ours instead of duplicating.
    p.date_expired += SignedDuration::from_hours(24);
    let ext = c.grant(&p).await.unwrap();
    assert_eq!(ext.permission, PermissionResult::Repaired);
    assert_eq!(env.sim.permissions()[0].date_expired, p.date_expired);
    // Budget for new hosts when user and node exist: exactly n + 4.
    let mut q = plan(&["10.40.0.9", "10.40.0.8"]);
    q.permission_name = "dt-A20261122-0002".into();
    env.sim.reset_counts();
    let o2 = c.grant(&q).await.unwrap();
    assert_eq!(o2.hosts_created.len(), 2);
    // The node is cached since the first grant made it: user, hosts, 2 creates, permission,
    // 2 read-backs.
    assert_eq!(env.sim.total_calls(), 2 + 3 + 2);
    // Mixed: one existing host and one new, node cached: user, hosts, create, permission and
    // a read-back per host.
    let mut m = plan(&["10.40.0.1", "10.40.0.7"]);
    m.permission_name = "dt-A20261122-0003".into();
    env.sim.reset_counts();
    let o3 = c.grant(&m).await.unwrap();
    assert_eq!((o3.hosts_found.len(), o3.hosts_created.len()), (1, 1));
    assert_eq!(env.sim.total_calls(), 4 + 2);
}

#[tokio::test]
async fn grant_refusals_are_typed() {
    let env = sim_with(|_| {}).await;
    let c = client(&env, ak_cfg(&env.sim.url()));
    let p = plan(&["10.0.0.1"]);
    let e = c.grant(&p).await.unwrap_err();
    assert_eq!(e.user_message(true), "no JumpServer user named alice");
    assert_eq!(e.user_message(false), "JumpServer 中没有用户 alice");
    let mut bad = plan(&["10.0.0.1"]);
    bad.date_expired = bad.date_start;
    let e = c.grant(&bad).await.unwrap_err();
    assert!(matches!(e, JmsError::Invalid(_)));
    assert_eq!(e.user_message(false), "结束时间必须晚于开始时间");
    assert_eq!(
        e.user_message(true),
        "the end time must be after the start time"
    );
    let mut bad = plan(&["10.0.0.1|x"]);
    bad.accounts = vec![];
    assert!(matches!(bad.validate(), Err(JmsError::Invalid(_))));
    let mut bad = plan(&["10.0.0.1"]);
    bad.actions = vec!["read".into()];
    assert!(bad.validate().is_err());
    env.sim
        .add_user("alice", "Alice", "alice@example.com")
        .unwrap();
    let mut np = plan(&["10.0.0.1"]);
    np.platform = "NoSuchPlatform".into();
    let e = c.grant(&np).await.unwrap_err();
    assert_eq!(e.user_message(true), "no platform named NoSuchPlatform");
    assert_eq!(
        e.user_message(false),
        "JumpServer 中没有名为 NoSuchPlatform 的平台"
    );
    // A disabled account is reported, not silently granted to.
    let alice = c.find_user_by_username("alice").await.unwrap().unwrap();
    c.set_user_active(&alice.id, false).await.unwrap();
    let pv = c.preview(&plan(&["10.0.0.1"])).await.unwrap();
    assert!(pv.user_exists && !pv.user_active);
    let out = c.grant(&plan(&["10.0.0.1"])).await.unwrap();
    assert!(!out.user_active);
}

#[tokio::test]
async fn renew_revoke_queries_and_sessions() {
    let env = sim_with(|_| {}).await;
    let alice = env
        .sim
        .add_user("alice", "Alice", "alice@example.com")
        .unwrap();
    let c = client(&env, ak_cfg(&env.sim.url()));
    let p = plan(&["10.10.1.11", "10.10.1.12"]);
    let out = c.grant(&p).await.unwrap();
    let alice_id = JmsUserId::new(alice.clone());

    let granted = c.user_granted_assets(&alice_id).await.unwrap();
    assert_eq!(granted.len(), 2);
    let reach = c.who_can_reach("10.10.1.11").await.unwrap();
    assert_eq!(reach.len(), 1);
    assert_eq!(reach[0].user_id, alice_id);
    assert_eq!(reach[0].permission_name, p.permission_name);
    assert!(c.who_can_reach("10.99.9.9").await.unwrap().is_empty());

    let later = p.date_expired + SignedDuration::from_hours(48);
    let renewed = c.renew(&p.permission_name, &p.owner, later).await.unwrap();
    assert_eq!(renewed.date_expired, Some(later));
    assert!(matches!(
        c.renew("dt-missing", &p.owner, later).await,
        Err(JmsError::NotFound(_))
    ));

    // A grant that starts in the future is not "reaching" yet.
    let mut fut = plan(&["10.10.1.11"]);
    fut.permission_name = "dt-future".into();
    fut.username = "bob".into();
    env.sim.add_user("bob", "Bob", "bob@example.com").unwrap();
    fut.date_start = t0() + SignedDuration::from_hours(240);
    fut.date_expired = t0() + SignedDuration::from_hours(480);
    c.grant(&fut).await.unwrap();
    assert_eq!(c.who_can_reach("10.10.1.11").await.unwrap().len(), 1);

    let asset = out.hosts_created[0].id.clone();
    let sid = env
        .sim
        .add_session(SeedSession {
            user_id: alice.clone(),
            asset_id: asset.clone(),
            account_username: "readonly".into(),
            protocol: "ssh".into(),
        })
        .unwrap();
    let killed = c.end_sessions(&alice_id, &asset).await.unwrap();
    assert_eq!(killed, vec![sid]);
    assert!(!env.sim.tasks().is_empty());
    env.sim.reset_counts();
    let other = out.hosts_created[1].id.clone();
    assert!(c.end_sessions(&alice_id, &other).await.unwrap().is_empty());
    assert_eq!(env.sim.calls_to("POST", "/api/v1/terminal/"), 0);

    let r = c
        .revoke(&p.permission_name, &p.owner, RevokeMode::Delete, None)
        .await
        .unwrap();
    assert!(r.found);
    assert_eq!(r.revocation.how, RevokedHow::Deleted);
    assert!(c.user_granted_assets(&alice_id).await.unwrap().is_empty());
    let r2 = c
        .revoke(&p.permission_name, &p.owner, RevokeMode::Delete, None)
        .await
        .unwrap();
    assert!(!r2.found);
    assert_eq!(r2.revocation.how, RevokedHow::AlreadyGone);
    let perm_id = c.find_permission("dt-future").await.unwrap().unwrap().id;
    c.deactivate_permission(&perm_id).await.unwrap();
    assert!(
        !c.find_permission("dt-future")
            .await
            .unwrap()
            .unwrap()
            .is_active
    );
    assert!(c.delete_permission(&perm_id).await.unwrap());
    assert!(!c.delete_permission(&perm_id).await.unwrap());
    assert!(c.list_permissions().await.unwrap().is_empty());
}

#[tokio::test]
async fn retries_only_what_is_safe() {
    let env = sim_with(|_| {}).await;
    let c = client(&env, ak_cfg(&env.sim.url()));
    // Two 503s then success: a GET is retried.
    env.sim.fail_next(2, 503);
    assert!(c.find_user_by_username("admin").await.unwrap().is_some());
    assert_eq!(env.sim.calls_to("GET", "/api/v1/users/"), 3);
    // More failures than attempts: the last error comes back typed.
    env.sim.reset_counts();
    env.sim.fail_next(10, 503);
    let e = c.find_user_by_username("admin").await.unwrap_err();
    assert!(matches!(e, JmsError::Server { status: 503 }), "{e:?}");
    assert_eq!(env.sim.total_calls(), 4);
    env.sim.fail_next(0, 503);
    // Any 5xx on an idempotent call is retried (issue 3: "5xx, timeouts and connection errors").
    env.sim.reset_counts();
    env.sim.fail_next(1, 500);
    assert!(!c.list_users().await.unwrap().is_empty());
    assert_eq!(env.sim.total_calls(), 2);
    // A 4xx is an answer, not weather: no retry.
    env.sim.reset_counts();
    env.sim.fail_next(1, 400);
    assert!(matches!(
        c.list_users().await,
        Err(JmsError::Rejected { status: 400, .. })
    ));
    assert_eq!(env.sim.total_calls(), 1);
    // 429 is retried after (capped) Retry-After.
    env.sim.reset_counts();
    env.sim.fail_next(2, 429);
    assert!(c.find_user_by_username("admin").await.unwrap().is_some());
    assert_eq!(env.sim.total_calls(), 3);
}

/// Kill-session may have acted when it answers 503, so it is not repeated; the GET before it is.
#[tokio::test]
async fn non_idempotent_post_is_not_retried_after_it_may_have_acted() {
    use axum::http::{Method, StatusCode};
    use axum::response::IntoResponse;
    let posts = Arc::new(AtomicUsize::new(0));
    let gets = Arc::new(AtomicUsize::new(0));
    let (p2, g2) = (posts.clone(), gets.clone());
    let app = axum::Router::new().fallback(move |m: Method| {
        let (p, g) = (p2.clone(), g2.clone());
        async move {
            if m == Method::POST {
                p.fetch_add(1, Ordering::SeqCst);
                return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
            }
            // First GET fails too: GETs are retried.
            if g.fetch_add(1, Ordering::SeqCst) == 0 {
                return (StatusCode::BAD_GATEWAY, "bad gateway").into_response();
            }
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                r#"{"count":1,"next":null,"previous":null,"results":[{"id":"s1","is_finished":false}]}"#,
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let c = JmsClient::new(ak_cfg(&format!("http://{addr}")), clock).unwrap();
    let e = c
        .end_sessions(&JmsUserId::new("u1"), "a1")
        .await
        .unwrap_err();
    assert!(matches!(e, JmsError::Server { status: 503 }), "{e:?}");
    assert_eq!(gets.load(Ordering::SeqCst), 2);
    assert_eq!(posts.load(Ordering::SeqCst), 1);
}

/// A tiny server that answers 429 with a long Retry-After k times: the client waits only the cap.
#[tokio::test]
async fn throttle_retry_after_is_capped_and_counted() {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let h = h2.clone();
        async move {
            let n = h.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [
                        ("retry-after", "3600"),
                        ("content-type", "application/json"),
                    ],
                    r#"{"detail":"Request was throttled.","code":"throttled"}"#,
                )
                    .into_response()
            } else {
                (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    r#"{"count":0,"next":null,"previous":null,"results":[]}"#,
                )
                    .into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let c = JmsClient::new(ak_cfg(&format!("http://{addr}")), clock.clone()).unwrap();
    assert!(c.find_user_by_username("x").await.unwrap().is_none());
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // With one attempt only, the throttle surfaces with the server's Retry-After.
    hits.store(0, Ordering::SeqCst);
    let mut one = ak_cfg(&format!("http://{addr}"));
    one.retry_max_attempts = 1;
    let c1 = JmsClient::new(one, clock).unwrap();
    match c1.find_user_by_username("x").await {
        Err(JmsError::Throttled { retry_after }) => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(3600)))
        }
        other => panic!("{other:?}"),
    }
}

/// A v2 server (koko probe 404, hosts 404): v3-only features are refused with a clear error.
#[tokio::test]
async fn v2_server_gets_unsupported() {
    use axum::http::StatusCode;
    let app = axum::Router::new()
        .fallback(|| async { (StatusCode::NOT_FOUND, "<html>not found</html>") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let c = JmsClient::new(ak_cfg(&format!("http://{addr}")), clock).unwrap();
    assert_eq!(c.detect_version().await.unwrap(), ServerLine::V2);
    let e = c.grant(&plan(&["10.0.0.1"])).await.unwrap_err();
    match &e {
        JmsError::Unsupported { feature, version } => {
            assert_eq!(*feature, "grant");
            assert_eq!(version, "v2");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.user_message(true).contains("v2"));
    assert_eq!(
        e.user_message(false),
        "JumpServer v2 不支持授权（需要 v3 或更高版本）"
    );
}

#[tokio::test]
async fn unreachable_server_is_transport_error_after_retries() {
    // Bind then drop, so the port is closed.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let c = JmsClient::new(ak_cfg(&format!("http://{addr}")), clock).unwrap();
    let e = c.find_user_by_username("x").await.unwrap_err();
    assert!(matches!(e, JmsError::Transport(_)), "{e:?}");
    assert_eq!(c.calls_made(), 4);
    assert!(!format!("{e:?}").contains(VECTOR_KEY_SECRET));
    assert!(!format!("{c:?}").contains(VECTOR_KEY_SECRET));
}

#[test]
fn bad_config_is_refused_by_the_constructor() {
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let e = JmsClient::new(JumpServerConfig::default(), clock).unwrap_err();
    assert!(matches!(&e, JmsError::Config(m) if m.contains("jumpserver.url")));
}

/// `PUT /nodes/{id}/assets/add/` on a recorder: the exact request and its signature (the
/// simulator route is exercised in `node_grant_finds_or_creates_the_node_and_names_it`).
#[tokio::test]
async fn add_hosts_to_node_sends_one_signed_put() {
    use axum::http::{HeaderMap, Method, Uri};
    type Seen = Arc<std::sync::Mutex<Vec<(String, String, String, String)>>>;
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let app = axum::Router::new().fallback(move |m: Method, u: Uri, h: HeaderMap, body: String| {
        let s = s2.clone();
        async move {
            let auth = h
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            s.lock()
                .unwrap()
                .push((m.to_string(), u.to_string(), body, auth));
            axum::Json(serde_json::json!({"assets": []}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let c = JmsClient::new(ak_cfg(&format!("http://{addr}")), clock).unwrap();
    c.add_hosts_to_node("n1", &["h1".into(), "h2".into()])
        .await
        .unwrap();
    c.add_hosts_to_node("n1", &[]).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "an empty list makes no call");
    let (m, uri, body, auth) = &seen[0];
    assert_eq!(m, "PUT");
    assert_eq!(uri, "/api/v1/assets/nodes/n1/assets/add/");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        serde_json::json!({"assets": ["h1", "h2"]})
    );
    let parsed = httpsig::parse_authorization(auth).unwrap();
    assert_eq!(
        parsed.headers,
        vec!["(request-target)", "date", "accept", "x-jms-org"]
    );
    let date = accessbot::jumpserver::client::http_date(t0());
    let hdrs = [
        ("date", date.as_str()),
        ("accept", "application/json"),
        ("x-jms-org", "00000000-0000-0000-0000-000000000002"),
    ];
    assert_eq!(
        httpsig::verify_request(VECTOR_KEY_SECRET, "PUT", uri, &hdrs, &parsed),
        Ok(())
    );
}

/// Two workers running the same order at once still end with one permission and one host each.
#[tokio::test]
async fn concurrent_identical_grants_converge() {
    let env = sim_with(|_| {}).await;
    env.sim
        .add_user("alice", "Alice", "alice@example.com")
        .unwrap();
    let c = client(&env, ak_cfg(&env.sim.url()));
    c.start().await.unwrap();
    let p = plan(&["10.60.0.1", "10.60.0.2", "10.60.0.3"]);
    let c2 = c.clone();
    let (a, b) = tokio::join!(c.grant(&p), c2.grant(&p));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.permission_id, b.permission_id);
    assert_eq!(env.sim.permissions().len(), 1);
    assert_eq!(env.sim.hosts().len(), 3);
    let nodes: Vec<_> = env
        .sim
        .nodes()
        .into_iter()
        .filter(|n| n.value == "PaymentSystem")
        .collect();
    assert_eq!(nodes.len(), 1);
}

#[tokio::test]
async fn ids_that_would_break_the_signature_are_refused_before_sending() {
    let env = sim_with(|_| {}).await;
    let c = client(&env, ak_cfg(&env.sim.url()));
    env.sim.reset_counts();
    for bad in ["../users", "a b", "x%2D", ""] {
        let e = c.delete_permission(bad).await.unwrap_err();
        assert!(matches!(e, JmsError::Invalid(_)), "{bad}: {e:?}");
        let e = c
            .set_user_active(&JmsUserId::new(bad), false)
            .await
            .unwrap_err();
        assert!(matches!(e, JmsError::Invalid(_)), "{bad}: {e:?}");
    }
    assert_eq!(env.sim.total_calls(), 0);
}

proptest::proptest! {
    /// Any query we build reaches Django's signature check byte for byte (§2.1 rule), so the
    /// server's (request-target) always equals the one we signed.
    #[test]
    fn form_encoded_queries_survive_djangos_rebuild(
        k in "[a-z_]{1,8}",
        v in "\\PC{0,24}",
        w in proptest::collection::vec(proptest::char::any(), 0..12),
    ) {
        let w: String = w.into_iter().collect();
        let t = accessbot::jumpserver::client::target("/api/v1/assets/hosts/", &[(&k, &v), ("search", &w)]);
        proptest::prop_assert!(t.is_ascii());
        proptest::prop_assert_eq!(httpsig::django_full_path(&t), t);
    }

    /// The header parser takes arbitrary text without panicking.
    #[test]
    fn authorization_parser_never_panics(s in "\\PC{0,80}") {
        let _ = httpsig::parse_authorization(&s);
        let _ = httpsig::parse_authorization(&format!("Signature {s}"));
    }
}

/// The bodies `grant` sends have the shape of the recorded real requests (091 host create,
/// 100 permission create, 074 child node create), checked on a recording server rather than
/// through the simulator, so a lenient simulator cannot hide a wrong field.
#[tokio::test]
async fn grant_request_bodies_match_the_recorded_shapes() {
    use axum::http::{Method, Uri};
    use serde_json::json;
    type Log = Arc<std::sync::Mutex<Vec<(String, String, Value)>>>;
    let log: Log = Arc::default();
    let l2 = log.clone();
    let l3 = log.clone();
    let app = axum::Router::new().fallback(move |m: Method, u: Uri, body: String| {
        let l = l2.clone();
        async move {
            let b: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let path = u.path().to_owned();
            l.lock().unwrap().push((m.to_string(), path.clone(), b.clone()));
            let page = |rows: Value| json!({"count": 0, "next": null, "previous": null, "results": rows});
            let root = json!({"id": "r0", "key": "1", "value": "DEFAULT", "full_value": "/DEFAULT"});
            let v = match (m.as_str(), path.as_str()) {
                ("GET", "/api/v1/settings/i18n/koko/") => json!({}),
                ("GET", "/api/v1/assets/nodes/children/") => json!([root]),
                ("GET", "/api/v1/assets/platforms/") => page(json!([{"id": 1, "name": "Linux"}])),
                ("GET", "/api/v1/users/users/") => page(json!([{"id": "u1", "username": "alice", "is_active": true}])),
                ("GET", "/api/v1/assets/hosts/") => page(json!([])),
                ("GET", "/api/v1/assets/nodes/") => page(json!([])),
                ("POST", "/api/v1/assets/nodes/r0/children/") => json!({"id": "n1", "key": "1:0", "value": b["value"], "full_value": "/DEFAULT/PaymentSystem"}),
                ("POST", "/api/v1/assets/hosts/") => json!({"id": format!("h-{}", b["address"].as_str().unwrap_or("").replace('.', "-")), "name": b["name"], "address": b["address"]}),
                ("POST", "/api/v1/perms/asset-permissions/") => json!({"id": "p1", "name": b["name"], "date_expired": "2026/11/25 16:00:00 +0800"}),
                _ => json!({}),
            };
            let status = if m == Method::POST { 201 } else { 200 };
            (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(v))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let c = JmsClient::new(ak_cfg(&format!("http://{addr}")), clock).unwrap();
    let out = c.grant(&plan(&["10.70.0.1", "10.70.0.2"])).await.unwrap();
    assert_eq!(out.hosts_created.len(), 2);
    assert!(out.node_created);
    let log = log.lock().unwrap().clone();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let rec_keys = |f: &str| keys(&fixture(&format!("jumpserver-v4.10.16/{f}"))["request"]["json"]);

    let node_post = log
        .iter()
        .find(|(m, p, _)| m == "POST" && p.ends_with("/children/"))
        .unwrap();
    assert_eq!(keys(&node_post.2), rec_keys("074-nodes-create-child.json"));

    let hosts: Vec<&Value> = log
        .iter()
        .filter(|(m, p, _)| m == "POST" && p == "/api/v1/assets/hosts/")
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(hosts.len(), 2, "one host per request, never a bulk list");
    for h in &hosts {
        assert_eq!(keys(h), rec_keys("091-hosts-create.json"));
        assert_eq!(h["platform"], json!(1), "platform must be the integer id");
        assert_eq!(h["nodes"], json!(["n1"]));
        assert_eq!(h["protocols"], json!([{"name": "ssh", "port": 22}]));
        assert_eq!(
            h["accounts"],
            json!([{"name": "readonly", "username": "readonly", "secret_type": "password", "privileged": false}])
        );
    }
    let perm = &log
        .iter()
        .find(|(m, p, _)| m == "POST" && p == "/api/v1/perms/asset-permissions/")
        .unwrap()
        .2;
    assert_eq!(keys(perm), rec_keys("100-perms-create-all-accounts.json"));
    assert_eq!(perm["users"], json!(["u1"]));
    assert_eq!(perm["assets"], json!(["h-10-70-0-1", "h-10-70-0-2"]));
    assert_eq!(perm["accounts"], json!(["@SPEC", "readonly"]));
    assert_eq!(perm["actions"], json!(["connect"]));
    assert_eq!(perm["protocols"], json!(["ssh"]));
    assert_eq!(perm["date_start"], json!("2026-11-22T08:00:00+00:00"));
    assert_eq!(perm["date_expired"], json!("2026-11-25T08:00:00+00:00"));
    // The recorded answer's expiry equals the plan's: nothing to PATCH.
    assert_eq!(out.permission, PermissionResult::Created);
    assert!(log.iter().all(|(m, _, _)| m != "PATCH"));

    // A whole-system grant: the recorded node permission's fields (105), nodes set, no assets.
    let mut np = plan(&[]);
    np.permission_name = "dt-node".into();
    let before = log.len();
    let out = c.grant(&np).await.unwrap();
    assert!(out.node_grant);
    let log2 = log_all(&l3);
    let perm = &log2[before..]
        .iter()
        .find(|(m, p, _)| m == "POST" && p == "/api/v1/perms/asset-permissions/")
        .unwrap()
        .2;
    let rec = fixture("jumpserver-v4.10.16/105-perms-create-by-node.json");
    for k in keys(&rec["request"]["json"]) {
        assert!(perm.get(&k).is_some(), "{k}");
    }
    assert_eq!(perm["nodes"], json!(["n1"]));
    assert_eq!(perm["assets"], json!([]));
    assert_eq!(perm["accounts"], rec["request"]["json"]["accounts"]);
}

fn log_all<T: Clone>(l: &Arc<std::sync::Mutex<Vec<T>>>) -> Vec<T> {
    l.lock().unwrap().clone()
}

#[tokio::test]
async fn grant_reports_accounts_missing_on_existing_hosts() {
    let env = sim_with(|_| {}).await;
    env.sim
        .add_user("alice", "Alice", "alice@example.com")
        .unwrap();
    let node = env.sim.add_node_path("PaymentSystem");
    let acc = |u: &str| (u.to_owned(), u.to_owned(), u == "root");
    for (addr, accounts) in [
        ("10.50.0.1", vec![acc("readonly"), acc("root")]),
        ("10.50.0.2", vec![acc("root")]),
        ("10.50.0.3", vec![]),
        // Same username on another host that is not granted: must not count for 10.50.0.2.
        ("10.50.0.9", vec![acc("readonly")]),
    ] {
        env.sim
            .add_host(SeedHost {
                name: addr.into(),
                address: addr.into(),
                platform_id: 1,
                node_ids: vec![node.clone()],
                accounts,
            })
            .unwrap();
    }
    let c = client(&env, ak_cfg(&env.sim.url()));
    c.start().await.unwrap();
    let p = plan(&["10.50.0.1", "10.50.0.2", "10.50.0.3"]);
    let pv = c.preview(&p).await.unwrap();
    let want = vec![
        MissingAccount {
            address: "10.50.0.2".into(),
            username: "readonly".into(),
        },
        MissingAccount {
            address: "10.50.0.3".into(),
            username: "readonly".into(),
        },
    ];
    assert_eq!(pv.accounts_missing, want);
    env.sim.reset_counts();
    let out = c.grant(&p).await.unwrap();
    // User, hosts, permission, one read-back per host.
    assert_eq!(env.sim.total_calls(), 3 + 3);
    assert_eq!(out.accounts_missing, want);
    assert_eq!(
        out.readback.usable_hosts().len(),
        1,
        "only 10.50.0.1 has readonly"
    );
    assert_eq!(out.permission, PermissionResult::Created);
    assert!(env.sim.accounts().len() == 4, "nothing created on hosts");
    let en = out.notices(true);
    assert_eq!(en.len(), 1);
    assert!(
        en[0].contains("\"readonly\"") && en[0].contains("10.50.0.2, 10.50.0.3"),
        "{en:?}"
    );
    let zh = out.notices(false);
    assert!(zh[0].contains("10.50.0.2、10.50.0.3") && zh[0].contains("readonly"));
    assert_eq!(pv.notices(true), en);

    // Two usernames on one host: one call by asset id covers both.
    let mut two = plan(&["10.50.0.2"]);
    two.accounts = vec!["readonly".into(), "root".into()];
    two.permission_name = "dt-two".into();
    env.sim.reset_counts();
    let o = c.grant(&two).await.unwrap();
    assert_eq!(env.sim.total_calls(), 4);
    assert_eq!(
        o.accounts_missing,
        vec![MissingAccount {
            address: "10.50.0.2".into(),
            username: "readonly".into()
        }]
    );
    // A host whose list row says it has no accounts needs no lookup.
    let mut empty = plan(&["10.50.0.3"]);
    empty.permission_name = "dt-empty".into();
    env.sim.reset_counts();
    let o = c.grant(&empty).await.unwrap();
    assert_eq!(env.sim.total_calls(), 4);
    assert_eq!(o.accounts_missing.len(), 1);
    assert!(!o.readback.usable(), "granted, but no login on the host");
    // @ALL names no account, so there is nothing to check.
    let mut all = plan(&["10.50.0.1", "10.50.0.2"]);
    all.accounts = vec!["@ALL".into()];
    all.permission_name = "dt-all".into();
    env.sim.reset_counts();
    let o = c.grant(&all).await.unwrap();
    assert_eq!(env.sim.total_calls(), 3 + 2);
    assert!(o.accounts_missing.is_empty());
    // A disabled user is said in words too.
    c.set_user_active(&o.user_id, false).await.unwrap();
    let o = c.grant(&all).await.unwrap();
    assert!(o.notices(true)[0].contains("disabled"));
}

#[tokio::test]
async fn hosts_created_without_accounts_are_reported() {
    let env = sim_with(|_| {}).await;
    env.sim
        .add_user("alice", "Alice", "alice@example.com")
        .unwrap();
    let mut cfg = ak_cfg(&env.sim.url());
    cfg.create_host_accounts = false;
    let c = client(&env, cfg);
    c.start().await.unwrap();
    let p = plan(&["10.60.0.1"]);
    let pv = c.preview(&p).await.unwrap();
    assert_eq!(pv.accounts_missing.len(), 1);
    let out = c.grant(&p).await.unwrap();
    assert_eq!(
        out.accounts_missing,
        vec![MissingAccount {
            address: "10.60.0.1".into(),
            username: "readonly".into()
        }]
    );
    assert!(env.sim.accounts().is_empty());
}

#[tokio::test]
async fn node_grant_finds_or_creates_the_node_and_names_it() {
    let env = sim_with(|_| {}).await;
    env.sim
        .add_user("alice", "Alice", "alice@example.com")
        .unwrap();
    let c = client(&env, ak_cfg(&env.sim.url()));
    c.start().await.unwrap();
    let mut p = plan(&[]);
    p.node_name = "HRSystem".into();
    p.permission_name = "dt-node-1".into();
    let pv = c.preview(&p).await.unwrap();
    assert!(pv.node_grant && !pv.node_exists && pv.hosts_to_create.is_empty());
    env.sim.reset_counts();
    let out = c.grant(&p).await.unwrap();
    // User, node lookup, node create, permission, the count of the user's hosts in it.
    assert_eq!(env.sim.total_calls(), 5);
    assert!(out.node_grant && out.node_created);
    let node = out.node.clone().unwrap();
    assert_eq!(node.value, "HRSystem");
    let perm = env
        .sim
        .permissions()
        .into_iter()
        .find(|x| x.name == "dt-node-1")
        .unwrap();
    assert_eq!(perm.node_ids, vec![node.id.clone()]);
    assert!(perm.asset_ids.is_empty());
    assert_eq!(perm.accounts, vec!["@SPEC", "readonly"]);
    // Again: nothing created; the node comes from the cache.
    env.sim.reset_counts();
    let again = c.grant(&p).await.unwrap();
    assert_eq!(again.creates(), 0);
    assert_eq!(again.permission, PermissionResult::Repaired);
    assert_eq!(
        env.sim.total_calls(),
        5,
        "user, permission POST, GET by name, PATCH, count"
    );
    // An existing node (made by an admin, found by value) under another order: 2 calls warm,
    // 3 when the node is not cached yet.
    let pay = env.sim.add_node_path("PaymentSystem");
    let mut q = plan(&[]);
    q.permission_name = "dt-node-2".into();
    env.sim.reset_counts();
    let o = c.grant(&q).await.unwrap();
    assert_eq!(env.sim.total_calls(), 4);
    assert!(!o.node_created);
    assert_eq!(o.node.unwrap().id, pay);
    assert_eq!(env.sim.nodes().len(), 3, "root, HRSystem, PaymentSystem");
    // A node grant reaches hosts put into the node later, for "who can reach" and the user.
    let later = env
        .sim
        .add_host(SeedHost {
            name: "10.70.0.1".into(),
            address: "10.70.0.1".into(),
            platform_id: 1,
            node_ids: vec![],
            accounts: vec![],
        })
        .unwrap();
    assert!(c.who_can_reach("10.70.0.1").await.unwrap().is_empty());
    c.add_hosts_to_node(&pay, std::slice::from_ref(&later))
        .await
        .unwrap();
    let reach = c.who_can_reach("10.70.0.1").await.unwrap();
    assert_eq!(reach.len(), 1);
    assert_eq!(
        (reach[0].user_id.clone(), reach[0].permission_name.as_str()),
        (o.user_id.clone(), "dt-node-2")
    );
    let granted = c.user_granted_assets(&o.user_id).await.unwrap();
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0].id, later);
    // The node the client cached was deleted: the refused POST leads to a fresh find-or-create.
    assert!(env.sim.remove_node(&node.id));
    let mut r = plan(&[]);
    r.node_name = "HRSystem".into();
    r.permission_name = "dt-node-3".into();
    let o = c.grant(&r).await.unwrap();
    assert!(o.node_created);
    assert_ne!(o.node.unwrap().id, node.id);
    // Neither hosts nor a node: refused before any call.
    let mut bad = plan(&[]);
    bad.node_name = " ".into();
    let e = bad.validate().unwrap_err();
    assert!(e.user_message(true).contains("system"), "{e}");
}

/// Every request carries the configured org in `X-JMS-ORG`, in every auth mode, login calls
/// included (a recorder stands in for the server, since the simulator folds unknown orgs into
/// Default like the community edition does).
#[tokio::test]
async fn configured_org_is_sent_on_every_call_in_every_auth_mode() {
    use axum::http::{HeaderMap, Uri};
    type Seen = Arc<std::sync::Mutex<Vec<(String, Option<String>, String)>>>;
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let app = axum::Router::new().fallback(move |u: Uri, h: HeaderMap| {
        let s = s2.clone();
        async move {
            let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
            s.lock().unwrap().push((
                u.path().to_owned(),
                get("x-jms-org"),
                get("authorization").unwrap_or_default(),
            ));
            if u.path() == "/api/v1/authentication/auth/" {
                return axum::Json(serde_json::json!({"token": "tok-123", "keyword": "Bearer"}));
            }
            axum::Json(
                serde_json::json!({"count": 0, "next": null, "previous": null, "results": []}),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url = format!("http://{addr}");
    let org = "11111111-2222-3333-4444-555555555555";
    let mut token = base_cfg(&url);
    token.private_token = Secret::new("a".repeat(40));
    let mut pw = base_cfg(&url);
    pw.username = "bot".into();
    pw.password = Secret::new("pw");
    for (mode, mut cfg) in [("ak", ak_cfg(&url)), ("token", token), ("pw", pw)] {
        cfg.org = org.into();
        seen.lock().unwrap().clear();
        let clock: SharedClock = Arc::new(ManualClock::new(t0()));
        let c = JmsClient::new(cfg, clock).unwrap();
        assert_eq!(c.detect_version().await.unwrap(), ServerLine::V4);
        assert!(c.find_user_by_username("x").await.unwrap().is_none());
        assert!(c.list_hosts().await.unwrap().is_empty());
        assert!(c.who_can_reach("10.0.0.1").await.unwrap().is_empty());
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 4, "{mode}: {seen:?}");
        for (path, o, auth) in &seen {
            assert_eq!(o.as_deref(), Some(org), "{mode} {path}");
            let anonymous = path.contains("/settings/") || path.contains("/authentication/");
            let want = match mode {
                "ak" => "Signature ",
                "token" => "Token ",
                _ => "Bearer tok-123",
            };
            assert_eq!(anonymous, !auth.starts_with(want), "{mode} {path}: {auth}");
        }
    }
}

/// A timed-out GET is retried like a 5xx (a server that stalls only the first request).
#[tokio::test]
async fn timed_out_get_is_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let h = h2.clone();
        async move {
            if h.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
            axum::Json(
                serde_json::json!({"count": 0, "next": null, "previous": null, "results": []}),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut cfg = ak_cfg(&format!("http://{addr}"));
    cfg.request_timeout_secs = 1;
    let c = JmsClient::new(cfg, Arc::new(ManualClock::new(t0()))).unwrap();
    assert!(c.find_user_by_username("x").await.unwrap().is_none());
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(c.calls_made(), 2);
}

/// The request targets of the read operations are the recorded ones, byte for byte (same
/// filters, order and encoding), given the recorded ids; each is signed as sent.
#[tokio::test]
async fn read_operations_send_the_recorded_request_targets() {
    use axum::http::{HeaderMap, Uri};
    type Log = Arc<std::sync::Mutex<Vec<(String, String)>>>;
    let log: Log = Arc::default();
    let l2 = log.clone();
    let app = axum::Router::new().fallback(move |u: Uri, h: HeaderMap| {
        let l = l2.clone();
        async move {
            let target = u
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("")
                .to_owned();
            let auth = h
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            l.lock().unwrap().push((target, auth));
            axum::Json(
                serde_json::json!({"count": 0, "next": null, "previous": null, "results": []}),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let c = JmsClient::new(
        ak_cfg(&format!("http://{addr}")),
        Arc::new(ManualClock::new(t0())),
    )
    .unwrap();
    c.detect_version().await.unwrap();
    log.lock().unwrap().clear();
    let user = JmsUserId::new("30e2729a-aa26-4fba-84ba-d2386997929f");
    let asset = "f75c1bbf-64de-4163-9617-b81833faf948".to_owned();
    let addrs: Vec<String> = ["10.10.1.11", "10.10.1.12", "10.10.1.99"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.who_can_reach("10.10.1.11").await.unwrap();
    c.end_sessions(&user, &asset).await.unwrap();
    c.user_granted_assets(&user).await.unwrap();
    c.find_permission("dt-approval-1001").await.unwrap();
    c.find_hosts(&addrs).await.unwrap();
    c.host_accounts(std::slice::from_ref(&asset), &["readonly".into()], None)
        .await
        .unwrap();
    let recorded = |f: &str| {
        let v = fixture(&format!("jumpserver-v4.10.16/{f}"));
        let r = v
            .get("steps")
            .and_then(|s| s.get(0))
            .unwrap_or(&v)
            .get("request")
            .unwrap()
            .clone();
        format!("{}?{}", st(&r, "path"), st(&r, "query"))
    };
    let want = vec![
        recorded("133-query-who-can-reach-ip.json"),
        recorded("141-sessions-list-user-asset.json"),
        recorded("130-query-user-granted-assets.json"),
        recorded("110-perms-filter-name.json"),
        recorded("093-hosts-filter-ips-batch.json"),
        // Same filter; a larger page, since the accounts check counts against the call budget.
        recorded("098-accounts-of-host.json").replace("limit=100", "limit=1000"),
    ];
    let log = log.lock().unwrap().clone();
    let got: Vec<String> = log.iter().map(|(t, _)| t.clone()).collect();
    assert_eq!(got, want);
    let date = accessbot::jumpserver::client::http_date(t0());
    let hdrs = [
        ("date", date.as_str()),
        ("accept", "application/json"),
        ("x-jms-org", "00000000-0000-0000-0000-000000000002"),
    ];
    for (target, auth) in &log {
        let parsed = httpsig::parse_authorization(auth).unwrap();
        assert_eq!(
            httpsig::verify_request(
                VECTOR_KEY_SECRET,
                "GET",
                &httpsig::django_full_path(target),
                &hdrs,
                &parsed
            ),
            Ok(()),
            "{target}"
        );
    }
}

/// A v3 server answers the anonymous hosts probe with 401: that is the answer, not a reason to
/// log in (password mode) or retry.
#[tokio::test]
async fn v3_probe_401_does_not_trigger_a_login() {
    use axum::http::{StatusCode, Uri};
    use axum::response::IntoResponse;
    let logins = Arc::new(AtomicUsize::new(0));
    let l2 = logins.clone();
    let app = axum::Router::new().fallback(move |u: Uri| {
        let l = l2.clone();
        async move {
            match u.path() {
                "/api/v1/settings/i18n/koko/" => (StatusCode::NOT_FOUND, "<html>").into_response(),
                "/api/v1/authentication/auth/" => {
                    l.fetch_add(1, Ordering::SeqCst);
                    axum::Json(serde_json::json!({"token": "t", "keyword": "Bearer"}))
                        .into_response()
                }
                _ => (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({"detail": "Authentication credentials were not provided.", "code": "not_authenticated"})),
                )
                    .into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut cfg = base_cfg(&format!("http://{addr}"));
    cfg.username = "bot".into();
    cfg.password = Secret::new("pw");
    let c = JmsClient::new(cfg, Arc::new(ManualClock::new(t0()))).unwrap();
    assert_eq!(c.detect_version().await.unwrap(), ServerLine::V3);
    assert_eq!(logins.load(Ordering::SeqCst), 0);
    assert_eq!(c.calls_made(), 2);
}
