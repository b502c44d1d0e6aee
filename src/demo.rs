//! `accessbot demo`: the whole product in one process on loopback — the bot (`Bot::start`, the
//! real dispatcher and workers), the simulated DingTalk and the simulated JumpServer — playing a
//! scenario and printing the conversation as it happens. Every step is checked against what the
//! simulators recorded (messages, cards, approvals, JumpServer permissions); the first step that
//! did not happen stops the run with its name and why. The end-to-end tests build their worlds
//! with the same [`World`], so what the demo shows is what the tests check.
//!
//! Longer than 600 lines on purpose: it is one scenario, step after step, each with its check;
//! the world it runs in (`World`) is shared with the end-to-end tests.
use crate::app::{AppError, Bot, BotOptions};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::dingtalk::client::DingUser;
use crate::domain::ids::DingUserId;
use crate::domain::policy::ApprovalMode;
use crate::sandbox::dingtalk::{
    ConvEntry, ConvKind, DriveError, Forgery, SimDingTalk, SimDingTalkOptions, Speaker,
};
use crate::sandbox::jumpserver::model::Permission;
use crate::sandbox::jumpserver::{SimJmsError, SimJmsOptions, SimJumpServer};
use crate::secret::Secret;
use crate::store::orders::Orders;
use crate::store::outbox::Outbox;
use crate::store::Store;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Map};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// The requester of the scenario.
pub const ZHANGSAN: &str = "zhangsan";
/// The default approver.
pub const LISI: &str = "lisi";
/// An employee who approves nothing.
pub const WANGWU: &str = "wangwu";
/// The admin.
pub const ZHAOLIU: &str = "zhaoliu";

/// The simulated directory: (userid, name, email).
pub const DIRECTORY: &[(&str, &str, &str)] = &[
    (ZHANGSAN, "张三", "zhangsan@example.com"),
    (LISI, "李四", "lisi@example.com"),
    (WANGWU, "王五", "wangwu@example.com"),
    (ZHAOLIU, "赵六", "zhaoliu@example.com"),
];

/// Puts the demo's people (`DIRECTORY`) into a simulated DingTalk's address book, one
/// department, all active: the demo, the scale run and the load simulators share this org.
pub fn add_directory(dt: &SimDingTalk) {
    for (id, name, email) in DIRECTORY {
        dt.add_user(DingUser {
            userid: DingUserId::new(*id),
            name: (*name).to_owned(),
            email: Some((*email).to_owned()),
            org_email: None,
            mobile: None,
            job_number: None,
            dept_ids: vec![1],
            active: true,
        });
    }
}

/// Template ids the demo configures; the simulated DingTalk accepts any.
pub const APPROVAL_TEMPLATE: &str = "demo-approval-card.schema";
pub const PROCESS_CODE: &str = "PROC-ACCESSBOT-DEMO";
/// Route key of the HTTP card callback, registered with the simulated DingTalk at start.
pub const CARD_ROUTE_KEY: &str = "accessbot-demo";
pub const PROCESS_NAME: &str = "JumpServer 主机权限申请";

/// How long one step may take before the demo calls it missing. The bot answers in
/// milliseconds on loopback; the bound only keeps a broken build from hanging CI.
pub const STEP_LIMIT: Duration = Duration::from_secs(15);

/// Where the demo's clock starts: a weekday morning in Shanghai, in whole seconds so the
/// JumpServer dates compare exactly.
pub const START: &str = "2026-11-23T01:30:00Z";

