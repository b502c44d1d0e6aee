//! The bot test environment shared by the over-HTTP workflow modules: a manual clock, the
//! simulated DingTalk and JumpServer, a temporary sled directory and a config pointing at both
//! simulators, plus the bot lifecycle (start, crash-and-restart). Modules wrap [`BotEnv`] in
//! their own newtype for their helpers, so the setup lives here once.
use accessbot::app::{Bot, BotOptions};
use accessbot::clock::{Clock, ManualClock, SharedClock};
use accessbot::config::Config;
use accessbot::dingtalk::client::DingUser;
use accessbot::domain::ids::DingUserId;
use accessbot::jumpserver::config::JumpServerConfig;
use accessbot::sandbox::dingtalk::{SimDingTalk, SimDingTalkOptions};
use accessbot::sandbox::jumpserver::{
    SimJmsOptions, SimJumpServer, VECTOR_KEY_ID, VECTOR_KEY_SECRET,
};
use accessbot::secret::Secret;
use accessbot::store::Store;
use jiff::Timestamp;
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
