//! The bot test environment shared by the over-HTTP workflow modules: a manual clock, the
//! simulated DingTalk and JumpServer, a temporary sled directory and a config pointing at both
//! simulators, plus the bot lifecycle (start, crash-and-restart). Modules wrap [`BotEnv`] in
//! their own newtype for their helpers, so the setup lives here once.
use accessbot::app::{Bot, BotOptions};
use accessbot::clock::{Clock, ManualClock, SharedClock};
use accessbot::config::Config;
use accessbot::dingtalk::client::DingUser;
use accessbot::domain::ids::{DingUserId, OrderId};
use accessbot::domain::order::Order;
use accessbot::jumpserver::config::JumpServerConfig;
use accessbot::sandbox::dingtalk::driver::{
    encrypted_event_request, robot_text_message, signed_robot_headers, RobotSender,
};
use accessbot::sandbox::dingtalk::{SimDingTalk, SimDingTalkOptions};
use accessbot::sandbox::jumpserver::{
    SimJmsOptions, SimJumpServer, VECTOR_KEY_ID, VECTOR_KEY_SECRET,
};
use accessbot::secret::Secret;
use accessbot::store::Store;
use jiff::Timestamp;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// The instant every environment's manual clock starts at.
pub const START: &str = "2026-11-22T02:00:00Z";

/// An active directory user in department 1.
pub fn ding_user(id: &str, name: &str, email: &str) -> DingUser {
    DingUser {
        userid: DingUserId::new(id),
        name: name.into(),
        email: Some(email.into()),
        org_email: None,
        mobile: None,
        job_number: None,
        dept_ids: vec![1],
        active: true,
    }
}

/// [`ding_user`] with the mail address `<id>@example.com`.
pub fn example_user(id: &str, name: &str) -> DingUser {
    ding_user(id, name, &format!("{id}@example.com"))
}

/// The example configuration with its placeholders filled in, as an operator would: the example
/// as shipped is refused on purpose (`check-config` names each placeholder).
pub fn filled_example() -> String {
    accessbot::config::EXAMPLE
        .replace("\"replace-me\"", "\"s3cret-from-test\"")
        .replace("dingexampleappkey", "dingtestappkey01")
        .replace("dingexamplecorpid", "dingtestcorp01")
        .replace(
            "o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus",
            "k2x9bum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus",
        )
}

pub struct BotEnv {
    pub dt: SimDingTalk,
    pub jms: SimJumpServer,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub cfg: Config,
    pub bot: Option<Bot>,
    /// Makes message ids unique within one environment.
    pub seq: AtomicU64,
}