#[derive(Debug, Error)]
pub enum WorldError {
    #[error("simulated JumpServer: {0}")]
    Jms(#[from] SimJmsError),
    #[error("simulated DingTalk: {0}")]
    DingTalk(#[from] std::io::Error),
    #[error("bot: {0}")]
    Bot(#[from] AppError),
    #[error("configuration: {0}")]
    Config(String),
}

/// One step of the demo that did not happen as expected.
#[derive(Debug, Error)]
#[error("step «{step}» failed: {why}")]
pub struct DemoFailure {
    pub step: String,
    pub why: String,
}

fn fail(step: &str, why: impl Into<String>) -> DemoFailure {
    DemoFailure {
        step: step.to_owned(),
        why: why.into(),
    }
}

/// The two simulators, the shared clock and (when started) the bot, with its sled directory.
pub struct World {
    pub clock: ManualClock,
    pub dingtalk: SimDingTalk,
    pub jms: SimJumpServer,
    pub bot: Option<Bot>,
    pub config: Config,
    /// How long the scenario waits for one step (default [`STEP_LIMIT`]).
    pub step_limit: Duration,
    /// Keep running after the scenario (`accessbot demo --stay`).
    pub stay: bool,
    dirs: Vec<PathBuf>,
}

impl Drop for World {
    fn drop(&mut self) {
        // The bot holds the sled files open; close it before removing them.
        drop(self.bot.take());
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// What a world is started with.
#[derive(Clone, Debug)]
pub struct WorldOptions {
    pub mode: ApprovalMode,
    /// Configure an approval card template (card mode with interactive cards) or not (action
    /// card messages with `dtmd://` buttons).
    pub card_template: bool,
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            mode: ApprovalMode::Card,
            card_template: true,
        }
    }
}

fn unique_dir(tag: &str) -> PathBuf {
    let n: u64 = rand::Rng::random(&mut rand::rng());
    std::env::temp_dir().join(format!("accessbot-{tag}-{}-{n:016x}", std::process::id()))
}

impl World {
    /// Starts both simulators (JumpServer seeded with the demo inventory, DingTalk with
    /// `DIRECTORY` and the OA template) and the bot, configured by `opts`.
    pub async fn start(opts: WorldOptions) -> Result<World, WorldError> {
        let start: Timestamp = START
            .parse()
            .map_err(|e| WorldError::Config(format!("{e}")))?;
        let clock = ManualClock::new(start);
        let jms = SimJumpServer::start(SimJmsOptions::new(Arc::new(clock.clone()))).await?;
        jms.seed_demo()?;
        let dingtalk = SimDingTalk::start(SimDingTalkOptions {
            clock: Some(clock.clone()),
            qps_limit: None,
            ..SimDingTalkOptions::default()
        })
        .await?;
        add_directory(&dingtalk);
        dingtalk.add_process(PROCESS_NAME, PROCESS_CODE);
        let config = Config::default();
        let mut w = World {
            clock,
            dingtalk,
            jms,
            bot: None,
            config,
            step_limit: STEP_LIMIT,
            stay: false,
            dirs: Vec::new(),
        };
        w.config = w.config_for(&opts);
        w.start_bot().await?;
        Ok(w)
    }

    /// A configuration pointing at both simulators, approvals by `lisi`, admin `zhaoliu`.
    pub fn config_for(&self, opts: &WorldOptions) -> Config {
        let mut c = Config::default();
        c.server.listen = "127.0.0.1:0".into();
        c.dingtalk = self.dingtalk.dingtalk_config();
        c.jumpserver.url = self.jms.url();
        c.jumpserver.access_key_id = crate::sandbox::jumpserver::VECTOR_KEY_ID.into();
        c.jumpserver.access_key_secret =
            Secret::new(crate::sandbox::jumpserver::VECTOR_KEY_SECRET.to_owned());
        // Loopback answers at once; short retries keep a failing step from waiting long.
        c.jumpserver.retry_base_delay_ms = 20;
        c.approval.mode = opts.mode;
        c.approval.default_approvers = vec![LISI.into()];
        if opts.mode == ApprovalMode::Oa {
            c.approval.process_code = Some(PROCESS_CODE.into());
        }
        c.policy.admins = vec![ZHAOLIU.into()];
        // The console logs in through the simulated DingTalk, over plain http on loopback.
        c.console.authorize_url = format!("{}/oauth2/auth", self.dingtalk.base_url());
        c.console.jsapi_url = String::new();
        c.console.secure_cookies = false;
        if opts.card_template {
            c.cards.approval_template_id = APPROVAL_TEMPLATE.into();
            c.cards.callback_route_key = CARD_ROUTE_KEY.into();
        }
        c
    }

    /// Starts (or restarts, on the same sled directory) the bot with `self.config`.
    pub async fn start_bot(&mut self) -> Result<(), WorldError> {
        if let Some(old) = self.bot.take() {
            old.shutdown().await;
        }
        let problems: Vec<String> = self
            .config
            .validate()
            .into_iter()
            .filter(|p| !p.warning_only)
            .map(|p| p.to_string())
            .collect();
        if !problems.is_empty() {
            return Err(WorldError::Config(problems.join("; ")));
        }
        // A restart keeps the sled directory, as a redeployed bot would.
        let dir = match self.dirs.last() {
            Some(d) => d.clone(),
            None => {
                let d = unique_dir("demo");
                self.dirs.push(d.clone());
                d
            }
        };
        self.config.storage.path = dir.clone();
        let store = Store::open(&dir).map_err(AppError::from)?;
        let bot = Bot::start(
            &self.config,
            BotOptions {
                clock: Arc::new(self.clock.clone()),
                store,
                dispatcher: None,
            },
        )
        .await?;
        self.dingtalk.set_bot_base_url(bot.url());
        // What the operator does once per deployment: point the card route key at the bot.
        self.dingtalk.register_card_callback(
            CARD_ROUTE_KEY,
            &format!("{}/dingtalk/cards", bot.url()),
            self.config.dingtalk.card_callback_secret.expose(),
        );
        self.bot = Some(bot);
        Ok(())
    }

    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The running bot's orders, read from its sled store.
    pub fn orders(&self) -> Option<Orders> {
        let store = &self.bot.as_ref()?.store;
        let outbox = Outbox::new(store).ok()?;
        Orders::new(store, &outbox).ok()
    }
}

pub fn user(id: &str) -> DingUserId {
    DingUserId::new(id)
}

/// Display name of a directory user (the id when unknown).
pub fn name_of(id: &str) -> &str {
    DIRECTORY
        .iter()
        .find(|(u, _, _)| *u == id)
        .map(|(_, n, _)| *n)
        .unwrap_or(id)
}

/// One conversation line as the demo prints it.
pub fn format_entry(e: &ConvEntry) -> String {
    let (who, to) = match &e.speaker {
        Speaker::User(u) => (name_of(u).to_owned(), "机器人".to_owned()),
        Speaker::Bot => ("机器人".to_owned(), name_of(&e.chat).to_owned()),
        Speaker::DingTalk => ("钉钉 OA".to_owned(), name_of(&e.chat).to_owned()),
    };
    let arrow = match &e.kind {
        ConvKind::CardCreated { .. } => "（新卡片）",
        ConvKind::CardUpdated { .. } => "（卡片更新）",
        ConvKind::CardTap { .. } => "（点卡片）",
        _ => "",
    };
    let time = jiff::Timestamp::from_millisecond(e.at_ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
                .strftime("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_default();
    let mut lines = e.text.lines();
    let first = lines.next().unwrap_or("");
    let mut out = format!("  {time}  {who} → {to}{arrow}：{first}");
    for l in lines {
        out.push_str("\n              ");
        out.push_str(l);
    }
    out
}

/// Prints the conversation as it grows.
struct Printer<'w, W: Write> {
    out: &'w mut W,
    seen: u64,
    last_text: String,
}

impl<W: Write> Printer<'_, W> {
    fn flush_log(&mut self, dt: &SimDingTalk) {
        for mut e in dt.conversation_since(self.seen) {
            self.seen = e.seq;
            // The same notice to several people (an OA instance shown to requester and
            // approver) is printed once.
            if e.text == self.last_text && e.text.lines().count() > 1 {
                e.text = "（同上）".into();
            } else {
                self.last_text = e.text.clone();
            }
            let _ = writeln!(self.out, "{}", format_entry(&e));
        }
        let _ = self.out.flush();
    }
    fn say(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }
}

/// What a completed run checked.
#[derive(Debug, Default)]
pub struct DemoReport {
    pub steps: Vec<String>,
}

fn drive(step: &str) -> impl Fn(DriveError) -> DemoFailure + '_ {
    move |e| fail(step, e.to_string())
}

/// `who` writes `text` to the bot; the step fails unless the bot accepted it (HTTP 200).
async fn say_accepted(
    dt: &SimDingTalk,
    step: &str,
    who: &str,
    text: &str,
) -> Result<(), DemoFailure> {
    let r = dt.user_says(&user(who), text).await.map_err(drive(step))?;
    if r.status != 200 {
        return Err(fail(
            step,
            format!("机器人返回 HTTP {}：{}", r.status, r.body),
        ));
    }
    Ok(())
}

/// The first message the bot said to `chat` after log position `after` that satisfies `pred`.
pub async fn bot_says(
    dt: &SimDingTalk,
    chat: &str,
    after: u64,
    pred: impl Fn(&ConvEntry) -> bool,
) -> Option<ConvEntry> {
    bot_says_within(dt, STEP_LIMIT, chat, after, pred).await
}

/// [`bot_says`] with an explicit limit.
pub async fn bot_says_within(
    dt: &SimDingTalk,
    limit: Duration,
    chat: &str,
    after: u64,
    pred: impl Fn(&ConvEntry) -> bool,
) -> Option<ConvEntry> {
    dt.wait_for(limit, |d| {
        d.bot_said(chat)
            .into_iter()
            .find(|e| e.seq > after && pred(e))
    })
    .await
}

/// The last log position, to wait for what comes after it.
pub fn mark(dt: &SimDingTalk) -> u64 {
    dt.conversation().last().map(|e| e.seq).unwrap_or(0)
}

/// Runs the whole scenario, printing to `out`. `Ok` only when every step happened.
pub async fn run<W: Write>(out: &mut W) -> Result<DemoReport, DemoFailure> {
    run_and_stay(out, false).await
}

/// [`run`], then (when `stay`) the console stays open until Ctrl-C or SIGTERM.
pub async fn run_and_stay<W: Write>(out: &mut W, stay: bool) -> Result<DemoReport, DemoFailure> {
    let mut p = Printer {
        out,
        seen: 0,
        last_text: String::new(),
    };
    p.say(
        "accessbot demo — 机器人、模拟钉钉、模拟 JumpServer 都在本机回环地址上运行，无需任何凭据。",
    );
    let mut world = World::start(WorldOptions::default())
        .await
        .map_err(|e| fail("启动", e.to_string()))?;
    world.stay = stay;
    play_on(&mut world, &mut p).await
}

/// Plays the scenario on a started world (card mode first; it is restarted in OA mode).
pub async fn play<W: Write>(world: &mut World, out: &mut W) -> Result<DemoReport, DemoFailure> {
    let mut p = Printer {
        out,
        seen: 0,
        last_text: String::new(),
    };
    play_on(world, &mut p).await
}

async fn play_on<W: Write>(
    world: &mut World,
    p: &mut Printer<'_, W>,
) -> Result<DemoReport, DemoFailure> {
    let mut report = DemoReport::default();
    p.say(&format!(
        "模拟钉钉 {}，模拟 JumpServer {}，机器人 {}",
        world.dingtalk.base_url(),
        world.jms.url(),
        world.bot.as_ref().map(Bot::url).unwrap_or_default()
    ));

    if let Err(e) = all_scenarios(world, p, &mut report).await {
        // Show everything said up to the failure, then what was missing.
        p.flush_log(&world.dingtalk);
        p.say(&format!("  ✗ {e}"));
        return Err(e);
    }

    if let Some(bot) = &world.bot {
        // The console over what the scenario left behind, with a one-click login per person
        // through the simulated DingTalk (its login-as link, then DingTalk's QR login).
        p.say(&format!(
            "\n访问控制台 / access console: {}/console",
            bot.url()
        ));
        for (id, name, _) in DIRECTORY {
            let then = format!("{}/console/login?via=qr&next=/console/now", bot.url());
            p.say(&format!(
                "  CONSOLE_LOGIN {id} {} ({name})",
                world.dingtalk.login_as_url(id, &then)
            ));
        }
    }
    if world.stay {
        p.say("控制台保持运行，Ctrl-C 结束 / the console stays up; Ctrl-C ends it.");
        let _ = tokio::signal::ctrl_c().await;
    }
    if let Some(bot) = world.bot.take() {
        bot.shutdown().await;
    }
    p.say(&format!("\n全部 {} 步均按预期发生。", report.steps.len()));
    p.say(NEXT_STEPS);
    Ok(report)
}

/// What to run to try it for real, printed once every step of the demo happened.
pub const NEXT_STEPS: &str = "\n接下来，用真实的钉钉和 JumpServer 试一试 / Next, try it for real:\n\
  1. accessbot config example > accessbot.toml   # 生成带注释的配置 / write the commented example config\n\
  2. 按 docs/setup-dingtalk.md 和 docs/setup-jumpserver.md 填写 accessbot.toml / fill it in following the setup guides\n\
  3. accessbot check-config -c accessbot.toml     # 逐项检查配置 / check every setting\n\
  4. accessbot doctor -c accessbot.toml           # 连通钉钉和 JumpServer / reach DingTalk and JumpServer\n\
  5. accessbot serve -c accessbot.toml            # 启动机器人 / start the bot";

async fn all_scenarios<W: Write>(
    world: &mut World,
    p: &mut Printer<'_, W>,
    report: &mut DemoReport,
) -> Result<(), DemoFailure> {
    card_scenario(world, p, report).await?;
    world.config = world.config_for(&WorldOptions {
        mode: ApprovalMode::Oa,
        card_template: false,
    });
    world
        .start_bot()
        .await
        .map_err(|e| fail("以 OA 审批模式重启机器人", e.to_string()))?;
    oa_scenario(world, p, report).await?;
    forged_scenario(world, p, report).await
}

fn ok_step<W: Write>(p: &mut Printer<'_, W>, report: &mut DemoReport, dt: &SimDingTalk, s: String) {
    p.flush_log(dt);
    p.say(&format!("  ✓ {s}"));
    report.steps.push(s);
}

/// The permission granting `username` access to the host at `address`, if any.
pub fn permission_for(jms: &SimJumpServer, username: &str, address: &str) -> Option<Permission> {
    let uid = jms.users().into_iter().find(|u| u.username == username)?.id;
    let host = jms.hosts().into_iter().find(|h| h.address == address)?;
    jms.permissions().into_iter().find(|perm| {
        perm.user_ids.contains(&uid)
            && (perm.asset_ids.contains(&host.id)
                || perm.node_ids.iter().any(|n| host.node_ids.contains(n)))
    })
}

async fn card_scenario<W: Write>(
    w: &World,
    p: &mut Printer<'_, W>,
    report: &mut DemoReport,
) -> Result<(), DemoFailure> {
    let dt = &w.dingtalk;
    p.say("\n── 一、员工用中文申请主机权限，审批人在卡片上同意 ──");
    let step = "张三提交申请";
    say_accepted(
        dt,
        step,
        ZHANGSAN,
        "申请主机 10.1.2.3 运维 3天 原因：排查线上问题",
    )
    .await?;
    let step = "审批卡片发给李四";
    let (track, card) = dt
        .wait_for(w.step_limit, |d| {
            d.cards_for(&user(LISI)).into_iter().next()
        })
        .await
        .ok_or_else(|| fail(step, "李四没有收到审批卡片"))?;
    if card.template_id != APPROVAL_TEMPLATE {
        return Err(fail(step, format!("卡片模板是 {}", card.template_id)));
    }
    let order_id = card
        .params
        .get("order_id")
        .cloned()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| fail(step, "卡片上没有单号 order_id"))?;
    if card.params.get("status").map(String::as_str) != Some("pending") {
        return Err(fail(
            step,
            format!("卡片状态不是 pending：{:?}", card.params.get("status")),
        ));
    }
    ok_step(
        p,
        report,
        dt,
        format!("审批卡片 {track} 已发给李四，单号 {order_id}"),
    );

    w.advance(SignedDuration::from_mins(5));
    let approved_at = w.now();
    let before = mark(dt);
    let step = "李四在卡片上同意";
    let mut params = Map::new();
    params.insert("action".into(), json!("approve"));
    params.insert("order_id".into(), json!(order_id));
    let r = dt
        .tap_card(&user(LISI), &track, &["approve"], params)
        .await
        .map_err(drive(step))?;
    if r.status != 200 {
        return Err(fail(
            step,
            format!("卡片回调返回 HTTP {}：{}", r.status, r.body),
        ));
    }
    let step = "权限落到 JumpServer";
    let perm = dt
        .wait_for(w.step_limit, |_| {
            permission_for(&w.jms, "zhangsan", "10.1.2.3")
        })
        .await
        .ok_or_else(|| fail(step, "JumpServer 里没有 zhangsan 对 10.1.2.3 的授权"))?;
    let want_end = approved_at + SignedDuration::from_hours(72);
    if perm.date_expired != want_end {
        return Err(fail(
            step,
            format!(
                "到期时间是 {}，应为审批时刻 + 3 天 = {want_end}",
                perm.date_expired
            ),
        ));
    }
    // Exactly the ops role of the default policy, on exactly the host asked for.
    let want_actions = ["connect", "upload", "download", "copy", "paste"];
    let mut actions = perm.actions.clone();
    actions.sort();
    let mut want: Vec<String> = want_actions.iter().map(|a| a.to_string()).collect();
    want.sort();
    if actions != want {
        return Err(fail(
            step,
            format!("动作是 {:?}，应为运维角色的 {want_actions:?}", perm.actions),
        ));
    }
    if perm.accounts != ["@SPEC", "ops"] {
        return Err(fail(
            step,
            format!("账号是 {:?}，应为 [\"@SPEC\", \"ops\"]", perm.accounts),
        ));
    }
    let host = w.jms.hosts().into_iter().find(|h| h.address == "10.1.2.3");
    let exact = host.is_some_and(|h| perm.asset_ids == [h.id]);
    if !exact {
        return Err(fail(
            step,
            format!("授权的资产不是恰好 10.1.2.3：{:?}", perm.asset_ids),
        ));
    }
    ok_step(
        p,
        report,
        dt,
        format!(
            "JumpServer 授权「{}」：用户 zhangsan，主机 10.1.2.3，账号 {}，动作 {}，{} 至 {}",
            perm.name,
            perm.accounts.join(","),
            perm.actions.join(","),
            perm.date_start,
            perm.date_expired
        ),
    );
    let step = "张三收到开通通知";
    bot_says_within(dt, w.step_limit, ZHANGSAN, before, |e| {
        e.text.contains("10.1.2.3") && e.kind != ConvKind::UserText
    })
    .await
    .ok_or_else(|| fail(step, "张三没有收到提到 10.1.2.3 的开通消息"))?;
    let step = "李四的卡片更新为已同意";
    dt.wait_for(w.step_limit, |d| {
        d.card(&track)
            .filter(|c| c.params.get("status").map(String::as_str) == Some("approved"))
    })
    .await
    .ok_or_else(|| fail(step, "审批卡片没有更新为 approved"))?;
    ok_step(
        p,
        report,
        dt,
        "张三已收到通知，李四的卡片已更新为「已同意」".into(),
    );

    let step = "张三用「我的权限」查看";
    let before = mark(dt);
    dt.user_says(&user(ZHANGSAN), "我的权限")
        .await
        .map_err(drive(step))?;
    // The expiry as the requester reads it: configured zone (default Asia/Shanghai).
    let until = want_end
        .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC))
        .strftime("%Y-%m-%d %H:%M")
        .to_string();
    bot_says_within(dt, w.step_limit, ZHANGSAN, before, |e| {
        e.kind == ConvKind::Reply && e.text.contains(&order_id)
    })
    .await
    .filter(|e| e.text.contains(&until))
    .ok_or_else(|| {
        fail(
            step,
            format!("「我的权限」的回复没有列出 {order_id}（到期 {until}）"),
        )
    })?;
    ok_step(
        p,
        report,
        dt,
        format!("「我的权限」列出了 {order_id}，到期 {until}"),
    );
    Ok(())
}

