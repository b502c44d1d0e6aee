//! `accessbot fault` (hidden): kills the bot with SIGKILL at random moments while people ask for
//! access and approvers decide, restarts it on the same sled directory each time, and checks at
//! the end that every approved order has exactly one JumpServer permission and no order was
//! lost (see `check` for the whole list).
//!
//! The bot runs as a real child process (`accessbot serve --config …`, see `bot`), so a kill is
//! a real SIGKILL: no shutdown code, sled as the kill left it. The simulated DingTalk and
//! JumpServer run here, in the driver, so they outlive every kill and hold the truth the check
//! reads. The driver acts like DingTalk: signed robot messages, signed card taps, encrypted OA
//! events; a delivery the bot did not acknowledge is sent again (or, for a message, typed
//! again by the person), as the platform and its users do.
//!
//! Every random choice (the plan, each person's pauses, the kill schedule) comes from one seed,
//! printed with the report, so a run's schedule can be replayed; its timing cannot be (the bot
//! runs in real time), which is the point: each run lands its kills somewhere new.
//!
//! Longer than 600 lines on purpose: one scripted run (start, drive, kill, restart, stop, check)
//! read top to bottom (test tooling, feature `sandbox`).
pub mod bot;
pub mod check;
pub mod plan;

use crate::clock::SystemClock;
use crate::config::{self, Sources};
use crate::demo::{self, DIRECTORY, LISI};
use crate::dingtalk::client::DingUser;
use crate::domain::ids::DingUserId;
use crate::domain::policy::Policy;
use crate::sandbox::dingtalk::actor::approval_event;
use crate::sandbox::dingtalk::{BotReply, DriveError, SimDingTalk, SimDingTalkOptions};
use crate::sandbox::jumpserver::{SimJmsOptions, SimJumpServer, VECTOR_KEY_ID, VECTOR_KEY_SECRET};
use bot::{wait_ready, BotCommand, BotProcess};
use jiff::Timestamp;
use plan::{sub_seed, Decision, Plan, PlannedOrder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;

/// Pause before sending again what the bot did not acknowledge. DingTalk does not document its
/// redelivery interval; a tenth of a second keeps runs short without hammering a bot that is
/// starting up.
pub const REDELIVERY_PAUSE: Duration = Duration::from_millis(100);

/// How long the first start may take before the run is called off (a cold sled directory and
/// the first JumpServer call take milliseconds on loopback; this only bounds a broken build).
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// How the approver decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approval {
    /// Interactive approval cards (and `/approve` typed to the bot).
    Card,
    /// DingTalk OA approval instances.
    Oa,
}

impl fmt::Display for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Approval::Card => "card",
            Approval::Oa => "oa",
        })
    }
}

#[derive(Clone, Debug)]
pub struct FaultOptions {
    /// Requests to make; each is approved or rejected.
    pub orders: usize,
    /// SIGKILLs to deliver (each followed by a restart).
    pub kills: usize,
    pub seed: u64,
    pub approval: Approval,
    /// The `accessbot` binary to run as the bot.
    pub bot_bin: PathBuf,
    /// Empty working directory: bot config, sled data, bot log.
    pub dir: PathBuf,
    /// A kill comes uniformly between these after each (re)start, counted from the spawn.
    pub min_uptime: Duration,
    pub max_uptime: Duration,
    /// The bot stays down up to this long after a kill (deliveries meanwhile are refused).
    pub max_downtime: Duration,
    /// Longest pause of a person between two steps (reading, deciding).
    pub max_think: Duration,
    /// How long every delivery may take to be acknowledged, and the end state to appear after
    /// the last restart: a bound on liveness, not a timing assumption.
    pub settle: Duration,
    /// Share of requests the approver rejects.
    pub reject_percent: u32,
    /// Print one line per kill.
    pub verbose: bool,
}