impl BotEnv {
    /// Starts both simulators (DingTalk without a QPS limit, knowing `users`; JumpServer with
    /// its demo seed), lets `seed` add to them, builds the config (vector access key, one fast
    /// JumpServer attempt, workers off so tests drive the outbox), lets `configure` adjust it,
    /// and starts the bot.
    pub async fn new(
        users: impl IntoIterator<Item = DingUser>,
        seed: impl FnOnce(&SimDingTalk, &SimJumpServer),
        configure: impl FnOnce(&mut Config),
    ) -> BotEnv {
        let clock = ManualClock::new(START.parse::<Timestamp>().unwrap());
        let dt = SimDingTalk::start(SimDingTalkOptions {
            clock: Some(clock.clone()),
            qps_limit: None,
            ..SimDingTalkOptions::default()
        })
        .await
        .unwrap();
        for user in users {
            dt.add_user(user);
        }
        let shared: SharedClock = Arc::new(clock.clone());
        let jms = SimJumpServer::start(SimJmsOptions::new(shared))
            .await
            .unwrap();
        jms.seed_demo().unwrap();
        seed(&dt, &jms);
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".into();
        cfg.storage.path = dir.path().join("db");
        cfg.dingtalk = dt.dingtalk_config();
        cfg.jumpserver = JumpServerConfig {
            url: jms.url(),
            access_key_id: VECTOR_KEY_ID.into(),
            access_key_secret: Secret::new(VECTOR_KEY_SECRET),
            retry_max_attempts: 1,
            retry_base_delay_ms: 1,
            retry_after_cap_ms: 5,
            ..JumpServerConfig::default()
        };
        cfg.workflow.run_workers = false;
        configure(&mut cfg);
        let mut env = BotEnv {
            dt,
            jms,
            clock,
            dir,
            cfg,
            bot: None,
            seq: AtomicU64::new(0),
        };
        env.start().await;
        env
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    pub async fn start(&mut self) {
        let store = Store::open(self.db_path()).unwrap();
        let bot = Bot::start(
            &self.cfg,
            BotOptions {
                clock: Arc::new(self.clock.clone()),
                store,
                dispatcher: None,
            },
        )
        .await
        .unwrap();
        self.dt.set_bot_base_url(bot.url());
        self.bot = Some(bot);
    }

    /// A crash: the bot is dropped (tasks aborted, nothing flushed on purpose) and a new one
    /// starts on the same sled directory.
    pub async fn crash_and_restart(&mut self) {
        drop(self.bot.take());
        // Let the runtime drop the aborted tasks (and with them their sled handles).
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        self.start().await;
    }

    pub fn bot(&self) -> &Bot {
        self.bot.as_ref().unwrap()
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now().as_millisecond()
    }

    /// Runs the due outbox jobs (workers are off); returns how many ran.
    pub async fn drain(&self) -> usize {
        self.bot().drain_outbox(50).await.unwrap()
    }

    /// An encrypted, signed DingTalk event push to the bot; returns the HTTP status.
    pub async fn push_event(&self, event: Value) -> u16 {
        let d = &self.cfg.dingtalk;
        let crypto = d.callback_crypto().unwrap();
        let ts = self.now_ms().to_string();
        let (query, body) = encrypted_event_request(&crypto, &event.to_string(), &ts, "nonce123");
        let res = reqwest::Client::new()
            .post(format!("{}/dingtalk/events?{query}", self.bot().url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        res.status().as_u16()
    }

    pub fn orders_of(&self, user: &str) -> Vec<Order> {
        self.bot()
            .orders()
            .unwrap()
            .list_by_requester(&DingUserId::new(user))
            .unwrap()
    }

    pub fn order(&self, id: &OrderId) -> Order {
        self.bot().orders().unwrap().get(id).unwrap().unwrap()
    }

    /// Texts of the 1:1 robot messages a user received.
    pub fn texts_to(&self, user: &str) -> Vec<String> {
        self.dt
            .messages_to(&DingUserId::new(user))
            .into_iter()
            .map(|m| m.param.to_string())
            .collect()
    }

    /// How many JumpServer permissions carry this name.
    pub fn permissions_named(&self, name: &str) -> usize {
        self.jms
            .permissions()
            .iter()
            .filter(|p| p.name == name)
            .count()
    }

    /// Permissions named `name` that are still active (a revoke deactivates by default).
    pub fn active_permissions_named(&self, name: &str) -> usize {
        self.jms
            .permissions()
            .iter()
            .filter(|p| p.name == name && p.is_active)
            .count()
    }

    /// `user`'s signed 1:1 text message to the robot endpoint. Its session webhook is keyed by
    /// `msg_id`, so the bot's replies land in `dt.webhook_messages(msg_id)`.
    pub async fn push_robot_text(&self, user: &str, msg_id: &str, text: &str) {
        self.dt.webhook_url_for(msg_id);
        let base = format!("{}/robot/sendBySession", self.dt.base_url());
        let app_key = self.cfg.dingtalk.app_key.clone();
        let sender = RobotSender {
            staff_id: Some(user),
            nick: user,
            group: false,
            conversation_id: &format!("cid-{user}"),
            session_webhook: &base,
            robot_code: &app_key,
        };
        let now = self.now_ms();
        let body = robot_text_message(&sender, msg_id, text, now);
        let mut req = reqwest::Client::new()
            .post(format!("{}/dingtalk/robot", self.bot().url()))
            .json(&body);
        // DingTalk's stamp, distinct per push (the signature covers only the timestamp).
        for (k, v) in signed_robot_headers(self.cfg.dingtalk.app_secret.expose(), self.dt.stamp()) {
            req = req.header(k, v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "robot push refused");
    }

    /// The text the bot answered on a message's session webhook (waits for the spawned reply).
    pub async fn reply(&self, session: &str) -> String {
        // Bounded wait for a reply sent after the acknowledgement; generous because CI machines
        // are shared (this bounds a hang, it is not a speed assertion).
        for _ in 0..3000 {
            if let Some(v) = self.dt.webhook_messages(session).first() {
                return v.to_string();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no reply on session {session}");
    }
}

/// Gives a module's `Env(BotEnv)` newtype the fields and methods of [`BotEnv`].
macro_rules! bot_env_newtype {
    ($name:ident) => {
        impl std::ops::Deref for $name {
            type Target = $crate::support::BotEnv;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
        impl std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }
    };
}
pub(crate) use bot_env_newtype;