async fn oa_scenario<W: Write>(
    w: &World,
    p: &mut Printer<'_, W>,
    report: &mut DemoReport,
) -> Result<(), DemoFailure> {
    let dt = &w.dingtalk;
    p.say("\n── 二、OA 审批模式：申请被审批人在钉钉 OA 里拒绝 ──");
    let perms_before = w.jms.permissions().len();
    let step = "张三提交第二个申请";
    say_accepted(
        dt,
        step,
        ZHANGSAN,
        "申请主机 10.10.1.12 只读 1天 原因：核对账单",
    )
    .await?;
    let step = "机器人发起 OA 审批";
    let instance = dt
        .wait_for(w.step_limit, |d| {
            d.approvals()
                .into_iter()
                .find(|a| a.originator == ZHANGSAN && a.status == "RUNNING")
        })
        .await
        .ok_or_else(|| fail(step, "模拟钉钉里没有张三发起的 OA 审批"))?;
    if instance.process_code != PROCESS_CODE {
        return Err(fail(step, format!("审批模板是 {}", instance.process_code)));
    }
    if !instance.approvers.iter().any(|a| a == LISI) {
        return Err(fail(
            step,
            format!("审批人是 {:?}，应含李四", instance.approvers),
        ));
    }
    ok_step(
        p,
        report,
        dt,
        format!("OA 审批 {} 已发起，审批人李四", instance.instance_id),
    );
    // The bot records the instance on the order once DingTalk answers the start call; a human
    // approver never decides within that moment, so the demo waits for it too.
    let step = "机器人把 OA 审批单记在订单上";
    let instance_id = instance.instance_id.clone();
    dt.wait_for(w.step_limit, |_| {
        w.orders()?.find_by_oa_instance(&instance_id).ok().flatten()
    })
    .await
    .ok_or_else(|| fail(step, "订单上没有记录这个 OA 审批实例"))?;
    w.advance(SignedDuration::from_mins(3));
    let before = mark(dt);
    let step = "李四在 OA 中拒绝";
    let ack = dt
        .decide_approval_and_push(&instance.instance_id, false)
        .await
        .map_err(drive(step))?
        .ok_or_else(|| fail(step, "审批实例已不在进行中"))?;
    if !ack.acknowledged {
        return Err(fail(
            step,
            format!("机器人没有确认审批事件：HTTP {} {}", ack.status, ack.body),
        ));
    }
    let step = "张三被告知被拒绝";
    bot_says_within(dt, w.step_limit, ZHANGSAN, before, |e| {
        e.text.contains("拒绝")
    })
    .await
    .ok_or_else(|| fail(step, "张三没有收到“已拒绝”的消息"))?;
    let step = "没有任何授权";
    if w.jms.permissions().len() != perms_before
        || permission_for(&w.jms, "zhangsan", "10.10.1.12").is_some()
    {
        return Err(fail(step, "被拒绝的申请在 JumpServer 里产生了授权"));
    }
    let state = w
        .orders()
        .and_then(|o| o.find_by_oa_instance(&instance.instance_id).ok().flatten())
        .map(|o| o.state);
    if state != Some(crate::domain::order::State::Rejected) {
        return Err(fail(step, format!("订单状态是 {state:?}，应为 Rejected")));
    }
    ok_step(
        p,
        report,
        dt,
        "张三已被告知申请被拒绝；JumpServer 没有新增授权".into(),
    );
    Ok(())
}

