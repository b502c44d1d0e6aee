//! Simulator rules that span more calls than one transcript shows: relation rows behave like a
//! through table (160-163, §4.6), pages without `order` skip and repeat rows (surprise 17), user
//! groups reach what they are granted (§4.6, 161, 172), and the filters of
//! `perms/users/{id}/assets/` and `assets/assets/` (§4.7, 166). All over real HTTP.
use crate::jms_replay::{options, Client};
use accessbot::clock::ManualClock;
use accessbot::sandbox::jumpserver::{SeedHost, SimJumpServer};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const PERMS: &str = "/api/v1/perms/asset-permissions/";
const USERS_REL: &str = "/api/v1/perms/asset-permissions-users-relations/";

async fn sim() -> (SimJumpServer, Client) {
    let clock = ManualClock::new("2026-12-02T06:42:05Z".parse().expect("time"));
    let sim = SimJumpServer::start(options(&clock))
        .await
        .expect("sim starts");
    let c = Client::new(&sim);
    (sim, c)
}

fn host(sim: &SimJumpServer, name: &str, address: &str, nodes: Vec<String>) -> String {
    sim.add_host(SeedHost {
        name: name.into(),
        address: address.into(),
        platform_id: 1,
        node_ids: nodes,
        accounts: vec![
            ("ops".into(), "ops".into(), false),
            ("root".into(), "root".into(), true),
        ],
    })
    .expect("host")
}

fn user(sim: &SimJumpServer, name: &str) -> String {
    sim.add_user(name, name, &format!("{name}@example.com"))
        .expect("user")
}

