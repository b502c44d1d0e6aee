//! What a fault run will do, decided up front from the seed: who asks for which host, in which
//! words, for how long, and whether the approver approves (by card tap or by text) or rejects.
//! Pure: the same seed gives the same plan, whatever the timing of the run turns out to be.
use crate::domain::command::Role;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The most orders one run may plan: the addresses `10.200.x.y` give 250 per third octet.
pub const MAX_ORDERS: usize = 250 * 256;

/// Orders per requester. The bot's default limit is 5 new orders per person per 10 minutes
/// (`workflow.max_new_orders_per_user`); four keeps every person under it, so a refusal can
/// only mean something went wrong.
pub const ORDERS_PER_REQUESTER: usize = 4;

/// How the approver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Taps 同意 on the approval card (OA mode: agrees in the OA instance).
    ApproveCard,
    /// Writes `/approve <order>` to the bot (OA mode: agrees in the OA instance).
    ApproveText,
    /// Rejects with a reason (card button, or refuses the OA instance).
    Reject,
}

impl Decision {
    pub fn approves(self) -> bool {
        self != Decision::Reject
    }
}

/// One request of the run.
#[derive(Clone, Debug)]
pub struct PlannedOrder {
    /// 0-based position in the plan.
    pub index: usize,
    /// DingTalk userid of the requester; their e-mail is `<userid>@example.com`, so it is also
    /// their JumpServer username (`identity.rule = email_local_part`).
    pub requester: String,
    /// A host no other order asks for (identical open requests are coalesced by design).
    pub address: String,
    pub role: Role,
    /// Words as typed (`4小时`, `1d` …) and the same in seconds.
    pub duration_text: &'static str,
    pub duration_secs: i64,
    /// Chinese (`申请主机 …`) or English (`/apply host …`) wording.
    pub english: bool,
    /// Unique per order: how the driver recognises the order on the approval card or OA form.
    pub reason: String,
    pub decision: Decision,
    /// Seed of this order's own random pauses (independent of how tasks interleave).
    pub seed: u64,
}

impl PlannedOrder {
    /// The message the requester sends.
    pub fn text(&self) -> String {
        if self.english {
            format!(
                "/apply host {} {} {} reason: {}",
                self.address,
                self.role.key(),
                self.duration_text,
                self.reason
            )
        } else {
            let role = match self.role {
                Role::Ops => "运维",
                Role::Readonly => "只读",
            };
            format!(
                "申请主机 {} {role} {} 原因：{}",
                self.address, self.duration_text, self.reason
            )
        }
    }
}

/// The people and the orders of one run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// (userid, display name) of every requester.
    pub requesters: Vec<(String, String)>,
    pub orders: Vec<PlannedOrder>,
}

/// Typed durations: (zh, en, seconds). All within both roles' default maximum (7 days).
const DURATIONS: &[(&str, &str, i64)] = &[
    ("4小时", "4h", 4 * 3600),
    ("1天", "1d", 86_400),
    ("3天", "3d", 3 * 86_400),
];

/// Mixes the run seed with a stream number, so each consumer of randomness has its own
/// sequence (splitmix64's finaliser; any good mixer would do).
pub fn sub_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The plan of `orders` requests; `reject_percent` of them are rejected.
pub fn plan(orders: usize, seed: u64, reject_percent: u32) -> Plan {
    let orders = orders.min(MAX_ORDERS);
    let mut rng = StdRng::seed_from_u64(sub_seed(seed, 0));
    let people = orders.div_ceil(ORDERS_PER_REQUESTER).max(1);
    let requesters: Vec<(String, String)> = (1..=people)
        .map(|n| (format!("fault{n:03}"), format!("演练用户{n:03}")))
        .collect();
    let orders = (0..orders)
        .map(|i| {
            let (zh, en, secs) = DURATIONS[rng.random_range(0..DURATIONS.len())];
            let english = rng.random_bool(0.3);
            let decision = if rng.random_range(0..100) < reject_percent {
                Decision::Reject
            } else if rng.random_bool(0.3) {
                Decision::ApproveText
            } else {
                Decision::ApproveCard
            };
            PlannedOrder {
                index: i,
                // Round robin: one person's orders are spread over the run, not back to back.
                requester: requesters[i % people].0.clone(),
                address: format!("10.200.{}.{}", i / 250, i % 250 + 1),
                role: if rng.random_bool(0.7) {
                    Role::Ops
                } else {
                    Role::Readonly
                },
                duration_text: if english { en } else { zh },
                duration_secs: secs,
                english,
                reason: format!("fault drill #{i}"),
                decision,
                seed: sub_seed(seed, 1 + i as u64),
            }
        })
        .collect();
    Plan { requesters, orders }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::command::{parse, Command};
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn same_seed_same_plan_and_every_order_is_distinct() {
        let a = plan(120, 7, 20);
        let b = plan(120, 7, 20);
        let key = |p: &Plan| -> Vec<(String, String, Decision)> {
            p.orders
                .iter()
                .map(|o| (o.text(), o.requester.clone(), o.decision))
                .collect()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&plan(120, 8, 20)));
        let addresses: BTreeSet<&str> = a.orders.iter().map(|o| o.address.as_str()).collect();
        let reasons: BTreeSet<&str> = a.orders.iter().map(|o| o.reason.as_str()).collect();
        assert_eq!(addresses.len(), 120);
        assert_eq!(reasons.len(), 120);
        let mut per_person: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &a.orders {
            *per_person.entry(o.requester.as_str()).or_default() += 1;
        }
        assert!(per_person.values().all(|n| *n <= ORDERS_PER_REQUESTER));
        assert!(a.orders.iter().any(|o| o.decision == Decision::Reject));
        assert!(a.orders.iter().any(|o| o.decision == Decision::ApproveText));
        assert!(plan(10, 1, 0)
            .orders
            .iter()
            .all(|o| o.decision != Decision::Reject));
    }

    #[test]
    fn every_planned_text_is_a_complete_request() {
        // A text the parser did not take as a whole request would turn into a dialog question
        // and the order would never come: the check would then blame the bot for the plan.
        for o in plan(60, 3, 20).orders {
            let text = o.text();
            let parsed = parse(&text);
            match parsed {
                Ok(Command::ApplyHost(d)) => {
                    assert!(
                        d.reason.as_deref() == Some(o.reason.as_str()),
                        "{text}: {d:?}"
                    );
                    assert_eq!(d.role, Some(o.role), "{text}");
                    let secs = d.duration.map(|x| x.minutes() as i64 * 60);
                    assert_eq!(secs, Some(o.duration_secs), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