async fn forged_scenario<W: Write>(
    w: &World,
    p: &mut Printer<'_, W>,
    report: &mut DemoReport,
) -> Result<(), DemoFailure> {
    let dt = &w.dingtalk;
    p.say("\n── 三、伪造的审批回调被拒绝，什么也不改变 ──");
    let step = "张三提交第三个申请";
    say_accepted(
        dt,
        step,
        ZHANGSAN,
        "申请主机 10.10.1.12 只读 1天 原因：核对账单（第二次）",
    )
    .await?;
    let instance = dt
        .wait_for(w.step_limit, |d| {
            d.approvals()
                .into_iter()
                .find(|a| a.originator == ZHANGSAN && a.status == "RUNNING")
        })
        .await
        .ok_or_else(|| fail(step, "没有发起新的 OA 审批"))?;
    let instance_id = instance.instance_id.clone();
    let order = dt
        .wait_for(w.step_limit, |_| {
            w.orders()?.find_by_oa_instance(&instance_id).ok().flatten()
        })
        .await
        .ok_or_else(|| fail(step, "订单上没有记录这个 OA 审批实例"))?;
    p.flush_log(dt);
    let perms_before = w.jms.permissions().len();
    let before = mark(dt);
    let step = "伪造的“同意”事件";
    let mut forged = json!({
        "EventType": "bpms_instance_change",
        "processInstanceId": instance.instance_id,
        "processCode": instance.process_code,
        "type": "finish",
        "result": "agree",
        "staffId": ZHANGSAN,
    });
    forged["eventId"] = json!("forged-event-0001");
    forged["EventTime"] = json!(dt.now_ms());
    let ack = dt
        .push_event_forged(&forged, Forgery::BadSignature)
        .await
        .map_err(drive(step))?;
    if ack.status != 401 || ack.acknowledged {
        return Err(fail(
            step,
            format!(
                "伪造的事件应得到 401，实际 HTTP {} {}",
                ack.status, ack.body
            ),
        ));
    }
    p.say(&format!(
        "  攻击者 → 机器人：伪造签名的 bpms_instance_change（同意 {}）→ HTTP {}",
        instance.instance_id, ack.status
    ));
    let step = "伪造的卡片点击";
    let mut params = Map::new();
    params.insert("action".into(), json!("approve"));
    params.insert("order_id".into(), json!("A20261123-FAKE"));
    let r = dt
        .tap_card_forged(
            &user(WANGWU),
            "forged-track",
            &["approve"],
            params,
            Forgery::BadSignature,
        )
        .await
        .map_err(drive(step))?;
    if r.status != 401 {
        return Err(fail(
            step,
            format!("应得到 401，实际 HTTP {} {}", r.status, r.body),
        ));
    }
    p.say(&format!(
        "  攻击者 → 机器人：伪造签名的卡片回调（同意）→ HTTP {}",
        r.status
    ));
    let step = "什么也没改变";
    // The bot answers forged requests before reading them; give any stray work a moment to
    // show up before checking that none happened.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let still = dt.approval(&instance.instance_id).map(|a| a.status);
    if still.as_deref() != Some("RUNNING") {
        return Err(fail(step, format!("OA 审批状态变成了 {still:?}")));
    }
    if w.jms.permissions().len() != perms_before {
        return Err(fail(step, "JumpServer 出现了新授权"));
    }
    let now = w
        .orders()
        .and_then(|o| o.get(&order.id).ok().flatten())
        .map(|o| o.state);
    if now != Some(order.state) {
        return Err(fail(
            step,
            format!("订单状态从 {:?} 变成了 {now:?}", order.state),
        ));
    }
    if let Some(e) = dt
        .bot_said(ZHANGSAN)
        .into_iter()
        .find(|e| e.seq > before && (e.text.contains("已同意") || e.text.contains("已开通")))
    {
        return Err(fail(step, format!("机器人对张三说了：{}", e.text)));
    }
    ok_step(
        p,
        report,
        dt,
        "两个伪造请求都被 401 拒绝：审批仍在进行，没有授权，也没有消息".into(),
    );
    Ok(())
}

/// `accessbot demo`: runs [`run`] on stdout; exit code 0 only when every step happened.
/// `stay`: keep everything running after the scenario, for a browser on the console.
pub fn main_entry(stay: bool) -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("accessbot demo: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    match rt.block_on(run_and_stay(&mut stdout, stay)) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accessbot demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