/// (id, member) of a relation page, in page order.
fn rows(v: &Value, field: &str) -> Vec<(u64, String)> {
    v["results"]
        .as_array()
        .expect("paginated")
        .iter()
        .map(|r| {
            (
                r["id"].as_u64().expect("integer id"),
                r[field].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn create_perm(c: &Client, body: Value) -> String {
    let (s, v) = c.call("POST", PERMS, Some(body)).await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn relation_rows_follow_memberships_like_a_through_table() {
    let (sim, c) = sim().await;
    let (u1, u2, u3) = (
        user(&sim, "rel-u1"),
        user(&sim, "rel-u2"),
        user(&sim, "rel-u3"),
    );
    let h = host(&sim, "rel-h1", "10.40.0.1", vec![]);
    let n = sim.add_node_path("rel-sys");
    let (s, g) = c
        .call(
            "POST",
            "/api/v1/users/groups/",
            Some(json!({"name": "rel-grp", "users": [], "comment": "x"})),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let g = g["id"].as_str().expect("group id").to_owned();
    let p = create_perm(
        &c,
        json!({"name": "rel-p", "users": [u1, u2], "user_groups": [g], "assets": [h],
            "nodes": [n], "accounts": ["@ALL"], "actions": ["connect"]}),
    )
    .await;
    let by_id = format!("{USERS_REL}?assetpermission={p}&order=id&limit=100");
    let (_, v) = c.call("GET", &by_id, None).await;
    assert_eq!(rows(&v, "user"), vec![(1, u1.clone()), (2, u2.clone())]);
    for (table, field, member) in [
        ("user-groups", "usergroup", &g),
        ("assets", "asset", &h),
        ("nodes", "node", &n),
    ] {
        let url = format!(
            "/api/v1/perms/asset-permissions-{table}-relations/?assetpermission={p}&limit=100"
        );
        let (_, v) = c.call("GET", &url, None).await;
        assert_eq!(rows(&v, field), vec![(1, member.clone())], "{table}");
    }
    // PATCH replaces the set: a kept member keeps its row, a new one gets the next id.
    let (s, _) = c
        .call(
            "PATCH",
            &format!("{PERMS}{p}/"),
            Some(json!({"users": [u2, u3]})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = c.call("GET", &by_id, None).await;
    assert_eq!(rows(&v, "user"), vec![(2, u2.clone()), (3, u3.clone())]);
    // POST a row (§4.6): next id; the same pair again is refused as a unique set.
    let add = json!([{"user": u1, "assetpermission": p}]);
    let (s, v) = c.call("POST", USERS_REL, Some(add.clone())).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v[0]["id"], 4);
    assert_eq!(v[0]["user_display"], "rel-u1(rel-u1)");
    let (s, v) = c.call("POST", USERS_REL, Some(add)).await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!([{"non_field_errors": ["The fields assetpermission, user must make a unique set."]}])
    );
    let (s, v) = c
        .call(
            "POST",
            USERS_REL,
            Some(json!([{"user": u1, "assetpermission": "00000000-0000-0000-0000-00000000dead"}])),
        )
        .await;
    assert_eq!(s, 400);
    assert!(v[0]["assetpermission"][0]
        .as_str()
        .is_some_and(|m| m.contains("does not exist")));
    // DELETE by filter; the permission's members follow.
    let del = format!("{USERS_REL}?assetpermission={p}&user={u2}");
    assert_eq!(c.call("DELETE", &del, None).await.0, 204);
    let (_, d) = c.call("GET", &format!("{PERMS}{p}/"), None).await;
    let members: Vec<&str> = d["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert_eq!(members, vec![u1.as_str(), u3.as_str()]);
    assert_eq!(c.call("DELETE", USERS_REL, None).await.0, 400, "unfiltered");
    // Deleting the permission drops its rows from every table.
    assert_eq!(c.call("DELETE", &format!("{PERMS}{p}/"), None).await.0, 204);
    for table in ["users", "user-groups", "assets", "nodes"] {
        let url = format!("/api/v1/perms/asset-permissions-{table}-relations/?limit=100");
        let (_, v) = c.call("GET", &url, None).await;
        assert_eq!(v["count"], 0, "{table}");
    }
}

#[tokio::test]
async fn pages_without_order_skip_and_repeat_rows() {
    let (sim, c) = sim().await;
    let users: Vec<String> = (0..12).map(|i| user(&sim, &format!("pg-{i:02}"))).collect();
    let p = create_perm(&c, json!({"name": "pg", "users": users})).await;
    // Created without `accounts`: the default is `[]`, no login at all (§4.6).
    let (_, d) = c.call("GET", &format!("{PERMS}{p}/"), None).await;
    assert_eq!(d["accounts"], json!([]));
    let walk = |order: &'static str| {
        let c = &c;
        let p = p.clone();
        async move {
            let mut seen = Vec::new();
            for offset in (0..12).step_by(3) {
                let url = format!("{USERS_REL}?assetpermission={p}{order}&limit=3&offset={offset}");
                let (_, v) = c.call("GET", &url, None).await;
                seen.extend(rows(&v, "user").into_iter().map(|r| r.0));
            }
            seen
        }
    };
    // Ordered: every row once, in id order.
    for _ in 0..3 {
        assert_eq!(walk("&order=id").await, (1..=12).collect::<Vec<u64>>());
    }
    // Unordered: each page comes from a fresh order, so some walk misses rows (as on 163).
    let mut incomplete = 0;
    for _ in 0..10 {
        let ids = walk("").await;
        assert_eq!(ids.len(), 12, "every page is full");
        if ids.iter().collect::<BTreeSet<_>>().len() < 12 {
            incomplete += 1;
        }
    }
    assert!(incomplete > 0, "unordered walks never skipped a row");
    // Two whole-list reads disagree on the order but not on the rows.
    let url = format!("{USERS_REL}?assetpermission={p}&limit=100");
    let a = rows(&c.call("GET", &url, None).await.1, "user");
    let b = rows(&c.call("GET", &url, None).await.1, "user");
    assert_ne!(a, b);
    let set = |r: &[(u64, String)]| r.iter().cloned().collect::<BTreeSet<_>>();
    assert_eq!(set(&a), set(&b));
}

#[tokio::test]
async fn group_members_reach_what_the_group_is_granted() {
    let (sim, c) = sim().await;
    let (a, b) = (user(&sim, "grp-a"), user(&sim, "grp-b"));
    let h = host(&sim, "grp-h", "10.41.0.1", vec![]);
    let (s, g) = c
        .call(
            "POST",
            "/api/v1/users/groups/",
            Some(json!({"name": "ops-team", "users": [a], "comment": ""})),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(g["users"], json!([{"id": a, "name": "grp-a"}]));
    let g = g["id"].as_str().expect("id").to_owned();
    let (s, v) = c
        .call(
            "POST",
            "/api/v1/users/groups/",
            Some(json!({"name": "ops-team"})),
        )
        .await;
    assert_eq!(
        (s, v),
        (400, json!({"name": ["This field must be unique."]}))
    );
    let p = create_perm(
        &c,
        json!({"name": "grp-p", "user_groups": [g], "assets": [h], "accounts": ["@SPEC", "ops"],
            "actions": ["connect"]}),
    )
    .await;
    let count = |url: String| {
        let c = &c;
        async move { c.call("GET", &url, None).await.1["count"].clone() }
    };
    let assets_of = |u: &str| format!("/api/v1/perms/users/{u}/assets/?limit=10");
    assert_eq!(count(assets_of(&a)).await, 1);
    assert_eq!(count(assets_of(&b)).await, 0);
    assert_eq!(count(format!("{PERMS}{p}/users/all/?limit=10")).await, 1);
    assert_eq!(count(format!("{PERMS}?user_id={a}&limit=10")).await, 1);
    assert_eq!(
        count(format!("/api/v1/assets/assets/{h}/perm-users/?limit=10")).await,
        1
    );
    let (s, d) = c
        .call("GET", &format!("/api/v1/perms/users/{a}/assets/{h}/"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(d["permed_accounts"][0]["username"], "ops");
    let (_, u) = c
        .call("GET", &format!("/api/v1/users/users/{a}/"), None)
        .await;
    assert_eq!(u["groups"], json!([{"id": g, "name": "ops-team"}]));
    // Leaving the group ends the access; the permission still names the group.
    let (s, _) = c
        .call(
            "PATCH",
            &format!("/api/v1/users/groups/{g}/"),
            Some(json!({"users": []})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(count(assets_of(&a)).await, 0);
    let (_, d) = c.call("GET", &format!("{PERMS}{p}/"), None).await;
    assert_eq!(
        (d["user_groups_amount"].clone(), d["users_amount"].clone()),
        (json!(1), json!(0))
    );
    // Membership set from the user side works the same.
    let (s, _) = c
        .call(
            "PATCH",
            &format!("/api/v1/users/users/{b}/"),
            Some(json!({"groups": [g]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(count(assets_of(&b)).await, 1);
}

#[tokio::test]
async fn granted_asset_and_asset_list_filters() {
    let (sim, c) = sim().await;
    let u = user(&sim, "flt-u");
    let top = sim.add_node_path("flt-a");
    let sub = sim.add_node_path("flt-a/inner");
    let h1 = host(&sim, "web-01", "10.42.0.1", vec![top.clone()]);
    let h2 = host(&sim, "db-01", "10.42.0.2", vec![sub.clone()]);
    let h3 = host(&sim, "web-02", "10.42.1.3", vec![]);
    create_perm(
        &c,
        json!({"name": "flt-p", "users": [u], "assets": [h1, h2, h3],
            "accounts": ["@ALL", "!root", "@INPUT"], "actions": ["connect"]}),
    )
    .await;
    let base = format!("/api/v1/perms/users/{u}/assets/?limit=10");
    for (q, want) in [
        (format!("&node_id={top}"), 2),
        (format!("&node_id={sub}"), 1),
        (
            "&node_id=00000000-0000-0000-0000-00000000dead".to_owned(),
            0,
        ),
        ("&name=web-01".to_owned(), 1),
        ("&name=WEB-01".to_owned(), 0),
        ("&search=WEB".to_owned(), 2),
        ("&search=10.42.0".to_owned(), 2),
        ("&address=10.42.1.3".to_owned(), 1),
    ] {
        let (_, v) = c.call("GET", &format!("{base}{q}"), None).await;
        assert_eq!(v["count"], want, "{q}");
    }
    // `!root` takes root out of @ALL; @INPUT is added as a virtual account (§4.6, 167).
    let (_, d) = c
        .call(
            "GET",
            &format!("/api/v1/perms/users/{u}/assets/{h1}/"),
            None,
        )
        .await;
    let names: Vec<&str> = d["permed_accounts"]
        .as_array()
        .expect("permed")
        .iter()
        .filter_map(|a| a["username"].as_str())
        .collect();
    assert_eq!(names, vec!["ops", "@INPUT"]);
    let assets = "/api/v1/assets/assets/?limit=10";
    for (q, want) in [
        ("&address=10.42.0.2", vec!["db-01"]),
        ("&name=web-02", vec!["web-02"]),
        ("&search=web", vec!["web-01", "web-02"]),
    ] {
        let (_, v) = c.call("GET", &format!("{assets}{q}"), None).await;
        let got: Vec<&str> = v["results"]
            .as_array()
            .expect("paginated")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(got, want, "{q}");
    }
}