impl FaultOptions {
    /// Defaults for everything but what only the caller knows.
    pub fn new(bot_bin: PathBuf, dir: PathBuf, seed: u64) -> Self {
        Self {
            orders: 50,
            kills: 25,
            seed,
            approval: Approval::Card,
            bot_bin,
            dir,
            min_uptime: Duration::from_millis(20),
            max_uptime: Duration::from_millis(1200),
            max_downtime: Duration::from_millis(300),
            max_think: Duration::from_millis(400),
            settle: Duration::from_secs(120),
            reject_percent: 20,
            verbose: false,
        }
    }

    fn validate(&self) -> Result<(), FaultError> {
        let bad = |m: String| Err(FaultError::Options(m));
        if self.orders == 0 || self.orders > plan::MAX_ORDERS {
            return bad(format!(
                "orders must be between 1 and {}, not {}",
                plan::MAX_ORDERS,
                self.orders
            ));
        }
        if self.min_uptime > self.max_uptime {
            return bad(format!(
                "the shortest uptime ({} ms) is longer than the longest ({} ms)",
                self.min_uptime.as_millis(),
                self.max_uptime.as_millis()
            ));
        }
        if self.reject_percent > 100 {
            return bad(format!(
                "reject percent must be 0..=100, not {}",
                self.reject_percent
            ));
        }
        if self.settle.is_zero() {
            return bad("settle time must be positive".into());
        }
        if !self.bot_bin.is_file() {
            return bad(format!(
                "bot binary {} does not exist",
                self.bot_bin.display()
            ));
        }
        if std::fs::read_dir(&self.dir).is_ok_and(|mut d| d.next().is_some()) {
            return bad(format!(
                "{} is not empty: give a new directory (an earlier run's store would mix with this one)",
                self.dir.display()
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum FaultError {
    #[error("{0}")]
    Options(String),
    #[error("setting up the simulators: {0}")]
    Setup(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the bot: {0}")]
    Bot(String),
}

/// What happened to one planned request while it was driven.
#[derive(Clone, Debug)]
pub struct Trace {
    pub plan: PlannedOrder,
    /// The order id the approver was shown (card or OA form).
    pub order_id: Option<String>,
    /// The approver's card (card mode) or the OA instance (OA mode).
    pub approval_ref: Option<String>,
    /// When the approver first decided, and when the bot acknowledged the decision.
    pub decided: Option<(Timestamp, Timestamp)>,
    /// What did not happen (a delivery never acknowledged, no approval request appeared).
    pub problem: Option<String>,
}

/// Counts of the kill schedule.
#[derive(Clone, Debug, Default)]
pub struct KillStats {
    pub kills: usize,
    /// Kills that came before the bot answered its health check (during start-up).
    pub before_ready: usize,
    /// Kills while requests were still being made or decided.
    pub during_orders: usize,
    pub restarts: usize,
    /// The bot ended without being killed (a crash on start-up, say).
    pub self_exits: Vec<String>,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct FaultReport {
    pub seed: u64,
    pub approval: Approval,
    pub orders: usize,
    pub approved: usize,
    pub rejected: usize,
    pub kills: KillStats,
    /// Deliveries the bot did not acknowledge and that were sent (or typed) again.
    pub redeliveries: u64,
    /// Of those, messages typed again by the person (a new message id).
    pub retyped: u64,
    pub elapsed: Duration,
    /// Until the last request was decided.
    pub order_phase: Duration,
    /// From the end of the kills until every outcome was visible; `None`: not within `settle`.
    pub settled_in: Option<Duration>,
    /// Extra copies of identical chat messages, by kind.
    pub duplicates: BTreeMap<&'static str, usize>,
    /// Runnable jobs left after the clean stop at the end.
    pub outbox_left: usize,
    /// Starts that found a sled snapshot half-written by a kill and cleared it (bot log).
    pub torn_snapshots: usize,
    pub clean_stop: bool,
    pub violations: Vec<String>,
    pub dir: PathBuf,
}

impl FaultReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: Duration| format!("{:.1}s", d.as_secs_f64());
        let k = &self.kills;
        writeln!(
            f,
            "fault run: seed {} · approval {} · {} requests ({} approved, {} rejected as planned)",
            self.seed, self.approval, self.orders, self.approved, self.rejected
        )?;
        writeln!(
            f,
            "  kills {} (SIGKILL; {} during requests and decisions, {} before the health check answered) · restarts {}",
            k.kills, k.during_orders, k.before_ready, k.restarts
        )?;
        writeln!(
            f,
            "  time {} (requests and decisions {}, end state {} after the last restart) · redeliveries {} ({} typed again)",
            secs(self.elapsed),
            secs(self.order_phase),
            self.settled_in
                .map(secs)
                .unwrap_or_else(|| "not reached".into()),
            self.redeliveries,
            self.retyped
        )?;
        let dups: Vec<String> = self
            .duplicates
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(
            f,
            "  duplicate chat messages: {} · outbox jobs left {} · torn sled snapshots cleared at start {} · clean stop at the end: {}",
            if dups.is_empty() {
                "none".to_owned()
            } else {
                dups.join(", ")
            },
            self.outbox_left,
            self.torn_snapshots,
            if self.clean_stop { "yes" } else { "no" }
        )?;
        if self.violations.is_empty() {
            writeln!(
                f,
                "  OK: one permission per approved order, exactly as asked; none lost; no duplicate approvals"
            )?;
        } else {
            writeln!(f, "  {} VIOLATION(S):", self.violations.len())?;
            for v in &self.violations {
                writeln!(f, "  ✗ {v}")?;
            }
        }
        Ok(())
    }
}

/// The simulators and where the bot's files go.
struct World {
    dt: SimDingTalk,
    jms: SimJumpServer,
    bot_url: String,
    config_path: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    policy: Policy,
}

/// A port nobody listens on now, for the bot: it must keep one address across restarts, because
/// DingTalk calls the URL it was given (the card callback route is registered once). Taken below
/// Linux's ephemeral range (32768 and up), which `bind(…:0)` and outgoing connections draw from:
/// while the bot is down, nothing else on the machine is handed its port by accident.
pub(crate) fn free_port(rng: &mut StdRng) -> std::io::Result<u16> {
    for _ in 0..200 {
        let port = rng.random_range(20_000..32_768);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl World {
    async fn start(opts: &FaultOptions, plan: &Plan) -> Result<World, FaultError> {
        let setup = |e: &dyn fmt::Display| FaultError::Setup(e.to_string());
        let jms = SimJumpServer::start(SimJmsOptions::new(Arc::new(SystemClock)))
            .await
            .map_err(|e| setup(&e))?;
        jms.seed_demo().map_err(|e| setup(&e))?;
        // Real time (the bot checks signature timestamps against its clock) and DingTalk's
        // real rate limit per API, which a burst of notices can reach.
        let dt = SimDingTalk::start(SimDingTalkOptions::default())
            .await
            .map_err(|e| setup(&e))?;
        let people = DIRECTORY.iter().map(|(i, n, e)| (*i, *n, (*e).to_owned()));
        let requesters = plan
            .requesters
            .iter()
            .map(|(i, n)| (i.as_str(), n.as_str(), format!("{i}@example.com")));
        for (id, name, email) in people.chain(requesters) {
            dt.add_user(DingUser {
                userid: DingUserId::new(id),
                name: name.to_owned(),
                email: Some(email),
                org_email: None,
                mobile: None,
                job_number: None,
                dept_ids: vec![1],
                active: true,
            });
        }
        if opts.approval == Approval::Oa {
            dt.add_process(demo::PROCESS_NAME, demo::PROCESS_CODE);
        }
        // Not from the run's seed: two runs at once (say, with the same seed) must not collide.
        let port = free_port(&mut StdRng::from_os_rng())?;
        let bot_url = format!("http://127.0.0.1:{port}");
        dt.set_bot_base_url(&bot_url);
        dt.register_card_callback(
            demo::CARD_ROUTE_KEY,
            &format!("{bot_url}/dingtalk/cards"),
            &dt.options().card_api_secret,
        );
        std::fs::create_dir_all(&opts.dir)?;
        let config_path = opts.dir.join("accessbot.toml");
        let data_dir = opts.dir.join("data");
        let toml = bot_config(&dt, &jms, port, &data_dir, opts.approval)?;
        std::fs::write(&config_path, toml)?;
        // The bot reads the same file; checking it here fails fast with the key that is wrong,
        // and gives the check the very policy (roles) the bot runs with.
        let no_env = Sources {
            file: Some(&config_path),
            env: BTreeMap::new(),
        };
        let config = match config::load(&no_env) {
            Ok((c, _)) => c,
            Err(problems) => {
                let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
                return Err(FaultError::Setup(format!(
                    "generated config is invalid: {}",
                    all.join("; ")
                )));
            }
        };
        let policy = Policy::from_config(&config.policy_config()).map_err(|e| setup(&e))?;
        Ok(World {
            dt,
            jms,
            bot_url,
            config_path,
            log_path: opts.dir.join("bot.log"),
            data_dir,
            policy,
        })
    }
}

/// The bot's configuration for the two simulators (what `accessbot demo` configures in-process).
fn bot_config(
    dt: &SimDingTalk,
    jms: &SimJumpServer,
    port: u16,
    data: &Path,
    approval: Approval,
) -> Result<String, FaultError> {
    toml::to_string(&bot_config_doc(dt, jms, port, data, approval))
        .map_err(|e| FaultError::Setup(format!("writing the config: {e}")))
}

/// `bot_config` as a document, for drivers that change a key or two (`accessbot scale`).
pub(crate) fn bot_config_doc(
    dt: &SimDingTalk,
    jms: &SimJumpServer,
    port: u16,
    data: &Path,
    approval: Approval,
) -> serde_json::Value {
    let d = dt.dingtalk_config();
    let mut approval_section = json!({
        "mode": approval.to_string(),
        "default_approvers": [LISI],
    });
    if approval == Approval::Oa {
        approval_section["process_code"] = json!(demo::PROCESS_CODE);
    }
    json!({
        "server": {"listen": format!("127.0.0.1:{port}")},
        "storage": {"path": data.to_string_lossy()},
        "dingtalk": {
            "mode": "http",
            "app_key": d.app_key,
            "app_secret": d.app_secret.expose(),
            "corp_id": d.corp_id,
            "agent_id": d.agent_id.unwrap_or_default(),
            "callback_token": d.callback_token.expose(),
            "callback_aes_key": d.callback_aes_key.expose(),
            "card_callback_secret": d.card_callback_secret.expose(),
            "api_base": d.api_base,
            "oapi_base": d.oapi_base,
        },
        "jumpserver": {
            "url": jms.url(),
            "access_key_id": VECTOR_KEY_ID,
            "access_key_secret": VECTOR_KEY_SECRET,
            // Loopback answers at once; a failed call is worth retrying soon.
            "retry_base_delay_ms": 20,
        },
        "approval": approval_section,
        "policy": {"admins": [demo::ZHAOLIU]},
        "cards": {
            "approval_template_id": demo::APPROVAL_TEMPLATE,
            "callback_route_key": demo::CARD_ROUTE_KEY,
        },
    })
}

/// Shared by the request tasks and the kill loop.
struct Ctx {
    opts: FaultOptions,
    dt: SimDingTalk,
    approver: DingUserId,
    redeliveries: AtomicU64,
    retyped: AtomicU64,
    asked: AtomicUsize,
    decided: AtomicUsize,
    orders_done: AtomicBool,
}

/// What one delivery attempt came to.
enum Attempt {
    Accepted,
    /// Not handled (bot down, cut off, still busy with a copy): send again.
    Again,
    Refused(String),
}

fn judge(r: Result<BotReply, DriveError>) -> Attempt {
    match r {
        Ok(r) if r.status == 200 => Attempt::Accepted,
        // 409: a copy is in flight, or was cut off by a kill and not yet counted abandoned;
        // 408 and 5xx: not handled. DingTalk sends these again.
        Ok(r) if r.status == 408 || r.status == 409 || r.status >= 500 => Attempt::Again,
        Ok(r) => Attempt::Refused(format!("HTTP {} {}", r.status, r.body)),
        // Connection refused or reset: the bot is down or was killed mid-request.
        Err(DriveError::Http(_)) => Attempt::Again,
        Err(e) => Attempt::Refused(e.to_string()),
    }
}

async fn pause(rng: &mut StdRng, max: Duration) {
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=ms))).await;
    }
}

impl Ctx {
    fn again(&self, deadline: Instant, what: &str) -> Result<(), String> {
        if Instant::now() >= deadline {
            return Err(format!(
                "{what} was not acknowledged within {} s",
                self.opts.settle.as_secs()
            ));
        }
        self.redeliveries.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `user` writes `text` to the bot until it is acknowledged. A message the bot did not
    /// acknowledge is redelivered with its message id, or (half the time) typed again by the
    /// person as a new message: either way exactly one order or decision must come of it.
    async fn say(&self, user: &DingUserId, text: &str, rng: &mut StdRng) -> Result<(), String> {
        let what = format!("{user}'s message «{text}»");
        let deadline = Instant::now() + self.opts.settle;
        let prepare = || {
            self.dt
                .prepare_message(user, None, text)
                .map_err(|e| e.to_string())
        };
        let mut m = prepare()?;
        loop {
            match judge(self.dt.deliver(&m).await) {
                Attempt::Accepted => return Ok(()),
                Attempt::Refused(why) => return Err(format!("{what} was refused: {why}")),
                Attempt::Again => self.again(deadline, &what)?,
            }
            tokio::time::sleep(REDELIVERY_PAUSE).await;
            if rng.random_bool(0.5) {
                m = prepare()?;
                self.retyped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The approver taps a card button until the tap is acknowledged.
    async fn tap(
        &self,
        track: &str,
        action: &str,
        params: Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        let what = format!("{action} tap on card {track}");
        let deadline = Instant::now() + self.opts.settle;
        loop {
            let r = self
                .dt
                .tap_card(&self.approver, track, &[action], params.clone())
                .await;
            match judge(r) {
                Attempt::Accepted => return Ok(()),
                Attempt::Refused(why) => return Err(format!("{what} was refused: {why}")),
                Attempt::Again => self.again(deadline, &what)?,
            }
            tokio::time::sleep(REDELIVERY_PAUSE).await;
        }
    }

    /// The approver decides the OA instance in DingTalk; DingTalk pushes the result event until
    /// the bot acknowledges it.
    async fn decide_oa(&self, instance: &str, agree: bool) -> Result<(), String> {
        let what = format!("result event of OA instance {instance}");
        let deadline = Instant::now() + self.opts.settle;
        let ack = |r: Result<crate::sandbox::dingtalk::EventAck, DriveError>| match r {
            Ok(a) if a.acknowledged => Attempt::Accepted,
            Ok(a) => judge(Ok(BotReply {
                status: a.status,
                body: a.body,
            })),
            Err(e) => judge(Err(e)),
        };
        let first = match self.dt.decide_approval_and_push(instance, agree).await {
            Ok(None) => return Err(format!("OA instance {instance} was no longer running")),
            Ok(Some(a)) => ack(Ok(a)),
            Err(e) => ack(Err(e)),
        };
        let mut attempt = first;
        loop {
            match attempt {
                Attempt::Accepted => return Ok(()),
                Attempt::Refused(why) => return Err(format!("{what} was refused: {why}")),
                Attempt::Again => self.again(deadline, &what)?,
            }
            tokio::time::sleep(REDELIVERY_PAUSE).await;
            let Some(a) = self.dt.approval(instance) else {
                return Err(format!("OA instance {instance} vanished"));
            };
            let event = approval_event(
                &self.dt.options().corp_id,
                &a,
                "finish",
                a.result.as_deref(),
                a.finish_ms.unwrap_or_else(|| self.dt.now_ms()),
            );
            attempt = ack(self.dt.push_event(&event).await);
        }
    }
}

/// When request `index` starts: arrivals are spread evenly over the time the kill schedule is
/// expected to take, so kills keep landing among requests, decisions and the work they cause
/// rather than on an idle bot after a burst.
fn arrival(opts: &FaultOptions, index: usize) -> Duration {
    let per_kill = (opts.min_uptime + opts.max_uptime) / 2 + opts.max_downtime / 2;
    let span = per_kill.saturating_mul(u32::try_from(opts.kills).unwrap_or(u32::MAX));
    let share = index as f64 / opts.orders.max(1) as f64;
    span.mul_f64(share)
}

/// Drives one request: ask, wait for the approval request to reach the approver, decide.
async fn drive(ctx: &Ctx, p: PlannedOrder) -> Trace {
    let mut rng = StdRng::seed_from_u64(p.seed);
    tokio::time::sleep(arrival(&ctx.opts, p.index)).await;
    let mut t = Trace {
        plan: p,
        order_id: None,
        approval_ref: None,
        decided: None,
        problem: None,
    };
    if let Err(why) = drive_steps(ctx, &mut t, &mut rng).await {
        t.problem = Some(why);
    }
    t
}

async fn drive_steps(ctx: &Ctx, t: &mut Trace, rng: &mut StdRng) -> Result<(), String> {
    let p = t.plan.clone();
    let requester = DingUserId::new(p.requester.as_str());
    pause(rng, ctx.opts.max_think).await;
    ctx.say(&requester, &p.text(), rng).await?;
    ctx.asked.fetch_add(1, Ordering::Relaxed);
    // The approval request reaches the approver whenever the bot gets to it (its outbox,
    // possibly after several restarts); the order is recognised by its unique reason.
    let found = match ctx.opts.approval {
        Approval::Card => ctx
            .dt
            .wait_for(ctx.opts.settle, |d| {
                d.cards_for(&ctx.approver)
                    .into_iter()
                    .find_map(|(track, c)| {
                        (c.params.get("reason") == Some(&p.reason))
                            .then(|| (track, c.params.get("order_id").cloned()))
                    })
            })
            .await
            .map(|(track, id)| (track, id.unwrap_or_default())),
        Approval::Oa => {
            ctx.dt
                .wait_for(ctx.opts.settle, |d| {
                    d.approvals().into_iter().find_map(|a| {
                        let ours = a.originator == p.requester
                            && a.form.iter().any(|(_, v)| v.trim() == p.reason);
                        let order_label = crate::chat::text::oa_label(
                            crate::domain::command::Lang::ZhCn,
                            crate::chat::text::OaField::Order,
                        );
                        let id = a
                            .form
                            .iter()
                            .find(|(k, _)| k == order_label)
                            .map(|(_, v)| v.trim().to_owned());
                        ours.then(|| (a.instance_id.clone(), id.unwrap_or_default()))
                    })
                })
                .await
        }
    };
    let Some((approval_ref, order_id)) = found else {
        return Err(format!(
            "no approval request reached the approver within {} s",
            ctx.opts.settle.as_secs()
        ));
    };
    t.order_id = Some(order_id.clone()).filter(|s| !s.is_empty());
    t.approval_ref = Some(approval_ref.clone());
    pause(rng, ctx.opts.max_think).await;
    let from = Timestamp::now();
    match (ctx.opts.approval, p.decision) {
        (Approval::Card, Decision::ApproveCard) => {
            let mut params = Map::new();
            params.insert("action".into(), json!("approve"));
            params.insert("order_id".into(), json!(order_id));
            ctx.tap(&approval_ref, "approve", params).await?;
        }
        (Approval::Card, Decision::ApproveText) => {
            ctx.say(&ctx.approver, &format!("/approve {order_id}"), rng)
                .await?;
        }
        (Approval::Card, Decision::Reject) => {
            let mut params = Map::new();
            params.insert("action".into(), json!("reject"));
            params.insert("order_id".into(), json!(order_id));
            params.insert("reject_reason".into(), json!("演练：不需要"));
            ctx.tap(&approval_ref, "reject", params).await?;
        }
        (Approval::Oa, d) => ctx.decide_oa(&approval_ref, d.approves()).await?,
    }
    t.decided = Some((from, Timestamp::now()));
    ctx.decided.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Waits until the bot answers its health check; `Err` says why it did not (it ended, or
/// stayed silent for `limit`).
async fn wait_up(
    bot: &mut BotProcess,
    http: &reqwest::Client,
    url: &str,
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        if wait_ready(http, url, Duration::from_millis(200)).await {
            return Ok(());
        }
        if let Some(status) = bot.exited() {
            return Err(format!("ended by itself ({status})"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "did not answer {url}/healthz within {} s",
                limit.as_secs()
            ));
        }
    }
}

/// Kills the bot `kills` times at random moments and restarts it; returns the running bot.
async fn kill_loop(
    ctx: Arc<Ctx>,
    cmd: BotCommand,
    mut bot: BotProcess,
    url: String,
    mut rng: StdRng,
) -> Result<(BotProcess, KillStats), FaultError> {
    let http = reqwest::Client::new();
    let mut s = KillStats::default();
    let o = &ctx.opts;
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    for k in 1..=o.kills {
        let up = Duration::from_millis(rng.random_range(ms(o.min_uptime)..=ms(o.max_uptime)));
        let at = bot.spawned + up;
        let ready = tokio::time::timeout_at(at, wait_ready(&http, &url, up))
            .await
            .unwrap_or(false);
        tokio::time::sleep_until(at).await;
        let during = !ctx.orders_done.load(Ordering::Relaxed);
        let pid = bot.pid;
        if let Some(status) = bot.kill().await? {
            s.self_exits.push(format!(
                "the bot (pid {pid}) ended by itself ({status}) before kill {k}"
            ));
        }
        s.kills += 1;
        s.before_ready += usize::from(!ready);
        s.during_orders += usize::from(during);
        let down = Duration::from_millis(rng.random_range(0..=ms(o.max_downtime)));
        if o.verbose {
            println!(
                "kill {k}/{}: pid {pid} after {} ms{} · requests made {}/{}, decided {} · down {} ms",
                o.kills,
                up.as_millis(),
                if ready { "" } else { " (still starting)" },
                ctx.asked.load(Ordering::Relaxed),
                o.orders,
                ctx.decided.load(Ordering::Relaxed),
                down.as_millis()
            );
        }
        tokio::time::sleep(down).await;
        bot = cmd.spawn(k + 1)?;
        s.restarts += 1;
    }
    Ok((bot, s))
}

/// Runs the whole fault scenario and checks it. `Err` only when the run could not be made
/// (setup, spawning); what the bot got wrong is in the report's violations.
pub async fn run(opts: FaultOptions) -> Result<FaultReport, FaultError> {
    opts.validate()?;
    let started = Instant::now();
    let plan = plan::plan(opts.orders, opts.seed, opts.reject_percent);
    let world = World::start(&opts, &plan).await?;
    let cmd = BotCommand {
        bin: opts.bot_bin.clone(),
        config: world.config_path.clone(),
        log: world.log_path.clone(),
    };
    let http = reqwest::Client::new();
    let mut bot = cmd.spawn(1)?;
    if let Err(why) = wait_up(&mut bot, &http, &world.bot_url, STARTUP_LIMIT).await {
        drop(bot);
        return Err(FaultError::Bot(format!(
            "{why} at its first start; its log ends:\n{}",
            bot::log_tail(&world.log_path, 20)
        )));
    }
    let ctx = Arc::new(Ctx {
        opts: opts.clone(),
        dt: world.dt,
        approver: DingUserId::new(LISI),
        redeliveries: AtomicU64::new(0),
        retyped: AtomicU64::new(0),
        asked: AtomicUsize::new(0),
        decided: AtomicUsize::new(0),
        orders_done: AtomicBool::new(false),
    });
    let killer = tokio::spawn(kill_loop(
        ctx.clone(),
        cmd.clone(),
        bot,
        world.bot_url.clone(),
        StdRng::seed_from_u64(sub_seed(opts.seed, u64::MAX)),
    ));
    let mut tasks = Vec::new();
    for p in plan.orders.iter().cloned() {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move { drive(&ctx, p).await }));
    }
    let mut traces = Vec::new();
    for task in tasks {
        traces.push(
            task.await
                .map_err(|e| FaultError::Bot(format!("a request task failed: {e}")))?,
        );
    }
    ctx.orders_done.store(true, Ordering::Relaxed);
    let order_phase = started.elapsed();
    let (mut bot, kills) = killer
        .await
        .map_err(|e| FaultError::Bot(format!("the kill loop failed: {e}")))??;
    // After the first few, more of the same (a bot that cannot start at all) says nothing new.
    let mut violations: Vec<String> = kills.self_exits.iter().take(3).cloned().collect();
    if kills.self_exits.len() > 3 {
        violations.push(format!(
            "… the bot ended by itself {} times in all; see bot.log",
            kills.self_exits.len()
        ));
    }
    // Everything the bot owes must now appear without further help.
    let settle_from = Instant::now();
    let mut settled_in = None;
    let up = wait_up(&mut bot, &http, &world.bot_url, opts.settle).await;
    if up.is_ok() {
        while settle_from.elapsed() < opts.settle {
            let snap = check::Snapshot::take(&ctx.dt, &world.jms);
            if traces.iter().all(|t| snap.ended(t)) {
                settled_in = Some(settle_from.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if let Err(why) = up {
        violations.push(format!(
            "after the last restart the bot {why}; its log ends:\n{}",
            bot::log_tail(&world.log_path, 20)
        ));
    }
    let clean_stop = bot.terminate(Duration::from_secs(15)).await?;
    // What everyone saw, for whoever reads a failing run (the simulators end with the driver).
    let conversation: String = ctx
        .dt
        .conversation()
        .iter()
        .map(|e| format!("{}\n", demo::format_entry(e)))
        .collect();
    std::fs::write(opts.dir.join("conversation.log"), conversation)?;
    // A store the bot cannot open any more is the worst finding of all, not a failed run.
    let (findings, outbox_left) = match check::read_store(&world.data_dir, &plan.requesters) {
        Ok(store) => (
            check::check(
                &traces,
                &ctx.dt,
                &world.jms,
                &store,
                &world.policy,
                opts.approval,
                LISI,
            ),
            store.outbox_left,
        ),
        Err(e) => {
            violations.push(format!("the bot's store cannot be opened: {e}"));
            (check::Findings::default(), 0)
        }
    };
    violations.extend(findings.violations);
    Ok(FaultReport {
        seed: opts.seed,
        approval: opts.approval,
        orders: opts.orders,
        approved: findings.approved,
        rejected: findings.rejected,
        kills,
        redeliveries: ctx.redeliveries.load(Ordering::Relaxed),
        retyped: ctx.retyped.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        order_phase,
        settled_in,
        duplicates: findings.duplicates,
        outbox_left,
        torn_snapshots: std::fs::read_to_string(&world.log_path)
            .unwrap_or_default()
            .matches(crate::store::TORN_SNAPSHOT_CLEARED)
            .count(),
        clean_stop,
        violations,
        dir: opts.dir.clone(),
    })
}
