//! Issue 8.1 over real HTTP: every spelling of one host, sent as a signed robot message, gets the
//! same policy decision as the plain address (its system's approvers and duration limit), and
//! the order, the approval and the JumpServer grant all name the canonical address.
use crate::support::{example_user, BotEnv};
use accessbot::domain::ids::DingUserId;
use accessbot::domain::order::{Request, State};
use accessbot::domain::policy::SystemConfig;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

const PAY_OWNER: &str = "payowner01";
const BOSS: &str = "boss01";

/// Spellings of 10.9.96.7 a chat message can carry (each is one token after the bot's
/// whitespace split): IPv4-mapped / compatible / translated / NAT64 IPv6, leading zeros,
/// brackets, trailing dots, full-width forms and ideographic full stops from Chinese input
/// methods, stray ideographic spaces and zero-width characters.
const SPELLINGS: &[&str] = &[
    "10.9.96.7",
    "::ffff:10.9.96.7",
    "::FFFF:a09:6007",
    "[::ffff:10.9.96.7]",
    "0:0:0:0:0:ffff:0a09:6007",
    "::10.9.96.7",
    "::ffff:0:10.9.96.7",
    "64:ff9b::10.9.96.7",
    "010.9.96.7",
    "010.009.096.007",
    "10.9.96.7.",
    "10.9.96.7。",
    "１０．９．９６．７",
    "１０。９。９６。７",
    "：：ｆｆｆｆ：１０．９．９６．７",
    "\u{3000}10.9.96.7\u{3000}",
    "10.9.96.7\u{200B}",
];

async fn env() -> BotEnv {
    let users: Vec<_> = (0..SPELLINGS.len())
        .map(|i| format!("req{i:02}"))
        .chain([PAY_OWNER.to_string(), BOSS.to_string()])
        .map(|id| example_user(&id, &id))
        .collect();
    BotEnv::new(
        users,
        |_, _| {},
        |cfg| {
            cfg.approval.default_approvers = vec![BOSS.into()];
            cfg.systems = vec![SystemConfig {
                name: "支付系统".into(),
                addresses: vec!["10.9.0.0/16".into()],
                approvers: vec![PAY_OWNER.into()],
                max_duration: BTreeMap::from([("ops".to_string(), "1d".to_string())]),
                ..SystemConfig::default()
            }];
        },
    )
    .await
}

/// `user`'s signed robot message; returns the bot's answer.
async fn ask(env: &BotEnv, user: &str, text: &str) -> String {
    let n = env.seq.fetch_add(1, Ordering::Relaxed);
    let msg_id = format!("spelling{n}");
    env.push_robot_text(user, &msg_id, text).await;
    env.reply(&msg_id).await
}

#[tokio::test]
async fn every_spelling_of_a_system_address_gets_the_systems_limit_approvers_and_canonical_grant() {
    let env = env().await;
    let mut attack = None;
    for (i, s) in SPELLINGS.iter().enumerate() {
        // One requester per spelling, so each decision stands alone.
        let user = format!("req{i:02}");
        let r = ask(&env, &user, &format!("申请主机 {s} 运维 3天 原因：排查")).await;
        assert!(
            r.contains("超过了") && r.contains("支付系统") && r.contains("上限"),
            "{s:?}: 3 days must be refused with the system's limit: {r}"
        );
        assert!(
            env.orders_of(&user).is_empty(),
            "{s:?}: refused, yet an order"
        );

        let r = ask(&env, &user, &format!("/申请主机 {s} 运维 1天 原因：排查")).await;
        let orders = env.orders_of(&user);
        assert_eq!(orders.len(), 1, "{s:?}: 1 day must be accepted: {r}");
        let o = &orders[0];
        assert!(r.contains(o.id.as_str()), "{s:?}: {r}");
        assert_eq!(
            o.approvers,
            vec![DingUserId::new(PAY_OWNER)],
            "{s:?}: must go to the system's approvers"
        );
        match &o.request {
            Request::Host { targets, .. } => {
                let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
                assert_eq!(targets, vec!["10.9.96.7".to_string()], "{s:?}")
            }
            other => panic!("{s:?}: {other:?}"),
        }
        if *s == "::ffff:10.9.96.7" {
            attack = Some(o.id.clone());
        }
    }

    // The spelling from the report, approved by the system's approver, grants 10.9.96.7.
    let id = attack.unwrap_or_else(|| panic!("the mapped spelling is in the table"));
    env.drain().await;
    assert_eq!(env.order(&id).state, State::PendingApproval);
    let r = ask(&env, PAY_OWNER, &format!("同意 {id}")).await;
    assert!(r.contains("已同意"), "{r}");
    env.drain().await;
    assert_eq!(env.order(&id).state, State::Active);
    let hosts = env.jms.hosts();
    assert!(
        hosts.iter().any(|h| h.address == "10.9.96.7"),
        "no host 10.9.96.7 in {:?}",
        hosts.iter().map(|h| &h.address).collect::<Vec<_>>()
    );
    assert!(
        !hosts
            .iter()
            .any(|h| h.address.contains(':') || h.name.contains(':')),
        "an IPv6 spelling reached JumpServer"
    );
    assert_eq!(env.permissions_named(&env.order(&id).permission_name()), 1);
}
